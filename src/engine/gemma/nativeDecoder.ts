// The layers in native code (native/decoder.c): a run of tokens (a decode step's one, a prefill's many, the
// branches of label scoring) through every layer in one call, on Q4_0 weights read from the model once, with
// the caller's KV cache read in place. ONNX Runtime runs a decode step as ~460 kernels, whose dispatch costs
// more than their arithmetic (bench/runtimeProfile.ts); this is one call, two threads that meet between
// phases, with or without a LoRA adapter. The runtime falls back to ONNX Runtime's layers where this is
// unavailable (no binary, a CPU without AVX2, weights not all Q4_0).

import type { GemmaConfig, LayerType } from '../model/config';
import { layerWeightNames } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import type { GemmaKvCache } from './kvCache';
import type { LoraGroup } from './layer';
import { nativeModule, type NativeModule } from './nativeModule';

/** A LoRA adapter made for one NativeDecoder (its arrays stay referenced while it lives). */
export interface NativeAdapter {
  readonly handle: object;
}

/** One runtime's layers in native code. */
export class NativeDecoder {
  private handle: object | null;

  private constructor(private readonly native: NativeModule, private readonly config: GemmaConfig, handle: object) {
    this.handle = handle;
  }

  /**
   * A decoder over a repacked copy of the model's layer weights (~56 MB for the 270M, read from the file
   * mapped where stored as Q4_0, else from rows read now; the file is not read again), or why not.
   * `level`: 4 int8 activations, 0 float, as the runtime's MatMulNBits accuracy_level.
   */
  static create(weights: WeightSource, threads: number, level: 0 | 4): NativeDecoder | { reason: string } {
    const m = nativeModule();
    if (!('module' in m)) return m;
    try {
      return NativeDecoder.build(m.module, weights, threads, level);
    } catch (e) {
      // The layers were read and checked when the model was converted: a failure here is the binary's.
      return { reason: (e as Error).message };
    }
  }

  private static build(native: NativeModule, weights: WeightSource, threads: number, level: 0 | 4): NativeDecoder | { reason: string } {
    const cfg = weights.config;
    const layers: object[] = [];
    // Weights stored in the file as Q4_0 are repacked straight from its mapping (no array in between);
    // others (converted from floats) are read first.
    let file: string | undefined;
    for (let i = 0; i < cfg.layers; i++) {
      const n = layerWeightNames(i);
      const linears = { q: n.q, k: n.k, v: n.v, o: n.o, gate: n.gate, up: n.up, down: n.down };
      const norms = { inNorm: n.inputNorm, qNorm: n.qNorm, kNorm: n.kNorm, postAttnNorm: n.postAttnNorm, preFfnNorm: n.preFfnNorm, postFfnNorm: n.postFfnNorm };
      const layer: Record<string, unknown> = { window: cfg.layerTypes[i] === 'sliding' ? cfg.slidingWindow : 0 };
      for (const [key, name] of Object.entries(linears)) {
        const storage = weights.storage(name);
        if (storage !== 'q4_0') return { reason: `${name} is ${storage}, not q4_0` };
        const placed = weights.stored?.(name);
        file ??= placed?.file;
        layer[key] = placed && placed.file === file ? placed.offset : weights.rows(name, 0, weights.shape(name)[0]).data;
      }
      for (const [key, name] of Object.entries(norms)) {
        const w = weights.rows(name, 0, 1);
        if (w.type !== 'f32') return { reason: `${name} is ${w.type}, not f32` };
        layer[key] = w.data;  // the decoder copies its norms
      }
      layers.push(layer);
    }
    const config = {
      layers: cfg.layers, hidden: cfg.hidden, heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: cfg.headDim, ffn: cfg.intermediate,
      eps: cfg.rmsNormEps, attnScale: 1 / Math.sqrt(cfg.queryPreAttnScalar), level,
    };
    return new NativeDecoder(native, cfg, native.createDecoder(config, layers, threads, file));
  }

  /**
   * Tokens at `positions` after the cache, their (scaled) embeddings x [T, C], through every layer: x becomes
   * the last layer's rows. branch null: one sequence (a token sees every earlier one of the run); else token
   * t sees token u when u's branch is −1 (a shared prefix) or t's, as the ONNX graph's mask. Each token's keys
   * and values go into the slot `slots` gives it in its layer type's set (GemmaKvCache.plan; −1: not kept);
   * the caller records them. `rope(type)` gives the layer type's cos/sin rows at the positions.
   */
  run(cache: GemmaKvCache, x: Float32Array, positions: number[], branch: number[] | null, slots: Map<LayerType, Int32Array>,
    rope: (type: LayerType) => { cos: Float32Array; sin: Float32Array }, adapter?: NativeAdapter): void {
    if (!this.handle) throw new Error('native decoder was disposed');
    const caches: object[] = new Array(this.config.layers);
    for (const [type, set] of cache.sets) {
      const { cos, sin } = rope(type);
      const at = slots.get(type)!;
      set.layers.forEach((layer, l) => {
        caches[layer] = { k: set.k[l], v: set.v[l], positions: set.positions, slots: at, capacity: set.capacity, filled: set.filled, cos, sin };
      });
    }
    this.native.run(this.handle, x, Int32Array.from(positions), branch && Int32Array.from(branch), caches, adapter?.handle);
  }

  /**
   * Sequences side by side without a cache, as a training batch: x [T, C] (scaled embeddings in, the last
   * layer's rows out), each token's position within its sequence and its sequence's index (branch), the RoPE rows
   * of each layer type at those positions. `keep`: a training forward, whose activations backward() reads.
   */
  runBatch(x: Float32Array, positions: Int32Array, branch: Int32Array, rope: ReadonlyMap<LayerType, { cos: Float32Array; sin: Float32Array }>,
    adapter: NativeAdapter | undefined, keep: boolean): void {
    if (!this.handle) throw new Error('native decoder was disposed');
    const caches = this.batchCaches(positions.length, rope);
    if (keep) this.native.trainForward(this.handle, x, positions, branch, caches, adapter?.handle);
    else this.native.run(this.handle, x, positions, branch, caches, adapter?.handle);
  }

  /**
   * The backward of the last runBatch with `keep`, given its arguments: dx [T, C] from the gradient with respect
   * to the last layer's rows to that with respect to the embeddings; each layer's LoRA gradients into grads[l]
   * (per group { a, b } shaped as the adapter's pair, with respect to its a and its scaled b).
   */
  backward(dx: Float32Array, positions: Int32Array, branch: Int32Array, rope: ReadonlyMap<LayerType, { cos: Float32Array; sin: Float32Array }>,
    adapter: NativeAdapter, grads: Partial<Record<LoraGroup, { a: Float32Array; b: Float32Array }>>[]): void {
    if (!this.handle) throw new Error('native decoder was disposed');
    this.native.trainBackward(this.handle, dx, positions, branch, this.batchCaches(positions.length, rope), adapter.handle, grads);
  }

  // Each layer's "cache" for a batch: none to read, nothing kept, only its type's RoPE rows.
  private batchCaches(T: number, rope: ReadonlyMap<LayerType, { cos: Float32Array; sin: Float32Array }>): object[] {
    const slots = new Int32Array(T).fill(-1);
    const empty = { k: new Float32Array(0), v: new Float32Array(0), positions: new Int32Array(0), slots, capacity: 0, filled: 0 };
    return this.config.layerTypes.map((type) => ({ ...empty, ...rope.get(type)! }));
  }

  /**
   * An adapter for run: per layer, the LoRA pair of each group of projections (layer.ts's LORA_GROUPS) as
   * the LoRA graph takes them (a [n·R, in], b [out, n·R] block-diagonal and scaled; n·R = 0 for none). The
   * adapter keeps transposed copies of a and b (and a training step reads a and b in place): a change to either
   * needs a new adapter.
   */
  adapter(layers: Record<LoraGroup, { a: Float32Array; b: Float32Array; rank: number }>[]): NativeAdapter {
    if (!this.handle) throw new Error('native decoder was disposed');
    return { handle: this.native.createAdapter(this.handle, layers) };
  }

  /** Lets an adapter's arrays go now (its finalizer would, once collected); it must not be run with again. */
  dropAdapter(adapter: NativeAdapter): void {
    this.native.destroy(adapter.handle);
  }

  /** Stops the threads and lets the weights go. */
  dispose(): void {
    if (this.handle) this.native.destroy(this.handle);
    this.handle = null;
  }
}

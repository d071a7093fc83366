// The StepEngine in native code: the layers' forward and backward on the 4-bit weights (native/train.c, the
// decoder's own forward told to keep its activations), the LM head and cross-entropy with their gradient
// (head.c's head_loss, through the final norm), and here only what joins them: the embedding rows and the LoRA
// pairs stacked per group of projections (the decoder's form) and their gradients unstacked.
// The ONNX Runtime step graph (ortEngine.ts) computes the same; this one keeps both cores busy in every phase
// and runs the 4-bit products on the decoder's kernels.

import type { GemmaConfig, LayerType } from '../model/config';
import { EMBED_NAME } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import { dequantizeBlocks } from '../model/quantTypes';
import { embeddingScale } from '../gemma/params';
import { layerInverseFrequencies, ropeTables } from '../gemma/rope';
import { LORA_GROUPS, type LoraGroup } from '../gemma/layer';
import { stackGroup, unstackGroupGrads, type StackedPair, type TargetPair } from '../gemma/loraStack';
import { NativeDecoder, type NativeAdapter } from '../gemma/nativeDecoder';
import { NativeHead } from '../gemma/nativeHead';
import type { MicroBatch } from './batch';
import { loraScale, type LoraParams, type LoraTarget } from './lora';
import type { StepEngine } from './trainer';

const GROUPS = Object.keys(LORA_GROUPS) as LoraGroup[];

export interface NativeEngineOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  threads: number;
  /** 4: int8 activations for the 4-bit products (ONNX Runtime's accuracy level 4, the default); 0: float. */
  level?: 0 | 4;
}

/** The arrays of the engine's adapter shape (its rank and targets are fixed): the stacked pairs, the decoder's adapter made from them, their gradients. */
interface Stacks {
  adapter: NativeAdapter;
  pairs: Partial<Record<LoraGroup, StackedPair>>[];
  grads: Partial<Record<LoraGroup, { a: Float32Array; b: Float32Array }>>[];
}

export class NativeStepEngine implements StepEngine {
  private stacks: Stacks | null = null;
  private readonly rope = new Map<string, Map<LayerType, { cos: Float32Array; sin: Float32Array }>>();

  private constructor(readonly config: GemmaConfig, private readonly source: WeightSource, private readonly decoder: NativeDecoder,
    private readonly head: NativeHead, readonly rank: number, readonly targets: readonly LoraTarget[]) {}

  /** The engine on `source`'s weights (Q4_0 layers, a Q4_0 or Q8_0 embedding), or why it cannot run here. */
  static create(source: WeightSource, opts: NativeEngineOptions): NativeStepEngine | { reason: string } {
    const level = opts.level ?? 4;
    const decoder = NativeDecoder.create(source, opts.threads, level);
    if ('reason' in decoder) return decoder;
    const head = NativeHead.create(source, opts.threads, level);
    if ('reason' in head) {
      decoder.dispose();
      return head;
    }
    return new NativeStepEngine(source.config, source, decoder, head, opts.rank, opts.targets);
  }

  async lossAndGrads(batch: MicroBatch, params: LoraParams, scale: number): Promise<{ lossSum: number; grads: Float32Array[] }> {
    const cfg = this.config, C = cfg.hidden;
    const grads = params.modules.flatMap((m) => [new Float32Array(m.a.length), new Float32Array(m.b.length)]);
    // No label, no loss: nothing to run (collate's examples each have one, so only a hand-made batch).
    if (batch.labelPositions.length === 0) return { lossSum: 0, grads };
    const s = this.stacked(params);
    const { x, positions, branch, rope } = this.inputs(batch);
    this.decoder.runBatch(x, positions, branch, rope, s.adapter, true);
    await betweenCalls();
    const P = batch.labelPositions.length;
    const rows = this.labelRows(x, batch.labelPositions);
    const { loss, dRows } = this.head.loss(rows, P, batch.labelTargets, true);
    await betweenCalls();
    const lossSum = loss.reduce((a, v) => a + v, 0);
    if (!dRows) return { lossSum: NaN, grads };
    // d of the last layer's rows: the head's at the label positions, nothing elsewhere.
    const dx = new Float32Array(x.length);
    batch.labelPositions.forEach((pos, p) => dx.set(dRows.subarray(p * C, (p + 1) * C), pos * C));
    this.decoder.backward(dx, positions, branch, rope, s.adapter, s.grads);
    const R = params.rank, ls = loraScale(params.alpha, R);
    const byLayer = modulesByLayer(cfg.layers, params, grads);
    for (let l = 0; l < cfg.layers; l++) {
      for (const group of GROUPS) {
        const g = s.grads[l][group];
        if (g) unstackGroupGrads(cfg, group, byLayer[l], R, ls, g.a, g.b, scale);
      }
    }
    return { lossSum, grads };
  }

  async evaluate(batch: MicroBatch, params: LoraParams): Promise<{ lossSum: number; hits: Float32Array }> {
    if (batch.labelPositions.length === 0) return { lossSum: 0, hits: new Float32Array(0) };
    const s = this.stacked(params);
    const { x, positions, branch, rope } = this.inputs(batch);
    this.decoder.runBatch(x, positions, branch, rope, s.adapter, false);
    await betweenCalls();
    const { loss, hits } = this.head.loss(this.labelRows(x, batch.labelPositions), batch.labelPositions.length, batch.labelTargets, false);
    return { lossSum: loss.reduce((a, v) => a + v, 0), hits };
  }

  async dispose(): Promise<void> {
    if (this.stacks) this.decoder.dropAdapter(this.stacks.adapter);
    this.stacks = null;
    this.decoder.dispose();
    this.head.dispose();
  }

  // The batch's scaled embedding rows, each token's position in its sequence and its sequence, RoPE rows.
  private inputs(batch: MicroBatch): { x: Float32Array; positions: Int32Array; branch: Int32Array; rope: Map<LayerType, { cos: Float32Array; sin: Float32Array }> } {
    const cfg = this.config, C = cfg.hidden, { B, T } = batch, N = B * T;
    const dtype = this.source.storage(EMBED_NAME) as 'q4_0' | 'q8_0';
    const x = new Float32Array(N * C);
    const k = embeddingScale(cfg);
    for (let i = 0; i < N; i++) {
      dequantizeBlocks(dtype, this.source.rows(EMBED_NAME, batch.inputIds[i], 1).data as Uint8Array, C, x, i * C);
      for (let c = i * C; c < (i + 1) * C; c++) x[c] = Math.fround(x[c] * k);
    }
    const positions = new Int32Array(N), branch = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      positions[i] = i % T;
      branch[i] = Math.floor(i / T);
    }
    const key = `${B}x${T}`;
    let rope = this.rope.get(key);
    if (!rope) {
      rope = new Map();
      for (const type of new Set<LayerType>(cfg.layerTypes)) rope.set(type, ropeTables(layerInverseFrequencies(cfg, type), Array.from(positions)));
      if (this.rope.size > 64) this.rope.clear();
      this.rope.set(key, rope);
    }
    return { x, positions, branch, rope };
  }

  private labelRows(x: Float32Array, at: Int32Array): Float32Array {
    const C = this.config.hidden;
    const rows = new Float32Array(at.length * C);
    at.forEach((pos, p) => rows.set(x.subarray(pos * C, (pos + 1) * C), p * C));
    return rows;
  }

  // The decoder's adapter for params as they are now: the stacked pairs refilled in place, and a new adapter
  // over them (it copies them), the last one let go.
  private stacked(params: LoraParams): Stacks {
    if (params.rank !== this.rank || params.targets.join() !== this.targets.join()) throw new Error('step engine: LoRA rank/targets differ from the engine');
    const cfg = this.config, R = params.rank, ls = loraScale(params.alpha, R);
    const byLayer = modulesByLayer(cfg.layers, params);
    if (this.stacks) this.decoder.dropAdapter(this.stacks.adapter);
    let pairs = this.stacks?.pairs;
    let grads = this.stacks?.grads;
    if (pairs && grads) {
      for (let l = 0; l < cfg.layers; l++) for (const g of GROUPS) if (pairs[l][g]) stackGroup(cfg, g, byLayer[l], R, ls, pairs[l][g]);
    } else {
      pairs = byLayer.map((targets) => Object.fromEntries(GROUPS.flatMap((g) => {
        const p = stackGroup(cfg, g, targets, R, ls);
        return p ? [[g, p]] : [];
      })) as Partial<Record<LoraGroup, StackedPair>>);
      grads = pairs.map((p) => Object.fromEntries(GROUPS.flatMap((g) => {
        const pair = p[g];
        return pair ? [[g, { a: new Float32Array(pair.a.length), b: new Float32Array(pair.b.length) }]] : [];
      })) as Partial<Record<LoraGroup, { a: Float32Array; b: Float32Array }>>);
    }
    const none = { a: new Float32Array(0), b: new Float32Array(0), rank: 0 };
    const adapter = this.decoder.adapter(pairs.map((p) => Object.fromEntries(GROUPS.map((g) => [g, p[g] ?? none])) as Record<LoraGroup, StackedPair>));
    return (this.stacks = { adapter, pairs, grads });
  }
}

/**
 * Lets the engine's event loop run between native calls, which hold its thread for up to a second each on the
 * 270M: a cancel or another request from the host is read then, not only once the whole step is done.
 */
function betweenCalls(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Per layer (of `layers`), each target's pair: params' own arrays, or with `grads` (flatTensors order) those. */
function modulesByLayer(layers: number, params: LoraParams, grads?: Float32Array[]): Map<LoraTarget, TargetPair>[] {
  const out = Array.from({ length: layers }, () => new Map<LoraTarget, TargetPair>());
  params.modules.forEach((m, i) => out[m.layer].set(m.target, grads ? { a: grads[2 * i], b: grads[2 * i + 1] } : { a: m.a, b: m.b }));
  return out;
}

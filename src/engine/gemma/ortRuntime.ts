// GemmaRuntime on onnxruntime-node: one session over the whole-model inference graph (inferenceGraph.ts)
// serves prefill, decode and every adapter, so the base weights are in memory once. Per step the
// runtime computes the small inputs (RoPE tables, masks, split sizes), passes the cache's K/V buffers in
// place, and appends the step's new K/V outputs to the cache.

import * as fs from 'node:fs';
import type * as ortTypes from 'onnxruntime-node';
import type { GemmaConfig, LayerType } from '../model/config';
import type { ModelWeights } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import { targetFromModuleName, targetShape, type LoraTarget } from '../train/lora';
import { ExternalDataFile, f32Tensor, ort, type SessionConfig } from '../onnx/session';
import { inferenceGraphWithParams, loraGroupShape, loraInputNames } from './inferenceGraph';
import { EmbeddingReader } from './embeddingReader';
import { LORA_GROUPS, type LoraGroup } from './layer';
import { GemmaKvCache, type SlotSet } from './kvCache';
import { inverseFrequencies, ropeTables } from './rope';
import type { GemmaRuntime, KvCache, LoraAdapter, Precision, RuntimeOptions, StepOptions } from './runtime';

type Feeds = Record<string, ortTypes.Tensor>;

/** Largest number of score entries (heads × new × visible keys) one run may hold; longer inputs are chunked. */
const MAX_SCORES = 8 << 20;
/** Most new tokens per run (longer prompts run in pieces): bounds the activations a run holds. */
const MAX_CHUNK = 512;

export class AdapterShapeError extends Error {}

/** The LM head runs as this many MatMulNBits over vocabulary slices (see ParamsOptions.headParts). */
const HEAD_PARTS = 8;

/**
 * Builds the graph, creates the session, and returns a runtime; `weights` may be dropped afterwards. A
 * WeightSource (load.ts's openWeights) is read a few rows at a time, so the model is never whole in JS.
 */
export async function createGemmaRuntime(weights: ModelWeights | WeightSource,
  opts: RuntimeOptions & {
    headAccuracyLevel?: 0 | 4; headParts?: number; maxChunk?: number; session?: SessionConfig;
    /** false: a graph without LoRA inputs (setAdapter then throws); for measuring what the LoRA branch costs. */
    lora?: boolean;
  }): Promise<GemmaRuntime> {
  const accuracyLevel = opts.accuracyLevel ?? 4;
  const config = weights.config;
  // Weights go to a temporary file as they are converted; ORT maps it, so no second copy is held. The
  // runtime keeps a read descriptor on it for embedding rows (the file itself is unlinked at once).
  const file = new ExternalDataFile();
  let built;
  let fd: number | null = null;
  try {
    built = inferenceGraphWithParams(weights, {
      precision: opts.precision, accuracyLevel, headAccuracyLevel: opts.headAccuracyLevel, headParts: opts.headParts ?? HEAD_PARTS,
      lora: opts.lora ?? true, embeddings: 'vectors',
    }, file);
    fd = file.openReader();
  } catch (e) {
    file.remove();
    throw e;
  }
  const embedding = new EmbeddingReader(built.params.embeddingTable(), fd);
  try {
    const session = await file.open(built.graph, { optimization: 'basic', ...opts.session, threads: opts.threads ?? 2 });
    return new OrtGemmaRuntime(config, opts.precision, session, embedding, fd, opts.maxChunk ?? MAX_CHUNK, opts.lora ?? true);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

class OrtGemmaRuntime implements GemmaRuntime {
  private readonly adapters = new Map<string, Feeds>();
  private readonly baseLora: Feeds;
  private readonly invFreq: Map<LayerType, Float32Array>;
  private disposed = false;

  constructor(readonly config: GemmaConfig, readonly precision: Precision, private readonly session: ortTypes.InferenceSession,
    private readonly embedding: EmbeddingReader, private readonly dataFd: number, private readonly maxChunk: number,
    private readonly hasLora: boolean) {
    const cfg = config;
    this.invFreq = new Map([
      ['sliding', inverseFrequencies(cfg.headDim, cfg.ropeThetaLocal)],
      ['full', inverseFrequencies(cfg.headDim, cfg.ropeThetaGlobal)],
    ]);
    // No adapter = rank 0: the LoRA branch multiplies through an empty inner dimension and adds zeros.
    this.baseLora = {};
    for (let i = 0; i < (hasLora ? cfg.layers : 0); i++) {
      for (const group of Object.keys(LORA_GROUPS) as LoraGroup[]) {
        const [out, inp] = loraGroupShape(cfg, group);
        const n = loraInputNames(i, group);
        this.baseLora[n.a] = f32Tensor(new Float32Array(0), [0, inp]);
        this.baseLora[n.b] = f32Tensor(new Float32Array(0), [out, 0]);
      }
    }
  }

  newCache(): KvCache {
    return new GemmaKvCache(this, this.config);
  }

  async step(cacheIn: KvCache, ids: number[], opts: StepOptions): Promise<Float32Array> {
    if (this.disposed) throw new Error('runtime was disposed');
    const cache = cacheIn as GemmaKvCache;
    if (!(cache instanceof GemmaKvCache) || cache.owner !== this) throw new Error('step: the cache belongs to another runtime');
    if (cache.disposed) throw new Error('step: the cache was disposed');
    const { vocabSize: V, maxPositions } = this.config;
    if (ids.length === 0) throw new Error('step: no token ids');
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`step: token id ${id} is outside the vocabulary (0…${V - 1})`);
    if (cache.length + ids.length > maxPositions) throw new Error(`step: ${cache.length + ids.length} positions exceed the model's ${maxPositions}`);
    let lora = this.baseLora;
    if (opts.adapter !== undefined) {
      const a = this.adapters.get(opts.adapter);
      if (!a) throw new Error(`step: no adapter named "${opts.adapter}"`);
      lora = a;
    }

    const out = new Float32Array(opts.logits === 'all' ? ids.length * V : V);
    let done = 0;
    while (done < ids.length) {
      const T = Math.min(ids.length - done, this.chunkSize(cache));
      const last = done + T === ids.length;
      const index = opts.logits === 'all' ? range(0, T) : last ? [T - 1] : [];
      const logits = await this.run(cache, ids.slice(done, done + T), index, lora);
      if (opts.logits === 'all') out.set(logits, done * V);
      else if (last) out.set(logits);
      done += T;
    }
    return out;
  }

  private chunkSize(cache: GemmaKvCache): number {
    const full = cache.sets.get('full');
    const past = full ? full.filled : 0;
    let T = this.maxChunk;
    while (T > 16 && this.config.heads * T * (past + T) > MAX_SCORES) T >>= 1;
    return T;
  }

  private async run(cache: GemmaKvCache, ids: number[], logitIndex: number[], lora: Feeds): Promise<Float32Array> {
    const cfg = this.config;
    const T = ids.length;
    const start = cache.length;
    const positions = range(start, start + T);
    const feeds: Feeds = { ...lora };
    feeds.inputs_embeds = f32Tensor(this.embedding.rows(ids), [1, T, cfg.hidden]);
    feeds.rope_pos = new ort.Tensor('int64', BigInt64Array.from(range(0, T), (v) => BigInt(v)), [1, T]);
    feeds.logit_index = new ort.Tensor('int64', BigInt64Array.from(logitIndex, (v) => BigInt(v)), [logitIndex.length]);
    for (const [type, set] of cache.sets) {
      const { cos, sin } = ropeTables(this.invFreq.get(type)!, positions);
      feeds[`cos_${type}`] = f32Tensor(cos, [T, cfg.headDim / 2]);
      feeds[`sin_${type}`] = f32Tensor(sin, [T, cfg.headDim / 2]);
      feeds[`mask_${type}`] = f32Tensor(buildMask(set, start, T, type === 'sliding' ? cfg.slidingWindow : Infinity), [1, 1, T, set.filled + T]);
      feeds[`split_${type}`] = new ort.Tensor('int64', BigInt64Array.from([BigInt(set.filled), BigInt(T)]), [2]);
      set.layers.forEach((layer, l) => {
        const dims = [1, cfg.kvHeads, set.filled, cfg.headDim];
        feeds[`past_k_${layer}`] = f32Tensor(set.view('k', l), dims);
        feeds[`past_v_${layer}`] = f32Tensor(set.view('v', l), dims);
      });
    }
    const result = await this.session.run(feeds);
    for (const set of cache.sets.values()) {
      const newK = set.layers.map((layer) => result[`new_k_${layer}`].data as Float32Array);
      const newV = set.layers.map((layer) => result[`new_v_${layer}`].data as Float32Array);
      set.append(start, T, newK, newV);
    }
    cache.length += T;
    return result.logits.data as Float32Array;
  }

  setAdapter(name: string, adapter: LoraAdapter): void {
    const cfg = this.config;
    if (!this.hasLora) throw new AdapterShapeError(`adapter ${name}: this runtime was built without LoRA inputs`);
    const { rank: R, alpha } = adapter;
    if (!Number.isInteger(R) || R < 1 || R > 4096) throw new AdapterShapeError(`adapter ${name}: rank ${R} is not a positive integer`);
    if (!(alpha > 0) || !Number.isFinite(alpha)) throw new AdapterShapeError(`adapter ${name}: alpha ${alpha} is not positive`);
    const scale = alpha / R;
    const byLayer = new Map<number, Map<LoraTarget, { a: Float32Array; b: Float32Array }>>();
    for (const [path, m] of adapter.modules) {
      const match = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(path);
      const target: LoraTarget | undefined = match ? targetFromModuleName(match[3]) : undefined;
      const layer = match ? Number(match[1]) : -1;
      if (!match || !target || layer >= cfg.layers) throw new AdapterShapeError(`adapter ${name}: module ${path} is not a projection of this model`);
      const [out, inp] = targetShape(cfg, target);
      if (m.a.length !== R * inp) throw new AdapterShapeError(`adapter ${name}: ${path} A has ${m.a.length} values, want [${R}, ${inp}]`);
      if (m.b.length !== out * R) throw new AdapterShapeError(`adapter ${name}: ${path} B has ${m.b.length} values, want [${out}, ${R}]`);
      if (!byLayer.has(layer)) byLayer.set(layer, new Map());
      byLayer.get(layer)!.set(target, m);
    }
    const feeds: Feeds = { ...this.baseLora };
    for (const [layer, targets] of byLayer) {
      for (const group of Object.keys(LORA_GROUPS) as LoraGroup[]) {
        const present = LORA_GROUPS[group].filter((t) => targets.has(t));
        if (present.length === 0) continue;
        // A: the present targets' A stacked [n·R, in]; B: [out_group, n·R] block-diagonal, scaled, with
        // zero rows for the group's targets the adapter leaves alone.
        const [outAll, inp] = loraGroupShape(cfg, group);
        const nR = present.length * R;
        const a = new Float32Array(nR * inp);
        const b = new Float32Array(outAll * nR);
        let row = 0;
        for (const t of LORA_GROUPS[group]) {
          const [out] = targetShape(cfg, t);
          const j = present.indexOf(t);
          if (j >= 0) {
            const m = targets.get(t)!;
            a.set(m.a, j * R * inp);
            for (let o = 0; o < out; o++) {
              for (let r = 0; r < R; r++) b[(row + o) * nR + j * R + r] = m.b[o * R + r] * scale;
            }
          }
          row += out;
        }
        const n = loraInputNames(layer, group);
        feeds[n.a] = f32Tensor(a, [nR, inp]);
        feeds[n.b] = f32Tensor(b, [outAll, nR]);
      }
    }
    this.adapters.set(name, feeds);
  }

  removeAdapter(name: string): void {
    this.adapters.delete(name);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.adapters.clear();
    try {
      await this.session.release();
    } finally {
      fs.closeSync(this.dataFd);
    }
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/**
 * Additive mask [T, filled + T]: query t (position start+t) sees a key at position q iff q ≤ start+t and
 * start+t − q < window (HF: a sliding layer's token i sees i−W+1 … i).
 */
function buildMask(set: SlotSet, start: number, T: number, window: number): Float32Array {
  const P = set.filled;
  const S = P + T;
  const mask = new Float32Array(T * S);
  for (let t = 0; t < T; t++) {
    const pos = start + t;
    const row = t * S;
    for (let j = 0; j < P; j++) {
      const d = pos - set.positions[j];
      if (d < 0 || d >= window) mask[row + j] = -Infinity;
    }
    for (let u = 0; u < T; u++) {
      const d = t - u;
      if (d < 0 || d >= window) mask[row + P + u] = -Infinity;
    }
  }
  return mask;
}

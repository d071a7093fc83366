// Next-token choice from one position's logits [V]: greedy, or temperature → top-k → top-p sampling in
// Hugging Face's warper order, with a seeded RNG so a run can be repeated exactly.
//
// V is 262144 for Gemma, so nothing here sorts the whole vocabulary per token: top-k keeps a k-sized
// heap, and top-p sorts only the tokens above a probability threshold that it lowers until they hold
// at least top_p of the mass (one or two passes on a peaked distribution). Logits of -Infinity are
// masked tokens (constrained decoding) and are never chosen.

import { Rng } from '../rng';

export interface SamplingOptions {
  /** 0 is greedy (argmax); otherwise logits are divided by it. */
  temperature: number;
  /** Keep the k most likely tokens; 0 or undefined keeps all. */
  topK?: number;
  /** Keep the smallest most-likely set whose probability reaches top_p; 1 or undefined keeps all. */
  topP?: number;
  /** Seed of the sampling RNG; the same seed and logits give the same tokens. */
  seed?: number;
}

/** Checks sampling options, throwing a one-line reason for a bad value. */
export function validateSampling(o: SamplingOptions): void {
  if (!Number.isFinite(o.temperature) || o.temperature < 0) throw new Error(`temperature must be ≥ 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new Error(`top-k must be an integer ≥ 0, got ${o.topK}`);
  if (o.topP !== undefined && (!Number.isFinite(o.topP) || o.topP <= 0 || o.topP > 1)) throw new Error(`top-p must be in (0, 1], got ${o.topP}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new Error(`seed must be an integer, got ${o.seed}`);
}

/** Index of the largest finite logit (the lowest index on ties); -1 if every logit is -Infinity or NaN. */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** argmax over the ids of `among` only (in any order): the largest logit, the lowest id on ties. */
function argmaxOf(logits: Float32Array, among: Int32Array): number {
  let best = -1;
  let bestV = -Infinity;
  for (const id of among) {
    const v = logits[id];
    if (v > bestV || (v === bestV && v > -Infinity && id < best)) {
      bestV = v;
      best = id;
    }
  }
  return best;
}

/** True when token a ranks before token b: higher logit first, then lower index (a total order). */
function before(logits: Float32Array, a: number, b: number): boolean {
  const va = logits[a];
  const vb = logits[b];
  return va > vb || (va === vb && a < b);
}

/** The k highest-ranked token ids (ranked as `before`), best first, via a k-sized min-heap: O(V log k); only ids of `among` when given. */
export function topKIndices(logits: Float32Array, k: number, among?: Int32Array): Int32Array {
  // heap[0] is the worst of the kept tokens; a token that beats it replaces it.
  const heap = new Int32Array(k);
  let size = 0;
  const worse = (a: number, b: number): boolean => before(logits, b, a);
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(heap[l], heap[m])) m = l;
      if (r < size && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      const t = heap[i];
      heap[i] = heap[m];
      heap[m] = t;
      i = m;
    }
  };
  const n = among ? among.length : logits.length;
  for (let j = 0; j < n; j++) {
    const id = among ? among[j] : j;
    if (!(logits[id] > -Infinity)) continue;
    if (size < k) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(heap[i], heap[p])) break;
        const t = heap[i];
        heap[i] = heap[p];
        heap[p] = t;
        i = p;
      }
    } else if (before(logits, id, heap[0])) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return rankSort(logits, Array.from(heap.subarray(0, size)));
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Token ids ranked as `before` (higher logit first, then lower id). A flat distribution can put most of
 * the vocabulary in the nucleus, so this sorts numbers natively instead of calling a comparator: each
 * id becomes one float64 key, (order-reversed logit bits) · 2^idBits + id, exact below 2^53.
 */
export function rankSort(logits: Float32Array, ids: number[]): Int32Array {
  const idBits = Math.max(1, Math.ceil(Math.log2(logits.length)));
  if (idBits > 21) return Int32Array.from(ids.sort((a, b) => (before(logits, a, b) ? -1 : 1)));
  const scale = 2 ** idBits;
  const keys = new Float64Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    f32[0] = logits[ids[i]];
    const bits = u32[0];
    // Unsigned bits that increase with the float's value; inverted so that larger logits sort first.
    const ordered = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - ordered) * scale + ids[i];
  }
  keys.sort();
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = keys[i] % scale;
  return out;
}

/** A candidate set ranked best first, with each token's probability after temperature (renormalised). */
export interface Candidates {
  ids: Int32Array;
  probs: Float64Array;
}

/**
 * The tokens that survive temperature → top-k → top-p, best first, with their renormalised probabilities.
 * Top-p keeps a token while the mass of the tokens ranked above it is below top_p, which is what
 * transformers' TopPLogitsWarper keeps (it removes tokens whose ascending cumulative mass is ≤ 1 − top_p);
 * as there, top-p sees the distribution already cut to the top k.
 */
export function nucleus(logits: Float32Array, temperature: number, topK = 0, topP = 1, among?: Int32Array): Candidates {
  const invT = 1 / temperature;
  const ranked = topK > 0 && topK < logits.length ? withTotal(logits, topKIndices(logits, topK, among), invT) : aboveMass(logits, invT, topP);
  const { ids, total } = ranked;
  if (ids.length === 0) return { ids, probs: new Float64Array(0) };
  const maxL = logits[ids[0]];
  let kept = ids.length;
  if (topP < 1) {
    let above = 0;
    kept = 0;
    while (kept < ids.length && (kept === 0 || above < topP)) above += Math.exp((logits[ids[kept++]] - maxL) * invT) / total;
  }
  const probs = new Float64Array(kept);
  let s = 0;
  for (let i = 0; i < kept; i++) s += probs[i] = Math.exp((logits[ids[i]] - maxL) * invT);
  for (let i = 0; i < kept; i++) probs[i] /= s;
  return { ids: ids.slice(0, kept), probs };
}

interface Ranked {
  /** Candidate ids, best first. */
  ids: Int32Array;
  /** Σ exp((logit − max)/T) over the distribution the candidates come from. */
  total: number;
}

function withTotal(logits: Float32Array, ids: Int32Array, invT: number): Ranked {
  if (ids.length === 0) return { ids, total: 0 };
  const maxL = logits[ids[0]];
  let total = 0;
  for (const id of ids) total += Math.exp((logits[id] - maxL) * invT);
  return { ids, total };
}

/**
 * Every token that could be inside the top-p set, ranked best first, without sorting the whole
 * vocabulary: the tokens with probability ≥ a threshold are a prefix of the ranking, so once they hold
 * top_p of the mass the nucleus lies within them. With top_p = 1 every finite token is returned.
 */
function aboveMass(logits: Float32Array, invT: number, topP: number): Ranked {
  const V = logits.length;
  const best = argmax(logits);
  if (best < 0) return { ids: new Int32Array(0), total: 0 };
  const maxL = logits[best];
  let total = 0;
  for (let i = 0; i < V; i++) if (logits[i] > -Infinity) total += Math.exp((logits[i] - maxL) * invT);
  // A logit gap g is a probability ratio exp(−g/T): start at e^−4 below the top, widen 8× per pass.
  let gap = topP >= 1 ? Infinity : 4 / invT;
  for (;;) {
    const cut = maxL - gap;
    const picked: number[] = [];
    let mass = 0;
    for (let i = 0; i < V; i++) {
      const v = logits[i];
      if (v >= cut && v > -Infinity) {
        picked.push(i);
        mass += Math.exp((v - maxL) * invT);
      }
    }
    if (mass >= topP * total || gap === Infinity) return { ids: rankSort(logits, picked), total };
    gap = gap > 1e6 ? Infinity : gap * 8;
  }
}

/** Chooses next tokens from logits under fixed options; holds the RNG so a seeded run repeats. */
export class Sampler {
  private readonly rng: Rng;
  /** Scratch for fromAll, kept between tokens to avoid a 2 MB allocation per token. */
  private weights = new Float64Array(0);

  constructor(readonly options: SamplingOptions) {
    validateSampling(options);
    this.rng = new Rng(options.seed ?? 0);
  }

  /** How many of the largest logits a choice reads (greedy 1, top-k k), or undefined when it reads them all (runtime.ts's Choice). */
  reads(vocab: number): number | undefined {
    const o = this.options;
    if (o.temperature === 0) return 1;
    const k = o.topK ?? 0;
    return k > 0 && k < vocab ? k : undefined;
  }

  /**
   * The next token id; throws if every token is masked. `candidates` (KvCache's after a step with this
   * sampler's choice): the only ids that can be among the top `reads()`, so only they are looked at.
   */
  sample(logits: Float32Array, candidates?: Int32Array | null): number {
    const o = this.options;
    const among = candidates && this.reads(logits.length) !== undefined ? candidates : undefined;
    if (o.temperature === 0) {
      const id = among ? argmaxOf(logits, among) : argmax(logits);
      if (id < 0) throw new Error('no token is allowed: every logit is masked');
      return id;
    }
    const topK = o.topK ?? 0;
    const topP = o.topP ?? 1;
    if ((topK === 0 || topK >= logits.length) && topP >= 1) return this.fromAll(logits, o.temperature);
    const c = nucleus(logits, o.temperature, topK, topP, among);
    if (c.ids.length === 0) throw new Error('no token is allowed: every logit is masked');
    const u = this.rng.next();
    let acc = 0;
    for (let i = 0; i < c.ids.length; i++) {
      acc += c.probs[i];
      if (u < acc) return c.ids[i];
    }
    return c.ids[c.ids.length - 1];
  }

  /** Plain softmax sampling over every token: no ranking needed, one exp per token. */
  private fromAll(logits: Float32Array, temperature: number): number {
    const best = argmax(logits);
    if (best < 0) throw new Error('no token is allowed: every logit is masked');
    const maxL = logits[best];
    const invT = 1 / temperature;
    if (this.weights.length < logits.length) this.weights = new Float64Array(logits.length);
    const w = this.weights;
    let total = 0;
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i];
      total += w[i] = v > -Infinity ? Math.exp((v - maxL) * invT) : 0;
    }
    const target = this.rng.next() * total;
    let acc = 0;
    for (let i = 0; i < logits.length; i++) {
      acc += w[i];
      if (target < acc && w[i] > 0) return i;
    }
    return best;
  }
}

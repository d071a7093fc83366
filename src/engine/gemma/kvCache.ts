// One sequence's keys and values, held as plain Float32Arrays between runs (ORT reads them in place as
// inputs; only each run's new positions come back as outputs and are copied in here).
//
// Layers of one type share their slot bookkeeping: every sliding layer holds the same positions, as does
// every full layer. Sliding layers keep at most W-1 past positions in a ring (HF's
// DynamicSlidingWindowLayer keeps the same W-1), so their memory stops growing at the window; full layers
// grow by doubling up to maxPositions. Slot order does not matter to attention (the mask is built from
// each slot's position), which is what lets the ring overwrite its oldest slot in place.
//
// Per layer buffer layout: [Hkv, capacity, D]; with Hkv = 1 the first `filled` slots are one contiguous
// [1, 1, filled, D] tensor, passed without a copy.
//
// A run's new keys and values reach the cache in two ways: written by the caller from ONNX Runtime's
// outputs (append), or by the native layers straight into the slots that plan gave them, the positions
// recorded after the run (record). Buffers come from, and go back to, the runtime's KvArrays: a 512-token
// prompt's cache is 19 MB on the 270M, and left to the garbage collector a few of them sat in memory at once.

import type { GemmaConfig, LayerType } from '../model/config';
import type { KvCache } from './runtime';

const MIN_CAPACITY = 64;

/**
 * Most bytes of released K/V buffers kept for the next cache: one prompt of a few thousand tokens on the
 * 270M. Beyond it buffers are left to the garbage collector.
 */
const KEPT_BYTES = 32 << 20;

/**
 * Released K/V buffers by length, reused by the next caches of the same runtime: a cache that asks for less
 * room than a kept buffer holds gets the larger one (the memory is there already) rather than a new one.
 */
export class KvArrays {
  private readonly free = new Map<number, Float32Array[]>();
  private bytes = 0;

  constructor(private readonly keep = KEPT_BYTES) {}

  /**
   * `count` buffers of one length between `min` and `max` floats: the smallest kept ones that fit, else new
   * ones of `min`. Kept buffers are not cleared: a cache reads only the slots it filled.
   */
  take(count: number, min: number, max: number): Float32Array[] {
    let best = 0;
    for (const [n, list] of this.free) if (n >= min && n <= max && list.length >= count && (best === 0 || n < best)) best = n;
    if (best === 0) return Array.from({ length: count }, () => new Float32Array(min));
    const out = this.free.get(best)!.splice(-count, count);
    this.bytes -= count * best * 4;
    return out;
  }

  /** Hands back a buffer no cache reads any more. */
  give(a: Float32Array): void {
    if (a.length === 0 || this.bytes + a.byteLength > this.keep) return;
    const list = this.free.get(a.length) ?? [];
    list.push(a);
    this.free.set(a.length, list);
    this.bytes += a.byteLength;
  }
}

/** Slots of one layer type: their positions and each layer's K/V buffers. */
export class SlotSet {
  capacity = 0;
  filled = 0;
  /** Next slot to overwrite once the ring is full. */
  private next = 0;
  positions = new Int32Array(0);
  k: Float32Array[];
  v: Float32Array[];

  constructor(readonly layers: number[], readonly maxSlots: number, private readonly kvHeads: number, private readonly headDim: number, private readonly arrays: KvArrays) {
    this.k = layers.map(() => new Float32Array(0));
    this.v = layers.map(() => new Float32Array(0));
  }

  /** Room for `want` slots (at most maxSlots), doubling at least (or more, where a kept buffer is larger), the filled slots moved. */
  reserve(want: number): void {
    want = Math.min(this.maxSlots, want);
    if (want <= this.capacity) return;
    const { kvHeads: Hkv, headDim: D } = this;
    const least = Math.min(this.maxSlots, Math.max(MIN_CAPACITY, this.capacity * 2, want));
    const fresh = this.arrays.take(2 * this.layers.length, Hkv * least * D, Hkv * this.maxSlots * D);
    const cap = fresh[0].length / (Hkv * D);
    const move = (old: Float32Array, i: number) => {
      const next = fresh[i];
      for (let h = 0; h < Hkv; h++) next.set(old.subarray(h * this.capacity * D, (h * this.capacity + this.filled) * D), h * cap * D);
      this.arrays.give(old);
      return next;
    };
    this.k = this.k.map((a, l) => move(a, l));
    this.v = this.v.map((a, l) => move(a, this.layers.length + l));
    const pos = new Int32Array(cap);
    pos.set(this.positions.subarray(0, this.filled));
    this.positions = pos;
    this.capacity = cap;
  }

  /**
   * The slots that the first `count` of a run's T new positions go to (−1 for the others; a ring keeps
   * only the newest maxSlots), room made first. Nothing is recorded: until `record`, the cache reads as before.
   */
  plan(T: number, count: number): Int32Array {
    const slots = new Int32Array(T).fill(-1);
    if (this.maxSlots === 0) return slots;
    const first = Math.max(0, count - this.maxSlots);
    this.reserve(this.filled + (count - first));
    let filled = this.filled, next = this.next;
    for (let t = first; t < count; t++) {
      if (filled < this.capacity) slots[t] = filled++;
      else {
        slots[t] = next;
        next = (next + 1) % this.capacity;
      }
    }
    return slots;
  }

  /** Takes the planned slots as holding positions start + t, their keys and values written. */
  record(start: number, slots: Int32Array): void {
    let kept = 0;
    for (let t = 0; t < slots.length; t++) {
      if (slots[t] < 0) continue;
      this.positions[slots[t]] = start + t;
      kept++;
    }
    // As plan gave them out: free slots first, then the ring's oldest from `next` on.
    const free = Math.min(kept, this.capacity - this.filled);
    this.filled += free;
    if (kept > free) this.next = (this.next + kept - free) % this.capacity;
  }

  /**
   * Stores the last keys/values of a run: newK[l] is layer l's [1, Hkv, T, D] output for positions
   * start…start+T-1, of which the first `count` are kept. A ring keeps only the newest
   * maxSlots of them.
   */
  append(start: number, T: number, newK: Float32Array[], newV: Float32Array[], count: number): void {
    const { kvHeads: Hkv, headDim: D } = this;
    const slots = this.plan(T, count);
    for (let t = 0; t < T; t++) {
      const slot = slots[t];
      if (slot < 0) continue;
      for (let l = 0; l < this.layers.length; l++) {
        for (let h = 0; h < Hkv; h++) {
          const src = (h * T + t) * D;
          const dst = (h * this.capacity + slot) * D;
          this.k[l].set(newK[l].subarray(src, src + D), dst);
          this.v[l].set(newV[l].subarray(src, src + D), dst);
        }
      }
    }
    this.record(start, slots);
  }

  /** Layer l's keys or values of the filled slots as one [1, Hkv, filled, D] array (no copy when Hkv = 1). */
  view(which: 'k' | 'v', l: number): Float32Array {
    const buf = which === 'k' ? this.k[l] : this.v[l];
    const { kvHeads: Hkv, headDim: D, filled, capacity } = this;
    if (Hkv === 1 || filled === capacity) return buf.subarray(0, Hkv * filled * D);
    const out = new Float32Array(Hkv * filled * D);
    for (let h = 0; h < Hkv; h++) out.set(buf.subarray(h * capacity * D, (h * capacity + filled) * D), h * filled * D);
    return out;
  }

  /**
   * A copy that holds only the filled slots (at least MIN_CAPACITY; a ring that wrapped keeps its order, so
   * its whole capacity): a kept prefix takes no more than it needs, and a fork grows as it is extended.
   */
  clone(): SlotSet {
    const c = new SlotSet(this.layers, this.maxSlots, this.kvHeads, this.headDim, this.arrays);
    const { kvHeads: Hkv, headDim: D, filled } = this;
    const cap = filled < this.capacity ? Math.min(this.capacity, Math.max(MIN_CAPACITY, filled)) : this.capacity;
    const fresh = this.arrays.take(2 * this.layers.length, Hkv * cap * D, Hkv * cap * D);
    const copy = (a: Float32Array, i: number) => {
      for (let h = 0; h < Hkv; h++) fresh[i].set(a.subarray(h * this.capacity * D, (h * this.capacity + filled) * D), h * cap * D);
      return fresh[i];
    };
    c.k = this.k.map((a, l) => copy(a, l));
    c.v = this.v.map((a, l) => copy(a, this.layers.length + l));
    c.capacity = cap;
    c.filled = filled;
    c.next = this.next;
    c.positions = new Int32Array(cap);
    c.positions.set(this.positions.subarray(0, filled));
    return c;
  }

  /** Hands the buffers back; the set holds none after. */
  release(): void {
    for (const a of [...this.k, ...this.v]) this.arrays.give(a);
    this.k = [];
    this.v = [];
  }

  /** Bytes held by the K/V buffers. */
  bytes(): number {
    return this.k.reduce((s, a) => s + a.byteLength, 0) * 2;
  }
}

export class GemmaKvCache implements KvCache {
  length = 0;
  disposed = false;
  readonly sets: Map<LayerType, SlotSet>;
  /**
   * Where a step with a choice writes its logits [V], kept for the next one (runtime.ts's Choice: valid until
   * the next step on this cache): a fresh 1 MB array a token cost its zeroing and page faults.
   */
  choiceLogits: Float32Array | null = null;
  /** Room for the ids a choice lists (nativeHead.ts's CHOICE_IDS), kept as choiceLogits is. */
  choiceIds: Int32Array | null = null;
  /** KvCache's candidates: set by every step. */
  candidates: Int32Array | null = null;

  /** A fresh cache for cfg with buffers from `arrays`, or (fork) one over existing slot sets. */
  constructor(readonly owner: object, from: GemmaConfig | Map<LayerType, SlotSet>, arrays = new KvArrays(0)) {
    if (from instanceof Map) {
      this.sets = from;
      return;
    }
    const cfg = from;
    this.sets = new Map();
    for (const type of new Set(cfg.layerTypes)) {
      const layers = cfg.layerTypes.flatMap((t, i) => (t === type ? [i] : []));
      const max = type === 'sliding' ? cfg.slidingWindow - 1 : cfg.maxPositions;
      this.sets.set(type, new SlotSet(layers, max, cfg.kvHeads, cfg.headDim, arrays));
    }
  }

  /** Room for n more positions in every slot set, made at once rather than doubling run by run. */
  reserve(n: number): void {
    for (const s of this.sets.values()) s.reserve(s.filled + n);
  }

  /** plan() of every slot set for a run of T new positions of which the first `count` are kept. */
  plan(T: number, count: number): Map<LayerType, Int32Array> {
    return new Map([...this.sets].map(([type, s]) => [type, s.plan(T, count)]));
  }

  /** record() of a run's planned slots (at positions start…), and the cache's length grown by `count`. */
  record(start: number, slots: Map<LayerType, Int32Array>, count: number): void {
    for (const [type, s] of this.sets) s.record(start, slots.get(type)!);
    this.length += count;
  }

  fork(): GemmaKvCache {
    if (this.disposed) throw new Error('KvCache.fork: the cache was disposed');
    const c = new GemmaKvCache(this.owner, new Map([...this.sets].map(([t, s]) => [t, s.clone()])));
    c.length = this.length;
    return c;
  }

  dispose(): void {
    this.disposed = true;
    this.choiceLogits = null;
    this.choiceIds = null;
    this.candidates = null;
    for (const s of this.sets.values()) s.release();
  }

  /** Bytes held by all K/V buffers (for tests and stats). */
  bytes(): number {
    let n = 0;
    for (const s of this.sets.values()) n += s.bytes();
    return n;
  }
}

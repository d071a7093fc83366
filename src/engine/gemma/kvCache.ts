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

import type { GemmaConfig, LayerType } from '../model/config';
import type { KvCache } from './runtime';

const MIN_CAPACITY = 64;

/** Slots of one layer type: their positions and each layer's K/V buffers. */
export class SlotSet {
  capacity = 0;
  filled = 0;
  /** Next slot to overwrite once the ring is full. */
  private next = 0;
  positions = new Int32Array(0);
  k: Float32Array[];
  v: Float32Array[];

  constructor(readonly layers: number[], readonly maxSlots: number, private readonly kvHeads: number, private readonly headDim: number) {
    this.k = layers.map(() => new Float32Array(0));
    this.v = layers.map(() => new Float32Array(0));
  }

  private grow(want: number): void {
    const cap = Math.min(this.maxSlots, Math.max(MIN_CAPACITY, this.capacity * 2, want));
    if (cap <= this.capacity) return;
    const { kvHeads: Hkv, headDim: D } = this;
    const move = (old: Float32Array) => {
      const next = new Float32Array(Hkv * cap * D);
      for (let h = 0; h < Hkv; h++) next.set(old.subarray(h * this.capacity * D, (h * this.capacity + this.filled) * D), h * cap * D);
      return next;
    };
    this.k = this.k.map(move);
    this.v = this.v.map(move);
    const pos = new Int32Array(cap);
    pos.set(this.positions.subarray(0, this.filled));
    this.positions = pos;
    this.capacity = cap;
  }

  /**
   * Stores the last keys/values of a run: newK[l] is layer l's [1, Hkv, T, D] output for positions
   * start…start+T-1, of which the first `count` are kept. A ring keeps only the newest
   * maxSlots of them.
   */
  append(start: number, T: number, newK: Float32Array[], newV: Float32Array[], count: number): void {
    if (this.maxSlots === 0) return;
    const { kvHeads: Hkv, headDim: D } = this;
    const first = Math.max(0, count - this.maxSlots);
    if (this.filled + (count - first) > this.capacity) this.grow(this.filled + (count - first));
    for (let t = first; t < count; t++) {
      let slot: number;
      if (this.filled < this.capacity) {
        slot = this.filled++;
      } else {
        slot = this.next;
        this.next = (this.next + 1) % this.capacity;
      }
      this.positions[slot] = start + t;
      for (let l = 0; l < this.layers.length; l++) {
        for (let h = 0; h < Hkv; h++) {
          const src = (h * T + t) * D;
          const dst = (h * this.capacity + slot) * D;
          this.k[l].set(newK[l].subarray(src, src + D), dst);
          this.v[l].set(newV[l].subarray(src, src + D), dst);
        }
      }
    }
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

  clone(): SlotSet {
    const c = new SlotSet(this.layers, this.maxSlots, this.kvHeads, this.headDim);
    c.capacity = this.capacity;
    c.filled = this.filled;
    c.next = this.next;
    c.positions = this.positions.slice();
    c.k = this.k.map((a) => a.slice());
    c.v = this.v.map((a) => a.slice());
    return c;
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

  /** A fresh cache for cfg, or (fork) one over existing slot sets. */
  constructor(readonly owner: object, from: GemmaConfig | Map<LayerType, SlotSet>) {
    if (from instanceof Map) {
      this.sets = from;
      return;
    }
    const cfg = from;
    this.sets = new Map();
    for (const type of new Set(cfg.layerTypes)) {
      const layers = cfg.layerTypes.flatMap((t, i) => (t === type ? [i] : []));
      const max = type === 'sliding' ? cfg.slidingWindow - 1 : cfg.maxPositions;
      this.sets.set(type, new SlotSet(layers, max, cfg.kvHeads, cfg.headDim));
    }
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
    for (const s of this.sets.values()) {
      s.k = [];
      s.v = [];
    }
  }

  /** Bytes held by all K/V buffers (for tests and stats). */
  bytes(): number {
    let n = 0;
    for (const s of this.sets.values()) n += s.bytes();
    return n;
  }
}

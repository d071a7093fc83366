// Model weights as graph initializers, per precision and per weight's storage (weights.ts):
//   f32 precision, or a float32-stored weight: FusedMatMul(x, W[out,in], transB), no transposed copy.
//   q4, a block-quantised weight: MatMulNBits in its type's exact layout (quantLayout.ts: 4 or 8 bits, blocks
//        of 16 or 32, a zero-point input where the type's zero point is not MatMulNBits' default, and for
//        types with mins the small correction blocksum(x)·Mᵀ subtracted). The tied embedding/LM head is one
//        such table read by GatherBlockQuantized (lookup) and MatMulNBits (head), see embedQuantized.
// Block-quantised weights are dequantised here for f32 precision; nothing is ever requantised, except the
// opt-in 4-bit head of a Q8_0 embedding (headBits 4).
//
// Weights are read from a WeightSource a few rows at a time and converted straight into graph blobs
// (with a streaming graph: the external data file), so neither the source model nor the converted
// weights are ever held whole in JS.

import type { Blob, Graph } from '../onnx/graph';
import type { Value } from '../onnx/nodes';
import * as op from '../onnx/ops';
import type { NBitsSpec } from '../onnx/ops';
import type { NbitsOperand } from '../onnx/nbitsVjp';
import type { GraphTarget } from '../onnx/lowering';
import type { GemmaConfig } from '../model/config';
import { EMBED_NAME, type ModelWeights, type WeightData } from '../model/weights';
import { asWeightSource, rowCount, storageRowBytes, type WeightSource } from '../model/weightSource';
import { q8_0ToQ4MatMulNBits, type BlockQuantized } from '../model/quant';
import { blocksToNbits, dequantizeBlocks, quantType } from '../model/quantTypes';
import { layoutKey, type NbitsLayout } from '../model/quantLayout';
import type { Precision } from './runtime';

export type LinearOperand =
  | { kind: 'f32'; w: Value }
  | { kind: 'nbits'; b: Value; scales: Value; zeroPoints: Value | null; mins: Value | null; spec: NBitsSpec };

/** Where the embedding table's bytes are, for reading rows outside the graph (embeddingReader.ts). */
export type EmbeddingTable =
  | { kind: 'nbits'; layout: NbitsLayout; columns: number; data: PlacedBytes; scales: PlacedBytes; mins: PlacedBytes | null }
  | { kind: 'f32'; columns: number; data: PlacedBytes };

/** Where a blob's bytes live (a table read back from a cached data file has only that). */
export type PlacedBytes = Pick<Blob, 'placement'>;

/** Q4_0's layout, which the opt-in 4-bit head of a Q8_0 embedding takes. */
const Q4_0_LAYOUT = quantType('q4_0').layout;

export interface ParamsOptions {
  precision: Precision;
  /** MatMulNBits accuracy_level for q4: 0 exact float, 4 int8 activations. */
  accuracyLevel: 0 | 4;
  /** The LM head's level when it should differ (its int8 prepacked form is ~1.8× the 4-bit bytes). */
  headAccuracyLevel?: 0 | 4;
  /**
   * q4: split the LM head into about this many MatMulNBits over consecutive vocabulary rows, joined by a
   * Concat (default 1: one node). ORT prepacks each part and drops its unpacked bytes before the next,
   * so loading peaks at one part's bytes above the packed head instead of the whole head's.
   */
  headParts?: number;
  /**
   * q4 with an 8-bit (Q8_0) embedding: 4 runs the LM head on a Q4_0 requantisation of it (about 40% less
   * memory and time for the head; logits move slightly), while embedding lookups keep the exact rows.
   * Unset or 8: the head as stored (the runtime default too, see OrtRuntimeOptions.headBits).
   */
  headBits?: 4 | 8;
  /**
   * q4: embedding lookups read the LM head's own initializers instead of their own view of the same bytes.
   * Set it where the graph keeps the head's unpacked bytes anyway (training dequantises them in the
   * backward): ORT maps each initializer separately, so two views of one table are two resident copies
   * (−140 MB peak RSS in training on the 270M shape). Ignored when the head is a requantisation.
   */
  lookupSharesHead?: boolean;
  /** Where the graph will run (onnx/lowering.ts rewrites what WebGPU lacks); default 'cpu'. */
  target?: GraphTarget;
}

/** MatMulNBits operand blobs of a weight (B data, scales, and mins for types that have them). */
interface NbitsTable {
  data: Blob;
  scales: Blob;
  mins: Blob | null;
  layout: NbitsLayout;
}

/** Source bytes converted per step when streaming a weight. */
const CHUNK_BYTES = 4 << 20;
/** Head parts hold a multiple of this many rows, so every part's bytes start page-aligned in the file. */
const PART_ROW_MULTIPLE = 1024;

/** n values of a weight's stored data as float32 (dequantised when block-quantised). */
export function f32Of(name: string, d: WeightData, n: number): Float32Array {
  return d.type === 'f32' ? d.data : dequantizeBlocks(d.type, d.data, n);
}

/** Block-quantised operands of rows [N, K] exactly as stored (a float32 weight never gets here). */
function blockQuantized(name: string, d: WeightData, n: number, k: number): BlockQuantized {
  if (d.type === 'f32') throw new Error(`weight ${name}: a float32 weight has no MatMulNBits form`);
  return blocksToNbits(d.type, d.data, n, k);
}

/** x [.., K] summed over each block of `blockSize` inputs: [.., K/blockSize] (a MatMul with ones, which autodiff knows). */
function blockSums(g: Graph, x: Value, K: number, blockSize: number): Value {
  if (!x.shape) throw new Error(`block sums of ${x.name}: its shape is unknown`);
  const lead = x.shape.slice(0, -1);
  const blocks = op.reshape(g, x, [...lead, K / blockSize, blockSize]);
  const sums = op.matmul(g, blocks, g.constF32(new Array(blockSize).fill(1), [blockSize, 1]));
  return op.reshape(g, sums, [...lead, K / blockSize]);
}

/** The part a type's mins take off x·Wᵀ: blocksum(x)·Mᵀ, M [N, K/blockSize] (quantLayout.ts). */
export function minsCorrection(g: Graph, x: Value, mins: Value, K: number, blockSize: number): Value {
  return op.fusedMatMul(g, blockSums(g, x, K, blockSize), mins, { transB: true });
}

function asBytes(a: Float32Array | Uint8Array): Uint8Array {
  return a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Creates initializers on demand, once per weight. */
export class GraphParams {
  readonly config: GemmaConfig;
  private readonly src: WeightSource;
  private readonly cache = new Map<string, Value>();
  private readonly linears = new Map<string, LinearOperand>();
  private embedQ: { heads: { b: Value; scales: Value; zeroPoints: Value | null; mins: Value | null; rows: number }[]; head: NbitsTable; requant: boolean } | null = null;
  private lookupNbits: NbitsTable | null = null;
  private lookupQ: { layout: NbitsLayout; lookup: Value; scales3d: Value; zeroPoints: Value | null; mins: Value | null } | null = null;
  /** Every blob made, by weight key, so that another graph can reuse them (see `reuse`). */
  private readonly blobs = new Map<string, Blob>();

  /**
   * `reuse`: the params of another graph over the same weights and sink; blobs it already wrote are viewed,
   * not converted again (two graph variants, one external data file).
   */
  constructor(private readonly g: Graph, weights: ModelWeights | WeightSource, readonly opts: ParamsOptions,
    private readonly reuse?: GraphParams) {
    this.src = asWeightSource(weights);
    this.config = this.src.config;
  }

  /** The blob stored under `key`: adopted from `reuse` when it has it, else made and filled by `fill`. */
  private blobFor(key: string, byteLength: number, fill: (b: Blob) => void): Blob {
    const old = this.reuse?.blobs.get(key);
    let b: Blob;
    if (old) {
      if (old.byteLength !== byteLength) throw new Error(`weight ${key}: reused blob has ${old.byteLength} bytes, want ${byteLength}`);
      b = this.g.adoptBlob(old);
    } else {
      b = this.g.blob(byteLength);
      fill(b);
    }
    this.blobs.set(key, b);
    return b;
  }

  /** The MatMulNBits layout a weight runs in, or null when it runs in float32 (f32 precision or float storage). */
  layoutOf(name: string): NbitsLayout | null {
    if (this.opts.precision === 'f32') return null;
    const storage = this.src.storage(name);
    return storage === 'f32' ? null : quantType(storage).layout;
  }

  /** Visits the rows of a weight in chunks of about CHUNK_BYTES of its storage. */
  private forEachChunk(name: string, visit: (rows: number, data: WeightData) => void): void {
    const shape = this.src.shape(name);
    const total = rowCount(shape);
    const rowBytes = storageRowBytes(this.src.storage(name), shape[shape.length - 1] ?? 1);
    const per = Math.max(1, Math.floor(CHUNK_BYTES / Math.max(1, rowBytes)));
    for (let r = 0; r < total; r += per) {
      const n = Math.min(per, total - r);
      visit(n, this.src.rows(name, r, n));
    }
  }

  /** The weights `names` (all [*, K]) stacked by rows as one float32 initializer. */
  private f32Stacked(key: string, names: string[]): Value {
    const shapes = names.map((n) => this.src.shape(n));
    const width = shapes[0][shapes[0].length - 1] ?? 1;
    const rows = shapes.reduce((s, sh) => s + rowCount(sh), 0);
    const dims = names.length === 1 ? shapes[0] : [rows, width];
    const blob = this.blobFor(`f32:${key}`, rows * width * 4, (b) => {
      for (const name of names) this.forEachChunk(name, (n, d) => b.write(asBytes(f32Of(name, d, n * width))));
    });
    return this.g.initializerIn(key, 'float32', dims, blob);
  }

  /**
   * The weights `names` (all [*, K], one layout) stacked by rows as MatMulNBits' B, scales and (for types
   * with mins) mins blobs; with `to4`, a Q8_0 weight requantised to Q4_0 (ggml's rule).
   */
  private nbitsStacked(names: string[], to4 = false): NbitsTable & { N: number; K: number } {
    const K = this.src.shape(names[0])[1];
    const N = names.reduce((s, n) => s + this.src.shape(n)[0], 0);
    const layout = to4 ? Q4_0_LAYOUT : this.layoutOf(names[0]);
    if (!layout) throw new Error(`weight ${names[0]}: runs in float32, not MatMulNBits`);
    if (names.some((n) => this.src.shape(n)[1] !== K)) throw new Error(`fused linear ${names.join('|')}: input sizes differ`);
    if (!to4 && names.some((n) => { const l = this.layoutOf(n); return !l || layoutKey(l) !== layoutKey(layout); })) {
      throw new Error(`fused linear ${names.join('|')}: weights of different storage`);
    }
    if (K % layout.blockSize !== 0) throw new Error(`weight ${names[0]}: ${K} inputs is not a multiple of the block size ${layout.blockSize}`);
    const key = names.join('|') + (to4 ? ':q4' : '');
    const blocks = N * (K / layout.blockSize);
    const dataBytes = (N * K * layout.bits) / 8;
    const reused = this.reuse?.blobs.has(`nbits:${key}:data`);
    let scalesFill: Blob | null = null;
    let minsFill: Blob | null = null;
    // Data, scales and mins come from the same converted chunks: fill all while visiting the rows once.
    const data = this.blobFor(`nbits:${key}:data`, dataBytes, (d) => {
      scalesFill = this.g.blob(blocks * 4);
      if (layout.hasMins) minsFill = this.g.blob(blocks * 4);
      for (const name of names) {
        this.forEachChunk(name, (n, w) => {
          // `to4` is asked only of a Q8_0 table (embedQuantized).
          const bq = to4 && w.type === 'q8_0' ? q8_0ToQ4MatMulNBits(w.data, n, K) : blockQuantized(name, w, n, K);
          d.write(bq.data);
          scalesFill!.write(asBytes(bq.scales));
          if (minsFill) minsFill.write(asBytes(bq.mins!));
        });
      }
    });
    const adopt = (part: string, fresh: Blob | null, bytes: number): Blob => {
      const b = reused ? this.blobFor(`nbits:${key}:${part}`, bytes, () => undefined) : fresh!;
      this.blobs.set(`nbits:${key}:${part}`, b);
      return b;
    };
    const scales = adopt('scales', scalesFill, blocks * 4);
    const mins = layout.hasMins ? adopt('mins', minsFill, blocks * 4) : null;
    return { data, scales, mins, layout, N, K };
  }

  /**
   * MatMulNBits' zero_points for `rows` rows of K inputs when the layout's zero point is not the default
   * (2^(bits−1)): uint8, one per block (4 bits: two per byte), or null.
   */
  private zeroPoints(key: string, layout: NbitsLayout, rows: number, K: number): Value | null {
    if (layout.zeroPoint === 2 ** (layout.bits - 1)) return null;
    const blocks = K / layout.blockSize;
    const perRow = layout.bits === 4 ? Math.ceil(blocks / 2) : blocks;
    const byte = layout.bits === 4 ? layout.zeroPoint | (layout.zeroPoint << 4) : layout.zeroPoint;
    const blob = this.blobFor(`zp:${key}`, rows * perRow, (b) => b.write(new Uint8Array(rows * perRow).fill(byte)));
    return this.g.initializerIn(`${key}.zp`, 'uint8', [rows * perRow], blob);
  }

  /** A norm's (1+w) multiplier, float32 [n] (or any weight as float32). */
  norm(name: string): Value {
    let v = this.cache.get(name);
    if (!v) {
      v = this.f32Stacked(name, [name]);
      this.cache.set(name, v);
    }
    return v;
  }

  /** A linear layer's weight [out, in] in this precision's form. */
  linear(name: string): LinearOperand {
    return this.fusedLinear([name]);
  }

  /**
   * Several linears that read the same input, as one operand whose output rows are theirs concatenated
   * (q|k|v, gate|up): one larger MatMulNBits instead of several small ones. Each output element is the
   * same dot product as before, so the result is unchanged.
   */
  fusedLinear(names: string[]): LinearOperand {
    const key = names.join('|');
    let l = this.linears.get(key);
    if (l) return l;
    const single = names.length === 1;
    if (this.layoutOf(names[0]) === null) {
      l = { kind: 'f32', w: this.f32Stacked(single ? key : `${key}.weight`, names) };
    } else {
      const t = this.nbitsStacked(names);
      const { N, K, layout } = t;
      const blocks = K / layout.blockSize;
      l = {
        kind: 'nbits',
        b: this.g.initializerIn(`${key}.q`, 'uint8', [N, blocks, (layout.blockSize * layout.bits) / 8], t.data),
        scales: this.g.initializerIn(`${key}.scales`, 'float32', [N, blocks], t.scales),
        zeroPoints: this.zeroPoints(key, layout, N, K),
        mins: t.mins ? this.g.initializerIn(`${key}.mins`, 'float32', [N, blocks], t.mins) : null,
        spec: { K, N, bits: layout.bits, blockSize: layout.blockSize, accuracyLevel: this.opts.accuracyLevel },
      };
    }
    this.linears.set(key, l);
    return l;
  }

  /** Whether these weights can share one operand (all float32, or all of one MatMulNBits layout). */
  canFuse(names: string[]): boolean {
    return new Set(names.map((n) => { const l = this.layoutOf(n); return l ? layoutKey(l) : 'f32'; })).size === 1;
  }

  private embedQuantized() {
    if (!this.embedQ) {
      const [V, C] = this.src.shape(EMBED_NAME);
      // The head may run a 4-bit requantisation of an 8-bit table (not exact); lookups keep the stored rows.
      const requant = this.opts.headBits === 4 && this.src.storage(EMBED_NAME) === 'q8_0';
      const head = this.nbitsStacked([EMBED_NAME], requant);
      const { layout } = head;
      const blocks = C / layout.blockSize;
      const rowBytes = (C * layout.bits) / 8;
      const parts = Math.max(1, Math.min(this.opts.headParts ?? 1, Math.floor(V / PART_ROW_MULTIPLE)));
      const partRows = parts === 1 ? V : Math.ceil(V / parts / PART_ROW_MULTIPLE) * PART_ROW_MULTIPLE;
      const heads: { b: Value; scales: Value; zeroPoints: Value | null; mins: Value | null; rows: number }[] = [];
      for (let r0 = 0, i = 0; r0 < V; r0 += partRows, i++) {
        const rows = Math.min(partRows, V - r0);
        const suffix = parts === 1 ? '' : `.part${i}`;
        heads.push({
          b: this.g.initializerIn(`${EMBED_NAME}.q${suffix}`, 'uint8', [rows, blocks, (layout.blockSize * layout.bits) / 8], head.data, r0 * rowBytes),
          scales: this.g.initializerIn(`${EMBED_NAME}.scales${suffix}`, 'float32', [rows, blocks], head.scales, r0 * blocks * 4),
          zeroPoints: this.zeroPoints(`${EMBED_NAME}${suffix}`, layout, rows, C),
          mins: head.mins ? this.g.initializerIn(`${EMBED_NAME}.mins${suffix}`, 'float32', [rows, blocks], head.mins, r0 * blocks * 4) : null,
          rows,
        });
      }
      this.embedQ = { heads, head, requant };
    }
    return this.embedQ;
  }

  /** The table in MatMulNBits layout that lookups read: the head's own, unless the head is a requantisation. */
  private lookupTable(): NbitsTable {
    const e = this.embedQuantized();
    if (!e.requant) return e.head;
    this.lookupNbits ??= this.nbitsStacked([EMBED_NAME]);
    return this.lookupNbits;
  }

  /**
   * The lookup's own initializers over the table's bytes: the head's MatMulNBits prepacks its copy (after
   * which ORT drops it), while the lookup's stays file-mapped and only the rows it gathers become resident.
   */
  private lookupQuantized() {
    if (!this.lookupQ) {
      const t = this.lookupTable();
      const [V, C] = this.src.shape(EMBED_NAME);
      const { layout } = t;
      const blocks = C / layout.blockSize;
      const e = this.embedQuantized();
      // GatherBlockQuantized takes zero points shaped as its scales [V, blocks, 1], 4-bit ones packed along the
      // last axis (one block there: a byte each).
      let zp3d: Value | null = null;
      if (layout.zeroPoint !== 2 ** (layout.bits - 1)) {
        const byte = layout.bits === 4 ? layout.zeroPoint | (layout.zeroPoint << 4) : layout.zeroPoint;
        const blob = this.blobFor(`zp3d:${EMBED_NAME}`, V * blocks, (b) => b.write(new Uint8Array(V * blocks).fill(byte)));
        zp3d = this.g.initializerIn(`${EMBED_NAME}.lookupZp`, 'uint8', [V, blocks, 1], blob);
      }
      if (this.opts.lookupSharesHead && !e.requant && e.heads.length === 1) {
        const h = e.heads[0];
        this.lookupQ = { layout, lookup: h.b, scales3d: op.reshape(this.g, h.scales, [V, blocks, 1]), zeroPoints: zp3d, mins: h.mins };
        return this.lookupQ;
      }
      this.lookupQ = {
        layout,
        lookup: this.g.initializerIn(`${EMBED_NAME}.lookup`, 'uint8', [V, blocks, (layout.blockSize * layout.bits) / 8], t.data),
        // GatherBlockQuantized wants scales of the data's rank.
        scales3d: this.g.initializerIn(`${EMBED_NAME}.scales3d`, 'float32', [V, blocks, 1], t.scales),
        zeroPoints: zp3d,
        mins: t.mins ? this.g.initializerIn(`${EMBED_NAME}.lookupMins`, 'float32', [V, blocks], t.mins) : null,
      };
    }
    return this.lookupQ;
  }

  /** E[ids] · sqrt(C), the scale rounded to the weight dtype (float32) as HF does. ids int64 [B, T] → [B, T, C]. */
  embed(ids: Value): Value {
    const { hidden: C } = this.config;
    let x: Value;
    if (this.layoutOf(EMBED_NAME) === null) {
      x = op.gather(this.g, this.norm(EMBED_NAME), ids, 0);
    } else {
      const l = this.lookupQuantized();
      const bs = l.layout.blockSize;
      const lead = ids.shape ?? ['B', 'T'];
      let blocks = op.gatherBlockQuantized(this.g, l.lookup, ids, l.scales3d, { bits: l.layout.bits, blockSize: bs, quantizeAxis: 2, columns: C }, l.zeroPoints);
      if (l.mins) {
        // w = s·(q − zp) − min: the gathered rows' mins, one per block, off every value of the block.
        const m = op.gather(this.g, l.mins, ids, 0); // [.., C/bs]
        blocks = op.sub(this.g, blocks, op.reshape(this.g, m, [...lead, C / bs, 1]));
      }
      x = op.reshape(this.g, blocks, [...lead, C]);
    }
    return this.scaleEmbedding(x);
  }

  /** Embedding rows (as embed gathers them, before scaling) times embeddingScale. */
  scaleEmbedding(rows: Value): Value {
    return op.mul(this.g, rows, this.g.constF32(embeddingScale(this.config)));
  }

  /** Where the embedding table's bytes are (the head's operand), so rows can be read outside the graph. */
  embeddingTable(): EmbeddingTable {
    const C = this.config.hidden;
    if (this.layoutOf(EMBED_NAME) === null) {
      this.norm(EMBED_NAME);
      return { kind: 'f32', columns: C, data: this.blobs.get(`f32:${EMBED_NAME}`)! };
    }
    // A requantised head's 4-bit bytes are not the lookup's values: rows come from the 8-bit table. (Reading
    // the stored Q8_0 rows instead saves ~1 s of load but measured ~30 MB more peak RSS.)
    const t = this.lookupTable();
    return { kind: 'nbits', layout: t.layout, columns: C, data: t.data, scales: t.scales, mins: t.mins };
  }

  /** The head's operand, for its backward (lmHead.ts): the float32 table, or its single MatMulNBits part and the table's mins. */
  headOperand(): { kind: 'f32'; w: Value } | { kind: 'nbits'; w: NbitsOperand; mins: Value | null } {
    if (this.layoutOf(EMBED_NAME) === null) return { kind: 'f32', w: this.norm(EMBED_NAME) };
    const e = this.embedQuantized();
    if (e.heads.length !== 1) throw new Error('headOperand: the head is split into parts');
    const [V, C] = this.src.shape(EMBED_NAME);
    const h = e.heads[0];
    return { kind: 'nbits', w: { b: h.b, scales: h.scales, N: V, K: C, codes: e.head.layout }, mins: h.mins };
  }

  /** Tied LM head: h [.., C] → logits [.., V] = h·Eᵀ. */
  head(h: Value): Value {
    if (this.layoutOf(EMBED_NAME) === null) {
      return op.fusedMatMul(this.g, h, this.norm(EMBED_NAME), { transB: true });
    }
    const e = this.embedQuantized();
    const { hidden: C } = this.config;
    const { layout } = e.head;
    const level = this.opts.headAccuracyLevel ?? this.opts.accuracyLevel;
    const sums = layout.hasMins ? blockSums(this.g, h, C, layout.blockSize) : null;
    const parts = e.heads.map((p) => {
      const y = op.matMulNBits(this.g, h, p.b, p.scales, { K: C, N: p.rows, bits: layout.bits, blockSize: layout.blockSize, accuracyLevel: level }, p.zeroPoints);
      return sums && p.mins ? op.sub(this.g, y, op.fusedMatMul(this.g, sums, p.mins, { transB: true })) : y;
    });
    return parts.length === 1 ? parts[0] : op.concat(this.g, parts, -1);
  }
}

/** Gemma's embedding scale: √C rounded to float32 (what every embedding row is multiplied by). */
export function embeddingScale(cfg: GemmaConfig): number {
  return Math.fround(Math.sqrt(cfg.hidden));
}

/** x · Wᵀ for a linear operand. */
export function applyLinear(g: Graph, x: Value, l: LinearOperand): Value {
  if (l.kind === 'f32') return op.fusedMatMul(g, x, l.w, { transB: true });
  const y = op.matMulNBits(g, x, l.b, l.scales, l.spec, l.zeroPoints);
  return l.mins ? op.sub(g, y, minsCorrection(g, x, l.mins, l.spec.K, l.spec.blockSize)) : y;
}

// Model weights as graph initializers, per precision:
//   f32: every weight float32; linears as FusedMatMul(x, W[out,in], transB) so no transposed copy exists.
//   q4:  linears through MatMulNBits (bits 4, block 32) from Q4_0 blocks, bit-exact; the tied
//        embedding/LM head is one uint8 [V, C/32, bytes] buffer read by GatherBlockQuantized (lookup) and
//        MatMulNBits (head), see embedQuantized. A Q8_0 embedding (Google's QAT GGUF) runs the same way with bits 8.
// Weights that arrive in another form are converted here: Q4_0/Q8_0 dequantised for f32, float weights
// quantised to Q4_0 (ggml's reference rule) for q4.
//
// Weights are read from a WeightSource a few rows at a time and converted straight into graph blobs
// (with a streaming graph: the external data file), so neither the source model nor the converted
// weights are ever held whole in JS.

import type { Blob, Graph, Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { NBitsSpec } from '../onnx/ops';
import type { GraphTarget } from '../onnx/lowering';
import type { GemmaConfig } from '../model/config';
import { EMBED_NAME, type ModelWeights, type WeightData } from '../model/weights';
import { asWeightSource, rowCount, storageRowBytes, type WeightSource } from '../model/weightSource';
import { dequantizeQ4_0, dequantizeQ8_0, q4_0ToMatMulNBits, q8_0ToMatMulNBits, q8_0ToQ4MatMulNBits, quantizeQ4_0, type BlockQuantized } from '../model/quant';
import type { Precision } from './runtime';

export type LinearOperand =
  | { kind: 'f32'; w: Value }
  | { kind: 'nbits'; b: Value; scales: Value; spec: NBitsSpec };

/** Where the embedding table's bytes are, for reading rows outside the graph (embeddingReader.ts). */
export type EmbeddingTable =
  | { kind: 'nbits'; bits: 4 | 8; columns: number; data: Blob; scales: Blob }
  | { kind: 'f32'; columns: number; data: Blob };

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
   * Unset or 8: the head as stored (the runtime defaults to 4, see OrtRuntimeOptions.headBits).
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

/** MatMulNBits operand blobs of a weight (B data and scales). */
interface NbitsTable {
  data: Blob;
  scales: Blob;
  bits: 4 | 8;
}

/** Source bytes converted per step when streaming a weight. */
const CHUNK_BYTES = 4 << 20;
/** Head parts hold a multiple of this many rows, so every part's bytes start page-aligned in the file. */
const PART_ROW_MULTIPLE = 1024;

/** n values of a weight's stored data as float32 (dequantised when block-quantised). */
export function f32Of(name: string, d: WeightData, n: number): Float32Array {
  switch (d.type) {
    case 'f32': return d.data;
    case 'q4_0': return dequantizeQ4_0(d.data, n);
    case 'q8_0': return dequantizeQ8_0(d.data, n);
    default: throw new Error(`weight ${name}: unknown storage`);
  }
}

/** Block-quantised operands of rows [N, K]: Q4_0 and Q8_0 as stored, float weights quantised to Q4_0. */
function blockQuantized(name: string, d: WeightData, n: number, k: number): BlockQuantized {
  switch (d.type) {
    case 'q4_0': return q4_0ToMatMulNBits(d.data, n, k);
    case 'q8_0': return q8_0ToMatMulNBits(d.data, n, k);
    case 'f32': return q4_0ToMatMulNBits(quantizeQ4_0(d.data), n, k);
    default: throw new Error(`weight ${name}: unknown storage`);
  }
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
  private embedQ: { heads: { b: Value; scales: Value; rows: number }[]; head: NbitsTable; requant: boolean } | null = null;
  private lookupNbits: NbitsTable | null = null;
  private lookupQ: { bits: 4 | 8; lookup: Value; scales3d: Value } | null = null;
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

  /** Bits a weight runs with in q4: 8 for Q8_0 storage, else 4. */
  private bitsOf(name: string): 4 | 8 {
    return this.src.storage(name) === 'q8_0' ? 8 : 4;
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
   * The weights `names` (all [*, K], same bits) stacked by rows as MatMulNBits' B and scales blobs; with
   * `to4`, requantised to Q4_0 from their dequantised values (ggml's rule) whatever their storage.
   */
  private nbitsStacked(names: string[], to4 = false): { data: Blob; scales: Blob; N: number; K: number; bits: 4 | 8 } {
    const K = this.src.shape(names[0])[1];
    const N = names.reduce((s, n) => s + this.src.shape(n)[0], 0);
    const bits = to4 ? 4 : this.bitsOf(names[0]);
    if (names.some((n) => this.src.shape(n)[1] !== K)) throw new Error(`fused linear ${names.join('|')}: input sizes differ`);
    if (!to4 && names.some((n) => this.bitsOf(n) !== bits)) throw new Error(`fused linear ${names.join('|')}: mixed 4- and 8-bit weights`);
    if (K % 32 !== 0) throw new Error(`weight ${names[0]}: ${K} inputs is not a multiple of the block size 32`);
    const key = names.join('|') + (to4 ? ':q4' : '');
    const dataBytes = N * (K / 32) * 4 * bits;
    const scaleBytes = N * (K / 32) * 4;
    const reused = this.reuse?.blobs.has(`nbits:${key}:data`);
    let scalesFill: Blob | null = null;
    // Data and scales come from the same converted chunks: fill both while visiting the rows once.
    const data = this.blobFor(`nbits:${key}:data`, dataBytes, (d) => {
      scalesFill = this.g.blob(scaleBytes);
      for (const name of names) {
        this.forEachChunk(name, (n, w) => {
          const bq = !to4 ? blockQuantized(name, w, n, K)
            : w.type === 'q8_0' ? q8_0ToQ4MatMulNBits(w.data, n, K)
              : q4_0ToMatMulNBits(quantizeQ4_0(f32Of(name, w, n * K)), n, K);
          d.write(bq.data);
          scalesFill!.write(asBytes(bq.scales));
        });
      }
    });
    const scales = reused ? this.blobFor(`nbits:${key}:scales`, scaleBytes, () => undefined) : scalesFill!;
    this.blobs.set(`nbits:${key}:scales`, scales);
    return { data, scales, N, K, bits };
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
    if (this.opts.precision === 'f32') {
      l = { kind: 'f32', w: this.f32Stacked(single ? key : `${key}.weight`, names) };
    } else {
      const { data, scales, N, K, bits } = this.nbitsStacked(names);
      l = {
        kind: 'nbits',
        b: this.g.initializerIn(`${key}.q`, 'uint8', [N, K / 32, 4 * bits], data),
        scales: this.g.initializerIn(`${key}.scales`, 'float32', [N, K / 32], scales),
        spec: { K, N, bits, blockSize: 32, accuracyLevel: this.opts.accuracyLevel },
      };
    }
    this.linears.set(key, l);
    return l;
  }

  /** Whether these weights can share one operand (same storage width after conversion). */
  canFuse(names: string[]): boolean {
    if (this.opts.precision === 'f32') return true;
    return new Set(names.map((n) => this.bitsOf(n))).size === 1;
  }

  private embedQuantized() {
    if (!this.embedQ) {
      const [V, C] = this.src.shape(EMBED_NAME);
      // The head may run a 4-bit requantisation of an 8-bit table (not exact); lookups keep the stored rows.
      const requant = this.opts.headBits === 4 && this.bitsOf(EMBED_NAME) === 8;
      const head = this.nbitsStacked([EMBED_NAME], requant);
      const rowBytes = (C / 32) * 4 * head.bits;
      const parts = Math.max(1, Math.min(this.opts.headParts ?? 1, Math.floor(V / PART_ROW_MULTIPLE)));
      const partRows = parts === 1 ? V : Math.ceil(V / parts / PART_ROW_MULTIPLE) * PART_ROW_MULTIPLE;
      const heads: { b: Value; scales: Value; rows: number }[] = [];
      for (let r0 = 0, i = 0; r0 < V; r0 += partRows, i++) {
        const rows = Math.min(partRows, V - r0);
        const suffix = parts === 1 ? '' : `.part${i}`;
        heads.push({
          b: this.g.initializerIn(`${EMBED_NAME}.q${suffix}`, 'uint8', [rows, C / 32, 4 * head.bits], head.data, r0 * rowBytes),
          scales: this.g.initializerIn(`${EMBED_NAME}.scales${suffix}`, 'float32', [rows, C / 32], head.scales, r0 * (C / 32) * 4),
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
      const e = this.embedQuantized();
      if (this.opts.lookupSharesHead && !e.requant && e.heads.length === 1) {
        this.lookupQ = { bits: t.bits, lookup: e.heads[0].b, scales3d: op.reshape(this.g, e.heads[0].scales, [V, C / 32, 1]) };
        return this.lookupQ;
      }
      this.lookupQ = {
        bits: t.bits,
        lookup: this.g.initializerIn(`${EMBED_NAME}.lookup`, 'uint8', [V, C / 32, 4 * t.bits], t.data),
        // GatherBlockQuantized wants scales of the data's rank.
        scales3d: this.g.initializerIn(`${EMBED_NAME}.scales3d`, 'float32', [V, C / 32, 1], t.scales),
      };
    }
    return this.lookupQ;
  }

  /** E[ids] · sqrt(C), the scale rounded to the weight dtype (float32) as HF does. ids int64 [B, T] → [B, T, C]. */
  embed(ids: Value): Value {
    const { hidden: C } = this.config;
    let x: Value;
    if (this.opts.precision === 'f32') {
      x = op.gather(this.g, this.norm(EMBED_NAME), ids, 0);
    } else {
      const l = this.lookupQuantized();
      const blocks = op.gatherBlockQuantized(this.g, l.lookup, ids, l.scales3d, { bits: l.bits, blockSize: 32, quantizeAxis: 2, columns: C });
      x = op.reshape(this.g, blocks, ids.shape ? [...ids.shape, C] : ['B', 'T', C]);
    }
    return this.scaleEmbedding(x);
  }

  /** Embedding rows (as embed gathers them, before scaling) times sqrt(C) rounded to float32. */
  scaleEmbedding(rows: Value): Value {
    return op.mul(this.g, rows, this.g.constF32(Math.fround(Math.sqrt(this.config.hidden))));
  }

  /** Where the embedding table's bytes are (the head's operand), so rows can be read outside the graph. */
  embeddingTable(): EmbeddingTable {
    const C = this.config.hidden;
    if (this.opts.precision === 'f32') {
      this.norm(EMBED_NAME);
      return { kind: 'f32', columns: C, data: this.blobs.get(`f32:${EMBED_NAME}`)! };
    }
    // A requantised head's 4-bit bytes are not the lookup's values: rows come from the 8-bit table. (Reading
    // the stored Q8_0 rows instead saves ~1 s of load but measured ~30 MB more peak RSS.)
    const t = this.lookupTable();
    return { kind: 'nbits', bits: t.bits, columns: C, data: t.data, scales: t.scales };
  }

  /** Tied LM head: h [.., C] → logits [.., V] = h·Eᵀ. */
  head(h: Value): Value {
    if (this.opts.precision === 'f32') {
      return op.fusedMatMul(this.g, h, this.norm(EMBED_NAME), { transB: true });
    }
    const e = this.embedQuantized();
    const { hidden: C } = this.config;
    const level = this.opts.headAccuracyLevel ?? this.opts.accuracyLevel;
    const parts = e.heads.map((p) => op.matMulNBits(this.g, h, p.b, p.scales, { K: C, N: p.rows, bits: e.head.bits, blockSize: 32, accuracyLevel: level }));
    return parts.length === 1 ? parts[0] : op.concat(this.g, parts, -1);
  }
}

/** x · Wᵀ for a linear operand. */
export function applyLinear(g: Graph, x: Value, l: LinearOperand): Value {
  return l.kind === 'f32' ? op.fusedMatMul(g, x, l.w, { transB: true }) : op.matMulNBits(g, x, l.b, l.scales, l.spec);
}

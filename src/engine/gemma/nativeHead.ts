// The LM head in native code (native/head.c): logits for a few rows straight from the embedding table as
// the model file stores it (Q4_0 or Q8_0), at the precision the ONNX head graph uses (headAccuracyFor). It
// serves the decode steps and short scoring runs; ONNX Runtime's head keeps longer runs, where its
// blocked GEMM is faster than row-by-row dots, so ONNX Runtime's packed copy of the table is paged in only
// by those. For a step that only picks a token (runtime.ts's Choice), choose computes exactly only the
// logits that can be picked.

import type { GemmaConfig } from '../model/config';
import { EMBED_NAME, FINAL_NORM_NAME } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import { NON_FINITE_OUTPUT, NonFiniteError, requireFiniteOutput } from '../model/finite';
import { nativeModule, type NativeModule } from './nativeModule';

/** Most ids a choice lists as computed exactly; with more, the caller scans every logit. */
export const CHOICE_IDS = 8192;

/** Most rows one native head call takes; more go to ONNX Runtime's head. */
export const NATIVE_HEAD_MAX_ROWS = 64;

const TYPES = { q4_0: 0, q8_0: 1 } as const;

export class NativeHead {
  private handle: object | null;
  /** loss()'s [n, V] logits, kept between calls: the largest array of a training step. */
  private lossScratch: Float32Array | null = null;

  private constructor(private readonly native: NativeModule, private readonly config: GemmaConfig, handle: object) {
    this.handle = handle;
  }

  /** A head over the model's embedding table (178 MB for the 270M's Q8_0: mapped from the file, or read), or why not. */
  static create(weights: WeightSource, threads: number, level: 0 | 4): NativeHead | { reason: string } {
    const m = nativeModule();
    if (!('module' in m)) return m;
    const storage = weights.storage(EMBED_NAME);
    if (storage !== 'q4_0' && storage !== 'q8_0') return { reason: `the embedding is ${storage}, not q4_0 or q8_0` };
    const cfg = weights.config;
    try {
      // Mapped from the file where stored as is; else read and kept as read (a file source's rows are a fresh
      // array, an in-memory model's a view of weights that stay unchanged).
      const placed = weights.stored?.(EMBED_NAME);
      const table = placed ? placed.offset : weights.rows(EMBED_NAME, 0, cfg.vocabSize).data as Uint8Array;
      const norm = weights.rows(FINAL_NORM_NAME, 0, 1);
      if (norm.type !== 'f32') return { reason: `${FINAL_NORM_NAME} is ${norm.type}, not f32` };
      const config = { vocab: cfg.vocabSize, hidden: cfg.hidden, type: TYPES[storage], eps: cfg.rmsNormEps, softcap: cfg.finalLogitSoftcap ?? 0, level };
      return new NativeHead(m.module, cfg, m.module.createHead(config, table, norm.data, threads, placed?.file));
    } catch (e) {
      return { reason: (e as Error).message };
    }
  }

  /** Logits [n, V] of rows [n, C] (n ≤ NATIVE_HEAD_MAX_ROWS); throws NonFiniteError when one is NaN or ±Infinity. */
  logits(rows: Float32Array, n: number): Float32Array {
    if (!this.handle) throw new Error('native head was disposed');
    const out = new Float32Array(n * this.config.vocabSize);
    // Counted in native code: the scan in JavaScript would cost a third of a millisecond a token.
    if (this.native.logits(this.handle, rows, n, out) > 0) requireFiniteOutput(out);
    return out;
  }

  /**
   * log softmax of the logits of rows [n, C] (n ≤ NATIVE_HEAD_MAX_ROWS) at picks (row pickRow[j], id
   * pickId[j]), in float64, without a [n, V] array; throws NonFiniteError when a logit of the rows is NaN or ±Infinity.
   */
  logProbs(rows: Float32Array, n: number, pickRow: Int32Array, pickId: Int32Array): Float64Array {
    if (!this.handle) throw new Error('native head was disposed');
    const out = new Float64Array(pickRow.length);
    const bad = this.native.logProbs(this.handle, rows, n, pickRow, pickId, out);
    if (bad > 0) throw new NonFiniteError(`${NON_FINITE_OUTPUT} (${bad} of its logits are NaN or infinite): the model file or the adapter makes it overflow`);
    return out;
  }

  /**
   * Logits [V] of one row for a caller that reads only the `top` largest (among `among`, every id when
   * absent): those are exact, as logits() gives them; every other one is an estimate below them
   * (head.h's head_choose). A 4-bit table at float activations scores the vocabulary in int8 and rescores
   * only the rows that can reach the top; `exact` says how many rows were computed exactly. Throws
   * NonFiniteError when a logit the choice can read is NaN or ±Infinity. `into` [V], when given, receives
   * the logits (every entry is written). `candidates`: ids computed exactly that hold the top, in no order,
   * written into `ids` (a fresh array when not given): every id computed exactly, or where the head computed
   * them all, those whose logit reaches the top-th largest (ties included); null when they do not fit.
   */
  choose(row: Float32Array, top: number, among?: Int32Array, into?: Float32Array, ids?: Int32Array): { logits: Float32Array; exact: number; candidates: Int32Array | null } {
    if (!this.handle) throw new Error('native head was disposed');
    const logits = into ?? new Float32Array(this.config.vocabSize);
    const list = ids ?? new Int32Array(CHOICE_IDS);
    const { exact, nonFinite, listed } = this.native.choose(this.handle, row, top, among ?? null, logits, list);
    if (nonFinite > 0) requireFiniteOutput(logits);
    return { logits, exact, candidates: listed >= 0 ? list.subarray(0, listed) : null };
  }

  /**
   * The training loss on rows [n, C] (the last layer's outputs at label positions, before the final norm): per
   * row the cross-entropy against its label (labels [n], ids < V) and 1 where the label is the first argmax,
   * else 0; with `grad`, the gradient of their sum with respect to the rows [n, C] (lmHead.ts's crossEntropy and
   * headCrossEntropyBackward, then the final norm's backward; head.h's head_loss). The logits are computed at
   * float activations from the table's exact values whatever the head's level (logits() at level 0 gives them
   * to float rounding). Logits that are NaN or ±Infinity make every loss NaN, every hit 0 and the gradient
   * null. Throws for a head that caps its logits (Gemma 3's does not).
   */
  loss(rows: Float32Array, n: number, labels: Int32Array, grad: boolean): { loss: Float32Array; hits: Float32Array; dRows: Float32Array | null } {
    if (!this.handle) throw new Error('native head was disposed');
    const { vocabSize: V, hidden: C } = this.config;
    // 134 MB for 128 rows of the 262k vocabulary: kept rather than allocated each step.
    if (!this.lossScratch || this.lossScratch.length < n * V) this.lossScratch = new Float32Array(n * V);
    const loss = new Float32Array(n);
    const hits = new Float32Array(n);
    const dRows = grad ? new Float32Array(n * C) : null;
    const bad = this.native.loss(this.handle, rows, n, labels, this.lossScratch.subarray(0, n * V), loss, hits, dRows);
    if (bad > 0) return { loss: loss.fill(NaN), hits, dRows: null };
    return { loss, hits, dRows };
  }

  dispose(): void {
    this.lossScratch = null;
    if (this.handle) this.native.destroy(this.handle);
    this.handle = null;
  }
}

// The LM head and the training loss, each forward beside its backward (shape legend in model/config.ts;
// N rows, P label positions):
//
//   lmHead:        rows [N, C] → logits [N, V] = softcap(final_norm(rows)·Eᵀ), E the tied embedding
//                  (the prefill, decode and training graphs all end with it)
//   crossEntropy:  loss_sum = −Σ_p log_softmax(logits_p)[label_p]; label_hit_p = [argmax logits_p = label_p]
//   backward:      d loss_sum / d logits = softmax(logits) − onehot(label)            (crossEntropyBackward)
//                  or, fused with the head's and chunked over V (headCrossEntropyBackward):
//                  d loss_sum / d normed = Σ_chunks exp(lsm_c)·E_c − E[label]
//
// Each backward is checked against central finite differences in test/unit/onnx-vjp.test.ts.

import type { Graph } from '../onnx/graph';
import { attr, type Value } from '../onnx/nodes';
import * as op from '../onnx/ops';
import { accumulate, dequantChunk, dequantRows, interleave, tiedRowSlices } from '../onnx/nbitsVjp';
import { FINAL_NORM_NAME } from '../model/weights';
import { embeddingScale, type GraphParams } from './params';

export interface HeadOutputs {
  /** final_norm(rows) [N, C]: what the head multiplies. */
  normed: Value;
  /** [N, V], softcapped when the model caps its logits. */
  logits: Value;
}

/** The final norm of x [.., C]. */
export function finalNorm(g: Graph, p: GraphParams, x: Value): Value {
  return op.rmsNorm(g, x, p.norm(FINAL_NORM_NAME), p.config.rmsNormEps);
}

// forward: logits = cap·tanh(final_norm(rows)·Eᵀ / cap) (no cap: final_norm(rows)·Eᵀ)
/** The head on hidden rows [N, C] (take only the rows whose logits are wanted: the 262k-wide head dominates otherwise). */
export function lmHead(g: Graph, p: GraphParams, rows: Value): HeadOutputs {
  const normed = finalNorm(g, p, rows);
  let logits = p.head(normed);
  const softcap = p.config.finalLogitSoftcap;
  if (softcap !== null) {
    const cap = g.constF32(softcap);
    logits = op.mul(g, op.tanh(g, op.div(g, logits, cap)), cap);
  }
  return { normed, logits };
}

export interface CrossEntropy {
  /** Σ CE over the P positions, float32 []. */
  lossSum: Value;
  /** 1 where argmax(logits) is the label (ties go to the lowest id, as argmax does), float32 [P]. */
  labelHit: Value;
  /** log_softmax(logits) [P, V], which the backward reuses. */
  lsm: Value;
  /** The labels as int64 [P, 1]. */
  target: Value;
}

// forward: loss_sum = −Σ_p log_softmax(logits_p)[label_p]
/**
 * Cross-entropy of logits [P, V] against labels int64 [P]. LogSoftmax is one vectorised pass
 * (ReduceLogSumExp took ~0.2 s of CPU on 80 × 262k; a step's CPU fell ~3–7%), and exp(lsm) is the
 * backward's softmax without a subtraction.
 */
export function crossEntropy(g: Graph, logits: Value, labels: Value): CrossEntropy {
  const target = g.node('Unsqueeze', [labels, g.constI64([-1])], [{ dtype: 'int64', shape: ['P', 1] }])[0];
  const lsm = g.node('LogSoftmax', [logits], [{ dtype: 'float32', shape: logits.shape }], { axis: attr.int(-1) })[0];
  const picked = g.node('GatherElements', [lsm, target], [{ dtype: 'float32', shape: ['P', 1] }], { axis: attr.int(1) })[0];
  const lossSum = op.neg(g, g.node('ReduceSum', [picked], [{ dtype: 'float32', shape: [] }], { keepdims: attr.int(0) })[0]);
  const argmax = g.node('ArgMax', [logits], [{ dtype: 'int64', shape: ['P'] }], { axis: attr.int(-1), keepdims: attr.int(0), select_last_index: attr.int(0) })[0];
  const eq = g.node('Equal', [argmax, labels], [{ dtype: 'bool', shape: ['P'] }])[0];
  return { lossSum, labelHit: op.cast(g, eq, 'float32'), lsm, target };
}

// backward of crossEntropy: d loss_sum / d logits = softmax(logits) − onehot(label)
/** d loss_sum / d logits [P, V], for autodiff to carry through the head (a softcap's tanh, a head held its own way). */
export function crossEntropyBackward(g: Graph, ce: CrossEntropy, logits: Value): Value {
  const minusOne = g.node('Expand', [g.constF32([-1]), g.node('Shape', [ce.target], [{ dtype: 'int64', shape: [2] }])[0]], [{ dtype: 'float32', shape: ['P', 1] }])[0];
  return g.node('ScatterElements', [op.softmax(g, logits, -1), ce.target, minusOne], [{ dtype: 'float32', shape: logits.shape }],
    { axis: attr.int(1), reduction: attr.string('add') })[0];
}

// backward of lmHead + crossEntropy (no softcap): logits = normed·Eᵀ, lsm = log_softmax(logits)
//   d loss_sum / d normed = softmax(logits)·E − E[label] = Σ_chunks exp(lsm_c)·E_c − E[label]
/**
 * The head's backward fused with the cross-entropy's, chunked over the vocabulary so that no [P, V]
 * gradient exists (each [P, V] float32 tensor is 168 MB for 160 labels of the 262k vocabulary); a 4-bit
 * table is dequantised chunk by chunk from the forward's own bytes. For a table with mins (E = S⊙(Q − zp) − M
 * expanded over each block), Σ_c exp(lsm_c)·M_c [P, C/bs] is expanded over the blocks and subtracted.
 * `labels`: int64 [P], the cross-entropy's.
 */
export function headCrossEntropyBackward(g: Graph, p: GraphParams, ce: CrossEntropy, labels: Value): Value {
  if (p.config.finalLogitSoftcap !== null) throw new Error('headCrossEntropyBackward: the logits are softcapped (use crossEntropyBackward)');
  const { vocabSize: V, hidden: C } = p.config;
  const head = p.headOperand();
  const chunk = dequantChunk(g);
  let acc: Value[] | null = null;
  let minsAcc: Value | null = null;
  for (let c0 = 0; c0 < V; c0 += chunk) {
    const n = Math.min(chunk, V - c0);
    const sm = op.exp(g, n === V ? ce.lsm : op.slice(g, ce.lsm, [c0], [c0 + n], [-1], ['P', n]));
    const Ec = head.kind === 'nbits'
      ? dequantRows(g, head.w, c0, n, sm)
      : [n === V ? head.w : op.slice(g, head.w, [c0], [c0 + n], [0], [n, C])];
    acc = accumulate(g, acc, Ec.map((ec) => op.matmul(g, sm, ec)));
    if (head.kind === 'nbits' && head.mins) {
      const bs = head.w.codes.blockSize;
      const [mc] = tiedRowSlices(g, [[head.mins, 'float32', [C / bs]]], c0, n, sm);
      const part = op.matmul(g, sm, mc); // [P, C/bs]
      minsAcc = minsAcc ? op.add(g, minsAcc, part) : part;
    }
  }
  let dh = interleave(g, acc!, C);
  if (minsAcc && head.kind === 'nbits') {
    const bs = head.w.codes.blockSize;
    const expanded = op.mul(g, op.reshape(g, minsAcc, ['P', C / bs, 1]), g.constF32(new Array(bs).fill(1), [bs]));
    dh = op.sub(g, dh, op.reshape(g, expanded, ['P', C]));
  }
  // E[label] = embed(label)/√C: the lookup scales by √C (rounded to float32, exactly invertible here up to 1 ulp).
  const labelRows = op.div(g, p.embed(labels), g.constF32(embeddingScale(p.config)));
  return op.sub(g, dh, labelRows);
}

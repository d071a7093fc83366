// Micro-batches for the step graph. Sequences are right-padded: with causal attention a real token
// never sees a later pad, so padding cannot change any real position's logits, and pads carry no
// label. The loss is Hugging Face's: logits at position t predict labels[t+1], and the step's loss
// is the mean over every label token of the whole (accumulated) batch, so each micro-batch reports
// its *sum* and its label count and the trainer divides once.

import type { TokenizedExample } from './tokenize';
import { IGNORE } from './tokenize';

export interface MicroBatch {
  B: number;
  T: number;
  /** [B, T] token ids, right-padded with padId. */
  inputIds: Int32Array;
  /** [N] flat index b·T+t of every position whose next token is a label. */
  labelPositions: Int32Array;
  /** [N] the label predicted at each of those positions (labels[b, t+1]). */
  labelTargets: Int32Array;
  /** Real (non-pad) tokens in the batch, for tokens/s. */
  tokens: number;
  ids: string[];
}

/** Collates examples into one right-padded micro-batch with shifted label positions. */
export function collate(examples: TokenizedExample[], padId: number): MicroBatch {
  const B = examples.length;
  if (B === 0) throw new RangeError('collate: empty batch');
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  const inputIds = new Int32Array(B * T).fill(padId);
  const pos: number[] = [], tgt: number[] = [];
  let tokens = 0;
  examples.forEach((e, b) => {
    inputIds.set(e.inputIds, b * T);
    tokens += e.inputIds.length;
    for (let t = 0; t + 1 < e.labels.length; t++) {
      const l = e.labels[t + 1];
      if (l !== IGNORE) {
        pos.push(b * T + t);
        tgt.push(l);
      }
    }
  });
  return { B, T, inputIds, labelPositions: Int32Array.from(pos), labelTargets: Int32Array.from(tgt), tokens, ids: examples.map((e) => e.id) };
}

/** Splits an epoch's examples into micro-batches of at most `batch`, grouped `accum` to an optimizer step. */
export function planSteps(examples: TokenizedExample[], batch: number, accum: number, padId: number): MicroBatch[][] {
  const micro: MicroBatch[] = [];
  for (let i = 0; i < examples.length; i += batch) micro.push(collate(examples.slice(i, i + batch), padId));
  const steps: MicroBatch[][] = [];
  for (let i = 0; i < micro.length; i += accum) steps.push(micro.slice(i, i + accum));
  return steps;
}

/** Optimizer steps in one epoch of n examples. */
export function stepsPerEpoch(n: number, batch: number, accum: number): number {
  return Math.ceil(Math.ceil(n / batch) / accum);
}

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

/**
 * Padded tokens per session run above which a batch is run in pieces. A run's activations grow with its
 * tokens (~0.5 MB per token on the 270M shape with the projections kept for the backward), and the sum of
 * the pieces' losses and gradients is the batch's, so splitting bounds memory without changing the step.
 */
export const RUN_TOKENS = 256;
/** Label positions per run likewise: each holds a row of logits and one of log-probabilities over the vocabulary (2 MB at 262k). */
export const RUN_LABELS = 128;

/** Positions of an example whose next token is a label (what a run computes the LM head for). */
function labelCount(e: TokenizedExample): number {
  let n = 0;
  for (let t = 1; t < e.labels.length; t++) if (e.labels[t] !== IGNORE) n++;
  return n;
}

/**
 * One batch's examples as micro-batches of at most `budget` padded tokens and `labelBudget` label positions
 * (one example at least), longest first so that examples of similar length share a run and its padding.
 */
export function runsOf(examples: TokenizedExample[], padId: number, budget = RUN_TOKENS, labelBudget = RUN_LABELS): MicroBatch[] {
  const sorted = examples.slice().sort((a, b) => b.inputIds.length - a.inputIds.length);
  const labels = sorted.map(labelCount);
  const runs: MicroBatch[] = [];
  for (let i = 0; i < sorted.length;) {
    const longest = sorted[i].inputIds.length;
    let n = 1, held = labels[i];
    while (i + n < sorted.length && (n + 1) * longest <= budget && held + labels[i + n] <= labelBudget) held += labels[i + n++];
    runs.push(collate(sorted.slice(i, i + n), padId));
    i += n;
  }
  return runs;
}

/** Splits an epoch's examples into batches of at most `batch`, grouped `accum` to an optimizer step, each batch as its runs. */
export function planSteps(examples: TokenizedExample[], batch: number, accum: number, padId: number, budget = RUN_TOKENS): MicroBatch[][] {
  const batches: MicroBatch[][] = [];
  for (let i = 0; i < examples.length; i += batch) batches.push(runsOf(examples.slice(i, i + batch), padId, budget));
  const steps: MicroBatch[][] = [];
  for (let i = 0; i < batches.length; i += accum) steps.push(batches.slice(i, i + accum).flat());
  return steps;
}


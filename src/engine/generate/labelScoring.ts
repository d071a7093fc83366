// Classification by label scoring: the log-probability of each candidate label's whole token sequence
// after a prompt, so the answer is always one of the labels, with a probability (softmax over labels).
//
// The prompt is run once, and every label's continuation is scored after it: when the runtime offers
// scoreSequences, the prompt's end and all labels go in one run (each label sees the prompt and its own
// tokens only) and only the labels' log-probabilities come back, else one step for the prompt and one per
// label on a fork of its cache. Labels that share
// leading tokens, or differ in length, need no special care: each sequence is scored on its own, and the
// shared prompt is never re-run.
//
// Why the prompt's head may run on its own first: a run holds at most maxRunTokens new tokens, and when the
// prompt plus the labels exceed it the runtime would fall back to a step for the prompt (itself cut in
// pieces) and then one run per label on a fork — five or more runs for a 264-token prompt and 4 labels,
// each paying the fixed cost of a whole-model run. Running the head first leaves one run for the tail
// and every label: two runs in all. A `start` cache (the worker's prompt-prefix cache) holds the first
// start.length prompt ids already, so only the rest runs.
//
// Decision: by default each label is followed by <end_of_turn> (106) and that token is scored too.
// The answer of a chat-tuned model is `label<end_of_turn>`, so this scores complete answers: without
// it a label that is a prefix of another ("pos" / "positive") would also collect the probability of
// every longer answer starting with it, and would always win. Pass terminator null for raw prompts.

import type { GemmaRuntime, KvCache } from '../gemma/runtime';
import { scoreSequencesByForks } from '../gemma/scoreByForks';
import { startLength } from './prefixCache';
import type { GenTokenizer } from './textStream';
import { quote } from '../../common/quote';

/** <end_of_turn>, which closes a model turn in Gemma's chat format. */
export const END_OF_TURN = 106;

export interface ClassifyOptions {
  promptIds: number[];
  labels: string[];
  /** Token ids of each label, instead of encoding the label text (needed when there is no tokenizer). */
  labelIds?: number[][];
  /** Token scored after every label; default END_OF_TURN; null scores the label tokens alone. */
  terminator?: number | null;
  adapter?: string;
  signal?: AbortSignal;
  /**
   * A cache that already holds the first start.length ids of promptIds (computed with the same adapter),
   * e.g. a task's instruction kept by the worker. It is forked, never changed.
   */
  start?: KvCache;
}

export interface LabelScore {
  label: string;
  /** The scored ids, terminator included. */
  ids: number[];
  /** log P(ids | prompt), natural log, summed over the ids. */
  logprob: number;
  /** exp(logprob) renormalised over the labels. */
  probability: number;
}

export interface ClassifyResult {
  /** The most probable label (the first one on a tie). */
  label: string;
  probability: number;
  /** One entry per label, in the order given. */
  scores: LabelScore[];
  /** Prompt ids that came from the `start` cache, and those this call ran (prompt part only). */
  cachedTokens: number;
  ranTokens: number;
}

/** The token ids of each label (terminator appended), checked to be non-empty, in range and distinct. */
export function labelSequences(tok: GenTokenizer | undefined, o: ClassifyOptions, V: number): number[][] {
  if (o.labels.length === 0) throw new Error('no labels given');
  if (o.labelIds && o.labelIds.length !== o.labels.length) throw new Error(`${o.labels.length} labels but ${o.labelIds.length} label id lists`);
  const terminator = o.terminator === undefined ? END_OF_TURN : o.terminator;
  const seen = new Map<string, string>();
  return o.labels.map((label, i) => {
    if (label.length === 0) throw new Error(`label ${i + 1} is empty`);
    let ids: number[];
    if (o.labelIds) ids = o.labelIds[i];
    else if (tok) ids = tok.encode(label);
    else throw new Error('labels given as text need a tokenizer, and this model has none');
    if (ids.length === 0) throw new Error(`label ${quote(label)} has no tokens`);
    if (terminator !== null) ids = [...ids, terminator];
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`label ${quote(label)}: token ${id} is outside the vocabulary [0, ${V})`);
    const key = ids.join(',');
    const other = seen.get(key);
    if (other !== undefined) throw new Error(`labels ${quote(other)} and ${quote(label)} are the same tokens`);
    seen.set(key, label);
    return ids;
  });
}

/** Scores every label after the prompt and returns the probabilities over labels. */
export async function classify(runtime: GemmaRuntime, tok: GenTokenizer | undefined, o: ClassifyOptions): Promise<ClassifyResult> {
  const V = runtime.config.vocabSize;
  if (o.promptIds.length === 0) throw new Error('the prompt has no tokens');
  for (const id of o.promptIds) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`prompt token ${id} is outside the vocabulary [0, ${V})`);
  const sequences = labelSequences(tok, o, V);
  const longest = sequences.reduce((m, s) => Math.max(m, s.length), 0);
  if (o.promptIds.length + longest > runtime.config.maxPositions) throw new Error(`prompt and label do not fit the context of ${runtime.config.maxPositions}`);

  const cached = startLength(o.start, o.promptIds);
  const prefix = o.start ? o.start.fork() : runtime.newCache();
  let rest = o.promptIds.slice(cached);
  const ranTokens = rest.length;
  const logprobs: number[] = [];
  try {
    let lp: number[][];
    if (runtime.scoreSequences) {
      const branchTokens = sequences.reduce((n, ids) => n + ids.length - 1, 0);
      const tail = Math.max(1, runtime.maxRunTokens - branchTokens);
      if (rest.length > tail) {
        await runtime.step(prefix, rest.slice(0, rest.length - tail), { logits: 'last', adapter: o.adapter });
        rest = rest.slice(rest.length - tail);
        if (o.signal?.aborted) throw new Error('cancelled');
      }
      // The prompt's tail and every label's continuation in one run.
      lp = await runtime.scoreSequences(prefix, sequences, { adapter: o.adapter, prefix: rest });
    } else {
      lp = await scoreSequencesByForks(runtime, prefix, sequences, { adapter: o.adapter, prefix: rest }, o.signal);
    }
    for (const each of lp) logprobs.push(each.reduce((a, b) => a + b, 0));
  } finally {
    prefix.dispose();
  }
  const max = Math.max(...logprobs);
  const w = logprobs.map((lp) => Math.exp(lp - max));
  const z = w.reduce((a, b) => a + b, 0);
  const scores = o.labels.map((label, i) => ({ label, ids: sequences[i], logprob: logprobs[i], probability: w[i] / z }));
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i].logprob > scores[best].logprob) best = i;
  return { label: scores[best].label, probability: scores[best].probability, scores, cachedTokens: cached, ranTokens };
}

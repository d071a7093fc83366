// Autoregressive generation on a GemmaRuntime: prefill the prompt once, then one decode step per
// token through the KV cache, with sampling, stop ids, stop strings, a token budget, streaming and
// cancellation between tokens.
//
// Decisions:
// - A stop id (default <eos>=1 and <end_of_turn>=106) ends generation and is NOT part of `tokens`.
// - A stop string ends generation once the decoded text contains it; the text is cut before it, and
//   `tokens` keeps every token generated (the last ones spell the stop string), as transformers'
//   StopStringCriteria leaves them.
// - The last token is not fed back to the model: the budget's final step costs no forward pass.

import type { GemmaRuntime, KvCache, StepOptions } from '../gemma/runtime';
import { startLength } from './prefixCache';
import { Sampler, type SamplingOptions } from './sampling';
import { type GenTokenizer, StopMatcher, TextStream } from './textStream';

/** Gemma's default stop ids: <eos> and <end_of_turn>. */
export const DEFAULT_STOP_IDS: readonly number[] = [1, 106];

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerateOptions {
  promptIds: number[];
  maxTokens: number;
  sampling: SamplingOptions;
  /** Strings that end generation when they appear in the decoded text (needs a tokenizer). */
  stop?: string[];
  /** Ids that end generation; default DEFAULT_STOP_IDS; [] generates exactly maxTokens unless cancelled. */
  stopIds?: readonly number[];
  /** Name of an adapter registered on the runtime. */
  adapter?: string;
  /** Checked between tokens; an abort ends generation with finishReason 'cancelled'. */
  signal?: AbortSignal;
  /**
   * Called for each kept token with the text it made visible (may be '' while text is held back),
   * and once more with id null for text released at the end (held back, or an unfinished character).
   */
  onToken?: (id: number | null, text: string) => void;
  /** Restricts each choice (constrained decoding) and can end generation when its output is complete. */
  constraint?: TokenConstraint;
  /**
   * A cache that already holds the first start.length ids of promptIds (computed with the same adapter),
   * e.g. a task's instruction kept by the worker's prefix cache: only the rest is prefilled. It is
   * forked, never changed.
   */
  start?: KvCache;
}

/** A rule over the output, consulted at every token. */
export interface TokenConstraint {
  /** The ids allowed next, ascending; `remaining` counts this token too. Throws when none is. */
  allowed(remaining: number): Int32Array;
  /** Moves past the chosen token; true when the output is complete (ends with finishReason 'stop'). */
  advance(id: number): boolean;
}

export interface GenerateResult {
  /** New token ids (no prompt, no stop id). */
  tokens: number[];
  /** Their text, cut before a stop string; '' without a tokenizer. */
  text: string;
  finishReason: FinishReason;
}

/** Checks request-level options against the model; throws one-line reasons. */
export function validateGenerate(runtime: GemmaRuntime, o: GenerateOptions, tok: GenTokenizer | undefined): void {
  const V = runtime.config.vocabSize;
  if (o.promptIds.length === 0) throw new Error('the prompt has no tokens');
  for (const id of o.promptIds) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`prompt token ${id} is outside the vocabulary [0, ${V})`);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new Error(`max tokens must be an integer ≥ 0, got ${o.maxTokens}`);
  if (o.promptIds.length >= runtime.config.maxPositions) throw new Error(`the prompt (${o.promptIds.length} tokens) does not fit the context of ${runtime.config.maxPositions}`);
  if (o.stop?.length && !tok) throw new Error('stop strings need a tokenizer, and this model has none');
  if (o.stop?.some((s) => s.length === 0)) throw new Error('a stop string is empty');
  startLength(o.start, o.promptIds);
}

/** Sets every logit but those of `ids` to -Infinity, in place. */
function keepOnly(logits: Float32Array, ids: Int32Array): void {
  // A plain loop: Float32Array.from with a map function took ~55 ms for 250,000 ids.
  const keep = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) keep[i] = logits[ids[i]];
  logits.fill(-Infinity);
  for (let i = 0; i < ids.length; i++) logits[ids[i]] = keep[i];
}

/** Yields to the event loop so that a cancel message (a macrotask) can be seen between tokens. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Generates up to maxTokens new tokens after the prompt. */
export async function generate(runtime: GemmaRuntime, tok: GenTokenizer | undefined, o: GenerateOptions): Promise<GenerateResult> {
  validateGenerate(runtime, o, tok);
  const sampler = new Sampler(o.sampling);
  const stopIds = new Set(o.stopIds ?? DEFAULT_STOP_IDS);
  const stops = new StopMatcher(o.stop ?? []);
  const stream = new TextStream(tok);
  const tokens: number[] = [];
  // Room left in the context: generation ends with 'length' there as at the budget.
  const budget = Math.min(o.maxTokens, runtime.config.maxPositions - o.promptIds.length);
  let shown = 0;
  let finishReason: FinishReason = 'length';
  let cut = -1;

  const show = (upTo: number, id: number): void => {
    const piece = stream.value.slice(shown, Math.max(shown, upTo));
    shown = Math.max(shown, upTo);
    o.onToken?.(id, piece);
  };

  if (o.signal?.aborted || budget === 0) {
    return { tokens, text: '', finishReason: o.signal?.aborted ? 'cancelled' : 'length' };
  }
  const cache = o.start ? o.start.fork() : runtime.newCache();
  try {
    // The sampler reads only the top of the allowed tokens' logits: the runtime may estimate the rest.
    const reads = sampler.reads(runtime.config.vocabSize);
    let allowed = o.constraint?.allowed(budget - tokens.length);
    const choice = (): StepOptions => ({ logits: 'last', adapter: o.adapter, choice: reads ? { top: reads, among: allowed } : undefined });
    let logits = await runtime.step(cache, o.promptIds.slice(cache.length), choice());
    for (;;) {
      if (o.signal?.aborted) {
        finishReason = 'cancelled';
        break;
      }
      // The runtime's logits are finite (it throws otherwise): a token is never sampled from NaN or infinity.
      // Candidates are all among the allowed ids (the choice named them): masking is needed only without.
      if (allowed && !cache.candidates) keepOnly(logits, allowed);
      const id = sampler.sample(logits, cache.candidates);
      if (stopIds.has(id)) {
        finishReason = 'stop';
        break;
      }
      tokens.push(id);
      const complete = o.constraint?.advance(id) ?? false;
      const added = stream.push(id).length;
      if (added > 0 && o.stop?.length) {
        const at = stops.find(stream.value, added);
        if (at >= 0) {
          cut = at;
          show(at, id);
          finishReason = 'stop';
          break;
        }
        show(stops.safeLength(stream.value), id);
      } else {
        show(stream.value.length, id);
      }
      if (complete) {
        finishReason = 'stop';
        break;
      }
      if (tokens.length >= budget) break;
      await turn();
      if (o.signal?.aborted) {
        finishReason = 'cancelled';
        break;
      }
      allowed = o.constraint?.allowed(budget - tokens.length);
      logits = await runtime.step(cache, [id], choice());
    }
  } finally {
    cache.dispose();
  }
  if (cut < 0) {
    stream.flush();
    const rest = stream.value.slice(shown);
    if (rest) o.onToken?.(null, rest);
    return { tokens, text: stream.value, finishReason };
  }
  return { tokens, text: stream.value.slice(0, cut), finishReason };
}

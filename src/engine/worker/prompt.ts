// The prompt part of the generating requests (generate, classify, extract): the prompt as ids, the
// adapter it runs with, and the start it shares with other requests, taken from the model's prefix
// cache so that only the rest is run.

import { encodeChatPrompt } from '../model/chatTemplate';
import type { KvCache } from '../gemma/runtime';
import { commonPrefixLength, MIN_PREFIX_TOKENS } from '../generate/prefixCache';
import type { PromptParams, SharedPromptParams } from '../../protocol/generate';
import { NotLoadedError, type LoadedModel } from './context';
import { quote } from '../../common/quote';

/** The request's prompt as ids: exactly one of messages, text or promptIds. */
export function promptIdsOf(p: PromptParams, model: LoadedModel): number[] {
  const given = [p.messages, p.text, p.promptIds].filter((x) => x !== undefined).length;
  if (given !== 1) throw new Error('give exactly one of messages, text and promptIds');
  if (p.promptIds) return p.promptIds;
  const tok = model.tokenizer;
  if (!tok) throw new Error('this model has no tokenizer: give promptIds');
  if (p.messages) return encodeChatPrompt(tok, p.messages);
  return [tok.specials.bos ?? model.runtime.config.bosId, ...tok.encode(p.text!)];
}

/** The adapter name if it is registered; an error naming the loaded ones otherwise. */
export function adapterOf(p: PromptParams, model: LoadedModel): string | undefined {
  if (p.adapter === undefined) return undefined;
  if (!model.adapters.has(p.adapter)) {
    throw new NotLoadedError(`no adapter named ${quote(p.adapter)} (loaded: ${[...model.adapters.keys()].join(', ') || 'none'})`);
  }
  return p.adapter;
}

/**
 * How many leading ids of `ids` the request shares with others (0: none worth caching): those of the
 * prompt rendered with the last message's content (or the text) cut to `sharedPrefix`. The cut render
 * and the whole prompt may tokenize differently around the cut, so only their common ids count; and
 * at least one id is left to run (the next token, or the first label, comes from its logits).
 */
export function sharedPrefixLength(p: SharedPromptParams, model: LoadedModel, ids: number[]): number {
  const shared = p.sharedPrefix;
  if (shared === undefined) return 0;
  if (!model.tokenizer) throw new Error('sharedPrefix needs the model tokenizer, and this model has none');
  let cut: PromptParams;
  if (p.messages) {
    const last = p.messages[p.messages.length - 1];
    if (!last?.content.startsWith(shared)) throw new Error("sharedPrefix is not the start of the last message's content");
    cut = { messages: [...p.messages.slice(0, -1), { role: last.role, content: shared }] };
  } else if (p.text !== undefined) {
    if (!p.text.startsWith(shared)) throw new Error('sharedPrefix is not the start of the text');
    cut = { text: shared };
  } else {
    throw new Error('sharedPrefix needs messages or text, not promptIds');
  }
  const k = Math.min(commonPrefixLength(ids, promptIdsOf(cut, model)), ids.length - 1);
  return k >= MIN_PREFIX_TOKENS ? k : 0;
}

/** A request's prompt, resolved: its ids, its adapter, and the cache of its shared start (if any). */
export interface PreparedPrompt {
  ids: number[];
  adapter: string | undefined;
  /** The shared start's cache (disposed by withPrompt); undefined without sharedPrefix. */
  start: KvCache | undefined;
  /** One log line's worth: prompt size, prefix hit/miss, the time each took, and the time since (`run`'s). */
  describe(): string;
}

/** Milliseconds since t0, for log lines. */
const since = (t0: number): string => (performance.now() - t0).toFixed(1);

/**
 * Tokenizes the request's prompt, checks its adapter and sharedPrefix, takes the shared start from the
 * model's prefix cache (computing and keeping it on a miss), runs `run` on it and disposes the start.
 */
export async function withPrompt<T>(p: SharedPromptParams, model: LoadedModel, run: (prompt: PreparedPrompt) => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const ids = promptIdsOf(p, model);
  const adapter = adapterOf(p, model);
  const k = sharedPrefixLength(p, model, ids);
  const t1 = performance.now();
  const taken = k > 0 ? await model.prefixes.take(ids.slice(0, k), adapter) : undefined;
  const t2 = performance.now();
  const tokenized = (t1 - t0).toFixed(1);
  const prefix = taken ? `${k} ids ${taken.hit ? 'hit' : 'miss'} ${(t2 - t1).toFixed(1)} ms` : 'none';
  try {
    return await run({ ids, adapter, start: taken?.cache, describe: () => `${ids.length} prompt ids (tokenize ${tokenized} ms), prefix ${prefix}, ran ${since(t2)} ms` });
  } finally {
    taken?.cache.dispose();
  }
}

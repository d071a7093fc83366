// `generate`, `classify`, `extract`: the base model (plus an adapter chosen per request) answering a
// prompt. Generation streams a `token` event per token and stops between tokens when cancelled.

import { encodeChatPrompt } from '../model/chatTemplate';
import { extract as extractJson, JsonConstraintTable, packVocab } from '../generate/constrained';
import { generate as generateText } from '../generate/generator';
import { classify as classifyLabels, END_OF_TURN } from '../generate/labelScoring';
import type { JsonShape } from '../generate/jsonShape';
import type { GenTokenizer } from '../generate/textStream';
import { commonPrefixLength, MIN_PREFIX_TOKENS } from '../generate/prefixCache';
import type { PromptParams } from '../../protocol/generate';
import type { ParamsOf } from '../../protocol/engine';
import { CancelledError, throwIfCancelled, type Handler, type LoadedModel } from './context';
import { requireModel } from './model';

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
function adapterOf(p: PromptParams, model: LoadedModel): string | undefined {
  if (p.adapter === undefined) return undefined;
  if (!model.adapters.has(p.adapter)) {
    throw new Error(`no adapter named "${p.adapter}" (loaded: ${[...model.adapters.keys()].join(', ') || 'none'})`);
  }
  return p.adapter;
}

/** Generates text, streaming token events; a cancel ends it with a `cancelled` error after the last token sent. */
export const generate: Handler<'generate'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  const promptIds = promptIdsOf(params, model);
  const r = await generateText(model.runtime, model.gen, {
    promptIds,
    maxTokens: params.maxTokens,
    sampling: { temperature: params.temperature ?? 0, topK: params.topK, topP: params.topP, seed: params.seed },
    stop: params.stop,
    stopIds: params.stopIds,
    adapter: adapterOf(params, model),
    signal: ctx.signal,
    onToken: (id, text) => ctx.emit({ type: 'token', id, text }),
  });
  if (r.finishReason === 'cancelled') throw new CancelledError(`generate cancelled after ${r.tokens.length} tokens`);
  return { tokens: r.tokens, text: r.text, finishReason: r.finishReason, promptTokens: promptIds.length };
};

/**
 * How many leading ids of `ids` the request shares with others (0: none worth caching): those of the
 * prompt rendered with the last message's content (or the text) cut to `sharedPrefix`. The cut render
 * and the whole prompt may tokenize differently around the cut, so only their common ids count; and
 * at least one id is left to run (the first label is scored on its logits).
 */
export function sharedPrefixLength(p: ParamsOf<'classify'>, model: LoadedModel, ids: number[]): number {
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

/** Scores the labels as the model's reply and returns every label's probability. */
export const classify: Handler<'classify'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  const t0 = performance.now();
  const promptIds = promptIdsOf(params, model);
  const adapter = adapterOf(params, model);
  const k = sharedPrefixLength(params, model, promptIds);
  const t1 = performance.now();
  const start = k > 0 ? await model.prefixes.take(promptIds.slice(0, k), adapter) : undefined;
  const t2 = performance.now();
  try {
    throwIfCancelled(ctx.signal);
    const r = await classifyLabels(model.runtime, model.gen, {
      promptIds,
      labels: params.labels,
      terminator: params.noTerminator ? null : END_OF_TURN,
      adapter,
      signal: ctx.signal,
      start: start?.cache,
    });
    const ms = (a: number, b: number) => (b - a).toFixed(1);
    ctx.log('debug', `classify#${ctx.id}: ${promptIds.length} prompt ids (tokenize ${ms(t0, t1)} ms), `
      + `prefix ${k ? `${k} ids ${start!.hit ? 'hit' : 'miss'} ${ms(t1, t2)} ms` : 'none'}, scoring ${r.ranTokens} ids + ${params.labels.length} labels ${ms(t2, performance.now())} ms`);
    return { label: r.label, probability: r.probability, scores: r.scores.map((s) => ({ label: s.label, probability: s.probability, logprob: s.logprob })) };
  } finally {
    start?.cache.dispose();
  }
};

// Compiled shapes per tokenizer: a task's extract requests reuse one table (its masks are built lazily).
const tables = new WeakMap<GenTokenizer, Map<string, JsonConstraintTable>>();
const MAX_TABLES = 8;

function tableFor(gen: GenTokenizer, shape: JsonShape): JsonConstraintTable {
  let byShape = tables.get(gen);
  if (!byShape) tables.set(gen, (byShape = new Map()));
  const key = JSON.stringify(shape.fields);
  let t = byShape.get(key);
  if (!t) {
    t = new JsonConstraintTable(shape, packVocab(gen));
    if (byShape.size >= MAX_TABLES) byShape.delete(byShape.keys().next().value!);
    byShape.set(key, t);
  }
  return t;
}

/** Generates a JSON object with exactly the requested fields; streams token events. */
export const extract: Handler<'extract'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  if (!model.gen) throw new Error('extract needs the model tokenizer, and this model has none');
  const shape: JsonShape = { fields: params.fields.map((f) => (f.enum ? { name: f.name, enum: f.enum } : { name: f.name })) };
  const table = tableFor(model.gen, shape);
  const r = await extractJson(model.runtime, model.gen, {
    promptIds: promptIdsOf(params, model),
    shape,
    table,
    maxTokens: params.maxTokens ?? 256,
    sampling: { temperature: params.temperature ?? 0, topK: params.topK, topP: params.topP, seed: params.seed },
    adapter: adapterOf(params, model),
    signal: ctx.signal,
    onToken: (id, text) => ctx.emit({ type: 'token', id, text }),
  });
  if (!r.value) throw new CancelledError(`extract cancelled after ${r.tokens.length} tokens`);
  const value = r.value;
  return { text: r.text, tokens: r.tokens, values: shape.fields.map((f) => ({ name: f.name, value: value[f.name] })) };
};

// `generate`, `classify`, `extract`: the base model (plus an adapter chosen per request) answering a
// prompt. Generation streams a `token` event per token and stops between tokens when cancelled.

import { encodeChatPrompt } from '../model/chatTemplate';
import { extract as extractJson, JsonConstraintTable, packVocab } from '../generate/constrained';
import { generate as generateText } from '../generate/generator';
import { classify as classifyLabels, END_OF_TURN } from '../generate/labelScoring';
import type { JsonShape } from '../generate/jsonShape';
import type { GenTokenizer } from '../generate/textStream';
import type { PromptParams } from '../../protocol/generate';
import { CancelledError, type Handler, type LoadedModel } from './context';
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

/** Scores the labels as the model's reply and returns every label's probability. */
export const classify: Handler<'classify'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  const r = await classifyLabels(model.runtime, model.gen, {
    promptIds: promptIdsOf(params, model),
    labels: params.labels,
    terminator: params.noTerminator ? null : END_OF_TURN,
    adapter: adapterOf(params, model),
    signal: ctx.signal,
  });
  return { label: r.label, probability: r.probability, scores: r.scores.map((s) => ({ label: s.label, probability: s.probability, logprob: s.logprob })) };
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

// `generate`, `classify`, `extract`: the base model (plus an adapter chosen per request) answering a
// prompt. Generation streams a `token` event per token and stops between tokens when cancelled. A
// request's sharedPrefix starts it from the model's kept prefix cache (prompt.ts), for all three.

import { extract as extractJson, JsonConstraintTable, packVocab } from '../generate/constrained';
import { generate as generateText } from '../generate/generator';
import { classify as classifyLabels, END_OF_TURN } from '../generate/labelScoring';
import type { JsonShape } from '../generate/jsonShape';
import type { GenTokenizer } from '../generate/textStream';
import { CancelledError, throwIfCancelled, type Handler } from './context';
import { requireModel } from './model';
import { withPrompt } from './prompt';

/** Generates text, streaming token events; a cancel ends it with a `cancelled` error after the last token sent. */
export const generate: Handler<'generate'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  return withPrompt(params, model, async (prompt) => {
    const r = await generateText(model.runtime, model.gen, {
      promptIds: prompt.ids,
      maxTokens: params.maxTokens,
      sampling: { temperature: params.temperature ?? 0, topK: params.topK, topP: params.topP, seed: params.seed },
      stop: params.stop,
      stopIds: params.stopIds,
      adapter: prompt.adapter,
      signal: ctx.signal,
      onToken: (id, text) => ctx.emit({ type: 'token', id, text }),
      start: prompt.start,
    });
    ctx.log('debug', `generate#${ctx.id}: ${prompt.describe()}, ${r.tokens.length} tokens`);
    if (r.finishReason === 'cancelled') throw new CancelledError(`generate cancelled after ${r.tokens.length} tokens`);
    return { tokens: r.tokens, text: r.text, finishReason: r.finishReason, promptTokens: prompt.ids.length };
  });
};

/** Scores the labels as the model's reply and returns every label's probability. */
export const classify: Handler<'classify'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  return withPrompt(params, model, async (prompt) => {
    throwIfCancelled(ctx.signal);
    const r = await classifyLabels(model.runtime, model.gen, {
      promptIds: prompt.ids,
      labels: params.labels,
      terminator: params.noTerminator ? null : END_OF_TURN,
      adapter: prompt.adapter,
      signal: ctx.signal,
      start: prompt.start,
    });
    ctx.log('debug', `classify#${ctx.id}: ${prompt.describe()}, scored ${r.ranTokens} ids + ${params.labels.length} labels`);
    return { label: r.label, probability: r.probability, scores: r.scores.map((s) => ({ label: s.label, probability: s.probability, logprob: s.logprob })) };
  });
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
  const gen = model.gen;
  if (!gen) throw new Error('extract needs the model tokenizer, and this model has none');
  const shape: JsonShape = { fields: params.fields.map((f) => (f.enum ? { name: f.name, enum: f.enum } : { name: f.name })) };
  const table = tableFor(gen, shape);
  return withPrompt(params, model, async (prompt) => {
    const r = await extractJson(model.runtime, gen, {
      promptIds: prompt.ids,
      shape,
      table,
      maxTokens: params.maxTokens ?? 256,
      sampling: { temperature: params.temperature ?? 0, topK: params.topK, topP: params.topP, seed: params.seed },
      adapter: prompt.adapter,
      signal: ctx.signal,
      onToken: (id, text) => ctx.emit({ type: 'token', id, text }),
      start: prompt.start,
    });
    ctx.log('debug', `extract#${ctx.id}: ${prompt.describe()}, ${r.tokens.length} tokens`);
    if (!r.value) throw new CancelledError(`extract cancelled after ${r.tokens.length} tokens`);
    const value = r.value;
    return { text: r.text, tokens: r.tokens, values: shape.fields.map((f) => ({ name: f.name, value: value[f.name] })) };
  });
};

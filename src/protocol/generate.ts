// The worker methods of the runtime (issue 3's Generation part), spread into `engineMethods` in
// engine.ts: load a base model, load/unload adapters, generate (streamed), classify, extract.
//
// A prompt is given one of three ways, exactly one per request: `messages` (rendered by the chat
// template with the generation prompt), `text` (BOS + the text, no template), or `promptIds` (fed as
// they are). Adapters are registered by name and chosen per request; the base model stays loaded.
// A messages or text prompt may name its sharedPrefix: the worker then runs only what follows it.

import { baseModelRecord } from '../store/baseModel';
import { arr, CheckError, Infer, nullable, num, obj, oneOf, optional, Schema, str } from '../common/check';
import { jsonForMessage } from '../common/quote';

const MAX_TEXT = 200_000;
const MAX_IDS = 32_768;
const MAX_LABELS = 200;
const MAX_FIELDS = 50;
const MAX_NAME = 200;
const MAX_PATH = 4096;

const tokenId = num({ int: true, min: 0, max: 1 << 24 });

const promptFields = {
  messages: optional(arr(obj({ role: oneOf('system', 'user', 'assistant'), content: str({ max: MAX_TEXT }) }), { max: 1000 })),
  text: optional(str({ max: MAX_TEXT })),
  promptIds: optional(arr(tokenId, { max: MAX_IDS })),
  /** Name of an adapter registered with loadAdapter; absent = the base model. */
  adapter: optional(str({ min: 1, max: MAX_NAME })),
};

/** The prompt part every generating request shares. */
export interface PromptParams {
  messages?: { role: 'system' | 'user' | 'assistant'; content: string }[];
  text?: string;
  promptIds?: number[];
  adapter?: string;
}

/**
 * sharedPrefix: text that the last message's content (or `text`) starts with and that other requests
 * share, e.g. a task's instruction and labels: the worker keeps the model's state after it (per model
 * and adapter) and runs only the rest. Results are the same with or without it. Not with promptIds.
 */
const sharedPrefixField = { sharedPrefix: optional(str({ max: MAX_TEXT })) };

/** A prompt that may name the start it shares with other requests (classify, generate, extract). */
export interface SharedPromptParams extends PromptParams {
  sharedPrefix?: string;
}

const samplingFields = {
  /** 0 = greedy (the default for every method). */
  temperature: optional(num({ min: 0, max: 100 })),
  topK: optional(num({ int: true, min: 0 })),
  topP: optional(num({ min: 1e-9, max: 1 })),
  seed: optional(num({ int: true, min: 0, max: 2 ** 32 - 1 })),
};

/** One streamed token: its id (null for text released at the end) and the text it made visible. */
const tokenEvent = obj({ type: oneOf('token'), id: nullable(tokenId), text: str() });
export type TokenEvent = Infer<typeof tokenEvent>;

const noEvents: Schema<never> = (v, path = '') => {
  throw new CheckError(path, `this method streams no events, got one: ${jsonForMessage(v)}`);
};

const finishReason = oneOf('stop', 'length', 'cancelled');

// engine.ts's modelSummary, restated: engine.ts imports this file, so importing it back would be a cycle.
const loadedSummary = obj({
  name: str({ max: 200 }),
  source: str({ max: MAX_PATH }),
  format: oneOf('gguf', 'safetensors'),
  precision: oneOf('q4', 'f32'),
  device: oneOf('cpu', 'webgpu'),
  /** Name, shape and weight fingerprint (a task records it for its adapter). */
  base: optional(baseModelRecord),
});

export const generateMethods = {
  /** Loads (or replaces) the one base model: a .gguf file or a Hugging Face folder. Drops every adapter. */
  loadModel: {
    /** threads: ONNX Runtime intra-op threads for this model; default: the worker's. device: default 'auto' (WebGPU if a GPU answers, else the CPU). */
    params: obj({
      path: str({ min: 1, max: MAX_PATH }), precision: optional(oneOf('q4', 'f32')), threads: optional(num({ int: true, min: 1, max: 256 })),
      device: optional(oneOf('auto', 'cpu', 'webgpu')),
    }),
    result: obj({ model: loadedSummary, loadSeconds: num({ min: 0 }), vocabSize: num({ int: true }), hasTokenizer: oneOf(true, false) }),
    event: noEvents,
    exclusive: true,
  },
  /** Reads a PEFT adapter folder and registers it under `name` (replacing one of that name). */
  loadAdapter: {
    params: obj({ name: str({ min: 1, max: MAX_NAME }), path: str({ min: 1, max: MAX_PATH }) }),
    result: obj({ name: str(), rank: num({ int: true, min: 1 }), alpha: num(), modules: num({ int: true, min: 0 }) }),
    event: noEvents,
    exclusive: true,
  },
  unloadAdapter: {
    params: obj({ name: str({ min: 1, max: MAX_NAME }) }),
    result: obj({ removed: oneOf(true, false) }),
    event: noEvents,
    exclusive: true,
  },
  /** Generates text; streams a `token` event per token. Stop ids default to <eos>, <end_of_turn>. */
  generate: {
    params: obj({
      ...promptFields,
      ...sharedPrefixField,
      ...samplingFields,
      maxTokens: num({ int: true, min: 0, max: MAX_IDS }),
      stop: optional(arr(str({ min: 1, max: 1000 }), { max: 16 })),
      stopIds: optional(arr(tokenId, { max: 64 })),
    }),
    result: obj({ tokens: arr(tokenId), text: str(), finishReason, promptTokens: num({ int: true, min: 0 }) }),
    event: tokenEvent,
    exclusive: true,
  },
  /** Scores each label (followed by <end_of_turn>) as the reply; the answer is always one of them. */
  classify: {
    params: obj({
      ...promptFields,
      labels: arr(str({ min: 1, max: 1000 }), { max: MAX_LABELS }),
      /** Score labels alone, without the <end_of_turn> that ends a chat reply (for raw prompts). */
      noTerminator: optional(oneOf(true, false)),
      ...sharedPrefixField,
    }),
    result: obj({
      label: str(),
      probability: num({ min: 0, max: 1 }),
      scores: arr(obj({ label: str(), probability: num({ min: 0, max: 1 }), logprob: num() })),
    }),
    event: noEvents,
    exclusive: true,
  },
  /** Generates a JSON object with exactly these string fields (each free text or one of `enum`). */
  extract: {
    params: obj({
      ...promptFields,
      ...sharedPrefixField,
      ...samplingFields,
      fields: arr(obj({ name: str({ min: 1, max: MAX_NAME }), enum: optional(arr(str({ max: 1000 }), { max: MAX_LABELS })) }), { max: MAX_FIELDS }),
      maxTokens: optional(num({ int: true, min: 1, max: MAX_IDS })),
    }),
    result: obj({
      text: str(),
      tokens: arr(tokenId),
      values: arr(obj({ name: str(), value: str() })),
    }),
    event: tokenEvent,
    exclusive: true,
  },
} as const;

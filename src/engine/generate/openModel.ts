// One base model ready to generate: weights loaded, runtime built, tokenizer and chat template at hand.
// Shared by the worker's handlers and the CLI so both open a model the same way.

import { createGemmaRuntime, type LoraMode } from '../gemma/ortRuntime';
import type { GemmaRuntime, Precision } from '../gemma/runtime';
import type { Device } from '../onnx/device';
import { encodeChatPrompt, type ChatMessage } from '../model/chatTemplate';
import type { GemmaConfig } from '../model/config';
import { openWeights } from '../model/load';
import { baseIdentity, modelStamp, type BaseIdentity } from '../model/identity';
import type { WeightSource } from '../model/weightSource';
import { createTokenizer, type Tokenizer } from '../model/tokenizer';
import { readPeftParams } from '../train/peftParams';
import { toRuntimeAdapter } from '../train/lora';
import type { GenTokenizer } from './textStream';
import { genTokenizer } from './tokenizerView';

export interface OpenModel {
  runtime: GemmaRuntime;
  /** null when the model has no tokenizer (a bare HF folder): only token-id requests work. */
  tokenizer: Tokenizer | null;
  /** The tokenizer as generate/ uses it, or undefined without one. */
  gen: GenTokenizer | undefined;
  format: 'gguf' | 'safetensors';
  /** The model's name, shape and weight fingerprint (identity.ts), read once at the load. */
  base: BaseIdentity;
  /** Seconds from reading the file to a runnable session. */
  loadSeconds: number;
  /** What the loader left out (a vision tower, …), one line each, for the log. */
  notes: string[];
}

export interface OpenOptions {
  precision: Precision;
  threads?: number;
  /** 'always' when an adapter will be used from the start (saves the one-off switch of 'lazy', the default). */
  lora?: LoraMode;
  /** Where the runtime's sessions run (onnx/device.ts resolves a user's choice); default the CPU. */
  device?: Device;
  /**
   * A folder to keep the converted model in (gemma/runtimeCache.ts): a model loaded before with the same
   * options opens from there without converting. Default none.
   */
  weightCache?: string;
  /** Who runs the layers and head: 'native' where available (default), or 'onnx' (OrtRuntimeOptions.decode). */
  decode?: 'native' | 'onnx';
  /** Called with the model's shape once its header is read, before the runtime is built (the costly part); may throw to stop. */
  beforeBuild?: (config: GemmaConfig) => void | Promise<void>;
}

/** Loads a .gguf file or HF folder and builds its runtime and tokenizer. */
export async function openModel(modelPath: string, o: OpenOptions): Promise<OpenModel> {
  const t0 = performance.now();
  const { source, format, tokenizer, notes } = openParts(modelPath, o.precision);
  const config = source.config;
  await o.beforeBuild?.(config);
  const base = baseIdentity(modelPath, config);
  const cache = o.weightCache ? { root: o.weightCache, modelStamp: modelStamp(modelPath, base.fingerprint) } : undefined;
  const runtime = await createGemmaRuntime(source, { precision: o.precision, threads: o.threads ?? 2, lora: o.lora, device: o.device, cache, decode: o.decode });
  return {
    runtime,
    tokenizer,
    gen: tokenizer ? genTokenizer(tokenizer, config.vocabSize) : undefined,
    format,
    base,
    loadSeconds: (performance.now() - t0) / 1000,
    notes,
  };
}

/**
 * The weight source and the built tokenizer. Synchronous and separate so that the GGUF vocabulary arrays
 * the tokenizer was built from (tokens, scores, types: several MB) are garbage before openModel awaits the
 * runtime, instead of living in its suspended frame while ONNX Runtime builds its session.
 */
function openParts(modelPath: string, precision: Precision): { source: WeightSource; format: OpenModel['format']; tokenizer: Tokenizer | null; notes: string[] } {
  // Weights are read from the file as the runtime converts them: the model is never held whole in JS.
  const { source, format, tokenizerSource, notes } = openWeights(modelPath, { precision });
  return { source, format, tokenizer: tokenizerSource ? createTokenizer(tokenizerSource) : null, notes };
}

/** Reads a PEFT adapter folder and registers it on the runtime under `name`; returns its size. */
export function loadAdapter(runtime: GemmaRuntime, dir: string, name: string): { rank: number; alpha: number; modules: number } {
  const adapter = toRuntimeAdapter(readPeftParams(dir, runtime.config));
  runtime.setAdapter(name, adapter);
  return { rank: adapter.rank, alpha: adapter.alpha, modules: adapter.modules.size };
}

/** The model's tokenizer, or a one-line error saying why text input cannot work. */
export function needTokenizer(m: OpenModel, what: string): Tokenizer {
  if (!m.tokenizer) throw new Error(`${what} needs a tokenizer, and this model has none (no tokenizer.json); give token ids instead`);
  return m.tokenizer;
}

/** Prompt ids for a single user message: the chat template with the generation prompt. */
export function chatPromptIds(tok: Tokenizer, messages: ChatMessage[]): number[] {
  return encodeChatPrompt(tok, messages);
}

/** Prompt ids for plain text: BOS then the text, as Hugging Face's tokenizer(text) gives. */
export function textPromptIds(tok: Tokenizer, text: string, fallbackBos: number): number[] {
  return [tok.specials.bos ?? fallbackBos, ...tok.encode(text)];
}

// The contract between the Gemma graphs (this folder) and everything that drives them (generate/,
// train/, the worker, the CLI). A runtime owns the ONNX Runtime sessions of one base model; a
// KvCache is one sequence's keys and values; adapters are registered once and chosen per call.

import type { GemmaConfig } from '../model/config';

export type Precision = 'q4' | 'f32';

export interface RuntimeOptions {
  precision: Precision;
  /** intra-op threads for ONNX Runtime; default 2. */
  threads?: number;
  /** q4 only: MatMulNBits accuracy_level, 4 (int8 activations, as llama.cpp's Q8_0 activations; default) or 0 (float). */
  accuracyLevel?: 0 | 4;
}

/** One sequence's cache. Sliding layers keep at most slidingWindow-1 past positions. */
export interface KvCache {
  /** Tokens seen so far (the position of the next token). */
  readonly length: number;
  /** An independent copy, for scoring several continuations of one prefix. */
  fork(): KvCache;
  dispose(): void;
}

/** LoRA weights in PEFT layout: A [R, in], B [out, R] per target module, scale alpha/R. */
export interface LoraAdapter {
  rank: number;
  alpha: number;
  /** HF module path without the weight suffix, e.g. `model.layers.0.self_attn.q_proj` → A and B. */
  modules: Map<string, { a: Float32Array; b: Float32Array }>;
}

export interface StepOptions {
  /** Which logits to return: the last position's [V], or every new position's [T, V]. */
  logits: 'last' | 'all';
  /** Name of an adapter registered with setAdapter, or undefined for the base model. */
  adapter?: string;
}

export interface GemmaRuntime {
  readonly config: GemmaConfig;
  readonly precision: Precision;
  newCache(): KvCache;
  /** Feeds ids after the cache's contents, extends the cache, returns the requested logits. */
  step(cache: KvCache, ids: number[], opts: StepOptions): Promise<Float32Array>;
  /**
   * Optional: the logits after every token of several continuations ("branches") of the cache's sequence,
   * in one run where it can: each branch sees the cache and its own earlier tokens, never another branch.
   * The cache is left unchanged. Result i is branch i's [length, V]. Callers fall back to fork + step.
   */
  scoreBranches?(cache: KvCache, branches: number[][], opts?: { adapter?: string }): Promise<Float32Array[]>;
  /** Registers (or replaces) an adapter under a name; the base weights are not reloaded. */
  setAdapter(name: string, adapter: LoraAdapter): void;
  removeAdapter(name: string): void;
  dispose(): Promise<void>;
}

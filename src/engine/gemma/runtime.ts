// The contract between the Gemma graphs (this folder) and everything that drives them (generate/,
// train/, the worker, the CLI). A runtime owns the ONNX Runtime sessions of one base model; a
// KvCache is one sequence's keys and values; adapters are registered once and chosen per call.

import type { GemmaConfig } from '../model/config';
import type { Device } from '../onnx/device';

export type Precision = 'q4' | 'f32';

export interface RuntimeOptions {
  precision: Precision;
  /** intra-op threads for ONNX Runtime; default 2. */
  threads?: number;
  /** q4 only: MatMulNBits accuracy_level, 4 (int8 activations, as llama.cpp's Q8_0 activations) or 0 (float); default by device (defaultAccuracyLevel). */
  accuracyLevel?: 0 | 4;
  /** Where the sessions run (onnx/device.ts resolves the user's choice); default the CPU. */
  device?: Device;
}

/**
 * MatMulNBits accuracy level when none is given: 4 on the CPU (int8 activations, 1.3–1.6× faster there),
 * 0 on WebGPU, whose level-4 kernels quantise activations differently from the CPU's (logits then differ
 * by ~0.1 where level 0 agrees with the CPU's level 0 to float rounding) and which has compute to spare.
 */
export function defaultAccuracyLevel(device: Device): 0 | 4 {
  return device === 'webgpu' ? 0 : 4;
}

/** One sequence's cache. Sliding layers keep at most slidingWindow-1 past positions. */
export interface KvCache {
  /** Tokens seen so far (the position of the next token). */
  readonly length: number;
  /**
   * After a step with a choice, ids whose logits it computed exactly (in no order) that hold the choice's top,
   * so a sampler need look no further. Null when any id may be (or after a step without a choice).
   */
  readonly candidates?: Int32Array | null;
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
  /** 'last' only: what the caller reads of the logits, when it only picks the next token from them. */
  choice?: Choice;
}

/**
 * A caller that picks the next token reads only the `top` largest logits (greedy: 1; top-k sampling: k)
 * among `among` (every id when absent). Those come exactly as without a choice; every other logit may be an
 * estimate below them, so a runtime may score the vocabulary with a cheaper head and compute exactly only
 * the tokens that can reach the top (nativeHead.ts's choose). The logits of a step with a choice are read
 * before the next step on the same cache: the runtime may write that step's into the same array.
 */
export interface Choice {
  top: number;
  among?: Int32Array;
}

export interface SequenceOptions {
  adapter?: string;
  /** Ids appended to the cache before the sequences (e.g. a classification prompt): at least one. */
  prefix: number[];
}

/** Who runs each part of a one-token step, e.g. note 'layers native, head ONNX Runtime (why not native)'. */
export interface DecodeBy {
  native: boolean;
  note: string;
}

export interface GemmaRuntime {
  readonly config: GemmaConfig;
  readonly precision: Precision;
  /** Where its sessions run. */
  readonly device: Device;
  /** Where its weights came from: converted from the model now, or opened from the converted-model cache. */
  readonly weightsFrom: 'converted' | 'cache';
  /** Most new tokens one run takes; step and scoreSequences cut longer inputs into runs of this size. */
  readonly maxRunTokens: number;
  /** Who runs one-token steps (decoding): native code, or ONNX Runtime and why. */
  readonly decodeBy: DecodeBy;
  newCache(): KvCache;
  /**
   * Feeds ids after the cache's contents, extends the cache, returns the requested logits. They are finite
   * (those a choice reads, with one): an output holding NaN or ±Infinity throws NonFiniteError (model/finite.ts).
   */
  step(cache: KvCache, ids: number[], opts: StepOptions): Promise<Float32Array>;
  /**
   * Optional: log P(seq[k] | cache, prefix, seq[<k]) for every token of several continuations of the cache
   * ("sequences", none empty), natural logs in float64, in one run where it can. The `prefix` ids first
   * extend the cache as step would; each sequence then sees the cache, the prefix and its own earlier tokens,
   * never another sequence, and is not kept in the cache. Only the log-probabilities asked for leave the
   * runtime, not rows of logits. From finite logits, as step's (NonFiniteError otherwise). Callers without
   * it use step and fork.
   */
  scoreSequences?(cache: KvCache, sequences: number[][], opts: SequenceOptions): Promise<number[][]>;
  /** Registers (or replaces) an adapter under a name; the base weights are not reloaded. */
  setAdapter(name: string, adapter: LoraAdapter): void;
  removeAdapter(name: string): void;
  dispose(): Promise<void>;
}

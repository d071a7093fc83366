// How much memory the engine may use: the cap its watchdog enforces (watchdog.ts). It starts at what
// an engine without a model needs and grows, when a model loads, to what that model needs, and when a
// training run starts, to what its batches need on top: sized from the model's shape, so a 270M engine
// that suddenly holds gigabytes more than it should is stopped, while a bigger model, f32 weights or
// long examples get the room they need. It never shrinks (memory a process freed is not always handed
// back to the system), and never passes the host's ceiling.
//
// Measured on the 270M (bench/engineHost.ts, resident size of the engine process): loaded 370 MB (q4)
// and 1160 MB (f32); training on ONNX Runtime's step graph peaked at 1105 / 2480 MB for 20 short examples,
// 1920 / 2900 MB for batches of 4 examples of about 950 tokens. The caps below are 1.6 to 2.4 times those.
// The native step (q4 on the CPU) peaked at 794 MB for the 20 short examples (bench/train.ts).

import { type GemmaConfig, parameterCount } from './model/config';
import type { Precision } from './gemma/runtime';
import { RUN_LABELS, RUN_TOKENS } from './train/batch';

const MB = 1024 * 1024;
/** The process without a model: Node, ONNX Runtime, a tokenizer's tables being read. */
export const IDLE_CAP_MB = 1024;
/** Bytes per weight as the runtime holds them: Q4_0 packs 32 weights in 18 bytes. */
const BYTES_PER_WEIGHT: Record<Precision, number> = { q4: 18 / 32, f32: 4 };
/** Copies of the weights at the peak of a run (the inference session's, the train step's and its transposed copy), with room. */
const WEIGHT_COPIES = 4;
/**
 * Activations a training step keeps per token, in floats per layer and in units of (2C + F): about 240 KB
 * a token for the 270M; measured about half that (0.2 MB a token of the batch, all layers), so twice.
 */
const ACTIVATION_FACTOR = 2;

/** What the engine needs, in MB, with `config` loaded at `precision`. */
export function modelNeedMB(config: GemmaConfig, precision: Precision): number {
  return Math.ceil(IDLE_CAP_MB + (WEIGHT_COPIES * parameterCount(config) * BYTES_PER_WEIGHT[precision]) / MB);
}

/** A LoRA rank the caps allow for (the panel's largest is 64); a group of q|k|v stacks three. */
const CAP_RANK = 64;

/**
 * What the native training step (train/nativeEngine.ts) holds for a run of `runTokens`: every layer's kept
 * activations (native/train.c's decoder_saves), one layer's backward rows and attention's scratch (a head per
 * thread: keys and values transposed, 32 queries' weights), and the head's [labels, vocabulary] logits, with a
 * quarter more for the rest.
 */
function nativeRunBytes(config: GemmaConfig, runTokens: number): number {
  const C = config.hidden, Q = config.heads * config.headDim, N = Q + 2 * config.kvHeads * config.headDim, F = config.intermediate, r = 3 * CAP_RANK;
  const kept = config.layers * (3 * C + N + Q + 2 * F + 4 * r);
  const backward = 6 * C + 5 * F + 3 * Q + 2 * N + r + config.heads * (2 * config.headDim + 3 * 32 + 2);
  const head = Math.min(runTokens, RUN_LABELS) * config.vocabSize;
  return 1.25 * 4 * (runTokens * (kept + backward) + head);
}

/**
 * What it needs, in MB, to train on it with batches of `batchSize` examples of at most `tokens` tokens: room
 * for either step engine. ONNX Runtime's activations grow with the batch; the native step's with one run of
 * the batch (the trainer's runs hold at most RUN_TOKENS padded tokens, or one longer example).
 */
export function trainNeedMB(config: GemmaConfig, precision: Precision, batchSize: number, tokens: number): number {
  const perToken = ACTIVATION_FACTOR * config.layers * (2 * config.hidden + config.intermediate) * 4;
  const onnx = batchSize * tokens * perToken;
  const native = precision === 'q4' ? nativeRunBytes(config, Math.min(batchSize * tokens, Math.max(RUN_TOKENS, tokens))) : 0;
  return modelNeedMB(config, precision) + Math.ceil(Math.max(onnx, native) / MB);
}

/** The cap of an engine that has loaded no model yet (null: no ceiling, no cap). */
export function idleCapMB(ceilingMB: number | null): number | null {
  return ceilingMB === null ? null : Math.min(IDLE_CAP_MB, ceilingMB);
}

/** The cap once something needing `needMB` starts, from the cap in force. */
export function grownCapMB(currentMB: number | null, needMB: number, ceilingMB: number | null): number | null {
  if (ceilingMB === null) return null;
  return Math.min(ceilingMB, Math.max(currentMB ?? 0, needMB));
}

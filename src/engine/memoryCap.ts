// How much memory the engine may use: the cap its watchdog enforces (watchdog.ts). It starts at what
// an engine without a model needs and grows, when a model loads, to what that model needs, and when a
// training run starts, to what its batches need on top: sized from the model's shape, so a 270M engine
// that suddenly holds gigabytes more than it should is stopped, while a bigger model, f32 weights or
// long examples get the room they need. It never shrinks (memory a process freed is not always handed
// back to the system), and never passes the host's ceiling.
//
// Measured on the 270M (bench/engineHost.ts, resident size of the engine process): loaded 370 MB (q4)
// and 1160 MB (f32); training peak 1105 / 2480 MB for 20 short examples, 1920 / 2900 MB for batches
// of 4 examples of about 950 tokens. The caps below are 1.6 to 2.4 times those.

import { type GemmaConfig, parameterCount } from './model/config';
import type { Precision } from './gemma/runtime';

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

/** What it needs, in MB, to train on it with batches of `batchSize` examples of at most `tokens` tokens. */
export function trainNeedMB(config: GemmaConfig, precision: Precision, batchSize: number, tokens: number): number {
  const perToken = ACTIVATION_FACTOR * config.layers * (2 * config.hidden + config.intermediate) * 4;
  return modelNeedMB(config, precision) + Math.ceil((batchSize * tokens * perToken) / MB);
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

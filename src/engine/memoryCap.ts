// How much memory the engine may use: the cap its watchdog enforces (watchdog.ts). It starts at what
// an engine without a model needs and grows, when a model loads, to what that model needs with a
// training run on it, sized from the model's shape: a 270M engine that suddenly holds gigabytes is
// stopped, while a bigger model or f32 weights get the room they need. It never shrinks (memory a
// process freed is not always handed back to the system), and never passes the host's ceiling.

import { type GemmaConfig, parameterCount } from './model/config';
import type { Precision } from './gemma/runtime';

const MB = 1024 * 1024;
/** The process without a model: Node, ONNX Runtime, a tokenizer's tables being read. */
export const IDLE_CAP_MB = 1024;
/** Bytes per weight as the runtime holds them: Q4_0 packs 32 weights in 18 bytes. */
const BYTES_PER_WEIGHT: Record<Precision, number> = { q4: 18 / 32, f32: 4 };
/**
 * Copies of the weights a training run holds at its peak (the inference session's, the train step's
 * and its transposed copy for the backward, the mapped files behind them), with room to spare.
 */
const WEIGHT_COPIES = 8;

/** What the engine needs, in MB, with `config` loaded at `precision` and trained on. */
export function modelNeedMB(config: GemmaConfig, precision: Precision): number {
  return Math.ceil(IDLE_CAP_MB + (WEIGHT_COPIES * parameterCount(config) * BYTES_PER_WEIGHT[precision]) / MB);
}

/** The cap of an engine that has loaded no model yet (null: no ceiling, no cap). */
export function idleCapMB(ceilingMB: number | null): number | null {
  return ceilingMB === null ? null : Math.min(IDLE_CAP_MB, ceilingMB);
}

/** The cap once a model needing `needMB` loads, from the cap in force. */
export function grownCapMB(currentMB: number | null, needMB: number, ceilingMB: number | null): number | null {
  if (ceilingMB === null) return null;
  return Math.min(ceilingMB, Math.max(currentMB ?? 0, needMB));
}

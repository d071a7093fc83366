// The engine process's memory limits as the host sets them when it starts one. The V8 heap holds
// only JS objects (token lists, the tokenizer's tables, datasets): model weights live outside it, in
// ONNX Runtime's memory and mapped files. The resident-size ceiling bounds everything, native memory
// included; the engine lowers it to what the model it loads needs (src/engine/memoryCap.ts), so a
// runaway allocation ends in the engine long before the machine runs short.

import * as os from 'node:os';

export interface EngineMemory {
  /** V8 heap limit in MB (--max-old-space-size). */
  heapMB: number;
  /** Resident-size ceiling in MB that the engine's watchdog enforces; null: none. */
  capMB: number | null;
  /** V8's young generation: each semi-space's size in MB (--max-semi-space-size); null: V8's default. */
  semiSpaceMB: number | null;
}

const MB = 1024 * 1024;
/** The 270M's tokenizer and a training run's token lists use a few hundred MB of heap at most. */
export const ENGINE_HEAP_MB = 2048;
/**
 * The young generation kept small. V8 grows it to 16 MB semi-spaces (48 MB resident with the copy space)
 * during the bursts of short-lived objects a model load makes (the tokenizer's 262k pieces) and keeps it;
 * the engine's steady work allocates little JS. At 1 MB the engine's peak resident size on the 270M was about
 * 20 MB lower (0.97×, bench/engineMemory.ts; 30–45 MB in bench/runtime.ts's single process) at the same
 * speed, and a fine-tune's time and peak did not change.
 */
export const ENGINE_SEMI_SPACE_MB = 1;
/** The share of the machine's memory the engine may take at most, whatever model it loads. */
const CEILING_SHARE = 0.6;

/** The limits for an engine on a machine with `totalBytes` of memory. */
export function defaultMemory(totalBytes = os.totalmem()): EngineMemory {
  return { heapMB: ENGINE_HEAP_MB, capMB: Math.floor((totalBytes * CEILING_SHARE) / MB), semiSpaceMB: ENGINE_SEMI_SPACE_MB };
}

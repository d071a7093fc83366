// Upper bounds on every size a model's files can claim, checked before anything is sized by it: a
// config.json or GGUF header saying 1e9 layers must fail with a message, not make V8 abort while it
// builds a per-layer array. The bounds sit far above every real Gemma 3 (the 27B has 62 layers,
// hidden 5376, feed-forward 21504, 32 heads of 128, 131072 positions; every size has a 262144-token
// vocabulary) and low enough that nothing sized by them costs much before the weights prove them.

import { shownName } from '../../common/quote';

/** The largest value each GemmaConfig size may take. */
export const GEMMA3_LIMITS = {
  vocabSize: 1 << 20,
  hidden: 1 << 15,
  intermediate: 1 << 17,
  layers: 256,
  heads: 256,
  kvHeads: 256,
  headDim: 1024,
  queryPreAttnScalar: 1 << 16,
  slidingWindow: 1 << 21,
  maxPositions: 1 << 21,
} as const;

/** Bytes a model folder's small JSON files may have (config.json, adapter_config.json): real ones are about 1 KB. */
export const MAX_CONFIG_JSON_BYTES = 1 << 20;
/** Bytes of a model.safetensors.index.json (the 27B's is about 90 KB). */
export const MAX_INDEX_JSON_BYTES = 16 << 20;
/** Bytes of a tokenizer.json (Gemma 3's is 33 MB). */
export const MAX_TOKENIZER_JSON_BYTES = 128 << 20;
/** Token ids a tokenizer may use (Gemma 3: 262145, the image token included). */
export const MAX_TOKEN_ID = GEMMA3_LIMITS.vocabSize;

/**
 * Why `value`, read from a file as `what`, is not an integer in [min, max], or null when it is.
 * The message says what was found and what is allowed.
 */
export function countProblem(what: string, value: unknown, max: number, min = 1): string | null {
  if (typeof value !== 'number' || !Number.isInteger(value)) return `${what} must be an integer in ${min}…${max}, found ${typeof value === 'number' ? value : typeof value}`;
  if (value < min || value > max) return `${what} is ${value}, outside the allowed ${min}…${max}`;
  return null;
}

/** Why a file of `size` bytes is too large to read whole as `what`, or null when it is not. */
export function sizeProblem(what: string, size: number, max: number): string | null {
  return size > max ? `${what} is ${size} bytes, more than the ${max} allowed` : null;
}

/**
 * Why two tensors' byte ranges overlap, or null. Overlapping tensors would let a small file claim many
 * large tensors (every one read and converted): each byte belongs to one tensor, so what the tensors
 * take in memory is bounded by the file's size.
 */
export function firstOverlap(ranges: { name: string; begin: number; end: number }[]): string | null {
  const sorted = [...ranges].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1], cur = sorted[i];
    if (cur.begin < prev.end) return `tensors ${shownName(prev.name)} and ${shownName(cur.name)} share bytes ${cur.begin}…${Math.min(prev.end, cur.end) - 1}: corrupt`;
  }
  return null;
}

// Only finite numbers get in, and only finite numbers get out. A NaN or infinity in a norm weight, a
// quantisation scale, an adapter or an optimizer's state spreads through every later computation and
// ends as an answer or an adapter that is silently wrong; so weights are refused when read, naming the
// file and tensor, and tensors are checked again before anything is written.
//
// The scans read the stored bits, not decoded floats: for f32/f16/bf16 every value; for block-quantised
// tensors only the f16 scales (and mins) of each block, because codes and the K-quants' 6-bit sub-block
// scales are integers and cannot be non-finite (a Q4_0 weight is d·(q − 8): finite whenever d is).

import type { TensorDtype } from './ggufFormat';
import { shownName } from '../../common/quote';

/** A tensor that holds NaN or ±Infinity, or a computation that produced one. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

const F32_EXP = 0x7f800000;
const F16_EXP = 0x7c00;
const BF16_EXP = 0x7f80;

/** Index of the first NaN or ±Infinity in `a`, or −1. */
export function firstNonFiniteF32(a: Float32Array): number {
  // On the bits: an all-ones exponent is NaN or infinity; about 3× faster than Number.isFinite per value.
  // Int32, not Uint32: a word with the sign bit set stays a small integer for V8 (Uint32 would go through doubles, ~5× slower).
  const u = new Int32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) if ((u[i] & F32_EXP) === F32_EXP) return i;
  return -1;
}

/** Index k of the first non-finite 16-bit code (exponent mask `exp`) among the n codes at bytes `at` + k·`stride`, or −1. */
function firstNonFinite16(bytes: Uint8Array, n: number, stride: number, exp: number, at = 0): number {
  if (stride === 2 && at === 0 && bytes.byteOffset % 4 === 0) return firstNonFinitePacked16(bytes, n, exp);
  for (let k = 0, o = at; k < n; k++, o += stride) if (((bytes[o] | (bytes[o + 1] << 8)) & exp) === exp) return k;
  return -1;
}

/**
 * Where each ggml block type keeps its f16 numbers: values per block, bytes per block, and the byte
 * offsets of the f16 scale d (and min m or dmin) inside a block (ggml-common.h's block_* structs).
 */
const BLOCK_HALVES: Record<string, { block: number; bytes: number; offsets: number[] }> = {
  q4_0: { block: 32, bytes: 18, offsets: [0] },
  q4_1: { block: 32, bytes: 20, offsets: [0, 2] },
  q5_0: { block: 32, bytes: 22, offsets: [0] },
  q5_1: { block: 32, bytes: 24, offsets: [0, 2] },
  q8_0: { block: 32, bytes: 34, offsets: [0] },
  q2_k: { block: 256, bytes: 84, offsets: [80, 82] },
  q3_k: { block: 256, bytes: 110, offsets: [108] },
  q4_k: { block: 256, bytes: 144, offsets: [0, 2] },
  q5_k: { block: 256, bytes: 176, offsets: [0, 2] },
  q6_k: { block: 256, bytes: 210, offsets: [208] },
  iq4_nl: { block: 32, bytes: 18, offsets: [0] },
  iq4_xs: { block: 256, bytes: 136, offsets: [0] },
};

/**
 * The same for n packed codes, two per 32-bit word (about twice as fast as one at a time): adding the
 * exponent's lowest bit to each masked lane carries into the lane's top bit only when its exponent is all
 * ones, and never into the next lane.
 */
function firstNonFinitePacked16(bytes: Uint8Array, n: number, exp: number): number {
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, n >> 1);
  const mask = exp * 0x10001, carry = (exp & -exp) * 0x10001, top = 0x80008000;
  for (let i = 0; i < words.length; i++) {
    if ((((words[i] & mask) + carry) & top) !== 0) return ((words[i] & exp) === exp ? 0 : 1) + 2 * i;
  }
  if (n & 1 && ((bytes[2 * n - 2] | (bytes[2 * n - 1] << 8)) & exp) === exp) return n - 1;
  return -1;
}

/** Where a non-finite number is: the element index of a float tensor, or the block of a quantised one. */
export interface NonFiniteFind {
  index: number;
  /** 'value' for float tensors, 'block scale' for block-quantised ones. */
  what: 'value' | 'block scale';
  kind: 'NaN' | 'Infinity' | '-Infinity';
}

/** NaN or which infinity a non-finite 16-bit code is (exponent mask `exp`, sign in the top bit). */
function kind16(code: number, exp: number): NonFiniteFind['kind'] {
  return (code & 0x7fff & ~exp) !== 0 ? 'NaN' : code & 0x8000 ? '-Infinity' : 'Infinity';
}

/**
 * The first non-finite number among `n` values of `dtype` stored in `bytes` (little-endian, as in the
 * file), or null. Block-quantised tensors are checked by their scales (n is the value count).
 */
export function findNonFinite(dtype: TensorDtype, bytes: Uint8Array, n: number): NonFiniteFind | null {
  const at16 = (stride: number, exp: number, what: NonFiniteFind['what']): NonFiniteFind | null => {
    const i = firstNonFinite16(bytes, n, stride, exp);
    return i < 0 ? null : { index: i, what, kind: kind16(bytes[i * stride] | (bytes[i * stride + 1] << 8), exp) };
  };
  switch (dtype) {
    case 'f32': {
      const a = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice(0, 4 * n).buffer);
      const i = firstNonFiniteF32(a);
      return i < 0 ? null : { index: i, what: 'value', kind: kindOf(a[i]) };
    }
    case 'f16': return at16(2, F16_EXP, 'value');
    case 'bf16': return at16(2, BF16_EXP, 'value');
  }
  const t = BLOCK_HALVES[dtype];
  // A block type without an entry would go unchecked: refuse to guess.
  if (!t) throw new Error(`no finite check is defined for tensor type ${dtype}`);
  let first: NonFiniteFind | null = null;
  for (const at of t.offsets) {
    const i = firstNonFinite16(bytes, n / t.block, t.bytes, F16_EXP, at);
    if (i >= 0 && (first === null || i < first.index)) first = { index: i, what: 'block scale', kind: kind16(bytes[i * t.bytes + at] | (bytes[i * t.bytes + at + 1] << 8), F16_EXP) };
  }
  return first;
}

function kindOf(v: number): NonFiniteFind['kind'] {
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/**
 * Throws NonFiniteError naming the file and tensor when the raw `bytes` of `n` values of `dtype` hold a
 * NaN or infinity (a value, or for quantised tensors a block scale).
 * `first` is the index of bytes[0] in the tensor (for a tensor read a chunk at a time).
 */
export function requireFiniteRaw(file: string, tensor: string, dtype: TensorDtype, bytes: Uint8Array, n: number, first = 0): void {
  const bad = findNonFinite(dtype, bytes, n);
  if (!bad) return;
  const where = bad.what === 'value' ? `value ${first + bad.index}` : `the scale of block ${first / (BLOCK_HALVES[dtype]?.block ?? 1) + bad.index}`;
  throw new NonFiniteError(`${file}: tensor ${shownName(tensor)} holds ${bad.kind} at ${where}: the file is damaged`);
}

/** Throws NonFiniteError naming the file and tensor when `data` holds a NaN or infinity. */
export function requireFiniteF32(file: string, tensor: string, data: Float32Array): void {
  const i = firstNonFiniteF32(data);
  if (i >= 0) throw new NonFiniteError(`${file}: tensor ${shownName(tensor)} holds ${kindOf(data[i])} at value ${i}: the file is damaged`);
}

/** What classify and generate say instead of answering from NaN or infinite logits. */
export const NON_FINITE_OUTPUT = 'the model produced non-finite values';

/** Throws NonFiniteError when a model output (logits) holds NaN or ±Infinity: no answer is read from it. */
export function requireFiniteOutput(values: Float32Array): void {
  const i = firstNonFiniteF32(values);
  if (i >= 0) throw new NonFiniteError(`${NON_FINITE_OUTPUT} (${kindOf(values[i])} in its output): the model file or the adapter makes it overflow`);
}

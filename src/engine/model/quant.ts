// Number formats of model files: f16 and bf16 scalars, and ggml's Q4_0 / Q8_0 blocks, computed exactly as
// ggml's reference quantisers (quantize_row_q4_0_ref / quantize_row_q8_0_ref in ggml-quants.c) so that a
// file quantised here holds the same bytes llama-quantize would write. Every intermediate is rounded to
// float32 (Math.fround) because ggml computes in float, not double.
//
// Block layouts (32 weights along the contiguous `in` dimension):
//   Q4_0, 18 bytes: f16 d, then 16 bytes; byte j = q[j] | q[j+16] << 4; value = d·(q − 8).
//   Q8_0, 34 bytes: f16 d, then 32 int8 q; value = d·q.

export const QK = 32;
export const Q4_0_BLOCK_BYTES = 18;
export const Q8_0_BLOCK_BYTES = 34;

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/** IEEE single → half, round to nearest even (as F16C and ggml's software path do); NaN stays NaN. */
export function f32ToF16(v: number): number {
  f32Box[0] = v;
  const x = u32Box[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

let f16Table: Float32Array | null = null;

/** Exact half → single for all 65536 codes, built once; decoding big tensors goes through it. */
export function f16Table32(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  const u = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      t[h] = (sign ? -1 : 1) * mant * 2 ** -24; // ±0 and subnormals
    } else if (exp === 31) {
      u[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    } else {
      u[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  f16Table = t;
  return t;
}

/** IEEE half → single, exact. */
export function f16ToF32(h: number): number {
  return f16Table32()[h & 0xffff];
}

/** single → bfloat16, round to nearest even (torch's rule); NaN → quiet NaN. */
export function f32ToBf16(v: number): number {
  f32Box[0] = v;
  const x = u32Box[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 → single, exact. */
export function bf16ToF32(b: number): number {
  u32Box[0] = (b & 0xffff) << 16;
  return f32Box[0];
}

/** Converts float32 values to f16 codes. */
export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]);
  return out;
}

/** Converts float32 values to bf16 codes. */
export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i];
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) & 0x8000) | 0x7fc0 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** Widens f16 codes to float32. */
export function f16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length), outOffset = 0): Float32Array {
  const t = f16Table32();
  for (let i = 0; i < src.length; i++) out[outOffset + i] = t[src[i]];
  return out;
}

/** Widens bf16 codes to float32. */
export function bf16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length), outOffset = 0): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset + outOffset * 4, src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  return out;
}

function checkBlocks(n: number, what: string): number {
  if (n % QK !== 0) throw new Error(`${what}: ${n} values is not a multiple of the block size ${QK}`);
  return n / QK;
}

/** Quantises x (length a multiple of 32) to Q4_0 exactly as quantize_row_q4_0_ref; writes into dst at dstOffset. */
export function quantizeQ4_0(x: Float32Array, dst: Uint8Array = new Uint8Array((x.length / QK) * Q4_0_BLOCK_BYTES), dstOffset = 0): Uint8Array {
  const nb = checkBlocks(x.length, 'Q4_0 quantise');
  for (let i = 0; i < nb; i++) {
    const base = i * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[base + j];
      const a = Math.abs(v);
      if (amax < a) {
        amax = a;
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const o = dstOffset + i * Q4_0_BLOCK_BYTES;
    const h = f32ToF16(d);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(x[base + j] * id);
      const x1 = Math.fround(x[base + 16 + j] * id);
      // (int8_t)(x + 8.5f) truncates toward zero; the value is never below 0.5 for a finite block.
      const q0 = Math.max(0, Math.min(15, Math.trunc(Math.fround(x0 + 8.5))));
      const q1 = Math.max(0, Math.min(15, Math.trunc(Math.fround(x1 + 8.5))));
      dst[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return dst;
}

/** Dequantises Q4_0 blocks: w = d·(q − 8), into out at outOffset. */
export function dequantizeQ4_0(src: Uint8Array, n: number, out: Float32Array = new Float32Array(n), outOffset = 0): Float32Array {
  const nb = checkBlocks(n, 'Q4_0 dequantise');
  if (src.length < nb * Q4_0_BLOCK_BYTES) throw new Error(`Q4_0 dequantise: ${src.length} bytes hold fewer than ${nb} blocks`);
  const t = f16Table32();
  for (let i = 0; i < nb; i++) {
    const o = i * Q4_0_BLOCK_BYTES;
    const d = t[src[o] | (src[o + 1] << 8)];
    const b = outOffset + i * QK;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j];
      out[b + j] = ((q & 0x0f) - 8) * d;
      out[b + j + 16] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}

/** Quantises x to Q8_0 exactly as quantize_row_q8_0_ref (roundf: halves away from zero). */
export function quantizeQ8_0(x: Float32Array, dst: Uint8Array = new Uint8Array((x.length / QK) * Q8_0_BLOCK_BYTES), dstOffset = 0): Uint8Array {
  const nb = checkBlocks(x.length, 'Q8_0 quantise');
  for (let i = 0; i < nb; i++) {
    const base = i * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[base + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = dstOffset + i * Q8_0_BLOCK_BYTES;
    const h = f32ToF16(d);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
    for (let j = 0; j < QK; j++) {
      const v = Math.fround(x[base + j] * id);
      const r = v < 0 ? -Math.round(-v) : Math.round(v);
      dst[o + 2 + j] = r & 0xff;
    }
  }
  return dst;
}

/** Dequantises Q8_0 blocks: w = d·q, into out at outOffset. */
export function dequantizeQ8_0(src: Uint8Array, n: number, out: Float32Array = new Float32Array(n), outOffset = 0): Float32Array {
  const nb = checkBlocks(n, 'Q8_0 dequantise');
  if (src.length < nb * Q8_0_BLOCK_BYTES) throw new Error(`Q8_0 dequantise: ${src.length} bytes hold fewer than ${nb} blocks`);
  const t = f16Table32();
  for (let i = 0; i < nb; i++) {
    const o = i * Q8_0_BLOCK_BYTES;
    const d = t[src[o] | (src[o + 1] << 8)];
    const b = outOffset + i * QK;
    for (let j = 0; j < QK; j++) out[b + j] = ((src[o + 2 + j] << 24) >> 24) * d;
  }
  return out;
}

/** MatMulNBits / GatherBlockQuantized operands for one [N, K] weight (N rows of K inputs). */
export interface BlockQuantized {
  /** 4-bit: uint8 [N, K/32, 16], element 2i in the low nibble of byte i. 8-bit: uint8 [N, K/32, 32]. */
  data: Uint8Array;
  /** float32 [N, K/32]. */
  scales: Float32Array;
  /** The zero point the data assumes: 8 for 4 bits, 128 for 8 bits (both MatMulNBits' defaults), 0 for some types. */
  zeroPoint: number;
  /** For types stored as w = s·q − m (quantLayout.ts): m per block, float32 [N, K/block]. */
  mins?: Float32Array;
}

/**
 * Reorders a Q4_0 tensor [N, K] into MatMulNBits' layout (bits 4, block 32, default zero point 8).
 * Q4_0 pairs weight j with j+16 in a byte; MatMulNBits pairs 2i with 2i+1, so nibbles move, values do not.
 */
export function q4_0ToMatMulNBits(src: Uint8Array, n: number, k: number): BlockQuantized {
  const kb = checkBlocks(k, 'Q4_0 → MatMulNBits');
  const blocks = n * kb;
  if (src.length !== blocks * Q4_0_BLOCK_BYTES) throw new Error(`Q4_0 → MatMulNBits: ${src.length} bytes for [${n}, ${k}] (want ${blocks * Q4_0_BLOCK_BYTES})`);
  const data = new Uint8Array(blocks * 16);
  const scales = new Float32Array(blocks);
  const t = f16Table32();
  for (let b = 0, o = 0, d = 0; b < blocks; b++, o += Q4_0_BLOCK_BYTES, d += 16) {
    scales[b] = t[src[o] | (src[o + 1] << 8)];
    // Weights 2i, 2i+1 are the low nibbles of bytes 2i, 2i+1 (i < 8), or their high nibbles (i ≥ 8).
    const q = o + 2;
    for (let i = 0; i < 8; i++) {
      const lo = src[q + 2 * i], hi = src[q + 2 * i + 1];
      data[d + i] = (lo & 0x0f) | ((hi & 0x0f) << 4);
      data[d + 8 + i] = (lo >> 4) | (hi & 0xf0);
    }
  }
  return { data, scales, zeroPoint: 8 };
}

/** Reorders a Q8_0 tensor [N, K] into MatMulNBits' 8-bit layout: uint8 q+128 (zero point 128), f32 scales. */
export function q8_0ToMatMulNBits(src: Uint8Array, n: number, k: number): BlockQuantized {
  const kb = checkBlocks(k, 'Q8_0 → MatMulNBits');
  const blocks = n * kb;
  if (src.length !== blocks * Q8_0_BLOCK_BYTES) throw new Error(`Q8_0 → MatMulNBits: ${src.length} bytes for [${n}, ${k}] (want ${blocks * Q8_0_BLOCK_BYTES})`);
  const data = new Uint8Array(blocks * QK);
  const words = new Uint32Array(data.buffer);
  const scales = new Float32Array(blocks);
  const t = f16Table32();
  // Four codes at a time (int8 q → q + 128 flips each byte's top bit); blocks are 34 bytes, so source
  // words are unaligned and read through a DataView (little-endian, as the host's Uint32Array here).
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0, o = 0, w = 0; b < blocks; b++, o += Q8_0_BLOCK_BYTES, w += QK / 4) {
    scales[b] = t[src[o] | (src[o + 1] << 8)];
    for (let j = 0; j < QK / 4; j++) words[w + j] = view.getUint32(o + 2 + 4 * j, true) ^ 0x80808080;
  }
  return { data, scales, zeroPoint: 128 };
}

/** Dequantises a BlockQuantized operand (for tests and for checking a graph's inputs): w = s·(q − zp) − min. */
export function dequantizeBlockQuantized(bq: BlockQuantized, n: number, k: number, bits: 4 | 8, blockSize = QK): Float32Array {
  const out = new Float32Array(n * k);
  const kb = k / blockSize;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const b = r * kb + ((c / blockSize) | 0);
      let q: number;
      if (bits === 4) {
        const byte = bq.data[(r * k + c) >> 1];
        q = (c & 1) === 0 ? byte & 0x0f : byte >> 4;
      } else {
        q = bq.data[r * k + c];
      }
      const v = Math.fround((q - bq.zeroPoint) * bq.scales[b]);
      out[r * k + c] = bq.mins ? Math.fround(v - bq.mins[b]) : v;
    }
  }
  return out;
}

/**
 * Q8_0 blocks [N, K] requantised to Q4_0 in MatMulNBits' 4-bit layout in one pass: the same bytes as
 * q4_0ToMatMulNBits(quantizeQ4_0(dequantizeQ8_0(src))), without the intermediate arrays (the 262k-row
 * head of a Q8_0 embedding is converted at every load).
 */
export function q8_0ToQ4MatMulNBits(src: Uint8Array, n: number, k: number): BlockQuantized {
  const kb = checkBlocks(k, 'Q8_0 → Q4 MatMulNBits');
  const blocks = n * kb;
  if (src.length !== blocks * Q8_0_BLOCK_BYTES) throw new Error(`Q8_0 → Q4 MatMulNBits: ${src.length} bytes for [${n}, ${k}] (want ${blocks * Q8_0_BLOCK_BYTES})`);
  const data = new Uint8Array(blocks * 16);
  const scales = new Float32Array(blocks);
  const t = f16Table32();
  const q8 = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let b = 0; b < blocks; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d8 = t[src[o] | (src[o + 1] << 8)];
    // The largest |value| is the largest |q| (d8 scales all alike). The largest and smallest q come from
    // Math.max/min, not a data-dependent branch (mispredicted often on real weights: ~30% faster); only
    // a tie between +a and −a looks again, for the first of them, which ggml's strict `>` keeps.
    let hi = 0;
    let lo = 0;
    for (let j = o + 2; j < o + 2 + QK; j++) {
      const q = q8[j];
      hi = Math.max(hi, q);
      lo = Math.min(lo, q);
    }
    let qmax = hi >= -lo ? hi : lo;
    if (hi === -lo && hi !== 0) {
      for (let j = o + 2; j < o + 2 + QK; j++) {
        if (q8[j] === hi || q8[j] === lo) {
          qmax = q8[j];
          break;
        }
      }
    }
    // Values q·d8 are exact in float32 (8-bit q times an f16 scale), so doubles give the same products.
    const d = Math.fround((qmax * d8) / -8);
    const id = d ? Math.fround(1 / d) : 0;
    scales[b] = t[f32ToF16(d)];
    const out = b * 16;
    for (let i = 0; i < 16; i++) {
      // x·id ≥ −8 within rounding, so +8.5 is positive and truncation is `| 0`; only the top needs a clamp.
      let c0 = Math.fround(Math.fround(q8[o + 2 + 2 * i] * d8 * id) + 8.5) | 0;
      let c1 = Math.fround(Math.fround(q8[o + 3 + 2 * i] * d8 * id) + 8.5) | 0;
      if (c0 > 15) c0 = 15;
      if (c1 > 15) c1 = 15;
      data[out + i] = c0 | (c1 << 4);
    }
  }
  return { data, scales, zeroPoint: 8 };
}

// ggml's k-quants: super-blocks of 256 values with quantised sub-block scales (ggml-common.h,
// dequantize_row_q*_K in ggml-quants.c). Each sub-block's scale (and min) is a float product of the
// super-block's f16 scale and a small integer, exact in float32, so every value maps to a MatMulNBits
// code, scale and min with nothing rounded:
//   Q2_K,  84 bytes: 16 × (4-bit scale | 4-bit min), 64 bytes of 2-bit q, f16 d, f16 dmin
//                    w = d·sc·q − dmin·m per 16 values, q 0…3            → 4 bits, block 16, zero point 0, mins
//   Q3_K, 110 bytes: 32 bytes high bits, 64 bytes low 2 bits, 12 bytes of 6-bit scales, f16 d
//                    w = d·(sc − 32)·q per 16 values, q −4…3            → 4 bits, block 16, zero point 8
//   Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs, 128 bytes of nibbles
//                    w = d·sc·q − dmin·m per 32 values, q 0…15          → 4 bits, block 32, zero point 0, mins
//   Q5_K, 176 bytes: as Q4_K plus 32 bytes of 5th bits, q 0…31           → 8 bits, block 32, mins
//   Q6_K, 210 bytes: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d
//                    w = d·sc·(q − 32) per 16 values, q 0…63             → 8 bits, block 16

import { f16Table32 } from './quant';
import { halfAt, type BlockDecoder, type NbitsLayout } from './quantLayout';

export const QK_K = 256;

export const Q2_K_LAYOUT: NbitsLayout = { bits: 4, blockSize: 16, zeroPoint: 0, hasMins: true };
export const Q3_K_LAYOUT: NbitsLayout = { bits: 4, blockSize: 16, zeroPoint: 8, hasMins: false };
export const Q4_K_LAYOUT: NbitsLayout = { bits: 4, blockSize: 32, zeroPoint: 0, hasMins: true };
export const Q5_K_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: true };
export const Q6_K_LAYOUT: NbitsLayout = { bits: 8, blockSize: 16, zeroPoint: 128, hasMins: false };

/** Q2_K: per half of 128 values, four 2-bit planes of 32 bytes, each plane two sub-blocks of 16. */
export const decodeQ2_K: BlockDecoder = (src, o, codes, scales, mins) => {
  const t = f16Table32();
  const d = halfAt(src, o + 80, t);
  const dmin = halfAt(src, o + 82, t);
  for (let is = 0; is < 16; is++) {
    const sc = src[o + is];
    scales[is] = Math.fround(d * (sc & 0x0f));
    mins[is] = Math.fround(dmin * (sc >> 4));
  }
  for (let h = 0; h < 2; h++) {
    const q = o + 16 + 32 * h;
    for (let j = 0; j < 4; j++) {
      const shift = 2 * j;
      const at = 128 * h + 32 * j;
      for (let l = 0; l < 32; l++) codes[at + l] = (src[q + l] >> shift) & 3;
    }
  }
};

/** The sixteen 6-bit scales of a Q3_K block (the kmask unpacking of dequantize_row_q3_K), each minus 32. */
function q3Scales(src: Uint8Array, at: number, out: Int8Array): void {
  const u32 = (k: number) => (src[k] | (src[k + 1] << 8) | (src[k + 2] << 16) | (src[k + 3] << 24)) >>> 0;
  const kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  const a0 = u32(at), a1 = u32(at + 4), tmp = u32(at + 8);
  const words = [
    (a0 & kmask2) | (((tmp >>> 0) & kmask1) << 4),
    (a1 & kmask2) | (((tmp >>> 2) & kmask1) << 4),
    ((a0 >>> 4) & kmask2) | (((tmp >>> 4) & kmask1) << 4),
    ((a1 >>> 4) & kmask2) | (((tmp >>> 6) & kmask1) << 4),
  ];
  for (let i = 0; i < 16; i++) out[i] = ((words[i >> 2] >>> (8 * (i & 3))) & 0xff) - 32;
}

const q3ScaleBox = new Int8Array(16);

/** Q3_K: codes q + 8 (q = low 2 bits − 4 where the high bit is clear). */
export const decodeQ3_K: BlockDecoder = (src, o, codes, scales) => {
  const d = halfAt(src, o + 108, f16Table32());
  q3Scales(src, o + 96, q3ScaleBox);
  for (let is = 0; is < 16; is++) scales[is] = Math.fround(d * q3ScaleBox[is]);
  for (let h = 0; h < 2; h++) {
    const q = o + 32 + 32 * h;
    for (let j = 0; j < 4; j++) {
      const shift = 2 * j;
      const bit = 1 << (4 * h + j);
      const at = 128 * h + 32 * j;
      for (let l = 0; l < 32; l++) codes[at + l] = ((src[q + l] >> shift) & 3) - ((src[o + l] & bit) !== 0 ? 0 : 4) + 8;
    }
  }
};

/** get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes at `at`. */
function scaleMinK4(src: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [src[at + j] & 63, src[at + j + 4] & 63];
  return [(src[at + j + 4] & 0x0f) | ((src[at + j - 4] >> 6) << 4), (src[at + j + 4] >> 4) | ((src[at + j] >> 6) << 4)];
}

/** The eight sub-block scales and mins of a Q4_K / Q5_K block. */
function kScalesMins(src: Uint8Array, o: number, scales: Float32Array, mins: Float32Array): void {
  const t = f16Table32();
  const d = halfAt(src, o, t);
  const dmin = halfAt(src, o + 2, t);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(src, o + 4, j);
    scales[j] = Math.fround(d * sc);
    mins[j] = Math.fround(dmin * m);
  }
}

/** Q4_K: per 64 values, 32 bytes: their low nibbles are the first sub-block, the high nibbles the second. */
export const decodeQ4_K: BlockDecoder = (src, o, codes, scales, mins) => {
  kScalesMins(src, o, scales, mins);
  for (let it = 0; it < 4; it++) {
    const q = o + 16 + 32 * it;
    for (let l = 0; l < 32; l++) {
      const b = src[q + l];
      codes[64 * it + l] = b & 0x0f;
      codes[64 * it + 32 + l] = b >> 4;
    }
  }
};

/** Q5_K: Q4_K's nibbles plus a 5th bit from qh (bits 2·it and 2·it+1), codes q + 128. */
export const decodeQ5_K: BlockDecoder = (src, o, codes, scales, mins) => {
  kScalesMins(src, o, scales, mins);
  const qh = o + 16;
  for (let it = 0; it < 4; it++) {
    const q = o + 48 + 32 * it;
    const u1 = 1 << (2 * it), u2 = 2 << (2 * it);
    for (let l = 0; l < 32; l++) {
      const b = src[q + l], h = src[qh + l];
      codes[64 * it + l] = (b & 0x0f) + ((h & u1) !== 0 ? 16 : 0) + 128;
      codes[64 * it + 32 + l] = (b >> 4) + ((h & u2) !== 0 ? 16 : 0) + 128;
    }
  }
};

/** Q6_K: codes (q − 32) + 128; sub-block i (16 values) has scale d·scales[i]. */
export const decodeQ6_K: BlockDecoder = (src, o, codes, scales) => {
  const d = halfAt(src, o + 208, f16Table32());
  for (let i = 0; i < 16; i++) scales[i] = Math.fround(d * ((src[o + 192 + i] << 24) >> 24));
  for (let h = 0; h < 2; h++) {
    const ql = o + 64 * h, qh = o + 128 + 32 * h, at = 128 * h;
    for (let l = 0; l < 32; l++) {
      const a = src[ql + l], b = src[ql + l + 32], hi = src[qh + l];
      codes[at + l] = ((a & 0x0f) | ((hi & 3) << 4)) + 96;
      codes[at + l + 32] = ((b & 0x0f) | (((hi >> 2) & 3) << 4)) + 96;
      codes[at + l + 64] = ((a >> 4) | (((hi >> 4) & 3) << 4)) + 96;
      codes[at + l + 96] = ((b >> 4) | (((hi >> 6) & 3) << 4)) + 96;
    }
  }
};

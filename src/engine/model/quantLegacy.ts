// ggml's 32-value block types beside Q4_0 and Q8_0 (ggml-common.h, dequantize_row_* in ggml-quants.c):
//   Q4_1, 20 bytes: f16 d, f16 m, 16 bytes of nibbles (value j low, j+16 high);   w = d·q + m, q 0…15
//   Q5_0, 22 bytes: f16 d, u32 qh (5th bits), 16 bytes of nibbles;              w = d·(q − 16), q 0…31
//   Q5_1, 24 bytes: f16 d, f16 m, u32 qh, 16 bytes of nibbles;                   w = d·q + m, q 0…31
// Q4_1 keeps its 4-bit codes (zero point 0, min −m); the 5-bit types take 8-bit codes (code = value + 128).

import { f16Table32 } from './quant';
import { halfAt, type BlockDecoder, type NbitsLayout } from './quantLayout';

export const Q4_1_LAYOUT: NbitsLayout = { bits: 4, blockSize: 32, zeroPoint: 0, hasMins: true };
export const Q5_0_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: false };
export const Q5_1_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: true };

/** Q4_1: codes q, scale d, min −m (so that s·q − min = d·q + m). */
export const decodeQ4_1: BlockDecoder = (src, o, codes, scales, mins) => {
  const t = f16Table32();
  scales[0] = halfAt(src, o, t);
  mins[0] = -halfAt(src, o + 2, t);
  for (let j = 0; j < 16; j++) {
    const b = src[o + 4 + j];
    codes[j] = b & 0x0f;
    codes[j + 16] = b >> 4;
  }
};

/** The 5-bit values of a Q5 block: nibble j (low) / j+16 (high) plus bit j / j+16 of qh, each + `offset`. */
function fiveBit(src: Uint8Array, qhAt: number, qsAt: number, codes: Uint8Array, offset: number): void {
  const qh = (src[qhAt] | (src[qhAt + 1] << 8) | (src[qhAt + 2] << 16) | (src[qhAt + 3] << 24)) >>> 0;
  for (let j = 0; j < 16; j++) {
    const b = src[qsAt + j];
    codes[j] = ((b & 0x0f) | (((qh >>> j) << 4) & 0x10)) + offset;
    codes[j + 16] = ((b >> 4) | ((qh >>> (j + 12)) & 0x10)) + offset;
  }
}

/** Q5_0: codes (q − 16) + 128, scale d. */
export const decodeQ5_0: BlockDecoder = (src, o, codes, scales) => {
  scales[0] = halfAt(src, o, f16Table32());
  fiveBit(src, o + 2, o + 6, codes, 128 - 16);
};

/** Q5_1: codes q + 128, scale d, min −m. */
export const decodeQ5_1: BlockDecoder = (src, o, codes, scales, mins) => {
  const t = f16Table32();
  scales[0] = halfAt(src, o, t);
  mins[0] = -halfAt(src, o + 2, t);
  fiveBit(src, o + 4, o + 8, codes, 128);
};

// ggml's non-linear 4-bit types (ggml-common.h, dequantize_row_iq4_* in ggml-quants.c): a nibble indexes
// a fixed table of 16 int8 values, kvalues_iq4nl. The table's values are the codes here (8 bits, + 128):
//   IQ4_NL,  18 bytes per 32 values: f16 d, 16 bytes of nibbles (j low, j+16 high); w = d·kv[q]
//   IQ4_XS, 136 bytes per 256: f16 d, u16 scales_h, 4 bytes scales_l, 128 bytes of nibbles;
//           sub-block ib of 32 has ls = 6 bits from scales_l / scales_h and w = d·(ls − 32)·kv[q]

import { f16Table32 } from './quant';
import { halfAt, type BlockDecoder, type NbitsLayout } from './quantLayout';

/** kvalues_iq4nl. */
const KVALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
const KCODES = Uint8Array.from(KVALUES, (v) => v + 128);

export const IQ4_NL_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: false };
export const IQ4_XS_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: false };

/** 16 bytes of nibbles at q as 32 codes at codes[at…]: byte j gives value j (low) and j+16 (high). */
function nibbleCodes(src: Uint8Array, q: number, codes: Uint8Array, at: number): void {
  for (let j = 0; j < 16; j++) {
    const b = src[q + j];
    codes[at + j] = KCODES[b & 0x0f];
    codes[at + j + 16] = KCODES[b >> 4];
  }
}

export const decodeIq4Nl: BlockDecoder = (src, o, codes, scales) => {
  scales[0] = halfAt(src, o, f16Table32());
  nibbleCodes(src, o + 2, codes, 0);
};

export const decodeIq4Xs: BlockDecoder = (src, o, codes, scales) => {
  const d = halfAt(src, o, f16Table32());
  const sh = src[o + 2] | (src[o + 3] << 8);
  for (let ib = 0; ib < 8; ib++) {
    const ls = ((src[o + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 0x0f) | (((sh >> (2 * ib)) & 3) << 4);
    scales[ib] = Math.fround(d * (ls - 32));
    nibbleCodes(src, o + 8 + 16 * ib, codes, 32 * ib);
  }
};

// The table of ggml block types the engine reads: their ids, block sizes, MatMulNBits layouts and block
// decoders, and the two generic conversions built on them: dequantisation to float32 (as llama.cpp's
// dequantize_row_* computes it) and the exact MatMulNBits operands (quantLayout.ts). Q4_0 and Q8_0 keep
// their faster dedicated converters in quant.ts; every other type goes through its decoder.

import {
  dequantizeQ4_0, dequantizeQ8_0, f16Table32, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, q4_0ToMatMulNBits, q8_0ToMatMulNBits, QK,
  type BlockQuantized,
} from './quant';
import { halfAt, type BlockDecoder, type NbitsLayout } from './quantLayout';
import { decodeQ4_1, decodeQ5_0, decodeQ5_1, Q4_1_LAYOUT, Q5_0_LAYOUT, Q5_1_LAYOUT } from './quantLegacy';
import {
  decodeQ2_K, decodeQ3_K, decodeQ4_K, decodeQ5_K, decodeQ6_K, Q2_K_LAYOUT, Q3_K_LAYOUT, Q4_K_LAYOUT, Q5_K_LAYOUT, Q6_K_LAYOUT, QK_K,
} from './quantK';
import { decodeIq4Nl, decodeIq4Xs, IQ4_NL_LAYOUT, IQ4_XS_LAYOUT } from './quantIq4';

export type QuantDtype = 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q8_0' | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'iq4_xs';

export interface QuantType {
  dtype: QuantDtype;
  /** ggml.h `enum ggml_type`. */
  ggml: number;
  /** llama.cpp's name (ggml_type_name). */
  name: string;
  /** Values per block. */
  block: number;
  /** Bytes per block. */
  bytes: number;
  layout: NbitsLayout;
  decode: BlockDecoder;
}

const Q4_0_LAYOUT: NbitsLayout = { bits: 4, blockSize: 32, zeroPoint: 8, hasMins: false };
const Q8_0_LAYOUT: NbitsLayout = { bits: 8, blockSize: 32, zeroPoint: 128, hasMins: false };

const decodeQ4_0: BlockDecoder = (src, o, codes, scales) => {
  scales[0] = halfAt(src, o, f16Table32());
  for (let j = 0; j < 16; j++) {
    const b = src[o + 2 + j];
    codes[j] = b & 0x0f;
    codes[j + 16] = b >> 4;
  }
};

const decodeQ8_0: BlockDecoder = (src, o, codes, scales) => {
  scales[0] = halfAt(src, o, f16Table32());
  for (let j = 0; j < QK; j++) codes[j] = src[o + 2 + j] ^ 0x80;
};

/** Every block type, in ggml id order. */
export const QUANT_TYPES: readonly QuantType[] = [
  { dtype: 'q4_0', ggml: 2, name: 'Q4_0', block: QK, bytes: Q4_0_BLOCK_BYTES, layout: Q4_0_LAYOUT, decode: decodeQ4_0 },
  { dtype: 'q4_1', ggml: 3, name: 'Q4_1', block: QK, bytes: 20, layout: Q4_1_LAYOUT, decode: decodeQ4_1 },
  { dtype: 'q5_0', ggml: 6, name: 'Q5_0', block: QK, bytes: 22, layout: Q5_0_LAYOUT, decode: decodeQ5_0 },
  { dtype: 'q5_1', ggml: 7, name: 'Q5_1', block: QK, bytes: 24, layout: Q5_1_LAYOUT, decode: decodeQ5_1 },
  { dtype: 'q8_0', ggml: 8, name: 'Q8_0', block: QK, bytes: Q8_0_BLOCK_BYTES, layout: Q8_0_LAYOUT, decode: decodeQ8_0 },
  { dtype: 'q2_k', ggml: 10, name: 'Q2_K', block: QK_K, bytes: 84, layout: Q2_K_LAYOUT, decode: decodeQ2_K },
  { dtype: 'q3_k', ggml: 11, name: 'Q3_K', block: QK_K, bytes: 110, layout: Q3_K_LAYOUT, decode: decodeQ3_K },
  { dtype: 'q4_k', ggml: 12, name: 'Q4_K', block: QK_K, bytes: 144, layout: Q4_K_LAYOUT, decode: decodeQ4_K },
  { dtype: 'q5_k', ggml: 13, name: 'Q5_K', block: QK_K, bytes: 176, layout: Q5_K_LAYOUT, decode: decodeQ5_K },
  { dtype: 'q6_k', ggml: 14, name: 'Q6_K', block: QK_K, bytes: 210, layout: Q6_K_LAYOUT, decode: decodeQ6_K },
  { dtype: 'iq4_nl', ggml: 20, name: 'IQ4_NL', block: QK, bytes: 18, layout: IQ4_NL_LAYOUT, decode: decodeIq4Nl },
  { dtype: 'iq4_xs', ggml: 23, name: 'IQ4_XS', block: QK_K, bytes: 136, layout: IQ4_XS_LAYOUT, decode: decodeIq4Xs },
];

const BY_DTYPE = new Map(QUANT_TYPES.map((t) => [t.dtype, t]));

/** The table entry of a block dtype. */
export function quantType(dtype: QuantDtype): QuantType {
  return BY_DTYPE.get(dtype)!;
}

/** True for a block-quantised dtype name. */
export function isQuantDtype(dtype: string): dtype is QuantDtype {
  return BY_DTYPE.has(dtype as QuantDtype);
}

/** Per-block scratch of one decode: codes, sub-block scales and mins. */
function scratchFor(t: QuantType) {
  const subs = t.block / t.layout.blockSize;
  return { codes: new Uint8Array(t.block), scales: new Float32Array(subs), mins: new Float32Array(subs) };
}

/** Dequantises n values (whole blocks) into out[outOffset…]: w = fround(fround(s·(code − zp)) − min), as ggml does. */
export function dequantizeBlocks(dtype: QuantDtype, src: Uint8Array, n: number, out: Float32Array = new Float32Array(n), outOffset = 0): Float32Array {
  if (dtype === 'q4_0') return dequantizeQ4_0(src, n, out, outOffset);
  if (dtype === 'q8_0') return dequantizeQ8_0(src, n, out, outOffset);
  const t = quantType(dtype);
  const nb = blockCount(t, n, 'dequantise');
  if (src.length < nb * t.bytes) throw new Error(`${t.name} dequantise: ${src.length} bytes hold fewer than ${nb} blocks`);
  const { codes, scales, mins } = scratchFor(t);
  const { zeroPoint: zp, blockSize: bs, hasMins } = t.layout;
  for (let b = 0; b < nb; b++) {
    t.decode(src, b * t.bytes, codes, scales, mins);
    const at = outOffset + b * t.block;
    for (let e = 0; e < t.block; e++) {
      const s = scales[(e / bs) | 0];
      const v = Math.fround((codes[e] - zp) * s);
      out[at + e] = hasMins ? Math.fround(v - mins[(e / bs) | 0]) : v;
    }
  }
  return out;
}

function blockCount(t: QuantType, n: number, what: string): number {
  if (n % t.block !== 0) throw new Error(`${t.name} ${what}: ${n} values is not a multiple of the block size ${t.block}`);
  return n / t.block;
}

/**
 * Rows [N, K] of a block type as MatMulNBits operands (its layout) holding exactly the stored values:
 * data uint8 [N, K/bs, bs·bits/8] (4 bits: value 2i in the low nibble of byte i), scales [N, K/bs], and for
 * types with mins, mins [N, K/bs] (w = s·(code − zp) − min).
 */
export function blocksToNbits(dtype: QuantDtype, src: Uint8Array, n: number, k: number): BlockQuantized {
  if (dtype === 'q4_0') return q4_0ToMatMulNBits(src, n, k);
  if (dtype === 'q8_0') return q8_0ToMatMulNBits(src, n, k);
  const t = quantType(dtype);
  const perRow = blockCount(t, k, '→ MatMulNBits');
  const blocks = n * perRow;
  if (src.length !== blocks * t.bytes) throw new Error(`${t.name} → MatMulNBits: ${src.length} bytes for [${n}, ${k}] (want ${blocks * t.bytes})`);
  const { bits, blockSize: bs, zeroPoint, hasMins } = t.layout;
  const subs = t.block / bs;
  const data = new Uint8Array((n * k * bits) / 8);
  const scales = new Float32Array((n * k) / bs);
  const mins = hasMins ? new Float32Array((n * k) / bs) : undefined;
  const scratch = scratchFor(t);
  const { codes } = scratch;
  for (let b = 0; b < blocks; b++) {
    t.decode(src, b * t.bytes, codes, scratch.scales, scratch.mins);
    scales.set(scratch.scales, b * subs);
    if (mins) mins.set(scratch.mins, b * subs);
    // Blocks of a row follow each other and rows follow rows, so block b's values start at b·block.
    if (bits === 8) {
      data.set(codes, b * t.block);
    } else {
      const at = (b * t.block) >> 1;
      for (let i = 0; i < t.block >> 1; i++) data[at + i] = codes[2 * i] | (codes[2 * i + 1] << 4);
    }
  }
  return { data, scales, zeroPoint, mins };
}

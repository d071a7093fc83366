// How a ggml block type maps onto ONNX Runtime's MatMulNBits operands without changing a single value.
//
// Every block type this engine reads stores w = scale·(code − zero point) − min per sub-block, with small
// integer codes, a float scale per sub-block and, for the "asymmetric" types (Q4_1, Q5_1, Q2_K, Q4_K,
// Q5_K), a float min per sub-block. MatMulNBits computes x·Wᵀ with W = scale·(code − zero point) for codes
// of 4 or 8 bits in blocks of 16 or 32 along the input; so a type maps exactly when its codes fit those
// bits and its sub-blocks are 16 or 32 long. The min, where there is one, is not a MatMulNBits concept:
// x·Wᵀ = x·(S⊙(Q − zp))ᵀ − blocksum(x)·Mᵀ, where blocksum(x) sums x over each sub-block and M [N, K/bs] holds
// the mins, so the graph subtracts that small product (params.ts applyLinear).
//
// A type's decoder (quantLegacy.ts, quantK.ts, quantIq4.ts) turns one ggml block into codes already offset
// by the layout's zero point, plus its sub-blocks' scales and mins; everything else here is generic.

/** The MatMulNBits form a block type takes. */
export interface NbitsLayout {
  bits: 4 | 8;
  /** Values per scale (MatMulNBits' block_size). */
  blockSize: 16 | 32;
  /** The zero point every code is stored against (uniform per type): value = scale·(code − zeroPoint) − min. */
  zeroPoint: number;
  /** Whether a per-block min is subtracted (w = s·q − m). */
  hasMins: boolean;
}

/**
 * Decodes ggml block at byte `o` of `src` into `codes` (one per value, offset by the layout's zero point),
 * `scales` (one per sub-block) and, for types with mins, `mins` (one per sub-block).
 */
export type BlockDecoder = (src: Uint8Array, o: number, codes: Uint8Array, scales: Float32Array, mins: Float32Array) => void;

/** A key that is equal for two layouts exactly when their operands can be stacked into one MatMulNBits. */
export function layoutKey(l: NbitsLayout): string {
  return `${l.bits}b${l.blockSize}z${l.zeroPoint}${l.hasMins ? 'm' : ''}`;
}

/** Reads an IEEE half at byte o (little-endian) as a float32, through the shared table. */
export function halfAt(src: Uint8Array, o: number, table: Float32Array): number {
  return table[src[o] | (src[o + 1] << 8)];
}

// The GGUF container's vocabulary, shared by the reader (gguf.ts) and the writer (ggufWriter.ts):
// metadata value types, the ggml tensor types this engine handles, and their byte sizes.

import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK } from './quant';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value type ids (gguf.h `enum gguf_type`). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufTypeId = (typeof GgufType)[keyof typeof GgufType];

/** Bytes of one scalar of each fixed-size value type (strings and arrays are variable). */
export const GGUF_SCALAR_BYTES: Partial<Record<number, number>> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8,
};

export type GgufArrayItems =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufArray[];

export interface GgufArray {
  elemType: GgufTypeId;
  items: GgufArrayItems;
}

/** One metadata value, tagged with its GGUF type so that a file can be rewritten faithfully. */
export type GgufValue =
  | { type: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 12; value: number }
  | { type: 10 | 11; value: bigint }
  | { type: 7; value: boolean }
  | { type: 8; value: string }
  | { type: 9; value: GgufArray };

/** ggml tensor types the engine reads and writes (ggml.h `enum ggml_type`). */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeId = (typeof GgmlType)[keyof typeof GgmlType];

export type TensorDtype = 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q8_0';

const TYPE_INFO: Record<number, { dtype: TensorDtype; block: number; bytes: number }> = {
  0: { dtype: 'f32', block: 1, bytes: 4 },
  1: { dtype: 'f16', block: 1, bytes: 2 },
  2: { dtype: 'q4_0', block: QK, bytes: Q4_0_BLOCK_BYTES },
  8: { dtype: 'q8_0', block: QK, bytes: Q8_0_BLOCK_BYTES },
  30: { dtype: 'bf16', block: 1, bytes: 2 },
};

/** The dtype, block size and block bytes of a ggml type id, or undefined when the engine does not know it. */
export function ggmlTypeInfo(type: number): { dtype: TensorDtype; block: number; bytes: number } | undefined {
  return TYPE_INFO[type];
}

/** The ggml type id of a dtype. */
export function ggmlTypeOf(dtype: TensorDtype): GgmlTypeId {
  switch (dtype) {
    case 'f32': return GgmlType.F32;
    case 'f16': return GgmlType.F16;
    case 'bf16': return GgmlType.BF16;
    case 'q4_0': return GgmlType.Q4_0;
    case 'q8_0': return GgmlType.Q8_0;
  }
}

/** Bytes of one row of `n` values of a dtype (n must be a multiple of the block size for quantised types). */
export function rowBytes(dtype: TensorDtype, n: number): number {
  switch (dtype) {
    case 'f32': return n * 4;
    case 'f16':
    case 'bf16': return n * 2;
    case 'q4_0': return (n / QK) * Q4_0_BLOCK_BYTES;
    case 'q8_0': return (n / QK) * Q8_0_BLOCK_BYTES;
  }
}

/** Rounds `n` up to a multiple of `a`. */
export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

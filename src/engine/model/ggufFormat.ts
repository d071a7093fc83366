// The GGUF container's vocabulary, shared by the reader (gguf.ts) and the writer (ggufWriter.ts):
// metadata value types, the ggml tensor types this engine handles (quantTypes.ts has the block types), and
// their byte sizes.

import { QUANT_TYPES, type QuantDtype } from './quantTypes';

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

/** ggml's float tensor types (ggml.h `enum ggml_type`); the block types are in quantTypes.ts. */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeId = number;

export type FloatDtype = 'f32' | 'f16' | 'bf16';
export type TensorDtype = FloatDtype | QuantDtype;

export interface GgmlTypeInfo {
  dtype: TensorDtype;
  /** llama.cpp's name (F32, Q4_K, …). */
  name: string;
  /** Values per block (1 for float types). */
  block: number;
  /** Bytes per block. */
  bytes: number;
}

const FLOAT_TYPES: GgmlTypeInfo[] = [
  { dtype: 'f32', name: 'F32', block: 1, bytes: 4 },
  { dtype: 'f16', name: 'F16', block: 1, bytes: 2 },
  { dtype: 'bf16', name: 'BF16', block: 1, bytes: 2 },
];
const FLOAT_IDS: Record<FloatDtype, number> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16 };

const BY_ID = new Map<number, GgmlTypeInfo>([
  ...FLOAT_TYPES.map((t) => [FLOAT_IDS[t.dtype as FloatDtype], t] as const),
  ...QUANT_TYPES.map((t) => [t.ggml, { dtype: t.dtype, name: t.name, block: t.block, bytes: t.bytes }] as const),
]);
const BY_DTYPE = new Map([...BY_ID].map(([id, t]) => [t.dtype, { id, info: t }]));

/** The tensor types the engine reads, as "NAME=id" for messages. */
export const SUPPORTED_TYPES = [...BY_ID].sort((a, b) => a[0] - b[0]).map(([id, t]) => `${t.name}=${id}`).join(', ');

/** ggml types the engine does not run, by id, so that a refusal can name them. */
const OTHER_TYPE_NAMES: Record<number, string> = {
  9: 'Q8_1', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 21: 'IQ3_S', 22: 'IQ2_S', 24: 'I8',
  25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4', 40: 'NVFP4', 41: 'Q1_0', 42: 'Q2_0',
};

/** "IQ2_XXS (ggml type 16)" for a type id the engine does not run, or "ggml type 99" for one nobody knows. */
export function unsupportedTypeName(type: number): string {
  const name = OTHER_TYPE_NAMES[type];
  return name ? `${name} (ggml type ${type})` : `ggml type ${type}`;
}

/** The dtype, name, block size and block bytes of a ggml type id, or undefined when the engine does not know it. */
export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
  return BY_ID.get(type);
}

/** The ggml type id of a dtype. */
export function ggmlTypeOf(dtype: TensorDtype): GgmlTypeId {
  return BY_DTYPE.get(dtype)!.id;
}

/** llama.cpp's name of a dtype (Q4_K, BF16, …). */
export function ggmlTypeName(dtype: TensorDtype): string {
  return BY_DTYPE.get(dtype)!.info.name;
}

/** Bytes of one row of `n` values of a dtype (n must be a multiple of the block size for quantised types). */
export function rowBytes(dtype: TensorDtype, n: number): number {
  const t = BY_DTYPE.get(dtype)!.info;
  return (n / t.block) * t.bytes;
}

/** Rounds `n` up to a multiple of `a`. */
export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

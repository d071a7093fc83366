// What a graph is made of: typed values with (partly symbolic) shapes, and the nodes that compute them,
// each with its attributes. graph.ts records them, ops.ts and the VJPs make them, and lowering.ts
// rewrites them for a target; none of those needs the graph builder to speak of a node.

import type { AttrValue } from './proto';

export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
/** A fixed size or a symbolic name (e.g. 'T'). */
export type Dim = number | string;

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  /** null where the builder does not track the shape. */
  readonly shape: readonly Dim[] | null;
}

export interface NodeRecord {
  op: string;
  domain: string;
  inputs: (Value | null)[];
  outputs: Value[];
  attrs: Record<string, AttrValue>;
}

/** Attribute values of a node, by kind. */
export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
  ints: (value: number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: number[]): AttrValue => ({ kind: 'floats', value }),
};

// A minimal protobuf writer for the part of onnx.proto the engine emits (ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto). Hand-written rather than protobufjs + the
// official .proto: the engine only ever *writes* models, the subset is ~15 fields, and this keeps the
// worker bundle free of a code generator and a runtime reflection library.
//
// Field numbers are onnx.proto's (onnx 1.17). Weights never pass through here as bytes of the model:
// large initializers are written as external data (data_location = EXTERNAL), see graph.ts.

/** ONNX TensorProto.DataType numbers. */
export const OnnxDataType = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, UINT4: 21, INT4: 22,
} as const;

/** ONNX AttributeProto.AttributeType numbers. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_LEN = 2;

/** Appends protobuf fields to a growing byte buffer. */
export class PbWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private rawVarint(v: number | bigint): void {
    // int64 negatives are ten-byte two's complement varints.
    let x = typeof v === 'bigint' ? v : BigInt(v);
    if (x < 0n) x += 1n << 64n;
    this.ensure(10);
    if (x < 0x80n) {
      this.buf[this.len++] = Number(x);
      return;
    }
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  private smallVarint(v: number): void {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
  }

  private tag(field: number, wire: number): void {
    this.smallVarint((field << 3) | wire);
  }

  /** An int32/int64/enum/bool field. */
  int(field: number, v: number | bigint): this {
    if (!(typeof v === 'bigint' || Number.isSafeInteger(v))) throw new Error(`protobuf int field ${field}: ${v} is not a safe integer`);
    this.tag(field, WIRE_VARINT);
    if (typeof v === 'number' && v >= 0 && v < 2 ** 31) this.smallVarint(v);
    else this.rawVarint(v);
    return this;
  }

  /** A float (fixed32) field. */
  float(field: number, v: number): this {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
    return this;
  }

  /** A bytes / string / sub-message field. */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.smallVarint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, w: PbWriter): this {
    return this.bytes(field, w.finish());
  }

  /** A packed repeated int64 field. */
  packedInts(field: number, vs: readonly number[]): this {
    const inner = new PbWriter();
    for (const v of vs) {
      if (v >= 0 && v < 2 ** 31) inner.smallVarint(v);
      else inner.rawVarint(v);
    }
    return this.bytes(field, inner.finish());
  }

  /** A packed repeated float field. */
  packedFloats(field: number, vs: readonly number[]): this {
    const b = new Uint8Array(vs.length * 4);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytes(field, b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'tensor'; value: TensorMsg }
  | { kind: 'graph'; value: SubgraphMsg };

/** A control-flow body (If branch): nodes and outputs; values of the enclosing graphs are read by name. */
export interface SubgraphMsg {
  name: string;
  nodes: NodeMsg[];
  outputs: ValueInfoMsg[];
}

export interface TensorMsg {
  name: string;
  dataType: number;
  dims: readonly number[];
  /** Inline bytes, little-endian. */
  raw?: Uint8Array;
  /** External data: a location key (the `path` of an ORT externalData entry) and a byte range in it. */
  external?: { location: string; offset: number; length: number };
}

export interface NodeMsg {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttrValue>;
}

export interface ValueInfoMsg {
  name: string;
  dataType: number;
  /** A number is a fixed dimension, a string a symbolic one. */
  shape: readonly (number | string)[] | null;
}

export interface ModelMsg {
  irVersion: number;
  producer: string;
  opsets: { domain: string; version: number }[];
  graphName: string;
  nodes: NodeMsg[];
  initializers: TensorMsg[];
  inputs: ValueInfoMsg[];
  outputs: ValueInfoMsg[];
}

function tensorMsg(t: TensorMsg): PbWriter {
  const w = new PbWriter();
  if (t.dims.length) w.packedInts(1, t.dims);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const kv = (k: string, v: string) => new PbWriter().string(1, k).string(2, v);
    w.message(13, kv('location', t.external.location));
    w.message(13, kv('offset', String(t.external.offset)));
    w.message(13, kv('length', String(t.external.length)));
    w.int(14, 1); // DataLocation.EXTERNAL
  }
  return w;
}

function attributeMsg(name: string, a: AttrValue): PbWriter {
  const w = new PbWriter().string(1, name);
  switch (a.kind) {
    case 'int': w.int(3, a.value).int(20, AttrType.INT); break;
    case 'float': w.float(2, a.value).int(20, AttrType.FLOAT); break;
    case 'string': w.string(4, a.value).int(20, AttrType.STRING); break;
    case 'ints': w.packedInts(8, a.value).int(20, AttrType.INTS); break;
    case 'floats': w.packedFloats(7, a.value).int(20, AttrType.FLOATS); break;
    case 'tensor': w.message(5, tensorMsg(a.value)).int(20, AttrType.TENSOR); break;
    case 'graph': w.message(6, subgraphMsg(a.value)).int(20, AttrType.GRAPH); break;
  }
  return w;
}

function nodeMsg(n: NodeMsg): PbWriter {
  const w = new PbWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [k, a] of Object.entries(n.attributes)) w.message(5, attributeMsg(k, a));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function valueInfoMsg(v: ValueInfoMsg): PbWriter {
  const tensorType = new PbWriter().int(1, v.dataType);
  if (v.shape) {
    const shape = new PbWriter();
    for (const d of v.shape) {
      shape.message(1, typeof d === 'number' ? new PbWriter().int(1, d) : new PbWriter().string(2, d));
    }
    tensorType.message(2, shape);
  }
  return new PbWriter().string(1, v.name).message(2, new PbWriter().message(1, tensorType));
}

function subgraphMsg(sg: SubgraphMsg): PbWriter {
  const g = new PbWriter();
  for (const n of sg.nodes) g.message(1, nodeMsg(n));
  g.string(2, sg.name);
  for (const v of sg.outputs) g.message(12, valueInfoMsg(v));
  return g;
}

/** Serialises a ModelProto. */
export function encodeModel(m: ModelMsg): Uint8Array {
  const g = new PbWriter();
  for (const n of m.nodes) g.message(1, nodeMsg(n));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensorMsg(t));
  for (const v of m.inputs) g.message(11, valueInfoMsg(v));
  for (const v of m.outputs) g.message(12, valueInfoMsg(v));
  const w = new PbWriter().int(1, m.irVersion).string(2, m.producer);
  w.message(7, g);
  for (const o of m.opsets) w.message(8, new PbWriter().string(1, o.domain).int(2, o.version));
  return w.finish();
}

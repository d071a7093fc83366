// GGUF reader (v2/v3, little-endian): the header, every metadata value type (arrays included), the tensor
// infos, alignment and data offsets. Every count and size is checked against hard limits and against the
// file's length *before* anything is allocated, so a corrupt or hostile file fails with a message naming
// the file and the problem. Tensor data is not read here: readGgufTensor reads one tensor (or a few of
// its rows) on demand with positioned reads.

import * as fs from 'node:fs';
import {
  alignUp, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_SCALAR_BYTES, GgufType, ggmlTypeInfo, SUPPORTED_TYPES, unsupportedTypeName,
  type GgmlTypeId, type GgufArray, type GgufArrayItems, type GgufTypeId, type GgufValue, type TensorDtype,
} from './ggufFormat';
import { readFdInto, readRangeInto } from './fileRange';
import { NotRegularFileError, openRegularFile } from './regularFile';
import { quote, shownName } from '../../common/quote';
import { firstOverlap } from './bounds';

export class GgufError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension. */
  ne: number[];
  type: GgmlTypeId;
  dtype: TensorDtype;
  /** Absolute position of the first byte in the file. */
  offset: number;
  nbytes: number;
  /** A "row" is ne[0] contiguous values; rows = product of ne[1…]. */
  rows: number;
  rowBytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  /** In file order. */
  tensors: Map<string, GgufTensorInfo>;
  /** Absolute position of the data section. */
  dataOffset: number;
}

// Far above anything a Gemma file holds, low enough that a lie in the header cannot cost much memory.
const LIMITS = {
  tensors: 1 << 16,
  kvs: 1 << 16,
  stringBytes: 16 << 20,
  keyBytes: 1 << 16,
  arrayItems: 1 << 22,
  arrayBytes: 256 << 20,
  arrayDepth: 4,
  dims: 4,
  dim: 2 ** 40,
};
const WINDOW = 1 << 20;

/** What an error names: a text, or a function that makes it (only when an error needs it). */
type Label = string | (() => string);

const labelText = (l: Label): string => (typeof l === 'string' ? l : l());

/** A forward reader over the header part of a file, through a 1 MiB window of positioned reads. */
class HeaderCursor {
  pos = 0;
  /** The bytes read, at winStart; a view of `room`, which is reused (a 262k vocabulary moves the window a dozen times). */
  private win = Buffer.alloc(0);
  private room = Buffer.alloc(0);
  private winStart = 0;

  constructor(private fd: number, private file: string, readonly size: number) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Makes bytes [pos, pos+n) available and returns their offset in the window (read this.win only after calling it). */
  private need(n: number, what: Label): number {
    if (n > this.remaining) {
      throw new GgufError(this.file, `file ends at byte ${this.size} while reading ${labelText(what)} at byte ${this.pos} (needs ${n} more bytes): truncated`);
    }
    if (this.pos < this.winStart || this.pos + n > this.winStart + this.win.length) {
      const len = Math.min(Math.max(n, WINDOW), this.size - this.pos);
      if (this.room.length < len) this.room = Buffer.alloc(len);
      this.win = this.room.subarray(0, len);
      readFdInto(this.fd, this.file, this.pos, len, this.win);
      this.winStart = this.pos;
    }
    const at = this.pos - this.winStart;
    this.pos += n;
    return at;
  }

  u8(what: string): number { const at = this.need(1, what); return this.win[at]; }
  i8(what: string): number { const at = this.need(1, what); return this.win.readInt8(at); }
  u16(what: string): number { const at = this.need(2, what); return this.win.readUInt16LE(at); }
  i16(what: string): number { const at = this.need(2, what); return this.win.readInt16LE(at); }
  u32(what: string): number { const at = this.need(4, what); return this.win.readUInt32LE(at); }
  i32(what: string): number { const at = this.need(4, what); return this.win.readInt32LE(at); }
  f32(what: string): number { const at = this.need(4, what); return this.win.readFloatLE(at); }
  f64(what: string): number { const at = this.need(8, what); return this.win.readDoubleLE(at); }
  u64(what: Label): bigint { const at = this.need(8, what); return this.win.readBigUInt64LE(at); }
  i64(what: string): bigint { const at = this.need(8, what); return this.win.readBigInt64LE(at); }

  /** A u64 that must fit a JS number and be ≤ max. */
  count(what: Label, max: number): number {
    const v = this.u64(what);
    if (v > BigInt(max)) throw new GgufError(this.file, `${labelText(what)} is ${v}, beyond the limit ${max}: corrupt or not a GGUF model`);
    return Number(v);
  }

  /** A length-prefixed UTF-8 string; `what` names it in errors (a function: made only then, as for 262k vocabulary items). */
  string(what: Label, max = LIMITS.stringBytes): string {
    const len = this.count(() => `length of ${labelText(what)}`, max);
    if (len > this.remaining) throw new GgufError(this.file, `${labelText(what)} claims ${len} bytes but only ${this.remaining} remain: truncated`);
    const at = this.need(len, what);
    return this.win.toString('utf8', at, at + len);
  }

  /** Copies n raw bytes out (for numeric arrays). */
  bytes(n: number, what: string): Uint8Array {
    const at = this.need(n, what);
    return new Uint8Array(this.win.buffer.slice(this.win.byteOffset + at, this.win.byteOffset + at + n));
  }
}

function readArray(c: HeaderCursor, file: string, label: string, depth: number): GgufArray {
  if (depth > LIMITS.arrayDepth) throw new GgufError(file, `metadata ${label}: arrays nested deeper than ${LIMITS.arrayDepth}`);
  const elemType = c.u32(`element type of ${label}`);
  const n = c.count(`item count of ${label}`, LIMITS.arrayItems);
  const size = GGUF_SCALAR_BYTES[elemType];
  if (size !== undefined) {
    const nbytes = n * size;
    if (nbytes > LIMITS.arrayBytes) throw new GgufError(file, `metadata ${label}: array of ${nbytes} bytes is absurd`);
    if (nbytes > c.remaining) throw new GgufError(file, `metadata ${label}: array of ${n} items needs ${nbytes} bytes but only ${c.remaining} remain: truncated`);
    const b = c.bytes(nbytes, label);
    let items: GgufArrayItems;
    switch (elemType) {
      case GgufType.UINT8: items = b; break;
      case GgufType.INT8: items = new Int8Array(b.buffer); break;
      case GgufType.UINT16: items = new Uint16Array(b.buffer); break;
      case GgufType.INT16: items = new Int16Array(b.buffer); break;
      case GgufType.UINT32: items = new Uint32Array(b.buffer); break;
      case GgufType.INT32: items = new Int32Array(b.buffer); break;
      case GgufType.FLOAT32: items = new Float32Array(b.buffer); break;
      case GgufType.FLOAT64: items = new Float64Array(b.buffer); break;
      case GgufType.UINT64: items = new BigUint64Array(b.buffer); break;
      case GgufType.INT64: items = new BigInt64Array(b.buffer); break;
      default: items = Array.from(b, (x) => x !== 0); break; // BOOL
    }
    return { elemType: elemType as GgufTypeId, items };
  }
  if (elemType === GgufType.STRING) {
    if (n * 8 > c.remaining) throw new GgufError(file, `metadata ${label}: ${n} strings cannot fit in the ${c.remaining} remaining bytes: truncated`);
    const items: string[] = new Array(n);
    for (let i = 0; i < n; i++) items[i] = c.string(() => `${label}[${i}]`);
    return { elemType: GgufType.STRING, items };
  }
  if (elemType === GgufType.ARRAY) {
    if (n * 12 > c.remaining) throw new GgufError(file, `metadata ${label}: ${n} arrays cannot fit in the ${c.remaining} remaining bytes: truncated`);
    const items: GgufArray[] = [];
    for (let i = 0; i < n; i++) items.push(readArray(c, file, `${label}[${i}]`, depth + 1));
    return { elemType: GgufType.ARRAY, items };
  }
  throw new GgufError(file, `metadata ${label}: unknown array element type ${elemType}`);
}

function readValue(c: HeaderCursor, file: string, label: string, type: number): GgufValue {
  switch (type) {
    case GgufType.UINT8: return { type, value: c.u8(label) };
    case GgufType.INT8: return { type, value: c.i8(label) };
    case GgufType.UINT16: return { type, value: c.u16(label) };
    case GgufType.INT16: return { type, value: c.i16(label) };
    case GgufType.UINT32: return { type, value: c.u32(label) };
    case GgufType.INT32: return { type, value: c.i32(label) };
    case GgufType.FLOAT32: return { type, value: c.f32(label) };
    case GgufType.FLOAT64: return { type, value: c.f64(label) };
    case GgufType.UINT64: return { type, value: c.u64(label) };
    case GgufType.INT64: return { type, value: c.i64(label) };
    case GgufType.BOOL: {
      const b = c.u8(label);
      if (b > 1) throw new GgufError(file, `metadata ${label}: bool value ${b} is neither 0 nor 1`);
      return { type, value: b === 1 };
    }
    case GgufType.STRING: return { type, value: c.string(label) };
    case GgufType.ARRAY: return { type, value: readArray(c, file, label, 1) };
    default: throw new GgufError(file, `metadata ${label}: unknown value type ${type}`);
  }
}

/** Reads and validates a GGUF file's header, metadata and tensor infos; tensor data stays on disk. */
export function readGguf(file: string): GgufFile {
  let fd: number;
  try {
    fd = openRegularFile(file);
  } catch (e) {
    if (e instanceof NotRegularFileError) throw e;
    throw new GgufError(file, `cannot open: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 24) throw new GgufError(file, `file is ${size} bytes, too short for a GGUF header (truncated or not GGUF)`);
    const c = new HeaderCursor(fd, file, size);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) {
      const shown = Buffer.from([magic & 0xff, (magic >>> 8) & 0xff, (magic >>> 16) & 0xff, magic >>> 24]).toString('latin1');
      throw new GgufError(file, `bad magic ${quote(shown)}: not a GGUF file`);
    }
    const version = c.u32('version');
    if (version !== 2 && version !== 3) throw new GgufError(file, `GGUF version ${version} is not supported (only 2 and 3)`);
    const nTensors = c.count('tensor count', LIMITS.tensors);
    const nKv = c.count('metadata count', LIMITS.kvs);
    // Each KV takes at least 13 bytes and each tensor info at least 25, so both counts are bounded by the size.
    if (nKv * 13 + nTensors * 25 > c.remaining) {
      throw new GgufError(file, `header claims ${nKv} metadata entries and ${nTensors} tensors, more than ${size} bytes can hold: truncated or corrupt`);
    }

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.string(`metadata key #${i}`, LIMITS.keyBytes);
      // Keys and names come from the file: messages show them escaped and shortened.
      const shown = shownName(key);
      if (metadata.has(key)) throw new GgufError(file, `metadata key ${shown} appears twice`);
      const type = c.u32(`value type of ${shown}`);
      metadata.set(key, readValue(c, file, shown, type));
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get('general.alignment');
    if (al !== undefined) {
      if (al.type !== GgufType.UINT32 || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
        throw new GgufError(file, `general.alignment must be a u32 power of two, got ${al.type === GgufType.UINT32 ? al.value : `a value of GGUF type ${al.type}`}`);
      }
      alignment = al.value;
    }

    const pending: { name: string; shown: string; ne: number[]; type: GgmlTypeId; rel: number }[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.string(`tensor name #${i}`, LIMITS.keyBytes);
      const shown = shownName(name);
      if (names.has(name)) throw new GgufError(file, `tensor ${shown} appears twice`);
      names.add(name);
      const nDims = c.u32(`dimension count of ${shown}`);
      if (nDims < 1 || nDims > LIMITS.dims) throw new GgufError(file, `tensor ${shown}: ${nDims} dimensions (1…${LIMITS.dims} allowed)`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const v = c.count(`ne[${d}] of ${shown}`, LIMITS.dim);
        if (v < 1) throw new GgufError(file, `tensor ${shown}: dimension ${d} is 0`);
        ne.push(v);
      }
      const type = c.u32(`type of ${shown}`);
      if (!ggmlTypeInfo(type)) throw new GgufError(file, `tensor ${shown}: ${unsupportedTypeName(type)} is not a supported tensor type (supported: ${SUPPORTED_TYPES})`);
      const rel = c.count(`offset of ${shown}`, Number.MAX_SAFE_INTEGER);
      pending.push({ name, shown, ne, type: type as GgmlTypeId, rel });
    }

    const dataOffset = alignUp(c.pos, alignment);
    const tensors = new Map<string, GgufTensorInfo>();
    for (const p of pending) {
      const info = ggmlTypeInfo(p.type)!;
      if (p.ne[0] % info.block !== 0) throw new GgufError(file, `tensor ${p.shown}: ne[0]=${p.ne[0]} is not a multiple of the ${info.name} block size ${info.block}`);
      if (p.rel % alignment !== 0) throw new GgufError(file, `tensor ${p.shown}: offset ${p.rel} is not a multiple of the alignment ${alignment}`);
      const rows = p.ne.slice(1).reduce((a, b) => a * b, 1);
      const rb = (p.ne[0] / info.block) * info.bytes;
      const nbytes = rb * rows;
      const offset = dataOffset + p.rel;
      if (!Number.isSafeInteger(nbytes) || offset + nbytes > size) {
        throw new GgufError(file, `tensor ${p.shown}: data [${offset}, ${offset + nbytes}) lies past the end of the file (${size} bytes): truncated`);
      }
      tensors.set(p.name, { name: p.name, ne: p.ne, type: p.type, dtype: info.dtype, offset, nbytes, rows, rowBytes: rb });
    }
    const overlap = firstOverlap([...tensors.values()].map((t) => ({ name: t.name, begin: t.offset, end: t.offset + t.nbytes })));
    if (overlap) throw new GgufError(file, overlap);
    return { path: file, version, fileSize: size, alignment, metadata, tensors, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads rows [rowStart, rowStart+rowCount) of a tensor's raw bytes (all rows by default), into `into` if given. */
export function readGgufTensor(g: GgufFile, name: string, rowStart = 0, rowCount?: number, into?: Uint8Array, intoOffset = 0): Uint8Array {
  const t = g.tensors.get(name);
  if (!t) throw new GgufError(g.path, `no tensor named ${shownName(name)}`);
  const count = rowCount ?? t.rows - rowStart;
  if (rowStart < 0 || count < 0 || rowStart + count > t.rows) throw new GgufError(g.path, `tensor ${shownName(name)}: rows ${rowStart}+${count} outside 0…${t.rows}`);
  const len = count * t.rowBytes;
  const dst = into ?? new Uint8Array(len);
  readRangeInto(g.path, t.offset + rowStart * t.rowBytes, len, dst, intoOffset);
  return dst;
}

/** A metadata value as a JS number (any integer or float type), or undefined when absent. */
export function ggufNumber(g: GgufFile, key: string): number | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type === GgufType.UINT64 || v.type === GgufType.INT64) return Number(v.value);
  if (typeof v.value === 'number') return v.value;
  throw new GgufError(g.path, `metadata ${shownName(key)} should be a number, is of GGUF type ${v.type}`);
}

/** A metadata value as a string, or undefined when absent. */
export function ggufString(g: GgufFile, key: string): string | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GgufType.STRING) throw new GgufError(g.path, `metadata ${shownName(key)} should be a string, is of GGUF type ${v.type}`);
  return v.value;
}

/** A metadata value as a boolean, or undefined when absent. */
export function ggufBool(g: GgufFile, key: string): boolean | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GgufType.BOOL) throw new GgufError(g.path, `metadata ${shownName(key)} should be a bool, is of GGUF type ${v.type}`);
  return v.value;
}

/** A metadata array, or undefined when absent. */
export function ggufArray(g: GgufFile, key: string): GgufArray | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GgufType.ARRAY) throw new GgufError(g.path, `metadata ${shownName(key)} should be an array, is of GGUF type ${v.type}`);
  return v.value;
}

// safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data. Everything is checked before any allocation so
// that a truncated or hostile file fails with a message instead of a huge buffer.

import * as fs from 'node:fs';
import { firstOverlap } from './bounds';
import { bf16ArrayToF32, f16ArrayToF32 } from './quant';
import { openRegularFile } from './regularFile';
import { describeValue, shownName } from '../../common/quote';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'I8' | 'F64' | 'I16' | 'U16' | 'BOOL';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, U8: 1, I8: 1, BOOL: 1,
};

export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  entries: Map<string, SafetensorsEntry>;
  /** Absolute file offset where the data section starts. */
  dataOffset: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

const MAX_HEADER = 100 * 1024 * 1024;
/** Dimensions a tensor may have (model weights have 1 or 2; nothing here has more than 4). */
const MAX_DIMS = 8;

/** Reads and validates the header of a .safetensors file without touching its data. */
export function readSafetensorsHeader(file: string): SafetensorsFile {
  const fd = openRegularFile(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(file, `file is ${size} bytes, too short for a safetensors header`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER) || n > BigInt(size - 8)) {
      throw new SafetensorsError(file, `header length ${n} is larger than the file or absurd: not a safetensors file, or truncated`);
    }
    const hb = Buffer.alloc(Number(n));
    fs.readSync(fd, hb, 0, hb.length, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch {
      throw new SafetensorsError(file, 'header is not valid JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError(file, 'header is not a JSON object');
    const dataOffset = 8 + Number(n);
    const dataSize = size - dataOffset;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = stringMap(file, raw);
        continue;
      }
      const shown = shownName(name);
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof t !== 'object' || t === null) throw new SafetensorsError(file, `tensor ${shown}: entry is not an object`);
      const dtype = t.dtype as SafetensorsDtype;
      if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_BYTES, dtype)) throw new SafetensorsError(file, `tensor ${shown}: unknown dtype ${describeValue(t.dtype)}`);
      if (!Array.isArray(t.shape) || t.shape.length > MAX_DIMS || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor ${shown}: bad shape`);
      const off = t.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor ${shown}: bad data_offsets`);
      const [begin, end] = off as [number, number];
      const count = (t.shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== count * DTYPE_BYTES[dtype]) {
        throw new SafetensorsError(file, `tensor ${shown}: ${end - begin} bytes for shape [${t.shape}] of ${dtype}`);
      }
      if (end > dataSize) throw new SafetensorsError(file, `tensor ${shown}: data ends at ${end} but the file holds ${dataSize} data bytes (truncated?)`);
      entries.set(name, { dtype, shape: t.shape as number[], begin, end });
    }
    const overlap = firstOverlap([...entries].map(([name, e]) => ({ name, begin: e.begin, end: e.end })));
    if (overlap) throw new SafetensorsError(file, overlap);
    return { path: file, metadata, entries, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

/** The header's `__metadata__`: an object of string values, as the format defines it. */
function stringMap(file: string, raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ ${shownName(k)} is ${describeValue(v)}, not a string`);
  }
  return raw as Record<string, string>;
}

/** Reads one tensor's raw bytes (a fresh, aligned copy). */
export function readSafetensorsBytes(st: SafetensorsFile, name: string): Uint8Array {
  const e = st.entries.get(name);
  if (!e) throw new SafetensorsError(st.path, `no tensor named ${shownName(name)}`);
  const out = new Uint8Array(e.end - e.begin);
  const fd = openRegularFile(st.path);
  try {
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, st.dataOffset + e.begin + done);
      if (n <= 0) throw new SafetensorsError(st.path, `tensor ${shownName(name)}: unexpected end of file`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Reads one tensor as float32, widening F16 and BF16 exactly. */
export function readSafetensorsF32(st: SafetensorsFile, name: string): Float32Array {
  const e = st.entries.get(name);
  if (!e) throw new SafetensorsError(st.path, `no tensor named ${shownName(name)}`);
  const bytes = readSafetensorsBytes(st, name);
  const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
  switch (e.dtype) {
    case 'F32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'F16': {
      return f16ArrayToF32(new Uint16Array(bytes.buffer, bytes.byteOffset, n));
    }
    case 'BF16': {
      return bf16ArrayToF32(new Uint16Array(bytes.buffer, bytes.byteOffset, n));
    }
    default:
      throw new SafetensorsError(st.path, `tensor ${shownName(name)}: dtype ${e.dtype} is not a float type`);
  }
}

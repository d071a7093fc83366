// safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data. Everything is checked before any allocation so
// that a truncated or hostile file fails with a message instead of a huge buffer.

import * as fs from 'node:fs';
import { bf16ArrayToF32, f16ArrayToF32 } from './quant';
import { openRegularFile } from './regularFile';

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
        if (raw && typeof raw === 'object') metadata = raw as Record<string, string>;
        continue;
      }
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof t !== 'object' || t === null) throw new SafetensorsError(file, `tensor ${name}: entry is not an object`);
      const dtype = t.dtype as SafetensorsDtype;
      if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new SafetensorsError(file, `tensor ${name}: unknown dtype ${String(t.dtype)}`);
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor ${name}: bad shape`);
      const off = t.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor ${name}: bad data_offsets`);
      const [begin, end] = off as [number, number];
      const count = (t.shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== count * DTYPE_BYTES[dtype]) {
        throw new SafetensorsError(file, `tensor ${name}: ${end - begin} bytes for shape [${t.shape}] of ${dtype}`);
      }
      if (end > dataSize) throw new SafetensorsError(file, `tensor ${name}: data ends at ${end} but the file holds ${dataSize} data bytes (truncated?)`);
      entries.set(name, { dtype, shape: t.shape as number[], begin, end });
    }
    return { path: file, metadata, entries, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads one tensor's raw bytes (a fresh, aligned copy). */
export function readSafetensorsBytes(st: SafetensorsFile, name: string): Uint8Array {
  const e = st.entries.get(name);
  if (!e) throw new SafetensorsError(st.path, `no tensor named ${name}`);
  const out = new Uint8Array(e.end - e.begin);
  const fd = openRegularFile(st.path);
  try {
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, st.dataOffset + e.begin + done);
      if (n <= 0) throw new SafetensorsError(st.path, `tensor ${name}: unexpected end of file`);
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
  if (!e) throw new SafetensorsError(st.path, `no tensor named ${name}`);
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
      throw new SafetensorsError(st.path, `tensor ${name}: dtype ${e.dtype} is not a float type`);
  }
}

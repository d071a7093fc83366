// Damaging real model files in place, for the refusal tests: a metadata number of a GGUF, the bytes of one
// value or block of a tensor in a GGUF or safetensors file. The files come from the project's writers.
import * as fs from 'node:fs';
import { readGguf } from '../../src/engine/model/gguf';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';

/** Overwrites the u32 value of GGUF metadata `key` (the value follows the key and its 4-byte type tag). */
export function patchGgufU32(file: string, key: string, value: number): void {
  const b = fs.readFileSync(file);
  const k = Buffer.from(key);
  const at = b.indexOf(k);
  if (at < 0) throw new Error(`${file} has no key ${key}`);
  b.writeUInt32LE(value, at + k.length + 4);
  fs.writeFileSync(file, b);
}

/** Writes `bytes` at byte `offset` inside tensor `name`'s data, in a .gguf or .safetensors file. */
export function patchTensorBytes(file: string, name: string, offset: number, bytes: number[]): void {
  let start: number;
  if (file.endsWith('.gguf')) {
    const t = readGguf(file).tensors.get(name);
    if (!t) throw new Error(`${file} has no tensor ${name}`);
    start = t.offset;
  } else {
    const st = readSafetensorsHeader(file);
    const e = st.entries.get(name);
    if (!e) throw new Error(`${file} has no tensor ${name}`);
    start = st.dataOffset + e.begin;
  }
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Uint8Array.from(bytes), 0, bytes.length, start + offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Little-endian bytes of a float32. */
export function f32Bytes(v: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return [...b];
}

/** A copy of `src` (a file or folder) at `dst`. */
export function copyModel(src: string, dst: string): string {
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

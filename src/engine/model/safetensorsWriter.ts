// Streaming safetensors writer for model files (F32, F16, BF16, I32): an 8-byte little-endian header length,
// the JSON header padded with spaces to a multiple of 8, then each tensor's raw little-endian bytes in
// header order. Data comes from producers, so a large model is written without being assembled in memory;
// the file appears atomically (temp file + rename).

import { writeFileStreaming } from '../../common/atomicWrite';

export type SafetensorsOutDtype = 'F32' | 'F16' | 'BF16' | 'I32';
const BYTES: Record<SafetensorsOutDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4 };

export interface SafetensorsTensorOut {
  name: string;
  dtype: SafetensorsOutDtype;
  shape: number[];
  /** Yields the tensor's bytes in order, in chunks of any size; their total must match dtype and shape. */
  data: () => Iterable<Uint8Array>;
}

/** The bytes of a typed array, as a one-chunk producer. */
export function bytesOf(a: ArrayBufferView): () => Iterable<Uint8Array> {
  return () => [new Uint8Array(a.buffer, a.byteOffset, a.byteLength)];
}

/** Writes a .safetensors file atomically from tensor producers (and optional string metadata). */
export function writeSafetensorsStreaming(file: string, tensors: SafetensorsTensorOut[], metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (t.name in header) throw new Error(`safetensors writer: tensor ${t.name} given twice`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`safetensors writer: tensor ${t.name}: bad shape [${t.shape}]`);
    const size = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + size] };
    sizes.push(size);
    off += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  writeFileStreaming(file, (sink) => {
    sink.write(len);
    sink.write(hb);
    tensors.forEach((t, i) => {
      const before = sink.written;
      for (const chunk of t.data()) sink.write(chunk);
      const got = sink.written - before;
      if (got !== sizes[i]) throw new Error(`safetensors writer: tensor ${t.name} produced ${got} bytes, [${t.shape}] ${t.dtype} needs ${sizes[i]}`);
    });
  });
}

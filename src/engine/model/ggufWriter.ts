// GGUF v3 writer in the layout llama.cpp's gguf writer produces: header, metadata, tensor infos, padding
// to `general.alignment`, then each tensor's data at an aligned offset. The header is built in memory
// (a few MB even with a 262144-token vocabulary); tensor data is streamed from producers into a temp
// file that is renamed into place at the end.

import {
  alignUp, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufType, ggmlTypeInfo, ggmlTypeOf, rowBytes,
  type GgufArray, type GgufValue, type TensorDtype,
} from './ggufFormat';
import { writeFileStreaming } from '../../common/atomicWrite';

export interface GgufTensorOut {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension (an HF [out, in] weight has ne = [in, out]). */
  ne: number[];
  dtype: TensorDtype;
  /** Yields the tensor's bytes in order, in chunks of any size; their total must be the tensor's size. */
  data: () => Iterable<Uint8Array>;
}

/** Grows a byte buffer for the header part. */
class HeaderBuilder {
  private buf = Buffer.alloc(1 << 16);
  len = 0;

  private room(n: number): number {
    if (this.len + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  // room() may replace this.buf, so it runs before this.buf is read.
  u8(v: number) { const at = this.room(1); this.buf.writeUInt8(v, at); }
  i8(v: number) { const at = this.room(1); this.buf.writeInt8(v, at); }
  u16(v: number) { const at = this.room(2); this.buf.writeUInt16LE(v, at); }
  i16(v: number) { const at = this.room(2); this.buf.writeInt16LE(v, at); }
  u32(v: number) { const at = this.room(4); this.buf.writeUInt32LE(v, at); }
  i32(v: number) { const at = this.room(4); this.buf.writeInt32LE(v, at); }
  f32(v: number) { const at = this.room(4); this.buf.writeFloatLE(v, at); }
  f64(v: number) { const at = this.room(8); this.buf.writeDoubleLE(v, at); }
  u64(v: bigint | number) { const at = this.room(8); this.buf.writeBigUInt64LE(BigInt(v), at); }
  i64(v: bigint) { const at = this.room(8); this.buf.writeBigInt64LE(v, at); }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    const at = this.room(b.length);
    b.copy(this.buf, at);
  }
  raw(b: Uint8Array) { const at = this.room(b.length); this.buf.set(b, at); }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function writeScalar(h: HeaderBuilder, type: number, v: unknown): void {
  switch (type) {
    case GgufType.UINT8: return h.u8(v as number);
    case GgufType.INT8: return h.i8(v as number);
    case GgufType.UINT16: return h.u16(v as number);
    case GgufType.INT16: return h.i16(v as number);
    case GgufType.UINT32: return h.u32(v as number);
    case GgufType.INT32: return h.i32(v as number);
    case GgufType.FLOAT32: return h.f32(v as number);
    case GgufType.FLOAT64: return h.f64(v as number);
    case GgufType.UINT64: return h.u64(v as bigint);
    case GgufType.INT64: return h.i64(v as bigint);
    case GgufType.BOOL: return h.u8(v ? 1 : 0);
    case GgufType.STRING: return h.str(v as string);
    case GgufType.ARRAY: return writeArray(h, v as GgufArray);
    default: throw new Error(`GGUF writer: unknown value type ${type}`);
  }
}

function writeArray(h: HeaderBuilder, a: GgufArray): void {
  h.u32(a.elemType);
  h.u64(a.items.length);
  const items = a.items;
  // Little-endian typed arrays are already in file order: copy their bytes.
  if (ArrayBuffer.isView(items) && a.elemType !== GgufType.BOOL) {
    h.raw(new Uint8Array(items.buffer, items.byteOffset, items.byteLength));
    return;
  }
  for (let i = 0; i < items.length; i++) writeScalar(h, a.elemType, (items as ArrayLike<unknown>)[i]);
}

/** Writes a GGUF v3 file atomically: metadata in the given order, tensors in the given order, aligned. */
export function writeGguf(file: string, metadata: [string, GgufValue][], tensors: GgufTensorOut[], alignment = GGUF_DEFAULT_ALIGNMENT): void {
  const al = metadata.find(([k]) => k === 'general.alignment');
  if (al && al[1].value !== alignment) throw new Error(`GGUF writer: general.alignment ${String(al[1].value)} differs from the alignment ${alignment} used`);
  const h = new HeaderBuilder();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(tensors.length);
  h.u64(metadata.length);
  for (const [key, v] of metadata) {
    h.str(key);
    h.u32(v.type);
    writeScalar(h, v.type, v.value);
  }
  const sizes: number[] = [];
  let rel = 0;
  for (const t of tensors) {
    const info = ggmlTypeInfo(ggmlTypeOf(t.dtype))!;
    if (t.ne[0] % info.block !== 0) throw new Error(`GGUF writer: tensor ${t.name}: ne[0]=${t.ne[0]} is not a multiple of ${info.block}`);
    h.str(t.name);
    h.u32(t.ne.length);
    for (const d of t.ne) h.u64(d);
    h.u32(ggmlTypeOf(t.dtype));
    h.u64(rel);
    const size = rowBytes(t.dtype, t.ne[0]) * t.ne.slice(1).reduce((a, b) => a * b, 1);
    sizes.push(size);
    rel = alignUp(rel + size, alignment);
  }
  writeFileStreaming(file, (sink) => {
    sink.write(h.bytes());
    sink.pad(alignUp(sink.written, alignment) - sink.written);
    const dataStart = sink.written;
    tensors.forEach((t, i) => {
      const before = sink.written;
      for (const chunk of t.data()) sink.write(chunk);
      const got = sink.written - before;
      if (got !== sizes[i]) throw new Error(`GGUF writer: tensor ${t.name} produced ${got} bytes, its shape and type need ${sizes[i]}`);
      sink.pad(alignUp(sink.written - dataStart, alignment) - (sink.written - dataStart));
    });
  });
}

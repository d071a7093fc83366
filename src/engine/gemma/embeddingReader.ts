// Embedding rows for the runtime, read outside the graph from the bytes the LM head already uses.
//
// Why not a Gather in the graph: a lookup initializer over the 262k-row table is a file mapping, and every
// row a prompt touches faults in its pages (and the kernel's read-around), so resident memory grows with
// the vocabulary seen, up to the whole table (170 MB for a Q8_0 embedding). Reading the rows with pread
// from the runtime's data file goes through the page cache instead and costs microseconds per token.
//
// Values are dequantised exactly as GatherBlockQuantized does it, float((q − zero point)) · scale rounded
// to float32 (then, for types with mins, the block's min subtracted, as the graph's lookup does), so the
// graph sees the same bits either way; the sqrt(C) scale stays in the graph.

import * as fs from 'node:fs';
import type { EmbeddingTable, PlacedBytes } from './params';

/** Reads the bytes of a blob: from the runtime's data file through a descriptor, or from memory. */
function blobReader(blob: PlacedBytes, fd: number | null): (offset: number, into: Uint8Array) => void {
  const where = blob.placement();
  if ('data' in where) return (offset, into) => into.set(where.data.subarray(offset, offset + into.length));
  if (fd === null) throw new Error('embedding reader: the table lives in a data file but no descriptor was given');
  return (offset, into) => {
    let done = 0;
    while (done < into.length) {
      const n = fs.readSync(fd, into, done, into.length - done, where.offset + offset + done);
      if (n <= 0) throw new Error(`embedding reader: the data file ended at byte ${where.offset + offset + done}`);
      done += n;
    }
  };
}

export class EmbeddingReader {
  readonly columns: number;
  private readonly row: (id: number, out: Float32Array, at: number) => void;

  /** `fd`: a read descriptor on the data file the table's blobs were streamed to (null when in memory). */
  constructor(table: EmbeddingTable, fd: number | null) {
    const C = table.columns;
    this.columns = C;
    const readData = blobReader(table.data, fd);
    if (table.kind === 'f32') {
      const bytes = new Uint8Array(C * 4);
      const vals = new Float32Array(bytes.buffer);
      this.row = (id, out, at) => {
        readData(id * C * 4, bytes);
        out.set(vals, at);
      };
      return;
    }
    const { bits, blockSize: bs, zeroPoint: zp, hasMins } = table.layout;
    const blocks = C / bs;
    const readScales = blobReader(table.scales, fd);
    const readMins = table.mins ? blobReader(table.mins, fd) : null;
    const q = new Uint8Array((C * bits) / 8);
    const sBytes = new Uint8Array(blocks * 4);
    const s = new Float32Array(sBytes.buffer);
    const mBytes = new Uint8Array(blocks * 4);
    const m = new Float32Array(mBytes.buffer);
    const shift = Math.log2(bs);
    this.row = (id, out, at) => {
      readData(id * q.length, q);
      readScales(id * sBytes.length, sBytes);
      if (readMins) readMins(id * mBytes.length, mBytes);
      if (bits === 8) {
        for (let c = 0; c < C; c++) out[at + c] = Math.fround((q[c] - zp) * s[c >> shift]);
      } else {
        for (let i = 0; i < C / 2; i++) {
          const b = q[i];
          const scale = s[(2 * i) >> shift];
          out[at + 2 * i] = Math.fround(((b & 0x0f) - zp) * scale);
          out[at + 2 * i + 1] = Math.fround(((b >> 4) - zp) * scale);
        }
      }
      if (hasMins) for (let c = 0; c < C; c++) out[at + c] = Math.fround(out[at + c] - m[c >> shift]);
    };
  }

  /** The rows of `ids`, [ids.length, C] float32, into `out` when given (of that size). */
  rows(ids: readonly number[], out = new Float32Array(ids.length * this.columns)): Float32Array {
    if (out.length !== ids.length * this.columns) throw new Error(`embedding rows: room for ${out.length / this.columns} rows, ${ids.length} ids`);
    ids.forEach((id, t) => this.row(id, out, t * this.columns));
    return out;
  }
}

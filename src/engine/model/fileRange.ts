// Positioned reads of a byte range of a model file into a caller's buffer, so that tensors are read one
// at a time (or a few rows at a time) and a model file is never held whole in memory.

import * as fs from 'node:fs';
import { openRegularFile } from './regularFile';

/** Reads exactly `length` bytes at file position `position` into dst[dstOffset…]; throws naming the file if it ends early. */
export function readRangeInto(file: string, position: number, length: number, dst: Uint8Array, dstOffset = 0): void {
  const fd = openRegularFile(file);
  try {
    readFdInto(fd, file, position, length, dst, dstOffset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Like readRangeInto, on an already open descriptor. */
export function readFdInto(fd: number, file: string, position: number, length: number, dst: Uint8Array, dstOffset = 0): void {
  if (dstOffset + length > dst.length) throw new Error(`${file}: read of ${length} bytes does not fit the destination`);
  let done = 0;
  while (done < length) {
    // readSync takes at most 2 GiB at once.
    const n = fs.readSync(fd, dst, dstOffset + done, Math.min(length - done, 1 << 30), position + done);
    if (n <= 0) throw new Error(`${file}: unexpected end of file at byte ${position + done} (truncated?)`);
    done += n;
  }
}

// Atomic file writes: data goes to a temporary file beside the target, is flushed to disk, then
// renamed over it, so a crash or a cancelled run leaves either the old file or the new one.

import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes the chunks to `file` atomically (temp file + fsync + rename). */
export function writeFileAtomic(file: string, chunks: Array<Uint8Array | string>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

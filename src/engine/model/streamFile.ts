// Streaming atomic writes for model files: bytes go through a 4 MiB buffer into a temporary file beside
// the target, which is fsynced and renamed over it at the end. The producer pushes bytes as it makes
// them, so a 240 MB model is never assembled in memory; small files use the chunk-list form below.

import * as fs from 'node:fs';
import * as path from 'node:path';

const BUFFER = 4 << 20;

/** A buffered, position-tracking sink over a file descriptor. */
export class FileSink {
  private buf = Buffer.alloc(BUFFER);
  private used = 0;
  /** Bytes written so far (buffered ones included). */
  written = 0;

  constructor(private fd: number) {}

  /** Appends bytes. */
  write(bytes: Uint8Array): void {
    this.written += bytes.length;
    if (bytes.length >= BUFFER) {
      this.flush();
      writeAll(this.fd, bytes);
      return;
    }
    if (this.used + bytes.length > BUFFER) this.flush();
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** Appends n zero bytes (alignment padding). */
  pad(n: number): void {
    if (n > 0) this.write(new Uint8Array(n));
  }

  /** Writes out the buffer. */
  flush(): void {
    if (this.used > 0) writeAll(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/** Runs `produce` against a sink on a temp file, then fsyncs and renames it to `file`; on error the temp file is removed. */
export function writeFileStreaming(file: string, produce: (sink: FileSink) => void): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const sink = new FileSink(fd);
    produce(sink);
    sink.flush();
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/** Writes a list of chunks to `file` atomically, through the same temp-file, fsync and rename path. */
export function writeFileAtomic(file: string, chunks: Array<Uint8Array | string>): void {
  writeFileStreaming(file, (sink) => {
    for (const c of chunks) sink.write(typeof c === 'string' ? Buffer.from(c, 'utf8') : c);
  });
}

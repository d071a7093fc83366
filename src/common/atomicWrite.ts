// Crash-safe file replacement for the whole project: the new bytes go to a temporary file in the same
// folder, are flushed to the disk (fsync), and only then renamed over the target, and the folder is
// flushed so that the rename survives a power cut. A rename within one folder is atomic on POSIX and
// NTFS, so a reader (or the user after a crash) sees either the whole old file or the whole new one.
//
// Two front-ends over that one path:
//   - writeFileAtomic / writeJsonAtomic (async) for the extension host, whose event loop must not block;
//     the data is a string, bytes, or chunks from an async iterable.
//   - writeFileStreaming / writeFileAtomicSync (sync) for the worker and the CLI, whose model writers push
//     bytes as they make them through a buffered FileSink, so a 240 MB model never sits in memory.
// Pure Node (no vscode, no onnxruntime-node): the host imports it too.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Suffix of in-flight temporary files, so listings can skip leftovers of a crashed write. */
export const TEMP_SUFFIX = '.gemma-tmp';

/** Whether a file name is a temporary file left by one of the writers here. */
export function isTempName(name: string): boolean {
  return name.endsWith(TEMP_SUFFIX);
}

/** A fresh temporary path beside `file`: hidden, unique per process and call, ending in TEMP_SUFFIX. */
function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
}

/** The bytes to write: a string (UTF-8), a buffer, or chunks produced as the write goes. */
export type AtomicData = string | Uint8Array | AsyncIterable<Uint8Array | string>;

/** Options of writeFileAtomic. */
export interface AtomicWriteOptions {
  /**
   * Runs after the new bytes are on disk and just before the rename; throwing cancels the write (the
   * temporary file is removed, `file` is untouched). The task store checks here that nobody changed
   * the file since it was read.
   */
  beforeRename?: () => Promise<void>;
}

/**
 * Replaces `file` with `data` atomically (temp file + fsync + rename + folder fsync); resolves with the
 * new file's stat (the temporary file's, which the rename keeps).
 */
export async function writeFileAtomic(file: string, data: AtomicData, opts: AtomicWriteOptions = {}): Promise<fs.BigIntStats> {
  const tmp = tempPathFor(file);
  const handle = await fs.promises.open(tmp, 'wx', 0o644);
  let written: fs.BigIntStats;
  try {
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) {
        await handle.writeFile(data);
      } else {
        for await (const chunk of data) await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
      await handle.sync();
      written = await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
    await opts.beforeRename?.();
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(path.dirname(file));
  return written;
}

/** Atomically writes `value` as pretty JSON followed by a newline. */
export async function writeJsonAtomic(file: string, value: unknown, opts?: AtomicWriteOptions): Promise<fs.BigIntStats> {
  return writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', opts);
}

/** Flushes a folder's entry list so a rename survives a power cut; a no-op where unsupported. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // folders cannot be opened for fsync there
  try {
    const h = await fs.promises.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some file systems refuse fsync on a folder; the rename itself is still atomic.
  }
}

/** syncDir for the synchronous writers. */
function syncDirSync(dir: string): void {
  if (process.platform === 'win32') return;
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // as in syncDir
  }
}

const SINK_BUFFER = 4 << 20;

/** A buffered, position-tracking sink over a file descriptor. */
export class FileSink {
  private buf = Buffer.alloc(SINK_BUFFER);
  private used = 0;
  /** Bytes written so far (buffered ones included). */
  written = 0;

  constructor(private fd: number) {}

  /** Appends bytes. */
  write(bytes: Uint8Array): void {
    this.written += bytes.length;
    if (bytes.length >= SINK_BUFFER) {
      this.flush();
      writeAll(this.fd, bytes);
      return;
    }
    if (this.used + bytes.length > SINK_BUFFER) this.flush();
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

/**
 * Runs `produce` against a sink on a temporary file, then fsyncs and renames it to `file` (creating the
 * folder if needed); on error the temporary file is removed and the old `file` stays.
 */
export function writeFileStreaming(file: string, produce: (sink: FileSink) => void): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = tempPathFor(file);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    try {
      const sink = new FileSink(fd);
      produce(sink);
      sink.flush();
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  syncDirSync(dir);
}

/** Writes a list of chunks to `file` atomically, synchronously, through writeFileStreaming. */
export function writeFileAtomicSync(file: string, chunks: Array<Uint8Array | string>): void {
  writeFileStreaming(file, (sink) => {
    for (const c of chunks) sink.write(typeof c === 'string' ? Buffer.from(c, 'utf8') : c);
  });
}

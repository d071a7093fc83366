// Model files are read only when they are regular files, and opened so that nothing can block: a
// FIFO opened for reading waits for a writer forever, a character device never ends. Paths are
// followed (a symlink to a model is fine), then the open descriptor itself is checked, so a file
// swapped for a FIFO between a check and the open is still refused.

import * as fs from 'node:fs';

/** A path that names something other than a regular file (or, where folders are allowed, a folder). */
export class NotRegularFileError extends Error {
  constructor(
    readonly file: string,
    /** What it is instead, e.g. "a FIFO (named pipe)". */
    readonly kind: string,
    message = `${file} is ${kind}, not a regular file`,
  ) {
    super(message);
    this.name = 'NotRegularFileError';
  }
}

/** A file larger than its kind of file may be. */
export class FileTooLargeError extends Error {
  constructor(
    readonly file: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`${file}: the file is ${size} bytes, more than the ${maxBytes} allowed`);
    this.name = 'FileTooLargeError';
  }
}

/** What `st` is, in words: "a FIFO (named pipe)", "a socket", … */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

// O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer (no effect on regular
// files). Windows has no such flag, and no FIFOs in the file system either.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** Opens `file` for reading when it is a regular file; throws NotRegularFileError (never blocks) otherwise. */
export function openRegularFile(file: string): number {
  const fd = fs.openSync(file, OPEN_FLAGS);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFileError(file, fileKind(st));
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** The whole of a regular file of at most `maxBytes`; throws naming the file otherwise. */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  const fd = openRegularFile(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > maxBytes) throw new FileTooLargeError(file, size, maxBytes);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = fs.readSync(fd, buf, done, size - done, done);
      if (n <= 0) break;
      done += n;
    }
    return done === size ? buf : buf.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a model path is a file or a folder (symlinks followed); throws a one-line error for anything else. */
export function modelPathKind(p: string): 'file' | 'folder' {
  const st = fs.statSync(p);
  if (st.isDirectory()) return 'folder';
  if (st.isFile()) return 'file';
  throw new NotRegularFileError(p, fileKind(st), `${p} is ${fileKind(st)}; a model is a .gguf file or a Hugging Face folder`);
}

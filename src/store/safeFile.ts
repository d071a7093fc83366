// Reading files inside `.gemma/` as a repository may have planted them: a task folder can come from a
// `git clone`, so any name in it may be a symbolic link (to ~/.ssh/id_rsa, to /dev/zero), a named pipe
// (whose open blocks forever) or a device. Every read here takes regular files only, checked before
// opening (lstat) and again on the opened handle (fstat), opened with O_NOFOLLOW and O_NONBLOCK where
// the platform has them so a link or pipe swapped in between cannot be followed or block, and reads at
// most a cap of bytes. A refusal names the file and what it is, never its content.
// Also here: a file's identity stamp (to notice a change on disk between a read and a write) and the
// clean-up of temporary files a crashed write left behind. Pure Node: no vscode.

import { constants, promises as fs, type BigIntStats, type Stats } from 'node:fs';
import * as path from 'node:path';
import { isTempName } from '../common/atomicWrite';
import { processAlive } from '../common/processAlive';

// Absent on Windows (0 there): the lstat before opening does the check on its own.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;

/** Raised for a file inside .gemma that is not a regular file, or is larger than its cap. */
export class UnsafeFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'UnsafeFileError';
  }
}

/** What a stat describes, in words, when it is not a regular file. */
function notRegular(st: Stats | BigIntStats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a folder';
  return 'not a regular file';
}

function refuse(file: string, what: string): UnsafeFileError {
  return new UnsafeFileError(file, `is ${what}; Gemma Tune reads only regular files inside .gemma (replace it with a regular file)`);
}

function tooLarge(file: string, size: bigint | number, maxBytes: number): UnsafeFileError {
  return new UnsafeFileError(file, `${size} bytes is more than the ${maxBytes} Gemma Tune reads from this file`);
}

/** Throws UnsafeFileError unless `st` is a regular file of at most maxBytes. */
function checkStat(file: string, st: Stats | BigIntStats, maxBytes: number): void {
  const what = notRegular(st);
  if (what) throw refuse(file, what);
  if (Number(st.size) > maxBytes) throw tooLarge(file, st.size, maxBytes);
}

/** A file's identity as of a read or write: changes when anyone replaces or edits it. */
export type FileStamp = string;

/** The stamp of a stat: inode, size and modification time in nanoseconds. */
export function stampOf(st: BigIntStats): FileStamp {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** The current stamp of `file` (not following a link), or null when there is none. */
export async function currentStamp(file: string): Promise<FileStamp | null> {
  try {
    return stampOf(await fs.lstat(file, { bigint: true }));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** What readGuarded returns: the bytes and the stamp of the file they came from. */
export interface GuardedRead {
  bytes: Buffer;
  stamp: FileStamp;
  /** Its modification time, in milliseconds since the epoch. */
  mtimeMs: number;
}

/**
 * Reads a regular file of at most `maxBytes`; links, pipes, devices and larger files are refused with
 * UnsafeFileError. A missing file rejects with the usual ENOENT error.
 */
export async function readGuarded(file: string, maxBytes: number): Promise<GuardedRead> {
  checkStat(file, await fs.lstat(file), maxBytes);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    // O_NOFOLLOW on a link that replaced the file since the lstat.
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw refuse(file, 'a symbolic link');
    throw e;
  }
  try {
    const st = await handle.stat({ bigint: true });
    checkStat(file, st, maxBytes);
    // The file may grow after the fstat: read at most one byte past the cap to tell.
    const buf = Buffer.alloc(Math.min(Number(st.size), maxBytes) + 1);
    let used = 0;
    while (used < buf.length) {
      const { bytesRead } = await handle.read(buf, used, buf.length - used, used);
      if (bytesRead === 0) break;
      used += bytesRead;
    }
    if (used > maxBytes) throw tooLarge(file, used, maxBytes);
    return { bytes: buf.subarray(0, used), stamp: stampOf(st), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
  } finally {
    await handle.close();
  }
}

/** readGuarded as UTF-8 text. */
export async function readGuardedText(file: string, maxBytes: number): Promise<{ text: string; stamp: FileStamp; mtimeMs: number }> {
  const r = await readGuarded(file, maxBytes);
  return { text: r.bytes.toString('utf8'), stamp: r.stamp, mtimeMs: r.mtimeMs };
}

/** Throws UnsafeFileError unless `dir` is a real folder (not a link to one); ENOENT as usual. */
export async function checkFolder(dir: string): Promise<void> {
  const st = await fs.lstat(dir);
  if (st.isSymbolicLink()) throw new UnsafeFileError(dir, 'is a symbolic link; Gemma Tune does not follow links inside .gemma (replace it with a folder)');
  if (!st.isDirectory()) throw new UnsafeFileError(dir, `is ${notRegular(st) ?? 'a file'}, not a folder`);
}

/**
 * Throws UnsafeFileError unless `file` is a regular file of at most maxBytes (for files another
 * process reads, such as adapter weights the engine loads); ENOENT as usual.
 */
export async function checkRegularFile(file: string, maxBytes: number): Promise<Stats> {
  const st = await fs.lstat(file);
  checkStat(file, st, maxBytes);
  return st;
}

/** A temporary file older than this is a leftover whoever wrote it (a live writer finishes in seconds). */
const TEMP_MAX_AGE_MS = 10 * 60_000;
// atomicWrite.ts names them `.<file>.<pid>.<8 hex>.gemma-tmp`.
const TEMP_PID = /\.(\d+)\.[0-9a-f]{8}\.gemma-tmp$/;

/**
 * Removes the temporary files a crashed write left in `dir`: those of a process that is gone, and any
 * older than ten minutes (with `all`, every one). Call it where no other writer can be working in `dir`
 * at the same moment (under the folder's lock). Returns the names removed.
 */
export async function removeLeftoverTemps(dir: string, opts: { all?: boolean } = {}): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names.filter(isTempName)) {
    const file = path.join(dir, name);
    const pid = Number(TEMP_PID.exec(name)?.[1] ?? NaN);
    let st: Stats;
    try {
      st = await fs.lstat(file);
    } catch {
      continue; // gone meanwhile
    }
    const writerGone = pid !== process.pid && !processAlive(pid);
    if (!opts.all && !writerGone && Date.now() - st.mtimeMs < TEMP_MAX_AGE_MS) continue;
    await fs.rm(file, { force: true, recursive: st.isDirectory() });
    removed.push(name);
  }
  return removed;
}

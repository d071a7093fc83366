// Crash-safe file replacement: the new bytes go to a temporary file in the same folder, are
// flushed to the disk (fsync), and only then renamed over the target. A rename within one folder
// is atomic on POSIX and NTFS, so a reader (or the user after a crash) sees either the whole old
// file or the whole new one, never a torn mix. Pure Node: no vscode.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** The bytes to write: a string (UTF-8), a buffer, or chunks produced as the write goes. */
export type AtomicData = string | Uint8Array | AsyncIterable<Uint8Array | string>;

/** Suffix of in-flight temporary files, so listings can skip leftovers of a crashed write. */
export const TEMP_SUFFIX = '.gemma-tmp';

/** Whether a file name is a temporary file left by writeFileAtomic. */
export function isTempName(name: string): boolean {
  return name.endsWith(TEMP_SUFFIX);
}

/** Replaces `file` with `data` atomically (temp file + fsync + rename + folder fsync). */
export async function writeFileAtomic(file: string, data: AtomicData): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
  const handle = await fs.open(tmp, 'wx', 0o644);
  try {
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) {
        await handle.writeFile(data);
      } else {
        for await (const chunk of data) await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

/** Flushes a folder's entry list so a rename survives a power cut; a no-op where unsupported. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // folders cannot be opened for fsync there
  try {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some file systems refuse fsync on a folder; the rename itself is still atomic.
  }
}

/** Atomically writes `value` as pretty JSON followed by a newline. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

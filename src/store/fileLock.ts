// Locks that hold across processes: two VS Code windows on one folder, the CLI and the panel, all
// editing one task. A lock is a small file created with O_EXCL (only one creator succeeds, on local
// disks and NFS alike) holding its owner: process id, host name, time taken, who ("VS Code",
// "gemma-tune train-task") and a random token. The holder refreshes the file's mtime every few seconds.
//
// A lock is stale, and is broken by the next process that wants it, when
//   - its owner ran on this host and that process is gone (killed, crashed: noticed at once), or was
//     taken before this host last started (its process id may belong to another process by now), or
//   - its owner ran on another host (a folder shared over the network) and it was not refreshed for STALE_MS, or
//   - it never got its content (the owner died between creating and writing it) and is a few seconds old.
// An owner of this host that is alive keeps its lock however long ago it refreshed it: a suspended
// laptop or a stalled event loop is no reason to let a second writer in.
// Breaking goes through a second, short-lived `<lock>.break` file, so two processes that find one
// stale lock at once do not both take it: the one that creates the break file checks again and
// removes the stale lock; the other waits and retries. A holder that finds its file gone or replaced
// (its lock was judged stale, say after a long suspend) marks the lock lost; long operations check
// that before they commit. Waiting is bounded: a live holder past the wait gives a LockBusyError
// whose message names it. Pure Node: no vscode.

import { randomBytes } from 'node:crypto';
import { constants, promises as fs, readFileSync, unlinkSync } from 'node:fs';
import * as os from 'node:os';
import { processAlive } from '../common/processAlive';
import { readGuardedText } from './safeFile';

/** Who holds a lock, as written in its file. */
export interface LockOwner {
  pid: number;
  host: string;
  /** When it was taken (ISO 8601). */
  since: string;
  /** Who took it, as messages name it: "VS Code", "gemma-tune train-task". */
  what: string;
  /** Unique per acquisition: tells this holder's file from a later one at the same path. */
  token: string;
}

/** The holder refreshes its lock this often. */
const REFRESH_MS = 5_000;
/** A lock of another host not refreshed for this long is stale. */
export const STALE_MS = 60_000;
/** os.uptime() and the clock disagree by a little; a lock this close to the boot is not called older than it. */
const BOOT_SLACK_MS = 60_000;
/** A lock file still without readable content after this long lost its owner mid-creation. */
const UNREADABLE_STALE_MS = 3_000;
/** A break file older than this was left by a process that died while breaking a lock. */
const BREAK_STALE_MS = 10_000;
/** Lock files are a few hundred bytes; anything larger is not one of ours. */
const MAX_LOCK_BYTES = 4096;

/** Raised when a live holder keeps the lock past the wait; the message names the holder. */
export class LockBusyError extends Error {
  constructor(
    readonly file: string,
    readonly owner: LockOwner | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'LockBusyError';
  }
}

/** Raised by FileLock.check when another process took the lock over. */
export class LockLostError extends Error {
  constructor(readonly file: string) {
    super(`${file}: another process judged this lock stale and took it over; nothing more was written`);
    this.name = 'LockLostError';
  }
}

export interface LockOptions {
  /** Who takes the lock, as other processes' messages will name it. */
  what: string;
  /** How long to wait for a live holder before giving up; 0 refuses at once. */
  waitMs: number;
  /** The LockBusyError's message, given the holder (undefined when its file is unreadable). */
  busyMessage: (owner: LockOwner | undefined) => string;
  /** A lock of another host not refreshed for this long is stale (default STALE_MS). */
  staleMs?: number;
}

/** The holder in words: "gemma-tune train-task (process 4242, since 14:03:07)", with the host when it is another. */
export function describeOwner(owner: LockOwner | undefined): string {
  if (!owner) return 'another process';
  const at = Number.isNaN(Date.parse(owner.since)) ? '' : `, since ${new Date(owner.since).toLocaleTimeString()}`;
  const host = owner.host === os.hostname() ? '' : ` on ${JSON.stringify(owner.host.slice(0, 64))}`;
  return `${owner.what.slice(0, 80)} (process ${owner.pid}${host}${at})`;
}

const held = new Set<FileLock>();
let exitHookInstalled = false;

/** A lock this process holds; release it when done. */
export class FileLock {
  private timer: NodeJS.Timeout | undefined;
  private isLost = false;

  constructor(
    /** Where the lock file is (moveTo changes it when its folder was renamed). */
    public file: string,
    readonly owner: LockOwner,
  ) {
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
    held.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // A process that exits without releasing (process.exit on a second Ctrl-C) still frees its locks.
      process.on('exit', () => {
        for (const lock of held) lock.releaseSync();
      });
    }
  }

  /** True once another process has taken the lock over. */
  get lost(): boolean {
    return this.isLost;
  }

  /** Throws LockLostError when the lock is no longer this holder's (checked on disk). */
  async check(): Promise<void> {
    if (this.isLost || !(await this.stillOurs())) {
      this.isLost = true;
      throw new LockLostError(this.file);
    }
  }

  /** Follows the lock file after the folder holding it was renamed. */
  moveTo(file: string): void {
    this.file = file;
  }

  /** Removes the lock file if it is still this holder's. */
  async release(): Promise<void> {
    this.stop();
    if (await this.stillOurs()) await fs.rm(this.file, { force: true });
  }

  private releaseSync(): void {
    this.stop();
    try {
      if ((JSON.parse(readFileSync(this.file, 'utf8')) as Partial<LockOwner>).token === this.owner.token) unlinkSync(this.file);
    } catch {
      // gone or unreadable: nothing of ours to remove
    }
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    held.delete(this);
  }

  private async stillOurs(): Promise<boolean> {
    const seen = await inspect(this.file).catch(() => null);
    return seen?.owner?.token === this.owner.token;
  }

  private async refresh(): Promise<void> {
    if (!(await this.stillOurs())) {
      this.isLost = true;
      this.stop();
      return;
    }
    const now = new Date();
    await fs.lutimes(this.file, now, now).catch(() => undefined);
  }
}

/** Takes the lock at `file`, waiting up to opts.waitMs for a live holder and breaking a stale one. */
export async function acquireLock(file: string, opts: LockOptions): Promise<FileLock> {
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), what: opts.what, token: randomBytes(12).toString('hex') };
  const deadline = Date.now() + opts.waitMs;
  let pause = 10;
  for (;;) {
    if (await createExclusive(file, JSON.stringify(owner) + '\n')) return new FileLock(file, owner);
    const seen = await inspect(file);
    if (!seen) continue; // released meanwhile: try again at once
    if (isStale(seen, opts.staleMs ?? STALE_MS)) {
      await breakStale(file, seen);
      continue;
    }
    if (Date.now() >= deadline) throw new LockBusyError(file, seen.owner, opts.busyMessage(seen.owner));
    await sleep(Math.min(pause * (0.5 + Math.random()), Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 1.5, 250);
  }
}

/** Whether the lock at `file` is held (not free, not stale), and by whom when its file says. */
export async function lockHolder(file: string, staleMs = STALE_MS): Promise<{ owner: LockOwner | undefined } | null> {
  const seen = await inspect(file);
  if (!seen || isStale(seen, staleMs)) return null;
  return { owner: seen.owner };
}

/** A lock file as found: its owner (undefined while unreadable) and its identity. */
interface Seen {
  owner: LockOwner | undefined;
  mtimeMs: number;
  stamp: string;
}

/** Reads the lock file; null when there is none. A link or pipe in its place is refused (UnsafeFileError). */
async function inspect(file: string): Promise<Seen | null> {
  let read;
  try {
    read = await readGuardedText(file, MAX_LOCK_BYTES);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return { owner: parseOwner(read.text), mtimeMs: read.mtimeMs, stamp: read.stamp };
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.since === 'string' && typeof o.what === 'string' && typeof o.token === 'string') {
      return o as LockOwner;
    }
  } catch {
    // written halfway, or not ours
  }
  return undefined;
}

function isStale(seen: Seen, staleMs: number): boolean {
  const age = Date.now() - seen.mtimeMs;
  if (!seen.owner) return age > UNREADABLE_STALE_MS;
  if (seen.owner.host !== os.hostname()) return age > staleMs;
  const bootedAt = Date.now() - os.uptime() * 1000;
  // Date.parse gives NaN for a mangled time: then the process id alone decides.
  return !processAlive(seen.owner.pid) || Date.parse(seen.owner.since) < bootedAt - BOOT_SLACK_MS;
}

/** Removes the stale lock `seen` at `file`, unless someone else is breaking it or it changed. */
async function breakStale(file: string, seen: Seen): Promise<void> {
  const breaker = `${file}.break`;
  if (!(await createExclusive(breaker, `${process.pid}\n`))) {
    const st = await fs.lstat(breaker).catch(() => null);
    if (st && Date.now() - st.mtimeMs > BREAK_STALE_MS) await fs.rm(breaker, { force: true });
    else await sleep(5 + 10 * Math.random());
    return;
  }
  try {
    const now = await inspect(file);
    if (now && now.stamp === seen.stamp && now.owner?.token === seen.owner?.token) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(breaker, { force: true });
  }
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** Creates `file` with `content` if nothing is at that path; false when something is. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, CREATE_FLAGS, 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Cross-process lock files (src/store/fileLock.ts) on a real folder: one holder at a time, a bounded
// wait that ends with the holder named, stale locks (owner SIGKILLed, not refreshed, never written)
// broken, live ones of another host respected, one winner when many find a stale lock at once, a lost
// lock noticed by its holder, and no link or pipe followed in place of a lock file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { acquireLock, describeOwner, type FileLock, LockBusyError, lockHolder, LockLostError, type LockOptions, STALE_MS } from '../../src/store/fileLock';
import { buildChild, kill, startChild } from './store-helpers';
import { tempDir } from './temp-helpers';

const root = tempDir('store-lock-');
let child: string;
before(async () => {
  child = await buildChild('store-lock');
});

let n = 0;
const lockFile = (): string => path.join(fs.mkdtempSync(path.join(root, `l${n++}-`)), '.write.lock');
const opts = (what: string, waitMs = 0): LockOptions => ({ what, waitMs, busyMessage: (o) => `held by ${describeOwner(o)}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes a lock file by hand: its owner, and its mtime `ageMs` in the past. */
function plant(file: string, owner: object | string, ageMs = 0): void {
  fs.writeFileSync(file, typeof owner === 'string' ? owner : JSON.stringify(owner));
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(file, t, t);
}

test('one holder at a time: a second taker is refused naming the first, or waits until it releases', async () => {
  const file = lockFile();
  const first = await acquireLock(file, opts('first'));
  const written = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(Object.keys(written).sort(), ['host', 'pid', 'since', 'token', 'what']);
  assert.equal(written.pid, process.pid);
  assert.equal(written.host, os.hostname());
  assert.equal(written.what, 'first');
  await assert.rejects(acquireLock(file, opts('second')), (e: unknown) =>
    e instanceof LockBusyError && e.owner?.what === 'first' && new RegExp(`^held by first \\(process ${process.pid}, since `).test(e.message));
  assert.equal((await lockHolder(file))?.owner?.token, first.owner.token);

  const t0 = Date.now();
  const waiting = acquireLock(file, opts('second', 5000));
  await sleep(150);
  await first.release();
  const second = await waiting;
  assert.ok(Date.now() - t0 >= 140, 'the second taker got the lock only after the release');
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).what, 'second');
  await second.release();
  assert.equal(fs.existsSync(file), false, 'released: the file is gone');
  assert.equal(await lockHolder(file), null);

  const held = await acquireLock(file, opts('holder'));
  const t1 = Date.now();
  await assert.rejects(acquireLock(file, opts('impatient', 300)), LockBusyError);
  assert.ok(Date.now() - t1 >= 290 && Date.now() - t1 < 2000, 'the wait is bounded by waitMs');
  await held.release();
});

/** Lets `takers` take the lock at `file` at once, each holding it a few milliseconds; returns the most that held it together. */
async function mostAtOnce(file: string, takers: number): Promise<number> {
  let inside = 0;
  let most = 0;
  await Promise.all(Array.from({ length: takers }, async (_, i) => {
    const lock = await acquireLock(file, opts(`taker ${i}`, 20_000));
    inside++;
    most = Math.max(most, inside);
    await sleep(5);
    inside--;
    await lock.release();
  }));
  return most;
}

test('many takers at once never hold the lock together', async () => {
  assert.equal(await mostAtOnce(lockFile(), 12), 1);
});

test('a lock whose holder was SIGKILLed is broken at once', async () => {
  const file = lockFile();
  const holder = startChild(child, ['hold-lock', file, 'a killed helper']);
  await holder.waitFor(/^locked$/);
  await assert.rejects(acquireLock(file, opts('me')), (e: unknown) => e instanceof LockBusyError && e.owner?.pid === holder.proc.pid);
  await kill(holder);
  const t0 = Date.now();
  const lock = await acquireLock(file, opts('me'));
  assert.ok(Date.now() - t0 < 1000, 'no waiting for a dead owner');
  await lock.release();
});

test('stale or not: another host\'s lock after STALE_MS unrefreshed, this host\'s when its process is gone or it predates the boot, an unwritten one after seconds', async () => {
  const file = lockFile();
  const remote = { pid: 1, host: 'build-agent-7', since: new Date().toISOString(), what: 'gemma-tune train-task', token: 'remote' };
  plant(file, remote);
  await assert.rejects(acquireLock(file, opts('me')), (e: unknown) => e instanceof LockBusyError && /on "build-agent-7"/.test(e.message));
  plant(file, remote, STALE_MS + 5000);
  await (await acquireLock(file, opts('me'))).release();

  plant(file, '', 0);
  await assert.rejects(acquireLock(file, opts('me')), (e: unknown) => e instanceof LockBusyError && /^held by another process$/.test(e.message),
    'an empty lock may be one being written right now');
  plant(file, '', 10_000);
  await (await acquireLock(file, opts('me'))).release();
  // This host: a process id that is not running is stale at once, whatever the age; a running one is
  // respected however long ago it refreshed (a suspended laptop), unless the lock is older than the boot.
  const local = { ...remote, host: os.hostname(), pid: 2 ** 22 + 12345 };
  plant(file, local);
  await (await acquireLock(file, opts('me'))).release();
  plant(file, { ...local, pid: process.pid }, 3600_000);
  await assert.rejects(acquireLock(file, opts('me')), LockBusyError);
  plant(file, { ...local, pid: process.pid, since: new Date(Date.now() - os.uptime() * 1000 - 3600_000).toISOString() });
  await (await acquireLock(file, opts('me'))).release();
});

test('a stale lock found by many at once is taken by one at a time', async () => {
  const file = lockFile();
  plant(file, { pid: 1, host: 'gone-host', since: new Date(0).toISOString(), what: 'x', token: 'old' }, STALE_MS * 2);
  assert.equal(await mostAtOnce(file, 10), 1);
  assert.equal(fs.existsSync(`${file}.break`), false, 'no break file left');
});

test('a holder whose lock was taken over finds out, and does not remove the new holder\'s file', async () => {
  const file = lockFile();
  const lock: FileLock = await acquireLock(file, opts('sleeper'));
  await lock.check();
  plant(file, { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), what: 'newcomer', token: 'other' });
  await assert.rejects(lock.check(), LockLostError);
  assert.equal(lock.lost, true);
  await lock.release();
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).what, 'newcomer', 'the newcomer\'s lock stays');
});

test('a link or a pipe in place of a lock file is refused, not followed', async (t) => {
  const secret = path.join(root, 'secret.txt');
  fs.writeFileSync(secret, 'PRIVATE KEY');
  const file = lockFile();
  fs.symlinkSync(secret, file);
  await assert.rejects(acquireLock(file, opts('me')), (e: Error) => /is a symbolic link/.test(e.message) && !e.message.includes('PRIVATE'));
  assert.equal(fs.readFileSync(secret, 'utf8'), 'PRIVATE KEY');
  if (process.platform === 'win32') return t.skip('no FIFOs on Windows');
  const fifo = lockFile();
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(acquireLock(fifo, opts('me')), /is a named pipe \(FIFO\)/);
});

// EngineClient against the real engine: the bundle is built from src/engine/worker.ts with esbuild
// (as `npm run build` does) and runs as a process of its own with onnxruntime-node.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient, type EngineLogger } from '../../src/client/engineClient';
import { buildWorker, engineRejection as rejection, repoRoot as root } from './worker-helpers';

let workerPath: string;
const ortVersion = (JSON.parse(readFileSync(path.join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string })
  .version;

const logs: string[] = [];
const logger: EngineLogger = {
  trace: (m) => logs.push(`trace ${m}`),
  debug: (m) => logs.push(`debug ${m}`),
  info: (m) => logs.push(`info ${m}`),
  warn: (m) => logs.push(`warn ${m}`),
  error: (m) => logs.push(`error ${m}`),
};
const clients: EngineClient[] = [];

function client(opts: Partial<ConstructorParameters<typeof EngineClient>[0]> = {}): EngineClient {
  const c = new EngineClient({ workerPath, logger, threads: 3, ...opts });
  clients.push(c);
  return c;
}

before(async () => {
  workerPath = await buildWorker('client-engine');
});

after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

test('status reports the onnxruntime-node version, the threads asked for, no model, and its own process', async () => {
  const c = client({ memory: { heapMB: 512, capMB: 4000 } });
  assert.equal(c.running, false, 'the engine starts on the first request, not before');
  assert.deepEqual(c.state, { kind: 'idle' });
  const s = await c.request('status', {});
  assert.equal(s.runtime.name, 'onnxruntime-node');
  assert.equal(s.runtime.version, ortVersion);
  assert.equal(s.threads, 3);
  assert.equal(s.model, null);
  assert.equal(s.protocol, 2);
  assert.equal(s.node, process.versions.node);
  assert.notEqual(s.pid, process.pid, 'a process of its own');
  assert.equal(s.pid, c.pid);
  assert.deepEqual(c.state, { kind: 'running', pid: s.pid });
  assert.ok(s.memory.rssMB > 0);
  assert.equal(s.memory.capMB, 1024, 'no model yet: the idle cap, under the 4000 MB ceiling');
  assert.ok(Math.abs(s.memory.heapLimitMB - 512) < 64, `heap limit ${s.memory.heapLimitMB} MB, asked for 512`);
  assert.ok(logs.some((l) => l.includes(`engine: engine started (pid ${s.pid}`)), 'engine logs reach the logger');
});

test('events reach the listener of the request that streams them', async () => {
  const c = client();
  const a: number[] = [];
  const b: number[] = [];
  const [ra, rb] = await Promise.all([
    c.request('ping', { delayMs: 30, ticks: 3 }, { onEvent: (e) => a.push(e.n) }),
    c.request('ping', { delayMs: 20, ticks: 2 }, { onEvent: (e) => b.push(e.n) }),
  ]);
  assert.deepEqual(a, [1, 2, 3]);
  assert.deepEqual(b, [1, 2]);
  assert.ok(ra.elapsedMs >= 25 && rb.elapsedMs >= 15);
});

test('one request runs at a time; status answers at once and sees the queue', async () => {
  const c = client();
  const done: string[] = [];
  const slow = c.request('ping', { delayMs: 300 }).then(() => done.push('slow'));
  const quick = c.request('ping', {}).then(() => done.push('quick'));
  await new Promise((r) => setTimeout(r, 100));
  const s = await c.request('status', {});
  done.push('status');
  assert.equal(s.busy?.method, 'ping');
  assert.equal(s.queued, 1);
  await Promise.all([slow, quick]);
  assert.deepEqual(done, ['status', 'slow', 'quick']);
});

test('cancel stops the running request and drops a queued one', async () => {
  const c = client();
  const running = new AbortController();
  const queued = new AbortController();
  const t0 = performance.now();
  const p1 = c.request('ping', { delayMs: 10_000, ticks: 100 }, { signal: running.signal });
  let ranQueued = false;
  const p2 = c.request('ping', { delayMs: 0, ticks: 1 }, { signal: queued.signal, onEvent: () => (ranQueued = true) });
  const p3 = c.request('ping', {});
  queued.abort();
  const e2 = await rejection(p2);
  assert.equal(e2.code, 'cancelled');
  assert.match(e2.message, /before it started/);
  setTimeout(() => running.abort(), 50);
  const e1 = await rejection(p1);
  assert.equal(e1.code, 'cancelled');
  assert.ok(performance.now() - t0 < 2000, 'cancel reached the running request');
  await p3;
  assert.equal(ranQueued, false);
  const pre = new AbortController();
  pre.abort();
  assert.equal((await rejection(c.request('ping', {}, { signal: pre.signal }))).code, 'cancelled');
});

test('a bad request gets an error response and the worker keeps serving', async () => {
  const c = client();
  const { pid } = await c.request('status', {});
  const unknown = await rejection(c.request('fly' as 'status', {}));
  assert.equal(unknown.code, 'bad-request');
  assert.match(unknown.message, /unknown method "fly"/);
  const badParams = await rejection(c.request('ping', { delayMs: -5 }));
  assert.equal(badParams.code, 'bad-request');
  assert.match(badParams.message, /params\.delayMs: expected a number in \[0, 60000\], got -5/);
  const extra = await rejection(c.request('ping', { delayMs: 1, verbose: true } as { delayMs: number }));
  assert.match(extra.message, /unknown field "verbose"/);
  assert.equal((await c.request('status', {})).pid, pid, 'same engine after the bad requests');
});

test('restart rejects what is in flight and the next request gets a new engine', async () => {
  const c = client();
  const first = await c.request('status', {});
  const inFlight = c.request('ping', { delayMs: 10_000 });
  const queued = c.request('ping', {});
  await new Promise((r) => setTimeout(r, 50));
  await c.restart();
  for (const p of [inFlight, queued]) {
    const e = await rejection(p);
    assert.equal(e.code, 'worker-exited');
    assert.equal(e.message, 'the engine was restarted');
  }
  assert.equal(c.running, false);
  assert.deepEqual(c.state, { kind: 'idle' });
  assert.throws(() => process.kill(first.pid, 0), /ESRCH/, 'the old engine process is gone');
  const second = await c.request('status', {});
  assert.notEqual(second.pid, first.pid);
});

test('dispose rejects what is in flight and every later request, and ends the engine process', async () => {
  const c = client();
  const { pid } = await c.request('status', {});
  const inFlight = rejection(c.request('ping', { delayMs: 10_000 }));
  await c.dispose();
  assert.equal((await inFlight).code, 'worker-exited');
  const later = await rejection(c.request('status', {}));
  assert.match(later.message, /disposed/);
  assert.equal(c.running, false);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the engine process is gone once dispose resolves');
});

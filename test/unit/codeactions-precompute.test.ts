// Background answers for the code actions (src/codeActions/precompute.ts): keyed answers kept LRU, a
// debounce that lets a selection settle, one job at a time, a new selection cancelling the running job
// it does not want, nothing started while the engine is busy, and the user's pick joining the running
// job. First with plain async jobs on real timers, then against the real engine worker with a tiny
// random model: a cancelled background classify stops in the worker, and the precomputed answer is
// the one a direct request gives.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EngineClient } from '../../src/client/engineClient';
import { Precompute, type PrecomputeJob } from '../../src/codeActions/precompute';
import { classifyParams } from '../../src/client/taskRequests';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import type { ResultOf } from '../../src/protocol/engine';
import { newTaskConfig } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { buildWorker } from './worker-helpers';

/** A job that takes `ms`, answers `key!`, and records its start, end or cancellation in `log`. */
function job(key: string, ms: number, log: string[]): PrecomputeJob<string> {
  return {
    key,
    run: (signal) => new Promise((resolve, reject) => {
      log.push(`start ${key}`);
      const timer = setTimeout(() => {
        log.push(`end ${key}`);
        resolve(`${key}!`);
      }, ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        log.push(`abort ${key}`);
        reject(new Error('cancelled'));
      });
    }),
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail('condition not met in time');
    await sleep(5);
  }
}

test('jobs wait for the selection to settle, run one at a time, and their answers are kept by key', async () => {
  const log: string[] = [];
  const p = new Precompute<string>({ debounceMs: 40 });
  // Three quick selection changes: only the last one's jobs run.
  p.schedule(p.begin(), [job('a', 10, log)]);
  p.schedule(p.begin(), [job('b', 10, log)]);
  p.schedule(p.begin(), [job('c', 30, log), job('d', 10, log)]);
  await sleep(20);
  assert.deepEqual(log, [], 'nothing starts within the debounce');
  await until(() => p.size === 2);
  assert.deepEqual(log, ['start c', 'end c', 'start d', 'end d']);
  assert.equal(p.result('c'), 'c!');
  assert.equal(p.result('a'), undefined);
  // Asking again for known keys runs nothing.
  p.schedule(p.begin(), [job('c', 10, log), job('d', 10, log)]);
  await sleep(80);
  assert.equal(log.length, 4);
  assert.deepEqual(p.counts, { started: 2, finished: 2, cancelled: 0, skippedBusy: 0, failed: 0 });
  p.dispose();
});

test('a new selection cancels the running job it does not want, and keeps the one it does', async () => {
  const log: string[] = [];
  const p = new Precompute<string>({ debounceMs: 5 });
  p.schedule(p.begin(), [job('x', 200, log)]);
  await until(() => log.includes('start x'));
  p.schedule(p.begin(), [job('y', 10, log)]);
  await until(() => p.result('y') !== undefined);
  assert.deepEqual(log, ['start x', 'abort x', 'start y', 'end y']);
  assert.equal(p.result('x'), undefined);

  // The same selection asked again (the menu opening) leaves its running job alone.
  log.length = 0;
  p.schedule(p.begin(), [job('z', 60, log)]);
  await until(() => log.includes('start z'));
  p.schedule(p.begin(), [job('z', 60, log)]);
  await until(() => p.result('z') !== undefined);
  assert.deepEqual(log, ['start z', 'end z']);

  // No selection any more: everything stops.
  log.length = 0;
  p.schedule(p.begin(), [job('w', 200, log)]);
  await until(() => log.includes('start w'));
  p.cancel();
  await until(() => log.includes('abort w'));
  assert.equal(p.counts.cancelled, 2);
  p.dispose();
});

test('a late-arriving older round is ignored', async () => {
  const log: string[] = [];
  const p = new Precompute<string>({ debounceMs: 5 });
  const old = p.begin();
  const current = p.begin();
  p.schedule(current, [job('new', 10, log)]);
  p.schedule(old, [job('old', 10, log)]);
  await until(() => p.result('new') !== undefined);
  await sleep(30);
  assert.deepEqual(log, ['start new', 'end new']);
  // An older round that ends with nothing to do does not stop the newer round's job; the current one does.
  const stale = p.begin();
  const fresh = p.begin();
  p.schedule(fresh, [job('long', 200, log)]);
  await until(() => log.includes('start long'));
  p.schedule(stale, []);
  await sleep(20);
  assert.ok(!log.includes('abort long'));
  p.schedule(fresh, []);
  await until(() => log.includes('abort long'));
  p.dispose();
});

test('nothing starts while the engine is busy', async () => {
  const log: string[] = [];
  let busy = true;
  const p = new Precompute<string>({ debounceMs: 5, canRun: async () => !busy });
  p.schedule(p.begin(), [job('a', 10, log), job('b', 10, log)]);
  await sleep(50);
  assert.deepEqual(log, []);
  assert.equal(p.counts.skippedBusy, 2);
  busy = false;
  p.schedule(p.begin(), [job('a', 10, log)]);
  await until(() => p.result('a') !== undefined);
  p.dispose();
});

test('the user\'s pick takes the kept answer, joins the running job, or computes (and keeps) its own', async () => {
  const log: string[] = [];
  const p = new Precompute<string>({ debounceMs: 5, maxEntries: 2 });
  let computed = 0;
  const compute = async () => `computed ${++computed}`;
  p.schedule(p.begin(), [job('k', 80, log)]);
  await until(() => log.includes('start k'));
  assert.equal(p.isRunning('k'), true);
  assert.deepEqual(await p.answer('k', compute), { value: 'k!', precomputed: true });
  assert.equal(p.isRunning('k'), false);
  assert.deepEqual(await p.answer('k', compute), { value: 'k!', precomputed: true });
  assert.deepEqual(await p.answer('other', compute), { value: 'computed 1', precomputed: false });
  assert.deepEqual(await p.answer('other', compute), { value: 'computed 1', precomputed: true });
  // A running job cancelled under the pick: the pick computes in the foreground.
  p.schedule(p.begin(), [job('c', 200, log)]);
  await until(() => log.includes('start c'));
  const pick = p.answer('c', compute);
  p.cancel();
  assert.deepEqual(await pick, { value: 'computed 2', precomputed: false });
  // A pick for another key cancels the running background job first.
  p.schedule(p.begin(), [job('bg', 300, log)]);
  await until(() => log.includes('start bg'));
  assert.deepEqual(await p.answer('fg', compute), { value: 'computed 3', precomputed: false });
  await until(() => log.includes('abort bg'));
  // maxEntries 2: 'k' and 'other' (least recently used) went when 'c' and 'fg' were kept.
  assert.equal(p.size, 2);
  assert.equal(p.result('k'), undefined);
  assert.equal(p.result('other'), undefined);
  assert.equal(p.result('c'), 'computed 2');
  assert.equal(p.result('fg'), 'computed 3');
  p.dispose();
});

// ---- against the real engine worker ---------------------------------------------------------

const dir = tempDir('codeactions-precompute-');
const modelFile = path.join(dir, 'tiny.gguf');
let engine: EngineClient;
before(async () => {
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 4, dtype: 'q4_0' });
  engine = new EngineClient({ workerPath: await buildWorker('codeactions-precompute'), threads: 1 });
  await engine.request('loadModel', { path: modelFile });
});
after(async () => {
  await engine?.dispose();
});

test('the worker: a background classify is cancelled in the worker, and a finished one equals a direct request', async () => {
  const task = newTaskConfig({ name: 'Bug or feature', kind: 'classify', instruction: 'Bug or feature?', labels: ['bug', 'feature'] });
  const idle = async () => {
    const st = await engine.request('status', {});
    return st.busy === null && st.queued === 0;
  };
  const p = new Precompute<ResultOf<'classify'>>({ debounceMs: 5, canRun: idle });
  const classifyJob = (input: string, before?: number): PrecomputeJob<ResultOf<'classify'>> => ({
    key: input,
    run: async (signal) => {
      // A long queue item first (ping holds the worker), so the cancel lands while the job is in the worker.
      if (before) await engine.request('ping', { delayMs: before }, { signal });
      return engine.request('classify', classifyParams(task, input, undefined), { signal });
    },
  });
  p.schedule(p.begin(), [classifyJob('The app crashes on save.', 300)]);
  // The next selection comes while the first job is in the worker (once it started: on a loaded machine
  // the idle check before it can take longer than a fixed wait).
  await until(() => p.counts.started === 1, 10_000);
  await sleep(30);
  p.schedule(p.begin(), [classifyJob('Please add a dark mode.')]);
  await until(() => p.result('Please add a dark mode.') !== undefined, 10_000);
  assert.equal(p.counts.cancelled, 1);
  assert.equal(p.result('The app crashes on save.'), undefined);
  const direct = await engine.request('classify', classifyParams(task, 'Please add a dark mode.', undefined));
  assert.deepEqual(p.result('Please add a dark mode.'), direct);
  assert.equal(await idle(), true, 'nothing left running or queued in the worker');
  p.dispose();
});

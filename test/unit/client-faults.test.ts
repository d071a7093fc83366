// Faults of the real engine process (dist/worker.js built from src, run by EngineClient): whatever
// ends it (SIGKILL, a native abort, a V8 fatal error, its memory cap) the requests it ran fail with
// the reason in one line and the next request starts a fresh engine, until three crashes in a minute
// stop it; a request the host gives up on (timeout, an answer that breaks the protocol, a cancel the
// engine does not honour in time) is stopped in the engine; a model path that is not a regular file
// or folder is refused at once; an engine whose host died ends.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient, type EngineLogger, type EngineState } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf } from '../../src/engine/model/gguf';
import { modelNeedMB, trainNeedMB } from '../../src/engine/memoryCap';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { bugOrFeatureExamples } from './train-worker-helpers';
import { buildWorker, engineRejection as rejection, repoRoot } from './worker-helpers';
import { processAlive } from '../../src/common/processAlive';

const tmp = tempDir('client-faults-');
let workerPath: string;
/** The tiny random q4 model (loads in a second). */
let tiny: string;
/** The tiny model with Gemma's 262144-token vocabulary: a few hundred MB while loading, a couple of seconds. */
let wide: string;
const clients: EngineClient[] = [];

interface Logged {
  logger: EngineLogger;
  lines: string[];
}

function logged(): Logged {
  const lines: string[] = [];
  const at = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return { lines, logger: { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

function client(opts: Partial<ConstructorParameters<typeof EngineClient>[0]> = {}): EngineClient {
  const c = new EngineClient({ workerPath, threads: 1, ...opts });
  clients.push(c);
  return c;
}

/** The states `c` goes through from now on. */
function states(c: EngineClient): EngineState[] {
  const seen: EngineState[] = [];
  c.onDidChangeState((s) => seen.push(s));
  return seen;
}


async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

before(async () => {
  workerPath = await buildWorker('client-faults');
  tiny = path.join(tmp, 'tiny-q4.gguf');
  writeRandomGguf(tiny, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  wide = path.join(tmp, 'wide-vocab-q4.gguf');
  writeRandomGguf(wide, { ...GEMMA3_TINY, vocabSize: 262_144 }, { seed: 1, dtype: 'q4_0' });
});

after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

test('an engine killed mid-request (SIGKILL) fails that request with the reason; the host runs on and the next request starts a fresh engine', async () => {
  const { logger, lines } = logged();
  const c = client({ logger });
  const seen = states(c);
  const { pid } = await c.request('status', {});
  const running = c.request('ping', { delayMs: 30_000, ticks: 300 });
  const queued = c.request('ping', {});
  await new Promise((r) => setTimeout(r, 100));
  process.kill(pid, 'SIGKILL');
  for (const p of [running, queued]) {
    const e = await rejection(p);
    assert.equal(e.code, 'crashed');
    assert.equal(e.message, 'the engine was killed (SIGKILL), by the system when memory ran out or by another process');
    assert.equal(e.method, 'ping');
  }
  assert.deepEqual(seen.at(-1), { kind: 'crashed', reason: 'the engine was killed (SIGKILL), by the system when memory ran out or by another process' });
  assert.ok(lines.some((l) => l.startsWith('error engine: the engine was killed (SIGKILL)')), 'the crash is logged');
  const next = await c.request('ping', {});
  assert.notEqual(next.pid, pid, 'a new engine answered');
  assert.deepEqual(c.state, { kind: 'running', pid: next.pid });
});

test('a native abort (SIGABRT) is named as one', async () => {
  const c = client();
  const { pid } = await c.request('status', {});
  const running = c.request('ping', { delayMs: 30_000 });
  await new Promise((r) => setTimeout(r, 100));
  process.kill(pid, 'SIGABRT');
  const e = await rejection(running);
  assert.equal(e.code, 'crashed');
  assert.match(e.message, /^the engine aborted \(SIGABRT\)/);
});

test('a model file cut short while loaded ends only the engine, named as such; the next request loads the file anew', async () => {
  // The native head reads the embedding table in place from the mapped file, so a file truncated under
  // the engine (cp over it, say) faults its next read.
  const file = path.join(tmp, 'mapped-q4.gguf');
  fs.copyFileSync(tiny, file);
  const c = client();
  await c.request('loadModel', { path: file, precision: 'q4', threads: 1 });
  await c.request('generate', { text: 'The app crashes', maxTokens: 2 });
  fs.truncateSync(file, 0);
  const e = await rejection(c.request('generate', { text: 'The app crashes', maxTokens: 2 }));
  assert.equal(e.code, 'crashed');
  assert.equal(e.message, 'the engine crashed (bus error, SIGBUS: a file it had mapped, such as the model file, was cut short while in use)');
  fs.copyFileSync(tiny, file);
  await c.request('loadModel', { path: file, precision: 'q4', threads: 1 });
  const r = await c.request('generate', { text: 'The app crashes', maxTokens: 2 });
  assert.equal(typeof r.text, 'string');
});

test('a V8 fatal error (the JavaScript heap runs out) ends only the engine, and says so', async () => {
  const c = client({ memory: { heapMB: 8 } });
  await c.request('status', {});
  // 40 MB of prompt: more than an 8 MB heap can read.
  const text = 'x'.repeat(200_000);
  const e = await rejection(c.request('generate', { messages: Array.from({ length: 200 }, () => ({ role: 'user' as const, content: text })), maxTokens: 1 }));
  assert.equal(e.code, 'crashed');
  assert.equal(e.message, 'the engine ran out of JavaScript heap memory (its limit is 8 MB)');
});

test('the engine starts with the host\'s heap sizes: a small young generation by default, V8\'s when asked', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const flags = async (c: EngineClient) => {
    const { pid } = await c.request('status', {});
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.startsWith('--max-'));
  };
  assert.deepEqual(await flags(client()), ['--max-old-space-size=2048', '--max-semi-space-size=1']);
  assert.deepEqual(await flags(client({ memory: { semiSpaceMB: null } })), ['--max-old-space-size=2048']);
});

test('three crashes within a minute stop the engine until restart(); then it starts again', async () => {
  const c = client();
  const seen = states(c);
  for (let i = 1; i <= 3; i++) {
    const { pid } = await c.request('status', {});
    const running = c.request('ping', { delayMs: 30_000 });
    process.kill(pid, 'SIGKILL');
    assert.equal((await rejection(running)).code, 'crashed');
    assert.equal(c.state.kind, i < 3 ? 'crashed' : 'stopped', `after crash ${i}`);
  }
  assert.match((c.state as { reason: string }).reason, /^the engine crashed 3 times within 60 s \(last: the engine was killed \(SIGKILL\).*\), so it is not restarted until you ask$/);
  const refused = await rejection(c.request('status', {}));
  assert.equal(refused.code, 'crashed');
  assert.match(refused.message, /^the engine crashed 3 times/);
  assert.equal(c.running, false, 'no engine was started for it');
  await c.restart();
  assert.deepEqual(c.state, { kind: 'idle' });
  const again = await c.request('status', {});
  assert.ok(again.pid > 0);
  assert.deepEqual(seen.map((s) => s.kind), ['running', 'crashed', 'running', 'crashed', 'running', 'stopped', 'idle', 'running']);
});

/** The nice value of each thread of `pid`, by thread id (Linux: field 19 of /proc/PID/task/TID/stat). */
function threadNice(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // After "(comm)" the fields run from state (3rd) on; nice is the 19th.
    out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19 - 3]));
  }
  return out;
}

test('an engine started below the editor\'s priority runs its compute threads at that priority', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const c = client({ priority: 10, threads: 3 });
  const { pid } = await c.request('status', {});
  const before = threadNice(pid);
  assert.equal(before.get(pid), 10, 'the engine\'s main thread');
  await c.request('loadModel', { path: tiny, precision: 'q4' });
  await c.request('generate', { text: 'The app crashes', maxTokens: 2 });
  const started = [...threadNice(pid)].filter(([tid]) => !before.has(tid));
  assert.ok(started.length >= 2, `onnxruntime's pool of 3 threads starts 2 of its own (${started.length} new threads)`);
  assert.deepEqual(started.filter(([, nice]) => nice !== 10), [], 'every thread started after the engine lowered its priority inherits it');
  // The host is untouched.
  assert.equal(threadNice(process.pid).get(process.pid), 0);
});

test('the memory cap ends an engine whose resident size runs past it, with the numbers', async () => {
  // A 90 MB ceiling: the idle engine (about 70 MB) fits, the wide-vocabulary model loaded (about 105 MB, 130 at
  // the load's peak) does not. The load is quick enough to finish before the watchdog looks: then the next
  // request finds the engine stopped for that reason.
  const c = client({ memory: { capMB: 90 } });
  const s = await c.request('status', {});
  assert.equal(s.memory.capMB, 90);
  const e = await rejection((async () => {
    await c.request('loadModel', { path: wide, precision: 'q4' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await c.request('status', {});
  })());
  assert.equal(e.code, 'crashed');
  assert.match(e.message, /^the engine used (\d+) MB of memory, over its cap of 90 MB, and was stopped$/);
  assert.ok(Number(/used (\d+) MB/.exec(e.message)![1]) > 90);
  assert.ok(!processAlive(s.pid));
});

test('a loaded model and a training run raise the cap to what they need, never above the host\'s ceiling', async () => {
  const { logger, lines } = logged();
  const c = client({ memory: { capMB: 1200 }, logger });
  assert.equal((await c.request('status', {})).memory.capMB, 1024, 'idle');
  await c.request('loadModel', { path: tiny, precision: 'q4' });
  assert.equal((await c.request('status', {})).memory.capMB, modelNeedMB(GEMMA3_TINY, 'q4'));
  const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 1, rank: 4, alpha: 8, batchSize: 8 };
  await c.request('train', { examples: bugOrFeatureExamples, hyperparameters: hp, outDir: path.join(tmp, 'cap-run') });
  const said = lines.map((l) => /memory cap (\d+) MB for batches of 8 × (\d+) tokens/.exec(l)).find((m) => m);
  assert.ok(said, 'the run says the room it took');
  const tokens = Number(said[2]);
  assert.ok(tokens > 20 && tokens < 200, `the longest example has ${tokens} tokens`);
  assert.equal(Number(said[1]), trainNeedMB(GEMMA3_TINY, 'q4', 8, tokens));
  assert.equal((await c.request('status', {})).memory.capMB, trainNeedMB(GEMMA3_TINY, 'q4', 8, tokens));
  await c.request('loadModel', { path: wide, precision: 'f32' });
  assert.equal((await c.request('status', {})).memory.capMB, 1200, 'the wide model in f32 would need more: the ceiling holds');
});

test('a request that times out rejects at once and is stopped in the engine: the next one runs promptly', async () => {
  const { logger, lines } = logged();
  const c = client({ logger });
  const { pid } = await c.request('status', {});
  const t0 = performance.now();
  const e = await rejection(c.request('ping', { delayMs: 30_000, ticks: 300 }, { timeoutMs: 200 }));
  assert.equal(e.code, 'timeout');
  assert.equal(e.message, 'ping did not answer within 200 ms; the engine was told to stop it');
  const next = await c.request('ping', {});
  assert.ok(performance.now() - t0 < 5000, `the next request waited ${Math.round(performance.now() - t0)} ms`);
  assert.equal(next.pid, pid, 'stopped, not restarted');
  await until('the engine\'s late answer', () => lines.some((l) => /ping#\d+ ended after the host gave up on it \(error\)/.test(l)));
});

test('a training run that times out is stopped in the engine: the trainer saw the cancel and the next request runs at once', async () => {
  const { logger, lines } = logged();
  const c = client({ logger });
  await c.request('loadModel', { path: tiny, precision: 'q4' });
  const outDir = path.join(tmp, 'timed-out-run');
  let steps = 0;
  const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 100, rank: 4, alpha: 8, batchSize: 4, patience: 0 };
  const e = await rejection(c.request('train', { examples: bugOrFeatureExamples, hyperparameters: hp, outDir }, { timeoutMs: 3000, onEvent: (ev) => void (ev.type === 'step' && steps++) }));
  assert.equal(e.code, 'timeout');
  assert.ok(steps > 0, 'it was training when the host gave up');
  const t0 = performance.now();
  await c.request('ping', {});
  assert.ok(performance.now() - t0 < 5000, `the next request waited ${Math.round(performance.now() - t0)} ms behind a 200-step run`);
  // The trainer stopped at a step boundary and answered (the host dropped the answer): a cancelled run, not a restart.
  await until('the trainer\'s answer', () => lines.some((l) => /train#\d+ ended after the host gave up on it \(response\)/.test(l)));
  assert.ok(fs.existsSync(path.join(outDir, 'adapter_model.safetensors')), 'the cancelled run kept its best adapter');
});

test('a training step event that breaks the protocol (a non-finite loss) fails the request and stops the run in the engine', async () => {
  // One norm weight of 1e30: finite, so the model loads, but the activations overflow and the loss is not a number.
  const model = path.join(tmp, 'huge-norm.gguf');
  writeRandomGguf(model, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  const t = readGguf(model).tensors.get('blk.0.ffn_norm.weight')!;
  const fd = fs.openSync(model, 'r+');
  fs.writeSync(fd, new Uint8Array(new Float32Array(t.nbytes / 4).fill(1e30).buffer), 0, t.nbytes, t.offset);
  fs.closeSync(fd);
  const c = client();
  await c.request('loadModel', { path: model, precision: 'q4' });
  const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 100, rank: 4, alpha: 8, batchSize: 4, patience: 0 };
  const e = await rejection(c.request('train', { examples: bugOrFeatureExamples, hyperparameters: hp, outDir: path.join(tmp, 'nan-run') }));
  assert.equal(e.code, 'failed');
  assert.match(e.message, /loss|NaN|finite/i);
  const t0 = performance.now();
  await c.request('ping', {});
  assert.ok(performance.now() - t0 < 5000, `the next request waited ${Math.round(performance.now() - t0)} ms behind a 200-step run`);
});

test('a cancelled load stops in the engine; one the engine cannot stop within the grace restarts it', async () => {
  const c = client();
  const { pid } = await c.request('status', {});
  // Cancelled at once: the engine stops before building the runtime and stays up.
  const abort = new AbortController();
  const load = c.request('loadModel', { path: wide, precision: 'q4' }, { signal: abort.signal });
  abort.abort();
  const e = await rejection(load);
  assert.equal(e.code, 'cancelled');
  assert.match(e.message, /^loading wide-vocab-q4\.gguf was cancelled$/);
  const s = await c.request('status', {});
  assert.equal(s.pid, pid);
  assert.equal(s.model, null);
  // With no time to stop (the engine is reading the file when the cancel comes), the host restarts it.
  const abort2 = new AbortController();
  const load2 = c.request('loadModel', { path: wide, precision: 'q4' }, { signal: abort2.signal, cancelGraceMs: 30 });
  const queued = rejection(c.request('ping', {}));
  abort2.abort();
  const e2 = await rejection(load2);
  assert.equal(e2.code, 'cancelled');
  assert.equal(e2.message, 'the engine was restarted because loadModel did not stop within 30 ms of being cancelled');
  const q = await queued;
  assert.equal(q.code, 'worker-exited', 'what waited behind it went with that engine');
  assert.equal(c.state.kind, 'idle', 'a restart by the host is not a crash');
  assert.notEqual((await c.request('status', {})).pid, pid);
});

test('a cancel the engine answers in time restarts nothing, however long after', async () => {
  const c = client();
  const { pid } = await c.request('status', {});
  const abort = new AbortController();
  const p = c.request('ping', { delayMs: 30_000, ticks: 300 }, { signal: abort.signal, cancelGraceMs: 300 });
  abort.abort();
  assert.equal((await rejection(p)).code, 'cancelled');
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(c.state, { kind: 'running', pid });
  assert.equal((await c.request('status', {})).pid, pid);
});

test('a model path that is a FIFO is refused at once, by the engine and by the CLI, instead of waiting for a writer', async () => {
  const fifo = path.join(tmp, 'model.gguf');
  execFileSync('mkfifo', [fifo]);
  const c = client();
  const t0 = performance.now();
  const e = await rejection(c.request('loadModel', { path: fifo }));
  assert.equal(e.code, 'failed');
  assert.equal(e.message, `${fifo} is a FIFO (named pipe); a model is a .gguf file or a Hugging Face folder`);
  // A Hugging Face folder whose config.json is a FIFO.
  const hf = path.join(tmp, 'hf');
  fs.mkdirSync(hf);
  execFileSync('mkfifo', [path.join(hf, 'config.json')]);
  const e2 = await rejection(c.request('loadModel', { path: hf }));
  assert.equal(e2.message, `${path.join(hf, 'config.json')} is a FIFO (named pipe), not a regular file`);
  assert.ok(performance.now() - t0 < 5000);
  // The CLI runs the engine in-process, and checks the same way.
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'generate', '--model', fifo, '--prompt', 'hi'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  assert.equal(r.code, 1, `the CLI answered instead of hanging: ${r.stderr}`);
  assert.equal(r.stderr.trim(), `gemma-tune generate: ${fifo} is a FIFO (named pipe); a model is a .gguf file or a Hugging Face folder`);
});

test('an engine whose extension host dies ends by itself', async () => {
  // A host of its own, killed without warning (SIGKILL: no dispose, no deactivate).
  const script = path.join(tmp, 'host.ts');
  fs.writeFileSync(script, [
    `import { EngineClient } from ${JSON.stringify(path.join(repoRoot, 'src/client/engineClient'))};`,
    `const c = new EngineClient({ workerPath: ${JSON.stringify(workerPath)}, threads: 1 });`,
    `c.request('status', {}).then((s) => { console.log(s.pid); void c.request('ping', { delayMs: 60000 }).catch(() => undefined); });`,
  ].join('\n'));
  const host = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    host.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    host.once('exit', () => reject(new Error('the host exited early')));
  });
  assert.ok(processAlive(pid));
  host.kill('SIGKILL');
  await until('the orphaned engine to end', () => !processAlive(pid), 5000);
});

test('disposing the client (the window closes) cancels a training run in the engine, which saves and ends', async () => {
  const c = client();
  await c.request('loadModel', { path: tiny, precision: 'q4' });
  const outDir = path.join(tmp, 'closed-run');
  // Batch 1 over the examples four times: 32 steps an epoch (and a timed checkpoint only after 30 s), so a
  // checkpoint at any other step was written for the cancel, even when a loaded machine is slow to send it.
  const examples = [0, 1, 2, 3].flatMap((k) => bugOrFeatureExamples.map((e) => ({ ...e, id: `${e.id}-${k}` })));
  const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 100, rank: 4, alpha: 8, batchSize: 1, patience: 0, valSplit: 0 };
  let stepped!: () => void;
  const firstStep = new Promise<void>((r) => (stepped = r));
  const training = rejection(c.request('train', { examples, hyperparameters: hp, outDir }, { onEvent: (e) => void (e.type === 'step' && stepped()) }));
  await firstStep;
  const { pid } = await c.request('status', {});
  const t0 = performance.now();
  await c.dispose();
  assert.ok(performance.now() - t0 < 4500, 'dispose waits at most its grace (3 s)');
  assert.equal((await training).code, 'worker-exited');
  assert.ok(!processAlive(pid), 'the engine process has ended');
  // The trainer saw the cancel and checkpointed where it stopped, rather than being cut off.
  const run = JSON.parse(readSafetensorsHeader(path.join(outDir, 'trainer_state.safetensors')).metadata.run) as { step: number };
  assert.ok(run.step > 0 && run.step % 32 !== 0, `checkpoint at step ${run.step}: written at the cancel, not at an epoch's end`);
});

test('an engine that cannot start says why', async () => {
  const missing = path.join(tmp, 'no-such-worker.js');
  const c = new EngineClient({ workerPath: missing, threads: 1 });
  clients.push(c);
  const e = await rejection(c.request('status', {}));
  assert.equal(e.code, 'crashed');
  assert.match(e.message, /^the engine exited with code 1: Error: Cannot find module '.*no-such-worker\.js'/);
});

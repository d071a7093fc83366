// The code actions' adapter cache and requests against the real engine worker (esbuild bundle in a
// worker thread, onnxruntime-node) with a tiny random Gemma 3 GGUF and a PEFT adapter written by
// the trainer's writer: an adapter is sent once per (file version, model load), and a classify
// request built from a task answers with one of its labels using that adapter.

import assert from 'node:assert/strict';
import { utimesSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import { AdapterCache, adapterName } from '../../src/client/adapterCache';
import { classifyParams } from '../../src/client/taskRequests';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import type { EngineMethod } from '../../src/protocol/engine';
import { newTaskConfig } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { buildWorker } from './worker-helpers';

const dir = tempDir('codeactions-adapter-');
const modelFile = path.join(dir, 'tiny.gguf');
const adapterDir = path.join(dir, 'task', 'adapter');
let engine: EngineClient;
const sent: EngineMethod[] = [];

/** The real engine, with a record of the methods sent through it. */
const recording: Pick<EngineClient, 'request'> = {
  request: ((method: EngineMethod, params: never, opts?: never) => {
    sent.push(method);
    return engine.request(method, params, opts);
  }) as EngineClient['request'],
};

function writeAdapter(seed: number): void {
  const p = initLora(GEMMA3_TINY, 4, 8, ALL_TARGETS, seed);
  // A trained adapter has B ≠ 0 (a fresh one is the identity); make it change the answer.
  for (const m of p.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = Math.sin(i * 0.37 + seed) * 0.5;
  writePeftAdapter(adapterDir, p);
}

before(async () => {
  const workerPath = await buildWorker('codeactions-adapter');
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  writeAdapter(1);
  engine = new EngineClient({ workerPath, threads: 1 });
});

after(async () => {
  await engine?.dispose();
});

test('an adapter is loaded once per file version and model load', async () => {
  await engine.request('loadModel', { path: modelFile });
  const cache = new AdapterCache(recording);
  const name = await cache.ensure(adapterDir, 'bug-or-feature', 1);
  assert.equal(name, adapterName(adapterDir, 'bug-or-feature'));
  assert.match(name, /^task:bug-or-feature:[0-9a-f]{12}$/);
  assert.deepEqual(await Promise.all([cache.ensure(adapterDir, 'bug-or-feature', 1), cache.ensure(adapterDir, 'bug-or-feature', 1)]), [name, name]);
  assert.deepEqual(sent, ['loadAdapter'], 'the second and third asks reuse the loaded adapter');

  // Retrained: the file changes, so it is sent again.
  writeAdapter(2);
  utimesSync(path.join(adapterDir, 'adapter_model.safetensors'), new Date(), new Date(Date.now() + 5000));
  await cache.ensure(adapterDir, 'bug-or-feature', 1);
  assert.deepEqual(sent, ['loadAdapter', 'loadAdapter']);

  // The model was reloaded (which drops adapters): a new generation sends it again.
  await engine.request('loadModel', { path: modelFile });
  await cache.ensure(adapterDir, 'bug-or-feature', 2);
  assert.deepEqual(sent, ['loadAdapter', 'loadAdapter', 'loadAdapter']);
  cache.clear();
  await cache.ensure(adapterDir, 'bug-or-feature', 2);
  assert.equal(sent.length, 4, 'clear() forgets what the engine held');
});

test('a missing adapter says which file is missing', async () => {
  const cache = new AdapterCache(recording);
  await assert.rejects(cache.ensure(path.join(dir, 'none'), 'x', 1), /none\/adapter_model\.safetensors does not exist: train the task first/);
});

test('a task classify request answers one of its labels, and the adapter changes the scores', async () => {
  await engine.request('loadModel', { path: modelFile });
  const name = await new AdapterCache(engine).ensure(adapterDir, 'bug-or-feature', 99);
  const task = newTaskConfig({ name: 'Bug or feature', kind: 'classify', instruction: 'Bug or feature?', labels: ['bug', 'feature', 'question'] });
  const input = 'The app crashes when I click Save twice.';
  const tuned = await engine.request('classify', classifyParams(task, input, name));
  const base = await engine.request('classify', classifyParams(task, input, undefined));
  assert.ok(task.labels!.includes(tuned.label));
  assert.equal(tuned.scores.length, 3);
  assert.ok(Math.abs(tuned.scores.reduce((a, s) => a + s.probability, 0) - 1) < 1e-6);
  assert.notDeepEqual(tuned.scores.map((s) => s.logprob), base.scores.map((s) => s.logprob), 'the adapter is applied');
});

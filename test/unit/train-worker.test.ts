// The worker's `train` method through the real engine worker (bundled with esbuild, run by
// EngineClient in a worker thread) on a tiny random q4 GGUF: events stream in order, the adapter lands
// in outDir as PEFT, the inference session comes back (classify with and without the new adapter), a
// cancel leaves the best adapter so far and says which step it is, and bad input fails with a reason.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient, EngineError } from '../../src/client/engineClient';
import type { TrainEventMessage } from '../../src/protocol/train';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { bugOrFeature, bugOrFeatureExamples, tinyQ4Worker } from './train-worker-helpers';

const tmp = tempDir('train-worker-');
let engine: EngineClient;

const task = bugOrFeature;
const examples = bugOrFeatureExamples;
const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 3, minSteps: 0, learningRate: 5e-3, rank: 4, alpha: 8, batchSize: 4 };

before(async () => {
  engine = await tinyQ4Worker('train-worker', tmp);
});
after(async () => {
  await engine.dispose();
});

test('train streams start, steps, evals and done, writes a PEFT adapter, and the model still answers', async () => {
  const outDir = path.join(tmp, 'run1');
  const events: TrainEventMessage[] = [];
  const r = await engine.request('train', { examples, valIds: ['ex-0', 'ex-1'], hyperparameters: hp, outDir }, { onEvent: (e) => events.push(e) });
  assert.equal(events[0].type, 'start');
  assert.equal(events.at(-1)!.type, 'done');
  const steps = events.filter((e) => e.type === 'step');
  const evals = events.filter((e) => e.type === 'eval');
  // 8 training examples, batch 4: 2 steps per epoch; 3 epochs (unless early stopping ends it sooner).
  assert.ok(steps.length >= 2 && steps.length <= 6, `${steps.length} steps`);
  assert.deepEqual(steps.map((e) => e.step), steps.map((_, i) => i + 1));
  assert.ok(evals.length >= 1);
  assert.deepEqual(r.valIds, ['ex-0', 'ex-1']);
  assert.equal(r.trainIds.length, 8);
  assert.ok(['completed', 'early-stop'].includes(r.reason));
  assert.ok(r.savedStep >= 1 && r.savedStep <= r.step);
  assert.ok(fs.existsSync(path.join(outDir, 'adapter_model.safetensors')));
  const config = JSON.parse(fs.readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8')) as { r: number; peft_type: string; base_model_name_or_path: string };
  assert.equal(config.r, 4);
  assert.equal(config.peft_type, 'LORA');
  assert.equal(config.base_model_name_or_path, 'Gemma 3 (random weights)', 'the GGUF\'s general.name, not its path');
  assert.ok(r.peakRssMB > 0);
  console.log(`tiny q4: ${steps.length} steps in ${r.elapsedS.toFixed(2)} s (setup ${r.setupS.toFixed(2)} s, reload ${r.reloadS.toFixed(2)} s), peak RSS ${r.peakRssMB} MB`);

  // The inference session is back, and the new adapter loads on it.
  const messages = [{ role: 'user' as const, content: examples[0].messages[0].content }];
  const base = await engine.request('classify', { messages, labels: task.labels });
  await engine.request('loadAdapter', { name: 'run1', path: outDir });
  const tuned = await engine.request('classify', { messages, labels: task.labels, adapter: 'run1' });
  assert.ok(task.labels.includes(base.label) && task.labels.includes(tuned.label));
  assert.notEqual(base.probability, tuned.probability, 'the adapter changes the answer\'s probability');
});

test('an adapter registered before training is registered again after it', async () => {
  const r = await engine.request('train', { examples: examples.slice(0, 4), hyperparameters: { ...hp, epochs: 1 }, outDir: path.join(tmp, 'run2') });
  assert.equal(r.valIds.length, 0, 'fewer than 10 examples: nothing held out');
  const messages = [{ role: 'user' as const, content: 'x' }];
  const out = await engine.request('classify', { messages, labels: task.labels, adapter: 'run1' });
  assert.ok(task.labels.includes(out.label));
});

test('classify with a shared prefix works before and after training (prefix caches follow the new runtime)', async () => {
  const shared = 'Classify this report as bug or feature. Report: ';
  const messages = [{ role: 'user' as const, content: shared + examples[1].messages[0].content }];
  const before = await engine.request('classify', { messages, labels: task.labels, sharedPrefix: shared });
  await engine.request('train', { examples: examples.slice(0, 4), hyperparameters: { ...hp, epochs: 1 }, outDir: path.join(tmp, 'run-prefix') });
  const after = await engine.request('classify', { messages, labels: task.labels, sharedPrefix: shared });
  assert.equal(after.label, before.label, 'same base model, same answer');
  assert.ok(Math.abs(after.probability - before.probability) < 1e-4, `${after.probability} vs ${before.probability}`);
});

test('a cancel after the first step stops training and leaves the best adapter so far', async () => {
  const outDir = path.join(tmp, 'run3');
  const abort = new AbortController();
  const events: TrainEventMessage[] = [];
  const r = await engine.request('train', { examples, hyperparameters: { ...hp, epochs: 50 }, outDir }, {
    signal: abort.signal,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'step') abort.abort();
    },
  });
  assert.equal(r.reason, 'cancelled');
  assert.ok(r.step < 100, `stopped early, at step ${r.step}`);
  assert.ok(fs.existsSync(path.join(outDir, 'adapter_model.safetensors')));
  const done = events.at(-1)!;
  assert.equal(done.type, 'done');
  assert.equal(done.type === 'done' && done.reason, 'cancelled');
  // The worker serves the next request.
  assert.equal((await engine.request('status', {})).model?.name, 'tiny-q4.gguf');
});

test('bad input fails with a reason and leaves the model loaded', async () => {
  const e1 = await engine.request('train', { examples: [], hyperparameters: hp, outDir: path.join(tmp, 'bad') }).catch((e: unknown) => e);
  assert.ok(e1 instanceof EngineError && e1.code === 'failed' && /no labeled examples/.test(e1.message), String(e1));
  const e2 = await engine.request('train', { examples, valIds: ['nope'], hyperparameters: hp, outDir: path.join(tmp, 'bad') }).catch((e: unknown) => e);
  assert.ok(e2 instanceof EngineError && /pinned validation ids not in the data: nope/.test(e2.message), String(e2));
  const e3 = await engine.request('train', { examples, hyperparameters: { ...hp, rank: 0 }, outDir: path.join(tmp, 'bad') } as never).catch((e: unknown) => e);
  assert.ok(e3 instanceof EngineError && e3.code === 'bad-request' && /hyperparameters\.rank/.test(e3.message), String(e3));
  assert.ok((await engine.request('status', {})).model);
});

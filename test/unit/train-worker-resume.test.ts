// Resuming a cancelled run through the real engine worker (bundled as the extension ships it) on a tiny
// random q4 GGUF: the resumed run starts where the cancelled one stopped, ends at the same step as an
// uninterrupted run and saves the same adapter; a resume with other examples fails with the trainer's
// reason, and the worker goes on answering.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import type { TrainEventMessage } from '../../src/protocol/train';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { bugOrFeature, bugOrFeatureExamples, tinyQ4Worker } from './train-worker-helpers';
import { safetensorsTensors, tensorDiffs } from './train-helpers';
import { engineRejection } from './worker-helpers';

const tmp = tempDir('train-worker-resume-');
let engine: EngineClient;

const task = bugOrFeature;
const examples = bugOrFeatureExamples;
const valIds = ['ex-0', 'ex-1'];
// 8 training examples, batch 4: 2 steps an epoch, 20 in all; no early stop, so every run ends at step 20.
const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 10, minSteps: 0, learningRate: 5e-3, rank: 4, alpha: 8, batchSize: 4, patience: 0 };
const TOTAL = 20;

before(async () => {
  engine = await tinyQ4Worker('train-worker-resume', tmp);
});
after(async () => {
  await engine.dispose();
});

/** The adapter a run saved into `dir`. */
const adapterTensors = (dir: string) => safetensorsTensors(path.join(dir, 'adapter_model.safetensors'));

/** A run into `outDir` cancelled as its first step is reported. */
function cancelledAtFirstStep(outDir: string) {
  const abort = new AbortController();
  return engine.request('train', { examples, valIds, hyperparameters: hp, outDir }, {
    signal: abort.signal,
    onEvent: (e) => {
      if (e.type === 'step') abort.abort();
    },
  });
}

test('a cancelled run resumes from its step and ends like an uninterrupted one', async () => {
  const whole = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir: path.join(tmp, 'whole') });
  assert.equal(whole.reason, 'completed');
  assert.equal(whole.step, TOTAL);

  const outDir = path.join(tmp, 'interrupted');
  const first = await cancelledAtFirstStep(outDir);
  assert.equal(first.reason, 'cancelled');
  assert.ok(first.step > 0 && first.step < TOTAL, `cancelled at step ${first.step}`);
  assert.ok(fs.existsSync(path.join(outDir, 'trainer_state.safetensors')), 'the cancel left a checkpoint');

  const events: TrainEventMessage[] = [];
  const resumed = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir, resume: true }, { onEvent: (e) => events.push(e) });
  const start = events[0];
  assert.equal(start.type, 'start');
  assert.equal(start.type === 'start' && start.resumedFromStep, first.step);
  assert.equal(start.type === 'start' && start.totalSteps, TOTAL);
  const steps = events.flatMap((e) => (e.type === 'step' ? [e.step] : []));
  assert.deepEqual(steps, Array.from({ length: TOTAL - first.step }, (_, i) => first.step + 1 + i), 'the resumed run runs only the steps left');
  assert.equal(resumed.reason, 'completed');
  assert.equal(resumed.step, whole.step);
  assert.equal(resumed.savedStep, whole.savedStep, 'the same evaluation was the best');
  assert.equal(resumed.bestValLoss !== null && whole.bestValLoss !== null && Math.abs(resumed.bestValLoss - whole.bestValLoss) < 1e-5, true, `${resumed.bestValLoss} vs ${whole.bestValLoss}`);
  const a = adapterTensors(path.join(tmp, 'whole'));
  const b = adapterTensors(outDir);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, worst] of tensorDiffs(a, b)) assert.ok(worst < 1e-5, `${name}: the resumed adapter differs from the uninterrupted one by ${worst}`);
});

test('a resume with other examples fails with the trainer\'s reason and the worker still answers', async () => {
  const outDir = path.join(tmp, 'changed');
  const first = await cancelledAtFirstStep(outDir);
  assert.equal(first.reason, 'cancelled');
  const fewer = examples.filter((e) => e.id !== 'ex-9');
  const err = await engineRejection(engine.request('train', { examples: fewer, valIds, hyperparameters: hp, outDir, resume: true }));
  assert.equal(err.code, 'failed');
  assert.match(err.message, /trainer_state\.safetensors: the run was started with other data or settings; cannot resume/);
  const other = await engineRejection(engine.request('train', { examples, valIds, hyperparameters: { ...hp, seed: hp.seed + 1 }, outDir, resume: true }));
  assert.match(other.message, /other data or settings/);
  const none = await engineRejection(engine.request('train', { examples, valIds, hyperparameters: hp, outDir: path.join(tmp, 'never-ran'), resume: true }));
  assert.match(none.message, /no checkpoint to resume from/);
  const bad = await engineRejection(engine.request('train', { examples, valIds, hyperparameters: hp, outDir, resume: 'yes' } as never));
  assert.equal(bad.code, 'bad-request');
  assert.match(bad.message, /resume: expected a boolean/);

  assert.equal((await engine.request('status', {})).model?.name, 'tiny-q4.gguf');
  const messages = [{ role: 'user' as const, content: examples[2].messages[0].content }];
  const out = await engine.request('classify', { messages, labels: task.labels });
  assert.ok(task.labels.includes(out.label));
  // And the checkpoint is still good: the matching resume goes on.
  const resumed = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir, resume: true });
  assert.equal(resumed.step, TOTAL);
});

// Resuming a cancelled run through the real engine worker (bundled as the extension ships it) on a tiny
// random q4 GGUF: the resumed run starts where the cancelled one stopped, ends at the same step as an
// uninterrupted run and saves the same adapter; a resume with other examples fails with the trainer's
// reason, and the worker goes on answering.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { readSafetensorsF32, readSafetensorsHeader } from '../../src/engine/model/safetensors';
import type { TrainEventMessage } from '../../src/protocol/train';
import { renderMessages } from '../../src/store/prompt';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { tempDir } from './temp-helpers';
import { buildWorker, engineRejection } from './worker-helpers';

const tmp = tempDir('train-worker-resume-');
const modelFile = path.join(tmp, 'tiny-q4.gguf');
let engine: EngineClient;

const task = { kind: 'classify' as const, instruction: 'Bug or feature?', labels: ['bug', 'feature'] };
const inputs: [string, string][] = [
  ['The app crashes on save.', 'bug'], ['Add a dark mode.', 'feature'], ['Error 500 on upload.', 'bug'], ['Please support CSV export.', 'feature'],
  ['It freezes when I scroll.', 'bug'], ['A keyboard shortcut for search would help.', 'feature'], ['Login fails with a blank page.', 'bug'],
  ['Allow renaming projects.', 'feature'], ['The counter shows negative numbers.', 'bug'], ['Add a French translation.', 'feature'],
];
const examples = inputs.map(([input, output], i) => ({ id: `ex-${i}`, messages: renderMessages(task, input, output) }));
const valIds = ['ex-0', 'ex-1'];
// 8 training examples, batch 4: 2 steps an epoch, 20 in all; no early stop, so every run ends at step 20.
const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 10, learningRate: 5e-3, rank: 4, alpha: 8, batchSize: 4, patience: 0 };
const TOTAL = 20;

before(async () => {
  const workerPath = await buildWorker('train-worker-resume');
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  engine = new EngineClient({ workerPath, threads: 1 });
  await engine.request('loadModel', { path: modelFile, precision: 'q4' });
});
after(async () => {
  await engine.dispose();
});

function adapterTensors(dir: string): Map<string, Float32Array> {
  const st = readSafetensorsHeader(path.join(dir, 'adapter_model.safetensors'));
  return new Map([...st.entries.keys()].map((name) => [name, readSafetensorsF32(st, name)]));
}

test('a cancelled run resumes from its step and ends like an uninterrupted one', async () => {
  const whole = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir: path.join(tmp, 'whole') });
  assert.equal(whole.reason, 'completed');
  assert.equal(whole.step, TOTAL);

  const outDir = path.join(tmp, 'interrupted');
  const abort = new AbortController();
  const first = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir }, {
    signal: abort.signal,
    onEvent: (e) => {
      if (e.type === 'step') abort.abort();
    },
  });
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
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
    assert.ok(worst < 1e-5, `${name}: the resumed adapter differs from the uninterrupted one by ${worst}`);
  }
});

test('a resume with other examples fails with the trainer\'s reason and the worker still answers', async () => {
  const outDir = path.join(tmp, 'changed');
  const abort = new AbortController();
  const first = await engine.request('train', { examples, valIds, hyperparameters: hp, outDir }, {
    signal: abort.signal,
    onEvent: (e) => {
      if (e.type === 'step') abort.abort();
    },
  });
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

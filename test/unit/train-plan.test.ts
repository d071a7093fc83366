// How long a run is (issue 12, item 9): whole epochs, enough of them to reach the minimum number of
// optimizer steps when there are few examples; the held-out count the panel's form assumes is the
// trainer's; the form says the plan in words; and the trainer, through the real ORT step graph on the
// tiny shape, runs exactly the planned steps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { Rng } from '../../src/engine/rng';
import { TRAIN_DEFAULTS } from '../../src/engine/train/defaults';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { createOrtEngine } from '../../src/engine/train/ortEngine';
import { stepsPerEpoch, trainingPlan } from '../../src/engine/train/plan';
import { splitValidation, validationSize } from '../../src/engine/train/split';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { train, type TrainEvent } from '../../src/engine/train/trainer';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { planText } from '../../webview/hyperparameterForm';
import { randomF32Weights } from './train-helpers';
import { tempDir } from './temp-helpers';

const defaults = { epochs: TRAIN_DEFAULTS.epochs, minSteps: TRAIN_DEFAULTS.minSteps, batchSize: TRAIN_DEFAULTS.batchSize, gradAccum: TRAIN_DEFAULTS.gradAccum };

test('few examples run more epochs to reach the minimum steps; many run the epochs asked for', () => {
  assert.deepEqual(trainingPlan(13, defaults), { stepsPerEpoch: 4, epochs: 25, totalSteps: 100 }, '16 examples, 3 held out');
  assert.deepEqual(trainingPlan(100, defaults), { stepsPerEpoch: 25, epochs: 4, totalSteps: 100 });
  assert.deepEqual(trainingPlan(1000, defaults), { stepsPerEpoch: 250, epochs: 3, totalSteps: 750 }, 'the epochs rule once they give enough steps');
  assert.deepEqual(trainingPlan(13, { ...defaults, minSteps: 0 }), { stepsPerEpoch: 4, epochs: 3, totalSteps: 12 }, 'the old default: 12 steps');
  assert.deepEqual(trainingPlan(13, { ...defaults, gradAccum: 2 }), { stepsPerEpoch: 2, epochs: 50, totalSteps: 100 });
  assert.equal(stepsPerEpoch(13, 4, 1), 4);
});

test('the form counts held-out examples as the trainer splits them', () => {
  const items = Array.from({ length: 16 }, (_, i) => ({ id: `e${i}` }));
  for (const n of [3, 9, 10, 16]) {
    assert.equal(validationSize(n, 0, 0.2), splitValidation(items.slice(0, n), { fraction: 0.2, seed: 1 }).val.length, `${n} examples`);
  }
  assert.equal(validationSize(16, 2, 0.2), 2, 'the pinned ones, whatever the fraction');
  assert.equal(validationSize(16, 0, 0), 0);
});

test('the form says the run the settings make, in words', () => {
  const ex = (n: number, held = 0) => Array.from({ length: n }, (_, i) => ({ output: 'bug', heldOut: i < held }));
  const hp = { ...DEFAULT_HYPERPARAMETERS };
  assert.equal(planText(ex(16), hp), '13 training examples, 3 held out: 25 epochs of 4 steps, 100 steps; early stopping may end it sooner');
  assert.equal(planText(ex(5, 1), hp), '4 training examples, 1 held out: 100 epochs of 1 step, 100 steps; early stopping may end it sooner');
  assert.equal(planText(ex(4), hp), '4 training examples, 0 held out: 100 epochs of 1 step, 100 steps', 'no validation, no early stopping');
  assert.equal(planText([...ex(2), { output: '', heldOut: false }], { ...hp, minSteps: 0 }), '2 training examples, 0 held out: 3 epochs of 1 step, 3 steps', 'unlabeled ones do not count');
  assert.equal(planText(ex(2, 2), hp), '', 'nothing to train on');
});

test('the trainer runs the planned steps: epochs are added to reach the minimum', async () => {
  const mw = randomF32Weights(GEMMA3_TINY, 1, { embedding: 0.5, matrix: 0.02 });
  const rng = new Rng(3);
  const example = (id: string): TokenizedExample => {
    const ids = [2, ...Array.from({ length: 9 }, () => 3 + rng.int(500))];
    return { id, inputIds: ids, labels: ids.map((t, j) => (j >= 7 ? t : IGNORE)) };
  };
  const data = { train: Array.from({ length: 6 }, (_, i) => example(`t${i}`)), val: [] };
  const engine = await createOrtEngine(mw, { precision: 'f32', rank: 2, alpha: 4, targets: ALL_TARGETS, threads: 1 });
  try {
    const events: TrainEvent[] = [];
    const res = await train(mw.config, engine, data, initLora(mw.config, 2, 4, ALL_TARGETS, 1), {
      epochs: 1, minSteps: 7, lr: 1e-3, schedule: 'linear', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, batchSize: 2, gradAccum: 1,
      seed: 1, shuffle: true, evalEvery: 0, patience: 0, padId: 0, outDir: tempDir('train-plan-'), onEvent: (e) => events.push(e),
    });
    const start = events.find((e) => e.type === 'start') as Extract<TrainEvent, { type: 'start' }>;
    assert.equal(start.stepsPerEpoch, 3);
    assert.equal(start.totalSteps, 9, '1 epoch is 3 steps: 3 epochs reach 7');
    assert.equal(events.filter((e) => e.type === 'step').length, 9);
    assert.equal(res.step, 9);
  } finally {
    await engine.dispose();
  }
});

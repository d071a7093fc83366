// Checkpoints during an epoch, through the real ORT step graph on the tiny shape: a run that crashes
// mid-epoch (an exception out of train(), so the trainer writes no final checkpoint) leaves the state
// of its last written step on disk, and resuming from it, twice, ends exactly like a run never
// interrupted (the first crash comes before any evaluation, so early stopping's "no best yet" must
// survive the checkpoint's JSON); with checkpointEverySeconds 0 (or the 30 s default on steps of
// milliseconds) nothing is written before the first epoch's end, and that epoch-end checkpoint is still
// written; a finished run resumed with more epochs goes on like a run started with them, and resumed
// as it was does nothing again; damaged run metadata is refused by name.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { loadCheckpoint, saveCheckpoint, type RunState } from '../../src/engine/train/checkpoint';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { createOrtEngine, type OrtStepEngine } from '../../src/engine/train/ortEngine';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { CHECKPOINT_FILE } from '../../src/common/files';
import { train, type TrainEvent, type TrainOptions, type TrainResult } from '../../src/engine/train/trainer';
import { Rng } from '../../src/engine/rng';
import { randomF32Weights, safetensorsTensors, tensorDiffs } from './train-helpers';
import { tempDir } from './temp-helpers';

const mw = randomF32Weights(GEMMA3_TINY, 1, { embedding: 0.5, matrix: 0.02 });
const cfg = mw.config;
const tmp = tempDir('train-checkpoint-');
let engine: OrtStepEngine;

// 12 training examples in batches of 2: 6 steps an epoch, 12 in all; 2 held out, evaluated at epoch ends.
const rng = new Rng(5);
const example = (id: string): TokenizedExample => {
  const ids = [2, ...Array.from({ length: 11 }, () => 3 + rng.int(500))];
  return { id, inputIds: ids, labels: ids.map((t, j) => (j >= 8 ? t : IGNORE)) };
};
const data = { train: Array.from({ length: 12 }, (_, i) => example(`t${i}`)), val: [example('v0'), example('v1')] };
const STEPS_PER_EPOCH = 6, TOTAL = 12;
const base: Omit<TrainOptions, 'outDir'> = {
  epochs: 2, lr: 5e-3, schedule: 'linear', warmupSteps: 1, weightDecay: 0.01, maxGradNorm: 1, batchSize: 2, gradAccum: 1,
  seed: 7, shuffle: true, evalEvery: 0, patience: 0, padId: 0,
};

class SimulatedCrash extends Error {}

/** Trains into `outDir`; with `crashAt`, the step event of that step throws, as a killed process stops. */
function run(outDir: string, o: Partial<TrainOptions> & { crashAt?: number }): Promise<TrainResult> {
  const { crashAt, ...rest } = o;
  return train(cfg, engine, data, initLora(cfg, 4, 8, ALL_TARGETS, 3), {
    ...base, outDir, ...rest,
    onEvent: (e: TrainEvent) => {
      rest.onEvent?.(e);
      if (e.type === 'step' && e.step === crashAt) throw new SimulatedCrash(`crashed at step ${e.step}`);
    },
  });
}

/** Every tensor of `b` equals `a`'s: the engine is deterministic on one thread, so a resume is exact. */
function assertSameTensors(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string): void {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), what);
  for (const [name, worst] of tensorDiffs(a, b)) assert.equal(worst, 0, `${what}: ${name} differs from the uninterrupted run's by up to ${worst}`);
}

before(async () => {
  engine = await createOrtEngine(mw, { precision: 'f32', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1 });
});
after(async () => {
  await engine.dispose();
});

test('a run that crashes mid-epoch resumes from its last step checkpoint and ends exactly like an uninterrupted one', async () => {
  const wholeDir = path.join(tmp, 'whole');
  const whole = await run(wholeDir, { checkpointEverySeconds: 0 });
  assert.equal(whole.step, TOTAL);

  const dir = path.join(tmp, 'crashed');
  const ckpt = path.join(dir, CHECKPOINT_FILE);
  // A tiny interval: every step past the last one checkpointed writes again.
  const every = { checkpointEverySeconds: 1e-9 };
  await assert.rejects(run(dir, { ...every, crashAt: 4 }), SimulatedCrash);
  // Step 4's update was done in memory but never written: the file holds step 3, inside epoch 1.
  let ck = loadCheckpoint(ckpt, cfg);
  assert.deepEqual([ck.run.step, ck.run.epoch, ck.run.batchInEpoch, ck.opt.step], [3, 0, 3, 3]);
  assert.equal(ck.run.epochOrder.length, 12);

  // Resume, and crash again inside the second epoch (after its own shuffle).
  const steps: number[] = [];
  let resumedFrom = -1;
  const record = (e: TrainEvent) => {
    if (e.type === 'start') resumedFrom = e.resumedFromStep;
    if (e.type === 'step') steps.push(e.step);
  };
  await assert.rejects(run(dir, { ...every, resume: true, crashAt: 10, onEvent: record }), SimulatedCrash);
  assert.equal(resumedFrom, 3);
  assert.deepEqual(steps, [4, 5, 6, 7, 8, 9, 10]);
  const firstOrder = ck.run.epochOrder;
  ck = loadCheckpoint(ckpt, cfg);
  assert.deepEqual([ck.run.step, ck.run.epoch, ck.run.batchInEpoch, ck.opt.step], [9, 1, 9 - STEPS_PER_EPOCH, 9]);
  assert.notDeepEqual(ck.run.epochOrder, firstOrder, 'the second epoch was shuffled anew');

  steps.length = 0;
  const resumed = await run(dir, { ...every, resume: true, onEvent: record });
  assert.equal(resumedFrom, 9);
  assert.deepEqual(steps, [10, 11, 12]);
  assert.equal(resumed.step, whole.step);
  assert.equal(resumed.savedStep, whole.savedStep, 'the same evaluation was the best');
  assert.equal(resumed.bestValLoss, whole.bestValLoss);
  assertSameTensors(safetensorsTensors(path.join(wholeDir, 'adapter_model.safetensors')), safetensorsTensors(path.join(dir, 'adapter_model.safetensors')), 'saved adapter');
  // The final run state too: LoRA tensors with AdamW's moments, and the optimizer's step.
  assertSameTensors(safetensorsTensors(path.join(wholeDir, CHECKPOINT_FILE)), safetensorsTensors(ckpt), 'final checkpoint');
  assert.equal(loadCheckpoint(ckpt, cfg).opt.step, loadCheckpoint(path.join(wholeDir, CHECKPOINT_FILE), cfg).opt.step);
});

test('checkpointEverySeconds 0, and the 30 s default on fast steps, write nothing before the first epoch ends', async () => {
  for (const [name, o] of [['off', { checkpointEverySeconds: 0 }], ['default', {}]] as const) {
    const dir = path.join(tmp, `early-${name}`);
    await assert.rejects(run(dir, { ...o, crashAt: 5 }), SimulatedCrash);
    assert.equal(fs.existsSync(path.join(dir, CHECKPOINT_FILE)), false, `${name}: a checkpoint was written mid-epoch`);
  }
  // The epoch-end checkpoint stays: a crash in the second epoch leaves the first epoch's end on disk.
  const dir = path.join(tmp, 'epoch-end');
  await assert.rejects(run(dir, { checkpointEverySeconds: 0, crashAt: 9 }), SimulatedCrash);
  const ck = loadCheckpoint(path.join(dir, CHECKPOINT_FILE), cfg);
  assert.deepEqual([ck.run.step, ck.run.epoch, ck.run.batchInEpoch], [STEPS_PER_EPOCH, 1, 0]);

  // Damaged run metadata is refused by name, not met later as a TypeError.
  const damaged = path.join(tmp, 'damaged.safetensors');
  for (const [change, why] of [[{ epochOrder: 'x' }, /epochOrder/], [{ step: -1 }, /step/], [{ earlyStop: null }, /early-stopping/]] as const) {
    saveCheckpoint(damaged, ck.params, ck.opt, { ...ck.run, ...change } as unknown as RunState);
    assert.throws(() => loadCheckpoint(damaged, cfg), (e: Error) => /damaged checkpoint/.test(e.message) && why.test(e.message) && e.message.includes(damaged));
  }
});

test('a finished run resumed with more epochs ends like one started with them (the next epoch is shuffled anew)', async () => {
  // A constant rate, so the first epoch's updates do not depend on the run's length.
  const o = { schedule: 'constant' as const, warmupSteps: 0, checkpointEverySeconds: 0 };
  const wholeDir = path.join(tmp, 'two-epochs');
  const whole = await run(wholeDir, { ...o, epochs: 2 });
  const dir = path.join(tmp, 'one-then-two');
  assert.equal((await run(dir, { ...o, epochs: 1 })).step, STEPS_PER_EPOCH);
  const longer = await run(dir, { ...o, epochs: 2, resume: true });
  assert.equal(longer.step, TOTAL);
  assert.equal(longer.bestValLoss, whole.bestValLoss);
  assertSameTensors(safetensorsTensors(path.join(wholeDir, CHECKPOINT_FILE)), safetensorsTensors(path.join(dir, CHECKPOINT_FILE)), 'extended run');
});

test('a finished run resumed as it was runs no step and no evaluation again', async () => {
  const o = { checkpointEverySeconds: 0 };
  const dir = path.join(tmp, 'finished-twice');
  const first = await run(dir, o);
  const before = loadCheckpoint(path.join(dir, CHECKPOINT_FILE), cfg).run;
  const events: string[] = [];
  const again = await run(dir, { ...o, resume: true, onEvent: (e) => events.push(e.type) });
  assert.deepEqual(events, ['start', 'done']);
  assert.equal(again.step, first.step);
  assert.equal(again.bestValLoss, first.bestValLoss);
  assert.deepEqual(loadCheckpoint(path.join(dir, CHECKPOINT_FILE), cfg).run.earlyStop, before.earlyStop, 'no evaluation was counted again');
});

test('a resume with any other setting is refused naming it; a checkpoint of an earlier version is refused as such', async () => {
  const o = { checkpointEverySeconds: 0, epochs: 1 };
  const dir = path.join(tmp, 'other-settings');
  await run(dir, o);
  // patience, evalEvery and padId were not in the fingerprint once: every setting counts now.
  for (const [change, why] of [[{ patience: 3 }, /patience is 3, the run's was 0/], [{ evalEvery: 2 }, /evalEvery is 2, the run's was 0/], [{ lr: 1e-3 }, /lr is 0\.001, the run's was 0\.005/]] as const) {
    await assert.rejects(run(dir, { ...o, ...change, resume: true }), (e: Error) => /other data or settings; cannot resume/.test(e.message) && why.test(e.message));
  }
  // The run's length is not a setting: a resume may extend it.
  assert.equal((await run(dir, { ...o, epochs: 2, resume: true })).step, TOTAL);
  const ckpt = path.join(dir, CHECKPOINT_FILE);
  const ck = loadCheckpoint(ckpt, cfg);
  saveCheckpoint(ckpt, ck.params, ck.opt, { ...ck.run, fingerprint: JSON.stringify({ lr: 5e-3, schedule: 'linear', seed: 7 }) });
  await assert.rejects(run(dir, { ...o, epochs: 2, resume: true }), /cannot resume \(its checkpoint was written by an earlier version of Gemma Tune/);
});

// Resuming an interrupted run from the panel, the parts without VS Code: which staged run counts as
// resumable (a pure rule, then the same rule on real files with a real trainer checkpoint), a cancel's
// promotion that keeps the run resumable, the page's resume message and state checked at runtime, and
// the chart keeping its curve up to the resumed step.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { AdamW } from '../../src/engine/train/adamw';
import { saveCheckpoint, type RunState } from '../../src/engine/train/checkpoint';
import { flatTensors, initLora } from '../../src/engine/train/lora';
import { CHECKPOINT_FILE } from '../../src/common/files';
import { applyTrainingEvent, parseHostMessage, parseWebviewMessage, type PanelState } from '../../src/protocol/webview';
import { clearStaging, findInterruptedRun, interruptedRunFrom, promoteStaged, stagingDir, writeRunMarker } from '../../src/store/adapterStage';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { tempDir } from './temp-helpers';

const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 2, rank: 2 };
const marker = { version: 1, totalSteps: 10, hyperparameters: hp };
const runAt = (step: number) => JSON.stringify({ step });

test('a staged run is resumable only between its first and its last step, with a readable marker', () => {
  assert.deepEqual(interruptedRunFrom(marker, runAt(4)), { step: 4, totalSteps: 10, hyperparameters: hp });
  assert.equal(interruptedRunFrom(marker, runAt(0)), null, 'cancelled before the first step: nothing to go on from');
  assert.equal(interruptedRunFrom(marker, runAt(10)), null, 'finished');
  assert.equal(interruptedRunFrom(marker, runAt(12)), null);
  assert.equal(interruptedRunFrom(marker, JSON.stringify({ step: 2.5 })), null);
  assert.equal(interruptedRunFrom(marker, JSON.stringify({ step: '4' })), null);
  assert.equal(interruptedRunFrom(marker, 'not json'), null);
  assert.equal(interruptedRunFrom(marker, 'null'), null);
  assert.equal(interruptedRunFrom(marker, undefined), null, 'no checkpoint');
  assert.equal(interruptedRunFrom(undefined, runAt(4)), null, 'no marker');
  assert.equal(interruptedRunFrom({ ...marker, version: 2 }, runAt(4)), null);
  assert.equal(interruptedRunFrom({ ...marker, totalSteps: -1 }, runAt(4)), null);
  assert.equal(interruptedRunFrom({ ...marker, hyperparameters: { ...hp, rank: 0 } }, runAt(4)), null, 'settings a resume could not train with');
  assert.equal(interruptedRunFrom({ totalSteps: 10, hyperparameters: hp }, runAt(4)), null);
});

/** A real trainer checkpoint at `step` in the staging folder of `adapterDir`. */
function stageCheckpoint(adapterDir: string, step: number): void {
  const params = initLora(GEMMA3_TINY, 2, 4, ['q', 'v'], 1);
  const opt = new AdamW(flatTensors(params).map((t) => t.length));
  const run: RunState = {
    step, epoch: 0, batchInEpoch: step, epochOrder: [], rngState: 1, earlyStop: { bestLoss: Infinity, bestStep: 0, badEvals: 0 },
    fingerprint: '{}', rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v'],
  };
  fs.mkdirSync(stagingDir(adapterDir), { recursive: true });
  saveCheckpoint(path.join(stagingDir(adapterDir), CHECKPOINT_FILE), params, opt.state(), run);
}

test('the staged run on disk: found, kept through a cancel\'s promotion, gone after a finished one', async (t) => {
  const dir = tempDir('panel-resume-', t);
  const adapter = path.join(dir, 'adapter');
  assert.equal(await findInterruptedRun(adapter), null, 'nothing staged');

  await clearStaging(adapter);
  stageCheckpoint(adapter, 3);
  assert.equal(await findInterruptedRun(adapter), null, 'a checkpoint without run.json is not offered');
  await writeRunMarker(adapter, { totalSteps: 8, hyperparameters: hp });
  assert.deepEqual(await findInterruptedRun(adapter), { step: 3, totalSteps: 8, hyperparameters: hp });

  // A cancel: the task gets a copy of the adapter, the staged run stays resumable.
  fs.writeFileSync(path.join(stagingDir(adapter), 'adapter_model.safetensors'), 'best so far');
  fs.writeFileSync(path.join(stagingDir(adapter), 'adapter_config.json'), '{}');
  assert.equal(await promoteStaged(adapter, { keepRunState: true }), true);
  assert.deepEqual(fs.readdirSync(adapter).sort(), ['adapter_config.json', 'adapter_model.safetensors'], 'no run state in the task\'s adapter');
  assert.equal(fs.readFileSync(path.join(adapter, 'adapter_model.safetensors'), 'utf8'), 'best so far');
  assert.equal((await findInterruptedRun(adapter))?.step, 3);
  assert.ok(!fs.existsSync(`${adapter}.new`) && !fs.existsSync(`${adapter}.old`));

  // Cancelled again later, then finished: the finished run replaces the adapter and leaves nothing to resume.
  stageCheckpoint(adapter, 7);
  assert.equal((await findInterruptedRun(adapter))?.step, 7);
  fs.writeFileSync(path.join(stagingDir(adapter), 'adapter_model.safetensors'), 'final');
  assert.equal(await promoteStaged(adapter), true);
  assert.equal(fs.readFileSync(path.join(adapter, 'adapter_model.safetensors'), 'utf8'), 'final');
  assert.deepEqual(fs.readdirSync(adapter).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.equal(fs.existsSync(stagingDir(adapter)), false);
  assert.equal(await findInterruptedRun(adapter), null);

  // A damaged checkpoint is not offered (and does not throw).
  fs.mkdirSync(stagingDir(adapter));
  await writeRunMarker(adapter, { totalSteps: 8, hyperparameters: hp });
  fs.writeFileSync(path.join(stagingDir(adapter), CHECKPOINT_FILE), 'garbage');
  assert.equal(await findInterruptedRun(adapter), null);
});

test('the page\'s resume message and the resumable state are checked at runtime', () => {
  assert.deepEqual(parseWebviewMessage({ type: 'resumeTraining' }), { type: 'resumeTraining' });
  const bad: [unknown, RegExp][] = [
    [{ type: 'resumeTraining', hyperparameters: hp }, /unknown field "hyperparameters"/],
    [{ type: 'resumeTraining', step: 3 }, /unknown field "step"/],
    [{ type: 'resumeTraining', outDir: '/etc' }, /unknown field "outDir"/],
    [{ type: 'resumetraining' }, /unknown message type/],
  ];
  for (const [msg, pattern] of bad) assert.throws(() => parseWebviewMessage(msg), pattern, JSON.stringify(msg));

  const state: PanelState = {
    task: { id: 't', name: 'T', kind: 'classify', instruction: 'c', labels: ['a', 'b'], hyperparameters: hp, hasAdapter: true },
    examples: [], problems: [], capabilities: { train: true, suggest: true }, training: null, suggestions: [],
    resumable: { step: 4, totalSteps: 10 },
  };
  const restore = { folder: '/w', taskId: 't' };
  const ok = parseHostMessage({ type: 'state', state, restore });
  assert.deepEqual(ok.type === 'state' && ok.state.resumable, { step: 4, totalSteps: 10 });
  assert.equal(parseHostMessage({ type: 'state', state: { ...state, resumable: null }, restore }).type, 'state');
  const { resumable: _r, ...older } = state;
  assert.equal(parseHostMessage({ type: 'state', state: older, restore }).type, 'state', 'a state saved before resume existed still loads');
  assert.throws(() => parseHostMessage({ type: 'state', state: { ...state, resumable: { step: 0, totalSteps: 10 } }, restore }), /message\.state\.resumable\.step/);
  assert.throws(() => parseHostMessage({ type: 'state', state: { ...state, resumable: { step: 2 } }, restore }), /message\.state\.resumable\.totalSteps/);
});

test('a resumed run keeps its curve up to the checkpoint\'s step and draws on from there', () => {
  let v = applyTrainingEvent(null, { kind: 'start', totalSteps: 8, step: 0 });
  for (let s = 1; s <= 5; s++) v = applyTrainingEvent(v, { kind: 'step', step: s, loss: 3 - s / 10 });
  v = applyTrainingEvent(v, { kind: 'eval', step: 4, valLoss: 2.7, bestStep: 4 });
  v = applyTrainingEvent(v, { kind: 'cancelled', step: 5, bestStep: 4, message: 'Cancelled at step 5' });
  assert.equal(v.status, 'cancelled');
  // A crash-style resume from the step-4 checkpoint: step 5 is run again.
  let r = applyTrainingEvent(v, { kind: 'start', totalSteps: 8, step: 4, epoch: 1 });
  assert.equal(r.status, 'running');
  assert.equal(r.step, 4);
  assert.equal(r.message, undefined);
  assert.deepEqual(r.trainLoss.map(([s]) => s), [1, 2, 3, 4]);
  assert.deepEqual(r.valLoss, [[4, 2.7]]);
  assert.equal(r.bestStep, 4);
  r = applyTrainingEvent(r, { kind: 'step', step: 5, loss: 2.4 });
  assert.deepEqual(r.trainLoss.map(([s]) => s), [1, 2, 3, 4, 5]);
  assert.equal(v.trainLoss.length, 5, 'the earlier view is not mutated');
  assert.equal(applyTrainingEvent(v, { kind: 'start', totalSteps: 8, step: 0 }).trainLoss.length, 0, 'a new run starts a fresh curve');
});

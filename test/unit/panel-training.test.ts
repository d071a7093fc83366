// The host-side pieces of training from the panel that need no VS Code: the shared defaults, the
// staged adapter's promotion (real files in a temp folder), and the status bar's words for a run.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { TRAIN_DEFAULTS } from '../../src/engine/train/defaults';
import { clearStaging, promoteStaged, stagingDir } from '../../src/store/adapterStage';
import { DEFAULT_HYPERPARAMETERS, hyperparametersToCliArgs, newTaskConfig } from '../../src/store/task';
import { formatDuration, trainingStatusView } from '../../src/panel/trainingProgress';
import { tempDir } from './temp-helpers';

test('a new task trains with exactly the CLI\'s defaults', () => {
  const hp = newTaskConfig({ name: 't', kind: 'generate', instruction: '' }).hyperparameters;
  assert.deepEqual(hp, DEFAULT_HYPERPARAMETERS);
  const args = hyperparametersToCliArgs(hp);
  const flag = (f: string) => args[args.indexOf(f) + 1];
  assert.equal(Number(flag('--lr')), TRAIN_DEFAULTS.lr);
  assert.equal(Number(flag('--epochs')), TRAIN_DEFAULTS.epochs);
  assert.equal(Number(flag('--weight-decay')), TRAIN_DEFAULTS.weightDecay);
  assert.equal(Number(flag('--rank')), TRAIN_DEFAULTS.rank);
  assert.equal(Number(flag('--alpha')), TRAIN_DEFAULTS.alpha);
  assert.equal(flag('--targets'), TRAIN_DEFAULTS.targets.join(','));
  assert.equal(Number(flag('--val-split')), TRAIN_DEFAULTS.valSplit);
  assert.deepEqual([TRAIN_DEFAULTS.lr, TRAIN_DEFAULTS.epochs, TRAIN_DEFAULTS.weightDecay, TRAIN_DEFAULTS.patience], [2e-4, 3, 0, 5]);
  assert.equal(Number(flag('--min-steps')), TRAIN_DEFAULTS.minSteps, 'the CLI gets the same minimum steps');
  assert.equal(TRAIN_DEFAULTS.minSteps, 100);
});

test('a staged adapter replaces the old one without its run state; an empty stage keeps the old one', async (t) => {
  const dir = tempDir('stage-', t);
  const adapter = path.join(dir, 'adapter');
  fs.mkdirSync(adapter);
  fs.writeFileSync(path.join(adapter, 'adapter_model.safetensors'), 'old');
  const stage = await clearStaging(adapter);
  assert.equal(stage, stagingDir(adapter));
  fs.mkdirSync(stage);
  assert.equal(await promoteStaged(adapter), false, 'nothing staged');
  assert.equal(fs.readFileSync(path.join(adapter, 'adapter_model.safetensors'), 'utf8'), 'old');
  fs.writeFileSync(path.join(stage, 'adapter_model.safetensors'), 'new');
  fs.writeFileSync(path.join(stage, 'adapter_config.json'), '{}');
  fs.writeFileSync(path.join(stage, 'trainer_state.safetensors'), 'state');
  assert.equal(await promoteStaged(adapter), true);
  assert.equal(fs.readFileSync(path.join(adapter, 'adapter_model.safetensors'), 'utf8'), 'new');
  assert.deepEqual(fs.readdirSync(adapter).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(fs.readdirSync(dir), ['adapter'], 'no staging or old folder left behind');
  // First training of a task: no old adapter.
  fs.rmSync(adapter, { recursive: true });
  fs.mkdirSync(stage);
  fs.writeFileSync(path.join(stage, 'adapter_model.safetensors'), 'first');
  assert.equal(await promoteStaged(adapter), true);
  assert.equal(fs.readFileSync(path.join(adapter, 'adapter_model.safetensors'), 'utf8'), 'first');
});

test('the status bar says the step, the total and the time left in words', () => {
  assert.equal(formatDuration(42.4), '42 s');
  assert.equal(formatDuration(185), '3 min 5 s');
  assert.equal(formatDuration(120), '2 min');
  const v = trainingStatusView({ taskName: 'Bug or feature', step: 3, totalSteps: 6, etaSeconds: 185 });
  assert.equal(v.text, '$(sync~spin) Gemma: training 3/6 · 3 min 5 s');
  assert.match(v.ariaLabel, /training Bug or feature, step 3\/6, about 3 min 5 s left/);
  const starting = trainingStatusView({ taskName: 'T', step: 0, totalSteps: 0, etaSeconds: null });
  assert.equal(starting.text, '$(sync~spin) Gemma: training 0');
});

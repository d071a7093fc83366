// The panel's hyperparameter form: defaults are the trainer's, every bad field is named in words,
// and the host rejects what a hostile page could still send (patience included).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRAIN_DEFAULTS } from '../../src/engine/train/defaults';
import { parseWebviewMessage } from '../../src/protocol/webview';
import { DEFAULT_HYPERPARAMETERS, hyperparametersToCliArgs, validateTaskConfig } from '../../src/store/task';
import { ADVANCED_FIELDS, BASIC_FIELDS, checkForm, fieldText, parseNumber } from '../../webview/hyperparameterForm';

const hp = { ...DEFAULT_HYPERPARAMETERS };
const texts = (over: Record<string, string> = {}) => ({ numbers: { ...Object.fromEntries(BASIC_FIELDS.map((f) => [f.key, fieldText(hp, f.key)])), ...over } });

test('the form starts from the trainer\'s defaults, patience included', () => {
  const shown = Object.fromEntries([...BASIC_FIELDS, ...ADVANCED_FIELDS].map((f) => [f.key, fieldText(hp, f.key)]));
  assert.equal(shown.learningRate, String(TRAIN_DEFAULTS.lr));
  assert.equal(shown.epochs, String(TRAIN_DEFAULTS.epochs));
  assert.equal(shown.rank, String(TRAIN_DEFAULTS.rank));
  assert.equal(shown.alpha, String(TRAIN_DEFAULTS.alpha));
  assert.equal(shown.batchSize, String(TRAIN_DEFAULTS.batchSize));
  assert.equal(shown.valSplit, String(TRAIN_DEFAULTS.valSplit));
  assert.equal(shown.patience, String(TRAIN_DEFAULTS.patience));
  // A task.json written before patience existed shows the default and still validates.
  const { patience: _p, ...old } = hp;
  assert.equal(fieldText(old, 'patience'), String(TRAIN_DEFAULTS.patience));
  assert.deepEqual(checkForm(old, texts()).value, hp);
  const args = hyperparametersToCliArgs({ ...hp, patience: 5 });
  assert.equal(args[args.indexOf('--patience') + 1], '5', 'the CLI gets the same patience');
});

test('valid input gives typed settings; each bad field is named in words', () => {
  const ok = checkForm(hp, texts({ learningRate: '1e-4', epochs: ' 5 ', patience: '0' }));
  assert.deepEqual(ok.errors, new Map());
  assert.equal(ok.value?.learningRate, 1e-4);
  assert.equal(ok.value?.epochs, 5);
  assert.equal(ok.value?.patience, 0);

  const bad = checkForm(hp, texts({ learningRate: 'fast', epochs: '2.5', rank: '', valSplit: '0.95', patience: '-1' }));
  assert.equal(bad.value, undefined);
  assert.deepEqual([...bad.errors.keys()].sort(), ['epochs', 'learningRate', 'patience', 'rank', 'valSplit']);
  assert.equal(bad.errors.get('learningRate'), 'Learning rate: "fast" is not a number');
  assert.match(bad.errors.get('epochs')!, /^Epochs: expected an integer in \[1, 100\], got 2\.5$/);
  assert.match(bad.errors.get('rank')!, /^LoRA rank: "" is not a number$/);
  assert.match(bad.errors.get('valSplit')!, /^Validation fraction: expected a number in \[0, 0\.9\]/);
  assert.match(bad.errors.get('patience')!, /^Patience: expected an integer in \[0, 1000\]/);

  const noTargets = checkForm(hp, { ...texts(), targets: [] });
  assert.equal(noTargets.errors.get('targets'), 'LoRA targets: choose at least one projection');
  assert.equal(checkForm(hp, { ...texts(), schedule: 'exponential' }).errors.has('schedule'), true);
  assert.deepEqual(checkForm(hp, { ...texts(), targets: ['v', 'q'] }).value?.targets, ['q', 'v'], 'targets in the trainer\'s order');
});

test('numbers are read strictly', () => {
  assert.equal(parseNumber('0.0002'), 2e-4);
  assert.equal(parseNumber('2e-4'), 2e-4);
  assert.equal(parseNumber('.5'), 0.5);
  for (const t of ['', ' ', '1e', '0x10', '1,5', 'Infinity', 'NaN', '1 2']) assert.ok(Number.isNaN(parseNumber(t)), JSON.stringify(t));
});

test('a hostile page cannot send settings the form would refuse', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...hp, patience: -1 }, /hyperparameters\.patience/],
    [{ ...hp, patience: 1e9 }, /hyperparameters\.patience/],
    [{ ...hp, patience: 1.5 }, /hyperparameters\.patience/],
    [{ ...hp, patience: '2' }, /hyperparameters\.patience/],
    [{ ...hp, evalEvery: 1 }, /unknown field "evalEvery"/],
    [{ ...hp, resume: true }, /unknown field "resume"/],
  ];
  for (const [h, pattern] of cases) {
    assert.throws(() => parseWebviewMessage({ type: 'train', hyperparameters: h }), pattern, JSON.stringify(h).slice(-40));
    assert.throws(() => parseWebviewMessage({ type: 'setHyperparameters', seq: 1, hyperparameters: h }), pattern);
  }
  assert.equal(parseWebviewMessage({ type: 'train', hyperparameters: { ...hp, patience: 3 } }).type, 'train');
  // task.json on disk goes through the same schema.
  assert.throws(() => validateTaskConfig({ version: 1, name: 't', kind: 'generate', instruction: '', hyperparameters: { ...hp, patience: -2 }, createdAt: '' }), /hyperparameters\.patience/);
});

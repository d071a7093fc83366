// The demo's core: fine-tune one example task on a model, then run the task on its held-out test
// inputs with the base model (before) and with the new adapter (after). Everything goes through the
// product's own parts: the store renders the prompts (what is trained is what is asked), the trainer
// writes a PEFT adapter, and the runtime answers: label scoring for classify (as the extension's code
// action does), greedy decoding for extract (see answerer for why not the JSON-constrained decoder).

import type { DeviceRoles } from '../../engine/onnx/device';
import { modelIdentity } from '../../engine/model/identity';
import { loadModel } from '../../engine/model/load';
import { createTokenizer } from '../../engine/model/tokenizer';
import { modelRenderer, tokenizeExample, type TokenizedExample } from '../../engine/train/tokenize';
import { splitValidation } from '../../engine/train/split';
import { initLora } from '../../engine/train/lora';
import { type FullHyperparameters, TRAIN_DEFAULTS, trainSettingsOf } from '../../engine/train/defaults';
import { train, type TrainEvent } from '../../engine/train/trainer';
import { createStepEngine } from '../../engine/train/stepEngine';
import { chatPromptIds, loadAdapter, needTokenizer, openModel, type OpenModel } from '../../engine/generate/openModel';
import { classify } from '../../engine/generate/labelScoring';
import { generate } from '../../engine/generate/generator';
import { exampleToLine, type Example } from '../../store/examples';
import { parseFieldsOutput, renderUserMessage } from '../../store/prompt';
import type { DemoTask } from './demoTask';
import { cliWeightCache } from './modelLocation';
import { baseIdentity, type BaseIdentity } from '../../engine/model/identity';

/** How the demo trains: a task's settings (task.json's, defaults filled in), and where it runs. */
export interface DemoSettings {
  hyperparameters: FullHyperparameters;
  precision: 'q4' | 'f32';
  threads: number;
  /** Where inference and training run; default the CPU. */
  devices?: DeviceRoles;
  /** Test cases to run (the first N of test.jsonl); undefined = all. */
  maxTests?: number;
}

/** One held-out test case: the model's answer before and after training. */
export interface DemoRow {
  input: string;
  expected: string;
  before: string;
  after: string;
}

/** What one task's demo measured. */
export interface DemoResult {
  task: string;
  kind: 'classify' | 'extract';
  rows: DemoRow[];
  accuracyBefore: number;
  accuracyAfter: number;
  trainSeconds: number;
  trainExamples: number;
  valExamples: number;
  steps: number;
  /** Mean training loss of the first and of the last epoch's steps. */
  firstEpochLoss: number;
  lastEpochLoss: number;
  /** Validation loss at the first evaluation (end of epoch 1) and at the saved step; null without validation. */
  firstValLoss: number | null;
  bestValLoss: number | null;
  savedStep: number;
  stopReason: string;
  adapterDir: string;
  /** The base the adapter was trained on: the extension runs it on this base only (task.json's baseModel). */
  base: BaseIdentity;
}

/** Whether an answer counts as right: the label, or every field of the expected JSON object. */
export function isCorrect(task: DemoTask['config'], expected: string, answer: string): boolean {
  if (task.kind !== 'extract' || !task.fields?.length) return answer.trim() === expected.trim();
  const want = parseFieldsOutput(task.fields, expected);
  const got = parseFieldsOutput(task.fields, answer);
  return want !== undefined && got !== undefined && task.fields.every((f) => got[f].trim().toLowerCase() === want[f].trim().toLowerCase());
}

/** Fine-tunes `task` on the model at `modelPath`, writing the adapter to `outDir`, and runs the test cases. */
export async function runDemoTask(task: DemoTask, modelPath: string, outDir: string, s: DemoSettings, onEvent?: (e: TrainEvent) => void): Promise<DemoResult> {
  const cfgTask = task.config;
  const loaded = loadModel(modelPath, { precision: s.precision });
  const cfg = loaded.weights.config;
  const base = baseIdentity(modelPath, cfg);
  if (!loaded.tokenizerSource) throw new Error(`${modelPath} has no tokenizer: the demo needs one to read text`);
  const renderer = modelRenderer(createTokenizer(loaded.tokenizerSource), cfg);
  const tokenized: TokenizedExample[] = task.train.map((ex, i) => tokenizeExample(
    { kind: 'conversation', id: ex.id, line: i + 1, messages: exampleToLine(cfgTask, ex).messages }, renderer, 1024));
  const pinned = new Set(task.train.filter((e) => e.heldOut).map((e) => e.id));
  const hp = s.hyperparameters;
  const split = splitValidation(tokenized, { fraction: hp.valSplit, seed: hp.seed, pinned });
  const tests = task.test.slice(0, s.maxTests ?? task.test.length);

  const losses: { epoch: number; loss: number }[] = [];
  const vals: number[] = [];
  const t0 = performance.now();
  const { engine } = await createStepEngine(loaded.weights, { precision: s.precision, rank: hp.rank, alpha: hp.alpha, targets: hp.targets, threads: s.threads, device: s.devices?.training });
  let res;
  try {
    res = await train(cfg, engine, split, initLora(cfg, hp.rank, hp.alpha, hp.targets, hp.seed), {
      ...trainSettingsOf(hp), shuffle: true, evalEvery: TRAIN_DEFAULTS.evalEvery, padId: cfg.padId,
      outDir, baseModel: modelIdentity(modelPath),
      onEvent: (e) => {
        if (e.type === 'step') losses.push({ epoch: Math.ceil(e.epoch - 1e-9), loss: e.loss });
        if (e.type === 'eval') vals.push(e.valLoss);
        onEvent?.(e);
      },
    });
  } finally {
    await engine.dispose();
  }
  const trainSeconds = (performance.now() - t0) / 1000;

  const model = await openModel(modelPath, { precision: s.precision, threads: s.threads, device: s.devices?.inference, weightCache: cliWeightCache() });
  let rows: DemoRow[];
  try {
    const answer = answerer(model, task);
    const before = [];
    for (const ex of tests) before.push(await answer(ex, undefined));
    loadAdapter(model.runtime, outDir, 'demo');
    rows = [];
    for (const [i, ex] of tests.entries()) rows.push({ input: ex.input, expected: ex.output, before: before[i], after: await answer(ex, 'demo') });
  } finally {
    await model.runtime.dispose();
  }
  const acc = (k: 'before' | 'after') => rows.filter((r) => isCorrect(cfgTask, r.expected, r[k])).length / Math.max(1, rows.length);
  const epochMean = (which: 'first' | 'last') => {
    if (losses.length === 0) return NaN;
    const e = which === 'first' ? losses[0].epoch : losses[losses.length - 1].epoch;
    const xs = losses.filter((l) => l.epoch === e).map((l) => l.loss);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  return {
    task: cfgTask.name, kind: cfgTask.kind as 'classify' | 'extract', rows,
    accuracyBefore: acc('before'), accuracyAfter: acc('after'), trainSeconds,
    trainExamples: split.train.length, valExamples: split.val.length, steps: losses.length,
    firstEpochLoss: epochMean('first'), lastEpochLoss: epochMean('last'),
    firstValLoss: vals.length ? vals[0] : null, bestValLoss: res.bestValLoss, savedStep: res.savedStep, stopReason: res.reason, adapterDir: outDir, base,
  };
}

/** The task's answer to one input, the way the extension's code actions ask for it. */
function answerer(model: OpenModel, task: DemoTask): (ex: Example, adapter: string | undefined) => Promise<string> {
  const cfg = task.config;
  const tok = needTokenizer(model, 'the demo');
  const prompt = (ex: Example) => chatPromptIds(tok, [{ role: 'user', content: renderUserMessage(cfg, ex.input) }]);
  if (cfg.kind === 'classify') {
    return async (ex, adapter) => (await classify(model.runtime, model.gen, { promptIds: prompt(ex), labels: [...cfg.labels!], adapter })).label;
  }
  // Plain greedy decoding, not the JSON-constrained decoder: the constraint writes `{"a": "…"` with a
  // space after each colon, while the store trains on JSON.stringify's compact `{"a":"…"}`, so a tuned
  // model forced into the spaced form leaves what it learned (reported in the demo's notes).
  return async (ex, adapter) => (await generate(model.runtime, model.gen, { promptIds: prompt(ex), maxTokens: 40, sampling: { temperature: 0 }, adapter })).text.trim();
}

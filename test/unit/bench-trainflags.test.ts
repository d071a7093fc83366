// `gemma-tune bench --train`'s workload flags: defaults are issue 4's fine-tune, the PyTorch comparison's
// shape parses to what bench/compare-pytorch.sh needs, bad values are one-line usage errors, and a real
// run on a tiny model reports tokens/s without its warm-up steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseFlags, UsageError } from '../../src/cli/args';
import { tokensPerSecond, trainBenchWorkload, TRAIN_BENCH_FLAGS } from '../../src/cli/commands/benchTrain';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';

const MAIN = path.resolve(__dirname, '../../src/cli/main.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120000 });
const workload = (argv: string[]) => trainBenchWorkload(parseFlags(['--model', 'm', ...argv], { values: ['model', 'precision', 'threads', ...TRAIN_BENCH_FLAGS] }));

test('defaults are issue 4 fine-tune: 20 examples (16 train) × 3 epochs in batches of 4 = 12 steps', () => {
  const w = workload([]);
  assert.deepEqual(w.options, { precision: 'q4', threads: 2, examples: 20, tokens: 120, completion: 40, epochs: 3, batch: 4, microBatch: 2, rank: 16, engine: 'auto' });
  assert.equal(w.steps, 12);
  assert.equal(w.warmupSteps, 0);
});

test('the PyTorch comparison shape: 50 examples (40 train) × 1 epoch = 10 steps of 4 × 128, 2 of them warm-up', () => {
  const w = workload(['--rank', '8', '--examples', '50', '--tokens', '128', '--completion', '32', '--epochs', '1', '--batch', '4', '--micro-batch', '4', '--warmup-steps', '2', '--threads', '2']);
  assert.deepEqual(w.options, { precision: 'q4', threads: 2, examples: 50, tokens: 128, completion: 32, epochs: 1, batch: 4, microBatch: 4, rank: 8, engine: 'auto' });
  assert.equal(workload(['--engine', 'onnx']).options.engine, 'onnx');
  assert.equal(w.steps, 10);
  assert.equal(w.warmupSteps, 2);
  assert.equal(workload(['--batch', '1']).options.microBatch, 1, 'the default micro-batch never exceeds the batch');
});

test('bad values are usage errors naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--rank', '0'], /--rank must be between 1/],
    [['--rank', '8.5'], /--rank must be an integer/],
    [['--tokens', '1'], /--tokens must be between 2/],
    [['--tokens', '64', '--completion', '64'], /--completion must be between 1 and 63/],
    [['--batch', '4', '--micro-batch', '3'], /multiple of --micro-batch/],
    [['--engine', 'gpu'], /--engine must be auto, native, onnx/],
    [['--batch', '2', '--micro-batch', '4'], /--micro-batch must be between 1 and 2/],
    [['--examples', 'many'], /--examples must be a number/],
    [['--epochs', '0'], /--epochs/],
    [['--examples', '8', '--batch', '4', '--epochs', '1', '--warmup-steps', '2'], /--warmup-steps must be between 0 and 1/],
    [['--precision', 'q8'], /--precision/],
  ];
  for (const [argv, why] of cases) assert.throws(() => workload(argv), (e: unknown) => e instanceof UsageError && why.test(e.message), argv.join(' '));
});

test('tokens/s is the tokens of the counted steps over their step time', () => {
  const step = (tokens: number, s: number) => ({ type: 'step' as const, step: 0, epoch: 0, loss: 0, lr: 0, gradNorm: 0, tokens, tokensPerSec: tokens / s, elapsedS: 0, etaS: 0 });
  const steps = [step(512, 10), step(512, 2), step(256, 2)];
  assert.ok(Math.abs(tokensPerSecond(steps, 0) - 1280 / 14) < 1e-9);
  assert.ok(Math.abs(tokensPerSecond(steps, 1) - 768 / 4) < 1e-9);
});

test('the CLI: train flags without --train, or bench flags with it, exit 2 with one line; a tiny run reports its shape', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-train-'));
  try {
    const model = path.join(dir, 'model');
    writeRandomHf(model, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
    for (const [args, why] of [
      [['bench', '--model', model, '--rank', '8'], /^gemma-tune bench: --rank needs --train$/],
      [['bench', '--model', model, '--train', '--gen-tokens', '8'], /^gemma-tune bench: --gen-tokens is not used with --train$/],
      [['bench', '--model', model, '--train', '--micro-batch', '3'], /^gemma-tune bench: --batch \(4\) must be a multiple/],
    ] as [string[], RegExp][]) {
      const r = cli(args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr.split('\n')[0], why);
    }
    const r = cli(['bench', '--model', model, '--train', '--precision', 'f32', '--threads', '1', '--examples', '6', '--tokens', '16', '--completion', '4',
      '--epochs', '1', '--batch', '2', '--micro-batch', '1', '--rank', '2', '--warmup-steps', '1', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.steps, 3, '6 examples (too few to hold any out) in batches of 2');
    assert.equal(out.warmup_steps, 1);
    for (const k of ['train_tok_s', 'finetune_s', 'peak_rss_mb', 'step_s', 'cpu_s_per_step']) assert.ok(out[k] > 0, `${k}=${out[k]}`);
    assert.ok(out.cpu_s_per_step * 2 < out.finetune_cpu_s, 'two counted steps take less CPU than the whole fine-tune');
    // JSON rounds step_s to 1 ms and tiny steps take a few ms, so only a factor (e.g. counting 1 of 2 micro-batches) shows.
    const perStep = out.train_tok_s * out.step_s;
    assert.ok(perStep > 32 * 0.6 && perStep < 32 * 1.6, `each counted step is 2 × 16 tokens, got ${perStep}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

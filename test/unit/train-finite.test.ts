// No NaN gets into or out of training: a damaged checkpoint (optimizer_step not a number, NaN in a moment,
// a negative second moment, Inf in a LoRA tensor) and an init adapter holding Inf are refused naming the
// file and tensor; no adapter or checkpoint holding a NaN is ever written; and a loss that becomes NaN
// mid-run (a token whose embedding overflows, met at a known step) stops training with the step and what to
// do, through the trainer and through `gemma-tune train`, leaving the adapter and checkpoint of the last
// good step on disk (before: exit 0, "completed", and an all-NaN adapter over the good one).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { firstNonFiniteF32 } from '../../src/engine/model/finite';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { writeSafetensorsStreaming, bytesOf } from '../../src/engine/model/safetensorsWriter';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { AdamW } from '../../src/engine/train/adamw';
import { loadCheckpoint, saveCheckpoint, type RunState } from '../../src/engine/train/checkpoint';
import { ALL_TARGETS, flatTensors, initLora, peftTensorNames } from '../../src/engine/train/lora';
import { createOrtEngine, type OrtStepEngine } from '../../src/engine/train/ortEngine';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { CHECKPOINT_FILE } from '../../src/common/files';
import { train, TrainingDivergedError, type TrainOptions } from '../../src/engine/train/trainer';
import { EMBED_NAME, FINAL_NORM_NAME } from '../../src/engine/model/weights';
import { f32Bytes, patchTensorBytes } from './damage-helpers';
import { randomF32Weights, safetensorsTensors } from './train-helpers';
import { tempDir } from './temp-helpers';

const ROOT = path.join(__dirname, '../..');
const cfg = GEMMA3_TINY;
const tmp = tempDir('train-finite-');

const runState = (step: number): RunState => ({
  step, epoch: 0, batchInEpoch: step, epochOrder: [], rngState: 1, earlyStop: { bestLoss: Infinity, bestStep: -1, badEvals: 0 }, lastEvalStep: -1,
  fingerprint: 'f', rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v'],
});

/** A good checkpoint of 2 steps, then rewritten with `change` applied to its tensors and metadata. */
function damagedCheckpoint(name: string, change: (t: Map<string, Float32Array>, meta: Record<string, string>) => void): string {
  const file = path.join(tmp, name);
  const p = initLora(cfg, 4, 8, ['q', 'v'], 1);
  const opt = new AdamW(flatTensors(p).map((t) => t.length));
  for (let s = 0; s < 2; s++) opt.update(flatTensors(p), flatTensors(p).map((t) => t.map(() => 0.01)), 1e-3);
  saveCheckpoint(file, p, { step: opt.step, slots: opt.slots }, runState(2));
  const st = readSafetensorsHeader(file);
  const tensors = safetensorsTensors(file);
  const meta = { ...st.metadata };
  change(tensors, meta);
  writeSafetensorsStreaming(file, [...tensors].map(([n, data]) => ({ name: n, dtype: 'F32' as const, shape: st.entries.get(n)!.shape, data: bytesOf(data) })), meta);
  return file;
}

test('a damaged checkpoint is refused naming the file and what is wrong', () => {
  const a = peftTensorNames({ layer: 1, target: 'v' }).a;
  const cases: [string, (t: Map<string, Float32Array>, m: Record<string, string>) => void, RegExp][] = [
    ['step-nan', (_, m) => { m.optimizer_step = 'NaN'; }, /damaged checkpoint \(optimizer_step "NaN" is not a step count\)/],
    ['step-negative', (_, m) => { m.optimizer_step = '-1'; }, /damaged checkpoint \(optimizer_step "-1" is not a step count\)/],
    ['step-missing', (_, m) => { delete m.optimizer_step; }, /damaged checkpoint \(optimizer_step undefined is not a step count\)/],
    ['moment-nan', (t) => { t.get(`${a}.exp_avg`)![5] = NaN; }, /tensor base_model.*layers\.1\.self_attn\.v_proj\.lora_A\.weight\.exp_avg holds NaN at value 5/],
    ['moment-negative', (t) => { t.get(`${a}.exp_avg_sq`)![9] = -1; }, /exp_avg_sq holds -1 at value 9: a second moment is never negative/],
    ['weight-inf', (t) => { t.get(a)![0] = Infinity; }, /lora_A\.weight holds Infinity at value 0/],
    ['alpha', (_, m) => { m.run = JSON.stringify({ ...runState(2), alpha: -1 }); }, /damaged checkpoint \(alpha -1 or dropout 0 is out of range\)/],
  ];
  for (const [name, change, re] of cases) {
    const file = damagedCheckpoint(`${name}.safetensors`, change);
    assert.throws(() => loadCheckpoint(file, cfg), (e: Error) => e.message.startsWith(`${file}: `) && re.test(e.message), name);
  }
  assert.doesNotThrow(() => loadCheckpoint(damagedCheckpoint('intact.safetensors', () => {}), cfg));
});

test('an init adapter holding Inf is refused naming the file and tensor, by the reader and by gemma-tune train', () => {
  const dir = path.join(tmp, 'init-inf');
  writePeftAdapter(dir, initLora(cfg, 4, 8, ['q', 'v'], 1));
  const weights = path.join(dir, 'adapter_model.safetensors');
  const b = peftTensorNames({ layer: 4, target: 'q' }).b;
  patchTensorBytes(weights, b, 4 * 2, f32Bytes(Infinity));
  const re = new RegExp(`${weights}: tensor base_model\\.model\\.model\\.layers\\.4\\.self_attn\\.q_proj\\.lora_B\\.weight holds Infinity at value 2`);
  assert.throws(() => readPeftParams(dir, cfg), re);

  const model = path.join(tmp, 'tiny.gguf');
  writeRandomGguf(model, cfg, { seed: 1, dtype: 'q4_0' });
  const data = path.join(tmp, 'data.jsonl');
  fs.writeFileSync(data, Array.from({ length: 4 }, (_, i) => JSON.stringify({ input_ids: [2, 10 + i, 11, 12], labels: [IGNORE, IGNORE, 11, 12] })).join('\n'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'train', '--model', model, '--data', data, '--out', path.join(tmp, 'out-init'),
    '--init-adapter', dir, '--epochs', '1', '--threads', '1'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, re);
});

test('no adapter or checkpoint holding NaN is written, and what was on disk stays', () => {
  const dir = path.join(tmp, 'no-nan-write');
  const good = initLora(cfg, 4, 8, ['q'], 1);
  writePeftAdapter(dir, good);
  const before = fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
  const bad = initLora(cfg, 4, 8, ['q'], 2);
  bad.modules[3].b[7] = NaN;
  assert.throws(() => writePeftAdapter(dir, bad), /adapter_model\.safetensors: tensor base_model\.model\.model\.layers\.3\.self_attn\.q_proj\.lora_B\.weight holds NaN at value 7/);
  assert.deepEqual(fs.readFileSync(path.join(dir, 'adapter_model.safetensors')), before);
  const ckpt = path.join(dir, CHECKPOINT_FILE);
  assert.throws(() => saveCheckpoint(ckpt, bad, new AdamW(flatTensors(bad).map((t) => t.length)).state(), { ...runState(0), targets: ['q'] }), /holds NaN at value 7/);
  assert.equal(fs.existsSync(ckpt), false);
});

// A tiny f32 model where one value of token 499's embedding row is 5e37: finite, but the input path scales
// it by √C = 8 past float32's range, so a batch holding 499 has a NaN loss while every other batch trains
// normally. The head reads the same (tied) row: the final norm multiplier of 1e-6 keeps its logit (and gradients) finite.
const POISON = 499, HUGE = 5e37, FINAL_NORM = 1e-6;
const mw = randomF32Weights(cfg, 1, { embedding: 0.5, matrix: 0.02 });
(mw.weights.get(EMBED_NAME)!.value.data as Float32Array)[POISON * cfg.hidden] = HUGE;
(mw.weights.get(FINAL_NORM_NAME)!.value.data as Float32Array).fill(FINAL_NORM);
const example = (id: string, i: number, poisoned = false): TokenizedExample => {
  const ids = [2, poisoned ? POISON : 30 + i, 40 + i, 50 + i, 60 + i, 70 + i, 80 + i, 90 + i];
  return { id, inputIds: ids, labels: ids.map((t, j) => (j >= 5 ? t : IGNORE)) };
};
// Batches of 2 in order: the third step meets t5, the poisoned example.
const data = { train: Array.from({ length: 8 }, (_, i) => example(`t${i}`, i, i === 5)), val: [example('v0', 20), example('v1', 21)] };
const options: Omit<TrainOptions, 'outDir'> = {
  epochs: 2, lr: 5e-3, schedule: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, batchSize: 2, gradAccum: 1,
  seed: 7, shuffle: false, evalEvery: 1, patience: 0, padId: 0, checkpointEverySeconds: 1e-9,
};
let engine: OrtStepEngine;
before(async () => {
  engine = await createOrtEngine(mw, { precision: 'f32', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1 });
});
after(async () => {
  await engine.dispose();
});

/** Every tensor of a safetensors file is finite. */
function allFinite(file: string): boolean {
  return [...safetensorsTensors(file).values()].every((t) => firstNonFiniteF32(t) < 0);
}

test('a loss that becomes NaN at step 3 stops training there, naming the step and what to do; step 2 stays on disk', async () => {
  const outDir = path.join(tmp, 'nan-run');
  const steps: number[] = [];
  let adapterAfterStep2: Buffer | null = null;
  const run = train(cfg, engine, data, initLora(cfg, 4, 8, ALL_TARGETS, 3), {
    ...options, outDir,
    onEvent: (e) => {
      if (e.type === 'step') steps.push(e.step);
      if (e.type === 'eval' && e.step === 2) adapterAfterStep2 = fs.readFileSync(path.join(outDir, 'adapter_model.safetensors'));
    },
  });
  await assert.rejects(run, (e: Error) => {
    assert.ok(e instanceof TrainingDivergedError, e.message);
    assert.equal(e.step, 3, e.message);
    assert.match(e.message, /^loss became NaN at step 3: lower the learning rate \(it is 0\.005\)$/);
    return true;
  });
  assert.deepEqual(steps, [1, 2], 'no step event carries the NaN');
  const adapter = path.join(outDir, 'adapter_model.safetensors');
  assert.ok(adapterAfterStep2, 'an adapter was saved before the NaN');
  assert.deepEqual(fs.readFileSync(adapter), adapterAfterStep2, 'the adapter on disk is the last good one');
  assert.ok(allFinite(adapter));
  assert.ok(Number(readSafetensorsHeader(adapter).metadata.step) <= 2);
  const ck = loadCheckpoint(path.join(outDir, CHECKPOINT_FILE), cfg);
  assert.equal(ck.run.step, 2, 'the checkpoint is the last good step');
  assert.ok(allFinite(path.join(outDir, CHECKPOINT_FILE)));
});

test('gemma-tune train on the same data exits 1 with the step and keeps the last good adapter', () => {
  const model = path.join(tmp, 'poisoned.gguf');
  writeRandomGguf(model, cfg, { seed: 1, dtype: 'f32' });
  patchTensorBytes(model, 'token_embd.weight', 4 * POISON * cfg.hidden, f32Bytes(HUGE));
  for (let i = 0; i < cfg.hidden; i++) patchTensorBytes(model, 'output_norm.weight', 4 * i, f32Bytes(FINAL_NORM));
  const file = path.join(tmp, 'poisoned.jsonl');
  fs.writeFileSync(file, [...data.train, ...data.val].map((e) => JSON.stringify({ id: e.id, input_ids: e.inputIds, labels: e.labels })).join('\n') + '\n');
  const out = path.join(tmp, 'cli-nan');
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'train', '--model', model, '--data', file, '--out', out,
    '--precision', 'f32', '--epochs', '2', '--batch', '2', '--no-shuffle', '--eval-every', '1', '--val-ids', 'v0,v1', '--lr', '0.005', '--rank', '4',
    '--checkpoint-every', '0.000001', '--threads', '1'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /^gemma-tune train: loss became NaN at step 3: lower the learning rate \(it is 0\.005\)\n$/);
  assert.ok(allFinite(path.join(out, 'adapter_model.safetensors')));
  assert.doesNotThrow(() => readPeftParams(out, cfg));
});

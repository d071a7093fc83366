// import-adapter: a PEFT adapter (a job's out/ folder or an adapter folder) goes into a task after the
// checks against the model (names, shapes, finite values, the base a job recorded), with the job's
// metrics.jsonl, which the panel folds into its loss curves; a bad adapter or bad records change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';
import { writeSafetensorsStreaming } from '../../src/engine/model/safetensorsWriter';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { AdapterError, readPeftParams } from '../../src/engine/train/peftParams';
import { peftConfig, peftTensors, writePeftAdapter } from '../../src/engine/train/peftWriter';
import { findImportSource, installImportedAdapter, readRunRecords } from '../../src/store/adapterImport';
import { metricRecord, trainingViewOf } from '../../src/protocol/trainingRecords';
import { TaskStore } from '../../src/store/taskStore';
import { importAdapterCommand } from '../../src/cli/commands/importAdapter';
import { tempDir } from './temp-helpers';

const RECORDS = [
  { kind: 'start', totalSteps: 4, step: 0, epoch: 0 },
  { kind: 'step', step: 1, epoch: 0.5, loss: 2.5, etaSeconds: 3 },
  { kind: 'step', step: 2, epoch: 1, loss: 2.1, etaSeconds: 2 },
  { kind: 'eval', step: 2, valLoss: 2.2, bestStep: 2 },
  { kind: 'done', step: 2, bestStep: 2, comparison: [], message: 'Trained 2 steps on 8 process(es).' },
] as const;

async function taskWithAdapter(root: string) {
  const store = new TaskStore(path.join(root, '.gemma', 'tasks'));
  const task = await store.create({ name: 'T', kind: 'generate', instruction: '' });
  const old = initLora(GEMMA3_TINY, 4, 8, ['q'], 1);
  writePeftAdapter(store.adapterDir(task.id), old);
  await store.appendMetrics(task.id, [metricRecord({ kind: 'step', step: 1, epoch: 0.25, loss: 9 })]);
  return { store, task, oldBytes: fs.readFileSync(path.join(store.adapterDir(task.id), 'adapter_model.safetensors')) };
}

/** A job's out/ folder: adapter/ (our writer's files, plus gemma_tune.json) and metrics.jsonl. */
function jobOut(dir: string, opts: { rank?: number; shape?: Record<string, number>; records?: string } = {}): string {
  const lora = initLora(GEMMA3_TINY, opts.rank ?? 16, 2 * (opts.rank ?? 16), ALL_TARGETS, 7);
  writePeftAdapter(path.join(dir, 'adapter'), lora, { baseModel: { name: 'google/gemma-3-270m-it', revision: null } });
  const c = GEMMA3_TINY;
  fs.writeFileSync(path.join(dir, 'adapter', 'gemma_tune.json'), JSON.stringify({ format: 'gemma-tune-adapter', version: 1, base: 'google/gemma-3-270m-it', step: 2,
    baseShape: opts.shape ?? { vocabSize: c.vocabSize, hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim } }));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), opts.records ?? RECORDS.map((r) => JSON.stringify({ type: r.kind, ...r })).join('\n') + '\n');
  return dir;
}

test('a job\'s output imports: the adapter replaces the task\'s, its records replace metrics.jsonl and draw the curves', async (t) => {
  const root = tempDir('import-', t);
  const { store, task } = await taskWithAdapter(root);
  const out = jobOut(path.join(root, 'out'));
  const src = await findImportSource(out);
  assert.equal(src.adapterDir, path.join(out, 'adapter'));
  assert.equal(src.metricsFile, path.join(out, 'metrics.jsonl'));
  assert.deepEqual(await findImportSource(path.join(out, 'adapter')), src, 'picking adapter/ itself finds the metrics beside it');
  const lora = readPeftParams(src.adapterDir, GEMMA3_TINY);
  const base = { name: 'model', shape: { layers: 6, hidden: 64, intermediate: 256, heads: 4, kvHeads: 1, vocabSize: 262144 }, fingerprint: '0123456789abcdef' };
  await installImportedAdapter(store, task.id, src, await readRunRecords(src.metricsFile!), base);
  assert.deepEqual((await store.get(task.id)).config.baseModel, base, 'task.json records the base the adapter was checked against');
  const now = readPeftParams(store.adapterDir(task.id), GEMMA3_TINY);
  assert.equal(now.rank, 16);
  assert.deepEqual(now.modules.map((m) => m.a), lora.modules.map((m) => m.a));
  assert.ok(fs.existsSync(path.join(store.adapterDir(task.id), 'gemma_tune.json')));
  const view = trainingViewOf((await store.metrics(task.id)).records.map((r) => r.value));
  assert.deepEqual(view?.trainLoss, [[1, 2.5], [2, 2.1]]);
  assert.deepEqual(view?.valLoss, [[2, 2.2]]);
  assert.equal(view?.status, 'done');
  assert.equal(view?.bestStep, 2);
  assert.ok(!fs.existsSync(`${store.adapterDir(task.id)}.new`) && !fs.existsSync(`${store.adapterDir(task.id)}.old`), 'no staging left');
});

test('an import waits for no training run: while the task is being trained it is refused, naming the run, and nothing changes', async (t) => {
  const root = tempDir('import-', t);
  const { store, task, oldBytes } = await taskWithAdapter(root);
  const src = await findImportSource(jobOut(path.join(root, 'out')));
  const lock = await store.lockTraining(task.id);
  try {
    await assert.rejects(installImportedAdapter(store, task.id, src, null, undefined), /is being trained by/);
  } finally {
    await lock.release();
  }
  assert.deepEqual(fs.readFileSync(path.join(store.adapterDir(task.id), 'adapter_model.safetensors')), oldBytes);
  await installImportedAdapter(store, task.id, src, null, undefined);
  assert.notDeepEqual(fs.readFileSync(path.join(store.adapterDir(task.id), 'adapter_model.safetensors')), oldBytes);
});

test('an adapter folder without records imports with a note instead of the old curve', async (t) => {
  const root = tempDir('import-', t);
  const { store, task } = await taskWithAdapter(root);
  const dir = path.join(root, 'plain');
  writePeftAdapter(dir, initLora(GEMMA3_TINY, 8, 16, ['q', 'v'], 3));
  const src = await findImportSource(dir);
  assert.equal(src.metricsFile, null);
  await installImportedAdapter(store, task.id, src, null, undefined);
  const view = trainingViewOf((await store.metrics(task.id)).records.map((r) => r.value));
  assert.deepEqual(view?.trainLoss, []);
  assert.match(view?.message ?? '', /^Adapter imported from /);
});

test('wrong shapes, another base, non-finite values and damaged records are refused by name; the task keeps its adapter', async (t) => {
  const root = tempDir('import-', t);
  const { store, task, oldBytes } = await taskWithAdapter(root);
  const model = path.join(root, 'model');
  writeRandomHf(model, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
  const run = (dir: string) => importAdapterCommand.run(['--adapter', dir, '--task', task.dir, '--model', model]);

  // Hand-made: a config saying r 4 over tensors of rank 8.
  const shapes = path.join(root, 'shapes');
  const eight = initLora(GEMMA3_TINY, 8, 16, ['q'], 1);
  writeSafetensorsStreaming(path.join(shapes, 'adapter_model.safetensors'), peftTensors(eight), { format: 'pt' });
  fs.writeFileSync(path.join(shapes, 'adapter_config.json'), JSON.stringify({ ...peftConfig(eight, null), r: 4 }));
  await assert.rejects(run(shapes), (e: Error) => e instanceof AdapterError && /q_proj\.lora_A\.weight has shape \[8,64\], expected \[4,64\]/.test(e.message));

  // Hand-made: one more layer than the model has.
  const layers = path.join(root, 'layers');
  const tensors = peftTensors(initLora(GEMMA3_TINY, 4, 8, ['q'], 1));
  tensors.push({ ...tensors[0], name: tensors[0].name.replace('layers.0.', 'layers.6.') });
  writeSafetensorsStreaming(path.join(layers, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  fs.writeFileSync(path.join(layers, 'adapter_config.json'), JSON.stringify(peftConfig(initLora(GEMMA3_TINY, 4, 8, ['q'], 1), null)));
  await assert.rejects(run(layers), /names layer 6 but the model has 6/);

  const base = jobOut(path.join(root, 'base'), { shape: { vocabSize: 262144, hidden: 640, layers: 18 } });
  await assert.rejects(run(base), /trained on google\/gemma-3-270m-it \(vocabSize 262144, hidden 640, layers 18\), but this model has vocabSize 512, hidden 64, layers 6/);

  const nan = jobOut(path.join(root, 'nan'));
  const bad = initLora(GEMMA3_TINY, 16, 32, ALL_TARGETS, 7);
  bad.modules[3].b[5] = NaN;
  // By hand: our own writer refuses to write a NaN.
  writeSafetensorsStreaming(path.join(nan, 'adapter', 'adapter_model.safetensors'), peftTensors(bad), { format: 'pt' });
  await assert.rejects(run(nan), /layers\.0\.self_attn\.o_proj\.lora_B\.weight holds NaN at value 5/);

  const records = jobOut(path.join(root, 'records'), { records: '{"type":"step","kind":"step","step":1,"epoch":0.5,"loss":2}\n{"type":"step","kind":"step","step":"two"}\n' });
  await assert.rejects(run(records), /metrics\.jsonl:2: not a training record \(.*step/);

  await assert.rejects(run(path.join(root, 'nowhere')), /no adapter_config\.json here or in adapter\//);
  assert.deepEqual(fs.readFileSync(path.join(store.adapterDir(task.id), 'adapter_model.safetensors')), oldBytes, 'the task kept its adapter');
  assert.deepEqual((await store.metrics(task.id)).records.map((r) => r.value), [{ version: 2, type: 'step', step: 1, epoch: 0.25, loss: 9 }], 'and its metrics');

  await run(jobOut(path.join(root, 'good')));
  assert.equal(readPeftParams(store.adapterDir(task.id), GEMMA3_TINY).rank, 16, 'a good one then imports');
});

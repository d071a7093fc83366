// `npm run demo`'s core on its smallest setting: the built-in random-weight model (real Gemma 3
// tokenizer) fine-tuned on examples/ticket-triage with the extension's default settings, the held-out table before/after,
// and the adapter in PEFT format. Also the example folders' checks and where the default model is looked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readDemoTask, listDemoTasks } from '../../src/cli/demo/demoTask';
import { cacheDir, findLocalDefaultModel, writeDemoModel, DEMO_CONFIG } from '../../src/cli/demo/modelLocation';
import { runDemoTask } from '../../src/cli/demo/runDemo';
import { formatDemoResult } from '../../src/cli/demo/report';
import { taskSettings } from '../../src/cli/commands/demo';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import type { ModelManifest } from '../../src/engine/model/modelManifest';
import { tempDir } from './temp-helpers';

const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

test('every example task reads: 20 training examples, held-out test inputs, store line format', () => {
  const dirs = listDemoTasks(EXAMPLES);
  assert.ok(dirs.length >= 2, `example tasks: ${dirs.join(', ')}`);
  for (const d of dirs) {
    const t = readDemoTask(d);
    assert.equal(t.train.length, 20, d);
    assert.ok(t.test.length >= 8, d);
    const trainInputs = new Set(t.train.map((e) => e.input));
    assert.ok(t.test.every((e) => !trainInputs.has(e.input)), `${d}: a test input is also a training input`);
  }
});

test('a test line whose answer is not a label is an error naming the file and line', (t) => {
  const dir = tempDir('demo-task-', t);
  const src = path.join(EXAMPLES, 'ticket-triage');
  for (const f of ['task.json', 'examples.jsonl']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const line = JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'praise' }], id: 't1', input: 'x', heldOut: true });
  fs.writeFileSync(path.join(dir, 'test.jsonl'), line + '\n');
  assert.throws(() => readDemoTask(dir), /test\.jsonl: example t1 answers "praise", not one of the labels/);
  fs.writeFileSync(path.join(dir, 'test.jsonl'), '{"messages": 3}\n');
  assert.throws(() => readDemoTask(dir), /test\.jsonl:1: messages: expected an array/);
});

test('the default model is found through $GEMMA_TUNE_MODEL or in the cache folder (by size), never downloaded', async (t) => {
  const dir = tempDir('demo-cache-', t);
  const model = path.join(dir, 'm.gguf');
  writeRandomGguf(model, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  const m: ModelManifest = { id: 'test-model', title: 't', repo: 'o/r', revision: 'x', file: 'm.gguf', size: fs.statSync(model).size, gated: false };
  const env = { GEMMA_TUNE_CACHE: path.join(dir, 'cache'), HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'cfg'), XDG_DATA_HOME: path.join(dir, 'data') };
  assert.equal(await findLocalDefaultModel(env, m), undefined);
  assert.deepEqual(await findLocalDefaultModel({ ...env, GEMMA_TUNE_MODEL: model }, m), { path: model, source: 'env' });
  await assert.rejects(findLocalDefaultModel({ ...env, GEMMA_TUNE_MODEL: path.join(dir, 'nope.gguf') }, m), /GEMMA_TUNE_MODEL names .*nope\.gguf, which does not exist/);
  const cached = path.join(cacheDir(env), 'models', 'test-model', 'm.gguf');
  fs.mkdirSync(path.dirname(cached), { recursive: true });
  fs.writeFileSync(cached, 'short'); // a partial copy does not count
  assert.equal(await findLocalDefaultModel(env, m), undefined);
  fs.copyFileSync(model, cached);
  assert.deepEqual(await findLocalDefaultModel(env, m), { path: cached, source: 'cache' });
});

test('demo core, smallest setting: the built-in model learns ticket triage with the default settings; before/after table and a PEFT adapter', async (t) => {
  const dir = tempDir('demo-run-', t);
  const model = writeDemoModel(path.join(dir, 'model'), 7);
  assert.equal(JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')).vocab_size, DEMO_CONFIG.vocabSize);
  const task = readDemoTask(path.join(EXAMPLES, 'ticket-triage'));
  const out = path.join(dir, 'adapter');
  const r = await runDemoTask(task, model, out, { ...taskSettings(task.config), threads: 2, maxTests: 6 });
  const lines = formatDemoResult(task.config, r);
  console.log(lines.map((l) => `# ${l}`).join('\n'));

  assert.equal(r.rows.length, 6);
  for (const row of r.rows) for (const a of [row.before, row.after]) assert.ok(task.config.labels!.includes(a), `answer "${a}" is a label`);
  assert.ok(lines.some((l) => /expected .*before .*after/.test(l)), 'table header');
  assert.equal(lines.filter((l) => /[✓✗] \S+ +[✓✗] \S+/.test(l)).length, 6, 'one table row per test input');
  assert.ok(lines.some((l) => /accuracy on 6 held-out inputs: before \d+% \(\d\/6\), after \d+% \(\d\/6\)/.test(l)));
  assert.ok(r.lastEpochLoss < 0.2 * r.firstEpochLoss, `train loss ${r.firstEpochLoss} → ${r.lastEpochLoss}`);
  assert.ok(r.accuracyAfter > r.accuracyBefore, `accuracy ${r.accuracyBefore} → ${r.accuracyAfter}`);

  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.task_type, 'CAUSAL_LM');
  assert.equal(cfg.r, 16);
  assert.equal(cfg.lora_alpha, 32);
  assert.deepEqual([...cfg.target_modules].sort(), ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  const names = [...readSafetensorsHeader(path.join(out, 'adapter_model.safetensors')).entries.keys()];
  assert.equal(names.length, 2 * 7 * DEMO_CONFIG.layers);
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), names[0]);
});

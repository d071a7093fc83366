// `gemma-tune train` and `export-adapter` end to end through the CLI entry (the forms other tools rely
// on): a TRL conversational JSONL on a random tiny model with a tokenizer, --json step events whose
// loss is the step's forward loss, the PEFT output folder, the GGUF export, and one-line errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';
import { readGguf } from '../../src/engine/model/gguf';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { tempDir } from './temp-helpers';
import { hfFixture } from './shared-dir';

const MAIN = path.resolve(__dirname, '../../src/cli/main.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120000 });

test('train on TRL conversational JSONL with --json, then export the adapter to GGUF', (t) => {
  const dir = tempDir('train-cli-', t);
  const model = path.join(dir, 'model');
  writeRandomHf(model, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
  const data = path.join(dir, 'data.jsonl');
  fs.writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({
    id: `e${i}`,
    messages: [{ role: 'user', content: `Is ${i} even?` }, { role: 'assistant', content: i % 2 === 0 ? 'yes' : 'no' }],
  })).join('\n') + '\n');
  const out = path.join(dir, 'adapter');
  const r = cli(['train', '--model', model, '--data', data, '--out', out, '--epochs', '2', '--min-steps', '0', '--batch', '4', '--rank', '4', '--alpha', '8',
    '--targets', 'q,v,down', '--lr', '1e-3', '--schedule', 'cosine', '--warmup', '1', '--val-ids', 'e0,e5', '--precision', 'f32', '--json', '--threads', '1', '--checkpoint-every', '0.5']);
  assert.equal(r.status, 0, r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const start = events[0];
  assert.equal(start.type, 'start');
  assert.equal(start.trainExamples, 10);
  assert.equal(start.valExamples, 2);
  const steps = events.filter((e) => e.type === 'step');
  assert.equal(steps.length, 6, '3 steps per epoch (10 examples, batch 4) × 2 epochs');
  assert.deepEqual(steps.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  assert.equal(steps[0].lr, 0, 'warmup starts at 0');
  for (const s of steps) for (const k of ['loss', 'epoch', 'lr', 'gradNorm', 'tokensPerSec', 'etaS']) assert.equal(typeof s[k], 'number', k);
  assert.equal(events.filter((e) => e.type === 'eval').length, 2);
  assert.equal(events[events.length - 1].type, 'done');
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj', 'down_proj']);
  assert.equal(cfg.r, 4);
  assert.equal(cfg.base_model_name_or_path, 'model', 'the folder\'s name, not its path');
  assert.equal(readPeftParams(out, GEMMA3_TINY).modules.length, 18);

  const gguf = path.join(dir, 'a.gguf');
  const e = cli(['export-adapter', '--adapter', out, '--format', 'gguf', '--out', gguf, '--model', model]);
  assert.equal(e.status, 0, e.stderr);
  const g = readGguf(gguf);
  assert.equal(g.metadata.get('adapter.lora.alpha')?.value, 8);
  assert.ok(g.tensors.has('blk.5.ffn_down.weight.lora_b'));
});

test('bad input ends with one line naming the problem', (t) => {
  const dir = tempDir('train-cli-bad-', t);
  const fx = hfFixture('tiny');
  const bad = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(bad, '{"input_ids":[2,3,4]}\n{"input_ids":[2,3\n');
  let r = cli(['train', '--model', fx, '--data', bad, '--out', path.join(dir, 'o')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.jsonl:2: not valid JSON/);
  r = cli(['train', '--model', fx, '--data', bad, '--out', path.join(dir, 'o'), '--schedule', 'steep']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--schedule must be constant, linear or cosine/);
  r = cli(['train', '--model', fx, '--data', bad, '--out', path.join(dir, 'o'), '--targets', 'q,lm_head']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--targets: "lm_head" is not one of/);
  r = cli(['train', '--model', fx, '--data', bad, '--out', path.join(dir, 'o'), '--checkpoint-every', '-5']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--checkpoint-every must be between 0 and/);
  assert.match(r.stderr.split('\n')[0], /^gemma-tune train: --checkpoint-every must be between 0 and 10000000, got -5$/);
  assert.match(r.stderr, /usage: .*\[--checkpoint-every SECONDS\]/);
  r = cli(['export-adapter', '--adapter', fx, '--format', 'safetensors', '--out', path.join(dir, 'x')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--format must be gguf/);
});

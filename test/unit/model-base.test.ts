// The base a task's adapter was trained on: the identity the worker reports at load (name, shape, weight
// fingerprint), its place in task.json, the rule that an adapter runs on no other base, and the catalogue the
// model picker offers (pinned downloads, the figures it shows).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_1B, GEMMA3_TINY } from '../../src/engine/model/config';
import { baseIdentity } from '../../src/engine/model/identity';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { baseMismatch, baseModelRecord, describeBase } from '../../src/store/baseModel';
import { DEFAULT_HYPERPARAMETERS, validateTaskConfig } from '../../src/store/task';
import { GEMMA3_1B_QAT_MODEL, manifestUrl } from '../../src/engine/model/modelManifest';
import { describeEntry, describeFigures, formatBytes, MODEL_CATALOG } from '../../src/model/modelCatalog';
import { tempDir } from './temp-helpers';

const dir = tempDir('model-base-');

test('the fingerprint follows the weights: same bytes same print, other seed, type or layout another', () => {
  const a = path.join(dir, 'a.gguf'), a2 = path.join(dir, 'a-copy.gguf'), b = path.join(dir, 'b.gguf'), q8 = path.join(dir, 'a-q8.gguf');
  writeRandomGguf(a, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  fs.copyFileSync(a, a2);
  writeRandomGguf(b, GEMMA3_TINY, { seed: 2, dtype: 'q4_0' });
  writeRandomGguf(q8, GEMMA3_TINY, { seed: 1, dtype: 'q8_0' });
  const ia = baseIdentity(a, GEMMA3_TINY);
  assert.equal(ia.name, 'a.gguf');
  assert.deepEqual(ia.shape, { layers: 6, hidden: 64, intermediate: 128, heads: 2, kvHeads: 1, vocabSize: 512 });
  assert.match(ia.fingerprint, /^[0-9a-f]{16}$/);
  assert.equal(baseIdentity(a2, GEMMA3_TINY).fingerprint, ia.fingerprint);
  assert.notEqual(baseIdentity(b, GEMMA3_TINY).fingerprint, ia.fingerprint);
  assert.notEqual(baseIdentity(q8, GEMMA3_TINY).fingerprint, ia.fingerprint);
  const hf = path.join(dir, 'hf');
  writeRandomHf(hf, GEMMA3_TINY, { seed: 1, dtype: 'bf16' });
  const ih = baseIdentity(hf, GEMMA3_TINY);
  assert.equal(ih.name, 'hf');
  assert.deepEqual(baseModelRecord(ih), ih); // what the worker sends passes the protocol's schema
});

test('task.json records the base; an adapter trained on one base is refused on another, with both named', () => {
  const base = { name: 'gemma-3-270m-it-qat-Q4_0.gguf', shape: { layers: 18, hidden: 640, intermediate: 2048, heads: 4, kvHeads: 1, vocabSize: 262144 }, fingerprint: '0123456789abcdef' };
  const config = validateTaskConfig({ version: 1, name: 'Triage', kind: 'classify', instruction: 'x', labels: ['a', 'b'], hyperparameters: DEFAULT_HYPERPARAMETERS, createdAt: '2026-01-01T00:00:00Z', baseModel: base });
  assert.deepEqual(config.baseModel, base);
  assert.throws(() => validateTaskConfig({ ...config, baseModel: { ...base, fingerprint: '' } }), /baseModel\.fingerprint/);
  assert.equal(baseMismatch(config, base), undefined);
  const other = { name: 'gemma-3-1b-it-q4_0.gguf', shape: { ...base.shape, layers: 26, hidden: 1152 }, fingerprint: 'fedcba9876543210' };
  assert.equal(baseMismatch(config, other), '“Triage” was trained on gemma-3-270m-it-qat-Q4_0.gguf (18 layers, hidden 640), not on the model loaded now, gemma-3-1b-it-q4_0.gguf (26 layers, hidden 1152): its adapter is not applied.');
  assert.equal(describeBase(other), 'gemma-3-1b-it-q4_0.gguf (26 layers, hidden 1152)');
  // A task trained before bases were recorded keeps running (its adapter's shapes are checked on load).
  assert.equal(baseMismatch({ ...config, baseModel: undefined }, other), undefined);
});

test('the picker\'s catalogue: the default 270M and Google\'s gated 1B QAT Q4_0, pinned, with their figures', () => {
  assert.deepEqual(MODEL_CATALOG.map((e) => e.manifest.id), ['gemma-3-270m-it-qat-q4_0', 'gemma-3-1b-it-qat-q4_0']);
  assert.equal(manifestUrl(GEMMA3_1B_QAT_MODEL), 'https://huggingface.co/google/gemma-3-1b-it-qat-q4_0-gguf/resolve/d1be121d36172a4b0b964657e2ee859d61138593/gemma-3-1b-it-q4_0.gguf');
  assert.equal(GEMMA3_1B_QAT_MODEL.gated, true);
  assert.equal(formatBytes(GEMMA3_1B_QAT_MODEL.size!), '1.0 GB');
  assert.equal(formatBytes(241_410_624), '241 MB');
  assert.equal(describeFigures({ ramMB: 2900, decodeTokS: 5.2, loadS: 10, fineTuneS: 400 }), 'RAM 2.9 GB · 5.2 tokens/s · fine-tune ~7 min');
  assert.equal(describeFigures({ ramMB: 600, decodeTokS: 78, loadS: 3, fineTuneS: 30, fineTuneRamMB: 1400 }), 'RAM 600 MB · 78 tokens/s · fine-tune ~1 min in 1.4 GB');
  const ref = MODEL_CATALOG[1].reference;
  assert.equal(describeEntry(ref), 'RAM 3.1 GB · 19 tokens/s · fine-tune ~3 min in 4.9 GB (2-core build machine)');
  assert.equal(describeEntry(ref, { ramMB: 2500, decodeTokS: 30, loadS: 8 }), 'RAM 2.5 GB · 30 tokens/s (measured here) · fine-tune ~3 min in 4.9 GB (build machine)');
  for (const e of MODEL_CATALOG) assert.ok(e.reference.ramMB > 0 && e.reference.decodeTokS > 0, e.manifest.id);
  assert.equal(GEMMA3_1B.layers, 26);
});

// What adapter_config.json names as the base model: the default model's Hugging Face repository and
// revision, a GGUF's general.name or file name, a Hugging Face folder's hub id or name; never a local path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { fileTypeOf, gemma3Metadata } from '../../src/engine/model/ggufGemma';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { modelIdentity } from '../../src/engine/model/identity';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { syntheticVocab } from '../../src/engine/model/syntheticVocab';
import { DEFAULT_MODEL } from '../../src/engine/model/modelManifest';
import { tempDir } from './temp-helpers';

const dir = tempDir('model-identity-');

test('the default model is named by its Hugging Face repository and revision, wherever it lies', () => {
  const file = path.join(dir, 'default', DEFAULT_MODEL.file);
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, '');
  fs.truncateSync(file, DEFAULT_MODEL.size!); // sparse: recognised by name and size, its bytes are not read
  assert.deepEqual(modelIdentity(file), { name: 'ggml-org/gemma-3-270m-it-qat-GGUF', revision: DEFAULT_MODEL.revision });
});

test('a file with the default name but another size is read as any GGUF', () => {
  const file = path.join(dir, DEFAULT_MODEL.file);
  writeRandomGguf(file, GEMMA3_TINY, { seed: 1, dtype: 'f32', name: 'my tiny gemma' });
  assert.deepEqual(modelIdentity(file), { name: 'my tiny gemma', revision: null });
});

test('a GGUF without a general.name, or a blank one, is named by its file name', () => {
  const file = path.join(dir, 'unnamed.gguf');
  const metadata = gemma3Metadata(GEMMA3_TINY, syntheticVocab(GEMMA3_TINY.vocabSize), fileTypeOf('f32'));
  writeGguf(file, metadata.filter(([k]) => k !== 'general.name'), []);
  assert.deepEqual(modelIdentity(path.relative(process.cwd(), file)), { name: 'unnamed.gguf', revision: null });
  writeRandomGguf(file, GEMMA3_TINY, { seed: 1, dtype: 'f32', name: ' ' });
  assert.deepEqual(modelIdentity(file), { name: 'unnamed.gguf', revision: null });
});

test('a Hugging Face folder: hub snapshot, then a hub id in config.json, then the folder name; never a path', () => {
  const rev = 'a'.repeat(40);
  const snapshot = path.join(dir, 'hub', 'models--google--gemma-3-270m-it', 'snapshots', rev);
  writeRandomHf(snapshot, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  assert.deepEqual(modelIdentity(snapshot + path.sep), { name: 'google/gemma-3-270m-it', revision: rev });

  const folder = path.join(dir, 'my-model');
  writeRandomHf(folder, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  const config = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8'));
  const withName = (v: unknown) => fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, _name_or_path: v }));
  withName('google/gemma-3-270m');
  assert.deepEqual(modelIdentity(folder), { name: 'google/gemma-3-270m', revision: null });
  for (const local of ['/home/someone/models/gemma', '~/gemma', './gemma', 'C:\\models\\gemma', 42]) {
    withName(local);
    assert.deepEqual(modelIdentity(folder), { name: 'my-model', revision: null }, String(local));
  }
});

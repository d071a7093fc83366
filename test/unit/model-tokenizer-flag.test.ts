// `gemma-tune make-model --tokenizer FILE.json`, run as a process: a model written with the real Gemma 3
// tokenizer.json (a config with its 262144-token vocabulary, tiny otherwise) loads, tokenizes as Hugging
// Face does, and holds the same weight bytes as the synthetic-vocabulary model of the same seed; a
// vocabulary size that is not the config's is refused with one line.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configToHf, GEMMA3_TINY, layerTypesFromPattern, type GemmaConfig } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { loadModel } from '../../src/engine/model/load';
import { tokenizerForModel } from '../../src/engine/model/tokenizerForModel';
import { TokenType } from '../../src/engine/model/tokenizerSource';
import { ggufVocabFromTokenizerJson } from '../../src/engine/model/tokenizerJsonToGguf';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer } from './tokenizer-helpers';
import { tempDir } from './temp-helpers';

const ROOT = path.join(__dirname, '../..');
const dir = tempDir('tokflag-');

// Gemma 3's vocabulary on a 2-layer, 64-wide model: the embedding is the only large tensor (~18 MB as Q8_0).
const SMALL_REAL_VOCAB: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 262144, layers: 2, layerTypes: layerTypesFromPattern(2, 2) };
const configFile = path.join(dir, 'config.json');
fs.writeFileSync(configFile, JSON.stringify(configToHf(SMALL_REAL_VOCAB)));

const SAMPLES = ['Hello world', 'bug feature question docs', '  indented\n\tcode();', 'naïve café 中文 😀', '<start_of_turn>user\nHi<end_of_turn>'];

function makeModel(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'make-model', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Writes `real<suffix>` (with the real tokenizer.json) and `synthetic<suffix>` from seed 5; returns both paths. */
function makeRealAndSynthetic(suffix: string, format: string, dtype: string): { real: string; synthetic: string } {
  const real = path.join(dir, `real${suffix}`);
  const synthetic = path.join(dir, `synthetic${suffix}`);
  for (const [out, extra] of [[real, ['--tokenizer', GEMMA3_TOKENIZER_JSON]], [synthetic, []]] as const) {
    const r = makeModel('--config', configFile, '--format', format, '--dtype', dtype, '--seed', '5', '--out', out, ...extra);
    assert.equal(r.code, 0, r.stderr);
  }
  return { real, synthetic };
}

function assertReferenceIds(modelPath: string): void {
  const tok = tokenizerForModel(modelPath);
  const ref = referenceTokenizer();
  assert.equal(tok.vocabSize >= 262144, true);
  for (const s of SAMPLES) assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), `ids of ${JSON.stringify(s)}`);
  // The labels the classify benchmark scores are one token each with the real vocabulary.
  for (const label of ['bug', 'feature', 'question', 'docs']) assert.equal(tok.encode(label).length, 1, label);
}

test('the converter gives llama.cpp-style arrays of Gemma 3 (sizes, types, specials)', () => {
  const v = ggufVocabFromTokenizerJson(GEMMA3_TOKENIZER_JSON);
  assert.equal(v.tokens.length, 262144); // <image_soft_token> (262144) lies past model.vocab and is dropped
  assert.deepEqual([v.bosId, v.eosId, v.padId, v.unkId], [2, 1, 0, 3]);
  assert.equal(v.types[105], TokenType.CONTROL);
  assert.equal(v.tokens[106], '<end_of_turn>');
  assert.equal(v.types[v.tokens.indexOf('<0x0A>')], TokenType.BYTE);
});

test('--format gguf --tokenizer: loads, tokenizes as Hugging Face, same weight bytes as without', () => {
  const { real, synthetic } = makeRealAndSynthetic('.gguf', 'gguf', 'q4_0');
  const model = loadModel(real, { precision: 'q4' });
  assert.equal(model.weights.config.vocabSize, 262144);
  assert.equal(model.tokenizerSource?.kind, 'gguf');
  assertReferenceIds(real);

  const a = readGguf(real);
  const b = readGguf(synthetic);
  assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
  for (const name of a.tensors.keys()) assert.ok(Buffer.from(readGgufTensor(a, name)).equals(readGgufTensor(b, name)), `${name} differs`);
});

test('--format safetensors --tokenizer: the folder holds a copy of the tokenizer.json and the same weights', () => {
  const { real, synthetic } = makeRealAndSynthetic('-hf', 'safetensors', 'bf16');
  assert.ok(fs.readFileSync(path.join(real, 'tokenizer.json')).equals(fs.readFileSync(GEMMA3_TOKENIZER_JSON)));
  assert.ok(fs.readFileSync(path.join(real, 'model.safetensors')).equals(fs.readFileSync(path.join(synthetic, 'model.safetensors'))));
  assert.equal(loadModel(real, { precision: 'q4' }).weights.config.vocabSize, 262144);
  assertReferenceIds(real);
});

test('a config whose vocab size is not the tokenizer\'s is refused with one line, and nothing is written', () => {
  for (const format of ['gguf', 'safetensors']) {
    const out = path.join(dir, `tiny-${format}`);
    const r = makeModel('--config', 'tiny', '--format', format, '--dtype', 'f32', '--seed', '1', '--out', out, '--tokenizer', GEMMA3_TOKENIZER_JSON);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^gemma-tune make-model: --tokenizer .*tokenizer\.json has 262144 tokens but --config tiny has vocab size 512; they must be equal\n$/);
    assert.equal(fs.existsSync(out), false);
  }
});

test('a tokenizer file that is not a tokenizer.json is refused naming the file', () => {
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"model": {"vocab": {"a": -1}}}');
  const r = makeModel('--config', configFile, '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', path.join(dir, 'bad.gguf'), '--tokenizer', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.json: model\.vocab\["a"\] is not a token id\n$/);
  const missing = makeModel('--config', configFile, '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', path.join(dir, 'bad.gguf'), '--tokenizer', path.join(dir, 'none.json'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /none\.json: cannot read \(ENOENT\)/);
});

// Every size a model's files claim is bounded before anything is sized by it (src/engine/model/bounds.ts):
// a GGUF or config.json claiming 1e9 layers once made V8 abort while it built per-layer arrays; now each
// absurd size is refused with what was found and what is allowed, without a large allocation, while every
// real Gemma 3 shape (270M … 27B) still passes. Tensors sharing bytes, oversized JSON files and token ids
// past the vocabulary bound are refused too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configFromHf, configToHf, GEMMA3_270M, GEMMA3_TINY, layerTypesFromPattern, type GemmaConfig } from '../../src/engine/model/config';
import { readGguf } from '../../src/engine/model/gguf';
import { loadModel } from '../../src/engine/model/load';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { compileTokenizerJson } from '../../src/engine/model/tokenizerJson';
import { copyModel, patchGgufU32 } from './damage-helpers';
import { tempDir } from './temp-helpers';

const tmp = tempDir('model-bounds-');
const gguf = path.join(tmp, 'tiny.gguf');
writeRandomGguf(gguf, GEMMA3_TINY, { seed: 2, dtype: 'q4_0' });
const hf = path.join(tmp, 'tiny-hf');
writeRandomHf(hf, GEMMA3_TINY, { seed: 2, dtype: 'f32' });
const hfConfig = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;

/** Asserts that loading `file` is refused with a message naming it and matching `re`, without a large allocation. */
function refused(file: string, re: RegExp, load: (f: string) => unknown = (f) => loadModel(f, { precision: 'q4' })): void {
  const before = process.memoryUsage();
  assert.throws(() => load(file), (e: Error) => {
    assert.ok(e.message.includes(file), `the message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
  const after = process.memoryUsage();
  assert.ok(after.arrayBuffers - before.arrayBuffers < 64 << 20 && after.heapUsed - before.heapUsed < 256 << 20, 'no large allocation');
}

test('a GGUF claiming 1e9 layers, or any other absurd size, is refused with what it found and what is allowed', () => {
  const cases: [key: string | string[], value: number, re: RegExp][] = [
    ['gemma3.block_count', 1e9, /gemma3\.block_count is 1000000000, outside the allowed 1…256/],
    ['gemma3.embedding_length', 1e9, /hidden is 1000000000, outside the allowed 1…32768/],
    ['gemma3.feed_forward_length', 4e9, /intermediate is 4000000000, outside the allowed 1…131072/],
    ['gemma3.attention.head_count', 70000, /heads is 70000, outside the allowed 1…256/],
    [['gemma3.attention.key_length', 'gemma3.attention.value_length'], 1 << 20, /headDim is 1048576, outside the allowed 1…1024/],
    ['gemma3.context_length', 2 ** 31, /maxPositions is 2147483648, outside the allowed 1…2097152/],
    ['gemma3.attention.sliding_window', 2 ** 31, /slidingWindow is 2147483648, outside the allowed 1…2097152/],
  ];
  for (const [key, value, re] of cases) {
    const keys = typeof key === 'string' ? [key] : key;
    const file = path.join(tmp, `${keys[0]}.gguf`);
    fs.copyFileSync(gguf, file);
    for (const k of keys) patchGgufU32(file, k, value);
    refused(file, re);
  }
});

test('a config.json claiming 1e9 layers, or any other absurd size, is refused by key with found and allowed', () => {
  const cases: [patch: Record<string, unknown>, re: RegExp][] = [
    [{ num_hidden_layers: 1e9, layer_types: undefined }, /config "num_hidden_layers" is 1000000000, outside the allowed 1…256/],
    [{ num_hidden_layers: 1e9 }, /config "num_hidden_layers" is 1000000000, outside the allowed 1…256/],
    [{ hidden_size: 1e9 }, /config "hidden_size" is 1000000000, outside the allowed 1…32768/],
    [{ vocab_size: 1e12 }, /config "vocab_size" is 1000000000000, outside the allowed 1…1048576/],
    [{ num_attention_heads: 0 }, /config "num_attention_heads" is 0, outside the allowed 1…256/],
    [{ head_dim: 2.5 }, /config "head_dim" must be an integer in 1…1024, found 2.5/],
    [{ intermediate_size: '128' }, /config "intermediate_size" is not a number: "128"/],
    [{ layer_types: Array(7).fill('sliding_attention') }, /layer_types has 7 entries for 6 layers/],
    [{ sliding_window_pattern: 1e9, layer_types: undefined, _sliding_window_pattern: undefined }, /./],
  ];
  for (const [i, [patch, re]] of cases.entries()) {
    const dir = copyModel(hf, path.join(tmp, `hf-${i}`));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...hfConfig, ...patch }));
    if (i === cases.length - 1) {
      // A huge pattern is only a modulus: every layer is sliding, which the weights do not contradict.
      assert.doesNotThrow(() => loadModel(dir, { precision: 'q4' }));
      continue;
    }
    refused(dir, re);
  }
});

test('every real Gemma 3 shape is within the bounds (270M, 1B, 4B, 12B, 27B)', () => {
  const shape = (layers: number, hidden: number, intermediate: number, heads: number, kvHeads: number, headDim: number, window: number): GemmaConfig => ({
    ...GEMMA3_270M, vocabSize: 262208, hidden, intermediate, layers, heads, kvHeads, headDim, queryPreAttnScalar: headDim,
    slidingWindow: window, layerTypes: layerTypesFromPattern(layers, 6), maxPositions: 131072,
  });
  const sizes = [GEMMA3_270M, shape(26, 1152, 6912, 4, 1, 256, 512), shape(34, 2560, 10240, 8, 4, 256, 1024), shape(48, 3840, 15360, 16, 8, 256, 1024),
    { ...shape(62, 5376, 21504, 32, 16, 128, 1024), queryPreAttnScalar: 168 }];
  for (const cfg of sizes) assert.deepEqual(configFromHf(JSON.parse(JSON.stringify(configToHf(cfg)))), cfg);
});

test('tensors that share bytes are refused: a small file cannot claim many large tensors', () => {
  const st = path.join(tmp, 'overlap.safetensors');
  const header = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(st, Buffer.concat([len, header, Buffer.alloc(24)]));
  refused(st, /tensors a and b share bytes 8…15: corrupt/, readSafetensorsHeader);

  // A GGUF whose second tensor's offset is rewritten to the first's.
  const g = readGguf(gguf);
  const [first, second] = [...g.tensors.values()];
  const bytes = fs.readFileSync(gguf);
  const name = Buffer.from(second.name);
  // The tensor info is: name, n_dims u32, ne u64 × n_dims, type u32, offset u64.
  const offsetAt = bytes.indexOf(name, bytes.indexOf(Buffer.from(first.name)) + 1) + name.length + 4 + 8 * second.ne.length + 4;
  bytes.writeBigUInt64LE(BigInt(first.offset - g.dataOffset), offsetAt);
  const file = path.join(tmp, 'overlap.gguf');
  fs.writeFileSync(file, bytes);
  refused(file, /share bytes .*: corrupt/, readGguf);
});

test('oversized model-folder JSON and tokenizer ids past the bound are refused', () => {
  const dir = copyModel(hf, path.join(tmp, 'hf-big-config'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig) + ' '.repeat(2 << 20));
  refused(dir, /config\.json: the file is \d+ bytes, more than the 1048576 allowed/);

  const tok = JSON.parse(fs.readFileSync(path.join(hf, 'tokenizer.json'), 'utf8')) as { added_tokens: unknown[] };
  tok.added_tokens.push({ id: 10_000_000, content: '<far>', special: true });
  assert.throws(() => compileTokenizerJson(tok, 'tok.json'), /tok\.json: token id 10000000 is past the 1048576 ids allowed/);
});

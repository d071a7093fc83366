// GGUF reader and writer: every metadata value type round-trips, the container layout is the one
// llama.cpp reads (aligned data, ne = reversed HF shape, norms stored as 1+w), the gemma3 metadata set
// of gguf-gemma3.md is written with its types, and the GGUF ↔ config / name mappings invert each other.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_270M, GEMMA3_TINY, layerTypesFromPattern, type GemmaConfig } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { GgufType, type GgufValue } from '../../src/engine/model/ggufFormat';
import { gemma3Metadata, ggufConfig, ggufToHfName, ggufTokenizerSource, hfToGgufName } from '../../src/engine/model/ggufGemma';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { randomTensor, writeRandomGguf } from '../../src/engine/model/randomModel';
import { syntheticVocab } from '../../src/engine/model/syntheticVocab';
import { expectedShapes } from '../../src/engine/model/weights';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-gguf-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('every metadata value type, arrays and nested arrays included, round-trips', () => {
  const meta: [string, GgufValue][] = [
    ['general.architecture', { type: GgufType.STRING, value: 'gemma3' }],
    ['t.u8', { type: GgufType.UINT8, value: 250 }],
    ['t.i8', { type: GgufType.INT8, value: -120 }],
    ['t.u16', { type: GgufType.UINT16, value: 65000 }],
    ['t.i16', { type: GgufType.INT16, value: -32000 }],
    ['t.u32', { type: GgufType.UINT32, value: 4_000_000_000 }],
    ['t.i32', { type: GgufType.INT32, value: -2_000_000_000 }],
    ['t.f32', { type: GgufType.FLOAT32, value: Math.fround(0.1) }],
    ['t.f64', { type: GgufType.FLOAT64, value: 0.1 }],
    ['t.u64', { type: GgufType.UINT64, value: 2n ** 63n + 5n }],
    ['t.i64', { type: GgufType.INT64, value: -(2n ** 62n) }],
    ['t.bool', { type: GgufType.BOOL, value: true }],
    ['t.str', { type: GgufType.STRING, value: 'héllo ▁ <0x0A>' }],
    ['t.arr.f32', { type: GgufType.ARRAY, value: { elemType: GgufType.FLOAT32, items: Float32Array.from([1.5, -2, 3]) } }],
    ['t.arr.i32', { type: GgufType.ARRAY, value: { elemType: GgufType.INT32, items: Int32Array.from([1, -2, 3]) } }],
    ['t.arr.u64', { type: GgufType.ARRAY, value: { elemType: GgufType.UINT64, items: BigUint64Array.from([1n, 2n ** 60n]) } }],
    ['t.arr.bool', { type: GgufType.ARRAY, value: { elemType: GgufType.BOOL, items: [true, false, true] } }],
    ['t.arr.str', { type: GgufType.ARRAY, value: { elemType: GgufType.STRING, items: ['a', '', 'ü▁'] } }],
    ['t.arr.nested', { type: GgufType.ARRAY, value: { elemType: GgufType.ARRAY, items: [{ elemType: GgufType.UINT8, items: Uint8Array.from([7, 8]) }] } }],
  ];
  const file = path.join(tmp, 'kv.gguf');
  const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
  writeGguf(file, meta, [{ name: 'x', ne: [3, 2], dtype: 'f32', data: () => [new Uint8Array(data.buffer)] }]);
  const g = readGguf(file);
  assert.equal(g.version, 3);
  assert.deepEqual([...g.metadata.keys()], meta.map(([k]) => k));
  for (const [k, v] of meta) assert.deepEqual(g.metadata.get(k), v, k);
  assert.equal(g.dataOffset % 32, 0);
  assert.deepEqual(new Float32Array(readGgufTensor(g, 'x').buffer), data);
  assert.deepEqual(new Float32Array(readGgufTensor(g, 'x', 1, 1).buffer), Float32Array.from([4, 5, 6]));
});

test('a random gemma3 GGUF has the llama.cpp layout: aligned tensors, ne = [in, out], norms as 1+w', () => {
  const file = path.join(tmp, 'tiny-q4.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: 7, dtype: 'q4_0' });
  const g = readGguf(file);
  assert.equal(g.alignment, 32);
  const shapes = expectedShapes(GEMMA3_TINY);
  assert.equal(g.tensors.size, shapes.size);
  for (const t of g.tensors.values()) {
    assert.equal((t.offset - g.dataOffset) % 32, 0, t.name);
    const hf = ggufToHfName(t.name)!;
    assert.deepEqual(t.ne, [...shapes.get(hf)!].reverse(), t.name);
  }
  assert.equal(g.tensors.get('token_embd.weight')!.dtype, 'q8_0');
  assert.equal(g.tensors.get('blk.0.attn_q.weight')!.dtype, 'q4_0');
  assert.equal(g.tensors.get('blk.0.attn_norm.weight')!.dtype, 'f32');
  const stored = new Float32Array(readGgufTensor(g, 'blk.3.ffn_norm.weight').buffer);
  const w = randomTensor(7, 'model.layers.3.pre_feedforward_layernorm.weight', 64);
  assert.deepEqual(stored, w.map((x) => Math.fround(1 + x)));
});

test('the gemma3 metadata set of gguf-gemma3.md is written with its GGUF types', () => {
  const g = readGguf(path.join(tmp, 'tiny-q4.gguf'));
  const want: Record<string, number> = {
    'general.architecture': GgufType.STRING,
    'general.file_type': GgufType.UINT32,
    'general.quantization_version': GgufType.UINT32,
    'general.alignment': GgufType.UINT32,
    'gemma3.context_length': GgufType.UINT32,
    'gemma3.embedding_length': GgufType.UINT32,
    'gemma3.block_count': GgufType.UINT32,
    'gemma3.feed_forward_length': GgufType.UINT32,
    'gemma3.attention.head_count': GgufType.UINT32,
    'gemma3.attention.head_count_kv': GgufType.UINT32,
    'gemma3.attention.key_length': GgufType.UINT32,
    'gemma3.attention.value_length': GgufType.UINT32,
    'gemma3.rope.freq_base': GgufType.FLOAT32,
    'gemma3.rope.freq_base_swa': GgufType.FLOAT32,
    'gemma3.attention.layer_norm_rms_epsilon': GgufType.FLOAT32,
    'gemma3.attention.sliding_window': GgufType.UINT32,
    'tokenizer.ggml.model': GgufType.STRING,
    'tokenizer.ggml.pre': GgufType.STRING,
    'tokenizer.ggml.tokens': GgufType.ARRAY,
    'tokenizer.ggml.scores': GgufType.ARRAY,
    'tokenizer.ggml.token_type': GgufType.ARRAY,
    'tokenizer.ggml.bos_token_id': GgufType.UINT32,
    'tokenizer.ggml.eos_token_id': GgufType.UINT32,
    'tokenizer.ggml.unknown_token_id': GgufType.UINT32,
    'tokenizer.ggml.padding_token_id': GgufType.UINT32,
    'tokenizer.ggml.add_bos_token': GgufType.BOOL,
    'tokenizer.ggml.add_eos_token': GgufType.BOOL,
    'tokenizer.ggml.add_space_prefix': GgufType.BOOL,
  };
  for (const [k, type] of Object.entries(want)) assert.equal(g.metadata.get(k)?.type, type, k);
  const tt = g.metadata.get('tokenizer.ggml.token_type');
  assert.ok(tt?.type === GgufType.ARRAY && tt.value.elemType === GgufType.INT32);
  assert.equal(g.metadata.get('general.file_type')!.value, 2);
  // The 6-layer tiny uses the default pattern 6, which the converter leaves out.
  assert.equal(g.metadata.has('gemma3.attention.sliding_window_pattern'), false);
  const tok = ggufTokenizerSource(g)!;
  assert.equal(tok.tokens.length, 512);
  assert.deepEqual(tok.tokens.slice(0, 4), ['<pad>', '<eos>', '<bos>', '<unk>']);
  assert.equal(tok.tokens[105], '<start_of_turn>');
  assert.equal(tok.tokens[106], '<end_of_turn>');
  assert.ok(tok.tokens.includes('<0x0A>'));
  assert.equal(tok.types![105], 3);
  assert.deepEqual([tok.bosId, tok.eosId, tok.unkId, tok.padId, tok.addBosToken, tok.addEosToken], [2, 1, 3, 0, true, false]);
});

test('GGUF metadata → config inverts config → metadata, for the presets and odd layer patterns', () => {
  const odd: GemmaConfig = { ...GEMMA3_TINY, layers: 4, layerTypes: layerTypesFromPattern(4, 4) };
  const irregular: GemmaConfig = { ...GEMMA3_TINY, layers: 3, layerTypes: ['full', 'sliding', 'full'] };
  const cfg270 = { ...GEMMA3_270M, vocabSize: 512 }; // the real shape but a small vocabulary to stay quick
  for (const cfg of [GEMMA3_TINY, odd, irregular, cfg270, { ...GEMMA3_TINY, finalLogitSoftcap: 30 }]) {
    const file = path.join(tmp, 'meta.gguf');
    const embd = { name: 'token_embd.weight', ne: [cfg.hidden, cfg.vocabSize], dtype: 'f16' as const, data: () => [new Uint8Array(cfg.hidden * cfg.vocabSize * 2)] };
    writeGguf(file, gemma3Metadata(cfg, syntheticVocab(cfg.vocabSize), 1), [embd]);
    assert.deepEqual(ggufConfig(readGguf(file)), cfg);
  }
});

test('GGUF and HF tensor names map both ways', () => {
  for (const name of expectedShapes(GEMMA3_TINY).keys()) {
    const g = hfToGgufName(name);
    assert.ok(g, name);
    assert.equal(ggufToHfName(g), name);
  }
  assert.equal(hfToGgufName('model.layers.0.self_attn.q_proj.weight'), 'blk.0.attn_q.weight');
  assert.equal(hfToGgufName('model.layers.2.post_feedforward_layernorm.weight'), 'blk.2.post_ffw_norm.weight');
  assert.equal(ggufToHfName('blk.1.ffn_norm.weight'), 'model.layers.1.pre_feedforward_layernorm.weight');
  assert.equal(ggufToHfName('output.weight'), null);
  assert.equal(ggufToHfName('blk.0.attn_qkv.weight'), null);
});

test("headers larger than the writer's first buffer and the reader's 1 MiB window round-trip", () => {
  const tokens = Array.from({ length: 90_000 }, (_, i) => `tok-${i}-▁`);
  const scores = Float32Array.from(tokens, (_, i) => -i);
  const file = path.join(tmp, 'bighead.gguf');
  writeGguf(file, [
    ['tokenizer.ggml.tokens', { type: GgufType.ARRAY, value: { elemType: GgufType.STRING, items: tokens } }],
    ['tokenizer.ggml.scores', { type: GgufType.ARRAY, value: { elemType: GgufType.FLOAT32, items: scores } }],
  ], [{ name: 'x', ne: [32], dtype: 'q8_0', data: () => [new Uint8Array(34).fill(1)] }]);
  const g = readGguf(file);
  assert.ok(g.dataOffset > 2 << 20);
  assert.deepEqual(g.metadata.get('tokenizer.ggml.tokens'), { type: GgufType.ARRAY, value: { elemType: GgufType.STRING, items: tokens } });
  assert.deepEqual(g.metadata.get('tokenizer.ggml.scores'), { type: GgufType.ARRAY, value: { elemType: GgufType.FLOAT32, items: scores } });
  assert.deepEqual(readGgufTensor(g, 'x'), new Uint8Array(34).fill(1));
});

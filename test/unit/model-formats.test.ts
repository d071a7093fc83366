// Model files beyond the plain text checkpoint: RoPE scaling (GGUF rope.scaling.* and HF rope_scaling /
// rope_parameters; linear runs, a no-op is accepted, other types are refused by name), checked against
// llama.cpp's logits; and multimodal checkpoints (Gemma3ForConditionalGeneration folders under both of
// transformers' prefixes, GGUFs carrying vision tensors): their text decoder loads, the vision part is skipped
// with a note, an mmproj file is refused by name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configFromHf, ConfigError, GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { GgufType } from '../../src/engine/model/ggufFormat';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { loadModel, openWeights } from '../../src/engine/model/load';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { readSafetensorsBytes, readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { writeSafetensorsStreaming } from '../../src/engine/model/safetensorsWriter';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';
import { maxAbsDiff } from './gemma-helpers';
import { fixtureIndex, llamaLogits, LLAMACPP_FIXTURES } from './llamacpp-helpers';
import { tempDir } from './temp-helpers';

const tmp = tempDir('model-formats-');
const ropeJson = JSON.parse(fs.readFileSync(path.join(LLAMACPP_FIXTURES, 'rope8.config.json'), 'utf8'));
const ropeCfg = configFromHf(ropeJson);
const { ropeIds } = fixtureIndex();

async function logitsOf(modelPath: string, ids: number[], precision: 'q4' | 'f32' = 'q4'): Promise<Float32Array> {
  const rt = await createGemmaRuntime(openWeights(modelPath, { precision }).source, { precision, threads: 1, lora: 'never' });
  try {
    return await rt.step(rt.newCache(), ids, { logits: 'all' });
  } finally {
    await rt.dispose();
  }
}

test('HF rope_scaling: linear scales the full-attention layers, a no-op is accepted, other types are refused by name', () => {
  assert.equal(ropeCfg.ropeScaleGlobal, 8);
  assert.equal(ropeCfg.ropeScaleLocal, 1);
  const base = { ...ropeJson };
  const scale = (rope: unknown) => configFromHf({ ...base, rope_scaling: rope });
  assert.equal(scale(null).ropeScaleGlobal, 1);
  assert.equal(scale({ rope_type: 'default' }).ropeScaleGlobal, 1);
  assert.equal(scale({ type: 'linear', factor: 2 }).ropeScaleGlobal, 2); // the older "type" key
  for (const type of ['yarn', 'dynamic', 'longrope', 'llama3']) {
    assert.throws(() => scale({ rope_type: type, factor: 8 }), (e: Error) => e instanceof ConfigError && e.message.includes(`"${type}" is not supported`), type);
  }
  assert.throws(() => scale({ rope_type: 'linear' }), /needs a positive "factor"/);
  // transformers 5: rope_parameters per layer type.
  const v5 = { ...base, rope_scaling: undefined, rope_theta: undefined, rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } };
  assert.deepEqual(configFromHf(v5), ropeCfg);
  assert.throws(() => configFromHf({ ...v5, rope_parameters: { full_attention: { rope_type: 'yarn', factor: 8 } } }), /rope_parameters\.full_attention: RoPE scaling type "yarn" is not supported/);
});

test('GGUF rope.scaling: linear 8 runs as llama.cpp runs it (and ignoring it would not), HF and GGUF alike', async () => {
  const gguf = path.join(tmp, 'rope8.gguf');
  writeRandomGguf(gguf, ropeCfg, { seed: 1, dtype: 'f32' });
  const g = readGguf(gguf);
  assert.equal(g.metadata.get('gemma3.rope.scaling.type')?.value, 'linear');
  assert.equal(loadModel(gguf, { precision: 'f32' }).weights.config.ropeScaleGlobal, 8);
  const ref = llamaLogits('rope8');
  const got = await logitsOf(gguf, ropeIds);
  const d = maxAbsDiff(got, ref);
  // The same weights with the scaling left out: what a loader that ignores it computes.
  const plain = path.join(tmp, 'rope1.gguf');
  writeRandomGguf(plain, { ...ropeCfg, ropeScaleGlobal: 1 }, { seed: 1, dtype: 'f32' });
  const ignored = maxAbsDiff(await logitsOf(plain, ropeIds), ref);
  console.log(`# rope linear 8, ${ropeIds.length} positions: max|Δ| vs llama.cpp ${d.toFixed(4)} (scaling ignored: ${ignored.toFixed(3)})`);
  assert.ok(d < 0.01, `max|Δ| ${d}`);
  assert.ok(ignored > 10 * d, `ignoring the scaling moves the logits (${ignored})`);
  // The HF folder of the same weights and config gives the same logits.
  const hf = path.join(tmp, 'rope8-hf');
  writeRandomHf(hf, ropeCfg, { seed: 1, dtype: 'f32' });
  assert.ok(maxAbsDiff(await logitsOf(hf, ropeIds, 'f32'), got) < 1e-4);
});

test('GGUF rope.scaling: "none" and a missing factor are no-ops; yarn and longrope are refused by name', () => {
  const src = readGguf(path.join(tmp, 'rope8.gguf'));
  const rewrite = (name: string, edit: (m: Map<string, unknown>) => void) => {
    const meta = new Map(src.metadata);
    edit(meta as Map<string, unknown>);
    const file = path.join(tmp, name);
    writeGguf(file, [...meta] as [string, never][], [...src.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, dtype: t.dtype, data: () => [readGgufTensor(src, t.name)] })));
    return file;
  };
  const str = (value: string) => ({ type: GgufType.STRING, value });
  assert.equal(loadModel(rewrite('none.gguf', (m) => m.set('gemma3.rope.scaling.type', str('none'))), { precision: 'f32' }).weights.config.ropeScaleGlobal, 1);
  assert.equal(loadModel(rewrite('nofactor.gguf', (m) => m.delete('gemma3.rope.scaling.factor')), { precision: 'f32' }).weights.config.ropeScaleGlobal, 1);
  for (const type of ['yarn', 'longrope']) {
    assert.throws(() => loadModel(rewrite(`${type}.gguf`, (m) => m.set('gemma3.rope.scaling.type', str(type))), { precision: 'f32' }), new RegExp(`rope\\.scaling\\.type "${type}" is not supported`));
  }
});

/** A Gemma3ForConditionalGeneration folder from a text folder: tensors under `prefix`, vision tensors, a sparse text_config. */
function multimodalFolder(text: string, dir: string, prefix: 'language_model.model.' | 'model.language_model.'): void {
  fs.mkdirSync(dir, { recursive: true });
  const st = readSafetensorsHeader(path.join(text, 'model.safetensors'));
  const vision = prefix === 'model.language_model.' ? 'model.vision_tower.vision_model.' : 'vision_tower.vision_model.';
  const projector = prefix === 'model.language_model.' ? 'model.multi_modal_projector.' : 'multi_modal_projector.';
  const tensors = [...st.entries].map(([name, e]) => ({ name: prefix + name.slice('model.'.length), dtype: e.dtype as 'F32', shape: e.shape, data: () => [readSafetensorsBytes(st, name)] }));
  const extra = (name: string, shape: number[]) => ({ name, dtype: 'F32' as const, shape, data: () => [new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4)] });
  tensors.push(extra(`${vision}embeddings.patch_embedding.weight`, [8, 3, 2, 2]), extra(`${projector}mm_input_projection_weight`, [8, 64]));
  if (prefix === 'model.language_model.') tensors.push(extra('lm_head.weight', [GEMMA3_TINY.vocabSize, 64]));
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), tensors);
  const t = JSON.parse(fs.readFileSync(path.join(text, 'config.json'), 'utf8'));
  // As the 4B's config.json: the text_config names what differs from transformers' Gemma3TextConfig defaults.
  const textConfig = {
    model_type: 'gemma3_text', vocab_size: t.vocab_size, hidden_size: t.hidden_size, intermediate_size: t.intermediate_size,
    num_hidden_layers: t.num_hidden_layers, num_attention_heads: t.num_attention_heads, num_key_value_heads: t.num_key_value_heads,
    head_dim: t.head_dim, query_pre_attn_scalar: t.query_pre_attn_scalar, sliding_window: t.sliding_window, max_position_embeddings: t.max_position_embeddings,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', mm_tokens_per_image: 256, text_config: textConfig, vision_config: { model_type: 'siglip_vision_model' } }));
  fs.copyFileSync(path.join(text, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
}

test('a multimodal folder (both prefixes, sparse text_config) loads its text decoder; the vision tower is skipped with a note', async () => {
  const text = path.join(tmp, 'text');
  writeRandomHf(text, GEMMA3_TINY, { seed: 4, dtype: 'f32' });
  const ids = [2, 105, 300, 301, 302, 106];
  const want = await logitsOf(text, ids);
  for (const prefix of ['language_model.model.', 'model.language_model.'] as const) {
    const dir = path.join(tmp, `mm-${prefix.replaceAll('.', '_')}`);
    multimodalFolder(text, dir, prefix);
    const m = openWeights(dir, { precision: 'q4' });
    assert.deepEqual(m.source.config, GEMMA3_TINY);
    assert.equal(m.notes.length, 1);
    assert.match(m.notes[0], /skipped 2 vision-tower and projector tensors, .* only the text decoder runs/);
    assert.deepEqual(await logitsOf(dir, ids), want, prefix);
  }
});

test('a GGUF carrying vision tensors loads its text decoder with a note; an mmproj GGUF is refused by name', () => {
  const src = readGguf(path.join(LLAMACPP_FIXTURES, 'tiny-seed1-q4_0.gguf'));
  const tensors = [...src.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, dtype: t.dtype, data: () => [readGgufTensor(src, t.name)] }));
  const zeros = (name: string, ne: number[]) => ({ name, ne, dtype: 'f32' as const, data: () => [new Uint8Array(ne.reduce((a, b) => a * b, 1) * 4)] });
  const file = path.join(tmp, 'with-vision.gguf');
  writeGguf(file, [...src.metadata], [...tensors, zeros('v.patch_embd.weight', [2, 2, 3, 8]), zeros('mm.input_projection.weight', [64, 8])]);
  const m = openWeights(file, { precision: 'q4' });
  assert.deepEqual(m.source.config, GEMMA3_TINY);
  assert.match(m.notes[0], /skipped 2 vision tensors \(v\.\*, mm\.\*\)/);
  const mmproj = path.join(tmp, 'mmproj.gguf');
  writeGguf(mmproj, [['general.architecture', { type: GgufType.STRING, value: 'clip' }]], [zeros('v.patch_embd.weight', [2, 2, 3, 8])]);
  assert.throws(() => openWeights(mmproj, { precision: 'q4' }), /vision projector \(mmproj\) file, not a language model/);
});

// PEFT adapter folders (write → read, the Hugging Face fixture's adapter, refusals), the run checkpoint,
// and the GGUF LoRA export read back with the engine's GGUF reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY, GEMMA3_270M } from '../../src/engine/model/config';
import { readSafetensorsHeader, readSafetensorsF32 } from '../../src/engine/model/safetensors';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { initLora, emptyLora, peftTensorNames, flatTensors, parameterCount, toRuntimeAdapter } from '../../src/engine/train/lora';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { writeGgufLora } from '../../src/engine/train/ggufLora';
import { saveCheckpoint, loadCheckpoint } from '../../src/engine/train/checkpoint';
import { AdamW } from '../../src/engine/train/adamw';
import { isTempName } from '../../src/common/atomicWrite';
import { tempDir } from './temp-helpers';
import { hfFixture } from './shared-dir';

const FX = hfFixture('tiny');
const root = tempDir('train-peft-');
const tmp = () => fs.mkdtempSync(path.join(root, 'run-'));

test('PEFT init: A ~ U(±1/√in) (kaiming_uniform a=√5), B = 0, seeded; r16 on all seven projections of the 270M is 3.8M parameters', () => {
  const p = initLora(GEMMA3_TINY, 4, 8, ['q', 'down'], 7);
  assert.equal(p.modules.length, 2 * GEMMA3_TINY.layers);
  for (const m of p.modules) {
    const bound = 1 / Math.sqrt(m.inFeatures);
    assert.ok(m.a.every((v) => Math.abs(v) <= bound) && m.a.some((v) => Math.abs(v) > bound / 2));
    assert.ok(m.b.every((v) => v === 0));
  }
  assert.deepEqual(initLora(GEMMA3_TINY, 4, 8, ['q', 'down'], 7).modules[3].a, p.modules[3].a);
  assert.notDeepEqual(initLora(GEMMA3_TINY, 4, 8, ['q', 'down'], 8).modules[3].a, p.modules[3].a);
  assert.equal(parameterCount(emptyLora(GEMMA3_270M, 16, 32, ['q', 'k', 'v', 'o', 'gate', 'up', 'down'])), 3_796_992);
});

test('a written adapter reads back identically, with PEFT names and config', () => {
  const dir = tmp();
  const p = initLora(GEMMA3_TINY, 4, 16, ['q', 'v', 'gate'], 1);
  p.modules.forEach((m, i) => m.b.fill(i / 10));
  writePeftAdapter(dir, p, { baseModel: { name: 'google/gemma-3-270m', revision: 'c'.repeat(40) } });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.task_type, 'CAUSAL_LM');
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 16);
  assert.equal(cfg.bias, 'none');
  assert.equal(cfg.base_model_name_or_path, 'google/gemma-3-270m');
  assert.equal(cfg.revision, 'c'.repeat(40));
  assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj', 'gate_proj']);
  const st = readSafetensorsHeader(path.join(dir, 'adapter_model.safetensors'));
  assert.deepEqual(st.entries.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape, [4, 64]);
  assert.deepEqual(st.entries.get('base_model.model.model.layers.5.mlp.gate_proj.lora_B.weight')?.shape, [128, 4]);
  const back = readPeftParams(dir, GEMMA3_TINY);
  assert.deepEqual(back.targets, p.targets);
  assert.equal(back.alpha, 16);
  flatTensors(back).forEach((t, i) => assert.deepEqual(t, flatTensors(p)[i]));
  assert.ok(!fs.readdirSync(dir).some(isTempName), 'no temp files left');
});

test('the PEFT fixture adapter (written by PeftModel.save_pretrained) loads with every tensor intact', () => {
  const p = readPeftParams(FX, GEMMA3_TINY);
  assert.equal(p.rank, 4);
  assert.equal(p.alpha, 8);
  assert.deepEqual(p.targets, ['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
  assert.equal(parameterCount(p), 24576);
  const st = readSafetensorsHeader(path.join(FX, 'adapter_model.safetensors'));
  for (const m of p.modules) {
    const n = peftTensorNames(m);
    assert.deepEqual(m.a, readSafetensorsF32(st, n.a));
    assert.deepEqual(m.b, readSafetensorsF32(st, n.b));
  }
  const rt = toRuntimeAdapter(p);
  assert.equal(rt.modules.get('model.layers.5.mlp.down_proj')?.a, p.modules[41].a);
});

test('adapters that cannot be Gemma 3 LoRA are refused with the file and the reason', () => {
  const dir = tmp();
  writePeftAdapter(dir, initLora(GEMMA3_TINY, 2, 4, ['q'], 1));
  assert.throws(() => readPeftParams(dir, { ...GEMMA3_TINY, hidden: 128 }), /lora_A\.weight has shape \[2,64\], expected \[2,128\]/);
  assert.throws(() => readPeftParams(dir, { ...GEMMA3_TINY, layers: 2, layerTypes: ['sliding', 'full'] }), /names layer 2 but the model has 2/);
  const cfgFile = path.join(dir, 'adapter_config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_dora: true }));
  assert.throws(() => readPeftParams(dir, GEMMA3_TINY), /adapter_config\.json: use_dora is not supported/);
  fs.writeFileSync(cfgFile, '{not json');
  assert.throws(() => readPeftParams(dir, GEMMA3_TINY), /adapter_config\.json/);
  assert.throws(() => readPeftParams(path.join(dir, 'nope'), GEMMA3_TINY), /adapter_config\.json: not found/);
});

test('GGUF LoRA export: adapter metadata, blk.N names, lora_a ne [in, R] and lora_b ne [R, out], data as PEFT A and B', () => {
  const dir = tmp();
  const p = initLora(GEMMA3_TINY, 4, 8, ['q', 'o', 'down'], 3);
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = i * 1e-3)));
  const file = path.join(dir, 'a.gguf');
  writeGgufLora(file, p);
  const g = readGguf(file);
  assert.equal(g.metadata.get('general.architecture')?.value, 'gemma3');
  assert.equal(g.metadata.get('general.type')?.value, 'adapter');
  assert.equal(g.metadata.get('adapter.type')?.value, 'lora');
  assert.equal(g.metadata.get('adapter.lora.alpha')?.value, 8);
  assert.equal(g.tensors.size, 2 * 3 * GEMMA3_TINY.layers);
  const a = g.tensors.get('blk.0.attn_q.weight.lora_a')!, b = g.tensors.get('blk.5.ffn_down.weight.lora_b')!;
  assert.deepEqual(a.ne, [64, 4]);
  assert.deepEqual(b.ne, [4, 64]);
  assert.deepEqual(g.tensors.get('blk.2.attn_output.weight.lora_b')!.ne, [4, 64]);
  const bytes = readGgufTensor(g, 'blk.5.ffn_down.weight.lora_b');
  assert.deepEqual(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), p.modules[17].b);
});

test('a checkpoint keeps parameters, AdamW moments and run state in one file', () => {
  const dir = tmp();
  const p = initLora(GEMMA3_TINY, 2, 4, ['k', 'up'], 5);
  const opt = new AdamW(flatTensors(p).map((t) => t.length));
  opt.update(flatTensors(p), flatTensors(p).map((t) => t.map((v) => v + 0.5)), 1e-3);
  const run = { step: 3, epoch: 1, batchInEpoch: 1, epochOrder: ['a', 'b'], rngState: 123, earlyStop: { bestLoss: 1.5, bestStep: 2, badEvals: 0 }, fingerprint: 'x', rank: 2, alpha: 4, dropout: 0, targets: p.targets };
  const file = path.join(dir, 'state.safetensors');
  saveCheckpoint(file, p, opt.state(), run);
  const back = loadCheckpoint(file, GEMMA3_TINY);
  assert.deepEqual(back.run, run);
  assert.equal(back.opt.step, 1);
  flatTensors(back.params).forEach((t, i) => assert.deepEqual(t, flatTensors(p)[i]));
  back.opt.slots.forEach((s, i) => { assert.deepEqual(s.m, opt.slots[i].m); assert.deepEqual(s.v, opt.slots[i].v); });
  assert.throws(() => loadCheckpoint(path.join(dir, 'none'), GEMMA3_TINY), /no checkpoint/);
});

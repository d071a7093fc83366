// LoRA at inference against PEFT: the fixture adapter on tiny must give lora_logits.safetensors; adapters
// are chosen per step on one base; malformed adapters are refused with a message.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { readSafetensorsHeader, readSafetensorsF32, readSafetensorsBytes } from '../../src/engine/model/safetensors';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { toRuntimeAdapter } from '../../src/engine/train/lora';
import { fixtureRuntime, readRef, maxAbsDiff } from './gemma-helpers';

test('PEFT adapter logits match the fixture; base and adapter switch per step', async () => {
  const { dir, weights, rt } = await fixtureRuntime('tiny');
  const adapter = toRuntimeAdapter(readPeftParams(dir, weights.config));
  rt.setAdapter('fixture', adapter);
  const st = readSafetensorsHeader(path.join(dir, 'lora_logits.safetensors'));
  const idsBytes = readSafetensorsBytes(st, 'input_ids');
  const ids = Array.from(new Int32Array(idsBytes.buffer, idsBytes.byteOffset, idsBytes.length / 4));
  const want = readSafetensorsF32(st, 'logits');

  const withLora = await rt.step(rt.newCache(), ids, { logits: 'all', adapter: 'fixture' });
  const d = maxAbsDiff(withLora, want);
  console.log(`tiny: adapter logits max|Δ| = ${d.toExponential(2)}`);
  assert.ok(d <= 1e-4, `adapter max|Δ| ${d}`);

  // The base model is untouched by registering an adapter: its logits still match HF without LoRA.
  const ref = readRef(dir);
  const T = ref.idsShape[1];
  const baseIds = Array.from(ref.ids.subarray(0, T));
  const base = await rt.step(rt.newCache(), baseIds, { logits: 'all' });
  assert.ok(maxAbsDiff(base, ref.logits.subarray(0, base.length)) <= 1e-4);
  // The adapter changes them (B ≠ 0 in the fixture), and cached decode with the adapter matches a full pass.
  const cache = rt.newCache();
  await rt.step(cache, ids.slice(0, 20), { logits: 'last', adapter: 'fixture' });
  let last: Float32Array = new Float32Array(0);
  for (const id of ids.slice(20)) last = await rt.step(cache, [id], { logits: 'last', adapter: 'fixture' });
  const V = weights.config.vocabSize;
  assert.ok(maxAbsDiff(last, want.subarray((ids.length - 1) * V)) <= 1e-4);

  rt.removeAdapter('fixture');
  await assert.rejects(rt.step(rt.newCache(), ids, { logits: 'last', adapter: 'fixture' }), /no adapter named/);
  await rt.dispose();
});

test('adapters with wrong shapes or modules are refused by name', async () => {
  const { dir, weights, rt } = await fixtureRuntime('tiny');
  const good = toRuntimeAdapter(readPeftParams(dir, weights.config));
  const [key, m] = [...good.modules][0];
  assert.throws(() => rt.setAdapter('x', { ...good, modules: new Map([[key, { a: m.a.subarray(1), b: m.b }]]) }), /A has/);
  assert.throws(() => rt.setAdapter('x', { ...good, modules: new Map([['model.layers.99.self_attn.q_proj', m]]) }), /not a projection/);
  assert.throws(() => rt.setAdapter('x', { ...good, rank: 0 }), /rank/);
  await rt.dispose();
});

// loadModel: write → read round trips for both formats and every dtype on the tiny config, Q4_0 bit-exactness,
// quantisation on load (HF only), the Q8_0 rules, sharded HF folders, and the HF fixture loading to its own data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { writeGguf } from '../../src/engine/model/ggufWriter';
import { loadModel, type LoadedModel } from '../../src/engine/model/load';
import {
  bf16ToF32, dequantizeQ4_0, dequantizeQ8_0, f16ToF32, f32ArrayToBf16, f32ArrayToF16, quantizeQ4_0, quantizeQ8_0,
} from '../../src/engine/model/quant';
import { randomTensor, writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { readSafetensorsF32, readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { writeSafetensorsStreaming } from '../../src/engine/model/safetensorsWriter';
import { EMBED_NAME, expectedShapes, isNormWeight } from '../../src/engine/model/weights';
import { hfFixture } from './shared-dir';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-load-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const SEED = 11;
const shapes = expectedShapes(GEMMA3_TINY);
const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
const f32Of = (m: LoadedModel, name: string) => {
  const v = m.weights.weights.get(name)!.value;
  assert.equal(v.type, 'f32', name);
  return v.data as Float32Array;
};
const bytesOf = (m: LoadedModel, name: string, type: 'q4_0' | 'q8_0') => {
  const v = m.weights.weights.get(name)!.value;
  assert.equal(v.type, type, name);
  return v.data as Uint8Array;
};
const roundF16 = (x: Float32Array) => Float32Array.from(f32ArrayToF16(x), f16ToF32);
const roundBf16 = (x: Float32Array) => Float32Array.from(f32ArrayToBf16(x), bf16ToF32);

/** What a stored tensor must load to with precision f32, given how it was stored. */
function expectedF32(name: string, stored: 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q8_0', normAsOnePlus: boolean): Float32Array {
  const n = count(shapes.get(name)!);
  const w = randomTensor(SEED, name, n);
  if (isNormWeight(name)) {
    // GGUF keeps norms f32 as 1+w; HF stores w in its dtype and the loader adds 1 in float32.
    if (normAsOnePlus) return w.map((x) => Math.fround(1 + x));
    const r = stored === 'f16' ? roundF16(w) : stored === 'bf16' ? roundBf16(w) : w;
    return r.map((x) => Math.fround(1 + x));
  }
  switch (stored) {
    case 'f32': return w;
    case 'f16': return roundF16(w);
    case 'bf16': return roundBf16(w);
    case 'q4_0': return dequantizeQ4_0(quantizeQ4_0(w), n);
    case 'q8_0': return dequantizeQ8_0(quantizeQ8_0(w), n);
  }
}

for (const dtype of ['f32', 'f16', 'bf16'] as const) {
  test(`GGUF ${dtype}: write → load f32 gives the written weights and config`, () => {
    const file = path.join(tmp, `tiny-${dtype}.gguf`);
    writeRandomGguf(file, GEMMA3_TINY, { seed: SEED, dtype });
    const m = loadModel(file, { precision: 'f32' });
    assert.equal(m.format, 'gguf');
    assert.deepEqual(m.weights.config, GEMMA3_TINY);
    for (const [name, shape] of shapes) {
      assert.deepEqual(m.weights.weights.get(name)!.shape, shape);
      assert.deepEqual(f32Of(m, name), expectedF32(name, dtype, true), name);
    }
    assert.equal(m.tokenizerSource?.kind, 'gguf');
  });

  test(`HF safetensors ${dtype}: write → load f32 gives the written weights, norms as 1+w`, () => {
    const dir = path.join(tmp, `tiny-hf-${dtype}`);
    writeRandomHf(dir, GEMMA3_TINY, { seed: SEED, dtype });
    const m = loadModel(dir, { precision: 'f32' });
    assert.equal(m.format, 'safetensors');
    assert.deepEqual(m.weights.config, GEMMA3_TINY);
    for (const name of shapes.keys()) assert.deepEqual(f32Of(m, name), expectedF32(name, dtype, false), name);
    assert.deepEqual(m.tokenizerSource, { kind: 'tokenizer.json', path: path.resolve(dir, 'tokenizer.json') });
    const st = readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    assert.equal(st.entries.has('lm_head.weight'), false);
    assert.equal(st.entries.get(EMBED_NAME)!.dtype, { f32: 'F32', f16: 'F16', bf16: 'BF16' }[dtype]);
  });
}

test('GGUF f32 and HF f32 of one seed load to identical weights', () => {
  const a = loadModel(path.join(tmp, 'tiny-f32.gguf'), { precision: 'f32' });
  const b = loadModel(path.join(tmp, 'tiny-hf-f32'), { precision: 'f32' });
  for (const name of shapes.keys()) assert.deepEqual(f32Of(a, name), f32Of(b, name), name);
});

test('GGUF q4_0: Q4_0 and Q8_0 tensors load bit-exactly as stored; f32 precision dequantises them', () => {
  const file = path.join(tmp, 'tiny-q4.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: SEED, dtype: 'q4_0' });
  const g = readGguf(file);
  const q = loadModel(file, { precision: 'q4' });
  assert.deepEqual(q.weights.config, GEMMA3_TINY);
  assert.deepEqual(bytesOf(q, EMBED_NAME, 'q8_0'), readGgufTensor(g, 'token_embd.weight'));
  assert.deepEqual(bytesOf(q, 'model.layers.2.mlp.down_proj.weight', 'q4_0'), readGgufTensor(g, 'blk.2.ffn_down.weight'));
  for (const name of shapes.keys()) {
    if (isNormWeight(name)) assert.deepEqual(f32Of(q, name), expectedF32(name, 'f32', true), name);
    else if (name !== EMBED_NAME) assert.deepEqual(bytesOf(q, name, 'q4_0'), quantizeQ4_0(randomTensor(SEED, name, count(shapes.get(name)!))), name);
  }
  const f = loadModel(file, { precision: 'f32' });
  for (const name of shapes.keys()) {
    const stored = isNormWeight(name) ? 'f32' : name === EMBED_NAME ? 'q8_0' : 'q4_0';
    assert.deepEqual(f32Of(f, name), expectedF32(name, stored, true), name);
  }
});

test('GGUF q4_0 with a Q4_0 embedding keeps it Q4_0', () => {
  const file = path.join(tmp, 'tiny-q4-q4emb.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: SEED, dtype: 'q4_0', embedding: 'q4_0' });
  const q = loadModel(file, { precision: 'q4' });
  assert.deepEqual(bytesOf(q, EMBED_NAME, 'q4_0'), quantizeQ4_0(randomTensor(SEED, EMBED_NAME, 512 * 64)));
});

test('q4 precision quantises an HF folder\'s float weights (embedding included) with the ggml reference rule', () => {
  const m = loadModel(path.join(tmp, 'tiny-hf-bf16'), { precision: 'q4' });
  for (const name of shapes.keys()) {
    if (isNormWeight(name)) {
      assert.equal(m.weights.weights.get(name)!.value.type, 'f32');
      continue;
    }
    const w = randomTensor(SEED, name, count(shapes.get(name)!));
    assert.deepEqual(bytesOf(m, name, 'q4_0'), quantizeQ4_0(roundBf16(w)), name);
  }
});

test('q4 precision keeps a GGUF\'s float tensors at their own precision (widened to float32, never 4-bit)', () => {
  const m = loadModel(path.join(tmp, 'tiny-f16.gguf'), { precision: 'q4' });
  for (const name of shapes.keys()) assert.deepEqual(f32Of(m, name), expectedF32(name, 'f16', true), name);
});

test('Q8_0 linear weights are kept as Q8_0 under q4 (never requantised to 4 bits)', () => {
  const file = path.join(tmp, 'tiny-q8.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: SEED, dtype: 'q8_0' });
  const g = readGguf(file);
  const name = 'model.layers.1.self_attn.o_proj.weight';
  const keep = loadModel(file, { precision: 'q4' });
  assert.deepEqual(bytesOf(keep, name, 'q8_0'), readGgufTensor(g, 'blk.1.attn_output.weight'));
  assert.deepEqual(bytesOf(keep, EMBED_NAME, 'q8_0'), readGgufTensor(g, 'token_embd.weight'));
});

test('a sharded HF folder (index + two shards) loads like the single file', () => {
  const single = path.join(tmp, 'tiny-hf-f32');
  const dir = path.join(tmp, 'tiny-hf-sharded');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(single, 'config.json'), path.join(dir, 'config.json'));
  const st = readSafetensorsHeader(path.join(single, 'model.safetensors'));
  const names = [...st.entries.keys()];
  const half = [names.slice(0, 40), names.slice(40)];
  const weightMap: Record<string, string> = {};
  half.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    for (const n of part) weightMap[n] = file;
    writeSafetensorsStreaming(path.join(dir, file), part.map((n) => {
      const data = readSafetensorsF32(st, n);
      return { name: n, dtype: 'F32' as const, shape: st.entries.get(n)!.shape, data: () => [new Uint8Array(data.buffer, data.byteOffset, data.byteLength)] };
    }));
  });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const a = loadModel(single, { precision: 'f32' });
  const b = loadModel(dir, { precision: 'f32' });
  for (const name of shapes.keys()) assert.deepEqual(f32Of(b, name), f32Of(a, name), name);
  assert.equal(b.tokenizerSource, null);
});

test('the HF fixture tiny loads as f32 and equals its safetensors data, norms as 1+w', () => {
  const dir = hfFixture('tiny');
  const m = loadModel(dir, { precision: 'f32' });
  assert.deepEqual(m.weights.config, GEMMA3_TINY);
  const st = readSafetensorsHeader(path.join(dir, 'model.safetensors'));
  for (const name of shapes.keys()) {
    const raw = readSafetensorsF32(st, name);
    assert.deepEqual(f32Of(m, name), isNormWeight(name) ? raw.map((x) => Math.fround(1 + x)) : raw, name);
  }
});

test('the mini-270m-shape fixture loads as f32, and q4 refuses its 40-wide rows with a clear reason', () => {
  const dir = hfFixture('mini-270m-shape');
  const m = loadModel(dir, { precision: 'f32' });
  assert.equal(m.weights.config.hidden, 40);
  assert.throws(() => loadModel(dir, { precision: 'q4' }), /rows of 40 values, not a multiple of 32.*precision f32/);
});

test('a fused blk.N.attn_qkv.weight (q, k, v rows stacked) loads as the three projections', () => {
  const src = readGguf(path.join(tmp, 'tiny-q4.gguf'));
  const tensors = [];
  for (const t of src.tensors.values()) {
    if (/^blk\.0\.attn_[kv]\.weight$/.test(t.name)) continue;
    const parts = t.name === 'blk.0.attn_q.weight' ? ['blk.0.attn_q.weight', 'blk.0.attn_k.weight', 'blk.0.attn_v.weight'] : [t.name];
    const rows = parts.reduce((a, p) => a + src.tensors.get(p)!.rows, 0);
    tensors.push({
      name: parts.length > 1 ? 'blk.0.attn_qkv.weight' : t.name,
      ne: t.ne.length === 1 ? t.ne : [t.ne[0], rows],
      dtype: t.dtype,
      data: () => parts.map((p) => readGgufTensor(src, p)),
    });
  }
  const file = path.join(tmp, 'tiny-fused.gguf');
  writeGguf(file, [...src.metadata], tensors);
  const fused = loadModel(file, { precision: 'q4' });
  const plain = loadModel(path.join(tmp, 'tiny-q4.gguf'), { precision: 'q4' });
  for (const p of ['q_proj', 'k_proj', 'v_proj']) {
    const name = `model.layers.0.self_attn.${p}.weight`;
    assert.deepEqual(fused.weights.weights.get(name), plain.weights.weights.get(name), name);
  }
});

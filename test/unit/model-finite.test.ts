// Only finite numbers: a model file holding NaN or ±Infinity is refused at load, naming the file, the
// tensor and where in it (f32 norm values, Q4_0 and Q8_0 block scales, f16 and bf16 values), through both
// loaders and both precisions; and a model whose finite weights still overflow (a norm multiplier of 3e38)
// makes classify and generate fail with "the model produced non-finite values" instead of answering
// (classify printed a label with p=0.83, generate said "every logit is masked").

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { findNonFinite, NON_FINITE_OUTPUT } from '../../src/engine/model/finite';
import { loadModel, openWeights } from '../../src/engine/model/load';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { rowCount } from '../../src/engine/model/weightSource';
import { classify } from '../../src/engine/generate/labelScoring';
import { extract } from '../../src/engine/generate/constrained';
import { generate } from '../../src/engine/generate/generator';
import { openModel, type OpenModel } from '../../src/engine/generate/openModel';
import { copyModel, f32Bytes, patchTensorBytes } from './damage-helpers';
import { tempDir } from './temp-helpers';

const ROOT = path.join(__dirname, '../..');
const tmp = tempDir('model-finite-');
const NAN_F16 = [0x00, 0x7e], INF_F16 = [0x00, 0x7c], NEG_INF_F16 = [0x00, 0xfc], NAN_BF16 = [0xc0, 0x7f];

/** A model written by the project's writer, then damaged by `damage(file)`. */
function damaged(name: string, write: (f: string) => void, damage: (f: string) => void, weights = name): string {
  const f = path.join(tmp, name);
  write(f);
  damage(weights === name ? f : path.join(f, weights));
  return f;
}

/** Loading `model` is refused by both loaders in both precisions, naming the file and matching `re`. */
function refusedEverywhere(model: string, file: string, re: RegExp): void {
  for (const precision of ['q4', 'f32'] as const) {
    for (const load of [() => loadModel(model, { precision }), () => readAll(model, precision)]) {
      assert.throws(load, (e: Error) => {
        assert.equal(e.name, 'NonFiniteError', e.message);
        assert.ok(e.message.startsWith(`${file}: `), `names the file: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
    }
  }
}

/** Reads every weight through openWeights, as the runtime streams them. */
function readAll(model: string, precision: 'q4' | 'f32'): void {
  const { source } = openWeights(model, { precision });
  for (const name of ['model.embed_tokens.weight', 'model.norm.weight', ...Array.from({ length: GEMMA3_TINY.layers }, (_, i) => `model.layers.${i}`)]) {
    const names = name.startsWith('model.layers.')
      ? ['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_norm', 'self_attn.k_norm', 'self_attn.o_proj',
          'post_attention_layernorm', 'pre_feedforward_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'post_feedforward_layernorm'].map((p) => `${name}.${p}.weight`)
      : [name];
    for (const n of names) source.rows(n, 0, rowCount(source.shape(n)));
  }
}

test('a NaN norm weight in an f32 GGUF is refused naming the file, tensor and value', () => {
  const f = damaged('nan-norm.gguf', (f) => writeRandomGguf(f, GEMMA3_TINY, { seed: 1, dtype: 'f32' }), (f) => patchTensorBytes(f, 'blk.2.ffn_norm.weight', 4 * 3, f32Bytes(NaN)));
  refusedEverywhere(f, f, /tensor blk\.2\.ffn_norm\.weight holds NaN at value 3: the file is damaged/);
});

test('a non-finite Q4_0 or Q8_0 block scale is refused naming the block', () => {
  const q4 = damaged('inf-scale.gguf', (f) => writeRandomGguf(f, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' }), (f) => patchTensorBytes(f, 'blk.1.ffn_down.weight', 18 * 2, INF_F16));
  refusedEverywhere(q4, q4, /tensor blk\.1\.ffn_down\.weight holds Infinity at the scale of block 2/);
  const q8 = damaged('nan-embed.gguf', (f) => writeRandomGguf(f, GEMMA3_TINY, { seed: 1, dtype: 'q4_0', embedding: 'q8_0' }), (f) => patchTensorBytes(f, 'token_embd.weight', 34 * 100, NAN_F16));
  refusedEverywhere(q8, q8, /tensor token_embd\.weight holds NaN at the scale of block 100/);
});

test('f16 and bf16 safetensors holding -Infinity or NaN are refused naming the file and tensor', () => {
  const f16 = damaged('hf-f16', (d) => writeRandomHf(d, GEMMA3_TINY, { seed: 1, dtype: 'f16' }), (f) => patchTensorBytes(f, 'model.layers.0.mlp.up_proj.weight', 2 * 5, NEG_INF_F16), 'model.safetensors');
  refusedEverywhere(f16, path.join(f16, 'model.safetensors'), /tensor model\.layers\.0\.mlp\.up_proj\.weight holds -Infinity at value 5/);
  // HF stores a norm as w and the engine adds 1: the raw value is checked, before the addition.
  const bf16 = damaged('hf-bf16', (d) => writeRandomHf(d, GEMMA3_TINY, { seed: 1, dtype: 'bf16' }), (f) => patchTensorBytes(f, 'model.norm.weight', 2 * 63, NAN_BF16), 'model.safetensors');
  refusedEverywhere(bf16, path.join(bf16, 'model.safetensors'), /tensor model\.norm\.weight holds NaN at value 63/);
});

test('the scan finds a NaN or infinity at every position of a chunk, and passes the largest finite values', () => {
  const cases: [dtype: 'f16' | 'bf16' | 'f32', bytes: number[], max: number[]][] = [
    ['f16', NAN_F16, [0xff, 0x7b]], ['bf16', NAN_BF16, [0x7f, 0x7f]], ['f32', f32Bytes(-Infinity), f32Bytes(-3.4e38)],
  ];
  for (const [dtype, bad, max] of cases) {
    const size = bad.length;
    for (const n of [1, 2, 7, 64]) {
      for (let at = 0; at < n; at++) {
        const b = new Uint8Array(n * size);
        for (let i = 0; i < n; i++) b.set(max, i * size);
        assert.equal(findNonFinite(dtype, b, n), null, `${dtype}: the largest finite value passes`);
        b.set(bad, at * size);
        assert.equal(findNonFinite(dtype, b, n)?.index, at, `${dtype} n=${n} at=${at}`);
      }
    }
  }
});

test('every block type is checked by its f16 scales and mins (ggml-common.h offsets), codes never', () => {
  const types: [dtype: string, block: number, bytes: number, halves: number[]][] = [
    ['q4_0', 32, 18, [0]], ['q4_1', 32, 20, [0, 2]], ['q5_0', 32, 22, [0]], ['q5_1', 32, 24, [0, 2]], ['q8_0', 32, 34, [0]],
    ['q2_k', 256, 84, [80, 82]], ['q3_k', 256, 110, [108]], ['q4_k', 256, 144, [0, 2]], ['q5_k', 256, 176, [0, 2]], ['q6_k', 256, 210, [208]],
    ['iq4_nl', 32, 18, [0]], ['iq4_xs', 256, 136, [0]],
  ];
  for (const [dtype, block, bytes, halves] of types) {
    const blocks = 5;
    const b = new Uint8Array(blocks * bytes).fill(0xff); // every code byte all ones: not a scale, so not checked
    for (let k = 0; k < blocks; k++) for (const h of halves) b.set([0x00, 0x3c], k * bytes + h); // 1.0
    assert.equal(findNonFinite(dtype as never, b, blocks * block), null, `${dtype}: finite scales pass whatever the codes`);
    for (const h of halves) {
      const bad = b.slice();
      bad.set(INF_F16, 3 * bytes + h);
      assert.deepEqual(findNonFinite(dtype as never, bad, blocks * block), { index: 3, what: 'block scale', kind: 'Infinity' }, `${dtype} half at ${h}`);
    }
  }
  assert.throws(() => findNonFinite('q9_9' as never, new Uint8Array(64), 32), /no finite check is defined for tensor type q9_9/);
});

test('a finite weight too large for 4-bit blocks is refused for q4 with a reason, and loads in f32', () => {
  const dir = damaged('hf-huge', (d) => writeRandomHf(d, GEMMA3_TINY, { seed: 1, dtype: 'f32' }), (f) => patchTensorBytes(f, 'model.layers.3.self_attn.o_proj.weight', 0, f32Bytes(1e30)), 'model.safetensors');
  assert.throws(() => loadModel(dir, { precision: 'q4' }), /tensor model\.layers\.3\.self_attn\.o_proj\.weight has weights too large for 4-bit blocks .*load it with precision f32/);
  assert.doesNotThrow(() => loadModel(dir, { precision: 'f32' }));
});

// A final norm multiplier of 3e38 is finite and loads, but every logit overflows. With a Q4_0 embedding the
// native head estimates the vocabulary first (nativeHead.ts's choose): the overflow must show there too,
// whether the head's input itself overflows (3e38) or only the logits do (1e37: the estimates' error bound
// stays finite, so the estimates run and overflow).
function overflowingModel(embedding: 'q8_0' | 'q4_0', norm: number): string {
  const file = path.join(tmp, `overflow-${embedding}-${norm}.gguf`);
  writeRandomGguf(file, GEMMA3_TINY, { seed: 4, dtype: 'q4_0', embedding });
  for (let i = 0; i < GEMMA3_TINY.hidden; i++) patchTensorBytes(file, 'output_norm.weight', 4 * i, f32Bytes(norm));
  return file;
}
const overflowing = overflowingModel('q8_0', 3e38);
let m: OpenModel;
let q4: OpenModel[];
before(async () => {
  m = await openModel(overflowing, { precision: 'q4', threads: 1 });
  q4 = [await openModel(overflowingModel('q4_0', 3e38), { precision: 'q4', threads: 2 }), await openModel(overflowingModel('q4_0', 1e37), { precision: 'q4', threads: 2 })];
});
after(async () => {
  for (const model of [m, ...q4]) await model.runtime.dispose();
});
const nonFinite = (e: Error) => e.message.startsWith(NON_FINITE_OUTPUT);

test('classify on a model whose output overflows fails with "the model produced non-finite values"', async () => {
  await assert.rejects(classify(m.runtime, m.gen, { promptIds: [2, 105, 300, 106], labels: ['a', 'b'], labelIds: [[300], [301]] }), nonFinite);
});

test('generate (greedy, sampled, constrained) on a model whose output overflows fails the same way, with either embedding', async () => {
  for (const model of [m, ...q4]) {
    assert.equal(model.runtime.decodeBy.note, 'layers native, head native');
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 0.7, topK: 5, topP: 0.9, seed: 1 }]) {
      await assert.rejects(generate(model.runtime, model.gen, { promptIds: [2, 105, 300], maxTokens: 4, sampling }), nonFinite);
    }
    await assert.rejects(extract(model.runtime, model.gen!, { promptIds: [2, 105, 300], shape: { fields: [{ name: 'name' }] }, maxTokens: 16, sampling: { temperature: 0 } }), nonFinite);
  }
});

test('gemma-tune classify exits 1 with the reason instead of printing a label', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'classify', '--model', overflowing, '--labels', 'yes,no', '--text', 'hi', '--threads', '1'],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^gemma-tune classify: the model produced non-finite values/);
});

test('a copy of an undamaged model still loads (the scan refuses nothing finite)', () => {
  const dir = copyModel(path.join(tmp, 'hf-huge'), path.join(tmp, 'hf-ok'));
  writeRandomHf(dir, GEMMA3_TINY, { seed: 1, dtype: 'bf16' });
  assert.doesNotThrow(() => loadModel(dir, { precision: 'q4' }));
  assert.ok(fs.existsSync(path.join(dir, 'model.safetensors')));
});

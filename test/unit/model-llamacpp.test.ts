// GGUF files written by llama.cpp's llama-quantize (test/fixtures/llama-cpp, see its README) from this
// project's seed-1 tiny f32 GGUF: the reader takes llama.cpp's own output, and every Q4_0 / Q8_0 tensor
// equals, byte for byte, this project's ggml-reference quantisation of the same seeded weights.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { readGguf, readGgufTensor } from '../../src/engine/model/gguf';
import { ggufToHfName } from '../../src/engine/model/ggufGemma';
import { loadModel } from '../../src/engine/model/load';
import { quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/model/quant';
import { randomTensor } from '../../src/engine/model/randomModel';

const dir = path.resolve(__dirname, '../fixtures/llama-cpp');

for (const [file, embedType] of [['tiny-seed1-q4_0-pure.gguf', 'q4_0'], ['tiny-seed1-q4_0.gguf', 'q8_0']] as const) {
  test(`${file}: llama-quantize's blocks equal our ggml-reference quantisation`, () => {
    const g = readGguf(path.join(dir, file));
    assert.equal(g.tensors.get('token_embd.weight')!.dtype, embedType);
    let quantised = 0;
    for (const t of g.tensors.values()) {
      const hf = ggufToHfName(t.name)!;
      const n = t.ne.reduce((a, b) => a * b, 1);
      if (t.dtype === 'f32') continue; // norms stay f32
      const w = randomTensor(1, hf, n);
      const want = t.dtype === 'q4_0' ? quantizeQ4_0(w) : quantizeQ8_0(w);
      assert.ok(Buffer.from(readGgufTensor(g, t.name)).equals(Buffer.from(want)), t.name);
      quantised++;
    }
    assert.equal(quantised, 1 + 7 * GEMMA3_TINY.layers);
    const m = loadModel(path.join(dir, file), { precision: 'q4' });
    assert.deepEqual(m.weights.config, GEMMA3_TINY);
    assert.equal(m.weights.weights.get('model.embed_tokens.weight')!.value.type, embedType);
  });
}

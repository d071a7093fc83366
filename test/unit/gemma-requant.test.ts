// The one-pass Q8_0 → Q4_0 requantiser behind the default 4-bit LM head must write exactly the bytes of
// the reference chain (dequantise Q8_0, quantise Q4_0 as ggml does, reorder for MatMulNBits).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { dequantizeQ8_0, q4_0ToMatMulNBits, q8_0ToQ4MatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/model/quant';

test('q8_0ToQ4MatMulNBits equals dequantise → quantizeQ4_0 → q4_0ToMatMulNBits', () => {
  const n = 64;
  const k = 96;
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const x = Float32Array.from({ length: n * k }, (_, i) => (i % 97 === 0 ? 0 : rnd() * (1 + (i % 7))));
  x.fill(0, 0, 32); // an all-zero block (scale 0)
  x.fill(-0.5, 32, 64); // a constant negative block
  const q8 = quantizeQ8_0(x);
  const want = q4_0ToMatMulNBits(quantizeQ4_0(dequantizeQ8_0(q8, n * k)), n, k);
  const got = q8_0ToQ4MatMulNBits(q8, n, k);
  assert.deepEqual(got.data, want.data);
  assert.deepEqual(got.scales, want.scales);
  assert.equal(got.zeroPoint, 8);
  assert.throws(() => q8_0ToQ4MatMulNBits(q8.subarray(1), n, k), /bytes for/);
});

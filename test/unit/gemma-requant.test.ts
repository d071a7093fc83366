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

test('q8_0ToQ4MatMulNBits on raw Q8_0 blocks: ties between +a and −a keep the first, as ggml does', () => {
  const n = 16;
  const k = 64;
  const blocks = (n * k) / 32;
  const q8 = new Uint8Array(blocks * 34);
  let s = 99;
  const byte = () => (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  for (let b = 0; b < blocks; b++) {
    const o = b * 34;
    q8[o] = 0x00;
    q8[o + 1] = b % 4 === 3 ? 0xac : 0x2c; // d8 = 1/16, or −1/16 (a negative scale, which ggml never writes)
    for (let j = 2; j < 34; j++) q8[o + j] = byte();
    // Blocks 1 and 2 of every 4: |q| < 100 except −100 and +100, in either order.
    if (b % 4 === 1 || b % 4 === 2) {
      for (let j = 2; j < 34; j++) q8[o + j] = byte() % 100;
      q8[o + 4] = b % 4 === 1 ? 0x9c : 0x64;
      q8[o + 20] = b % 4 === 1 ? 0x64 : 0x9c;
    }
  }
  const want = q4_0ToMatMulNBits(quantizeQ4_0(dequantizeQ8_0(q8, n * k)), n, k);
  const got = q8_0ToQ4MatMulNBits(q8, n, k);
  assert.deepEqual(got.data, want.data);
  assert.deepEqual(got.scales, want.scales);
  // The tie's sign decides the scale's sign: +100 first gives d < 0 (d = max / −8), −100 first d > 0.
  assert.ok(got.scales[1] > 0 && got.scales[2] < 0, `scales ${got.scales[1]}, ${got.scales[2]}`);
});

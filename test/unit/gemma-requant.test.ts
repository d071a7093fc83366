// The one-pass Q8_0 → Q4_0 requantiser behind the default 4-bit LM head must write exactly the bytes of
// the reference chain (dequantise Q8_0, quantise Q4_0 as ggml does, reorder for MatMulNBits), and embedding
// rows read from the stored Q8_0 blocks (what the runtime reads when the head is requantised) must be exact.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { dequantizeQ8_0, q4_0ToMatMulNBits, q8_0ToMatMulNBits, q8_0ToQ4MatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/model/quant';
import { Graph } from '../../src/engine/onnx/graph';
import { EmbeddingReader } from '../../src/engine/gemma/embeddingReader';

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

test('EmbeddingReader gives the same rows from stored Q8_0 blocks as from the 8-bit MatMulNBits table', () => {
  const V = 10;
  const C = 64;
  const x = Float32Array.from({ length: V * C }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 5)));
  const q8 = quantizeQ8_0(x);
  const g = new Graph('t');
  const stored = g.blob(q8.length);
  stored.write(q8);
  const nb = q8_0ToMatMulNBits(q8, V, C);
  const data = g.blob(nb.data.length);
  data.write(nb.data);
  const scales = g.blob(nb.scales.byteLength);
  scales.write(new Uint8Array(nb.scales.buffer));
  const fromStored = new EmbeddingReader({ kind: 'q8_0', columns: C, data: stored }, null);
  const fromNbits = new EmbeddingReader({ kind: 'nbits', bits: 8, columns: C, data, scales }, null);
  const ids = [3, 0, 9, 3];
  const want = Float32Array.from(ids.flatMap((id) => Array.from(dequantizeQ8_0(q8, V * C).subarray(id * C, (id + 1) * C))));
  assert.deepEqual(fromStored.rows(ids), want);
  assert.deepEqual(fromNbits.rows(ids), want);
});

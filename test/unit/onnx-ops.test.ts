// Each op helper of onnx/ops.ts run by onnxruntime against a plain-JS reference of what it must compute,
// and the shapes the builder records against the shapes onnxruntime returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/engine/onnx/graph';
import type { Dim, Value } from '../../src/engine/onnx/nodes';
import * as op from '../../src/engine/onnx/ops';
import { createSession, f32Tensor, i64Tensor, ort } from '../../src/engine/onnx/session';
import { dequantizeBlockQuantized, q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/model/quant';
import { Rng } from '../../src/engine/rng';

const rng = new Rng(7);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);

/** Runs a one-output graph over float inputs and returns the output and its dims. */
async function run1(inputs: Record<string, [Dim[], Float32Array, number[]?]>, build: (g: Graph, x: Record<string, Value>) => Value,
  extra: Record<string, ort.Tensor> = {}, extraDecl: Record<string, [Dim[], 'int64']> = {}) {
  const g = new Graph('t');
  const x: Record<string, Value> = {};
  for (const [n, [dims]] of Object.entries(inputs)) x[n] = g.input(n, 'float32', dims);
  for (const [n, [dims, dt]] of Object.entries(extraDecl)) x[n] = g.input(n, dt, dims);
  const y = build(g, x);
  g.output(y, 'y_out');
  const s = await createSession(g.build(), { threads: 1 });
  const feeds: Record<string, ort.Tensor> = { ...extra };
  for (const [n, [dims, data, actual]] of Object.entries(inputs)) feeds[n] = f32Tensor(data, actual ?? (dims as number[]));
  const r = (await s.run(feeds)).y_out;
  await s.release();
  return { data: r.data as Float32Array, dims: [...r.dims], shape: y.shape };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  assert.ok(m <= tol, `${what}: max|Δ| ${m} > ${tol}`);
}

function jsMatmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number, transB = false): Float32Array {
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[i * K + k] * (transB ? b[j * K + k] : b[k * N + j]);
    out[i * N + j] = s;
  }
  return out;
}

test('elementwise ops broadcast and compute as numpy does', async () => {
  const a = rand(6), b = rand(3);
  for (const [name, f, js] of [
    ['add', op.add, (x: number, y: number) => x + y], ['sub', op.sub, (x: number, y: number) => x - y],
    ['mul', op.mul, (x: number, y: number) => x * y], ['div', op.div, (x: number, y: number) => x / y],
  ] as const) {
    const r = await run1({ a: [[2, 3], a], b: [[3], b] }, (g, x) => f(g, x.a, x.b));
    assert.deepEqual(r.dims, [2, 3]);
    assert.deepEqual(r.shape, [2, 3]);
    close(r.data, Array.from(a, (v, i) => Math.fround(js(v, b[i % 3]))), 1e-6 * Math.max(1, ...Array.from(r.data, Math.abs)), name);
  }
  const t = await run1({ a: [[6], a] }, (g, x) => op.tanh(g, x.a));
  close(t.data, Array.from(a, Math.tanh), 1e-6, 'tanh');
});

test('rmsNorm is x / sqrt(mean(x²) + eps) · scale over the last axis', async () => {
  const x = rand(2 * 8), w = rand(8, 0.1).map((v) => 1 + v);
  const r = await run1({ x: [[2, 8], x], w: [[8], w] }, (g, v) => op.rmsNorm(g, v.x, v.w, 1e-6));
  const want = new Float32Array(16);
  for (let i = 0; i < 2; i++) {
    let ms = 0;
    for (let j = 0; j < 8; j++) ms += x[i * 8 + j] ** 2;
    const inv = 1 / Math.sqrt(ms / 8 + 1e-6);
    for (let j = 0; j < 8; j++) want[i * 8 + j] = x[i * 8 + j] * inv * w[j];
  }
  close(r.data, want, 1e-5, 'rmsNorm');
});

test('geluTanh and softmax match their formulas', async () => {
  const x = rand(12, 2);
  const gel = await run1({ x: [[12], x] }, (g, v) => op.geluTanh(g, v.x));
  close(gel.data, Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), 1e-5, 'gelu');
  const sm = await run1({ x: [[3, 4], x] }, (g, v) => op.softmax(g, v.x, -1));
  const want = new Float32Array(12);
  for (let i = 0; i < 3; i++) {
    const row = Array.from(x.subarray(i * 4, i * 4 + 4));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((p, q) => p + q, 0);
    e.forEach((v, j) => (want[i * 4 + j] = v / s));
  }
  close(sm.data, want, 1e-6, 'softmax');
});

test('matmul, fusedMatMul (transB, alpha) and gemm with C', async () => {
  const a = rand(2 * 3 * 4), b = rand(4 * 5), bt = rand(5 * 4), c = rand(3 * 5);
  const mm = await run1({ a: [[2, 3, 4], a], b: [[4, 5], b] }, (g, x) => op.matmul(g, x.a, x.b));
  assert.deepEqual(mm.dims, [2, 3, 5]);
  assert.deepEqual(mm.shape, [2, 3, 5]);
  close(mm.data, jsMatmul(a, b, 6, 4, 5), 1e-5, 'matmul');
  const fm = await run1({ a: [[2, 3, 4], a], b: [[5, 4], bt] }, (g, x) => op.fusedMatMul(g, x.a, x.b, { transB: true, alpha: 0.5 }));
  close(fm.data, jsMatmul(a, bt, 6, 4, 5, true).map((v) => v * 0.5), 1e-5, 'fusedMatMul');
  const ge = await run1({ a: [[3, 4], a.subarray(0, 12)], b: [[5, 4], bt], c: [[3, 5], c] }, (g, x) => op.gemm(g, x.a, x.b, x.c, { transB: true }));
  close(ge.data, jsMatmul(a.subarray(0, 12), bt, 3, 4, 5, true).map((v, i) => v + c[i]), 1e-5, 'gemm');
  // An empty inner dimension (the runtime's "no adapter": rank 0) gives exact zeros.
  const z = await run1({ a: [[3, 0], new Float32Array(0)], b: [[5, 0], new Float32Array(0)] }, (g, x) => op.fusedMatMul(g, x.a, x.b, { transB: true }));
  assert.deepEqual(z.dims, [3, 5]);
  assert.ok(z.data.every((v) => v === 0));
});

for (const bits of [4, 8] as const) {
  test(`matMulNBits and gatherBlockQuantized (${bits}-bit) compute with exactly the dequantised weights`, async () => {
    const N = 48, K = 64;
    const w = rand(N * K, 0.05);
    const bq = bits === 4 ? q4_0ToMatMulNBits(quantizeQ4_0(w), N, K) : q8_0ToMatMulNBits(quantizeQ8_0(w), N, K);
    const deq = dequantizeBlockQuantized(bq, N, K, bits);
    const x = rand(3 * K);
    const g = new Graph('q');
    const xi = g.input('x', 'float32', [3, K]);
    const ids = g.input('ids', 'int64', [2]);
    const per = (32 * bits) / 8;
    const b = g.initializer('b', 'uint8', [N, K / 32, per], bq.data);
    const s2 = g.initializer('s', 'float32', [N, K / 32], bq.scales);
    const s3 = g.initializer('s3', 'float32', [N, K / 32, 1], bq.scales);
    const y = op.matMulNBits(g, xi, b, s2, { K, N, bits, blockSize: 32, accuracyLevel: 0 });
    const e = op.gatherBlockQuantized(g, b, ids, s3, { bits, blockSize: 32, quantizeAxis: 2, columns: K });
    g.output(y, 'y');
    g.output(e, 'e');
    const s = await createSession(g.build(), { threads: 1 });
    const r = await s.run({ x: f32Tensor(x, [3, K]), ids: i64Tensor([5, 40], [2]) });
    await s.release();
    assert.deepEqual([...r.e.dims], e.shape);
    close(r.y.data as Float32Array, jsMatmul(x, deq, 3, K, N, true), 1e-4, 'matMulNBits');
    const rows = new Float32Array(2 * K);
    rows.set(deq.subarray(5 * K, 6 * K), 0);
    rows.set(deq.subarray(40 * K, 41 * K), K);
    close(r.e.data as Float32Array, rows, 0, 'gatherBlockQuantized'); // exact: a lookup, no arithmetic but d·(q−z)
  });
}

test('rotaryEmbedding equals the NeoX rotation (x1·c − x2·s, x2·c + x1·s)', async () => {
  const H = 2, T = 3, D = 8;
  const x = rand(H * T * D), cos = rand(T * D / 2), sin = rand(T * D / 2);
  const r = await run1({ x: [[1, H, T, D], x], cos: [[T, D / 2], cos], sin: [[T, D / 2], sin] },
    (g, v) => op.rotaryEmbedding(g, v.x, v.pos, v.cos, v.sin), { pos: i64Tensor([0, 1, 2], [1, T]) }, { pos: [[1, T], 'int64'] });
  const want = new Float32Array(x.length);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let i = 0; i < D / 2; i++) {
    const o = (h * T + t) * D, c = cos[t * D / 2 + i], s = sin[t * D / 2 + i];
    want[o + i] = x[o + i] * c - x[o + i + D / 2] * s;
    want[o + i + D / 2] = x[o + i + D / 2] * c + x[o + i] * s;
  }
  close(r.data, want, 1e-5, 'rotary');
});

test('reshape/transpose/concat/split/slice/gather move data as numpy does and record shapes', async () => {
  const x = rand(2 * 3 * 4);
  const tr = await run1({ x: [[2, 3, 4], x] }, (g, v) => op.transpose(g, v.x, [2, 0, 1]));
  assert.deepEqual(tr.dims, [4, 2, 3]);
  assert.deepEqual(tr.shape, [4, 2, 3]);
  close(tr.data, Array.from({ length: 24 }, (_, i) => { const k = Math.floor(i / 6), a = Math.floor(i / 3) % 2, b = i % 3; return x[a * 12 + b * 4 + k]; }), 0, 'transpose');
  const rs = await run1({ x: [[2, 'T', 4], x, [2, 3, 4]] }, (g, v) => op.reshape(g, v.x, [2, 'T', 2, 2]));
  assert.deepEqual(rs.dims, [2, 3, 2, 2]);
  const cc = await run1({ x: [[2, 3, 4], x] }, (g, v) => op.concat(g, [v.x, v.x], 1));
  assert.deepEqual(cc.dims, [2, 6, 4]);
  assert.deepEqual(cc.shape, [2, 6, 4]);
  const sp = await run1({ x: [[2, 3, 4], x] }, (g, v) => op.split(g, v.x, -1, [1, 3])[1]);
  assert.deepEqual(sp.dims, [2, 3, 3]);
  close(sp.data, Array.from({ length: 18 }, (_, i) => x[Math.floor(i / 3) * 4 + 1 + (i % 3)]), 0, 'split');
  const sl = await run1({ x: [[2, 3, 4], x] }, (g, v) => op.slice(g, v.x, [1], [3], [1]));
  assert.deepEqual(sl.dims, [2, 2, 4]);
  const ga = await run1({ x: [[6, 4], x] }, (g, v) => op.gather(g, v.x, v.idx, 0), { idx: i64Tensor([4, 0], [2]) }, { idx: [[2], 'int64'] });
  assert.deepEqual(ga.shape, [2, 4]);
  close(ga.data, [...x.subarray(16, 20), ...x.subarray(0, 4)], 0, 'gather');
  const rm = await run1({ x: [[6, 4], x] }, (g, v) => op.reduceMean(g, v.x, [-1]));
  close(rm.data, Array.from({ length: 6 }, (_, i) => (x[i * 4] + x[i * 4 + 1] + x[i * 4 + 2] + x[i * 4 + 3]) / 4), 1e-6, 'reduceMean');
});

test('broadcastShapes follows numpy rules with symbolic dims and rejects mismatches', () => {
  assert.deepEqual(op.broadcastShapes([1, 1, 'T', 'S'], ['B', 4, 'T', 'S']), ['B', 4, 'T', 'S']);
  assert.deepEqual(op.broadcastShapes([3], [2, 1]), [2, 3]);
  assert.throws(() => op.broadcastShapes([3], [4]), /cannot broadcast/);
});

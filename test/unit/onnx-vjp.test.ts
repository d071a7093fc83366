// Every vector-Jacobian product in onnx/vjp.ts against central finite differences of the same ONNX
// forward run by onnxruntime (float32, so h = 1e-2 and a tolerance of 1% of the gradient's scale: a
// wrong formula is off by O(1)). Also the two hand-written backwards (MatMulNBits through dequantised
// 4- and 8-bit weights, onnx/nbitsVjp.ts; the LM head fused with the cross-entropy, gemma/lmHead.ts) and
// the whole decoder layer with LoRA, composed, the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/engine/onnx/graph';
import { attr, type Value } from '../../src/engine/onnx/nodes';
import * as op from '../../src/engine/onnx/ops';
import { gradients } from '../../src/engine/onnx/autodiff';
import { createSession, f32Tensor } from '../../src/engine/onnx/session';
import { Rng } from '../../src/engine/rng';
import { decoderLayer } from '../../src/engine/gemma/layer';
import { crossEntropy, crossEntropyBackward, headCrossEntropyBackward } from '../../src/engine/gemma/lmHead';
import { q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/model/quant';
import { EMBED_NAME, type ModelWeights } from '../../src/engine/model/weights';
import { GraphParams } from '../../src/engine/gemma/params';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { inverseFrequencies, ropeTables } from '../../src/engine/gemma/rope';
import { trainMask } from '../../src/engine/train/ortEngine';
import { randomF32Weights } from './train-helpers';

interface Case {
  /** Graph inputs (name, shape) differentiated, plus frozen ones given as data. */
  wrt: Array<[string, number[]]>;
  frozen?: Array<[string, number[], Float32Array]>;
  build: (g: Graph, x: Record<string, Value>) => Value;
  /** Scale of random inputs (default 1). */
  scale?: number;
  /** The gradients of Σ y·r to check, when not autodiff's: built from the forward's values and r. */
  grads?: (g: Graph, x: Record<string, Value>, y: Value, r: Value) => Value[];
}

function rand(n: number, rng: Rng, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

async function checkVjp(name: string, c: Case, seed = 1): Promise<void> {
  const rng = new Rng(seed);
  const g = new Graph(name);
  const ins: Record<string, Value> = {};
  for (const [n, s] of c.wrt) ins[n] = g.input(n, 'float32', s);
  for (const [n, s] of c.frozen ?? []) ins[n] = g.input(n, 'float32', s);
  const y = c.build(g, ins);
  const ySize = (y.shape as number[]).reduce((a, b) => a * b, 1);
  if (y.shape!.some((d) => typeof d !== 'number')) throw new Error(`${name}: the output shape must be numeric`);
  const r = g.input('r', 'float32', y.shape as number[]); // loss = Σ y·r, so dloss/dy = r
  const loss = g.node('ReduceSum', [op.mul(g, y, r)], [{ dtype: 'float32', shape: [] }], { keepdims: attr.int(0) })[0];
  g.output(loss, 'loss');
  const grads = c.grads ? c.grads(g, ins, y, r) : gradients(g, [[y, r]], c.wrt.map(([n]) => ins[n]));
  grads.forEach((d, i) => g.output(d, `d_${c.wrt[i][0]}`));
  const sess = await createSession(g.build(), { threads: 1 });
  const data: Record<string, Float32Array> = {};
  const feeds: Record<string, ReturnType<typeof f32Tensor>> = {};
  for (const [n, s] of c.wrt) data[n] = rand(s.reduce((a, b) => a * b, 1), rng, c.scale ?? 1);
  for (const [n, s] of c.wrt) feeds[n] = f32Tensor(data[n], s);
  for (const [n, s, d] of c.frozen ?? []) feeds[n] = f32Tensor(d, s);
  feeds.r = f32Tensor(rand(ySize, rng), y.shape as number[]);
  const out = await sess.run(feeds);
  const h = 1e-2;
  for (const [n, s] of c.wrt) {
    const got = out[`d_${n}`].data as Float32Array;
    const scale = Math.max(1e-3, ...Array.from(got, Math.abs));
    let worst = 0;
    const picks = Array.from({ length: Math.min(12, got.length) }, (_, k) => Math.floor((k * got.length) / Math.min(12, got.length)));
    for (const i of picks) {
      const x0 = data[n][i];
      const at = async (v: number) => {
        const d = data[n].slice();
        d[i] = v;
        const o = await sess.run({ ...feeds, [n]: f32Tensor(d, s) }, ['loss']);
        return (o.loss.data as Float32Array)[0];
      };
      const fd = ((await at(x0 + h)) - (await at(x0 - h))) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - got[i]) / scale);
    }
    assert.ok(worst < 1e-2, `${name}: d/d${n} differs from finite differences by ${worst.toExponential(2)} of its scale`);
  }
  await sess.release();
}

test('elementwise VJPs: Add, Sub, Mul, Div, Tanh, Gelu(tanh)', async () => {
  const S: number[] = [3, 5];
  await checkVjp('add', { wrt: [['a', S], ['b', S]], build: (g, x) => op.add(g, x.a, x.b) });
  await checkVjp('sub', { wrt: [['a', S], ['b', S]], build: (g, x) => op.sub(g, x.a, x.b) });
  await checkVjp('mul', { wrt: [['a', S], ['b', S]], build: (g, x) => op.mul(g, x.a, x.b) });
  // a broadcast frozen operand (like the RoPE tables) next to a differentiated one
  await checkVjp('mul-bcast', { wrt: [['a', [2, 3, 5]]], frozen: [['c', [3, 5], rand(15, new Rng(9))]], build: (g, x) => op.mul(g, x.a, x.c) });
  await checkVjp('div', { wrt: [['a', S], ['b', S]], build: (g, x) => op.div(g, x.a, op.add(g, op.mul(g, x.b, x.b), g.constF32(1))) });
  await checkVjp('tanh', { wrt: [['a', S]], build: (g, x) => op.tanh(g, x.a) });
  await checkVjp('gelu', { wrt: [['a', [4, 8]]], scale: 2, build: (g, x) => op.geluTanh(g, x.a) });
});

test('Softmax and SimplifiedLayerNormalization (RMSNorm) VJPs', async () => {
  await checkVjp('softmax', { wrt: [['a', [2, 3, 6]]], build: (g, x) => op.softmax(g, x.a, -1) });
  const mask = new Float32Array(36);
  for (let i = 0; i < 6; i++) for (let j = i + 1; j < 6; j++) mask[i * 6 + j] = -Infinity;
  await checkVjp('masked-softmax', { wrt: [['a', [1, 2, 6, 6]]], frozen: [['m', [1, 1, 6, 6], mask]], build: (g, x) => op.softmax(g, op.add(g, x.a, x.m), -1) });
  const w = Float32Array.from({ length: 8 }, (_, i) => 1 + 0.1 * i);
  await checkVjp('rmsnorm', { wrt: [['a', [3, 8]]], frozen: [['w', [8], w]], build: (g, x) => op.rmsNorm(g, x.a, x.w, 1e-6) });
  await checkVjp('rmsnorm-heads', { wrt: [['a', [2, 3, 2, 8]]], frozen: [['w', [8], w]], build: (g, x) => op.rmsNorm(g, x.a, x.w, 1e-6) });
});

test('MatMul and FusedMatMul VJPs (transB, alpha, a shared 2-D weight against batched rows)', async () => {
  await checkVjp('matmul', { wrt: [['a', [2, 3, 4]], ['b', [2, 4, 5]]], build: (g, x) => op.matmul(g, x.a, x.b) });
  await checkVjp('fused-transB', { wrt: [['a', [2, 3, 4]], ['b', [2, 5, 4]]], build: (g, x) => op.fusedMatMul(g, x.a, x.b, { transB: true, alpha: 0.7 }) });
  await checkVjp('fused-weight', { wrt: [['a', [2, 3, 4]], ['w', [5, 4]]], build: (g, x) => op.fusedMatMul(g, x.a, x.w, { transB: true }) });
  await checkVjp('fused-plain', { wrt: [['a', [2, 3, 4]], ['w', [4, 5]]], build: (g, x) => op.fusedMatMul(g, x.a, x.w, { alpha: 1.5 }) });
});

test('shape VJPs: Reshape, Transpose, Split, Concat, Gather, Identity', async () => {
  await checkVjp('reshape', { wrt: [['a', [2, 6]]], build: (g, x) => op.reshape(g, x.a, [3, 4]) });
  await checkVjp('transpose', { wrt: [['a', [2, 3, 4]]], build: (g, x) => op.transpose(g, x.a, [2, 0, 1]) });
  await checkVjp('split-concat', {
    wrt: [['a', [2, 8]]],
    build: (g, x) => {
      const [p, q] = op.split(g, x.a, -1, [3, 5]);
      return op.concat(g, [op.mul(g, q, q), p], -1);
    },
  });
  await checkVjp('split-unused', { wrt: [['a', [2, 8]]], build: (g, x) => op.split(g, x.a, 1, [3, 5])[1] });
  await checkVjp('gather', {
    wrt: [['a', [6, 3]]],
    build: (g, x) => op.identity(g, op.gather(g, x.a, g.constI64([4, 0, 4, 2]), 0)),
  });
});

test('a whole decoder layer with LoRA on all seven projections: d/dx and d/d(every A, B)', async () => {
  const cfg: GemmaConfig = { ...GEMMA3_TINY, hidden: 16, intermediate: 32, heads: 2, kvHeads: 1, headDim: 8, queryPreAttnScalar: 8, slidingWindow: 3, layers: 1, layerTypes: ['sliding'], vocabSize: 32 };
  const mw = randomF32Weights(cfg, 3, { embedding: 0.1, matrix: 0.1 });
  const T = 5, D = cfg.headDim, R = 2;
  const { cos, sin } = ropeTables(inverseFrequencies(D, cfg.ropeThetaLocal), [0, 1, 2, 3, 4]);
  const shapes: Record<string, [number, number]> = { q: [16, 16], k: [8, 16], v: [8, 16], o: [16, 16], gate: [32, 16], up: [32, 16], down: [16, 32] };
  await checkVjp('decoder-layer', {
    wrt: [['x', [1, T, 16]], ...Object.entries(shapes).flatMap(([t, [o, i]]) => [[`a_${t}`, [R, i]], [`b_${t}`, [o, R]]] as Array<[string, number[]]>)],
    frozen: [['cos', [T, D / 2], cos], ['sin', [T, D / 2], sin], ['mask', [1, 1, T, T], trainMask(T, cfg.slidingWindow)]],
    scale: 0.5,
    build: (g, x) => {
      const p = new GraphParams(g, mw, { precision: 'f32', accuracyLevel: 0 });
      const xs = { ...x.x, shape: ['B', 'T', 16] } as Value;
      const r = decoderLayer(g, p, 0, xs, { cos: x.cos, sin: x.sin, mask: x.mask, past: null }, (t) => ({ a: x[`a_${t}`], b: x[`b_${t}`] }));
      return { ...r.h, shape: [1, T, 16] } as Value;
    },
  });
});

test('MatMulNBits VJP: dx = dy·W with W dequantised in the graph, 4-bit (two column phases) and 8-bit, over two row chunks', async () => {
  const N = 1030, K = 64; // more rows than one dequantisation chunk (1024)
  const w = rand(N * K, new Rng(4), 0.2);
  for (const bits of [4, 8] as const) {
    const q = bits === 4 ? q4_0ToMatMulNBits(quantizeQ4_0(w), N, K) : q8_0ToMatMulNBits(quantizeQ8_0(w), N, K);
    await checkVjp(`matmulnbits-${bits}`, {
      wrt: [['x', [3, K]]],
      build: (g, x) => {
        const b = g.initializer('w.q', 'uint8', [N, K / 32, 4 * bits], q.data);
        const scales = g.initializer('w.scales', 'float32', [N, K / 32], q.scales);
        return op.matMulNBits(g, x.x, b, scales, { K, N, bits, blockSize: 32, accuracyLevel: 0 });
      },
    });
  }
});

test('cross-entropy backward: d loss_sum / d logits = softmax − onehot(label)', async () => {
  await checkVjp('cross-entropy', {
    wrt: [['logits', [3, 7]]],
    scale: 2,
    build: (g, x) => crossEntropy(g, x.logits, g.constI64([4, 0, 6])).lossSum,
    grads: (g, x, _y, r) => {
      const ce = crossEntropy(g, x.logits, g.constI64([4, 0, 6]));
      return [op.mul(g, crossEntropyBackward(g, ce, x.logits), r)];
    },
  });
});

test('LM head + cross-entropy fused backward: d loss_sum / d normed rows, f32, Q4_0 and Q8_0 tables, vocabulary in two chunks', async () => {
  const cfg: GemmaConfig = { ...GEMMA3_TINY, hidden: 32, intermediate: 32, layers: 1, layerTypes: ['sliding'], vocabSize: 1100, finalLogitSoftcap: null };
  const f32 = randomF32Weights(cfg, 5, { embedding: 0.3, matrix: 0.1 });
  const withEmbedding = (type: 'q4_0' | 'q8_0'): ModelWeights => {
    const e = f32.weights.get(EMBED_NAME)!;
    const data = type === 'q4_0' ? quantizeQ4_0(e.value.data as Float32Array) : quantizeQ8_0(e.value.data as Float32Array);
    return { config: cfg, weights: new Map([...f32.weights, [EMBED_NAME, { shape: e.shape, value: { type, data } }]]) };
  };
  const labels = [17, 1099, 3];
  for (const [name, mw, precision] of [['f32', f32, 'f32'], ['q4_0', withEmbedding('q4_0'), 'q4'], ['q8_0', withEmbedding('q8_0'), 'q4']] as const) {
    let params: GraphParams | null = null;
    await checkVjp(`head-ce-${name}`, {
      wrt: [['h', [3, cfg.hidden]]],
      build: (g, x) => {
        params = new GraphParams(g, mw, { precision, accuracyLevel: 0 });
        return crossEntropy(g, params.head(x.h), g.constI64(labels)).lossSum;
      },
      grads: (g, x, _y, r) => {
        const ce = crossEntropy(g, params!.head(x.h), g.constI64(labels));
        return [op.mul(g, headCrossEntropyBackward(g, params!, ce, g.constI64(labels)), r)];
      },
    });
  }
});

// The step graph's speed paths must not change what it computes: validation with the backward branch
// off (an ONNX If), the forward's projections reused by the recomputed layers (keepProjections), and
// weights streamed from the model file (a WeightSource) instead of loaded into JS. And the Graph edits
// they are made of (conditional regions, reuse) keep what autodiff sees and what ONNX scoping allows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { loadModel, openWeights } from '../../src/engine/model/load';
import { EMBED_NAME } from '../../src/engine/model/weights';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { trainGraph } from '../../src/engine/gemma/trainGraph';
import { createOrtEngine } from '../../src/engine/train/ortEngine';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { collate } from '../../src/engine/train/batch';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { Graph } from '../../src/engine/onnx/graph';
import type { Value } from '../../src/engine/onnx/nodes';
import { gradients } from '../../src/engine/onnx/autodiff';
import * as op from '../../src/engine/onnx/ops';
import { createSession, ort } from '../../src/engine/onnx/session';
import { Rng } from '../../src/engine/rng';
import { tempDir } from './temp-helpers';

const dir = tempDir('train-fastpath-');

function maxRel(got: Float32Array[], want: Float32Array[]): number {
  let worst = 0;
  got.forEach((g, i) => {
    let num = 0, den = 0;
    for (let j = 0; j < g.length; j++) { num = Math.max(num, Math.abs(g[j] - want[i][j])); den = Math.max(den, Math.abs(want[i][j])); }
    worst = Math.max(worst, den === 0 ? num : num / den);
  });
  return worst;
}

test('Graph.conditional: the moved nodes run only when the condition is true', async () => {
  const g = new Graph('cond');
  const x = g.input('x', 'float32', [3]);
  const c = g.input('c', 'bool', []);
  const { value: y, region } = g.record(() => op.mul(g, op.add(g, x, g.constF32(1)), g.constF32(2)));
  const [out] = g.conditional(region, c, [y], [x]);
  g.output(out, 'y');
  assert.throws(() => g.conditional(region, c, [y], [x]), /already conditional/);
  const s = await createSession(g.build(), { threads: 1 });
  try {
    const feeds = (on: boolean) => ({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]), c: new ort.Tensor('bool', Uint8Array.of(on ? 1 : 0), []) });
    assert.deepEqual(Array.from((await s.run(feeds(true))).y.data as Float32Array), [4, 6, 8]);
    assert.deepEqual(Array.from((await s.run(feeds(false))).y.data as Float32Array), [1, 2, 3]);
  } finally {
    await s.release();
  }
});

test('Graph.reuse: the node is left out and its readers read the earlier value; autodiff still differentiates the recorded node', async () => {
  const g = new Graph('reuse');
  const x = g.input('x', 'float32', [3]);
  const first = op.mul(g, x, g.constF32(2));
  const again = op.mul(g, x, g.constF32(2));
  const y = op.mul(g, again, again);
  const node = g.nodes.find((n) => n.outputs[0] === again)!;
  g.reuse(node, first);
  assert.throws(() => g.reuse(g.nodes.find((n) => n.outputs[0] === first)!, again), /made after it/);
  // Marked before differentiating: dy/dx = 2·(2x)·2 flows through the reused node's record all the same.
  const [dx] = gradients(g, [[y, op.identity(g, g.constF32([1, 1, 1]))]], [x]);
  g.output(y, 'y');
  g.output(dx, 'dx');
  assert.ok(!g.allNodes().includes(node), 'the reused node is not serialised');
  const s = await createSession(g.build(), { threads: 1 });
  try {
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]) });
    assert.deepEqual(Array.from(out.y.data as Float32Array), [4, 16, 36]);
    assert.deepEqual(Array.from(out.dx.data as Float32Array), [8, 16, 24]);
  } finally {
    await s.release();
  }
});

test('Graph: a value made in a conditional region is seen outside only through the If', () => {
  const g = new Graph('scope');
  const x = g.input('x', 'float32', [3]);
  const c = g.input('c', 'bool', []);
  const { value: y, region } = g.record(() => op.add(g, x, g.constF32(1)));
  g.conditional(region, c, [y], [x]);
  g.output(op.mul(g, y, y), 'z');
  assert.throws(() => g.build(), /reads .* which is not made before it at the top level/);
  // A region inside one already made conditional cannot be made conditional afterwards (its If would fall outside).
  const h = new Graph('nest');
  const hx = h.input('x', 'float32', [3]);
  let inner: ReturnType<typeof h.record<Value>> | null = null;
  const outer = h.record(() => {
    inner = h.record(() => op.add(h, hx, h.constF32(1)));
    return op.mul(h, inner.value, inner.value);
  });
  h.conditional(outer.region, h.input('c', 'bool', []), [outer.value], [hx]);
  assert.throws(() => h.conditional(inner!.region, h.inputs[1], [inner!.value], [hx]), /inside a region/);
});

test('q4: kept projections, a streamed WeightSource and the backward-off evaluation change nothing', async () => {
  const file = path.join(dir, 'tiny-q4.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: 11, dtype: 'q4_0' });
  const cfg = GEMMA3_TINY;
  const rng = new Rng(4);
  const examples: TokenizedExample[] = [13, 9].map((len, i) => {
    const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(cfg.vocabSize - 3))];
    return { id: `e${i}`, inputIds: ids, labels: ids.map((t, j) => (j >= len - 5 ? t : IGNORE)) };
  });
  const batch = collate(examples, 0);
  const params = initLora(cfg, 4, 8, ALL_TARGETS, 2);
  for (const m of params.modules) for (let j = 0; j < m.b.length; j++) m.b[j] = 0.05 * rng.normal();

  // Every projection kept: the recomputed layers run no MatMulNBits of their own (only the forward's 7 per layer and the head).
  const source = openWeights(file, { precision: 'q4' }).source;
  const nodes = (keep: boolean) => trainGraph(source, { precision: 'q4', accuracyLevel: 0, rank: 4, alpha: 8, targets: ALL_TARGETS, recompute: true, keepProjections: keep ? ALL_TARGETS : [] }).allNodes();
  const count = (keep: boolean) => nodes(keep).filter((n) => n.op === 'MatMulNBits').length;
  assert.equal(count(true), 7 * cfg.layers + 1);
  assert.equal(count(false), 14 * cfg.layers + 1);
  // The embedding lookups read the head's own bytes (one mapping of the table, not two).
  const all = nodes(true);
  const headB = all.filter((n) => n.op === 'MatMulNBits').find((n) => n.inputs[1]!.name.startsWith(EMBED_NAME))!.inputs[1];
  const lookups = all.filter((n) => n.op === 'GatherBlockQuantized');
  assert.ok(lookups.length >= 2, 'input ids and label rows');
  for (const l of lookups) assert.equal(l.inputs[0], headB);

  const plain = await createOrtEngine(loadModel(file, { precision: 'q4' }).weights, { precision: 'q4', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1, accuracyLevel: 0, keepProjections: [] });
  const fast = await createOrtEngine(source, { precision: 'q4', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1, accuracyLevel: 0, keepProjections: ALL_TARGETS });
  try {
    const a = await plain.lossAndGrads(batch, params, 0.5);
    const b = await fast.lossAndGrads(batch, params, 0.5);
    assert.ok(Math.abs(a.lossSum - b.lossSum) <= 1e-6 * Math.abs(a.lossSum), `loss ${b.lossSum} vs ${a.lossSum}`);
    const rel = maxRel(b.grads, a.grads);
    assert.ok(rel < 1e-5, `gradients max rel ${rel}`);
    assert.ok(a.grads.some((g) => g.some((v) => v !== 0)), 'the gradients are not all zero');
    // Validation runs the same graph with its backward branch off: the step's own loss.
    const e = await fast.evaluate(batch, params);
    assert.ok(Math.abs(e.lossSum - b.lossSum) <= 1e-6 * Math.abs(b.lossSum), `eval loss ${e.lossSum} vs step ${b.lossSum}`);
    assert.deepEqual(Array.from(e.hits), Array.from((await plain.evaluate(batch, params)).hits));
    assert.equal(e.hits.length, 10);
    // And the step after an evaluation still returns the gradients.
    assert.ok(maxRel((await fast.lossAndGrads(batch, params, 0.5)).grads, b.grads) < 1e-6);
  } finally {
    await plain.dispose();
    await fast.dispose();
  }
});

test('q4, 7 layers (two nested backward branches): recomputed layers with kept projections give the gradients of the graph without recomputation', async () => {
  const cfg = { ...GEMMA3_TINY, layers: 7, layerTypes: ['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full', 'sliding'] as GemmaConfig['layerTypes'] };
  const file = path.join(dir, 'tiny7-q4.gguf');
  writeRandomGguf(file, cfg, { seed: 12, dtype: 'q4_0' });
  const rng = new Rng(6);
  const examples: TokenizedExample[] = [11, 8].map((len, i) => {
    const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(cfg.vocabSize - 3))];
    return { id: `e${i}`, inputIds: ids, labels: ids.map((t, j) => (j >= len - 4 ? t : IGNORE)) };
  });
  const params = initLora(cfg, 2, 4, ALL_TARGETS, 3);
  for (const m of params.modules) for (let j = 0; j < m.b.length; j++) m.b[j] = 0.05 * rng.normal();
  const source = openWeights(file, { precision: 'q4' }).source;
  const opts = { precision: 'q4' as const, rank: 2, alpha: 4, targets: ALL_TARGETS, threads: 1, accuracyLevel: 0 as const };
  const whole = await createOrtEngine(source, { ...opts, recompute: false });
  const recomputed = await createOrtEngine(source, { ...opts, recompute: true, keepProjections: ALL_TARGETS });
  try {
    const a = await whole.lossAndGrads(collate(examples, 0), params, 1);
    const b = await recomputed.lossAndGrads(collate(examples, 0), params, 1);
    assert.ok(Math.abs(a.lossSum - b.lossSum) <= 1e-6 * Math.abs(a.lossSum), `loss ${b.lossSum} vs ${a.lossSum}`);
    const rel = maxRel(b.grads, a.grads);
    assert.ok(rel < 1e-5, `gradients max rel ${rel}`);
    assert.ok(b.grads[0].some((v) => v !== 0), 'layer 0, in the last branch, gets gradients');
  } finally {
    await whole.dispose();
    await recomputed.dispose();
  }
});

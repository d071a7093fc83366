// AdamW against torch's update rule computed by hand, transformers' schedules at sample steps,
// clip_grad_norm_ semantics, the native loops (optim.c) against the JavaScript ones bit for bit, and the
// seeded generator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradNorm } from '../../src/engine/train/adamw';
import { nativeModule, type NativeModule } from '../../src/engine/gemma/nativeModule';
import { learningRate, scheduleFactor } from '../../src/engine/train/schedule';
import { Rng, shuffled } from '../../src/engine/rng';

// torch.optim.AdamW written out in float64 for one scalar, step by step.
function torchAdamW(p0: number, grads: number[], lr: number, wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): number[] {
  let p = p0, m = 0, v = 0;
  const out: number[] = [];
  grads.forEach((g, i) => {
    const t = i + 1;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const mhat = m / (1 - b1 ** t), denom = Math.sqrt(v) / Math.sqrt(1 - b2 ** t) + eps;
    p -= (lr * mhat) / denom;
    out.push(p);
  });
  return out;
}

test('AdamW matches torch.optim.AdamW step by step (with and without weight decay)', () => {
  for (const wd of [0, 0.01, 0.1]) {
    const grads = [0.3, -0.2, 0.05, 1.5, -0.7, 0.0, 2e-4];
    const want = torchAdamW(0.5, grads, 1e-2, wd);
    const p = Float32Array.of(0.5);
    const opt = new AdamW([1], { weightDecay: wd });
    grads.forEach((g, i) => {
      opt.update([p], [Float32Array.of(g)], 1e-2);
      assert.ok(Math.abs(p[0] - want[i]) < 2e-7, `wd ${wd} step ${i + 1}: ${p[0]} vs ${want[i]}`);
    });
    assert.equal(opt.step, grads.length);
  }
});

test('AdamW first step moves every parameter by about lr·sign(g)', () => {
  const p = Float32Array.of(1, 2, 3), g = Float32Array.of(0.001, -5, 1e3);
  new AdamW([3]).update([p], [g], 0.1);
  assert.deepEqual(Array.from(p, (x) => Math.round(x * 1e5) / 1e5), [0.9, 2.1, 2.9]);
});

test('AdamW state saves and loads so that a resumed optimizer continues identically', () => {
  const a = new AdamW([2]), pa = Float32Array.of(1, -1);
  a.update([pa], [Float32Array.of(0.5, 0.25)], 0.01);
  const b = new AdamW([2]), pb = pa.slice();
  b.load({ step: a.step, slots: a.state().slots.map((s) => ({ m: s.m.slice(), v: s.v.slice() })) });
  a.update([pa], [Float32Array.of(-0.1, 0.3)], 0.01);
  b.update([pb], [Float32Array.of(-0.1, 0.3)], 0.01);
  assert.deepEqual(Array.from(pb), Array.from(pa));
  assert.throws(() => b.update([pb], [Float32Array.of(1)], 0.01), /elements/);
});

test('clipGradNorm: total L2 norm over all tensors, scaled by max/(norm+1e-6) only when above', () => {
  const g1 = Float32Array.of(3, 0), g2 = Float32Array.of(0, 4);
  assert.equal(clipGradNorm([g1, g2], 10), 5);
  assert.deepEqual([...g1, ...g2], [3, 0, 0, 4]);
  const n = clipGradNorm([g1, g2], 1);
  assert.equal(n, 5);
  const c = 1 / (5 + 1e-6);
  assert.ok(Math.abs(g1[0] - 3 * c) < 1e-7 && Math.abs(g2[1] - 4 * c) < 1e-7);
  const h = Float32Array.of(30, 40);
  assert.equal(clipGradNorm([h], 0), 50);
  assert.deepEqual(Array.from(h), [30, 40], 'max norm 0 turns clipping off');
});

const loaded = nativeModule();
const skip = 'module' in loaded ? false : `no native module: ${loaded.reason}`;
/** Odd lengths: each ends part way through a vector of 8, and one is shorter than 8. */
const SIZES = [1, 7, 9, 13, 255, 1001, 4099];

/** Tensors of SIZES, normal values at `scale`. */
function randomTensors(rng: Rng, scale: number): Float32Array[] {
  return SIZES.map((n) => Float32Array.from({ length: n }, () => rng.normal() * scale));
}

/**
 * Where a and b differ in bits, as "tensor i[j]: a vs b"; NaNs count as equal whatever their sign and payload,
 * which JavaScript leaves to the engine.
 */
function bitDifferences(a: Float32Array[], b: Float32Array[]): string[] {
  const out: string[] = [];
  a.forEach((x, i) => {
    const ux = new Uint32Array(x.buffer, x.byteOffset, x.length), uy = new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length);
    assert.equal(x.length, b[i].length);
    for (let j = 0; j < x.length; j++) {
      if (ux[j] !== uy[j] && !(Number.isNaN(x[j]) && Number.isNaN(b[i][j]))) out.push(`tensor ${i}[${j}]: ${x[j]} vs ${b[i][j]}`);
    }
  });
  return out;
}

test("native AdamW gives the JavaScript loop's bits over several steps, with and without weight decay", { skip }, () => {
  for (const wd of [0, 0.01, 0.1]) {
    const rng = new Rng(11);
    const js = new AdamW(SIZES, { weightDecay: wd, native: false }), native = new AdamW(SIZES, { weightDecay: wd });
    const pj = randomTensors(rng, 0.05), pn = pj.map((t) => t.slice()), p0 = pj.map((t) => t.slice());
    for (let step = 1; step <= 6; step++) {
      // Gradients across magnitudes, tiny ones among them (denormal squares in v), and a schedule's changing lr.
      const g = randomTensors(rng, 10 ** -(step % 4) * 3);
      g[2][3] = 1e-30;
      g[3][0] = 0;
      const lr = 2e-4 * (1 - step / 10);
      js.update(pj, g.map((t) => t.slice()), lr);
      native.update(pn, g, lr);
      assert.deepEqual(bitDifferences(pn, pj), [], `wd ${wd} step ${step}: params`);
      assert.deepEqual(bitDifferences(native.slots.map((s) => s.m), js.slots.map((s) => s.m)), [], `wd ${wd} step ${step}: m`);
      assert.deepEqual(bitDifferences(native.slots.map((s) => s.v), js.slots.map((s) => s.v)), [], `wd ${wd} step ${step}: v`);
    }
    assert.ok(pn[6].every((x, j) => x !== p0[6][j]), 'the parameters moved');
  }
});

test('native AdamW carries NaN and ±Infinity gradients into the same parameters and moments as the JavaScript loop', { skip }, () => {
  for (const wd of [0, 0.01]) {
    const rng = new Rng(5);
    const js = new AdamW(SIZES, { weightDecay: wd, native: false }), native = new AdamW(SIZES, { weightDecay: wd });
    const pj = randomTensors(rng, 0.05), pn = pj.map((t) => t.slice());
    for (let step = 1; step <= 3; step++) {
      const g = randomTensors(rng, 1);
      // In the vector body and in the scalar tail, and a parameter that is already NaN or infinite.
      g[5][step] = NaN;
      g[5][1000] = Infinity;
      g[6][8 + step] = -Infinity;
      g[6][4098] = NaN;
      g[4][0] = 3e38;  // its square overflows float32 in v
      pj[3][step] = pn[3][step] = step === 2 ? Infinity : NaN;
      js.update(pj, g.map((t) => t.slice()), 1e-3);
      native.update(pn, g, 1e-3);
      assert.deepEqual(bitDifferences(pn, pj), [], `wd ${wd} step ${step}: params`);
      assert.deepEqual(bitDifferences(native.slots.map((s) => s.m), js.slots.map((s) => s.m)), [], `wd ${wd} step ${step}: m`);
      assert.deepEqual(bitDifferences(native.slots.map((s) => s.v), js.slots.map((s) => s.v)), [], `wd ${wd} step ${step}: v`);
    }
    assert.ok(Number.isNaN(pn[5][1]) && Number.isNaN(pn[6][9]) && native.slots[4].v[0] === Infinity, 'the bad values reached the parameters and moments');
  }
});

test("native clipGradNorm gives the JavaScript loop's total and clipped gradients, bit for bit", { skip }, () => {
  const rng = new Rng(3);
  for (const [scale, maxNorm] of [[1, 1], [1e-3, 1], [1, 0], [1e-20, 1e-30], [1e18, 1]]) {
    const gj = randomTensors(rng, scale), gn = gj.map((t) => t.slice());
    const tj = clipGradNorm(gj, maxNorm, false), tn = clipGradNorm(gn, maxNorm);
    assert.ok(Object.is(tn, tj), `scale ${scale}: total ${tn} vs ${tj}`);
    assert.deepEqual(bitDifferences(gn, gj), [], `scale ${scale} max ${maxNorm}`);
  }
  const gj = randomTensors(rng, 1), gn = gj.map((t) => t.slice());
  gj[4][7] = gn[4][7] = NaN;
  assert.ok(Number.isNaN(clipGradNorm(gn, 1)) && Number.isNaN(clipGradNorm(gj, 1, false)));
  gj[4][7] = gn[4][7] = Infinity;
  assert.equal(clipGradNorm(gn, 1), clipGradNorm(gj, 1, false));
  assert.deepEqual(bitDifferences(gn, gj), []);
});

test('bad calls to the native optimizer loops throw instead of reading out of bounds', { skip }, () => {
  const native = (loaded as { module: NativeModule }).module;
  const call = native as unknown as Record<'adamw' | 'sumSquares' | 'scale', (...a: unknown[]) => unknown>;
  const n = 9, a = () => new Float32Array(n);
  const scalars = { decay: 1, w1: 0.1, b2: 0.999, w2: 0.001, negStep: -1e-3, bc2Sqrt: 0.03, eps: 1e-8 };
  native.adamw(a(), a(), a(), a(), scalars);
  native.adamw(new Float32Array(0), new Float32Array(0), new Float32Array(0), new Float32Array(0), scalars);
  for (const [i, bad] of [[1, new Float32Array(n - 1)], [2, new Float32Array(n + 1)], [3, new Float64Array(n)], [0, new Uint32Array(n)], [1, [0, 0, 0]], [2, null]] as const) {
    const args: unknown[] = [a(), a(), a(), a(), scalars];
    args[i] = bad;
    assert.throws(() => call.adamw(...args), /adamw: param, grad, m and v must be Float32Arrays of one length/, `argument ${i}: ${String(bad)}`);
  }
  assert.throws(() => call.adamw(a(), a(), a(), a(), { ...scalars, eps: undefined }), /scalars needs decay/);
  assert.throws(() => call.adamw(a(), a(), a(), a(), { ...scalars, negStep: '1' }), /scalars needs decay/);
  assert.throws(() => call.adamw(a(), a(), a(), a(), null), /scalars needs decay/);
  assert.throws(() => call.adamw(a(), a(), a(), a()), /adamw\(param, grad, m, v, scalars\)/);
  assert.equal(native.sumSquares(Float32Array.of(3, 4)), 25);
  assert.equal(native.sumSquares(new Float32Array(0)), 0);
  assert.equal(native.sumSquares(new Float32Array(16).subarray(3, 5).fill(2)), 8, 'a view reads its own elements only');
  assert.throws(() => call.sumSquares(Float64Array.of(3, 4)), /sumSquares: grad must be a Float32Array/);
  assert.throws(() => call.sumSquares([3, 4]), /sumSquares: grad must be a Float32Array/);
  assert.throws(() => call.sumSquares(), /sumSquares\(grad\)/);
  const g = Float32Array.of(1, 2, 3);
  native.scale(g, 0.5);
  assert.deepEqual(Array.from(g), [0.5, 1, 1.5]);
  assert.throws(() => call.scale(g, '2'), /scale: grad must be a Float32Array, coef a number/);
  assert.throws(() => call.scale(new Int32Array(3), 2), /scale: grad must be a Float32Array/);
  assert.throws(() => call.scale(g), /scale\(grad, coef\)/);
  assert.deepEqual(Array.from(g), [0.5, 1, 1.5], 'a rejected call writes nothing');
});

test('schedules match transformers get_*_schedule_with_warmup at sample steps', () => {
  const o = { warmupSteps: 10, totalSteps: 100 };
  // warmup: step / max(1, warmup)
  for (const kind of ['constant', 'linear', 'cosine'] as const) {
    assert.equal(scheduleFactor({ kind, ...o }, 0), 0);
    assert.equal(scheduleFactor({ kind, ...o }, 5), 0.5);
  }
  assert.equal(scheduleFactor({ kind: 'constant', ...o }, 50), 1);
  // linear: max(0, (total - step) / max(1, total - warmup))
  assert.equal(scheduleFactor({ kind: 'linear', ...o }, 10), 1);
  assert.equal(scheduleFactor({ kind: 'linear', ...o }, 55), 0.5);
  assert.equal(scheduleFactor({ kind: 'linear', ...o }, 100), 0);
  assert.equal(scheduleFactor({ kind: 'linear', ...o }, 120), 0);
  // cosine: 0.5·(1 + cos(π·progress)), progress = (step - warmup)/(total - warmup)
  assert.equal(scheduleFactor({ kind: 'cosine', ...o }, 10), 1);
  assert.ok(Math.abs(scheduleFactor({ kind: 'cosine', ...o }, 55) - 0.5) < 1e-12);
  assert.ok(Math.abs(scheduleFactor({ kind: 'cosine', ...o }, 32.5) - 0.5 * (1 + Math.cos(Math.PI * 0.25))) < 1e-12);
  assert.ok(scheduleFactor({ kind: 'cosine', ...o }, 100) < 1e-12);
  // no warmup: constant is exactly 1 from step 0
  assert.equal(learningRate({ kind: 'constant', baseLr: 2e-4, warmupSteps: 0, totalSteps: 5 }, 0), 2e-4);
  assert.equal(learningRate({ kind: 'linear', baseLr: 1, warmupSteps: 0, totalSteps: 4 }, 1), 0.75);
});

test('Rng: a seed gives a repeatable stream, a saved state continues it, shuffles are permutations', () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const sa = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(sa, Array.from({ length: 5 }, () => b.next()));
  assert.notDeepEqual(sa, Array.from({ length: 5 }, () => c.next()));
  const r = Rng.fromState(a.state);
  assert.equal(r.next(), a.next());
  const items = Array.from({ length: 20 }, (_, i) => i);
  const s = shuffled(items, new Rng(1));
  assert.deepEqual([...s].sort((x, y) => x - y), items);
  assert.notDeepEqual(s, items);
  assert.deepEqual(s, shuffled(items, new Rng(1)));
});

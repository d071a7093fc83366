// AdamW against torch's update rule computed by hand, transformers' schedules at sample steps,
// clip_grad_norm_ semantics, and the seeded generator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradNorm } from '../../src/engine/train/adamw';
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

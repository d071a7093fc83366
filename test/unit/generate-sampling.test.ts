// Sampling: top-k / top-p against a brute-force full sort, greedy, masking, and the seeded RNG's
// repeatability and distribution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, argmax, nucleus, topKIndices, validateSampling } from '../../src/engine/generate/sampling';
import { Rng, Sfc32 } from '../../src/engine/rng';

function randomLogits(rng: Rng, V: number, scale: number): Float32Array {
  const l = new Float32Array(V);
  for (let i = 0; i < V; i++) l[i] = (rng.next() * 2 - 1) * scale;
  return l;
}

/** The reference: sort everything, softmax everything, cut top-k, then HF's top-p rule on ascending cumsum. */
function bruteForce(logits: Float32Array, T: number, k: number, p: number): { ids: number[]; probs: number[] } {
  let order = Array.from(logits.keys()).filter((i) => logits[i] > -Infinity);
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  if (k > 0) order = order.slice(0, k);
  const m = logits[order[0]];
  const w = order.map((i) => Math.exp((logits[i] - m) / T));
  const z = w.reduce((a, b) => a + b, 0);
  const pr = w.map((x) => x / z);
  let keep = order.length;
  if (p < 1) {
    // transformers: sort ascending, remove where cumsum <= 1 - p, keep at least one.
    const asc = pr.slice().reverse();
    let cum = 0;
    let removed = 0;
    for (let j = 0; j < asc.length - 1; j++) {
      cum += asc[j];
      if (cum <= 1 - p) removed++;
      else break;
    }
    keep = order.length - removed;
  }
  const kept = pr.slice(0, keep);
  const s = kept.reduce((a, b) => a + b, 0);
  return { ids: order.slice(0, keep), probs: kept.map((x) => x / s) };
}

test('top-k indices equal the first k of a full sort, best first', () => {
  const rng = new Rng(7);
  for (const k of [1, 2, 5, 50, 300]) {
    const l = randomLogits(rng, 1000, 5);
    const want = Array.from(l.keys()).sort((a, b) => l[b] - l[a] || a - b).slice(0, k);
    assert.deepEqual(Array.from(topKIndices(l, k)), want);
  }
});

test('nucleus equals the brute-force temperature → top-k → top-p reference', () => {
  const rng = new Rng(11);
  let cases = 0;
  for (const V of [7, 300, 5000]) {
    for (const scale of [0.5, 4, 20]) {
      for (const T of [0.3, 1, 1.7]) {
        for (const k of [0, 1, 3, 40]) {
          for (const p of [1, 0.95, 0.5, 0.1]) {
            const l = randomLogits(rng, V, scale);
            const got = nucleus(l, T, k, p);
            const want = bruteForce(l, T, k, p);
            assert.deepEqual(Array.from(got.ids), want.ids, `V=${V} scale=${scale} T=${T} k=${k} p=${p}`);
            for (let i = 0; i < want.probs.length; i++) assert.ok(Math.abs(got.probs[i] - want.probs[i]) < 1e-12);
            cases++;
          }
        }
      }
    }
  }
  assert.equal(cases, 432);
});

test('greedy is argmax, ignores masked logits, and fails cleanly when all are masked', () => {
  const l = new Float32Array([1, 5, 5, -2]);
  assert.equal(new Sampler({ temperature: 0 }).sample(l), 1);
  l[1] = -Infinity;
  assert.equal(argmax(l), 2);
  const masked = new Float32Array(4).fill(-Infinity);
  assert.throws(() => new Sampler({ temperature: 0 }).sample(masked), /every logit is masked/);
  assert.throws(() => new Sampler({ temperature: 1 }).sample(masked), /every logit is masked/);
});

test('sampling never picks a masked token and a seed repeats the sequence', () => {
  const rng = new Rng(3);
  const l = randomLogits(rng, 2000, 1);
  for (let i = 0; i < 2000; i += 2) l[i] = -Infinity;
  const a = new Sampler({ temperature: 1, seed: 42 });
  const b = new Sampler({ temperature: 1, seed: 42 });
  const c = new Sampler({ temperature: 1, seed: 43 });
  const sa = [];
  const sb = [];
  const sc = [];
  for (let i = 0; i < 200; i++) {
    sa.push(a.sample(l));
    sb.push(b.sample(l));
    sc.push(c.sample(l));
  }
  assert.ok(sa.every((id) => id % 2 === 1));
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('sampled frequencies follow the softmax at the temperature, within the top-k/top-p set', () => {
  const l = new Float32Array([2, 1, 0.5, 0, -1, -3]);
  const T = 0.8;
  const s = new Sampler({ temperature: T, topK: 4, topP: 0.9, seed: 5 });
  const want = bruteForce(l, T, 4, 0.9);
  const n = 40000;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const id = s.sample(l);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), want.ids.slice().sort());
  want.ids.forEach((id, i) => {
    const f = (counts.get(id) ?? 0) / n;
    const sd = Math.sqrt((want.probs[i] * (1 - want.probs[i])) / n);
    assert.ok(Math.abs(f - want.probs[i]) < 5 * sd + 1e-9, `token ${id}: ${f} vs ${want.probs[i]}`);
  });
});

test('both generators are uniform on [0,1) and standard normal in mean and variance', () => {
  for (const r of [new Rng(1), new Sfc32(1)]) {
    let s = 0, s2 = 0, z = 0, z2 = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      assert.ok(u >= 0 && u < 1);
      s += u;
      s2 += u * u;
      const g = r.normal();
      z += g;
      z2 += g * g;
    }
    const name = r.constructor.name;
    assert.ok(Math.abs(s / n - 0.5) < 0.005, name);
    assert.ok(Math.abs(s2 / n - s * s / n / n - 1 / 12) < 0.003, name);
    assert.ok(Math.abs(z / n) < 0.02 && Math.abs(z2 / n - 1) < 0.03, `${name}: normal mean ${z / n}, variance ${z2 / n}`);
    assert.ok(Array.from({ length: 1000 }, () => r.int(7)).every((k) => Number.isInteger(k) && k >= 0 && k < 7), name);
  }
});

test('bad sampling options are refused with a reason', () => {
  assert.throws(() => validateSampling({ temperature: -1 }), /temperature/);
  assert.throws(() => validateSampling({ temperature: 1, topP: 0 }), /top-p/);
  assert.throws(() => validateSampling({ temperature: 1, topK: 1.5 }), /top-k/);
});

test('top-p on a 262144-token vocabulary stays fast on a peaked distribution', () => {
  const rng = new Rng(9);
  const l = randomLogits(rng, 262144, 3);
  for (let i = 0; i < 50; i++) l[i * 1000] += 12;
  const s = new Sampler({ temperature: 1, topP: 0.9, seed: 1 });
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) s.sample(l);
  const ms = (performance.now() - t0) / 20;
  assert.ok(ms < 50, `${ms.toFixed(1)} ms per token`);
});

test('plain temperature sampling (no top-k/top-p) follows the softmax and skips masked tokens', () => {
  const l = new Float32Array([1, -Infinity, 0, 2, -1]);
  const T = 1.3;
  const s = new Sampler({ temperature: T, seed: 21 });
  const want = bruteForce(l, T, 0, 1);
  const n = 40000;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const id = s.sample(l);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.equal(counts.get(1), undefined);
  want.ids.forEach((id, i) => {
    const f = (counts.get(id) ?? 0) / n;
    const sd = Math.sqrt((want.probs[i] * (1 - want.probs[i])) / n);
    assert.ok(Math.abs(f - want.probs[i]) < 5 * sd, `token ${id}: ${f} vs ${want.probs[i]}`);
  });
});

test('top-p on a flat 262144-token distribution (most of the vocabulary in the nucleus) matches the reference', () => {
  const rng = new Rng(4);
  const l = randomLogits(rng, 262144, 0.5);
  const got = nucleus(l, 1, 0, 0.9);
  const want = bruteForce(l, 1, 0, 0.9);
  assert.ok(got.ids.length > 200000);
  assert.deepEqual(Array.from(got.ids), want.ids);
});

test('given the candidates a choice computed, greedy and top-k sampling pick what they pick from every logit', () => {
  const rng = new Rng(9);
  const V = 5000;
  for (let trial = 0; trial < 20; trial++) {
    const logits = Float32Array.from({ length: V }, () => rng.next() * 8 - 4);
    // Ties at the top: the lowest id must still win among the candidates, in whatever order they come.
    if (trial % 4 === 0) logits[4000] = logits[17] = 10;
    for (const options of [{ temperature: 0 }, { temperature: 1, topK: 5, seed: trial }, { temperature: 0.7, topK: 40, topP: 0.8, seed: trial }]) {
      const k = options.temperature === 0 ? 1 : options.topK!;
      // The top k and some others, shuffled, as the head lists its exact rows.
      const top = Array.from(topKIndices(logits, k));
      const others = Array.from({ length: 30 }, () => Math.floor(rng.next() * V)).filter((id) => !top.includes(id));
      const candidates = Int32Array.from([...others, ...top].sort(() => rng.next() - 0.5));
      const full = new Sampler(options);
      const listed = new Sampler(options);
      for (let draw = 0; draw < 5; draw++) assert.equal(listed.sample(logits, candidates), full.sample(logits), JSON.stringify(options));
    }
  }
});

// Cached generation: prefill then one token at a time must reproduce HF's logits_full (one forward over
// prompt + greedy continuation); sliding layers' memory must stop at the window; fork must be independent.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { GemmaKvCache } from '../../src/engine/gemma/kvCache';
import { fixtureRuntime, readRef, maxAbsDiff } from './gemma-helpers';

for (const name of ['tiny', 'mini-270m-shape']) {
  test(`prefill + cached decode reproduces HF logits_full (${name})`, async () => {
    const { dir, weights, rt } = await fixtureRuntime(name);
    const ref = readRef(dir);
    const [B, T] = ref.idsShape;
    const V = weights.config.vocabSize;
    const N = T + 16;
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const seq = Array.from(ref.greedyIds.subarray(b * N, (b + 1) * N));
      const want = ref.logitsFull.subarray(b * N * V, (b + 1) * N * V);
      const cache = rt.newCache();
      // Prefill in two uneven chunks, then decode: exercises past + new keys in one run and the ring.
      const cut = Math.floor(T / 3);
      const first = await rt.step(cache, seq.slice(0, cut), { logits: 'all' });
      worst = Math.max(worst, maxAbsDiff(first, want.subarray(0, cut * V)));
      const second = await rt.step(cache, seq.slice(cut, T), { logits: 'last' });
      worst = Math.max(worst, maxAbsDiff(second, want.subarray((T - 1) * V, T * V)));
      for (let t = T; t < N; t++) {
        const got = await rt.step(cache, [seq[t]], { logits: 'last' });
        worst = Math.max(worst, maxAbsDiff(got, want.subarray(t * V, (t + 1) * V)));
      }
      assert.equal(cache.length, N);
    }
    await rt.dispose();
    console.log(`${name}: cached decode vs logits_full max|Δ| = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `max|Δ| ${worst}`);
  });
}

test('sliding layers hold at most W-1 positions; full layers grow; fork is independent', async () => {
  const { weights, rt } = await fixtureRuntime('tiny');
  const cfg = weights.config;
  const cache = rt.newCache() as GemmaKvCache;
  const ids = Array.from({ length: 100 }, (_, i) => 3 + ((i * 37) % 500));
  await rt.step(cache, ids.slice(0, 70), { logits: 'last' });
  const sliding = cache.sets.get('sliding')!;
  const full = cache.sets.get('full')!;
  assert.equal(sliding.filled, cfg.slidingWindow - 1);
  assert.equal(sliding.capacity, cfg.slidingWindow - 1);
  assert.equal(full.filled, 70);
  const slidingBytes = sliding.bytes();
  const fork = cache.fork();
  const a = await rt.step(cache, ids.slice(70), { logits: 'last' });
  assert.equal(sliding.bytes(), slidingBytes, 'sliding memory must not grow with the context');
  assert.equal(full.filled, 100);
  // The fork still sits at 70 and gives the same logits for the same continuation.
  assert.equal(fork.length, 70);
  const b = await rt.step(fork, ids.slice(70), { logits: 'last' });
  assert.ok(maxAbsDiff(a, b) <= 1e-5);
  // And matches a from-scratch forward.
  const c = await rt.step(rt.newCache(), ids, { logits: 'last' });
  assert.ok(maxAbsDiff(a, c) <= 1e-4, `cached vs full ${maxAbsDiff(a, c)}`);
  await assert.rejects(rt.step(cache, [cfg.vocabSize], { logits: 'last' }), /outside the vocabulary/);
  fork.dispose();
  await assert.rejects(rt.step(fork, [5], { logits: 'last' }), /disposed/);
  await rt.dispose();
});

// Cached generation: prefill then one token at a time must reproduce HF's logits_full (one forward over
// prompt + greedy continuation); sliding layers' memory must stop at the window; fork must be independent;
// buffers that a disposed cache hands back serve the next one.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { GemmaKvCache } from '../../src/engine/gemma/kvCache';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { openWeights } from '../../src/engine/model/load';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { fixtureRuntime, readRef, maxAbsDiff } from './gemma-helpers';
import { tempDir } from './temp-helpers';

const tmp = tempDir('gemma-cache-');

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

for (const decode of ['onnx', 'native'] as const) {
  test(`a disposed cache's buffers serve the next cache, whatever they held; a fork holds only its filled slots (${decode} layers)`, async () => {
    const { rt, cfg } = await reuseRuntime(decode);
    const ids = Array.from({ length: 100 }, (_, i) => 3 + ((i * 53) % 400));
    try {
      // What 10 ids give on buffers never used before.
      const fresh = rt.newCache();
      const want = await rt.step(fresh, ids.slice(0, 10), { logits: 'all' });
      const big = rt.newCache() as GemmaKvCache;
      await rt.step(big, ids, { logits: 'last' });
      const held = big.sets.get('full')!.k[0];
      big.dispose();
      // The next cache takes the larger buffers back, stale keys and all (nothing smaller is kept), and
      // computes the same bits.
      const next = rt.newCache() as GemmaKvCache;
      const got = await rt.step(next, ids.slice(0, 10), { logits: 'all' });
      const full = next.sets.get('full')!;
      assert.equal(full.k[0], held, 'the full layers\' buffers of the disposed 100-id cache');
      assert.ok(full.capacity >= 100);
      assert.deepEqual(got, want);
      fresh.dispose();
      // A fork copies 10 slots into the smallest buffers, and goes on as the original does.
      const fork = next.fork() as GemmaKvCache;
      assert.equal(fork.sets.get('full')!.capacity, 64);
      assert.equal(fork.sets.get('sliding')!.capacity, Math.min(64, cfg.slidingWindow - 1));
      const a = await rt.step(next, ids.slice(10, 80), { logits: 'all' });
      const b = await rt.step(fork, ids.slice(10, 80), { logits: 'all' });
      assert.deepEqual(a, b);
      next.dispose();
      fork.dispose();
    } finally {
      await rt.dispose();
    }
  });
}

/** The tiny fixture in f32 on ONNX Runtime's layers, or a random Q4_0 GGUF of its shape on the native ones. */
async function reuseRuntime(decode: 'onnx' | 'native'): Promise<{ rt: GemmaRuntime; cfg: GemmaConfig }> {
  if (decode === 'onnx') {
    const { weights, rt } = await fixtureRuntime('tiny');
    return { rt, cfg: weights.config };
  }
  const file = path.join(tmp, 'tiny.gguf');
  writeRandomGguf(file, GEMMA3_TINY, { seed: 4, dtype: 'q4_0', embedding: 'q8_0' });
  const rt = await createGemmaRuntime(openWeights(file, { precision: 'q4' }).source, { precision: 'q4', threads: 2 });
  assert.equal(rt.decodeBy.note, 'layers native, head native');
  return { rt, cfg: GEMMA3_TINY };
}

// The forward-only validation session (bench/evalSession.ts) against the step graph's own
// evaluation: the same Σ CE and the same argmax hits, on the tiny shape with a non-zero adapter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { createOrtEngine } from '../../src/engine/train/ortEngine';
import { createOrtEngineWithEvalSession } from '../../bench/evalSession';
import { initLora, ALL_TARGETS } from '../../src/engine/train/lora';
import { collate } from '../../src/engine/train/batch';
import { Rng } from '../../src/engine/rng';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { randomF32Weights } from './train-helpers';

const tinyModel = (seed: number) => randomF32Weights(GEMMA3_TINY, seed, { embedding: 0.5, matrix: 0.02 });

test('the forward-only eval session gives the step graph\'s loss and hits', async () => {
  const mw = tinyModel(3);
  const rng = new Rng(5);
  // Unequal lengths, so padding and label positions differ between rows.
  const examples: TokenizedExample[] = [14, 9, 12].map((len, i) => {
    const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(500))];
    return { id: `e${i}`, inputIds: ids, labels: ids.map((t, j) => (j >= len - 4 ? t : IGNORE)) };
  });
  const params = initLora(mw.config, 4, 8, ALL_TARGETS, 2);
  for (const m of params.modules) for (let j = 0; j < m.b.length; j++) m.b[j] = 0.05 * rng.normal();
  const batch = collate(examples, 0);
  const both = await createOrtEngineWithEvalSession(mw, { precision: 'f32', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1 });
  const stepOnly = await createOrtEngine(mw, { precision: 'f32', rank: 4, alpha: 8, targets: ALL_TARGETS, threads: 1 });
  try {
    const a = await both.evaluate(batch, params);
    const b = await stepOnly.evaluate(batch, params);
    const { lossSum } = await stepOnly.lossAndGrads(batch, params, 1);
    assert.ok(Math.abs(a.lossSum - b.lossSum) <= 1e-5 * Math.abs(b.lossSum), `eval session ${a.lossSum} vs step graph ${b.lossSum}`);
    assert.ok(Math.abs(a.lossSum - lossSum) <= 1e-5 * Math.abs(lossSum));
    assert.deepEqual(Array.from(a.hits), Array.from(b.hits));
    assert.equal(a.hits.length, 12);
  } finally {
    await both.dispose();
    await stepOnly.dispose();
  }
});

// The native training step (nativeEngine.ts: native/train.c's backward beside the decoder's forward, head.c's
// head_loss) against the float64 reference of the same 4-bit model (reference.ts, which the ONNX step graph
// is held to) and against the ONNX Runtime step graph, on GGUF files as users have them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { loadModel, openWeights } from '../../src/engine/model/load';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { collate, type MicroBatch } from '../../src/engine/train/batch';
import { createOrtEngine } from '../../src/engine/train/ortEngine';
import { NativeStepEngine } from '../../src/engine/train/nativeEngine';
import { referenceStep } from '../../src/engine/train/reference';
import { initLora, type LoraParams, type LoraTarget } from '../../src/engine/train/lora';
import { IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { Rng } from '../../src/engine/rng';
import { tempDir } from './temp-helpers';
import { f32Bytes, patchTensorBytes } from './damage-helpers';

const tmp = tempDir('train-native-');
// Two heads per kv head and a window of 4 that the sequences pass: grouped-query attention and the sliding mask.
const CFG: GemmaConfig = { ...GEMMA3_TINY, layers: 3, layerTypes: ['sliding', 'sliding', 'full'], slidingWindow: 4 };

function model(embedding: 'q8_0' | 'q4_0'): string {
  const file = path.join(tmp, `tiny-${embedding}.gguf`);
  writeRandomGguf(file, CFG, { seed: 11, dtype: 'q4_0', embedding });
  return file;
}

function example(id: string, rng: Rng, len: number, prompt: number): TokenizedExample {
  const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(CFG.vocabSize - 3))];
  return { id, inputIds: ids, labels: ids.map((t, i) => (i >= prompt ? t : IGNORE)) };
}

/** Sequences of unequal length (padding), some labels early, every target or a few. */
function setup(targets: readonly LoraTarget[], seed: number): { p: LoraParams; batch: MicroBatch } {
  const p = initLora(CFG, 4, 8, targets, seed);
  // B = 0 would make every A's gradient 0: a trained adapter has both.
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.05 * Math.sin(i + 3 * m.layer))));
  const rng = new Rng(seed);
  return { p, batch: collate([example('a', rng, 9, 3), example('b', rng, 13, 5), example('c', rng, 6, 1)], 0) };
}

/** max |got − want| / max |want| over each tensor, the worst. */
function maxRel(got: Float32Array[], want: Float32Array[]): number {
  let worst = 0;
  got.forEach((g, i) => {
    let num = 0, den = 0;
    for (let j = 0; j < g.length; j++) {
      num = Math.max(num, Math.abs(g[j] - want[i][j]));
      den = Math.max(den, Math.abs(want[i][j]));
    }
    worst = Math.max(worst, num / den);
  });
  return worst;
}

function engine(file: string, p: LoraParams, level: 0 | 4, threads = 2): NativeStepEngine {
  const e = NativeStepEngine.create(openWeights(file, { precision: 'q4' }).source, { rank: p.rank, alpha: p.alpha, targets: p.targets, threads, level });
  assert.ok(!('reason' in e), `no native engine: ${'reason' in e ? e.reason : ''}`);
  return e;
}

for (const embedding of ['q8_0', 'q4_0'] as const) {
  test(`native step at float activations = the float64 reference of the 4-bit model: loss to 1e-5, every gradient to 1e-4 (${embedding} embedding)`, async () => {
    const file = model(embedding);
    const { p, batch } = setup(['q', 'k', 'v', 'o', 'gate', 'up', 'down'], 3);
    const want = referenceStep(loadModel(file, { precision: 'f32' }).weights, p, batch, 0.5);
    const eng = engine(file, p, 0);
    try {
      const got = await eng.lossAndGrads(batch, p, 0.5);
      const lossRel = Math.abs(got.lossSum - want.lossSum) / want.lossSum;
      const rel = maxRel(got.grads, want.grads);
      console.log(`# native step vs reference (${embedding}): loss rel ${lossRel.toExponential(2)}, gradients max rel ${rel.toExponential(2)}`);
      assert.ok(lossRel < 1e-5, `loss ${got.lossSum} vs ${want.lossSum}`);
      assert.ok(rel < 1e-4, `gradients max rel ${rel}`);
      // Validation's forward gives the same loss, and hits where the reference's argmax is the label.
      const ev = await eng.evaluate(batch, p);
      assert.ok(Math.abs(ev.lossSum - got.lossSum) <= 1e-6 * got.lossSum);
      assert.equal(ev.hits.length, batch.labelTargets.length);
    } finally {
      await eng.dispose();
    }
  });
}

test('attention\'s backward over several tiles of queries (32 each) and spans of keys: the float64 reference to 1e-4', async () => {
  const file = model('q4_0');
  const { p } = setup(['q', 'k', 'v', 'o'], 7);
  // 2 × 47 tokens: tiles that end inside a sequence, a tile holding two sequences' queries, and on the full layer
  // keys from the tiles before.
  const rng = new Rng(8);
  const batch = collate([example('a', rng, 47, 10), example('b', rng, 41, 4)], 0);
  const want = referenceStep(loadModel(file, { precision: 'f32' }).weights, p, batch, 0.5);
  const eng = engine(file, p, 0);
  try {
    const got = await eng.lossAndGrads(batch, p, 0.5);
    const rel = maxRel(got.grads, want.grads);
    console.log(`# native step vs reference, 2 × 47 tokens: gradients max rel ${rel.toExponential(2)}`);
    assert.ok(Math.abs(got.lossSum - want.lossSum) / want.lossSum < 1e-5, `loss ${got.lossSum} vs ${want.lossSum}`);
    assert.ok(rel < 1e-4, `gradients max rel ${rel}`);
  } finally {
    await eng.dispose();
  }
});

test('native step at int8 activations (the default) is ONNX Runtime\'s at its level 4, to the rounding of the activations', async () => {
  const file = model('q8_0');
  const { p, batch } = setup(['q', 'v', 'up', 'down'], 5);
  const ort = await createOrtEngine(openWeights(file, { precision: 'q4' }).source, { precision: 'q4', rank: p.rank, alpha: p.alpha, targets: p.targets, threads: 1, accuracyLevel: 4 });
  const eng = engine(file, p, 4);
  try {
    const want = await ort.lossAndGrads(batch, p, 1);
    const got = await eng.lossAndGrads(batch, p, 1);
    const lossRel = Math.abs(got.lossSum - want.lossSum) / want.lossSum;
    const rel = maxRel(got.grads, want.grads);
    console.log(`# native step vs ONNX Runtime, int8 activations: loss rel ${lossRel.toExponential(2)}, gradients max rel ${rel.toExponential(2)}`);
    assert.ok(lossRel < 1e-3, `loss ${got.lossSum} vs ${want.lossSum}`);
    assert.ok(rel < 2e-2, `gradients max rel ${rel}`);
  } finally {
    await ort.dispose();
    await eng.dispose();
  }
});

test('the native step gives the same loss and gradients on one thread as on three, and again on a second call', async () => {
  const file = model('q8_0');
  const { p, batch } = setup(['q', 'k', 'o', 'gate', 'down'], 7);
  const one = engine(file, p, 4, 1), three = engine(file, p, 4, 3);
  try {
    const a = await one.lossAndGrads(batch, p, 1);
    const b = await three.lossAndGrads(batch, p, 1);
    const again = await three.lossAndGrads(batch, p, 1);
    assert.equal(a.lossSum, b.lossSum, 'the forward is the same bits');
    assert.ok(maxRel(b.grads, a.grads) < 1e-5, `gradients max rel ${maxRel(b.grads, a.grads)}`);
    assert.deepEqual(again.grads, b.grads, 'nothing of the first call leaks into the second');
  } finally {
    await one.dispose();
    await three.dispose();
  }
});

test('a model whose logits overflow gives a NaN loss, which the trainer stops on, and no gradient', async () => {
  const file = path.join(tmp, 'overflow.gguf');
  writeRandomGguf(file, CFG, { seed: 11, dtype: 'q4_0', embedding: 'q8_0' });
  for (let i = 0; i < CFG.hidden; i++) patchTensorBytes(file, 'output_norm.weight', 4 * i, f32Bytes(3e38));
  const { p, batch } = setup(['q', 'down'], 9);
  const eng = engine(file, p, 4);
  try {
    const r = await eng.lossAndGrads(batch, p, 1);
    assert.ok(Number.isNaN(r.lossSum), `loss ${r.lossSum}`);
    assert.ok(r.grads.every((g) => g.every((v) => v === 0)), 'no gradient from non-finite logits');
    assert.ok(Number.isNaN((await eng.evaluate(batch, p)).lossSum));
  } finally {
    await eng.dispose();
  }
});

test('a batch without label positions costs nothing and gives zero', async () => {
  const file = model('q8_0');
  const { p, batch } = setup(['o'], 4);
  const eng = engine(file, p, 4);
  try {
    const none = { ...batch, labelPositions: new Int32Array(0), labelTargets: new Int32Array(0) };
    const r = await eng.lossAndGrads(none, p, 1);
    assert.equal(r.lossSum, 0);
    assert.equal(r.grads.length, 2 * p.modules.length);
    assert.ok(r.grads.every((g) => g.every((v) => v === 0)));
  } finally {
    await eng.dispose();
  }
});

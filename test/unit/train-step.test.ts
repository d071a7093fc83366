// The ONNX train-step graph against the Hugging Face + PEFT fixture (loss, every LoRA gradient, five
// AdamW steps through the trainer), the float64 reference, padding invariance, gradient accumulation,
// the q4 graph, and the trainer's evaluation, early stopping, cancellation and resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../src/engine/model/load';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { isNormWeight, type ModelWeights } from '../../src/engine/model/weights';
import { dequantizeQ4_0 } from '../../src/engine/model/quant';
import { readSafetensorsHeader, readSafetensorsF32 } from '../../src/engine/model/safetensors';
import { readExamples } from '../../src/engine/train/examples';
import { tokenizeExample, IGNORE, type TokenizedExample } from '../../src/engine/train/tokenize';
import { collate } from '../../src/engine/train/batch';
import { createOrtEngine, type OrtStepEngine } from '../../src/engine/train/ortEngine';
import { referenceStep } from '../../src/engine/train/reference';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { cloneLora, flatTensors, initLora, peftTensorNames, type LoraParams } from '../../src/engine/train/lora';
import { train, type TrainEvent, type TrainOptions } from '../../src/engine/train/trainer';
import { Rng } from '../../src/engine/rng';
import { tempDir } from './temp-helpers';
import { randomF32Weights } from './train-helpers';

const FX = hfFixture('tiny');
const ref = JSON.parse(fs.readFileSync(path.join(FX, 'lora_reference.json'), 'utf8'));
const root = tempDir('train-step-');
const tmp = () => fs.mkdtempSync(path.join(root, 'run-'));

function maxRelPerTensor(got: Float32Array[], want: Float32Array[]): number {
  let worst = 0;
  got.forEach((g, i) => {
    let num = 0, den = 0;
    for (let j = 0; j < g.length; j++) { num = Math.max(num, Math.abs(g[j] - want[i][j])); den = Math.max(den, Math.abs(want[i][j])); }
    worst = Math.max(worst, num / den);
  });
  return worst;
}

function fixtureTensors(file: string, p: LoraParams): Float32Array[] {
  const st = readSafetensorsHeader(path.join(FX, file));
  return p.modules.flatMap((m) => { const n = peftTensorNames(m); return [readSafetensorsF32(st, n.a), readSafetensorsF32(st, n.b)]; });
}

const base: Omit<TrainOptions, 'outDir'> = {
  epochs: 1, lr: 1e-3, schedule: 'constant', warmupSteps: 0, weightDecay: 0, maxGradNorm: 0, batchSize: 2, gradAccum: 1, seed: 1, shuffle: false, evalEvery: 0, patience: 0, padId: 0,
};

test('f32 step graph = Hugging Face + PEFT: loss to 1e-5, every gradient to 1e-3, 5 AdamW steps to 1e-4', async () => {
  const mw = loadModel(FX, { precision: 'f32' }).weights;
  const p = readPeftParams(FX, mw.config);
  const batch = collate(readExamples(path.join(FX, 'batch.jsonl')).map((e) => tokenizeExample(e, undefined, 64)), 0);
  assert.equal(batch.labelTargets.length, 23);
  const eng = await createOrtEngine(mw, { precision: 'f32', rank: p.rank, alpha: p.alpha, targets: p.targets, threads: 1 });
  try {
    const r = await eng.lossAndGrads(batch, p, 1 / 23);
    const loss = r.lossSum / 23;
    assert.ok(Math.abs(loss - ref.loss_init) / ref.loss_init < 1e-5, `loss ${loss} vs ${ref.loss_init}`);
    const gradRel = maxRelPerTensor(r.grads, fixtureTensors('lora_grads.safetensors', p));
    assert.ok(gradRel < 1e-3, `gradients max rel ${gradRel}`);
    console.log(`# fixture: loss rel ${(Math.abs(loss - ref.loss_init) / ref.loss_init).toExponential(2)}, grads max rel ${gradRel.toExponential(2)}`);

    // the float64 reference agrees too
    const rr = referenceStep(mw, p, batch, 1 / 23);
    assert.ok(Math.abs(rr.lossSum / 23 - ref.loss_init) / ref.loss_init < 1e-6);
    assert.ok(maxRelPerTensor(rr.grads, fixtureTensors('lora_grads.safetensors', p)) < 1e-4);

    const events: TrainEvent[] = [];
    const dir = tmp();
    const res = await train(mw.config, eng, { train: [0, 1].map((i) => ({ id: String(i), inputIds: Array.from(batch.inputIds.slice(i * 24, i * 24 + 24)), labels: readExamples(path.join(FX, 'batch.jsonl')).map((e) => tokenizeExample(e, undefined, 64))[i].labels })), val: [] },
      p, { ...base, maxSteps: 5, outDir: dir, onEvent: (e) => events.push(e) });
    const losses = events.filter((e) => e.type === 'step').map((e) => (e as { loss: number }).loss);
    losses.forEach((l, i) => assert.ok(Math.abs(l - ref.loss_before_step[i]) / ref.loss_before_step[i] < 1e-4, `step ${i + 1}: ${l} vs ${ref.loss_before_step[i]}`));
    const wRel = maxRelPerTensor(flatTensors(res.params), fixtureTensors('lora_after_step5.safetensors', p));
    let wAbs = 0;
    const want = fixtureTensors('lora_after_step5.safetensors', p);
    flatTensors(res.params).forEach((t, i) => t.forEach((v, j) => (wAbs = Math.max(wAbs, Math.abs(v - want[i][j])))));
    assert.ok(wAbs < 1e-4, `weights after 5 steps max abs ${wAbs}`);
    console.log(`# fixture: 5-step losses max rel ${Math.max(...losses.map((l, i) => Math.abs(l - ref.loss_before_step[i]) / ref.loss_before_step[i])).toExponential(2)}, weights max abs ${wAbs.toExponential(2)} (rel ${wRel.toExponential(2)})`);
    assert.deepEqual(readPeftParams(dir, mw.config).modules[0].a, res.params.modules[0].a, 'the saved adapter is the trained one');
  } finally {
    await eng.dispose();
  }
});

const randomWeights = (cfg: GemmaConfig, seed: number) => randomF32Weights(cfg, seed, { embedding: 0.5, matrix: 0.05 });

const SMALL: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 64, hidden: 32, intermediate: 64, layers: 2, layerTypes: ['sliding', 'full'], heads: 2, kvHeads: 1, headDim: 32, queryPreAttnScalar: 32, slidingWindow: 4 };

function example(id: string, rng: Rng, len: number, prompt: number): TokenizedExample {
  const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(60))];
  return { id, inputIds: ids, labels: ids.map((t, i) => (i >= prompt ? t : IGNORE)) };
}

test('padding never changes the loss or gradients; accumulation equals the big batch', async () => {
  const mw = randomWeights(SMALL, 2);
  const p = initLora(SMALL, 2, 4, ['q', 'v', 'down'], 3);
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.05 * Math.sin(i + m.layer))));
  const eng = await createOrtEngine(mw, { precision: 'f32', rank: 2, alpha: 4, targets: p.targets, threads: 1 });
  try {
    const rng = new Rng(5);
    const a = example('a', rng, 7, 3), b = example('b', rng, 12, 5);
    const ra = await eng.lossAndGrads(collate([a], 0), p, 1);
    const rb = await eng.lossAndGrads(collate([b], 0), p, 1);
    const rab = await eng.lossAndGrads(collate([a, b], 0), p, 1);
    assert.ok(Math.abs(ra.lossSum + rb.lossSum - rab.lossSum) < 1e-4 * rab.lossSum, 'Σ CE of a padded batch = Σ of its sequences');
    rab.grads.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - ra.grads[i][j] - rb.grads[i][j]) < 1e-5 + 1e-4 * Math.abs(v))));
    // against the float64 reference on the same padded batch
    const rr = referenceStep(mw, p, collate([a, b], 0), 1);
    assert.ok(Math.abs(rr.lossSum - rab.lossSum) / rr.lossSum < 1e-5);
    assert.ok(maxRelPerTensor(rab.grads, rr.grads) < 1e-3);
    // without recomputation (every activation kept from the forward) the graph gives the same numbers
    const keep = await createOrtEngine(mw, { precision: 'f32', rank: 2, alpha: 4, targets: p.targets, threads: 1, recompute: false });
    const rk = await keep.lossAndGrads(collate([a, b], 0), p, 1);
    await keep.dispose();
    assert.ok(Math.abs(rk.lossSum - rab.lossSum) < 1e-5 * rab.lossSum);
    assert.ok(maxRelPerTensor(rk.grads, rab.grads) < 1e-5);

    // one step of batch 2 vs batch 1 × accumulation 2: the same update
    const data = { train: [a, b], val: [] };
    const p1 = cloneLora(p), p2 = cloneLora(p);
    const d1 = tmp(), d2 = tmp();
    const e1: TrainEvent[] = [], e2: TrainEvent[] = [];
    await train(SMALL, eng, data, p1, { ...base, maxSteps: 1, batchSize: 2, gradAccum: 1, outDir: d1, onEvent: (e) => e1.push(e) });
    await train(SMALL, eng, data, p2, { ...base, maxSteps: 1, batchSize: 1, gradAccum: 2, outDir: d2, onEvent: (e) => e2.push(e) });
    const s1 = e1.find((e) => e.type === 'step') as { loss: number }, s2 = e2.find((e) => e.type === 'step') as { loss: number };
    assert.ok(Math.abs(s1.loss - s2.loss) < 1e-5 * s1.loss, `accumulated loss ${s2.loss} vs ${s1.loss}`);
    assert.ok(Math.abs(s1.loss - rab.lossSum / (collate([a, b], 0).labelTargets.length)) < 1e-5 * s1.loss, 'the step loss is the mean over all label tokens');
    flatTensors(p1).forEach((t, i) => t.forEach((v, j) => assert.ok(Math.abs(v - flatTensors(p2)[i][j]) < 1e-6)));
  } finally {
    await eng.dispose();
  }
});

test('q4 step graph: forward exact on the 4-bit weights; backward exact when dequantised in the graph, close with transposed 4-bit copies', async () => {
  const cfg: GemmaConfig = { ...SMALL, hidden: 64, intermediate: 128, vocabSize: 128 };
  const mwQ = loadFrom(randomWeights(cfg, 4), 'q4');
  const p = initLora(cfg, 2, 4, ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], 3);
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.05 * Math.cos(i))));
  const rng = new Rng(9);
  const batch = collate([example('a', rng, 10, 4), example('b', rng, 8, 2)], 0);
  const rr = referenceStep(loadFrom(mwQ, 'f32'), p, batch, 1); // exact gradients of the 4-bit model
  for (const how of ['dequant', 'transposed'] as const) {
    const nbitsBackward = how === 'transposed' ? transposedBackward(mwQ, 0) : undefined;
    const eng = await createOrtEngine(mwQ, { precision: 'q4', rank: 2, alpha: 4, targets: p.targets, threads: 1, accuracyLevel: 0, nbitsBackward });
    try {
      const r = await eng.lossAndGrads(batch, p, 1);
      assert.ok(Math.abs(r.lossSum - rr.lossSum) / rr.lossSum < 1e-5, `q4 loss ${r.lossSum} vs ${rr.lossSum}`);
      const rel = maxRelPerTensor(r.grads, rr.grads);
      console.log(`# q4 backward (${how}) vs exact gradients of the 4-bit model: max rel ${rel.toExponential(2)}`);
      assert.ok(rel < (how === 'dequant' ? 1e-4 : 0.5), `q4 ${how} gradients max rel ${rel}`);
    } finally {
      await eng.dispose();
    }
  }
});

// The same model with its linear weights (and embedding) as Q4_0 (with `q8Embedding`, a Q8_0
// embedding as in Google's QAT GGUF), or those quantised values dequantised.
function loadFrom(mw: ModelWeights, to: 'q4' | 'f32', q8Embedding = false): ModelWeights {
  const weights = new Map();
  for (const [name, w] of mw.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (isNormWeight(name)) weights.set(name, w);
    else if (to === 'q4') {
      if (w.value.type !== 'f32') throw new Error('expected f32');
      const q8 = q8Embedding && name === EMBED_NAME;
      weights.set(name, { shape: w.shape, value: q8 ? { type: 'q8_0', data: quantizeQ8_0(w.value.data) } : { type: 'q4_0', data: quantize(w.value.data) } });
    } else if (w.value.type === 'q8_0') {
      weights.set(name, { shape: w.shape, value: { type: 'f32', data: dequantizeQ8_0(w.value.data, n) } });
    } else {
      if (w.value.type !== 'q4_0') throw new Error('expected q4_0');
      weights.set(name, { shape: w.shape, value: { type: 'f32', data: dequantizeQ4_0(w.value.data, n) } });
    }
  }
  return { config: mw.config, weights };
}
import { quantizeQ4_0 as quantize, quantizeQ8_0, dequantizeQ8_0 } from '../../src/engine/model/quant';
import { EMBED_NAME } from '../../src/engine/model/weights';
import { hfFixture } from './shared-dir';
import { transposedBackward } from '../../bench/transposedBackward';

test('q4 step graph with a Q8_0 embedding (Google\'s QAT layout): the 8-bit head dequantises exactly too', async () => {
  const cfg: GemmaConfig = { ...SMALL, hidden: 64, intermediate: 128, vocabSize: 128 };
  const mwQ = loadFrom(randomWeights(cfg, 5), 'q4', true);
  assert.equal(mwQ.weights.get(EMBED_NAME)!.value.type, 'q8_0');
  const p = initLora(cfg, 2, 4, ['q', 'up'], 3);
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.05 * Math.sin(i))));
  const rng = new Rng(2);
  const batch = collate([example('a', rng, 9, 3), example('b', rng, 11, 4)], 0);
  const rr = referenceStep(loadFrom(mwQ, 'f32'), p, batch, 1);
  const eng = await createOrtEngine(mwQ, { precision: 'q4', rank: 2, alpha: 4, targets: p.targets, threads: 1, accuracyLevel: 0 });
  // On request, the head requantised to 4 bits as the runtime runs it (lookups keep the 8-bit rows).
  const eng4 = await createOrtEngine(mwQ, { precision: 'q4', rank: 2, alpha: 4, targets: p.targets, threads: 1, accuracyLevel: 0, headBits: 4 });
  try {
    const r = await eng.lossAndGrads(batch, p, 1);
    assert.ok(Math.abs(r.lossSum - rr.lossSum) / rr.lossSum < 1e-5, `loss ${r.lossSum} vs ${rr.lossSum}`);
    assert.ok(maxRelPerTensor(r.grads, rr.grads) < 1e-4, `grads max rel ${maxRelPerTensor(r.grads, rr.grads)}`);
    const r4 = await eng4.lossAndGrads(batch, p, 1);
    const lossRel = Math.abs(r4.lossSum - rr.lossSum) / rr.lossSum;
    console.log(`# 4-bit head vs the stored 8-bit one: loss rel ${lossRel.toExponential(2)}, gradients max rel ${maxRelPerTensor(r4.grads, rr.grads).toExponential(2)}`);
    assert.ok(lossRel > 0 && lossRel < 2e-2, 'a different head (not the stored one), but close to it');
  } finally {
    await eng.dispose();
    await eng4.dispose();
  }
});

test('trainer: validation with exact match, early stopping keeps the best adapter, cancel leaves it, resume continues exactly', async () => {
  const mw = randomWeights(SMALL, 6);
  const eng: OrtStepEngine = await createOrtEngine(mw, { precision: 'f32', rank: 2, alpha: 4, targets: ['q', 'o'], threads: 1 });
  try {
    const rng = new Rng(3);
    const trainSet = Array.from({ length: 6 }, (_, i) => example(`t${i}`, rng, 8, 4));
    const valSet = Array.from({ length: 2 }, (_, i) => example(`v${i}`, rng, 8, 4));
    const init = initLora(SMALL, 2, 4, ['q', 'o'], 1);

    // A high learning rate overfits random data fast: validation loss turns up and the run stops early.
    const dir = tmp();
    const events: TrainEvent[] = [];
    const res = await train(SMALL, eng, { train: trainSet, val: valSet }, cloneLora(init), { ...base, lr: 5e-2, epochs: 30, batchSize: 3, patience: 2, outDir: dir, onEvent: (e) => events.push(e) });
    const evals = events.filter((e) => e.type === 'eval') as Extract<TrainEvent, { type: 'eval' }>[];
    assert.equal(res.reason, 'early-stop');
    const best = evals.reduce((a, b) => (b.valLoss < a.valLoss ? b : a));
    assert.equal(res.savedStep, best.step);
    assert.equal(evals[evals.length - 1].step - best.step, 2 * 2, 'stopped after two evaluations without improvement (2 steps per epoch)');
    assert.ok(evals.every((e) => e.metric?.name === 'exact_match' && e.metric.value >= 0 && e.metric.value <= 1));
    const saved = readPeftParams(dir, SMALL);
    assert.deepEqual(saved.modules[0].a, res.params.modules[0].a, 'the saved adapter is the best one');
    const done = events[events.length - 1] as Extract<TrainEvent, { type: 'done' }>;
    assert.equal(done.bestStep, best.step);
    const steps = events.filter((e) => e.type === 'step') as Extract<TrainEvent, { type: 'step' }>[];
    assert.ok(steps.every((s) => s.tokens > 0 && s.tokensPerSec > 0 && s.etaS >= 0 && s.gradNorm > 0 && s.lr === 5e-2));
    assert.ok(Math.abs(steps[3].epoch - 2) < 1e-9);

    // Cancelling between steps leaves the best adapter so far on disk.
    const dirC = tmp();
    const ac = new AbortController();
    const resC = await train(SMALL, eng, { train: trainSet, val: valSet }, cloneLora(init), {
      ...base, lr: 1e-2, epochs: 10, batchSize: 3, outDir: dirC, signal: ac.signal,
      onEvent: (e) => { if (e.type === 'step' && e.step === 5) ac.abort(); },
    });
    assert.equal(resC.reason, 'cancelled');
    assert.equal(resC.step, 5);
    assert.equal(resC.savedStep, 4, 'the adapter of the last evaluation (end of epoch 2) is on disk');
    assert.ok(fs.existsSync(path.join(dirC, 'adapter_model.safetensors')));

    // Resume: 3 steps, stop, then resume to 6, equals 6 steps straight (shuffled, with AdamW state).
    const opts = { ...base, shuffle: true, lr: 1e-2, batchSize: 2, maxSteps: 6, seed: 11 };
    const straight = cloneLora(init);
    await train(SMALL, eng, { train: trainSet, val: [] }, straight, { ...opts, outDir: tmp() });
    const dirR = tmp();
    const ac2 = new AbortController();
    const first = cloneLora(init);
    await train(SMALL, eng, { train: trainSet, val: [] }, first, { ...opts, outDir: dirR, signal: ac2.signal, onEvent: (e) => { if (e.type === 'step' && e.step === 3) ac2.abort(); } });
    const resumed = cloneLora(init);
    const evR: TrainEvent[] = [];
    const rr = await train(SMALL, eng, { train: trainSet, val: [] }, resumed, { ...opts, outDir: dirR, resume: true, onEvent: (e) => evR.push(e) });
    assert.equal((evR[0] as Extract<TrainEvent, { type: 'start' }>).resumedFromStep, 3);
    assert.equal(rr.step, 6);
    flatTensors(resumed).forEach((t, i) => t.forEach((v, j) => assert.ok(Math.abs(v - flatTensors(straight)[i][j]) < 1e-6, 'resumed run = straight run')));
    await assert.rejects(train(SMALL, eng, { train: trainSet, val: [] }, cloneLora(init), { ...opts, lr: 0.5, outDir: dirR, resume: true }), /other data or settings/);
    // An example edited under the same id is other data too.
    const edited = trainSet.map((e, i) => (i === 0 ? { ...e, labels: e.labels.map((l) => (l === IGNORE ? l : (l + 1) % SMALL.vocabSize)) } : e));
    await assert.rejects(train(SMALL, eng, { train: edited, val: [] }, cloneLora(init), { ...opts, outDir: dirR, resume: true }), /other data or settings/);
  } finally {
    await eng.dispose();
  }
});

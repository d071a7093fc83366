import { GEMMA3_TINY, type GemmaConfig } from '../src/engine/model/config';
import { expectedShapes, isNormWeight, type ModelWeights } from '../src/engine/model/weights';
import { dequantizeQ4_0, quantizeQ4_0 } from '../src/engine/model/quant';
import { collate } from '../src/engine/train/batch';
import { createOrtEngine } from '../src/engine/train/ortEngine';
import { referenceStep } from '../src/engine/train/reference';
import { initLora } from '../src/engine/train/lora';
import { Rng } from '../src/engine/train/rng';
import { IGNORE } from '../src/engine/train/tokenize';
function randomWeights(cfg: GemmaConfig, seed: number): ModelWeights {
  const rng = new Rng(seed); const weights = new Map();
  for (const [name, shape] of expectedShapes(cfg)) { const n = shape.reduce((a, b) => a * b, 1); const std = name.includes('embed') ? 0.5 : 0.05;
    weights.set(name, { shape, value: { type: 'f32', data: Float32Array.from({ length: n }, () => (isNormWeight(name) ? 1 + 0.1 * rng.normal() : std * rng.normal())) } }); }
  return { config: cfg, weights };
}
function conv(mw: ModelWeights, to: 'q4' | 'f32'): ModelWeights {
  const weights = new Map();
  for (const [name, w] of mw.weights) {
    if (isNormWeight(name)) weights.set(name, w);
    else if (to === 'q4') weights.set(name, { shape: w.shape, value: { type: 'q4_0', data: quantizeQ4_0((w.value as {data: Float32Array}).data) } });
    else weights.set(name, { shape: w.shape, value: { type: 'f32', data: dequantizeQ4_0((w.value as {data: Uint8Array}).data, w.shape.reduce((a, b) => a * b, 1)) } });
  }
  return { config: mw.config, weights };
}
(async () => {
  const cfg: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 128, hidden: 64, intermediate: 128, layers: 2, layerTypes: ['sliding', 'full'], heads: 2, kvHeads: 1, headDim: 32, queryPreAttnScalar: 32, slidingWindow: 4 };
  const mwQ = conv(randomWeights(cfg, 4), 'q4');
  const p = initLora(cfg, 2, 4, ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], 3);
  p.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.05 * Math.cos(i))));
  const rng = new Rng(9);
  const ex = (id: string, len: number, pr: number) => { const ids = [2, ...Array.from({ length: len - 1 }, () => 3 + rng.int(120))]; return { id, inputIds: ids, labels: ids.map((t, i) => (i >= pr ? t : IGNORE)) }; };
  const batch = collate([ex('a', 10, 4), ex('b', 8, 2)], 0);
  const rr = referenceStep(conv(mwQ, 'f32'), p, batch, 1);
  for (const layers of ['transposed', 'dequant'] as const) for (const head of ['transposed', 'dequant'] as const) {
    const eng = await createOrtEngine(mwQ, { precision: 'q4', rank: 2, alpha: 4, targets: p.targets, threads: 1, accuracyLevel: 0, backward: { layers, head } });
    const r = await eng.lossAndGrads(batch, p, 1);
    let worst = 0;
    r.grads.forEach((g, i) => { let num = 0, den = 0; for (let j = 0; j < g.length; j++) { num = Math.max(num, Math.abs(g[j] - rr.grads[i][j])); den = Math.max(den, Math.abs(rr.grads[i][j])); } worst = Math.max(worst, num / den); });
    console.log(layers, head, 'loss rel', Math.abs(r.lossSum - rr.lossSum) / rr.lossSum, 'grad max rel', worst);
    await eng.dispose();
  }
})();

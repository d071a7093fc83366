import { loadModel } from '../src/engine/model/load';
import { readPeftParams } from '../src/engine/train/peftParams';
import { readExamples } from '../src/engine/train/examples';
import { tokenizeExample } from '../src/engine/train/tokenize';
import { collate } from '../src/engine/train/batch';
import { createOrtEngine } from '../src/engine/train/ortEngine';
import { readSafetensorsHeader, readSafetensorsF32 } from '../src/engine/model/safetensors';
import { peftTensorNames } from '../src/engine/train/lora';
const fx = '/work/shared/fixtures/hf-gemma3/tiny';
(async () => {
const prec = (process.argv[2] ?? 'f32') as 'f32' | 'q4';
const m = loadModel(fx, { precision: prec });
const p = readPeftParams(fx, m.weights.config);
const ex = readExamples(fx + '/batch.jsonl').map((e) => tokenizeExample(e, undefined, 1024));
const b = collate(ex, 0);
let t0 = Date.now();
const eng = await createOrtEngine(m.weights, { precision: prec, rank: p.rank, alpha: p.alpha, targets: p.targets, accuracyLevel: 0 });
console.log('build+session ms', Date.now() - t0);
t0 = Date.now();
const r = await eng.lossAndGrads(b, p, 1 / b.labelTargets.length);
console.log('run ms', Date.now() - t0, 'loss', r.lossSum / b.labelTargets.length, 'want 6.639331817626953 rel', Math.abs(r.lossSum / b.labelTargets.length - 6.639331817626953) / 6.639331817626953);
const st = readSafetensorsHeader(fx + '/lora_grads.safetensors');
let maxRel = 0, maxAbs = 0, worst = '';
p.modules.forEach((mod, i) => {
  const n = peftTensorNames(mod);
  for (const [k, g] of [[n.a, r.grads[2 * i]], [n.b, r.grads[2 * i + 1]]] as const) {
    const want = readSafetensorsF32(st, k);
    let num = 0, den = 0;
    for (let j = 0; j < want.length; j++) { maxAbs = Math.max(maxAbs, Math.abs(want[j] - g[j])); num = Math.max(num, Math.abs(want[j] - g[j])); den = Math.max(den, Math.abs(want[j])); }
    if (num / den > maxRel) { maxRel = num / den; worst = k; }
  }
});
console.log('grad max abs', maxAbs, 'max rel (per tensor, vs its max)', maxRel, worst);
})();

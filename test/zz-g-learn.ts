import * as fs from 'node:fs'; import * as os from 'node:os'; import * as path from 'node:path';
import { GEMMA3_TINY } from '../src/engine/model/config';
import { expectedShapes, isNormWeight } from '../src/engine/model/weights';
import { createOrtEngine } from '../src/engine/train/ortEngine';
import { initLora, ALL_TARGETS } from '../src/engine/train/lora';
import { train } from '../src/engine/train/trainer';
import { Rng } from '../src/engine/train/rng';
import { IGNORE } from '../src/engine/train/tokenize';
(async () => {
  const cfg = GEMMA3_TINY; const r0 = new Rng(1); const weights = new Map();
  for (const [name, shape] of expectedShapes(cfg)) { const n = shape.reduce((a, b) => a * b, 1); const std = name.includes('embed') ? 0.5 : 0.02;
    weights.set(name, { shape, value: { type: 'f32', data: Float32Array.from({ length: n }, () => (isNormWeight(name) ? 1 + 0.1 * r0.normal() : std * r0.normal())) } }); }
  const mw = { config: cfg, weights };
  const rng = new Rng(4);
  const data = Array.from({ length: 20 }, (_, i) => { const ids = [2, ...Array.from({ length: 15 }, () => 3 + rng.int(500))]; return { id: `m${i}`, inputIds: ids, labels: ids.map((t, j) => (j >= 10 ? t : IGNORE)) }; });
  const eng = await createOrtEngine(mw, { precision: 'f32', rank: 16, alpha: 32, targets: ALL_TARGETS, threads: 1 });
  for (const [lr, clip, sched, bs, ep] of [[1e-2, 1, 'constant', 10, 40], [3e-3, 1, 'constant', 10, 40]] as const) {
    const losses: number[] = [];
    await train(mw.config, eng, { train: data, val: [] }, initLora(mw.config, 16, 32, ALL_TARGETS, 2), { lr, schedule: sched, warmupSteps: 0, weightDecay: 0, maxGradNorm: clip, gradAccum: 1, seed: 1, shuffle: true, evalEvery: 0, padId: 0, epochs: ep, batchSize: bs, patience: 0, outDir: fs.mkdtempSync(path.join(os.tmpdir(), 'l-')), onEvent: (e) => { if (e.type === 'step') losses.push(e.loss); } });
    console.log(lr, clip, sched, bs, ep, losses[0].toFixed(3), losses.slice(-3).map((x) => x.toFixed(3)).join(' '));
  }
})();

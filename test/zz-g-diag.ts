import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../src/engine/model/load';
import { trainGraph } from '../src/engine/gemma/trainGraph';
import { ExternalDataFile, ort } from '../src/engine/onnx/session';
import { OrtStepEngine } from '../src/engine/train/ortEngine';
import { ALL_TARGETS, initLora } from '../src/engine/train/lora';
import { collate } from '../src/engine/train/batch';
import { syntheticExamples } from '../src/engine/train/benchTrain';
const rss = (what: string) => console.log(what, 'rss MB', (process.memoryUsage().rss / 1048576).toFixed(0), 'peak', (process.resourceUsage().maxRSS / 1024).toFixed(0));
(async () => {
  const arena = process.argv[2] !== 'noarena';
  const prof = process.argv[3] === 'prof';
  let mw: ReturnType<typeof loadModel>['weights'] | null = loadModel('/tmp/g/m270.gguf', { precision: 'q4' }).weights;
  if (process.env.SMALLV) {
    const e = mw.weights.get('model.embed_tokens.weight')!;
    const rowBytes = (e.value as { data: Uint8Array }).data.length / e.shape[0];
    mw.weights.set('model.embed_tokens.weight', { shape: [2048, e.shape[1]], value: { ...(e.value as { type: 'q8_0' }), data: (e.value as { data: Uint8Array }).data.slice(0, 2048 * rowBytes) } as never });
    mw = { ...mw, config: { ...mw.config, vocabSize: 2048 } };
    console.log('embedding', e.value.type, 'cut to 2048 rows');
  }
  const cfg = mw.config;
  rss('loaded');
  const file = new ExternalDataFile();
  const g = trainGraph(mw, { precision: 'q4', accuracyLevel: 4, rank: 16, alpha: 32, targets: ALL_TARGETS, recompute: process.argv[4] !== 'norecompute', backward: { layers: (process.env.LAYERS ?? 'dequant') as 'dequant', head: (process.env.HEAD ?? 'dequant') as 'dequant' } }, file);
  mw = null;
  rss('graph built');
  const built = g.build();
  fs.closeSync((file as unknown as { fd: number }).fd);
  const mp = path.join(file.dir, 'model.onnx');
  fs.writeFileSync(mp, built.model);
  console.log('nodes', g.nodes.length);
  let t = Date.now();
  const sess = await ort.InferenceSession.create(mp, { executionProviders: ['cpu'], intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'basic',
    enableCpuMemArena: arena, enableMemPattern: arena, enableProfiling: prof, profileFilePrefix: '/tmp/g/prof', logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } });
  file.remove();
  console.log('session s', (Date.now() - t) / 1000); rss('session');
  const eng = new OrtStepEngine(cfg, sess, 16, ALL_TARGETS);
  const p = initLora(cfg, 16, 32, ALL_TARGETS, 1);
  const ex = syntheticExamples(4, 120, 40, cfg.vocabSize, 3);
  const b = collate(ex, 0);
  for (let i = 0; i < 3; i++) {
    t = Date.now();
    await eng.lossAndGrads(b, p, 1 / 160);
    console.log('step s', (Date.now() - t) / 1000); rss('step');
  }
  if (prof) console.log(sess.endProfiling());
})();

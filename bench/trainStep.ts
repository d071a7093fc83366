// One step engine on a model file, run by run: wall and CPU seconds and RSS (anonymous and file-mapped:
// ORT maps the weights) after each run, then a forward-only evaluation. --engine native|onnx picks the
// engine (default native where it runs: stepEngine.ts); the flags after --engine are the ONNX Runtime step
// graph's. With --profile (onnx), ORT's kernel profile of the last training run, summed by op type and by
// (op, input shapes): where a step's time goes, which the whole fine-tune (bench/train.ts) cannot say, and
// what ran on one thread (threadSummary).
//   node --import tsx bench/trainStep.ts [MODEL] [--runs N] [--micro M] [--tokens T] [--completion C] [--rank R]
//        [--engine auto|native|onnx] [--keep all|none|q,k,…] [--no-recompute] [--head-bits 4|8] [--threads N] [--profile]
//        [--spin] [--inter-op N]   (intra-op threads spinning between kernels; N > 1: ORT's parallel execution mode)
// MODEL defaults to bench/out/270m-q4.gguf (`gemma-tune make-model --config 270m --format gguf
// --dtype q4_0 --embedding q8_0 --seed 1 --out bench/out/270m-q4.gguf`).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openWeights } from '../src/engine/model/load';
import type { OrtStepEngine } from '../src/engine/train/ortEngine';
import { createStepEngine, type EngineChoice, type OwnedStepEngine } from '../src/engine/train/stepEngine';
import { ALL_TARGETS, initLora, type LoraTarget } from '../src/engine/train/lora';
import { syntheticExamples } from '../src/engine/train/benchTrain';
import { collate } from '../src/engine/train/batch';
import { flag, has } from './flags';
import { profileIn, summariseProfile, threadSummary } from './ortProfile';
import { residentMB } from './procMemory';

const first = process.argv[2];
const model = first && !first.startsWith('--') ? first : 'bench/out/270m-q4.gguf';
const runs = Number(flag('runs', '4'));
const micro = Number(flag('micro', '2'));
const tokens = Number(flag('tokens', '120'));
const completion = Number(flag('completion', '40'));
const rank = Number(flag('rank', '16'));
const keepFlag = flag('keep', 'all');
const keep: readonly LoraTarget[] = keepFlag === 'all' ? ALL_TARGETS : keepFlag === 'none' ? [] : (keepFlag.split(',') as LoraTarget[]);

async function main(): Promise<void> {
  const source = openWeights(model, { precision: 'q4' }).source;
  const cfg = source.config;
  const params = initLora(cfg, rank, 2 * rank, ALL_TARGETS, 1);
  // A trained adapter's B is not 0 (PEFT's start), which would leave the A gradients' products out.
  params.modules.forEach((m) => m.b.forEach((_, i) => (m.b[i] = 0.01 * Math.sin(i))));
  const choice = flag('engine', 'auto') as EngineChoice;
  const profileDir = has('profile') ? fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-train-profile-')) : null;
  if (profileDir && choice !== 'onnx') throw new Error('--profile is ONNX Runtime\'s: pass --engine onnx');
  const t0 = performance.now();
  const opened = await createStepEngine(source, {
    precision: 'q4', rank, alpha: 2 * rank, targets: ALL_TARGETS, threads: Number(flag('threads', '2')), engine: choice,
    recompute: !has('no-recompute'), keepProjections: keep, headBits: flag('head-bits', '8') === '4' ? 4 : 8, profilePrefix: profileDir ? path.join(profileDir, 'step') : undefined,
    spinning: has('spin'), interOpThreads: Number(flag('inter-op', '1')),
  });
  const engine: OwnedStepEngine = opened.engine;
  const m0 = residentMB();
  const how = opened.kind === 'native' ? 'native code' : `ONNX Runtime, kept projections: ${keep.join(',') || 'none'}${has('no-recompute') ? ', no recompute' : ''}`;
  console.log(`${model}: ${micro} × ${tokens} tokens per run (last ${completion} labelled), r${rank}, steps on ${how}`);
  console.log(`engine ready in ${((performance.now() - t0) / 1000).toFixed(1)} s, RSS ${m0.now} MB (anon ${m0.anon}, file ${m0.file})  [${os.loadavg().map((l) => l.toFixed(2)).join(' ')}]`);
  const batch = collate(syntheticExamples(micro, tokens, completion, cfg.vocabSize, 7), cfg.padId);
  try {
    for (let r = 0; r < runs; r++) {
      const c = process.cpuUsage();
      const t = performance.now();
      await engine.lossAndGrads(batch, params, 1);
      const cpu = process.cpuUsage(c);
      const m = residentMB();
      console.log(`run ${r}: ${((performance.now() - t) / 1000).toFixed(2)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU, RSS ${m.now} MB (anon ${m.anon}, file ${m.file})`);
    }
    const t = performance.now();
    await engine.evaluate(batch, params);
    console.log(`evaluation (forward only): ${((performance.now() - t) / 1000).toFixed(2)} s; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB  [${os.loadavg().map((l) => l.toFixed(2)).join(' ')}]`);
    if (profileDir) {
      await (engine as OrtStepEngine).endProfiling();
      const file = profileIn(profileDir);
      for (const line of file ? [...summariseProfile(file, runs - 1), ...threadSummary(file, runs - 1)] : ['profile: no file written']) console.log(line);
    }
  } finally {
    await engine.dispose();
    if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

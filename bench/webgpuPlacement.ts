// Which kernels of our graphs ORT runs on the GPU and which it leaves on the CPU under the WebGPU execution
// provider, read from ORT's profile of real runs (If branches included): the inference graph with LoRA inputs
// (a 64-token prefill, then one decode step) and the train-step graph (one step with its backward, then a
// validation run). The graphs are built for WebGPU (onnx/lowering.ts), as the engine builds them.
// usage: node --import tsx bench/webgpuPlacement.ts --model FILE.gguf [--precision q4|f32] [--threads 8]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openWeights } from '../src/engine/model/load';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import type { Precision } from '../src/engine/gemma/runtime';
import { createOrtEngine } from '../src/engine/train/ortEngine';
import { ALL_TARGETS, initLora } from '../src/engine/train/lora';
import { collate } from '../src/engine/train/batch';
import { syntheticExamples } from '../src/engine/train/benchTrain';
import { resolveDevice } from '../src/engine/onnx/device';
import { placementSummary, profileIn } from './ortProfile';
import { flag } from './flags';

async function main(): Promise<void> {
  const model = flag('model', '');
  if (!model) throw new Error('--model FILE.gguf is required');
  const precision = flag('precision', 'q4') as Precision;
  const threads = Number(flag('threads', '8'));
  await resolveDevice('webgpu');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-webgpu-placement-'));
  try {
    const source = openWeights(model, { precision }).source;
    const V = source.config.vocabSize;
    const rt = await createGemmaRuntime(source, { precision, threads, device: 'webgpu', lora: 'always', session: { profilePrefix: path.join(dir, 'infer') } });
    const cache = rt.newCache();
    await rt.step(cache, Array.from({ length: 64 }, (_, i) => (1000 + 7 * i) % V), { logits: 'last' });
    await rt.step(cache, [(2000 % V)], { logits: 'last' });
    await rt.dispose(); // releasing the session writes the profile
    const inferProfile = profileIn(dir);
    if (!inferProfile) throw new Error('ORT wrote no inference profile');
    console.log(`inference graph (${precision}, LoRA inputs), 64-token prefill:`);
    for (const l of placementSummary(inferProfile, 0)) console.log(`  ${l}`);
    console.log('inference graph, one decode step:');
    for (const l of placementSummary(inferProfile, 1)) console.log(`  ${l}`);
    fs.rmSync(inferProfile);

    const cfg = source.config;
    const engine = await createOrtEngine(openWeights(model, { precision }).source, { precision, rank: 8, alpha: 16, targets: ALL_TARGETS, threads, device: 'webgpu', profilePrefix: path.join(dir, 'train') });
    const params = initLora(cfg, 8, 16, ALL_TARGETS, 3);
    const batch = collate(syntheticExamples(2, 64, 24, V, 11), cfg.padId);
    await engine.lossAndGrads(batch, params, 1 / 48);
    await engine.evaluate(batch, params);
    await engine.dispose();
    const trainProfile = profileIn(dir);
    if (!trainProfile) throw new Error('ORT wrote no train-step profile');
    console.log(`train-step graph (${precision}, LoRA r8 on all projections), one step of 2 × 64 tokens:`);
    for (const l of placementSummary(trainProfile, 0)) console.log(`  ${l}`);
    console.log('train-step graph, validation (forward only):');
    for (const l of placementSummary(trainProfile, 1)) console.log(`  ${l}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`webgpu placement: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

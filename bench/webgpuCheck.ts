// WebGPU against the CPU on one model: the same requests through a runtime on each device, and one train
// step on each, compared value by value. Prints max |GPU − CPU| and max |CPU| per case and "ok" when their
// ratio is under --tolerance (default 1e-4: float32 rounding through every layer, well below the ~1e-1 that
// a wrong kernel or a different activation quantisation gives). Exit code 1 when a case fails.
//
// usage: node --import tsx bench/webgpuCheck.ts --model FILE.gguf [--precision q4|f32] [--prompt 300]
//        [--threads 8] [--tolerance 1e-4] [--max-chunk N] [--no-train]
// --max-chunk caps the tokens of one run (OrtRuntimeOptions.maxChunk) on both sides.
// Both sides run MatMulNBits at accuracy level 0 (the WebGPU default); the CPU's own default, level 4
// (int8 activations), is compared too, for information.

import { openWeights } from '../src/engine/model/load';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import type { GemmaRuntime, LoraAdapter, Precision } from '../src/engine/gemma/runtime';
import { classify } from '../src/engine/generate/labelScoring';
import { createOrtEngine } from '../src/engine/train/ortEngine';
import { ALL_TARGETS, initLora, toRuntimeAdapter } from '../src/engine/train/lora';
import { collate } from '../src/engine/train/batch';
import { syntheticExamples } from '../src/engine/train/benchTrain';
import { resolveDevice, type Device } from '../src/engine/onnx/device';
import { Rng } from '../src/engine/rng';
import { flag, has } from './flags';

type Case = { name: string; cpu: Float32Array; gpu: Float32Array };

function compare(c: Case, tolerance: number, informational = false): boolean {
  let diff = c.cpu.length === c.gpu.length ? 0 : Infinity, scale = 0;
  for (let i = 0; i < c.cpu.length && diff !== Infinity; i++) {
    const d = Math.abs(c.cpu[i] - c.gpu[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(c.cpu[i]));
  }
  const ok = diff <= tolerance * scale;
  console.log(`${informational ? 'info' : ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(44)} max|Δ| ${diff.toExponential(2)}  max|cpu| ${scale.toFixed(3)}  ratio ${(diff / scale).toExponential(2)}`);
  return ok;
}

/** The arrays one after another (spreading a 262k-vocabulary row into push() overflows the stack). */
function joined(parts: ArrayLike<number>[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A random LoRA adapter on every projection (B nonzero, so it changes the logits). */
function randomAdapter(rt: GemmaRuntime, rank: number, seed: number): LoraAdapter {
  const p = initLora(rt.config, rank, 2 * rank, ALL_TARGETS, seed);
  const rng = new Rng(seed + 1);
  for (const m of p.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = (rng.next() - 0.5) * 0.02;
  return toRuntimeAdapter(p);
}

/** Everything the inference path does, on one runtime: each result as one float array. */
async function inferenceCases(rt: GemmaRuntime, promptLen: number): Promise<Map<string, Float32Array>> {
  const V = rt.config.vocabSize;
  const rng = new Rng(99);
  // Ids above the control tokens of Gemma's vocabulary (the tiny test model has only 512).
  const lo = Math.min(300, V >> 2);
  const id = (k: number) => lo + (k % (V - lo));
  const ids = (n: number) => Array.from({ length: n }, () => id(Math.floor(rng.next() * 20000)));
  const out = new Map<string, Float32Array>();
  const prompt = ids(promptLen);
  rt.setAdapter('rand', randomAdapter(rt, 8, 5));
  for (const adapter of [undefined, 'rand', undefined]) {
    const tag = adapter ? 'adapter' : out.has('prefill, all positions') ? 'base after adapter' : '';
    const key = (s: string) => (tag ? `${s} (${tag})` : s);
    const cache = rt.newCache();
    out.set(key('prefill, all positions'), await rt.step(cache, prompt, { logits: 'all', adapter }));
    const decoded: Float32Array[] = [];
    for (let i = 0; i < 8; i++) decoded.push(await rt.step(cache, [id(1000 + 37 * i)], { logits: 'last', adapter }));
    out.set(key('decode, 8 steps'), joined(decoded));
    if (rt.scoreSequences) {
      const lp = await rt.scoreSequences(cache, [[id(500)], [id(501), id(502)], [id(503), id(504), id(505)]], { prefix: ids(20), adapter });
      out.set(key('sequences after a prefix, log-probabilities'), Float32Array.from(lp.flat()));
    }
    cache.dispose();
    const labels = ['alpha', 'beta', 'gamma', 'delta'];
    const r = await classify(rt, undefined, { promptIds: ids(Math.min(100, promptLen)), labels, labelIds: [[id(700)], [id(701)], [id(702), id(703)], [id(704), id(705)]], adapter });
    out.set(key('classify, label log-probabilities'), Float32Array.from(r.scores.map((s) => s.logprob)));
  }
  return out;
}

async function runtimeOn(model: string, precision: Precision, device: Device, threads: number, accuracyLevel: 0 | 4): Promise<GemmaRuntime> {
  const maxChunk = has('max-chunk') ? Number(flag('max-chunk', '256')) : undefined;
  return createGemmaRuntime(openWeights(model, { precision }).source, { precision, threads, device, accuracyLevel, lora: 'always', maxChunk });
}

/** Loss and every gradient of one micro-batch (2 × 64 tokens, the last 24 labelled) on one device. */
async function trainStep(model: string, precision: Precision, device: Device, threads: number): Promise<Float32Array[]> {
  const source = openWeights(model, { precision }).source;
  const cfg = source.config;
  const params = initLora(cfg, 8, 16, ALL_TARGETS, 3);
  const rng = new Rng(4);
  for (const m of params.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = (rng.next() - 0.5) * 0.02;
  const engine = await createOrtEngine(source, { precision, rank: 8, alpha: 16, targets: ALL_TARGETS, threads, device, accuracyLevel: 0 });
  try {
    const batch = collate(syntheticExamples(2, 64, 24, cfg.vocabSize, 11), cfg.padId);
    const { lossSum, grads } = await engine.lossAndGrads(batch, params, 1 / 48);
    const ev = await engine.evaluate(batch, params);
    return [Float32Array.of(lossSum, ev.lossSum), ...grads];
  } finally {
    await engine.dispose();
  }
}

async function main(): Promise<void> {
  const model = flag('model', '');
  if (!model) throw new Error('--model FILE.gguf is required');
  const precision = flag('precision', 'q4') as Precision;
  const promptLen = Number(flag('prompt', '300'));
  const threads = Number(flag('threads', '8'));
  const tolerance = Number(flag('tolerance', '1e-4'));
  await resolveDevice('webgpu'); // throws with the reason when there is no adapter
  let ok = true;
  const results: Record<string, Map<string, Float32Array>> = {};
  for (const [side, device, acc] of [['cpu', 'cpu', 0], ['gpu', 'webgpu', 0], ['cpu4', 'cpu', 4]] as const) {
    const rt = await runtimeOn(model, precision, device, threads, acc);
    try {
      results[side] = await inferenceCases(rt, promptLen);
    } finally {
      await rt.dispose();
    }
  }
  console.log(`inference, ${precision}, ${promptLen}-token prompt, accuracy level 0 on both:`);
  for (const [name, cpu] of results.cpu) ok = compare({ name, cpu, gpu: results.gpu.get(name)! }, tolerance) && ok;
  if (precision === 'q4') {
    console.log('for information, the CPU default (accuracy level 4, int8 activations) against the GPU:');
    for (const [name, cpu] of results.cpu4) compare({ name, cpu, gpu: results.gpu.get(name)! }, tolerance, true);
  }
  if (!has('no-train')) {
    const cpu = await trainStep(model, precision, 'cpu', threads);
    const gpu = await trainStep(model, precision, 'webgpu', threads);
    console.log(`train step, ${precision}, 2 × 64 tokens, LoRA r8 on all projections:`);
    ok = compare({ name: 'loss (step, validation)', cpu: cpu[0], gpu: gpu[0] }, tolerance) && ok;
    const flat = (xs: Float32Array[]) => joined(xs.slice(1));
    ok = compare({ name: 'every LoRA gradient', cpu: flat(cpu), gpu: flat(gpu) }, tolerance) && ok;
  }
  console.log(ok ? 'webgpu check: all cases ok' : 'webgpu check: FAILED');
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(`webgpu check: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 2;
});

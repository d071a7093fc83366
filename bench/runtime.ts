// Runtime benchmark on the real 270M shape with Q4_0 weights (random values, same bytes and shapes as
// Google's QAT GGUF: Q4_0 linears, Q8_0 embedding by default), 2 threads:
//   load time, time to first token and prefill tok/s for 512 prompt tokens, decode tok/s for 128 tokens
//   after a 64-token prompt, peak RSS.
// usage: node --expose-gc --import tsx bench/runtime.ts [--embedding q8_0|q4_0] [--accuracy 0|4] [--threads N]
//        [--head-accuracy 0|4] [--opt basic|all] [--spin 0|1] [--prompt 512] [--gen 128] [--model FILE]
// Without --model the weights are random Q4_0/Q8_0 blocks made in memory (load time then covers graph
// build + session creation, not file reading); with --model FILE a .gguf (e.g. from make-model) is loaded.

import * as path from 'node:path';
import { GEMMA3_270M } from '../src/engine/model/config';
import { loadModel } from '../src/engine/model/load';
import { expectedShapes, isNormWeight, EMBED_NAME, type ModelWeights, type Weight } from '../src/engine/model/weights';
import { f32ToF16 } from '../src/engine/model/quant';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import type { OptLevel } from '../src/engine/onnx/session';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Random 270M-shape weights: Q4_0 linears, Q4_0 or Q8_0 embedding, norms near 1. */
function randomWeights(embedding: 'q8_0' | 'q4_0'): ModelWeights {
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const weights = new Map<string, Weight>();
  for (const [name, shape] of expectedShapes(GEMMA3_270M)) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (isNormWeight(name)) {
      weights.set(name, { shape, value: { type: 'f32', data: Float32Array.from({ length: n }, () => 1 + 0.1 * (rnd() - 0.5)) } });
      continue;
    }
    const q8 = name === EMBED_NAME && embedding === 'q8_0';
    const per = q8 ? 34 : 18;
    const data = new Uint8Array((n / 32) * per);
    for (let i = 0; i < data.length; i++) data[i] = (rnd() * 256) | 0;
    const d = f32ToF16(q8 ? 0.1 / 64 : 0.02 / 4);
    for (let b = 0; b < n / 32; b++) {
      data[b * per] = d & 0xff;
      data[b * per + 1] = d >> 8;
    }
    weights.set(name, { shape, value: q8 ? { type: 'q8_0', data } : { type: 'q4_0', data } });
  }
  return { config: GEMMA3_270M, weights };
}

async function main(): Promise<void> {
  const embedding = flag('embedding', 'q8_0') as 'q8_0' | 'q4_0';
  const accuracyLevel = Number(flag('accuracy', '4')) as 0 | 4;
  const threads = Number(flag('threads', '2'));
  const optimization = flag('opt', 'basic') as OptLevel;
  const spinning = flag('spin', '0') === '1';
  const headAccuracyLevel = Number(flag('head-accuracy', String(accuracyLevel))) as 0 | 4;
  const promptLen = Number(flag('prompt', '512'));
  const genLen = Number(flag('gen', '128'));
  const file = flag('model', '');

  const t0 = performance.now();
  const rt = await (async () => {
    const weights = file ? loadModel(file, { precision: 'q4' }).weights : randomWeights(embedding);
    return createGemmaRuntime(weights, { precision: 'q4', threads, accuracyLevel, headAccuracyLevel, optimization, spinning });
  })();
  const loadS = (performance.now() - t0) / 1000;
  // Steady state: the JS copies of the weights are garbage once the session holds them.
  (globalThis as { gc?: () => void }).gc?.();
  const rssAfterLoad = process.memoryUsage().rss / 2 ** 20;

  const V = rt.config.vocabSize;
  const prompt = Array.from({ length: promptLen }, (_, i) => 3 + ((i * 7919) % (V - 3)));
  prompt[0] = 2;
  // Warm-up run (first-run allocations), not counted.
  await rt.step(rt.newCache(), prompt.slice(0, 8), { logits: 'last' });

  const tp = performance.now();
  await rt.step(rt.newCache(), prompt, { logits: 'last' });
  const ttft = (performance.now() - tp) / 1000;

  const cache = rt.newCache();
  let logits = await rt.step(cache, prompt.slice(0, 64), { logits: 'last' });
  const td = performance.now();
  for (let i = 0; i < genLen; i++) logits = await rt.step(cache, [argmax(logits)], { logits: 'last' });
  const decodeS = (performance.now() - td) / 1000;

  await rt.dispose();
  const peak = process.resourceUsage().maxRSS / 1024;
  const result = {
    model: file ? path.basename(file) : `random-270m-q4_0-${embedding}-in-memory`, threads, spinning, accuracyLevel, headAccuracyLevel, optimization,
    load_s: +loadS.toFixed(2),
    ttft_512_s: +ttft.toFixed(3),
    prefill_tok_s: +(promptLen / ttft).toFixed(1),
    decode_tok_s: +(genLen / decodeS).toFixed(1),
    rss_after_load_mb: Math.round(rssAfterLoad),
    peak_rss_mb: Math.round(peak),
  };
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// Runtime benchmark on the real 270M shape with Q4_0 weights, 2 threads, on the path `gemma-tune bench`
// takes (openWeights → tokenizer → createGemmaRuntime), with the runtime's tuning knobs exposed so that
// one change can be measured against another in the same run:
//   load time, time to first token and prefill tok/s for 512 prompt tokens, decode tok/s for 128 tokens
//   after a 64-token prompt, classify latency (100-token input, 4 labels), RSS after each phase and peak.
// usage: node --import tsx bench/runtime.ts --model FILE.gguf [--accuracy 0|4] [--head-accuracy 0|4]
//        [--head-parts N] [--head-bits 4|8] [--arena 0|1] [--mem-pattern 0|1] [--threads N] [--opt basic|all] [--spin 0|1] [--prompt 512] [--gen 128]
//        [--chunk 256] [--attention gqa|matmul] [--lora lazy|always|never] [--decode native|onnx] [--config ort.key=value,...] [--repeat N] [--maps]
//        [--cache DIR] (open the converted model from DIR, converting into it the first time, as the CLI and the extension do)
//        [--adapter-rank R] (decode with a LoRA adapter of rank R on all seven projections of every layer, as a tuned task does)
//        [--exact-head 1] (decode with every logit exact, instead of telling the runtime that greedy reads only the largest)
// Make the model with: node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1
//   --out bench/out/270m-q4.gguf   (Q8_0 embedding as in Google's QAT GGUF; --embedding q4_0 for Q4_0)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { openWeights } from '../src/engine/model/load';
import { createTokenizer } from '../src/engine/model/tokenizer';
import { createGemmaRuntime, type LoraMode } from '../src/engine/gemma/ortRuntime';
import { baseIdentity, modelStamp } from '../src/engine/model/identity';
import { classify } from '../src/engine/generate/labelScoring';
import { Sampler } from '../src/engine/generate/sampling';
import { ALL_TARGETS } from '../src/engine/model/loraTargets';
import { initLora, toRuntimeAdapter } from '../src/engine/train/lora';
import type { OptLevel } from '../src/engine/onnx/session';
import { flag, has } from './flags';
import { mapsSummary, residentMB } from './procMemory';

/** Where this process's resident memory lies, with the JS heap's share, for --maps. */
function mapsLine(): string {
  const m = process.memoryUsage();
  return `js heap ${Math.round(m.heapUsed / 2 ** 20)}/${Math.round(m.heapTotal / 2 ** 20)} MB, array buffers ${Math.round(m.arrayBuffers / 2 ** 20)} MB; ${mapsSummary()}`;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

function ids(n: number, V: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + salt * 104729) % (V - 1000)));
}

async function main(): Promise<void> {
  const file = flag('model', '');
  if (!file) throw new Error('--model FILE.gguf is required (see the header for how to make one)');
  const accuracyLevel = Number(flag('accuracy', '4')) as 0 | 4;
  const headAccuracyLevel = has('head-accuracy') ? Number(flag('head-accuracy', '0')) as 0 | 4 : undefined;
  const headParts = Number(flag('head-parts', '8'));
  const headBits = Number(flag('head-bits', '8')) as 4 | 8;
  const attention = flag('attention', 'gqa') as 'gqa' | 'matmul';
  const threads = Number(flag('threads', '2'));
  const memArena = flag('arena', '1') === '1';
  const memPattern = flag('mem-pattern', '1') === '1';
  const optimization = flag('opt', 'basic') as OptLevel;
  const spinning = flag('spin', '0') === '1';
  const promptLen = Number(flag('prompt', '512'));
  const genLen = Number(flag('gen', '128'));
  const repeat = Number(flag('repeat', '1'));
  const maxChunk = Number(flag('chunk', '256'));
  const lora = flag('lora', 'lazy') as LoraMode;
  const decode = flag('decode', 'native') as 'native' | 'onnx';
  const adapterRank = Number(flag('adapter-rank', '0'));
  // Greedy decode tells the runtime it reads only the largest logit (as generate does); --exact-head 1 asks for every logit exact.
  const exactHead = flag('exact-head', '0') === '1';
  const configEntries = Object.fromEntries(flag('config', '').split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  const rss: Record<string, number> = {};
  const showMaps = has('maps');
  const cacheDir = flag('cache', '');

  const t0 = performance.now();
  const { source, tokenizerSource } = openWeights(file, { precision: 'q4' });
  const tok = tokenizerSource ? createTokenizer(tokenizerSource) : null;
  rss.tokenizer = residentMB().now;
  if (showMaps) console.error(`tokenizer: ${mapsLine()}`);
  const cache = cacheDir ? { root: path.resolve(cacheDir), modelStamp: modelStamp(file, baseIdentity(file, source.config).fingerprint) } : undefined;
  const rt = await createGemmaRuntime(source, {
    precision: 'q4', threads, accuracyLevel, headAccuracyLevel, headParts, headBits, maxChunk, lora, attention, cache, decode,
    session: { optimization, spinning, memArena, memPattern, configEntries },
  });
  const loadS = (performance.now() - t0) / 1000;
  rss.load = residentMB().now;
  if (showMaps) console.error(`load: ${mapsLine()}`);
  void tok;

  const V = rt.config.vocabSize;
  const adapter = adapterRank > 0 ? 'bench' : undefined;
  if (adapter) {
    // A fresh adapter on all seven projections of every layer, B made nonzero (speed only).
    const lora = initLora(rt.config, adapterRank, 2 * adapterRank, ALL_TARGETS, 1);
    for (const m of lora.modules) m.b.fill(1e-3);
    rt.setAdapter(adapter, toRuntimeAdapter(lora));
  }
  await rt.step(rt.newCache(), ids(8, V, 0), { logits: 'last', adapter }); // first-run allocations, not counted

  const results: Record<string, number>[] = [];
  for (let rep = 0; rep < repeat; rep++) {
    const prompt = ids(promptLen, V, 1 + rep);
    const tp = performance.now();
    const up = process.cpuUsage();
    const c0 = rt.newCache();
    await rt.step(c0, prompt, { logits: 'last' });
    const ttft = (performance.now() - tp) / 1000;
    const prefillCpu = cpuSeconds(up);
    c0.dispose();
    rss.prefill = residentMB().now;
    if (showMaps) console.error(`prefill: ${mapsLine()}`);

    const cache = rt.newCache();
    const greedy = { logits: 'last', adapter, choice: exactHead ? undefined : { top: 1 } } as const;
    let logits = await rt.step(cache, prompt.slice(0, 64), greedy);
    const td = performance.now();
    const ud = process.cpuUsage();
    // Chosen as generate chooses: greedy, looking only at the ids the step computed exactly (all without a choice).
    const sampler = new Sampler({ temperature: 0 });
    for (let i = 0; i < genLen; i++) logits = await rt.step(cache, [sampler.sample(logits, cache.candidates)], greedy);
    const decodeS = (performance.now() - td) / 1000;
    const decodeCpu = cpuSeconds(ud);
    cache.dispose();
    rss.decode = residentMB().now;

    const labels = ['positive', 'negative', 'neutral', 'mixed'];
    const labelIds = labels.map((_, i) => ids(1 + (i >> 1), V, 10 + i));
    const runs: number[] = [];
    const uc = process.cpuUsage();
    for (let i = 0; i < 3; i++) {
      const tc = performance.now();
      await classify(rt, undefined, { promptIds: ids(100, V, 20 + i), labels, labelIds });
      runs.push(performance.now() - tc);
    }
    const classifyCpu = cpuSeconds(uc) / 3;
    runs.sort((a, b) => a - b);
    rss.classify = residentMB().now;
    if (showMaps) console.error(`classify: ${mapsLine()}`);
    results.push({
      ttft_512_s: +ttft.toFixed(3), prefill_tok_s: +(promptLen / ttft).toFixed(1), decode_tok_s: +(genLen / decodeS).toFixed(1), classify_ms: Math.round(runs[1]),
      // CPU seconds (all threads) per unit of work: steadier than wall time on a shared machine.
      prefill_cpu_s: +prefillCpu.toFixed(3), decode_cpu_ms_per_tok: +((decodeCpu * 1000) / genLen).toFixed(2), classify_cpu_ms: Math.round(classifyCpu * 1000),
    });
  }
  await rt.dispose();
  const peak = Math.round(process.resourceUsage().maxRSS / 1024);
  console.log(JSON.stringify({
    model: path.basename(file), threads, accuracyLevel, headAccuracyLevel: headAccuracyLevel ?? 'default', headParts, headBits, attention, maxChunk, lora, memArena, memPattern, optimization, spinning, configEntries,
    load_s: +loadS.toFixed(2), weights_from: rt.weightsFrom, decode_by: rt.decodeBy.note, adapter_rank: adapterRank, runs: results, rss_mb: rss, peak_rss_mb: peak, loadavg: +fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0],
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

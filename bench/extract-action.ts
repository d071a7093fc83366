// Latency of the "Extract with <task>" code action on the 270M shape, with and without the worker's
// prompt-prefix cache: EngineClient on the host side, the engine worker bundled from src (into
// .cache/bench-extract-action/, so dist/ is left alone) with the model at the default settings (Q4,
// 2 threads), the task's PEFT adapter loaded through AdapterCache, and the request built by
// taskRequests.ts (extractRequest: sharedPrefix = the task's instruction and fields) for a fields task
// and a ~100-token selection. Each run is timed from "the command starts" to "the result is back";
// requests with and without sharedPrefix alternate (same load), and must give the same tokens.
//
// The model's weights are random, so its JSON values run on; --max-tokens caps the object (the
// decoding after the prompt costs the same either way; the cache saves the shared prompt's prefill).
//
// usage: node --import tsx bench/extract-action.ts [--model FILE] [--runs 5] [--threads 2] [--tokens 100] [--max-tokens 64] [--adapter 0]
// The model defaults to bench/out/270m-q4-gemma-vocab.gguf (see bench/classify-action.ts for how it is made).

import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../src/client/engineClient';
import { AdapterCache } from '../src/client/adapterCache';
import { extractRequest, taskMessages } from '../src/client/taskRequests';
import type { ParamsOf } from '../src/protocol/engine';
import { newTaskConfig } from '../src/store/task';
import { flag } from './flags';
import { buildWorker } from '../test/unit/worker-helpers';

const root = path.resolve(__dirname, '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const SENTENCE = 'Thanks for the quick reply. Best regards, Ana Ruiz, platform team, ana.ruiz@example.org, +34 600 123 456. ';

async function main(): Promise<void> {
  const model = path.resolve(flag('model', path.join(root, 'bench/out/270m-q4-gemma-vocab.gguf')));
  const runs = Number(flag('runs', '5'));
  const threads = Number(flag('threads', '2'));
  const wantTokens = Number(flag('tokens', '100'));
  const maxTokens = Number(flag('max-tokens', '64'));
  const useAdapter = flag('adapter', '1') !== '0';
  const adapterDir = path.join(root, 'bench/out/270m-adapter-r16');
  if (!existsSync(model)) throw new Error(`${model} is missing: make it as bench/classify-action.ts says`);
  if (useAdapter && !existsSync(path.join(adapterDir, 'adapter_model.safetensors'))) throw new Error(`${adapterDir} is missing: bench/classify-action.ts makes it`);

  const workerPath = await buildWorker('bench-extract-action');

  const task = newTaskConfig({
    name: 'Contact',
    kind: 'extract',
    instruction: 'Extract the sender\'s contact details from the e-mail signature. Use an empty string for a missing field.',
    fields: ['name', 'email', 'phone', 'team'],
  });
  const load0 = os.loadavg();
  const quiet = (): void => undefined;
  const say = (m: string): void => console.log(`  [engine] ${m}`);
  const engine = new EngineClient({ workerPath, logger: { trace: quiet, debug: quiet, info: quiet, warn: say, error: say } });
  try {
    await engine.request('loadModel', { path: model, precision: 'q4', threads });
    const promptTokens = async (input: string) => (await engine.request('generate', { messages: taskMessages(task, input), maxTokens: 0 })).promptTokens;
    const empty = await promptTokens('');
    let input = '';
    while ((await promptTokens(input)) - empty < wantTokens) input += SENTENCE;
    const total = await promptTokens(input);
    const adapters = new AdapterCache(engine);
    const adapterName = async () => (useAdapter ? adapters.ensure(adapterDir, 'contact', 1) : undefined);

    const extractOnce = async (shared: boolean, text: string): Promise<{ ms: number; tokens: number[] }> => {
      const t0 = performance.now();
      const req = extractRequest(task, text, await adapterName());
      if (req.method !== 'extract') throw new Error('expected a fields extract');
      const params: ParamsOf<'extract'> = { ...req.params, maxTokens };
      if (!shared) delete params.sharedPrefix;
      const r = await engine.request('extract', params);
      return { ms: performance.now() - t0, tokens: r.tokens };
    };
    const first = await extractOnce(true, input); // prefix cache miss (and the adapter's first use)
    const withCache: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < runs; i++) {
      const text = `${i}. ${input}`; // a new selection each round; the task's prefix stays the same
      const a = await extractOnce(true, text);
      const b = await extractOnce(false, text);
      if (a.tokens.join(',') !== b.tokens.join(',')) throw new Error(`run ${i}: the answers differ with and without the prefix cache`);
      withCache.push(a.ms);
      without.push(b.ms);
    }
    const load1 = os.loadavg();
    const r = (x: number) => Math.round(x);
    console.log(`model ${path.basename(model)}, ${threads} threads, ${useAdapter ? 'adapter r16' : 'base model'}; prompt ${total} tokens (task prefix ${empty}, selection ${total - empty}), ${first.tokens.length} tokens generated (cap ${maxTokens})`);
    console.log(`first request (prefix cache miss): ${r(first.ms)} ms`);
    console.log(`with the prefix cache:    median ${r(median(withCache))} ms  [${withCache.map(r).join(', ')}]`);
    console.log(`without (no sharedPrefix): median ${r(median(without))} ms  [${without.map(r).join(', ')}]`);
    console.log(`same tokens in every pair; load average (1 min) ${load0[0].toFixed(2)} → ${load1[0].toFixed(2)} on ${os.cpus().length} cores`);
  } finally {
    await engine.dispose();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

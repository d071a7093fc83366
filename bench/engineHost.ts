// What the engine costs the extension host: the engine's cold start (first status answered), the
// host's CPU per streamed event, the host's time to send a large request, and the host's event-loop
// delay while the engine loads a model and trains on it. Every number is taken in this (host)
// process; the engine runs as the extension runs it (EngineClient and the bundled dist/worker.js).
// `--ipc` first compares Node's two IPC serializations on the message shapes the protocol carries,
// against an echo child: the host's CPU per round trip (what chose `serialization: 'json'`).
//   node --import tsx bench/engineHost.ts [--ipc] [--model MODEL.gguf] [--precision q4|f32] [--examples 20] [--chars N] [--epochs 1] [--threads 2] [--json]

import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { EngineClient } from '../src/client/engineClient';
import { renderMessages } from '../src/store/prompt';
import { DEFAULT_HYPERPARAMETERS } from '../src/store/task';
import { buildWorker } from '../test/unit/worker-helpers';
import { flag, has } from './flags';

const ms = (x: number): number => Math.round(x * 100) / 100;

/** Host CPU (user + system) and event-loop utilisation spent while `work` runs. */
async function hostCost<T>(work: () => Promise<T>): Promise<{ value: T; cpuMs: number; elu: number; wallMs: number }> {
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const value = await work();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { value, cpuMs: (cpu.user + cpu.system) / 1000, elu: performance.eventLoopUtilization(elu0).utilization, wallMs };
}

/** Host CPU per round trip of `msg` through an echo child using `serialization`. */
async function ipcCost(serialization: 'json' | 'advanced', msg: unknown, n: number): Promise<{ usPerRoundTrip: number; wallUsPerRoundTrip: number }> {
  const echo = path.join(os.tmpdir(), 'gemma-bench-echo.js');
  fs.writeFileSync(echo, "process.on('message', (m) => process.send(m));\n");
  const child = fork(echo, [], { serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const roundTrip = () => new Promise<void>((resolve) => {
    child.once('message', () => resolve());
    child.send(msg as never);
  });
  await roundTrip(); // warm up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await roundTrip();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  child.kill();
  return { usPerRoundTrip: ms((cpu.user + cpu.system) / n), wallUsPerRoundTrip: ms((wall * 1000) / n) };
}

async function ipc(): Promise<Record<string, unknown>> {
  const text = 'The app crashes when I press save twice in a row. '.repeat(4000).slice(0, 200_000);
  const shapes: Record<string, [unknown, number]> = {
    stepEvent: [{ kind: 'event', id: 7, event: { type: 'step', step: 12, epoch: 1.5, loss: 0.4213, lr: 0.0002, gradNorm: 1.3, tokens: 512, tokensPerSec: 180.2, elapsedS: 12.3, etaS: 40.1 } }, 2000],
    tokenEvent: [{ kind: 'event', id: 8, event: { type: 'token', id: 1234, text: ' crash' } }, 2000],
    generateResult: [{ kind: 'response', id: 9, result: { tokens: Array.from({ length: 512 }, (_, i) => i * 7), text: text.slice(0, 2000), finishReason: 'length', promptTokens: 300 } }, 500],
    request200kChars: [{ kind: 'request', id: 10, method: 'generate', params: { text, maxTokens: 1 } }, 50],
    trainRequest1000Examples: [{ kind: 'request', id: 11, method: 'train', params: { examples: Array.from({ length: 1000 }, (_, i) => ({ id: `ex-${i}`, messages: [{ role: 'user', content: text.slice(0, 2000) }, { role: 'assistant', content: 'bug' }] })) } }, 10],
  };
  const out: Record<string, unknown> = {};
  for (const [name, [msg, n]] of Object.entries(shapes)) {
    out[name] = { bytes: JSON.stringify(msg).length, json: await ipcCost('json', msg, n), advanced: await ipcCost('advanced', msg, n) };
  }
  return out;
}

async function main(): Promise<void> {
  const workerPath = await buildWorker('bench-engine-host');
  const threads = Number(flag('threads', '2'));
  const out: Record<string, unknown> = { node: process.versions.node, cores: os.availableParallelism() };
  if (has('ipc')) out.ipc = await ipc();

  // 1. Cold start: a new engine answering its first status.
  const starts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = new EngineClient({ workerPath, threads });
    const t0 = performance.now();
    await c.request('status', {});
    starts.push(performance.now() - t0);
    await c.dispose();
  }
  out.coldStartMs = starts.map(ms);

  const engine = new EngineClient({ workerPath, threads });
  try {
    await engine.request('status', {});
    // 2. Streamed events: 1000 ticks as fast as the engine sends them.
    let n = 0;
    const ev = await hostCost(() => engine.request('ping', { delayMs: 0, ticks: 1000 }, { onEvent: () => void n++ }));
    out.events = { count: n, wallMs: ms(ev.wallMs), hostCpuUsPerEvent: ms((ev.cpuMs * 1000) / n), hostElu: ms(ev.elu) };

    // 3. A large request (200 000 characters of text): the host's synchronous time to hand it over.
    const text = 'The app crashes when I press save twice in a row. '.repeat(4000).slice(0, 200_000);
    const sends: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const p = engine.request('generate', { text, maxTokens: 1 });
      sends.push(performance.now() - t0);
      await p.catch(() => undefined); // no model loaded: the engine refuses it after reading it
    }
    out.send200kCharsMs = sends.map(ms);

    // 4. A model load and a training run: the host's event-loop delay meanwhile.
    const model = flag('model', '');
    if (model) {
      const h = monitorEventLoopDelay({ resolution: 10 });
      h.enable();
      const precision = flag('precision', 'q4') === 'f32' ? 'f32' : 'q4';
      const load = await hostCost(() => engine.request('loadModel', { path: model, precision, threads }));
      const task = { kind: 'classify' as const, instruction: 'Is this issue a bug report or a feature request?', labels: ['bug', 'feature'] };
      // --chars N pads each input to N characters (the trainer cuts examples at 1024 tokens): the activations' worst case.
      const pad = Number(flag('chars', '0'));
      const examples = Array.from({ length: Number(flag('examples', '20')) }, (_, i) => {
        const input = `Issue ${i}: ${i % 2 ? 'please add an option to export the report as CSV' : 'the app crashes when I press save twice'} (#${i * 7})`;
        return { id: `ex-${i}`, messages: renderMessages(task, pad > input.length ? `${input} ${'and then it happens again. '.repeat(Math.ceil(pad / 27))}`.slice(0, pad) : input, i % 2 ? 'feature' : 'bug') };
      });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-engine-host-'));
      try {
        const loaded = await engine.request('status', {});
        let steps = 0;
        const train = await hostCost(() =>
          engine.request('train', { examples, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: Number(flag('epochs', '1')) }, outDir: dir }, { onEvent: (e) => void (e.type === 'step' && steps++) }),
        );
        h.disable();
        out.model = {
          file: path.basename(model), precision, examples: examples.length, chars: pad || undefined, loadS: ms(load.value.loadSeconds), engineRssAfterLoadMB: loaded.memory.rssMB, steps, trainS: ms(train.wallMs / 1000),
          enginePeakRssMB: train.value.peakRssMB, hostCpuMsDuringLoad: ms(load.cpuMs), hostCpuMsDuringTrain: ms(train.cpuMs),
          hostLoopDelayMs: { p50: ms(h.percentile(50) / 1e6), p99: ms(h.percentile(99) / 1e6), max: ms(h.max / 1e6) },
        };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await engine.dispose();
  }
  if (has('json')) console.log(JSON.stringify(out));
  else console.log(JSON.stringify(out, null, 2));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

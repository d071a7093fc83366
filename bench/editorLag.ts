// How responsive the extension host stays while the engine trains, by engine threads and priority: the
// host runs an editor-like load (every 16 ms, 4 ms of work, as a busy extension host does while the user
// types) and measures how late each tick starts (event-loop delay), first with the engine idle, then during
// a fine-tune, for each setting. The engine runs as the extension runs it (EngineClient, dist/worker.js
// built from the tree). Also prints the training speed each setting gets, so the trade is in one table.
//   node --import tsx bench/editorLag.ts --model bench/out/270m-q4.gguf [--examples 8] [--steps 6] [--json]
//   [--configs 1:normal,2:normal,2:low]   threads:priority per row ("auto" = one per physical core)

import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { EngineClient } from '../src/client/engineClient';
import { ENGINE_PRIORITY } from '../src/client/engineProcess';
import { physicalCores } from '../src/common/cpuCores';
import { DEFAULT_HYPERPARAMETERS } from '../src/store/task';
import { renderMessages } from '../src/store/prompt';
import { buildWorker } from '../test/unit/worker-helpers';
import { flag, has } from './flags';

const TICK_MS = 16;
const WORK_MS = 4;
const ms = (x: number): number => Math.round(x * 100) / 100;

interface Lag { p50: number; p99: number; max: number; ticks: number }

/** Runs the editor-like load until `until` settles; the delay of each tick's start, in ms. */
async function editorLoad<T>(until: Promise<T>): Promise<{ value: T; lag: Lag }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    const end = performance.now() + WORK_MS;
    while (performance.now() < end) {
      // the work of one tick (a code action, a decoration update)
    }
  }, TICK_MS);
  try {
    const value = await until;
    return { value, lag: { p50: ms(h.percentile(50) / 1e6), p99: ms(h.percentile(99) / 1e6), max: ms(h.max / 1e6), ticks } };
  } finally {
    clearInterval(timer);
    h.disable();
  }
}

async function main(): Promise<void> {
  const model = flag('model', '') && path.resolve(flag('model', ''));
  if (!model) throw new Error('--model FILE is required (node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out bench/out/270m-q4.gguf)');
  const workerPath = await buildWorker('bench-editor-lag');
  const configs = flag('configs', `1:normal,${physicalCores()}:normal,${physicalCores()}:low`).split(',').map((c) => {
    const [t, p] = c.split(':');
    return { threads: t === 'auto' ? physicalCores() : Number(t), priority: p === 'low' ? ENGINE_PRIORITY : 0 };
  });
  const task = { kind: 'classify' as const, instruction: 'Is this issue a bug report or a feature request?', labels: ['bug', 'feature'] };
  const examples = Array.from({ length: Number(flag('examples', '8')) }, (_, i) => ({
    id: `ex-${i}`,
    messages: renderMessages(task, `Issue ${i}: ${i % 2 ? 'please add an option to export the report as CSV' : 'the app crashes when I press save twice'} (#${i * 7})`, i % 2 ? 'feature' : 'bug'),
  }));
  const steps = Number(flag('steps', '6'));
  const rows: Record<string, unknown>[] = [];
  for (const c of configs) {
    const engine = new EngineClient({ workerPath, threads: c.threads, priority: c.priority });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-editor-lag-'));
    try {
      await engine.request('loadModel', { path: model, precision: 'q4', threads: c.threads });
      const idle = await editorLoad(new Promise((r) => setTimeout(r, 3000)));
      let done = 0;
      let firstStepAt = 0;
      const t0 = performance.now();
      const busy = await editorLoad(engine.request('train', {
        examples, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 1, minSteps: steps, batchSize: 4 }, outDir: dir, threads: c.threads,
      }, { onEvent: (e) => {
        if (e.type !== 'step') return;
        done++;
        if (done === 1) firstStepAt = performance.now();
      } }));
      const stepS = done > 1 ? (performance.now() - firstStepAt) / 1000 / (done - 1) : NaN;
      rows.push({ threads: c.threads, priority: c.priority, idleLagMs: idle.lag, trainingLagMs: busy.lag, steps: done, secondsPerStep: ms(stepS), trainWallS: ms((performance.now() - t0) / 1000) });
    } finally {
      await engine.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const out = { cpus: os.cpus().length, physicalCores: physicalCores(), loadAverage: os.loadavg()[0], editorLoad: `${WORK_MS} ms of work every ${TICK_MS} ms`, rows };
  if (has('json')) return console.log(JSON.stringify(out));
  console.log(`editor-like load: ${out.editorLoad}; ${out.cpus} CPUs, ${out.physicalCores} physical cores, load average ${out.loadAverage.toFixed(2)} at start`);
  console.log('threads  priority  lag idle p50/p99/max ms   lag training p50/p99/max ms   s/step');
  for (const r of rows as { threads: number; priority: number; idleLagMs: Lag; trainingLagMs: Lag; secondsPerStep: number }[]) {
    const l = (x: Lag) => `${x.p50}/${x.p99}/${x.max}`.padEnd(28);
    console.log(`${String(r.threads).padEnd(8)} ${String(r.priority).padEnd(9)} ${l(r.idleLagMs)} ${l(r.trainingLagMs)}  ${r.secondsPerStep}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

// The worker's `train` method on a model file, as the extension runs it: EngineClient → worker →
// trainer, with the inference session released for the run and rebuilt after. Prints the run's
// times and the worker process's peak RSS, and the RSS before and after.
//   node --import tsx bench/trainWorker.ts MODEL.gguf [examples=20] [epochs=1] [threads=2]

import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { EngineClient } from '../src/client/engineClient';
import { renderMessages } from '../src/store/prompt';
import { DEFAULT_HYPERPARAMETERS } from '../src/store/task';
import { buildWorker } from '../test/unit/worker-helpers';

async function main(): Promise<void> {
  const [model, nArg = '20', epochsArg = '1', threadsArg = '2'] = process.argv.slice(2);
  if (!model) throw new Error('usage: bench/trainWorker.ts MODEL.gguf [examples] [epochs] [threads]');
  const workerPath = await buildWorker('bench-train-worker');
  const threads = Number(threadsArg);
  const engine = new EngineClient({ workerPath, threads });
  const task = { kind: 'classify' as const, instruction: 'Is this issue a bug report or a feature request?', labels: ['bug', 'feature'] };
  const examples = Array.from({ length: Number(nArg) }, (_, i) => ({
    id: `ex-${i}`,
    messages: renderMessages(task, `Issue ${i}: ${i % 2 ? 'please add an option to export the report as CSV and PDF' : 'the app crashes when I press save twice in a row'} (#${i * 7})`, i % 2 ? 'feature' : 'bug'),
  }));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-train-'));
  try {
    const load = await engine.request('loadModel', { path: model, precision: 'q4', threads });
    const before = (await engine.request('status', {})).memory.rssMB;
    let steps = 0;
    const r = await engine.request('train', { examples, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: Number(epochsArg), minSteps: 0 }, outDir: out }, { onEvent: (e) => void (e.type === 'step' && steps++) });
    const after = (await engine.request('status', {})).memory.rssMB;
    const c = await engine.request('classify', { messages: [examples[0].messages[0]], labels: task.labels });
    console.log(JSON.stringify({
      model: path.basename(model), loadS: +load.loadSeconds.toFixed(2), examples: examples.length, steps, reason: r.reason,
      setupS: +r.setupS.toFixed(2), trainS: +(r.elapsedS - r.setupS - r.reloadS).toFixed(2), reloadS: +r.reloadS.toFixed(2), totalS: +r.elapsedS.toFixed(2),
      rssBeforeMB: before, peakRssMB: r.peakRssMB, rssAfterMB: after, classifyAfter: c.label,
    }));
  } finally {
    await engine.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

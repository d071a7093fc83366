// A task's training run as its one owner does it (src/panel/taskTraining.ts), outside VS Code: the real
// engine worker with a tiny random model, a real task folder. A run saves its settings to task.json,
// holds the task's lock while it trains, reports start … done, writes those events to metrics.jsonl, and
// leaves the adapter; a second run meanwhile, a run on examples that cannot train, and a resume with
// nothing to resume are refused before the engine sees them. The model service is the one thing not
// real here: it hands out the model this test loaded into the worker.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { EventLog } from '../../src/eventLog';
import type { LoadedModel } from '../../src/model/modelService';
import type { ModelSettings, ModelSource } from '../../src/model/modelSettings';
import { PanelEngine } from '../../src/panel/panelEngine';
import { TaskTraining, type TrainingDeps } from '../../src/panel/taskTraining';
import type { TrainingProgress } from '../../src/panel/trainingProgress';
import { NotReadyError } from '../../src/panel/trainReadiness';
import { trainingViewOf } from '../../src/protocol/trainingRecords';
import type { TrainingEvent } from '../../src/protocol/webview';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { TaskStore } from '../../src/store/taskStore';
import { tempDir } from './temp-helpers';
import { bugOrFeature } from './train-worker-helpers';
import { buildWorker } from './worker-helpers';

const tmp = tempDir('gt-tasktraining-');
let engine: EngineClient;
let model: LoadedModel;

before(async () => {
  const modelFile = path.join(tmp, 'tiny-q4.gguf');
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 1, dtype: 'q4_0' });
  engine = new EngineClient({ workerPath: await buildWorker('task-training'), threads: 1 });
  const r = await engine.request('loadModel', { path: modelFile, precision: 'q4' });
  model = { path: modelFile, summary: r.model, generation: 1, loadSeconds: r.loadSeconds };
});

after(async () => {
  await engine.dispose();
});

const logged: string[] = [];
const log = {
  info: (m: string) => void logged.push(`info ${m}`),
  warn: (m: string) => void logged.push(`warn ${m}`),
  error: (m: string) => void logged.push(`error ${m}`),
} as unknown as TrainingDeps['log'];

function deps(progress: (TrainingProgress | undefined)[]): TrainingDeps {
  const models = {
    source: async (): Promise<ModelSource> => ({ kind: 'configured', path: model.path }),
    ensureLoaded: async () => model,
    settings: () => ({ threads: 1 }) as ModelSettings,
  };
  return {
    engine, log, events: new EventLog(undefined), models,
    panelEngine: new PanelEngine({ engine, log, models }),
    confirmLongRun: async () => undefined,
    progress: { fire: (p) => void progress.push(p) },
  };
}

/** A classify task with ten labelled examples, two of them held out. */
async function bugTask(store: TaskStore) {
  const task = await store.create({ name: 'Bug or feature', ...bugOrFeature });
  const pairs: [string, string][] = [
    ['The app crashes on save.', 'bug'], ['Add a dark mode.', 'feature'], ['Error 500 on upload.', 'bug'], ['Please support CSV export.', 'feature'],
    ['It freezes when I scroll.', 'bug'], ['A keyboard shortcut for search would help.', 'feature'], ['Login fails with a blank page.', 'bug'],
    ['Allow renaming projects.', 'feature'], ['The counter shows negative numbers.', 'bug'], ['Add a French translation.', 'feature'],
  ];
  await store.addExamples(task.id, pairs.map(([input, output], i) => ({ input, output, heldOut: i < 2 })));
  return task;
}

/** The run metrics.jsonl holds once its last record is written (the run does not wait for its appends). */
async function recordedRun(store: TaskStore, id: string) {
  for (let waited = 0; ; waited += 50) {
    const view = trainingViewOf((await store.metrics(id)).records.map((r) => r.value));
    if (view?.status !== 'running' || waited > 10_000) return view;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Collects what a run reports. */
function recorder() {
  const events: TrainingEvent[] = [];
  const calls: string[] = [];
  return {
    events, calls,
    report: {
      event: (e: TrainingEvent) => void events.push(e),
      ended: () => void calls.push('ended'),
      settled: async () => void calls.push('settled'),
    },
  };
}

test('a run saves its settings, holds the lock while it trains, reports start to done, records it, and leaves the adapter', async () => {
  const store = new TaskStore(path.join(tmp, 'ws1', '.gemma', 'tasks'));
  const task = await bugTask(store);
  const progress: (TrainingProgress | undefined)[] = [];
  const training = new TaskTraining(deps(progress), store, () => task.id);
  const hp = { ...DEFAULT_HYPERPARAMETERS, epochs: 2, minSteps: 0, rank: 2, alpha: 4, batchSize: 4 };
  const { events, calls, report } = recorder();
  let during: { holder: unknown; refused: string } | undefined;
  await training.train({ hyperparameters: hp }, {
    ...report,
    event: (e) => {
      report.event(e);
      if (e.kind === 'start' && !during) {
        during = { holder: null, refused: '' };
        const seen = during;
        void store.trainingHolder(task.id).then((h) => (seen.holder = h));
        void training.train({ hyperparameters: hp }, recorder().report).catch((err: Error) => (seen.refused = err.message));
      }
    },
  });
  assert.deepEqual(events.map((e) => e.kind).filter((k, i, all) => all.indexOf(k) === i), ['start', 'step', 'eval', 'done'], events.map((e) => e.kind).join(' '));
  const done = events.at(-1)!;
  assert.match(done.message ?? '', /^Trained \d+ steps in [\d.]+ s; the adapter from step \d+ \(validation loss [\d.]+\) is saved\.$/);
  assert.equal(done.comparison?.length, 2, 'the two held-out examples, answered before and after');
  assert.deepEqual(calls, ['ended', 'settled']);
  assert.notEqual(during?.holder, null, 'the task\'s training lock is held while the engine trains');
  assert.equal(during?.refused, 'a training run is already going');
  assert.equal(await store.trainingHolder(task.id), null, 'released after the run');
  assert.deepEqual((await store.get(task.id)).config.hyperparameters, hp);
  assert.equal(await store.hasAdapter(task.id), true);
  const recorded = await recordedRun(store, task.id);
  assert.deepEqual(recorded, await training.view(), 'metrics.jsonl draws the chart the page drew');
  assert.equal(recorded?.status, 'done');
  assert.equal(progress.at(-1), undefined, 'the status bar is cleared at the end');
  assert.ok(progress.some((p) => p && p.step > 0 && p.totalSteps > 0), 'the status bar counted steps');
  assert.equal(await training.resumable(), null, 'a finished run leaves nothing to resume');
});

test('a run that cannot train, and a resume with nothing to resume, are refused before the engine', async () => {
  const store = new TaskStore(path.join(tmp, 'ws2', '.gemma', 'tasks'));
  const task = await store.create({ name: 'Unlabeled', ...bugOrFeature });
  await store.addExamples(task.id, [{ input: 'no label yet' }]);
  const training = new TaskTraining(deps([]), store, () => task.id);
  const { events, calls, report } = recorder();
  await assert.rejects(training.train({ hyperparameters: DEFAULT_HYPERPARAMETERS }, report), (e: Error) => e instanceof NotReadyError && /Label at least one example/.test(e.message));
  await assert.rejects(training.train({ resume: true }, report), /There is no interrupted run to resume/);
  assert.deepEqual([events, calls], [[], []]);
  assert.equal(await store.trainingHolder(task.id), null);
  assert.deepEqual((await store.metrics(task.id)).records, []);
  assert.equal(await training.view(), null);
});

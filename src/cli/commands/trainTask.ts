// `gemma-tune train-task`: trains a workspace's task folder (`.gemma/tasks/<task>/`) the way the training
// panel does, from a terminal or CI beside the editor: the task's labeled examples rendered by the store
// (held-out ones pinned to validation), task.json's hyperparameters, the adapter staged in
// `adapter.training/` and promoted into `adapter/` when the run saved one, and the run recorded in
// metrics.jsonl, where the panel draws it. The engine runs in this process through the worker's own
// handlers (loadModel, train), so the run is the panel's run. The task's training lock is held from start
// to promotion: a run of the same task in a VS Code window or another terminal is refused, naming it.
// Ctrl-C cancels between steps (the best adapter so far is promoted; the checkpoint stays for --resume);
// a second Ctrl-C exits at once, and the next run of the task puts right whatever that left.

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { parseFlags, required, UsageError } from '../args';
import { precisionFlag, threadsFlag } from './modelFlags';
import type { EngineState, HandlerContext } from '../../engine/worker/context';
import { loadModel } from '../../engine/worker/model';
import { train } from '../../engine/worker/train';
import type { EngineMethod, EventOf } from '../../protocol/engine';
import type { TrainEventMessage } from '../../protocol/train';
import { type TrainingEvent, trainingEventOf } from '../../protocol/webview';
import { clearStaging, findInterruptedRun, settleFailedRun, settleFinishedRun, stagingDir, writeRunMarker } from '../../store/adapterStage';
import { isLabeled } from '../../store/examples';
import { metricRecord } from '../../protocol/trainingRecords';
import type { FileLock } from '../../store/fileLock';
import { formatProblem } from '../../store/jsonl';
import { isSafeFolderName } from '../../store/names';
import { renderMessages } from '../../store/prompt';
import { TaskStore } from '../../store/taskStore';

/** How this command names itself to other processes that find the task locked. */
const WHO = 'gemma-tune train-task';

export const trainTaskCommand: CliCommand = {
  name: 'train-task',
  usage: 'gemma-tune train-task --task DIR --model PATH [--precision q4|f32] [--threads auto|N] [--resume] [--json]',
  summary: 'Train a workspace task folder (.gemma/tasks/<task>) as the training panel does: its labeled examples and task.json settings; the adapter goes to <task>/adapter.',
  async run(argv) {
    const p = parseFlags(argv, { values: ['task', 'model', 'precision', 'threads'], booleans: ['resume', 'json'] });
    const dir = path.resolve(required(p, 'task'));
    const id = path.basename(dir);
    if (!isSafeFolderName(id)) throw new UsageError(`--task ${dir}: not a task folder (.gemma/tasks/<task>)`);
    const opts: RunOptions = {
      modelPath: required(p, 'model'),
      precision: precisionFlag(p),
      threads: threadsFlag(p),
      resume: p.booleans.has('resume'),
      json: p.booleans.has('json'),
    };
    const store = new TaskStore(path.dirname(dir), {
      who: WHO,
      onBackup: (file, backup) => process.stderr.write(`${file} had unreadable lines; the original was kept as ${backup}\n`),
    });
    const lock = await store.lockTraining(id);
    try {
      await trainTask(store, id, lock, opts);
    } finally {
      await lock.release();
    }
  },
};

interface RunOptions {
  modelPath: string;
  precision: 'q4' | 'f32';
  threads: number;
  resume: boolean;
  json: boolean;
}

/** One run of the task, holding its training lock. */
async function trainTask(store: TaskStore, id: string, lock: FileLock, o: RunOptions): Promise<void> {
  const task = await store.get(id);
  const { examples, problems } = await store.examples(id);
  if (problems.length > 0) process.stderr.write(`${problems.length} unreadable line(s) skipped, the first: ${formatProblem(problems[0])}\n`);
  const labeled = examples.filter(isLabeled);
  if (labeled.length === 0) throw new Error(`${task.dir}: no labeled example to train on`);
  const adapterDir = store.adapterDir(id);
  const interrupted = o.resume ? await findInterruptedRun(adapterDir) : null;
  if (o.resume && !interrupted) throw new Error(`${task.dir}: there is no interrupted run to resume; train without --resume`);
  // A resume goes on in the interrupted run's folder, with its settings; a new run starts clean.
  const hp = interrupted?.hyperparameters ?? task.config.hyperparameters;
  const outDir = interrupted ? stagingDir(adapterDir) : await clearStaging(adapterDir);

  const state: EngineState = { threads: o.threads, startedAt: performance.now(), model: null, hostCapMB: null, watchdog: null };
  const abort = new AbortController();
  const context = <M extends EngineMethod>(emit: (e: EventOf<M>) => void): HandlerContext<M> => ({
    id: 0, signal: abort.signal, emit, state, queue: () => ({ busy: null, queued: 0 }),
    log: (level, message) => {
      if (level !== 'debug' && level !== 'trace' && !o.json) process.stderr.write(`${message}\n`);
    },
  });
  await loadModel({ path: o.modelPath, precision: o.precision }, context<'loadModel'>(() => undefined));

  // metrics.jsonl, as the panel writes it: one line per event, appended in order behind the run; the
  // events that arrive while one append waits for the task's write lock go in the next one together.
  if (!interrupted) await store.clearMetrics(id);
  let metrics: Promise<void> = Promise.resolve();
  let pending: TrainingEvent[] = [];
  const record = (ev: TrainingEvent): void => {
    pending.push(ev);
    if (pending.length > 1) return;
    metrics = metrics.then(() => {
      const batch = pending;
      pending = [];
      return store.appendMetrics(id, batch.map(metricRecord));
    });
  };
  let marker: Promise<void> = Promise.resolve();
  const onEvent = (e: TrainEventMessage): void => {
    if (o.json) process.stdout.write(JSON.stringify(e) + '\n');
    else if (e.type === 'step') process.stderr.write(`step ${e.step}: loss ${e.loss.toFixed(4)}\n`);
    // What a later resume must train with; written once the run's step count is known.
    if (e.type === 'start' && !interrupted) marker = writeRunMarker(adapterDir, { totalSteps: e.totalSteps, hyperparameters: hp });
    const ev = trainingEventOf(e);
    if (ev) record(ev);
  };

  // Ctrl-C stops between steps and keeps the best adapter so far; a second one exits at once.
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  let result;
  try {
    result = await train({
      examples: labeled.map((e) => ({ id: e.id, messages: renderMessages(task.config, e.input, e.output) })),
      valIds: labeled.filter((e) => e.heldOut).map((e) => e.id),
      hyperparameters: hp,
      threads: o.threads,
      outDir,
      ...(interrupted ? { resume: true } : {}),
    }, context<'train'>(onEvent));
  } catch (e) {
    await marker;
    const kept = await settleFailedRun(adapterDir);
    const message = `Training failed: ${(e as Error).message}${kept ? ` The run can be resumed from step ${kept.step} (--resume).` : ''}`;
    record({ kind: 'failed', message });
    await metrics;
    throw new Error(message, { cause: e });
  } finally {
    process.off('SIGINT', onSigint);
    await state.model?.runtime.dispose();
  }
  await marker;
  await metrics;
  // A lock judged stale meanwhile (this process stalled for a minute) may be another run's now.
  await lock.check();
  const promoted = await settleFinishedRun(adapterDir, result);
  const cancelled = result.reason === 'cancelled';
  const message = promoted
    ? `${cancelled ? `Cancelled at step ${result.step}` : `Trained ${result.step} steps`}; the adapter from step ${result.savedStep} is in ${adapterDir}.`
    : `${cancelled ? `Cancelled at step ${result.step}` : `Trained ${result.step} steps`}; no adapter from this run: the task keeps the one it had, if any.`;
  const resumable = cancelled && result.step > 0 ? ' The run can be resumed (--resume).' : '';
  record({ kind: cancelled ? 'cancelled' : 'done', step: result.step, ...(promoted ? { bestStep: result.savedStep } : {}), comparison: [], message: message + resumable });
  await metrics;
  process.stderr.write(`${message}${resumable}\n`);
}

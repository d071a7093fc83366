// One task's fine-tuning from this window, start to end: the one host-side owner of a run. It refuses a
// run the engine or the examples cannot do, holds the task's training lock for the whole run (another
// window or the CLI training the task is refused, and named), saves the run's settings to task.json,
// starts metrics.jsonl afresh (or continues it on a resume) and appends each event's record, and asks the
// engine to train: the labeled examples rendered by store/prompt.ts (the runner's own rendering), the
// held-out ones pinned, the adapter staged beside the task's `adapter/` and promoted when the run saved
// one, then the held-out examples answered before and after for the table. A cancelled run (or one cut
// off by a crash) keeps its staging folder with the trainer's checkpoint, and a resume trains into that
// same folder with the run's own settings (run.json), so that the trainer's fingerprint matches.
// Every event goes to whoever asked (the panel, which only draws it) and the status bar.

import type * as vscode from 'vscode';
import { EngineError } from '../client/engineClient';
import { errorText } from '../common/quote';
import type { ResultOf } from '../protocol/engine';
import { metricRecord, trainingViewOf } from '../protocol/trainingRecords';
import { applyTrainingEvent, type ComparisonRow, type TrainingEvent, type TrainingView, trainingEventOf } from '../protocol/webview';
import type { ModelService } from '../model/modelService';
import type { GemmaServices } from '../services';
import { clearStaging, findInterruptedRun, type InterruptedRun, settleFailedRun, settleFinishedRun, stagingDir, writeRunMarker } from '../store/adapterStage';
import type { BaseModelRecord } from '../store/baseModel';
import { type Example, isLabeled } from '../store/examples';
import { renderMessages } from '../store/prompt';
import type { Hyperparameters } from '../store/task';
import type { Task, TaskStore } from '../store/taskStore';
import { plural } from '../plural';
import type { PanelEngine } from './panelEngine';
import type { TrainingProgress } from './trainingProgress';
import { countExamples, NotReadyError, trainBlocker } from './trainReadiness';

/** What a run needs of the window: the engine and its model, the log, the panels' engine, the user, and the status bar. */
export interface TrainingDeps extends Pick<GemmaServices, 'engine' | 'log' | 'events'> {
  /** The base model, loaded on first need, and the engine's thread setting. */
  models: Pick<ModelService, 'ensureLoaded' | 'settings'>;
  /** Whether the engine can train now, and the held-out examples' answers before and after. */
  panelEngine: PanelEngine;
  /** After a new run's first step: why a run this long stops (the user said so), or undefined to go on (longRunQuestion.ts). */
  confirmLongRun(modelName: string, stepS: number, totalS: number, steps: number): Promise<string | undefined>;
  /** The status bar's view of the run: each step, then undefined when it ends. */
  progress: Pick<vscode.EventEmitter<TrainingProgress | undefined>, 'fire'>;
}

/** What the page asked for: a new run with these settings, or the task's interrupted run resumed. */
export type TrainRequest = { hyperparameters: Hyperparameters } | { resume: true };

/** Where a run reports to. */
export interface RunReport {
  /** Each event of the run, as the page draws it. */
  event(e: TrainingEvent): void;
  /** The engine's part is over, however it ended: answers the model gave before the run are stale. */
  ended(): void;
  /** The lock is released after a run of this window (this one or one before it): the task's adapter and resumable run may have changed. */
  settled(): Promise<void>;
}

export class TaskTraining {
  /** This window's last run of the task as the page draws it; going while `abort` is set. */
  private run: { view: TrainingView; abort?: AbortController } | null = null;

  /** `taskId` gives the task's id now (a panel follows its task when renamed). */
  constructor(
    private readonly deps: TrainingDeps,
    private readonly store: TaskStore,
    private readonly taskId: () => string,
  ) {}

  /**
   * The run going, or the last one, as the page draws it: this window's, else the one metrics.jsonl
   * recorded (so a reopened or reloaded panel shows its chart and before/after table).
   */
  async view(): Promise<TrainingView | null> {
    return this.run?.view ?? (await this.lastRun());
  }

  /** The task's cancelled or cut-off run that can be resumed; none while a run of it is going (here or in another process). */
  async resumable(): Promise<InterruptedRun | null> {
    if (this.run?.abort || (await this.store.trainingHolder(this.taskId()))) return null;
    return findInterruptedRun(this.store.adapterDir(this.taskId()));
  }

  /** Stops the run going, between steps. */
  cancel(): void {
    this.run?.abort?.abort();
  }

  /**
   * Runs training: a new run with the request's hyperparameters (any interrupted run is dropped: the Train
   * button says so), or the interrupted run resumed from its checkpoint, with the settings it started
   * with (the form's may have changed since), its curve and metrics kept. Resolves after the final event
   * (done, cancelled or failed); throws, before any event, when the run cannot start.
   */
  async train(request: TrainRequest, report: RunReport): Promise<void> {
    let resume: InterruptedRun | undefined;
    let hyperparameters: Hyperparameters;
    if ('resume' in request) {
      const run = await this.resumable();
      if (!run) throw new Error('There is no interrupted run to resume: start a new one with Train.');
      [resume, hyperparameters] = [run, run.hyperparameters];
    } else {
      hyperparameters = request.hyperparameters;
    }
    const capabilities = await this.deps.panelEngine.capabilities();
    if (!capabilities.train) throw new Error(capabilities.reason ?? 'the engine cannot train now');
    if (this.run?.abort) throw new Error('a training run is already going');
    const lock = await this.store.lockTraining(this.taskId());
    try {
      await this.trainLocked(hyperparameters, report, resume);
    } finally {
      await lock.release();
      // Once released, so that the run to resume (which the held lock would hide) shows.
      if (this.run) await report.settled();
    }
  }

  private async trainLocked(hyperparameters: Hyperparameters, report: RunReport, resume?: InterruptedRun): Promise<void> {
    const id = this.taskId();
    const { examples } = await this.store.examples(id);
    // The page disables Train for these; a request sent anyway is refused here, before the engine.
    const blocker = trainBlocker(countExamples(examples));
    if (blocker) throw new NotReadyError(blocker);
    const task = resume ? await this.store.get(id) : await this.store.updateConfig(id, (config) => ({ ...config, hyperparameters }));
    const before = resume ? await this.view() : null;
    const abort = new AbortController();
    const run: { view: TrainingView; abort?: AbortController } = { view: applyTrainingEvent(before, { kind: 'start', step: resume?.step ?? 0, totalSteps: resume?.totalSteps ?? 0 }), abort };
    this.run = run;
    if (!resume) await this.store.clearMetrics(id);
    const onEvent = (event: TrainingEvent): void => {
      run.view = applyTrainingEvent(run.view, event);
      report.event(event);
      void Promise.resolve().then(() => this.store.appendMetrics(this.taskId(), [metricRecord(event)])).catch((err: Error) => this.deps.log.warn(`metrics: ${err.message}`));
    };
    try {
      await this.trainOnEngine(task, examples, hyperparameters, onEvent, abort.signal, resume);
    } finally {
      run.abort = undefined;
      report.ended();
    }
  }

  /** The engine's part of a run: reports every event and resolves after the final one (done, cancelled or failed). */
  private async trainOnEngine(task: Task, examples: Example[], hp: Hyperparameters, onEvent: (e: TrainingEvent) => void, signal: AbortSignal, resume?: InterruptedRun): Promise<void> {
    const s = this.deps;
    const labeled = examples.filter(isLabeled);
    const model = await s.models.ensureLoaded({ interactive: true });
    if (!model) throw new Error('No model is loaded: training needs one.');
    const cfg = task.config;
    const adapterDir = this.store.adapterDir(task.id);
    // A resume goes on in the interrupted run's folder, with its settings; a new run starts clean.
    const outDir = resume ? stagingDir(adapterDir) : await clearStaging(adapterDir);
    const progress: TrainingProgress = { taskName: cfg.name, step: resume?.step ?? 0, totalSteps: resume?.totalSteps ?? 0, etaSeconds: null };
    s.progress.fire(progress);
    s.events.write('trainingStarted', { task: task.id, examples: labeled.length, ...(resume ? { resumeFromStep: resume.step } : {}) });
    const t0 = performance.now();
    let result: ResultOf<'train'>;
    let marker: Promise<void> = Promise.resolve();
    // The run is stopped here, keeping nothing, when its first measured step says it would be too long and
    // the user says Stop. The question is answered before anything is kept, also by a run that ended meanwhile.
    const local = new AbortController();
    const forward = (): void => local.abort();
    signal.addEventListener('abort', forward);
    let question: Promise<string | undefined> | undefined;
    // However the request ended: the run marker written and the question answered before anything is kept.
    const requestEnded = async (): Promise<string | undefined> => {
      signal.removeEventListener('abort', forward);
      await marker;
      const why = await question;
      s.progress.fire(undefined);
      return why;
    };
    try {
      result = await s.engine.request(
        'train',
        {
          examples: labeled.map((e) => ({ id: e.id, messages: renderMessages(cfg, e.input, e.output) })),
          valIds: labeled.filter((e) => e.heldOut).map((e) => e.id),
          hyperparameters: hp,
          threads: s.models.settings().threads,
          outDir,
          ...(resume ? { resume: true } : {}),
        },
        {
          signal: local.signal,
          onEvent: (e) => {
            const ev = trainingEventOf(e);
            if (!ev) return;
            if (e.type === 'start') {
              progress.totalSteps = e.totalSteps;
              // What a later resume must train with; written once the run's step count is known.
              if (!resume) marker = writeRunMarker(adapterDir, { totalSteps: e.totalSteps, hyperparameters: hp }).catch((err: Error) => s.log.warn(`train "${task.id}": run.json: ${err.message}`));
            }
            if (e.type === 'step') Object.assign(progress, { step: e.step, etaSeconds: e.etaS });
            if (e.type === 'step' && !question && !resume) {
              question = s.confirmLongRun(model.summary.name, e.elapsedS / e.step, e.elapsedS + e.etaS, progress.totalSteps);
              void question.then((why) => {
                if (why) local.abort();
              });
            }
            s.progress.fire({ ...progress });
            onEvent(ev);
          },
        },
      );
    } catch (e) {
      const stoppedForTime = await requestEnded();
      // A run that checkpointed before it failed (the worker died, say) stays resumable, and so does
      // one whose resume was refused (the examples changed: undoing that makes it resumable again).
      // Stopped because it would take too long: the user chose to keep the task as it was.
      const kept = stoppedForTime ? await clearStaging(adapterDir).then(() => null) : await settleFailedRun(adapterDir);
      const cancelled = e instanceof EngineError && e.code === 'cancelled';
      if (stoppedForTime) return this.stoppedForTime(task, stoppedForTime, 0, onEvent);
      const message = cancelled
        ? 'Training was cancelled before it started; the task\'s adapter is unchanged.'
        : resume
          ? `Resuming failed: ${errorText(e)}. Train starts a new run instead.`
          : `Training failed: ${errorText(e)}${kept ? ` The run can be resumed from step ${kept.step}.` : ''}`;
      s.log[cancelled ? 'info' : 'error'](`train "${task.id}": ${message}`);
      s.events.write('trainingDone', { task: task.id, reason: cancelled ? 'cancelled' : 'failed', error: cancelled ? undefined : errorText(e) });
      onEvent({ kind: cancelled ? 'cancelled' : 'failed', message });
      return;
    }
    const stoppedForTime = await requestEnded();
    // A run cancelled before its first update saved the untrained start: not worth replacing anything.
    // One cancelled later keeps its staged checkpoint for a resume, and the task gets a copy of its adapter.
    const cancelled = result.reason === 'cancelled';
    const promoted = stoppedForTime ? await clearStaging(adapterDir).then(() => false) : await settleFinishedRun(adapterDir, result);
    if (promoted) await this.recordBase(task, model.summary.base);
    if (stoppedForTime) return this.stoppedForTime(task, stoppedForTime, result.step, onEvent);
    let comparison: ComparisonRow[] = [];
    let compareNote = '';
    if (promoted && !cancelled && result.valIds.length > 0) {
      try {
        comparison = await s.panelEngine.compare(task, labeled, result.valIds, adapterDir, model.generation, signal);
      } catch (e) {
        compareNote = ` The before/after comparison failed: ${errorText(e)}`;
      }
    }
    const message = summary(result, promoted) + compareNote;
    const wallS = (performance.now() - t0) / 1000;
    s.log.info(`train "${task.id}": ${message} (${wallS.toFixed(1)} s, step session ${result.setupS.toFixed(1)} s, reload ${result.reloadS.toFixed(1)} s, peak worker RSS ${result.peakRssMB} MB)`);
    s.events.write('trainingDone', {
      task: task.id, reason: result.reason, step: result.step, savedStep: result.savedStep, promoted, valIds: result.valIds, trainSeconds: result.elapsedS,
      wallSeconds: wallS, setupSeconds: result.setupS, reloadSeconds: result.reloadS, peakRssMB: result.peakRssMB, comparison: comparison.length,
    });
    onEvent({ kind: cancelled ? 'cancelled' : 'done', step: result.step, ...(promoted ? { bestStep: result.savedStep } : {}), comparison, message });
  }

  /** Ends a run the user stopped as too long: nothing of it was kept. */
  private stoppedForTime(task: Task, why: string, step: number, onEvent: (e: TrainingEvent) => void): void {
    this.deps.log.info(`train "${task.id}": ${why}`);
    this.deps.events.write('trainingDone', { task: task.id, reason: 'too-slow', step });
    onEvent({ kind: 'cancelled', step, comparison: [], message: `${why} The task keeps the adapter it had, if any.` });
  }

  /** Records in task.json the base the task's new adapter was trained on. */
  private async recordBase(task: Task, base: BaseModelRecord | undefined): Promise<void> {
    if (!base) return;
    try {
      await this.store.updateConfig(task.id, (config) => ({ ...config, baseModel: base }));
    } catch (e) {
      this.deps.log.warn(`train "${task.id}": recording the base model in task.json failed: ${errorText(e)}`);
    }
  }

  /** The last run as metrics.jsonl recorded it; a run the window closed on is shown as stopped, not as running forever. */
  private async lastRun(): Promise<TrainingView | null> {
    const read = await this.store.metrics(this.taskId()).catch(() => undefined);
    let view = trainingViewOf((read?.records ?? []).map((r) => r.value));
    if (view?.status === 'running') view = { ...view, status: 'cancelled', etaSeconds: null, message: 'This run stopped when the window closed, so the task keeps the adapter it had before. Where a resume is offered, it goes on from the run\'s last checkpoint.' };
    return view;
  }
}

/** One sentence on how the run ended and which adapter the task has now. */
function summary(r: ResultOf<'train'>, promoted: boolean): string {
  const best = r.bestValLoss !== null ? ` (validation loss ${r.bestValLoss.toFixed(4)})` : '';
  const kept = promoted ? `the adapter from step ${r.savedStep}${best} is saved` : 'no adapter from this run: the task keeps the one it had, if any';
  switch (r.reason) {
    case 'completed':
      return `Trained ${plural(r.step, 'step')} in ${r.elapsedS.toFixed(1)} s; ${kept}.`;
    case 'early-stop':
      return `Stopped early at step ${r.step} (validation loss stopped improving); ${kept}.`;
    case 'cancelled':
      return `Cancelled at step ${r.step}; ${promoted ? `the best adapter so far, from step ${r.savedStep}${best}, is saved` : kept}.${r.step > 0 ? ' Resume training goes on from here.' : ''}`;
  }
}

// The panel's engine: training and suggestions through the worker (EngineClient). Training renders
// the labeled examples with store/prompt.ts (the runner's own rendering), pins the held-out ones,
// stages the adapter beside the task's `adapter/` and promotes it when the run saved one, then runs
// the held-out examples through the base model and the new adapter for the before/after table.
// A cancelled run (or one cut off by a crash) keeps its staging folder with the trainer's checkpoint,
// and a resume trains into that same folder with the run's own settings (run.json) so that the
// trainer's fingerprint matches. Progress also goes to the status bar (onDidChangeTraining).
// Capabilities are true only when a model is on disk to run (ModelService), so the panel never
// offers work the engine cannot do.

import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineError } from '../client/engineClient';
import { AdapterCache } from '../client/adapterCache';
import { errorText } from '../common/quote';
import { type Capabilities, type ComparisonRow, type Suggestion, type TrainingEvent, trainingEventOf } from '../protocol/webview';
import type { ResultOf } from '../protocol/engine';
import type { GemmaServices } from '../services';
import { clearStaging, type InterruptedRun, settleFailedRun, settleFinishedRun, stagingDir, writeRunMarker } from '../store/adapterStage';
import { type Example, isLabeled } from '../store/examples';
import { renderMessages } from '../store/prompt';
import type { Hyperparameters } from '../store/task';
import { ADAPTER_DIR } from '../common/files';
import { type Task, workspaceOfTaskDir } from '../store/taskStore';
import { taskStoreFor } from '../store/workspaceStore';
import { baseMismatch } from '../model/baseCheck';
import type { BaseModelRecord } from '../store/baseModel';
import { formatDuration } from './trainingProgress';
import type { PanelEngine } from './panelEngine';
import { plural } from '../plural';
import { taskAnswer } from './taskAnswers';
import { countExamples, NotReadyError, trainBlocker } from './trainReadiness';
import type { TrainingProgress } from './trainingProgress';

/** At most this many held-out examples go into the before/after table. */
const MAX_COMPARISON = 50;
/** Setting: a fine-tune estimated (from its first step) to take longer than this many minutes asks first; 0 never asks. */
export const CONFIRM_TRAINING_KEY = 'training.confirmLongerThanMinutes';
const DEFAULT_CONFIRM_MINUTES = 10;

export const NO_MODEL_REASON = 'Training and suggestions need a model: download the default one or pick a local one (click the Gemma status bar item).';

export class WorkerPanelEngine implements PanelEngine, vscode.Disposable {
  private readonly progress = new vscode.EventEmitter<TrainingProgress | undefined>();
  /** Fires with each step of a run, and undefined when it ends. */
  readonly onDidChangeTraining = this.progress.event;
  private readonly adapters: AdapterCache;

  constructor(private readonly s: Pick<GemmaServices, 'engine' | 'models' | 'log' | 'events'>) {
    this.adapters = new AdapterCache(s.engine);
  }

  async capabilities(): Promise<Capabilities> {
    const src = await this.s.models.source();
    if (src.kind === 'configured' || src.kind === 'default') return { train: true, suggest: true };
    return { train: false, suggest: false, reason: NO_MODEL_REASON };
  }

  async train(task: Task, examples: Example[], hp: Hyperparameters, onEvent: (e: TrainingEvent) => void, signal: AbortSignal, resume?: InterruptedRun): Promise<void> {
    const blocker = trainBlocker(countExamples(examples));
    if (blocker) throw new NotReadyError(blocker);
    const labeled = examples.filter(isLabeled);
    const model = await this.s.models.ensureLoaded({ interactive: true });
    if (!model) throw new Error('No model is loaded: training needs one.');
    const cfg = task.config;
    const adapterDir = path.join(task.dir, ADAPTER_DIR);
    // A resume goes on in the interrupted run's folder, with its settings; a new run starts clean.
    if (resume) hp = resume.hyperparameters;
    const outDir = resume ? stagingDir(adapterDir) : await clearStaging(adapterDir);
    const progress: TrainingProgress = { taskName: cfg.name, step: resume?.step ?? 0, totalSteps: resume?.totalSteps ?? 0, etaSeconds: null };
    this.progress.fire(progress);
    this.s.events.write('trainingStarted', { task: task.id, examples: labeled.length, ...(resume ? { resumeFromStep: resume.step } : {}) });
    const t0 = performance.now();
    let result: ResultOf<'train'>;
    let marker: Promise<void> = Promise.resolve();
    // The run is stopped here, keeping nothing, when its first measured step says it would be too long and
    // the user says Stop. The question is answered before anything is kept, also by a run that ended meanwhile.
    const local = new AbortController();
    const forward = (): void => local.abort();
    signal.addEventListener('abort', forward);
    let question: Promise<string | undefined> | undefined;
    let stoppedForTime: string | undefined;
    try {
      result = await this.s.engine.request(
        'train',
        {
          examples: labeled.map((e) => ({ id: e.id, messages: renderMessages(cfg, e.input, e.output) })),
          valIds: labeled.filter((e) => e.heldOut).map((e) => e.id),
          hyperparameters: hp,
          threads: this.s.models.settings().threads,
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
              if (!resume) marker = writeRunMarker(adapterDir, { totalSteps: e.totalSteps, hyperparameters: hp }).catch((err: Error) => this.s.log.warn(`train "${task.id}": run.json: ${err.message}`));
            }
            if (e.type === 'step') Object.assign(progress, { step: e.step, etaSeconds: e.etaS });
            if (e.type === 'step' && !question && !resume) {
              question = this.confirmLongRun(model.summary.name, e.elapsedS / e.step, e.elapsedS + e.etaS, progress.totalSteps);
              void question.then((why) => {
                if (why) local.abort();
              });
            }
            this.progress.fire({ ...progress });
            onEvent(ev);
          },
        },
      );
    } catch (e) {
      signal.removeEventListener('abort', forward);
      await marker;
      stoppedForTime = await question;
      // A run that checkpointed before it failed (the worker died, say) stays resumable, and so does
      // one whose resume was refused (the examples changed: undoing that makes it resumable again).
      // Stopped because it would take too long: the user chose to keep the task as it was.
      const kept = stoppedForTime ? await clearStaging(adapterDir).then(() => null) : await settleFailedRun(adapterDir);
      this.progress.fire(undefined);
      const cancelled = e instanceof EngineError && e.code === 'cancelled';
      if (stoppedForTime) return this.stoppedForTime(task, stoppedForTime, 0, onEvent);
      const message = cancelled
        ? 'Training was cancelled before it started; the task\'s adapter is unchanged.'
        : resume
          ? `Resuming failed: ${errorText(e)}. Train starts a new run instead.`
          : `Training failed: ${errorText(e)}${kept ? ` The run can be resumed from step ${kept.step}.` : ''}`;
      this.s.log[cancelled ? 'info' : 'error'](`train "${task.id}": ${message}`);
      this.s.events.write('trainingDone', { task: task.id, reason: cancelled ? 'cancelled' : 'failed', error: cancelled ? undefined : errorText(e) });
      onEvent({ kind: cancelled ? 'cancelled' : 'failed', message });
      return;
    }
    signal.removeEventListener('abort', forward);
    await marker;
    stoppedForTime = await question;
    this.progress.fire(undefined);
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
        comparison = await this.compare(task, labeled, result.valIds, adapterDir, model.generation, signal);
      } catch (e) {
        compareNote = ` The before/after comparison failed: ${errorText(e)}`;
      }
    }
    const message = summary(result, promoted) + compareNote;
    const wallS = (performance.now() - t0) / 1000;
    this.s.log.info(`train "${task.id}": ${message} (${wallS.toFixed(1)} s, step session ${result.setupS.toFixed(1)} s, reload ${result.reloadS.toFixed(1)} s, peak worker RSS ${result.peakRssMB} MB)`);
    this.s.events.write('trainingDone', {
      task: task.id, reason: result.reason, step: result.step, savedStep: result.savedStep, promoted, valIds: result.valIds, trainSeconds: result.elapsedS,
      wallSeconds: wallS, setupSeconds: result.setupS, reloadSeconds: result.reloadS, peakRssMB: result.peakRssMB, comparison: comparison.length,
    });
    onEvent({ kind: cancelled ? 'cancelled' : 'done', step: result.step, ...(promoted ? { bestStep: result.savedStep } : {}), comparison, message });
  }

  async suggest(task: Task, examples: Example[], signal?: AbortSignal): Promise<Suggestion[]> {
    const model = await this.s.models.ensureLoaded({ interactive: true });
    if (!model) throw new Error('No model is loaded: suggestions need one.');
    const adapter = await this.adapterIfTrained(task, model.generation, model.summary.base);
    const out: Suggestion[] = [];
    for (const ex of examples) {
      if (signal?.aborted) break;
      const a = await taskAnswer(this.s.engine, task.config, ex.input, adapter, signal);
      out.push({ id: ex.id, output: a.output, ...(a.probability !== undefined ? { probability: a.probability } : {}) });
    }
    return out;
  }

  dispose(): void {
    this.progress.dispose();
  }

  /**
   * After the first step: when the whole run would take longer than the setting allows (default 30 minutes),
   * asks whether to go on; resolves with why it stops (the user said stop), or undefined to go on.
   */
  private async confirmLongRun(modelName: string, stepS: number, totalS: number, steps: number): Promise<string | undefined> {
    const limitMin = vscode.workspace.getConfiguration('gemmaTune').get<number>(CONFIRM_TRAINING_KEY, DEFAULT_CONFIRM_MINUTES);
    if (!(limitMin > 0) || totalS <= limitMin * 60) return undefined;
    const estimate = `Fine-tuning with ${modelName} would take about ${formatDuration(totalS)} on this machine (first step ${stepS.toFixed(1)} s, ${steps} steps).`;
    this.s.log.warn(`train: ${estimate}`);
    this.s.events.write('trainingTooSlow', { model: modelName, stepSeconds: stepS, totalSeconds: totalS, steps });
    const keep = 'Keep training';
    const pick = await vscode.window.showWarningMessage(`${estimate} A smaller model (Gemma: Choose model…) trains faster.`, { modal: true }, keep, 'Stop');
    return pick === keep ? undefined : `Stopped: ${estimate}`;
  }

  /** Ends a run the user stopped as too long: nothing of it was kept. */
  private stoppedForTime(task: Task, why: string, step: number, onEvent: (e: TrainingEvent) => void): void {
    this.s.log.info(`train "${task.id}": ${why}`);
    this.s.events.write('trainingDone', { task: task.id, reason: 'too-slow', step });
    onEvent({ kind: 'cancelled', step, comparison: [], message: `${why} The task keeps the adapter it had, if any.` });
  }

  /** Records in task.json the base the task's new adapter was trained on. */
  private async recordBase(task: Task, base: BaseModelRecord | undefined): Promise<void> {
    if (!base) return;
    try {
      const store = taskStoreFor(vscode.Uri.file(workspaceOfTaskDir(task.dir)), this.s.log);
      await store.updateConfig(task.id, (config) => ({ ...config, baseModel: base }));
    } catch (e) {
      this.s.log.warn(`train "${task.id}": recording the base model in task.json failed: ${errorText(e)}`);
    }
  }

  private async adapterIfTrained(task: Task, generation: number, base?: BaseModelRecord): Promise<string | undefined> {
    const mismatch = baseMismatch(task.config, base);
    if (mismatch) {
      this.s.log.warn(`${mismatch} Suggestions come from the base model.`);
      return undefined;
    }
    try {
      return await this.adapters.ensure(path.join(task.dir, ADAPTER_DIR), task.id, generation);
    } catch {
      return undefined; // not trained yet: the base model answers
    }
  }

  /** The held-out examples through the base model and through the new adapter. */
  private async compare(task: Task, labeled: Example[], valIds: string[], adapterDir: string, generation: number, signal: AbortSignal): Promise<ComparisonRow[]> {
    const adapter = await this.adapters.ensure(adapterDir, task.id, generation);
    const rows: ComparisonRow[] = [];
    for (const id of valIds.slice(0, MAX_COMPARISON)) {
      const ex = labeled.find((e) => e.id === id);
      if (!ex || signal.aborted) continue;
      const before = await taskAnswer(this.s.engine, task.config, ex.input, undefined, signal);
      const after = await taskAnswer(this.s.engine, task.config, ex.input, adapter, signal);
      rows.push({ id, input: ex.input, expected: ex.output, before: before.output, after: after.output });
    }
    return rows;
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

// Runs a trained task on a range of a document, for the code actions and "Gemma: Run task on
// selection": makes sure the model and the task's adapter are in the engine, sends the request
// (all model work happens in the worker, so the editor stays responsive), shows a cancellable
// progress notification only when it takes longer than a moment, and then puts the answer in the
// editor: a classification beside the text, an extraction as one undoable edit. If the document
// changed while the engine worked, nothing is applied at a range that may now be wrong; the user
// is told, and can copy the answer.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineError } from '../client/engineClient';
import { baseMismatch, offerRetrain } from '../model/baseCheck';
import { errorText } from '../common/quote';
import type { ResultOf } from '../protocol/engine';
import type { GemmaServices } from '../services';
import { AdapterCache, adapterStamp } from '../client/adapterCache';
import { ADAPTER_WEIGHTS_FILE } from '../common/files';
import { Precompute, PRECOMPUTE_DEBOUNCE_MS, type PrecomputeJob } from './precompute';
import { type Classification, ClassificationView } from './classificationView';
import { commentSyntaxOf } from './languageComments';
import { asComment } from './commentSyntax';
import { insertAbove, insertBelow } from './placement';
import { decorationText } from './resultFormat';
import { classifyParams, extractedText, extractRequest } from '../client/taskRequests';
import type { TrainedTask } from './trainedTasks';

/** How long a request may run before a cancellable notification appears. */
export const PROGRESS_DELAY_MS = 600;
export const EXTRACT_PLACEMENT_KEY = 'extract.placement';
export const PRECOMPUTE_KEY = 'codeActions.precompute';
/** Longest selection classified in the background (~1000 tokens): longer ones wait for the user's pick. */
export const PRECOMPUTE_MAX_CHARS = 4000;
/** Classify tasks precomputed per selection (one after another). */
const PRECOMPUTE_MAX_TASKS = 3;
const PRECOMPUTE_KEPT = 32;

/** Runs `work` with a status bar spinner at once and a cancellable notification after `delayMs`. */
export async function withDelayedProgress<T>(title: string, delayMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const running = work(abort.signal);
  const settled = running.then(
    () => undefined,
    () => undefined,
  );
  vscode.window.setStatusBarMessage(`$(sync~spin) ${title}`, settled);
  let finished = false;
  void settled.then(() => (finished = true));
  const timer = setTimeout(() => {
    if (finished) return;
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (_progress, token) => {
      token.onCancellationRequested(() => abort.abort());
      return settled;
    });
  }, delayMs);
  try {
    return await running;
  } finally {
    clearTimeout(timer);
  }
}

/** Whether an engine error means the worker lost its model or adapters (restart, another load). */
function lostState(e: unknown): boolean {
  return e instanceof EngineError && (e.code === 'worker-exited' || e.code === 'not-loaded');
}

export class TaskRunner implements vscode.Disposable {
  private readonly adapters: AdapterCache;
  private readonly precomputed: Precompute<ResultOf<'classify'>>;

  constructor(
    private readonly s: GemmaServices,
    readonly view: ClassificationView,
  ) {
    this.adapters = new AdapterCache(s.engine);
    this.precomputed = new Precompute({ debounceMs: PRECOMPUTE_DEBOUNCE_MS, maxEntries: PRECOMPUTE_KEPT, canRun: () => this.engineIdle() });
  }

  /**
   * The selection changed to `range` (empty: no selection) with these classify tasks applying: starts
   * classifying it in the background when the setting allows, the model is loaded and the selection is
   * not too long; cancels what the previous selection started.
   */
  async precomputeClassify(tasks: TrainedTask[], document: vscode.TextDocument, range: vscode.Range): Promise<void> {
    const ticket = this.precomputed.begin();
    const input = range.isEmpty ? '' : document.getText(range);
    const enabled = vscode.workspace.getConfiguration('gemmaTune').get<boolean>(PRECOMPUTE_KEY, true);
    // A model is never loaded for a guess: only the user's pick loads it.
    // schedule(ticket, []) stops the previous selection's work, unless a newer selection already took over.
    if (!enabled || tasks.length === 0 || input.trim() === '' || input.length > PRECOMPUTE_MAX_CHARS || this.s.models.state.kind !== 'ready') {
      return this.precomputed.schedule(ticket, []);
    }
    const model = await this.s.models.ensureLoaded({ interactive: false });
    if (!model) return this.precomputed.schedule(ticket, []);
    const jobs: PrecomputeJob<ResultOf<'classify'>>[] = [];
    for (const t of tasks.slice(0, PRECOMPUTE_MAX_TASKS)) {
      if (baseMismatch(t.task.config, model.summary.base)) continue; // said when the user picks the task
      const key = await this.classifyKey(t, input, model.generation).catch(() => undefined);
      if (!key) continue;
      jobs.push({
        key,
        run: async (signal) => {
          const adapter = await this.adapters.ensure(t.adapterDir, t.task.id, model.generation);
          return this.s.engine.request('classify', classifyParams(t.task.config, input, adapter), { signal });
        },
      });
    }
    this.precomputed.schedule(ticket, jobs);
  }

  /** Forgets background answers and stops background work (the setting was turned off). */
  resetPrecompute(): void {
    this.precomputed.cancel();
    this.precomputed.clear();
  }

  dispose(): void {
    this.precomputed.dispose();
  }

  /** Classifies the text of `range` and shows the label beside it; resolves with the result shown. */
  async classify(t: TrainedTask, document: vscode.TextDocument, range: vscode.Range): Promise<Classification | undefined> {
    const cfg = t.task.config;
    const input = document.getText(range);
    if (input.trim() === '') return this.nothingSelected();
    const version = document.version;
    const t0 = performance.now();
    const ask = () => this.run(`Gemma: classifying with “${cfg.name}”…`, t, (adapter, signal) =>
      this.s.engine.request('classify', classifyParams(cfg, input, adapter), { signal }),
    );
    const { value: r, precomputed } = await this.answerClassify(t, input, ask);
    if (!r) return undefined;
    const ms = performance.now() - t0;
    const text = decorationText(cfg.name, r.label, r.probability);
    const stale = document.version !== version || document.isClosed;
    this.s.events.write('classifyResult', { task: t.task.id, label: r.label, probability: r.probability, ms: Math.round(ms * 10) / 10, inputChars: input.length, stale, precomputed });
    this.s.log.info(`classify "${t.task.id}": ${text} in ${Math.round(ms)} ms${precomputed ? ' (precomputed)' : ''}${stale ? ' (document changed meanwhile)' : ''}`);
    if (stale) {
      this.tellStale(`the text changed while Gemma was classifying, so the answer is not shown beside it. It was: ${text}.`, r.label);
      return undefined;
    }
    const c: Classification = { uri: document.uri, range, version, taskName: cfg.name, label: r.label, probability: r.probability, scores: r.scores, ms };
    this.view.show(c);
    // Said in words too, for screen readers (a decoration is not announced).
    vscode.window.setStatusBarMessage(`Gemma: ${text}`, 10_000);
    return c;
  }

  /** Extracts from the text of `range` and inserts the answer below it (or in its place), as one undoable edit. */
  async extract(t: TrainedTask, document: vscode.TextDocument, range: vscode.Range): Promise<string | undefined> {
    const cfg = t.task.config;
    const input = document.getText(range);
    if (input.trim() === '') return this.nothingSelected();
    const version = document.version;
    const t0 = performance.now();
    const result = await this.run(`Gemma: extracting with “${cfg.name}”…`, t, async (adapter, signal): Promise<ResultOf<'extract'> | ResultOf<'generate'>> => {
      const req = extractRequest(cfg, input, adapter);
      return req.method === 'extract' ? this.s.engine.request('extract', req.params, { signal }) : this.s.engine.request('generate', req.params, { signal });
    });
    if (result === undefined) return undefined;
    const text = extractedText(cfg, result);
    const ms = performance.now() - t0;
    const replace = vscode.workspace.getConfiguration('gemmaTune').get(EXTRACT_PLACEMENT_KEY) === 'replace';
    const applied = document.version === version && !document.isClosed && (await this.applyExtraction(document, range, version, text, replace));
    this.s.events.write('extractResult', { task: t.task.id, text, ms: Math.round(ms * 10) / 10, applied, placement: replace ? 'replace' : 'below' });
    this.s.log.info(`extract "${t.task.id}": ${text} in ${Math.round(ms)} ms${applied ? '' : ' (not applied: the document changed meanwhile)'}`);
    if (!applied) {
      this.tellStale('the text changed while Gemma was extracting, so the answer was not inserted.', text);
      return undefined;
    }
    return text;
  }

  /** Inserts a shown classification as a comment line above its range (one undoable edit). */
  async insertClassification(document: vscode.TextDocument, c: Classification): Promise<boolean> {
    if (document.version !== c.version) {
      void vscode.window.showWarningMessage('Gemma: the text changed since it was classified; classify it again to insert the label.');
      return false;
    }
    const comment = asComment(decorationText(c.taskName, c.label, c.probability), await commentSyntaxOf(document.languageId));
    const eol = document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n';
    const ins = insertAbove(c.range.start, (l) => document.lineAt(l).text, comment, eol);
    const ok = await this.applyEdit(document, c.version, (edit) => edit.insert(new vscode.Position(ins.at.line, ins.at.character), ins.text));
    this.s.events.write('classificationInserted', { label: c.label, comment, applied: ok });
    if (!ok) void vscode.window.showWarningMessage('Gemma: the text changed meanwhile; the label was not inserted.');
    return ok;
  }

  // ---- internals --------------------------------------------------------------------------

  /** The background answer for this task and text when there is one (done or on its way), else `ask`'s. */
  private async answerClassify(t: TrainedTask, input: string, ask: () => Promise<ResultOf<'classify'> | undefined>): Promise<{ value: ResultOf<'classify'> | undefined; precomputed: boolean }> {
    const model = this.s.models.state.kind === 'ready' ? await this.s.models.ensureLoaded({ interactive: false }) : undefined;
    const key = model && (await this.classifyKey(t, input, model.generation).catch(() => undefined));
    if (!key) return { value: await ask(), precomputed: false };
    const joining = this.precomputed.isRunning(key);
    const answer = this.precomputed.answer(key, ask);
    // Joining the background job: the same spinner a request of its own shows (ask() brings its own).
    if (joining) vscode.window.setStatusBarMessage(`$(sync~spin) Gemma: classifying with “${t.task.config.name}”…`, answer.then(() => undefined, () => undefined));
    return answer;
  }

  /** What a classify answer depends on: the model load, the adapter file's version, and the request (task text, labels, input). */
  private async classifyKey(t: TrainedTask, input: string, generation: number): Promise<string> {
    const stat = await fs.stat(path.join(t.adapterDir, ADAPTER_WEIGHTS_FILE));
    return JSON.stringify([generation, path.resolve(t.adapterDir), adapterStamp(stat), classifyParams(t.task.config, input, undefined)]);
  }

  /** Whether a background request would run at once: a model loaded and nothing running or queued (training, a user's request). */
  private async engineIdle(): Promise<boolean> {
    if (!this.s.engine.running) return false;
    try {
      // A background check: an engine too busy to answer at once is not idle.
      const st = await this.s.engine.request('status', {}, { timeoutMs: 2000 });
      return st.model !== null && st.busy === null && st.queued === 0;
    } catch {
      return false;
    }
  }

  /**
   * Loads the model (with its own notification) and the task's adapter, then runs `request`;
   * retries once when the worker lost them. Undefined when there is no model, the user cancelled,
   * or it failed (the error was shown).
   */
  private async run<T>(title: string, t: TrainedTask, request: (adapter: string, signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      const model = await this.s.models.ensureLoaded({ interactive: true });
      if (!model) return undefined;
      const mismatch = baseMismatch(t.task.config, model.summary.base);
      if (mismatch) {
        this.s.log.warn(mismatch);
        this.s.events.write('taskBaseMismatch', { task: t.task.id, trainedOn: t.task.config.baseModel?.fingerprint, loaded: model.summary.base?.fingerprint });
        offerRetrain(mismatch, t.folder.uri, t.task.id);
        return undefined;
      }
      try {
        return await withDelayedProgress(title, PROGRESS_DELAY_MS, async (signal) => {
          const adapter = await this.adapters.ensure(t.adapterDir, t.task.id, model.generation);
          return request(adapter, signal);
        });
      } catch (e) {
        if (e instanceof EngineError && e.code === 'cancelled') {
          this.s.events.write('taskCancelled', { task: t.task.id });
          return undefined;
        }
        if (lostState(e) && attempt === 0) {
          this.s.log.warn(`engine lost its model or adapter (${errorText(e)}); loading them again`);
          this.adapters.clear();
          this.s.models.lost();
          continue;
        }
        const why = errorText(e);
        this.s.log.error(`running "${t.task.id}" failed: ${why}`);
        this.s.events.write('taskFailed', { task: t.task.id, error: why });
        void vscode.window.showErrorMessage(`Gemma: “${t.task.config.name}” failed: ${why}`, 'Show Log').then((pick) => pick && this.s.log.show(true));
        return undefined;
      }
    }
  }

  private async applyExtraction(document: vscode.TextDocument, range: vscode.Range, version: number, text: string, replace: boolean): Promise<boolean> {
    const eol = document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n';
    if (replace) return this.applyEdit(document, version, (edit) => edit.replace(range, text));
    const ins = insertBelow(range.start, range.end, (l) => document.lineAt(l).text, text, eol);
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === document);
    const selections = editor?.selections;
    const ok = await this.applyEdit(document, version, (edit) => edit.insert(new vscode.Position(ins.at.line, ins.at.character), ins.text));
    // An insert at the selection's end would grow the selection over the answer; keep what the user selected.
    if (ok && editor && selections) editor.selections = selections;
    return ok;
  }

  /**
   * Applies one edit if the document is still at `version`. Through a visible editor, VS Code
   * itself refuses an edit made against an older version, so nothing slips in between the check
   * and the edit; without one, the version is checked just before a workspace edit.
   */
  private async applyEdit(document: vscode.TextDocument, version: number, build: (edit: { insert(p: vscode.Position, t: string): void; replace(r: vscode.Range, t: string): void }) => void): Promise<boolean> {
    if (document.version !== version) return false;
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === document);
    if (editor) return editor.edit((b) => build(b), { undoStopBefore: true, undoStopAfter: true });
    const edit = new vscode.WorkspaceEdit();
    build({ insert: (p, t) => edit.insert(document.uri, p, t), replace: (r, t) => edit.replace(document.uri, r, t) });
    return vscode.workspace.applyEdit(edit);
  }

  private tellStale(message: string, answer: string): void {
    void vscode.window.showWarningMessage(`Gemma: ${message}`, 'Copy answer').then((pick) => {
      if (pick) void vscode.env.clipboard.writeText(answer);
    });
  }

  private nothingSelected(): undefined {
    void vscode.window.showInformationMessage('Gemma: select the text to run the task on first.');
    return undefined;
  }
}

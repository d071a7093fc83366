// The training and labeling panel, host side: one instance owns one WebviewPanel for one task.
// Every message from the page is validated (protocol/webview.ts) before anything is done with
// it; a message that does not validate is logged and dropped. Every edit goes straight to the
// TaskStore (atomic writes), and the page gets an ack per edit. The context is not retained when
// the panel is hidden: the page restores its own UI state (getState/setState) and asks for the
// data again with `ready`; after a window reload the serializer reopens the panel on its task.
// A change of the task's files by anyone else (another window, the CLI, a hand edit) reloads the
// page's state. Training is TaskTraining's (taskTraining.ts): the panel forwards the page's Train, Resume
// and Cancel to it and draws the events it reports.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DisposableStore } from '../common/disposables';
import type { EventLog } from '../eventLog';
import { type Capabilities, type HostToWebview, parseWebviewMessage, type Suggestion, type WebviewToHost } from '../protocol/webview';
import { isSafeFolderName } from '../store/names';
import { EXAMPLES_FILE, TASK_FILE } from '../common/files';
import { type Task, TaskFileError, TASKS_RELATIVE_DIR, type TaskStore } from '../store/taskStore';
import { formatProblem } from '../store/jsonl';
import { taskStoreFor, workspaceFolderAt } from '../store/workspaceStore';
import type { PanelEngine } from './panelEngine';
import { panelColumn } from './panelColumn';
import { panelHtml } from './panelHtml';
import { TaskTraining, type TrainingDeps, type TrainRequest } from './taskTraining';
import { NotReadyError } from './trainReadiness';
import { buildPanelState, type PanelStateInput, type Unavailable, unreadableTask } from './panelState';

export const PANEL_VIEW_TYPE = 'gemmaTune.trainingPanel';
/** Changes on disk are gathered this long before the panel reloads (one save can fire several events). */
const RELOAD_DELAY_MS = 300;
/** How often a visible panel compares its task's files with what it last read, besides the watcher. */
const RELOAD_CHECK_MS = 3000;

export interface PanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
  events?: EventLog;
  engine: PanelEngine;
  /** What a task's training runs on. */
  training: TrainingDeps;
  /** The open panels, made once by the wiring (registerTaskCommands). */
  panels: TrainingPanels;
}

/** The training panels open in this window, one per task, and the one the user was in last. */
export class TrainingPanels {
  readonly open = new Map<string, TrainingPanel>();
  /** The panel the user was in last (it leads the task pick of "Fine-tune on selection"). */
  lastActive: TrainingPanel | undefined;

  /** The task of the panel the user was in last, if it is open and in `folder`. */
  lastActiveTask(folder: vscode.WorkspaceFolder): string | undefined {
    const p = this.lastActive;
    return p && this.open.get(p.key) === p ? p.taskIn(folder) : undefined;
  }

  /** Refreshes an open panel of this task (after a command changed its examples). */
  async refresh(folder: vscode.WorkspaceFolder, taskId: string): Promise<void> {
    await this.open.get(panelKey(folder, taskId))?.refresh();
  }

  /** Follows a task that was renamed, or closes the panel of one that was deleted. */
  taskMoved(folder: vscode.WorkspaceFolder, oldId: string, newTask: Task | undefined): void {
    this.open.get(panelKey(folder, oldId))?.moved(newTask);
  }

  /**
   * Stops every panel's host side (file watcher, change poll, messages) and leaves the pages to VS Code, which
   * restores them in the next window. Called first when the extension host shuts down: a reloaded window's
   * new host is already editing the same files while the old one finishes, and the old one's panels must not
   * take those edits for someone else's and act on them.
   */
  dispose(): void {
    for (const p of [...this.open.values()]) p.detach();
    this.lastActive = undefined;
  }
}

function panelKey(folder: vscode.WorkspaceFolder, taskId: string): string {
  return `${folder.uri.fsPath}\n${taskId}`;
}

/** What the page keeps in its own state so a reloaded window can reopen the panel. */
interface RestoreInfo {
  folder: string;
  taskId: string;
}

export class TrainingPanel {
  private readonly store: TaskStore;
  private readonly disposables = new DisposableStore();
  /** Aborted when the panel closes: what the engine still does for it (suggestions) is stopped. */
  private readonly closed = new AbortController();
  private readonly training: TaskTraining;
  private suggestions: Suggestion[] = [];
  private capabilities: Capabilities = { train: false, suggest: false };
  private reloadTimer: NodeJS.Timeout | undefined;
  private reloadCheck: NodeJS.Timeout | undefined;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: PanelDeps,
    private readonly folder: vscode.WorkspaceFolder,
    private taskId: string,
  ) {
    this.store = taskStoreFor(folder.uri, deps.log);
    this.training = new TaskTraining(deps.training, this.store, () => this.taskId);
    const webview = panel.webview;
    webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(deps.extensionUri, 'dist'), vscode.Uri.joinPath(deps.extensionUri, 'media')],
    };
    const asUri = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(deps.extensionUri, ...p)).toString();
    webview.html = panelHtml({
      cspSource: webview.cspSource,
      scriptUri: asUri('dist', 'webview.js'),
      styleUris: [asUri('dist', 'webview.css'), asUri('media', 'panel.css')],
      title: 'Gemma training',
    });
    panel.iconPath = vscode.Uri.joinPath(deps.extensionUri, 'media', 'gemma.svg');
    // Another window, the CLI or a hand edit changing task.json or examples.jsonl: reload, never overwrite.
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, `${TASKS_RELATIVE_DIR.split(path.sep).join('/')}/*/{${TASK_FILE},${EXAMPLES_FILE}}`));
    this.disposables.addAll(
      webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)),
      panel.onDidDispose(() => this.closedByUser()),
      panel.onDidChangeViewState((e) => {
        if (e.webviewPanel.active) deps.panels.lastActive = this;
      }),
      watcher,
      watcher.onDidChange((u) => this.onDiskChange(u)),
      watcher.onDidCreate((u) => this.onDiskChange(u)),
      watcher.onDidDelete((u) => this.onDiskChange(u)),
    );
    // Watchers miss changes on some file systems (and are late under load): a visible panel also looks itself.
    this.reloadCheck = setInterval(() => {
      if (this.panel.visible) this.reloadIfChanged();
    }, RELOAD_CHECK_MS);
    deps.panels.open.set(this.key, this);
    deps.panels.lastActive = this;
  }

  get key(): string {
    return panelKey(this.folder, this.taskId);
  }

  /** This panel's task when it is in `folder`. */
  taskIn(folder: vscode.WorkspaceFolder): string | undefined {
    return this.folder.uri.fsPath === folder.uri.fsPath ? this.taskId : undefined;
  }

  /** Reads the task again and shows it (after a command changed its examples). */
  refresh(): Promise<void> {
    return this.sendState();
  }

  /** Opens (or reveals and refreshes) the panel of a task. */
  static async show(deps: PanelDeps, folder: vscode.WorkspaceFolder, taskId: string): Promise<TrainingPanel> {
    const existing = deps.panels.open.get(panelKey(folder, taskId));
    if (existing) {
      existing.panel.reveal(undefined, false);
      await existing.sendState();
      return existing;
    }
    const task = await taskStoreFor(folder.uri, deps.log).get(taskId);
    const column = panelColumn(vscode.window.activeTextEditor?.viewColumn, vscode.window.tabGroups.all.length);
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, `Gemma: ${task.config.name}`, { viewColumn: column === 'new' ? vscode.ViewColumn.Beside : column, preserveFocus: false }, {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(deps.extensionUri, 'dist'), vscode.Uri.joinPath(deps.extensionUri, 'media')],
    });
    deps.events?.write('panelOpened', { taskId });
    return new TrainingPanel(panel, deps, folder, taskId);
  }

  /** The serializer's half: reattaches a panel VS Code restored after a reload. */
  static async restore(deps: PanelDeps, panel: vscode.WebviewPanel, saved: unknown): Promise<void> {
    const info = readRestoreInfo(saved);
    const folder = info && workspaceFolderAt(info.folder);
    if (!info || !folder) {
      deps.log.warn('training panel: nothing valid to restore, closing it');
      panel.dispose();
      return;
    }
    try {
      const task = await taskStoreFor(folder.uri, deps.log).get(info.taskId);
      panel.title = `Gemma: ${task.config.name}`;
    } catch (err) {
      // A task deleted meanwhile closes its panel; a damaged one keeps it, and the page says what is wrong.
      if (err instanceof TaskFileError && !existsSync(err.file)) {
        deps.log.info(`training panel: task "${info.taskId}" is gone, closing its panel`);
        panel.dispose();
        return;
      }
      panel.title = `Gemma: ${info.taskId}`;
    }
    deps.events?.write('panelRestored', { taskId: info.taskId });
    new TrainingPanel(panel, deps, folder, info.taskId);
  }

  /** Follows its task renamed to `newTask`, or closes when the task was deleted (undefined). */
  moved(newTask: Task | undefined): void {
    if (!newTask) return this.panel.dispose();
    this.deps.panels.open.delete(this.key);
    this.taskId = newTask.id;
    this.deps.panels.open.set(this.key, this);
    this.panel.title = `Gemma: ${newTask.config.name}`;
    void this.sendState();
  }

  private post(msg: HostToWebview): void {
    // Events of a run that is stopping can still arrive after the panel closed: nobody to show them to.
    if (this.closed.signal.aborted) return;
    void this.panel.webview.postMessage(msg);
  }

  private async sendState(): Promise<void> {
    let input: PanelStateInput;
    try {
      const [read, hasAdapter, interrupted] = await Promise.all([
        this.store.shown(this.taskId), this.store.hasAdapter(this.taskId), this.training.resumable(),
      ]);
      const task = read.task;
      this.capabilities = await this.deps.engine.capabilities().catch((err: Error) => ({ train: false, suggest: false, reason: err.message }));
      input = {
        task, hasAdapter, examples: read.examples, problems: read.problems, capabilities: this.capabilities,
        training: await this.training.view(), suggestions: this.suggestions,
        resumable: interrupted && { step: interrupted.step, totalSteps: interrupted.totalSteps },
      };
      this.logProblems(read.problems.map(formatProblem));
    } catch (err) {
      return this.showUnavailable(unreadableTask(this.taskId, err, this.folder.uri.fsPath));
    }
    // Detached while reading (the panel closed, or the extension host is shutting down): nothing to show.
    if (this.closed.signal.aborted) return;
    const built = buildPanelState(input);
    if ('unavailable' in built) return this.showUnavailable(built.unavailable);
    this.post({ type: 'state', state: built.state, restore: { folder: this.folder.uri.fsPath, taskId: this.taskId } });
    this.deps.events?.write('panelState', { taskId: this.taskId, examples: input.examples.length, shown: built.state.examples.length, problems: input.problems.length });
  }

  /** Lists the unreadable lines in the output channel (the page shows the first few), once per change. */
  private logProblems(problems: string[]): void {
    const key = problems.join('\n');
    if (key === this.loggedProblems) return;
    this.loggedProblems = key;
    if (problems.length > 0) this.deps.log.warn(`training panel: ${problems.length} unreadable line(s) kept aside:\n${key}`);
  }
  private loggedProblems = '';

  /** The page shows, instead of the panel, what is wrong and what to do. */
  private showUnavailable(u: Unavailable): void {
    this.deps.log.warn(`training panel: ${u.problem}`);
    this.post({ type: 'unavailable', problem: clip(u.problem), remedy: clip(u.remedy) });
    this.deps.events?.write('panelUnavailable', { taskId: this.taskId, problem: u.problem });
  }

  /** After a change under the task folder: the page gets the state again when someone else changed its files. */
  private onDiskChange(uri: vscode.Uri): void {
    if (path.basename(path.dirname(uri.fsPath)) !== this.taskId) return;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reloadIfChanged(), RELOAD_DELAY_MS);
  }

  /** Sends the state again when task.json or examples.jsonl changed on disk since this window last showed or wrote them. */
  private reloadIfChanged(): void {
    void this.store.diskChange(this.taskId).then((change) => {
      if (!change || this.closed.signal.aborted) return;
      this.deps.log.info(`training panel: ${change.file} changed on disk (${change.known ?? 'never read'} → ${change.now ?? 'gone'}); showing it again`);
      this.deps.events?.write('panelReloaded', { taskId: this.taskId, ...change });
      return this.sendState();
    }).catch((err: Error) => this.deps.log.warn(`training panel: ${err.message}`));
  }

  private async onMessage(raw: unknown): Promise<void> {
    let msg: WebviewToHost;
    try {
      msg = parseWebviewMessage(raw);
    } catch (err) {
      // Never acted on: a page that sends malformed messages is buggy or hostile.
      this.deps.log.warn(`training panel: rejected a message from the webview: ${(err as Error).message}`);
      this.deps.events?.write('webviewMessageRejected', { error: (err as Error).message });
      return;
    }
    const seq = 'seq' in msg ? msg.seq : undefined;
    try {
      await this.handle(msg);
    } catch (err) {
      const message = (err as Error).message;
      // The user's data not allowing it is said to the user; only a fault is an error in the log.
      if (err instanceof NotReadyError) this.deps.log.info(`training panel: ${msg.type}: ${message}`);
      else this.deps.log.error(`training panel: ${msg.type} failed: ${message}`);
      if (seq !== undefined) this.post({ type: 'ack', seq, ok: false, error: message });
      else this.post({ type: 'notice', level: 'error', message });
    }
  }

  private async handle(msg: WebviewToHost): Promise<void> {
    const id = this.taskId;
    switch (msg.type) {
      case 'ready':
        return this.sendState();
      case 'addExample': {
        const [example] = await this.store.addExamples(id, [{ input: msg.input, output: msg.output }]);
        this.post({ type: 'ack', seq: msg.seq, ok: true, example });
        this.deps.events?.write('exampleAdded', { taskId: id, exampleId: example.id, via: 'panel' });
        return;
      }
      case 'updateExample': {
        const example = await this.store.updateExample(id, msg.id, { input: msg.input, output: msg.output, heldOut: msg.heldOut });
        this.post({ type: 'ack', seq: msg.seq, ok: true, example });
        this.deps.events?.write('exampleSaved', { taskId: id, exampleId: example.id, output: example.output, heldOut: example.heldOut });
        return;
      }
      case 'removeExample': {
        const removed = await this.store.removeExample(id, msg.id);
        this.post({ type: 'ack', seq: msg.seq, ok: removed, error: removed ? undefined : 'that example was already gone' });
        if (removed) this.deps.events?.write('exampleRemoved', { taskId: id, exampleId: msg.id });
        return;
      }
      case 'setHyperparameters': {
        await this.store.updateConfig(id, (config) => ({ ...config, hyperparameters: msg.hyperparameters }));
        this.post({ type: 'ack', seq: msg.seq, ok: true });
        return;
      }
      case 'train':
        return this.train({ hyperparameters: msg.hyperparameters });
      case 'resumeTraining':
        return this.train({ resume: true });
      case 'cancelTraining':
        this.training.cancel();
        return;
      case 'suggest':
        return this.suggest(msg.ids);
    }
  }

  /** Runs training for the page: its events drawn, the state sent again once the run is over. */
  private train(request: TrainRequest): Promise<void> {
    return this.training.train(request, {
      event: (event) => this.post({ type: 'training', event }),
      // Suggestions came from the model before this run: the page asks the new one again.
      ended: () => {
        this.suggestions = [];
      },
      // The task may have an adapter now (header, suggestions), or a run to resume: the page gets the whole state again.
      settled: () => this.sendState(),
    });
  }

  private async suggest(ids: string[] | undefined): Promise<void> {
    this.capabilities = await this.deps.engine.capabilities();
    if (!this.capabilities.suggest) throw new Error(this.capabilities.reason ?? 'the engine cannot make suggestions now');
    const task = await this.store.get(this.taskId);
    const { examples } = await this.store.examples(this.taskId);
    const wanted = ids ? examples.filter((e) => ids.includes(e.id)) : examples.filter((e) => e.output.trim() === '');
    const items = await this.deps.engine.suggest(task, wanted, this.closed.signal).catch((e: unknown) => {
      if (this.closed.signal.aborted) return undefined; // the panel closed: nobody to tell
      throw e;
    });
    if (!items) return;
    const byId = new Map(this.suggestions.map((s) => [s.id, s]));
    for (const s of items) byId.set(s.id, s);
    this.suggestions = [...byId.values()];
    this.post({ type: 'suggestions', items });
  }

  /** The user closed the page: its run stops in the engine, and its host side ends. */
  private closedByUser(): void {
    this.training.cancel();
    this.detach();
  }

  /**
   * Ends this panel's host side (watcher, poll, messages, suggestions); the page stays for VS Code to close
   * or restore. A run goes on: when the host shuts down, the engine's end cuts it off as a crash would, and
   * the task keeps the adapter it had, with the run's checkpoint to resume from.
   */
  detach(): void {
    clearTimeout(this.reloadTimer);
    clearInterval(this.reloadCheck);
    if (this.deps.panels.open.get(this.key) === this) this.deps.panels.open.delete(this.key);
    this.closed.abort();
    this.disposables.dispose();
  }
}

function readRestoreInfo(saved: unknown): RestoreInfo | undefined {
  const r = (saved as { restore?: unknown } | null | undefined)?.restore as Partial<RestoreInfo> | undefined;
  if (!r || typeof r.folder !== 'string' || typeof r.taskId !== 'string' || !isSafeFolderName(r.taskId)) return undefined;
  return { folder: r.folder, taskId: r.taskId };
}

/** Registers the serializer that reopens training panels after a window reload. */
export function registerTrainingPanelSerializer(deps: PanelDeps): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
    deserializeWebviewPanel: (panel, state: unknown) => TrainingPanel.restore(deps, panel, state),
  });
}

/** A message cut to what the protocol carries (2000 characters). */
function clip(text: string): string {
  return text.length > 2000 ? `${text.slice(0, 1997)}…` : text;
}

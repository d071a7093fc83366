// The host side of the engine's model: which model the engine runs (settings, or the default model
// in global storage), loading it on first need behind a "Loading Gemma…" notification (which the user
// can cancel, stopping the load in the engine), reloading it when the settings change, and telling
// listeners (the status bar) each change of state, the engine's crashes included: a crashed engine
// took its model with it. When there is no model it says so once per need, offering the download and
// "Use local model…". Everything heavy happens in the engine; this class only sends requests.

import * as vscode from 'vscode';
import { DisposableStore } from '../common/disposables';
import { type EngineClient, EngineError, type EngineState } from '../client/engineClient';
import type { ModelSummary } from '../protocol/engine';
import { errorText } from '../common/quote';
import type { EventLog } from '../eventLog';
import { DEFAULT_MODEL } from '../engine/model/modelManifest';
import {
  CONFIG_SECTION,
  loadKey,
  MODEL_KEYS,
  modelDisplayName,
  type ModelSettings,
  type ModelSource,
  readModelSettings,
  resolveModelSource,
} from './modelSettings';
import type { ModelState } from './modelState';
import { recordMeasurement } from './modelMeasurements';

export const DOWNLOAD_MODEL_COMMAND = 'gemmaTune.downloadModel';
/** A cancelled load stops in the engine within this, or the engine is restarted (nothing is lost: no model was loaded). */
const LOAD_CANCEL_GRACE_MS = 3000;
export const USE_LOCAL_MODEL_COMMAND = 'gemmaTune.useLocalModel';

/** The model the worker holds now. `generation` changes with every load (adapters must be re-sent). */
export interface LoadedModel {
  path: string;
  summary: ModelSummary;
  generation: number;
  loadSeconds: number;
}

/** What the model service needs from activate(): the services built before it (services.ts extends it). */
export interface ModelServiceDeps {
  context: vscode.ExtensionContext;
  /** The "Gemma Tune" output channel: engine logs and what the commands did. */
  log: vscode.LogOutputChannel;
  engine: EngineClient;
  events: EventLog;
}

/** The default model's size as the offer shows it, e.g. "241 MB". */
export function defaultModelSize(): string {
  return DEFAULT_MODEL.size ? `${Math.round(DEFAULT_MODEL.size / 1e6)} MB` : 'about 240 MB';
}

export class ModelService implements vscode.Disposable {
  private current: ModelState = { kind: 'unknown' };
  private readonly changed = new vscode.EventEmitter<ModelState>();
  /** Fires on every state change. */
  readonly onDidChangeState = this.changed.event;
  private loaded: { key: string; model: LoadedModel } | undefined;
  /** Loads run one after another, so the last settings win. */
  private chain: Promise<unknown> = Promise.resolve();
  private pending: { key: string; promise: Promise<LoadedModel> } | undefined;
  private generation = 0;
  private downloading = false;
  private readonly reported = new Set<string>();
  private readonly disposables = new DisposableStore();

  constructor(private readonly s: ModelServiceDeps) {
    this.disposables.addAll(
      this.changed,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (MODEL_KEYS.some((k) => e.affectsConfiguration(`${CONFIG_SECTION}.${k}`))) void this.settingsChanged();
      }),
      s.engine.onDidChangeState((st) => this.engineChanged(st)),
    );
  }

  /** The state now. */
  get state(): ModelState {
    return this.current;
  }

  /** The checked settings; an ignored value is logged once. */
  settings(): ModelSettings {
    const config = vscode.workspace.getConfiguration(CONFIG_SECTION);
    const { settings, problems } = readModelSettings((k) => config.get(k), (k) => config.inspect(k));
    for (const p of problems) {
      if (this.reported.has(p)) continue;
      this.reported.add(p);
      this.s.log.warn(p);
      void vscode.window.showWarningMessage(`Gemma: ${p}`);
    }
    return settings;
  }

  /** Where the configured model is on disk (nothing is loaded). */
  async source(settings = this.settings()): Promise<ModelSource> {
    return resolveModelSource(settings, this.s.context.globalStorageUri.fsPath, { workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath });
  }

  /** Updates the state from the disk when no load or download is under way. */
  async refresh(): Promise<void> {
    if (this.downloading || this.pending) return;
    const settings = this.settings();
    const src = await this.source(settings);
    if (this.loaded && this.isCurrent(this.loaded.key, src, settings)) return;
    this.setState(idleState(src));
  }

  /**
   * The loaded model, loading it first when needed. Undefined when there is no model (then, with
   * `interactive`, the user is offered the download or a local model) or the load failed (the
   * error was shown with `interactive`).
   */
  async ensureLoaded(opts: { interactive?: boolean } = {}): Promise<LoadedModel | undefined> {
    // A fresh engine (after a crash or a restart) starts without a model.
    if (this.loaded && !this.s.engine.running) this.lost();
    const settings = this.settings();
    const src = await this.source(settings);
    if (src.kind === 'not-downloaded' || src.kind === 'configured-missing') {
      this.setState(idleState(src));
      if (opts.interactive) this.offerModel(src);
      return undefined;
    }
    const key = loadKey(src.path, settings);
    if (this.loaded?.key === key) return this.loaded.model;
    try {
      return await this.load(src.path, settings, key);
    } catch (e) {
      if (opts.interactive && !isCancelled(e)) this.showLoadError(src.path, e);
      return undefined;
    }
  }

  /**
   * Loads `path` with the current precision and threads, for "Use local model…" to check a pick
   * before saving it; rejects with the engine's reason when the file is not a usable model.
   */
  async tryLoad(path: string): Promise<LoadedModel> {
    const settings = this.settings();
    return this.load(path, settings, loadKey(path, settings));
  }

  /** Called when a request found the engine without our model (it was restarted). */
  lost(): void {
    if (!this.loaded) return;
    this.s.log.info('engine: restarted; the model loads again on the next request');
    this.loaded = undefined;
    void this.refresh();
  }

  /** Runs the default-model download with the state showing its progress; resolves with the file or undefined. */
  async download(run: (onProgress: (fraction: number | undefined) => void) => Promise<string | undefined>): Promise<string | undefined> {
    if (this.downloading) return undefined;
    this.downloading = true;
    this.setState({ kind: 'downloading' });
    try {
      let shown: number | undefined = -1;
      const file = await run((fraction) => {
        // Progress arrives per network chunk; the status bar needs a change per whole percent.
        const pct = fraction === undefined ? undefined : Math.floor(fraction * 100);
        if (pct === shown) return;
        shown = pct;
        this.setState({ kind: 'downloading', fraction });
      });
      if (file) this.s.events.write('modelDownloaded', { path: file });
      return file;
    } finally {
      this.downloading = false;
      await this.refresh();
    }
  }

  /** The "no model" notification with its two ways out. Not awaited: a toast settles when dismissed. */
  offerModel(src: ModelSource): void {
    const download = `Download default model (${defaultModelSize()})`;
    const local = 'Use local model…';
    const message =
      src.kind === 'configured-missing'
        ? `Gemma: the model ${src.path} ${src.problem ?? 'does not exist'} (setting gemmaTune.model.path).`
        : 'Gemma needs a model to run tasks: download the default one (Gemma 3 270M, QAT Q4_0) or use one you have.';
    const buttons = src.kind === 'configured-missing' ? [local, download] : [download, local];
    this.s.events.write('modelOffered', { reason: src.kind });
    void vscode.window.showWarningMessage(message, ...buttons).then((pick) => {
      if (pick === download) void vscode.commands.executeCommand(DOWNLOAD_MODEL_COMMAND);
      else if (pick === local) void vscode.commands.executeCommand(USE_LOCAL_MODEL_COMMAND);
    });
  }

  dispose(): void {
    this.disposables.dispose();
  }

  // ---- internals --------------------------------------------------------------------------

  private isCurrent(key: string, src: ModelSource, settings: ModelSettings): boolean {
    return (src.kind === 'configured' || src.kind === 'default') && loadKey(src.path, settings) === key;
  }

  private load(path: string, settings: ModelSettings, key: string): Promise<LoadedModel> {
    if (this.pending?.key === key) return this.pending.promise;
    const promise = this.chain.then(
      () => this.loadNow(path, settings, key),
      () => this.loadNow(path, settings, key),
    );
    const entry = { key, promise };
    this.pending = entry;
    this.chain = promise.catch(() => undefined);
    const clear = (): void => {
      if (this.pending === entry) this.pending = undefined;
    };
    promise.then(clear, clear);
    return promise;
  }

  private async loadNow(path: string, settings: ModelSettings, key: string): Promise<LoadedModel> {
    if (this.loaded?.key === key && this.s.engine.running) return this.loaded.model;
    const name = modelDisplayName(path);
    this.setState({ kind: 'loading', name });
    const t0 = performance.now();
    this.s.log.info(`loading ${path} (${settings.precision}, ${settings.threads} threads, device ${settings.device})`);
    try {
      const r = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Loading Gemma…', cancellable: true },
        async (progress, token) => {
          progress.report({ message: name });
          const abort = new AbortController();
          const sub = token.onCancellationRequested(() => abort.abort());
          try {
            return await this.s.engine.request('loadModel', { path, precision: settings.precision, threads: settings.threads, device: settings.device }, { signal: abort.signal, cancelGraceMs: LOAD_CANCEL_GRACE_MS });
          } finally {
            sub.dispose();
          }
        },
      );
      const model: LoadedModel = { path, summary: r.model, generation: ++this.generation, loadSeconds: r.loadSeconds };
      this.loaded = { key, model };
      const ms = Math.round(performance.now() - t0);
      this.s.log.info(`model ${r.model.name} ready (${r.model.format}, ${r.model.precision}) in ${ms} ms${r.hasTokenizer ? '' : '; it has no tokenizer, so tasks cannot run on text'}`);
      this.s.events.write('modelLoaded', { path, name: r.model.name, format: r.model.format, precision: r.model.precision, threads: settings.threads, device: r.model.device, ms, loadSeconds: r.loadSeconds });
      this.setState({ kind: 'ready', name, precision: r.model.precision, loadSeconds: r.loadSeconds });
      void recordMeasurement(this.s.context.globalState, path, { loadS: r.loadSeconds }).catch(() => undefined);
      return model;
    } catch (e) {
      const message = errorText(e);
      this.loaded = undefined;
      if (isCancelled(e)) {
        this.s.log.info(`loading ${path} cancelled`);
        this.s.events.write('modelLoadCancelled', { path });
        this.setState({ kind: 'available', name });
      } else {
        this.s.log.error(`loading ${path} failed: ${message}`);
        this.s.events.write('modelLoadFailed', { path, error: message });
        // A crash has set the state already (engineChanged): the engine, not the model, failed.
        if (!(e instanceof EngineError && e.code === 'crashed')) this.setState({ kind: 'error', name, message });
      }
      throw e;
    }
  }

  /** The engine started, died or was restarted: a dead engine's model is gone, and the status bar says what happened. */
  private engineChanged(st: EngineState): void {
    if (st.kind === 'running') {
      this.s.events.write('engineStarted', { pid: st.pid });
      return;
    }
    this.loaded = undefined;
    if (st.kind === 'idle') {
      void this.refresh();
      return;
    }
    this.s.events.write('engineCrashed', { reason: st.reason, stopped: st.kind === 'stopped' });
    this.setState(st.kind === 'stopped' ? { kind: 'engine-stopped', message: st.reason } : { kind: 'engine-crashed', message: st.reason });
  }

  private showLoadError(path: string, e: unknown): void {
    // When the engine died, the model is not to blame: no offer to pick another.
    const buttons = e instanceof EngineError && e.code === 'crashed' ? ['Show Log'] : ['Use local model…', 'Show Log'];
    void vscode.window.showErrorMessage(`Gemma could not load ${path}: ${errorText(e)}`, ...buttons).then((pick) => {
      if (pick === 'Use local model…') void vscode.commands.executeCommand(USE_LOCAL_MODEL_COMMAND);
      else if (pick === 'Show Log') this.s.log.show(true);
    });
  }

  private async settingsChanged(): Promise<void> {
    const wasInUse = this.loaded !== undefined || this.pending !== undefined;
    if (!wasInUse) return this.refresh();
    // The user is working with the model: load the new one now rather than on the next request.
    await this.ensureLoaded({ interactive: true });
  }

  private setState(state: ModelState): void {
    this.current = state;
    this.changed.fire(state);
  }
}

/** The state of a model on disk that is not loaded. */
function idleState(src: ModelSource): ModelState {
  switch (src.kind) {
    case 'not-downloaded':
      return { kind: 'not-downloaded', sizeMB: Math.round((src.manifest.size ?? 0) / 1e6) };
    case 'configured-missing':
      return { kind: 'missing', path: src.path, ...(src.problem ? { problem: src.problem } : {}) };
    default:
      return { kind: 'available', name: modelDisplayName(src.path) };
  }
}

/** Whether `e` says the user (or the host on their behalf) cancelled the request. */
export function isCancelled(e: unknown): boolean {
  return e instanceof EngineError && e.code === 'cancelled';
}

// Gemma Tune's entry point: wiring only. Builds the shared services once, registers every
// command, and puts each disposable on context.subscriptions. Activation is lazy (VS Code
// activates on the first Gemma command), and its cost is logged.

import * as vscode from 'vscode';
import { EngineClient } from './client/engineClient';
import { ENGINE_PRIORITY } from './client/engineProcess';
import { registerCodeActions } from './codeActions/register';
import { registerChooseModel } from './commands/chooseModel';
import { registerModelCommands } from './commands/modelCommands';
import { registerRestartEngine } from './commands/restartEngine';
import { registerRunTaskOnSelection } from './commands/runTaskOnSelection';
import { registerShowEngineStatus } from './commands/showEngineStatus';
import { registerTaskCommands } from './commands/taskCommands';
import { EventLog } from './eventLog';
import { weightCacheDir } from './store/modelCache';
import { ModelService } from './model/modelService';
import { TrainingPanels } from './panel/trainingPanel';
import type { TrainingProgress } from './panel/trainingProgress';
import type { GemmaServices } from './services';
import { registerStatusBar } from './statusBar';

/** Called by VS Code on the first Gemma command. */
export function activate(context: vscode.ExtensionContext): void {
  const t0 = performance.now();
  const log = vscode.window.createOutputChannel('Gemma Tune', { log: true });
  const events = new EventLog();
  // The engine process starts on the first request, so activation does not pay for it.
  const engine = new EngineClient({
    workerPath: context.asAbsolutePath('dist/worker.js'), logger: log, priority: ENGINE_PRIORITY,
    weightCache: weightCacheDir(context.globalStorageUri.fsPath),
  });
  const panels = new TrainingPanels();
  shutdown = () => {
    panels.dispose();
    return engine.dispose();
  };
  const models = new ModelService({ context, log, engine, events });
  const services: GemmaServices = { context, log, engine, events, models };
  context.subscriptions.push(log, { dispose: () => void engine.dispose() }, models, panels);

  context.subscriptions.push(registerShowEngineStatus(services), registerRestartEngine(services));
  // A task's training reports each step here, and undefined when it ends; the status bar shows it.
  const trainingProgress = new vscode.EventEmitter<TrainingProgress | undefined>();
  context.subscriptions.push(trainingProgress, ...registerTaskCommands(services, trainingProgress, panels));
  context.subscriptions.push(...registerModelCommands(services, models), registerChooseModel(services, models), registerStatusBar(models, trainingProgress.event));
  const codeActions = registerCodeActions(services);
  context.subscriptions.push(...codeActions.disposables, registerRunTaskOnSelection(services, codeActions.tasks, codeActions.runner));

  const activationMs = Math.round((performance.now() - t0) * 10) / 10;
  log.info(`Gemma Tune ${String(context.extension.packageJSON.version)} activated in ${activationMs} ms`);
  events.write('activated', { activationMs, version: vscode.version, appName: vscode.env.appName });
}

let shutdown: (() => Promise<void>) | undefined;

/**
 * Stops the training panels' host side, then the engine (what runs is cancelled, the process ends), before
 * VS Code disposes the rest. The panels go first: on a window reload this host can take seconds to end while
 * the new window's host already edits the same task files.
 */
export function deactivate(): Promise<void> | undefined {
  return shutdown?.();
}

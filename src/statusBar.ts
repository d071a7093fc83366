// The status bar item that says what the model is doing (no model, downloading %, loading, ready
// with its name, failed, engine crashed or stopped, training step/ETA). A click does the useful next thing:
// download when there is no model, pick another when it is missing or broken, restart a stopped engine,
// otherwise "Gemma: Show Engine Status".

import * as vscode from 'vscode';
import { RESTART_ENGINE_COMMAND } from './commands/restartEngine';
import { SHOW_ENGINE_STATUS } from './commands/showEngineStatus';
import { DOWNLOAD_MODEL_COMMAND, type ModelService, USE_LOCAL_MODEL_COMMAND } from './model/modelService';
import { type ModelState, statusView } from './model/modelState';
import { type TrainingProgress, trainingStatusView } from './panel/trainingProgress';

const COMMANDS = { download: DOWNLOAD_MODEL_COMMAND, status: SHOW_ENGINE_STATUS, useLocal: USE_LOCAL_MODEL_COMMAND, restart: RESTART_ENGINE_COMMAND } as const;

/** Creates the item, keeps it in step with the model, and checks the disk once for the first state. */
export function registerStatusBar(models: ModelService, training?: vscode.Event<TrainingProgress | undefined>): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('gemmaTune.model', vscode.StatusBarAlignment.Right, 100);
  item.name = 'Gemma Tune model';
  let run: TrainingProgress | undefined;
  const show = (state: ModelState): void => {
    // While a task trains, its progress says more than "ready"; the model state returns after.
    const view = run ? { ...trainingStatusView(run), action: 'status' as const } : statusView(state);
    item.text = view.text;
    item.tooltip = view.tooltip;
    item.command = COMMANDS[view.action];
    item.accessibilityInformation = { label: view.ariaLabel, role: 'button' };
  };
  show(models.state);
  item.show();
  const sub = models.onDidChangeState(show);
  const trainSub = training?.((p) => {
    run = p;
    show(models.state);
  });
  void models.refresh();
  return vscode.Disposable.from(sub, item, ...(trainSub ? [trainSub] : []));
}

// "Gemma: Open training panel": pick a task of the workspace (or create one) and open its panel.

import * as vscode from 'vscode';
import { type PanelDeps, TrainingPanel } from '../panel/trainingPanel';
import { pickWorkspaceFolder, taskStoreFor } from '../store/workspaceStore';
import { runReporting } from './fineTuneOnSelection';
import { pickTask } from './taskPicker';

export const OPEN_TRAINING_PANEL = 'gemmaTune.openTrainingPanel';

/** Runs the command; resolves with the opened task's id. */
export async function openTrainingPanel(deps: PanelDeps): Promise<string | undefined> {
  const folder = await pickWorkspaceFolder(vscode.window.activeTextEditor?.document.uri);
  if (!folder) {
    void vscode.window.showWarningMessage('Gemma: open a folder first: tasks are stored in the workspace (.gemma/tasks).');
    return undefined;
  }
  const task = await pickTask(taskStoreFor(folder.uri, deps.log), { title: 'Open the training panel of…', allowNew: true, log: deps.log });
  if (!task) return undefined;
  await TrainingPanel.show(deps, folder, task.id);
  return task.id;
}

/** Registers the command; with a workspace folder and a task id (as "Retrain on this model" passes them), it opens that task's panel. */
export function registerOpenTrainingPanel(deps: PanelDeps): vscode.Disposable {
  return vscode.commands.registerCommand(OPEN_TRAINING_PANEL, (folderUri?: unknown, taskId?: unknown) => runReporting(deps, async () => {
    const folder = folderUri instanceof vscode.Uri ? vscode.workspace.getWorkspaceFolder(folderUri) : undefined;
    if (folder && typeof taskId === 'string') {
      await TrainingPanel.show(deps, folder, taskId);
      return taskId;
    }
    return openTrainingPanel(deps);
  }));
}

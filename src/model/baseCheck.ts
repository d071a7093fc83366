// An adapter runs only on the base model it was trained on. A task records that base (name, shape, weight
// fingerprint) in task.json when training saves its adapter; before the adapter is applied, the base loaded
// now must be the same one. When it is not, the user is told why and offered to retrain the task on the
// current model (its training panel) or to switch back (the model picker). A task trained before bases were
// recorded has no record and runs as before (the adapter's shapes are still checked when it loads).

import * as vscode from 'vscode';

export { baseMismatch } from '../store/baseModel';
export const CHOOSE_MODEL_COMMAND = 'gemmaTune.chooseModel';
export const OPEN_TRAINING_PANEL_COMMAND = 'gemmaTune.openTrainingPanel';

/** Says so, offering to retrain the task on the current model or to choose another model. Not awaited. */
export function offerRetrain(message: string, folder: vscode.Uri, taskId: string): void {
  const retrain = 'Retrain on this model';
  const choose = 'Choose model…';
  void vscode.window.showWarningMessage(`Gemma: ${message}`, retrain, choose).then((pick) => {
    if (pick === retrain) void vscode.commands.executeCommand(OPEN_TRAINING_PANEL_COMMAND, folder, taskId);
    else if (pick === choose) void vscode.commands.executeCommand(CHOOSE_MODEL_COMMAND);
  });
}

// "Gemma: Rename task…" and "Gemma: Delete task…". Delete moves the task folder to the trash
// (examples are the user's work), and asks before deleting for good where there is no trash.

import * as vscode from 'vscode';
import type { PanelDeps } from '../panel/trainingPanel';
import { MAX_NAME_LENGTH } from '../store/task';
import { runReporting } from './fineTuneOnSelection';
import { pickExistingTask } from './taskPicker';

export const RENAME_TASK = 'gemmaTune.renameTask';
export const DELETE_TASK = 'gemmaTune.deleteTask';

/** Renames a picked task (its folder follows the name); resolves with the new id. */
export async function renameTask(deps: PanelDeps): Promise<string | undefined> {
  const chosen = await pickExistingTask('Rename task', deps.log);
  if (!chosen) return undefined;
  const { folder, store, task } = chosen;
  const name = await vscode.window.showInputBox({
    title: `Rename "${task.config.name}"`,
    value: task.config.name,
    validateInput: (v) => (v.trim() === '' ? 'Give the task a name' : v.trim().length > MAX_NAME_LENGTH ? `At most ${MAX_NAME_LENGTH} characters` : undefined),
  });
  if (name === undefined || name.trim() === task.config.name) return undefined;
  const renamed = await store.rename(task.id, name);
  deps.panels.taskMoved(folder, task.id, renamed);
  deps.log.info(`renamed task ${task.id} -> ${renamed.id}`);
  return renamed.id;
}

/** Deletes a picked task after a modal confirmation; resolves with the deleted id. */
export async function deleteTask(deps: PanelDeps): Promise<string | undefined> {
  const chosen = await pickExistingTask('Delete task', deps.log);
  if (!chosen) return undefined;
  const { folder, store, task } = chosen;
  const { examples } = await store.examples(task.id);
  const ok = await vscode.window.showWarningMessage(
    `Delete the task "${task.config.name}" with its ${examples.length} example(s) and adapter?`,
    { modal: true, detail: 'The folder is moved to the trash.' },
    'Delete',
  );
  if (ok !== 'Delete') return undefined;
  const uri = vscode.Uri.file(store.taskDir(task.id));
  // Under the task's training lock: a task that another window or the CLI is training is not deleted.
  const trashError = await store.whileNotTraining(task.id, 'deleted', async () => {
    try {
      await vscode.workspace.fs.delete(uri, { recursive: true, useTrash: true });
      return undefined;
    } catch (err) {
      return err as Error;
    }
  });
  if (trashError) {
    const hard = await vscode.window.showWarningMessage(
      `The trash is not available here (${trashError.message}). Delete "${task.config.name}" permanently?`,
      { modal: true },
      'Delete Permanently',
    );
    if (hard !== 'Delete Permanently') return undefined;
    await store.remove(task.id);
  }
  deps.panels.taskMoved(folder, task.id, undefined);
  deps.log.info(`deleted task ${task.id}`);
  return task.id;
}

/** Registers both commands. */
export function registerManageTasks(deps: PanelDeps): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(RENAME_TASK, () => runReporting(deps, () => renameTask(deps))),
    vscode.commands.registerCommand(DELETE_TASK, () => runReporting(deps, () => deleteTask(deps))),
  ];
}

// "Gemma: Fine-tune on selection": each non-empty selection (several with multi-cursor) becomes a
// new, not yet labeled example of a task picked from a quick pick ("New task…" creates one),
// and the training panel opens on that task to label it.

import * as vscode from 'vscode';
import type { PanelDeps } from '../panel/trainingPanel';
import { TrainingPanel } from '../panel/trainingPanel';
import { pickWorkspaceFolder, taskStoreFor } from '../store/workspaceStore';
import { pickTask } from './taskPicker';

export const FINE_TUNE_ON_SELECTION = 'gemmaTune.fineTuneOnSelection';

/** The selected texts in document order, empty selections skipped. */
export function selectedTexts(editor: vscode.TextEditor): string[] {
  return [...editor.selections]
    .sort((a, b) => a.start.compareTo(b.start))
    .filter((s) => !s.isEmpty)
    .map((s) => editor.document.getText(s))
    .filter((t) => t.trim() !== '');
}

/** Runs the command; resolves with the number of examples added. */
export async function fineTuneOnSelection(deps: PanelDeps): Promise<number> {
  const editor = vscode.window.activeTextEditor;
  const texts = editor ? selectedTexts(editor) : [];
  if (!editor || texts.length === 0) {
    void vscode.window.showInformationMessage('Gemma: select the text you want as an example first (with multi-cursor, each selection becomes one).');
    return 0;
  }
  const folder = await pickWorkspaceFolder(editor.document.uri);
  if (!folder) {
    void vscode.window.showWarningMessage('Gemma: open a folder first: tasks are stored in the workspace (.gemma/tasks).');
    return 0;
  }
  const store = taskStoreFor(folder.uri, deps.log);
  const task = await pickTask(store, { title: `Add ${texts.length} example${texts.length > 1 ? 's' : ''} to…`, allowNew: true, log: deps.log });
  if (!task) return 0;
  const added = await store.addExamples(task.id, texts.map((input) => ({ input })));
  deps.log.info(`added ${added.length} example(s) to task "${task.config.name}" (${task.id})`);
  deps.events?.write('examplesAdded', { taskId: task.id, ids: added.map((e) => e.id), via: 'selection' });
  await TrainingPanel.show(deps, folder, task.id);
  return added.length;
}

/** Registers the command. */
export function registerFineTuneOnSelection(deps: PanelDeps): vscode.Disposable {
  return vscode.commands.registerCommand(FINE_TUNE_ON_SELECTION, () => runReporting(deps, () => fineTuneOnSelection(deps)));
}

/** Runs a command body, turning a failure into an error message and a log line. */
export async function runReporting<T>(deps: PanelDeps, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (err) {
    const message = (err as Error).message;
    deps.log.error(message);
    void vscode.window.showErrorMessage(`Gemma: ${message}`);
    return undefined;
  }
}

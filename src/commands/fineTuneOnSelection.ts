// "Gemma: Fine-tune on selection": each non-empty selection (several with multi-cursor) becomes a
// new, not yet labeled example of a task picked from a quick pick ("New task…" creates one),
// and the training panel opens on that task to label it. A selection of several lines asks once per
// task whether each line is an example or the whole selection is one, and the task remembers.

import * as vscode from 'vscode';
import type { PanelDeps } from '../panel/trainingPanel';
import { TrainingPanel } from '../panel/trainingPanel';
import { plural } from '../plural';
import type { SelectionMode } from '../store/task';
import { pickWorkspaceFolder, taskStoreFor } from '../store/workspaceStore';
import { selectionExamples, spansLines } from './selectionExamples';
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
  const multiLine = spansLines(texts);
  const added = (mode: SelectionMode) => plural(selectionExamples(texts, mode).length, 'example');
  const perLine = selectionExamples(texts, 'lines').length;
  const title = multiLine ? `Add the selection to… (${added('lines')} one per line, or ${added('whole')} as selected)` : `Add ${plural(texts.length, 'example')} to…`;
  const task = await pickTask(store, {
    title, allowNew: true, log: deps.log, first: deps.panels.lastActiveTask(folder),
    describe: (t) => (multiLine && t.config.selection ? `adds ${added(t.config.selection)}${t.config.selection === 'lines' ? ', one per line' : ''}` : undefined),
  });
  if (!task) return 0;
  let mode: SelectionMode = 'whole';
  if (multiLine) {
    const chosen = task.config.selection ?? (await askSelectionMode(task.config.name, perLine, texts.length));
    if (!chosen) return 0;
    mode = chosen;
    if (!task.config.selection) await store.updateConfig(task.id, (config) => ({ ...config, selection: config.selection ?? mode }));
  }
  const inputs = selectionExamples(texts, mode);
  const stored = await store.addExamples(task.id, inputs.map((input) => ({ input })));
  deps.log.info(`added ${stored.length} example(s) to task "${task.config.name}" (${task.id})`);
  deps.events?.write('examplesAdded', { taskId: task.id, ids: stored.map((e) => e.id), via: 'selection', mode });
  await TrainingPanel.show(deps, folder, task.id);
  return stored.length;
}

/** "One example per line / The whole selection", with how many examples each adds; undefined when dismissed. */
async function askSelectionMode(taskName: string, lines: number, selections: number): Promise<SelectionMode | undefined> {
  const items: (vscode.QuickPickItem & { mode: SelectionMode })[] = [
    { label: 'One example per line', description: `adds ${plural(lines, 'example')}`, detail: 'For data with one item per line: log lines, tickets, CSV rows. Blank lines are skipped.', mode: 'lines' },
    { label: 'The whole selection', description: `adds ${plural(selections, 'example')}`, detail: selections > 1 ? 'Each selection of the multi-cursor becomes one example.' : 'The selected text becomes one example.', mode: 'whole' },
  ];
  const pick = await vscode.window.showQuickPick(items, {
    title: `The selection spans ${lines} lines: add to "${taskName}" as… (remembered for this task)`,
    placeHolder: 'One example per line, or the whole selection as one',
  });
  return pick?.mode;
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

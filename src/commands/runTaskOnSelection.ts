// "Gemma: Run task on selection": the code actions' work from the palette. A quick pick of the
// trained tasks that apply to the active file, then classify or extract each selection (several
// with multi-cursor), one after another.

import * as vscode from 'vscode';
import type { TaskRunner } from '../codeActions/taskRunner';
import type { TrainedTask, TrainedTasks } from '../codeActions/trainedTasks';
import type { GemmaServices } from '../services';
import { KIND_TITLES } from '../store/task';

export const RUN_TASK_ON_SELECTION = 'gemmaTune.runTaskOnSelection';

interface TaskItem extends vscode.QuickPickItem {
  task: TrainedTask;
}

/** Runs the command; resolves with how many selections were answered. */
export async function runTaskOnSelection(s: GemmaServices, tasks: TrainedTasks, runner: TaskRunner): Promise<number> {
  const editor = vscode.window.activeTextEditor;
  const selections = editor?.selections.filter((sel) => !sel.isEmpty) ?? [];
  if (!editor || selections.length === 0) {
    void vscode.window.showInformationMessage('Gemma: select the text to run a task on first.');
    return 0;
  }
  const runnable = (await tasks.forDocument(editor.document.uri)).filter((t) => t.task.config.kind === 'classify' || t.task.config.kind === 'extract');
  if (runnable.length === 0) {
    void vscode.window.showInformationMessage('Gemma: no trained classify or extract task in this workspace yet. Label examples and train one in the training panel.', 'Open Training Panel').then((pick) => {
      if (pick) void vscode.commands.executeCommand('gemmaTune.openTrainingPanel');
    });
    return 0;
  }
  const items: TaskItem[] = runnable.map((t) => ({ label: t.task.config.name, description: KIND_TITLES[t.task.config.kind], detail: t.task.config.instruction || undefined, task: t }));
  const pick = items.length === 1 ? items[0] : await vscode.window.showQuickPick(items, { title: 'Gemma: run a task on the selection', placeHolder: 'Task', matchOnDescription: true });
  if (!pick) return 0;
  let answered = 0;
  // Bottom to top, so an extraction inserted below one selection does not move the ones above it.
  const ordered = [...selections].sort((a, b) => b.start.compareTo(a.start));
  for (const sel of ordered) {
    const range = new vscode.Range(sel.start, sel.end);
    const done = pick.task.task.config.kind === 'classify' ? await runner.classify(pick.task, editor.document, range) : await runner.extract(pick.task, editor.document, range);
    if (done === undefined) break;
    answered++;
  }
  s.events.write('runTaskOnSelection', { task: pick.task.task.id, selections: selections.length, answered });
  return answered;
}

/** Registers the palette command. */
export function registerRunTaskOnSelection(s: GemmaServices, tasks: TrainedTasks, runner: TaskRunner): vscode.Disposable {
  return vscode.commands.registerCommand(RUN_TASK_ON_SELECTION, () => runTaskOnSelection(s, tasks, runner));
}

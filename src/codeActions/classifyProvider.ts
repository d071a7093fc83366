// "Classify with <task>" on a non-empty selection, one action per trained classify task, plus
// "Insert … as a comment" once a classification is shown for the selection. The actions only
// name a command: the menu never waits for the engine. Each call also tells `onSelection` which
// tasks apply to the range, so the answer can be precomputed in the background (taskRunner.ts).

import * as vscode from 'vscode';
import { type ClassificationView, INSERT_CLASSIFICATION } from './classificationView';
import { taskRef, type TaskRef } from './taskRef';
import type { TrainedTask, TrainedTasks } from './trainedTasks';

export const CLASSIFY_SELECTION = 'gemmaTune.classifySelection';

export class ClassifyActionProvider implements vscode.CodeActionProvider {
  // Quick fixes, as in the code-actions sample: they show in the light bulb on a selection.
  static readonly kind = vscode.CodeActionKind.QuickFix.append('gemma').append('classify');
  static readonly providedCodeActionKinds = [ClassifyActionProvider.kind];

  constructor(
    private readonly tasks: TrainedTasks,
    private readonly view: ClassificationView,
    private readonly onSelection?: (tasks: TrainedTask[], document: vscode.TextDocument, range: vscode.Range) => Promise<void>,
  ) {}

  async provideCodeActions(document: vscode.TextDocument, range: vscode.Range | vscode.Selection): Promise<vscode.CodeAction[]> {
    if (range.isEmpty) {
      void this.onSelection?.([], document, range).catch(() => undefined);
      return [];
    }
    const actions: vscode.CodeAction[] = [];
    const shown = this.view.at(document, range);
    if (shown) {
      const insert = new vscode.CodeAction(`Insert “${shown.label}” as a comment`, ClassifyActionProvider.kind);
      insert.command = { command: INSERT_CLASSIFICATION, title: insert.title, arguments: [{ uri: document.uri.toString(), line: shown.range.start.line }] };
      actions.push(insert);
    }
    const tasks = await this.tasks.forDocument(document.uri, 'classify');
    void this.onSelection?.(tasks, document, new vscode.Range(range.start, range.end)).catch(() => undefined);
    for (const t of tasks) {
      const title = `Classify with ${t.task.config.name}`;
      const action = new vscode.CodeAction(title, ClassifyActionProvider.kind);
      const args: [TaskRef, vscode.Uri, vscode.Range] = [taskRef(t), document.uri, new vscode.Range(range.start, range.end)];
      action.command = { command: CLASSIFY_SELECTION, title, arguments: args };
      actions.push(action);
    }
    return actions;
  }
}

// "Extract with <task>" on a non-empty selection, one action per trained extract task. The answer
// goes below the selection (or replaces it, per gemmaTune.extract.placement) as one undoable edit.

import * as vscode from 'vscode';
import { taskRef, type TaskRef } from './taskRef';
import type { TrainedTasks } from './trainedTasks';

export const EXTRACT_SELECTION = 'gemmaTune.extractSelection';

export class ExtractActionProvider implements vscode.CodeActionProvider {
  static readonly kind = vscode.CodeActionKind.QuickFix.append('gemma').append('extract');
  static readonly providedCodeActionKinds = [ExtractActionProvider.kind];

  constructor(private readonly tasks: TrainedTasks) {}

  async provideCodeActions(document: vscode.TextDocument, range: vscode.Range | vscode.Selection): Promise<vscode.CodeAction[]> {
    if (range.isEmpty) return [];
    return (await this.tasks.forDocument(document.uri, 'extract')).map((t) => {
      const title = `Extract with ${t.task.config.name}`;
      const action = new vscode.CodeAction(title, ExtractActionProvider.kind);
      const args: [TaskRef, vscode.Uri, vscode.Range] = [taskRef(t), document.uri, new vscode.Range(range.start, range.end)];
      action.command = { command: EXTRACT_SELECTION, title, arguments: args };
      return action;
    });
  }
}

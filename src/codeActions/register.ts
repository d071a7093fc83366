// Wiring for running tasks: the classify and extract code-action providers (on the languages the
// setting names, re-registered when it changes), the commands their actions run, the insert of a
// shown classification, and "Gemma: Run task on selection".

import * as vscode from 'vscode';
import type { GemmaServices } from '../services';
import { ClassificationView, INSERT_CLASSIFICATION } from './classificationView';
import { CLASSIFY_SELECTION, ClassifyActionProvider } from './classifyProvider';
import { EXTRACT_SELECTION, ExtractActionProvider } from './extractProvider';
import { LANGUAGES_KEY, languageSelector } from './languages';
import { documentAndRange, isTaskRef, resolveTaskRef } from './taskRef';
import { PRECOMPUTE_KEY, TaskRunner } from './taskRunner';
import { TrainedTasks } from './trainedTasks';

/** What registerCodeActions made: the trained-task list and the runner that "Run task on selection" shares, and what to dispose. */
export interface CodeActions {
  tasks: TrainedTasks;
  runner: TaskRunner;
  disposables: vscode.Disposable[];
}

/** Registers the providers and their commands. */
export function registerCodeActions(s: GemmaServices): CodeActions {
  const tasks = new TrainedTasks(s.log);
  const view = new ClassificationView();
  const runner = new TaskRunner(s, view);
  let providers: vscode.Disposable | undefined;
  const registerProviders = (): void => {
    providers?.dispose();
    const { selector, problems } = languageSelector(vscode.workspace.getConfiguration('gemmaTune').get(LANGUAGES_KEY));
    for (const p of problems) s.log.warn(p);
    providers = vscode.Disposable.from(
      vscode.languages.registerCodeActionsProvider(selector, new ClassifyActionProvider(tasks, view, (list, document, range) => runner.precomputeClassify(list, document, range)), { providedCodeActionKinds: ClassifyActionProvider.providedCodeActionKinds }),
      vscode.languages.registerCodeActionsProvider(selector, new ExtractActionProvider(tasks), { providedCodeActionKinds: ExtractActionProvider.providedCodeActionKinds }),
    );
  };
  registerProviders();

  const runFromAction = (kind: 'classify' | 'extract') => async (ref: unknown, uri: unknown, range: unknown) => {
    const target = isTaskRef(ref) ? await documentAndRange(uri, range) : undefined;
    if (!isTaskRef(ref) || !target) {
      s.log.warn(`${kind}: called with arguments it does not understand`);
      return undefined;
    }
    const t = await resolveTaskRef(tasks, ref);
    if (!t) {
      void vscode.window.showWarningMessage(`Gemma: the task "${ref.taskId}" is gone or has no trained adapter any more.`);
      return undefined;
    }
    return kind === 'classify' ? runner.classify(t, target.document, target.range) : runner.extract(t, target.document, target.range);
  };

  const disposables = [
    tasks,
    view,
    runner,
    { dispose: () => providers?.dispose() },
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`gemmaTune.${LANGUAGES_KEY}`)) registerProviders();
      if (e.affectsConfiguration(`gemmaTune.${PRECOMPUTE_KEY}`)) runner.resetPrecompute();
    }),
    vscode.commands.registerCommand(CLASSIFY_SELECTION, runFromAction('classify')),
    vscode.commands.registerCommand(EXTRACT_SELECTION, runFromAction('extract')),
    vscode.commands.registerCommand(INSERT_CLASSIFICATION, async (arg: unknown) => {
      const a = arg as { uri?: unknown; line?: unknown } | undefined;
      if (typeof a?.uri !== 'string' || typeof a.line !== 'number') return false;
      const uri = vscode.Uri.parse(a.uri);
      const c = view.onLine(uri, a.line);
      if (!c) {
        void vscode.window.showInformationMessage('Gemma: that classification is no longer shown (the text changed).');
        return false;
      }
      return runner.insertClassification(await vscode.workspace.openTextDocument(uri), c);
    }),
  ];
  return { tasks, runner, disposables };
}

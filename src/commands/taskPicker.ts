// The quick inputs shared by the task commands: pick a task (optionally offering "New task…")
// and the four-step "New task…" flow (name, kind, labels or fields, instruction).

import * as vscode from 'vscode';
import { KIND_TITLES, MAX_LABELS, MAX_NAME_LENGTH, NewTask, parseList, TASK_KINDS, TaskKind } from '../store/task';
import type { Task, TaskStore } from '../store/taskStore';
import { pickWorkspaceFolder, taskStoreFor } from '../store/workspaceStore';

const NEW_TASK = Symbol('new task');

interface TaskItem extends vscode.QuickPickItem {
  task?: Task;
  action?: typeof NEW_TASK;
}

/** Lets the user pick a task; with `allowNew`, "New task…" runs the creation flow. */
export async function pickTask(
  store: TaskStore,
  opts: { title: string; allowNew: boolean; log?: vscode.LogOutputChannel; describe?: (task: Task) => string | undefined; first?: string },
): Promise<Task | undefined> {
  const entries = await store.list();
  const items: TaskItem[] = [];
  for (const e of entries) {
    if ('task' in e) {
      const extra = opts.describe?.(e.task);
      items.push({ label: e.task.config.name, description: [KIND_TITLES[e.task.config.kind], extra].filter(Boolean).join(' · '), detail: e.task.config.instruction || undefined, task: e.task });
    } else {
      opts.log?.warn(`skipping task folder "${e.id}": ${e.error}`);
    }
  }
  // Existing tasks come first (the one named `first` at the top), so Enter adds to a task; "New task…" is the last choice.
  const lead = items.findIndex((i) => i.task?.id === opts.first);
  if (lead > 0) items.unshift(...items.splice(lead, 1));
  if (opts.allowNew) {
    if (items.length > 0) items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: '$(add) New task…', description: 'name, kind, labels or fields, instruction', action: NEW_TASK, alwaysShow: true });
  }
  if (items.length === 0) {
    void vscode.window.showInformationMessage('Gemma: this workspace has no tasks yet. Select some text and run "Gemma: Fine-tune on selection" to create one.');
    return undefined;
  }
  if (!opts.allowNew && items.length === 1) return items[0].task;
  const pick = await vscode.window.showQuickPick(items, { title: opts.title, placeHolder: 'Task', matchOnDescription: true });
  if (!pick) return undefined;
  if (pick.action === NEW_TASK) {
    const spec = await askNewTask(new Set(entries.map((e) => ('task' in e ? e.task.config.name.toLowerCase() : e.id))));
    return spec && store.create(spec);
  }
  return pick.task;
}

const DEFAULT_INSTRUCTIONS: Record<TaskKind, string> = {
  classify: 'Classify the text.',
  extract: 'Extract the requested information from the text.',
  generate: 'Rewrite the text.',
};

/** The "New task…" flow; undefined when the user cancels any step. */
/**
 * The workspace folder of the active editor (or one the user picks), its store and an existing task the
 * user picks there, titled `title`; undefined when any of them is dismissed or there is none.
 */
export async function pickExistingTask(title: string, log: vscode.LogOutputChannel): Promise<{ folder: vscode.WorkspaceFolder; store: TaskStore; task: Task } | undefined> {
  const folder = await pickWorkspaceFolder(vscode.window.activeTextEditor?.document.uri);
  if (!folder) return undefined;
  const store = taskStoreFor(folder.uri, log);
  const task = await pickTask(store, { title, allowNew: false, log });
  return task && { folder, store, task };
}

export async function askNewTask(takenNames: ReadonlySet<string> = new Set()): Promise<NewTask | undefined> {
  const title = 'New Gemma task';
  const name = await vscode.window.showInputBox({
    title: `${title} (1/4)`,
    prompt: 'Task name',
    placeHolder: 'e.g. Bug or feature',
    validateInput: (v) => {
      const t = v.trim();
      if (t === '') return 'Give the task a name';
      if (t.length > MAX_NAME_LENGTH) return `At most ${MAX_NAME_LENGTH} characters`;
      if (takenNames.has(t.toLowerCase())) return 'A task with this name exists';
      return undefined;
    },
  });
  if (name === undefined) return undefined;

  // (QuickPickItem already has a `kind` of its own.)
  const kindItems: (vscode.QuickPickItem & { taskKind: TaskKind })[] = TASK_KINDS.map((k) => ({ label: KIND_TITLES[k], taskKind: k }));
  const kindPick = await vscode.window.showQuickPick(
    kindItems,
    { title: `${title} (2/4)`, placeHolder: 'What should the model do with a selection?' },
  );
  if (!kindPick) return undefined;
  const kind = kindPick.taskKind;

  let labels: string[] | undefined;
  let fields: string[] | undefined;
  if (kind === 'classify') {
    const text = await vscode.window.showInputBox({
      title: `${title} (3/4)`,
      prompt: 'Labels, separated by commas',
      placeHolder: 'e.g. bug, feature, question',
      validateInput: (v) => {
        const n = parseList(v).length;
        if (n < 2) return 'Give at least two labels';
        if (n > MAX_LABELS) return `At most ${MAX_LABELS} labels`;
        return undefined;
      },
    });
    if (text === undefined) return undefined;
    labels = parseList(text);
  } else if (kind === 'extract') {
    const text = await vscode.window.showInputBox({
      title: `${title} (3/4)`,
      prompt: 'Fields to extract, separated by commas (leave empty for free text)',
      placeHolder: 'e.g. name, date, amount',
    });
    if (text === undefined) return undefined;
    fields = parseList(text);
  }

  const instruction = await vscode.window.showInputBox({
    title: `${title} (${kind === 'generate' ? 3 : 4}/${kind === 'generate' ? 3 : 4})`,
    prompt: 'Instruction: what the model is told before each input',
    value: DEFAULT_INSTRUCTIONS[kind],
  });
  if (instruction === undefined) return undefined;
  return { name: name.trim(), kind, instruction, labels, fields };
}

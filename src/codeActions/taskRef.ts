// How a code action names its task: plain data (folder URI and task folder name) rather than the
// task object, so the command reads the task as it is on disk when the user picks the action.

import * as vscode from 'vscode';
import type { TrainedTask, TrainedTasks } from './trainedTasks';

export interface TaskRef {
  folder: string;
  taskId: string;
}

/** The reference to a trained task. */
export function taskRef(t: TrainedTask): TaskRef {
  return { folder: t.folder.uri.toString(), taskId: t.task.id };
}

/** Whether a command argument is a TaskRef (command arguments can come from anywhere). */
export function isTaskRef(v: unknown): v is TaskRef {
  const r = v as Partial<TaskRef> | null;
  return typeof r === 'object' && r !== null && typeof r.folder === 'string' && typeof r.taskId === 'string';
}

/** The trained task a reference names (the list is kept fresh by a watcher); undefined when it is gone. */
export async function resolveTaskRef(tasks: TrainedTasks, ref: TaskRef): Promise<TrainedTask | undefined> {
  return (await tasks.all()).find((t) => t.folder.uri.toString() === ref.folder && t.task.id === ref.taskId);
}

/** A command's document and range arguments, checked. */
export async function documentAndRange(uri: unknown, range: unknown): Promise<{ document: vscode.TextDocument; range: vscode.Range } | undefined> {
  if (!(uri instanceof vscode.Uri) || !(range instanceof vscode.Range)) return undefined;
  return { document: await vscode.workspace.openTextDocument(uri), range };
}

// The thin vscode side of the store: which workspace folder holds the tasks, and one TaskStore
// per folder (one instance, so its per-task write queue covers the panel and the commands alike).

import * as vscode from 'vscode';
import { formatProblem } from './jsonl';
import { TaskStore } from './taskStore';

const stores = new Map<string, TaskStore>();

/** The shared store of a workspace folder's `.gemma/tasks`. */
export function taskStoreFor(folder: vscode.Uri, log?: vscode.LogOutputChannel): TaskStore {
  let store = stores.get(folder.fsPath);
  if (!store) {
    store = TaskStore.forWorkspace(folder.fsPath, {
      onBackup: (file, backup, problems) => {
        for (const p of problems) log?.warn(formatProblem(p));
        const msg = `${vscode.workspace.asRelativePath(file)} had ${problems.length} unreadable line(s); the original was kept as ${vscode.workspace.asRelativePath(backup)}.`;
        log?.warn(msg);
        void vscode.window.showWarningMessage(`Gemma: ${msg}`);
      },
      onConflict: (file) => log?.info(`${vscode.workspace.asRelativePath(file)} changed on disk during an edit; the edit was made again on the new content`),
      who: `a ${vscode.env.appName} window`,
    });
    stores.set(folder.fsPath, store);
  }
  return store;
}

/**
 * The workspace folder tasks go in: the one holding `hint` (the active document), the only
 * one, or the user's pick; undefined when no folder is open or the pick is dismissed.
 */
export async function pickWorkspaceFolder(hint?: vscode.Uri): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (hint) {
    const owner = vscode.workspace.getWorkspaceFolder(hint);
    if (owner) return owner;
  }
  if (folders.length <= 1) return folders[0];
  return vscode.window.showWorkspaceFolderPick({ placeHolder: 'Workspace folder that holds the Gemma tasks' });
}

/** The open workspace folder whose path is `fsPath`, if any (for restoring a panel). */
export function workspaceFolderAt(fsPath: string): vscode.WorkspaceFolder | undefined {
  return (vscode.workspace.workspaceFolders ?? []).find((f) => f.uri.fsPath === fsPath);
}

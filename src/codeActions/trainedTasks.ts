// The workspace's trained tasks (those with adapter/adapter_model.safetensors), for the code
// actions: VS Code asks for code actions on every selection change, so the list is read from disk
// once and kept until something under .gemma/tasks changes (a watcher), a folder is added, or
// it is older than a few seconds (watchers can miss events on network file systems).

import * as vscode from 'vscode';
import { DisposableStore } from '../common/disposables';
import type { TaskKind } from '../store/task';
import type { Task, TaskStore } from '../store/taskStore';
import { TASKS_RELATIVE_DIR } from '../store/taskStore';
import { taskStoreFor } from '../store/workspaceStore';

/** A task with a trained adapter, and where it lives. */
export interface TrainedTask {
  folder: vscode.WorkspaceFolder;
  store: TaskStore;
  task: Task;
  adapterDir: string;
}

const MAX_AGE_MS = 5000;

export class TrainedTasks implements vscode.Disposable {
  private cached: { at: number; tasks: Promise<TrainedTask[]> } | undefined;
  private readonly disposables = new DisposableStore();

  constructor(private readonly log: vscode.LogOutputChannel) {
    const watcher = vscode.workspace.createFileSystemWatcher(`**/${TASKS_RELATIVE_DIR.split(/[\\/]/).join('/')}/**`);
    const invalidate = (): void => {
      this.cached = undefined;
    };
    this.disposables.addAll(watcher, watcher.onDidCreate(invalidate), watcher.onDidChange(invalidate), watcher.onDidDelete(invalidate), vscode.workspace.onDidChangeWorkspaceFolders(invalidate));
  }

  /** Every trained task of every workspace folder, sorted by folder then name. */
  all(): Promise<TrainedTask[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > MAX_AGE_MS) this.cached = { at: now, tasks: this.scan() };
    return this.cached.tasks;
  }

  /** The trained tasks of `kind` that apply to a document: its folder's, or every folder's for a file outside them. */
  async forDocument(uri: vscode.Uri, kind?: TaskKind): Promise<TrainedTask[]> {
    const owner = vscode.workspace.getWorkspaceFolder(uri);
    const tasks = await this.all();
    return tasks.filter((t) => (!owner || t.folder.uri.toString() === owner.uri.toString()) && (kind === undefined || t.task.config.kind === kind));
  }

  /** Forgets the list, so the next call reads the disk. */
  invalidate(): void {
    this.cached = undefined;
  }

  dispose(): void {
    this.disposables.dispose();
  }

  private async scan(): Promise<TrainedTask[]> {
    const out: TrainedTask[] = [];
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const store = taskStoreFor(folder.uri, this.log);
      let entries;
      try {
        entries = await store.list();
      } catch (e) {
        this.log.warn(`cannot list the tasks of ${folder.uri.fsPath}: ${(e as Error).message}`);
        continue;
      }
      for (const entry of entries) {
        if (!('task' in entry)) continue;
        if (await store.hasAdapter(entry.id)) out.push({ folder, store, task: entry.task, adapterDir: store.adapterDir(entry.id) });
      }
    }
    return out;
  }
}

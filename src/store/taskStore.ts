// The workspace's tasks on disk, as design.md lays them out:
//
//   .gemma/tasks/<task>/task.json       what the task is and how it trains (task.ts)
//   .gemma/tasks/<task>/examples.jsonl  TRL conversational lines (examples.ts)
//   .gemma/tasks/<task>/adapter/        PEFT adapter written by the trainer
//   .gemma/tasks/<task>/metrics.jsonl   training events, one JSON object per line
//
// Every write is atomic (common/atomicWrite.ts). Edits re-read the file, apply the change and write the
// whole file back, one at a time per task: in this process through a queue, across processes (two
// VS Code windows on one folder, the CLI) through the task's write lock (fileLock.ts, `.write.lock` in
// the task folder). A file changed on disk by anyone else between an edit's read and its write (a
// hand edit, another tool) is noticed just before the rename, and the edit is made again on the new
// content, so nothing written meanwhile is overwritten. Training takes the task's training lock
// (`.training.lock`): a second run of one task, from any process, is refused naming the first.
// A file with unreadable lines is copied to `<file>.bad-<time>` before the first rewrite, so nothing
// a user wrote is lost. Everything under `.gemma/` is read through safeFile.ts: symbolic links, pipes
// and devices are refused, every file has a size cap. Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CheckError } from '../common/check';
import { writeFileAtomic } from '../common/atomicWrite';
import { promotionInterrupted, recoverPromotion, stagingDir } from './adapterStage';
import { Example, exampleFromLine, exampleToLine, isExampleId, MAX_INPUT_LENGTH, MAX_OUTPUT_LENGTH, newExampleId } from './examples';
import { acquireLock, describeOwner, type FileLock, LockBusyError, lockHolder, type LockOwner } from './fileLock';
import { JsonlFile, JsonlRead, LineProblem, readJsonl, toJsonl } from './jsonl';
import { checkFolder, currentStamp, type FileStamp, readGuardedText, removeLeftoverTemps, stampOf } from './safeFile';
import { isSafeFolderName, safeFolderName, uniqueFolderName } from './names';
import { newTaskConfig, NewTask, TaskConfig, validateTaskConfig } from './task';
import { errorText } from '../common/quote';
import { ADAPTER_DIR, ADAPTER_WEIGHTS_FILE, EXAMPLES_FILE, METRICS_FILE, TASK_FILE } from '../common/files';
import type { MetricRecord } from './metricsLog';

/** Held while one process edits the task's files (milliseconds at a time). */
export const WRITE_LOCK_FILE = '.write.lock';
/** Held for a whole training run, staging and promotion included. */
export const TRAINING_LOCK_FILE = '.training.lock';

/** task.json is a few kilobytes at its largest valid size (labels, fields, a 4000-character instruction). */
export const MAX_TASK_FILE_BYTES = 256 * 1024;
/** How long an edit waits for another process's edit of the same task before giving up. */
const WRITE_WAIT_MS = 15_000;
/** An edit whose file keeps changing on disk under it is given up after this many tries. */
const MAX_EDIT_ATTEMPTS = 5;

/** The tasks folder relative to a workspace folder. */
export const TASKS_RELATIVE_DIR = path.join('.gemma', 'tasks');

/** The workspace folder of a task folder (`<workspace>/.gemma/tasks/<id>`). */
export function workspaceOfTaskDir(taskDir: string): string {
  return path.resolve(taskDir, '..', '..', '..');
}

/** A task as loaded: its folder name (the id used everywhere) and its validated task.json. */
export interface Task {
  id: string;
  dir: string;
  config: TaskConfig;
}

/** A folder under .gemma/tasks: a readable task, or one whose task.json is broken. */
export type TaskEntry = { id: string; task: Task } | { id: string; error: string };

/** A task's examples and the lines of examples.jsonl that could not be read. */
export interface ExamplesRead {
  examples: Example[];
  problems: LineProblem[];
}

/** A change to one example; absent keys stay as they are. */
export interface ExamplePatch {
  input?: string;
  output?: string;
  heldOut?: boolean;
}

/** A line of metrics.jsonl as the store keeps it: an object tagged by `type` (metricsLog.ts checks its fields; a line of another version is kept as it is). */
export type MetricLine = { type: string } & Record<string, unknown>;

/** Raised for a task file that exists but cannot be used; the message names the file. */
export class TaskFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'TaskFileError';
  }
}

/** Raised when another process holds the task: training it, or (past the wait) writing it. */
export class TaskBusyError extends Error {
  constructor(
    readonly taskId: string,
    readonly owner: LockOwner | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'TaskBusyError';
  }
}

/** Raised inside an edit when its file changed on disk since the edit read it; the edit is made again. */
class ChangedOnDiskError extends Error {
  constructor(readonly file: string) {
    super(`${file} changed on disk while Gemma Tune was saving it, again and again; nothing was written. Try again.`);
    this.name = 'ChangedOnDiskError';
  }
}

export interface TaskStoreOptions {
  /** Called after a damaged file was copied aside before being rewritten. */
  onBackup?: (file: string, backup: string, problems: LineProblem[]) => void;
  /** Called when a file changed on disk during an edit, which was then made again on the new content. */
  onConflict?: (file: string) => void;
  /** How other processes name this one when it holds a task ("VS Code", "gemma-tune train-task"). */
  who?: string;
}

/** Reads and writes the tasks under one `.gemma/tasks` folder. */
export class TaskStore {
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Each file's stamp as this store last showed (shown()) or wrote it: what changedOnDisk compares with. */
  private readonly known = new Map<string, FileStamp | null>();
  /** How many times this store has written each file: a read that overlapped a write does not note its older stamp. */
  private readonly writes = new Map<string, number>();

  constructor(
    /** Absolute path of the `.gemma/tasks` folder (created on the first write). */
    readonly root: string,
    private readonly options: TaskStoreOptions = {},
  ) {}

  /** The store for a workspace folder's `.gemma/tasks`. */
  static forWorkspace(workspaceFolder: string, options?: TaskStoreOptions): TaskStore {
    return new TaskStore(path.join(workspaceFolder, TASKS_RELATIVE_DIR), options);
  }

  /** Absolute folder of a task. */
  taskDir(id: string): string {
    if (!isSafeFolderName(id)) throw new Error(`"${id}" is not a task folder name`);
    return path.join(this.root, id);
  }

  /** Where the trainer writes (and the runner reads) the task's PEFT adapter. */
  adapterDir(id: string): string {
    return path.join(this.taskDir(id), ADAPTER_DIR);
  }

  /** Whether the task has a trained adapter (a regular weights file); first puts right a promotion a crash cut off. */
  async hasAdapter(id: string): Promise<boolean> {
    const adapterDir = this.adapterDir(id);
    if (await promotionInterrupted(adapterDir)) await this.recoverAdapter(id);
    try {
      return (await fs.lstat(path.join(adapterDir, ADAPTER_WEIGHTS_FILE))).isFile();
    } catch {
      return false;
    }
  }

  /** Every task folder, sorted by name; broken ones (and links in place of a folder) carry their error instead of a task. */
  async list(): Promise<TaskEntry[]> {
    let dirents;
    try {
      await this.checkRoot();
      dirents = await fs.readdir(this.root, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const entries: TaskEntry[] = [];
    for (const d of dirents.filter((d) => isSafeFolderName(d.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const id = d.name;
      if (d.isSymbolicLink()) {
        entries.push({ id, error: `${path.join(this.root, id)}: is a symbolic link; Gemma Tune does not follow links inside .gemma` });
        continue;
      }
      if (!d.isDirectory() || !(await present(path.join(this.root, id, TASK_FILE)))) continue;
      try {
        entries.push({ id, task: await this.get(id) });
      } catch (err) {
        entries.push({ id, error: (err as Error).message });
      }
    }
    return entries;
  }

  /** Loads and validates one task's task.json. */
  async get(id: string): Promise<Task> {
    return (await this.readTask(id)).task;
  }

  /** Creates a task in a fresh folder named after it (`Bug or feature?` → `bug-or-feature`). */
  async create(input: NewTask): Promise<Task> {
    const config = newTaskConfig(input);
    await fs.mkdir(this.root, { recursive: true });
    await this.checkRoot();
    const taken = new Set(await fs.readdir(this.root));
    for (;;) {
      const id = uniqueFolderName(safeFolderName(config.name), taken);
      const dir = path.join(this.root, id);
      try {
        await fs.mkdir(dir);
      } catch (e) {
        // Another process took the name since the listing: the next one.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        taken.add(id);
        continue;
      }
      await this.locked(id, async () => {
        await this.write(path.join(dir, TASK_FILE), taskJson(config));
        await this.write(path.join(dir, EXAMPLES_FILE), '');
      });
      return { id, dir, config };
    }
  }

  /**
   * Replaces task.json (validated first) and re-renders examples.jsonl, whose user messages
   * depend on the instruction, labels and fields.
   */
  async saveConfig(id: string, config: TaskConfig): Promise<Task> {
    return this.updateConfig(id, () => config);
  }

  /**
   * Changes task.json by applying `change` to what is on disk at that moment (holding the task's write
   * lock, so a change made meanwhile by another window or by hand is kept), then as saveConfig.
   */
  async updateConfig(id: string, change: (config: TaskConfig) => TaskConfig): Promise<Task> {
    return this.locked(id, async () => {
      const before = await this.readTask(id);
      let valid: TaskConfig;
      try {
        valid = validateTaskConfig(change(before.task.config));
      } catch (err) {
        throw new TaskFileError(path.join(before.task.dir, TASK_FILE), (err as Error).message);
      }
      await this.writeChecked(path.join(before.task.dir, TASK_FILE), taskJson(valid), before.stamp);
      const task = { ...before.task, config: valid };
      const read = await this.readExamples(id);
      await this.writeExamples(task, read, read.examples);
      return task;
    });
  }

  /**
   * Reads a task and its examples to show them (the training panel's state): changedOnDisk compares the files
   * with what this read saw (and with this store's writes since). Every other read (a list of tasks, a run's
   * examples, suggestions) leaves that alone: a change on disk that such a read happened to see first has
   * still not been shown, and the panel must still reload. Both files are read even when one fails, so a
   * damaged file is reported once, not at every check.
   */
  async shown(id: string): Promise<{ task: Task } & ExamplesRead> {
    const [t, e] = await Promise.allSettled([this.readTask(id, true), this.readExamples(id, true)]);
    if (t.status === 'rejected') throw t.reason;
    if (e.status === 'rejected') throw e.reason;
    return { task: t.value.task, examples: e.value.examples, problems: e.value.read.problems };
  }

  /** Reads examples.jsonl: the usable examples and the lines that were not. */
  async examples(id: string): Promise<ExamplesRead> {
    const read = await this.readExamples(id);
    return { examples: read.examples, problems: read.read.problems };
  }

  /** Appends examples (new ids), e.g. one per selection; returns them as stored. */
  async addExamples(id: string, items: readonly { input: string; output?: string; heldOut?: boolean }[]): Promise<Example[]> {
    return this.locked(id, async () => {
      const task = await this.get(id);
      const read = await this.readExamples(id);
      const ids = new Set(read.examples.map((e) => e.id));
      const added = items.map((item, i) => {
        let exId = newExampleId();
        while (ids.has(exId)) exId = newExampleId();
        ids.add(exId);
        return checkExample({ id: exId, input: item.input, output: item.output ?? '', heldOut: item.heldOut ?? false }, `item ${i}`);
      });
      await this.writeExamples(task, read, [...read.examples, ...added]);
      return added;
    });
  }

  /** Changes one example; returns it as stored. */
  async updateExample(id: string, exampleId: string, patch: ExamplePatch): Promise<Example> {
    return this.locked(id, async () => {
      const task = await this.get(id);
      const read = await this.readExamples(id);
      const index = read.examples.findIndex((e) => e.id === exampleId);
      if (index < 0) throw new Error(`task "${id}" has no example "${exampleId}"`);
      const updated = checkExample({ ...read.examples[index], ...definedOnly(patch) }, exampleId);
      const next = [...read.examples];
      next[index] = updated;
      await this.writeExamples(task, read, next);
      return updated;
    });
  }

  /** Deletes one example; false when it was not there. */
  async removeExample(id: string, exampleId: string): Promise<boolean> {
    return this.locked(id, async () => {
      const task = await this.get(id);
      const read = await this.readExamples(id);
      const next = read.examples.filter((e) => e.id !== exampleId);
      if (next.length === read.examples.length) return false;
      await this.writeExamples(task, read, next);
      return true;
    });
  }

  /** Renames a task: its display name, and its folder when the safe name changes. Refused while it is being trained. */
  async rename(id: string, newName: string): Promise<Task> {
    return this.whileNotTraining(id, 'renamed', (training) =>
      this.locked(id, async (writing) => {
        const { task, stamp } = await this.readTask(id);
        const config = validateTaskConfig({ ...task.config, name: newName.trim() });
        // task.json first: a change on disk found here redoes the edit before the folder moved.
        await this.writeChecked(path.join(task.dir, TASK_FILE), taskJson(config), stamp);
        let newId = safeFolderName(config.name);
        if (newId !== id) {
          newId = uniqueFolderName(newId, new Set(await fs.readdir(this.root)));
          const dir = path.join(this.root, newId);
          await fs.rename(task.dir, dir);
          training.moveTo(path.join(dir, TRAINING_LOCK_FILE));
          writing.moveTo(path.join(dir, WRITE_LOCK_FILE));
        }
        return { id: newId, dir: this.taskDir(newId), config };
      }),
    );
  }

  /** Deletes a task folder with everything in it. Refused while it is being trained. */
  async remove(id: string): Promise<void> {
    await this.whileNotTraining(id, 'deleted', () => this.locked(id, () => fs.rm(this.taskDir(id), { recursive: true, force: true })));
  }

  /** The training events recorded for a task. */
  async metrics(id: string): Promise<JsonlRead<MetricLine>> {
    return readJsonl(path.join(await this.existingTaskDir(id), METRICS_FILE), parseMetric);
  }

  /** Appends training records to metrics.jsonl (atomically, like every write). */
  async appendMetrics(id: string, records: readonly MetricRecord[]): Promise<void> {
    await this.locked(id, async () => {
      const file = path.join(this.taskDir(id), METRICS_FILE);
      const read = await readJsonl(file, parseMetric);
      await this.backupIfDamaged(file, read);
      await this.writeChecked(file, toJsonl([...read.records.map((r) => r.value), ...records.map(parseMetric)]), read.stamp);
    });
  }

  /** Replaces metrics.jsonl with these records (an imported run's). */
  async replaceMetrics(id: string, records: readonly MetricRecord[]): Promise<void> {
    const checked = records.map(parseMetric);
    await this.locked(id, () => this.write(path.join(this.taskDir(id), METRICS_FILE), toJsonl(checked)));
  }

  /** Empties metrics.jsonl before a new training run. */
  async clearMetrics(id: string): Promise<void> {
    await this.locked(id, () => this.write(path.join(this.taskDir(id), METRICS_FILE), ''));
  }

  /**
   * Takes the task's training lock for a whole run (staging, training, promotion) and first puts right
   * what a crashed run or promotion left. Refused with TaskBusyError, naming the holder, while another
   * run of the task is going on in any process (another window, the CLI). Release the lock after the run.
   */
  async lockTraining(id: string): Promise<FileLock> {
    const lock = await this.takeLock(id, TRAINING_LOCK_FILE, 0, (o) =>
      `Task "${id}" is being trained by ${describeOwner(o)}. Wait for that run to end (or stop it), then train again.`);
    try {
      const adapterDir = this.adapterDir(id);
      await recoverPromotion(adapterDir);
      await removeLeftoverTemps(stagingDir(adapterDir));
      return lock;
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /** Who trains the task now (any process), or null when no run is going on. */
  async trainingHolder(id: string): Promise<{ owner: LockOwner | undefined } | null> {
    return lockHolder(path.join(this.taskDir(id), TRAINING_LOCK_FILE));
  }

  /**
   * Whether task.json or examples.jsonl changed on disk since this store last showed (shown()) or wrote
   * them: another window, the CLI or a hand edit. A panel reloads when it did.
   */
  async changedOnDisk(id: string): Promise<boolean> {
    return (await this.diskChange(id)) !== null;
  }

  /** What changedOnDisk saw: the first of the two files that changed, the stamp this store knew and the one on disk; null: none. */
  diskChange(id: string): Promise<DiskChange | null> {
    // Queued behind this process's own edits: between an edit's rename and its stamp being noted,
    // the file would look changed by someone else, and the panel would reload under the user's typing.
    return this.serial(id, async () => {
      for (const name of [TASK_FILE, EXAMPLES_FILE]) {
        const file = path.join(this.taskDir(id), name);
        const now = await currentStamp(file);
        if (!this.known.has(file) || now !== this.known.get(file)) return { file: name, known: this.known.get(file), now };
      }
      return null;
    });
  }

  // ---- internals --------------------------------------------------------------------------

  /** The task's folder, checked to be a real folder under a real `.gemma/tasks`; TaskFileError when there is none. */
  private async existingTaskDir(id: string): Promise<string> {
    const dir = this.taskDir(id);
    try {
      await this.checkRoot();
      await checkFolder(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TaskFileError(path.join(dir, TASK_FILE), 'no such task');
      throw err;
    }
    return dir;
  }

  /** Refuses links in place of `.gemma` and `.gemma/tasks` (a cloned repository could point them anywhere). */
  private async checkRoot(): Promise<void> {
    const parent = path.dirname(this.root);
    if (path.basename(parent) === '.gemma') await checkFolder(parent);
    await checkFolder(this.root);
  }

  /** Reads task.json; `shown`: the read is what a panel shows, and changedOnDisk compares with it from now on. */
  private async readTask(id: string, shown = false): Promise<{ task: Task; stamp: FileStamp }> {
    const dir = await this.existingTaskDir(id);
    const file = path.join(dir, TASK_FILE);
    const writes = this.writes.get(file);
    let read;
    try {
      read = await readGuardedText(file, MAX_TASK_FILE_BYTES);
    } catch (err) {
      if (shown) await this.noteRefused(file);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TaskFileError(file, 'no such task');
      throw err;
    }
    if (shown) this.noteRead(file, read.stamp, writes);
    let json: unknown;
    try {
      json = JSON.parse(read.text);
    } catch (err) {
      throw new TaskFileError(file, `not valid JSON (${errorText(err)})`);
    }
    try {
      return { task: { id, dir, config: validateTaskConfig(json) }, stamp: read.stamp };
    } catch (err) {
      throw new TaskFileError(file, (err as Error).message);
    }
  }

  /** Reads examples.jsonl; `shown` as for readTask. */
  private async readExamples(id: string, shown = false): Promise<{ examples: Example[]; read: JsonlFile<Example>; file: string }> {
    const file = path.join(await this.existingTaskDir(id), EXAMPLES_FILE);
    const writes = this.writes.get(file);
    const read = await readJsonl(file, exampleFromLine).catch(async (err: unknown) => {
      if (shown) await this.noteRefused(file);
      throw err;
    });
    if (shown) this.noteRead(file, read.stamp, writes);
    // Two lines with one id (a bad merge): the later one is a problem, never silently merged.
    const seen = new Set<string>();
    const examples: Example[] = [];
    for (const r of read.records) {
      if (seen.has(r.value.id)) {
        read.problems.push({ file, line: r.line, message: `id "${r.value.id}" appears on an earlier line` });
        continue;
      }
      seen.add(r.value.id);
      examples.push(r.value);
    }
    read.problems.sort((a, b) => a.line - b.line);
    return { examples, read, file };
  }

  /**
   * Notes the stamp a read saw, unless this store wrote the file while it was being read (`writesBefore`:
   * the count when the read began): that write noted the newer stamp, which the read must not put back.
   */
  private noteRead(file: string, stamp: FileStamp | null, writesBefore: number | undefined): void {
    if (this.writes.get(file) === writesBefore) this.known.set(file, stamp);
  }

  /** Notes the stamp of a file this store has just written. */
  private noteWrite(file: string, stamp: FileStamp): void {
    this.writes.set(file, (this.writes.get(file) ?? 0) + 1);
    this.known.set(file, stamp);
  }

  /** Remembers a file that could not be read as it is now, so changedOnDisk reports only a later change. */
  private async noteRefused(file: string): Promise<void> {
    this.known.set(file, await currentStamp(file).catch(() => null));
  }

  private async writeExamples(task: Task, before: { read: JsonlFile<Example>; file: string }, examples: Example[]): Promise<void> {
    await this.backupIfDamaged(before.file, before.read);
    await this.writeChecked(before.file, toJsonl(examples.map((e) => exampleToLine(task.config, e))), before.read.stamp);
  }

  /** Copies the bytes that were read (not the file again: it may have changed) aside before a damaged file is rewritten. */
  private async backupIfDamaged(file: string, read: JsonlFile<unknown>): Promise<void> {
    if (read.problems.length === 0) return;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const backup = `${file}.bad-${stamp}`;
    await writeFileAtomic(backup, read.bytes);
    this.options.onBackup?.(file, backup, read.problems);
  }

  /** Replaces `file`, unless it changed on disk since it was read with stamp `expected` (null: it did not exist). */
  private async writeChecked(file: string, data: string, expected: FileStamp | null): Promise<void> {
    const st = await writeFileAtomic(file, data, {
      beforeRename: async () => {
        if ((await currentStamp(file)) !== expected) throw new ChangedOnDiskError(file);
      },
    });
    this.noteWrite(file, stampOf(st));
  }

  /** Replaces `file` whatever it holds now (a new task's files, emptied metrics). */
  private async write(file: string, data: string): Promise<void> {
    this.noteWrite(file, stampOf(await writeFileAtomic(file, data)));
  }

  /**
   * Runs `fn` holding the task's write lock (after this process's earlier edits of the task), with
   * leftover temporary files cleaned first. An edit whose file changed on disk under it is run again.
   */
  private locked<T>(id: string, fn: (lock: FileLock) => Promise<T>): Promise<T> {
    return this.serial(id, async () => {
      const lock = await this.takeLock(id, WRITE_LOCK_FILE, WRITE_WAIT_MS, (o) =>
        `Task "${id}" is busy: ${describeOwner(o)} has been saving it for more than ${WRITE_WAIT_MS / 1000} s. Try again in a moment.`);
      try {
        await removeLeftoverTemps(path.dirname(lock.file));
        for (let attempt = 1; ; attempt++) {
          try {
            return await fn(lock);
          } catch (e) {
            if (!(e instanceof ChangedOnDiskError) || attempt >= MAX_EDIT_ATTEMPTS) throw e;
            this.options.onConflict?.(e.file);
          }
        }
      } finally {
        await lock.release();
      }
    });
  }

  /**
   * Runs `fn` holding the task's training lock, so no run can start meanwhile; refused (TaskBusyError,
   * naming the holder) while the task is being trained. `action` completes "cannot be … while": "deleted".
   */
  async whileNotTraining<T>(id: string, action: string, fn: (lock: FileLock) => Promise<T>): Promise<T> {
    const lock = await this.takeLock(id, TRAINING_LOCK_FILE, 0, (o) =>
      `Task "${id}" cannot be ${action} while ${describeOwner(o)} trains it; try again when that run has ended.`);
    try {
      return await fn(lock);
    } finally {
      await lock.release();
    }
  }

  private async takeLock(id: string, name: string, waitMs: number, busyMessage: (owner: LockOwner | undefined) => string): Promise<FileLock> {
    const dir = await this.existingTaskDir(id);
    try {
      return await acquireLock(path.join(dir, name), { what: this.options.who ?? 'another process', waitMs, busyMessage });
    } catch (err) {
      if (err instanceof LockBusyError) throw new TaskBusyError(id, err.owner, err.message);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TaskFileError(path.join(dir, TASK_FILE), 'no such task');
      throw err;
    }
  }

  /** Puts right a promotion a crash cut off, unless a live process holds the training lock (its run does it). */
  private async recoverAdapter(id: string): Promise<void> {
    let lock: FileLock;
    try {
      lock = await this.takeLock(id, TRAINING_LOCK_FILE, 0, () => 'busy');
    } catch (err) {
      if (err instanceof TaskBusyError) return;
      throw err;
    }
    try {
      await recoverPromotion(this.adapterDir(id));
    } finally {
      await lock.release();
    }
  }

  /** Runs `fn` after every earlier operation on the same task in this process has settled. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return run;
  }
}

/** A change of a task's file on disk that this store did not make (TaskStore.diskChange). */
export interface DiskChange {
  file: string;
  /** The stamp this store last showed or wrote (undefined: never). */
  known: FileStamp | null | undefined;
  now: FileStamp | null;
}

/**
 * The training lock of the task whose folder holds `dir` (`gemma-tune train --out .gemma/tasks/<task>/adapter`),
 * taken as TaskStore.lockTraining does; undefined when `dir` is not in a task folder.
 */
export async function lockTrainingOfTaskAround(dir: string, who: string): Promise<FileLock | undefined> {
  const taskDir = path.dirname(path.resolve(dir));
  if (!isSafeFolderName(path.basename(taskDir)) || !(await present(path.join(taskDir, TASK_FILE)))) return undefined;
  return new TaskStore(path.dirname(taskDir), { who }).lockTraining(path.basename(taskDir));
}

/** task.json's text: pretty JSON and a final newline (diffable). */
function taskJson(config: TaskConfig): string {
  return JSON.stringify(config, null, 2) + '\n';
}

function parseMetric(value: unknown): MetricLine {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CheckError('', 'expected a JSON object');
  const rec = value as Record<string, unknown>;
  if (typeof rec.type !== 'string' || rec.type === '') throw new CheckError('type', 'expected a non-empty string');
  return rec as MetricLine;
}

function checkExample(ex: Example, where: string): Example {
  if (!isExampleId(ex.id)) throw new CheckError(`${where}.id`, 'not a valid example id');
  if (typeof ex.input !== 'string' || ex.input.length > MAX_INPUT_LENGTH) throw new CheckError(`${where}.input`, `expected a string of at most ${MAX_INPUT_LENGTH} characters`);
  if (typeof ex.output !== 'string' || ex.output.length > MAX_OUTPUT_LENGTH) throw new CheckError(`${where}.output`, `expected a string of at most ${MAX_OUTPUT_LENGTH} characters`);
  if (typeof ex.heldOut !== 'boolean') throw new CheckError(`${where}.heldOut`, 'expected true or false');
  return { id: ex.id, input: ex.input, output: ex.output, heldOut: ex.heldOut };
}

function definedOnly(patch: ExamplePatch): ExamplePatch {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
}

async function present(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

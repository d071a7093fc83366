// The workspace's tasks on disk, as design.md lays them out:
//
//   .gemma/tasks/<task>/task.json       what the task is and how it trains (task.ts)
//   .gemma/tasks/<task>/examples.jsonl  TRL conversational lines (examples.ts)
//   .gemma/tasks/<task>/adapter/        PEFT adapter written by the trainer
//   .gemma/tasks/<task>/metrics.jsonl   training events, one JSON object per line
//
// Every write is atomic (engine/atomicWrite.ts). Edits re-read the file, apply the change and write the
// whole file back, one at a time per task, so edits from the panel, a command and the trainer
// never interleave. A file with unreadable lines is copied to `<file>.bad-<time>` before the
// first rewrite, so nothing a user wrote is lost. Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CheckError } from '../protocol/check';
import { writeFileAtomic, writeJsonAtomic } from '../engine/atomicWrite';
import { Example, exampleFromLine, exampleToLine, isExampleId, MAX_INPUT_LENGTH, MAX_OUTPUT_LENGTH, newExampleId } from './examples';
import { JsonlRead, LineProblem, readJsonl, toJsonl } from './jsonl';
import { isSafeFolderName, safeFolderName, uniqueFolderName } from './names';
import { newTaskConfig, NewTask, TaskConfig, validateTaskConfig } from './task';

export const TASK_FILE = 'task.json';
export const EXAMPLES_FILE = 'examples.jsonl';
export const METRICS_FILE = 'metrics.jsonl';
export const ADAPTER_DIR = 'adapter';

/** The tasks folder relative to a workspace folder. */
export const TASKS_RELATIVE_DIR = path.join('.gemma', 'tasks');

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

/** A metrics line: any training event the engine reports, tagged by `type`. */
export type MetricRecord = { type: string } & Record<string, unknown>;

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

export interface TaskStoreOptions {
  /** Called after a damaged file was copied aside before being rewritten. */
  onBackup?: (file: string, backup: string, problems: LineProblem[]) => void;
}

/** Reads and writes the tasks under one `.gemma/tasks` folder. */
export class TaskStore {
  private readonly queues = new Map<string, Promise<unknown>>();

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

  /** Whether the task has a trained adapter. */
  async hasAdapter(id: string): Promise<boolean> {
    return exists(path.join(this.adapterDir(id), 'adapter_model.safetensors'));
  }

  /** Every task folder, sorted by name; broken ones carry their error instead of a task. */
  async list(): Promise<TaskEntry[]> {
    let names: string[];
    try {
      names = (await fs.readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const entries: TaskEntry[] = [];
    for (const id of names.filter(isSafeFolderName).sort()) {
      if (!(await exists(path.join(this.root, id, TASK_FILE)))) continue;
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
    const dir = this.taskDir(id);
    const file = path.join(dir, TASK_FILE);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TaskFileError(file, 'no such task');
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new TaskFileError(file, `not valid JSON (${(err as Error).message})`);
    }
    try {
      return { id, dir, config: validateTaskConfig(json) };
    } catch (err) {
      throw new TaskFileError(file, (err as Error).message);
    }
  }

  /** Creates a task in a fresh folder named after it (`Bug or feature?` → `bug-or-feature`). */
  async create(input: NewTask): Promise<Task> {
    const config = newTaskConfig(input);
    await fs.mkdir(this.root, { recursive: true });
    const taken = new Set(await fs.readdir(this.root));
    const id = uniqueFolderName(safeFolderName(config.name), taken);
    const dir = path.join(this.root, id);
    await fs.mkdir(dir);
    await writeJsonAtomic(path.join(dir, TASK_FILE), config);
    await writeFileAtomic(path.join(dir, EXAMPLES_FILE), '');
    return { id, dir, config };
  }

  /**
   * Replaces task.json (validated first) and re-renders examples.jsonl, whose user messages
   * depend on the instruction, labels and fields.
   */
  async saveConfig(id: string, config: TaskConfig): Promise<Task> {
    const valid = (() => {
      try {
        return validateTaskConfig(config);
      } catch (err) {
        throw new TaskFileError(path.join(this.taskDir(id), TASK_FILE), (err as Error).message);
      }
    })();
    return this.serial(id, async () => {
      const before = await this.get(id);
      await writeJsonAtomic(path.join(before.dir, TASK_FILE), valid);
      const task = { ...before, config: valid };
      const read = await this.readExamples(id);
      await this.writeExamples(task, read, read.examples);
      return task;
    });
  }

  /** Reads examples.jsonl: the usable examples and the lines that were not. */
  async examples(id: string): Promise<ExamplesRead> {
    const read = await this.readExamples(id);
    return { examples: read.examples, problems: read.read.problems };
  }

  /** Appends examples (new ids), e.g. one per selection; returns them as stored. */
  async addExamples(id: string, items: readonly { input: string; output?: string; heldOut?: boolean }[]): Promise<Example[]> {
    return this.serial(id, async () => {
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
    return this.serial(id, async () => {
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
    return this.serial(id, async () => {
      const task = await this.get(id);
      const read = await this.readExamples(id);
      const next = read.examples.filter((e) => e.id !== exampleId);
      if (next.length === read.examples.length) return false;
      await this.writeExamples(task, read, next);
      return true;
    });
  }

  /** Renames a task: its display name, and its folder when the safe name changes. Returns the task. */
  async rename(id: string, newName: string): Promise<Task> {
    return this.serial(id, async () => {
      const task = await this.get(id);
      const config = validateTaskConfig({ ...task.config, name: newName.trim() });
      let newId = safeFolderName(config.name);
      if (newId !== id) {
        const taken = new Set(await fs.readdir(this.root));
        newId = uniqueFolderName(newId, taken);
        await fs.rename(task.dir, path.join(this.root, newId));
      }
      const dir = this.taskDir(newId);
      await writeJsonAtomic(path.join(dir, TASK_FILE), config);
      return { id: newId, dir, config };
    });
  }

  /** Deletes a task folder with everything in it. */
  async remove(id: string): Promise<void> {
    await this.serial(id, () => fs.rm(this.taskDir(id), { recursive: true, force: true }));
  }

  /** The training events recorded for a task. */
  async metrics(id: string): Promise<JsonlRead<MetricRecord>> {
    return readJsonl(path.join(this.taskDir(id), METRICS_FILE), parseMetric);
  }

  /** Appends training events to metrics.jsonl (atomically, like every write). */
  async appendMetrics(id: string, records: readonly MetricRecord[]): Promise<void> {
    await this.serial(id, async () => {
      const file = path.join(this.taskDir(id), METRICS_FILE);
      const read = await readJsonl(file, parseMetric);
      await this.backupIfDamaged(file, read.problems);
      await writeFileAtomic(file, toJsonl([...read.records.map((r) => r.value), ...records.map(parseMetric)]));
    });
  }

  /** Replaces metrics.jsonl with these records (an imported run's). */
  async replaceMetrics(id: string, records: readonly MetricRecord[]): Promise<void> {
    const checked = records.map(parseMetric);
    await this.serial(id, () => writeFileAtomic(path.join(this.taskDir(id), METRICS_FILE), toJsonl(checked)));
  }

  /** Empties metrics.jsonl before a new training run. */
  async clearMetrics(id: string): Promise<void> {
    await this.serial(id, () => writeFileAtomic(path.join(this.taskDir(id), METRICS_FILE), ''));
  }

  // ---- internals --------------------------------------------------------------------------

  private async readExamples(id: string): Promise<{ examples: Example[]; read: JsonlRead<Example>; file: string }> {
    const file = path.join(this.taskDir(id), EXAMPLES_FILE);
    const read = await readJsonl(file, exampleFromLine);
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

  private async writeExamples(task: Task, before: { read: JsonlRead<Example>; file: string }, examples: Example[]): Promise<void> {
    await this.backupIfDamaged(before.file, before.read.problems);
    await writeFileAtomic(before.file, toJsonl(examples.map((e) => exampleToLine(task.config, e))));
  }

  private async backupIfDamaged(file: string, problems: LineProblem[]): Promise<void> {
    if (problems.length === 0) return;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const backup = `${file}.bad-${stamp}`;
    await writeFileAtomic(backup, await fs.readFile(file));
    this.options.onBackup?.(file, backup, problems);
  }

  /** Runs `fn` after every earlier operation on the same task has settled. */
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

function parseMetric(value: unknown): MetricRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CheckError('', 'expected a JSON object');
  const rec = value as Record<string, unknown>;
  if (typeof rec.type !== 'string' || rec.type === '') throw new CheckError('type', 'expected a non-empty string');
  return rec as MetricRecord;
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

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

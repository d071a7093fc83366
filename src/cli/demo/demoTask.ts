// An example task folder of examples/ (the layout of a workspace's .gemma/tasks/<task>/, so a folder can
// be copied there as it is): task.json, examples.jsonl to train on, and test.jsonl, held-out inputs
// with their expected outputs that training never sees. Lines are read with the store's own reader.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckError } from '../../common/check';
import { exampleFromLine, isLabeled, type Example } from '../../store/examples';
import { validateTaskConfig, type TaskConfig } from '../../store/task';
import { errorText, quote } from '../../common/quote';
import { EXAMPLES_FILE, TASK_FILE } from '../../common/files';

/** A task with its training examples and held-out test cases. */
export interface DemoTask {
  dir: string;
  config: TaskConfig;
  train: Example[];
  test: Example[];
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${errorText(e)})`, { cause: e });
  }
}

function readLines(file: string): Example[] {
  const text = readText(file);
  const out: Example[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    try {
      const ex = exampleFromLine(JSON.parse(raw));
      if (!isLabeled(ex)) throw new CheckError('messages', 'the assistant answer is empty');
      out.push(ex);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: ${(e as Error).message}`, { cause: e });
    }
  });
  if (out.length === 0) throw new Error(`${file}: no examples`);
  return out;
}

/** Reads and checks one task folder. */
export function readDemoTask(dir: string): DemoTask {
  let config: TaskConfig;
  const taskFile = path.join(dir, TASK_FILE);
  try {
    config = validateTaskConfig(readJson(taskFile));
  } catch (e) {
    if (e instanceof CheckError) throw new Error(`${taskFile}: ${e.message}`, { cause: e });
    throw e;
  }
  if (config.kind === 'extract' && !config.fields?.length) throw new Error(`${taskFile}: the demo runs extract tasks with named fields only`);
  if (config.kind === 'generate') throw new Error(`${taskFile}: the demo runs classify and extract tasks`);
  const train = readLines(path.join(dir, EXAMPLES_FILE));
  const test = readLines(path.join(dir, 'test.jsonl'));
  if (config.kind === 'classify') {
    for (const [file, set] of [[EXAMPLES_FILE, train], ['test.jsonl', test]] as const) {
      const bad = set.find((e) => !config.labels!.includes(e.output));
      if (bad) throw new Error(`${path.join(dir, file)}: example ${bad.id} answers ${quote(bad.output)}, not one of the labels ${config.labels!.join(', ')}`);
    }
  }
  return { dir, config, train, test };
}

/** The task folders under `examplesDir` (those with a task.json), sorted by name. */
export function listDemoTasks(examplesDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(examplesDir);
  } catch (e) {
    throw new Error(`${examplesDir}: no examples folder`, { cause: e });
  }
  return names.sort().map((n) => path.join(examplesDir, n)).filter((d) => fs.existsSync(path.join(d, TASK_FILE)));
}

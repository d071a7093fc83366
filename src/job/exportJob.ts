// A task as a training job for machines with GPUs: a folder that trains the task's recipe with Hugging Face
// transformers + PEFT under `accelerate` (train.py, next to this file), and whose adapter comes back with
// "Import adapter…". The folder holds everything it needs: the script, the recipe (job.json), the labeled
// examples (examples.jsonl, TRL's conversational format as the task stores it), requirements.txt,
// accelerate configurations and a README. Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../common/atomicWrite';
import { fullHyperparameters, TRAIN_DEFAULTS } from '../engine/train/defaults';
import { type Example, exampleToLine, isLabeled } from '../store/examples';
import { toJsonl } from '../store/jsonl';
import type { Task } from '../store/taskStore';
import { accelerateConfigs, JOB_FORMAT, jobReadme, type JobRecipe, REQUIREMENTS } from './jobFiles';
import { trainScript } from './trainScript';
import { EXAMPLES_FILE } from '../common/files';

/** The Hugging Face checkpoint of the extension's default model (its QAT GGUF was made from it). */
export const DEFAULT_JOB_BASE = 'google/gemma-3-270m-it';
export const JOB_FILE = 'job.json';
export class JobExportError extends Error {}

/** The recipe of a task: its hyperparameters with the trainer's defaults filled in. */
export function jobRecipe(task: Task, base: string, now = new Date()): JobRecipe {
  return {
    format: JOB_FORMAT,
    version: 1,
    task: { name: task.config.name, kind: task.config.kind },
    base,
    hyperparameters: fullHyperparameters(task.config.hyperparameters),
    maxTokens: TRAIN_DEFAULTS.maxTokens,
    evalEvery: TRAIN_DEFAULTS.evalEvery,
    exportedAt: now.toISOString(),
  };
}

/**
 * Writes the job folder `out` for `task` (created; a folder holding something other than an earlier job
 * is refused). Only labeled examples go in, each rendered as the extension trains on it. Returns the
 * files written, relative to `out`.
 */
export async function exportJob(task: Task, examples: readonly Example[], out: string, base = DEFAULT_JOB_BASE): Promise<string[]> {
  const labeled = examples.filter(isLabeled);
  if (labeled.length === 0) throw new JobExportError(`task "${task.config.name}" has no labeled examples to train on`);
  if (base.trim() === '') throw new JobExportError('the base model (a Hugging Face id or folder) is empty');
  await checkTarget(out);
  const recipe = jobRecipe(task, base.trim());
  const files: [string, string][] = [
    ['train.py', await trainScript()],
    ['requirements.txt', REQUIREMENTS],
    ...Object.entries(accelerateConfigs()).map(([name, text]): [string, string] => [path.join('accelerate', name), text]),
    [EXAMPLES_FILE, toJsonl(labeled.map((e) => exampleToLine(task.config, e)))],
    ['README.md', jobReadme(recipe, labeled.length, labeled.filter((e) => e.heldOut).length)],
  ];
  await fs.mkdir(path.join(out, 'accelerate'), { recursive: true });
  for (const [name, text] of files) await writeFileAtomic(path.join(out, name), text);
  await writeJsonAtomic(path.join(out, JOB_FILE), recipe);
  return [...files.map(([name]) => name), JOB_FILE];
}

/** `out` must be missing, empty, or an earlier job (its files are replaced; a run's out/ is kept). */
async function checkTarget(out: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new JobExportError(`${out} is a file, not a folder`);
    throw e;
  }
  if (names.length === 0) return;
  try {
    const job = JSON.parse(await fs.readFile(path.join(out, JOB_FILE), 'utf8')) as { format?: unknown };
    if (job?.format === JOB_FORMAT) return;
  } catch {
    // not a job folder: refused below
  }
  throw new JobExportError(`${out} already holds other files: choose an empty folder or an earlier job's`);
}

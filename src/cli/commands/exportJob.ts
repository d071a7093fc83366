// `gemma-tune export-job`: a task folder as a training job for GPUs (transformers + PEFT under accelerate).

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { parseFlags, required } from '../args';
import { DEFAULT_JOB_BASE, exportJob } from '../../job/exportJob';
import { TaskStore } from '../../store/taskStore';

export const exportJobCommand: CliCommand = {
  name: 'export-job',
  usage: `gemma-tune export-job --task DIR --out JOBDIR [--base HF_ID_OR_PATH]`,
  summary: `Write a task (.gemma/tasks/<task>) as a training job: train.py (transformers + PEFT + accelerate, the same recipe), job.json, its labeled examples, requirements.txt, accelerate configs, README. --base defaults to ${DEFAULT_JOB_BASE}.`,
  async run(argv) {
    const p = parseFlags(argv, { values: ['task', 'out', 'base'] });
    const taskDir = path.resolve(required(p, 'task'));
    const out = path.resolve(required(p, 'out'));
    const store = new TaskStore(path.dirname(taskDir));
    const id = path.basename(taskDir);
    const task = await store.get(id);
    const { examples, problems } = await store.examples(id);
    if (problems.length) throw new Error(`${problems[0].file}:${problems[0].line}: ${problems[0].message} (fix or remove the line first)`);
    const files = await exportJob(task, examples, out, p.values.get('base') ?? DEFAULT_JOB_BASE);
    console.log(`${out}: ${files.join(', ')}`);
  },
};

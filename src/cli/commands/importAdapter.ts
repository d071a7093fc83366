// `gemma-tune import-adapter`: a PEFT adapter (a training job's output, or any) into a task, checked
// against the model the task runs on; the job's metrics.jsonl comes along for the panel's curves.

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { parseFlags, required } from '../args';
import { baseIdentity } from '../../engine/model/identity';
import { openWeights } from '../../engine/model/load';
import { readPeftParams } from '../../engine/train/peftParams';
import { findImportSource, installImportedAdapter, readRunRecords } from '../../store/adapterImport';
import { TaskStore } from '../../store/taskStore';

export const importAdapterCommand: CliCommand = {
  name: 'import-adapter',
  usage: 'gemma-tune import-adapter --adapter DIR --task DIR --model PATH',
  summary: 'Put a PEFT adapter (a training job\'s out/ folder, or an adapter folder) into a task as its adapter, after checking it against the model (names, shapes, finite values, the base a job recorded); the job\'s metrics.jsonl replaces the task\'s.',
  async run(argv) {
    const p = parseFlags(argv, { values: ['adapter', 'task', 'model'] });
    const taskDir = path.resolve(required(p, 'task'));
    const store = new TaskStore(path.dirname(taskDir));
    const id = path.basename(taskDir);
    await store.get(id);
    const source = await findImportSource(path.resolve(required(p, 'adapter')));
    const modelPath = required(p, 'model');
    const cfg = openWeights(modelPath, { precision: 'f32' }).source.config;
    const lora = readPeftParams(source.adapterDir, cfg);
    const records = source.metricsFile ? await readRunRecords(source.metricsFile) : null;
    await installImportedAdapter(store, id, source, records, baseIdentity(modelPath, cfg));
    console.log(`${store.adapterDir(id)}: r ${lora.rank}, alpha ${lora.alpha}, ${lora.modules.length} modules from ${source.adapterDir}` +
      (records ? `; ${records.length} training records from ${source.metricsFile}` : ''));
  },
};

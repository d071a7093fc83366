// "Gemma: Export training job…" (a task as a folder that trains on GPUs with transformers + PEFT under
// accelerate) and "Gemma: Import adapter…" (an adapter trained there, or anywhere, back into a task).
// The import is checked by the engine against the model the task runs on (it loads the adapter as it
// would for a request: names, shapes, finite values, the base a job recorded) before anything changes.

import * as path from 'node:path';
import * as vscode from 'vscode';
import { DEFAULT_JOB_BASE, exportJob } from '../job/exportJob';
import type { PanelDeps } from '../panel/trainingPanel';
import { TrainingPanel } from '../panel/trainingPanel';
import type { GemmaServices } from '../services';
import { findImportSource, installImportedAdapter, readRunRecords } from '../store/adapterImport';
import { runReporting } from './fineTuneOnSelection';
import { pickExistingTask } from './taskPicker';

export const EXPORT_TRAINING_JOB = 'gemmaTune.exportTrainingJob';
export const IMPORT_ADAPTER = 'gemmaTune.importAdapter';

/** Exports a picked task as a training job into a folder the user picks; resolves with the job folder. */
export async function exportTrainingJob(deps: PanelDeps): Promise<string | undefined> {
  const chosen = await pickExistingTask('Export training job', deps.log);
  if (!chosen) return undefined;
  const { folder, store, task } = chosen;
  const base = await vscode.window.showInputBox({
    title: `Export "${task.config.name}" as a training job (1/2)`,
    prompt: 'Base model to train on: a Hugging Face id or a folder on the training machine',
    value: DEFAULT_JOB_BASE,
    validateInput: (v) => (v.trim() === '' ? 'Name a base model' : undefined),
  });
  if (base === undefined) return undefined;
  const picked = await vscode.window.showOpenDialog({
    title: `Export "${task.config.name}" as a training job (2/2): the folder to put it in`,
    canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Export here', defaultUri: folder.uri,
  });
  if (!picked?.[0]) return undefined;
  const out = path.join(picked[0].fsPath, `${task.id}-job`);
  const { examples } = await store.examples(task.id);
  await exportJob(task, examples, out, base);
  deps.log.info(`exported task ${task.id} as a training job to ${out} (base ${base})`);
  const open = await vscode.window.showInformationMessage(`Gemma: "${task.config.name}" exported to ${out}. Its README says how to run it with accelerate.`, 'Open README');
  if (open) await vscode.window.showTextDocument(vscode.Uri.file(path.join(out, 'README.md')));
  return out;
}

/** Imports an adapter folder the user picks into a picked task; resolves with the task id. */
export async function importAdapter(s: GemmaServices, deps: PanelDeps): Promise<string | undefined> {
  const chosen = await pickExistingTask('Import adapter', deps.log);
  if (!chosen) return undefined;
  const { folder, store, task } = chosen;
  const picked = await vscode.window.showOpenDialog({
    title: `Import an adapter into "${task.config.name}": a training job's out/ folder or a PEFT adapter folder`,
    canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Import',
  });
  if (!picked?.[0]) return undefined;
  const source = await findImportSource(picked[0].fsPath);
  const records = source.metricsFile ? await readRunRecords(source.metricsFile) : null;
  const model = await s.models.ensureLoaded({ interactive: true });
  if (!model) return undefined;
  // The engine loads it as it would for a request; any mismatch with the model is its error message.
  const probe = `import-check:${task.id}`;
  const loaded = await s.engine.request('loadAdapter', { name: probe, path: source.adapterDir });
  await s.engine.request('unloadAdapter', { name: probe });
  await installImportedAdapter(store, task.id, source, records, model.summary.base);
  deps.log.info(`imported ${source.adapterDir} into task ${task.id} (r ${loaded.rank}, ${loaded.modules} modules${records ? `, ${records.length} training records` : ''})`);
  await deps.panels.refresh(folder, task.id);
  const open = await vscode.window.showInformationMessage(
    `Gemma: "${task.config.name}" now uses the adapter from ${source.adapterDir} (r ${loaded.rank}, ${loaded.modules} modules)${records ? '; its training curves are in the panel' : ''}.`,
    'Open training panel',
  );
  if (open) await TrainingPanel.show(deps, folder, task.id);
  return task.id;
}

/** Registers both commands. */
export function registerTrainingJobCommands(s: GemmaServices, deps: PanelDeps): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(EXPORT_TRAINING_JOB, () => runReporting(deps, () => exportTrainingJob(deps))),
    vscode.commands.registerCommand(IMPORT_ADAPTER, () => runReporting(deps, () => importAdapter(s, deps))),
  ];
}

// Puts an adapter trained elsewhere into a task: a training job's output folder (adapter/ and
// metrics.jsonl) or any PEFT adapter folder. The adapter itself is checked against the task's model by
// the caller (readPeftParams: names, shapes, finite values, the base a job recorded), since only the
// engine knows the model; this module finds the files, checks the run's records, and swaps them in:
// the adapter folder in one rename, metrics.jsonl in one atomic write, nothing changed when a check fails.
// Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { BaseModelRecord } from './baseModel';
import { incomingDir, installIncoming } from './adapterStage';
import { readJsonl } from './jsonl';
import { type MetricRecord, METRICS_VERSION, parseMetricRecord } from './metricsLog';
import type { TaskStore } from './taskStore';
import { ADAPTER_CONFIG_FILE, ADAPTER_DIR, ADAPTER_INFO_FILE, ADAPTER_WEIGHTS_FILE, METRICS_FILE } from '../common/files';

/** The files of an adapter folder that are copied (PEFT's two and a job's note on its base). */
const ADAPTER_FILES = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];
const OPTIONAL_FILES = [ADAPTER_INFO_FILE];

export class AdapterImportError extends Error {}

/** Where an import's adapter and run records are. */
export interface ImportSource {
  adapterDir: string;
  /** The run's metrics.jsonl, when the folder has one. */
  metricsFile: string | null;
}

/**
 * Finds the adapter in `dir`: a job's output folder (adapter/ inside, metrics.jsonl beside it) or an
 * adapter folder itself (with metrics.jsonl inside or beside it, if any).
 */
export async function findImportSource(dir: string): Promise<ImportSource> {
  const has = async (p: string) => fs.access(p).then(() => true, () => false);
  let adapterDir: string;
  if (await has(path.join(dir, ADAPTER_FILES[0]))) adapterDir = dir;
  else if (await has(path.join(dir, ADAPTER_DIR, ADAPTER_FILES[0]))) adapterDir = path.join(dir, ADAPTER_DIR);
  else throw new AdapterImportError(`${dir}: no adapter_config.json here or in ${ADAPTER_DIR}/: not a PEFT adapter or a training job's output`);
  for (const f of ADAPTER_FILES) {
    if (!(await has(path.join(adapterDir, f)))) throw new AdapterImportError(`${adapterDir}: ${f} is missing`);
  }
  // A job writes metrics.jsonl beside adapter/, so a picked adapter/ folder looks one level up too.
  const candidates = [path.join(adapterDir, METRICS_FILE)];
  if (path.basename(adapterDir) === ADAPTER_DIR) candidates.push(path.join(path.dirname(adapterDir), METRICS_FILE));
  for (const c of candidates) if (await has(c)) return { adapterDir, metricsFile: c };
  return { adapterDir, metricsFile: null };
}

/** The run's records, every line checked: a damaged file is refused with its first bad line named. */
export async function readRunRecords(file: string): Promise<MetricRecord[]> {
  const read = await readJsonl(file, (v) => parseMetricRecord(v));
  const bad = read.problems[0];
  if (bad) throw new AdapterImportError(`${bad.file}:${bad.line}: not a training record (${bad.message})`);
  if (read.records.length === 0) throw new AdapterImportError(`${file}: no training records`);
  return read.records.map((r) => r.value);
}

/**
 * Replaces the task's adapter with the one at `source` and its metrics.jsonl with the run's records (or,
 * without any, one record saying where the adapter came from, so the panel shows no stale curve), and
 * records `base` (the model it was checked against) as the base the task's adapter runs on.
 */
export async function installImportedAdapter(store: TaskStore, taskId: string, source: ImportSource, records: readonly MetricRecord[] | null, base: BaseModelRecord | undefined): Promise<void> {
  // Held as a training run holds it: an import never lands in the middle of a run of the task (here, in
  // another window or the CLI), and a crash midway is put right by the next holder.
  const lock = await store.lockTraining(taskId);
  try {
    const adapterDir = store.adapterDir(taskId);
    const staged = incomingDir(adapterDir);
    await fs.rm(staged, { recursive: true, force: true });
    await fs.mkdir(staged, { recursive: true });
    try {
      for (const f of ADAPTER_FILES) await fs.copyFile(path.join(source.adapterDir, f), path.join(staged, f));
      for (const f of OPTIONAL_FILES) {
        await fs.copyFile(path.join(source.adapterDir, f), path.join(staged, f)).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
      }
      await installIncoming(adapterDir);
    } catch (e) {
      await fs.rm(staged, { recursive: true, force: true });
      throw e;
    }
    const note = parseMetricRecord({ version: METRICS_VERSION, type: 'done', message: `Adapter imported from ${source.adapterDir}.` });
    await store.replaceMetrics(taskId, records ?? [note]);
    if (base) await store.updateConfig(taskId, (config) => ({ ...config, baseModel: base }));
  } finally {
    await lock.release();
  }
}

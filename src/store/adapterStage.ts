// A training run writes its adapter into a staging folder beside the task's `adapter/`; only when the
// run produced something worth keeping does it replace the old adapter. So a failed run, or one
// cancelled before its first step, never leaves the task with a broken or untrained adapter, and a
// trained one appears in one step (two renames) for the code actions that watch the folder.
// A run that was cancelled or cut off (crash, closed window) keeps its staging folder: the trainer's
// checkpoint plus `run.json`, which the host writes when the run starts (the settings it runs with
// and its step count), so the panel can offer to resume it. A cancelled run's best adapter is also
// copied into `adapter/`, so cancelling still leaves the task with what was trained.
// Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isTempName, syncDir, writeJsonAtomic } from '../engine/atomicWrite';
import { readSafetensorsHeader } from '../engine/model/safetensors';
import { num, obj, oneOf } from '../protocol/check';
import { type Hyperparameters, hyperparametersSchema } from './task';

/** The trainer's resume state (engine/train/trainer.ts CHECKPOINT_FILE): large and not part of a shared task. */
const RUN_STATE_FILE = 'trainer_state.safetensors';
/** The host's note on the staged run (runMarker below). */
const RUN_MARKER_FILE = 'run.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';

const runMarker = obj({ version: oneOf(1), totalSteps: num({ int: true, min: 1, max: 1e9 }), hyperparameters: hyperparametersSchema });
/** What run.json holds: a resume must train with exactly the hyperparameters the run started with. */
export type RunMarker = { totalSteps: number; hyperparameters: Hyperparameters };

/** A staged run that stopped before its last step and can be resumed. */
export interface InterruptedRun {
  /** The checkpoint's step: where a resume starts. */
  step: number;
  totalSteps: number;
  hyperparameters: Hyperparameters;
}

/** Where a run of the adapter in `adapterDir` is staged. */
export function stagingDir(adapterDir: string): string {
  return `${adapterDir}.training`;
}

/** Empties the staging folder before a run. */
export async function clearStaging(adapterDir: string): Promise<string> {
  const dir = stagingDir(adapterDir);
  await fs.rm(dir, { recursive: true, force: true });
  return dir;
}

/**
 * Replaces `adapterDir` with the staged adapter (without the run's resume state); false, and the
 * old adapter kept, when the staging folder holds no adapter weights. With `keepRunState` the staged
 * folder stays as it is (a copy of its adapter is promoted), so the run can still be resumed.
 */
export async function promoteStaged(adapterDir: string, opts: { keepRunState?: boolean } = {}): Promise<boolean> {
  const staged = stagingDir(adapterDir);
  try {
    await fs.access(path.join(staged, WEIGHTS_FILE));
  } catch {
    return false;
  }
  let source = staged;
  if (opts.keepRunState) {
    source = `${adapterDir}.new`;
    await fs.rm(source, { recursive: true, force: true });
    await fs.mkdir(source);
    for (const name of await fs.readdir(staged)) {
      if (name === RUN_STATE_FILE || name === RUN_MARKER_FILE || isTempName(name)) continue;
      await fs.copyFile(path.join(staged, name), path.join(source, name));
    }
  } else {
    await fs.rm(path.join(staged, RUN_STATE_FILE), { force: true });
    await fs.rm(path.join(staged, RUN_MARKER_FILE), { force: true });
  }
  await installAdapterDir(source, adapterDir);
  return true;
}

/** Replaces `adapterDir` with the folder `source` (renamed into place; the old adapter is removed after). */
export async function installAdapterDir(source: string, adapterDir: string): Promise<void> {
  const old = `${adapterDir}.old`;
  await fs.rm(old, { recursive: true, force: true });
  let hadOld = true;
  try {
    await fs.rename(adapterDir, old);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    hadOld = false;
  }
  await fs.rename(source, adapterDir);
  if (hadOld) await fs.rm(old, { recursive: true, force: true });
  await syncDir(path.dirname(adapterDir));
}

/** Records, in the staging folder, what the run that is starting there trains with. */
export async function writeRunMarker(adapterDir: string, marker: RunMarker): Promise<void> {
  await writeJsonAtomic(path.join(stagingDir(adapterDir), RUN_MARKER_FILE), { version: 1, ...marker });
}

/**
 * The resumable run, if `marker` (run.json's content) and `checkpointRun` (the `run` metadata of the
 * trainer's checkpoint) describe one: both readable, and the checkpoint past step 0 but short of the
 * run's last step. A finished run is promoted and leaves no staging folder; this also refuses one that
 * somehow did, and a run cancelled before its first step (starting over costs nothing).
 */
export function interruptedRunFrom(marker: unknown, checkpointRun: string | undefined): InterruptedRun | null {
  let m: ReturnType<typeof runMarker>;
  let step: unknown;
  try {
    m = runMarker(marker, RUN_MARKER_FILE);
    step = (JSON.parse(checkpointRun ?? '') as { step?: unknown } | null)?.step;
  } catch {
    return null;
  }
  if (typeof step !== 'number' || !Number.isInteger(step) || step <= 0 || step >= m.totalSteps) return null;
  return { step, totalSteps: m.totalSteps, hyperparameters: m.hyperparameters };
}

/** The interrupted run staged beside `adapterDir`, or null (nothing staged, unreadable, or finished). */
export async function findInterruptedRun(adapterDir: string): Promise<InterruptedRun | null> {
  const staged = stagingDir(adapterDir);
  try {
    const marker: unknown = JSON.parse(await fs.readFile(path.join(staged, RUN_MARKER_FILE), 'utf8'));
    // The header only (kilobytes), not the tensors.
    const checkpointRun = readSafetensorsHeader(path.join(staged, RUN_STATE_FILE)).metadata.run;
    return interruptedRunFrom(marker, checkpointRun);
  } catch {
    return null; // no staged run, or one this version cannot read: nothing to offer
  }
}

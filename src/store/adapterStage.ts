// A training run writes its adapter into a staging folder beside the task's `adapter/`; only when the
// run produced something worth keeping does it replace the old adapter. So a failed run, or one
// cancelled before its first step, never leaves the task with a broken or untrained adapter, and a
// trained one appears in one step (two renames) for the code actions that watch the folder.
// Pure Node: no vscode.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { syncDir } from '../engine/atomicWrite';

/** The trainer's resume state (engine/train/trainer.ts CHECKPOINT_FILE): large and not part of a shared task. */
const RUN_STATE_FILE = 'trainer_state.safetensors';
const WEIGHTS_FILE = 'adapter_model.safetensors';

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
 * old adapter kept, when the staging folder holds no adapter weights.
 */
export async function promoteStaged(adapterDir: string): Promise<boolean> {
  const staged = stagingDir(adapterDir);
  try {
    await fs.access(path.join(staged, WEIGHTS_FILE));
  } catch {
    return false;
  }
  await fs.rm(path.join(staged, RUN_STATE_FILE), { force: true });
  const old = `${adapterDir}.old`;
  await fs.rm(old, { recursive: true, force: true });
  let hadOld = true;
  try {
    await fs.rename(adapterDir, old);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    hadOld = false;
  }
  await fs.rename(staged, adapterDir);
  if (hadOld) await fs.rm(old, { recursive: true, force: true });
  await syncDir(path.dirname(adapterDir));
  return true;
}

// A training run writes its adapter into a staging folder beside the task's `adapter/`; only when the
// run produced something worth keeping does it replace the old adapter. So a failed run, or one
// cancelled before its first step, never leaves the task with a broken or untrained adapter, and a
// trained one appears in one step (two renames) for the code actions that watch the folder.
// A run that was cancelled or cut off (crash, closed window) keeps its staging folder: the trainer's
// checkpoint plus `run.json`, which the host writes when the run starts (the settings it runs with
// and its step count), so the panel can offer to resume it. A cancelled run's best adapter is also
// copied into `adapter/`, so cancelling still leaves the task with what was trained.
// Every step here runs under the task's training lock (taskStore.ts), so one process at a time stages
// and promotes. A promotion cut off at any instant is put right by recoverPromotion, which taking the
// lock runs first: the previous adapter comes back, or the new one's promotion is finished.
// Pure Node: no vscode.

import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { syncDir, writeJsonAtomic } from '../common/atomicWrite';
import { readSafetensorsHeader } from '../engine/model/safetensors';
import { num, obj, oneOf } from '../common/check';
import { checkFolder, checkRegularFile, readGuardedText, removeLeftoverTemps } from './safeFile';
import { type Hyperparameters, hyperparametersSchema } from './task';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, CHECKPOINT_FILE, RUN_MARKER_FILE } from '../common/files';

/** The trainer's resume state: large and not part of a shared task. */
const RUN_STATE_FILE = CHECKPOINT_FILE;
/** run.json and adapter_config.json are a few hundred bytes. */
const MAX_MARKER_BYTES = 64 * 1024;
/** Beside `adapter/` while a promotion runs: the previous adapter, and the copy being promoted. */
const OLD_SUFFIX = '.old';
const NEW_SUFFIX = '.new';

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

/** One step of a promotion (promotionPlan). */
export interface PromotionStep {
  name: 'prepare' | 'set-aside' | 'put-in-place' | 'drop-old';
  run: () => Promise<void>;
}

/**
 * The steps that replace `adapterDir` with the staged adapter, in order. Between any two of them (and
 * inside any) a crash leaves a state recoverPromotion turns into the old adapter or the new one:
 *   prepare       keepRunState: copy the staged adapter into `adapter.new`; else drop the run state
 *                 from the staging folder, which becomes the new adapter as it is
 *   set-aside     rename `adapter` → `adapter.old`       (crash after: adapter/ missing, .old whole)
 *   put-in-place  rename the new folder → `adapter`       (crash after: both there, the new one in place)
 *   drop-old      remove `adapter.old`
 * Exported so the tests can stop after each step as a crash would.
 */
export function promotionPlan(adapterDir: string, opts: { keepRunState?: boolean } = {}): PromotionStep[] {
  const staged = stagingDir(adapterDir);
  const source = opts.keepRunState ? incomingDir(adapterDir) : staged;
  return [
    {
      name: 'prepare',
      run: async () => {
        await removeLeftoverTemps(staged, { all: true }); // the run is over: nothing writes here now
        if (!opts.keepRunState) {
          await fs.rm(path.join(staged, RUN_STATE_FILE), { force: true });
          await fs.rm(path.join(staged, RUN_MARKER_FILE), { force: true });
          return;
        }
        await fs.rm(source, { recursive: true, force: true });
        await fs.mkdir(source);
        for (const name of await fs.readdir(staged)) {
          if (name === RUN_STATE_FILE || name === RUN_MARKER_FILE) continue;
          await checkRegularFile(path.join(staged, name), Number.MAX_SAFE_INTEGER);
          await fs.copyFile(path.join(staged, name), path.join(source, name));
        }
        await syncDir(source);
      },
    },
    ...swapSteps(source, adapterDir),
  ];
}

/** The last three steps of a promotion: `adapter` set aside, `source` renamed into its place, the old one dropped. */
function swapSteps(source: string, adapterDir: string): PromotionStep[] {
  const old = `${adapterDir}${OLD_SUFFIX}`;
  return [
    {
      name: 'set-aside',
      run: async () => {
        try {
          await fs.rename(adapterDir, old);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // the task's first adapter
        }
      },
    },
    { name: 'put-in-place', run: () => fs.rename(source, adapterDir) },
    {
      name: 'drop-old',
      run: async () => {
        await fs.rm(old, { recursive: true, force: true });
        await syncDir(path.dirname(adapterDir));
      },
    },
  ];
}

/** Where an adapter from elsewhere (an import) is put together before it replaces `adapter/`; recoverPromotion removes one a crash left. */
export function incomingDir(adapterDir: string): string {
  return `${adapterDir}${NEW_SUFFIX}`;
}

/**
 * Replaces `adapterDir` with the complete adapter in incomingDir(adapterDir), by the same renames as a
 * promotion (so a crash midway is put right the same way). Call it holding the task's training lock.
 */
export async function installIncoming(adapterDir: string): Promise<void> {
  await syncDir(incomingDir(adapterDir));
  for (const step of swapSteps(incomingDir(adapterDir), adapterDir)) await step.run();
}

/**
 * Replaces `adapterDir` with the staged adapter (without the run's resume state); false, and the
 * old adapter kept, when the staging folder holds no adapter weights. With `keepRunState` the staged
 * folder stays as it is (a copy of its adapter is promoted), so the run can still be resumed.
 * Call it holding the task's training lock; it first finishes what a crashed promotion left.
 */
export async function promoteStaged(adapterDir: string, opts: { keepRunState?: boolean } = {}): Promise<boolean> {
  await recoverPromotion(adapterDir);
  try {
    await checkRegularFile(path.join(stagingDir(adapterDir), ADAPTER_WEIGHTS_FILE), Number.MAX_SAFE_INTEGER);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  for (const step of promotionPlan(adapterDir, opts)) await step.run();
  return true;
}

/** What recoverPromotion found: nothing to do, the old adapter put back, or the new one's promotion finished. */
export type Recovery = 'none' | 'restored' | 'finished';

/**
 * Brings the task's adapter back to a whole state after a promotion that stopped midway (crash, kill,
 * power cut): with `adapter` missing and `adapter.old` there (stopped between the two renames), the
 * previous adapter is put back; with both there, the new one is in place and the old one goes; an
 * unfinished `adapter.new` copy goes. Call it holding the task's training lock.
 */
export async function recoverPromotion(adapterDir: string): Promise<Recovery> {
  const old = `${adapterDir}${OLD_SUFFIX}`;
  let result: Recovery = 'none';
  if (await present(old)) {
    if (await present(adapterDir)) {
      await fs.rm(old, { recursive: true, force: true });
      result = 'finished';
    } else {
      await fs.rename(old, adapterDir);
      result = 'restored';
    }
  }
  if (await present(`${adapterDir}${NEW_SUFFIX}`)) {
    await fs.rm(`${adapterDir}${NEW_SUFFIX}`, { recursive: true, force: true });
    if (result === 'none') result = 'finished';
  }
  if (result !== 'none') await syncDir(path.dirname(adapterDir));
  await removeLeftoverTemps(adapterDir);
  return result;
}

/** Whether a promotion stopped midway left something for recoverPromotion (cheap: two lstat calls). */
export async function promotionInterrupted(adapterDir: string): Promise<boolean> {
  return (await present(`${adapterDir}${OLD_SUFFIX}`)) || (await present(`${adapterDir}${NEW_SUFFIX}`));
}

/** What a run ended with, as the trainer reports it. */
export interface RunOutcome {
  reason: 'completed' | 'early-stop' | 'cancelled';
  /** Optimizer steps run. */
  step: number;
  /** The step whose adapter the staging folder holds (0: none worth keeping). */
  savedStep: number;
}

/**
 * After a run that ended with `outcome`: promotes the adapter it saved (a run cancelled past its first
 * step keeps its staging folder, so it can be resumed) and clears the staging folder when nothing is
 * left to resume. Resolves with whether the task's adapter changed. Call it holding the training lock.
 */
export async function settleFinishedRun(adapterDir: string, outcome: RunOutcome): Promise<boolean> {
  const resumable = outcome.reason === 'cancelled' && outcome.step > 0;
  const promoted = outcome.savedStep > 0 ? await promoteStaged(adapterDir, { keepRunState: resumable }) : false;
  if (!resumable && !promoted) await clearStaging(adapterDir);
  return promoted;
}

/**
 * After a run that failed: a run that checkpointed before it failed (the engine died, say) stays
 * resumable, and is returned; otherwise the staging folder is cleared. Call it holding the training lock.
 */
export async function settleFailedRun(adapterDir: string): Promise<InterruptedRun | null> {
  const kept = await findInterruptedRun(adapterDir);
  if (!kept) await clearStaging(adapterDir);
  return kept;
}

/**
 * Checks a task's adapter folder before the engine reads it: a real folder holding regular files (a
 * link or pipe planted in a cloned repository would have the engine read another file, or block).
 * Resolves with the weights file's stat; rejects with UnsafeFileError, or ENOENT when it is missing.
 */
export async function checkAdapterFiles(adapterDir: string): Promise<Stats> {
  await checkFolder(adapterDir);
  const weights = await checkRegularFile(path.join(adapterDir, ADAPTER_WEIGHTS_FILE), Number.MAX_SAFE_INTEGER);
  await checkRegularFile(path.join(adapterDir, ADAPTER_CONFIG_FILE), MAX_MARKER_BYTES);
  return weights;
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
    const marker: unknown = JSON.parse((await readGuardedText(path.join(staged, RUN_MARKER_FILE), MAX_MARKER_BYTES)).text);
    // The header only (kilobytes), not the tensors; a pipe or link in its place is refused before opening.
    const checkpoint = path.join(staged, RUN_STATE_FILE);
    await checkRegularFile(checkpoint, Number.MAX_SAFE_INTEGER);
    const checkpointRun = readSafetensorsHeader(checkpoint).metadata.run;
    return interruptedRunFrom(marker, checkpointRun);
  } catch {
    return null; // no staged run, or one this version cannot read: nothing to offer
  }
}

async function present(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

// The engine process's watchdog: a thread of its own that ends the process when its resident size
// passes the memory cap, or when the extension host that started it is gone. A thread, because the
// main thread may be the very thing running away (a synchronous allocation loop, a long native call)
// and then runs no timers; this one keeps ticking. Before it ends the process it writes one line,
// ENGINE_FATAL_PREFIX + the reason, to stderr, which the host shows as the cause of the exit.

import * as fs from 'node:fs';
import { parentPort, Worker } from 'node:worker_threads';
import { ENGINE_FATAL_PREFIX } from '../protocol/engine';

const MB = 1024 * 1024;
/** How often the thread looks: at 2 GB/s of runaway allocation the cap is overshot by at most 200 MB. */
const TICK_MS = 100;

/** What the watchdog thread is started with (its workerData). */
export interface WatchdogData {
  role: 'watchdog';
  /** null: no memory cap. */
  capMB: number | null;
  /** The extension host's pid: when the engine's parent is no longer it, the engine ends. */
  parentPid: number;
}

/** The main thread's handle on the watchdog. */
export interface Watchdog {
  /** The cap in force now, in MB (null: none). */
  readonly capMB: number | null;
  /** Changes the cap (a model that needs less, or more, than the last). */
  setCap(capMB: number | null): void;
}

/** Starts the watchdog thread from `script` (the engine bundle itself, which runs watchdogMain() in a thread). */
export function startWatchdog(script: string, capMB: number | null): Watchdog {
  const data: WatchdogData = { role: 'watchdog', capMB, parentPid: process.ppid };
  const thread = new Worker(script, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
  // It must never keep the engine alive by itself, nor take it down by failing.
  thread.unref();
  thread.on('error', (e) => process.stderr.write(`engine watchdog failed: ${e.message}\n`));
  let cap = capMB;
  return {
    get capMB() {
      return cap;
    },
    setCap(next) {
      cap = next;
      thread.postMessage({ capMB: next });
    },
  };
}

/** The watchdog thread's body; `data` is its workerData. */
export function watchdogMain(data: WatchdogData): void {
  let cap = data.capMB;
  parentPort?.on('message', (m: { capMB: number | null }) => {
    cap = m.capMB;
  });
  setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (cap !== null && rss > cap * MB) {
      // Rounded up: 90.3 MB over a cap of 90 must not read "used 90 MB, over its cap of 90 MB".
      end(`the engine used ${Math.ceil(rss / MB)} MB of memory, over its cap of ${cap} MB, and was stopped`);
    }
    if (orphaned(data.parentPid)) end('the extension host that started the engine is gone');
  }, TICK_MS);
}

/** Whether the process that started the engine has gone (the engine was handed to another parent, or its parent no longer exists). */
function orphaned(parentPid: number): boolean {
  if (process.ppid !== parentPid) return true;
  try {
    process.kill(parentPid, 0);
    return false;
  } catch (e) {
    // EPERM: it exists but is not ours to signal, which still means it exists.
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function end(reason: string): never {
  try {
    fs.writeSync(2, `${ENGINE_FATAL_PREFIX}${reason}\n`);
  } catch {
    // nobody reads stderr any more: end all the same
  }
  process.kill(process.pid, 'SIGKILL');
  // Not reached on POSIX or Windows; keeps the type honest.
  throw new Error(reason);
}

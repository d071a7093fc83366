// Entry of the engine process (bundled to dist/worker.js): forked by the extension host
// (EngineClient), it owns onnxruntime-node, the model and the trainer, and speaks only the protocol
// in src/protocol/engine.ts over the IPC channel; the handlers live in ./worker/. A fault in here (a
// native abort, a V8 fatal error, running out of memory) ends this process, never the host. The same
// bundle, started as a thread of this process, is its watchdog (watchdog.ts).

import { setPriority } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import { parseEngineArgs, type WorkerToHost } from '../protocol/engine';
import { idleCapMB } from './memoryCap';
import { startWatchdog, watchdogMain, type WatchdogData } from './watchdog';
import { physicalCores } from '../common/cpuCores';

/** After the host disconnects, how long a running request gets to stop before the engine exits anyway. */
const DISCONNECT_GRACE_MS = 3000;

async function main(): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) {
    console.error('gemma-tune: dist/worker.js is the engine process; the extension host starts it through EngineClient (the CLI runs the engine in-process)');
    process.exitCode = 2;
    return;
  }
  const opts = parseEngineArgs(process.argv.slice(2));
  const threads = opts.threads ?? physicalCores();
  // Before onnxruntime-node starts its thread pool, whose threads inherit it (on Linux a nice value is a thread's).
  if (opts.priority !== undefined) {
    try {
      setPriority(opts.priority);
    } catch (e) {
      console.error(`engine: could not lower the priority to ${opts.priority}: ${(e as Error).message}`);
    }
  }
  // First, before the engine's code and onnxruntime-node are loaded: the cap holds from the start.
  const watchdog = startWatchdog(__filename, idleCapMB(opts.memoryCapMB ?? null));
  // Messages that arrive while the handlers load wait for them.
  const early: unknown[] = [];
  let deliver = (msg: unknown): void => void early.push(msg);
  process.on('message', (msg: unknown) => deliver(msg));
  // Imported here, not at the top, so that the watchdog thread (this same bundle) never loads them.
  const [{ Dispatcher }, { handlers }] = await Promise.all([import('./worker/dispatcher.js'), import('./worker/handlers.js')]);
  // A message to a host that has gone is dropped (the callback takes the EPIPE of a channel closing
  // under it, which would otherwise be thrown as an 'error' event): the disconnect handler ends the process.
  const post = (msg: WorkerToHost): void => {
    if (process.connected) send(msg, undefined, {}, () => undefined);
  };
  const dispatcher = new Dispatcher(handlers, { threads, startedAt: performance.now(), model: null, hostCapMB: opts.memoryCapMB ?? null, weightCache: opts.weightCache, watchdog }, post);
  // A stray rejection in a handler's background work must not take the model down with it.
  process.on('unhandledRejection', (e) => {
    post({ kind: 'log', level: 'error', message: `unhandled rejection in the engine: ${e instanceof Error ? e.stack : String(e)}` });
  });
  deliver = (msg) => dispatcher.receive(msg);
  for (const msg of early.splice(0)) dispatcher.receive(msg);
  // The host closed the channel (it was disposed, or died): stop what runs, then end.
  process.on('disconnect', () => {
    dispatcher.cancelAll();
    setTimeout(() => process.exit(0), DISCONNECT_GRACE_MS).unref();
    void dispatcher.idle().then(() => process.exit(0));
  });
  post({ kind: 'log', level: 'info', message: `engine started (pid ${process.pid}, node ${process.versions.node}, ${threads} threads, memory cap ${watchdog.capMB === null ? 'none' : `${watchdog.capMB} MB (ceiling ${opts.memoryCapMB} MB)`})` });
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(`gemma-tune engine: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  });
}
else if ((workerData as WatchdogData | null)?.role === 'watchdog') watchdogMain(workerData as WatchdogData);

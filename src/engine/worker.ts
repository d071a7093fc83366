// Entry of the engine worker (bundled to dist/worker.js): a worker_threads thread of the
// extension host that owns onnxruntime-node, the model and the trainer. It speaks only the
// protocol in src/protocol/engine.ts; the handlers live in ./worker/.

import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { EngineWorkerData, WorkerToHost } from '../protocol/engine';
import { Dispatcher } from './worker/dispatcher';
import { handlers } from './worker/handlers';

function threadsFrom(data: unknown): number {
  const t = (data as EngineWorkerData | null)?.threads;
  if (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= 256) return t;
  return Math.min(4, availableParallelism());
}

if (isMainThread || !parentPort) {
  console.error('gemma-tune: dist/worker.js is the engine worker; start it through EngineClient, not directly');
  process.exitCode = 2;
} else {
  const port = parentPort;
  const post = (msg: WorkerToHost): void => port.postMessage(msg);
  const dispatcher = new Dispatcher(handlers, { threads: threadsFrom(workerData), startedAt: performance.now(), model: null }, post);
  // A stray rejection in a handler's background work must not take the model down with it.
  process.on('unhandledRejection', (e) => {
    post({ kind: 'log', level: 'error', message: `unhandled rejection in the engine: ${e instanceof Error ? e.stack : String(e)}` });
  });
  port.on('message', (msg: unknown) => dispatcher.receive(msg));
  post({ kind: 'log', level: 'info', message: `worker started (node ${process.versions.node}, ${threadsFrom(workerData)} threads)` });
}

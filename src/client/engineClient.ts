// The extension host's proxy of the engine worker: typed requests that return promises, events
// routed to the caller that asked, cancellation through AbortSignal. The worker starts on the
// first request (activation stays cheap); if it dies, every request in flight is rejected with
// `worker-exited` and the next request starts a fresh worker. Imports neither vscode nor
// onnxruntime-node: the host passes in what it needs (a logger) and the worker owns the runtime.

import { type ResourceLimits, Worker } from 'node:worker_threads';
import {
  type EngineErrorCode,
  type EngineMethod,
  type EngineWorkerData,
  type EventOf,
  type HostToWorker,
  type ParamsOf,
  parseEvent,
  parseResult,
  parseWorkerToHost,
  type ResultOf,
} from '../protocol/engine';

/** The slice of vscode.LogOutputChannel the client writes to. */
export interface EngineLogger {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface EngineClientOptions {
  /** Absolute path of the bundled worker (dist/worker.js). */
  workerPath: string;
  /** ONNX Runtime intra-op threads; the worker picks a default when absent. */
  threads?: number;
  logger?: EngineLogger;
  /**
   * V8 heap limits of the worker. Model weights live in ArrayBuffers outside this heap, so the
   * default only bounds JS objects (token lists, datasets) and leaves room for training.
   */
  resourceLimits?: ResourceLimits;
}

export interface RequestOptions<M extends EngineMethod> {
  /** Called for each event the request streams (tokens, training steps). */
  onEvent?: (event: EventOf<M>) => void;
  /** Aborting sends a cancel; the promise then rejects with code `cancelled` once the worker stops. */
  signal?: AbortSignal;
}

/** A request that did not produce a result; `code` says why (see EngineErrorCode). */
export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    readonly method?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

const DEFAULT_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 4096, stackSizeMb: 8 };

interface Pending {
  method: EngineMethod;
  resolve(result: unknown): void;
  reject(error: EngineError): void;
  onEvent?: (event: never) => void;
  worker: Worker;
}

const silent: EngineLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export class EngineClient {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private disposed = false;
  private readonly log: EngineLogger;

  constructor(private readonly options: EngineClientOptions) {
    this.log = options.logger ?? silent;
  }

  /** Sends one request; resolves with its validated result or rejects with EngineError. */
  request<M extends EngineMethod>(method: M, params: ParamsOf<M>, opts: RequestOptions<M> = {}): Promise<ResultOf<M>> {
    if (this.disposed) return Promise.reject(new EngineError('worker-exited', 'the engine has been disposed', method));
    const { signal, onEvent } = opts;
    if (signal?.aborted) return Promise.reject(new EngineError('cancelled', `${method} cancelled before it was sent`, method));
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const onAbort = (): void => this.send(worker, { kind: 'cancel', id });
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        method,
        worker,
        onEvent: onEvent as ((event: never) => void) | undefined,
        resolve: (r) => {
          settle();
          resolve(r as ResultOf<M>);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.send(worker, { kind: 'request', id, method, params } as HostToWorker);
    });
  }

  /** Whether a worker thread is running now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Stops the worker (requests in flight reject with `worker-exited`); the next request starts a new one. */
  async restart(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.log.info('engine: restarting the worker');
    await w.terminate();
  }

  /** Rejects everything in flight and stops the worker; later requests reject. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const w = this.worker;
    this.worker = undefined;
    this.rejectAll(undefined, 'the engine was disposed');
    if (w) await w.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const data: EngineWorkerData = this.options.threads ? { threads: this.options.threads } : {};
    const t0 = performance.now();
    const w = new Worker(this.options.workerPath, {
      workerData: data,
      resourceLimits: { ...DEFAULT_LIMITS, ...this.options.resourceLimits },
    });
    this.worker = w;
    let failure: Error | undefined;
    w.once('online', () => this.log.debug(`engine: worker online in ${Math.round(performance.now() - t0)} ms`));
    w.on('message', (raw: unknown) => this.receive(w, raw));
    w.on('messageerror', (e) => this.log.error(`engine: a message from the worker could not be read: ${e.message}`));
    w.on('error', (e) => {
      failure = e;
      this.log.error(`engine: worker error: ${e.stack ?? e.message}`);
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = undefined;
      const why = failure ? `${failure.message}` : `exit code ${code}`;
      if (!this.disposed) this.log.warn(`engine: worker stopped (${why}); the next request starts a new one`);
      this.rejectAll(w, `the engine worker stopped (${why})`);
    });
    return w;
  }

  private send(worker: Worker, msg: HostToWorker): void {
    // postMessage to a terminated worker is a silent no-op; its exit handler rejects the request.
    worker.postMessage(msg);
  }

  private receive(worker: Worker, raw: unknown): void {
    let msg;
    try {
      msg = parseWorkerToHost(raw);
    } catch (e) {
      this.log.error(`engine: invalid message from the worker: ${(e as Error).message}`);
      return;
    }
    if (msg.kind === 'log') {
      this.log[msg.level](`engine: ${msg.message}`);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p || p.worker !== worker) {
      this.log.warn(`engine: ${msg.kind} for unknown request ${msg.id}`);
      return;
    }
    try {
      if (msg.kind === 'event') {
        const event = parseEvent(p.method, msg.event);
        try {
          p.onEvent?.(event as never);
        } catch (e) {
          this.log.error(`engine: ${p.method} event listener threw: ${(e as Error).stack ?? String(e)}`);
        }
        return;
      }
      this.pending.delete(msg.id);
      if (msg.kind === 'error') p.reject(new EngineError(msg.error.code, msg.error.message, p.method));
      else p.resolve(parseResult(p.method, msg.result));
    } catch (e) {
      // The worker broke the protocol: fail this request loudly rather than hand on bad data.
      this.pending.delete(msg.id);
      const text = `the engine sent an invalid ${msg.kind} for ${p.method}: ${(e as Error).message}`;
      this.log.error(`engine: ${text}`);
      p.reject(new EngineError('failed', text, p.method));
    }
  }

  /** Rejects the requests sent to `worker` (all requests when undefined). */
  private rejectAll(worker: Worker | undefined, why: string): void {
    for (const [id, p] of this.pending) {
      if (worker && p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(new EngineError('worker-exited', `${p.method} failed: ${why}`, p.method));
    }
  }
}

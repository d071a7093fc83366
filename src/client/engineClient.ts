// The extension host's proxy of the engine: typed requests that return promises, events routed to
// the caller that asked, cancellation through AbortSignal. The engine is a process of its own
// (engineProcess.ts), started on the first request so that activation stays cheap. Whatever happens
// to it (a native abort, a V8 fatal error, its memory cap, SIGKILL) the host runs on: the requests in
// flight are rejected with the reason in one line (code `crashed`), and the next request starts a
// fresh engine, unless it crashed CRASH_LIMIT times within CRASH_WINDOW_MS: then it stays stopped
// until restart(). A request the host stops waiting for (cancel, timeout, an answer that breaks the
// protocol) is stopped in the engine too, and if the engine does not stop it within a grace period
// the engine is restarted: nothing runs on unseen. Imports neither vscode nor onnxruntime-node.

import {
  type EngineErrorCode,
  type EngineMethod,
  type EventOf,
  type HostToWorker,
  idOf,
  type ParamsOf,
  parseEvent,
  parseResult,
  parseWorkerToHost,
  type ResultOf,
} from '../protocol/engine';
import { EngineProcess, type EngineExit, type EngineLogger } from './engineProcess';
import { defaultMemory, type EngineMemory } from './engineMemory';

export type { EngineLogger } from './engineProcess';

/** Crashes within CRASH_WINDOW_MS that stop automatic restarts. */
export const CRASH_LIMIT = 3;
export const CRASH_WINDOW_MS = 60_000;
/** How long a request the host gave up on may run on in the engine before the engine is restarted. */
export const CANCEL_GRACE_MS = 10_000;
/** How long the engine gets to stop by itself when the client is disposed. */
const DISPOSE_GRACE_MS = 3000;

export interface EngineClientOptions {
  /** Absolute path of the bundled engine (dist/worker.js). */
  workerPath: string;
  /** ONNX Runtime intra-op threads; the engine picks a default when absent. */
  threads?: number;
  /** The engine's nice value (ENGINE_PRIORITY); absent: the host's. */
  priority?: number;
  /** Where the engine keeps converted models between loads (absolute); absent: converted at every load. */
  weightCache?: string;
  logger?: EngineLogger;
  /** The engine's V8 heap limit and resident-size ceiling; default: defaultMemory() for this machine. */
  memory?: Partial<EngineMemory>;
  /** Default grace for requests given up on (CANCEL_GRACE_MS). */
  cancelGraceMs?: number;
}

export interface RequestOptions<M extends EngineMethod> {
  /** Called for each event the request streams (tokens, training steps). */
  onEvent?: (event: EventOf<M>) => void;
  /**
   * Aborting sends a cancel; the promise then settles with the engine's answer (code `cancelled`, or
   * a result that says it stopped early, as training does). An engine that does not answer within the
   * grace period is restarted and the promise rejects with `cancelled`.
   */
  signal?: AbortSignal;
  /** Gives up after this long: rejects with `timeout` at once and stops the request in the engine. */
  timeoutMs?: number;
  /** How long the engine may take to stop this request once told to, before it is restarted. */
  cancelGraceMs?: number;
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

/** Where the engine stands, as the status bar tells it. */
export type EngineState =
  /** No engine process; the next request starts one. */
  | { kind: 'idle' }
  | { kind: 'running'; pid: number }
  /** The last engine died on its own (`reason`); the next request starts a new one. */
  | { kind: 'crashed'; reason: string }
  /** It crashed CRASH_LIMIT times within CRASH_WINDOW_MS: requests fail until restart(). */
  | { kind: 'stopped'; reason: string };

interface Pending {
  method: EngineMethod;
  proc: EngineProcess;
  resolve(result: unknown): void;
  reject(error: EngineError): void;
  onEvent?: (event: never) => void;
  /** Set once a cancel was sent: the engine has the grace period to answer. */
  graceTimer?: NodeJS.Timeout;
  graceMs: number;
}

/** A request the host no longer waits for; the engine has until `timer` fires to stop it. */
interface Abandoned {
  method: EngineMethod;
  proc: EngineProcess;
  timer: NodeJS.Timeout;
}

const silent: EngineLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export class EngineClient {
  private proc: EngineProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Map<number, Abandoned>();
  private nextId = 1;
  private disposed = false;
  private current: EngineState = { kind: 'idle' };
  private crashes: number[] = [];
  private readonly listeners = new Set<(s: EngineState) => void>();
  /** Engine processes not yet ended (a killed one may take a moment). */
  private readonly live = new Set<EngineProcess>();
  private readonly log: EngineLogger;
  private readonly memory: EngineMemory;

  constructor(private readonly options: EngineClientOptions) {
    this.log = options.logger ?? silent;
    this.memory = { ...defaultMemory(), ...options.memory };
  }

  /** Sends one request; resolves with its validated result or rejects with EngineError. */
  request<M extends EngineMethod>(method: M, params: ParamsOf<M>, opts: RequestOptions<M> = {}): Promise<ResultOf<M>> {
    if (this.disposed) return Promise.reject(new EngineError('worker-exited', 'the engine has been disposed', method));
    if (this.current.kind === 'stopped') return Promise.reject(new EngineError('crashed', this.current.reason, method));
    const { signal, onEvent } = opts;
    if (signal?.aborted) return Promise.reject(new EngineError('cancelled', `${method} cancelled before it was sent`, method));
    const proc = this.ensureProcess();
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const onAbort = (): void => this.cancel(id);
      const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
        this.giveUp(id, new EngineError('timeout', `${method} did not answer within ${seconds(opts.timeoutMs!)}; the engine was told to stop it`, method));
      }, opts.timeoutMs);
      const entry: Pending = {
        method,
        proc,
        graceMs: opts.cancelGraceMs ?? this.options.cancelGraceMs ?? CANCEL_GRACE_MS,
        onEvent: onEvent as ((event: never) => void) | undefined,
        resolve: (r) => {
          settle();
          resolve(r as ResultOf<M>);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      };
      // Once answered, neither the timeout nor the cancel's grace may act on it.
      const settle = (): void => {
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        clearTimeout(entry.graceTimer);
      };
      this.pending.set(id, entry);
      signal?.addEventListener('abort', onAbort, { once: true });
      proc.send({ kind: 'request', id, method, params } as HostToWorker);
    });
  }

  /** Whether an engine process is running now. */
  get running(): boolean {
    return this.proc !== undefined;
  }

  /** The engine process's id, while one runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Where the engine stands. */
  get state(): EngineState {
    return this.current;
  }

  /** Calls `listener` on every change of state; dispose() the result to stop. */
  onDidChangeState(listener: (s: EngineState) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /**
   * Stops the engine (requests in flight reject with `worker-exited`) and forgets past crashes, so a
   * stopped engine may start again; the next request starts a new one.
   */
  async restart(): Promise<void> {
    this.crashes = [];
    const p = this.proc;
    if (p) {
      this.log.info('engine: restarting');
      await p.kill('the engine was restarted'); // its exit sets the state to idle
    } else if (!this.disposed && this.current.kind !== 'idle') {
      this.setState({ kind: 'idle' });
    }
  }

  /** Rejects everything in flight and ends the engine (it gets a moment to stop by itself); later requests reject. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.rejectAll(undefined, 'worker-exited', 'the engine was disposed');
    for (const a of this.abandoned.values()) clearTimeout(a.timer);
    this.abandoned.clear();
    const p = this.proc;
    if (p) await p.close('the engine was disposed', DISPOSE_GRACE_MS);
    await Promise.all([...this.live].map((l) => l.ended));
    this.listeners.clear();
  }

  private ensureProcess(): EngineProcess {
    if (this.proc) return this.proc;
    const t0 = performance.now();
    let first = true;
    const proc: EngineProcess = new EngineProcess({
      script: this.options.workerPath,
      threads: this.options.threads,
      priority: this.options.priority,
      weightCache: this.options.weightCache,
      heapMB: this.memory.heapMB,
      capMB: this.memory.capMB,
      semiSpaceMB: this.memory.semiSpaceMB,
      logger: this.log,
      onMessage: (raw) => {
        if (first) {
          first = false;
          this.log.debug(`engine: first message after ${Math.round(performance.now() - t0)} ms`);
        }
        this.receive(proc, raw);
      },
      onExit: (exit) => this.exited(proc, exit),
    });
    this.proc = proc;
    this.live.add(proc);
    if (proc.pid !== undefined) this.setState({ kind: 'running', pid: proc.pid });
    return proc;
  }

  /** The caller aborted request `id`: the engine is told, and has the request's grace period to answer. */
  private cancel(id: number): void {
    const p = this.pending.get(id);
    if (!p || p.graceTimer) return;
    p.proc.send({ kind: 'cancel', id });
    p.graceTimer = setTimeout(() => {
      const why = `${p.method} did not stop within ${seconds(p.graceMs)} of being cancelled`;
      this.log.warn(`engine: ${why}; restarting the engine`);
      // rejectAll answers this request `cancelled` (it has a grace timer) and the rest `worker-exited`.
      void p.proc.kill(`the engine was restarted because ${why}`);
    }, p.graceMs);
  }

  /**
   * The host stops waiting for request `id` (timeout, an answer that broke the protocol): it rejects
   * with `error` now, the engine is told to stop it, and is restarted if it has not within the grace.
   */
  private giveUp(id: number, error: EngineError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(error);
    p.proc.send({ kind: 'cancel', id });
    const timer = setTimeout(() => {
      this.abandoned.delete(id);
      const why = `${p.method} did not stop within ${seconds(p.graceMs)} after the host gave up on it`;
      this.log.warn(`engine: ${why}; restarting the engine`);
      void p.proc.kill(`the engine was restarted because ${why}`);
    }, p.graceMs);
    this.abandoned.set(id, { method: p.method, proc: p.proc, timer });
  }

  private receive(proc: EngineProcess, raw: unknown): void {
    let msg;
    try {
      msg = parseWorkerToHost(raw);
    } catch (e) {
      const id = idOf(raw);
      const text = `the engine sent an invalid message: ${(e as Error).message}`;
      this.log.error(`engine: ${text}`);
      // When it names a request, that request cannot be trusted to finish well: stop it.
      const p = id === undefined ? undefined : this.pending.get(id);
      if (p && p.proc === proc) this.giveUp(id!, new EngineError('failed', text, p.method));
      return;
    }
    if (msg.kind === 'log') {
      this.log[msg.level](`engine: ${msg.message}`);
      return;
    }
    const gone = this.abandoned.get(msg.id);
    if (gone && gone.proc === proc) {
      // The engine's late answer to a request the host gave up on: it has stopped, nothing to restart.
      if (msg.kind !== 'event') {
        clearTimeout(gone.timer);
        this.abandoned.delete(msg.id);
        this.log.debug(`engine: ${gone.method}#${msg.id} ended after the host gave up on it (${msg.kind})`);
      }
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p || p.proc !== proc) {
      this.log.warn(`engine: ${msg.kind} for unknown request ${msg.id}`);
      return;
    }
    if (msg.kind === 'event') {
      let event;
      try {
        event = parseEvent(p.method, msg.event);
      } catch (e) {
        // The engine broke the protocol: fail the request loudly rather than hand on bad data, and stop it.
        const text = `the engine sent an invalid event for ${p.method}: ${(e as Error).message}`;
        this.log.error(`engine: ${text}`);
        this.giveUp(msg.id, new EngineError('failed', text, p.method));
        return;
      }
      try {
        p.onEvent?.(event as never);
      } catch (e) {
        this.log.error(`engine: ${p.method} event listener threw: ${(e as Error).stack ?? String(e)}`);
      }
      return;
    }
    this.pending.delete(msg.id);
    if (msg.kind === 'error') {
      p.reject(new EngineError(msg.error.code, msg.error.message, p.method));
      return;
    }
    try {
      p.resolve(parseResult(p.method, msg.result));
    } catch (e) {
      const text = `the engine sent an invalid response for ${p.method}: ${(e as Error).message}`;
      this.log.error(`engine: ${text}`);
      p.reject(new EngineError('failed', text, p.method));
    }
  }

  private exited(proc: EngineProcess, exit: EngineExit): void {
    for (const [id, a] of this.abandoned) {
      if (a.proc !== proc) continue;
      clearTimeout(a.timer);
      this.abandoned.delete(id);
    }
    this.live.delete(proc);
    if (this.proc !== proc) return;
    this.proc = undefined;
    if (exit.byHost) {
      this.log.info(`engine: stopped (${exit.reason})`);
      this.rejectAll(proc, 'worker-exited', exit.reason);
      if (!this.disposed) this.setState({ kind: 'idle' });
      return;
    }
    this.log.error(`engine: ${exit.reason}${exit.code !== null ? ` (exit code ${exit.code})` : ''}${exit.signal ? ` (${exit.signal})` : ''}`);
    this.rejectAll(proc, 'crashed', exit.reason);
    if (this.disposed) return;
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    if (this.crashes.length >= CRASH_LIMIT) {
      const reason = `the engine crashed ${this.crashes.length} times within ${seconds(CRASH_WINDOW_MS)} (last: ${exit.reason}), so it is not restarted until you ask`;
      this.log.error(`engine: ${reason}`);
      this.setState({ kind: 'stopped', reason });
    } else {
      this.log.warn('engine: the next request starts a new engine');
      this.setState({ kind: 'crashed', reason: exit.reason });
    }
  }

  /** Rejects the requests sent to `proc` (all requests when undefined). */
  private rejectAll(proc: EngineProcess | undefined, code: EngineErrorCode, why: string): void {
    for (const [id, p] of this.pending) {
      if (proc && p.proc !== proc) continue;
      this.pending.delete(id);
      // A request the caller cancelled that the host had to end the engine for was still cancelled.
      // The reason alone: callers say what failed ("Training failed: the engine was killed …").
      p.reject(new EngineError(p.graceTimer && code === 'worker-exited' ? 'cancelled' : code, why, p.method));
    }
  }

  private setState(s: EngineState): void {
    this.current = s;
    for (const l of [...this.listeners]) {
      try {
        l(s);
      } catch (e) {
        this.log.error(`engine: a state listener threw: ${(e as Error).message}`);
      }
    }
  }
}

/** A duration as a person reads it: "200 ms", "10 s", "1.5 s". */
function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

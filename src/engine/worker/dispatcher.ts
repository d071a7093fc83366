// Turns incoming messages into handler calls. Exclusive requests (anything that uses the model)
// run one at a time in arrival order; quick non-exclusive ones (status) answer at once. A cancel
// aborts the running request's signal or drops a queued one. A bad message or a throwing handler
// becomes an error response: the worker itself keeps serving.

import {
  type EngineErrorCode,
  type EngineLogLevel,
  type EngineMethod,
  type EngineRequest,
  idOf,
  isExclusive,
  parseHostToWorker,
  type WorkerToHost,
} from '../../protocol/engine';
import { errorText, escapeControls } from '../../common/quote';
import { CancelledError, NotLoadedError, type EngineState, type Handler, type HandlerContext, type HandlerTable } from './context';

interface Job {
  request: EngineRequest;
  controller: AbortController;
}

export class Dispatcher {
  private readonly queue: Job[] = [];
  /** Every request that has started and not yet answered, exclusive or not. */
  private readonly active = new Map<number, Job>();
  private running: Job | null = null;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handlers: HandlerTable,
    private readonly state: EngineState,
    private readonly post: (msg: WorkerToHost) => void,
  ) {}

  /** Handles one raw message from the host. */
  receive(raw: unknown): void {
    let msg;
    try {
      msg = parseHostToWorker(raw);
    } catch (e) {
      const id = idOf(raw);
      const text = `bad message: ${errorText(e)}`;
      if (id !== undefined) this.reply(id, 'bad-request', text);
      else this.log('error', text);
      return;
    }
    if (msg.kind === 'cancel') return this.cancel(msg.id);
    const { id } = msg;
    if (this.active.has(id) || this.queue.some((j) => j.request.id === id)) {
      return this.reply(id, 'bad-request', `request id ${id} is already in use`);
    }
    const job: Job = { request: msg, controller: new AbortController() };
    if (!isExclusive(msg.method)) {
      void this.run(job);
      return;
    }
    this.queue.push(job);
    this.pump();
  }

  private cancel(id: number): void {
    const queued = this.queue.findIndex((j) => j.request.id === id);
    if (queued >= 0) {
      const [job] = this.queue.splice(queued, 1);
      this.reply(id, 'cancelled', `${job.request.method} cancelled before it started`);
      return;
    }
    // Unknown ids are requests that already finished: the answer is on its way, nothing to do.
    this.active.get(id)?.controller.abort();
  }

  /** Cancels every queued and running request (the host has gone). */
  cancelAll(): void {
    for (const job of this.queue.splice(0)) this.reply(job.request.id, 'cancelled', `${job.request.method} cancelled before it started`);
    for (const job of this.active.values()) job.controller.abort();
  }

  /** Resolves once no request is running. */
  idle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.running) return;
    const next = this.queue.shift();
    if (!next) return;
    this.running = next;
    void this.run(next).finally(() => {
      this.running = null;
      this.pump();
    });
  }

  private async run(job: Job): Promise<void> {
    const { id, method, params } = job.request;
    const { signal } = job.controller;
    this.active.set(id, job);
    const ctx: HandlerContext<EngineMethod> = {
      id,
      signal,
      state: this.state,
      emit: (event) => {
        if (this.active.get(id) === job) this.post({ kind: 'event', id, event });
      },
      log: (level, message) => this.log(level, message),
      queue: () => ({
        busy: this.running ? { id: this.running.request.id, method: this.running.request.method } : null,
        queued: this.queue.length,
      }),
    };
    const t0 = performance.now();
    try {
      // The table is indexed by the request's own method, so params and handler agree.
      const handler = this.handlers[method] as Handler<EngineMethod>;
      const result = await handler(params as never, ctx);
      this.active.delete(id);
      this.post({ kind: 'response', id, result });
      this.log('debug', `${method}#${id} done in ${Math.round(performance.now() - t0)} ms`);
    } catch (e) {
      this.active.delete(id);
      if (signal.aborted || e instanceof CancelledError) {
        this.reply(id, 'cancelled', errorText(e));
      } else if (e instanceof NotLoadedError) {
        this.reply(id, 'not-loaded', errorText(e));
      } else {
        this.log('error', `${method}#${id} failed: ${e instanceof Error && e.stack ? e.stack : errorText(e)}`);
        this.reply(id, 'failed', errorText(e));
      }
    }
    if (this.active.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private reply(id: number, code: EngineErrorCode, message: string): void {
    this.post({ kind: 'error', id, error: { code, message } });
  }

  private log(level: EngineLogLevel, message: string): void {
    // Handlers log names and paths from requests: each line reaches the host escaped.
    this.post({ kind: 'log', level, message: message.split('\n').map(escapeControls).join('\n') });
  }
}

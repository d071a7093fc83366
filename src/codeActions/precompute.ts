// Answers computed before they are asked for. VS Code asks for code actions whenever the selection
// changes; classifying a 100-token selection takes longer than the 300 ms a code action may take, so
// the classification starts in the background as soon as the selection settles (after a short
// debounce), and picking "Classify with <task>" then finds the answer done or on its way.
//
// Rules: one job runs at a time; a new selection cancels the scheduled jobs and the running one when
// the new selection does not want it too; a job starts only when `canRun` says the engine is idle (a
// background answer never queues behind training or the user's own requests); finished answers are
// kept by key (task, adapter version, model, request text), least-recently-used, bounded in count.
// Pure Node: no vscode, so the latency bench drives the same code.

/**
 * Quiet time after the provider is asked before the background classification starts. VS Code itself
 * waits 250 ms after a selection change before asking for the light bulb's actions, so this only
 * gathers the calls that come together (light bulb and menu) into one job.
 */
export const PRECOMPUTE_DEBOUNCE_MS = 100;

export interface PrecomputeJob<R> {
  /** Everything the answer depends on: equal keys, equal answers. */
  key: string;
  run(signal: AbortSignal): Promise<R>;
}

export interface PrecomputeOptions {
  /** Quiet time after the last schedule() before a job starts. */
  debounceMs: number;
  /** Finished answers kept; default 32. */
  maxEntries?: number;
  /** Asked before each job starts: false skips it (the engine is busy). */
  canRun?: () => Promise<boolean>;
}

interface Running<R> {
  key: string;
  controller: AbortController;
  promise: Promise<R>;
}

export class Precompute<R> {
  private readonly done = new Map<string, R>();
  private running: Running<R> | null = null;
  private wanted: PrecomputeJob<R>[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ticket = 0;
  private pumping = false;
  /** Jobs started, cancelled while running, and skipped because the engine was busy (for tests and logs). */
  readonly counts = { started: 0, finished: 0, cancelled: 0, skippedBusy: 0, failed: 0 };

  constructor(private readonly opts: PrecomputeOptions) {}

  /**
   * Starts a new round (a selection change): returns its ticket. Anything scheduled before is
   * dropped once schedule() is called with this ticket, or at once by cancel().
   */
  begin(): number {
    return ++this.ticket;
  }

  /**
   * The jobs the current selection wants, in order. Ignored when a newer round has begun (its keys
   * were computed later but asked for earlier). The running job goes on only if it is still wanted.
   */
  schedule(ticket: number, jobs: PrecomputeJob<R>[]): void {
    if (ticket !== this.ticket) return;
    this.wanted = jobs.filter((j) => !this.done.has(j.key));
    if (this.running && !jobs.some((j) => j.key === this.running!.key)) this.abortRunning();
    clearTimeout(this.timer);
    if (this.wanted.length === 0) return;
    this.timer = setTimeout(() => void this.pump(ticket), this.opts.debounceMs);
  }

  /** Drops every scheduled job and cancels the running one (no selection any more, or the feature was turned off). */
  cancel(): void {
    this.ticket++;
    this.wanted = [];
    clearTimeout(this.timer);
    this.abortRunning();
  }

  /** A finished answer, if there is one. */
  result(key: string): R | undefined {
    const r = this.done.get(key);
    if (r !== undefined) {
      this.done.delete(key);
      this.done.set(key, r);
    }
    return r;
  }

  /**
   * The answer for `key`: the finished one, else the running job's (if it fails or is cancelled,
   * `compute` runs instead), else `compute`, whose answer is kept too (a running job for another key
   * is cancelled first). `precomputed` says whether it came from the background.
   */
  async answer(key: string, compute: () => Promise<R | undefined>): Promise<{ value: R | undefined; precomputed: boolean }> {
    const hit = this.result(key);
    if (hit !== undefined) return { value: hit, precomputed: true };
    const running = this.running;
    if (running?.key === key) {
      try {
        return { value: await running.promise, precomputed: true };
      } catch {
        // Cancelled or failed in the background: ask in the foreground, where errors are shown.
      }
    } else if (running) {
      // The user asked for something else: the background job must not hold the engine in front of it.
      running.controller.abort();
    }
    const value = await compute();
    if (value !== undefined) this.keep(key, value);
    return { value, precomputed: false };
  }

  /** Whether the background job for `key` is running now. */
  isRunning(key: string): boolean {
    return this.running?.key === key;
  }

  /** Forgets every finished answer (the model or the tasks changed). */
  clear(): void {
    this.done.clear();
  }

  /** Finished answers kept now. */
  get size(): number {
    return this.done.size;
  }

  dispose(): void {
    this.cancel();
    this.done.clear();
  }

  private abortRunning(): void {
    if (!this.running) return;
    this.running.controller.abort();
  }

  /** Runs the wanted jobs one at a time while the round is current. */
  private async pump(ticket: number): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (ticket === this.ticket && this.wanted.length > 0) {
        const job = this.wanted.shift()!;
        if (this.done.has(job.key)) continue;
        if (this.opts.canRun && !(await this.opts.canRun())) {
          this.counts.skippedBusy++;
          continue;
        }
        if (ticket !== this.ticket) break;
        const controller = new AbortController();
        const promise = job.run(controller.signal);
        const running: Running<R> = { key: job.key, controller, promise };
        this.running = running;
        this.counts.started++;
        try {
          const value = await promise;
          this.keep(job.key, value);
          this.counts.finished++;
        } catch {
          if (controller.signal.aborted) this.counts.cancelled++;
          else this.counts.failed++;
        } finally {
          if (this.running === running) this.running = null;
        }
      }
    } finally {
      this.pumping = false;
      // A round that began while this one ran its last job starts its own pump.
      if (ticket !== this.ticket && this.wanted.length > 0) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.pump(this.ticket), this.opts.debounceMs);
      }
    }
  }

  private keep(key: string, value: R): void {
    this.done.delete(key);
    this.done.set(key, value);
    while (this.done.size > (this.opts.maxEntries ?? 32)) this.done.delete(this.done.keys().next().value!);
  }
}

// One engine process: dist/worker.js forked by the extension host, the way VS Code forks its own
// helpers (the host's executable run as plain Node through ELECTRON_RUN_AS_NODE; in code-server the
// host already is Node). It is the host's worker all the same: same user, same rights, started and
// ended with the host. This class starts it with its memory limits, passes messages both ways, logs
// what it prints, and reports once how it ended, in words (exitReason.ts).

import { type ChildProcess, fork } from 'node:child_process';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { engineArgs, type HostToWorker } from '../protocol/engine';
import { describeExit } from './exitReason';

/** The slice of vscode.LogOutputChannel the client writes to. */
export interface EngineLogger {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** How an engine process ended. */
export interface EngineExit {
  /** One line for the user, e.g. "the engine was killed (SIGKILL), …". */
  reason: string;
  /** The host ended it (restart, dispose, a request it would not stop); otherwise it died on its own. */
  byHost: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EngineProcessOptions {
  /** Absolute path of the engine bundle (dist/worker.js). */
  script: string;
  threads?: number;
  /** The engine's nice value (ENGINE_PRIORITY for the extension's engine); absent: the host's. */
  priority?: number;
  /** Where the engine keeps converted models between loads (absolute); absent: none. */
  weightCache?: string;
  /** V8 heap limit (--max-old-space-size). */
  heapMB: number;
  /** V8 semi-space size (--max-semi-space-size); null: V8's default. */
  semiSpaceMB: number | null;
  /** Resident-size ceiling the engine's watchdog enforces (null: none). */
  capMB: number | null;
  logger: EngineLogger;
  onMessage(raw: unknown): void;
  /** Called once, after the process has ended and its output has been read. */
  onExit(exit: EngineExit): void;
}

/**
 * The extension's engine runs at a lower priority than the editor (nice 10; below normal on Windows), so
 * that a fine-tune on every core yields the CPU whenever the editor needs it (bench/editorLag.ts).
 */
export const ENGINE_PRIORITY = 10;

/** stderr lines kept for explaining an exit. */
const TAIL_LINES = 40;
/** Output lines logged per process; a flood past this is counted, not logged. */
const LOGGED_LINES = 500;
/** How long to wait for the output to drain after the process ended before reporting the exit. */
const DRAIN_MS = 1000;

export class EngineProcess {
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private logged = 0;
  private hostReason: string | undefined;
  private done = false;
  /** Resolves once the process has ended and its exit was reported. */
  readonly ended: Promise<void>;

  constructor(private readonly o: EngineProcessOptions) {
    this.child = fork(o.script, engineArgs({ threads: o.threads, priority: o.priority, memoryCapMB: o.capMB ?? undefined, weightCache: o.weightCache }), {
      // Not the host's own flags (an --inspect port would clash): only the heap's sizes.
      execArgv: [`--max-old-space-size=${o.heapMB}`, ...(o.semiSpaceMB === null ? [] : [`--max-semi-space-size=${o.semiSpaceMB}`])],
      // Under Electron the executable is the editor itself; this makes it run as Node (as VS Code's own forks do).
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // The messages that stream (steps, tokens) are small, and JSON costs the host about half of what
      // 'advanced' does for them (bench/engineHost.ts --ipc); no tensor crosses the channel.
      serialization: 'json',
      // Every path it is given is absolute; a core dump, where the system writes one, lands outside the workspace.
      cwd: os.tmpdir(),
    });
    this.lines(this.child.stderr, (l) => {
      this.tail.push(l);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      this.log('warn', l);
    });
    this.lines(this.child.stdout, (l) => this.log('info', l));
    this.child.on('message', (raw: unknown) => this.o.onMessage(raw));
    this.ended = new Promise((resolve) => {
      // 'close' comes after the exit once stdout and stderr are drained, so the last words are in the tail.
      let timer: NodeJS.Timeout | undefined;
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer);
        this.finish(code, signal);
        resolve();
      };
      this.child.once('exit', (code, signal) => {
        timer = setTimeout(() => finish(code, signal), DRAIN_MS);
      });
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => finish(code, signal));
      this.child.once('error', (e) => {
        // Spawning failed (no executable, no memory): there is no process to wait for.
        if (this.child.pid === undefined) {
          this.tail.push(`could not start: ${e.message}`);
          finish(null, null);
        } else {
          this.o.logger.error(`engine: ${e.message}`);
        }
      });
    });
  }

  /** The process id (undefined when it could not be started). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends one message; dropped when the process has gone (its exit then rejects what was waiting on it). */
  send(msg: HostToWorker): void {
    if (this.done || !this.child.connected) return;
    try {
      // A false return only means the channel is backed up: the message is queued all the same.
      this.child.send(msg);
    } catch {
      // closed between the check and the send: the exit is on its way
    }
  }

  /** Ends the process at once; `reason` is what its exit will report. Resolves once it has ended. */
  kill(reason: string): Promise<void> {
    this.hostReason ??= reason;
    if (!this.done) this.child.kill('SIGKILL');
    return this.ended;
  }

  /**
   * Closes the channel, which tells the engine to cancel what it runs and exit; kills it if it has
   * not within `graceMs`. Resolves once it has ended.
   */
  async close(reason: string, graceMs: number): Promise<void> {
    this.hostReason ??= reason;
    if (this.done) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.ended;
    clearTimeout(timer);
  }

  private finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.done) return;
    this.done = true;
    const byHost = this.hostReason !== undefined;
    const reason = this.hostReason ?? describeExit({ code, signal, stderr: this.tail, heapMB: this.o.heapMB });
    this.o.onExit({ reason, byHost, code, signal });
  }

  private log(level: 'info' | 'warn', line: string): void {
    if (++this.logged <= LOGGED_LINES) this.o.logger[level](`engine ${level === 'warn' ? 'stderr' : 'stdout'}: ${line}`);
    else if (this.logged === LOGGED_LINES + 1) this.o.logger.warn(`engine: more output than ${LOGGED_LINES} lines; the rest is not logged`);
  }

  /** Calls `each` per line of `stream`, without holding more than one partial line. */
  private lines(stream: Readable | null, each: (line: string) => void): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    let partial = '';
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split(/\r?\n/);
      partial = parts.pop() ?? '';
      // A line without an end (a flood on one line) is cut rather than held whole.
      if (partial.length > 8192) {
        parts.push(partial.slice(0, 8192));
        partial = '';
      }
      for (const p of parts) if (p.trim()) each(p);
    });
    stream.on('end', () => {
      if (partial.trim()) each(partial);
    });
  }
}

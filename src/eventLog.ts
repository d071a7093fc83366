// A machine-readable trail of what the extension did, for end-to-end tests: when the environment
// variable GEMMA_TUNE_EVENTS_FILE names a file, each event is appended to it as one JSON line
// ({"t": ms since epoch, "pid": the writing process, "event": name, ...data}); the pid tells a window's
// extension host from the one a reload is shutting down. Unset (every real install), it does nothing.

import { appendFileSync } from 'node:fs';

export const EVENTS_FILE_ENV = 'GEMMA_TUNE_EVENTS_FILE';

export class EventLog {
  constructor(private readonly file: string | undefined = process.env[EVENTS_FILE_ENV]) {}

  /** Appends one event; a failing write is reported once to `onError` and never thrown. */
  write(event: string, data: Record<string, unknown> = {}, onError?: (message: string) => void): void {
    if (!this.file) return;
    try {
      appendFileSync(this.file, `${JSON.stringify({ t: Date.now(), pid: process.pid, event, ...data })}\n`);
    } catch (e) {
      onError?.(`cannot write the events file ${this.file}: ${(e as Error).message}`);
    }
  }
}

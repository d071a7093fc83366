// `ping`: a round trip through the queue that needs no model; with a delay it stays running,
// emits ticks and stops when cancelled.

import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, type Handler } from './context';

/** Waits `delayMs`, emitting `ticks` evenly spaced events, then reports the time it took. */
export const ping: Handler<'ping'> = async ({ delayMs = 0, ticks = 0 }, ctx) => {
  const t0 = performance.now();
  const slices = Math.max(ticks, 1);
  for (let n = 1; n <= slices; n++) {
    try {
      await sleep(delayMs / slices, undefined, { signal: ctx.signal });
    } catch {
      throw new CancelledError(`ping cancelled after ${Math.round(performance.now() - t0)} ms`);
    }
    if (n <= ticks) ctx.emit({ type: 'tick', n });
  }
  return { elapsedMs: performance.now() - t0, pid: process.pid };
};

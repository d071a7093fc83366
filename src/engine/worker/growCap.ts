// The engine's memory cap grows to what the work starting now needs (memoryCap.ts says how much).

import { grownCapMB } from '../memoryCap';
import type { EngineMethod } from '../../protocol/engine';
import type { HandlerContext } from './context';

/** Raises the watchdog's cap to `needMB` for `what` (within the host's ceiling); nothing where no watchdog runs. */
export function growCap<M extends EngineMethod>(ctx: HandlerContext<M>, needMB: number, what: string): void {
  const { watchdog, hostCapMB } = ctx.state;
  if (!watchdog) return;
  const cap = grownCapMB(watchdog.capMB, needMB, hostCapMB);
  if (cap !== watchdog.capMB) ctx.log('info', `memory cap ${cap} MB for ${what}`);
  watchdog.setCap(cap);
}

// The fuzzer's child process: runs the inputs the parent sends (one at a time, over the IPC channel) and
// answers with the judged outcome and its memory. Everything that can crash runs here: a native abort,
// a V8 fatal error or an out-of-memory kill ends this process only, and the parent counts it and starts
// another.

import type { InputInfo, Target } from './inputs';
import { runInput, type ChildContext } from './runners';

export interface RunMessage {
  kind: 'run';
  target: Target;
  dir: string;
  info: InputInfo;
}

export interface ResultMessage {
  kind: 'result';
  outcome: string;
  detail: string;
  /** The child's peak resident memory so far, in MiB. */
  rssMB: number;
}

const send = (m: ResultMessage | { kind: 'ready' }) => process.send!(m);
const ctx: ChildContext = { base: null, corpusModel: process.argv[2], workerPath: process.argv[3], engine: null, client: null };

// A rejection nobody handled is the input's fault: reported as unclear with the input that caused it.
let stray: string | null = null;
process.on('unhandledRejection', (e) => {
  stray = `unhandled rejection: ${e instanceof Error ? e.message : String(e)}`;
});

process.on('message', (m: RunMessage) => {
  stray = null;
  void runInput(m.target, m.dir, m.info, ctx).then((j) => {
    const judged = stray !== null && (j.outcome === 'ran' || j.outcome === 'error') ? { outcome: 'unclear', detail: stray } : j;
    // The peak since the child started (kB): a spike between the parent's samples is seen too.
    send({ kind: 'result', outcome: judged.outcome, detail: judged.detail, rssMB: Math.round(process.resourceUsage().maxRSS / 1024) });
  });
});
send({ kind: 'ready' });

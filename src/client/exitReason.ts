// Why the engine process ended, in words a user can act on: its exit code or signal, and what it
// said last on stderr (a V8 fatal error, a C++ abort, the watchdog's own line). Pure: the host's
// EngineProcess feeds it what it saw.

import { ENGINE_FATAL_PREFIX } from '../protocol/engine';

/** How an engine process ended, as the host saw it. */
export interface ExitFacts {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Its last stderr lines, oldest first. */
  stderr: readonly string[];
  /** The V8 heap limit it was started with, in MB. */
  heapMB?: number;
}

const SIGNALS: Partial<Record<NodeJS.Signals, string>> = {
  SIGKILL: 'was killed (SIGKILL), by the system when memory ran out or by another process',
  SIGABRT: 'aborted (SIGABRT)',
  SIGSEGV: 'crashed (segmentation fault, SIGSEGV)',
  // The engine maps the model file (the native LM head reads the embedding table in place): a file cut
  // short or rewritten in place while loaded ends it this way.
  SIGBUS: 'crashed (bus error, SIGBUS: a file it had mapped, such as the model file, was cut short while in use)',
  SIGILL: 'crashed (illegal instruction, SIGILL)',
  SIGFPE: 'crashed (arithmetic fault, SIGFPE)',
  SIGTERM: 'was terminated (SIGTERM)',
  SIGINT: 'was interrupted (SIGINT)',
  SIGHUP: 'lost its terminal (SIGHUP)',
};

/** Windows ends a crashed process with an NTSTATUS code instead of a signal. */
const WINDOWS_CODES: Record<number, string> = {
  0xc0000005: 'crashed (access violation)',
  0xc0000409: 'aborted (fail-fast, 0xC0000409)',
  0xc00000fd: 'crashed (stack overflow)',
  0xc0000017: 'ran out of memory (0xC0000017)',
};

const MAX_DETAIL = 240;

/** One line: what happened to the engine, e.g. "the engine ran out of JavaScript heap (limit 4096 MB)". */
export function describeExit(f: ExitFacts): string {
  const own = lastLine(f.stderr, (l) => l.startsWith(ENGINE_FATAL_PREFIX));
  if (own) return clean(own.slice(ENGINE_FATAL_PREFIX.length));
  const v8 = lastLine(f.stderr, (l) => /^FATAL ERROR:|^# Fatal (error|JavaScript|process out of memory)/.test(l));
  // "invalid table size … heap out of memory" is V8 refusing an absurd size, not a heap that filled up.
  if (v8 && !/invalid/i.test(v8) && /heap out of memory|Reached heap limit|process out of memory/i.test(v8)) {
    return `the engine ran out of JavaScript heap memory${f.heapMB ? ` (its limit is ${f.heapMB} MB)` : ''}`;
  }
  if (v8) return `the engine hit a V8 fatal error: ${clean(v8.replace(/^#\s*|^FATAL ERROR:\s*/, ''))}`;
  const how = f.signal ? (SIGNALS[f.signal] ?? `was ended by ${f.signal}`) : f.code !== null ? codeText(f.code) : 'ended';
  const cpp = cppAbort(f.stderr);
  const detail = cpp ?? (f.signal === 'SIGKILL' ? undefined : lastLine(f.stderr, (l) => /error|abort|fail|fatal|what\(\)/i.test(l)));
  return detail ? `the engine ${how}: ${clean(detail)}` : `the engine ${how}`;
}

function codeText(code: number): string {
  const unsigned = code >>> 0;
  if (WINDOWS_CODES[unsigned]) return WINDOWS_CODES[unsigned];
  // A shell or wrapper in between reports a signal as 128 + its number.
  if (code === 134) return 'aborted (exit code 134, SIGABRT)';
  if (code === 137) return 'was killed (exit code 137, SIGKILL), by the system when memory ran out or by another process';
  if (code === 0) return 'exited although nothing asked it to (exit code 0)';
  return unsigned > 0xffff ? `exited with code 0x${unsigned.toString(16).toUpperCase()}` : `exited with code ${code}`;
}

/** An uncaught C++ exception: "terminate called after throwing an instance of 'X'" and its what(). */
function cppAbort(lines: readonly string[]): string | undefined {
  let i = lines.length - 1;
  while (i >= 0 && !lines[i].startsWith('terminate called')) i--;
  if (i < 0) return undefined;
  const what = lines[i + 1]?.trim().startsWith('what()') ? ` ${lines[i + 1].trim()}` : '';
  return `${lines[i].trim()}${what}`;
}

function lastLine(lines: readonly string[], test: (l: string) => boolean): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) if (test(lines[i].trim())) return lines[i].trim();
  return undefined;
}

/** Printable, one line, short: stderr may carry anything (escape sequences from a file's strings). */
export function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  const printable = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).trim();
  return printable.length > MAX_DETAIL ? `${printable.slice(0, MAX_DETAIL - 1)}…` : printable;
}

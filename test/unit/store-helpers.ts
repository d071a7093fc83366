// Shared set-up of the cross-process store tests: the helper process (store-child.ts, bundled once per
// test file and spawned), reading its acknowledgements, and adapters whose every value tells which
// generation they are, so a test can say whether the adapter on disk is whole, old or new, and finite.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { initLora } from '../../src/engine/train/lora';
import { readPeftParams } from '../../src/engine/train/peftParams';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { buildBundle } from './worker-helpers';

/** Bundles store-child.ts for the test file `name`; returns the bundle's path. */
export function buildChild(name: string): Promise<string> {
  return buildBundle(name, 'test/unit/store-child.ts', 'store-child.js');
}

/** A spawned helper process and the lines it printed so far. */
export interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Resolves when a printed line matches `re` (rejects when the process exits first). */
  waitFor(re: RegExp): Promise<string>;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
}

/** Starts `node script ...args` and collects its stdout lines. */
export function startChild(script: string, args: string[]): Child {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  let partial = '';
  const waiters: { re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const w of waiters.filter((w) => w.re.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the helper exited (${code ?? signal}) before printing ${w.re}: ${err}`));
    resolve(code ?? signal ?? -1);
  }));
  return {
    proc, lines, exited, stderr: () => err,
    waitFor: (re) => {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ re, resolve, reject }));
    },
  };
}

/** SIGKILLs a helper and waits until it is gone. */
export async function kill(child: Child): Promise<void> {
  child.proc.kill('SIGKILL');
  await child.exited;
}

/** Writes into `dir` a tiny PEFT adapter (rank 2 on q and v of the tiny config) whose every value is `g`. */
export function adapterOfGeneration(dir: string, g: number): void {
  const p = initLora(GEMMA3_TINY, 2, 4, ['q', 'v'], 1);
  for (const m of p.modules) {
    m.a.fill(g);
    m.b.fill(g);
  }
  writePeftAdapter(dir, p, { baseModel: null, metadata: { step: String(g) } });
}

/** Loads the adapter in `dir` with the engine's PEFT reader and checks that every value is finite; returns the values. */
export function loadFiniteAdapter(dir: string): Float32Array[] {
  const p = readPeftParams(dir, GEMMA3_TINY);
  const tensors = p.modules.flatMap((m) => [m.a, m.b]);
  for (const [i, t] of tensors.entries()) {
    const bad = t.findIndex((x) => !Number.isFinite(x));
    assert.equal(bad, -1, `${dir}: tensor ${i} holds ${t[bad]} at ${bad}`);
  }
  return tensors;
}

/**
 * Loads the adapter in `dir` (finite, as loadFiniteAdapter checks), checks that all its values are one
 * generation's (a whole adapter, not two mixed), and returns that generation.
 */
export function adapterGeneration(dir: string): number {
  const values = new Set<number>();
  for (const t of loadFiniteAdapter(dir)) for (const x of t) values.add(x);
  assert.equal(values.size, 1, `${dir}: values of several generations: ${[...values].join(', ')}`);
  return [...values][0];
}

/** Names in `dir` (empty when it does not exist). */
export function namesIn(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** The inputs of every example line in a task's examples.jsonl (parsed as JSON, line by line). */
export function inputsOnDisk(taskDir: string): string[] {
  return fs.readFileSync(path.join(taskDir, 'examples.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => (JSON.parse(l) as { input: string }).input);
}

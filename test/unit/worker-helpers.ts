// Shared set-up of the tests that run the real engine worker: the worker bundle, built from
// src/engine/worker.ts with esbuild as `npm run build` does, and the EngineError a request rejects with.
import assert from 'node:assert/strict';
import path from 'node:path';
import { build } from 'esbuild';
import { EngineClient, EngineError } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';

/** The repository root. */
export const repoRoot = path.resolve(__dirname, '../..');

/**
 * Bundles the engine worker to `.cache/test-<name>/worker.js` and returns that path. One folder per test
 * file, because node --test runs files at once; inside the repository, so that the bundle's
 * require('onnxruntime-node') resolves from its node_modules.
 */
export async function buildWorker(name: string): Promise<string> {
  return buildBundle(name, 'src/engine/worker.ts', 'worker.js');
}

/** Bundles `entry` (relative to the repository) to `.cache/test-<name>/<file>` as buildWorker does; returns its path. */
export async function buildBundle(name: string, entry: string, file: string): Promise<string> {
  const outfile = path.join(repoRoot, '.cache', `test-${name}`, file);
  await build({
    entryPoints: [path.join(repoRoot, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['onnxruntime-node'],
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * A one-thread engine on a worker built for `name`, over a tiny random Q4_0 model written to `modelFile`
 * (seed 2), and the engine's debug log lines (the prefix-cache tests read its hit/miss lines).
 */
export async function tinyModelEngine(name: string, modelFile: string): Promise<{ engine: EngineClient; logs: string[] }> {
  const workerPath = await buildWorker(name);
  writeRandomGguf(modelFile, GEMMA3_TINY, { seed: 2, dtype: 'q4_0' });
  const logs: string[] = [];
  const quiet = (): void => undefined;
  const engine = new EngineClient({ workerPath, threads: 1, logger: { trace: quiet, debug: (s) => logs.push(s), info: quiet, warn: quiet, error: quiet } });
  return { engine, logs };
}

/** The EngineError that `p` rejects with; fails the test if it resolves or rejects with anything else. */
export async function engineRejection(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof EngineError, `expected EngineError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the request to reject');
}

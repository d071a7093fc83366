// Shared set-up of the generate-* tests: a tiny random-weight model written to a temp folder (real
// files, real runtime), opened in f32 so results can be compared exactly with a full forward.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';
import { openModel, type OpenModel } from '../../src/engine/generate/openModel';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';

/** Writes a random HF model folder (with its synthetic tokenizer.json) and returns its path. */
export function writeTinyModel(seed = 1, cfg: GemmaConfig = GEMMA3_TINY): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-test-'));
  writeRandomHf(dir, cfg, { seed, dtype: 'f32' });
  return dir;
}

/** A tiny f32 model, opened. */
export async function openTiny(seed = 1, cfg: GemmaConfig = GEMMA3_TINY): Promise<OpenModel & { dir: string }> {
  const dir = writeTinyModel(seed, cfg);
  return { ...(await openModel(dir, { precision: 'f32', threads: 1 })), dir };
}

/** Logits of the last position of `ids` from a fresh cache: the no-cache reference. */
export async function lastLogits(rt: GemmaRuntime, ids: number[]): Promise<Float32Array> {
  const c = rt.newCache();
  try {
    return await rt.step(c, ids, { logits: 'last' });
  } finally {
    c.dispose();
  }
}

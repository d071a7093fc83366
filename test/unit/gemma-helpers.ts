// Shared by the gemma-*.test.ts files: how to read the HF fixtures' references, and a
// fixture's model on the runtime.
import * as path from 'node:path';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';
import { loadModel } from '../../src/engine/model/load';
import { readSafetensorsHeader, readSafetensorsBytes, readSafetensorsF32 } from '../../src/engine/model/safetensors';
import type { ModelWeights } from '../../src/engine/model/weights';
import { hfFixture } from './shared-dir';

export interface Reference {
  ids: Int32Array;
  idsShape: number[];
  logits: Float32Array;
  greedyIds: Int32Array;
  logitsFull: Float32Array;
  hidden: Float32Array;
  hiddenShape: number[];
}

/** reference.safetensors of a fixture folder. */
export function readRef(dir: string): Reference {
  const st = readSafetensorsHeader(path.join(dir, 'reference.safetensors'));
  const i32 = (n: string) => { const b = readSafetensorsBytes(st, n); return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
  return {
    ids: i32('input_ids'), idsShape: st.entries.get('input_ids')!.shape,
    logits: readSafetensorsF32(st, 'logits'),
    greedyIds: i32('greedy_ids'),
    logitsFull: readSafetensorsF32(st, 'logits_full'),
    hidden: readSafetensorsF32(st, 'hidden_states'), hiddenShape: st.entries.get('hidden_states')!.shape,
  };
}

/** The f32 weights of fixture `name` (e.g. 'tiny') on a fresh one-thread runtime; dispose it when done. */
export async function fixtureRuntime(name: string): Promise<{ dir: string; weights: ModelWeights; rt: GemmaRuntime }> {
  const dir = hfFixture(name);
  const { weights } = loadModel(dir, { precision: 'f32' });
  return { dir, weights, rt: await createGemmaRuntime(weights, { precision: 'f32', threads: 1 }) };
}

/** max |a − b| (Infinity when lengths differ or a value is NaN). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

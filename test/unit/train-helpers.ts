// Shared set-up of the training and autodiff tests: random f32 weights built in memory, and every tensor
// of a written adapter or checkpoint to compare runs by.
import type { GemmaConfig } from '../../src/engine/model/config';
import { readSafetensorsF32, readSafetensorsHeader } from '../../src/engine/model/safetensors';
import { expectedShapes, isNormWeight, type ModelWeights } from '../../src/engine/model/weights';
import { Rng } from '../../src/engine/rng';
import { maxAbsDiff } from './gemma-helpers';

/**
 * f32 weights of `cfg` drawn from Rng(seed) in expectedShapes order: norm multipliers 1 + 0.1·N(0,1),
 * the embedding `embedding`·N(0,1), every other matrix `matrix`·N(0,1).
 */
export function randomF32Weights(cfg: GemmaConfig, seed: number, std: { embedding: number; matrix: number }): ModelWeights {
  const rng = new Rng(seed);
  const weights: ModelWeights['weights'] = new Map();
  for (const [name, shape] of expectedShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const s = name.includes('embed') ? std.embedding : std.matrix;
    const data = Float32Array.from({ length: n }, () => (isNormWeight(name) ? 1 + 0.1 * rng.normal() : s * rng.normal()));
    weights.set(name, { shape, value: { type: 'f32', data } });
  }
  return { config: cfg, weights };
}

/** Every tensor of a safetensors file (an adapter, a trainer checkpoint) as float32, by name. */
export function safetensorsTensors(file: string): Map<string, Float32Array> {
  const st = readSafetensorsHeader(file);
  return new Map([...st.entries.keys()].map((name) => [name, readSafetensorsF32(st, name)]));
}

/** For each tensor of `a`, max |a − b| against `b`'s tensor of the same name (Infinity where `b` has none). */
export function tensorDiffs(a: Map<string, Float32Array>, b: Map<string, Float32Array>): [string, number][] {
  return [...a].map(([name, x]) => [name, b.has(name) ? maxAbsDiff(x, b.get(name)!) : Infinity]);
}

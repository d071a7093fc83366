// Shared set-up of the training and autodiff tests: random f32 weights built in memory, no files.
import type { GemmaConfig } from '../../src/engine/model/config';
import { expectedShapes, isNormWeight, type ModelWeights } from '../../src/engine/model/weights';
import { Rng } from '../../src/engine/rng';

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

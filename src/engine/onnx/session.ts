// Creating ONNX Runtime sessions from built graphs, with the engine's threading choices, and small
// helpers to make input tensors. Only the worker and the CLI import this (it loads the native addon).

import * as ort from 'onnxruntime-node';
import type { BuiltModel } from './graph';

export type OptLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionConfig {
  /** intra-op threads; default 2. */
  threads?: number;
  /** Graph optimisation level; 'basic' builds large hand-made graphs ~3× faster than 'all'. */
  optimization?: OptLevel;
}

/** An InferenceSession over a built model; the external weight buffers are handed over, not copied here. */
export async function createSession(built: BuiltModel, cfg: SessionConfig = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(built.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: cfg.threads ?? 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: cfg.optimization ?? 'basic',
    externalData: built.externalData,
    logSeverityLevel: 3,
    // Spinning threads would burn the shared CPU between the tiny runs of a decode loop.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
}

/** A float32 tensor over `data` (no copy). */
export function f32Tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** An int64 tensor from plain numbers. */
export function i64Tensor(values: readonly number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
}

export { ort };

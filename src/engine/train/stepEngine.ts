// Which StepEngine a training run gets. Native code (nativeEngine.ts) for 4-bit weights on the CPU where its
// binary runs here: on the 270M shape it takes less time and less memory per step than the ONNX Runtime step
// graph (bench/compare-pytorch.sh, bench/train.ts --engine). Everything else (float weights, WebGPU, a CPU
// without AVX2, no binary) gets the ONNX Runtime step graph (ortEngine.ts), which computes the same.

import type { ModelWeights } from '../model/weights';
import { asWeightSource, type WeightSource } from '../model/weightSource';
import { createOrtEngine, type OrtEngineOptions } from './ortEngine';
import { NativeStepEngine } from './nativeEngine';
import type { StepEngine } from './trainer';

/** 'auto': native where it can run, else ONNX Runtime; the others insist (comparisons, tests). */
export type EngineChoice = 'auto' | 'native' | 'onnx';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'native', 'onnx'];

/** A step engine a run owns: it lets the engine's threads and arrays go when done. */
export interface OwnedStepEngine extends StepEngine {
  dispose(): Promise<void>;
}

export interface StepEngineOptions extends OrtEngineOptions {
  engine?: EngineChoice;
}

/** The run's step engine, which kind it is, and (for ONNX Runtime under 'auto') why native code was not used. */
export async function createStepEngine(weights: ModelWeights | WeightSource, opts: StepEngineOptions): Promise<{ engine: OwnedStepEngine; kind: 'native' | 'onnx'; why?: string }> {
  const choice = opts.engine ?? 'auto';
  let why: string | undefined;
  if (choice !== 'onnx') {
    const level = opts.accuracyLevel ?? 4;
    if (opts.precision !== 'q4') why = 'native training needs 4-bit weights';
    else if ((opts.device ?? 'cpu') !== 'cpu') why = `native training runs on the CPU, not ${opts.device}`;
    else if (opts.headBits === 4) why = 'native training reads the head as stored';
    else {
      const native = NativeStepEngine.create(asWeightSource(weights), { rank: opts.rank, alpha: opts.alpha, targets: opts.targets, threads: opts.threads ?? 2, level });
      if (!('reason' in native)) return { engine: native, kind: 'native' };
      why = native.reason;
    }
    if (choice === 'native') throw new Error(`native training is not available here: ${why}`);
  }
  return { engine: await createOrtEngine(weights, opts), kind: 'onnx', why };
}

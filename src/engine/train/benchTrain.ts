// The training benchmark behind `gemma-tune bench --train` and bench/train.ts: a whole fine-tune of
// synthetic examples (default 20 of 120 tokens, the last 40 of each the completion) for 3 epochs with a
// 20% validation split, on the given model, reporting training tokens/s (forward + backward + update),
// the fine-tune's wall time and the process's peak RSS.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openWeights } from '../model/load';
import type { Precision } from '../gemma/runtime';
import type { Device } from '../onnx/device';
import { createStepEngine, type EngineChoice } from './stepEngine';
import { ALL_TARGETS, initLora } from './lora';
import { Rng } from '../rng';
import { splitValidation } from './split';
import { IGNORE, type TokenizedExample } from './tokenize';
import { train, type TrainEvent } from './trainer';
import type { PhaseClock } from './phaseClock';

export interface TrainBenchOptions {
  precision?: Precision;
  threads?: number;
  /** Where the step session runs; default the CPU. */
  device?: Device;
  examples?: number;
  tokens?: number;
  completion?: number;
  epochs?: number;
  /** Examples per optimizer step (default 4), run as micro-batches of `microBatch` (default 2) with accumulation. */
  batch?: number;
  microBatch?: number;
  rank?: number;
  /** The step session's pool threads spin between kernels (OrtEngineOptions.spinning); default off. */
  spinning?: boolean;
  onEvent?: (e: TrainEvent) => void;
  /** Times the fine-tune's phases (bench/train.ts --phases). */
  phases?: PhaseClock;
  /** Which step engine (stepEngine.ts); default 'auto'. */
  engine?: EngineChoice;
}

export interface TrainBenchResult {
  train_tok_s: number;
  finetune_s: number;
  peak_rss_mb: number;
  /** Model load, graph build and session creation, before the fine-tune starts. */
  setup_s: number;
  /** CPU seconds of the fine-tune (all threads): on a loaded machine, cpu_s / threads estimates the idle wall time. */
  finetune_cpu_s: number;
  steps: number;
  step_s_mean: number;
  /** The step engine that ran. */
  engine: 'native' | 'onnx';
}

/** Synthetic pre-tokenised examples: BOS then random ids, the last `completion` tokens labelled. */
export function syntheticExamples(n: number, tokens: number, completion: number, vocab: number, seed: number): TokenizedExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const ids = [2, ...Array.from({ length: tokens - 1 }, () => 3 + rng.int(vocab - 3))];
    return { id: `s${i}`, inputIds: ids, labels: ids.map((t, j) => (j >= tokens - completion ? t : IGNORE)) };
  });
}

/** Runs the benchmark fine-tune on a model file and returns its numbers. */
export async function benchTrain(modelPath: string, o: TrainBenchOptions = {}): Promise<TrainBenchResult> {
  const t0 = performance.now();
  const precision = o.precision ?? 'q4';
  // Streamed from the file into the session's data file: the weights are never held in JS.
  const source = openWeights(modelPath, { precision }).source;
  const cfg = source.config;
  const rank = o.rank ?? 16;
  const params = initLora(cfg, rank, 2 * rank, ALL_TARGETS, 1);
  const { engine, kind } = await createStepEngine(source, { precision, rank, alpha: 2 * rank, targets: ALL_TARGETS, threads: o.threads ?? 2, device: o.device, spinning: o.spinning, engine: o.engine });
  const setup = (performance.now() - t0) / 1000;
  const data = splitValidation(syntheticExamples(o.examples ?? 20, o.tokens ?? 120, o.completion ?? 40, cfg.vocabSize, 7), { fraction: 0.2, seed: 1 });
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-bench-train-'));
  // Two examples per run and accumulation to four per step: the same updates as batches of four, with
  // half the [labels × vocabulary] logits alive at once (the step's largest tensor).
  const micro = o.microBatch ?? 2;
  let stepTokens = 0, stepSeconds = 0, steps = 0;
  try {
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    await train(cfg, engine, data, params, {
      epochs: o.epochs ?? 3, lr: 2e-4, schedule: 'linear', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, batchSize: micro, gradAccum: Math.max(1, Math.round((o.batch ?? 4) / micro)),
      seed: 1, shuffle: true, evalEvery: 0, patience: 0, padId: cfg.padId, outDir: out, phases: o.phases,
      onEvent: (e) => {
        if (e.type === 'step') {
          stepTokens += e.tokens;
          stepSeconds += e.tokens / e.tokensPerSec;
          steps += 1;
        }
        o.onEvent?.(e);
      },
    });
    const finetune = (performance.now() - t1) / 1000;
    const cpu = process.cpuUsage(c1);
    return {
      train_tok_s: stepTokens / stepSeconds,
      finetune_s: finetune,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      setup_s: setup,
      finetune_cpu_s: (cpu.user + cpu.system) / 1e6,
      steps,
      step_s_mean: stepSeconds / steps,
      engine: kind,
    };
  } finally {
    await engine.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  }
}

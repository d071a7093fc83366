// `gemma-tune bench --train`: the training benchmark of issue 4 (a 20-example × 3-epoch fine-tune of
// synthetic 120-token examples with 40 completion tokens, validation on, r16 on all seven projections)
// printing training tokens/s, the fine-tune's wall time and peak RSS (--json: one object). The flags
// below change the workload, e.g. to the PyTorch reference's (bench/compare-pytorch.sh): rank 8, steps
// of 4 × 128 tokens with 32 labelled, the first steps left out of tokens/s as warm-up.

import { numberFlag, required, UsageError, type ParsedArgs } from '../args';
import { benchTrain, type TrainBenchOptions } from '../../engine/train/benchTrain';
import { splitValidation } from '../../engine/train/split';
import { stepsPerEpoch } from '../../engine/train/plan';
import type { TrainEvent } from '../../engine/train/trainer';
import { describeRole, deviceRoles } from '../../engine/onnx/device';
import { deviceFromFlags, threadsFlag } from './modelFlags';
import { ENGINE_CHOICES, type EngineChoice } from '../../engine/train/stepEngine';

/** The value flags only `bench --train` takes. */
export const TRAIN_BENCH_FLAGS = ['examples', 'tokens', 'completion', 'epochs', 'batch', 'micro-batch', 'rank', 'warmup-steps', 'engine'];

/** The workload `bench --train` runs, from its flags. */
export interface TrainBenchWorkload {
  options: TrainBenchOptions & Required<Pick<TrainBenchOptions, 'examples' | 'tokens' | 'completion' | 'epochs' | 'batch' | 'microBatch' | 'rank' | 'threads' | 'precision' | 'engine'>>;
  /** Optimizer steps the fine-tune will take. */
  steps: number;
  /** Leading steps left out of train_tok_s (one-time costs of the first runs). */
  warmupSteps: number;
}

/** Reads and checks the `bench --train` flags (defaults: issue 4's fine-tune); UsageError on bad values. */
export function trainBenchWorkload(flags: ParsedArgs): TrainBenchWorkload {
  const precision = flags.values.get('precision') ?? 'q4';
  if (precision !== 'q4' && precision !== 'f32') throw new UsageError(`--precision must be q4 or f32, got "${precision}"`);
  const examples = numberFlag(flags, 'examples', 20, 1, 100000, true);
  const tokens = numberFlag(flags, 'tokens', 120, 2, 32768, true);
  const completion = numberFlag(flags, 'completion', 40, 1, tokens - 1, true);
  const epochs = numberFlag(flags, 'epochs', 3, 1, 1000, true);
  const batch = numberFlag(flags, 'batch', 4, 1, 4096, true);
  const microBatch = numberFlag(flags, 'micro-batch', Math.min(2, batch), 1, batch, true);
  if (batch % microBatch !== 0) throw new UsageError(`--batch (${batch}) must be a multiple of --micro-batch (${microBatch})`);
  const rank = numberFlag(flags, 'rank', 16, 1, 1024, true);
  const engine = (flags.values.get('engine') ?? 'auto') as EngineChoice;
  if (!ENGINE_CHOICES.includes(engine)) throw new UsageError(`--engine must be ${ENGINE_CHOICES.join(', ')}; got "${engine}"`);
  const threads = threadsFlag(flags);
  // The same split the benchmark makes, to know the step count before the model is loaded.
  const train = splitValidation(Array.from({ length: examples }, (_, i) => ({ id: `s${i}` })), { fraction: 0.2, seed: 1 }).train.length;
  const steps = stepsPerEpoch(train, microBatch, batch / microBatch) * epochs;
  const warmupSteps = numberFlag(flags, 'warmup-steps', 0, 0, Math.max(0, steps - 1), true);
  return { options: { precision, threads, examples, tokens, completion, epochs, batch, microBatch, rank, engine }, steps, warmupSteps };
}

/** The memory a user needs for a run whose peak RSS was `peakMB`: that peak, rounded up to 100 MB. */
export function ramNeededMB(peakMB: number): number {
  return Math.ceil(peakMB / 100) * 100;
}

/** Training tokens/s over the step events after the first `skip`: tokens in the steps / their step time. */
export function tokensPerSecond(steps: Array<Extract<TrainEvent, { type: 'step' }>>, skip: number): number {
  let tokens = 0, seconds = 0;
  for (const e of steps.slice(skip)) {
    tokens += e.tokens;
    seconds += e.tokens / e.tokensPerSec;
  }
  return tokens / seconds;
}

/** Runs the training benchmark for `gemma-tune bench --train`. */
export async function runTrainBench(flags: ParsedArgs, json: boolean): Promise<void> {
  const w = trainBenchWorkload(flags);
  const o = w.options;
  const device = await deviceFromFlags(flags);
  const steps: Array<Extract<TrainEvent, { type: 'step' }>> = [];
  // CPU time at each step event: the difference between the last event and the warm-up's last one is the
  // CPU of exactly the counted steps (validation runs after the last step's event).
  const cpuAt: number[] = [];
  const r = await benchTrain(required(flags, 'model'), {
    ...o,
    device: deviceRoles(device).training,
    onEvent: (e) => {
      if (e.type !== 'step') return;
      steps.push(e);
      const c = process.cpuUsage();
      cpuAt.push((c.user + c.system) / 1e6);
    },
  });
  // With no warm-up these equal benchTrain's own train_tok_s and step_s_mean (the same sums).
  const tokS = tokensPerSecond(steps, w.warmupSteps);
  const timed = steps.length - w.warmupSteps;
  const stepS = steps.slice(w.warmupSteps).reduce((s, e) => s + e.tokens / e.tokensPerSec, 0) / timed;
  const cpuPerStep = w.warmupSteps > 0 ? (cpuAt[cpuAt.length - 1] - cpuAt[w.warmupSteps - 1]) / timed : undefined;
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  if (json) {
    process.stdout.write(JSON.stringify({
      train_tok_s: round(tokS), finetune_s: round(r.finetune_s), peak_rss_mb: round(r.peak_rss_mb), ram_needed_mb: ramNeededMB(r.peak_rss_mb), setup_s: round(r.setup_s),
      finetune_cpu_s: round(r.finetune_cpu_s), steps: r.steps, step_s: round(stepS), warmup_steps: w.warmupSteps,
      ...(cpuPerStep === undefined ? {} : { cpu_s_per_step: round(cpuPerStep) }), device: deviceRoles(device).training, engine: r.engine,
    }) + '\n');
  } else {
    const micro = o.batch / o.microBatch;
    const shape = `${o.batch} × ${o.tokens} tokens${micro > 1 ? ` as ${micro} micro-batches of ${o.microBatch}` : ''}, last ${o.completion} labelled, r${o.rank}`;
    const counted = cpuPerStep !== undefined ? `, steps ${w.warmupSteps + 1}–${steps.length} (first ${w.warmupSteps} as warm-up) using ${cpuPerStep.toFixed(2)} CPU s/step` : '';
    process.stdout.write([
      `device: training on ${describeRole(device, 'training')}, steps on ${r.engine === 'native' ? 'native code' : 'ONNX Runtime'}`,
      `training: ${tokS.toFixed(1)} tokens/s (forward + backward + AdamW, ${r.steps} steps of ${shape}, ${stepS.toFixed(2)} s/step${counted})`,
      `fine-tune: ${o.examples} examples × ${o.epochs} epochs with validation in ${r.finetune_s.toFixed(1)} s (+ ${r.setup_s.toFixed(1)} s to load the model and build the step graph)`,
      `CPU time of the fine-tune: ${r.finetune_cpu_s.toFixed(1)} s (all threads; on a busy machine CPU time / threads estimates the idle wall time)`,
      `peak RSS: ${r.peak_rss_mb.toFixed(0)} MB; RAM needed to fine-tune this model: ${ramNeededMB(r.peak_rss_mb)} MB (the editor's own on top)`,
    ].join('\n') + '\n');
  }
}

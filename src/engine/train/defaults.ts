// The one set of default training settings, used by `gemma-tune train` and by a new task's task.json.
// For 10–20 examples on the 270M (Google's Gemma 3 270M recipes: LoRA r16/alpha 32 on all linear
// layers, lr 5e-5…2e-4, 3–5 epochs): r 16, alpha 32, all seven projections; lr 2e-4, the top of that
// range, since 20 examples give only ~15 optimizer steps; linear decay without warmup (the HF
// Trainer's default); no weight decay (a few steps barely move the weights, and PEFT's recipes use 0);
// batch 4, 3 epochs; clipping at 1.0; 20% held out with early stopping after 2 evaluations without
// improvement, so the best adapter is kept when validation loss turns up. A resumable checkpoint every
// 30 s of training (and at each epoch's end), so a crash loses at most about that much work: on the
// 270M one is a 46 MB file at r16 (LoRA + AdamW moments), about 0.15 s to write and fsync, under 1% of
// the time. Pure: no vscode, no I/O.

import type { ScheduleKind } from './schedule';

export const ALL_LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/** The defaults, named as the trainer and the CLI flags name them. */
export const TRAIN_DEFAULTS = {
  epochs: 3,
  lr: 2e-4,
  schedule: 'linear' as ScheduleKind,
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  rank: 16,
  /** alpha = 2 × rank unless given. */
  alpha: 32,
  targets: ALL_LORA_TARGETS,
  batchSize: 4,
  gradAccum: 1,
  valSplit: 0.2,
  patience: 2,
  minSteps: 100,
  evalEvery: 0,
  /** Seconds of training between resumable checkpoints; 0 = only at epoch ends. */
  checkpointEverySeconds: 30,
  seed: 42,
  threads: 2,
  maxTokens: 1024,
} as const;

// The one set of default training settings, used by `gemma-tune train` and by a new task's task.json,
// for 10–20 examples on Gemma 3 270M. From the published recipes for that model:
//
//   [G1] Google, "Fine-tune Gemma 3 270M for emoji generation" (gemma-cookbook,
//        Demos/Emoji-Gemma-on-Web/resources/Fine_tune_Gemma_3_270M_for_emoji_generation.ipynb):
//        LoRA r 16, alpha 32 on all linear layers, lr 5e-5 constant, 3 epochs, batch 4, evaluated every
//        epoch, on ~2,300 examples: ~1,700 optimizer steps.
//   [G2] Google, "Full model fine-tune using Hugging Face Transformers" (ai.google.dev/gemma/docs/core/
//        huggingface_text_full_finetune): the 270M IT, lr 5e-5 constant, 5 epochs, batch 4, evaluated
//        every epoch; "as few as 10 to 20 examples can be sufficient" to teach a style.
//   [G3] Google, "Fine-tune Gemma using Hugging Face Transformers and QLoRA" (ai.google.dev/gemma/docs/
//        core/huggingface_text_finetune_qlora): r 16 on all linear layers, lr 2e-4, 3 epochs.
//   [U1] Unsloth, "Gemma3_(270M).ipynb" (github.com/unslothai/notebooks): LoRA r 128, alpha 128 on
//        q,k,v,o,gate,up,down, lr 5e-5 linear, batch 4, max_steps 100.
//   [U2] Unsloth, "LoRA Hyperparameters Guide" (unsloth.ai/docs): lr 2e-4 to start LoRA, alpha = r or
//        2r, all seven projections.
//
// So: r 16, alpha 32, all seven projections [G1, U2]; lr 2e-4 [G3, U2] (the 5e-5 of [G1, U1] comes with
// hundreds to thousands of steps, or r 128); linear decay without warmup (the HF Trainer's default); no
// weight decay (PEFT's recipes use 0); batch 4 and 3 epochs [G1, G3]; clipping at 1.0. What a few
// examples lack is steps: 16 examples (13 trained on) at batch 4 make 4 steps an epoch, so 3 epochs
// were 12 steps, where every published 270M recipe runs at least 100 [U1]. So a run takes at least
// `minSteps` = 100 optimizer steps, adding whole epochs (25 for 13 examples; with 100 examples or more
// the 3 epochs reach it by themselves; engine/train/plan.ts). Measured on the demo's ticket task
// (16 examples trained, 4 held out, 12 test tickets) with a random-weight 270M-shape model and Gemma
// 3's tokenizer: 12 steps reached 5/12 right (4/12 before), the defaults here 12/12 (the demo's tiny model:
// 4/12 with 12 steps, 10/12 with these; README, "Training defaults"). Held out: 20% once there are
// 10 examples, evaluated at every epoch's end [G1, G2], keeping the adapter with the lowest validation
// loss. With epochs of 4 steps and 3–4 held-out examples that loss is noisy, so training stops only
// after `patience` = 5 evaluations (20 steps) without a new best: with 2, the measured run above stopped
// at step 24 of 100, before its best (step 48); with 5 it stopped at step 68, keeping step 48. A resumable checkpoint every 30 s of training (and at
// each epoch's end), so a crash loses at most about that much work: on the 270M one is a 46 MB file at
// r16 (LoRA + AdamW moments), about 0.15 s to write and fsync, under 1% of the time. Pure: no vscode,
// no I/O.

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
  patience: 5,
  /** Optimizer steps at least; whole epochs are added to reach it (plan.ts). */
  minSteps: 100,
  evalEvery: 0,
  /** Seconds of training between resumable checkpoints; 0 = only at epoch ends. */
  checkpointEverySeconds: 30,
  seed: 42,
  threads: 2,
  maxTokens: 1024,
} as const;

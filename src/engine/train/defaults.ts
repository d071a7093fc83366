// The training settings of a task, one table (HYPERPARAMETERS below): each one's task.json check, its
// default, its `gemma-tune train` flag, the trainer option it sets and its label in the panel's form. The
// task schema (store/task.ts), the CLI, the worker's and the demo's trainer options, the training job's
// recipe and the form all derive from it, so a new setting is one entry here and its use in the trainer.
// The defaults are for 10–20 examples on Gemma 3 270M's kind of model, from its published recipes:
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

import { arr, type Infer, num, obj, oneOf, optional, type Schema } from '../../common/check';

export const ALL_LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export const SCHEDULES = ['constant', 'linear', 'cosine'] as const;

/** How `gemma-tune train` reads a setting: a number flag within bounds (wider than task.json's for experiments), a choice, or a target list. */
export type CliSpec =
  | { flag: string; kind: 'number'; min: number; max: number; int?: boolean }
  | { flag: string; kind: 'schedule' }
  | { flag: string; kind: 'targets' };

/** One training setting of task.json. */
interface Setting<T, O extends string | null> {
  /** task.json's check of the value. */
  schema: Schema<T>;
  default: T;
  /** Absent in task.json files written before the setting existed; the default applies then. */
  optional?: true;
  /** The trainer's option (TrainOptions) it sets; null for the LoRA shape and the split, which the caller applies. */
  option: O;
  cli: CliSpec;
  /** The panel form's label and help (number settings; schedule and targets have their own controls). */
  form?: { label: string; help: string };
}

const setting = <T, const O extends string | null>(s: Setting<T, O>): Setting<T, O> => s;
/** A setting added after task.json files were written without it. */
const laterSetting = <T, const O extends string | null>(s: Omit<Setting<T, O>, 'optional'>): Setting<T, O> & { optional: true } => ({ ...s, optional: true });
const int = (min: number, max: number) => num({ int: true, min, max });

/**
 * The settings in task.json's order (which fixes the key order of task.json and of the CLI arguments).
 * Defaults: r 16, alpha 32, all seven projections [G1, U2]; lr 2e-4 linear [G3, U2]; batch 4, 3 epochs
 * and at least 100 steps, patience 5 (see above).
 */
export const HYPERPARAMETERS = {
  epochs: setting({ schema: int(1, 100), default: 3, option: 'epochs', cli: { flag: 'epochs', kind: 'number', min: 1, max: 1000, int: true },
    form: { label: 'Epochs', help: 'Passes over the training examples, at least (early stopping keeps the best adapter)' } }),
  learningRate: setting({ schema: num({ min: 1e-7, max: 1e-1 }), default: 2e-4, option: 'lr', cli: { flag: 'lr', kind: 'number', min: 0, max: 10 },
    form: { label: 'Learning rate', help: 'AdamW step size, e.g. 0.0002' } }),
  schedule: setting({ schema: oneOf(...SCHEDULES), default: 'linear' as const, option: 'schedule', cli: { flag: 'schedule', kind: 'schedule' } }),
  warmupSteps: setting({ schema: int(0, 10_000), default: 0, option: 'warmupSteps', cli: { flag: 'warmup', kind: 'number', min: 0, max: 1e7, int: true },
    form: { label: 'Warmup steps', help: 'Steps of linear learning-rate warmup' } }),
  weightDecay: setting({ schema: num({ min: 0, max: 1 }), default: 0, option: 'weightDecay', cli: { flag: 'weight-decay', kind: 'number', min: 0, max: 10 },
    form: { label: 'Weight decay', help: 'AdamW decoupled weight decay' } }),
  /** 0 turns clipping off. */
  maxGradNorm: setting({ schema: num({ min: 0, max: 1000 }), default: 1, option: 'maxGradNorm', cli: { flag: 'max-grad-norm', kind: 'number', min: 0, max: 1e6 },
    form: { label: 'Max grad norm', help: 'Gradient clipping (0 = off)' } }),
  rank: setting({ schema: int(1, 256), default: 16, option: null, cli: { flag: 'rank', kind: 'number', min: 1, max: 1024, int: true },
    form: { label: 'LoRA rank', help: 'Rank r of the adapter matrices' } }),
  /** `gemma-tune train` makes it 2 × rank unless given. */
  alpha: setting({ schema: num({ min: 0.0001, max: 4096 }), default: 32, option: null, cli: { flag: 'alpha', kind: 'number', min: 1e-6, max: 1e6 },
    form: { label: 'LoRA alpha', help: 'Scale: updates are multiplied by alpha / r' } }),
  targets: setting({ schema: arr(oneOf(...ALL_LORA_TARGETS), { max: ALL_LORA_TARGETS.length }), default: [...ALL_LORA_TARGETS], option: null, cli: { flag: 'targets', kind: 'targets' } }),
  batchSize: setting({ schema: int(1, 256), default: 4, option: 'batchSize', cli: { flag: 'batch', kind: 'number', min: 1, max: 4096, int: true },
    form: { label: 'Batch size', help: 'Examples per step' } }),
  gradAccum: setting({ schema: int(1, 256), default: 1, option: 'gradAccum', cli: { flag: 'grad-accum', kind: 'number', min: 1, max: 4096, int: true },
    form: { label: 'Gradient accumulation', help: 'Batches per optimizer step' } }),
  /** Fraction held out when no example is pinned as held out; 0 turns validation off. */
  valSplit: setting({ schema: num({ min: 0, max: 0.9 }), default: 0.2, option: null, cli: { flag: 'val-split', kind: 'number', min: 0, max: 0.9 },
    form: { label: 'Validation fraction', help: 'Fraction held out when no example is marked "Held out" (0 = no validation)' } }),
  seed: setting({ schema: int(0, 2 ** 31 - 1), default: 42, option: 'seed', cli: { flag: 'seed', kind: 'number', min: 0, max: 2 ** 32 - 1, int: true },
    form: { label: 'Seed', help: 'Makes a run repeatable' } }),
  /** Evaluations without improvement before early stopping (0 = never). */
  patience: laterSetting({ schema: int(0, 1000), default: 5, option: 'patience', cli: { flag: 'patience', kind: 'number', min: 0, max: 1000, int: true },
    form: { label: 'Patience', help: 'Evaluations without improvement before training stops early (0 = never)' } }),
  /** Optimizer steps at least: with few examples more epochs run to reach it (0 = epochs alone; plan.ts). */
  minSteps: laterSetting({ schema: int(0, 100_000), default: 100, option: 'minSteps', cli: { flag: 'min-steps', kind: 'number', min: 0, max: 1e7, int: true },
    form: { label: 'Minimum steps', help: 'Optimizer steps at least: with few examples, more epochs run to reach it (0 = the epochs alone)' } }),
};

type Table = typeof HYPERPARAMETERS;
export type HyperparameterKey = keyof Table;
type ValueOf<K extends HyperparameterKey> = Table[K] extends Setting<infer T, string | null> ? T : never;
type Shape = { [K in HyperparameterKey]: Table[K] extends { optional: true } ? Schema<ValueOf<K> | undefined> : Schema<ValueOf<K>> };

export const HYPERPARAMETER_KEYS = Object.keys(HYPERPARAMETERS) as HyperparameterKey[];
const entries = <R>(f: <K extends HyperparameterKey>(key: K, s: Table[K]) => R): R[] => HYPERPARAMETER_KEYS.map((k) => f(k, HYPERPARAMETERS[k]));

/** task.json's `hyperparameters`: one field per setting, the optional ones absent in older files. */
export const hyperparametersSchema = obj(Object.fromEntries(entries((k, s) => [k, (s as { optional?: true }).optional ? optional(s.schema as Schema<unknown>) : s.schema])) as Shape);
export type Hyperparameters = Infer<typeof hyperparametersSchema>;
/** Every setting, the optional ones filled in with their defaults. */
export type FullHyperparameters = Required<Hyperparameters>;

/** The defaults of every setting. */
export const DEFAULT_HYPERPARAMETERS: FullHyperparameters = Object.fromEntries(entries((k, s) => [k, structuredClone(s.default)])) as FullHyperparameters;

/** `h` with the settings an older task.json lacks filled in with their defaults. */
export function fullHyperparameters(h: Hyperparameters): FullHyperparameters {
  return Object.fromEntries(entries((k, s) => [k, structuredClone((h as Record<string, unknown>)[k] ?? s.default)])) as FullHyperparameters;
}

/** The trainer's options a task's settings make (TrainOptions' names). */
export type TrainSettings = { [K in HyperparameterKey as Table[K]['option'] & string]: ValueOf<K> };

/** The trainer's options for these settings (defaults for the ones an older task.json lacks). */
export function trainSettingsOf(h: Hyperparameters): TrainSettings {
  const full = fullHyperparameters(h) as Record<string, unknown>;
  return Object.fromEntries(entries((k, s) => [s.option, full[k]]).filter(([o]) => o !== null)) as TrainSettings;
}

/** The `gemma-tune train` flags that reproduce these settings (a setting an older task.json lacks is left to the CLI's default). */
export function hyperparametersToCliArgs(h: Hyperparameters): string[] {
  return entries((k, s) => {
    const v = (h as Record<string, unknown>)[k];
    if (v === undefined) return [];
    return [`--${s.cli.flag}`, Array.isArray(v) ? v.join(',') : String(v)];
  }).flat();
}

/** The defaults, named as the trainer and the CLI flags name them (plus the run's own settings, which task.json does not hold). */
export const TRAIN_DEFAULTS = {
  ...trainSettingsOf(DEFAULT_HYPERPARAMETERS),
  rank: DEFAULT_HYPERPARAMETERS.rank,
  alpha: DEFAULT_HYPERPARAMETERS.alpha,
  targets: ALL_LORA_TARGETS,
  valSplit: DEFAULT_HYPERPARAMETERS.valSplit,
  evalEvery: 0,
  /** Seconds of training between resumable checkpoints; 0 = only at epoch ends. */
  checkpointEverySeconds: 30,
  maxTokens: 1024,
} as const;

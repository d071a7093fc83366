// The hyperparameter form's fields and their validation, without the DOM (unit-tested on its own).
// Every field is checked on its own against task.json's schema, so the form can mark each bad field
// and say in words what it accepts, instead of stopping at the first problem.

import { TRAIN_DEFAULTS } from '../src/engine/train/defaults';
import { trainingPlan } from '../src/engine/train/plan';
import { validationSize } from '../src/engine/train/split';
import { hasLabel, type LabelState } from '../src/panel/trainReadiness';
import { plural } from '../src/plural';
import { CheckError } from '../src/protocol/check';
import { DEFAULT_HYPERPARAMETERS, type Hyperparameters, hyperparametersSchema, LORA_TARGETS } from '../src/store/task';

export type NumberKey = Exclude<keyof Hyperparameters, 'schedule' | 'targets'>;

export interface FieldSpec {
  key: NumberKey;
  label: string;
  help: string;
}

/** The fields always shown: what a user tunes for 10–20 examples. */
export const BASIC_FIELDS: FieldSpec[] = [
  { key: 'epochs', label: 'Epochs', help: 'Passes over the training examples, at least (early stopping keeps the best adapter)' },
  { key: 'minSteps', label: 'Minimum steps', help: 'Optimizer steps at least: with few examples, more epochs run to reach it (0 = the epochs alone)' },
  { key: 'learningRate', label: 'Learning rate', help: 'AdamW step size, e.g. 0.0002' },
  { key: 'rank', label: 'LoRA rank', help: 'Rank r of the adapter matrices' },
  { key: 'alpha', label: 'LoRA alpha', help: 'Scale: updates are multiplied by alpha / r' },
  { key: 'batchSize', label: 'Batch size', help: 'Examples per step' },
  { key: 'valSplit', label: 'Validation fraction', help: 'Fraction held out when no example is marked "Held out" (0 = no validation)' },
  { key: 'patience', label: 'Patience', help: 'Evaluations without improvement before training stops early (0 = never)' },
];

/** The fields under "Advanced". */
export const ADVANCED_FIELDS: FieldSpec[] = [
  { key: 'warmupSteps', label: 'Warmup steps', help: 'Steps of linear learning-rate warmup' },
  { key: 'weightDecay', label: 'Weight decay', help: 'AdamW decoupled weight decay' },
  { key: 'maxGradNorm', label: 'Max grad norm', help: 'Gradient clipping (0 = off)' },
  { key: 'gradAccum', label: 'Gradient accumulation', help: 'Batches per optimizer step' },
  { key: 'seed', label: 'Seed', help: 'Makes a run repeatable' },
];

const LABELS = new Map([...BASIC_FIELDS, ...ADVANCED_FIELDS].map((f) => [f.key, f.label]));

/** What the form holds: number fields as typed, the schedule and the LoRA targets. */
export interface FormInput {
  numbers: Partial<Record<NumberKey, string>>;
  schedule?: string;
  targets?: string[];
}

export interface FormCheck {
  /** The validated settings; undefined when any field is wrong. */
  value?: Hyperparameters;
  /** Per field (a NumberKey, 'schedule' or 'targets'): what is wrong, in words. */
  errors: Map<string, string>;
}

/** The text a field starts with: the task's value, or the default for one an older task.json lacks. */
export function fieldText(hp: Hyperparameters, key: NumberKey): string {
  return String(hp[key] ?? DEFAULT_HYPERPARAMETERS[key]);
}

/** Reads a typed number strictly: '' and '1e' are not numbers (Number('') would be 0). */
export function parseNumber(text: string): number {
  const t = text.trim();
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) ? Number(t) : Number.NaN;
}

/** Checks the form against task.json's schema, field by field, starting from `base` (the saved settings). */
export function checkForm(base: Hyperparameters, input: FormInput): FormCheck {
  const errors = new Map<string, string>();
  const start = { ...DEFAULT_HYPERPARAMETERS, ...base };
  const merged: Record<string, unknown> = { ...start };
  const tryField = (key: string, value: unknown) => {
    try {
      hyperparametersSchema({ ...start, [key]: value });
      merged[key] = value;
    } catch (e) {
      const problem = e instanceof CheckError ? e.problem : (e as Error).message;
      const text = key in input.numbers && typeof value === 'number' && Number.isNaN(value) ? `"${input.numbers[key as NumberKey]}" is not a number` : problem;
      errors.set(key, `${LABELS.get(key as NumberKey) ?? (key === 'schedule' ? 'Schedule' : key)}: ${text}`);
    }
  };
  for (const [key, text] of Object.entries(input.numbers) as [NumberKey, string][]) tryField(key, parseNumber(text));
  if (input.schedule !== undefined) tryField('schedule', input.schedule);
  if (input.targets !== undefined) {
    if (input.targets.length === 0) errors.set('targets', 'LoRA targets: choose at least one projection');
    else tryField('targets', LORA_TARGETS.filter((t) => input.targets!.includes(t)));
  }
  if (errors.size > 0) return { errors };
  return { value: hyperparametersSchema(merged), errors };
}

/**
 * The run these settings make on these examples, in words, e.g. "16 training examples, 4 held out:
 * 25 epochs of 4 steps, 100 steps; early stopping may end it sooner". '' when nothing can train.
 */
export function planText(examples: readonly LabelState[], hp: Hyperparameters): string {
  const labeled = examples.filter(hasLabel);
  const held = validationSize(labeled.length, labeled.filter((e) => e.heldOut).length, hp.valSplit);
  const train = labeled.length - held;
  if (train <= 0) return '';
  const plan = trainingPlan(train, { epochs: hp.epochs, minSteps: hp.minSteps ?? TRAIN_DEFAULTS.minSteps, batchSize: hp.batchSize, gradAccum: hp.gradAccum });
  const stop = held > 0 && (hp.patience ?? TRAIN_DEFAULTS.patience) > 0 ? '; early stopping may end it sooner' : '';
  return `${plural(train, 'training example')}, ${held} held out: ${plural(plan.epochs, 'epoch')} of ${plural(plan.stepsPerEpoch, 'step')}, ${plural(plan.totalSteps, 'step')}${stop}`;
}

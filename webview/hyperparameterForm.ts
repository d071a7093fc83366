// The hyperparameter form's fields and their validation, without the DOM (unit-tested on its own).
// Every field is checked on its own against task.json's schema, so the form can mark each bad field
// and say in words what it accepts, instead of stopping at the first problem.

import { fullHyperparameters, HYPERPARAMETER_KEYS, HYPERPARAMETERS } from '../src/engine/train/defaults';
import { trainingPlan } from '../src/engine/train/plan';
import { validationSize } from '../src/engine/train/split';
import { hasLabel, type LabelState } from '../src/panel/trainReadiness';
import { plural } from '../src/plural';
import { CheckError } from '../src/common/check';
import { DEFAULT_HYPERPARAMETERS, type Hyperparameters, hyperparametersSchema, LORA_TARGETS } from '../src/store/task';

export type NumberKey = Exclude<keyof Hyperparameters, 'schedule' | 'targets'>;

export interface FieldSpec {
  key: NumberKey;
  label: string;
  help: string;
}

/** The settings always shown, in this order: what a user tunes for 10–20 examples. */
const BASIC_KEYS: NumberKey[] = ['epochs', 'minSteps', 'learningRate', 'rank', 'alpha', 'batchSize', 'valSplit', 'patience'];

/** Every number setting, labelled as the settings table (engine/train/defaults.ts) names it. */
const NUMBER_FIELDS: FieldSpec[] = HYPERPARAMETER_KEYS.flatMap((key) => {
  const form = (HYPERPARAMETERS[key] as { form?: { label: string; help: string } }).form;
  return form ? [{ key: key as NumberKey, ...form }] : [];
});

/** The fields always shown. */
export const BASIC_FIELDS: FieldSpec[] = BASIC_KEYS.map((k) => NUMBER_FIELDS.find((f) => f.key === k)!);

/** The fields under "Advanced": every other number setting, in the table's order. */
export const ADVANCED_FIELDS: FieldSpec[] = NUMBER_FIELDS.filter((f) => !BASIC_KEYS.includes(f.key));

const LABELS = new Map(NUMBER_FIELDS.map((f) => [f.key, f.label]));

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
  const full = fullHyperparameters(hp);
  const plan = trainingPlan(train, { epochs: full.epochs, minSteps: full.minSteps, batchSize: full.batchSize, gradAccum: full.gradAccum });
  const stop = held > 0 && full.patience > 0 ? '; early stopping may end it sooner' : '';
  return `${plural(train, 'training example')}, ${held} held out: ${plural(plan.epochs, 'epoch')} of ${plural(plan.stepsPerEpoch, 'step')}, ${plural(plan.totalSteps, 'step')}${stop}`;
}

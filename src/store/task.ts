// task.json: what a task is (kind, instruction, labels or fields) and how to train it
// (hyperparameters). The schema below is the one runtime check of a task.json read from disk or
// sent by the panel; it uses the project's schema kit (src/common/check.ts) so the store, the
// host and the webview validate with the same few lines and no extra dependency. Pure: no vscode.

import { arr, CheckError, Infer, obj, oneOf, optional, str } from '../common/check';
import { ALL_LORA_TARGETS, DEFAULT_HYPERPARAMETERS, hyperparametersSchema, SCHEDULES } from '../engine/train/defaults';
import { quote } from '../common/quote';
import { baseModelRecord } from './baseModel';

/** classify: pick one label; extract: fill named fields (JSON) or free text; generate: rewrite. */
export const TASK_KINDS = ['classify', 'extract', 'generate'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

/** What each kind is called in the UI. */
export const KIND_TITLES: Record<TaskKind, string> = {
  classify: 'Classify (pick a label)',
  extract: 'Extract (fields or text)',
  generate: 'Rewrite / generate',
};

export const LORA_TARGETS = ALL_LORA_TARGETS;
/** How a selection of several lines becomes examples: one per line, or the whole selection as one. */
export const SELECTION_MODES = ['lines', 'whole'] as const;
export type SelectionMode = (typeof SELECTION_MODES)[number];
export { SCHEDULES };

export const MAX_LABELS = 50;
export const MAX_FIELDS = 30;
export const MAX_NAME_LENGTH = 80;
export const MAX_INSTRUCTION_LENGTH = 4000;
export const MAX_LABEL_LENGTH = 100;

/**
 * Training settings (task.json's `hyperparameters`), one per flag of `gemma-tune train` (issue 4) so a
 * task trains the same from the panel and from the command line. Defined once, with their defaults,
 * flags and trainer options, in engine/train/defaults.ts.
 */
export { DEFAULT_HYPERPARAMETERS, type Hyperparameters, hyperparametersSchema, hyperparametersToCliArgs } from '../engine/train/defaults';

const nameSchema = str({ min: 1, max: MAX_NAME_LENGTH });
const labelSchema = str({ min: 1, max: MAX_LABEL_LENGTH });

export const taskConfigSchema = obj({
  /** Format version of this file. */
  version: oneOf(1),
  name: nameSchema,
  kind: oneOf(...TASK_KINDS),
  instruction: str({ max: MAX_INSTRUCTION_LENGTH }),
  /** classify only: the label set, in display order. */
  labels: optional(arr(labelSchema, { max: MAX_LABELS })),
  /** extract only: the JSON keys of the answer; absent or empty means free text. */
  fields: optional(arr(labelSchema, { max: MAX_FIELDS })),
  hyperparameters: hyperparametersSchema,
  createdAt: str({ max: 40 }),
  /** The answer to "One example per line / The whole selection", asked the first time a selection of several lines is added. */
  selection: optional(oneOf(...SELECTION_MODES)),
  /** The base model the task's adapter was trained on (absent until it is trained); the adapter runs on no other. */
  baseModel: optional(baseModelRecord),
});
export type TaskConfig = Infer<typeof taskConfigSchema>;

/** Checks a parsed task.json (shape and cross-field rules); throws CheckError naming the field. */
export function validateTaskConfig(value: unknown): TaskConfig {
  const t = taskConfigSchema(value);
  if (t.name.trim() === '') throw new CheckError('name', 'must not be blank');
  if (t.kind === 'classify') {
    if (!t.labels || t.labels.length < 2) throw new CheckError('labels', 'a classify task needs at least 2 labels');
    checkDistinct(t.labels, 'labels');
  } else if (t.labels !== undefined) {
    throw new CheckError('labels', `only a classify task has labels (this one is "${t.kind}")`);
  }
  if (t.fields !== undefined) {
    if (t.kind !== 'extract') throw new CheckError('fields', `only an extract task has fields (this one is "${t.kind}")`);
    checkDistinct(t.fields, 'fields');
  }
  if (t.hyperparameters.targets.length === 0) throw new CheckError('hyperparameters.targets', 'needs at least one projection');
  checkDistinct(t.hyperparameters.targets, 'hyperparameters.targets');
  return t;
}

function checkDistinct(items: readonly string[], path: string): void {
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    const key = item.trim();
    if (key === '') throw new CheckError(`${path}[${i}]`, 'must not be blank');
    if (seen.has(key)) throw new CheckError(`${path}[${i}]`, `${quote(item)} appears twice`);
    seen.add(key);
  }
}

/** What a user chooses when creating a task ("New task…" or the panel). */
export interface NewTask {
  name: string;
  kind: TaskKind;
  instruction: string;
  labels?: string[];
  fields?: string[];
}

/** A complete, validated task.json for a new task, with default hyperparameters. */
export function newTaskConfig(input: NewTask, now = new Date()): TaskConfig {
  const clean = (xs: string[] | undefined) => xs?.map((x) => x.trim()).filter((x) => x !== '');
  return validateTaskConfig({
    version: 1,
    name: input.name.trim(),
    kind: input.kind,
    instruction: input.instruction.trim(),
    ...(input.kind === 'classify' ? { labels: clean(input.labels) ?? [] } : {}),
    ...(input.kind === 'extract' && clean(input.fields)?.length ? { fields: clean(input.fields) } : {}),
    hyperparameters: { ...DEFAULT_HYPERPARAMETERS, targets: [...DEFAULT_HYPERPARAMETERS.targets] },
    createdAt: now.toISOString(),
  });
}

/** Splits "a, b, c" (commas or new lines) into trimmed, non-empty, distinct items. */
export function parseList(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim();
    if (item !== '' && !out.includes(item)) out.push(item);
  }
  return out;
}

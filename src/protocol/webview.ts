// The host⇄webview vocabulary of the training panel. Both sides run every message through the
// parse functions below before acting on it: the host because a webview is untrusted content
// (a hostile or buggy page must not make it write files it was not asked to), the webview
// because it must not render half-formed state. Types are inferred from the schemas, so each
// message shape is written once. Pure: no vscode, no DOM.
//
//   webview → host: ready | addExample | updateExample | removeExample | setHyperparameters |
//                   train | resumeTraining | cancelTraining | suggest
//   host → webview: state | ack | training | suggestions | notice | unavailable

import { arr, bool, CheckError, Infer, nullable, num, obj, oneOf, optional, Schema, str } from '../common/check';
import { describeValue, quote } from '../common/quote';
import type { TrainEventMessage } from './train';
import { hyperparametersSchema, MAX_FIELDS, MAX_INSTRUCTION_LENGTH, MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, TASK_KINDS } from '../store/task';

// Limits keep a message's size bounded before anything is allocated for it.
const MAX_INPUT = 100_000;
const MAX_OUTPUT = 20_000;
const MAX_EXAMPLES = 10_000;
const MAX_POINTS = 100_000;
const MAX_MESSAGE = 2_000;

/**
 * What one panel page shows at most: more rows than this make the page slow to draw and to use, and
 * a longer list of unreadable lines helps nobody. The host leaves the rest out and says so (`omitted`).
 */
export const PANEL_MAX_EXAMPLES = 1000;
export const PANEL_MAX_PROBLEMS = 20;

/** An example id as the store makes them; anything path-like is refused here already. */
const exampleId: Schema<string> = (v, path = '') => {
  const id = str({ min: 1, max: 64 })(v, path);
  if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new CheckError(path, `expected an example id (letters, digits, "-", "_"), got ${quote(id, 40)}`);
  return id;
};
/** Sequence number of an edit, echoed in its ack. */
const seq = num({ int: true, min: 0, max: Number.MAX_SAFE_INTEGER });

// ---- webview → host -------------------------------------------------------------------------

const webviewMessages = {
  /** The page loaded (or was restored) and wants the full state. */
  ready: obj({ type: oneOf('ready') }),
  addExample: obj({ type: oneOf('addExample'), seq, input: str({ max: MAX_INPUT }), output: str({ max: MAX_OUTPUT }) }),
  updateExample: obj({
    type: oneOf('updateExample'),
    seq,
    id: exampleId,
    input: optional(str({ max: MAX_INPUT })),
    output: optional(str({ max: MAX_OUTPUT })),
    heldOut: optional(bool),
  }),
  removeExample: obj({ type: oneOf('removeExample'), seq, id: exampleId }),
  setHyperparameters: obj({ type: oneOf('setHyperparameters'), seq, hyperparameters: hyperparametersSchema }),
  train: obj({ type: oneOf('train'), hyperparameters: hyperparametersSchema }),
  /** Continue the task's interrupted run (PanelState.resumable) with the settings it started with. */
  resumeTraining: obj({ type: oneOf('resumeTraining') }),
  cancelTraining: obj({ type: oneOf('cancelTraining') }),
  /** Ask the model for its current answer to these examples (all unlabeled ones when absent). */
  suggest: obj({ type: oneOf('suggest'), ids: optional(arr(exampleId, { max: MAX_EXAMPLES })) }),
} as const;

type WebviewMessages = typeof webviewMessages;
export type WebviewToHost = { [K in keyof WebviewMessages]: Infer<WebviewMessages[K]> }[keyof WebviewMessages];

// ---- host → webview -------------------------------------------------------------------------

const exampleView = obj({
  id: exampleId,
  input: str({ max: MAX_INPUT }),
  output: str({ max: MAX_OUTPUT }),
  heldOut: bool,
});
export type ExampleView = Infer<typeof exampleView>;

const taskView = obj({
  id: str({ min: 1, max: 80 }),
  name: str({ min: 1, max: MAX_NAME_LENGTH }),
  kind: oneOf(...TASK_KINDS),
  instruction: str({ max: MAX_INSTRUCTION_LENGTH }),
  labels: optional(arr(str({ min: 1, max: MAX_LABEL_LENGTH }), { max: MAX_LABELS })),
  fields: optional(arr(str({ min: 1, max: MAX_LABEL_LENGTH }), { max: MAX_FIELDS })),
  hyperparameters: hyperparametersSchema,
  hasAdapter: bool,
});
export type TaskView = Infer<typeof taskView>;

/** What the engine can do now; the panel shows training and suggestions only when true. */
const capabilities = obj({ train: bool, suggest: bool, reason: optional(str({ max: MAX_MESSAGE })) });
export type Capabilities = Infer<typeof capabilities>;

/** A [step, loss] pair. */
const point: Schema<[number, number]> = (v, path = '') => {
  const xy = arr(num(), { max: 2 })(v, path);
  if (xy.length !== 2) throw new CheckError(path, `expected [step, loss], got ${xy.length} numbers`);
  return [xy[0], xy[1]];
};

/** One before/after row on a held-out example. */
const comparisonRow = obj({
  id: exampleId,
  input: str({ max: MAX_INPUT }),
  expected: str({ max: MAX_OUTPUT }),
  before: str({ max: MAX_OUTPUT }),
  after: str({ max: MAX_OUTPUT }),
});
export type ComparisonRow = Infer<typeof comparisonRow>;

/** Training as the panel draws it: status, latest step, the two loss series, the result. */
const trainingView = obj({
  status: oneOf('running', 'done', 'cancelled', 'failed'),
  totalSteps: num({ int: true, min: 0 }),
  step: num({ int: true, min: 0 }),
  epoch: num({ min: 0 }),
  etaSeconds: nullable(num({ min: 0 })),
  /** [step, loss] pairs. */
  trainLoss: arr(point, { max: MAX_POINTS }),
  valLoss: arr(point, { max: MAX_POINTS }),
  bestStep: nullable(num({ int: true, min: 0 })),
  comparison: arr(comparisonRow, { max: MAX_EXAMPLES }),
  message: optional(str({ max: MAX_MESSAGE })),
});
export type TrainingView = Infer<typeof trainingView>;

/** One training event as the host relays it from the engine. */
const trainingEvent = obj({
  kind: oneOf('start', 'step', 'eval', 'done', 'cancelled', 'failed'),
  step: optional(num({ int: true, min: 0 })),
  totalSteps: optional(num({ int: true, min: 0 })),
  epoch: optional(num({ min: 0 })),
  loss: optional(num()),
  valLoss: optional(num()),
  etaSeconds: optional(num({ min: 0 })),
  bestStep: optional(num({ int: true, min: 0 })),
  comparison: optional(arr(comparisonRow, { max: MAX_EXAMPLES })),
  message: optional(str({ max: MAX_MESSAGE })),
});
export type TrainingEvent = Infer<typeof trainingEvent>;

/** The panel's event for an engine training event; `done` is sent later by whoever trains (with the comparison, the message). */
export function trainingEventOf(e: TrainEventMessage): TrainingEvent | undefined {
  switch (e.type) {
    case 'start':
      return { kind: 'start', totalSteps: e.totalSteps, step: e.resumedFromStep, epoch: e.stepsPerEpoch > 0 ? e.resumedFromStep / e.stepsPerEpoch : 0 };
    case 'step':
      return { kind: 'step', step: e.step, epoch: e.epoch, loss: e.loss, etaSeconds: e.etaS };
    case 'eval':
      return { kind: 'eval', step: e.step, valLoss: e.valLoss, bestStep: e.bestStep };
    case 'done':
      return undefined;
  }
}

const suggestion = obj({ id: exampleId, output: str({ max: MAX_OUTPUT }), probability: optional(num({ min: 0, max: 1 })) });
export type Suggestion = Infer<typeof suggestion>;

const panelState = obj({
  task: taskView,
  examples: arr(exampleView, { max: PANEL_MAX_EXAMPLES }),
  /** Lines of examples.jsonl that could not be read ("file:line: why"). */
  problems: arr(str({ max: MAX_MESSAGE }), { max: PANEL_MAX_PROBLEMS }),
  capabilities,
  training: nullable(trainingView),
  suggestions: arr(suggestion, { max: MAX_EXAMPLES }),
  /** A cancelled or cut-off run that can go on from its checkpoint; absent or null when there is none. */
  resumable: optional(nullable(obj({ step: num({ int: true, min: 1 }), totalSteps: num({ int: true, min: 1 }) }))),
  /** What the host left out to keep the page within its limits: examples past the first ones, problems past the first ones. */
  omitted: optional(obj({ examples: num({ int: true, min: 0 }), problems: num({ int: true, min: 0 }) })),
});
export type PanelState = Infer<typeof panelState>;

const hostMessages = {
  /** The whole panel; `restore` is what the page keeps so a reloaded window can reopen it. */
  state: obj({ type: oneOf('state'), state: panelState, restore: obj({ folder: str({ min: 1, max: 4096 }), taskId: str({ min: 1, max: 80 }) }) }),
  /** Answer to an edit: saved, or why not. */
  ack: obj({ type: oneOf('ack'), seq, ok: bool, error: optional(str({ max: MAX_MESSAGE })), example: optional(exampleView) }),
  training: obj({ type: oneOf('training'), event: trainingEvent }),
  suggestions: obj({ type: oneOf('suggestions'), items: arr(suggestion, { max: MAX_EXAMPLES }) }),
  notice: obj({ type: oneOf('notice'), level: oneOf('info', 'warning', 'error'), message: str({ max: MAX_MESSAGE }) }),
  /** The task cannot be shown (a damaged file, say): what is wrong and what to do, in place of the panel. */
  unavailable: obj({ type: oneOf('unavailable'), problem: str({ min: 1, max: MAX_MESSAGE }), remedy: str({ max: MAX_MESSAGE }) }),
} as const;

type HostMessages = typeof hostMessages;
export type HostToWebview = { [K in keyof HostMessages]: Infer<HostMessages[K]> }[keyof HostMessages];

// ---- parsing --------------------------------------------------------------------------------

function dispatch<M extends Record<string, Schema<unknown>>>(table: M, msg: unknown): unknown {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new CheckError('message', 'expected an object');
  const type = (msg as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(table, type)) {
    const shown = typeof type === 'string' ? quote(type, 40) : describeValue(type);
    throw new CheckError('message.type', `unknown message type ${shown} (known: ${Object.keys(table).join(', ')})`);
  }
  return table[type](msg, 'message');
}

/** Checks a message from the webview; throws CheckError naming the bad field. */
export function parseWebviewMessage(msg: unknown): WebviewToHost {
  return dispatch(webviewMessages, msg) as WebviewToHost;
}

/** Checks a message from the host; throws CheckError naming the bad field. */
export function parseHostMessage(msg: unknown): HostToWebview {
  return dispatch(hostMessages, msg) as HostToWebview;
}

/** Checks a PanelState on its own (the webview's saved state is untrusted too). */
export function parsePanelState(value: unknown): PanelState {
  return panelState(value, 'state');
}

/** Folds one training event into the view the panel draws (pure; used by host and webview). */
export function applyTrainingEvent(view: TrainingView | null, ev: TrainingEvent): TrainingView {
  // A resumed run starts at its checkpoint's step: the curve so far is kept up to that step (a run cut
  // off by a crash may have drawn a few steps past its last checkpoint; those are run again).
  const from = ev.kind === 'start' ? (ev.step ?? 0) : 0;
  const base: TrainingView =
    view === null || (ev.kind === 'start' && from === 0)
      ? { status: 'running', totalSteps: 0, step: 0, epoch: 0, etaSeconds: null, trainLoss: [], valLoss: [], bestStep: null, comparison: [] }
      : ev.kind === 'start'
        ? { ...view, status: 'running', step: from, etaSeconds: null, trainLoss: view.trainLoss.filter(([s]) => s <= from), valLoss: view.valLoss.filter(([s]) => s <= from), comparison: [], message: undefined }
        : { ...view, trainLoss: [...view.trainLoss], valLoss: [...view.valLoss] };
  if (ev.totalSteps !== undefined) base.totalSteps = ev.totalSteps;
  if (ev.epoch !== undefined) base.epoch = ev.epoch;
  if (ev.etaSeconds !== undefined) base.etaSeconds = ev.etaSeconds;
  if (ev.step !== undefined) base.step = Math.max(base.step, ev.step);
  switch (ev.kind) {
    case 'step':
      if (ev.step !== undefined && ev.loss !== undefined) base.trainLoss.push([ev.step, ev.loss]);
      break;
    case 'eval':
      if (ev.step !== undefined && ev.valLoss !== undefined) base.valLoss.push([ev.step, ev.valLoss]);
      break;
    case 'done':
    case 'cancelled':
    case 'failed':
      base.status = ev.kind;
      base.etaSeconds = null;
      break;
  }
  if (ev.bestStep !== undefined) base.bestStep = ev.bestStep;
  if (ev.comparison !== undefined) base.comparison = ev.comparison;
  if (ev.message !== undefined) base.message = ev.message;
  return base;
}

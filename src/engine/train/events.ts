// The trainer's events, defined once: these schemas give the trainer's TrainEvent type, check the
// worker's `train` events on the host (protocol/train.ts), and are what `gemma-tune train --json` and
// `train-task --json` print. A field added here and set in trainer.ts reaches every one of them.
// Every number is finite (the trainer reports 0 for a rate it could not measure). Pure: no I/O.

import { CheckError, type Infer, nullable, num, obj, oneOf, optional, type Schema, str } from '../../common/check';
import { describeValue } from '../../common/quote';

const MAX_PATH = 4096;
const count = num({ int: true, min: 0 });
const reason = oneOf('completed', 'early-stop', 'cancelled');

const startEvent = obj({
  type: oneOf('start'), totalSteps: count, stepsPerEpoch: count, trainExamples: count, valExamples: count, trainableParams: count,
  /** The checkpoint's step a resumed run starts from (0: a new run). */
  resumedFromStep: count,
});
const stepEvent = obj({
  type: oneOf('step'), step: count, epoch: num({ min: 0 }),
  /** The step's loss, of its forward pass before its update (as the Hugging Face Trainer logs it). */
  loss: num(), lr: num(), gradNorm: num({ min: 0 }),
  tokens: count, tokensPerSec: num({ min: 0 }), elapsedS: num({ min: 0 }), etaS: num({ min: 0 }),
});
const evalEvent = obj({
  type: oneOf('eval'), step: count, epoch: num({ min: 0 }), valLoss: num(),
  /** A task metric on the held-out examples (exact match unless the caller measures another). */
  metric: optional(obj({ name: str({ max: 64 }), value: num() })),
  improved: oneOf(true, false), bestStep: count, bestValLoss: num(),
});
const doneEvent = obj({
  type: oneOf('done'), reason, step: count, bestStep: count, bestValLoss: nullable(num()), outDir: str({ max: MAX_PATH }), elapsedS: num({ min: 0 }),
});
const byType = { start: startEvent, step: stepEvent, eval: evalEvent, done: doneEvent } as const;
type EventTypes = typeof byType;

/** One trainer event, by its `type`. */
export type TrainEvent = { [K in keyof EventTypes]: Infer<EventTypes[K]> }[keyof EventTypes];

/** Checks one trainer event by its `type`; throws CheckError naming the bad field. */
export const trainEventSchema: Schema<TrainEvent> = (v, path = '') => {
  const type = (v as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(byType, type)) {
    throw new CheckError(`${path}.type`, `expected one of ${Object.keys(byType).join(', ')}, got ${describeValue(type)}`);
  }
  return byType[type as keyof EventTypes](v, path) as TrainEvent;
};

/** How a run ended. */
export type TrainEndReason = Infer<typeof reason>;
export { reason as trainEndReasonSchema };

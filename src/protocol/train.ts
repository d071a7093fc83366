// The worker's `train` method (issue 4's trainer behind issue 5's panel), spread into `engineMethods`
// in engine.ts. The host sends the examples already rendered to chat messages (store/prompt.ts renders
// them, the same function the runner uses, so what the model is trained on is what it is later asked),
// the held-out ids, the hyperparameters as task.json holds them, and the folder to write the adapter
// to. The worker trains on the loaded base model and streams the trainer's events; a cancel stops
// between steps and the result says which step's adapter is on disk.

import { arr, bool, CheckError, Infer, nullable, num, obj, oneOf, optional, Schema, str } from './check';
import { describeValue } from './quote';
import { hyperparametersSchema } from '../store/task';

const MAX_TEXT = 200_000;
const MAX_EXAMPLES = 10_000;
const MAX_PATH = 4096;
const exampleId = str({ min: 1, max: 64 });

const trainParams = obj({
  examples: arr(obj({
    id: exampleId,
    messages: arr(obj({ role: oneOf('system', 'user', 'assistant'), content: str({ max: MAX_TEXT }) }), { max: 100 }),
  }), { max: MAX_EXAMPLES }),
  /** Examples pinned to validation; when empty, `hyperparameters.valSplit` chooses (seeded). */
  valIds: optional(arr(exampleId, { max: MAX_EXAMPLES })),
  hyperparameters: hyperparametersSchema,
  /** Examples longer than this many tokens are cut (default: the trainer's). */
  maxTokens: optional(num({ int: true, min: 2, max: 32_768 })),
  /** ONNX Runtime threads for the train step (default: the worker's). */
  threads: optional(num({ int: true, min: 1, max: 256 })),
  /** Where the PEFT adapter (and the run's checkpoint) is written; created when missing. */
  outDir: str({ min: 1, max: MAX_PATH }),
  /**
   * Continue the run checkpointed in outDir instead of starting at step 0. The same examples, held-out
   * ids and hyperparameters must be sent: the trainer refuses a checkpoint made with other ones.
   */
  resume: optional(bool),
});
export type TrainParams = Infer<typeof trainParams>;

const reason = oneOf('completed', 'early-stop', 'cancelled');
const metric = obj({ name: str({ max: 64 }), value: num() });

const startEvent = obj({
  type: oneOf('start'), totalSteps: num({ int: true, min: 0 }), stepsPerEpoch: num({ int: true, min: 0 }), trainExamples: num({ int: true, min: 0 }),
  valExamples: num({ int: true, min: 0 }), trainableParams: num({ int: true, min: 0 }), resumedFromStep: num({ int: true, min: 0 }),
});
const stepEvent = obj({
  type: oneOf('step'), step: num({ int: true, min: 0 }), epoch: num({ min: 0 }), loss: num(), lr: num(), gradNorm: num({ min: 0 }),
  tokens: num({ int: true, min: 0 }), tokensPerSec: num({ min: 0 }), elapsedS: num({ min: 0 }), etaS: num({ min: 0 }),
});
const evalEvent = obj({
  type: oneOf('eval'), step: num({ int: true, min: 0 }), epoch: num({ min: 0 }), valLoss: num(), metric: optional(metric),
  improved: oneOf(true, false), bestStep: num({ int: true, min: 0 }), bestValLoss: num(),
});
const doneEvent = obj({
  type: oneOf('done'), reason, step: num({ int: true, min: 0 }), bestStep: num({ int: true, min: 0 }), bestValLoss: nullable(num()),
  outDir: str({ max: MAX_PATH }), elapsedS: num({ min: 0 }),
});
const byType = { start: startEvent, step: stepEvent, eval: evalEvent, done: doneEvent } as const;
type TrainEventTypes = typeof byType;

/** One trainer event (trainer.ts's TrainEvent), checked by its `type`. */
export type TrainEventMessage = { [K in keyof TrainEventTypes]: Infer<TrainEventTypes[K]> }[keyof TrainEventTypes];

const trainEvent: Schema<TrainEventMessage> = (v, path = '') => {
  const type = (v as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(byType, type)) {
    throw new CheckError(`${path}.type`, `expected one of ${Object.keys(byType).join(', ')}, got ${describeValue(type)}`);
  }
  return byType[type as keyof TrainEventTypes](v, path) as TrainEventMessage;
};

export const trainMethods = {
  /** Fine-tunes a LoRA adapter on the loaded base model; streams the trainer's events. */
  train: {
    params: trainParams,
    result: obj({
      reason,
      /** Optimizer steps run. */
      step: num({ int: true, min: 0 }),
      /** The step whose adapter is in outDir (the best evaluation's, or the last step without validation). */
      savedStep: num({ int: true, min: 0 }),
      bestValLoss: nullable(num()),
      outDir: str({ max: MAX_PATH }),
      trainIds: arr(exampleId, { max: MAX_EXAMPLES }),
      valIds: arr(exampleId, { max: MAX_EXAMPLES }),
      elapsedS: num({ min: 0 }),
      /** Seconds spent building the train-step session, and reloading the inference session after. */
      setupS: num({ min: 0 }),
      reloadS: num({ min: 0 }),
      /** The worker process's peak resident memory seen during the run. */
      peakRssMB: num({ min: 0 }),
    }),
    event: trainEvent,
    exclusive: true,
  },
} as const;

// The worker's `train` method (issue 4's trainer behind issue 5's panel), spread into `engineMethods`
// in engine.ts. The host sends the examples already rendered to chat messages (store/prompt.ts renders
// them, the same function the runner uses, so what the model is trained on is what it is later asked),
// the held-out ids, the hyperparameters as task.json holds them, and the folder to write the adapter
// to. The worker trains on the loaded base model and streams the trainer's events; a cancel stops
// between steps and the result says which step's adapter is on disk.

import { arr, bool, Infer, nullable, num, obj, oneOf, optional, str } from '../common/check';
import { hyperparametersSchema } from '../engine/train/defaults';
import { trainEndReasonSchema, type TrainEvent, trainEventSchema } from '../engine/train/events';

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

/** One trainer event (engine/train/events.ts, where each event's fields are defined). */
export type TrainEventMessage = TrainEvent;

export const trainMethods = {
  /** Fine-tunes a LoRA adapter on the loaded base model; streams the trainer's events. */
  train: {
    params: trainParams,
    result: obj({
      reason: trainEndReasonSchema,
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
    event: trainEventSchema,
    exclusive: true,
  },
} as const;

// What the training panel needs from the engine, and nothing more: whether it can train and
// suggest now, and the two calls. The panel hides training and suggestions unless the engine says
// it can, so nothing in the UI offers work the engine cannot do.

import type { Capabilities, Suggestion, TrainingEvent } from '../protocol/webview';
import type { InterruptedRun } from '../store/adapterStage';
import type { Example } from '../store/examples';
import type { Hyperparameters } from '../store/task';
import type { Task } from '../store/taskStore';

export interface PanelEngine {
  /** What the engine can do right now (model loaded, methods available). */
  capabilities(): Promise<Capabilities>;
  /**
   * Trains the task's adapter on `examples`, reporting every event; resolves after the final
   * event (done, cancelled or failed). Aborting `signal` cancels between steps. With `resume`, the
   * task's interrupted run goes on from its checkpoint (`hyperparameters` are then the run's own).
   */
  train(task: Task, examples: Example[], hyperparameters: Hyperparameters, onEvent: (e: TrainingEvent) => void, signal: AbortSignal, resume?: InterruptedRun): Promise<void>;
  /** The model's current answer for each example. */
  suggest(task: Task, examples: Example[], signal?: AbortSignal): Promise<Suggestion[]>;
}

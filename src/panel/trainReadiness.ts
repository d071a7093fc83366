// Whether a task's examples can train, said the same way by the panel's page (Train disabled, the
// reason beside it) and by the host (a run asked for anyway is refused before the engine sees it).
// A user's mistake, not a fault: the host logs it as information. Pure: no vscode, no DOM.

/** The fields readiness depends on. */
export interface LabelState {
  output: string;
  heldOut: boolean;
}

export interface ExampleCounts {
  total: number;
  labeled: number;
  heldOut: number;
  /** Labeled and not held out: what training learns from. */
  trainable: number;
}

/** Whether an example has an expected output (only those are trained on). */
export function hasLabel(e: Pick<LabelState, 'output'>): boolean {
  return e.output.trim() !== '';
}

/** The counts the panel's header and Train go by. */
export function countExamples(examples: readonly LabelState[]): ExampleCounts {
  let labeled = 0, heldOut = 0, trainable = 0;
  for (const e of examples) {
    if (e.heldOut) heldOut++;
    if (hasLabel(e)) {
      labeled++;
      if (!e.heldOut) trainable++;
    }
  }
  return { total: examples.length, labeled, heldOut, trainable };
}

/** Why training cannot start on these examples, in words; null when it can. */
export function trainBlocker(c: ExampleCounts): string | null {
  if (c.labeled === 0) return 'Label at least one example to train.';
  if (c.trainable === 0) return 'Every labeled example is held out: clear "Held out" on at least one to train on it.';
  return null;
}

/** A request the user's data cannot satisfy (as opposed to a fault): shown to the user, logged as information. */
export class NotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReadyError';
  }
}

// How long a run is, from the number of training examples: whole epochs of stepsPerEpoch optimizer
// steps, `epochs` of them or, when that is fewer than `minSteps` steps, as many as reach `minSteps`
// (a run over 13 examples at batch 4 is 4 steps an epoch: 3 epochs would be 12 steps, far fewer
// than any published recipe for the 270M takes; see defaults.ts). Pure: the trainer, the CLI and the
// panel's form (which shows the plan) all use it; nothing here imports the rest of the trainer.

/** Optimizer steps in one pass over `n` examples: ceil(n / batch) micro-batches, `accum` of them per step. */
export function stepsPerEpoch(n: number, batch: number, accum: number): number {
  return Math.ceil(Math.ceil(n / batch) / accum);
}

export interface PlanSettings {
  epochs: number;
  /** Optimizer steps at least (whole epochs are added to reach it); 0 = `epochs` alone. */
  minSteps: number;
  batchSize: number;
  gradAccum: number;
}

export interface TrainingPlan {
  stepsPerEpoch: number;
  epochs: number;
  totalSteps: number;
}

/** Epochs and steps of a run over `trainExamples` examples (at least one). */
export function trainingPlan(trainExamples: number, s: PlanSettings): TrainingPlan {
  const spe = stepsPerEpoch(Math.max(1, trainExamples), s.batchSize, s.gradAccum);
  const epochs = Math.max(s.epochs, Math.ceil(s.minSteps / spe));
  return { stepsPerEpoch: spe, epochs, totalSteps: epochs * spe };
}

// Learning-rate schedules exactly as transformers' get_{constant,linear,cosine}_schedule_with_warmup:
// a multiplier of the base rate as a function of the optimizer step (0 for the first update). The
// Trainer calls scheduler.step() after each optimizer.step(), so update k (0-based) runs at
// baseLr · factor(k).

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface ScheduleOptions {
  kind: ScheduleKind;
  baseLr: number;
  warmupSteps: number;
  /** Total optimizer steps of the run (needed by linear and cosine). */
  totalSteps: number;
}

/** The multiplier of the base rate at optimizer step `step` (transformers' lr_lambda). */
export function scheduleFactor(opts: Omit<ScheduleOptions, 'baseLr'>, step: number): number {
  const { kind, warmupSteps: w, totalSteps: n } = opts;
  if (step < w) return step / Math.max(1, w);
  switch (kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (n - step) / Math.max(1, n - w));
    case 'cosine': {
      // num_cycles = 0.5: one half-cosine from 1 to 0 over the steps after warmup.
      const progress = (step - w) / Math.max(1, n - w);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
  }
}

/** The learning rate of update `step` (0-based). */
export function learningRate(opts: ScheduleOptions, step: number): number {
  return opts.baseLr * scheduleFactor(opts, step);
}

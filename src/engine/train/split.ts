// The held-out validation split: about 20% of the examples once there are at least 10 (fewer leaves
// too little to train on), chosen by the run's seed, or exactly the examples the user pinned.

import { Rng, shuffled } from '../rng';

export interface SplitOptions {
  /** Fraction held out; 0 turns validation off. */
  fraction: number;
  seed: number;
  /** Ids that must be the validation set (overrides fraction). */
  pinned?: ReadonlySet<string>;
  /** Below this many examples nothing is held out unless pinned (default 10). */
  minExamples?: number;
}

/** Splits items (each with an id) into train and validation sets, keeping the file order in each. */
export function splitValidation<T extends { id: string }>(items: T[], opts: SplitOptions): { train: T[]; val: T[] } {
  if (opts.pinned && opts.pinned.size > 0) {
    const known = new Set(items.map((e) => e.id));
    const missing = [...opts.pinned].filter((id) => !known.has(id));
    if (missing.length) throw new RangeError(`pinned validation ids not in the data: ${missing.join(', ')}`);
    const val = items.filter((e) => opts.pinned!.has(e.id));
    const train = items.filter((e) => !opts.pinned!.has(e.id));
    if (train.length === 0) throw new RangeError('every example is pinned to validation: nothing left to train on');
    return { train, val };
  }
  if (!(opts.fraction >= 0 && opts.fraction < 1)) throw new RangeError(`validation fraction must be in [0, 1), got ${opts.fraction}`);
  const nVal = validationSize(items.length, 0, opts.fraction, opts.minExamples);
  if (nVal === 0) return { train: items.slice(), val: [] };
  const chosen = new Set(shuffled(items.map((_, i) => i), new Rng(opts.seed ^ 0x5eed)).slice(0, nVal));
  return { train: items.filter((_, i) => !chosen.has(i)), val: items.filter((_, i) => chosen.has(i)) };
}

/** How many of `n` examples validate: the `pinned` ones, else about `fraction` of them once there are at least `minExamples`. */
export function validationSize(n: number, pinned: number, fraction: number, minExamples = 10): number {
  if (pinned > 0) return pinned;
  if (fraction <= 0 || n < minExamples) return 0;
  return Math.max(1, Math.round(n * fraction));
}

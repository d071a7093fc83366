// A small seeded random source for everything a training run draws: shuffling, the validation split,
// dropout masks and fresh LoRA weights. The same seed gives the same run, and the state is one
// 32-bit number so that it can be saved with a checkpoint and resumed exactly.

/** Mulberry32: a fast 32-bit generator with a one-number state, good enough for shuffles and inits. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    // Mix the seed once so that seeds 0, 1, 2… do not start from nearby states.
    this.s = (Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0) ^ 0x2545f491;
  }

  /** The generator's state, to save with a checkpoint. */
  get state(): number {
    return this.s >>> 0;
  }

  /** A generator continuing from a saved state. */
  static fromState(state: number): Rng {
    const r = new Rng(0);
    r.s = state >>> 0;
    return r;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal sample (Box–Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** Shuffles a copy of items with Fisher–Yates driven by rng. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

// Seeded random numbers for the engine, the CLI and the tests: one interface, two generators.
//
// - `Rng` (Mulberry32) is the one to use: training (shuffles, the validation split, fresh LoRA weights),
//   sampling, benchmark prompts, test data. Its state is one 32-bit number, so a training checkpoint
//   saves it and a resumed run continues exactly.
// - `Sfc32` (sfc32 seeded through splitmix32) draws the weights of random models. It stays a second
//   algorithm only because the files of `make-model --seed N` must keep their bytes (tests, fixtures
//   and the README name them); new code should take `Rng`.

/** What both generators offer. */
export interface Random {
  /** A uniform number in [0, 1). */
  next(): number;
  /** A uniform integer in [0, n). */
  int(n: number): number;
  /** A standard normal sample (Box–Muller). */
  normal(): number;
}

/** Mulberry32: a fast 32-bit generator with a one-number state, good enough for shuffles, inits and sampling. */
export class Rng implements Random {
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

  /** A uniform number in [0, 1) with 32 random bits. */
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

  /** A standard normal sample (Box–Muller, the cosine half only). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** sfc32 with its four words filled by splitmix32 from one 32-bit seed: the random-model weight stream. */
export class Sfc32 implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** Box–Muller makes normals in pairs; the second waits here for the next call. */
  private spare: number | null = null;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
  }

  /** The next 32 random bits. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform number in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal sample (Box–Muller, both halves used). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniformNoZero()));
    const t = 2 * Math.PI * this.uniformNoZero();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** A uniform number in (0, 1], so that its logarithm is finite. */
  private uniformNoZero(): number {
    return (this.nextU32() + 1) / 4294967296;
  }
}

/** Shuffles a copy of items with Fisher–Yates driven by rng. */
export function shuffled<T>(items: readonly T[], rng: Random): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

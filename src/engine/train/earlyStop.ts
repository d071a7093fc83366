// Early stopping on validation loss with patience: small datasets overfit after a couple of epochs,
// so the run keeps the adapter of the best evaluation and stops after `patience` evaluations
// without improvement.

export interface EarlyStopState {
  bestLoss: number;
  bestStep: number;
  badEvals: number;
}

/** Tracks the best validation loss and whether to stop. */
export class EarlyStopping {
  bestLoss = Infinity;
  bestStep = -1;
  badEvals = 0;

  /** patience: evaluations without improvement before stopping (0 = never stop early). */
  constructor(readonly patience: number, readonly minDelta = 0) {}

  /** Records an evaluation; `improved` means the caller should keep this step's adapter. */
  observe(valLoss: number, step: number): { improved: boolean; stop: boolean } {
    const improved = valLoss < this.bestLoss - this.minDelta;
    if (improved) {
      this.bestLoss = valLoss;
      this.bestStep = step;
      this.badEvals = 0;
    } else this.badEvals += 1;
    return { improved, stop: this.patience > 0 && this.badEvals >= this.patience };
  }

  /** Serializable state for resume. */
  state(): EarlyStopState {
    return { bestLoss: this.bestLoss, bestStep: this.bestStep, badEvals: this.badEvals };
  }

  /** Restores a saved state. */
  load(s: EarlyStopState): void {
    // Before the first evaluation bestLoss is Infinity, which a checkpoint's JSON holds as null; read
    // back as null, `valLoss < null` would be false and no later evaluation would count as better.
    this.bestLoss = typeof s.bestLoss === 'number' ? s.bestLoss : Infinity;
    this.bestStep = s.bestStep;
    this.badEvals = s.badEvals;
  }
}

// Task metrics on held-out examples: exact match for extraction/generation, label accuracy for
// classification. Both compare after trimming and collapsing whitespace, so a trailing newline or
// an end-of-turn artefact does not count as a miss; labels also ignore case.

function norm(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

/** True when the prediction equals the expected text up to surrounding and repeated whitespace. */
export function exactMatch(prediction: string, expected: string): boolean {
  return norm(prediction) === norm(expected);
}

/** Fraction of predictions that exactly match; NaN for no pairs. */
export function exactMatchRate(pairs: Array<{ prediction: string; expected: string }>): number {
  if (pairs.length === 0) return NaN;
  return pairs.filter((p) => exactMatch(p.prediction, p.expected)).length / pairs.length;
}

/** Fraction of predicted labels equal to the expected ones (case-insensitive); NaN for no pairs. */
export function labelAccuracy(pairs: Array<{ prediction: string; expected: string }>): number {
  if (pairs.length === 0) return NaN;
  return pairs.filter((p) => norm(p.prediction).toLowerCase() === norm(p.expected).toLowerCase()).length / pairs.length;
}

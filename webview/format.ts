// Pure helpers of the panel's page (no DOM), unit-tested on their own.

/** "1:05" / "12 s" / "1 h 02 min" for an ETA in seconds; '' when unknown. */
export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} min`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * The loss curves as uPlot wants them: one shared, sorted x axis (steps) and one y array per
 * series with null where that series has no point (validation runs less often than training).
 */
export function alignSeries(train: readonly (readonly [number, number])[], val: readonly (readonly [number, number])[]): [number[], (number | null)[], (number | null)[]] {
  const steps = [...new Set([...train.map((p) => p[0]), ...val.map((p) => p[0])])].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const t: (number | null)[] = steps.map(() => null);
  const v: (number | null)[] = steps.map(() => null);
  for (const [s, y] of train) t[index.get(s)!] = y;
  for (const [s, y] of val) v[index.get(s)!] = y;
  return [steps, t, v];
}

/** Progress in [0, 1] from step counts (0 when the total is unknown). */
export function progressFraction(step: number, totalSteps: number): number {
  return totalSteps > 0 ? Math.min(1, Math.max(0, step / totalSteps)) : 0;
}

/** Whether a model answer matches the expected output, ignoring surrounding white space. */
export function sameAnswer(a: string, b: string): boolean {
  return a.trim() === b.trim();
}

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

/** Height of an open @vscode-elements dropdown: 22 px per option, at most 10 shown, plus its border. */
export function dropdownHeight(options: number): number {
  return Math.min(Math.max(options, 1), 10) * 22 + 4;
}

/**
 * Whether a dropdown whose field spans [top, bottom] (px from the top of a viewport `viewport` px
 * high) should open above the field: when the list does not fit below it and there is more room above.
 */
export function opensAbove(top: number, bottom: number, viewport: number, listHeight: number): boolean {
  const below = viewport - bottom;
  return below < listHeight && top > below;
}

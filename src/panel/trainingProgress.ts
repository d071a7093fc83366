// What the status bar says while a task trains: step, total and time left, in words. Pure: no vscode.

/** One training run's progress as the status bar shows it. */
export interface TrainingProgress {
  taskName: string;
  step: number;
  totalSteps: number;
  etaSeconds: number | null;
}

/** "3 min 5 s", "42 s": a duration for people. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
}

/** The status bar text, tooltip and accessible label of a run. */
export function trainingStatusView(p: TrainingProgress): { text: string; tooltip: string; ariaLabel: string } {
  const of = p.totalSteps > 0 ? `${p.step}/${p.totalSteps}` : `${p.step}`;
  const eta = p.etaSeconds !== null && p.step > 0 ? `, about ${formatDuration(p.etaSeconds)} left` : '';
  return {
    text: `$(sync~spin) Gemma: training ${of}${eta ? ` · ${formatDuration(p.etaSeconds!)}` : ''}`,
    tooltip: `Gemma Tune: training “${p.taskName}”, step ${of}${eta}. Cancel it in the training panel.`,
    ariaLabel: `Gemma: training ${p.taskName}, step ${of}${eta}`,
  };
}

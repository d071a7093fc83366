// The question a fine-tune asks after its first measured step when the whole run would take longer than
// the setting gemmaTune.training.confirmLongerThanMinutes allows: a modal naming the estimate, with "Keep
// training" and "Stop". Asked once per new run; a resumed run goes on without asking.

import * as vscode from 'vscode';
import type { GemmaServices } from '../services';
import { formatDuration } from './trainingProgress';

/** Setting: a fine-tune estimated (from its first step) to take longer than this many minutes asks first; 0 never asks. */
export const CONFIRM_TRAINING_KEY = 'training.confirmLongerThanMinutes';
const DEFAULT_CONFIRM_MINUTES = 10;

/**
 * When the whole run would take longer than the setting allows (default 10 minutes), asks whether to go on;
 * resolves with why it stops (the user said stop), or undefined to go on.
 */
export async function confirmLongRun(s: Pick<GemmaServices, 'log' | 'events'>, modelName: string, stepS: number, totalS: number, steps: number): Promise<string | undefined> {
  const limitMin = vscode.workspace.getConfiguration('gemmaTune').get<number>(CONFIRM_TRAINING_KEY, DEFAULT_CONFIRM_MINUTES);
  if (!(limitMin > 0) || totalS <= limitMin * 60) return undefined;
  const estimate = `Fine-tuning with ${modelName} would take about ${formatDuration(totalS)} on this machine (first step ${stepS.toFixed(1)} s, ${steps} steps).`;
  s.log.warn(`train: ${estimate}`);
  s.events.write('trainingTooSlow', { model: modelName, stepSeconds: stepS, totalSeconds: totalS, steps });
  const keep = 'Keep training';
  const pick = await vscode.window.showWarningMessage(`${estimate} A smaller model (Gemma: Choose model…) trains faster.`, { modal: true }, keep, 'Stop');
  return pick === keep ? undefined : `Stopped: ${estimate}`;
}

// What each model measured on this machine, kept in the extension's global state (by file path) for
// "Gemma: Choose model…": load time at every load, and the engine's memory and decode speed from a short
// probe run right after the user picks a model (a few generated tokens, no task involved).

import * as vscode from 'vscode';
import type { EngineClient } from '../client/engineClient';
import type { ModelFigures } from './modelCatalog';

const STATE_KEY = 'gemmaTune.modelMeasurements';
/** Generated tokens the probe times (after its first one, which pays the prompt). */
const PROBE_TOKENS = 16;

export type Measured = Partial<ModelFigures> & { at: string };

/** Every measured model, by path. */
export function measurements(state: vscode.Memento): Record<string, Measured> {
  const v = state.get<unknown>(STATE_KEY);
  return typeof v === 'object' && v !== null ? (v as Record<string, Measured>) : {};
}

/** Adds figures for `modelPath`, keeping the ones not given. */
export async function recordMeasurement(state: vscode.Memento, modelPath: string, figures: Partial<ModelFigures>): Promise<void> {
  const all = measurements(state);
  all[modelPath] = { ...all[modelPath], ...figures, at: new Date().toISOString() };
  await state.update(STATE_KEY, all);
}

/**
 * Times the loaded model generating PROBE_TOKENS tokens from a one-token prompt and reads the engine's
 * memory: decode tokens/s and RSS, as the user's machine gives them.
 */
export async function probeSpeed(engine: Pick<EngineClient, 'request'>, bosId: number): Promise<Pick<ModelFigures, 'decodeTokS' | 'ramMB'>> {
  const times: number[] = [];
  await engine.request('generate', { promptIds: [bosId], maxTokens: PROBE_TOKENS + 1, stopIds: [] }, { onEvent: (e) => { if (e.id !== null) times.push(performance.now()); } });
  const status = await engine.request('status', {});
  const n = times.length - 1;
  const decodeTokS = n > 0 ? (n * 1000) / (times[times.length - 1] - times[0]) : 0;
  return { decodeTokS, ramMB: status.memory.rssMB };
}

// The models "Gemma: Choose model…" offers to download, with what a user needs to know before choosing:
// file size, the memory the engine takes, and its speed. Until a model has run on the user's machine the
// numbers are the reference ones below, measured with `gemma-tune bench` on a random-weight model of the
// same shape and file layout on a 2-core build machine (README, "Model sizes"); once it has run, the
// picker shows what it measured here (modelMeasurements.ts). Pure data: no vscode.

import { DEFAULT_MODEL, GEMMA3_1B_QAT_MODEL, type ModelManifest } from '../engine/model/modelManifest';

/** What a model costs and gives on one machine. */
export interface ModelFigures {
  /** Resident memory of the engine with the model loaded and answering (peak RSS), MB. */
  ramMB: number;
  /** Generated tokens per second after a short prompt. */
  decodeTokS: number;
  /** Seconds from file to a runnable model. */
  loadS: number;
  /** Wall time of the default fine-tune (20 examples × 120 tokens, 3 epochs), seconds. */
  fineTuneS?: number;
  /** Peak RSS of that fine-tune (model, step graph, activations), MB. */
  fineTuneRamMB?: number;
}

export interface CatalogEntry {
  manifest: ModelManifest;
  /** One line on what it is. */
  summary: string;
  /** Measured on the build machine (2 cores), see the file comment. */
  reference: ModelFigures;
}

export const MODEL_CATALOG: readonly CatalogEntry[] = [
  {
    manifest: DEFAULT_MODEL,
    summary: 'the default, 18 layers',
    // bench/out/270m-q4.gguf (Q4_0 blocks, Q8_0 embedding, as this file), 2 threads.
    reference: { ramMB: 600, decodeTokS: 78, loadS: 3.1, fineTuneS: 30, fineTuneRamMB: 1400 },
  },
  {
    manifest: GEMMA3_1B_QAT_MODEL,
    summary: '26 layers: better answers, slower',
    // make-model --config 1b --dtype q4_0 --embedding f16 (Q4_0 blocks, F16 embedding, as this file), 2 threads.
    reference: { ramMB: 3100, decodeTokS: 18.5, loadS: 11.9, fineTuneS: 168, fineTuneRamMB: 4900 },
  },
];

/** "241 MB" / "1.0 GB". */
export function formatBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

function mb(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} GB` : `${Math.round(v)} MB`;
}

/** "RAM 3.1 GB · 18 tokens/s · fine-tune ~3 min in 4.9 GB": the figures as the picker shows them. */
export function describeFigures(f: ModelFigures): string {
  const parts = [`RAM ${mb(f.ramMB)}`, `${f.decodeTokS >= 10 ? Math.round(f.decodeTokS) : f.decodeTokS.toFixed(1)} tokens/s`];
  if (f.fineTuneS !== undefined) parts.push(`fine-tune ~${Math.max(1, Math.round(f.fineTuneS / 60))} min${f.fineTuneRamMB ? ` in ${mb(f.fineTuneRamMB)}` : ''}`);
  return parts.join(' · ');
}

/**
 * What the picker says of a catalogue model, figures first (a narrow pick cuts the end): those measured on
 * this machine where it has run here (memory and speed), the build machine's for the rest (all of them until
 * it has run).
 */
export function describeEntry(reference: ModelFigures, here?: Partial<ModelFigures>): string {
  if (here?.decodeTokS === undefined || here.ramMB === undefined) return `${describeFigures(reference)} (2-core build machine)`;
  const mine = describeFigures({ ramMB: here.ramMB, decodeTokS: here.decodeTokS, loadS: here.loadS ?? reference.loadS });
  const tune = reference.fineTuneS === undefined ? '' : ` · fine-tune ~${Math.max(1, Math.round(reference.fineTuneS / 60))} min${reference.fineTuneRamMB ? ` in ${mb(reference.fineTuneRamMB)}` : ''} (build machine)`;
  return `${mine} (measured here)${tune}`;
}

// The models "Gemma: Choose model…" offers to download, with what a user needs to know before choosing:
// file size, the memory the engine takes, and its speed. Until a model has run on the user's machine the
// numbers are the reference ones below, measured with `gemma-tune bench` on a random-weight model of the
// same shape and file layout on a 2-core build machine (README, "Model sizes"); once it has run, the
// picker shows what it measured here (modelMeasurements.ts). Pure data: no vscode.

import { DEFAULT_MODEL, GEMMA3_1B_QAT_MODEL, type ModelManifest } from '../store/modelManifest';

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
    summary: 'the default: 18 layers, fast to fine-tune on a laptop',
    reference: { ramMB: 520, decodeTokS: 38, loadS: 3.4, fineTuneS: 60 },
  },
  {
    manifest: GEMMA3_1B_QAT_MODEL,
    summary: '26 layers, hidden 1152: better answers, slower; gated (a Hugging Face token)',
    reference: { ramMB: 2900, decodeTokS: 5, loadS: 15, fineTuneS: 400 },
  },
];

/** "241 MB" / "1.0 GB". */
export function formatBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

/** "RAM 2.9 GB · 5 tokens/s · fine-tune ~7 min": the figures as the picker shows them. */
export function describeFigures(f: ModelFigures): string {
  const ram = f.ramMB >= 1000 ? `${(f.ramMB / 1000).toFixed(1)} GB` : `${Math.round(f.ramMB)} MB`;
  const parts = [`RAM ${ram}`, `${f.decodeTokS >= 10 ? Math.round(f.decodeTokS) : f.decodeTokS.toFixed(1)} tokens/s`];
  if (f.fineTuneS !== undefined) parts.push(`fine-tune ~${Math.max(1, Math.round(f.fineTuneS / 60))} min`);
  return parts.join(' · ');
}

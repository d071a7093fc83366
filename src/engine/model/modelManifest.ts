// Which model files the extension can download, pinned to a repository revision so the size
// and sha256 below stay true. Pure data and URL building: no vscode, no network.

/** One downloadable model file. `size`/`sha256` are checked when known (see modelDownload.ts). */
export interface ModelManifest {
  /** Stable id, used as the cache folder name. */
  id: string;
  title: string;
  /** Hugging Face repository (owner/name). */
  repo: string;
  /** Commit of the repository the size and sha256 were taken from. */
  revision: string;
  file: string;
  size?: number;
  sha256?: string;
  /** Whether Hugging Face requires a token (a gated repository). */
  gated: boolean;
}

/**
 * The default: Google's quantisation-aware-trained Q4_0 checkpoint of Gemma 3 270M
 * instruction-tuned, converted to GGUF by ggml-org (ungated). Size and sha256 of this revision:
 * 241,410,624 bytes, sha256 3626e245…2dc6 (as published by projects that pin this file; the
 * download also checks them against Hugging Face's X-Linked-Size / X-Linked-Etag).
 */
export const DEFAULT_MODEL: ModelManifest = {
  id: 'gemma-3-270m-it-qat-q4_0',
  title: 'Gemma 3 270M instruction-tuned (QAT Q4_0 GGUF)',
  repo: 'ggml-org/gemma-3-270m-it-qat-GGUF',
  revision: '7dba9faa7cdb58c7dc44b238c7dbb00e391fbf65',
  file: 'gemma-3-270m-it-qat-Q4_0.gguf',
  size: 241_410_624,
  sha256: '3626e245220ca4a1c5911eb4010b3ecb7bdbf5bc53c79403c21355354d1e2dc6',
  gated: false,
};

/** The Hugging Face download URL of a manifest's file (`endpoint` for mirrors and tests). */
export function manifestUrl(m: ModelManifest, endpoint = 'https://huggingface.co'): string {
  const base = endpoint.replace(/\/+$/, '');
  const file = m.file.split('/').map(encodeURIComponent).join('/');
  return `${base}/${m.repo}/resolve/${encodeURIComponent(m.revision)}/${file}`;
}

/**
 * Gemma 3 1B instruction-tuned, Google's own QAT Q4_0 GGUF (gated: Hugging Face asks for a token once the
 * license is accepted on the model page). Its blocks are Q4_0 and its embedding F16 (which the engine
 * keeps at its own precision). Revision, size and sha256 as pinned by several public projects that
 * download this file (1,003,541,152 bytes).
 */
export const GEMMA3_1B_QAT_MODEL: ModelManifest = {
  id: 'gemma-3-1b-it-qat-q4_0',
  title: 'Gemma 3 1B instruction-tuned (QAT Q4_0 GGUF)',
  repo: 'google/gemma-3-1b-it-qat-q4_0-gguf',
  revision: 'd1be121d36172a4b0b964657e2ee859d61138593',
  file: 'gemma-3-1b-it-q4_0.gguf',
  size: 1_003_541_152,
  sha256: '95e5b8d891cd6a794f66c2a6fb59a41e9562b4660560b854274eceffb628b22a',
  gated: true,
};

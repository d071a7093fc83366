// Which model this is, in the two ways it is recorded.
//
// 1. In an adapter's adapter_config.json (modelIdentity):
//   The base model as an adapter names it (PEFT's base_model_name_or_path and revision in
//   adapter_config.json). The adapter is committed with its task and read on other machines, so this is
//   a name that means the same everywhere, never a path on this one:
//     - the default model (known by its file name and size): its Hugging Face repository and revision;
//     - another GGUF file: its general.name, else its file name;
//     - a Hugging Face folder: the repository and revision of a hub cache snapshot
//       (…/models--owner--name/snapshots/<commit>), else the hub id in config.json's _name_or_path, else
//       the folder's name.
//   PEFT itself records whatever name_or_path the base was loaded with (a hub id, or a local path) and reads
//   the field only in AutoPeftModel, to fetch the base; PeftModel.from_pretrained(base, dir) ignores it.
//
// 2. In a task's task.json (baseIdentity):
//   What identifies a base model, so that a task can record the base its adapter was trained on and an
//   adapter is never applied to another: a readable name, the shape (which already rules out most
//   mismatches), and a fingerprint of the weights themselves. The fingerprint hashes the files' sizes and a
//   few samples of their bytes (the header with every tensor's name, type and offset; then 64 KiB at five
//   places), not whole files: it costs a few reads at every load instead of hashing gigabytes, and two
//   different quantisations, fine-tunes or conversions of a model differ in those bytes.

import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_MODEL } from './modelManifest';
import type { GemmaConfig } from './config';
import { readFdInto } from './fileRange';
import { ggufString, readGguf } from './gguf';
import { openRegularFile } from './regularFile';

export interface ModelIdentity {
  /** A Hugging Face id or a model's name: never a local path. */
  name: string;
  /** The repository commit, when the model is known to come from one. */
  revision: string | null;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const HUB_SNAPSHOT = /(?:^|[\\/])models--([\w.-]+?)--([\w.-]+)[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]?$/;

/** What names the model at `modelPath` (a .gguf file or a Hugging Face folder) in an adapter's config. */
export function modelIdentity(modelPath: string): ModelIdentity {
  const full = path.resolve(modelPath);
  if (fs.statSync(full).isDirectory()) return folderIdentity(full);
  if (path.basename(full) === DEFAULT_MODEL.file && fs.statSync(full).size === DEFAULT_MODEL.size) {
    return { name: DEFAULT_MODEL.repo, revision: DEFAULT_MODEL.revision };
  }
  const name = ggufString(readGguf(full), 'general.name')?.trim();
  return { name: name || path.basename(full), revision: null };
}

function folderIdentity(dir: string): ModelIdentity {
  const snapshot = HUB_SNAPSHOT.exec(dir);
  if (snapshot) return { name: `${snapshot[1]}/${snapshot[2]}`, revision: snapshot[3] };
  let declared: unknown;
  try {
    declared = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>)._name_or_path;
  } catch {
    declared = undefined; // the loader reports a missing or bad config.json; a name is still owed here
  }
  if (typeof declared === 'string' && HUB_ID.test(declared)) return { name: declared, revision: null };
  return { name: path.basename(dir), revision: null };
}

export interface BaseShape {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
}

export interface BaseIdentity {
  /** The file (or folder) name the user knows it by. */
  name: string;
  shape: BaseShape;
  /** 16 hex digits of sha256 over sampled bytes of the model's files. */
  fingerprint: string;
}

const HEAD_BYTES = 1 << 20;
const SAMPLE_BYTES = 64 << 10;

/** The shape part of a config. */
export function baseShape(cfg: GemmaConfig): BaseShape {
  return { layers: cfg.layers, hidden: cfg.hidden, intermediate: cfg.intermediate, heads: cfg.heads, kvHeads: cfg.kvHeads, vocabSize: cfg.vocabSize };
}

/** Hashes a file's size and samples; `label` names it within a folder (a lone file's own name is not hashed: a renamed copy is the same base). */
function sampleFile(h: Hash, file: string, label = ''): void {
  const fd = openRegularFile(file);
  try {
    const size = fs.fstatSync(fd).size;
    h.update(`${label}:${size}\n`);
    const take = (at: number, n: number) => {
      const len = Math.max(0, Math.min(n, size - at));
      const buf = new Uint8Array(len);
      readFdInto(fd, file, at, len, buf, 0);
      h.update(buf);
    };
    take(0, HEAD_BYTES);
    for (const f of [0.2, 0.4, 0.6, 0.8]) take(Math.floor(size * f), SAMPLE_BYTES);
    take(Math.max(0, size - SAMPLE_BYTES), SAMPLE_BYTES);
  } finally {
    fs.closeSync(fd);
  }
}

/** The identity of the model at `modelPath` (a .gguf file or an HF folder) whose config is `cfg`. */
export function baseIdentity(modelPath: string, cfg: GemmaConfig): BaseIdentity {
  const h = createHash('sha256');
  if (fs.statSync(modelPath).isDirectory()) {
    const files = fs.readdirSync(modelPath).filter((f) => f === 'config.json' || f.endsWith('.safetensors')).sort();
    for (const f of files) sampleFile(h, path.join(modelPath, f), f);
  } else {
    sampleFile(h, modelPath);
  }
  return { name: path.basename(path.resolve(modelPath)), shape: baseShape(cfg), fingerprint: h.digest('hex').slice(0, 16) };
}

/**
 * What changes whenever the model's files do: each file's path, size, modification time and inode, and the
 * fingerprint of its bytes (baseIdentity's). What the engine converted from a model is cached under this
 * (gemma/runtimeCache.ts).
 */
export function modelStamp(modelPath: string, fingerprint: string): string {
  const full = path.resolve(modelPath);
  const files = fs.statSync(full).isDirectory()
    ? fs.readdirSync(full).filter((f) => f === 'config.json' || f.endsWith('.safetensors')).sort().map((f) => path.join(full, f))
    : [full];
  const stats = files.map((f) => {
    const st = fs.statSync(f);
    return [f, st.size, st.mtimeMs, st.ino];
  });
  return JSON.stringify({ files: stats, fingerprint });
}

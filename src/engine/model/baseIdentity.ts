// What identifies a base model, so that a task can record the base its adapter was trained on and an
// adapter is never applied to another: a readable name, the shape (which already rules out most
// mismatches), and a fingerprint of the weights themselves. The fingerprint hashes the files' sizes and a
// few samples of their bytes (the header with every tensor's name, type and offset; then 64 KiB at five
// places), not whole files: it costs a few reads at every load instead of hashing gigabytes, and two
// different quantisations, fine-tunes or conversions of a model differ in those bytes.

import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GemmaConfig } from './config';
import { readFdInto } from './fileRange';

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
  const fd = fs.openSync(file, 'r');
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

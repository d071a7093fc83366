// Creating ONNX Runtime sessions from built graphs, with the engine's threading choices, and small
// helpers to make input tensors. Only the worker and the CLI import this (it loads the native addon).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { BuiltModel, Graph, InitializerSink, SinkRegion } from './graph';
import { executionProviders, type Device } from './device';

export type OptLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionConfig {
  /** Where the session runs (device.ts resolves a user's choice to one); default the CPU. */
  device?: Device;
  /** intra-op threads; default 2. */
  threads?: number;
  /** Graph optimisation level; 'basic' builds large hand-made graphs ~3× faster than 'all'. */
  optimization?: OptLevel;
  /** Let idle pool threads spin between kernels (faster small runs, burns CPU); default off. */
  spinning?: boolean;
  /** Above 1: independent nodes run side by side on a pool of this many threads (ORT's parallel execution mode); default 1. */
  interOpThreads?: number;
  /** ORT's CPU memory arena (keeps freed activation memory for reuse); default on. */
  memArena?: boolean;
  /** ORT's per-shape memory pattern planning; default on. */
  memPattern?: boolean;
  /** Write ORT's per-kernel profile (JSON) to files starting with this path (benchmarks only). */
  profilePrefix?: string;
  /** Extra ORT config entries by full key (e.g. { 'session.disable_prepacking': '1' }), for experiments. */
  configEntries?: Record<string, string>;
  /** Extra WebGPU EP options (e.g. { validationMode: 'disabled' }), for experiments. */
  webgpuOptions?: Record<string, string>;
  /**
   * Also write the optimised model to `model`, and its initializers, prepacked ones included, to the file
   * `data` beside it: a session opened on that model later maps the packed weights instead of packing
   * them again.
   */
  saveOptimized?: { model: string; data: string };
}

function sessionOptions(cfg: SessionConfig): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: executionProviders(cfg.device ?? 'cpu', cfg.webgpuOptions),
    intraOpNumThreads: cfg.threads ?? 2,
    interOpNumThreads: cfg.interOpThreads ?? 1,
    executionMode: (cfg.interOpThreads ?? 1) > 1 ? 'parallel' : 'sequential',
    graphOptimizationLevel: cfg.optimization ?? 'basic',
    logSeverityLevel: 3,
    enableCpuMemArena: cfg.memArena ?? true,
    enableMemPattern: cfg.memPattern ?? true,
    ...(cfg.profilePrefix ? { enableProfiling: true, profileFilePrefix: cfg.profilePrefix } : {}),
    // Spinning threads would burn the shared CPU between the tiny runs of a decode loop.
    extra: withEntries({ session: { intra_op: { allow_spinning: cfg.spinning ? '1' : '0' }, inter_op: { allow_spinning: '0' } } }, { ...savedEntries(cfg), ...cfg.configEntries }),
    ...(cfg.saveOptimized ? { optimizedModelFilePath: cfg.saveOptimized.model } : {}),
  };
}

function savedEntries(cfg: SessionConfig): Record<string, string> {
  if (!cfg.saveOptimized) return {};
  return {
    'session.optimized_model_external_initializers_file_name': cfg.saveOptimized.data,
    'session.optimized_model_external_initializers_min_size_in_bytes': '1024',
    'session.save_external_prepacked_constant_initializers': '1',
  };
}

type Nested = { [k: string]: string | Nested };

/** `extra` nests config keys by their dots ('session.x' → { session: { x } }), as the binding flattens them. */
function withEntries(base: Nested, entries: Record<string, string>): Nested {
  for (const [key, value] of Object.entries(entries)) {
    const parts = key.split('.');
    let at = base;
    for (const p of parts.slice(0, -1)) {
      const next = at[p];
      at = typeof next === 'object' ? next : (at[p] = {});
    }
    at[parts[parts.length - 1]] = value;
  }
  return base;
}

/** An InferenceSession over a model built with in-memory external data (small graphs, tests). */
export async function createSession(built: BuiltModel, cfg: SessionConfig = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(built.model, { ...sessionOptions(cfg), externalData: built.externalData });
}

/** The external data file's name: graphs name it as the location of every streamed initializer. */
export const WEIGHTS_FILE = 'weights.bin';

/** Writes initializers into one external data file at page-aligned offsets (so ORT can map them). */
export class ExternalDataFile implements InitializerSink {
  readonly dir: string;
  private readonly fd: number;
  private offset = 0;
  /** Closing twice could close a descriptor the number was reused for (ORT's, or the host's own). */
  private fdOpen = true;

  /** `dir`: an existing empty folder to write into (a cache entry being built); default a fresh temporary one. */
  constructor(dir?: string) {
    this.dir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-ort-'));
    this.fd = fs.openSync(path.join(this.dir, WEIGHTS_FILE), 'w');
  }

  /** Closes the data file (without flushing it). */
  close(): void {
    this.closeFd();
  }

  private closeFd(): void {
    if (!this.fdOpen) return;
    this.fdOpen = false;
    fs.closeSync(this.fd);
  }

  reserve(byteLength: number): SinkRegion {
    const at = Math.ceil(this.offset / 4096) * 4096;
    this.offset = at + byteLength;
    let pos = at;
    const end = at + byteLength;
    return {
      location: WEIGHTS_FILE,
      offset: at,
      write: (bytes: Uint8Array) => {
        if (pos + bytes.byteLength > end) throw new Error(`external data: write past the ${byteLength} bytes reserved at ${at}`);
        let done = 0;
        while (done < bytes.byteLength) done += fs.writeSync(this.fd, bytes, done, bytes.byteLength - done, pos + done);
        pos += bytes.byteLength;
      },
    };
  }

  /** Writes the model next to the data and opens a session on it; the files are removed afterwards. */
  async open(g: Graph, cfg: SessionConfig = {}): Promise<ort.InferenceSession> {
    try {
      const built = g.build();
      if (built.externalData.length) throw new Error('ExternalDataFile.open: the graph holds initializers that were not streamed to the file');
      this.closeFd();
      const modelPath = path.join(this.dir, 'model.onnx');
      fs.writeFileSync(modelPath, built.model);
      return await ort.InferenceSession.create(modelPath, sessionOptions(cfg));
    } finally {
      this.remove();
    }
  }

  /** Deletes the temporary files (a session already created keeps its mapping). */
  remove(): void {
    try {
      this.closeFd();
    } catch {
      // a failed close still releases the descriptor
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A session on a model whose external data is the file behind `dataFd` (a descriptor from
 * a runtime opened on a data file since removed): the data is copied into a fresh temporary
 * file for ORT to map, and the files are removed once the session exists.
 */
export async function sessionFromDataFd(model: Uint8Array, dataFd: number, cfg: SessionConfig = {}): Promise<ort.InferenceSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-ort-'));
  try {
    const out = fs.openSync(path.join(dir, WEIGHTS_FILE), 'w');
    try {
      const buf = Buffer.allocUnsafe(8 << 20);
      for (let pos = 0; ;) {
        const n = fs.readSync(dataFd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        for (let done = 0; done < n;) done += fs.writeSync(out, buf, done, n - done, pos + done);
        pos += n;
      }
    } finally {
      fs.closeSync(out);
    }
    const modelPath = path.join(dir, 'model.onnx');
    fs.writeFileSync(modelPath, model);
    return await ort.InferenceSession.create(modelPath, sessionOptions(cfg));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A session on a model file whose external data lies beside it (a cache entry's). */
export async function sessionFromFile(modelPath: string, cfg: SessionConfig = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelPath, sessionOptions(cfg));
}

/** A float32 tensor over `data` (no copy). */
export function f32Tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** An int64 tensor from plain numbers. */
export function i64Tensor(values: readonly number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
}

export { ort };

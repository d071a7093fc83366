// The runtime's converted weights and built graphs, kept between loads (onnx/folderCache.ts): a model
// loaded before skips reading and converting every weight, the longest part of a load.
//
// An entry holds weights.bin (the converted initializers, as ExternalDataFile writes them), base.onnx and
// lora.onnx (the inference graph without and with LoRA inputs, both reading weights.bin), head.onnx (and,
// on the CPU, the head as ONNX Runtime packed it), and a record of where the embedding table lies in
// weights.bin and of each graph's hash. Its key hashes everything the bytes depend on: the model's
// files (identity.ts modelStamp: paths, sizes, times, inodes, sampled bytes), the graph options, and the
// code that converted them (the bytes of the running bundle, which hold the package version too), so a
// changed model, a changed setting or a new build never reads an old entry.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GemmaConfig } from '../model/config';
import type { NbitsLayout } from '../model/quantLayout';
import { WEIGHTS_FILE } from '../onnx/session';
import type { EmbeddingTable, PlacedBytes } from './params';

/** Where the runtime keeps converted models, and the stamp of the model being loaded. */
export interface RuntimeCacheOptions {
  /** The cache folder (the CLI's <cache>/converted, the extension's global storage). */
  root: string;
  /** identity.ts modelStamp of the model. */
  modelStamp: string;
}

/** File names within an entry. */
export const BASE_GRAPH = 'base.onnx';
export const LORA_GRAPH = 'lora.onnx';
export const HEAD_GRAPH = 'head.onnx';
/** The head as ONNX Runtime optimised and packed it for the CPU, and the data file beside it (packed weights included). */
export const HEAD_PACKED_GRAPH = 'head.packed.onnx';
export const HEAD_PACKED_DATA = 'head.packed.bin';

let codeHash: string | null = null;

/**
 * A hash of the code that converts: the bundle this runs from (dist/worker.js, dist/cli.js), or, run from
 * the sources (tsx), every source file of the engine, so that an edit during development is a new key too.
 */
function codeStamp(): string {
  if (codeHash === null) {
    const h = createHash('sha256');
    const files = __filename.endsWith('.ts') ? sourcesUnder(path.join(__dirname, '..')) : [__filename];
    for (const f of files) {
      try {
        h.update(f).update(fs.readFileSync(f));
      } catch {
        h.update(`${f}: unreadable`);
      }
    }
    codeHash = h.digest('hex');
  }
  return codeHash;
}

function sourcesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** The entry key of a model converted with `graphOptions`. */
export function runtimeCacheKey(modelStamp: string, graphOptions: object): string {
  return createHash('sha256').update(JSON.stringify({ code: codeStamp(), model: modelStamp, graph: graphOptions })).digest('hex').slice(0, 40);
}

/** What an entry records beside its files. */
export interface RuntimeRecord {
  /** Whether the entry holds HEAD_PACKED_GRAPH and HEAD_PACKED_DATA. */
  packedHead: boolean;
  shape: { layers: number; hidden: number; vocabSize: number };
  /**
   * The sha256 of each graph file (they are small): checked when the entry is opened, because a runtime whose
   * layers and head run natively may never open a graph in ONNX Runtime, which would otherwise find it damaged.
   */
  graphs: Record<string, string>;
  embedding:
    | { kind: 'nbits'; layout: NbitsLayout; columns: number; data: number; scales: number; mins: number | null }
    | { kind: 'f32'; columns: number; data: number };
}

function offsetOf(b: PlacedBytes): number {
  const p = b.placement();
  if (!('offset' in p) || p.location !== WEIGHTS_FILE) throw new Error('the embedding table is not in the data file');
  return p.offset;
}

/** The hash RuntimeRecord.graphs keeps of a graph file's bytes. */
export function graphHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Throws unless `bytes` are the graph file `name` the entry's record describes. */
export function checkGraph(meta: unknown, name: string, bytes: Uint8Array): void {
  const graphs = (meta as Partial<RuntimeRecord> | null)?.graphs;
  if (!graphs || typeof graphs !== 'object' || graphs[name] !== graphHash(bytes)) throw new Error(`the cached runtime's ${name} is not the one it was built with`);
}

/** The record of a runtime whose embedding table is `table` (its bytes streamed to the data file) and whose graph files hash to `graphs`. */
export function runtimeRecord(cfg: GemmaConfig, table: EmbeddingTable, packedHead: boolean, graphs: Record<string, string>): RuntimeRecord {
  const shape = { layers: cfg.layers, hidden: cfg.hidden, vocabSize: cfg.vocabSize };
  if (table.kind === 'f32') return { packedHead, shape, graphs, embedding: { kind: 'f32', columns: table.columns, data: offsetOf(table.data) } };
  return {
    packedHead,
    shape,
    graphs,
    embedding: {
      kind: 'nbits', layout: table.layout, columns: table.columns, data: offsetOf(table.data), scales: offsetOf(table.scales),
      mins: table.mins ? offsetOf(table.mins) : null,
    },
  };
}

const placed = (offset: number): PlacedBytes => ({ placement: () => ({ location: WEIGHTS_FILE, offset }) });
const isOffset = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Whether an entry's record says it holds the packed head. */
export function hasPackedHead(meta: unknown): boolean {
  return (meta as Partial<RuntimeRecord> | null)?.packedHead === true;
}

/** The embedding table an entry's record describes, checked against the model's config; throws on anything else. */
export function embeddingFromRecord(meta: unknown, cfg: GemmaConfig): EmbeddingTable {
  const r = meta as Partial<RuntimeRecord> | null;
  const s = r?.shape;
  if (!s || s.layers !== cfg.layers || s.hidden !== cfg.hidden || s.vocabSize !== cfg.vocabSize) throw new Error('the cached runtime is of another shape');
  const e = r.embedding as Record<string, unknown> | undefined;
  if (!e || e.columns !== cfg.hidden || !isOffset(e.data)) throw new Error('the cached runtime has no embedding table record');
  if (e.kind === 'f32') return { kind: 'f32', columns: cfg.hidden, data: placed(e.data) };
  const l = e.layout as Partial<NbitsLayout> | undefined;
  const layoutOk = l && (l.bits === 4 || l.bits === 8) && (l.blockSize === 16 || l.blockSize === 32) && typeof l.zeroPoint === 'number' && typeof l.hasMins === 'boolean';
  if (e.kind !== 'nbits' || !layoutOk || !isOffset(e.scales) || !(e.mins === null || isOffset(e.mins)) || (e.mins !== null) !== l.hasMins) {
    throw new Error('the cached runtime has a bad embedding table record');
  }
  const layout: NbitsLayout = { bits: l.bits!, blockSize: l.blockSize!, zeroPoint: l.zeroPoint!, hasMins: l.hasMins! };
  return { kind: 'nbits', layout, columns: cfg.hidden, data: placed(e.data), scales: placed(e.scales), mins: e.mins === null ? null : placed(e.mins as number) };
}

// loadModel: a .gguf file or a Hugging Face folder → ModelWeights (weights.ts conventions) + where the
// tokenizer comes from. Tensors are read one at a time, and converted a few rows at a time, so the file
// is never in memory whole and an f32 tensor that becomes Q4_0 is never held as f32 whole.
// openWeights: the same checks and conversions, but as a WeightSource read on demand, row ranges at a
// time, so a runtime can stream the weights into its own storage without holding the model at all.
//
// precision 'q4': every block-quantised tensor (Q4_0 … Q6_K, IQ4_NL, IQ4_XS; quantTypes.ts) is kept byte for
//   byte and runs at its own precision, never requantised. Float tensors of a GGUF (F32/F16/BF16: the
//   precision its maker chose) are held as float32; a Hugging Face folder's float weights (a training
//   checkpoint, bf16 or f32) are quantised to Q4_0 with ggml's reference rule, embedding included.
// precision 'f32': every tensor is dequantised/widened to Float32Array (for exactness checks).
// Norm weights are always f32 multipliers (1 + w): GGUF stores them so, HF's w gets 1 added in float32.
// Every read is checked for NaN and infinities (finite.ts) before it is converted: a damaged tensor is
// refused by file and name instead of spreading into every answer.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { configFromHf, ConfigError, type GemmaConfig } from './config';
import { readFdInto } from './fileRange';
import { findNonFinite, requireFiniteRaw } from './finite';
import { GgufError, readGguf, readGgufTensor, type GgufFile, type GgufTensorInfo } from './gguf';
import { ggufConfig, ggufToHfName, ggufTokenizerSource } from './ggufGemma';
import type { TensorDtype } from './ggufFormat';
import { bf16ArrayToF32, f16ArrayToF32, Q4_0_BLOCK_BYTES, QK, quantizeQ4_0 } from './quant';
import { dequantizeBlocks, isQuantDtype } from './quantTypes';
import { FileTooLargeError, modelPathKind, NotRegularFileError, openRegularFile, readRegularFile } from './regularFile';
import { readSafetensorsHeader, SafetensorsError, type SafetensorsFile } from './safetensors';
import type { TokenizerSource } from './tokenizerSource';
import { expectedShapes, isNormWeight, type ModelWeights, type Weight } from './weights';
import type { WeightSource } from './weightSource';
import { errorText, jsonForMessage, shownName } from '../../common/quote';
import { MAX_CONFIG_JSON_BYTES, MAX_INDEX_JSON_BYTES } from './bounds';

export type Precision = 'q4' | 'f32';

export interface LoadOptions {
  precision: Precision;
}

export interface LoadedModel {
  weights: ModelWeights;
  /** null when an HF folder has no tokenizer.json. */
  tokenizerSource: TokenizerSource | null;
  format: 'gguf' | 'safetensors';
  /** What the loader left out and why (a vision tower, …), one line each, for the log. */
  notes: string[];
}

export class ModelLoadError extends Error {}

/** One tensor in a file, readable a few rows at a time. A row is the last (contiguous) dimension. */
interface TensorSource {
  file: string;
  /** Its name in the file, for messages. */
  label: string;
  /** HF order. */
  shape: number[];
  dtype: TensorDtype;
  rows: number;
  rowBytes: number;
  /** The stored values are already the norm multiplier 1+w (GGUF) rather than w (HF). */
  normHasOne: boolean;
  /** What precision q4 gives a float tensor of this file: kept float32 (GGUF) or quantised to Q4_0 (HF). */
  floatsAs: 'f32' | 'q4_0';
  read(rowStart: number, rowCount: number, into: Uint8Array, intoOffset: number): void;
  /** The file offset of row 0, where the rows are contiguous there as stored (GGUF tensors). */
  offset?: number;
}

const CHUNK_BYTES = 4 << 20;

/** A model file opened for reading its weights on demand (openWeights). */
export interface OpenedWeights {
  source: WeightSource;
  tokenizerSource: TokenizerSource | null;
  format: 'gguf' | 'safetensors';
  notes: string[];
}

/** One model file's tensors, checked against the config, not yet read. */
interface Located {
  where: string;
  config: GemmaConfig;
  sources: Map<string, TensorSource>;
  tokenizerSource: TokenizerSource | null;
  format: 'gguf' | 'safetensors';
  notes: string[];
}

/** Loads a model from a .gguf file or a Hugging Face folder. */
export function loadModel(modelPath: string, opts: LoadOptions): LoadedModel {
  const m = locate(modelPath);
  return { weights: convertAll(m.where, m.config, m.sources, opts), tokenizerSource: m.tokenizerSource, format: m.format, notes: m.notes };
}

/**
 * Opens a model like loadModel (same checks, same errors, same converted values) but reads each weight
 * only when asked, a few rows at a time: the runtime streams weights into its own storage without the
 * whole model ever being held in memory.
 */
export function openWeights(modelPath: string, opts: LoadOptions): OpenedWeights {
  const m = locate(modelPath);
  const expected = checkSources(m.where, m.config, m.sources);
  // The closures below capture `sources`, not `m`, so the tokenizer source can be collected once built.
  const sources = m.sources;
  const source = (name: string): TensorSource => {
    const s = sources.get(name);
    if (!s || !expected.has(name)) throw new Error(`model has no weight ${name}`);
    return s;
  };
  const weights: WeightSource = {
    config: m.config,
    shape: (name) => [...expected.get(name) ?? source(name).shape],
    storage: (name) => storageOf(name, source(name), opts),
    rows: (name, row0, count) => {
      const s = source(name);
      if (row0 < 0 || count < 0 || row0 + count > s.rows) throw new Error(`weight ${name}: rows ${row0}+${count} outside 0…${s.rows}`);
      return convertRows(name, s, opts, row0, count);
    },
    stored: (name) => {
      const s = source(name);
      return s.offset !== undefined && isQuantDtype(s.dtype) && storageOf(name, s, opts) === s.dtype ? { file: s.file, offset: s.offset } : null;
    },
  };
  return { source: weights, tokenizerSource: m.tokenizerSource, format: m.format, notes: m.notes };
}

function locate(modelPath: string): Located {
  let kind: 'file' | 'folder';
  try {
    kind = modelPathKind(modelPath);
  } catch (e) {
    if (e instanceof NotRegularFileError) throw new ModelLoadError(e.message);
    throw new ModelLoadError(`${modelPath}: no such file or folder`);
  }
  return kind === 'folder' ? locateHfFolder(modelPath) : locateGgufFile(modelPath);
}

function locateGgufFile(file: string): Located {
  const g = readGguf(file);
  const config = ggufConfig(g);
  // The read closures keep only the tensor table: the metadata (262144 vocabulary strings, scores and
  // types) must not live as long as the weight source does.
  const data: GgufFile = { ...g, metadata: new Map() };
  const sources = new Map<string, TensorSource>();
  /** Rows [row0, row0+rows) of GGUF tensor t, as the HF weight `hf`. */
  const add = (hf: string, t: GgufTensorInfo, row0: number, rows: number) => sources.set(hf, {
    file,
    label: row0 === 0 && rows === t.rows ? t.name : `${t.name} rows ${row0}…${row0 + rows - 1}`,
    shape: t.ne.length === 1 ? [t.ne[0]] : [rows, t.ne[0]],
    dtype: t.dtype,
    rows,
    rowBytes: t.rowBytes,
    normHasOne: true,
    floatsAs: 'f32',
    read: (rowStart, rowCount, into, intoOffset) => void readGgufTensor(data, t.name, row0 + rowStart, rowCount, into, intoOffset),
    offset: t.offset + row0 * t.rowBytes,
  });
  const vision = new SkippedTensors('vision tensors (v.*, mm.*)');
  for (const t of g.tensors.values()) {
    const hf = ggufToHfName(t.name);
    const fused = /^blk\.(\d+)\.attn_qkv\.weight$/.exec(t.name);
    if (/^(v|mm)\./.test(t.name)) {
      vision.add(t.nbytes);
    } else if (hf !== null && t.ne.length <= 2) {
      add(hf, t, 0, t.rows);
    } else if (fused && t.ne.length === 2) {
      // llama.cpp also accepts q, k and v fused along the output dimension: rows q, then k, then v.
      const q = config.heads * config.headDim, kv = config.kvHeads * config.headDim;
      if (t.rows !== q + 2 * kv) throw new GgufError(file, `tensor ${t.name} has ${t.rows} rows, q+k+v need ${q + 2 * kv}`);
      const p = `model.layers.${fused[1]}.self_attn`;
      add(`${p}.q_proj.weight`, t, 0, q);
      add(`${p}.k_proj.weight`, t, q, kv);
      add(`${p}.v_proj.weight`, t, q + kv, kv);
    } else if (t.name === 'output.weight') {
      throw new GgufError(file, 'has an untied output.weight; Gemma 3 ties the LM head to token_embd and this loader supports only that');
    } else {
      throw new GgufError(file, `unexpected tensor ${shownName(t.name)} [${t.ne}] for gemma3`);
    }
  }
  return { where: file, config, sources, tokenizerSource: ggufTokenizerSource(g), format: 'gguf', notes: vision.notes(file) };
}

const ST_DTYPES: Partial<Record<string, TensorDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** Tensors a model file holds that the text decoder does not use, counted for one note in the log. */
class SkippedTensors {
  private count = 0;
  private bytes = 0;
  constructor(private readonly what: string) {}
  add(bytes: number): void {
    this.count++;
    this.bytes += bytes;
  }
  notes(where: string): string[] {
    if (this.count === 0) return [];
    return [`${where}: skipped ${this.count} ${this.what}, ${(this.bytes / 2 ** 20).toFixed(1)} MiB: only the text decoder runs`];
  }
}

/**
 * The text decoder's HF name of a checkpoint tensor, 'vision' for a multimodal checkpoint's vision tower or
 * projector, or 'tied' for an LM head tied to the embedding. Gemma3ForConditionalGeneration saves its
 * text decoder as `language_model.model.*` (transformers ≤ 4.51) or `model.language_model.*` (≥ 4.52).
 */
function hfTextName(name: string): string | 'vision' | 'tied' {
  if (name === 'lm_head.weight' || name === 'language_model.lm_head.weight') return 'tied'; // every Gemma 3 ties it
  if (/^(model\.)?(vision_tower|multi_modal_projector|vision_model|multimodal_projector)\./.test(name)) return 'vision';
  if (name.startsWith('language_model.model.')) return `model.${name.slice('language_model.model.'.length)}`;
  if (name.startsWith('model.language_model.')) return `model.${name.slice('model.language_model.'.length)}`;
  return name;
}

function locateHfFolder(dir: string): Located {
  const configFile = path.join(dir, 'config.json');
  const config = parseHfConfig(configFile);
  const files = safetensorsFiles(dir);
  const sources = new Map<string, TensorSource>();
  const vision = new SkippedTensors('vision-tower and projector tensors');
  for (const f of files) {
    let st: SafetensorsFile;
    try {
      st = readSafetensorsHeader(f);
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      throw new ModelLoadError(`${f}: cannot read: ${(e as Error).message}`);
    }
    for (const [stored, e] of st.entries) {
      const name = hfTextName(stored);
      if (name === 'tied') continue;
      if (name === 'vision') {
        vision.add(e.end - e.begin);
        continue;
      }
      const dtype = ST_DTYPES[e.dtype];
      if (!dtype) throw new ModelLoadError(`${f}: tensor ${shownName(stored)} has dtype ${e.dtype}; model weights must be F32, F16 or BF16`);
      if (sources.has(name)) throw new ModelLoadError(`${f}: tensor ${shownName(name)} appears more than once (in this or another shard, under this or a multimodal prefix)`);
      const last = e.shape.length ? e.shape[e.shape.length - 1] : 1;
      const bytes = dtype === 'f32' ? 4 : 2;
      sources.set(name, {
        file: f,
        label: stored,
        shape: e.shape,
        dtype,
        rows: e.shape.slice(0, -1).reduce((a, b) => a * b, 1),
        rowBytes: last * bytes,
        normHasOne: false,
        floatsAs: 'q4_0',
        read: (rowStart, rowCount, into, intoOffset) => {
          const fd = openRegularFile(f);
          try {
            readFdInto(fd, f, st.dataOffset + e.begin + rowStart * last * bytes, rowCount * last * bytes, into, intoOffset);
          } finally {
            fs.closeSync(fd);
          }
        },
      });
    }
  }
  const tok = path.join(dir, 'tokenizer.json');
  const tokenizerSource: TokenizerSource | null = fs.existsSync(tok) ? { kind: 'tokenizer.json', path: path.resolve(tok) } : null;
  return { where: dir, config, sources, tokenizerSource, format: 'safetensors', notes: vision.notes(dir) };
}

/** The text of a small JSON file of a model folder, refused when larger than `max` bytes. */
function readSmallText(file: string, max: number): string {
  try {
    return readRegularFile(file, max).toString('utf8');
  } catch (e) {
    if (e instanceof NotRegularFileError || e instanceof FileTooLargeError) throw new ModelLoadError(e.message);
    throw e;
  }
}

function parseHfConfig(file: string): GemmaConfig {
  let text: string;
  try {
    text = readSmallText(file, MAX_CONFIG_JSON_BYTES);
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`${file}: missing (a Hugging Face model folder needs config.json)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError(`${file}: not valid JSON (${errorText(e)})`);
  }
  try {
    return configFromHf(json);
  } catch (e) {
    if (e instanceof ConfigError) throw new ModelLoadError(`${file}: ${e.message}`);
    throw e;
  }
}

/** The weight files of an HF folder: the shards an index names, or model.safetensors. */
function safetensorsFiles(dir: string): string[] {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    let map: unknown;
    try {
      map = (JSON.parse(readSmallText(index, MAX_INDEX_JSON_BYTES)) as { weight_map?: unknown } | null)?.weight_map;
    } catch (e) {
      if (e instanceof ModelLoadError) throw e;
      throw new ModelLoadError(`${index}: not valid JSON (${errorText(e)})`);
    }
    if (typeof map !== 'object' || map === null) throw new ModelLoadError(`${index}: no weight_map object`);
    const shards = new Set<string>();
    for (const v of Object.values(map)) {
      if (typeof v !== 'string' || v !== path.basename(v) || !v.endsWith('.safetensors')) throw new ModelLoadError(`${index}: weight_map names a bad shard file ${jsonForMessage(v)}`);
      shards.add(v);
    }
    return [...shards].sort().map((s) => {
      const f = path.join(dir, s);
      if (!fs.existsSync(f)) throw new ModelLoadError(`${index}: shard ${shownName(s)} is missing`);
      return f;
    });
  }
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  throw new ModelLoadError(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/** Checks every expected tensor's presence and shape; returns the expected shapes. */
function checkSources(where: string, config: GemmaConfig, sources: Map<string, TensorSource>): Map<string, number[]> {
  const expected = expectedShapes(config);
  for (const [name, shape] of expected) {
    const s = sources.get(name);
    if (!s) throw new ModelLoadError(`${where}: tensor ${name} is missing`);
    if (s.shape.length !== shape.length || s.shape.some((d, i) => d !== shape[i])) {
      throw new ModelLoadError(`${s.file}: tensor ${shownName(s.label)} has shape [${s.shape}] but the config expects [${shape}]`);
    }
  }
  for (const [name, s] of sources) {
    if (!expected.has(name)) throw new ModelLoadError(`${s.file}: unexpected tensor ${shownName(s.label)} (layer count or names disagree with the config)`);
  }
  return expected;
}

/** Checks the tensors, then converts each to its in-memory form. */
function convertAll(where: string, config: GemmaConfig, sources: Map<string, TensorSource>, opts: LoadOptions): ModelWeights {
  const expected = checkSources(where, config, sources);
  const weights = new Map<string, Weight>();
  for (const [name, shape] of expected) {
    const s = sources.get(name)!;
    weights.set(name, { shape, value: convertOne(name, s, opts) });
  }
  return { config, weights };
}

function convertOne(name: string, s: TensorSource, opts: LoadOptions): Weight['value'] {
  return convertRows(name, s, opts, 0, s.rows);
}

/** The in-memory form a tensor takes under these options. */
function storageOf(name: string, s: TensorSource, opts: LoadOptions): Weight['value']['type'] {
  if (isNormWeight(name) || opts.precision === 'f32') return 'f32';
  if (isQuantDtype(s.dtype)) return s.dtype;
  return s.floatsAs;
}

/** Rows [row0, row0+count) of a tensor in its in-memory form (each row converts on its own, so any range gives the same bytes). */
function convertRows(name: string, s: TensorSource, opts: LoadOptions, row0: number, count: number): Weight['value'] {
  const storage = storageOf(name, s, opts);
  if (storage === 'f32') {
    const data = toF32(s, row0, count);
    if (isNormWeight(name) && !s.normHasOne) for (let i = 0; i < data.length; i++) data[i] = 1 + data[i];
    return { type: 'f32', data };
  }
  if (storage === s.dtype) return { type: storage, data: readRows(s, row0, count) } as Weight['value'];
  return { type: 'q4_0', data: toQ4_0(s, row0, count) };
}

function readRows(s: TensorSource, row0: number, count: number): Uint8Array {
  const out = new Uint8Array(count * s.rowBytes);
  readFinite(s, row0, count, out, 0);
  return out;
}

/** s.read, then a check that the rows read hold no NaN or infinity (for quantised rows: no such block scale). */
function readFinite(s: TensorSource, rowStart: number, rowCount: number, into: Uint8Array, intoOffset: number): void {
  s.read(rowStart, rowCount, into, intoOffset);
  const rowLen = s.shape.length ? s.shape[s.shape.length - 1] : 1;
  requireFiniteRaw(s.file, s.label, s.dtype, into.subarray(intoOffset, intoOffset + rowCount * s.rowBytes), rowCount * rowLen, rowStart * rowLen);
}

/** Decodes n values of a dtype from raw bytes into out[outOffset…]. */
function decode(dtype: TensorDtype, bytes: Uint8Array, n: number, out: Float32Array, outOffset: number): void {
  switch (dtype) {
    case 'f32': out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n), outOffset); break;
    case 'f16': f16ArrayToF32(new Uint16Array(bytes.buffer, bytes.byteOffset, n), out, outOffset); break;
    case 'bf16': bf16ArrayToF32(new Uint16Array(bytes.buffer, bytes.byteOffset, n), out, outOffset); break;
    default: dequantizeBlocks(dtype, bytes, n, out, outOffset); break;
  }
}

/** Visits rows [row0, row0+count) in chunks of about CHUNK_BYTES, each read into a reused buffer; rowStart is relative to row0. */
function forEachChunk(s: TensorSource, row0: number, count: number, visit: (rowStart: number, rowCount: number, bytes: Uint8Array) => void): void {
  const per = Math.max(1, Math.floor(CHUNK_BYTES / Math.max(1, s.rowBytes)));
  const buf = new Uint8Array(Math.min(per, count) * s.rowBytes);
  for (let r = 0; r < count; r += per) {
    const n = Math.min(per, count - r);
    readFinite(s, row0 + r, n, buf, 0);
    visit(r, n, buf.subarray(0, n * s.rowBytes));
  }
}

function toF32(s: TensorSource, row0: number, count: number): Float32Array {
  const rowLen = s.shape.length ? s.shape[s.shape.length - 1] : 1;
  const out = new Float32Array(count * rowLen);
  forEachChunk(s, row0, count, (r, n, bytes) => decode(s.dtype, bytes, n * rowLen, out, r * rowLen));
  return out;
}

function toQ4_0(s: TensorSource, row0: number, count: number): Uint8Array {
  const rowLen = s.shape[s.shape.length - 1];
  if (rowLen % QK !== 0) {
    throw new ModelLoadError(`${s.file}: tensor ${shownName(s.label)} has rows of ${rowLen} values, not a multiple of ${QK}, so it cannot be held as Q4_0; load it with precision f32`);
  }
  const q4Row = (rowLen / QK) * Q4_0_BLOCK_BYTES;
  const out = new Uint8Array(count * q4Row);
  let scratch = new Float32Array(0);
  forEachChunk(s, row0, count, (r, n, bytes) => {
    if (scratch.length !== n * rowLen) scratch = new Float32Array(n * rowLen);
    decode(s.dtype, bytes, n * rowLen, scratch, 0);
    quantizeQ4_0(scratch, out, r * q4Row);
    // A finite weight above 8 × 65504 in size has no f16 block scale: it would become infinity.
    if (findNonFinite('q4_0', out.subarray(r * q4Row, (r + n) * q4Row), n * rowLen)) {
      throw new ModelLoadError(`${s.file}: tensor ${shownName(s.label)} has weights too large for 4-bit blocks (a block scale would be infinite); load it with precision f32`);
    }
  });
  return out;
}

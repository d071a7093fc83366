// Random-weight Gemma 3 models for tests and benchmarks, for any GemmaConfig, as a GGUF file (llama.cpp's
// gemma3 layout) or a Hugging Face folder (config.json, model.safetensors, tokenizer.json). The vocabulary is
// the synthetic one (syntheticVocab.ts) unless a real tokenizer is given; the weights do not depend on it.
//
// Each tensor's values depend only on (seed, tensor name): a per-tensor generator seeded from both, so the
// same seed gives the same weights in every format and dtype (up to that dtype's rounding), and a GGUF f32
// and an HF f32 model of one seed load to identical ModelWeights. Values follow the HF fixtures' init
// (embedding std 0.1, matrices std 0.02, norm weights w with std 0.1, so `w` vs `1+w` mistakes show).
// Tensors are generated and encoded in chunks and streamed to disk: the 270M shape never sits in memory.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sfc32 } from '../rng';
import { configToHf, type GemmaConfig } from './config';
import { fileTypeOf, gemma3Metadata, hfToGgufName, type GgufVocab } from './ggufGemma';
import { writeGguf, type GgufTensorOut } from './ggufWriter';
import { f32ArrayToBf16, f32ArrayToF16, QK, quantizeQ4_0, quantizeQ8_0 } from './quant';
import { writeSafetensorsStreaming, type SafetensorsOutDtype } from './safetensorsWriter';
import { writeFileAtomicSync } from '../../common/atomicWrite';
import { syntheticTokenizerJson, syntheticVocab } from './syntheticVocab';
import { EMBED_NAME, expectedShapes, FINAL_NORM_NAME, isNormWeight, layerWeightNames } from './weights';

export const INIT_STD = { embedding: 0.1, matrix: 0.02, norm: 0.1 };
const CHUNK = 1 << 20; // values per generated chunk (a multiple of the 32-value block)

/** The seed of one tensor's generator: FNV-1a over its name, started from the model seed. */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h ^ Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0;
}

function stdOf(name: string): number {
  if (name === EMBED_NAME) return INIT_STD.embedding;
  return isNormWeight(name) ? INIT_STD.norm : INIT_STD.matrix;
}

/**
 * The random values of one tensor as float32 chunks (CHUNK values each, the last one shorter).
 * Norm weights come as the stored w; `addOne` turns them into the multiplier 1+w that GGUF stores.
 */
export function* randomTensorChunks(seed: number, name: string, count: number, addOne = false): Generator<Float32Array> {
  const rng = new Sfc32(tensorSeed(seed, name));
  const std = stdOf(name);
  for (let start = 0; start < count; start += CHUNK) {
    const n = Math.min(CHUNK, count - start);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = addOne ? Math.fround(1 + Math.fround(rng.normal() * std)) : rng.normal() * std;
    yield out;
  }
}

/** The random values of one tensor, whole (for tests on small configs). */
export function randomTensor(seed: number, name: string, count: number, addOne = false): Float32Array {
  const out = new Float32Array(count);
  let at = 0;
  for (const c of randomTensorChunks(seed, name, count, addOne)) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function encode(chunk: Float32Array, dtype: RandomGgufDtype): Uint8Array {
  switch (dtype) {
    case 'f32': return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    case 'f16': { const h = f32ArrayToF16(chunk); return new Uint8Array(h.buffer); }
    case 'bf16': { const h = f32ArrayToBf16(chunk); return new Uint8Array(h.buffer); }
    case 'q4_0': return quantizeQ4_0(chunk);
    case 'q8_0': return quantizeQ8_0(chunk);
  }
}

function* encodedChunks(seed: number, name: string, count: number, dtype: RandomGgufDtype, addOne: boolean): Generator<Uint8Array> {
  for (const c of randomTensorChunks(seed, name, count, addOne)) yield encode(c, dtype);
}

/** HF names in the order the writers emit them: embedding, layer by layer, final norm. */
function tensorOrder(cfg: GemmaConfig): string[] {
  const names = [EMBED_NAME];
  for (let i = 0; i < cfg.layers; i++) names.push(...Object.values(layerWeightNames(i)));
  names.push(FINAL_NORM_NAME);
  return names;
}

// q8_0 (all linear weights Q8_0) exists for tests of the loader's Q8_0 rules; the CLI offers the other four.
export type RandomGgufDtype = 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q8_0';

export interface RandomGgufOptions {
  seed: number;
  /** Linear weights' type; norms are always F32 (as llama.cpp's converter keeps 1-D tensors). */
  dtype: RandomGgufDtype;
  /** Embedding type; default: the dtype, except Q8_0 for q4_0 (Google's QAT GGUF layout). */
  embedding?: RandomGgufDtype;
  name?: string;
  /** The vocabulary to embed (as tokenizerJsonToGguf.ts makes from a tokenizer.json); default: the synthetic one. */
  vocab?: GgufVocab;
}

/** Writes a random-weight gemma3 GGUF (norms stored as 1+w, the given or the synthetic vocabulary embedded). */
export function writeRandomGguf(file: string, cfg: GemmaConfig, opts: RandomGgufOptions): void {
  const vocab = opts.vocab ?? syntheticVocab(cfg.vocabSize);
  if (vocab.tokens.length !== cfg.vocabSize) throw new Error(`the vocabulary has ${vocab.tokens.length} tokens but the config's vocab size is ${cfg.vocabSize}`);
  const embedType: RandomGgufDtype = opts.embedding ?? (opts.dtype === 'q4_0' ? 'q8_0' : opts.dtype);
  const shapes = expectedShapes(cfg);
  const tensors: GgufTensorOut[] = tensorOrder(cfg).map((name) => {
    const shape = shapes.get(name)!;
    const norm = isNormWeight(name);
    const dtype: RandomGgufDtype = norm ? 'f32' : name === EMBED_NAME ? embedType : opts.dtype;
    const k = shape[shape.length - 1];
    if ((dtype === 'q4_0' || dtype === 'q8_0') && k % QK !== 0) {
      throw new Error(`${name} has rows of ${k} values, not a multiple of ${QK}: it cannot be stored as ${dtype.toUpperCase()}`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    return {
      name: hfToGgufName(name)!,
      ne: shape.slice().reverse(),
      dtype,
      data: () => encodedChunks(opts.seed, name, count, dtype, norm),
    };
  });
  writeGguf(file, gemma3Metadata(cfg, vocab, fileTypeOf(opts.dtype), opts.name), tensors);
}

export type RandomHfDtype = 'f32' | 'f16' | 'bf16';

/**
 * Writes a random-weight HF folder: config.json, model.safetensors (HF names, no lm_head, norms as w), and
 * tokenizer.json: a copy of `opts.tokenizerJson` (the caller checks that its vocabulary fits the config) or
 * the synthetic one.
 */
export function writeRandomHf(dir: string, cfg: GemmaConfig, opts: { seed: number; dtype: RandomHfDtype; tokenizerJson?: string }): void {
  const stDtype: SafetensorsOutDtype = { f32: 'F32', f16: 'F16', bf16: 'BF16' }[opts.dtype] as SafetensorsOutDtype;
  const shapes = expectedShapes(cfg);
  // Sorted names, as torch's save_pretrained lays them out.
  const names = [...shapes.keys()].sort();
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), names.map((name) => {
    const shape = shapes.get(name)!;
    const count = shape.reduce((a, b) => a * b, 1);
    return { name, dtype: stDtype, shape, data: () => encodedChunks(opts.seed, name, count, opts.dtype, false) };
  }));
  const config = { ...configToHf(cfg), torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[opts.dtype] };
  writeFileAtomicSync(path.join(dir, 'config.json'), [JSON.stringify(config, null, 2) + '\n']);
  const tokenizer = opts.tokenizerJson === undefined ? JSON.stringify(syntheticTokenizerJson(syntheticVocab(cfg.vocabSize), cfg.bosId)) : fs.readFileSync(opts.tokenizerJson);
  writeFileAtomicSync(path.join(dir, 'tokenizer.json'), [tokenizer]);
}

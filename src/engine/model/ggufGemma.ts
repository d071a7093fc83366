// Gemma 3 in GGUF terms (../shared/docs/gguf-gemma3.md): GGUF tensor names ↔ Hugging Face names, the
// `gemma3.*` metadata ↔ GemmaConfig in both directions, and the embedded tokenizer.

import { countProblem, GEMMA3_LIMITS } from './bounds';
import { ConfigError, layerTypesFromPattern, validateConfig, type GemmaConfig, type LayerType } from './config';
import { GgufType, type GgufArray, type GgufValue } from './ggufFormat';
import { GgufError, ggufArray, ggufBool, ggufNumber, ggufString, type GgufFile } from './gguf';
import type { GgufTokenizerSource } from './tokenizerSource';
import { EMBED_NAME, FINAL_NORM_NAME } from './weights';
import { quote } from '../../common/quote';

const LAYER_PARTS: [gguf: string, hf: string][] = [
  ['attn_norm', 'input_layernorm'],
  ['attn_q', 'self_attn.q_proj'],
  ['attn_k', 'self_attn.k_proj'],
  ['attn_v', 'self_attn.v_proj'],
  ['attn_q_norm', 'self_attn.q_norm'],
  ['attn_k_norm', 'self_attn.k_norm'],
  ['attn_output', 'self_attn.o_proj'],
  ['post_attention_norm', 'post_attention_layernorm'],
  ['ffn_norm', 'pre_feedforward_layernorm'],
  ['ffn_gate', 'mlp.gate_proj'],
  ['ffn_up', 'mlp.up_proj'],
  ['ffn_down', 'mlp.down_proj'],
  ['post_ffw_norm', 'post_feedforward_layernorm'],
];
const G2H = new Map(LAYER_PARTS);
const H2G = new Map(LAYER_PARTS.map(([g, h]) => [h, g]));

/** The HF name of a GGUF tensor name, or null when it is not a Gemma 3 weight. */
export function ggufToHfName(name: string): string | null {
  if (name === 'token_embd.weight') return EMBED_NAME;
  if (name === 'output_norm.weight') return FINAL_NORM_NAME;
  const m = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(name);
  const part = m && G2H.get(m[2]);
  return part ? `model.layers.${m[1]}.${part}.weight` : null;
}

/** The GGUF name of an HF weight name, or null when it has none. */
export function hfToGgufName(name: string): string | null {
  if (name === EMBED_NAME) return 'token_embd.weight';
  if (name === FINAL_NORM_NAME) return 'output_norm.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(name);
  const part = m && H2G.get(m[2]);
  return part ? `blk.${m[1]}.${part}.weight` : null;
}

/** A per-layer hyperparameter stored as a scalar or an array (llama.cpp's get_key_or_arr); arrays must be uniform. */
function scalarOrUniform(g: GgufFile, key: string, required: boolean): number | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) {
    if (required) throw new GgufError(g.path, `metadata ${key} is missing`);
    return undefined;
  }
  if (v.type === GgufType.ARRAY) {
    const items = Array.from(v.value.items as ArrayLike<number>, Number);
    if (items.length === 0 || items.some((x) => x !== items[0])) throw new GgufError(g.path, `metadata ${key}: per-layer values ${JSON.stringify(items.slice(0, 8))}${items.length > 8 ? '…' : ''} differ, which Gemma 3 never does`);
    return items[0];
  }
  return ggufNumber(g, key);
}

/**
 * The shortest decimal that rounds to the same float32, so that a value written as f32 (1e-6 becomes
 * 9.99999997e-7) reads back as the number the HF config holds; float32 arithmetic sees no difference.
 */
export function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const c = Number(v.toPrecision(p));
    if (Math.fround(c) === Math.fround(v)) return c;
  }
  return v;
}

function nullable<T>(v: T | undefined, f: (x: T) => T): T | null {
  return v === undefined ? null : f(v);
}

/**
 * The linear RoPE factor of the full-attention layers: `gemma3.rope.scaling.type` (llama.cpp's default
 * "linear") with `rope.scaling.factor` (older files: `rope.scale_linear`; absent or 0: 1). "none" is 1;
 * yarn and longrope, which llama.cpp also writes, are refused by name.
 */
function ropeScaleOf(g: GgufFile): number {
  const type = ggufString(g, 'gemma3.rope.scaling.type') ?? 'linear';
  if (type === 'none') return 1;
  if (type !== 'linear') {
    const known = ['yarn', 'longrope'].includes(type);
    throw new GgufError(g.path, `gemma3.rope.scaling.type "${type}" is ${known ? 'not supported' : 'unknown'} (supported: linear, none)`);
  }
  const factor = ggufNumber(g, 'gemma3.rope.scaling.factor') ?? ggufNumber(g, 'gemma3.rope.scale_linear') ?? 0;
  if (!Number.isFinite(factor) || factor < 0) throw new GgufError(g.path, `gemma3.rope.scaling.factor ${factor} is not a positive number`);
  return factor === 0 ? 1 : shortestF32(factor);
}

/** Builds the GemmaConfig a gemma3 GGUF describes, with llama.cpp's defaults for optional keys. */
export function ggufConfig(g: GgufFile): GemmaConfig {
  const arch = ggufString(g, 'general.architecture');
  if (arch === undefined) throw new GgufError(g.path, 'metadata general.architecture is missing');
  if (arch === 'clip') throw new GgufError(g.path, 'is a vision projector (mmproj) file, not a language model: choose the text model GGUF that comes with it');
  if (arch !== 'gemma3') throw new GgufError(g.path, `architecture ${quote(arch)} is not supported (only gemma3)`);
  const k = (s: string) => `gemma3.${s}`;
  const req = (s: string): number => {
    const v = ggufNumber(g, k(s));
    if (v === undefined) throw new GgufError(g.path, `metadata ${k(s)} is missing`);
    return v;
  };
  const hidden = req('embedding_length');
  // Bounded before the per-layer types are built from it.
  const layers = req('block_count');
  const badLayers = countProblem(k('block_count'), layers, GEMMA3_LIMITS.layers);
  if (badLayers) throw new GgufError(g.path, badLayers);
  const heads = scalarOrUniform(g, k('attention.head_count'), true)!;
  const kvHeads = scalarOrUniform(g, k('attention.head_count_kv'), false) ?? heads;
  const intermediate = scalarOrUniform(g, k('feed_forward_length'), true)!;
  const headDim = ggufNumber(g, k('attention.key_length')) ?? hidden / heads;
  const valueLen = ggufNumber(g, k('attention.value_length'));
  if (valueLen !== undefined && valueLen !== headDim) throw new GgufError(g.path, `value_length ${valueLen} differs from key_length ${headDim}`);

  let layerTypes: LayerType[];
  const pat = g.metadata.get(k('attention.sliding_window_pattern'));
  if (pat === undefined) {
    layerTypes = layerTypesFromPattern(layers, 6);
  } else if (pat.type === GgufType.ARRAY) {
    const items = pat.value.items;
    if (pat.value.elemType !== GgufType.BOOL || items.length !== layers) throw new GgufError(g.path, `${k('attention.sliding_window_pattern')} must be a u32 or ${layers} bools`);
    layerTypes = (items as boolean[]).map((swa) => (swa ? 'sliding' : 'full'));
  } else {
    const p = ggufNumber(g, k('attention.sliding_window_pattern'))!;
    if (!Number.isInteger(p) || p < 1) throw new GgufError(g.path, `sliding_window_pattern ${p} is not a positive integer`);
    layerTypes = layerTypesFromPattern(layers, p);
  }
  const maxPositions = req('context_length');
  let slidingWindow = ggufNumber(g, k('attention.sliding_window')) ?? 0;
  if (slidingWindow === 0) {
    // llama.cpp: no window at all, every layer attends globally.
    layerTypes = layerTypes.map(() => 'full');
    slidingWindow = maxPositions;
  }

  const embd = g.tensors.get('token_embd.weight');
  const tokens = g.metadata.get('tokenizer.ggml.tokens');
  const vocabSize = embd && embd.ne.length === 2 ? embd.ne[1] : tokens?.type === GgufType.ARRAY ? tokens.value.items.length : 0;
  const cfg: GemmaConfig = {
    vocabSize,
    hidden,
    intermediate,
    layers,
    heads,
    kvHeads,
    headDim,
    // llama.cpp scales by 1/sqrt(head_dim) for every size but the 27B (62 layers), as HF's query_pre_attn_scalar.
    queryPreAttnScalar: layers === 62 ? hidden / heads : headDim,
    slidingWindow,
    layerTypes,
    ropeThetaGlobal: shortestF32(ggufNumber(g, k('rope.freq_base')) ?? 10_000),
    ropeThetaLocal: shortestF32(ggufNumber(g, k('rope.freq_base_swa')) ?? 10_000),
    ropeScaleGlobal: ropeScaleOf(g),
    // llama.cpp scales only the full-attention layers (rope_freq_scale_train_swa stays 1 for gemma3).
    ropeScaleLocal: 1,
    rmsNormEps: shortestF32(req('attention.layer_norm_rms_epsilon')),
    finalLogitSoftcap: nullable(ggufNumber(g, k('final_logit_softcapping')), shortestF32),
    maxPositions,
    bosId: ggufNumber(g, 'tokenizer.ggml.bos_token_id') ?? 2,
    eosId: ggufNumber(g, 'tokenizer.ggml.eos_token_id') ?? 1,
    padId: ggufNumber(g, 'tokenizer.ggml.padding_token_id') ?? 0,
  };
  try {
    validateConfig(cfg);
  } catch (e) {
    if (e instanceof ConfigError) throw new GgufError(g.path, `bad gemma3 metadata: ${e.message}`);
    throw e;
  }
  return cfg;
}

function stringItems(g: GgufFile, a: GgufArray | undefined, key: string): string[] | null {
  if (!a) return null;
  if (a.elemType !== GgufType.STRING) throw new GgufError(g.path, `metadata ${key} should be an array of strings`);
  return a.items as string[];
}

/** The SentencePiece/BPE vocabulary embedded in a GGUF, or null when it has none. */
export function ggufTokenizerSource(g: GgufFile): GgufTokenizerSource | null {
  const tokens = stringItems(g, ggufArray(g, 'tokenizer.ggml.tokens'), 'tokenizer.ggml.tokens');
  if (!tokens) return null;
  const sc = ggufArray(g, 'tokenizer.ggml.scores');
  const ty = ggufArray(g, 'tokenizer.ggml.token_type');
  if (sc && (sc.elemType !== GgufType.FLOAT32 || sc.items.length !== tokens.length)) throw new GgufError(g.path, `tokenizer.ggml.scores should be ${tokens.length} f32 values`);
  if (ty && (ty.elemType === GgufType.STRING || ty.elemType === GgufType.ARRAY || ty.items.length !== tokens.length)) throw new GgufError(g.path, `tokenizer.ggml.token_type should be ${tokens.length} integers`);
  return {
    kind: 'gguf',
    path: g.path,
    model: ggufString(g, 'tokenizer.ggml.model') ?? 'llama',
    pre: ggufString(g, 'tokenizer.ggml.pre') ?? null,
    tokens,
    scores: sc ? (sc.items as Float32Array) : null,
    types: ty ? Int32Array.from(ty.items as ArrayLike<number>) : null,
    merges: stringItems(g, ggufArray(g, 'tokenizer.ggml.merges'), 'tokenizer.ggml.merges'),
    bosId: ggufNumber(g, 'tokenizer.ggml.bos_token_id') ?? null,
    eosId: ggufNumber(g, 'tokenizer.ggml.eos_token_id') ?? null,
    unkId: ggufNumber(g, 'tokenizer.ggml.unknown_token_id') ?? null,
    padId: ggufNumber(g, 'tokenizer.ggml.padding_token_id') ?? null,
    addBosToken: ggufBool(g, 'tokenizer.ggml.add_bos_token') ?? true,
    addEosToken: ggufBool(g, 'tokenizer.ggml.add_eos_token') ?? false,
    addSpacePrefix: ggufBool(g, 'tokenizer.ggml.add_space_prefix') ?? false,
    chatTemplate: ggufString(g, 'tokenizer.chat_template') ?? null,
  };
}

/** A vocabulary to embed: tokens, SentencePiece scores and llama.cpp token types, one each per id. */
export interface GgufVocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  unkId: number;
  /** tokenizer.ggml.model: "llama" (SentencePiece, the default) or "gpt2" (BPE, with merges, no scores). */
  model?: 'llama' | 'gpt2';
  merges?: string[];
}

/** general.file_type (llama_ftype) of a file whose bulk weights are of this dtype. */
export function fileTypeOf(dtype: 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q8_0'): number {
  return { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 }[dtype];
}

/** The metadata set llama.cpp's converter writes for Gemma 3, in its order, for this config and vocabulary. */
export function gemma3Metadata(cfg: GemmaConfig, vocab: GgufVocab, fileType: number, name = 'Gemma 3 (random weights)'): [string, GgufValue][] {
  const u32 = (value: number): GgufValue => ({ type: GgufType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: GgufType.FLOAT32, value });
  const str = (value: string): GgufValue => ({ type: GgufType.STRING, value });
  const bool = (value: boolean): GgufValue => ({ type: GgufType.BOOL, value });
  const kv: [string, GgufValue][] = [
    ['general.architecture', str('gemma3')],
    ['general.type', str('model')],
    ['general.name', str(name)],
    ['general.alignment', u32(32)],
    ['gemma3.context_length', u32(cfg.maxPositions)],
    ['gemma3.embedding_length', u32(cfg.hidden)],
    ['gemma3.block_count', u32(cfg.layers)],
    ['gemma3.feed_forward_length', u32(cfg.intermediate)],
    ['gemma3.attention.head_count', u32(cfg.heads)],
    ['gemma3.attention.layer_norm_rms_epsilon', f32(cfg.rmsNormEps)],
    ['gemma3.attention.key_length', u32(cfg.headDim)],
    ['gemma3.attention.value_length', u32(cfg.headDim)],
    ['general.file_type', u32(fileType)],
    ['gemma3.rope.freq_base', f32(cfg.ropeThetaGlobal)],
    ['gemma3.rope.freq_base_swa', f32(cfg.ropeThetaLocal)],
    ['gemma3.attention.sliding_window', u32(cfg.slidingWindow)],
    ['gemma3.attention.head_count_kv', u32(cfg.kvHeads)],
  ];
  if (cfg.ropeScaleLocal !== 1) throw new Error('RoPE scaling on sliding layers has no GGUF key (llama.cpp scales only full-attention layers)');
  if (cfg.ropeScaleGlobal !== 1) kv.push(['gemma3.rope.scaling.type', str('linear')], ['gemma3.rope.scaling.factor', f32(cfg.ropeScaleGlobal)]);
  const pattern = slidingPattern(cfg.layerTypes);
  if (pattern === null) {
    kv.push(['gemma3.attention.sliding_window_pattern', { type: GgufType.ARRAY, value: { elemType: GgufType.BOOL, items: cfg.layerTypes.map((t) => t === 'sliding') } }]);
  } else if (pattern !== 6) {
    kv.push(['gemma3.attention.sliding_window_pattern', u32(pattern)]);
  }
  if (cfg.finalLogitSoftcap !== null) kv.push(['gemma3.final_logit_softcapping', f32(cfg.finalLogitSoftcap)]);
  const bpe = vocab.model === 'gpt2';
  kv.push(
    ['general.quantization_version', u32(2)],
    ['tokenizer.ggml.model', str(bpe ? 'gpt2' : 'llama')],
    ['tokenizer.ggml.pre', str('default')],
    ['tokenizer.ggml.tokens', { type: GgufType.ARRAY, value: { elemType: GgufType.STRING, items: vocab.tokens } }],
    bpe ? ['tokenizer.ggml.merges', { type: GgufType.ARRAY, value: { elemType: GgufType.STRING, items: vocab.merges ?? [] } }]
      : ['tokenizer.ggml.scores', { type: GgufType.ARRAY, value: { elemType: GgufType.FLOAT32, items: vocab.scores } }],
    ['tokenizer.ggml.token_type', { type: GgufType.ARRAY, value: { elemType: GgufType.INT32, items: vocab.types } }],
    ['tokenizer.ggml.bos_token_id', u32(cfg.bosId)],
    ['tokenizer.ggml.eos_token_id', u32(cfg.eosId)],
    ['tokenizer.ggml.unknown_token_id', u32(vocab.unkId)],
    ['tokenizer.ggml.padding_token_id', u32(cfg.padId)],
    ['tokenizer.ggml.add_bos_token', bool(true)],
    ['tokenizer.ggml.add_eos_token', bool(false)],
    ['tokenizer.ggml.add_space_prefix', bool(false)],
  );
  return kv;
}

/** The P with "layer i is global iff (i+1) % P == 0" that gives these layer types, or null when none does. */
function slidingPattern(types: LayerType[]): number | null {
  if (layerTypesFromPattern(types.length, 6).every((t, i) => t === types[i])) return 6;
  for (let p = 1; p <= types.length + 1; p++) {
    if (layerTypesFromPattern(types.length, p).every((t, i) => t === types[i])) return p;
  }
  return null;
}

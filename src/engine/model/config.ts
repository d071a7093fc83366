// GemmaConfig: every hyperparameter of a Gemma 3 text decoder, read from a Hugging Face config.json
// (both the 4.5x layout of the real checkpoint and the transformers 5 `rope_parameters` layout) or from
// GGUF metadata, and passed everywhere as the one description of the model's shape.
//
// Shape legend used across the engine:
//   B batch, T sequence, C hidden (640), H query heads (4), Hkv key/value heads (1), D head_dim (256),
//   F feed-forward (2048), V vocabulary (262144), L layers (18), R LoRA rank.

import { countProblem, GEMMA3_LIMITS } from './bounds';
import { describeValue } from '../../common/quote';

/** A config that is inconsistent, unsupported or past a bound. */
export class ConfigError extends Error {}

export type LayerType = 'sliding' | 'full';

export interface GemmaConfig {
  vocabSize: number;          // V
  hidden: number;             // C
  intermediate: number;       // F
  layers: number;             // L
  heads: number;              // H
  kvHeads: number;            // Hkv
  headDim: number;            // D
  queryPreAttnScalar: number; // attention scores are q·kᵀ · queryPreAttnScalar^-0.5
  slidingWindow: number;      // a sliding layer's query i sees keys i-W+1 … i
  layerTypes: LayerType[];    // length L
  ropeThetaGlobal: number;    // base on full-attention layers
  ropeThetaLocal: number;     // base on sliding layers
  ropeScaleGlobal: number;    // linear RoPE scaling factor on full-attention layers (positions / factor; 1: none)
  ropeScaleLocal: number;     // the same on sliding layers (1 in every Gemma 3)
  rmsNormEps: number;
  finalLogitSoftcap: number | null;
  maxPositions: number;
  bosId: number;
  eosId: number;
  padId: number;
}

/** What every Gemma 3 text model here shares: RoPE bases, norm epsilon, context length, special ids. */
const GEMMA3_COMMON = {
  ropeThetaGlobal: 1_000_000,
  ropeThetaLocal: 10_000,
  ropeScaleGlobal: 1,
  ropeScaleLocal: 1,
  rmsNormEps: 1e-6,
  finalLogitSoftcap: null,
  maxPositions: 32768,
  bosId: 2,
  eosId: 1,
  padId: 0,
} as const satisfies Partial<GemmaConfig>;

/** The real Gemma 3 270M shape. */
export const GEMMA3_270M: GemmaConfig = {
  vocabSize: 262144,
  hidden: 640,
  intermediate: 2048,
  layers: 18,
  heads: 4,
  kvHeads: 1,
  headDim: 256,
  queryPreAttnScalar: 256,
  slidingWindow: 512,
  layerTypes: layerTypesFromPattern(18, 6),
  ...GEMMA3_COMMON,
};

/** Gemma 3 1B (google/gemma-3-1b-it config.json: 26 layers, hidden 1152, 4 heads, 1 kv head, window 512). */
export const GEMMA3_1B: GemmaConfig = {
  vocabSize: 262144,
  hidden: 1152,
  intermediate: 6912,
  layers: 26,
  heads: 4,
  kvHeads: 1,
  headDim: 256,
  queryPreAttnScalar: 256,
  slidingWindow: 512,
  layerTypes: layerTypesFromPattern(26, 6),
  ...GEMMA3_COMMON,
};

/**
 * The text decoder of Gemma 3 4B (google/gemma-3-4b-it config.json's text_config over transformers'
 * Gemma3TextConfig defaults: 34 layers, hidden 2560, 8 heads, 4 kv heads, window 1024, vocabulary 262208,
 * linear RoPE scaling 8 on the global layers, 128k context).
 */
export const GEMMA3_4B: GemmaConfig = {
  vocabSize: 262208,
  hidden: 2560,
  intermediate: 10240,
  layers: 34,
  heads: 8,
  kvHeads: 4,
  headDim: 256,
  queryPreAttnScalar: 256,
  slidingWindow: 1024,
  layerTypes: layerTypesFromPattern(34, 6),
  ...GEMMA3_COMMON,
  ropeScaleGlobal: 8,
  maxPositions: 131072,
};

/** The preset shapes by name (make-model --config, bench). */
export const PRESET_CONFIGS: Record<string, GemmaConfig> = { '270m': GEMMA3_270M, '1b': GEMMA3_1B, '4b': GEMMA3_4B };

/** A tiny model with the 270M's ratios, fast enough for unit tests. */
export const GEMMA3_TINY: GemmaConfig = {
  vocabSize: 512,
  hidden: 64,
  intermediate: 128,
  layers: 6,
  heads: 2,
  kvHeads: 1,
  headDim: 32,
  queryPreAttnScalar: 32,
  slidingWindow: 4,
  layerTypes: layerTypesFromPattern(6, 6),
  ...GEMMA3_COMMON,
};

/** Layer i is global iff (i+1) % pattern == 0, as transformers and llama.cpp both derive it. */
export function layerTypesFromPattern(layers: number, pattern: number): LayerType[] {
  const bad = countProblem('the layer count', layers, GEMMA3_LIMITS.layers);
  if (bad) throw new ConfigError(bad);
  return Array.from({ length: layers }, (_, i) => ((i + 1) % pattern === 0 ? 'full' : 'sliding'));
}

function num(obj: Record<string, unknown>, key: string, fallback?: number): number {
  const v = obj[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`config lacks "${key}"`);
  }
  throw new ConfigError(`config "${key}" is not a number: ${describeValue(v)}`);
}

/** A size from the config, bounded (GEMMA3_LIMITS) before anything is sized by it. */
function size(obj: Record<string, unknown>, key: string, limit: keyof typeof GEMMA3_LIMITS, fallback?: number): number {
  const v = num(obj, key, fallback);
  const bad = countProblem(`config "${key}"`, v, GEMMA3_LIMITS[limit]);
  if (bad) throw new ConfigError(bad);
  return v;
}

function firstId(v: unknown, fallback: number): number {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return fallback;
}

/**
 * transformers' Gemma3TextConfig defaults for the keys this reader uses. A multimodal checkpoint's
 * text_config (Gemma3ForConditionalGeneration: 4B, 12B, 27B) names only what differs from them.
 */
const TEXT_CONFIG_DEFAULTS: Record<string, unknown> = {
  vocab_size: 262_208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131_072, rms_norm_eps: 1e-6, rope_theta: 1_000_000,
  query_pre_attn_scalar: 256, sliding_window: 4096, rope_local_base_freq: 10_000, sliding_window_pattern: 6,
  pad_token_id: 0, eos_token_id: 1, bos_token_id: 2,
};

/** RoPE scaling types transformers (ROPE_INIT_FUNCTIONS) and llama.cpp know besides none and linear. */
const OTHER_ROPE_TYPES = ['dynamic', 'yarn', 'longrope', 'llama3', 'su'];

/**
 * The linear factor of a rope_scaling / rope_parameters entry: 1 for none or "default" (a no-op), the
 * factor for "linear"; any other type is refused by name.
 */
export function ropeScaleFromHf(entry: unknown, where: string): number {
  if (entry === undefined || entry === null) return 1;
  if (typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${where} is not an object: ${describeValue(entry)}`);
  const e = entry as Record<string, unknown>;
  const type = e.rope_type ?? e.type ?? 'default';
  if (type === 'default') return 1;
  if (type === 'linear') {
    const factor = e.factor;
    if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0) throw new ConfigError(`${where}: linear scaling needs a positive "factor", got ${describeValue(factor)}`);
    return factor;
  }
  const known = typeof type === 'string' && OTHER_ROPE_TYPES.includes(type);
  throw new ConfigError(`${where}: RoPE scaling type ${describeValue(type)} is ${known ? 'not supported' : 'unknown'} (supported: linear, or none)`);
}

/** Reads a Hugging Face Gemma 3 text config.json (4.5x or 5.x layout); a multimodal config's text_config too. */
export function configFromHf(json: unknown): GemmaConfig {
  if (typeof json !== 'object' || json === null) throw new ConfigError('config.json is not an object');
  let c = json as Record<string, unknown>;
  if (typeof c.text_config === 'object' && c.text_config !== null) {
    if (c.model_type !== undefined && c.model_type !== 'gemma3') throw new ConfigError(`model_type ${describeValue(c.model_type)} is not Gemma 3`);
    c = { ...TEXT_CONFIG_DEFAULTS, ...(c.text_config as Record<string, unknown>) };
  }
  const modelType = c.model_type;
  if (modelType !== undefined && modelType !== 'gemma3_text' && modelType !== 'gemma3') {
    throw new ConfigError(`model_type ${describeValue(modelType)} is not Gemma 3 text`);
  }
  const act = c.hidden_activation ?? c.hidden_act;
  if (act !== undefined && act !== 'gelu_pytorch_tanh') throw new ConfigError(`hidden_activation ${describeValue(act)} is not supported`);
  if (c.attention_bias === true) throw new ConfigError('attention_bias is not supported');
  if (c.use_bidirectional_attention === true) throw new ConfigError('use_bidirectional_attention is not supported');

  const layers = size(c, 'num_hidden_layers', 'layers');
  const hidden = size(c, 'hidden_size', 'hidden');
  const heads = size(c, 'num_attention_heads', 'heads');
  const headDim = size(c, 'head_dim', 'headDim', hidden / heads);
  let layerTypes: LayerType[];
  if (Array.isArray(c.layer_types)) {
    if (c.layer_types.length !== layers) throw new ConfigError(`layer_types has ${c.layer_types.length} entries for ${layers} layers`);
    layerTypes = c.layer_types.map((t, i) => {
      if (t === 'sliding_attention') return 'sliding';
      if (t === 'full_attention') return 'full';
      throw new ConfigError(`layer_types[${i}] ${describeValue(t)} is unknown`);
    });
  } else {
    const pattern = num(c, 'sliding_window_pattern', num(c, '_sliding_window_pattern', 6));
    layerTypes = layerTypesFromPattern(layers, pattern);
  }

  // transformers 5 moved the two bases (and any scaling) into rope_parameters keyed by layer type; 4.5x
  // has rope_theta, rope_local_base_freq and rope_scaling, which applies to the full-attention layers only.
  let ropeThetaGlobal = 1_000_000;
  let ropeThetaLocal = 10_000;
  let ropeScaleGlobal = 1;
  let ropeScaleLocal = 1;
  const rp = c.rope_parameters as Record<string, Record<string, unknown>> | undefined;
  if (rp && typeof rp === 'object') {
    const full = rp.full_attention, sliding = rp.sliding_attention;
    if (full) {
      ropeScaleGlobal = ropeScaleFromHf(full, 'rope_parameters.full_attention');
      ropeThetaGlobal = num(full, 'rope_theta', ropeThetaGlobal);
    }
    if (sliding) {
      ropeScaleLocal = ropeScaleFromHf(sliding, 'rope_parameters.sliding_attention');
      ropeThetaLocal = num(sliding, 'rope_theta', ropeThetaLocal);
    }
  } else {
    ropeThetaGlobal = num(c, 'rope_theta', ropeThetaGlobal);
    ropeThetaLocal = num(c, 'rope_local_base_freq', ropeThetaLocal);
    ropeScaleGlobal = ropeScaleFromHf(c.rope_scaling, 'rope_scaling');
  }

  const softcap = c.final_logit_softcapping;
  const cfg: GemmaConfig = {
    vocabSize: size(c, 'vocab_size', 'vocabSize'),
    hidden,
    intermediate: size(c, 'intermediate_size', 'intermediate'),
    layers,
    heads,
    kvHeads: size(c, 'num_key_value_heads', 'kvHeads', heads),
    headDim,
    queryPreAttnScalar: num(c, 'query_pre_attn_scalar', headDim),
    slidingWindow: num(c, 'sliding_window', 4096),
    layerTypes,
    ropeThetaGlobal,
    ropeThetaLocal,
    ropeScaleGlobal,
    ropeScaleLocal,
    rmsNormEps: num(c, 'rms_norm_eps', 1e-6),
    finalLogitSoftcap: typeof softcap === 'number' ? softcap : null,
    maxPositions: num(c, 'max_position_embeddings', 32768),
    bosId: firstId(c.bos_token_id, 2),
    eosId: firstId(c.eos_token_id, 1),
    padId: firstId(c.pad_token_id, 0),
  };
  validateConfig(cfg);
  return cfg;
}

/** Writes the config as the real gemma-3-270m checkpoint's config.json does (transformers 4.5x keys). */
export function configToHf(cfg: GemmaConfig): Record<string, unknown> {
  if (cfg.ropeScaleLocal !== 1) throw new ConfigError('RoPE scaling on sliding layers cannot be written in the transformers 4.5x layout');
  const firstFull = cfg.layerTypes.indexOf('full');
  return {
    _sliding_window_pattern: firstFull >= 0 ? firstFull + 1 : cfg.layers,
    architectures: ['Gemma3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: null,
    bos_token_id: cfg.bosId,
    eos_token_id: cfg.eosId,
    final_logit_softcapping: cfg.finalLogitSoftcap,
    head_dim: cfg.headDim,
    hidden_activation: 'gelu_pytorch_tanh',
    hidden_size: cfg.hidden,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediate,
    layer_types: cfg.layerTypes.map((t) => (t === 'full' ? 'full_attention' : 'sliding_attention')),
    max_position_embeddings: cfg.maxPositions,
    model_type: 'gemma3_text',
    num_attention_heads: cfg.heads,
    num_hidden_layers: cfg.layers,
    num_key_value_heads: cfg.kvHeads,
    pad_token_id: cfg.padId,
    query_pre_attn_scalar: cfg.queryPreAttnScalar,
    rms_norm_eps: cfg.rmsNormEps,
    rope_local_base_freq: cfg.ropeThetaLocal,
    rope_scaling: cfg.ropeScaleGlobal === 1 ? null : { factor: cfg.ropeScaleGlobal, rope_type: 'linear' },
    rope_theta: cfg.ropeThetaGlobal,
    sliding_window: cfg.slidingWindow,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_bidirectional_attention: false,
    use_cache: true,
    vocab_size: cfg.vocabSize,
  };
}

/** Throws ConfigError when the config is inconsistent or absurd (a size past GEMMA3_LIMITS). */
export function validateConfig(cfg: GemmaConfig): void {
  for (const k of Object.keys(GEMMA3_LIMITS) as (keyof typeof GEMMA3_LIMITS)[]) {
    const bad = countProblem(k, cfg[k], GEMMA3_LIMITS[k]);
    if (bad) throw new ConfigError(bad);
  }
  if (cfg.heads % cfg.kvHeads !== 0) throw new ConfigError(`heads (${cfg.heads}) is not a multiple of kvHeads (${cfg.kvHeads})`);
  if (cfg.headDim % 2 !== 0) throw new ConfigError(`headDim (${cfg.headDim}) must be even for RoPE`);
  if (cfg.layerTypes.length !== cfg.layers) throw new ConfigError(`layer_types has ${cfg.layerTypes.length} entries for ${cfg.layers} layers`);
  for (const id of [cfg.bosId, cfg.eosId, cfg.padId]) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new ConfigError(`special token id ${id} is outside the vocabulary`);
  }
  if (!(cfg.rmsNormEps > 0 && cfg.rmsNormEps < 1)) throw new ConfigError(`rms_norm_eps must be in (0, 1), found ${cfg.rmsNormEps}`);
  for (const [k, v] of [['rope theta (global)', cfg.ropeThetaGlobal], ['rope theta (local)', cfg.ropeThetaLocal]] as const) {
    if (!(Number.isFinite(v) && v > 1)) throw new ConfigError(`${k} must be a finite number above 1, found ${v}`);
  }
  if (cfg.finalLogitSoftcap !== null && !(Number.isFinite(cfg.finalLogitSoftcap) && cfg.finalLogitSoftcap > 0)) {
    throw new ConfigError(`final_logit_softcapping must be a positive number or null, found ${cfg.finalLogitSoftcap}`);
  }
  for (const f of [cfg.ropeScaleGlobal, cfg.ropeScaleLocal]) if (!(f > 0) || !Number.isFinite(f)) throw new ConfigError(`RoPE scaling factor ${f} must be a finite positive number`);
}

/** Parameter count, embedding included once (the head is tied). */
export function parameterCount(cfg: GemmaConfig): number {
  const { hidden: C, intermediate: F, heads: H, kvHeads: Hkv, headDim: D } = cfg;
  const perLayer = C * H * D + 2 * C * Hkv * D + H * D * C + 3 * C * F + 4 * C + 2 * D;
  return cfg.vocabSize * C + cfg.layers * perLayer + C;
}

// The engine's in-memory model: a GemmaConfig plus named weights, whatever file they came from.
//
// Conventions every reader produces and every graph consumes:
//  - Names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, `model.embed_tokens.weight`).
//  - Shapes are Hugging Face's: a linear weight is [out, in] row-major (GGUF's ne = [in, out] is the same
//    bytes), the embedding is [V, C].
//  - Norm weights hold the *multiplier* (1 + w), in float32: GGUF stores it that way already, and HF's
//    Gemma3RMSNorm computes (1.0 + w.float()) in float32, so both sources give the same bits.
//  - Quantised data stays in its GGUF block layout (Q4_0: 18 bytes per 32 weights along `in`; Q8_0: 34;
//    every block type of quantTypes.ts likewise).

import type { GemmaConfig } from './config';
import type { QuantDtype } from './quantTypes';

export type WeightData =
  | { type: 'f32'; data: Float32Array }
  | { type: QuantDtype; data: Uint8Array };

export interface Weight {
  shape: number[];
  value: WeightData;
}

export interface ModelWeights {
  config: GemmaConfig;
  weights: Map<string, Weight>;
}

/** HF names of the weights of layer i, in the order a decoder layer uses them. */
export function layerWeightNames(i: number) {
  const p = `model.layers.${i}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    qNorm: `${p}.self_attn.q_norm.weight`,
    kNorm: `${p}.self_attn.k_norm.weight`,
    o: `${p}.self_attn.o_proj.weight`,
    postAttnNorm: `${p}.post_attention_layernorm.weight`,
    preFfnNorm: `${p}.pre_feedforward_layernorm.weight`,
    gate: `${p}.mlp.gate_proj.weight`,
    up: `${p}.mlp.up_proj.weight`,
    down: `${p}.mlp.down_proj.weight`,
    postFfnNorm: `${p}.post_feedforward_layernorm.weight`,
  };
}

export const EMBED_NAME = 'model.embed_tokens.weight';
export const FINAL_NORM_NAME = 'model.norm.weight';

/** The shape every weight of a model with this config must have, keyed by HF name. */
export function expectedShapes(cfg: GemmaConfig): Map<string, number[]> {
  const { hidden: C, intermediate: F, heads: H, kvHeads: Hkv, headDim: D } = cfg;
  const m = new Map<string, number[]>();
  m.set(EMBED_NAME, [cfg.vocabSize, C]);
  m.set(FINAL_NORM_NAME, [C]);
  for (let i = 0; i < cfg.layers; i++) {
    const n = layerWeightNames(i);
    m.set(n.inputNorm, [C]);
    m.set(n.q, [H * D, C]);
    m.set(n.k, [Hkv * D, C]);
    m.set(n.v, [Hkv * D, C]);
    m.set(n.qNorm, [D]);
    m.set(n.kNorm, [D]);
    m.set(n.o, [C, H * D]);
    m.set(n.postAttnNorm, [C]);
    m.set(n.preFfnNorm, [C]);
    m.set(n.gate, [F, C]);
    m.set(n.up, [F, C]);
    m.set(n.down, [C, F]);
    m.set(n.postFfnNorm, [C]);
  }
  return m;
}

/** True for the RMSNorm weights, which the engine holds as (1 + w). */
export function isNormWeight(name: string): boolean {
  return /norm\.weight$/.test(name);
}

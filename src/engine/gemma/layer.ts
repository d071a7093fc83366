// The Gemma 3 decoder layer, written once for every graph (prefill, decode, training), exactly as
// transformers' modeling_gemma3 computes it (see shared/fixtures/hf-gemma3/README.md):
//
//   h = x + post_attn_norm(attn(input_norm(x)))
//   y = h + post_ffn_norm(down(gelu_tanh(gate(n)) · up(n)))     with n = pre_ffn_norm(h)
//
// attn: q/k/v projections; per-head RMSNorm of q and k over D (one (1+w) vector shared by all heads);
// RoPE (NeoX half split) with the table of the layer's type; scores q·kᵀ·queryPreAttnScalar^-0.5 plus an
// additive mask; softmax; GQA (query head h reads kv head h / (H/Hkv)); o_proj.
//
// Shapes (legend in model/config.ts): x [B, T, C]; past keys/values [B, Hkv, P, D]; cos/sin [T, D/2];
// mask [1|B, 1, T, P+T] (0 where visible, -inf where not). The caller decides what the mask allows
// (causal, sliding window, padding), so this code has no notion of layer type beyond its inputs.

import type { Graph, Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { GemmaConfig } from '../model/config';
import { layerWeightNames } from '../model/weights';
import { applyLinear, type GraphParams } from './params';
import type { LoraTarget } from '../train/lora';


/** A LoRA pair as graph values: a [R, in], b [out, R] already multiplied by alpha/R. */
export interface LoraValues {
  a: Value;
  b: Value;
}

export interface AttentionInputs {
  cos: Value;
  sin: Value;
  mask: Value;
  /** Keys/values of earlier positions and the run-time sizes [P, T] to split the scores by; null: none. */
  past: { k: Value; v: Value; split: Value } | null;
}

export interface LayerOutputs {
  h: Value;
  /** This call's keys (after norm and RoPE) and values, [B, Hkv, T, D], for the cache. */
  k: Value;
  v: Value;
}

/** y = x·Wᵀ (+ (x·Aᵀ)·B'ᵀ when a LoRA pair is given; B' carries the alpha/R scale). */
export function linearWithLora(g: Graph, x: Value, p: GraphParams, weightName: string, lora?: LoraValues): Value {
  const y = applyLinear(g, x, p.linear(weightName));
  if (!lora) return y;
  const xa = op.fusedMatMul(g, x, lora.a, { transB: true });
  return op.add(g, y, op.fusedMatMul(g, xa, lora.b, { transB: true }));
}

/** NeoX rotation of x [B, heads, T, D] by cos/sin [T, D/2]: (x1·c − x2·s, x2·c + x1·s). */
export function rope(g: Graph, x: Value, cos: Value, sin: Value, headDim: number): Value {
  const [x1, x2] = op.split(g, x, -1, [headDim / 2, headDim / 2]);
  const r1 = op.sub(g, op.mul(g, x1, cos), op.mul(g, x2, sin));
  const r2 = op.add(g, op.mul(g, x2, cos), op.mul(g, x1, sin));
  return op.concat(g, [r1, r2], -1);
}

/** One decoder layer; `lora` gives the adapter pair for a target, if any. */
export function decoderLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs,
  lora: (t: LoraTarget) => LoraValues | undefined = () => undefined): LayerOutputs {
  const cfg: GemmaConfig = p.config;
  const { heads: H, kvHeads: Hkv, headDim: D, rmsNormEps: eps } = cfg;
  const n = layerWeightNames(layer);
  const lin = (xin: Value, name: string, t: LoraTarget) => linearWithLora(g, xin, p, name, lora(t));

  // ---- attention ----
  const xn = op.rmsNorm(g, x, p.norm(n.inputNorm), eps);
  const heads = (y: Value, count: number, normName: string | null): Value => {
    let r = op.reshape(g, y, ['B', 'T', count, D]);
    if (normName) r = op.rmsNorm(g, r, p.norm(normName), eps);
    return op.transpose(g, r, [0, 2, 1, 3]); // [B, count, T, D]
  };
  const q = rope(g, heads(lin(xn, n.q, 'q'), H, n.qNorm), att.cos, att.sin, D);
  const k = rope(g, heads(lin(xn, n.k, 'k'), Hkv, n.kNorm), att.cos, att.sin, D);
  const v = heads(lin(xn, n.v, 'v'), Hkv, null);

  // Queries grouped under their kv head: [B, Hkv, G·T, D], so GQA needs no repeated keys.
  const qg = op.reshape(g, q, ['B', Hkv, 'GT', D]);
  const alpha = 1 / Math.sqrt(cfg.queryPreAttnScalar);
  let scores = op.fusedMatMul(g, qg, k, { transB: true, alpha }); // [B, Hkv, GT, T]
  if (att.past) {
    // Scores against the past and the new keys are computed apart and joined, so the (large) past
    // is read in place rather than copied into a concatenated key tensor.
    const sPast = op.fusedMatMul(g, qg, att.past.k, { transB: true, alpha }); // [B, Hkv, GT, P]
    scores = op.concat(g, [sPast, scores], -1);
  }
  const S = scores.shape![3];
  let probs = op.reshape(g, scores, ['B', H, 'T', S]);
  probs = op.softmax(g, op.add(g, probs, att.mask), -1);
  probs = op.reshape(g, probs, ['B', Hkv, 'GT', S]);
  let o: Value;
  if (att.past) {
    const [pPast, pNew] = op.split(g, probs, -1, att.past.split, ['P', 'T']);
    o = op.add(g, op.matmul(g, pPast, att.past.v), op.matmul(g, pNew, v));
  } else {
    o = op.matmul(g, probs, v);
  }
  o = op.reshape(g, o, ['B', H, 'T', D]);
  o = op.reshape(g, op.transpose(g, o, [0, 2, 1, 3]), ['B', 'T', H * D]);
  const a = op.rmsNorm(g, lin(o, n.o, 'o'), p.norm(n.postAttnNorm), eps);
  const h = op.add(g, x, a);

  // ---- MLP ----
  const m = op.rmsNorm(g, h, p.norm(n.preFfnNorm), eps);
  const act = op.mul(g, op.geluTanh(g, lin(m, n.gate, 'gate')), lin(m, n.up, 'up'));
  const f = op.rmsNorm(g, lin(act, n.down, 'down'), p.norm(n.postFfnNorm), eps);
  return { h: op.add(g, h, f), k, v };
}

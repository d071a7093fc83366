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
// Shapes (legend in model/config.ts): activations are 2-D, x [B·T, C] (so linears and the LoRA update are
// plain GEMMs); attention works on [B, heads, T, D]; past keys/values [B, Hkv, P, D]; cos/sin tables
// [*, D/2] indexed by positions [B, T]; mask [1|B, 1, T, P+T] (0 where visible, -inf where not). The
// caller decides what the mask allows (causal, sliding window, padding), so this code has no notion of
// layer type beyond its inputs.
//
// Written once as four pieces, which the prefill, decode and training graphs all use: `attention`,
// `mlp`, `loraDelta` (every projection's LoRA update) and, in lmHead.ts, the head. `gemmaLayer` joins
// them with the norms and residuals; options choose how they are lowered to ops:
//  - fuse: projections that read the same input run as one linear (q|k|v, gate|up; GraphParams.fusedLinear)
//    — fewer, larger kernels for inference. Unfused keeps one MatMul per projection (training's VJPs).
//  - rope: 'fused' uses com.microsoft RotaryEmbedding (2 kernels per layer instead of 18); 'primitive'
//    writes it as Split/Mul/Sub/Add/Concat, which the training autodiff differentiates.
//  - attention: 'matmul' (MatMul/Softmax, differentiable) or 'gqa' (GroupQueryAttention, inference only).
//  - lora: which LoRA pair (if any) the projections behind one linear output get.
// `decoderLayer` is the layer in the training graph's form (x [B, T, C], unfused, primitive RoPE).

import type { Graph } from '../onnx/graph';
import { attr, type Dim, type Value } from '../onnx/nodes';
import * as op from '../onnx/ops';
import { layerWeightNames } from '../model/weights';
import { applyLinear, type GraphParams } from './params';
import { targetShape, type LoraTarget } from '../model/loraTargets';
import type { GemmaConfig, LayerType } from '../model/config';

export type LoraGroup = 'qkv' | 'o' | 'gateup' | 'down';
/** Projections computed together when fused, in output-row order. */
export const LORA_GROUPS: Record<LoraGroup, readonly LoraTarget[]> = { qkv: ['q', 'k', 'v'], o: ['o'], gateup: ['gate', 'up'], down: ['down'] };

/** A LoRA pair as graph values: a [R, in], b [out, R] already multiplied by loraScale (train/lora.ts). */
export interface LoraValues {
  a: Value;
  b: Value;
}

/** The LoRA pair of the projections `targets` (those behind one linear output), or undefined for none. */
export type LoraChoice = (targets: readonly LoraTarget[]) => LoraValues | undefined;

export interface AttentionInputs {
  /** B when x is 2-D [B·T, C] (fixed per graph, 1 at inference); unused for x [B, T, C]. */
  batch?: number;
  /** int64 [B, T]: the cos/sin row of each new token; required by rope 'fused'. */
  positions?: Value;
  /** [T, D/2] (primitive) or [*, D/2] indexed by positions (fused). */
  cos: Value;
  sin: Value;
  mask: Value;
  /** Keys/values of earlier positions and the run-time sizes [P, T] to split the scores by; null: none. */
  past: { k: Value; v: Value; split?: Value } | null;
  /**
   * For attention 'gqa': int32 [B] = P+T−1 and int32 scalar P+T (GroupQueryAttention's seqlens_k and
   * total_sequence_length); `positions` is then int64 [B·T, 1].
   */
  gqa?: { seqlensK: Value; total: Value };
}

export interface LayerOptions {
  fuse: boolean;
  rope: 'fused' | 'primitive';
  lora: LoraChoice;
  /**
   * 'matmul' (default): attention in MatMul/Softmax ops (differentiable; the training graph's form).
   * 'gqa': inference only, x 2-D with B = 1, fuse and fused RoPE: com.microsoft GroupQueryAttention with
   * the mask as its attention_bias, and the attention residual add joined to the pre-FFN norm
   * (SkipSimplifiedLayerNormalization): 23 kernels a layer instead of 38, the same function.
   */
  attention?: 'matmul' | 'gqa';
}

export interface LayerOutputs {
  h: Value;
  /** This call's keys (after norm and RoPE) and values, [B, Hkv, T, D], for the cache. */
  k: Value;
  v: Value;
}

/** Per layer type, the inputs every layer of that type reads: RoPE tables cos/sin [T, D/2] and the additive mask. */
export interface LayerTypeInputs {
  cos: Value;
  sin: Value;
  mask: Value;
}

/**
 * Declares the graph inputs cos_{type}, sin_{type} [T, D/2] and mask_{type} [1, 1, T, keys(type)] for each
 * layer type of the model (the masks hold causality and the sliding window; the caller computes them).
 */
export function layerTypeInputs(g: Graph, cfg: GemmaConfig, keys: (t: LayerType) => Dim): Map<LayerType, LayerTypeInputs> {
  const D = cfg.headDim;
  const out = new Map<LayerType, LayerTypeInputs>();
  for (const t of new Set(cfg.layerTypes)) {
    out.set(t, {
      cos: g.input(`cos_${t}`, 'float32', ['T', D / 2]),
      sin: g.input(`sin_${t}`, 'float32', ['T', D / 2]),
      mask: g.input(`mask_${t}`, 'float32', [1, 1, 'T', keys(t)]),
    });
  }
  return out;
}

// forward: y' = y + (x·Aᵀ)·Bᵀ, B carrying alpha/R (PEFT's LoRA; the base output y = x·Wᵀ is the caller's)
/**
 * Adds the LoRA update of x [rows, in] or [B, T, in] to y. 2-D rows (inference) take Gemm, which adds into y
 * in the same kernel; batched rows (training) MatMul and Add, which autodiff differentiates.
 */
export function loraDelta(g: Graph, x: Value, y: Value, l: LoraValues): Value {
  const xa = op.fusedMatMul(g, x, l.a, { transB: true });
  if (x.shape?.length === 2) return op.gemm(g, xa, l.b, y, { transB: true });
  return op.add(g, y, op.fusedMatMul(g, xa, l.b, { transB: true }));
}

/** NeoX rotation of x [B, heads, T, D] by cos/sin [T, D/2]: (x1·c − x2·s, x2·c + x1·s), in primitive ops. */
export function rope(g: Graph, x: Value, cos: Value, sin: Value, headDim: number): Value {
  const [x1, x2] = op.split(g, x, -1, [headDim / 2, headDim / 2]);
  const r1 = op.sub(g, op.mul(g, x1, cos), op.mul(g, x2, sin));
  const r2 = op.add(g, op.mul(g, x2, cos), op.mul(g, x1, sin));
  return op.concat(g, [r1, r2], -1);
}

/** x·[W1; W2; …]ᵀ for projections that share x: one fused operand, or (unfusable storage) outputs joined. */
function groupLinear(g: Graph, x: Value, p: GraphParams, names: string[]): Value {
  if (names.length === 1) return applyLinear(g, x, p.linear(names[0]));
  if (p.canFuse(names)) return applyLinear(g, x, p.fusedLinear(names));
  return op.concat(g, names.map((n) => applyLinear(g, x, p.linear(n))), -1);
}

/** The outputs of projections `targets` of a layer on x, stacked as one linear's output, with their LoRA update. */
function projectJoined(g: Graph, p: GraphParams, layer: number, x: Value, targets: readonly LoraTarget[], o: LayerOptions): Value {
  const W = layerWeightNames(layer);
  const y = groupLinear(g, x, p, targets.map((t) => W[t]));
  const l = o.lora(targets);
  return l ? loraDelta(g, x, y, l) : y;
}

/** Each of projections `targets` of a layer on x (one linear and a split when fused), with its LoRA update. */
function project(g: Graph, p: GraphParams, layer: number, x: Value, targets: readonly LoraTarget[], o: LayerOptions): Value[] {
  if (!o.fuse || targets.length === 1) return targets.map((t) => projectJoined(g, p, layer, x, [t], o));
  return op.split(g, projectJoined(g, p, layer, x, targets, o), -1, targets.map((t) => targetShape(p.config, t)[0]));
}

/** The attention block on normed rows xn: its o_proj output (rows as xn) and this call's keys and values. */
export function attention(g: Graph, p: GraphParams, layer: number, xn: Value, att: AttentionInputs, o: LayerOptions): { out: Value; k: Value; v: Value } {
  if (o.rope === 'fused' && !att.positions) throw new Error('attention: rope "fused" needs att.positions');
  return o.attention === 'gqa' ? groupQueryAttention(g, p, layer, xn, att, o) : matmulAttention(g, p, layer, xn, att, o);
}

/** Attention in MatMul/Softmax ops, on xn [B, T, C] or [B·T, C]; differentiable with primitive RoPE. */
function matmulAttention(g: Graph, p: GraphParams, layer: number, xn: Value, att: AttentionInputs, o: LayerOptions): { out: Value; k: Value; v: Value } {
  const cfg = p.config;
  const { heads: H, kvHeads: Hkv, headDim: D, rmsNormEps: eps } = cfg;
  const rows3d = xn.shape?.length === 3;
  const B: number | string = rows3d ? 'B' : (att.batch ?? 1);
  const rowsOut: (number | string)[] = rows3d ? ['B', 'T'] : ['BT'];
  const n = layerWeightNames(layer);
  const rotate = (y: Value): Value => (o.rope === 'fused'
    ? op.rotaryEmbedding(g, y, att.positions!, att.cos, att.sin)
    : rope(g, y, att.cos, att.sin, D));

  const [qf, kf, vf] = project(g, p, layer, xn, ['q', 'k', 'v'], o);
  const heads = (y: Value, count: number, normName: string | null): Value => {
    let r = op.reshape(g, y, [B, 'T', count, D]);
    if (normName) r = op.rmsNorm(g, r, p.norm(normName), eps);
    return op.transpose(g, r, [0, 2, 1, 3]); // [B, count, T, D]
  };
  const q = rotate(heads(qf, H, n.qNorm));
  const k = rotate(heads(kf, Hkv, n.kNorm));
  const v = heads(vf, Hkv, null);

  // Queries grouped under their kv head: [B, Hkv, G·T, D], so GQA needs no repeated keys.
  const qg = op.reshape(g, q, [B, Hkv, 'GT', D]);
  const alpha = 1 / Math.sqrt(cfg.queryPreAttnScalar);
  let scores = op.fusedMatMul(g, qg, k, { transB: true, alpha }); // [B, Hkv, GT, T]
  if (att.past) {
    // Scores against the past and the new keys are computed apart and joined, so the (large) past
    // is read in place rather than copied into a concatenated key tensor.
    const sPast = op.fusedMatMul(g, qg, att.past.k, { transB: true, alpha }); // [B, Hkv, GT, P]
    scores = op.concat(g, [sPast, scores], -1);
  }
  const S = scores.shape![3];
  let probs = op.reshape(g, scores, [B, H, 'T', S]);
  probs = op.softmax(g, op.add(g, probs, att.mask), -1);
  probs = op.reshape(g, probs, [B, Hkv, 'GT', S]);
  let ctx: Value;
  if (att.past) {
    if (!att.past.split) throw new Error('attention "matmul" with a past needs past.split');
    const [pPast, pNew] = op.split(g, probs, -1, att.past.split, ['P', 'T']);
    ctx = op.add(g, op.matmul(g, pPast, att.past.v), op.matmul(g, pNew, v));
  } else {
    ctx = op.matmul(g, probs, v);
  }
  ctx = op.reshape(g, ctx, [B, H, 'T', D]);
  ctx = op.reshape(g, op.transpose(g, ctx, [0, 2, 1, 3]), [...rowsOut, H * D]);
  return { out: projectJoined(g, p, layer, ctx, ['o'], o), k, v };
}

/**
 * Attention 'gqa' (see LayerOptions.attention). q|k|v come out of one linear as [B·T, (H+2·Hkv)·D] and are
 * viewed as [B·T, H+2·Hkv, 1, D], so that one Split yields per-head rows the q/k norms and RoPE (B·T
 * "batches" of one position each, positions [B·T, 1]) work on without a transpose; GroupQueryAttention reads
 * them as [B, T, heads·D]. Its causal rule (new token i sees every past slot and new tokens ≤ i) allows a
 * superset of what the mask allows, so the mask alone decides, as in 'matmul'.
 */
function groupQueryAttention(g: Graph, p: GraphParams, layer: number, xn: Value, att: AttentionInputs, o: LayerOptions): { out: Value; k: Value; v: Value } {
  const cfg = p.config;
  const { heads: H, kvHeads: Hkv, headDim: D, rmsNormEps: eps } = cfg;
  if (xn.shape?.length !== 2 || (att.batch ?? 1) !== 1 || !o.fuse || o.rope !== 'fused' || !att.past || !att.gqa || !att.positions) {
    throw new Error('attention "gqa" needs x [T, C] with batch 1, fused projections and RoPE, a past and gqa inputs');
  }
  const n = layerWeightNames(layer);
  const qkv = op.reshape(g, projectJoined(g, p, layer, xn, ['q', 'k', 'v'], o), ['BT', H + 2 * Hkv, 1, D]);
  const [qh, kh, vh] = op.split(g, qkv, 1, [H, Hkv, Hkv]);
  const q = op.rotaryEmbedding(g, op.rmsNorm(g, qh, p.norm(n.qNorm), eps), att.positions, att.cos, att.sin);
  const kr = op.rotaryEmbedding(g, op.rmsNorm(g, kh, p.norm(n.kNorm), eps), att.positions, att.cos, att.sin);
  const k = op.reshape(g, kr, [1, 'T', Hkv * D]);
  const v = op.reshape(g, vh, [1, 'T', Hkv * D]);
  const f32 = (shape: (number | string)[] | null) => ({ dtype: 'float32' as const, shape });
  const [ctx] = g.node('GroupQueryAttention',
    [op.reshape(g, q, [1, 'T', H * D]), k, v, att.past.k, att.past.v, att.gqa.seqlensK, att.gqa.total, null, null, null, att.mask],
    [f32([1, 'T', H * D]), f32(null), f32(null)],
    { num_heads: attr.int(H), kv_num_heads: attr.int(Hkv), scale: attr.float(1 / Math.sqrt(cfg.queryPreAttnScalar)) }, 'com.microsoft');
  const out = projectJoined(g, p, layer, op.reshape(g, ctx, ['BT', H * D]), ['o'], o);
  // The cache wants [B, Hkv, T, D]: with one kv head that is k's and v's own bytes.
  const kOut = Hkv === 1 ? k : op.transpose(g, kr, [2, 1, 0, 3]);
  const vOut = Hkv === 1 ? v : op.transpose(g, vh, [2, 1, 0, 3]);
  return { out, k: kOut, v: vOut };
}

/** The MLP block on normed rows m: post_ffn_norm(down(gelu_tanh(gate(m)) · up(m))). */
export function mlp(g: Graph, p: GraphParams, layer: number, m: Value, o: LayerOptions): Value {
  const n = layerWeightNames(layer);
  const [gate, up] = project(g, p, layer, m, ['gate', 'up'], o);
  const [down] = project(g, p, layer, op.mul(g, op.geluTanh(g, gate), up), ['down'], o);
  return op.rmsNorm(g, down, p.norm(n.postFfnNorm), p.config.rmsNormEps);
}

/** RMSNorm(a + skip)·scale and a + skip (com.microsoft SkipSimplifiedLayerNormalization): [normed, sum]. */
function skipRmsNorm(g: Graph, a: Value, skip: Value, scale: Value, eps: number): [Value, Value] {
  const stat = { dtype: a.dtype, shape: null };
  const [normed, , , sum] = g.node('SkipSimplifiedLayerNormalization', [a, skip, scale],
    [{ dtype: a.dtype, shape: a.shape }, stat, stat, { dtype: a.dtype, shape: a.shape }], { epsilon: attr.float(eps) }, 'com.microsoft');
  return [normed, sum];
}

/** One decoder layer on x [B, T, C] or [B·T, C] (the output has x's layout). */
export function gemmaLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs, o: LayerOptions): LayerOutputs {
  const eps = p.config.rmsNormEps;
  const n = layerWeightNames(layer);
  const a = attention(g, p, layer, op.rmsNorm(g, x, p.norm(n.inputNorm), eps), att, o);
  const attnOut = op.rmsNorm(g, a.out, p.norm(n.postAttnNorm), eps);
  // h = x + post_attn_norm(attn), m = pre_ffn_norm(h); in one kernel with 'gqa' (inference: no VJP needed).
  let m: Value, h: Value;
  if (o.attention === 'gqa') {
    [m, h] = skipRmsNorm(g, attnOut, x, p.norm(n.preFfnNorm), eps);
  } else {
    h = op.add(g, x, attnOut);
    m = op.rmsNorm(g, h, p.norm(n.preFfnNorm), eps);
  }
  return { h: op.add(g, h, mlp(g, p, layer, m, o)), k: a.k, v: a.v };
}

/** The layer on x [B, T, C], unfused, RoPE in primitive ops, LoRA per target (the training graph's form). */
export function decoderLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs,
  lora: (t: LoraTarget) => LoraValues | undefined = () => undefined): LayerOutputs {
  return gemmaLayer(g, p, layer, x, att, { fuse: false, rope: 'primitive', lora: ([t]) => lora(t) });
}

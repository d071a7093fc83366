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
// One implementation, `gemmaLayer`, with options for how it is lowered to ops:
//  - fuse: projections that read the same input run as one linear (q|k|v, gate|up; GraphParams.fusedLinear)
//    — fewer, larger kernels for inference. Unfused keeps one MatMul per projection (training's VJPs).
//  - rope: 'fused' uses com.microsoft RotaryEmbedding (2 kernels per layer instead of 18); 'primitive'
//    writes it as Split/Mul/Sub/Add/Concat, which the training autodiff differentiates.
//  - lora: a hook that adds the LoRA update of the projections behind one linear output.
// `decoderLayer` is the original entry point (x [B, T, C], unfused, primitive RoPE, per-target LoRA
// pairs), kept for the training graph.

import { attr, type Graph, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { layerWeightNames } from '../model/weights';
import { applyLinear, type GraphParams } from './params';
import { targetShape, type LoraTarget } from '../model/loraTargets';

export type LoraGroup = 'qkv' | 'o' | 'gateup' | 'down';
/** Projections computed together when fused, in output-row order. */
export const LORA_GROUPS: Record<LoraGroup, readonly LoraTarget[]> = { qkv: ['q', 'k', 'v'], o: ['o'], gateup: ['gate', 'up'], down: ['down'] };

/**
 * Adds the LoRA update of `targets` (the projections whose outputs y [rows, out] stacks, all read from
 * x [rows, in]) to y; returns y itself when there is none.
 */
export type LoraHook = (x: Value, y: Value, targets: readonly LoraTarget[]) => Value;

/** A LoRA pair as graph values: a [R, in], b [out, R] already multiplied by alpha/R. */
export interface LoraValues {
  a: Value;
  b: Value;
}

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
  lora: LoraHook;
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

/** y = x·Wᵀ (+ (x·Aᵀ)·Bᵀ when a LoRA pair is given; B carries the alpha/R scale). */
export function linearWithLora(g: Graph, x: Value, p: GraphParams, weightName: string, lora?: LoraValues): Value {
  const y = applyLinear(g, x, p.linear(weightName));
  if (!lora) return y;
  const xa = op.fusedMatMul(g, x, lora.a, { transB: true });
  return op.add(g, y, op.fusedMatMul(g, xa, lora.b, { transB: true }));
}

/** LoRA update as two kernels for 2-D x: y + (x·Aᵀ)·B'ᵀ through Gemm's C input; a [n·R, in], b [out, n·R]. */
export function addLoraGemm(g: Graph, x: Value, y: Value, a: Value, b: Value): Value {
  const xa = op.fusedMatMul(g, x, a, { transB: true });
  return op.gemm(g, xa, b, y, { transB: true });
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

/** One decoder layer on x [B, T, C] or [B·T, C] (the output has x's layout). */
export function gemmaLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs, o: LayerOptions): LayerOutputs {
  const cfg = p.config;
  const { heads: H, kvHeads: Hkv, headDim: D, rmsNormEps: eps } = cfg;
  const rows3d = x.shape?.length === 3;
  const B: number | string = rows3d ? 'B' : (att.batch ?? 1);
  const rowsOut: (number | string)[] = rows3d ? ['B', 'T'] : ['BT'];
  const n = layerWeightNames(layer);
  const W = { q: n.q, k: n.k, v: n.v, o: n.o, gate: n.gate, up: n.up, down: n.down };

  // Projections behind one input, fused or one by one, each output with its LoRA update.
  const project = (xin: Value, targets: LoraTarget[]): Value[] => {
    if (o.fuse && targets.length > 1) {
      const y = o.lora(xin, groupLinear(g, xin, p, targets.map((t) => W[t])), targets);
      const sizes = targets.map((t) => targetShape(cfg, t)[0]);
      return op.split(g, y, -1, sizes);
    }
    return targets.map((t) => o.lora(xin, applyLinear(g, xin, p.linear(W[t])), [t]));
  };
  const rotate = (y: Value): Value => (o.rope === 'fused'
    ? op.rotaryEmbedding(g, y, att.positions!, att.cos, att.sin)
    : rope(g, y, att.cos, att.sin, D));
  if (o.rope === 'fused' && !att.positions) throw new Error('gemmaLayer: rope "fused" needs att.positions');

  if (o.attention === 'gqa') return gqaLayer(g, p, layer, x, att, o);

  // ---- attention ----
  const xn = op.rmsNorm(g, x, p.norm(n.inputNorm), eps);
  const [qf, kf, vf] = project(xn, ['q', 'k', 'v']);
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
    if (!att.past.split) throw new Error('gemmaLayer: attention "matmul" with a past needs past.split');
    const [pPast, pNew] = op.split(g, probs, -1, att.past.split, ['P', 'T']);
    ctx = op.add(g, op.matmul(g, pPast, att.past.v), op.matmul(g, pNew, v));
  } else {
    ctx = op.matmul(g, probs, v);
  }
  ctx = op.reshape(g, ctx, [B, H, 'T', D]);
  ctx = op.reshape(g, op.transpose(g, ctx, [0, 2, 1, 3]), [...rowsOut, H * D]);
  const [attnOut] = project(ctx, ['o']);
  const h = op.add(g, x, op.rmsNorm(g, attnOut, p.norm(n.postAttnNorm), eps));

  // ---- MLP ----
  const m = op.rmsNorm(g, h, p.norm(n.preFfnNorm), eps);
  const [gate, up] = project(m, ['gate', 'up']);
  const act = op.mul(g, op.geluTanh(g, gate), up);
  const [down] = project(act, ['down']);
  const f = op.rmsNorm(g, down, p.norm(n.postFfnNorm), eps);
  return { h: op.add(g, h, f), k, v };
}

/** RMSNorm(a + skip)·scale and a + skip (com.microsoft SkipSimplifiedLayerNormalization): [normed, sum]. */
function skipRmsNorm(g: Graph, a: Value, skip: Value, scale: Value, eps: number): [Value, Value] {
  const stat = { dtype: a.dtype, shape: null };
  const [normed, , , sum] = g.node('SkipSimplifiedLayerNormalization', [a, skip, scale],
    [{ dtype: a.dtype, shape: a.shape }, stat, stat, { dtype: a.dtype, shape: a.shape }], { epsilon: attr.float(eps) }, 'com.microsoft');
  return [normed, sum];
}

/**
 * gemmaLayer with attention 'gqa' (see LayerOptions.attention). q|k|v come out of one linear as
 * [B·T, (H+2·Hkv)·D] and are viewed as [B·T, H+2·Hkv, 1, D], so that one Split yields per-head rows the
 * q/k norms and RoPE (B·T "batches" of one position each, positions [B·T, 1]) work on without a transpose;
 * GroupQueryAttention reads them as [B, T, heads·D]. Its causal rule (new token i sees every past slot and
 * new tokens ≤ i) allows a superset of what the mask allows, so the mask alone decides, as in 'matmul'.
 */
function gqaLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs, o: LayerOptions): LayerOutputs {
  const cfg = p.config;
  const { heads: H, kvHeads: Hkv, headDim: D, rmsNormEps: eps } = cfg;
  if (x.shape?.length !== 2 || (att.batch ?? 1) !== 1 || !o.fuse || o.rope !== 'fused' || !att.past || !att.gqa || !att.positions) {
    throw new Error('gemmaLayer: attention "gqa" needs x [T, C] with batch 1, fused projections and RoPE, a past and gqa inputs');
  }
  const n = layerWeightNames(layer);
  const linear = (xin: Value, names: string[], targets: LoraTarget[]): Value => o.lora(xin, groupLinear(g, xin, p, names), targets);

  // ---- attention ----
  const xn = op.rmsNorm(g, x, p.norm(n.inputNorm), eps);
  const qkv = op.reshape(g, linear(xn, [n.q, n.k, n.v], ['q', 'k', 'v']), ['BT', H + 2 * Hkv, 1, D]);
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
  const attnOut = linear(op.reshape(g, ctx, ['BT', H * D]), [n.o], ['o']);
  // h = x + post_attn_norm(attn), m = pre_ffn_norm(h) in one kernel.
  const [m, h] = skipRmsNorm(g, op.rmsNorm(g, attnOut, p.norm(n.postAttnNorm), eps), x, p.norm(n.preFfnNorm), eps);

  // ---- MLP ----
  const [gate, up] = op.split(g, linear(m, [n.gate, n.up], ['gate', 'up']), -1, [cfg.intermediate, cfg.intermediate]);
  const down = linear(op.mul(g, op.geluTanh(g, gate), up), [n.down], ['down']);
  const f = op.rmsNorm(g, down, p.norm(n.postFfnNorm), eps);
  // The cache wants [B, Hkv, T, D]: with one kv head that is k's and v's own bytes.
  const kOut = Hkv === 1 ? k : op.transpose(g, kr, [2, 1, 0, 3]);
  const vOut = Hkv === 1 ? v : op.transpose(g, vh, [2, 1, 0, 3]);
  return { h: op.add(g, h, f), k: kOut, v: vOut };
}

/** The layer on x [B, T, C], unfused, RoPE in primitive ops, LoRA per target (the training graph's form). */
export function decoderLayer(g: Graph, p: GraphParams, layer: number, x: Value, att: AttentionInputs,
  lora: (t: LoraTarget) => LoraValues | undefined = () => undefined): LayerOutputs {
  return gemmaLayer(g, p, layer, x, att, {
    fuse: false,
    rope: 'primitive',
    lora: (xin, y, [t]) => {
      const l = lora(t);
      if (!l) return y;
      const xa = op.fusedMatMul(g, xin, l.a, { transB: true });
      return op.add(g, y, op.fusedMatMul(g, xa, l.b, { transB: true }));
    },
  });
}

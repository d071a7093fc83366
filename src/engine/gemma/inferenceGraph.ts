// The whole-model inference graph, one graph for prefill and decode: T new tokens after P cached
// positions (P may be 0), logits only at the requested positions, and this call's keys/values as
// outputs for the cache kept outside. One session, one copy of the base weights, any T.
//
// Inputs (B = 1 at inference, kept symbolic):
//   input_ids int64 [B, T]
//   cos_{sliding|full}, sin_{…} float32 [T, D/2]       RoPE tables of the new positions, per layer type
//   mask_{sliding|full} float32 [1, 1, T, P+T]         additive; the window/causality live here
//   split_{sliding|full} int64 [2] = [P, T]
//   past_k_{i}, past_v_{i} float32 [B, Hkv, P, D]     P = Ps on sliding layers, Pf on full ones
//   logit_index int64 [N]                              positions (0…T-1) whose logits are wanted
//   lora_a_{i}_{t} [R, in], lora_b_{i}_{t} [out, R]    (with `lora`) b pre-scaled by alpha/R; R = 0: none
// Outputs:
//   logits float32 [B, N, V]; new_k_{i}, new_v_{i} [B, Hkv, T, D]; (debugHidden) hidden_{0…L}

import { Graph, type BuiltModel, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { ModelWeights } from '../model/weights';
import { FINAL_NORM_NAME } from '../model/weights';
import type { LayerType } from '../model/config';
import { ALL_TARGETS, targetShape, type LoraTarget } from '../train/lora';
import { GraphParams, type ParamsOptions } from './params';
import { decoderLayer, type LoraValues } from './layer';

export interface InferenceGraphOptions extends ParamsOptions {
  /** Adds LoRA inputs for all seven targets on every layer. */
  lora: boolean;
  /** Adds hidden-state outputs as HF's output_hidden_states (index L after the final norm), all positions. */
  debugHidden?: boolean;
}

export const loraInputNames = (layer: number, t: LoraTarget) => ({ a: `lora_a_${layer}_${t}`, b: `lora_b_${layer}_${t}` });

/** Builds the inference graph for a model; the weights are referenced, not copied, until the session loads them. */
export function buildInferenceGraph(mw: ModelWeights, opts: InferenceGraphOptions): BuiltModel {
  const cfg = mw.config;
  const { headDim: D, kvHeads: Hkv } = cfg;
  const g = new Graph('gemma3_infer');
  const p = new GraphParams(g, mw, opts);

  const ids = g.input('input_ids', 'int64', ['B', 'T']);
  const perType = new Map<LayerType, { cos: Value; sin: Value; mask: Value; split: Value }>();
  for (const t of new Set(cfg.layerTypes)) {
    const P = t === 'sliding' ? 'Ps' : 'Pf';
    perType.set(t, {
      cos: g.input(`cos_${t}`, 'float32', ['T', D / 2]),
      sin: g.input(`sin_${t}`, 'float32', ['T', D / 2]),
      mask: g.input(`mask_${t}`, 'float32', [1, 1, 'T', `${P}+T`]),
      split: g.input(`split_${t}`, 'int64', [2]),
    });
  }
  const logitIndex = g.input('logit_index', 'int64', ['N']);

  let x = p.embed(ids);
  if (opts.debugHidden) g.output(x, 'hidden_0');
  for (let i = 0; i < cfg.layers; i++) {
    const type = cfg.layerTypes[i];
    const P = type === 'sliding' ? 'Ps' : 'Pf';
    const t = perType.get(type)!;
    const pastK = g.input(`past_k_${i}`, 'float32', ['B', Hkv, P, D]);
    const pastV = g.input(`past_v_${i}`, 'float32', ['B', Hkv, P, D]);
    const lora = new Map<LoraTarget, LoraValues>();
    if (opts.lora) {
      for (const target of ALL_TARGETS) {
        const [out, inp] = targetShape(cfg, target);
        const names = loraInputNames(i, target);
        lora.set(target, { a: g.input(names.a, 'float32', ['R', inp]), b: g.input(names.b, 'float32', [out, 'R']) });
      }
    }
    const r = decoderLayer(g, p, i, x, { cos: t.cos, sin: t.sin, mask: t.mask, past: { k: pastK, v: pastV, split: t.split } },
      (target) => lora.get(target));
    g.output(r.k, `new_k_${i}`);
    g.output(r.v, `new_v_${i}`);
    x = r.h;
    if (opts.debugHidden && i < cfg.layers - 1) g.output(x, `hidden_${i + 1}`);
  }
  if (opts.debugHidden) g.output(op.rmsNorm(g, x, p.norm(FINAL_NORM_NAME), cfg.rmsNormEps), `hidden_${cfg.layers}`);

  // Norm and head only where logits are wanted: the 262k-wide head dominates otherwise.
  const picked = op.gather(g, x, logitIndex, 1); // [B, N, C]
  let logits = p.head(op.rmsNorm(g, picked, p.norm(FINAL_NORM_NAME), cfg.rmsNormEps));
  if (cfg.finalLogitSoftcap !== null) {
    const cap = g.constF32(cfg.finalLogitSoftcap);
    logits = op.mul(g, op.tanh(g, op.div(g, logits, cap)), cap);
  }
  g.output(logits, 'logits');
  return g.build();
}

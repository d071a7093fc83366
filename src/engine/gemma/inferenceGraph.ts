// The whole-model inference graph, one graph for prefill and decode: T new tokens after P cached
// positions (P may be 0), logits only at the requested positions, and this call's keys/values as
// outputs for the cache kept outside. One session, one copy of the base weights, any T.
//
// Inputs (B = 1 at inference, kept symbolic):
//   input_ids int64 [B, T]  (or inputs_embeds float32 [B, T, C], see InferenceGraphOptions.embeddings)
//   rope_pos int64 [B, T] = 0…T-1                     row of the tables below for each token
//   cos_{sliding|full}, sin_{…} float32 [T, D/2]       RoPE tables of the new positions, per layer type
//   mask_{sliding|full} float32 [1, 1, T, P+T]         additive; the window/causality live here
//   split_{sliding|full} int64 [2] = [P, T]           (attention 'matmul')
//   seqlens_{sliding|full} int32 [B] = P+T−1, total_{sliding|full} int32 [] = P+T   (attention 'gqa')
//   past_k_{i}, past_v_{i} float32 [B, Hkv, P, D]     P = Ps on sliding layers, Pf on full ones
//   logit_index int64 [N]                              rows of the flattened [B·T] positions whose logits are wanted
//                                                      (with `head: 'apart'`: whose hidden rows are output for the head)
//   lora_a_{i}_{g} [n·R, in], lora_b_{i}_{g} [out, n·R]  (with `lora`) per group g of layer.ts's LORA_GROUPS:
//                                                      A of the group's n targets stacked, B block-diagonal
//                                                      and pre-scaled by alpha/R; n·R = 0: no adapter
// Outputs:
//   logits float32 [N, V] (with `head: 'apart'`: rows float32 [N, C], the last layer's output at logit_index,
//   which headGraph turns into logits: input rows [N, C], output logits [N, V]); new_kv [2·L·B·Hkv·T·D]: every layer's new keys then values, k_0 v_0 k_1 v_1 …, each
//   [B, Hkv, T, D] flattened (one output: on WebGPU every output is a read-back that waits for the GPU,
//   and 2·L of them made a decode step ~10× slower); (debugHidden) hidden_{0…L} [B·T, C]

import { Graph, type InitializerSink } from '../onnx/graph';
import type { Value } from '../onnx/nodes';
import * as op from '../onnx/ops';
import type { ModelWeights } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import type { LayerType } from '../model/config';
import type { LoraTarget } from '../model/loraTargets';
import { GraphParams, type ParamsOptions } from './params';
import { gemmaLayer, layerTypeInputs, LORA_GROUPS, type AttentionInputs, type LoraGroup, type LoraValues } from './layer';
import { loraGroupShape } from './loraStack';
import { finalNorm, lmHead } from './lmHead';

export interface InferenceGraphOptions extends ParamsOptions {
  /** Adds LoRA inputs for all seven targets on every layer. */
  lora: boolean;
  /** Adds hidden-state outputs as HF's output_hidden_states (index L after the final norm), all positions. */
  debugHidden?: boolean;
  /**
   * 'ids' (default): input_ids int64 [B, T], looked up in the graph. 'vectors': inputs_embeds float32
   * [B, T, C], the unscaled embedding rows read by the caller (embeddingReader.ts); the graph then holds
   * no lookup table, only the head's copy of the embedding.
   */
  embeddings?: 'ids' | 'vectors';
  /** The layers' attention lowering (layer.ts LayerOptions.attention); default 'matmul'. The runtime uses 'gqa'. */
  attention?: 'matmul' | 'gqa';
  /**
   * 'inside' (default): the graph ends with the LM head. 'apart': it outputs the hidden rows instead and
   * headGraph holds the head, so the head can be a session of its own (the runtime keeps the head's packed
   * weights between loads; see runtimeCache.ts).
   */
  head?: 'inside' | 'apart';
}

/** Graph input names of a layer's LoRA pair for one group. */
export const loraInputNames = (layer: number, group: LoraGroup) => ({ a: `lora_a_${layer}_${group}`, b: `lora_b_${layer}_${group}` });

function groupOf(targets: readonly LoraTarget[]): LoraGroup {
  const key = targets.join(',');
  const hit = (Object.keys(LORA_GROUPS) as LoraGroup[]).find((gname) => LORA_GROUPS[gname].join(',') === key);
  if (!hit) throw new Error(`no LoRA group for projections ${key}`);
  return hit;
}

/**
 * Concat of many values as a tree of Concats of at most `group` inputs: a WebGPU kernel binds each input
 * as a storage buffer, and adapters allow as few as 8 per shader stage.
 */
function concatMany(g: Graph, xs: Value[], axis: number, group = 6): Value {
  if (xs.length <= group) return xs.length === 1 ? xs[0] : op.concat(g, xs, axis);
  const parts: Value[] = [];
  for (let i = 0; i < xs.length; i += group) parts.push(concatMany(g, xs.slice(i, i + group), axis, group));
  return concatMany(g, parts, axis, group);
}

/** The inference graph for a model; with a sink, each converted weight goes to it as soon as it exists. */
export function inferenceGraph(mw: ModelWeights | WeightSource, opts: InferenceGraphOptions, sink?: InitializerSink): Graph {
  return inferenceGraphWithParams(mw, opts, sink).graph;
}

/**
 * inferenceGraph, with the weights it holds (e.g. to read embedding rows for `embeddings: 'vectors'`).
 * With `reuse` (the params of a graph built earlier over the same sink) the weights already written are
 * viewed, not converted again: a second variant of the graph costs no weight bytes.
 */
export function inferenceGraphWithParams(mw: ModelWeights | WeightSource, opts: InferenceGraphOptions, sink?: InitializerSink,
  reuse?: GraphParams): { graph: Graph; params: GraphParams } {
  const cfg = mw.config;
  const { headDim: D, kvHeads: Hkv } = cfg;
  const g = new Graph('gemma3_infer');
  g.target = opts.target ?? 'cpu';
  if (sink) g.streamInitializers(sink);
  const p = new GraphParams(g, mw, opts, reuse);

  const B = 1;
  const embedded = opts.embeddings === 'vectors'
    ? p.scaleEmbedding(g.input('inputs_embeds', 'float32', [B, 'T', cfg.hidden]))
    : p.embed(g.input('input_ids', 'int64', [B, 'T']));
  const gqa = opts.attention === 'gqa';
  const ropeIn = g.input('rope_pos', 'int64', [B, 'T']);
  // 'gqa' rotates per-row heads [B·T, heads, 1, D]: one position per row.
  const ropePos = gqa ? op.reshape(g, ropeIn, ['BT', 1]) : ropeIn;
  const pastLength = (t: LayerType) => (t === 'sliding' ? 'Ps' : 'Pf');
  const perType = layerTypeInputs(g, cfg, (t) => `${pastLength(t)}+T`);
  // Per layer type, the sizes attention splits the scores by ('matmul') or GroupQueryAttention's ('gqa').
  const sizes = new Map<LayerType, Pick<AttentionInputs, 'gqa'> & { split?: Value }>();
  for (const t of perType.keys()) {
    sizes.set(t, gqa
      ? { gqa: { seqlensK: g.input(`seqlens_${t}`, 'int32', [B]), total: g.input(`total_${t}`, 'int32', []) } }
      : { split: g.input(`split_${t}`, 'int64', [2]) });
  }
  const logitIndex = g.input('logit_index', 'int64', ['N']);

  let x = op.reshape(g, embedded, ['BT', cfg.hidden]);
  const newKv: Value[] = [];
  if (opts.debugHidden) g.output(x, 'hidden_0');
  for (let i = 0; i < cfg.layers; i++) {
    const type = cfg.layerTypes[i];
    const t = perType.get(type)!;
    const { split, gqa: gqaSizes } = sizes.get(type)!;
    const pastK = g.input(`past_k_${i}`, 'float32', [B, Hkv, pastLength(type), D]);
    const pastV = g.input(`past_v_${i}`, 'float32', [B, Hkv, pastLength(type), D]);
    const lora = (targets: readonly LoraTarget[]): LoraValues | undefined => {
      if (!opts.lora) return undefined;
      const group = groupOf(targets);
      const [out, inp] = loraGroupShape(cfg, group);
      const names = loraInputNames(i, group);
      return { a: g.input(names.a, 'float32', ['R', inp]), b: g.input(names.b, 'float32', [out, 'R']) };
    };
    const r = gemmaLayer(g, p, i, x,
      { batch: B, positions: ropePos, cos: t.cos, sin: t.sin, mask: t.mask, past: { k: pastK, v: pastV, split }, gqa: gqaSizes },
      { fuse: true, rope: 'fused', lora, attention: opts.attention });
    newKv.push(op.reshape(g, r.k, ['kv']), op.reshape(g, r.v, ['kv']));
    x = r.h;
    if (opts.debugHidden && i < cfg.layers - 1) g.output(x, `hidden_${i + 1}`);
  }
  if (opts.debugHidden) g.output(finalNorm(g, p, x), `hidden_${cfg.layers}`);

  // Norm and head only where logits are wanted.
  const rows = op.gather(g, x, logitIndex, 0); // [N, C]
  if (opts.head === 'apart') g.output(rows, 'rows');
  else g.output(lmHead(g, p, rows).logits, 'logits'); // [N, V]
  g.output(concatMany(g, newKv, 0), 'new_kv');
  return { graph: g, params: p };
}

/**
 * The LM head as a graph of its own, for an inference graph built with `head: 'apart'`: input rows float32
 * [N, C], output logits float32 [N, V]. With `reuse`, weights already written to the sink are viewed.
 */
export function headGraphWithParams(mw: ModelWeights | WeightSource, opts: ParamsOptions, sink?: InitializerSink,
  reuse?: GraphParams): { graph: Graph; params: GraphParams } {
  const g = new Graph('gemma3_head');
  g.target = opts.target ?? 'cpu';
  if (sink) g.streamInitializers(sink);
  const p = new GraphParams(g, mw, opts, reuse);
  g.output(lmHead(g, p, g.input('rows', 'float32', ['N', mw.config.hidden])).logits, 'logits');
  return { graph: g, params: p };
}

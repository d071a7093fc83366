// The LoRA train-step graph: one ONNX graph that runs the forward with LoRA on the chosen projections,
// the completion-only cross-entropy at label positions, and the backward to every LoRA A and B, as an
// ordinary inference session (onnxruntime-node has no training API). The decoder layer is the same code
// as inference (layer.ts); the backward is appended by reverse-mode autodiff over its recorded ops.
//
// Inputs (B batch, T sequence, P label positions, R rank; all symbolic but R):
//   input_ids int64 [B, T]                       right-padded; causality keeps pads out of real rows
//   cos_{sliding|full}, sin_{…} float32 [T, D/2]   RoPE tables for positions 0…T-1
//   mask_{sliding|full} float32 [1, 1, T, T]      additive: causal, and the window on sliding layers
//   label_pos int64 [P]                           flat b·T+t of each position whose next token is a label
//   label_ids int64 [P]                           that label
//   grad_scale float32 []                         the backward computes d(grad_scale · Σ CE)/dθ
//   lora_a_{i}_{t} [R, in], lora_b_{i}_{t} [out, R]   PEFT's A and B (B unscaled; alpha/R is applied here)
// Outputs:
//   loss_sum float32 []                           Σ CE over the P positions
//   label_hit float32 [P]                         1 where argmax(logits) is the label (exact-match metric)
//   grad_a_{i}_{t}, grad_b_{i}_{t}                 d(grad_scale · loss_sum)/dA, /dB
//
// Frozen base weights: f32 (exactness) or Q4_0 through MatMulNBits. dX through a 4-bit linear needs
// dy·W, and MatMulNBits only computes x·Wᵀ, so the q4 graph keeps a second 4-bit copy of each Wᵀ
// (W dequantised, transposed and requantised to Q4_0 along its output axis): one extra half-byte per
// weight, and the backward runs on the same int4 kernel as the forward.

import { Graph, type BuiltModel, type InitializerSink, type NodeRecord, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { attr } from '../onnx/graph';
import { gradients } from '../onnx/autodiff';
import { shapeOf as shapeOfValue } from '../onnx/vjp';
import type { ModelWeights, Weight } from '../model/weights';
import { EMBED_NAME, FINAL_NORM_NAME } from '../model/weights';
import type { LayerType } from '../model/config';
import { dequantizeQ4_0, dequantizeQ8_0, q4_0ToMatMulNBits, quantizeQ4_0 } from '../model/quant';
import { targetShape, type LoraTarget } from '../train/lora';
import { GraphParams, type ParamsOptions } from './params';
import { decoderLayer, type LoraValues } from './layer';

export interface TrainGraphOptions extends ParamsOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  /**
   * How the q4 backward gets dy·W for the layers' linears and for the LM head:
   *  'transposed': a second Q4_0 copy of Wᵀ (fast int4 kernel, +½ byte per weight, requantisation error);
   *  'dequant': W unpacked from the forward's own 4-bit bytes in the graph each step (exact, no extra memory).
   */
  backward?: { layers: 'transposed' | 'dequant'; head: 'transposed' | 'dequant' };
}

export const trainLoraNames = (layer: number, t: LoraTarget) => ({
  a: `lora_a_${layer}_${t}`, b: `lora_b_${layer}_${t}`, gradA: `grad_a_${layer}_${t}`, gradB: `grad_b_${layer}_${t}`,
});

function f32Of(w: Weight): Float32Array {
  const n = w.shape.reduce((a, b) => a * b, 1);
  switch (w.value.type) {
    case 'f32': return w.value.data;
    case 'q4_0': return dequantizeQ4_0(w.value.data, n);
    case 'q8_0': return dequantizeQ8_0(w.value.data, n);
  }
}

/** W [N, K] → Wᵀ [K, N] as MatMulNBits operands (Q4_0 along N), made a few rows at a time. */
function transposedQ4(w: Weight): { data: Uint8Array; scales: Float32Array; K: number; N: number } {
  const [N, K] = w.shape;
  const f = f32Of(w);
  const t = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = f[n * K + k];
  const bq = q4_0ToMatMulNBits(quantizeQ4_0(t), K, N);
  return { data: bq.data, scales: bq.scales, K: N, N: K };
}

/**
 * dy·W for a MatMulNBits node (y = x·Wᵀ, W [N, K]) with W dequantised in the graph from the node's own
 * 4-bit operands: B uint8 [N, K/32, 16] holds element 2j in the low and 2j+1 in the high nibble of
 * byte j, and w = (q − 8)·scale per block of 32 (8-bit, e.g. a Q8_0 embedding: one byte, w = (q − 128)·scale). Rows are taken CHUNK at a time, so the 262k-row LM
 * head never exists as one float32 matrix (that would be 670 MB on the 270M).
 */
const DEQUANT_ROWS = 16384;
function dequantBackward(g: Graph, node: NodeRecord, dy: Value): Value {
  const [, b, scales] = node.inputs as Value[];
  const int = (k: string) => { const a = node.attrs[k]; return a?.kind === 'int' ? a.value : NaN; };
  const N = int('N'), K = int('K');
  const bits = int('bits');
  if ((bits !== 4 && bits !== 8) || int('block_size') !== 32) throw new Error(`train graph: ${bits}-bit weights with block ${int('block_size')} cannot be dequantised`);
  const blocks = K / 32;
  // The dequantisation reads only initializers, so ORT would constant-fold it at session creation
  // (every weight in float32: GBs) or run it first and keep it alive. Slicing from a start that depends
  // on dy ties each chunk to the backward: made just before its MatMul, freed right after.
  const dyRows = op.gather(g, shapeOfValue(g, dy), g.constI64([0]), 0);
  const zero = op.mul(g, dyRows, g.constI64([0]));
  let acc: Value | null = null;
  for (let r0 = 0; r0 < N; r0 += DEQUANT_ROWS) {
    const n = Math.min(DEQUANT_ROWS, N - r0);
    const start = op.add(g, zero, g.constI64([r0]));
    const end = op.add(g, zero, g.constI64([r0 + n]));
    const axis0 = g.constI64([0]);
    const bc = g.node('Slice', [b, start, end, axis0], [{ dtype: 'uint8', shape: [n, blocks, b.shape?.[2] ?? 16] }])[0];
    const sc = g.node('Slice', [scales, start, end, axis0], [{ dtype: 'float32', shape: [n, blocks] }])[0];
    const whole = n === N;
    let q = bc; // 8-bit: one byte per weight, zero point 128
    if (bits === 4) {
      const low = g.node('BitwiseAnd', [bc, u8const(g, 15)], [{ dtype: 'uint8', shape: [n, blocks, 16] }])[0];
      const high = g.node('BitShift', [bc, u8const(g, 4)], [{ dtype: 'uint8', shape: [n, blocks, 16] }], { direction: attr.string('RIGHT') })[0];
      const unsq = (v: Value) => g.node('Unsqueeze', [v, g.constI64([-1])], [{ dtype: 'uint8', shape: [n, blocks, 16, 1] }])[0];
      q = op.reshape(g, op.concat(g, [unsq(low), unsq(high)], -1), [n, blocks, 32]);
    }
    const s3 = g.node('Unsqueeze', [sc, g.constI64([-1])], [{ dtype: 'float32', shape: [n, blocks, 1] }])[0];
    const w = op.reshape(g, op.mul(g, op.sub(g, op.cast(g, q, 'float32'), g.constF32(bits === 4 ? 8 : 128)), s3), [n, K]);
    const dyc = whole ? dy : op.slice(g, dy, [r0], [r0 + n], [-1], dy.shape ? [...dy.shape.slice(0, -1), n] : null);
    const part = op.matmul(g, dyc, w);
    acc = acc ? op.add(g, acc, part) : part;
  }
  return acc!;
}

const u8consts = new WeakMap<Graph, Map<number, Value>>();
function u8const(g: Graph, v: number): Value {
  let m = u8consts.get(g);
  if (!m) u8consts.set(g, (m = new Map()));
  let c = m.get(v);
  if (!c) m.set(v, (c = g.initializer(`const_u8_${v}`, 'uint8', [], Uint8Array.of(v))));
  return c;
}

/** Serialises the train-step graph with in-memory external weights (tests, small models). */
export function buildTrainGraph(mw: ModelWeights, opts: TrainGraphOptions): BuiltModel {
  return trainGraph(mw, opts).build();
}

/** The train-step graph for a model and a LoRA configuration; with a sink, weights stream to it as made. */
export function trainGraph(mw: ModelWeights, opts: TrainGraphOptions, sink?: InitializerSink): Graph {
  const cfg = mw.config;
  const { headDim: D, vocabSize: V, hidden: C } = cfg;
  const g = new Graph('gemma3_train');
  if (sink) g.streamInitializers(sink);
  const p = new GraphParams(g, mw, opts);
  const scaling = opts.alpha / opts.rank;

  const ids = g.input('input_ids', 'int64', ['B', 'T']);
  const perType = new Map<LayerType, { cos: Value; sin: Value; mask: Value }>();
  for (const t of new Set(cfg.layerTypes)) {
    perType.set(t, {
      cos: g.input(`cos_${t}`, 'float32', ['T', D / 2]),
      sin: g.input(`sin_${t}`, 'float32', ['T', D / 2]),
      mask: g.input(`mask_${t}`, 'float32', [1, 1, 'T', 'T']),
    });
  }
  const labelPos = g.input('label_pos', 'int64', ['P']);
  const labelIds = g.input('label_ids', 'int64', ['P']);
  const gradScale = g.input('grad_scale', 'float32', []);

  const params: { layer: number; target: LoraTarget; a: Value; b: Value }[] = [];
  let x = p.embed(ids);
  for (let i = 0; i < cfg.layers; i++) {
    const lora = new Map<LoraTarget, LoraValues>();
    for (const target of opts.targets) {
      const [out, inp] = targetShape(cfg, target);
      const n = trainLoraNames(i, target);
      const a = g.input(n.a, 'float32', [opts.rank, inp]);
      const b = g.input(n.b, 'float32', [out, opts.rank]);
      params.push({ layer: i, target, a, b });
      lora.set(target, { a, b: op.mul(g, b, g.constF32(scaling)) });
    }
    const t = perType.get(cfg.layerTypes[i])!;
    x = decoderLayer(g, p, i, x, { cos: t.cos, sin: t.sin, mask: t.mask, past: null }, (target) => lora.get(target)).h;
  }

  // Final norm and the LM head only at label positions: the 262k-wide head dominates otherwise.
  const rows = op.gather(g, op.reshape(g, x, ['BT', C]), labelPos, 0); // [P, C]
  let logits = p.head(op.rmsNorm(g, rows, p.norm(FINAL_NORM_NAME), cfg.rmsNormEps)); // [P, V]
  if (cfg.finalLogitSoftcap !== null) {
    const cap = g.constF32(cfg.finalLogitSoftcap);
    logits = op.mul(g, op.tanh(g, op.div(g, logits, cap)), cap);
  }

  // Cross-entropy, forward beside backward, with as few [P, V] tensors as possible (each is 168 MB for
  // 160 label tokens of the 262k vocabulary):
  //   forward:  loss_sum = Σ_p (logsumexp(logits_p) − logits_p[label_p])
  //   backward: dlogits = softmax(logits) − onehot(label); grad_scale is applied to the small LoRA
  //             gradients at the end instead (the backward is linear in its seed).
  const tgt = g.node('Unsqueeze', [labelIds, g.constI64([-1])], [{ dtype: 'int64', shape: ['P', 1] }])[0];
  const lse = g.node('ReduceLogSumExp', [logits, g.constI64([-1])], [{ dtype: 'float32', shape: ['P', 1] }], { keepdims: attr.int(1) })[0];
  const picked = g.node('GatherElements', [logits, tgt], [{ dtype: 'float32', shape: ['P', 1] }], { axis: attr.int(1) })[0];
  const lossSum = g.node('ReduceSum', [op.sub(g, lse, picked)], [{ dtype: 'float32', shape: [] }], { keepdims: attr.int(0) })[0];
  g.output(lossSum, 'loss_sum');
  // 1 where the greedy choice is the label (ties go to the lowest id, as argmax does).
  const argmax = g.node('ArgMax', [logits], [{ dtype: 'int64', shape: ['P'] }], { axis: attr.int(-1), keepdims: attr.int(0), select_last_index: attr.int(0) })[0];
  const eq = g.node('Equal', [argmax, labelIds], [{ dtype: 'bool', shape: ['P'] }])[0];
  g.output(op.cast(g, eq, 'float32'), 'label_hit');
  const minusOne = g.node('Expand', [g.constF32([-1]), g.node('Shape', [tgt], [{ dtype: 'int64', shape: [2] }])[0]], [{ dtype: 'float32', shape: ['P', 1] }])[0];
  const dlogits = g.node('ScatterElements', [op.softmax(g, logits, -1), tgt, minusOne], [{ dtype: 'float32', shape: ['P', V] }], { axis: attr.int(1), reduction: attr.string('add') })[0];

  const transposed = new Map<string, { b: Value; scales: Value; K: number; N: number }>();
  const how = opts.backward ?? { layers: 'dequant', head: 'dequant' };
  const matMulNBitsBackward = (gg: Graph, node: NodeRecord, dy: Value): Value => {
    const bName = node.inputs[1]!.name;
    const wName = bName.endsWith('.q') ? bName.slice(0, -2) : bName;
    if ((wName === EMBED_NAME ? how.head : how.layers) === 'dequant') return dequantBackward(gg, node, dy);
    let tq = transposed.get(wName);
    if (!tq) {
      const w = mw.weights.get(wName);
      if (!w) throw new Error(`train graph: no weight ${wName} behind ${bName}`);
      const t = transposedQ4(w);
      tq = {
        b: gg.initializer(`${wName}.qT`, 'uint8', [t.N, t.K / 32, 16], t.data),
        scales: gg.initializer(`${wName}.scalesT`, 'float32', [t.N, t.K / 32], t.scales),
        K: t.K, N: t.N,
      };
      transposed.set(wName, tq);
    }
    return op.matMulNBits(gg, dy, tq.b, tq.scales, { K: tq.K, N: tq.N, bits: 4, blockSize: 32, accuracyLevel: opts.accuracyLevel });
  };
  const grads = gradients(g, [[logits, dlogits]], params.flatMap((q) => [q.a, q.b]), { matMulNBitsBackward });
  params.forEach((q, k) => {
    const n = trainLoraNames(q.layer, q.target);
    g.output(op.mul(g, grads[2 * k], gradScale), n.gradA);
    g.output(op.mul(g, grads[2 * k + 1], gradScale), n.gradB);
  });
  return g;
}

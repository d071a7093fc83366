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
//   backward bool []                              false: the forward alone (validation); every grad_* is then grad_scale
//   lora_a_{i}_{t} [R, in], lora_b_{i}_{t} [out, R]   PEFT's A and B (B unscaled; loraScale is applied here)
// Outputs:
//   loss_sum float32 []                           Σ CE over the P positions
//   label_hit float32 [P]                         1 where argmax(logits) is the label (exact-match metric)
//   grad_a_{i}_{t}, grad_b_{i}_{t}                 d(grad_scale · loss_sum)/dA, /dB
//
// Frozen base weights: f32 (exactness) or Q4_0 through MatMulNBits. dX through a 4-bit linear needs
// dy·W, and MatMulNBits only computes x·Wᵀ. W is dequantised inside the graph from the forward's own
// 4-bit bytes, a chunk of rows at a time, just before its use (onnx/nbitsVjp.ts: exact gradients of the
// 4-bit model, no extra resident memory). Measured on the 270M shape, 2 threads: the dequantisation (a
// per-row DequantizeLinear on chunks of 1024 weight rows) is ~8% of a step's kernel time. The alternative
// kept for comparison, a transposed requantised copy of each W (int kernels, but +½ byte per weight and a
// requantisation error that reached 25% of the largest gradient on the tiny test model), is in
// bench/transposedBackward.ts (TrainGraphOptions.nbitsBackward).
//
// The backward sits in the then-branch of an ONNX If on `backward`: validation runs the same session (the
// same prepacked weights) without it, about a third of a step's work. Graph inputs are serialised
// without shapes (Graph.omitInputShapes): ORT's allocation planner is quadratic in the values with known
// shapes, and session creation of this ~9k-node graph took 37 s with them, ~5 s without (and the If).
//
// Memory: the LM head's [P, V] tensors are the step's largest (168 MB per 160 labels of the 262k
// vocabulary), so its backward is fused with the cross-entropy's and chunked over V (lmHead.ts); layers are
// recomputed in the backward from their saved inputs (`recompute`, default on in the engine), reusing the
// forward's projection outputs instead of running their 4-bit matmuls again (`keepProjections`, all seven
// by default in the engine: the recomputation is then only the cheap elementwise ops and attention).
//
// The graph is built in three stages, each on the same Graph: `forward` (embedding, layers, each layer's nodes
// recorded as a Region), `loss` (head and cross-entropy at label positions, the graph's outputs) and
// `backward` (the seed, autodiff, the recomputation; recorded as a Region that runs under an If). Edits
// of what runs (the If regions, reusing the forward's projections) are Graph marks applied when the graph
// is serialised, so they cannot shift a node range or hide a node from autodiff.

import { Graph, type InitializerSink, type Region } from '../onnx/graph';
import type { NodeRecord, Value } from '../onnx/nodes';
import * as op from '../onnx/ops';
import { gradients, type MatMulNBitsBackward } from '../onnx/autodiff';
import { nbitsMatMulBackward, nbitsOperandOf, tiedTo } from '../onnx/nbitsVjp';
import type { ModelWeights } from '../model/weights';
import { asWeightSource, type WeightSource } from '../model/weightSource';
import { EMBED_NAME, layerWeightNames } from '../model/weights';
import type { LayerType } from '../model/config';
import { loraScale, targetShape, type LoraTarget } from '../model/loraTargets';
import { GraphParams, type ParamsOptions } from './params';
import { decoderLayer, layerTypeInputs, type LayerTypeInputs, type LoraValues } from './layer';
import { crossEntropy, crossEntropyBackward, headCrossEntropyBackward, lmHead, type CrossEntropy, type HeadOutputs } from './lmHead';

export interface TrainGraphOptions extends ParamsOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  /**
   * dy·W through 4-bit weights held some other way than the default (W unpacked in the graph from the
   * forward's own bytes: onnx/nbitsVjp.ts, and the fused head + cross-entropy backward of lmHead.ts), for
   * the layers' linears and for the LM head; bench/transposedBackward.ts keeps requantised copies of Wᵀ.
   */
  nbitsBackward?: { layers?: MatMulNBitsBackward; head?: MatMulNBitsBackward };
  /**
   * Recompute each layer's forward during the backward from its saved input (activation
   * checkpointing): only the L layer inputs live from the forward to the backward instead of every
   * activation (~33 MB per layer for 4 × 120 tokens at the 270M shape), for one more forward of compute.
   */
  recompute?: boolean;
  /**
   * With recompute, the projections whose base (frozen-weight) outputs the forward keeps for the
   * backward instead of recomputing them: their MatMulNBits runs once, for [B·T, out] floats held per
   * layer until the backward has passed it. Default none.
   */
  keepProjections?: readonly LoraTarget[];
  /**
   * Only the forward, loss_sum and label_hit (no backward, no grad_* outputs): validation needs no
   * gradients, and ORT runs every node of a graph whatever outputs are fetched.
   */
  forwardOnly?: boolean;
}

export const trainLoraNames = (layer: number, t: LoraTarget) => ({
  a: `lora_a_${layer}_${t}`, b: `lora_b_${layer}_${t}`, gradA: `grad_a_${layer}_${t}`, gradB: `grad_b_${layer}_${t}`,
});

/** The weight name behind a linear node (MatMulNBits' B is `<weight>.q`), or null for other nodes. */
function nbitsWeightName(n: NodeRecord): string | null {
  if (n.domain !== 'com.microsoft' || n.op !== 'MatMulNBits') return null;
  const b = n.inputs[1]!.name;
  return b.endsWith('.q') ? b.slice(0, -2) : b;
}

/** Layers per nested backward branch (session set-up time; see recomputedGradients). */
const LAYERS_PER_BRANCH = 6;

/** The step graph's inputs (see the top of this file). */
interface StepInputs {
  ids: Value;
  perType: Map<LayerType, LayerTypeInputs>;
  labelPos: Value;
  labelIds: Value;
  gradScale: Value;
  /** Every LoRA A and B, in trainLoraNames order (layer-major, targets as given). */
  params: { layer: number; target: LoraTarget; a: Value; b: Value }[];
  /** Per layer, each target's pair as the layer reads it (B scaled by alpha/R in the graph). */
  layerLora: Map<LoraTarget, LoraValues>[];
}

function stepInputs(g: Graph, p: GraphParams, opts: TrainGraphOptions): StepInputs {
  const cfg = p.config;
  const ids = g.input('input_ids', 'int64', ['B', 'T']);
  const perType = layerTypeInputs(g, cfg, () => 'T');
  const labelPos = g.input('label_pos', 'int64', ['P']);
  const labelIds = g.input('label_ids', 'int64', ['P']);
  const gradScale = g.input('grad_scale', 'float32', []);
  const scale = g.constF32(loraScale(opts.alpha, opts.rank));
  const params: StepInputs['params'] = [];
  const layerLora: StepInputs['layerLora'] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const lora = new Map<LoraTarget, LoraValues>();
    for (const target of opts.targets) {
      const [out, inp] = targetShape(cfg, target);
      const n = trainLoraNames(i, target);
      const a = g.input(n.a, 'float32', [opts.rank, inp]);
      const b = g.input(n.b, 'float32', [out, opts.rank]);
      params.push({ layer: i, target, a, b });
      lora.set(target, { a, b: op.mul(g, b, scale) });
    }
    layerLora.push(lora);
  }
  return { ids, perType, labelPos, labelIds, gradScale, params, layerLora };
}

/** Layer i of the step graph on x [B, T, C] (the forward's, or its recomputation in the backward). */
function stepLayer(g: Graph, p: GraphParams, inp: StepInputs, i: number, x: Value): Value {
  const t = inp.perType.get(p.config.layerTypes[i])!;
  return decoderLayer(g, p, i, x, { cos: t.cos, sin: t.sin, mask: t.mask, past: null }, (target) => inp.layerLora[i].get(target)).h;
}

interface Forward {
  /** Per layer, its input and the region of nodes it recorded. */
  layers: { input: Value; region: Region }[];
  /** The last layer's output [B, T, C]. */
  hidden: Value;
}

/** The embedding and every layer. */
function forward(g: Graph, p: GraphParams, inp: StepInputs): Forward {
  const layers: Forward['layers'] = [];
  let x = p.embed(inp.ids);
  for (let i = 0; i < p.config.layers; i++) {
    const input = x;
    const r = g.record(() => stepLayer(g, p, inp, i, input));
    layers.push({ input, region: r.region });
    x = r.value;
  }
  return { layers, hidden: x };
}

/** The head and cross-entropy at the label positions only (the 262k-wide head dominates otherwise); outputs loss_sum and label_hit. */
function loss(g: Graph, p: GraphParams, inp: StepInputs, hidden: Value): { head: HeadOutputs; ce: CrossEntropy } {
  const rows = op.gather(g, op.reshape(g, hidden, ['BT', p.config.hidden]), inp.labelPos, 0); // [P, C]
  const head = lmHead(g, p, rows);
  // grad_scale is applied to the small LoRA gradients at the end (the backward is linear in its seed).
  const ce = crossEntropy(g, head.logits, inp.labelIds);
  g.output(ce.lossSum, 'loss_sum');
  g.output(ce.labelHit, 'label_hit');
  return { head, ce };
}

/**
 * How autodiff gets dy·W through a MatMulNBits node: opts.nbitsBackward where given, else W dequantised from
 * the forward's bytes (the VJP in onnx/nbitsVjp.ts, with the weight's zero point).
 */
function nbitsBackward(p: GraphParams, opts: TrainGraphOptions): MatMulNBitsBackward {
  return (g, node, dy) => {
    const wName = nbitsWeightName(node)!;
    const isHead = wName === EMBED_NAME;
    const own = isHead ? opts.nbitsBackward?.head : opts.nbitsBackward?.layers;
    if (own) return own(g, node, dy);
    const head = isHead ? p.headOperand() : null;
    const zeroPoint = head?.kind === 'nbits' ? head.w.codes.zeroPoint : p.layoutOf(wName)!.zeroPoint;
    return nbitsMatMulBackward(g, nbitsOperandOf(node, zeroPoint), dy);
  };
}

/**
 * The backward, run only when the `backward` input is true (an If: validation runs the same session, the
 * same prepacked weights, without it); outputs grad_a/grad_b of every LoRA pair, d(grad_scale · loss_sum).
 * When false every grad_* output is grad_scale.
 */
function backward(g: Graph, p: GraphParams, opts: TrainGraphOptions, inp: StepInputs, fwd: Forward, l: { head: HeadOutputs; ce: CrossEntropy }): void {
  const withGrads = g.input('backward', 'bool', []);
  const matMulNBitsBackward = nbitsBackward(p, opts);
  const { value: scaled, region } = g.record(() => {
    // The seed: the fused head + cross-entropy backward where it applies, else d loss / d logits through autodiff.
    const fused = p.config.finalLogitSoftcap === null && !opts.nbitsBackward?.head;
    const seed: [Value, Value] = fused
      ? [l.head.normed, headCrossEntropyBackward(g, p, l.ce, inp.labelIds)]
      : [l.head.logits, crossEntropyBackward(g, l.ce, l.head.logits)];
    const wrt = inp.params.flatMap((q) => [q.a, q.b]);
    const grads = opts.recompute
      ? recomputedGradients(g, p, opts, inp, fwd, seed, withGrads, matMulNBitsBackward)
      : gradients(g, [seed], wrt, { matMulNBitsBackward });
    return grads.map((d) => op.mul(g, d, inp.gradScale));
  });
  const outs = g.conditional(region, withGrads, scaled, scaled.map(() => inp.gradScale));
  inp.params.forEach((q, k) => {
    const n = trainLoraNames(q.layer, q.target);
    g.output(outs[2 * k], n.gradA);
    g.output(outs[2 * k + 1], n.gradB);
  });
}

/**
 * Gradients with each layer recomputed from its saved input: the tail (head, final norm, row gather) back to
 * the last layer's output, then layer by layer, re-running layer i tied to the arriving gradient (so it cannot
 * run earlier) and differentiating that copy; the first forward's activations are then dead once it has
 * passed. Every LAYERS_PER_BRANCH layers' backward is a nested If on the same condition: ORT plans each
 * (sub)graph's memory on its own, in time quadratic in its size, so a few smaller bodies are set up faster
 * than one. Returns the gradients in `inp.params` order (A then B).
 */
function recomputedGradients(g: Graph, p: GraphParams, opts: TrainGraphOptions, inp: StepInputs, fwd: Forward, seed: [Value, Value],
  withGrads: Value, matMulNBitsBackward: MatMulNBitsBackward): Value[] {
  const L = p.config.layers;
  let [dx] = gradients(g, [seed], [fwd.hidden], { matMulNBitsBackward });
  const byParam = new Map<Value, Value>();
  for (let top = L - 1; top >= 0; top -= LAYERS_PER_BRANCH) {
    const group = Array.from({ length: Math.min(LAYERS_PER_BRANCH, top + 1) }, (_, k) => top - k);
    const { value: made, region } = g.record(() => {
      const mine: Value[] = [];
      for (const i of group) {
        const xi = tiedTo(g, fwd.layers[i].input, dx);
        const rec = g.record(() => stepLayer(g, p, inp, i, xi));
        const pairs = inp.params.filter((q) => q.layer === i).flatMap((q) => [q.a, q.b]);
        // Layer 0's input is the (frozen) embedding: no gradient for it, so no dy·W into its q, k and v inputs.
        const wantInput = i > 0;
        const r = gradients(g, [[rec.value, dx]], wantInput ? [xi, ...pairs] : pairs, { matMulNBitsBackward });
        reuseForwardProjections(g, p, opts, i, fwd.layers[i].region, rec.region);
        const off = wantInput ? 1 : 0;
        if (wantInput) dx = r[0];
        pairs.forEach((v, k) => byParam.set(v, r[k + off]));
        mine.push(...pairs);
      }
      return { dx: group.includes(0) ? null : dx, mine };
    });
    const values = [...(made.dx ? [made.dx] : []), ...made.mine.map((v) => byParam.get(v)!)];
    const outs = g.conditional(region, withGrads, values, values.map(() => inp.gradScale));
    const off = made.dx ? 1 : 0;
    if (made.dx) dx = outs[0];
    made.mine.forEach((v, k) => byParam.set(v, outs[k + off]));
  }
  return inp.params.flatMap((q) => [byParam.get(q.a)!, byParam.get(q.b)!]);
}

/**
 * The recomputed layer i reads the forward's outputs of its kept projections (opts.keepProjections) instead
 * of running their MatMulNBits again: same input values, same frozen weight, so the same result. Weights
 * with mins (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) are recomputed: reusing their forward outputs measured gradients
 * up to 6e-4 (relative) off the f32 graph's on pure Q4_K / Q5_1 / Q2_K files, recomputing 3e-6.
 */
function reuseForwardProjections(g: Graph, p: GraphParams, opts: TrainGraphOptions, i: number, forwardLayer: Region, recomputed: Region): void {
  const keep = opts.keepProjections?.map((t) => layerWeightNames(i)[t]).filter((w) => !p.layoutOf(w)?.hasMins) ?? [];
  if (!keep.length) return;
  const made = new Map<string, Value>();
  for (const n of g.regionNodes(forwardLayer)) {
    const w = nbitsWeightName(n);
    if (w && keep.includes(w)) made.set(w, n.outputs[0]);
  }
  for (const n of g.regionNodes(recomputed)) {
    const w = nbitsWeightName(n);
    const f = w ? made.get(w) : undefined;
    if (f) g.reuse(n, f);
  }
}

/** The train-step graph for a model and a LoRA configuration; with a sink, weights stream to it as made. */
export function trainGraph(mw: ModelWeights | WeightSource, opts: TrainGraphOptions, sink?: InitializerSink): Graph {
  const src = asWeightSource(mw);
  const g = new Graph('gemma3_train');
  g.omitInputShapes = true;
  g.target = opts.target ?? 'cpu';
  if (sink) g.streamInitializers(sink);
  // The default head backward reads the head's own bytes, so they stay mapped: lookups read the same ones.
  const p = new GraphParams(g, src, { ...opts, lookupSharesHead: !opts.forwardOnly && !opts.nbitsBackward?.head });
  const inp = stepInputs(g, p, opts);
  const fwd = forward(g, p, inp);
  const l = loss(g, p, inp, fwd.hidden);
  if (!opts.forwardOnly) backward(g, p, opts, inp, fwd, l);
  return g;
}

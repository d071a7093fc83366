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
//   lora_a_{i}_{t} [R, in], lora_b_{i}_{t} [out, R]   PEFT's A and B (B unscaled; alpha/R is applied here)
// Outputs:
//   loss_sum float32 []                           Σ CE over the P positions
//   label_hit float32 [P]                         1 where argmax(logits) is the label (exact-match metric)
//   grad_a_{i}_{t}, grad_b_{i}_{t}                 d(grad_scale · loss_sum)/dA, /dB
//
// Frozen base weights: f32 (exactness) or Q4_0 through MatMulNBits. dX through a 4-bit linear needs
// dy·W, and MatMulNBits only computes x·Wᵀ. By default W is dequantised inside the graph from the
// forward's own 4-bit bytes, a chunk of rows at a time, just before its use (exact gradients of the
// 4-bit model, no extra resident memory); the alternative keeps a transposed requantised copy of each
// W (`backward: 'transposed'`: int kernels, but +½ byte per weight and a requantisation error that
// reached 25% of the largest gradient on the tiny test model). Measured on the 270M shape, 2 threads:
// the dequantisation (a per-row DequantizeLinear on chunks of 1024 weight rows) is ~8% of a step's kernel time.
//
// The backward sits in the then-branch of an ONNX If on `backward`: validation runs the same session (the
// same prepacked weights) without it, about a third of a step's work. Graph inputs are serialised
// without shapes (Graph.omitInputShapes): ORT's allocation planner is quadratic in the values with known
// shapes, and session creation of this ~9k-node graph took 37 s with them, ~5 s without (and the If).
//
// Memory: the LM head's [P, V] tensors are the step's largest (168 MB per 160 labels of the 262k
// vocabulary), so its backward is fused with the cross-entropy's and chunked over V; layers are
// recomputed in the backward from their saved inputs (`recompute`, default on in the engine), reusing the
// forward's projection outputs instead of running their 4-bit matmuls again (`keepProjections`, all seven
// by default in the engine: the recomputation is then only the cheap elementwise ops and attention).

import { Graph, type BuiltModel, type InitializerSink, type NodeRecord, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { attr } from '../onnx/graph';
import { gradients } from '../onnx/autodiff';
import { shapeOf as shapeOfValue } from '../onnx/vjp';
import type { ModelWeights } from '../model/weights';
import { asWeightSource, type WeightSource } from '../model/weightSource';
import { EMBED_NAME, FINAL_NORM_NAME, layerWeightNames } from '../model/weights';
import type { LayerType } from '../model/config';
import { dequantizeBlockQuantized, q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../model/quant';
import { blocksToNbits, quantType } from '../model/quantTypes';
import type { NbitsLayout } from '../model/quantLayout';
import { targetShape, type LoraTarget } from '../model/loraTargets';
import { f32Of, GraphParams, type ParamsOptions } from './params';
import { decoderLayer, type LoraValues } from './layer';

export interface TrainGraphOptions extends ParamsOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  /**
   * How the q4 backward gets dy·W for the layers' linears and for the LM head:
   *  'transposed': a second copy of Wᵀ, Q4_0 for layers and Q8_0 for the head (fast int kernels, +½ or
   *                1 byte per weight, requantisation error);
   *  'dequant': W unpacked from the forward's own 4-bit bytes in the graph each step (exact, no extra memory).
   */
  backward?: { layers: 'transposed' | 'dequant'; head: 'transposed' | 'dequant' };
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

/**
 * The part of W [N, K] a MatMulNBits node holds, as float32: s·(q − zp), without the mins of types that have
 * them (their correction is a separate node that autodiff differentiates).
 */
function nbitsPartF32(src: WeightSource, name: string): Float32Array {
  const [N, K] = src.shape(name);
  const d = src.rows(name, 0, N);
  if (d.type === 'f32' || !quantType(d.type).layout.hasMins) return f32Of(name, d, N * K);
  const { layout } = quantType(d.type);
  return dequantizeBlockQuantized({ ...blocksToNbits(d.type, d.data, N, K), mins: undefined }, N, K, layout.bits, layout.blockSize);
}

/** W [N, K] → Wᵀ [K, N] as MatMulNBits operands, requantised along N to Q4_0 (bits 4) or Q8_0 (bits 8). */
function transposedNBits(src: WeightSource, name: string, bits: 4 | 8): { data: Uint8Array; scales: Float32Array; K: number; N: number } {
  const [N, K] = src.shape(name);
  const f = nbitsPartF32(src, name);
  const t = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = f[n * K + k];
  const bq = bits === 4 ? q4_0ToMatMulNBits(quantizeQ4_0(t), K, N) : q8_0ToMatMulNBits(quantizeQ8_0(t), K, N);
  return { data: bq.data, scales: bq.scales, K: N, N: K };
}

/** A MatMulNBits node's weight operands: B uint8 [N, K/bs, bs·bits/8], scales [N, K/bs], in `layout`. */
interface NBitsWeight { b: Value; scales: Value; N: number; K: number; layout: NbitsLayout }

function nbitsWeight(node: NodeRecord, layout: NbitsLayout): NBitsWeight {
  const [, b, scales] = node.inputs as Value[];
  const int = (k: string) => { const a = node.attrs[k]; return a?.kind === 'int' ? a.value : NaN; };
  if (int('bits') !== layout.bits || int('block_size') !== layout.blockSize) {
    throw new Error(`train graph: node ${node.outputs[0].name} runs ${int('bits')} bits in blocks of ${int('block_size')}, its weight's layout says ${layout.bits} and ${layout.blockSize}`);
  }
  return { b, scales, N: int('N'), K: int('K'), layout };
}

/**
 * Rows r0 … r0+n of a MatMulNBits weight as float32, unpacked in the graph from the forward's own bytes,
 * w = (q − zero point)·scale per block (Q4_0: (q − 8)·scale per 32; a Q8_0 embedding: (q − 128)·scale; a
 * type's mins are not part of it, see minsCorrection). 8-bit: one [n, K]
 * matrix. 4-bit: byte j of a block holds element 2j in its low and 2j+1 in its high nibble, so the rows come
 * as two [n, K/2] matrices, the even columns and the odd ones: interleaving them here would be one more pass
 * over the weights (a Concat), while interleaving the two products dy·W_even and dy·W_odd (`interleave`)
 * touches only [.., K] activations. The weights are initializers, so ORT would constant-fold this at
 * session creation (every weight in float32: GBs) or run it first and keep it alive; a slice start that
 * depends on `dep` (the incoming gradient) ties each chunk to its use.
 */
function dequantRows(g: Graph, w: NBitsWeight, r0: number, n: number, dep: Value): Value[] {
  const { bits, blockSize: bs, zeroPoint } = w.layout;
  const blocks = w.K / bs;
  if (g.target === 'webgpu' && zeroPoint === 2 ** (bits - 1)) {
    // WebGPU has no kernels for uint8 Slice or bit operations (they would run on the CPU, with the weight
    // bytes copied to the GPU every step); GatherBlockQuantized dequantises whole rows, in column order,
    // on the GPU: w = (q − zero point)·scale, the same values. (Layouts with their own zero point take the
    // Slice path below.)
    const rows = op.add(g, zeroTiedTo(g, dep), g.constI64(Array.from({ length: n }, (_, i) => r0 + i)));
    const scales3d = op.reshape(g, w.scales, [w.N, blocks, 1]);
    const deq = op.gatherBlockQuantized(g, w.b, rows, scales3d, { bits, blockSize: bs, quantizeAxis: 2, columns: w.K });
    return [op.reshape(g, deq, [n, w.K])];
  }
  const [bc, sc] = tiedRowSlices(g, [[w.b, 'uint8', [blocks, (bs * bits) / 8]], [w.scales, 'float32', [blocks]]], r0, n, dep);
  // Each block of `width` values as one row of a per-row (axis 0) DequantizeLinear: ORT's blocked form is
  // scalar (~2 ns per weight on 2 threads), the per-axis one ~1.6× faster than Cast, Sub and Mul in
  // cache-sized chunks, with identical values ((q − zero point)·scale in float32).
  const rows = n * blocks;
  const scaled = (q: Value, width: number) => {
    const deq = g.node('DequantizeLinear', [op.reshape(g, q, [rows, width]), op.reshape(g, sc, [rows]), u8const(g, zeroPoint, rows)],
      [{ dtype: 'float32', shape: [rows, width] }], { axis: attr.int(0) })[0];
    return op.reshape(g, deq, [n, blocks * width]);
  };
  if (bits === 8) return [scaled(bc, bs)];
  const low = g.node('BitwiseAnd', [bc, u8const(g, 15)], [{ dtype: 'uint8', shape: [n, blocks, bs / 2] }])[0];
  const high = g.node('BitShift', [bc, u8const(g, 4)], [{ dtype: 'uint8', shape: [n, blocks, bs / 2] }], { direction: attr.string('RIGHT') })[0];
  return [scaled(low, bs / 2), scaled(high, bs / 2)];
}

/** An int64 [1] zero computed from `dep`'s shape: indices that add it cannot be used (or folded) before `dep` exists. */
function zeroTiedTo(g: Graph, dep: Value): Value {
  return op.mul(g, op.gather(g, shapeOfValue(g, dep), g.constI64([0]), 0), g.constI64([0]));
}

/**
 * Rows r0 … r0+n of initializers (each [rows, …tail]) whose slice start depends on `dep`, so that ORT can
 * neither constant-fold the slice at session creation nor run it before it is needed (dequantRows).
 */
function tiedRowSlices(g: Graph, parts: [Value, 'uint8' | 'float32', number[]][], r0: number, n: number, dep: Value): Value[] {
  const zero = zeroTiedTo(g, dep);
  const start = op.add(g, zero, g.constI64([r0]));
  const end = op.add(g, zero, g.constI64([r0 + n]));
  const axis0 = g.constI64([0]);
  return parts.map(([v, dtype, tail]) => g.node('Slice', [v, start, end, axis0], [{ dtype, shape: [n, ...tail] }])[0]);
}

/** The columns of x·W from its parts x·W_even and x·W_odd (or the one part of an 8-bit W): [.., K]. */
function interleave(g: Graph, parts: Value[], K: number): Value {
  if (parts.length === 1) return parts[0];
  const shape = parts[0].shape;
  if (!shape) throw new Error('train graph: interleaving products of unknown shape');
  const unsq = (v: Value) => g.node('Unsqueeze', [v, g.constI64([-1])], [{ dtype: 'float32', shape: [...shape, 1] }])[0];
  const pairs = op.concat(g, parts.map(unsq), -1);
  return op.reshape(g, pairs, [...shape.slice(0, -1), K]);
}

/** Adds `parts` into the running sums `acc` (one per column phase). */
function accumulate(g: Graph, acc: Value[] | null, parts: Value[]): Value[] {
  return acc ? acc.map((a, k) => op.add(g, a, parts[k])) : parts;
}

/** Layers per nested backward branch (session set-up time; see the recompute loop). */
const LAYERS_PER_BRANCH = 6;

/**
 * Weight rows are dequantised this many at a time: the 262k-row head never exists whole in float32 (670 MB),
 * and a chunk's 2.6 MB of floats stay in cache between its dequantisation and its matmul.
 */
const DEQUANT_ROWS = 1024;
/** On WebGPU: fewer, larger chunks (each chunk is a few kernels; GPU memory holds 16k rows of floats easily). */
const DEQUANT_ROWS_GPU = 16384;

function dequantChunk(g: Graph): number {
  return g.target === 'webgpu' ? DEQUANT_ROWS_GPU : DEQUANT_ROWS;
}

/** dy·W for a MatMulNBits node (y = x·Wᵀ), W dequantised chunk by chunk: exact, no extra memory. */
function dequantBackward(g: Graph, node: NodeRecord, layout: NbitsLayout, dy: Value): Value {
  const w = nbitsWeight(node, layout);
  let acc: Value[] | null = null;
  const chunk = dequantChunk(g);
  for (let r0 = 0; r0 < w.N; r0 += chunk) {
    const n = Math.min(chunk, w.N - r0);
    const dyc = n === w.N ? dy : op.slice(g, dy, [r0], [r0 + n], [-1], dy.shape ? [...dy.shape.slice(0, -1), n] : null);
    acc = accumulate(g, acc, dequantRows(g, w, r0, n, dyc).map((wc) => op.matmul(g, dyc, wc)));
  }
  return interleave(g, acc!, w.K);
}

/**
 * The LM head's backward fused with the cross-entropy's, chunked over the vocabulary so that no
 * [P, V] gradient exists (each [P, V] float32 tensor is 168 MB for 160 labels of the 262k vocabulary):
 *   forward:  logits = h·Eᵀ, lsm = log_softmax(logits), loss = −Σ_p lsm_p[label_p]
 *   backward: dh = softmax(logits)·E − E[label] = Σ_chunks exp(lsm_c)·E_c − E[label]
 * For a table with mins (E = S⊙(Q − zp) − M expanded over each block), Σ_c exp(lsm_c)·M_c [P, C/bs] is
 * expanded over the blocks and subtracted.
 */
function headBackward(g: Graph, head: NodeRecord, q: { layout: NbitsLayout; mins: Value | null } | null, lsm: Value, labelRows: Value, V: number, C: number): Value {
  let acc: Value[] | null = null;
  let minsAcc: Value | null = null;
  const nbits = q ? nbitsWeight(head, q.layout) : null;
  const E = nbits ? null : head.inputs[1]!; // f32: FusedMatMul(h, E, transB)
  const bs = q?.layout.blockSize ?? 32;
  const chunk = dequantChunk(g);
  for (let c0 = 0; c0 < V; c0 += chunk) {
    const n = Math.min(chunk, V - c0);
    const sm = op.exp(g, n === V ? lsm : op.slice(g, lsm, [c0], [c0 + n], [-1], ['P', n]));
    const Ec = nbits ? dequantRows(g, nbits, c0, n, sm) : [n === V ? E! : op.slice(g, E!, [c0], [c0 + n], [0], [n, E!.shape![1]])];
    acc = accumulate(g, acc, Ec.map((ec) => op.matmul(g, sm, ec)));
    if (q?.mins) {
      const [mc] = tiedRowSlices(g, [[q.mins, 'float32', [C / bs]]], c0, n, sm);
      const part = op.matmul(g, sm, mc); // [P, C/bs]
      minsAcc = minsAcc ? op.add(g, minsAcc, part) : part;
    }
  }
  let dh = interleave(g, acc!, C);
  if (minsAcc) {
    const expanded = op.mul(g, op.reshape(g, minsAcc, ['P', C / bs, 1]), g.constF32(new Array(bs).fill(1), [bs]));
    dh = op.sub(g, dh, op.reshape(g, expanded, ['P', C]));
  }
  return op.sub(g, dh, labelRows);
}

/** The weight name behind a linear node (MatMulNBits' B is `<weight>.q`), or null for other nodes. */
function nbitsWeightName(n: NodeRecord): string | null {
  if (n.domain !== 'com.microsoft' || n.op !== 'MatMulNBits') return null;
  const b = n.inputs[1]!.name;
  return b.endsWith('.q') ? b.slice(0, -2) : b;
}

/**
 * Drops the recomputed layer's MatMulNBits for `weights` (nodes [rs, re)) and points every later reader
 * at the forward's output of the same weight (nodes [fs, fe)): same input values, same frozen weight,
 * so the same result; autodiff has already used the dropped nodes' records to route dX.
 */
function reuseForwardProjections(g: Graph, [fs, fe]: [number, number], [rs, re]: [number, number], weights: string[]): void {
  const forward = new Map<string, Value>();
  for (let k = fs; k < fe; k++) {
    const w = nbitsWeightName(g.nodes[k]);
    if (w && weights.includes(w)) forward.set(w, g.nodes[k].outputs[0]);
  }
  const replace = new Map<Value, Value>();
  const drop = new Set<NodeRecord>();
  for (let k = rs; k < re; k++) {
    const nd = g.nodes[k];
    const w = nbitsWeightName(nd);
    const f = w ? forward.get(w) : undefined;
    if (f) { replace.set(nd.outputs[0], f); drop.add(nd); }
  }
  for (let k = rs; k < g.nodes.length; k++) {
    const nd = g.nodes[k];
    nd.inputs = nd.inputs.map((v) => (v && replace.get(v)) ?? v);
  }
  const kept = g.nodes.filter((nd) => !drop.has(nd));
  g.nodes.length = 0;
  g.nodes.push(...kept);
}

/** x unchanged, but computed only once `after` exists (a slice whose start is 0·rows(after)). */
function tiedTo(g: Graph, x: Value, after: Value): Value {
  const zero = op.mul(g, op.gather(g, shapeOfValue(g, after), g.constI64([0]), 0), g.constI64([0]));
  return g.node('Slice', [x, zero, g.constI64([2 ** 53 - 1]), g.constI64([0])], [{ dtype: x.dtype, shape: x.shape }])[0];
}

const u8consts = new WeakMap<Graph, Map<string, Value>>();
/** A uint8 initializer of `count` copies of `v` (a scalar when count is null), made once per graph. */
function u8const(g: Graph, v: number, count: number | null = null): Value {
  let m = u8consts.get(g);
  if (!m) u8consts.set(g, (m = new Map()));
  const name = count === null ? `const_u8_${v}` : `const_u8_${v}_x${count}`;
  let c = m.get(name);
  if (!c) m.set(name, (c = g.initializer(name, 'uint8', count === null ? [] : [count], new Uint8Array(count ?? 1).fill(v))));
  return c;
}

/** Serialises the train-step graph with in-memory external weights (tests, small models). */
export function buildTrainGraph(mw: ModelWeights | WeightSource, opts: TrainGraphOptions): BuiltModel {
  return trainGraph(mw, opts).build();
}

/** The train-step graph for a model and a LoRA configuration; with a sink, weights stream to it as made. */
export function trainGraph(mw: ModelWeights | WeightSource, opts: TrainGraphOptions, sink?: InitializerSink): Graph {
  const src = asWeightSource(mw);
  const cfg = src.config;
  const { headDim: D, vocabSize: V, hidden: C } = cfg;
  const g = new Graph('gemma3_train');
  g.omitInputShapes = true;
  g.target = opts.target ?? 'cpu';
  if (sink) g.streamInitializers(sink);
  const how = opts.backward ?? { layers: 'dequant', head: 'dequant' };
  // A 'dequant' backward reads the head's own bytes, so they stay mapped: lookups read the same ones.
  const p = new GraphParams(g, src, { ...opts, lookupSharesHead: !opts.forwardOnly && how.head === 'dequant' });
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
  const layerInputs: Value[] = [];
  const layerLora: Map<LoraTarget, LoraValues>[] = [];
  const layerNodes: [number, number][] = [];
  let x = p.embed(ids);
  for (let i = 0; i < cfg.layers; i++) {
    layerInputs.push(x);
    const layerStart = g.nodes.length;
    const lora = new Map<LoraTarget, LoraValues>();
    for (const target of opts.targets) {
      const [out, inp] = targetShape(cfg, target);
      const n = trainLoraNames(i, target);
      const a = g.input(n.a, 'float32', [opts.rank, inp]);
      const b = g.input(n.b, 'float32', [out, opts.rank]);
      params.push({ layer: i, target, a, b });
      lora.set(target, { a, b: op.mul(g, b, g.constF32(scaling)) });
    }
    layerLora.push(lora);
    const t = perType.get(cfg.layerTypes[i])!;
    x = decoderLayer(g, p, i, x, { cos: t.cos, sin: t.sin, mask: t.mask, past: null }, (target) => lora.get(target)).h;
    layerNodes.push([layerStart, g.nodes.length]);
  }
  const lastHidden = x;

  // Final norm and the LM head only at label positions: the 262k-wide head dominates otherwise.
  const rows = op.gather(g, op.reshape(g, x, ['BT', C]), labelPos, 0); // [P, C]
  const fin = op.rmsNorm(g, rows, p.norm(FINAL_NORM_NAME), cfg.rmsNormEps);
  const headOut = p.head(fin); // [P, V]
  let logits = headOut;
  if (cfg.finalLogitSoftcap !== null) {
    const cap = g.constF32(cfg.finalLogitSoftcap);
    logits = op.mul(g, op.tanh(g, op.div(g, logits, cap)), cap);
  }

  // Cross-entropy: loss_sum = −Σ_p log_softmax(logits_p)[label_p]; its backward is fused with the
  // head's below. LogSoftmax is one vectorised pass (ReduceLogSumExp took ~0.2 s of CPU on 80 × 262k;
  // a step's CPU fell ~3–7%), and exp(lsm) is the backward's softmax without a subtraction.
  // grad_scale is applied to the small LoRA gradients at the end (the backward is linear in its seed).
  const tgt = g.node('Unsqueeze', [labelIds, g.constI64([-1])], [{ dtype: 'int64', shape: ['P', 1] }])[0];
  const lsm = g.node('LogSoftmax', [logits], [{ dtype: 'float32', shape: logits.shape }], { axis: attr.int(-1) })[0];
  const picked = g.node('GatherElements', [lsm, tgt], [{ dtype: 'float32', shape: ['P', 1] }], { axis: attr.int(1) })[0];
  const lossSum = op.neg(g, g.node('ReduceSum', [picked], [{ dtype: 'float32', shape: [] }], { keepdims: attr.int(0) })[0]);
  g.output(lossSum, 'loss_sum');
  // 1 where the greedy choice is the label (ties go to the lowest id, as argmax does).
  const argmax = g.node('ArgMax', [logits], [{ dtype: 'int64', shape: ['P'] }], { axis: attr.int(-1), keepdims: attr.int(0), select_last_index: attr.int(0) })[0];
  const eq = g.node('Equal', [argmax, labelIds], [{ dtype: 'bool', shape: ['P'] }])[0];
  g.output(op.cast(g, eq, 'float32'), 'label_hit');
  if (opts.forwardOnly) return g;
  // Everything from here on is the backward, which runs only when the `backward` input is true.
  const withGrads = g.input('backward', 'bool', []);
  const backwardStart = g.nodes.length;

  let seed: [Value, Value];
  if (cfg.finalLogitSoftcap === null && how.head === 'dequant') {
    const hq = p.headOperand();
    const headNode = hq ? g.nodes.find((nd) => nd.op === 'MatMulNBits' && nd.inputs[1] === hq.b)! : g.nodes.find((nd) => nd.outputs[0] === headOut)!;
    // E[label] = embed(label)/√C: the embedding lookup scales by √C (rounded to float32, exactly invertible here up to 1 ulp).
    const labelRows = op.div(g, p.embed(labelIds), g.constF32(Math.fround(Math.sqrt(C))));
    seed = [fin, headBackward(g, headNode, hq, lsm, labelRows, V, C)];
  } else {
    // dlogits = softmax(logits) − onehot(label), through the softcap's tanh by autodiff.
    const minusOne = g.node('Expand', [g.constF32([-1]), g.node('Shape', [tgt], [{ dtype: 'int64', shape: [2] }])[0]], [{ dtype: 'float32', shape: ['P', 1] }])[0];
    seed = [logits, g.node('ScatterElements', [op.softmax(g, logits, -1), tgt, minusOne], [{ dtype: 'float32', shape: ['P', V] }], { axis: attr.int(1), reduction: attr.string('add') })[0]];
  }

  const transposed = new Map<string, { b: Value; scales: Value; K: number; N: number; bits: 4 | 8 }>();
  const matMulNBitsBackward = (gg: Graph, node: NodeRecord, dy: Value): Value => {
    const wName = nbitsWeightName(node)!;
    const layout = wName === EMBED_NAME ? p.headOperand()!.layout : p.layoutOf(wName)!;
    if ((wName === EMBED_NAME ? how.head : how.layers) === 'dequant') return dequantBackward(gg, node, layout, dy);
    let tq = transposed.get(wName);
    if (!tq) {
      // The head's copy is 8-bit: its requantisation error would otherwise reach every gradient.
      const bits = wName === EMBED_NAME ? 8 : 4;
      const t = transposedNBits(src, wName, bits);
      tq = {
        b: gg.initializer(`${wName}.qT`, 'uint8', [t.N, t.K / 32, 4 * bits], t.data),
        scales: gg.initializer(`${wName}.scalesT`, 'float32', [t.N, t.K / 32], t.scales),
        K: t.K, N: t.N, bits,
      };
      transposed.set(wName, tq);
    }
    return op.matMulNBits(gg, dy, tq.b, tq.scales, { K: tq.K, N: tq.N, bits: tq.bits, blockSize: 32, accuracyLevel: opts.accuracyLevel });
  };
  let grads: Value[];
  if (!opts.recompute) {
    grads = gradients(g, [seed], params.flatMap((q) => [q.a, q.b]), { matMulNBitsBackward });
  } else {
    // The tail (head, final norm, row gather) back to the last layer's output, then layer by layer:
    // re-run layer i from its saved input, tied to the arriving gradient so it cannot run earlier,
    // and differentiate that copy; the first forward's activations are then dead once it has passed.
    let [dx] = gradients(g, [seed], [lastHidden], { matMulNBitsBackward });
    const byParam = new Map<string, Value>();
    let groupStart = g.nodes.length;
    let groupParams: string[] = [];
    for (let i = cfg.layers - 1; i >= 0; i--) {
      const xi = tiedTo(g, layerInputs[i], dx);
      const t = perType.get(cfg.layerTypes[i])!;
      const start = g.nodes.length;
      const h = decoderLayer(g, p, i, xi, { cos: t.cos, sin: t.sin, mask: t.mask, past: null }, (target) => layerLora[i].get(target)).h;
      const end = g.nodes.length;
      const mine = params.filter((q) => q.layer === i).flatMap((q) => [q.a, q.b]);
      // Layer 0's input is the (frozen) embedding: no gradient for it, so no dy·W into its q, k and v inputs.
      const wantInput = i > 0;
      const r = gradients(g, [[h, dx]], wantInput ? [xi, ...mine] : mine, { matMulNBitsBackward });
      // Weights with mins (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) are recomputed: reusing their forward outputs measured
      // gradients up to 6e-4 (relative) off the f32 graph's on pure Q4_K / Q5_1 / Q2_K files, recomputing 3e-6.
      const keep = opts.keepProjections?.map((tg) => layerWeightNames(i)[tg]).filter((w) => !p.layoutOf(w)?.hasMins) ?? [];
      if (keep.length) reuseForwardProjections(g, layerNodes[i], [start, end], keep);
      const off = wantInput ? 1 : 0;
      mine.forEach((v, k) => byParam.set(v.name, r[k + off]));
      groupParams.push(...mine.map((v) => v.name));
      if (wantInput) dx = r[0];
      if ((cfg.layers - i) % LAYERS_PER_BRANCH === 0 || i === 0) {
        // These layers' backward as a nested If on the same condition: ORT plans each (sub)graph's memory
        // on its own, in time quadratic in its size, so a few smaller bodies are set up faster than one.
        const made = [...(wantInput ? [dx] : []), ...groupParams.map((n) => byParam.get(n)!)];
        const outs = g.conditional(groupStart, withGrads, made, made.map(() => gradScale));
        if (wantInput) dx = outs[0];
        groupParams.forEach((n, k) => byParam.set(n, outs[k + off]));
        groupStart = g.nodes.length;
        groupParams = [];
      }
    }
    grads = params.flatMap((q) => [byParam.get(q.a.name)!, byParam.get(q.b.name)!]);
  }
  const scaled = grads.map((d) => op.mul(g, d, gradScale));
  // Validation runs the step graph with `backward` false: the forward alone, on the same weights (a second
  // forward-only session would prepack its own copy), every grad_* output then being grad_scale.
  const outs = g.conditional(backwardStart, withGrads, scaled, scaled.map(() => gradScale));
  params.forEach((q, k) => {
    const n = trainLoraNames(q.layer, q.target);
    g.output(outs[2 * k], n.gradA);
    g.output(outs[2 * k + 1], n.gradB);
  });
  return g;
}

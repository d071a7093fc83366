// Vector-Jacobian products of the ONNX ops the Gemma graphs use, built from primitive ops. Each entry
// quotes the forward it undoes; each is checked against central finite differences in
// test/unit/onnx-vjp.test.ts. The one through a 4-bit weight, which unpacks it in the graph, is in
// nbitsVjp.ts; the LM head's fused with the cross-entropy's in gemma/lmHead.ts. A VJP returns one gradient per input, for the inputs marked `needs`.
//
// Broadcasting: the engine's graphs only broadcast frozen operands (RoPE tables, masks, norm weights,
// constants), so a differentiated input must have the output's shape; anything else is an error here
// rather than a silently wrong gradient.

import type { Graph } from './graph';
import { attr, type DType, type Dim, type NodeRecord, type Value } from './nodes';
import * as op from './ops';
import { nbitsMatMulBackward, nbitsOperandOf } from './nbitsVjp';

export interface VjpContext {
  matMulNBitsBackward?: (g: Graph, node: NodeRecord, dy: Value) => Value;
}

export type Vjp = (g: Graph, n: NodeRecord, dOuts: (Value | null)[], needs: boolean[], ctx: VjpContext) => (Value | null)[];

/** a + b (re-exported for the accumulation of gradients). */
export const add = op.add;

function node1(g: Graph, opType: string, inputs: (Value | null)[], dtype: DType, shape: readonly Dim[] | null, attrs: Record<string, ReturnType<typeof attr.int>> = {}, domain = ''): Value {
  return g.node(opType, inputs, [{ dtype, shape }], attrs, domain)[0];
}

function sameShape(a: readonly Dim[] | null, b: readonly Dim[] | null): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);
}

function requireShape(n: NodeRecord, k: number): void {
  const x = n.inputs[k]!, y = n.outputs[0];
  if (!sameShape(x.shape, y.shape)) {
    throw new Error(`vjp ${n.op}: input ${x.name} [${x.shape}] is broadcast to [${y.shape}]; differentiating a broadcast operand is not supported`);
  }
}

/** Shape(x) as an int64 [rank] value. */
export function shapeOf(g: Graph, x: Value): Value {
  return node1(g, 'Shape', [x], 'int64', x.shape ? [x.shape.length] : null);
}

/** Zeros shaped like x. */
export function zerosLike(g: Graph, x: Value): Value {
  return node1(g, 'ConstantOfShape', [shapeOf(g, x)], 'float32', x.shape);
}

function dOut(dOuts: (Value | null)[]): Value {
  const d = dOuts[0];
  if (!d) throw new Error('vjp: missing output gradient');
  return d;
}

// ---- elementwise ----------------------------------------------------------------------------------------

// forward: y = a + b            → da = dy, db = dy
// forward: y = a − b            → da = dy, db = −dy
// forward: y = a · b            → da = dy·b, db = dy·a
// forward: y = a / b            → da = dy/b, db = −dy·y/b
function elementwise(kind: 'Add' | 'Sub' | 'Mul' | 'Div'): Vjp {
  return (g, n, dOuts, needs) => {
    const dy = dOut(dOuts);
    const [a, b] = n.inputs as Value[];
    return [0, 1].map((k) => {
      if (!needs[k]) return null;
      requireShape(n, k);
      switch (kind) {
        case 'Add': return dy;
        case 'Sub': return k === 0 ? dy : op.neg(g, dy);
        case 'Mul': return op.mul(g, dy, k === 0 ? b : a);
        case 'Div': return k === 0 ? op.div(g, dy, b) : op.neg(g, op.div(g, op.mul(g, dy, n.outputs[0]), b));
      }
    });
  };
}

// forward: y = tanh(x)          → dx = dy·(1 − y²)
const tanhVjp: Vjp = (g, n, dOuts) => {
  const y = n.outputs[0];
  return [op.mul(g, dOut(dOuts), op.sub(g, g.constF32(1), op.mul(g, y, y)))];
};

// forward: y = 0.5·x·(1 + t), t = tanh(k·(x + c·x³)), k = √(2/π), c = 0.044715
//          → dx = dy·(0.5·(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3c·x²))
const geluVjp: Vjp = (g, n, dOuts) => {
  if (n.attrs.approximate?.kind !== 'string' || n.attrs.approximate.value !== 'tanh') throw new Error('vjp Gelu: only approximate="tanh" is supported');
  const x = n.inputs[0]!;
  const k = Math.sqrt(2 / Math.PI), c = 0.044715;
  const x2 = op.mul(g, x, x);
  const inner = op.mul(g, op.add(g, x, op.mul(g, g.constF32(c), op.mul(g, x2, x))), g.constF32(k));
  const t = op.tanh(g, inner);
  const half1t = op.mul(g, g.constF32(0.5), op.add(g, g.constF32(1), t));
  const sech2 = op.sub(g, g.constF32(1), op.mul(g, t, t));
  const dinner = op.add(g, g.constF32(k), op.mul(g, g.constF32(3 * c * k), x2));
  const d = op.add(g, half1t, op.mul(g, op.mul(g, op.mul(g, g.constF32(0.5), x), sech2), dinner));
  return [op.mul(g, dOut(dOuts), d)];
};

// forward: y = softmax(x) along axis → dx = y·(dy − Σ_axis(dy·y))
const softmaxVjp: Vjp = (g, n, dOuts) => {
  const axis = n.attrs.axis?.kind === 'int' ? n.attrs.axis.value : -1;
  const y = n.outputs[0], dy = dOut(dOuts);
  const s = op.reduceSum(g, op.mul(g, dy, y), [axis]);
  return [op.mul(g, y, op.sub(g, dy, s))];
};

// forward: y = x·rs·w, rs = 1/√(mean(x²) + eps) over the last axis (SimplifiedLayerNormalization)
//          → dx = rs·(w·dy) − x·rs³·mean(x·w·dy)      (w frozen: no dw)
const rmsNormVjp: Vjp = (g, n, dOuts, needs) => {
  if (needs[1]) throw new Error('vjp SimplifiedLayerNormalization: the scale is frozen here; no gradient for it');
  const axis = n.attrs.axis?.kind === 'int' ? n.attrs.axis.value : -1;
  if (axis !== -1) throw new Error('vjp SimplifiedLayerNormalization: only axis -1');
  const eps = n.attrs.epsilon?.kind === 'float' ? n.attrs.epsilon.value : 1e-5;
  const [x, w] = n.inputs as Value[];
  const dy = dOut(dOuts);
  const ms = op.reduceMean(g, op.mul(g, x, x), [-1]);
  const rs = node1(g, 'Reciprocal', [op.sqrt(g, op.add(g, ms, g.constF32(eps)))], 'float32', ms.shape);
  const gw = op.mul(g, dy, w);
  const dot = op.reduceMean(g, op.mul(g, gw, x), [-1]);
  const rs3 = op.mul(g, op.mul(g, rs, rs), rs);
  return [op.sub(g, op.mul(g, gw, rs), op.mul(g, x, op.mul(g, rs3, dot))), null];
};

// ---- matrix products ------------------------------------------------------------------------------------

function flatten2d(g: Graph, x: Value, cols: Dim): Value {
  return op.reshape(g, x, ['rows', cols]);
}

function lastDim(v: Value): Dim {
  if (!v.shape) throw new Error(`vjp: shape of ${v.name} is unknown`);
  return v.shape[v.shape.length - 1];
}

/**
 * forward: y = α·a·op(b), op(b) = bᵀ when transB (FusedMatMul; MatMul is α = 1, transB = 0)
 *   transB: da = α·dy·b,  db = α·dyᵀ·a
 *   else:   da = α·dy·bᵀ, db = α·aᵀ·dy
 * A 2-D b against a batched a (a shared weight) sums db over the batch by flattening a and dy to rows.
 */
function matmulGrads(g: Graph, n: NodeRecord, dy: Value, needs: boolean[], alpha: number, transB: boolean): (Value | null)[] {
  const [a, b] = n.inputs as Value[];
  if (!a.shape || !b.shape) throw new Error(`vjp ${n.op}: operand shapes must be known`);
  const da = needs[0] ? op.fusedMatMul(g, dy, b, { transB: !transB, alpha }) : null;
  let db: Value | null = null;
  if (needs[1]) {
    let aa = a, dd = dy;
    if (b.shape.length === 2 && a.shape.length > 2) {
      aa = flatten2d(g, a, lastDim(a));
      dd = flatten2d(g, dy, lastDim(dy));
    } else if (b.shape.length !== a.shape.length || !sameShape(a.shape.slice(0, -2), b.shape.slice(0, -2))) {
      throw new Error(`vjp ${n.op}: batch broadcasting [${a.shape}]·[${b.shape}] is not supported for the right operand`);
    }
    db = transB ? op.fusedMatMul(g, dd, aa, { transA: true, alpha }) : op.fusedMatMul(g, aa, dd, { transA: true, alpha });
  }
  return [da, db];
}

const fusedMatMulVjp: Vjp = (g, n, dOuts, needs) => {
  if (n.attrs.transA?.kind === 'int' && n.attrs.transA.value !== 0) throw new Error('vjp FusedMatMul: transA is not supported');
  const alpha = n.attrs.alpha?.kind === 'float' ? n.attrs.alpha.value : 1;
  const transB = n.attrs.transB?.kind === 'int' && n.attrs.transB.value === 1;
  return matmulGrads(g, n, dOut(dOuts), needs, alpha, transB);
};

const matmulVjp: Vjp = (g, n, dOuts, needs) => matmulGrads(g, n, dOut(dOuts), needs, 1, false);

// forward: y = x·Wᵀ with W block-quantised and frozen → dx = dy·W (nbitsVjp.ts: W dequantised in the graph
// from the forward's own bytes), unless the caller holds W its own way (ctx.matMulNBitsBackward). A weight
// with its own zero points needs the caller: the packed zero_points input does not say the value.
const matMulNBitsVjp: Vjp = (g, n, dOuts, needs, ctx) => {
  if (needs.slice(1).some(Boolean)) throw new Error('vjp MatMulNBits: quantised weights are frozen');
  if (ctx.matMulNBitsBackward) return [ctx.matMulNBitsBackward(g, n, dOut(dOuts)), null, null, null];
  if (n.inputs[3]) throw new Error('vjp MatMulNBits: a weight with zero points needs ctx.matMulNBitsBackward');
  const bits = n.attrs.bits?.kind === 'int' ? n.attrs.bits.value : 4;
  return [nbitsMatMulBackward(g, nbitsOperandOf(n, 2 ** (bits - 1)), dOut(dOuts)), null, null];
};

// ---- shape manipulation ---------------------------------------------------------------------------------

// forward: y = x (Identity)                 → dx = dy
const identityVjp: Vjp = (_g, _n, dOuts) => [dOut(dOuts)];

// forward: y = reshape(x, s)                → dx = reshape(dy, shape(x))
// x's shape is written from its known (symbolic) dims when they determine it, because Shape(x) at
// backward time would keep every reshaped activation alive from the forward to the backward.
const reshapeVjp: Vjp = (g, n, dOuts) => {
  const x = n.inputs[0]!, dy = dOut(dOuts);
  if (staticTarget(dy.shape, x.shape)) return [op.reshape(g, dy, x.shape as Dim[]), null];
  return [node1(g, 'Reshape', [dy, shapeOf(g, x)], 'float32', x.shape), null];
};

// True when op.reshape can express `to` from `from` alone: numbers, names equal at the same index,
// and at most one other name (inferred as -1).
function staticTarget(from: readonly Dim[] | null, to: readonly Dim[] | null): boolean {
  if (!from || !to) return false;
  return to.filter((d, i) => typeof d === 'string' && from[i] !== d).length <= 1;
}

// forward: y = transpose(x, perm)           → dx = transpose(dy, perm⁻¹)
const transposeVjp: Vjp = (g, n, dOuts) => {
  const perm = n.attrs.perm?.kind === 'ints' ? n.attrs.perm.value : null;
  if (!perm) throw new Error('vjp Transpose: needs an explicit perm');
  const inv = perm.map((_, i) => perm.indexOf(i));
  return [op.transpose(g, dOut(dOuts), inv)];
};

// forward: [y_i] = split(x, sizes, axis)     → dx = concat([dy_i or 0], axis)
const splitVjp: Vjp = (g, n, dOuts) => {
  const axis = n.attrs.axis?.kind === 'int' ? n.attrs.axis.value : 0;
  const parts = n.outputs.map((o, i) => dOuts[i] ?? zerosLike(g, o));
  return [op.concat(g, parts, axis), null];
};

// forward: y = concat([x_i], axis)           → dx_i = split(dy, sizes of x_i along axis)
const concatVjp: Vjp = (g, n, dOuts, needs) => {
  const axis = n.attrs.axis?.kind === 'int' ? n.attrs.axis.value : 0;
  const xs = n.inputs as Value[];
  const dims = xs.map((x) => (x.shape ? x.shape[axis < 0 ? x.shape.length + axis : axis] : undefined));
  let sizes: number[] | Value;
  if (dims.every((d) => typeof d === 'number')) sizes = dims as number[];
  else {
    const gathered = xs.map((x) => op.gather(g, shapeOf(g, x), g.constI64([axis < 0 ? x.shape!.length + axis : axis]), 0));
    sizes = op.concat(g, gathered, 0);
  }
  const parts = op.split(g, dOut(dOuts), axis, sizes, dims.map((d, i) => d ?? `concat${i}`));
  return parts.map((p, i) => (needs[i] ? p : null));
};

// forward: y = x[idx] along axis 0 (Gather)  → dx = scatter-add of dy into zeros at idx
const gatherVjp: Vjp = (g, n, dOuts, needs) => {
  const axis = n.attrs.axis?.kind === 'int' ? n.attrs.axis.value : 0;
  if (axis !== 0) throw new Error('vjp Gather: only axis 0');
  if (needs[1]) throw new Error('vjp Gather: indices have no gradient');
  const [x, idx] = n.inputs as Value[];
  const idx2 = node1(g, 'Unsqueeze', [idx, g.constI64([-1])], 'int64', idx.shape ? [...idx.shape, 1] : null);
  return [node1(g, 'ScatterND', [zerosLike(g, x), idx2, dOut(dOuts)], 'float32', x.shape, { reduction: attr.string('add') }), null];
};

/** The VJP of every differentiable op, keyed by `domain:op` (default domain: op alone). */
export const VJPS: Record<string, Vjp> = {
  Add: elementwise('Add'),
  Sub: elementwise('Sub'),
  Mul: elementwise('Mul'),
  Div: elementwise('Div'),
  Tanh: tanhVjp,
  Gelu: geluVjp,
  Softmax: softmaxVjp,
  SimplifiedLayerNormalization: rmsNormVjp,
  MatMul: matmulVjp,
  'com.microsoft:FusedMatMul': fusedMatMulVjp,
  'com.microsoft:MatMulNBits': matMulNBitsVjp,
  Identity: identityVjp,
  Reshape: reshapeVjp,
  Transpose: transposeVjp,
  Split: splitVjp,
  Concat: concatVjp,
  Gather: gatherVjp,
};

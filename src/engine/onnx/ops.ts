// Op helpers: one function per ONNX operator the engine uses, each recording a node on a Graph and
// returning its output Value with the shape it will have. This is the one place ops are written; the
// training code adds each op's vector-Jacobian product next to its forward here (llm.c style).
//
// Shapes may be symbolic (strings such as 'T'); helpers propagate them where the rule is simple and
// fall back to null (untracked) otherwise.

import type { Graph } from './graph';
import { attr, type Dim, type DType, type Value } from './nodes';
import type { AttrValue } from './proto';

const MS = 'com.microsoft';

function rank(v: Value): number | null {
  return v.shape ? v.shape.length : null;
}

function normAxis(axis: number, r: number | null): number | null {
  if (r === null) return axis >= 0 ? axis : null;
  return axis < 0 ? axis + r : axis;
}

/** Numpy broadcasting of two shapes, symbolic dims included (equal names match, 1 stretches). */
export function broadcastShapes(a: readonly Dim[] | null, b: readonly Dim[] | null): Dim[] | null {
  if (!a || !b) return null;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else if (typeof x === 'number' && typeof y === 'number') throw new Error(`cannot broadcast [${a}] with [${b}]`);
    else out.push(typeof x === 'string' ? x : y);
  }
  return out;
}

function binary(op: string) {
  return (g: Graph, a: Value, b: Value): Value => g.node(op, [a, b], [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }])[0];
}

function unary(op: string, attrs: Record<string, AttrValue> = {}, domain = '') {
  return (g: Graph, x: Value): Value => g.node(op, [x], [{ dtype: x.dtype, shape: x.shape }], attrs, domain)[0];
}

// ---- elementwise -----------------------------------------------------------------------------------

/** a + b, broadcasting. */
export const add = binary('Add');
/** a - b, broadcasting. */
export const sub = binary('Sub');
/** a · b, broadcasting. */
export const mul = binary('Mul');
/** a / b, broadcasting. */
export const div = binary('Div');
/** a ^ b, broadcasting. */
export const pow = binary('Pow');
/** √x. */
export const sqrt = unary('Sqrt');
/** tanh(x). */
export const tanh = unary('Tanh');
/** −x. */
export const neg = unary('Neg');
/** exp(x). */
export const exp = unary('Exp');
/** A copy under a new name. */
export const identity = unary('Identity');

/** GELU with the tanh approximation (opset 20), i.e. 0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³))). */
export function geluTanh(g: Graph, x: Value): Value {
  return g.node('Gelu', [x], [{ dtype: x.dtype, shape: x.shape }], { approximate: attr.string('tanh') })[0];
}

/** Converts x to another element type. */
export function cast(g: Graph, x: Value, to: DType): Value {
  const onnx = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10 }[to];
  return g.node('Cast', [x], [{ dtype: to, shape: x.shape }], { to: attr.int(onnx) })[0];
}

// ---- reductions and normalisation -------------------------------------------------------------------

/** Mean over `axes`, keeping them as size 1. */
export function reduceMean(g: Graph, x: Value, axes: number[]): Value {
  const r = rank(x);
  const shape = x.shape && r !== null ? x.shape.map((d, i) => (axes.some((a) => normAxis(a, r) === i) ? 1 : d)) : null;
  return g.node('ReduceMean', [x, g.constI64(axes)], [{ dtype: x.dtype, shape }], { keepdims: attr.int(1) })[0];
}

/** Sum over `axes`, keeping them as size 1 unless keepDims is false. */
export function reduceSum(g: Graph, x: Value, axes: number[], keepDims = true): Value {
  const r = rank(x);
  let shape: Dim[] | null = null;
  if (x.shape && r !== null) {
    const hit = (i: number) => axes.some((a) => normAxis(a, r) === i);
    shape = keepDims ? x.shape.map((d, i) => (hit(i) ? 1 : d)) : x.shape.filter((_, i) => !hit(i));
  }
  return g.node('ReduceSum', [x, g.constI64(axes)], [{ dtype: x.dtype, shape }], { keepdims: attr.int(keepDims ? 1 : 0) })[0];
}

/**
 * RMSNorm over the last axis: x / √(mean(x²) + eps) · scale, computed in float32
 * (SimplifiedLayerNormalization, registered in the default domain by ORT). `scale` is Gemma's (1 + w).
 */
export function rmsNorm(g: Graph, x: Value, scale: Value, eps: number): Value {
  return g.node('SimplifiedLayerNormalization', [x, scale], [{ dtype: x.dtype, shape: x.shape }],
    { axis: attr.int(-1), epsilon: attr.float(eps), stash_type: attr.int(1) })[0];
}

/** Softmax along `axis`. */
export function softmax(g: Graph, x: Value, axis = -1): Value {
  return g.node('Softmax', [x], [{ dtype: x.dtype, shape: x.shape }], { axis: attr.int(axis) })[0];
}

// ---- matrix products --------------------------------------------------------------------------------

function matmulShape(a: readonly Dim[] | null, b: readonly Dim[] | null, transA = false, transB = false): Dim[] | null {
  if (!a || !b || a.length < 2 || b.length < 2) return null;
  const m = transA ? a[a.length - 1] : a[a.length - 2];
  const n = transB ? b[b.length - 2] : b[b.length - 1];
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  return batch ? [...batch, m, n] : null;
}

/** a · b with numpy batch broadcasting. */
export function matmul(g: Graph, a: Value, b: Value): Value {
  return g.node('MatMul', [a, b], [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape) }])[0];
}

/** alpha · op(a) · op(b) where op transposes the last two axes on request (com.microsoft FusedMatMul). */
export function fusedMatMul(g: Graph, a: Value, b: Value, o: { transA?: boolean; transB?: boolean; alpha?: number } = {}): Value {
  return g.node('FusedMatMul', [a, b], [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape, o.transA, o.transB) }], {
    transA: attr.int(o.transA ? 1 : 0), transB: attr.int(o.transB ? 1 : 0), alpha: attr.float(o.alpha ?? 1),
  }, MS)[0];
}

/** alpha · op(a) · op(b) + beta · c for 2-D a, b (ONNX Gemm); c broadcasts to the result. */
export function gemm(g: Graph, a: Value, b: Value, c: Value | null, o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {}): Value {
  return g.node('Gemm', c ? [a, b, c] : [a, b], [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape, o.transA, o.transB) }], {
    transA: attr.int(o.transA ? 1 : 0), transB: attr.int(o.transB ? 1 : 0), alpha: attr.float(o.alpha ?? 1), beta: attr.float(o.beta ?? 1),
  })[0];
}

export interface NBitsSpec {
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
  bits: 4 | 8;
  blockSize: number;
  /** 0: float compute (exact); 4: int8 activations. */
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
}

/**
 * x · Wᵀ with W block-quantised (com.microsoft MatMulNBits): B uint8 [N, K/block, block·bits/8],
 * scales float [N·K/block], optional zero points (default 2^(bits−1)).
 */
export function matMulNBits(g: Graph, x: Value, b: Value, scales: Value, s: NBitsSpec, zeroPoints: Value | null = null): Value {
  const shape = x.shape ? [...x.shape.slice(0, -1), s.N] : null;
  const inputs = zeroPoints ? [x, b, scales, zeroPoints] : [x, b, scales];
  return g.node('MatMulNBits', inputs, [{ dtype: x.dtype, shape }], {
    K: attr.int(s.K), N: attr.int(s.N), bits: attr.int(s.bits), block_size: attr.int(s.blockSize),
    accuracy_level: attr.int(s.accuracyLevel),
  }, MS)[0];
}

/**
 * Rotary position embedding, NeoX half split (com.microsoft RotaryEmbedding, interleaved = 0) of
 * x [B, heads, T, D]: row t rotates by cos/sin[positions[b, t]], tables [*, D/2]. With −sin it is the
 * inverse rotation, which is also its vector-Jacobian product.
 */
export function rotaryEmbedding(g: Graph, x: Value, positions: Value, cos: Value, sin: Value): Value {
  return g.node('RotaryEmbedding', [x, positions, cos, sin], [{ dtype: x.dtype, shape: x.shape }], { interleaved: attr.int(0) }, MS)[0];
}

// ---- gathers ----------------------------------------------------------------------------------------

/** data[indices] along `axis`. */
export function gather(g: Graph, data: Value, indices: Value, axis = 0): Value {
  let shape: Dim[] | null = null;
  const ax = normAxis(axis, rank(data));
  if (data.shape && indices.shape && ax !== null) shape = [...data.shape.slice(0, ax), ...indices.shape, ...data.shape.slice(ax + 1)];
  return g.node('Gather', [data, indices], [{ dtype: data.dtype, shape }], { axis: attr.int(axis) })[0];
}

/**
 * Rows of a block-quantised matrix, dequantised to float32 (com.microsoft GatherBlockQuantized), gathered
 * along axis 0. Either data uint8 [V, C·bits/8] with scales [V, C/block] (quantizeAxis 1, output
 * [..., C]), or MatMulNBits' own B layout [V, C/block, block·bits/8] with scales [V, C/block, 1]
 * (quantizeAxis 2, output [..., C/block, block]). 4-bit codes are packed low nibble first.
 */
export function gatherBlockQuantized(g: Graph, data: Value, indices: Value, scales: Value,
  o: { bits: 4 | 8; blockSize: number; quantizeAxis: 1 | 2; columns: number }, zeroPoints: Value | null = null): Value {
  const tail = o.quantizeAxis === 1 ? [o.columns] : [o.columns / o.blockSize, o.blockSize];
  const shape = indices.shape ? [...indices.shape, ...tail] : null;
  const inputs = zeroPoints ? [data, indices, scales, zeroPoints] : [data, indices, scales];
  return g.node('GatherBlockQuantized', inputs, [{ dtype: 'float32', shape }], {
    bits: attr.int(o.bits), block_size: attr.int(o.blockSize), gather_axis: attr.int(0), quantize_axis: attr.int(o.quantizeAxis),
  }, MS)[0];
}

// ---- shape manipulation -----------------------------------------------------------------------------

/**
 * Reshape to `target`. A symbolic dim equal to the input's dim at the same index is copied (0); one
 * other symbolic dim may be inferred (-1). The result carries `target` as its shape.
 */
export function reshape(g: Graph, x: Value, target: Dim[]): Value {
  let inferred = false;
  const spec = target.map((d, i) => {
    if (typeof d === 'number') return d;
    if (x.shape && x.shape[i] === d) return 0;
    if (inferred) throw new Error(`reshape of ${x.name} to [${target}]: more than one dim to infer`);
    inferred = true;
    return -1;
  });
  return g.node('Reshape', [x, g.constI64(spec)], [{ dtype: x.dtype, shape: target }])[0];
}

/** Permutes axes. */
export function transpose(g: Graph, x: Value, perm: number[]): Value {
  const shape = x.shape ? perm.map((p) => x.shape![p]) : null;
  return g.node('Transpose', [x], [{ dtype: x.dtype, shape }], { perm: attr.ints(perm) })[0];
}

function sumDims(ds: Dim[]): Dim {
  if (ds.every((d) => typeof d === 'number')) return (ds as number[]).reduce((a, b) => a + b, 0);
  return ds.join('+');
}

/** Joins along `axis`. */
export function concat(g: Graph, xs: Value[], axis: number): Value {
  const r = rank(xs[0]);
  const ax = normAxis(axis, r);
  let shape: Dim[] | null = null;
  if (ax !== null && xs.every((x) => x.shape)) {
    shape = [...xs[0].shape!];
    shape[ax] = sumDims(xs.map((x) => x.shape![ax]));
  }
  return g.node('Concat', xs, [{ dtype: xs[0].dtype, shape }], { axis: attr.int(axis) })[0];
}

/** Splits along `axis` into pieces of the given sizes (a constant list, or an int64 tensor at run time). */
export function split(g: Graph, x: Value, axis: number, sizes: number[] | Value, names?: Dim[]): Value[] {
  const count = Array.isArray(sizes) ? sizes.length : names?.length;
  if (count === undefined) throw new Error('split with run-time sizes needs the output dim names');
  const ax = normAxis(axis, rank(x));
  const outs = Array.from({ length: count }, (_, i) => {
    let shape: Dim[] | null = null;
    if (x.shape && ax !== null) {
      shape = [...x.shape];
      shape[ax] = Array.isArray(sizes) ? sizes[i] : names![i];
    }
    return { dtype: x.dtype, shape };
  });
  const sizeValue = Array.isArray(sizes) ? g.constI64(sizes) : sizes;
  return g.node('Split', [x, sizeValue], outs, { axis: attr.int(axis) });
}

/** x[starts:ends] along `axes` (constants). */
export function slice(g: Graph, x: Value, starts: number[], ends: number[], axes: number[], outShape: Dim[] | null = null): Value {
  return g.node('Slice', [x, g.constI64(starts), g.constI64(ends), g.constI64(axes)], [{ dtype: x.dtype, shape: outShape }])[0];
}

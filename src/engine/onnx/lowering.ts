// Rewrites, at serialisation, the ops that ORT's WebGPU execution provider has no kernel for into ops it
// has, so that a graph built for WebGPU keeps its hot path on the GPU instead of being cut into CPU and
// GPU pieces with copies between them. The graph builders and autodiff keep using the richer ops; only
// the serialised form changes, and only for a graph whose target is 'webgpu' (CPU graphs are untouched,
// so their numbers stay exactly what the tests pin).
//
// What ORT 1.30's WebGPU EP lacks among our graphs' ops (its node placement log, bench/webgpuPlacement.ts):
//   com.microsoft FusedMatMul  → Gemm (2-D operands) or Transpose + MatMul (+ Mul by alpha)
//   LogSoftmax                  → x − max − log Σ exp(x − max)
// Int64 shape arithmetic (Shape, Gather, Mul, Add on shapes, ConstantOfShape, Equal on labels) stays on the
// CPU by ORT's own choice; it is a few scalars per run. The train graph's unpacking of 4-bit weights
// (BitwiseAnd / BitShift) is built differently for WebGPU in trainGraph.ts itself.

import { attr, type Dim, type DType, type NodeRecord, type Value } from './nodes';

/** Where a graph will run; 'webgpu' rewrites unsupported ops on serialisation. */
export type GraphTarget = 'cpu' | 'webgpu';

/** What a rewrite may create: fresh values and small constants of the graph being serialised. */
export interface LoweringContext {
  value(prefix: string, dtype: DType, shape: readonly Dim[] | null): Value;
  constF32(v: number): Value;
  constI64(v: number[]): Value;
}

function node(op: string, inputs: (Value | null)[], outputs: Value[], attrs: NodeRecord['attrs'] = {}): NodeRecord {
  return { op, domain: '', inputs, outputs, attrs };
}

function intAttr(n: NodeRecord, k: string, fallback: number): number {
  const a = n.attrs[k];
  return a?.kind === 'int' ? a.value : fallback;
}

/** The shape with its last two axes swapped. */
function swapLast(shape: readonly Dim[]): Dim[] {
  const s = [...shape];
  [s[s.length - 2], s[s.length - 1]] = [s[s.length - 1], s[s.length - 2]];
  return s;
}

// FusedMatMul: y = alpha · op(a) · op(b), op transposing the last two axes on request.
function lowerFusedMatMul(n: NodeRecord, ctx: LoweringContext): NodeRecord[] {
  const [a, b] = n.inputs as Value[];
  const [y] = n.outputs;
  const transA = intAttr(n, 'transA', 0) === 1, transB = intAttr(n, 'transB', 0) === 1;
  const alphaAttr = n.attrs.alpha;
  const alpha = alphaAttr?.kind === 'float' ? alphaAttr.value : 1;
  if (!a.shape || !b.shape) throw new Error(`lowering FusedMatMul ${y.name}: operand ranks are unknown`);
  if (a.shape.length === 2 && b.shape.length === 2) {
    return [node('Gemm', [a, b], [y], { transA: attr.int(transA ? 1 : 0), transB: attr.int(transB ? 1 : 0), alpha: attr.float(alpha), beta: attr.float(1) })];
  }
  const out: NodeRecord[] = [];
  const transposed = (x: Value, shape: readonly Dim[]): Value => {
    const perm = shape.map((_, i) => i);
    [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
    const t = ctx.value(`${x.name}_t`, x.dtype, swapLast(shape));
    out.push(node('Transpose', [x], [t], { perm: attr.ints(perm) }));
    return t;
  };
  const aa = transA ? transposed(a, a.shape) : a;
  const bb = transB ? transposed(b, b.shape) : b;
  if (alpha === 1) {
    out.push(node('MatMul', [aa, bb], [y]));
  } else {
    const p = ctx.value(`${y.name}_unscaled`, y.dtype, y.shape);
    out.push(node('MatMul', [aa, bb], [p]), node('Mul', [p, ctx.constF32(alpha)], [y]));
  }
  return out;
}

// LogSoftmax along one axis, as ORT's CPU kernel computes it: (x − max) − log Σ exp(x − max).
function lowerLogSoftmax(n: NodeRecord, ctx: LoweringContext): NodeRecord[] {
  const [x] = n.inputs as Value[];
  const [y] = n.outputs;
  const axes = ctx.constI64([intAttr(n, 'axis', -1)]);
  const keep = { keepdims: attr.int(1) };
  const v = (p: string, shape: readonly Dim[] | null = null) => ctx.value(`${y.name}_${p}`, x.dtype, shape);
  const max = v('max'), d = v('shifted', x.shape), e = v('exp', x.shape), s = v('sum'), l = v('logsum');
  return [
    node('ReduceMax', [x, axes], [max], keep),
    node('Sub', [x, max], [d]),
    node('Exp', [d], [e]),
    node('ReduceSum', [e, axes], [s], keep),
    node('Log', [s], [l]),
    node('Sub', [d, l], [y]),
  ];
}

const WEBGPU_REWRITES: Record<string, (n: NodeRecord, ctx: LoweringContext) => NodeRecord[]> = {
  'com.microsoft:FusedMatMul': lowerFusedMatMul,
  LogSoftmax: lowerLogSoftmax,
};

/** The nodes that replace `n` on `target`, or null to keep it as it is. */
export function lowerNode(n: NodeRecord, target: GraphTarget, ctx: LoweringContext): NodeRecord[] | null {
  if (target !== 'webgpu') return null;
  const rewrite = WEBGPU_REWRITES[n.domain ? `${n.domain}:${n.op}` : n.op];
  return rewrite ? rewrite(n, ctx) : null;
}

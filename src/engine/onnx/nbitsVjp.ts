// The vector-Jacobian product through a block-quantised weight (com.microsoft MatMulNBits, ops.ts), kept
// beside the other VJPs (vjp.ts) and checked against finite differences the same way (onnx-vjp.test.ts):
//
//   forward:  y = x·Wᵀ, W [N, K] frozen, stored as codes q (bits 4 or 8) and a scale s per block of bs
//             values: W = s·(q − zp)
//   backward: dx = dy·W
//
// MatMulNBits only computes x·Wᵀ, so dy·W unpacks W in the graph from the forward's own bytes, a chunk of
// rows at a time just before its use: exact gradients of the quantised model and no extra resident memory.
// (A type's per-block mins are a separate node of the forward, minsCorrection in gemma/params.ts, which
// autodiff differentiates on its own.)

import type { Graph } from './graph';
import { attr, type NodeRecord, type Value } from './nodes';
import * as op from './ops';

/** How a MatMulNBits weight's codes decode: w = scale·(q − zeroPoint) per block of blockSize. */
export interface NbitsCodes {
  bits: 4 | 8;
  blockSize: number;
  zeroPoint: number;
}

/** A MatMulNBits node's weight operands: B uint8 [N, K/bs, bs·bits/8], scales [N, K/bs]. */
export interface NbitsOperand {
  b: Value;
  scales: Value;
  N: number;
  K: number;
  codes: NbitsCodes;
}

/** The weight operands of a MatMulNBits node whose codes sit around `zeroPoint` (its zero_points input says the same, packed). */
export function nbitsOperandOf(node: NodeRecord, zeroPoint: number): NbitsOperand {
  const [, b, scales] = node.inputs as Value[];
  const int = (k: string) => { const a = node.attrs[k]; return a?.kind === 'int' ? a.value : NaN; };
  const bits = int('bits');
  if (bits !== 4 && bits !== 8) throw new Error(`MatMulNBits ${node.outputs[0].name}: ${bits} bits`);
  return { b, scales, N: int('N'), K: int('K'), codes: { bits, blockSize: int('block_size'), zeroPoint } };
}

/**
 * Weight rows are dequantised this many at a time: the 262k-row head never exists whole in float32 (670 MB),
 * and a chunk's 2.6 MB of floats stay in cache between its dequantisation and its matmul.
 */
const DEQUANT_ROWS = 1024;
/** On WebGPU: fewer, larger chunks (each chunk is a few kernels; GPU memory holds 16k rows of floats easily). */
const DEQUANT_ROWS_GPU = 16384;

/** Rows of W dequantised per chunk on this graph's target. */
export function dequantChunk(g: Graph): number {
  return g.target === 'webgpu' ? DEQUANT_ROWS_GPU : DEQUANT_ROWS;
}

// forward: y = x·Wᵀ (MatMulNBits)   → dx = dy·W = Σ_chunks dy[.., rows]·W[rows, :]
/** dy·W for y = x·Wᵀ with W block-quantised, W dequantised chunk by chunk: exact, no extra memory. */
export function nbitsMatMulBackward(g: Graph, w: NbitsOperand, dy: Value): Value {
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
 * Rows r0 … r0+n of a MatMulNBits weight as float32, unpacked in the graph from the forward's own bytes,
 * w = (q − zero point)·scale per block (Q4_0: (q − 8)·scale per 32; a Q8_0 embedding: (q − 128)·scale).
 * 8-bit: one [n, K] matrix. 4-bit: byte j of a block holds element 2j in its low and 2j+1 in its high nibble,
 * so the rows come as two [n, K/2] matrices, the even columns and the odd ones: interleaving them here would
 * be one more pass over the weights (a Concat), while interleaving the two products dy·W_even and dy·W_odd
 * (`interleave`) touches only [.., K] activations. The weights are initializers, so ORT would constant-fold
 * this at session creation (every weight in float32: GBs) or run it first and keep it alive; a slice start
 * that depends on `dep` (the incoming gradient) ties each chunk to its use.
 */
export function dequantRows(g: Graph, w: NbitsOperand, r0: number, n: number, dep: Value): Value[] {
  const { bits, blockSize: bs, zeroPoint } = w.codes;
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
  const shape = g.node('Shape', [dep], [{ dtype: 'int64', shape: dep.shape ? [dep.shape.length] : null }])[0];
  return op.mul(g, op.gather(g, shape, g.constI64([0]), 0), g.constI64([0]));
}

/**
 * Rows r0 … r0+n of initializers (each [rows, …tail]) whose slice start depends on `dep`, so that ORT can
 * neither constant-fold the slice at session creation nor run it before it is needed (dequantRows).
 */
export function tiedRowSlices(g: Graph, parts: [Value, 'uint8' | 'float32', number[]][], r0: number, n: number, dep: Value): Value[] {
  const zero = zeroTiedTo(g, dep);
  const start = op.add(g, zero, g.constI64([r0]));
  const end = op.add(g, zero, g.constI64([r0 + n]));
  const axis0 = g.constI64([0]);
  return parts.map(([v, dtype, tail]) => g.node('Slice', [v, start, end, axis0], [{ dtype, shape: [n, ...tail] }])[0]);
}

/** x unchanged, but computed only once `after` exists (a slice whose start is 0·rows(after)). */
export function tiedTo(g: Graph, x: Value, after: Value): Value {
  return g.node('Slice', [x, zeroTiedTo(g, after), g.constI64([2 ** 53 - 1]), g.constI64([0])], [{ dtype: x.dtype, shape: x.shape }])[0];
}

/** The columns of x·W from its parts x·W_even and x·W_odd (or the one part of an 8-bit W): [.., K]. */
export function interleave(g: Graph, parts: Value[], K: number): Value {
  if (parts.length === 1) return parts[0];
  const shape = parts[0].shape;
  if (!shape) throw new Error('interleaving products of unknown shape');
  const unsq = (v: Value) => g.node('Unsqueeze', [v, g.constI64([-1])], [{ dtype: 'float32', shape: [...shape, 1] }])[0];
  const pairs = op.concat(g, parts.map(unsq), -1);
  return op.reshape(g, pairs, [...shape.slice(0, -1), K]);
}

/** Adds `parts` into the running sums `acc` (one per column phase). */
export function accumulate(g: Graph, acc: Value[] | null, parts: Value[]): Value[] {
  return acc ? acc.map((a, k) => op.add(g, a, parts[k])) : parts;
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

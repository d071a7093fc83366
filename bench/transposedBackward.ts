// The LoRA step graph's alternative backward through 4-bit weights, kept for comparison with the default
// (W unpacked in the graph from the forward's own bytes, src/engine/onnx/nbitsVjp.ts): a second copy of
// each Wᵀ, requantised to Q4_0 for the layers and Q8_0 for the LM head, so dy·W runs on MatMulNBits' int
// kernels, for +½ or 1 byte per weight and a requantisation error (it reached 25% of the largest gradient
// on the tiny test model; test/unit/train-step.test.ts measures it). Pass it as OrtEngineOptions.nbitsBackward.

import type { Graph } from '../src/engine/onnx/graph';
import type { NodeRecord, Value } from '../src/engine/onnx/nodes';
import * as op from '../src/engine/onnx/ops';
import type { MatMulNBitsBackward } from '../src/engine/onnx/autodiff';
import type { ModelWeights } from '../src/engine/model/weights';
import { asWeightSource, type WeightSource } from '../src/engine/model/weightSource';
import { dequantizeBlockQuantized, q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, quantizeQ8_0 } from '../src/engine/model/quant';
import { blocksToNbits, quantType } from '../src/engine/model/quantTypes';
import { f32Of } from '../src/engine/gemma/params';

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

/**
 * dy·W from a transposed requantised copy of each weight (made once per weight and graph): 4-bit for the
 * layers' linears, 8-bit for the LM head (its requantisation error would otherwise reach every gradient).
 */
export function transposedBackward(weights: ModelWeights | WeightSource, accuracyLevel: 0 | 4): { layers: MatMulNBitsBackward; head: MatMulNBitsBackward } {
  const src = asWeightSource(weights);
  const made = new Map<string, { b: Value; scales: Value; K: number; N: number; bits: 4 | 8 }>();
  const backward = (bits: 4 | 8) => (g: Graph, node: NodeRecord, dy: Value): Value => {
    const b = node.inputs[1]!.name;
    const wName = b.endsWith('.q') ? b.slice(0, -2) : b;
    let tq = made.get(wName);
    if (!tq) {
      const t = transposedNBits(src, wName, bits);
      tq = {
        b: g.initializer(`${wName}.qT`, 'uint8', [t.N, t.K / 32, 4 * bits], t.data),
        scales: g.initializer(`${wName}.scalesT`, 'float32', [t.N, t.K / 32], t.scales),
        K: t.K, N: t.N, bits,
      };
      made.set(wName, tq);
    }
    return op.matMulNBits(g, dy, tq.b, tq.scales, { K: tq.K, N: tq.N, bits: tq.bits, blockSize: 32, accuracyLevel });
  };
  return { layers: backward(4), head: backward(8) };
}

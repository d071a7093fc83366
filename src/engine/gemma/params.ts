// Model weights as graph initializers, per precision:
//   f32: every weight float32; linears as FusedMatMul(x, W[out,in], transB) so no transposed copy exists.
//   q4:  linears through MatMulNBits (bits 4, block 32) from Q4_0 blocks, bit-exact; the tied
//        embedding/LM head is one uint8 [V, C/32, bytes] buffer read by GatherBlockQuantized (lookup) and
//        MatMulNBits (head) (two initializers over the same bytes, see embedQuantized). A Q8_0 embedding (Google's QAT GGUF) runs the same way with bits 8.
// Weights that arrive in another form are converted here: Q4_0/Q8_0 dequantised for f32, float weights
// quantised to Q4_0 (ggml's reference rule) for q4.

import type { Graph, Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { NBitsSpec } from '../onnx/ops';
import type { GemmaConfig } from '../model/config';
import { EMBED_NAME, type ModelWeights, type Weight } from '../model/weights';
import { dequantizeQ4_0, dequantizeQ8_0, q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, type BlockQuantized } from '../model/quant';
import type { Precision } from './runtime';

export type LinearOperand =
  | { kind: 'f32'; w: Value }
  | { kind: 'nbits'; b: Value; scales: Value; spec: NBitsSpec };

export interface ParamsOptions {
  precision: Precision;
  /** MatMulNBits accuracy_level for q4: 0 exact float, 4 int8 activations. */
  accuracyLevel: 0 | 4;
  /** The LM head's level when it should differ (its int8 prepacked form is ~1.8× the 4-bit bytes). */
  headAccuracyLevel?: 0 | 4;
}

function f32Of(name: string, w: Weight): Float32Array {
  const n = w.shape.reduce((a, b) => a * b, 1);
  switch (w.value.type) {
    case 'f32': return w.value.data;
    case 'q4_0': return dequantizeQ4_0(w.value.data, n);
    case 'q8_0': return dequantizeQ8_0(w.value.data, n);
    default: throw new Error(`weight ${name}: unknown storage`);
  }
}

/** Block-quantised operands of a [N, K] weight: Q4_0 and Q8_0 as stored, float weights quantised to Q4_0. */
function blockQuantized(name: string, w: Weight): { bq: BlockQuantized; bits: 4 | 8 } {
  const [n, k] = w.shape;
  switch (w.value.type) {
    case 'q4_0': return { bq: q4_0ToMatMulNBits(w.value.data, n, k), bits: 4 };
    case 'q8_0': return { bq: q8_0ToMatMulNBits(w.value.data, n, k), bits: 8 };
    case 'f32': return { bq: q4_0ToMatMulNBits(quantizeQ4_0(w.value.data), n, k), bits: 4 };
    default: throw new Error(`weight ${name}: unknown storage`);
  }
}

/** Creates initializers on demand, once per weight. */
export class GraphParams {
  readonly config: GemmaConfig;
  private readonly cache = new Map<string, Value>();
  private readonly linears = new Map<string, LinearOperand>();
  private embedQ: { b: Value; scales2d: Value; lookup: Value; scales3d: Value; bits: 4 | 8 } | null = null;

  constructor(private readonly g: Graph, private readonly mw: ModelWeights, readonly opts: ParamsOptions) {
    this.config = mw.config;
  }

  private weight(name: string): Weight {
    const w = this.mw.weights.get(name);
    if (!w) throw new Error(`model has no weight ${name}`);
    return w;
  }

  /** A norm's (1+w) multiplier, float32 [n]. */
  norm(name: string): Value {
    let v = this.cache.get(name);
    if (!v) {
      const w = this.weight(name);
      v = this.g.initializer(name, 'float32', w.shape, f32Of(name, w));
      this.cache.set(name, v);
    }
    return v;
  }

  /** A linear layer's weight [out, in] in this precision's form. */
  linear(name: string): LinearOperand {
    let l = this.linears.get(name);
    if (l) return l;
    const w = this.weight(name);
    const [n, k] = w.shape;
    if (this.opts.precision === 'f32') {
      l = { kind: 'f32', w: this.g.initializer(name, 'float32', [n, k], f32Of(name, w)) };
    } else {
      const { bq, bits } = blockQuantized(name, w);
      const per = (32 * bits) / 8;
      l = {
        kind: 'nbits',
        b: this.g.initializer(`${name}.q`, 'uint8', [n, k / 32, per], bq.data),
        scales: this.g.initializer(`${name}.scales`, 'float32', [n, k / 32], bq.scales),
        spec: { K: k, N: n, bits, blockSize: 32, accuracyLevel: this.opts.accuracyLevel },
      };
    }
    this.linears.set(name, l);
    return l;
  }

  /**
   * Several linears that read the same input, as one operand whose output rows are theirs concatenated
   * (q|k|v, gate|up): one larger MatMulNBits instead of several small ones. Each output element is the
   * same dot product as before, so the result is unchanged.
   */
  fusedLinear(names: string[]): LinearOperand {
    const key = names.join('|');
    let l = this.linears.get(key);
    if (l) return l;
    if (names.length === 1) return this.linear(names[0]);
    const ws = names.map((n) => this.weight(n));
    const k = ws[0].shape[1];
    if (ws.some((w) => w.shape[1] !== k)) throw new Error(`fused linear ${key}: input sizes differ`);
    const n = ws.reduce((s, w) => s + w.shape[0], 0);
    if (this.opts.precision === 'f32') {
      const data = new Float32Array(n * k);
      let off = 0;
      ws.forEach((w, i) => {
        data.set(f32Of(names[i], w), off);
        off += w.shape[0] * k;
      });
      l = { kind: 'f32', w: this.g.initializer(`${key}.weight`, 'float32', [n, k], data) };
    } else {
      const parts = ws.map((w, i) => blockQuantized(names[i], w));
      const bits = parts[0].bits;
      if (parts.some((p) => p.bits !== bits)) {
        throw new Error(`fused linear ${key}: mixed 4- and 8-bit weights`);
      }
      const data = new Uint8Array(parts.reduce((s, p) => s + p.bq.data.length, 0));
      const scales = new Float32Array(parts.reduce((s, p) => s + p.bq.scales.length, 0));
      let d = 0;
      let c = 0;
      for (const p of parts) {
        data.set(p.bq.data, d);
        scales.set(p.bq.scales, c);
        d += p.bq.data.length;
        c += p.bq.scales.length;
      }
      l = {
        kind: 'nbits',
        b: this.g.initializer(`${key}.q`, 'uint8', [n, k / 32, (32 * bits) / 8], data),
        scales: this.g.initializer(`${key}.scales`, 'float32', [n, k / 32], scales),
        spec: { K: k, N: n, bits, blockSize: 32, accuracyLevel: this.opts.accuracyLevel },
      };
    }
    this.linears.set(key, l);
    return l;
  }

  /** Whether these weights can share one operand (same storage width after conversion). */
  canFuse(names: string[]): boolean {
    if (this.opts.precision === 'f32') return true;
    const kinds = new Set(names.map((n) => (this.weight(n).value.type === 'q8_0' ? 8 : 4)));
    return kinds.size === 1;
  }

  private embedQuantized() {
    if (!this.embedQ) {
      const w = this.weight(EMBED_NAME);
      const [V, C] = w.shape;
      const { bq, bits } = blockQuantized(EMBED_NAME, w);
      const per = (32 * bits) / 8;
      // Two initializers over the same bytes: the head's MatMulNBits prepacks its copy (after which ORT
      // drops it), while the lookup's copy stays file-mapped and only the rows it gathers become
      // resident. Sharing one initializer would keep all of it resident next to the prepacked head.
      this.embedQ = {
        b: this.g.initializer(`${EMBED_NAME}.q`, 'uint8', [V, C / 32, per], bq.data),
        scales2d: this.g.initializer(`${EMBED_NAME}.scales`, 'float32', [V, C / 32], bq.scales),
        lookup: this.g.initializer(`${EMBED_NAME}.lookup`, 'uint8', [V, C / 32, per], bq.data),
        // GatherBlockQuantized wants scales of the data's rank.
        scales3d: this.g.initializer(`${EMBED_NAME}.scales3d`, 'float32', [V, C / 32, 1], bq.scales),
        bits,
      };
    }
    return this.embedQ;
  }

  /** E[ids] · sqrt(C), the scale rounded to the weight dtype (float32) as HF does. ids int64 [B, T] → [B, T, C]. */
  embed(ids: Value): Value {
    const { hidden: C } = this.config;
    let x: Value;
    if (this.opts.precision === 'f32') {
      x = op.gather(this.g, this.norm(EMBED_NAME), ids, 0);
    } else {
      const e = this.embedQuantized();
      const blocks = op.gatherBlockQuantized(this.g, e.lookup, ids, e.scales3d, { bits: e.bits, blockSize: 32, quantizeAxis: 2, columns: C });
      x = op.reshape(this.g, blocks, ids.shape ? [...ids.shape, C] : ['B', 'T', C]);
    }
    return op.mul(this.g, x, this.g.constF32(Math.fround(Math.sqrt(C))));
  }

  /** Tied LM head: h [.., C] → logits [.., V] = h·Eᵀ. */
  head(h: Value): Value {
    if (this.opts.precision === 'f32') {
      return op.fusedMatMul(this.g, h, this.norm(EMBED_NAME), { transB: true });
    }
    const e = this.embedQuantized();
    const { hidden: C, vocabSize: V } = this.config;
    return op.matMulNBits(this.g, h, e.b, e.scales2d, { K: C, N: V, bits: e.bits, blockSize: 32, accuracyLevel: this.opts.headAccuracyLevel ?? this.opts.accuracyLevel });
  }
}

/** x · Wᵀ for a linear operand. */
export function applyLinear(g: Graph, x: Value, l: LinearOperand): Value {
  return l.kind === 'f32' ? op.fusedMatMul(g, x, l.w, { transB: true }) : op.matMulNBits(g, x, l.b, l.scales, l.spec);
}

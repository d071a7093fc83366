// Reverse-mode differentiation of a recorded graph (no *Grad ops exist in onnxruntime-node): walk the
// builder's nodes backwards from seeded output gradients and append, for every node on a path from the
// wanted inputs to the seeds, its vector-Jacobian product built from primitive ops (vjp.ts). Values
// that do not depend on a wanted input (frozen weights, masks, RoPE tables) get no gradient at all, so
// the backward touches only the LoRA path plus the activations it must flow through.

import type { Graph } from './graph';
import type { NodeRecord, Value } from './nodes';
import { VJPS, add, type VjpContext } from './vjp';

/** dX = dy·W of a MatMulNBits node (y = x·Wᵀ with W quantised), built the caller's way. */
export type MatMulNBitsBackward = (g: Graph, node: NodeRecord, dy: Value) => Value;

export interface AutodiffOptions {
  /** dX of MatMulNBits nodes, when not the default VJP (nbitsVjp.ts), e.g. for weights with their own zero point. */
  matMulNBitsBackward?: MatMulNBitsBackward;
}

/** Appends the backward of `g` and returns d(seeded outputs)/d(each of `wrt`), in order. */
export function gradients(g: Graph, seeds: Array<[Value, Value]>, wrt: Value[], opts: AutodiffOptions = {}): Value[] {
  // Forward sweep: which values depend on a wanted input.
  const live = new Set(wrt.map((v) => v.name));
  const nodes: NodeRecord[] = g.nodes.slice();
  for (const n of nodes) {
    if (n.inputs.some((v) => v && live.has(v.name))) for (const o of n.outputs) if (o.dtype === 'float32') live.add(o.name);
  }
  const grads = new Map<string, Value>();
  const accumulate = (v: Value, d: Value) => {
    const prev = grads.get(v.name);
    grads.set(v.name, prev ? add(g, prev, d) : d);
  };
  for (const [v, d] of seeds) {
    if (!live.has(v.name)) throw new Error(`autodiff: seed ${v.name} does not depend on any wanted input`);
    accumulate(v, d);
  }
  const ctx: VjpContext = { matMulNBitsBackward: opts.matMulNBitsBackward };
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const dOuts = n.outputs.map((o) => grads.get(o.name) ?? null);
    if (dOuts.every((d) => d === null)) continue;
    const needs = n.inputs.map((v) => v !== null && live.has(v.name));
    if (!needs.some(Boolean)) continue;
    const key = n.domain ? `${n.domain}:${n.op}` : n.op;
    const vjp = VJPS[key];
    if (!vjp) throw new Error(`autodiff: no vector-Jacobian product for ${key} (node output ${n.outputs[0].name})`);
    const dIns = vjp(g, n, dOuts, needs, ctx);
    n.inputs.forEach((v, k) => {
      if (v && needs[k]) {
        const d = dIns[k];
        if (!d) throw new Error(`autodiff: ${key} gave no gradient for input ${k} (${v.name})`);
        accumulate(v, d);
      }
    });
  }
  return wrt.map((v) => {
    const d = grads.get(v.name);
    if (!d) throw new Error(`autodiff: ${v.name} does not reach any seeded output`);
    return d;
  });
}

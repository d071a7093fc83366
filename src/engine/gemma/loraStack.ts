// A group of projections' LoRA pairs (layer.ts's LORA_GROUPS: q|k|v, o, gate|up, down) as one pair, the form
// the inference graphs' lora inputs and the native decoder take: the present targets' A stacked [n·R, in] and
// B [out_group, n·R] block-diagonal, multiplied by the LoRA scale, with zero rows for the group's targets the
// adapter leaves alone. And the way back, for the gradients a native training step computes on that form.

import type { GemmaConfig } from '../model/config';
import { targetShape, type LoraTarget } from '../model/loraTargets';
import { LORA_GROUPS, type LoraGroup } from './layer';

/** One projection's PEFT pair: a [R, in], b [out, R]. */
export interface TargetPair {
  a: Float32Array;
  b: Float32Array;
}

/** A group's stacked pair: a [rank, in], b [out_group, rank], rank = n·R. */
export interface StackedPair {
  a: Float32Array;
  b: Float32Array;
  rank: number;
}

/** [out of every projection of the group, in]. */
export function loraGroupShape(cfg: GemmaConfig, group: LoraGroup): [number, number] {
  const shapes = LORA_GROUPS[group].map((t) => targetShape(cfg, t));
  return [shapes.reduce((s, [o]) => s + o, 0), shapes[0][1]];
}

/** The group's targets that `pairs` has, in the group's order. */
export function presentTargets(group: LoraGroup, pairs: ReadonlyMap<LoraTarget, TargetPair>): LoraTarget[] {
  return LORA_GROUPS[group].filter((t) => pairs.has(t));
}

/** Each present target of the group with its block: column block j (its R columns of the stacked pair) and its first row. */
function blocks(cfg: GemmaConfig, group: LoraGroup, present: readonly LoraTarget[]): { target: LoraTarget; j: number; row: number; out: number }[] {
  const out: { target: LoraTarget; j: number; row: number; out: number }[] = [];
  let row = 0;
  for (const target of LORA_GROUPS[group]) {
    const [rows] = targetShape(cfg, target);
    const j = present.indexOf(target);
    if (j >= 0) out.push({ target, j, row, out: rows });
    row += rows;
  }
  return out;
}

/**
 * The stacked pair of the group's targets in `pairs` (rank R each, B times `scale`), or null when none is
 * there. `into`: arrays of the right sizes to fill instead of new ones (every entry is written).
 */
export function stackGroup(cfg: GemmaConfig, group: LoraGroup, pairs: ReadonlyMap<LoraTarget, TargetPair>, R: number, scale: number, into?: StackedPair): StackedPair | null {
  const present = presentTargets(group, pairs);
  if (present.length === 0) return null;
  const [outAll, inp] = loraGroupShape(cfg, group);
  const nR = present.length * R;
  const a = into?.a ?? new Float32Array(nR * inp);
  const b = into?.b ?? new Float32Array(outAll * nR);
  if (a.length !== nR * inp || b.length !== outAll * nR) throw new Error(`LoRA ${group}: arrays of ${a.length} and ${b.length} for [${nR}, ${inp}] and [${outAll}, ${nR}]`);
  if (into) b.fill(0);
  for (const { target, j, row, out } of blocks(cfg, group, present)) {
    const m = pairs.get(target)!;
    a.set(m.a, j * R * inp);
    for (let o = 0; o < out; o++) {
      for (let r = 0; r < R; r++) b[(row + o) * nR + j * R + r] = m.b[o * R + r] * scale;
    }
  }
  return { a, b, rank: nR };
}

/**
 * The gradients of the group's targets from those of its stacked pair (ga [n·R, in], gb [out_group, n·R],
 * gradients with respect to the stacked a and the scaled b), each times `gradScale`, into `into` (per target
 * present in it: a [R, in], b [out, R]). B's gradient is the stacked one times the LoRA scale (b = scale·B).
 */
export function unstackGroupGrads(cfg: GemmaConfig, group: LoraGroup, into: ReadonlyMap<LoraTarget, TargetPair>, R: number, scale: number,
  ga: Float32Array, gb: Float32Array, gradScale: number): void {
  const present = presentTargets(group, into);
  const [, inp] = loraGroupShape(cfg, group);
  const nR = present.length * R, k = scale * gradScale;
  for (const { target, j, row, out } of blocks(cfg, group, present)) {
    const g = into.get(target)!;
    for (let i = 0; i < R * inp; i++) g.a[i] = ga[j * R * inp + i] * gradScale;
    for (let o = 0; o < out; o++) {
      for (let r = 0; r < R; r++) g.b[o * R + r] = gb[(row + o) * nR + j * R + r] * k;
    }
  }
}

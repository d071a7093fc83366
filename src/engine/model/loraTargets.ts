// The projections a LoRA adapter can target and the shape of each one's base weight: the vocabulary
// that the graphs (engine/gemma), the trainer (engine/train) and the adapter readers share. It sits
// beside the model config, below both, so the graphs need not import the trainer.

import type { GemmaConfig } from './config';

export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const ALL_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** PEFT/HF module name of a target: q → self_attn.q_proj, gate → mlp.gate_proj. */
export function targetModule(t: LoraTarget): string {
  return t === 'gate' || t === 'up' || t === 'down' ? `mlp.${t}_proj` : `self_attn.${t}_proj`;
}

/** The short target for a PEFT target_modules entry (`q_proj` → q); undefined when not a Gemma projection. */
export function targetFromModuleName(name: string): LoraTarget | undefined {
  const m = /^(q|k|v|o|gate|up|down)_proj$/.exec(name.split('.').pop() ?? '');
  return m ? (m[1] as LoraTarget) : undefined;
}

/** [out, in] of a target's base weight. */
export function targetShape(cfg: GemmaConfig, t: LoraTarget): [number, number] {
  const { hidden: C, intermediate: F, heads: H, kvHeads: Hkv, headDim: D } = cfg;
  switch (t) {
    case 'q': return [H * D, C];
    case 'k': case 'v': return [Hkv * D, C];
    case 'o': return [C, H * D];
    case 'gate': case 'up': return [F, C];
    case 'down': return [C, F];
  }
}

/** PEFT's scale of the LoRA update, alpha/R: the graphs multiply B by it (training in the graph, inference on the host). */
export function loraScale(alpha: number, rank: number): number {
  return alpha / rank;
}

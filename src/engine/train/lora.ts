// The trainable LoRA parameters of a run: per decoder layer and target projection an A [R, in] and a
// B [out, R] (PEFT's layout, y = x·Wᵀ + (alpha/R)·(x·Aᵀ)·Bᵀ), held as float32 in one fixed order that
// the step graph, the optimizer and the writers all share.

import type { GemmaConfig } from '../model/config';
import type { LoraAdapter } from '../gemma/runtime';
import { ALL_TARGETS, targetModule, targetShape, type LoraTarget } from '../model/loraTargets';
import { Rng } from '../rng';

// The target vocabulary lives with the model config, below the graphs; re-exported as the adapter's own.
export { ALL_TARGETS, loraScale, targetFromModuleName, targetModule, targetShape, type LoraTarget } from '../model/loraTargets';

export interface LoraModule {
  layer: number;
  target: LoraTarget;
  inFeatures: number;
  outFeatures: number;
  /** [R, in] */
  a: Float32Array;
  /** [out, R] */
  b: Float32Array;
}

export interface LoraParams {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
  /** Layer-major, targets in ALL_TARGETS order within a layer. */
  modules: LoraModule[];
}

/** HF module path of one LoRA module, e.g. `model.layers.0.self_attn.q_proj`. */
export function modulePath(m: { layer: number; target: LoraTarget }): string {
  return `model.layers.${m.layer}.${targetModule(m.target)}`;
}

/** PEFT tensor names of a module's A and B in adapter_model.safetensors. */
export function peftTensorNames(m: { layer: number; target: LoraTarget }): { a: string; b: string } {
  const p = `base_model.model.${modulePath(m)}`;
  return { a: `${p}.lora_A.weight`, b: `${p}.lora_B.weight` };
}

/** Modules in canonical order with the given tensors, checking sizes. */
export function emptyLora(cfg: GemmaConfig, rank: number, alpha: number, targets: readonly LoraTarget[], dropout = 0): LoraParams {
  if (!Number.isInteger(rank) || rank < 1 || rank > 1024) throw new RangeError(`LoRA rank must be an integer in [1, 1024], got ${rank}`);
  if (!(alpha > 0)) throw new RangeError(`LoRA alpha must be positive, got ${alpha}`);
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`LoRA dropout must be in [0, 1), got ${dropout}`);
  const ts = ALL_TARGETS.filter((t) => targets.includes(t));
  if (ts.length === 0) throw new RangeError('LoRA needs at least one target projection');
  const modules: LoraModule[] = [];
  for (let layer = 0; layer < cfg.layers; layer++) {
    for (const target of ts) {
      const [outFeatures, inFeatures] = targetShape(cfg, target);
      modules.push({ layer, target, inFeatures, outFeatures, a: new Float32Array(rank * inFeatures), b: new Float32Array(outFeatures * rank) });
    }
  }
  return { rank, alpha, dropout, targets: ts, modules };
}

/**
 * A fresh adapter initialised as PEFT's default (init_lora_weights=True): A from
 * kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), and B = 0, so the adapter starts as the identity.
 * The draws come from our seeded generator, not torch's.
 */
export function initLora(cfg: GemmaConfig, rank: number, alpha: number, targets: readonly LoraTarget[], seed: number, dropout = 0): LoraParams {
  const p = emptyLora(cfg, rank, alpha, targets, dropout);
  const rng = new Rng(seed);
  for (const m of p.modules) {
    const bound = 1 / Math.sqrt(m.inFeatures);
    for (let i = 0; i < m.a.length; i++) m.a[i] = (2 * rng.next() - 1) * bound;
  }
  return p;
}

/** Every trainable tensor in the shared order: A then B of each module. */
export function flatTensors(p: LoraParams): Float32Array[] {
  return p.modules.flatMap((m) => [m.a, m.b]);
}

/** Total number of trainable parameters. */
export function parameterCount(p: LoraParams): number {
  return p.modules.reduce((s, m) => s + m.a.length + m.b.length, 0);
}

/** A deep copy (for keeping the best adapter while training continues). */
export function cloneLora(p: LoraParams): LoraParams {
  return { ...p, targets: [...p.targets], modules: p.modules.map((m) => ({ ...m, a: m.a.slice(), b: m.b.slice() })) };
}

/** The runtime's adapter view of these parameters (shares the buffers). */
export function toRuntimeAdapter(p: LoraParams): LoraAdapter {
  return { rank: p.rank, alpha: p.alpha, modules: new Map(p.modules.map((m) => [modulePath(m), { a: m.a, b: m.b }])) };
}

// Saves LoRA parameters as a PEFT adapter folder that `PeftModel.from_pretrained` loads:
// adapter_config.json (LoraConfig fields PEFT 0.x accepts) and adapter_model.safetensors with PEFT's
// names (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`). Each file is written
// atomically, the weights first, so a folder never has a config without its weights. An adapter with a
// NaN or infinity is refused before anything is written: it would turn every answer into noise.

import * as path from 'node:path';
import { writeFileAtomicSync } from '../../common/atomicWrite';
import { requireFiniteF32 } from '../model/finite';
import type { ModelIdentity } from '../model/identity';
import { bytesOf, writeSafetensorsStreaming, type SafetensorsTensorOut } from '../model/safetensorsWriter';
import { peftTensorNames, targetModule, type LoraParams } from './lora';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../../common/files';

export interface PeftWriteOptions {
  /** Recorded as base_model_name_or_path and revision (null when unknown). */
  baseModel?: ModelIdentity | null;
  /** Extra string metadata for the safetensors header. */
  metadata?: Record<string, string>;
}

/** The adapter_config.json object for these parameters. */
export function peftConfig(p: LoraParams, baseModel: ModelIdentity | null): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel?.name ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: p.alpha,
    lora_dropout: p.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: p.rank,
    rank_pattern: {},
    revision: baseModel?.revision ?? null,
    target_modules: p.targets.map((t) => targetModule(t).split('.')[1]),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** The tensors of adapter_model.safetensors, in module order. */
export function peftTensors(p: LoraParams): SafetensorsTensorOut[] {
  return p.modules.flatMap((m) => {
    const n = peftTensorNames(m);
    return [
      { name: n.a, dtype: 'F32' as const, shape: [p.rank, m.inFeatures], data: bytesOf(m.a) },
      { name: n.b, dtype: 'F32' as const, shape: [m.outFeatures, p.rank], data: bytesOf(m.b) },
    ];
  });
}

/** Writes the adapter folder (created if missing); throws NonFiniteError, writing nothing, when a value is not finite. */
export function writePeftAdapter(dir: string, p: LoraParams, opts: PeftWriteOptions = {}): void {
  const weights = path.join(dir, ADAPTER_WEIGHTS_FILE);
  for (const m of p.modules) {
    const n = peftTensorNames(m);
    requireFiniteF32(weights, n.a, m.a);
    requireFiniteF32(weights, n.b, m.b);
  }
  writeSafetensorsStreaming(path.join(dir, ADAPTER_WEIGHTS_FILE), peftTensors(p), { format: 'pt', ...opts.metadata });
  writeFileAtomicSync(path.join(dir, ADAPTER_CONFIG_FILE), [JSON.stringify(peftConfig(p, opts.baseModel ?? null), null, 2) + '\n']);
}

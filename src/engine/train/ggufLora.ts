// Exports LoRA parameters to llama.cpp's GGUF LoRA adapter format, as convert_lora_to_gguf.py writes
// it: general.architecture gemma3, general.type "adapter", adapter.type "lora", adapter.lora.alpha
// (float32), and per module `blk.N.<tensor>.weight.lora_a` / `.lora_b` in F32. lora_a holds PEFT's
// A [R, in] and lora_b PEFT's B [out, R] unchanged; GGUF lists dimensions innermost first, so their
// ne are [in, R] and [R, out] — what llama.cpp checks against the base tensor's ne [in, out].

import { writeGguf, type GgufTensorOut } from '../model/ggufWriter';
import { GgufType, type GgufValue } from '../model/ggufFormat';
import { bytesOf } from '../model/safetensorsWriter';
import type { LoraParams, LoraTarget } from './lora';

const GGUF_TENSOR_NAMES: Record<LoraTarget, string> = {
  q: 'attn_q', k: 'attn_k', v: 'attn_v', o: 'attn_output', gate: 'ffn_gate', up: 'ffn_up', down: 'ffn_down',
};

/** The GGUF tensor name of a module's A or B, e.g. `blk.0.attn_q.weight.lora_a`. */
export function ggufLoraName(layer: number, target: LoraTarget, which: 'a' | 'b'): string {
  return `blk.${layer}.${GGUF_TENSOR_NAMES[target]}.weight.lora_${which}`;
}

/** The metadata and tensors of the GGUF adapter file. */
export function ggufLoraContents(p: LoraParams, name = 'gemma-tune adapter'): { metadata: [string, GgufValue][]; tensors: GgufTensorOut[] } {
  const metadata: [string, GgufValue][] = [
    ['general.architecture', { type: GgufType.STRING, value: 'gemma3' }],
    ['general.type', { type: GgufType.STRING, value: 'adapter' }],
    ['general.name', { type: GgufType.STRING, value: name }],
    ['adapter.type', { type: GgufType.STRING, value: 'lora' }],
    ['adapter.lora.alpha', { type: GgufType.FLOAT32, value: p.alpha }],
  ];
  const tensors: GgufTensorOut[] = p.modules.flatMap((m) => [
    { name: ggufLoraName(m.layer, m.target, 'a'), ne: [m.inFeatures, p.rank], dtype: 'f32' as const, data: bytesOf(m.a) },
    { name: ggufLoraName(m.layer, m.target, 'b'), ne: [p.rank, m.outFeatures], dtype: 'f32' as const, data: bytesOf(m.b) },
  ]);
  return { metadata, tensors };
}

/** Writes the adapter as a GGUF LoRA file atomically. */
export function writeGgufLora(file: string, p: LoraParams, name?: string): void {
  const { metadata, tensors } = ggufLoraContents(p, name);
  writeGguf(file, metadata, tensors);
}

// Rotary position tables as Hugging Face's Gemma3RotaryEmbedding computes them, in float32:
// inv_freq[i] = 1 / base^(2i/D), freq = inv_freq·position, and cos/sin of it. HF concatenates the
// table with itself ([T, D]); the graphs use the half [T, D/2] since both halves are equal.

import type { GemmaConfig, LayerType } from '../model/config';

/** inv_freq for one base, rounded to float32 at each step as torch does. */
export function inverseFrequencies(headDim: number, base: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const e = Math.fround((2 * i) / headDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(base, e)));
  }
  return out;
}

/**
 * inv_freq of one layer type of a model: its base, and its linear RoPE scaling factor (positions divided
 * by the factor: transformers' linear rope_type divides inv_freq by it, llama.cpp's freq_scale = 1/factor).
 */
export function layerInverseFrequencies(cfg: GemmaConfig, type: LayerType): Float32Array {
  const inv = inverseFrequencies(cfg.headDim, type === 'full' ? cfg.ropeThetaGlobal : cfg.ropeThetaLocal);
  const factor = type === 'full' ? cfg.ropeScaleGlobal : cfg.ropeScaleLocal;
  if (factor !== 1) for (let i = 0; i < inv.length; i++) inv[i] = Math.fround(inv[i] / factor);
  return inv;
}

/** cos and sin [positions.length, D/2] for the given absolute positions. */
export function ropeTables(invFreq: Float32Array, positions: readonly number[]): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(invFreq[i] * positions[t]);
      cos[t * half + i] = Math.cos(f);
      sin[t * half + i] = Math.sin(f);
    }
  }
  return { cos, sin };
}

// The 1B and 4B presets of make-model --config are the public checkpoints' own configs: each equals what the
// loader reads from that checkpoint's config.json (google/gemma-3-1b-it; google/gemma-3-4b-it, whose sparse
// text_config takes transformers' Gemma3TextConfig defaults), and their parameter counts are the published ones.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromHf, GEMMA3_1B, GEMMA3_4B, parameterCount } from '../../src/engine/model/config';

/** google/gemma-3-1b-it config.json (transformers 4.50). */
const GEMMA3_1B_IT_CONFIG = {
  architectures: ['Gemma3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null, bos_token_id: 2,
  cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912, max_position_embeddings: 32768, model_type: 'gemma3_text',
  num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, torch_dtype: 'bfloat16',
  transformers_version: '4.50.0.dev0', use_cache: true, vocab_size: 262144,
};

/** google/gemma-3-4b-it config.json: the text_config names only what differs from Gemma3TextConfig's defaults. */
const GEMMA3_4B_IT_CONFIG = {
  architectures: ['Gemma3ForConditionalGeneration'], boi_token_index: 255999, eoi_token_index: 256000, eos_token_id: [1, 106],
  image_token_index: 262144, initializer_range: 0.02, mm_tokens_per_image: 256, model_type: 'gemma3',
  text_config: { hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34, rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024 },
  torch_dtype: 'bfloat16', transformers_version: '4.50.0.dev0',
  vision_config: { hidden_size: 1152, image_size: 896, intermediate_size: 4304, model_type: 'siglip_vision_model', num_attention_heads: 16, num_hidden_layers: 27, patch_size: 14, vision_use_head: false },
};

test('the 1B preset is google/gemma-3-1b-it\'s config, 999,885,952 parameters', () => {
  assert.deepEqual(configFromHf(GEMMA3_1B_IT_CONFIG), GEMMA3_1B);
  assert.equal(parameterCount(GEMMA3_1B), 999_885_952);
});

test('the 4B preset is google/gemma-3-4b-it\'s text decoder: 8 heads, 4 kv heads, window 1024, linear RoPE 8, 3.88B of its 4.30B parameters', () => {
  assert.deepEqual(configFromHf(GEMMA3_4B_IT_CONFIG), GEMMA3_4B);
  assert.equal(GEMMA3_4B.ropeScaleGlobal, 8);
  assert.deepEqual(GEMMA3_4B.layerTypes.filter((t) => t === 'full').length, 5); // layers 5, 11, 17, 23, 29
  // 4,300,079,472 in all; the SigLIP vision tower and projector hold the other 419,816,304.
  assert.equal(parameterCount(GEMMA3_4B), 3_880_263_168);
});

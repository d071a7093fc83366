// A run of T tokens through the Gemma 3 layers (layer.ts's gemmaLayer) on Q4_0 weights: the tokens' hidden
// rows in, the last layer's rows out, and each layer's new keys and values for the caller's cache. A decode
// step is a run of one token; a prefill, or the branches of label scoring, a run of many.
#pragma once
#include "kernels.h"
#include "pool.h"

typedef struct {
  int layers, hidden, heads, kv_heads, head_dim, ffn;
  float eps, attn_scale;
  /** 4: int8 activations (ONNX Runtime's accuracy_level 4); 0: float activations. */
  int level;
} decoder_config;

/** One layer's weights as the caller holds them: decoder_create copies all of it (the matrices repacked), so they need to live only during that call. */
typedef struct {
  const block_q4_0 *q, *k, *v, *o, *gate, *up, *down;
  const float *in_norm, *q_norm, *k_norm, *post_attn_norm, *pre_ffn_norm, *post_ffn_norm;
  /** Keys a query at position p sees: p − window < slot position ≤ p (0: no window). */
  int window;
} decoder_layer;

/**
 * A layer's cache as the caller holds it: [kv_heads, capacity, head_dim] per K and V, `filled` slots read.
 * slots [T]: where each of the run's tokens' key and value go once this layer's attention is done (a slot
 * < capacity, or −1: not kept). The caller records their positions after the run.
 */
typedef struct {
  float *k, *v;
  const int32_t *positions, *slots;
  int capacity, filled;
  /** RoPE of this layer's type at each of the run's positions: [T, head_dim/2] each. */
  const float *cos, *sin;
} decoder_cache;

/**
 * A LoRA pair already scaled by alpha/R, as the ONNX graph takes it: a [r, in], b [out, r] (r = 0: none), and
 * both transposed, at [in, r] and bt [r, out]: the forms the products read (a·x and b·t as small GEMMs).
 */
typedef struct {
  const float *a, *b, *at, *bt;
  int r;
} lora_pair;

/** One layer's LoRA pairs per group of projections that share an input (layer.ts's LORA_GROUPS): q|k|v, o, gate|up, down. */
typedef struct {
  lora_pair qkv, o, gateup, down;
} lora_layer;

/**
 * What a training forward keeps of one layer for its backward (train.c), each [T, width]: the layer's input
 * x [C]; q|k|v before the per-head norms and RoPE [Q + 2·KV]; the attention context [Q]; o's and down's outputs
 * before their norms [C]; gate|up [2F]; and each LoRA group's a·x [T, r] (NULL where the group has none). What
 * is cheap to compute again from these (q|k after their norms and RoPE, h = x + the attention block) is not kept.
 */
typedef struct {
  float *x, *qkv_raw, *ctx, *o, *gateup, *down;
  float *t_qkv, *t_o, *t_gateup, *t_down;
} decoder_saves;

typedef struct decoder decoder;

/** A decoder over a copy of the layers' weights (repacked, block_q4_0x8) with `threads` threads; NULL when out of memory or threads. */
decoder *decoder_create(const decoder_config *cfg, const decoder_layer *layers, int threads);
/**
 * x [T, hidden]: the scaled embeddings in, the last layer's outputs out. positions [T]: each token's. branch
 * [T] or NULL: token t sees an earlier token u of the run when u's branch is −1 (a shared prefix) or t's (NULL:
 * every earlier one), as the ONNX graph's mask. Each layer's new keys and values go into its cache's slots.
 * lora: one entry per layer, or NULL for the base model. A token's rows are the same, bit for bit, whatever
 * else runs with it. Returns 0, or −1 when out of memory, found before any cache is written.
 */
int decoder_run(decoder *d, float *x, int T, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora);
void decoder_destroy(decoder *d);

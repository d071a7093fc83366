// The decoder's insides, shared by decoder.c (the forward) and train.c (the backward of a training step):
// not part of decoder.h, which is what the binding may use.
#pragma once
#include "decoder.h"

/** A layer as the decoder keeps it: its matrices repacked (block_q4_0x8) and its norms copied, in the decoder's memory. */
typedef struct {
  const block_q4_0x8 *q, *k, *v, *o, *gate, *up, *down;
  const float *in_norm, *q_norm, *k_norm, *post_attn_norm, *pre_ffn_norm, *post_ffn_norm;
  int window;
} layer;

struct decoder {
  decoder_config c;
  layer *layers;
  block_q4_0x8 *weights;  // every layer's matrices, one allocation
  float *norms;           // every layer's norms, one allocation
  pool *pool;
  int threads;
  // Scratch for `rows` tokens (a run of more grows it), each array [rows, width]: normed input, q|k|v,
  // attention context, projections, residual, gate|up, MLP activation; the int8 (or block-sum) form of a
  // phase's input.
  int rows;
  float *xn, *qkv, *ctx, *proj, *h, *gateup, *act;
  block_q8 *xq;
  float *xsum8;
  // Attention scratch: `scores_cap` floats per thread.
  float *scores;
  int scores_cap;
  // LoRA: a·x of the phase in flight, [T, r] for its pair's r, and room for the widest.
  float *lora_t;
  size_t lora_cap;
  const lora_pair *lora;
  // The run and phase in flight (pool functions read them): the rows' work of for_rows, a phase's input.
  void (*rows_fn)(struct decoder *d, int t0, int t1);
  const float *in;
  int in_k;
  const block_q4_0x8 *to_hidden;
  float *x;
  int T;
  const int *positions, *branch;
  const layer *L;
  const decoder_cache *cache;
  // A training forward's per-layer activations (train.c's trainer_forward), [layers] of what its backward reads.
  decoder_saves *saves;
};

/** The largest rank of an adapter's pairs (a group's counts each of its projections; 0 without an adapter). */
static inline int lora_rank(int layers, const lora_layer *lora) {
  int r = 0;
  for (int l = 0; lora && l < layers; l++) {
    const lora_pair *p[4] = {&lora[l].qkv, &lora[l].o, &lora[l].gateup, &lora[l].down};
    for (int i = 0; i < 4; i++)
      if (p[i]->r > r) r = p[i]->r;
  }
  return r;
}

// Whether new token t sees new token u (as the ONNX graph's mask: position, window, branch).
static inline int sees(const decoder *d, int t, int u, int window) {
  const int dist = d->positions[t] - d->positions[u];
  if (dist < 0 || (window > 0 && dist >= window)) return 0;
  return !d->branch || d->branch[u] == -1 || d->branch[u] == d->branch[t];
}

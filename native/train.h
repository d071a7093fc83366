// A LoRA training step's layers in native code, llm.c's way: a forward that keeps each layer's activations
// (the decoder's own forward, decoder_run, told to keep them), then the backward written beside it by hand,
// down to the gradients of every LoRA pair and of the layers' input. The base weights stay frozen 4-bit:
// dx through a linear is dy·W on the decoder's repacked blocks turned into floats (gemm_dy_w).
#pragma once
#include "decoder.h"

/** The gradient of one LoRA pair, shaped as the pair: a [r, in], b [out, r]. */
typedef struct {
  float *a, *b;
} lora_grad;

/** One layer's LoRA gradients, per group as lora_layer's pairs. */
typedef struct {
  lora_grad qkv, o, gateup, down;
} lora_layer_grad;

typedef struct trainer trainer;

/** A trainer over decoder d (borrowed: it must outlive the trainer); NULL when out of memory. */
trainer *trainer_create(decoder *d);
/**
 * decoder_run's forward over T tokens (caches: each layer's RoPE rows, no slot kept), keeping what the backward
 * reads. Returns 0, or −1 when out of memory.
 */
int trainer_forward(trainer *tr, float *x, int T, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora);
/**
 * The backward of the last trainer_forward, with its positions, branch, caches and lora: dx [T, hidden] holds the gradient of the loss
 * with respect to the last layer's rows and ends holding it with respect to the first layer's input. Each
 * layer's LoRA gradients go into grads[l] (every entry written, the zero blocks of a group's b included).
 * Returns 0, or −1 when out of memory (or when no forward with LoRA precedes it).
 */
int trainer_backward(trainer *tr, float *dx, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora,
                     const lora_layer_grad *grads);
void trainer_destroy(trainer *tr);

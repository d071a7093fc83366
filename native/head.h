// The LM head in native code (lmHead.ts's lmHead): logits [N, V] = softcap(final_norm(rows)·Eᵀ) on the tied
// embedding table E as the model file stores it (Q4_0 or Q8_0 blocks), read in place.
#pragma once
#include "kernels.h"

typedef enum { HEAD_Q4_0 = 0, HEAD_Q8_0 = 1 } head_type;

typedef struct {
  int vocab, hidden;
  head_type type;
  float eps;
  /** 0: no softcap. */
  float softcap;
  /** 4: int8 activations; 0: float activations. */
  int level;
} head_config;

typedef struct head head;

/** A head over the borrowed table [vocab rows of hidden/32 blocks] and a copy of the final norm (1 + w) [hidden]; NULL when out of memory or threads. */
head *head_create(const head_config *cfg, const void *table, const float *norm, int threads);
/** out [n, vocab] for rows [n, hidden]; 0, or −1 when out of memory. */
int head_logits(head *h, const float *rows, int n, float *out);
void head_destroy(head *h);

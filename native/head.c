#include "head.h"
#include "pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct head {
  head_config c;
  const void *table;
  float *norm;  // copied
  pool *pool;
  // The rows of the call in flight, normed (and, at level 4, as int8 blocks).
  float *normed;
  block_q8 *xq;
  float *xsum8;
  int cap;
  int n;
  float *out;
};

head *head_create(const head_config *cfg, const void *table, const float *norm, int threads) {
  head *h = calloc(1, sizeof(head));
  if (!h) return NULL;
  h->c = *cfg;
  h->table = table;
  h->norm = malloc(sizeof(float) * (size_t)cfg->hidden);
  h->pool = pool_create(threads);
  if (!h->norm || !h->pool) {
    head_destroy(h);
    return NULL;
  }
  memcpy(h->norm, norm, sizeof(float) * (size_t)cfg->hidden);
  return h;
}

// Vocabulary rows [r0, r1) for every input row: each table row is read from memory once and stays in L1
// for the n inputs.
KERNEL static void phase_logits(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, nb = h->c.hidden / QK, n = h->n;
  int r0, r1;
  pool_share(V, 1, ith, nth, &r0, &r1);
  for (int r = r0; r < r1; r++) {
    if (h->c.type == HEAD_Q4_0) {
      const block_q4_0 *row = (const block_q4_0 *)h->table + (size_t)r * nb;
      for (int i = 0; i < n; i++)
        h->out[(size_t)i * V + r] = h->c.level == 4 ? dot_q4_q8(row, nb, h->xq + (size_t)i * nb)
                                                    : dot_q4_f32(row, nb, h->normed + (size_t)i * h->c.hidden, h->xsum8 + (size_t)i * nb);
    } else {
      const block_q8_0 *row = (const block_q8_0 *)h->table + (size_t)r * nb;
      for (int i = 0; i < n; i++)
        h->out[(size_t)i * V + r] = h->c.level == 4 ? dot_q8_q8(row, nb, h->xq + (size_t)i * nb) : dot_q8_f32(row, nb, h->normed + (size_t)i * h->c.hidden);
    }
  }
  if (h->c.softcap > 0) {
    const float cap = h->c.softcap;
    for (int i = 0; i < n; i++)
      for (int r = r0; r < r1; r++) h->out[(size_t)i * V + r] = cap * tanhf(h->out[(size_t)i * V + r] / cap);
  }
}

KERNEL int head_logits(head *h, const float *rows, int n, float *out) {
  const int C = h->c.hidden;
  if (n > h->cap) {
    float *normed = realloc(h->normed, sizeof(float) * (size_t)n * C);
    if (normed) h->normed = normed;
    block_q8 *xq = realloc(h->xq, sizeof(block_q8) * (size_t)n * (C / QK));
    if (xq) h->xq = xq;
    float *xsum8 = realloc(h->xsum8, sizeof(float) * (size_t)n * (C / QK));
    if (xsum8) h->xsum8 = xsum8;
    if (!normed || !xq || !xsum8) return -1;
    h->cap = n;
  }
  for (int i = 0; i < n; i++) {
    rms_norm(rows + (size_t)i * C, h->norm, C, h->c.eps, h->normed + (size_t)i * C);
    prepare_input(h->normed + (size_t)i * C, C, h->c.level, h->xq + (size_t)i * (C / QK), h->xsum8 + (size_t)i * (C / QK));
  }
  h->n = n;
  h->out = out;
  pool_run(h->pool, phase_logits, h);
  pool_park(h->pool);
  return 0;
}

void head_destroy(head *h) {
  if (!h) return;
  if (h->pool) pool_destroy(h->pool);
  free(h->norm);
  free(h->normed);
  free(h->xq);
  free(h->xsum8);
  free(h);
}

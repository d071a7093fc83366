#include "decoder.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
  // Scratch for one token: normed input, q|k|v, attention context, projections, MLP.
  float *xn, *qkv, *ctx, *proj, *h, *gateup, *act;
  block_q8 *xq;
  float *xsum8;
  float *scores;
  int scores_cap;
  // LoRA: a·x of the phase in flight (its pair's r values), and room for the widest pair.
  float *lora_t;
  int lora_cap;
  const lora_pair *lora;
  // The phase in flight (pool functions read it).
  const layer *L;
  const decoder_cache *cache;
  int pos;
};

// y rows [r0, r1) of W [.., K] on the current input (float xn or its q8 blocks, by level).
KERNEL static void gemv(const decoder *d, const block_q4_0x8 *w, int K, const float *x, float *y, int r0, int r1) {
  if (r0 >= r1) return;
  if (d->c.level == 4) gemv_x8_q8(w, K, d->xq, y, r0, r1);
  else gemv_x8_f32(w, K, x, d->xsum8, y, r0, r1);
}

// y[i] += b[row0 + i]·t for i in [0, n): the LoRA update of n output rows, t = a·x computed before the phase.
KERNEL static void lora_rows(const decoder *d, float *y, int row0, int n) {
  const lora_pair *p = d->lora;
  if (!p || p->r == 0) return;
  for (int i = 0; i < n; i++) y[i] += dot_f32(p->b + (size_t)(row0 + i) * p->r, d->lora_t, p->r);
}

// Before a phase on input x [K]: x in the form the level's products read, and t = a·x for the group's LoRA
// pair (none: the phase adds nothing). −1 when out of memory.
KERNEL static int begin_phase(decoder *d, const float *x, int K, const lora_pair *p) {
  prepare_input(x, K, d->c.level, d->xq, d->xsum8);
  d->lora = p;
  if (!p || p->r == 0) return 0;
  if (p->r > d->lora_cap) {
    float *t = realloc(d->lora_t, sizeof(float) * (size_t)p->r);
    if (!t) return -1;
    d->lora_t = t;
    d->lora_cap = p->r;
  }
  for (int j = 0; j < p->r; j++) d->lora_t[j] = dot_f32(p->a + (size_t)j * K, x, K);
  return 0;
}

KERNEL static void phase_qkv(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int C = d->c.hidden, Q = d->c.heads * d->c.head_dim, KV = d->c.kv_heads * d->c.head_dim;
  int r0, r1;
  // Each phase's rows go to the threads in multiples of 32: whole groups of 8 for gemv_x8_q8.
  pool_share(Q + 2 * KV, QK, ith, nth, &r0, &r1);
  // The three matrices as one row space: q rows, then k, then v.
  const int edge[4] = {0, Q, Q + KV, Q + 2 * KV};
  const block_q4_0x8 *w[3] = {d->L->q, d->L->k, d->L->v};
  for (int m = 0; m < 3; m++) {
    const int a = r0 > edge[m] ? r0 : edge[m], b = r1 < edge[m + 1] ? r1 : edge[m + 1];
    if (a < b) gemv(d, w[m], C, d->xn, d->qkv + edge[m], a - edge[m], b - edge[m]);
  }
  if (r0 < r1) lora_rows(d, d->qkv + r0, r0, r1 - r0);
}

KERNEL static void phase_attention(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int H = d->c.heads, D = d->c.head_dim, group = H / d->c.kv_heads;
  const decoder_cache *cc = d->cache;
  const int P = cc->filled, window = d->L->window;
  const float *kself = d->qkv + H * D, *vself = d->qkv + H * D + d->c.kv_heads * D;
  for (int h = ith; h < H; h += nth) {
    const int g = h / group;
    const float *q = d->qkv + h * D;
    float *s = d->scores + (size_t)h * (d->scores_cap);
    const float *K = cc->k + (size_t)g * cc->capacity * D, *V = cc->v + (size_t)g * cc->capacity * D;
    float mx = -INFINITY;
    for (int j = 0; j < P; j++) {
      const int dist = d->pos - cc->positions[j];
      s[j] = (dist < 0 || (window > 0 && dist >= window)) ? -INFINITY : dot_f32(q, K + (size_t)j * D, D) * d->c.attn_scale;
      if (s[j] > mx) mx = s[j];
    }
    s[P] = dot_f32(q, kself + g * D, D) * d->c.attn_scale;
    if (s[P] > mx) mx = s[P];
    float sum = 0;
    for (int j = 0; j <= P; j++) sum += (s[j] = s[j] == -INFINITY ? 0 : expf(s[j] - mx));
    float *out = d->ctx + h * D;
    memset(out, 0, sizeof(float) * D);
    const float inv = 1.0f / sum;
    for (int j = 0; j < P; j++) if (s[j] != 0) axpy_f32(s[j] * inv, V + (size_t)j * D, out, D);
    axpy_f32(s[P] * inv, vself + g * D, out, D);
  }
}

KERNEL static void phase_o(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  int r0, r1;
  pool_share(d->c.hidden, QK, ith, nth, &r0, &r1);
  gemv(d, d->L->o, d->c.heads * d->c.head_dim, d->ctx, d->proj, r0, r1);
  if (r0 < r1) lora_rows(d, d->proj + r0, r0, r1 - r0);
}

// gate and up rows [r0, r1) then gelu_tanh(gate)·up on them.
KERNEL static void phase_gateup(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int C = d->c.hidden, F = d->c.ffn;
  int r0, r1;
  pool_share(F, QK, ith, nth, &r0, &r1);
  if (r0 >= r1) return;
  gemv(d, d->L->gate, C, d->xn, d->gateup, r0, r1);
  gemv(d, d->L->up, C, d->xn, d->gateup + F, r0, r1);
  // The group's rows are gate's then up's.
  lora_rows(d, d->gateup + r0, r0, r1 - r0);
  lora_rows(d, d->gateup + F + r0, F + r0, r1 - r0);
  gelu_tanh_mul(d->gateup + r0, d->gateup + F + r0, d->act + r0, r1 - r0);
}

KERNEL static void phase_down(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  int r0, r1;
  pool_share(d->c.hidden, QK, ith, nth, &r0, &r1);
  gemv(d, d->L->down, d->c.ffn, d->act, d->proj, r0, r1);
  if (r0 < r1) lora_rows(d, d->proj + r0, r0, r1 - r0);
}

// One matrix to repack: the caller's rows [rows, K] into its place in the decoder's memory.
typedef struct {
  const block_q4_0 *from;
  int rows, K;
  block_q4_0x8 *to;
} repack_job;

typedef struct {
  const repack_job *jobs;
  int n;
} repack_work;

static void phase_repack(void *ctx, int ith, int nth) {
  const repack_work *w = ctx;
  for (int j = 0; j < w->n; j++) {
    const repack_job *r = &w->jobs[j];
    int g0, g1;
    pool_share((r->rows + 7) / 8, 1, ith, nth, &g0, &g1);
    repack_q4_0x8(r->from, r->rows, r->K, r->to, g0, g1);
  }
}

/**
 * d->layers from the caller's: the matrices repacked into d->weights (by the pool's threads), the norms
 * copied into d->norms; −1 when out of memory.
 */
static int copy_layers(decoder *d, const decoder_layer *from) {
  const decoder_config *c = &d->c;
  const int C = c->hidden, D = c->head_dim, Q = c->heads * D, KV = c->kv_heads * D, F = c->ffn;
  const int shapes[7][2] = {{Q, C}, {KV, C}, {KV, C}, {C, Q}, {F, C}, {F, C}, {C, F}};
  size_t blocks = 0;
  for (int m = 0; m < 7; m++) blocks += packed_blocks(shapes[m][0], shapes[m][1]);
  d->weights = packed_alloc(blocks * (size_t)c->layers);  // 56 MB for the 270M
  const size_t norms = 4 * (size_t)C + 2 * (size_t)D;
  d->norms = malloc(sizeof(float) * norms * (size_t)c->layers);
  repack_job *jobs = malloc(sizeof(repack_job) * 7 * (size_t)c->layers);
  if (!d->weights || !d->norms || !jobs) {
    free(jobs);
    return -1;
  }
  block_q4_0x8 *at = d->weights;
  float *nat = d->norms;
  for (int l = 0; l < c->layers; l++) {
    const decoder_layer *src = &from[l];
    layer *L = &d->layers[l];
    const block_q4_0 *mats[7] = {src->q, src->k, src->v, src->o, src->gate, src->up, src->down};
    const block_q4_0x8 **to[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    for (int m = 0; m < 7; m++) {
      jobs[7 * l + m] = (repack_job){mats[m], shapes[m][0], shapes[m][1], at};
      *to[m] = at;
      at += packed_blocks(shapes[m][0], shapes[m][1]);
    }
    const float *vecs[6] = {src->in_norm, src->post_attn_norm, src->pre_ffn_norm, src->post_ffn_norm, src->q_norm, src->k_norm};
    const float **into[6] = {&L->in_norm, &L->post_attn_norm, &L->pre_ffn_norm, &L->post_ffn_norm, &L->q_norm, &L->k_norm};
    for (int f = 0; f < 6; f++) {
      const int n = f < 4 ? C : D;
      memcpy(nat, vecs[f], sizeof(float) * (size_t)n);
      *into[f] = nat;
      nat += n;
    }
    L->window = src->window;
  }
  repack_work work = {jobs, 7 * c->layers};
  pool_run(d->pool, phase_repack, &work);
  pool_park(d->pool);
  free(jobs);
  return 0;
}

decoder *decoder_create(const decoder_config *cfg, const decoder_layer *layers, int threads) {
  decoder *d = calloc(1, sizeof(decoder));
  if (!d) return NULL;
  d->c = *cfg;
  const int C = cfg->hidden, Q = cfg->heads * cfg->head_dim, KV = cfg->kv_heads * cfg->head_dim, F = cfg->ffn;
  const int widest = C > Q ? (C > F ? C : F) : (Q > F ? Q : F);
  d->layers = malloc(sizeof(layer) * (size_t)cfg->layers);
  d->xn = malloc(sizeof(float) * (size_t)C);
  d->qkv = malloc(sizeof(float) * (size_t)(Q + 2 * KV));
  d->ctx = malloc(sizeof(float) * (size_t)Q);
  d->proj = malloc(sizeof(float) * (size_t)C);
  d->h = malloc(sizeof(float) * (size_t)C);
  d->gateup = malloc(sizeof(float) * 2 * (size_t)F);
  d->act = malloc(sizeof(float) * (size_t)F);
  d->xq = malloc(sizeof(block_q8) * (size_t)(widest / QK));
  d->xsum8 = malloc(sizeof(float) * (size_t)(widest / QK));
  d->pool = pool_create(threads);
  if (!d->layers || !d->xn || !d->qkv || !d->ctx || !d->proj || !d->h || !d->gateup || !d->act || !d->xq || !d->xsum8 || !d->pool ||
      copy_layers(d, layers)) {
    decoder_destroy(d);
    return NULL;
  }
  return d;
}

KERNEL int decoder_step(decoder *d, float *x, int pos, const decoder_cache *caches, float *new_kv, const lora_layer *lora) {
  const decoder_config *c = &d->c;
  const int C = c->hidden, H = c->heads, Hkv = c->kv_heads, D = c->head_dim;
  d->pos = pos;
  for (int l = 0; l < c->layers; l++) {
    const layer *L = &d->layers[l];
    const decoder_cache *cc = &caches[l];
    d->L = L;
    d->cache = cc;
    if (cc->filled + 1 > d->scores_cap) {
      float *s = realloc(d->scores, sizeof(float) * (size_t)H * (size_t)(cc->filled + 1));
      if (!s) return -1;
      d->scores = s;
      d->scores_cap = cc->filled + 1;
    }
    // attention: q|k|v of input_norm(x); per-head norms and RoPE; the new key and value go to the cache.
    rms_norm(x, L->in_norm, C, c->eps, d->xn);
    const lora_layer *LL = lora ? &lora[l] : NULL;
    if (begin_phase(d, d->xn, C, LL ? &LL->qkv : NULL)) return -1;
    pool_run(d->pool, phase_qkv, d);
    float *q = d->qkv, *k = d->qkv + H * D, *v = k + Hkv * D;
    for (int h = 0; h < H; h++) {
      rms_norm(q + h * D, L->q_norm, D, c->eps, q + h * D);
      rope_head(q + h * D, cc->cos, cc->sin, D);
    }
    for (int g = 0; g < Hkv; g++) {
      rms_norm(k + g * D, L->k_norm, D, c->eps, k + g * D);
      rope_head(k + g * D, cc->cos, cc->sin, D);
    }
    memcpy(new_kv + (size_t)(2 * l) * Hkv * D, k, sizeof(float) * (size_t)Hkv * D);
    memcpy(new_kv + (size_t)(2 * l + 1) * Hkv * D, v, sizeof(float) * (size_t)Hkv * D);
    pool_run(d->pool, phase_attention, d);
    if (begin_phase(d, d->ctx, H * D, LL ? &LL->o : NULL)) return -1;
    pool_run(d->pool, phase_o, d);
    // h = x + post_attn_norm(o); the MLP on pre_ffn_norm(h); x = h + post_ffn_norm(down).
    rms_norm(d->proj, L->post_attn_norm, C, c->eps, d->proj);
    for (int i = 0; i < C; i++) d->h[i] = x[i] + d->proj[i];
    rms_norm(d->h, L->pre_ffn_norm, C, c->eps, d->xn);
    if (begin_phase(d, d->xn, C, LL ? &LL->gateup : NULL)) return -1;
    pool_run(d->pool, phase_gateup, d);
    if (begin_phase(d, d->act, c->ffn, LL ? &LL->down : NULL)) return -1;
    pool_run(d->pool, phase_down, d);
    rms_norm(d->proj, L->post_ffn_norm, C, c->eps, d->proj);
    for (int i = 0; i < C; i++) x[i] = d->h[i] + d->proj[i];
  }
  pool_park(d->pool);
  return 0;
}

void decoder_destroy(decoder *d) {
  if (!d) return;
  pool_destroy(d->pool);
  free(d->layers);
  free(d->weights);
  free(d->norms);
  free(d->xn);
  free(d->qkv);
  free(d->ctx);
  free(d->proj);
  free(d->h);
  free(d->gateup);
  free(d->act);
  free(d->xq);
  free(d->xsum8);
  free(d->scores);
  free(d->lora_t);
  free(d);
}

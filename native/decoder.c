#include "decoder_impl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// y [T, ldy] rows [r0, r1) of W [.., K] on the current input (float rows x [T, K] or their q8 blocks, by level).
KERNEL static void gemm(const decoder *d, const block_q4_0x8 *w, int K, const float *x, float *y, int ldy, int r0, int r1) {
  if (r0 >= r1) return;
  if (d->c.level == 4) gemm_x8_q8(w, K, d->xq, d->T, y, ldy, r0, r1);
  else gemm_x8_f32(w, K, x, d->xsum8, d->T, y, ldy, r0, r1);
}

// y[t·ldy + i] += Σ_j t_t[j]·b[row0 + i, j] for i in [0, n) and every token t, j in order: the LoRA update of n
// output rows (of `out`), t = a·x computed before the phase; a GEMM on bt's rows, not a dot of r per output.
KERNEL static void lora_rows(const decoder *d, float *y, int ldy, int row0, int n, int out) {
  const lora_pair *p = d->lora;
  if (!p || p->r == 0 || n <= 0) return;
  gemm_add_f32(y, ldy, d->lora_t, p->r, p->bt + row0, out, d->T, n, p->r);
}

static void phase_rows(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  int t0, t1;
  pool_share(d->T, 1, ith, nth, &t0, &t1);
  if (t0 < t1) d->rows_fn(d, t0, t1);
}

// fn on every token's rows: shared among the threads for a run of many, on this one for a decode step
// (whose rows are too small to pay for a meeting of the threads).
static void for_rows(decoder *d, void (*fn)(decoder *, int, int)) {
  if (d->T == 1) {
    fn(d, 0, 1);
    return;
  }
  d->rows_fn = fn;
  pool_run(d->pool, phase_rows, d);
}

// The phase input's rows [t0, t1) in the form the level's products read, and t = a·x for its LoRA pair.
KERNEL static void rows_prepare(decoder *d, int t0, int t1) {
  const int K = d->in_k, nb = K / QK;
  const lora_pair *p = d->lora;
  for (int t = t0; t < t1; t++) prepare_input(d->in + (size_t)t * K, K, d->c.level, d->xq + (size_t)t * nb, d->xsum8 + (size_t)t * nb);
  if (!p || p->r == 0) return;
  float *tt = d->lora_t + (size_t)t0 * p->r;
  memset(tt, 0, sizeof(float) * (size_t)(t1 - t0) * p->r);
  gemm_add_f32(tt, p->r, d->in + (size_t)t0 * K, K, p->at, p->r, t1 - t0, p->r, K);
}

// Before a phase on input rows x [T, K]: x in the form the level's products read, and t = a·x for the
// group's LoRA pair (none: the phase adds nothing) into lora_t, which reserve_run made room for.
KERNEL static void begin_phase(decoder *d, const float *x, int K, const lora_pair *p) {
  d->lora = p;
  d->in = x;
  d->in_k = K;
  for_rows(d, rows_prepare);
}

// A layer's first rows' work: input_norm(x) into xn.
KERNEL static void rows_in_norm(decoder *d, int t0, int t1) {
  const int C = d->c.hidden;
  const layer *L = d->L;
  for (int t = t0; t < t1; t++) rms_norm(d->x + (size_t)t * C, L->in_norm, C, d->c.eps, d->xn + (size_t)t * C);
}

// After q|k|v: per-head norms and RoPE of the queries and the new keys, in place.
KERNEL static void rows_qk(decoder *d, int t0, int t1) {
  const decoder_config *c = &d->c;
  const int H = c->heads, Hkv = c->kv_heads, D = c->head_dim, Q = H * D, N = Q + 2 * Hkv * D;
  const layer *L = d->L;
  const decoder_cache *cc = d->cache;
  for (int t = t0; t < t1; t++) {
    float *q = d->qkv + (size_t)t * N, *k = q + Q;
    const float *cos = cc->cos + (size_t)t * (D / 2), *sin = cc->sin + (size_t)t * (D / 2);
    for (int h = 0; h < H; h++) {
      rms_norm(q + h * D, L->q_norm, D, c->eps, q + h * D);
      rope_head(q + h * D, cos, sin, D);
    }
    for (int g = 0; g < Hkv; g++) {
      rms_norm(k + g * D, L->k_norm, D, c->eps, k + g * D);
      rope_head(k + g * D, cos, sin, D);
    }
  }
}

// After attention: the kept tokens' keys and values into their cache slots. Only now, as this layer's
// queries are done with its cache: a ring's slot may be one they saw.
static void store_kv(decoder *d) {
  const int Hkv = d->c.kv_heads, D = d->c.head_dim, Q = d->c.heads * D, N = Q + 2 * Hkv * D;
  const decoder_cache *cc = d->cache;
  for (int t = 0; t < d->T; t++) {
    const int slot = cc->slots[t];
    if (slot < 0) continue;
    const float *k = d->qkv + (size_t)t * N + Q, *v = k + Hkv * D;
    for (int g = 0; g < Hkv; g++) {
      memcpy(cc->k + ((size_t)g * cc->capacity + slot) * D, k + g * D, sizeof(float) * D);
      memcpy(cc->v + ((size_t)g * cc->capacity + slot) * D, v + g * D, sizeof(float) * D);
    }
  }
}

// out = base + rms_norm(proj)·w, proj normed in place: a block's output joining the residual stream.
KERNEL static void join_residual(const decoder *d, const float *base, float *proj, const float *w, float *out) {
  const int C = d->c.hidden;
  rms_norm(proj, w, C, d->c.eps, proj);
  for (int i = 0; i < C; i++) out[i] = base[i] + proj[i];
}

// After o: h = x + post_attn_norm(o), and pre_ffn_norm(h) into xn.
KERNEL static void rows_mid(decoder *d, int t0, int t1) {
  const size_t C = (size_t)d->c.hidden;
  for (int t = t0; t < t1; t++) {
    join_residual(d, d->x + t * C, d->proj + t * C, d->L->post_attn_norm, d->h + t * C);
    rms_norm(d->h + t * C, d->L->pre_ffn_norm, (int)C, d->c.eps, d->xn + t * C);
  }
}

// After down: x = h + post_ffn_norm(down).
KERNEL static void rows_out(decoder *d, int t0, int t1) {
  const size_t C = (size_t)d->c.hidden;
  for (int t = t0; t < t1; t++) join_residual(d, d->h + t * C, d->proj + t * C, d->L->post_ffn_norm, d->x + t * C);
}

KERNEL static void phase_qkv(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int C = d->c.hidden, Q = d->c.heads * d->c.head_dim, KV = d->c.kv_heads * d->c.head_dim, N = Q + 2 * KV;
  int r0, r1;
  // Each phase's rows go to the threads in multiples of 32: whole groups of 8 for gemm_x8_q8.
  pool_share(N, QK, ith, nth, &r0, &r1);
  // The three matrices as one row space: q rows, then k, then v.
  const int edge[4] = {0, Q, Q + KV, N};
  const block_q4_0x8 *w[3] = {d->L->q, d->L->k, d->L->v};
  for (int m = 0; m < 3; m++) {
    const int a = r0 > edge[m] ? r0 : edge[m], b = r1 < edge[m + 1] ? r1 : edge[m + 1];
    if (a < b) gemm(d, w[m], C, d->xn, d->qkv + edge[m], N, a - edge[m], b - edge[m]);
  }
  lora_rows(d, d->qkv + r0, N, r0, r1 - r0, N);
}

// The scores of M ≤ 4 queries q (rows D apart) against the visible keys (vis[a] < P: cache slot, else the
// run's token vis[a] − P, whose key is Knew + (vis[a] − P)·N), scaled, into s[i·S + a]: dot_f32's sums in its
// order. Two keys at a time, so that each query chunk loaded serves two keys and each key chunk M queries.
// Inlined with M constant, so that the accumulators stay in registers.
__attribute__((always_inline)) KERNEL static inline void group_scores(const float *q, const int M, int D, const float *K, const float *Knew, int N, int P,
                                                                      const int *vis, int n, float scale, float *s, int S) {
#define KEY(a) (vis[a] < P ? K + (size_t)vis[a] * D : Knew + (size_t)(vis[a] - P) * N)
  int a = 0;
  for (; a + 2 <= n; a += 2) {
    const float *k0 = KEY(a), *k1 = KEY(a + 1);
    __m256 acc0[4], acc1[4];
    for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int c = 0; c < D; c += 8) {
      const __m256 kv0 = _mm256_loadu_ps(k0 + c), kv1 = _mm256_loadu_ps(k1 + c);
      for (int i = 0; i < M; i++) {
        const __m256 qv = _mm256_loadu_ps(q + (size_t)i * D + c);
        acc0[i] = _mm256_fmadd_ps(qv, kv0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(qv, kv1, acc1[i]);
      }
    }
    for (int i = 0; i < M; i++) {
      s[(size_t)i * S + a] = hsum(acc0[i]) * scale;
      s[(size_t)i * S + a + 1] = hsum(acc1[i]) * scale;
    }
  }
  for (; a < n; a++) {
    const float *k = KEY(a);
    __m256 acc[4];
    for (int i = 0; i < M; i++) acc[i] = _mm256_setzero_ps();
    for (int c = 0; c < D; c += 8) {
      const __m256 kv = _mm256_loadu_ps(k + c);
      for (int i = 0; i < M; i++) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)i * D + c), kv, acc[i]);
    }
    for (int i = 0; i < M; i++) s[(size_t)i * S + a] = hsum(acc[i]) * scale;
  }
}

// out_i = Σ_a p_i[a]·v_a for M ≤ 4 heads over the visible values (as group_scores' keys), in order: axpy_f32's
// sums. Sixteen of the D columns at a time, so that each weight broadcast serves two value chunks and each
// value chunk M heads.
__attribute__((always_inline)) KERNEL static inline void group_values(const float *p, const int M, int S, int D, const float *V, const float *Vnew, int N, int P,
                                                                      const int *vis, int n, float *out) {
  for (int c = 0; c < D; c += 16) {
    __m256 acc0[4], acc1[4];
    for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int a = 0; a < n; a++) {
      const float *v = (vis[a] < P ? V + (size_t)vis[a] * D : Vnew + (size_t)(vis[a] - P) * N) + c;
      const __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
      for (int i = 0; i < M; i++) {
        const __m256 w = _mm256_set1_ps(p[(size_t)i * S + a]);
        acc0[i] = _mm256_fmadd_ps(w, v0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(w, v1, acc1[i]);
      }
    }
    for (int i = 0; i < M; i++) {
      _mm256_storeu_ps(out + (size_t)i * D + c, acc0[i]);
      _mm256_storeu_ps(out + (size_t)i * D + c + 8, acc1[i]);
    }
  }
#undef KEY
}

// The scores, then the context rows, of m heads' queries q (rows D apart) into s (rows S apart) and out:
// four at a time, then two, then one (group_scores' and group_values' M constant), each head's sums the same
// whichever way its group is cut.
KERNEL static void heads_attend(const float *q, int m, int D, const float *K, const float *Knew, const float *V, const float *Vnew, int N, int P,
                                const int *vis, int n, float scale, float *s, int S, float *out) {
  int i = 0;
  for (; m - i >= 4; i += 4) group_scores(q + (size_t)i * D, 4, D, K, Knew, N, P, vis, n, scale, s + (size_t)i * S, S);
  for (; m - i >= 2; i += 2) group_scores(q + (size_t)i * D, 2, D, K, Knew, N, P, vis, n, scale, s + (size_t)i * S, S);
  for (; i < m; i++) group_scores(q + (size_t)i * D, 1, D, K, Knew, N, P, vis, n, scale, s + (size_t)i * S, S);
  for (i = 0; i < m; i++) softmax(s + (size_t)i * S, n);
  for (i = 0; m - i >= 4; i += 4) group_values(s + (size_t)i * S, 4, S, D, V, Vnew, N, P, vis, n, out + (size_t)i * D);
  for (; m - i >= 2; i += 2) group_values(s + (size_t)i * S, 2, S, D, V, Vnew, N, P, vis, n, out + (size_t)i * D);
  for (; i < m; i++) group_values(s + (size_t)i * S, 1, S, D, V, Vnew, N, P, vis, n, out + (size_t)i * D);
}

// One (token, kv head) pair per job: the queries of the heads sharing that kv head (grouped-query attention)
// against the cache's slots, then the run's own keys, each key and value read once for all of them. With
// fewer pairs than threads (a decode step has one), each pair's heads are cut among the threads.
KERNEL static void phase_attention(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int H = d->c.heads, Hkv = d->c.kv_heads, D = d->c.head_dim, G = H / Hkv, T = d->T;
  const int Q = H * D, N = Q + 2 * Hkv * D;
  const decoder_cache *cc = d->cache;
  const int P = cc->filled, window = d->L->window, S = P + T;
  const int cuts = T * Hkv < nth ? (G < nth ? G : nth) : 1;
  // This thread's scratch: the visible keys' indices, then G rows of S scores.
  int *vis = (int *)(d->scores + (size_t)ith * d->scores_cap);
  float *s = (float *)(vis + S);
  for (int job = ith; job < T * Hkv * cuts; job += nth) {
    const int pair = job / cuts, cut = job % cuts, t = pair / Hkv, g = pair % Hkv, pos = d->positions[t];
    const int h0 = G * cut / cuts, h1 = G * (cut + 1) / cuts;  // this job's heads of the group
    const float *K = cc->k + (size_t)g * cc->capacity * D, *V = cc->v + (size_t)g * cc->capacity * D;
    const float *Knew = d->qkv + Q + g * D, *Vnew = d->qkv + Q + Hkv * D + g * D;
    // Index j < P: cache slot j; P + u: the run's token u.
    int n = 0;
    for (int j = 0; j < P; j++) {
      const int dist = pos - cc->positions[j];
      if (dist >= 0 && !(window > 0 && dist >= window)) vis[n++] = j;
    }
    for (int u = 0; u < T; u++)
      if (sees(d, t, u, window)) vis[n++] = P + u;
    const size_t head0 = (size_t)g * G + h0;
    heads_attend(d->qkv + (size_t)t * N + head0 * D, h1 - h0, D, K, Knew, V, Vnew, N, P, vis, n, d->c.attn_scale, s, S, d->ctx + (size_t)t * Q + head0 * D);
  }
}

// proj = W·in for the phase's input (begin_phase's) and W = d->to_hidden: attention's output projection, the
// MLP's down projection.
KERNEL static void phase_to_hidden(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int C = d->c.hidden;
  int r0, r1;
  pool_share(C, QK, ith, nth, &r0, &r1);
  gemm(d, d->to_hidden, d->in_k, d->in, d->proj, C, r0, r1);
  lora_rows(d, d->proj + r0, C, r0, r1 - r0, C);
}

// gate and up rows [r0, r1) then gelu_tanh(gate)·up on them.
KERNEL static void phase_gateup(void *ctx, int ith, int nth) {
  decoder *d = ctx;
  const int C = d->c.hidden, F = d->c.ffn;
  int r0, r1;
  pool_share(F, QK, ith, nth, &r0, &r1);
  if (r0 >= r1) return;
  gemm(d, d->L->gate, C, d->xn, d->gateup, 2 * F, r0, r1);
  gemm(d, d->L->up, C, d->xn, d->gateup + F, 2 * F, r0, r1);
  // The group's rows are gate's then up's.
  lora_rows(d, d->gateup + r0, 2 * F, r0, r1 - r0, 2 * F);
  lora_rows(d, d->gateup + F + r0, 2 * F, F + r0, r1 - r0, 2 * F);
  for (int t = 0; t < d->T; t++) {
    const float *gu = d->gateup + (size_t)t * 2 * F;
    gelu_tanh_mul(gu + r0, gu + F + r0, d->act + (size_t)t * F + r0, r1 - r0);
  }
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

/** The scratch arrays for runs of up to T tokens; −1 when out of memory (the old ones are kept). */
static int ensure_rows(decoder *d, int T) {
  if (T <= d->rows) return 0;
  const decoder_config *c = &d->c;
  const size_t C = c->hidden, Q = (size_t)c->heads * c->head_dim, KV = (size_t)c->kv_heads * c->head_dim, F = c->ffn;
  const size_t widest = C > Q ? (C > F ? C : F) : (Q > F ? Q : F);
  float **f[7] = {&d->xn, &d->qkv, &d->ctx, &d->proj, &d->h, &d->gateup, &d->act};
  const size_t width[7] = {C, Q + 2 * KV, Q, C, C, 2 * F, F};
  for (int i = 0; i < 7; i++) {
    float *p = realloc(*f[i], sizeof(float) * width[i] * (size_t)T);
    if (!p) return -1;
    *f[i] = p;
  }
  block_q8 *xq = realloc(d->xq, sizeof(block_q8) * (widest / QK) * (size_t)T);
  if (!xq) return -1;
  d->xq = xq;
  float *xsum8 = realloc(d->xsum8, sizeof(float) * (widest / QK) * (size_t)T);
  if (!xsum8) return -1;
  d->xsum8 = xsum8;
  d->rows = T;
  return 0;
}

decoder *decoder_create(const decoder_config *cfg, const decoder_layer *layers, int threads) {
  decoder *d = calloc(1, sizeof(decoder));
  if (!d) return NULL;
  d->c = *cfg;
  d->threads = threads < 1 ? 1 : threads;
  d->layers = malloc(sizeof(layer) * (size_t)cfg->layers);
  d->pool = pool_create(threads);
  if (!d->layers || !d->pool || ensure_rows(d, 1) || copy_layers(d, layers)) {
    decoder_destroy(d);
    return NULL;
  }
  return d;
}

// Room for a run of T tokens over these caches and adapter: the rows' scratch, attention's (visible indices
// and scores), LoRA's a·x. All of it before the first layer, so that a run that fails has written no cache.
static int reserve_run(decoder *d, int T, const decoder_cache *caches, const lora_layer *lora) {
  const decoder_config *c = &d->c;
  if (ensure_rows(d, T)) return -1;
  int scratch = 0;
  const size_t rank = (size_t)lora_rank(c->layers, lora);
  for (int l = 0; l < c->layers; l++) {
    const int s = (c->heads / c->kv_heads + 1) * (caches[l].filled + T);
    if (s > scratch) scratch = s;
  }
  if (scratch > d->scores_cap) {
    float *s = realloc(d->scores, sizeof(float) * (size_t)d->threads * (size_t)scratch);
    if (!s) return -1;
    d->scores = s;
    d->scores_cap = scratch;
  }
  if (rank * (size_t)T > d->lora_cap) {
    float *t = realloc(d->lora_t, sizeof(float) * rank * (size_t)T);
    if (!t) return -1;
    d->lora_t = t;
    d->lora_cap = rank * (size_t)T;
  }
  return 0;
}

KERNEL int decoder_run(decoder *d, float *x, int T, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora) {
  const decoder_config *c = &d->c;
  const int C = c->hidden, H = c->heads, D = c->head_dim;
  if (reserve_run(d, T, caches, lora)) return -1;
  d->T = T;
  d->positions = positions;
  d->branch = branch;
  d->x = x;
  const int N = H * D + 2 * c->kv_heads * D;
  for (int l = 0; l < c->layers; l++) {
    d->L = &d->layers[l];
    d->cache = &caches[l];
    // A training forward keeps what its backward reads; an inference run keeps nothing.
    decoder_saves *S = d->saves ? &d->saves[l] : NULL;
#define KEEP(field, from, width) \
  if (S && S->field) memcpy(S->field, (from), sizeof(float) * (size_t)T * (size_t)(width))
    // attention: q|k|v of input_norm(x); per-head norms and RoPE; then the new keys and values to the cache.
    const lora_layer *LL = lora ? &lora[l] : NULL;
    KEEP(x, d->x, C);
    for_rows(d, rows_in_norm);
    begin_phase(d, d->xn, C, LL ? &LL->qkv : NULL);
    KEEP(t_qkv, d->lora_t, LL->qkv.r);
    pool_run(d->pool, phase_qkv, d);
    KEEP(qkv_raw, d->qkv, N);
    for_rows(d, rows_qk);
    pool_run(d->pool, phase_attention, d);
    store_kv(d);
    KEEP(ctx, d->ctx, H * D);
    begin_phase(d, d->ctx, H * D, LL ? &LL->o : NULL);
    KEEP(t_o, d->lora_t, LL->o.r);
    d->to_hidden = d->L->o;
    pool_run(d->pool, phase_to_hidden, d);
    KEEP(o, d->proj, C);
    // h = x + post_attn_norm(o); the MLP on pre_ffn_norm(h); x = h + post_ffn_norm(down).
    for_rows(d, rows_mid);
    begin_phase(d, d->xn, C, LL ? &LL->gateup : NULL);
    KEEP(t_gateup, d->lora_t, LL->gateup.r);
    pool_run(d->pool, phase_gateup, d);
    KEEP(gateup, d->gateup, 2 * c->ffn);
    begin_phase(d, d->act, c->ffn, LL ? &LL->down : NULL);
    KEEP(t_down, d->lora_t, LL->down.r);
    d->to_hidden = d->L->down;
    pool_run(d->pool, phase_to_hidden, d);
    KEEP(down, d->proj, C);
    for_rows(d, rows_out);
#undef KEEP
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

#include "train.h"
#include "decoder_impl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// One group of projections that share an input (layer.ts's LORA_GROUPS), as its backward sees it: the input
// rows x [T, K], the gradient dy [T, M] of its outputs (its matrices' rows one after another), and its LoRA pair.
typedef struct {
  const float *x;
  int K;
  const float *dy;
  int M;
  const block_q4_0x8 *w[3];
  int rows[3];
  int nw;
  const lora_pair *p;
  const float *t;  // the forward's a·x [T, r]
  const lora_grad *g;
  float *dx;  // [T, K], written
} group;

/** Columns of a transposed add_outer summed at a time. */
#define OUTER_BAND 512

struct trainer {
  decoder *d;
  int cap, rank;  // tokens and LoRA rank the arrays below hold
  decoder_saves *saves;
  float *store;
  // The backward's rows [cap, width]: d of the residual stream after attention (dh), of o's or down's output
  // (dproj), of a group's input (dxn), of the MLP activation, of gate|up, of the context, of q|k|v; a recomputed
  // normed input (xn), MLP activation (act), q|k|v after their norms and RoPE (qkv) and h; d(a·x) (dt); each
  // head's share of d keys and values.
  float *dh, *dproj, *dxn, *dact, *dgu, *dctx, *dqkv, *xn, *act, *qkv, *h, *dt, *dk_heads, *dv_heads;
  float *scratch;  // per thread: gemm_dy_w's or add_outer's
  size_t scratch_per;
  float *attn;  // per thread: attention's backward (attention_scratch)
  size_t attn_per;
  // The step in flight, read by the phases.
  void (*rows_fn)(struct trainer *tr, int t0, int t1);
  int T;
  float *dx;
  const decoder_saves *S;
  const layer *L;
  const decoder_cache *cache;
  group G;
};

/** Floats per token one layer keeps (decoder_saves) at LoRA rank r per group. */
static size_t saved_per_token(const decoder_config *c, int r) {
  const size_t C = c->hidden, Q = (size_t)c->heads * c->head_dim, N = Q + 2 * (size_t)c->kv_heads * c->head_dim, F = c->ffn;
  return 3 * C + N + Q + 2 * F + 4 * (size_t)r;
}

/** Queries attention's backward takes at a time: their scores against the keys they see are small GEMMs. */
#define ATTN_TILE 32

/** Floats of attention's backward scratch per thread for T tokens (phase_attention_backward's layout). */
static size_t attention_scratch(const decoder_config *c, size_t T) {
  return 2 * (size_t)c->head_dim * T + 3 * ATTN_TILE * T + 2 * T;
}

trainer *trainer_create(decoder *d) {
  trainer *tr = calloc(1, sizeof(trainer));
  if (!tr) return NULL;
  tr->d = d;
  tr->saves = calloc((size_t)d->c.layers, sizeof(decoder_saves));
  if (!tr->saves) {
    free(tr);
    return NULL;
  }
  return tr;
}

/** Room for T tokens at rank r (the largest of a layer's groups); −1 when out of memory (nothing is then usable). */
static int reserve(trainer *tr, int T, int r) {
  if (T <= tr->cap && r <= tr->rank) return 0;
  const decoder_config *c = &tr->d->c;
  const size_t C = c->hidden, H = c->heads, D = c->head_dim, Q = H * D, N = Q + 2 * (size_t)c->kv_heads * D, F = c->ffn;
  const size_t n = (size_t)T;
  free(tr->store);
  tr->store = malloc(sizeof(float) * saved_per_token(c, r) * n * (size_t)c->layers);
  float **rows[] = {&tr->dh, &tr->dproj, &tr->dxn, &tr->dact, &tr->dgu, &tr->dctx, &tr->dqkv, &tr->xn, &tr->act, &tr->qkv, &tr->h, &tr->dt, &tr->dk_heads, &tr->dv_heads};
  const size_t width[] = {C, C, C, F, 2 * F, Q, N, C, F, N, C, (size_t)r, H * D, H * D};
  int ok = tr->store != NULL;
  for (size_t i = 0; i < sizeof(width) / sizeof(width[0]); i++) {
    free(*rows[i]);
    *rows[i] = malloc(sizeof(float) * (width[i] ? width[i] : 1) * n);
    ok = ok && *rows[i];
  }
  // Per thread: gemm_dy_w's scratch or add_outer's; and attention's.
  tr->scratch_per = GEMM_DY_W_SCRATCH > (size_t)r * (n + OUTER_BAND) ? GEMM_DY_W_SCRATCH : (size_t)r * (n + OUTER_BAND);
  free(tr->scratch);
  tr->scratch = malloc(sizeof(float) * tr->scratch_per * (size_t)tr->d->threads);
  // Attention's backward is a head per thread: threads past the heads have no job.
  tr->attn_per = attention_scratch(c, n);
  free(tr->attn);
  tr->attn = malloc(sizeof(float) * tr->attn_per * (size_t)(tr->d->threads < c->heads ? tr->d->threads : c->heads));
  if (!ok || !tr->scratch || !tr->attn) {
    tr->cap = tr->rank = 0;
    return -1;
  }
  tr->cap = T;
  tr->rank = r;
  return 0;
}

int trainer_forward(trainer *tr, float *x, int T, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora) {
  decoder *d = tr->d;
  const decoder_config *c = &d->c;
  if (reserve(tr, T, lora_rank(c->layers, lora))) return -1;
  tr->T = T;
  const size_t C = c->hidden, Q = (size_t)c->heads * c->head_dim, N = Q + 2 * (size_t)c->kv_heads * c->head_dim, F = c->ffn, n = (size_t)T;
  float *at = tr->store;
#define TAKE(width) (at += (width) * n, at - (width) * n)
  for (int l = 0; l < c->layers; l++) {
    decoder_saves *S = &tr->saves[l];
    S->x = TAKE(C), S->qkv_raw = TAKE(N), S->ctx = TAKE(Q), S->o = TAKE(C), S->gateup = TAKE(2 * F), S->down = TAKE(C);
    const lora_layer *LL = lora ? &lora[l] : NULL;
    S->t_qkv = LL && LL->qkv.r ? TAKE((size_t)LL->qkv.r) : NULL;
    S->t_o = LL && LL->o.r ? TAKE((size_t)LL->o.r) : NULL;
    S->t_gateup = LL && LL->gateup.r ? TAKE((size_t)LL->gateup.r) : NULL;
    S->t_down = LL && LL->down.r ? TAKE((size_t)LL->down.r) : NULL;
  }
#undef TAKE
  d->saves = tr->saves;
  const int rc = decoder_run(d, x, T, positions, branch, caches, lora);
  d->saves = NULL;
  return rc;
}

// d of gelu_tanh(g)·u into dg and du, from da: with s = σ(2z) (gelu_tanh(g) = g·s, z = c·(g + 0.044715·g³)),
// gelu' = s + g·2s(1 − s)·c·(1 + 3·0.044715·g²).
KERNEL static void gelu_mul_backward(const float *g, const float *u, const float *da, float *dg, float *du, int n) {
  const __m256 c = _mm256_set1_ps(0.7978845608028654f), k = _mm256_set1_ps(0.044715f), k3 = _mm256_set1_ps(3 * 0.044715f), one = _mm256_set1_ps(1.0f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(g + i), uu = _mm256_loadu_ps(u + i), a = _mm256_loadu_ps(da + i);
    const __m256 v2 = _mm256_mul_ps(v, v);
    const __m256 z = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(k, v), v2, v));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), z))));
    const __m256 ds = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), s), _mm256_sub_ps(one, s));
    const __m256 dz = _mm256_mul_ps(c, _mm256_fmadd_ps(k3, v2, one));
    const __m256 gp = _mm256_fmadd_ps(_mm256_mul_ps(v, ds), dz, s);
    _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(a, uu), gp));
    _mm256_storeu_ps(du + i, _mm256_mul_ps(a, _mm256_mul_ps(v, s)));
  }
  for (; i < n; i++) {
    const float v = g[i], z = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    const float s = 1.0f / (1.0f + expf(-2.0f * z));
    const float gp = s + v * 2.0f * s * (1.0f - s) * 0.7978845608028654f * (1.0f + 3 * 0.044715f * v * v);
    dg[i] = da[i] * u[i] * gp;
    du[i] = da[i] * v * s;
  }
}

// The inverse of rope_head (a rotation: its transpose), for the gradient of one head.
KERNEL static void rope_head_backward(float *x, const float *cos, const float *sin, int D) {
  const int h = D / 2;
  for (int i = 0; i < h; i++) {
    const float x1 = x[i], x2 = x[i + h];
    x[i] = x1 * cos[i] + x2 * sin[i];
    x[i + h] = x2 * cos[i] - x1 * sin[i];
  }
}

// uᵀ·v over T rows (u [T, R], v rows ldv apart) for columns [c0, c1): into out[j·ldo + c] (transposed 0), or
// out[c·R + j] (1, through OUTER_BAND columns at a time). scratch: R·T + R·OUTER_BAND floats.
KERNEL static void add_outer(float *out, int ldo, int c0, int c1, const float *u, int R, const float *v, int ldv, int T, float *scratch, int transposed) {
  float *ut = scratch, *acc = scratch + (size_t)R * T;
  transpose_f32(u, R, T, R, ut);
  if (!transposed) {
    for (int j = 0; j < R; j++) memset(out + (size_t)j * ldo + c0, 0, sizeof(float) * (size_t)(c1 - c0));
    gemm_add_f32(out + c0, ldo, ut, T, v + c0, ldv, R, c1 - c0, T);
    return;
  }
  for (int b0 = c0; b0 < c1; b0 += OUTER_BAND) {
    const int w = b0 + OUTER_BAND < c1 ? OUTER_BAND : c1 - b0;
    memset(acc, 0, sizeof(float) * (size_t)R * (size_t)w);
    gemm_add_f32(acc, w, ut, T, v + b0, ldv, R, w, T);
    for (int j = 0; j < R; j++)
      for (int c = 0; c < w; c++) out[(size_t)(b0 + c) * R + j] = acc[(size_t)j * w + c];
  }
}

// --- one group of linears: d(a·x) and d b, then d x, d a (the group in tr->G) ---

// dt = dy·b by tokens, and d b = dyᵀ·t by output columns.
KERNEL static void phase_lora_t(void *ctx, int ith, int nth) {
  trainer *tr = ctx;
  const group *G = &tr->G;
  const int T = tr->T, M = G->M, R = G->p->r;
  int t0, t1, o0, o1;
  pool_share(T, 1, ith, nth, &t0, &t1);
  if (t0 < t1) {
    memset(tr->dt + (size_t)t0 * R, 0, sizeof(float) * (size_t)(t1 - t0) * R);
    gemm_add_f32(tr->dt + (size_t)t0 * R, R, G->dy + (size_t)t0 * M, M, G->p->b, R, t1 - t0, R, M);
  }
  pool_share(M, 8, ith, nth, &o0, &o1);
  if (o0 < o1) add_outer(G->g->b, R, o0, o1, G->t, R, G->dy, M, T, tr->scratch + (size_t)ith * tr->scratch_per, 1);
}

// d x = dy·W (each matrix's rows of dy) + dt·a, and d a = dtᵀ·x, by input columns.
KERNEL static void phase_group_dx(void *ctx, int ith, int nth) {
  trainer *tr = ctx;
  const group *G = &tr->G;
  const int T = tr->T, K = G->K, M = G->M, R = G->p ? G->p->r : 0;
  int k0, k1;
  pool_share(K, QK, ith, nth, &k0, &k1);
  if (k0 >= k1) return;
  float *scratch = tr->scratch + (size_t)ith * tr->scratch_per;
  for (int m = 0, row = 0; m < G->nw; row += G->rows[m], m++)
    gemm_dy_w(G->w[m], G->rows[m], K, G->dy + row, M, T, G->dx, K, k0, k1, m > 0, scratch);
  if (R == 0) return;
  gemm_add_f32(G->dx + k0, K, tr->dt, R, G->p->a + k0, K, T, k1 - k0, R);
  add_outer(G->g->a, K, k0, k1, tr->dt, R, G->x, K, T, scratch, 0);
}

/** The backward of tr->G (set by the caller): its LoRA gradients and d of its input into G.dx. */
static void group_backward(trainer *tr) {
  const group *G = &tr->G;
  if (G->p && G->p->r > 0) pool_run(tr->d->pool, phase_lora_t, tr);
  pool_run(tr->d->pool, phase_group_dx, tr);
}

// --- the layer's rows ---

static void phase_rows(void *ctx, int ith, int nth) {
  trainer *tr = ctx;
  int t0, t1;
  pool_share(tr->T, 1, ith, nth, &t0, &t1);
  if (t0 < t1) tr->rows_fn(tr, t0, t1);
}

// fn on every token's rows, shared among the threads.
static void for_rows(trainer *tr, void (*fn)(trainer *, int, int)) {
  tr->rows_fn = fn;
  pool_run(tr->d->pool, phase_rows, tr);
}

// What the forward did not keep of token t, as the forward computed it (decoder.c's rows_qk and rows_mid, the
// same functions in the same order, so the same bits): q|k|v after the per-head norms and RoPE, and
// h = x + post_attn_norm(o).
KERNEL static void recompute_row(trainer *tr, int t) {
  const decoder_config *c = &tr->d->c;
  const int H = c->heads, Hkv = c->kv_heads, D = c->head_dim, Q = H * D, N = Q + 2 * Hkv * D, C = c->hidden;
  const decoder_saves *S = tr->S;
  float *q = tr->qkv + (size_t)t * N, *k = q + Q;
  memcpy(q, S->qkv_raw + (size_t)t * N, sizeof(float) * (size_t)N);
  const float *cos = tr->cache->cos + (size_t)t * (D / 2), *sin = tr->cache->sin + (size_t)t * (D / 2);
  for (int h = 0; h < H; h++) {
    rms_norm(q + h * D, tr->L->q_norm, D, c->eps, q + h * D);
    rope_head(q + h * D, cos, sin, D);
  }
  for (int g = 0; g < Hkv; g++) {
    rms_norm(k + g * D, tr->L->k_norm, D, c->eps, k + g * D);
    rope_head(k + g * D, cos, sin, D);
  }
  float *h = tr->h + (size_t)t * C;
  rms_norm(S->o + (size_t)t * C, tr->L->post_attn_norm, C, c->eps, h);
  const float *x = S->x + (size_t)t * C;
  for (int i = 0; i < C; i++) h[i] = x[i] + h[i];
}

// From d of the layer's output (tr->dx): dh = dx (the residual), dproj = d down through post_ffn_norm; what the
// forward did not keep, the MLP activation and pre_ffn_norm(h) recomputed.
KERNEL static void rows_out(trainer *tr, int t0, int t1) {
  const decoder_config *c = &tr->d->c;
  const size_t C = c->hidden, F = c->ffn;
  const decoder_saves *S = tr->S;
  for (size_t t = (size_t)t0; t < (size_t)t1; t++) {
    recompute_row(tr, (int)t);
    memcpy(tr->dh + t * C, tr->dx + t * C, sizeof(float) * C);
    rms_norm_backward(S->down + t * C, tr->L->post_ffn_norm, tr->dx + t * C, (int)C, c->eps, tr->dproj + t * C, 0);
    gelu_tanh_mul(S->gateup + t * 2 * F, S->gateup + t * 2 * F + F, tr->act + t * F, (int)F);
    rms_norm(tr->h + t * C, tr->L->pre_ffn_norm, (int)C, c->eps, tr->xn + t * C);
  }
}

// d gate|up from d of the MLP activation.
KERNEL static void rows_gelu(trainer *tr, int t0, int t1) {
  const size_t F = tr->d->c.ffn;
  for (size_t t = (size_t)t0; t < (size_t)t1; t++) {
    const float *gu = tr->S->gateup + t * 2 * F;
    gelu_mul_backward(gu, gu + F, tr->dact + t * F, tr->dgu + t * 2 * F, tr->dgu + t * 2 * F + F, (int)F);
  }
}

// dh += d h through pre_ffn_norm; dproj = d o through post_attn_norm.
KERNEL static void rows_mid(trainer *tr, int t0, int t1) {
  const decoder_config *c = &tr->d->c;
  const size_t C = c->hidden;
  for (size_t t = (size_t)t0; t < (size_t)t1; t++) {
    rms_norm_backward(tr->h + t * C, tr->L->pre_ffn_norm, tr->dxn + t * C, (int)C, c->eps, tr->dh + t * C, 1);
    rms_norm_backward(tr->S->o + t * C, tr->L->post_attn_norm, tr->dh + t * C, (int)C, c->eps, tr->dproj + t * C, 0);
  }
}

// Attention's backward, a head per job, ATTN_TILE queries at a time against the span of keys any of them sees
// (the rest of the span masked): the weights recomputed as S = q·kᵀ, dP = d ctx·vᵀ, then d q = dS·k and the
// head's own share of d keys (dSᵀ·q) and values (Pᵀ·d ctx), summed over the group's heads after. Written as
// products of a key per query, it spent most of its time loading and storing rows of 256 for a few FMAs each.
KERNEL static void phase_attention_backward(void *ctx, int ith, int nth) {
  trainer *tr = ctx;
  const decoder *d = tr->d;
  const decoder_config *c = &d->c;
  const int H = c->heads, Hkv = c->kv_heads, D = c->head_dim, G = H / Hkv, T = tr->T;
  const int Q = H * D, KV = Hkv * D, N = Q + 2 * KV, window = tr->L->window;
  const float scale = c->attn_scale;
  if (ith >= H) return;  // its scratch was not made (reserve)
  float *kt = tr->attn + (size_t)ith * tr->attn_per, *vt = kt + (size_t)D * T;  // the group's keys and values, [D, T]
  float *P = vt + (size_t)D * T, *dS = P + (size_t)ATTN_TILE * T, *tp = dS + (size_t)ATTN_TILE * T;
  float *p = tp + (size_t)ATTN_TILE * T;
  int *vis = (int *)(p + T);
  int group = -1;
  for (int h = ith; h < H; h += nth) {
    const int g = h / G;
    if (g != group) {
      transpose_f32(tr->qkv + Q + (size_t)g * D, N, T, D, kt);
      transpose_f32(tr->qkv + Q + KV + (size_t)g * D, N, T, D, vt);
      group = g;
    }
    float *dk = tr->dk_heads + (size_t)h * D, *dv = tr->dv_heads + (size_t)h * D;  // rows H·D apart
    for (int t = 0; t < T; t++) memset(dk + (size_t)t * Q, 0, sizeof(float) * D), memset(dv + (size_t)t * Q, 0, sizeof(float) * D);
    for (int t0 = 0; t0 < T; t0 += ATTN_TILE) {
      const int nq = T - t0 < ATTN_TILE ? T - t0 : ATTN_TILE;
      int u0 = T, u1 = 0;
      for (int t = t0; t < t0 + nq; t++)
        for (int u = 0; u < T; u++)
          if (sees(d, t, u, window)) u0 = u < u0 ? u : u0, u1 = u + 1 > u1 ? u + 1 : u1;
      const float *q = tr->qkv + (size_t)t0 * N + (size_t)h * D, *dc = tr->dctx + (size_t)t0 * Q + (size_t)h * D;
      float *dq = tr->dqkv + (size_t)t0 * N + (size_t)h * D;
      for (int i = 0; i < nq; i++) memset(dq + (size_t)i * N, 0, sizeof(float) * D);
      if (u0 >= u1) continue;
      const int L = u1 - u0;
      memset(P, 0, sizeof(float) * (size_t)nq * L);
      memset(dS, 0, sizeof(float) * (size_t)nq * L);
      gemm_add_f32(P, L, q, N, kt + u0, T, nq, L, D);
      gemm_add_f32(dS, L, dc, Q, vt + u0, T, nq, L, D);
      for (int i = 0; i < nq; i++) {
        float *Pi = P + (size_t)i * L, *dSi = dS + (size_t)i * L;
        int n = 0;
        for (int u = u0; u < u1; u++)
          if (sees(d, t0 + i, u, window)) vis[n] = u - u0, p[n++] = Pi[u - u0] * scale;
        softmax(p, n);
        float dsum = 0;
        for (int a = 0; a < n; a++) dsum += p[a] * dSi[vis[a]];
        // The weights and dS = P∘(dP − Σ P·dP)·scale at the keys seen; zero at the rest of the span.
        for (int a = 0, u = 0; u < L; u++) {
          const int seen = a < n && vis[a] == u;
          const float w = seen ? p[a] : 0, ds = seen ? p[a] * (dSi[u] - dsum) * scale : 0;
          Pi[u] = w, dSi[u] = ds;
          a += seen;
        }
      }
      gemm_add_f32(dq, N, dS, L, tr->qkv + (size_t)u0 * N + Q + (size_t)g * D, N, nq, D, L);
      transpose_f32(dS, L, nq, L, tp);
      gemm_add_f32(dk + (size_t)u0 * Q, Q, tp, nq, q, N, L, D, nq);
      transpose_f32(P, L, nq, L, tp);
      gemm_add_f32(dv + (size_t)u0 * Q, Q, tp, nq, dc, Q, L, D, nq);
    }
  }
}

// d keys and values summed over each group's heads, then q and k back through RoPE and their per-head norms;
// input_norm(x) recomputed for the q|k|v group's LoRA.
KERNEL static void rows_qk(trainer *tr, int t0, int t1) {
  const decoder_config *c = &tr->d->c;
  const int H = c->heads, Hkv = c->kv_heads, D = c->head_dim, G = H / Hkv, Q = H * D, KV = Hkv * D, N = Q + 2 * KV;
  const size_t C = c->hidden;
  for (int t = t0; t < t1; t++) {
    float *row = tr->dqkv + (size_t)t * N;
    const float *raw = tr->S->qkv_raw + (size_t)t * N;
    const float *cos = tr->cache->cos + (size_t)t * (D / 2), *sin = tr->cache->sin + (size_t)t * (D / 2);
    for (int g = 0; g < Hkv; g++) {
      float *dk = row + Q + g * D, *dv = row + Q + KV + g * D;
      memset(dk, 0, sizeof(float) * D);
      memset(dv, 0, sizeof(float) * D);
      for (int h = g * G; h < (g + 1) * G; h++) {
        axpy_f32(1.0f, tr->dk_heads + (size_t)t * Q + (size_t)h * D, dk, D);
        axpy_f32(1.0f, tr->dv_heads + (size_t)t * Q + (size_t)h * D, dv, D);
      }
      rope_head_backward(dk, cos, sin, D);
      rms_norm_backward(raw + Q + g * D, tr->L->k_norm, dk, D, c->eps, dk, 0);
    }
    for (int h = 0; h < H; h++) {
      rope_head_backward(row + h * D, cos, sin, D);
      rms_norm_backward(raw + h * D, tr->L->q_norm, row + h * D, D, c->eps, row + h * D, 0);
    }
    rms_norm(tr->S->x + t * C, tr->L->in_norm, (int)C, c->eps, tr->xn + t * C);
  }
}

// d of the layer's input: dh (the residual) + d x through input_norm.
KERNEL static void rows_in(trainer *tr, int t0, int t1) {
  const decoder_config *c = &tr->d->c;
  const size_t C = c->hidden;
  for (size_t t = (size_t)t0; t < (size_t)t1; t++) {
    memcpy(tr->dx + t * C, tr->dh + t * C, sizeof(float) * C);
    rms_norm_backward(tr->S->x + t * C, tr->L->in_norm, tr->dxn + t * C, (int)C, c->eps, tr->dx + t * C, 1);
  }
}

/** tr->G for one group's backward. */
static void set_group(trainer *tr, const float *x, int K, const float *dy, int M, const block_q4_0x8 *const *w, const int *rows, int nw, const lora_pair *p,
                      const float *t, const lora_grad *g, float *dx) {
  group *G = &tr->G;
  *G = (group){x, K, dy, M, {NULL, NULL, NULL}, {0, 0, 0}, nw, p && p->r > 0 ? p : NULL, t, g, dx};
  for (int i = 0; i < nw; i++) G->w[i] = w[i], G->rows[i] = rows[i];
}

int trainer_backward(trainer *tr, float *dx, const int *positions, const int *branch, const decoder_cache *caches, const lora_layer *lora,
                     const lora_layer_grad *grads) {
  decoder *d = tr->d;
  const decoder_config *c = &d->c;
  const int C = c->hidden, D = c->head_dim, Q = c->heads * D, KV = c->kv_heads * D, N = Q + 2 * KV, F = c->ffn;
  if (tr->T == 0 || tr->T > tr->cap) return -1;
  tr->dx = dx;
  d->T = tr->T;
  d->positions = positions;
  d->branch = branch;
  for (int l = c->layers - 1; l >= 0; l--) {
    const layer *L = &d->layers[l];
    const lora_layer *LL = lora ? &lora[l] : NULL;
    const lora_layer_grad *GL = &grads[l];
    tr->L = L;
    tr->S = &tr->saves[l];
    tr->cache = &caches[l];
    // The MLP: down, the activation, gate|up; then pre_ffn_norm.
    for_rows(tr, rows_out);
    set_group(tr, tr->act, F, tr->dproj, C, (const block_q4_0x8 *[]){L->down}, (int[]){C}, 1, LL ? &LL->down : NULL, tr->S->t_down, &GL->down, tr->dact);
    group_backward(tr);
    for_rows(tr, rows_gelu);
    set_group(tr, tr->xn, C, tr->dgu, 2 * F, (const block_q4_0x8 *[]){L->gate, L->up}, (int[]){F, F}, 2, LL ? &LL->gateup : NULL, tr->S->t_gateup, &GL->gateup, tr->dxn);
    group_backward(tr);
    // Attention: post_attn_norm, o, the weights, RoPE and the per-head norms, q|k|v; then input_norm.
    for_rows(tr, rows_mid);
    set_group(tr, tr->S->ctx, Q, tr->dproj, C, (const block_q4_0x8 *[]){L->o}, (int[]){C}, 1, LL ? &LL->o : NULL, tr->S->t_o, &GL->o, tr->dctx);
    group_backward(tr);
    pool_run(d->pool, phase_attention_backward, tr);
    for_rows(tr, rows_qk);
    set_group(tr, tr->xn, C, tr->dqkv, N, (const block_q4_0x8 *[]){L->q, L->k, L->v}, (int[]){Q, KV, KV}, 3, LL ? &LL->qkv : NULL, tr->S->t_qkv, &GL->qkv, tr->dxn);
    group_backward(tr);
    for_rows(tr, rows_in);
  }
  pool_park(d->pool);
  return 0;
}

void trainer_destroy(trainer *tr) {
  if (!tr) return;
  free(tr->store);
  float *rows[] = {tr->dh, tr->dproj, tr->dxn, tr->dact, tr->dgu, tr->dctx, tr->dqkv, tr->xn, tr->act, tr->qkv, tr->h, tr->dt, tr->dk_heads, tr->dv_heads, tr->scratch, tr->attn};
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) free(rows[i]);
  free(tr->saves);
  free(tr);
}

#include "head.h"
#include "pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/** Rows a thread lists for rescoring before it gives up and rescans its share (a flat distribution). */
#define CHOOSE_LIST 4096
/** Rows of logits head_log_probs holds at once: 16 MB for the 270M's vocabulary. */
#define LOGPROB_ROWS 16
/** Logits per part of a row's softmax sum: the parts are added in order, so the threads do not change the bits. */
#define LOGPROB_PART 4096
/** Logits per float partial sum of a row's softmax denominator in head_loss; the partial sums add in double. */
#define LOSS_PART 1024
/** Rows a thread lists as holding its share's largest logit (ties) before it gives up listing. */
#define TIED_LIST 64

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
  // A Q4_0 table at level 0, copied: repacked eight rows side by side (read by every call, exact or int8
  // estimate), and per row what bounds the estimate's error (row_bound).
  block_q4_0x8 *packed;
  float *wnorm;  // ‖w_r‖₂, rounded up
  float *wmag;   // 23·√32·√(Σ_b d_b²): bounds Σ_b d_b·(Σ|q|·|x_b| + 8·|Σx_b|) / ‖x‖₂
  // The choose call in flight.
  const int32_t *among;
  int n_among, top, heap_cap;
  float err, round, kth;
  float *heaps;  // [threads, top]: each thread's largest lower bounds
  int *heap_n;
  int *lists;  // [threads, CHOOSE_LIST]: each thread's rows to rescore
  int *list_n;  // −1: the list overflowed
  int *exact_n;
  int *found;  // [threads, CHOOSE_LIST]: the rows each thread computed exactly
  int *bad_n;  // [threads]: non-finite logits of the call in flight
  // A greedy choice computed whole (head_choose's top 1): each thread's largest logit and the rows that hold it.
  int want_max;
  float *share_max;  // [threads]
  int *tied;  // [threads, TIED_LIST]
  int *tied_n;  // [threads]; past TIED_LIST: too many to list
  double *parts;  // head_log_probs: [n, parts of a row] of (max, Σ exp(x − max))
  // The loss call in flight (head_loss): its labels, per-row results and gradient, and per thread the
  // scratch of the table's float kernels (GEMM_TABLE_SCRATCH).
  const int32_t *labels;
  float *loss, *hit, *d_rows;  // d_rows NULL: no gradient
  const float *rows;
  float *loss_scratch;
  int threads;
};

/** Non-finite values among v[0…n) (an all-ones exponent), on the bits so that the compiler vectorises it. */
static int count_nonfinite(const float *v, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, v + i, 4);
    bad += (u & 0x7f800000u) == 0x7f800000u;
  }
  return bad;
}

// An estimate from int8 activations x̂ differs from the float product by w·(x − x̂) plus the float rounding of
// both, so |estimate − exact| ≤ ‖w‖·‖x − x̂‖ + magnitude·rounding, per row (Cauchy–Schwarz).
// Computed as the vector form in phase_estimate computes it (one FMA over one product), so that both passes
// see the same bound bit for bit.
KERNEL static inline float row_bound(const head *h, int r) {
  return fmaf(h->wnorm[r], h->err, h->wmag[r] * h->round);
}

// Groups [g0, g1) of the table repacked, and their rows' bounds (row_bound).
KERNEL static void phase_pack(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, nb = h->c.hidden / QK;
  int g0, g1;
  pool_share((V + 7) / 8, 1, ith, nth, &g0, &g1);
  const float m = 23.0f * sqrtf((float)QK);
  // A group at a time, so that its rows are still in cache for their bounds.
  for (int g = g0; g < g1; g++) {
    repack_q4_0x8(h->table, V, h->c.hidden, h->packed, g, g + 1);
    for (int r = g * 8; r < g * 8 + 8 && r < V; r++) {
      const block_q4_0 *row = (const block_q4_0 *)h->table + (size_t)r * nb;
      double w2 = 0, d2 = 0;
      for (int b = 0; b < nb; b++) {
        const double d = _cvtsh_ss(row[b].d);
        // Σ(q − 8)² of the block, exact in int: |q − 8| ≤ 8, so a pair of squares fits maddubs's int16.
        const __m256i a = _mm256_abs_epi8(_mm256_sub_epi8(unpack_q4(row[b].qs), _mm256_set1_epi8(8)));
        d2 += d * d;
        w2 += d * d * hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(a, a), _mm256_set1_epi16(1)));
      }
      // Rounded up, so that the bound stays a bound.
      h->wnorm[r] = (float)sqrt(w2) * (1 + 1e-6f);
      h->wmag[r] = m * (float)sqrt(d2) * (1 + 1e-6f);
    }
  }
}

static int pack_table(head *h) {
  const int V = h->c.vocab;
  h->packed = packed_alloc(packed_blocks(V, h->c.hidden));  // 94 MB for the 270M's table
  h->wnorm = malloc(sizeof(float) * (size_t)V);
  h->wmag = malloc(sizeof(float) * (size_t)V);
  h->heap_n = calloc((size_t)h->threads, sizeof(int));
  h->list_n = calloc((size_t)h->threads, sizeof(int));
  h->lists = malloc(sizeof(int) * CHOOSE_LIST * (size_t)h->threads);
  h->found = malloc(sizeof(int) * CHOOSE_LIST * (size_t)h->threads);
  if (!h->packed || !h->wnorm || !h->wmag || !h->heap_n || !h->list_n || !h->lists || !h->found) return -1;
  pool_run(h->pool, phase_pack, h);
  pool_park(h->pool);
  return 0;
}

head *head_create(const head_config *cfg, const void *table, const float *norm, int threads) {
  head *h = calloc(1, sizeof(head));
  if (!h) return NULL;
  h->c = *cfg;
  h->table = table;
  h->norm = malloc(sizeof(float) * (size_t)cfg->hidden);
  h->pool = pool_create(threads);
  h->exact_n = calloc((size_t)threads, sizeof(int));
  h->bad_n = calloc((size_t)threads, sizeof(int));
  h->share_max = calloc((size_t)threads, sizeof(float));
  h->tied = calloc((size_t)threads * TIED_LIST, sizeof(int));
  h->tied_n = calloc((size_t)threads, sizeof(int));
  if (!h->norm || !h->pool || !h->exact_n || !h->bad_n || !h->share_max || !h->tied || !h->tied_n) {
    head_destroy(h);
    return NULL;
  }
  memcpy(h->norm, norm, sizeof(float) * (size_t)cfg->hidden);
  h->threads = threads;
  if (cfg->type == HEAD_Q4_0 && cfg->level == 0) {
    if (pack_table(h) != 0) {
      head_destroy(h);
      return NULL;
    }
    h->table = NULL;  // the caller's may go: everything reads the copy
  }
  return h;
}

/** Gemma 2's final softcap on vocabulary rows [r0, r1) of the n outputs (Gemma 3 has none). */
static void softcap_rows(head *h, int n, int r0, int r1) {
  if (!(h->c.softcap > 0)) return;
  const float cap = h->c.softcap;
  const int V = h->c.vocab;
  for (int i = 0; i < n; i++)
    for (int r = r0; r < r1; r++) h->out[(size_t)i * V + r] = cap * tanhf(h->out[(size_t)i * V + r] / cap);
}

int head_copied(const head *h) {
  return h->packed != NULL;
}

/** Inputs a pass of logits_tile meets (with two table rows): eight float accumulators. */
#define TILE_INPUTS 4

// Table rows r and r+1 against inputs [i, i + TILE_INPUTS) at int8 activations: each block of the two rows and
// of the four inputs is loaded once for the eight products. The float operations are dot_q8_q8's and
// dot_q4_q8's (q4: a Q4_0 table), in their order: the same logits to the bit. Inlined with q4 constant.
__attribute__((always_inline)) KERNEL static inline void tile_rows(head *h, int r, int i, const int q4) {
  const int V = h->c.vocab, nb = h->c.hidden / QK;
  const size_t row_bytes = (size_t)nb * (q4 ? sizeof(block_q4_0) : sizeof(block_q8_0));
  const uint8_t *w0 = (const uint8_t *)h->table + (size_t)r * row_bytes, *w1 = w0 + row_bytes;
  __m256 acc[2][TILE_INPUTS];
  float corr[2][TILE_INPUTS];
  for (int j = 0; j < 2; j++)
    for (int k = 0; k < TILE_INPUTS; k++) acc[j][k] = _mm256_setzero_ps(), corr[j][k] = 0;
  const block_q8 *x = h->xq + (size_t)i * nb;
  for (int b = 0; b < nb; b++) {
    // The two rows' block b: unsigned codes (Q4_0) or signed ones (Q8_0), and their scales.
    __m256i q0, q1;
    float d0, d1;
    if (q4) {
      const block_q4_0 *b0 = (const block_q4_0 *)w0 + b, *b1 = (const block_q4_0 *)w1 + b;
      q0 = unpack_q4(b0->qs), q1 = unpack_q4(b1->qs), d0 = _cvtsh_ss(b0->d), d1 = _cvtsh_ss(b1->d);
    } else {
      const block_q8_0 *b0 = (const block_q8_0 *)w0 + b, *b1 = (const block_q8_0 *)w1 + b;
      q0 = _mm256_loadu_si256((const __m256i *)b0->qs), q1 = _mm256_loadu_si256((const __m256i *)b1->qs);
      d0 = _cvtsh_ss(b0->d), d1 = _cvtsh_ss(b1->d);
    }
    for (int k = 0; k < TILE_INPUTS; k++) {
      const block_q8 *xb = x + (size_t)k * nb + b;
      const __m256i a = _mm256_loadu_si256((const __m256i *)xb->qs);
      const __m256i p0 = q4 ? codes_q8(q0, a) : block_q8_q8(q0, a), p1 = q4 ? codes_q8(q1, a) : block_q8_q8(q1, a);
      acc[0][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0 * xb->d), acc[0][k]);
      acc[1][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1 * xb->d), acc[1][k]);
      if (q4) corr[0][k] += d0 * xb->sum8, corr[1][k] += d1 * xb->sum8;
    }
  }
  for (int k = 0; k < TILE_INPUTS; k++) {
    h->out[(size_t)(i + k) * V + r] = hsum(acc[0][k]) - corr[0][k];
    h->out[(size_t)(i + k) * V + r + 1] = hsum(acc[1][k]) - corr[1][k];
  }
}

KERNEL static void logits_tile(head *h, int r, int i) {
  if (h->c.type == HEAD_Q4_0) tile_rows(h, r, i, 1);
  else tile_rows(h, r, i, 0);
}

/** The largest of 8 lanes (none NaN). */
KERNEL static inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

/** The largest of out[0…n), NaN skipped (−INFINITY when none is larger). */
KERNEL static float max_of(const float *out, int n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(out + i), m);  // a NaN in the first operand gives m
  float best = hmax(m);
  for (; i < n; i++)
    if (out[i] > best) best = out[i];
  return best;
}

// The largest logit of rows [r0, r1) of a one-row call and the rows that hold it, while they are in this
// thread's cache (a second pass over the vocabulary on one thread cost a decode step 0.5 ms).
KERNEL static void share_argmax(head *h, int ith, int r0, int r1) {
  const float m = max_of(h->out + r0, r1 - r0);
  int *tied = h->tied + (size_t)ith * TIED_LIST, k = 0, r = r0;
  const __m256 mv = _mm256_set1_ps(m);
  for (; r + 8 <= r1; r += 8)
    for (int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(h->out + r), mv, _CMP_EQ_OQ)); bits; bits &= bits - 1, k++)
      if (k < TIED_LIST) tied[k] = r + __builtin_ctz(bits);
  for (; r < r1; r++)
    if (h->out[r] == m) {
      if (k < TIED_LIST) tied[k] = r;
      k++;
    }
  h->share_max[ith] = m;
  h->tied_n[ith] = k;
}

// Vocabulary rows [r0, r1) for every input row: each table row is read from memory once and stays in L1
// for the n inputs.
KERNEL static void phase_logits(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, nb = h->c.hidden / QK, n = h->n;
  int r0, r1;
  pool_share(V, 2, ith, nth, &r0, &r1);
  // At int8 activations, pairs of rows by TILE_INPUTS inputs; what is left, a product at a time below.
  const int tiled = !h->packed && h->c.level == 4 ? n - n % TILE_INPUTS : 0;
  const int paired = r0 + ((r1 - r0) & ~1);
  for (int r = r0; tiled && r < paired; r += 2)
    for (int i = 0; i < tiled; i += TILE_INPUTS) logits_tile(h, r, i);
  for (int r = r0; r < r1; r++) {
    const int from = r < paired ? tiled : 0;
    if (h->packed) {
      const block_q4_0x8 *g = h->packed + (size_t)(r / 8) * nb;
      for (int i = 0; i < n; i++) h->out[(size_t)i * V + r] = dot_x8_f32(g, r % 8, nb, h->normed + (size_t)i * h->c.hidden, h->xsum8 + (size_t)i * nb);
    } else if (h->c.type == HEAD_Q4_0) {  // at level 4: level 0 is always packed
      const block_q4_0 *row = (const block_q4_0 *)h->table + (size_t)r * nb;
      for (int i = from; i < n; i++) h->out[(size_t)i * V + r] = dot_q4_q8(row, nb, h->xq + (size_t)i * nb);
    } else {
      const block_q8_0 *row = (const block_q8_0 *)h->table + (size_t)r * nb;
      for (int i = from; i < n; i++)
        h->out[(size_t)i * V + r] = h->c.level == 4 ? dot_q8_q8(row, nb, h->xq + (size_t)i * nb) : dot_q8_f32(row, nb, h->normed + (size_t)i * h->c.hidden);
    }
  }
  softcap_rows(h, n, r0, r1);
  int bad = 0;
  for (int i = 0; i < n; i++) bad += count_nonfinite(h->out + (size_t)i * V + r0, (size_t)(r1 - r0));
  h->bad_n[ith] = bad;
  if (h->want_max) share_argmax(h, ith, r0, r1);
}

/** The sum of a per-thread count. */
static int total(const head *h, const int *per_thread) {
  int n = 0;
  for (int t = 0; t < h->threads; t++) n += per_thread[t];
  return n;
}

/** Room for n rows of inputs; 0, or −1 when out of memory. */
static int head_logits_reserve(head *h, int n) {
  const int C = h->c.hidden;
  if (n <= h->cap) return 0;
  float *normed = realloc(h->normed, sizeof(float) * (size_t)n * C);
  if (normed) h->normed = normed;
  block_q8 *xq = realloc(h->xq, sizeof(block_q8) * (size_t)n * (C / QK));
  if (xq) h->xq = xq;
  float *xsum8 = realloc(h->xsum8, sizeof(float) * (size_t)n * (C / QK));
  if (xsum8) h->xsum8 = xsum8;
  if (!normed || !xq || !xsum8) return -1;
  h->cap = n;
  return 0;
}

KERNEL int head_logits(head *h, const float *rows, int n, float *out) {
  const int C = h->c.hidden;
  if (head_logits_reserve(h, n) != 0) return -1;
  for (int i = 0; i < n; i++) {
    rms_norm(rows + (size_t)i * C, h->norm, C, h->c.eps, h->normed + (size_t)i * C);
    prepare_input(h->normed + (size_t)i * C, C, h->c.level, h->xq + (size_t)i * (C / QK), h->xsum8 + (size_t)i * (C / QK));
  }
  h->n = n;
  h->out = out;
  pool_run(h->pool, phase_logits, h);
  pool_park(h->pool);
  return total(h, h->bad_n);
}

// Each part of each row of the logits in out [n, vocab]: its max and Σ exp(x − max), in double.
KERNEL static void phase_softmax_parts(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, parts = (V + LOGPROB_PART - 1) / LOGPROB_PART;
  for (int j = ith; j < h->n * parts; j += nth) {
    const int p = j % parts, len = V - p * LOGPROB_PART < LOGPROB_PART ? V - p * LOGPROB_PART : LOGPROB_PART;
    const float *x = h->out + (size_t)(j / parts) * V + (size_t)p * LOGPROB_PART;
    float max = -INFINITY;
    for (int k = 0; k < len; k++) max = x[k] > max ? x[k] : max;
    double sum = 0;
    for (int k = 0; k < len; k++) sum += exp((double)x[k] - max);
    h->parts[2 * (size_t)j] = max;
    h->parts[2 * (size_t)j + 1] = sum;
  }
}

KERNEL int head_log_probs(head *h, const float *rows, int n, const int32_t *pick_row, const int32_t *pick_id, int m, double *out) {
  const int V = h->c.vocab, C = h->c.hidden, parts = (V + LOGPROB_PART - 1) / LOGPROB_PART;
  const int group = n < LOGPROB_ROWS ? n : LOGPROB_ROWS;
  // Mapped, not allocated: glibc may keep a freed block of this size in its heap for the life of the process.
  const size_t bytes = sizeof(float) * (size_t)group * V;
  float *logits = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  double *part = malloc(sizeof(double) * 2 * (size_t)group * parts);
  int rc = logits == MAP_FAILED || !part ? -1 : 0;
  for (int r0 = 0; rc == 0 && r0 < n; r0 += group) {
    const int k = n - r0 < group ? n - r0 : group;
    if ((rc = head_logits(h, rows + (size_t)r0 * C, k, logits)) != 0) break;
    h->out = logits;
    h->n = k;
    h->parts = part;
    pool_run(h->pool, phase_softmax_parts, h);
    pool_park(h->pool);
    // Each row's parts joined, in order, into what log softmax subtracts: max + log Σ exp(x − max).
    double norm[LOGPROB_ROWS];
    for (int i = 0; i < k; i++) {
      const double *pp = part + 2 * (size_t)i * parts;
      double max = -INFINITY, sum = 0;
      for (int p = 0; p < parts; p++) max = pp[2 * p] > max ? pp[2 * p] : max;
      for (int p = 0; p < parts; p++) sum += pp[2 * p + 1] * exp(pp[2 * p] - max);
      norm[i] = max + log(sum);
    }
    for (int j = 0; j < m; j++) {
      const int i = pick_row[j] - r0;
      if (i >= 0 && i < k) out[j] = (double)logits[(size_t)i * V + pick_id[j]] - norm[i];
    }
  }
  if (logits != MAP_FAILED) munmap(logits, bytes);
  free(part);
  return rc;
}

// A min-heap of the `top` largest values pushed (heap[0] the smallest of them).
static void heap_push(float *heap, int *n, int top, float v) {
  int i;
  if (*n < top) {
    i = (*n)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
      heap[i] = heap[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    heap[i] = v;
    return;
  }
  if (!(v > heap[0])) return;
  i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= top) break;
    if (c + 1 < top && heap[c + 1] < heap[c]) c++;
    if (!(heap[c] < v)) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = v;
}

// The int8 estimate of rows [r0, r1), a group of eight at a time. Without `among`, also the thread's largest
// lower bounds (its heap) and the rows whose upper bound reaches the heap's least as it stands (its list):
// that least only rises, and never passes the final threshold, so the list holds every row rescoring needs
// (unless it overflows: then rescoring scans the thread's rows).
KERNEL static void phase_estimate(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, top = h->top;
  int r0, r1;
  pool_share(V, 8, ith, nth, &r0, &r1);
  h->heap_n[ith] = 0;
  if (h->among) {
    gemv_x8_q8(h->packed, h->c.hidden, h->xq, h->out, r0, r1);
    return;
  }
  float *heap = h->heaps + (size_t)ith * top;
  int *list = h->lists + (size_t)ith * CHOOSE_LIST;
  int *hn = &h->heap_n[ith], ln = 0;
  float least = -INFINITY;
  const __m256 err = _mm256_set1_ps(h->err), round = _mm256_set1_ps(h->round);
  for (int r = r0; r < r1; r += 8) {
    const int end = r + 8 < r1 ? r + 8 : r1;
    gemv_x8_q8(h->packed, h->c.hidden, h->xq, h->out, r, end);
    int low, up;
    if (end - r == 8) {
      const __m256 est = _mm256_loadu_ps(h->out + r);
      const __m256 bound = _mm256_fmadd_ps(_mm256_loadu_ps(h->wnorm + r), err, _mm256_mul_ps(_mm256_loadu_ps(h->wmag + r), round));
      const __m256 t = _mm256_set1_ps(least);
      low = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(est, bound), t, _CMP_GT_OQ));
      // Upper bounds that reach the least, and estimates that are not finite (rescored, so that they show).
      const __m256 inf = _mm256_set1_ps(INFINITY);
      const __m256 nonfinite = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), est), inf, _CMP_NLT_UQ);
      up = _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(_mm256_add_ps(est, bound), t, _CMP_NLT_UQ), nonfinite));
    } else {  // the vocabulary's last rows
      low = up = (1 << (end - r)) - 1;
    }
    for (int k = 0; up && k < 8; k++) {
      if (!(up >> k & 1)) continue;
      const float b = row_bound(h, r + k), est = h->out[r + k];
      // A non-finite estimate bounds nothing: it is rescored, never a lower bound.
      if (low >> k & 1 && est - b > least && isfinite(est)) {
        heap_push(heap, hn, top, est - b);
        if (*hn == top) least = heap[0];
      }
      if ((!(est + b < least) || !isfinite(est)) && ln >= 0) {
        if (ln < CHOOSE_LIST) list[ln++] = r + k;
        else ln = -1;
      }
    }
  }
  h->list_n[ith] = ln;
}

KERNEL static void phase_select(void *ctx, int ith, int nth) {
  head *h = ctx;
  int i0, i1;
  pool_share(h->n_among, 1, ith, nth, &i0, &i1);
  float *heap = h->heaps + (size_t)ith * h->top;
  for (int i = i0; i < i1; i++) {
    const int r = h->among[i];
    if (isfinite(h->out[r])) heap_push(heap, &h->heap_n[ith], h->top, h->out[r] - row_bound(h, r));
  }
}

/**
 * Row r exactly, as head_logits computes it (the same dot on the same inputs: the same bits), where its upper
 * bound reaches kth or its estimate is not finite (so that a NaN or infinity shows); 1 if so. *bad counts the
 * non-finite results.
 */
KERNEL static inline int rescore(head *h, int r, int *bad) {
  if (h->out[r] + row_bound(h, r) < h->kth && isfinite(h->out[r])) return 0;
  const int nb = h->c.hidden / QK;
  h->out[r] = dot_x8_f32(h->packed + (size_t)(r / 8) * nb, r % 8, nb, h->normed, h->xsum8);
  *bad += !isfinite(h->out[r]);
  return 1;
}

/** Rescores row r (rescore) and notes it in the thread's found rows while they have room. */
KERNEL static inline void rescore_noted(head *h, int r, int *found, int *n, int *bad) {
  if (!rescore(h, r, bad)) return;
  if (*n < CHOOSE_LIST) found[*n] = r;
  (*n)++;
}

// Every candidate whose exact logit may reach the top-th largest lower bound: from the thread's list, or
// its share of `among` or of the rows.
KERNEL static void phase_rescore(void *ctx, int ith, int nth) {
  head *h = ctx;
  int *found = h->found + (size_t)ith * CHOOSE_LIST;
  int n = 0, bad = 0;
  if (!h->among && h->list_n[ith] >= 0) {
    const int *list = h->lists + (size_t)ith * CHOOSE_LIST;
    for (int i = 0; i < h->list_n[ith]; i++) rescore_noted(h, list[i], found, &n, &bad);
  } else if (h->among) {
    int i0, i1;
    pool_share(h->n_among, 1, ith, nth, &i0, &i1);
    for (int i = i0; i < i1; i++) rescore_noted(h, h->among[i], found, &n, &bad);
  } else {
    int r0, r1;
    pool_share(h->c.vocab, 8, ith, nth, &r0, &r1);
    for (int r = r0; r < r1; r++) rescore_noted(h, r, found, &n, &bad);
  }
  h->exact_n[ith] = n;
  h->bad_n[ith] = bad;
}

// The whole head_logits as head_choose's answer: every row exact. Listed, the rows (of `among`) whose logit
// reaches the top-th largest of them (ties included), where they fit: a sampler then reads those instead of
// scanning the vocabulary in JavaScript, which took 0.7–1.4 ms of a 10–13 ms decode step.
static int choose_whole(head *h, const float *row, int top, const int32_t *among, int n_among, float *out, int *nonfinite,
                        int32_t *ids, int ids_cap, int *n_ids) {
  h->want_max = top == 1 && !among;
  const int V = h->c.vocab, bad = head_logits(h, row, 1, out);
  h->want_max = 0;
  if (bad < 0) return -1;
  *nonfinite = bad;
  *n_ids = -1;
  if (bad > 0 || top < 1 || top > ids_cap || top > h->heap_cap) return V;
  if (top == 1 && !among) {
    float m = -INFINITY;
    for (int t = 0; t < h->threads; t++) m = h->share_max[t] > m ? h->share_max[t] : m;
    int k = 0;
    for (int t = 0; t < h->threads; t++) {
      if (h->share_max[t] != m) continue;
      if (h->tied_n[t] > TIED_LIST || k + h->tied_n[t] > ids_cap) return V;
      memcpy(ids + k, h->tied + (size_t)t * TIED_LIST, sizeof(int32_t) * (size_t)h->tied_n[t]);
      k += h->tied_n[t];
    }
    *n_ids = k;
    return V;
  }
  // A sampler's top k, or a choice among allowed ids: the top-th largest by a heap, on this thread.
  const int n = among ? n_among : V;
  int hn = 0;
  for (int i = 0; i < n; i++) heap_push(h->heaps, &hn, top, out[among ? among[i] : i]);
  const float kth = hn < top ? -INFINITY : h->heaps[0];
  int k = 0;
  for (int i = 0; i < n; i++) {
    const int r = among ? among[i] : i;
    if (out[r] >= kth) {
      if (k == ids_cap) return V;
      ids[k++] = r;
    }
  }
  *n_ids = k;
  return V;
}

KERNEL int head_choose(head *h, const float *row, int top, const int32_t *among, int n_among, float *out, int *nonfinite, int32_t *ids, int ids_cap, int *n_ids) {
  const int C = h->c.hidden, nb = C / QK;
  if (top > 0 && top <= HEAD_CHOOSE_MAX_TOP && top > h->heap_cap) {
    float *heaps = realloc(h->heaps, sizeof(float) * (size_t)h->threads * top);
    if (!heaps) return -1;
    h->heaps = heaps;
    h->heap_cap = top;
  }
  // A softcap could round an estimate up to a top logit's value: capped heads are computed whole.
  if (!h->packed || h->c.softcap > 0 || top < 1 || top > HEAD_CHOOSE_MAX_TOP) return choose_whole(h, row, top, among, n_among, out, nonfinite, ids, ids_cap, n_ids);
  if (head_logits_reserve(h, 1) != 0) return -1;
  rms_norm(row, h->norm, C, h->c.eps, h->normed);
  quantize_q8(h->normed, C, h->xq);
  block_sums8(h->normed, C, h->xsum8);
  // ‖x − x̂‖ and ‖x‖ in double, the bound's two terms rounded up. The rounding term is three times γ of the
  // longest chain of float operations in either dot (under 6 per block per lane, plus the sums around them):
  // one for each dot, one for the estimate ± bound.
  double e2 = 0, x2 = 0;
  for (int b = 0; b < nb; b++)
    for (int j = 0; j < QK; j++) {
      const double x = h->normed[b * QK + j], e = x - (double)h->xq[b].d * h->xq[b].qs[j];
      e2 += e * e;
      x2 += x * x;
    }
  const double err = sqrt(e2);
  h->err = (float)err * (1 + 1e-6f);
  h->round = (float)(3.0 * (6 * nb + 16) * ldexp(1.0, -24) * (2 * sqrt(x2) + err)) * (1 + 1e-6f);
  if (!isfinite(h->err) || !isfinite(h->round)) return choose_whole(h, row, top, among, n_among, out, nonfinite, ids, ids_cap, n_ids);
  h->top = top;
  h->among = among;
  h->n_among = among ? n_among : 0;
  h->out = out;
  pool_run(h->pool, phase_estimate, h);
  if (among) pool_run(h->pool, phase_select, h);
  // The top largest lower bounds of all: the smallest of them is a value that the top exact logits reach.
  int n = h->heap_n[0];
  for (int t = 1; t < h->threads; t++)
    for (int i = 0; i < h->heap_n[t]; i++) heap_push(h->heaps, &n, top, h->heaps[(size_t)t * top + i]);
  h->kth = n < top ? -INFINITY : h->heaps[0];
  pool_run(h->pool, phase_rescore, h);
  pool_park(h->pool);
  *nonfinite = total(h, h->bad_n);
  const int exact = total(h, h->exact_n);
  *n_ids = -1;
  if (exact <= ids_cap) {
    int k = 0;
    for (int t = 0; t < h->threads && k >= 0; t++) {
      if (h->exact_n[t] > CHOOSE_LIST) k = -1;
      else
        for (int i = 0; i < h->exact_n[t]; i++) ids[k++] = h->found[(size_t)t * CHOOSE_LIST + i];
    }
    *n_ids = k;
  }
  return exact;
}


// Each row's cross-entropy (the rows shared among the threads; every logit finite): the largest logit and the
// first row that holds it (argmax's tie rule), log Σ exp(x − max) from float partial sums of LOSS_PART logits
// added in double, and with a gradient, the row turned into its softmax in place.
KERNEL static void phase_cross_entropy(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab;
  int i0, i1;
  pool_share(h->n, 1, ith, nth, &i0, &i1);
  for (int i = i0; i < i1; i++) {
    float *l = h->out + (size_t)i * V;
    const float top = max_of(l, V);
    int arg = 0, v;
    while (l[arg] != top) arg++;
    const __m256 m = _mm256_set1_ps(top);
    double sum = 0;
    for (int v0 = 0; v0 < V; v0 += LOSS_PART) {
      const int v1 = v0 + LOSS_PART < V ? v0 + LOSS_PART : V;
      __m256 acc = _mm256_setzero_ps();
      for (v = v0; v + 8 <= v1; v += 8) acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(l + v), m)));
      float part = hsum(acc);
      for (; v < v1; v++) part += expf(l[v] - top);
      sum += part;
    }
    const double lse = top + log(sum);
    const int label = h->labels[i];
    h->loss[i] = (float)(lse - l[label]);
    h->hit[i] = arg == label ? 1.0f : 0.0f;
    if (!h->d_rows) continue;
    const float s = (float)lse;
    const __m256 sv = _mm256_set1_ps(s);
    for (v = 0; v + 8 <= V; v += 8) _mm256_storeu_ps(l + v, exp8(_mm256_sub_ps(_mm256_loadu_ps(l + v), sv)));
    for (; v < V; v++) l[v] = expf(l[v] - s);
  }
}

/** The table as kernels.h's table_ref: the stored rows, or a Q4_0 table's repacked copy. */
static table_ref table_of(const head *h) {
  return (table_ref){h->packed ? NULL : h->table, h->packed, h->c.type == HEAD_Q8_0, h->c.hidden};
}

// The logits of the normed rows at float activations over the thread's share of the vocabulary, and how many
// are not finite.
KERNEL static void phase_loss_logits(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab;
  int r0, r1;
  pool_share(V, 8, ith, nth, &r0, &r1);
  gemm_x_table(table_of(h), h->normed, h->n, h->out, V, r0, r1, h->loss_scratch + (size_t)ith * GEMM_TABLE_SCRATCH);
  int bad = 0;
  for (int i = 0; i < h->n; i++) bad += count_nonfinite(h->out + (size_t)i * V + r0, (size_t)(r1 - r0));
  h->bad_n[ith] = bad;
}

// softmax · E into d_rows, the thread's columns (blocks of 32) over the whole vocabulary; then − E[label]: the
// gradient with respect to the normed rows, which phase_loss_rows takes back through the final norm.
KERNEL static void phase_loss_backward(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int V = h->c.vocab, C = h->c.hidden;
  int k0, k1;
  pool_share(C, QK, ith, nth, &k0, &k1);
  if (k0 >= k1) return;
  float *scratch = h->loss_scratch + (size_t)ith * GEMM_TABLE_SCRATCH;
  gemm_dy_table(table_of(h), V, h->out, V, h->n, h->d_rows, C, k0, k1, 0, scratch);
  for (int i = 0; i < h->n; i++) {
    table_rows_f32(table_of(h), h->labels[i], 1, scratch);
    float *d = h->d_rows + (size_t)i * C;
    for (int c = k0; c < k1; c++) d[c] -= scratch[c];
  }
}

// Each row's gradient back through the final norm, in place (the rows shared among the threads).
KERNEL static void phase_loss_rows(void *ctx, int ith, int nth) {
  head *h = ctx;
  const int C = h->c.hidden;
  int i0, i1;
  pool_share(h->n, 1, ith, nth, &i0, &i1);
  for (int i = i0; i < i1; i++) rms_norm_backward(h->rows + (size_t)i * C, h->norm, h->d_rows + (size_t)i * C, C, h->c.eps, h->d_rows + (size_t)i * C, 0);
}

KERNEL int head_loss(head *h, const float *rows, int n, const int32_t *labels, float *logits, float *loss, float *hit, float *d_rows) {
  const int C = h->c.hidden;
  if (h->c.softcap > 0) return -2;
  if (head_logits_reserve(h, n) != 0) return -1;
  if (!h->loss_scratch && !(h->loss_scratch = malloc(sizeof(float) * GEMM_TABLE_SCRATCH * (size_t)h->threads))) return -1;
  for (int i = 0; i < n; i++) rms_norm(rows + (size_t)i * C, h->norm, C, h->c.eps, h->normed + (size_t)i * C);
  h->n = n;
  h->out = logits;
  pool_run(h->pool, phase_loss_logits, h);
  const int bad = total(h, h->bad_n);
  if (bad != 0) {
    pool_park(h->pool);
    return bad;
  }
  h->labels = labels;
  h->loss = loss;
  h->hit = hit;
  h->d_rows = d_rows;
  pool_run(h->pool, phase_cross_entropy, h);
  if (d_rows) {
    h->rows = rows;
    pool_run(h->pool, phase_loss_backward, h);
    pool_run(h->pool, phase_loss_rows, h);
  }
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
  free(h->packed);
  free(h->wnorm);
  free(h->wmag);
  free(h->heaps);
  free(h->heap_n);
  free(h->exact_n);
  free(h->share_max);
  free(h->tied);
  free(h->tied_n);
  free(h->bad_n);
  free(h->lists);
  free(h->found);
  free(h->list_n);
  free(h->loss_scratch);
  free(h);
}

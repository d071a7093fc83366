// gemm_dy_w, the backward of a frozen 4-bit linear layer (dx = dy·W, W repacked Q4_0): first checked against a
// double-precision naive product on several shapes (odd T, M past one dequantised chunk, accumulate 0 and 1,
// [0, K) cut in two at every block edge, which must give the same bits), then timed on the 270M's layer shapes
// with T = 512 tokens on 1 and 2 threads (each its own columns, cut as pool_share cuts them, and its own
// scratch), alternately, best of 20, in GMAC/s (T·M·K per second). Exits 1 when a check fails. Not part of the
// build; compile and run by hand (T for the timings, default 512; runs to take the best of, default 20):
//   cc -O3 -mavx2 -mfma -mf16c -pthread -Inative bench/dyw-kernel.c native/kernels.c -o /tmp/dyw -lm && /tmp/dyw 512 20
#include "kernels.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

// Random W [M, K] as GGUF blocks (kept, for the reference) and repacked.
static block_q4_0x8 *random_w(int M, int K, block_q4_0 **raw) {
  const int nb = K / QK;
  block_q4_0 *w = malloc(sizeof(block_q4_0) * (size_t)M * nb);
  for (size_t i = 0; i < (size_t)M * nb; i++) {
    w[i].d = _cvtss_sh(0.002f + (rand() % 100) * 1e-4f, 0);
    for (int k = 0; k < QK / 2; k++) w[i].qs[k] = (uint8_t)rand();
  }
  block_q4_0x8 *x8 = packed_alloc(packed_blocks(M, K));
  repack_q4_0x8(w, M, K, x8, 0, M / 8);
  *raw = w;
  return x8;
}

static double w_at(const block_q4_0 *w, int K, int m, int k) {
  const block_q4_0 *b = w + (size_t)m * (K / QK) + k / QK;
  const int j = k % QK, q = j < 16 ? b->qs[j] & 15 : b->qs[j - 16] >> 4;
  return (double)_cvtsh_ss(b->d) * (q - 8);
}

typedef struct {
  const block_q4_0x8 *w;
  const float *dy;
  float *dx, *scratch;
  int M, K, T, k0, k1, accumulate;
} job;

static void run(const job *j) { gemm_dy_w(j->w, j->M, j->K, j->dy, j->M, j->T, j->dx, j->K, j->k0, j->k1, j->accumulate, j->scratch); }

// The second thread, started once and spinning between products (as the decoder's pool does within a burst),
// so that a thread's start is not timed with the short products.
static struct {
  atomic_int posted, done;
  const job *j;
} helper;

static void *helper_main(void *arg) {
  (void)arg;
  for (int seen = 0;;) {
    while (atomic_load(&helper.posted) == seen) _mm_pause();
    seen = atomic_load(&helper.posted);
    if (!helper.j) return NULL;
    run(helper.j);
    atomic_store(&helper.done, seen);
  }
}

// The columns of [0, K) cut among nth threads in multiples of 32 (pool_share's cut).
static void share(int K, int ith, int nth, int *k0, int *k1) {
  int per = (K + nth - 1) / nth;
  per = (per + QK - 1) / QK * QK;
  *k0 = ith * per < K ? ith * per : K;
  *k1 = *k0 + per < K ? *k0 + per : K;
}

// dx = dy·W (+ dx) on nth ≤ 2 threads, each its own columns and scratch.
static void product(const block_q4_0x8 *w, int M, int K, const float *dy, int T, float *dx, int accumulate, int nth, float **scratch) {
  job jobs[2];
  for (int i = 0; i < nth; i++) {
    jobs[i] = (job){w, dy, dx, scratch[i], M, K, T, 0, 0, accumulate};
    share(K, i, nth, &jobs[i].k0, &jobs[i].k1);
  }
  if (nth > 1) {
    helper.j = &jobs[1];
    atomic_fetch_add(&helper.posted, 1);
  }
  run(&jobs[0]);
  if (nth > 1)
    while (atomic_load(&helper.done) != atomic_load(&helper.posted)) _mm_pause();
}

// Max |dx − reference| over max |reference|, for one shape, accumulate 0 and 1; 0 when the cuts of [0, K) gave different bits.
static double check(int M, int K, int T, float **scratch, int *same) {
  block_q4_0 *raw;
  block_q4_0x8 *w = random_w(M, K, &raw);
  float *dy = malloc(sizeof(float) * (size_t)T * M), *dx = malloc(sizeof(float) * (size_t)T * K), *dx2 = malloc(sizeof(float) * (size_t)T * K),
        *init = malloc(sizeof(float) * (size_t)T * K);
  double *ref = calloc((size_t)T * K, sizeof(double));
  for (size_t i = 0; i < (size_t)T * M; i++) dy[i] = frand();
  for (size_t i = 0; i < (size_t)T * K; i++) init[i] = frand();
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) {
      const double wmk = w_at(raw, K, m, k);
      for (int t = 0; t < T; t++) ref[(size_t)t * K + k] += dy[(size_t)t * M + m] * wmk;
    }
  double worst = 0;
  for (int acc = 0; acc < 2; acc++) {
    for (size_t i = 0; i < (size_t)T * K; i++) dx[i] = acc ? init[i] : NAN;  // accumulate 0 must not read dx
    product(w, M, K, dy, T, dx, acc, 2, scratch);
    double err = 0, big = 0;
    for (size_t i = 0; i < (size_t)T * K; i++) {
      const double r = ref[i] + (acc ? init[i] : 0);
      const double e = fabs(dx[i] - r);
      err = isnan(e) ? INFINITY : fmax(err, e);  // fmax would drop a NaN (accumulate 0 reading dx's NaN)
      big = fmax(big, fabs(r));
    }
    worst = fmax(worst, big > 0 ? err / big : err);
    // Other cuts of [0, K): one thread on all of it, and a cut at every block edge, must give the same bits.
    for (int cut = 0; cut <= K; cut += QK) {
      for (size_t i = 0; i < (size_t)T * K; i++) dx2[i] = acc ? init[i] : NAN;
      gemm_dy_w(w, M, K, dy, M, T, dx2, K, 0, cut, acc, scratch[0]);
      gemm_dy_w(w, M, K, dy, M, T, dx2, K, cut, K, acc, scratch[1]);
      if (memcmp(dx, dx2, sizeof(float) * (size_t)T * K) != 0) *same = 0;
    }
  }
  free(raw), free(w), free(dy), free(dx), free(dx2), free(init), free(ref);
  return worst;
}

KERNEL int main(int argc, char **argv) {
  const int T = argc > 1 ? atoi(argv[1]) : 512, reps = argc > 2 ? atoi(argv[2]) : 20;
  if (!kernels_supported()) {
    fprintf(stderr, "this CPU lacks AVX2, FMA or F16C\n");
    return 1;
  }
  pthread_t th;
  pthread_create(&th, NULL, helper_main, NULL);
  srand(1);
  float *scratch[2] = {malloc(sizeof(float) * GEMM_DY_W_SCRATCH), malloc(sizeof(float) * GEMM_DY_W_SCRATCH)};
  const int checks[][3] = {{0, 64, 3}, {8, 32, 1}, {24, 64, 3}, {264, 96, 5}, {1024, 160, 130}, {640, 64, 7}, {40, 128, 2}, {2048, 64, 4}, {1032, 96, 6}, {136, 96, 130}};
  double worst = 0;
  int same = 1;
  for (size_t c = 0; c < sizeof(checks) / sizeof(checks[0]); c++) {
    const double e = check(checks[c][0], checks[c][1], checks[c][2], scratch, &same);
    printf("check M %4d K %4d T %3d: max error %.2e (of max |dx|)\n", checks[c][0], checks[c][1], checks[c][2], e);
    worst = fmax(worst, e);
  }
  printf("max error %.2e (%s), cuts of [0, K): %s\n\n", worst, worst < 1e-5 ? "ok" : "TOO LARGE", same ? "same bits" : "DIFFERENT BITS");

  const int shapes[][2] = {{1024, 640}, {256, 640}, {640, 1024}, {2048, 640}, {640, 2048}};
  printf("T = %d, GEMM_DY_W_SCRATCH %d floats; GMAC/s, best of %d\n", T, GEMM_DY_W_SCRATCH, reps);
  for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
    const int M = shapes[s][0], K = shapes[s][1];
    block_q4_0 *raw;
    block_q4_0x8 *w = random_w(M, K, &raw);
    float *dy = malloc(sizeof(float) * (size_t)T * M), *dx = malloc(sizeof(float) * (size_t)T * K);
    for (size_t i = 0; i < (size_t)T * M; i++) dy[i] = frand();
    // 1 and 2 threads alternately, so that a slow spell of the machine slows both.
    double best[2] = {1e9, 1e9};
    for (int it = 0; it < reps; it++)
      for (int nth = 1; nth <= 2; nth++) {
        const double t0 = now();
        product(w, M, K, dy, T, dx, 0, nth, scratch);
        best[nth - 1] = fmin(best[nth - 1], now() - t0);
      }
    printf("M %4d K %4d:", M, K);
    for (int nth = 1; nth <= 2; nth++)
      printf("  %d thread%s %5.1f GMAC/s (%.2f ms)", nth, nth > 1 ? "s" : " ", (double)T * M * K / best[nth - 1] * 1e-9, best[nth - 1] * 1e3);
    printf("\n");
    free(raw), free(w), free(dy), free(dx);
  }
  helper.j = NULL;
  atomic_fetch_add(&helper.posted, 1);
  pthread_join(th, NULL);
  free(scratch[0]), free(scratch[1]);
  return worst < 1e-5 && same ? 0 : 1;
}

// The prefill's Q4_0 × int8 matrix products (gemm_x8_q8: a group of eight repacked rows unpacked once, then
// met by every input) against one matrix-vector product per input (gemv_x8_q8), on the 270M's layer shapes
// with random weights and T inputs, both with the same thread team, alternating, best of 10; the outputs
// must agree bit for bit. Not part of the build; compile and run by hand (threads, default 2; T, default 256):
//   cc -O3 -pthread -Inative bench/gemm-kernels.c native/kernels.c native/pool.c -lm -o /tmp/gemm && /tmp/gemm 2 256
#include "kernels.h"
#include "pool.h"
#include "kernel-shapes.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct {
  const block_q4_0x8 *packed;
  const block_q8 *xq;
  float *y;
  int n, K, T, gemm;
} job;

KERNEL static void run(void *ctx, int ith, int nth) {
  const job *j = ctx;
  int r0, r1;
  pool_share(j->n, QK, ith, nth, &r0, &r1);  // as the decoder shares rows
  if (j->gemm) gemm_x8_q8(j->packed, j->K, j->xq, j->T, j->y, j->n, r0, r1);
  else
    for (int t = 0; t < j->T; t++) gemv_x8_q8(j->packed, j->K, j->xq + (size_t)t * (j->K / QK), j->y + (size_t)t * j->n, r0, r1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

KERNEL int main(int argc, char **argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2, T = argc > 2 ? atoi(argv[2]) : 256;
  if (!kernels_supported()) {
    fprintf(stderr, "this CPU lacks AVX2, FMA or F16C\n");
    return 1;
  }
  pool *p = pool_create(threads);
  srand(1);
  printf("%d threads, %d inputs; ms per product, best of 10\n", threads, T);
  double total[2] = {0, 0};
  for (size_t s = 0; s < LAYER_SHAPES; s++) {
    const shape *sh = &SHAPES[s];
    const int nb = sh->K / QK;
    block_q4_0 *w = malloc(sizeof(block_q4_0) * (size_t)sh->rows * nb);
    block_q4_0x8 *x8 = malloc(sizeof(block_q4_0x8) * (size_t)sh->rows / 8 * nb);
    float *x = malloc(sizeof(float) * sh->K);
    float *y[2] = {malloc(sizeof(float) * sh->rows * (size_t)T), malloc(sizeof(float) * sh->rows * (size_t)T)};
    block_q8 *xq = malloc(sizeof(block_q8) * nb * (size_t)T);
    for (size_t i = 0; i < (size_t)sh->rows * nb; i++) {
      w[i].d = _cvtss_sh(0.002f + (rand() % 100) * 1e-4f, 0);
      for (int k = 0; k < QK / 2; k++) w[i].qs[k] = (uint8_t)rand();
    }
    repack_q4_0x8(w, sh->rows, sh->K, x8, 0, sh->rows / 8);
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < sh->K; i++) x[i] = (float)rand() / RAND_MAX * 4 - 2;
      quantize_q8(x, sh->K, xq + (size_t)t * nb);
    }
    double best[2] = {1e9, 1e9};
    for (int it = 0; it < 10; it++)
      for (int v = 0; v < 2; v++) {
        job j = {x8, xq, y[v], sh->rows, sh->K, T, v};
        const double t0 = now();
        pool_run(p, run, &j);
        best[v] = fmin(best[v], now() - t0);
      }
    const int same = memcmp(y[0], y[1], sizeof(float) * sh->rows * (size_t)T) == 0;
    const double macs = (double)sh->rows * sh->K * T;
    printf("%-26s gemv %.2f  gemm %.2f ms  (%.2fx; %.1f GMAC/s)  %s\n", sh->name, best[0] * 1e3, best[1] * 1e3, best[0] / best[1],
           macs / best[1] * 1e-9, same ? "same bits" : "DIFFERENT");
    for (int v = 0; v < 2; v++) total[v] += best[v] * sh->count;
    free(w), free(x8), free(x), free(y[0]), free(y[1]), free(xq);
  }
  printf("per token of %d: gemv %.3f  gemm %.3f ms (%.2fx)\n", T, total[0] * 1e3 / T, total[1] * 1e3 / T, total[0] / total[1]);
  pool_destroy(p);
  return 0;
}

// The decoder's Q4_0 × int8 matrix-vector product in GGUF's row layout (dot_q4_q8, one row at a time) against
// the 8-row repacked layout the decoder keeps (gemv_x8_q8), on the 270M's shapes with random weights, both
// with the same thread team, alternating, best of 30: the measurement behind repack_q4_0x8. Not part of the
// build; compile and run by hand (threads, default 2):
//   cc -O3 -pthread -Inative bench/gemv-kernels.c native/kernels.c native/pool.c -lm -o /tmp/gemv && /tmp/gemv 2
#include "kernels.h"
#include "pool.h"
#include "kernel-shapes.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct {
  const block_q4_0 *rows;
  const block_q4_0x8 *packed;
  const block_q8 *xq;
  float *y;
  int n, K, x8;
} job;

KERNEL static void run(void *ctx, int ith, int nth) {
  const job *j = ctx;
  int r0, r1;
  pool_share(j->n, QK, ith, nth, &r0, &r1);  // as the decoder shares rows
  if (j->x8) gemv_x8_q8(j->packed, j->K, j->xq, j->y, r0, r1);
  else
    for (int r = r0; r < r1; r++) j->y[r] = dot_q4_q8(j->rows + (size_t)r * (j->K / QK), j->K / QK, j->xq);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

KERNEL int main(int argc, char **argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  if (!kernels_supported()) {
    fprintf(stderr, "this CPU lacks AVX2, FMA or F16C\n");
    return 1;
  }
  pool *p = pool_create(threads);
  srand(1);
  printf("%d threads; ms per matrix-vector product, best of 30\n", threads);
  for (size_t s = 0; s < sizeof(SHAPES) / sizeof(SHAPES[0]); s++) {
    const shape *sh = &SHAPES[s];
    const int nb = sh->K / QK;
    block_q4_0 *w = malloc(sizeof(block_q4_0) * (size_t)sh->rows * nb);
    block_q4_0x8 *x8 = malloc(sizeof(block_q4_0x8) * (size_t)sh->rows / 8 * nb);
    float *x = malloc(sizeof(float) * sh->K), *y0 = malloc(sizeof(float) * sh->rows), *y1 = malloc(sizeof(float) * sh->rows);
    block_q8 *xq = malloc(sizeof(block_q8) * nb);
    for (size_t i = 0; i < (size_t)sh->rows * nb; i++) {
      w[i].d = _cvtss_sh(0.002f + (rand() % 100) * 1e-4f, 0);
      for (int k = 0; k < QK / 2; k++) w[i].qs[k] = (uint8_t)rand();
    }
    repack_q4_0x8(w, sh->rows, sh->K, x8, 0, sh->rows / 8);
    for (int i = 0; i < sh->K; i++) x[i] = (float)rand() / RAND_MAX * 4 - 2;
    quantize_q8(x, sh->K, xq);
    double best[2] = {1e9, 1e9};
    for (int it = 0; it < 30; it++)
      for (int v = 0; v < 2; v++) {
        job j = {w, x8, xq, v ? y1 : y0, sh->rows, sh->K, v};
        const double t = now();
        pool_run(p, run, &j);
        best[v] = fmin(best[v], now() - t);
      }
    double diff = 0, mag = 0;
    for (int r = 0; r < sh->rows; r++) diff = fmax(diff, fabs(y0[r] - y1[r])), mag = fmax(mag, fabs(y0[r]));
    printf("%-26s rows %.3f  x8 %.3f  (%.2fx; per token %.2f -> %.2f ms)  max|diff| %.1e of %.1e\n", sh->name, best[0] * 1e3, best[1] * 1e3,
           best[0] / best[1], best[0] * 1e3 * sh->count, best[1] * 1e3 * sh->count, diff, mag);
    free(w), free(x8), free(x), free(y0), free(y1), free(xq);
  }
  pool_destroy(p);
  return 0;
}

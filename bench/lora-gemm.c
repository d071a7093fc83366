// gemm_add_f32 (the LoRA products and attention's backward) on the shapes one training run of the 270M gives it
// (120 tokens a thread, rank 16): GFLOP/s, best of 20, one thread; with two builds of kernels.c the outputs must
// agree bit for bit. Not part of the build; compile and run by hand, e.g. against the previous commit's kernels:
//   git show HEAD~1:native/kernels.c > /tmp/old_kernels.c
//   cc -O3 -pthread -Inative bench/lora-gemm.c native/kernels.c -lm -o /tmp/lora-new && /tmp/lora-new > /tmp/new.txt
//   cc -O3 -pthread -Inative bench/lora-gemm.c /tmp/old_kernels.c -lm -o /tmp/lora-old && /tmp/lora-old > /tmp/old.txt
// Each line ends with a checksum of the output's bits: the two files' checksums must be equal.
#include "kernels.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  // {M, N, K, what}: t = x·aᵀ, dt = dy·b, d b's band, dx += dt·a, y += t·bᵀ, attention's S = q·kᵀ and d q = dS·k.
  const struct { int M, N, K; const char *what; } shapes[] = {
    {120, 16, 640, "a·x (hidden in)"},    {120, 16, 2048, "a·x (down in)"},  {120, 16, 4096, "dy·b (gate|up out)"},
    {120, 16, 1024, "dy·b (q out)"},      {16, 512, 120, "d b band"},         {120, 320, 16, "dx += dt·a"},
    {120, 1024, 16, "y += t·bᵀ (q)"},    {32, 120, 256, "attention S"},      {32, 256, 120, "attention d q"},
  };
  srand(1);
  for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
    const int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < K * N; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    double best = 1e9;
    for (int r = 0; r < 20; r++) {
      memset(c, 0, sizeof(float) * M * N);
      const double t = now();
      for (int rep = 0; rep < 20; rep++) gemm_add_f32(c, N, a, K, b, N, M, N, K);
      const double dt = (now() - t) / 20;
      best = dt < best ? dt : best;
    }
    memset(c, 0, sizeof(float) * M * N);
    gemm_add_f32(c, N, a, K, b, N, M, N, K);
    uint64_t sum = 0;
    for (int i = 0; i < M * N; i++) {
      uint32_t u;
      memcpy(&u, c + i, 4);
      sum = sum * 1000003 + u;
    }
    printf("%-22s %4d x %4d x %4d: %6.1f GFLOP/s  bits %016llx\n", shapes[s].what, M, N, K, 2.0 * M * N * K / best * 1e-9, (unsigned long long)sum);
    free(a), free(b), free(c);
  }
  return 0;
}

// Memory read bandwidth of this machine with 1..N threads (AVX2 loads over 256 MB, 5 passes, best of 3):
// the ceiling for decode, which reads every weight once per token (bench/runtimeProfile.ts shows the LM
// head's MatMulNBits running near it). Not part of the build; compile and run by hand:
//   gcc -O2 -mavx2 -pthread bench/membw.c -o /tmp/membw && /tmp/membw 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES (256u << 20)
#define PASSES 5

static unsigned char *buf;
static int threads;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
  size_t id = (size_t)arg, per = BYTES / threads;
  __m256i acc = _mm256_setzero_si256();
  for (int r = 0; r < PASSES; r++)
    for (size_t i = id * per; i < (id + 1) * per; i += 64) {
      acc = _mm256_xor_si256(acc, _mm256_load_si256((const void *)(buf + i)));
      acc = _mm256_xor_si256(acc, _mm256_load_si256((const void *)(buf + i + 32)));
    }
  // The result is returned so that the loads are not optimised away.
  return (void *)(long)_mm256_extract_epi32(acc, 0);
}

int main(int argc, char **argv) {
  int max = argc > 1 ? atoi(argv[1]) : 2;
  if (max < 1 || max > 64) max = 2;
  buf = aligned_alloc(64, BYTES);
  if (!buf) return 1;
  memset(buf, 1, BYTES);
  for (threads = 1; threads <= max; threads++) {
    double best = 0;
    for (int k = 0; k < 3; k++) {
      pthread_t th[64];
      double t = now();
      for (long i = 0; i < threads; i++) pthread_create(&th[i], 0, reader, (void *)i);
      for (int i = 0; i < threads; i++) pthread_join(th[i], 0);
      double gbs = (double)PASSES * BYTES / (now() - t) / 1e9;
      if (gbs > best) best = gbs;
    }
    printf("%d thread%s: %.1f GB/s\n", threads, threads > 1 ? "s" : "", best);
  }
  return 0;
}

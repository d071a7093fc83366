#include "kernels.h"
#include <immintrin.h>
#include <math.h>

int kernels_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

KERNEL void gemv_q4_f32(const block_q4_0 *w, int K, const float *x, const float *xsum8, float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++) y[r] = dot_q4_f32(w + (size_t)r * (K / QK), K / QK, x, xsum8);
}

KERNEL void block_sums8(const float *x, int K, float *xsum8) {
  for (int b = 0; b < K / QK; b++) {
    float s = 0;
    for (int i = 0; i < QK; i++) s += x[b * QK + i];
    xsum8[b] = 8 * s;
  }
}

KERNEL void gemv_q4_q8(const block_q4_0 *w, int K, const block_q8 *xq, float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++) y[r] = dot_q4_q8(w + (size_t)r * (K / QK), K / QK, xq);
}

KERNEL void prepare_input(const float *x, int K, int level, block_q8 *xq, float *xsum8) {
  if (level == 4) quantize_q8(x, K, xq);
  else block_sums8(x, K, xsum8);
}

KERNEL void quantize_q8(const float *x, int K, block_q8 *out) {
  for (int b = 0; b < K / QK; b++) {
    const float *xb = x + b * QK;
    float amax = 0;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = d;
    int sum = 0;
    for (int i = 0; i < QK; i++) sum += out[b].qs[i] = (int8_t)lrintf(xb[i] * id);
    out[b].sum8 = 8 * d * (float)sum;
  }
}

KERNEL float dot_f32(const float *a, const float *b, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

KERNEL void axpy_f32(float a, const float *x, float *y, int n) {
  const __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

KERNEL void rms_norm(const float *x, const float *w, int n, float eps, float *out) {
  // The sum of squares in double: rounding-free for the widths here, whatever the summation order.
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  const float r = (float)(1.0 / sqrt(ss / n + eps));
  for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

KERNEL void rope_head(float *x, const float *cos, const float *sin, int D) {
  const int h = D / 2;
  for (int i = 0; i < h; i++) {
    const float x1 = x[i], x2 = x[i + h];
    x[i] = x1 * cos[i] - x2 * sin[i];
    x[i + h] = x2 * cos[i] + x1 * sin[i];
  }
}

KERNEL void gelu_tanh_mul(const float *g, const float *u, float *out, int n) {
  const float c = 0.7978845608028654f;  // sqrt(2/pi)
  for (int i = 0; i < n; i++) {
    const float v = g[i];
    out[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v))) * u[i];
  }
}

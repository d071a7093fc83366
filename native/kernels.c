#include "kernels.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <immintrin.h>
#include <math.h>

int kernels_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

KERNEL void block_sums8(const float *x, int K, float *xsum8) {
  for (int b = 0; b < K / QK; b++) {
    float s = 0;
    for (int i = 0; i < QK; i++) s += x[b * QK + i];
    xsum8[b] = 8 * s;
  }
}

KERNEL void prepare_input(const float *x, int K, int level, block_q8 *xq, float *xsum8) {
  if (level == 4) quantize_q8(x, K, xq);
  else block_sums8(x, K, xsum8);
}

KERNEL void quantize_q8(const float *x, int K, block_q8 *out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int b = 0; b < K / QK; b++) {
    const float *xb = x + b * QK;
    const __m256 v[4] = {_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8), _mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)};
    // max|x| of the block (max is exact, so the order does not matter), as fmaxf over the elements would give.
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = d;
    // x·id rounded to the nearest integer, ties to even: lrintf's rounding in the default mode.
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], vid));
    // int32 → int8, in order: packs interleave 128-bit lanes, the permute puts them back.
    const __m256i q16a = _mm256_packs_epi32(q[0], q[1]), q16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out[b].qs, q8);
    out[b].sum8 = 8 * d * (float)hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
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

block_q4_0x8 *packed_alloc(size_t blocks) {
  const size_t bytes = sizeof(block_q4_0x8) * blocks;
  void *p = NULL;
  // 2 MB pages: a tenth of the page faults while repacking, and fewer TLB misses while streaming the
  // weights each token.
  if (posix_memalign(&p, 2u << 20, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

void repack_q4_0x8(const block_q4_0 *w, int rows, int K, block_q4_0x8 *out, int g0, int g1) {
  const int nb = K / QK;
  for (int g = g0; g < g1; g++)
    for (int b = 0; b < nb; b++) {
      block_q4_0x8 *o = out + (size_t)g * nb + b;
      for (int k = 0; k < 8; k++) {
        const int r = g * 8 + k;
        if (r < rows) {
          o->d[k] = w[(size_t)r * nb + b].d;
          memcpy(o->qs[k], w[(size_t)r * nb + b].qs, QK / 2);
        } else {
          o->d[k] = 0;
          memset(o->qs[k], 0, QK / 2);
        }
      }
    }
}

// Eight rows of group w [nb blocks] times xq into y[0…8). Each row's block sum is an exact int32 (a hadd
// tree puts row k in lane k), so a block is scaled once for all eight rows.
KERNEL static void group_q8(const block_q4_0x8 *w, int nb, const block_q8 *xq, float *y) {
  __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m256i p[8];
    for (int k = 0; k < 8; k++) p[k] = block_q4_q8(w[b].qs[k], xq[b].qs);
    const __m256i s0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i s1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    // s0's lanes are rows 0…3 from each 128-bit half, s1's rows 4…7: add the halves.
    const __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(s0, s1, 0x20), _mm256_permute2x128_si256(s0, s1, 0x31));
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].d));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, _mm256_set1_ps(xq[b].d)), acc);
    corr = _mm256_fmadd_ps(d, _mm256_set1_ps(xq[b].sum8), corr);
  }
  _mm256_storeu_ps(y, _mm256_sub_ps(acc, corr));
}

KERNEL void gemv_x8_q8(const block_q4_0x8 *w, int K, const block_q8 *xq, float *y, int r0, int r1) {
  const int nb = K / QK;
  for (int g = r0 / 8; g * 8 < r1; g++) {
    if (g * 8 >= r0 && g * 8 + 8 <= r1) {
      group_q8(w + (size_t)g * nb, nb, xq, y + g * 8);
    } else {  // a group cut by the range's edges: only its rows inside are written
      float t[8];
      group_q8(w + (size_t)g * nb, nb, xq, t);
      for (int k = 0; k < 8; k++)
        if (g * 8 + k >= r0 && g * 8 + k < r1) y[g * 8 + k] = t[k];
    }
  }
}

KERNEL void gemv_x8_f32(const block_q4_0x8 *w, int K, const float *x, const float *xsum8, float *y, int r0, int r1) {
  const int nb = K / QK;
  for (int r = r0; r < r1; r++) y[r] = dot_x8_f32(w + (size_t)(r / 8) * nb, r % 8, nb, x, xsum8);
}

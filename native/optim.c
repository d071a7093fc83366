#include "optim.h"
#include <immintrin.h>
#include <math.h>

// AVX2 without FMA (whatever -march says), so that no multiply and add is contracted into one rounding: the
// JavaScript rounds each. The binding calls these only where kernels_supported.
#define OPTIM __attribute__((target("avx2,no-fma")))
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/** Element j of adamw_update, the scalar form of the vector loop (the tail, and its reference). */
OPTIM static inline void adamw_one(float *p, const float *g, float *m, float *v, size_t j, const adamw_scalars *s) {
  const float pj = p[j] * s->decay, gj = g[j];
  const float mj = m[j] + s->w1 * (gj - m[j]);                 // exp_avg.lerp_(grad, 1 - beta1)
  const float vj = v[j] * s->b2 + s->w2 * gj * gj;             // exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2)
  const float denom = sqrtf(vj) / s->bc2_sqrt + s->eps;        // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
  p[j] = pj + s->neg_step * mj / denom;                        // param.addcdiv_(exp_avg, denom, -step_size)
  m[j] = mj;
  v[j] = vj;
}

OPTIM void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_scalars *s) {
  const __m256 decay = _mm256_set1_ps(s->decay), w1 = _mm256_set1_ps(s->w1), b2 = _mm256_set1_ps(s->b2), w2 = _mm256_set1_ps(s->w2);
  const __m256 neg_step = _mm256_set1_ps(s->neg_step), bc2_sqrt = _mm256_set1_ps(s->bc2_sqrt), eps = _mm256_set1_ps(s->eps);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 pj = _mm256_mul_ps(_mm256_loadu_ps(p + j), decay), gj = _mm256_loadu_ps(g + j), m0 = _mm256_loadu_ps(m + j);
    const __m256 mj = _mm256_add_ps(m0, _mm256_mul_ps(w1, _mm256_sub_ps(gj, m0)));
    const __m256 vj = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + j), b2), _mm256_mul_ps(_mm256_mul_ps(w2, gj), gj));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vj), bc2_sqrt), eps);
    _mm256_storeu_ps(p + j, _mm256_add_ps(pj, _mm256_div_ps(_mm256_mul_ps(neg_step, mj), denom)));
    _mm256_storeu_ps(m + j, mj);
    _mm256_storeu_ps(v + j, vj);
  }
  for (; j < n; j++) adamw_one(p, g, m, v, j, s);
}

double grad_sum_squares(const float *g, size_t n) {
  double s = 0;
  for (size_t j = 0; j < n; j++) s += (double)g[j] * g[j];
  return s;
}

OPTIM void grad_scale(float *g, size_t n, float coef) {
  const __m256 c = _mm256_set1_ps(coef);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(g + j, _mm256_mul_ps(_mm256_loadu_ps(g + j), c));
  for (; j < n; j++) g[j] *= coef;
}

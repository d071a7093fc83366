#include "kernels.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <immintrin.h>
#include <math.h>

#define VNNI512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

int kernels_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

int kernels_vnni512(void) {
  static int known = -1;
  if (known < 0) {
    __builtin_cpu_init();
    known = kernels_supported() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512vnni") && !getenv("GEMMA_TUNE_NO_AVX512");
  }
  return known;
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
  // The sum of squares in double (each square exact), four lanes at a time.
  __m256d acc = _mm256_setzero_pd();
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    acc = _mm256_fmadd_pd(v, v, acc);
  }
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
  double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  for (; i < n; i++) ss += (double)x[i] * x[i];
  const float r = (float)(1.0 / sqrt(ss / n + eps));
  for (i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

void transpose_f32(const float *a, int lda, int rows, int cols, float *out) {
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) out[(size_t)j * rows + i] = a[(size_t)i * lda + j];
}

KERNEL void rms_norm_backward(const float *x, const float *w, const float *dy, int n, float eps, float *out, int add) {
  double ss = 0, gx = 0;
  for (int i = 0; i < n; i++) {
    ss += (double)x[i] * x[i];
    gx += (double)w[i] * dy[i] * x[i];
  }
  const float r = (float)(1.0 / sqrt(ss / n + eps));
  const float k = (float)(gx * r * r * r / n);
  for (int i = 0; i < n; i++) {
    const float v = r * w[i] * dy[i] - x[i] * k;
    out[i] = add ? out[i] + v : v;
  }
}

KERNEL void rope_head(float *x, const float *cos, const float *sin, int D) {
  const int h = D / 2;
  for (int i = 0; i < h; i++) {
    const float x1 = x[i], x2 = x[i + h];
    x[i] = x1 * cos[i] - x2 * sin[i];
    x[i + h] = x2 * cos[i] + x1 * sin[i];
  }
}

// gelu_tanh(v)·u for 8 lanes: 0.5·v·(1 + tanh z) = v / (1 + e^{−2z}), which keeps its relative precision
// where tanh z is near −1.
KERNEL static inline __m256 gelu_tanh_mul8(__m256 v, __m256 u) {
  const __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), _mm256_mul_ps(v, v), v));
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), z));
  return _mm256_div_ps(_mm256_mul_ps(v, u), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

KERNEL void gelu_tanh_mul(const float *g, const float *u, float *out, int n) {
  // libm's tanhf was a sixth of a prefill's time.
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu_tanh_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    float gb[8] = {0}, ub[8] = {0}, ob[8];
    memcpy(gb, g + i, sizeof(float) * (size_t)(n - i));
    memcpy(ub, u + i, sizeof(float) * (size_t)(n - i));
    _mm256_storeu_ps(ob, gelu_tanh_mul8(_mm256_loadu_ps(gb), _mm256_loadu_ps(ub)));
    memcpy(out + i, ob, sizeof(float) * (size_t)(n - i));
  }
}

KERNEL void softmax(float *s, int n) {
  __m256 mx8 = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(s + i));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx8), _mm256_extractf128_ps(mx8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  float mx = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
  for (int j = i; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 sum8 = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmx));
    _mm256_storeu_ps(s + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float sum = hsum(sum8);
  for (; i < n; i++) sum += (s[i] = expf(s[i] - mx));
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), inv));
  for (; i < n; i++) s[i] *= 1.0f / sum;
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
        for (int c = 0; c < 4; c++) {
          if (r < rows) memcpy(o->qs[c][k], w[(size_t)r * nb + b].qs + 4 * c, 4);
          else memset(o->qs[c][k], 0, 4);
        }
        o->d[k] = r < rows ? w[(size_t)r * nb + b].d : 0;
      }
    }
}

// Eight rows of group w [nb blocks] times xq into y[0…8). Each row's block sum is an exact int32 in its own
// lane (a maddubs pair is at most 2·15·127 = 3810, so eight of them add in int16 without overflow), so a
// block is scaled once for all eight rows.
KERNEL static void group_q8(const block_q4_0x8 *w, int nb, const block_q8 *xq, float *y) {
  __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m256i s = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      const __m256i v = _mm256_loadu_si256((const __m256i *)w[b].qs[c]);
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(low_codes(v), _mm256_set1_epi32(*(const int32_t *)(xq[b].qs + 4 * c))));
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(high_codes(v), _mm256_set1_epi32(*(const int32_t *)(xq[b].qs + 16 + 4 * c))));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].d));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1))), _mm256_mul_ps(d, _mm256_set1_ps(xq[b].d)), acc);
    corr = _mm256_fmadd_ps(d, _mm256_set1_ps(xq[b].sum8), corr);
  }
  _mm256_storeu_ps(y, _mm256_sub_ps(acc, corr));
}

// A group's blocks unpacked for many inputs: per block, 8 vectors, vector 2c + h holding in lane k row k's
// codes (0…15) of elements 16h + 4c … 16h + 4c + 3, and the 8 rows' scales as floats; group_q8 does this
// for every input, gemm_x8_q8 once for all of them.
KERNEL static void unpack_group(const block_q4_0x8 *w, int nb, __m256i *codes, __m256 *scales) {
  for (int b = 0; b < nb; b++) {
    for (int c = 0; c < 4; c++) {
      const __m256i v = _mm256_loadu_si256((const __m256i *)w[b].qs[c]);
      codes[8 * b + 2 * c] = low_codes(v);
      codes[8 * b + 2 * c + 1] = high_codes(v);
    }
    scales[b] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w[b].d));
  }
}

// Eight rows (unpacked) times input xq into y[0…8): group_q8's exact int32 sums (a maddubs pair is at most
// 2·15·127 = 3810, so eight of them add in int16 without overflow), then its scalings in its order, so the
// same bits.
KERNEL static void unpacked_q8(const __m256i *codes, const __m256 *scales, int nb, const block_q8 *xq, float *y) {
  __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m256i sum = _mm256_setzero_si256();
    for (int v = 0; v < 8; v++) {
      // Vector 2c + h holds elements 16h + 4c … 16h + 4c + 3 of each row.
      const int at = (v & 1) * 16 + (v >> 1) * 4;
      sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(_mm256_load_si256(codes + 8 * b + v), _mm256_set1_epi32(*(const int32_t *)(xq[b].qs + at))));
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(sum, _mm256_set1_epi16(1))), _mm256_mul_ps(scales[b], _mm256_set1_ps(xq[b].d)), acc);
  }
  for (int b = 0; b < nb; b++) corr = _mm256_fmadd_ps(scales[b], _mm256_set1_ps(xq[b].sum8), corr);
  _mm256_storeu_ps(y, _mm256_sub_ps(acc, corr));
}

// unpacked_q8 for two inputs and two adjacent groups at once (16 rows): each code vector loaded serves two
// inputs and each broadcast two groups, half the loads per product that bound the one-by-one kernel.
KERNEL static void unpacked_q8_2x2(const __m256i *ca, const __m256i *cb, const __m256 *da, const __m256 *db, int nb, const block_q8 *x0,
                                   const block_q8 *x1, float *y0, float *y1) {
  const __m256i one = _mm256_set1_epi16(1);
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;  // [input][group]
  for (int b = 0; b < nb; b++) {
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
    for (int v = 0; v < 8; v++) {
      // Vector 2c + h holds elements 16h + 4c … 16h + 4c + 3 of each row.
      const int at = (v & 1) * 16 + (v >> 1) * 4;
      const __m256i b0 = _mm256_set1_epi32(*(const int32_t *)(x0[b].qs + at)), b1 = _mm256_set1_epi32(*(const int32_t *)(x1[b].qs + at));
      const __m256i wa = _mm256_load_si256(ca + 8 * b + v), wb = _mm256_load_si256(cb + 8 * b + v);
      s00 = _mm256_add_epi16(s00, _mm256_maddubs_epi16(wa, b0));
      s10 = _mm256_add_epi16(s10, _mm256_maddubs_epi16(wa, b1));
      s01 = _mm256_add_epi16(s01, _mm256_maddubs_epi16(wb, b0));
      s11 = _mm256_add_epi16(s11, _mm256_maddubs_epi16(wb, b1));
      // Keeps the compiler from re-associating the sums into a tree that spills registers.
      __asm__("" : "+x"(s00), "+x"(s01), "+x"(s10), "+x"(s11));
    }
    const __m256 d0 = _mm256_set1_ps(x0[b].d), d1 = _mm256_set1_ps(x1[b].d);
    a00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s00, one)), _mm256_mul_ps(da[b], d0), a00);
    a01 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s01, one)), _mm256_mul_ps(db[b], d0), a01);
    a10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s10, one)), _mm256_mul_ps(da[b], d1), a10);
    a11 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s11, one)), _mm256_mul_ps(db[b], d1), a11);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
  for (int b = 0; b < nb; b++) {
    const __m256 e0 = _mm256_set1_ps(x0[b].sum8), e1 = _mm256_set1_ps(x1[b].sum8);
    c00 = _mm256_fmadd_ps(da[b], e0, c00);
    c01 = _mm256_fmadd_ps(db[b], e0, c01);
    c10 = _mm256_fmadd_ps(da[b], e1, c10);
    c11 = _mm256_fmadd_ps(db[b], e1, c11);
  }
  _mm256_storeu_ps(y0, _mm256_sub_ps(a00, c00));
  _mm256_storeu_ps(y0 + 8, _mm256_sub_ps(a01, c01));
  _mm256_storeu_ps(y1, _mm256_sub_ps(a10, c10));
  _mm256_storeu_ps(y1 + 8, _mm256_sub_ps(a11, c11));
}

// Two adjacent groups (16 rows) unpacked as unpack_group does, side by side in 512-bit vectors: lanes 0…7
// the first group's rows, 8…15 the second's.
VNNI512 static void unpack_pair(const block_q4_0x8 *wa, int nb, __m512i *codes, __m512 *scales) {
  const block_q4_0x8 *wb = wa + nb;
  for (int b = 0; b < nb; b++) {
    for (int c = 0; c < 4; c++) {
      const __m256i va = _mm256_loadu_si256((const __m256i *)wa[b].qs[c]), vb = _mm256_loadu_si256((const __m256i *)wb[b].qs[c]);
      codes[8 * b + 2 * c] = _mm512_inserti64x4(_mm512_castsi256_si512(low_codes(va)), low_codes(vb), 1);
      codes[8 * b + 2 * c + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(high_codes(va)), high_codes(vb), 1);
    }
    const __m256 da = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wa[b].d)), db = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wb[b].d));
    scales[b] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_castps_si256(da)), _mm256_castps_si256(db), 1));
  }
}

// Sixteen rows (unpack_pair's) times N ≤ 4 inputs xq[i·nb …] into y[i·ldy …+16): each row's exact int32 sum
// (vpdpbusd), then group_q8's scalings in its order, so group_q8's bits. Inlined with N constant.
__attribute__((always_inline)) VNNI512 static inline void pair_q8(const __m512i *codes, const __m512 *scales, int nb, const block_q8 *xq, const int N, float *y, int ldy) {
  __m512 acc[4], corr[4];
  for (int i = 0; i < N; i++) acc[i] = corr[i] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m512i sum[4];
    for (int i = 0; i < N; i++) sum[i] = _mm512_setzero_si512();
    for (int v = 0; v < 8; v++) {
      const int at = (v & 1) * 16 + (v >> 1) * 4;
      const __m512i w = _mm512_load_si512(codes + 8 * b + v);
      for (int i = 0; i < N; i++) sum[i] = _mm512_dpbusd_epi32(sum[i], w, _mm512_set1_epi32(*(const int32_t *)(xq[(size_t)i * nb + b].qs + at)));
    }
    for (int i = 0; i < N; i++)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[i]), _mm512_mul_ps(scales[b], _mm512_set1_ps(xq[(size_t)i * nb + b].d)), acc[i]);
  }
  for (int b = 0; b < nb; b++)
    for (int i = 0; i < N; i++) corr[i] = _mm512_fmadd_ps(scales[b], _mm512_set1_ps(xq[(size_t)i * nb + b].sum8), corr[i]);
  for (int i = 0; i < N; i++) _mm512_storeu_ps(y + (size_t)i * ldy, _mm512_sub_ps(acc[i], corr[i]));
}

// gemm_x8_q8's pairs of whole groups with AVX-512 VNNI: inputs four at a time.
VNNI512 static void pair_gemm_512(const block_q4_0x8 *wg, int nb, const block_q8 *xq, int T, float *y, int ldy, __m512i *codes, __m512 *scales) {
  unpack_pair(wg, nb, codes, scales);
  int t = 0;
  for (; t + 4 <= T; t += 4) pair_q8(codes, scales, nb, xq + (size_t)t * nb, 4, y + (size_t)t * ldy, ldy);
  for (; t < T; t++) pair_q8(codes, scales, nb, xq + (size_t)t * nb, 1, y + (size_t)t * ldy, ldy);
}

KERNEL void gemm_x8_q8(const block_q4_0x8 *w, int K, const block_q8 *xq, int T, float *y, int ldy, int r0, int r1) {
  const int nb = K / QK;
  // Unpacking a group costs about what one input's products with it do: worth it from a few inputs on.
  const int wide = T >= 4 && kernels_vnni512();
  __m256i *codes = T >= 4 ? aligned_alloc(64, sizeof(__m256i) * 16 * (size_t)nb) : NULL;
  __m256 *scales = codes ? aligned_alloc(64, sizeof(__m256) * 2 * (size_t)nb) : NULL;
  if (!scales) {
    free(codes);
    codes = NULL;
  }
  for (int g = r0 / 8; g * 8 < r1;) {
    const block_q4_0x8 *wg = w + (size_t)g * nb;
    const int whole = g * 8 >= r0 && g * 8 + 8 <= r1;
    if (codes && wide && whole && g * 8 + 16 <= r1) {
      pair_gemm_512(wg, nb, xq, T, y + g * 8, ldy, (__m512i *)codes, (__m512 *)scales);
      g += 2;
      continue;
    }
    if (codes && whole && g * 8 + 16 <= r1) {  // two whole groups
      unpack_group(wg, nb, codes, scales);
      unpack_group(wg + nb, nb, codes + 8 * nb, scales + nb);
      int t = 0;
      for (; t + 2 <= T; t += 2)
        unpacked_q8_2x2(codes, codes + 8 * nb, scales, scales + nb, nb, xq + (size_t)t * nb, xq + (size_t)(t + 1) * nb, y + (size_t)t * ldy + g * 8, y + (size_t)(t + 1) * ldy + g * 8);
      for (; t < T; t++) {
        unpacked_q8(codes, scales, nb, xq + (size_t)t * nb, y + (size_t)t * ldy + g * 8);
        unpacked_q8(codes + 8 * nb, scales + nb, nb, xq + (size_t)t * nb, y + (size_t)t * ldy + g * 8 + 8);
      }
      g += 2;
      continue;
    }
    for (int t = 0; t < T; t++) {
      float u[8];
      float *out = whole ? y + (size_t)t * ldy + g * 8 : u;
      group_q8(wg, nb, xq + (size_t)t * nb, out);
      if (!whole)  // a group cut by the range's edges: only its rows inside are written
        for (int k = 0; k < 8; k++)
          if (g * 8 + k >= r0 && g * 8 + k < r1) y[(size_t)t * ldy + g * 8 + k] = u[k];
    }
    g++;
  }
  free(codes);
  free(scales);
}

KERNEL void gemv_x8_q8(const block_q4_0x8 *w, int K, const block_q8 *xq, float *y, int r0, int r1) {
  gemm_x8_q8(w, K, xq, 1, y, 0, r0, r1);
}

KERNEL void gemm_x8_f32(const block_q4_0x8 *w, int K, const float *x, const float *xsum8, int T, float *y, int ldy, int r0, int r1) {
  const int nb = K / QK;
  for (int g = r0 / 8; g * 8 < r1; g++)
    for (int t = 0; t < T; t++)
      for (int r = g * 8 > r0 ? g * 8 : r0; r < g * 8 + 8 && r < r1; r++)
        y[(size_t)t * ldy + r] = dot_x8_f32(w + (size_t)g * nb, r % 8, nb, x + (size_t)t * K, xsum8 + (size_t)t * nb);
}

KERNEL void gemv_x8_f32(const block_q4_0x8 *w, int K, const float *x, const float *xsum8, float *y, int r0, int r1) {
  gemm_x8_f32(w, K, x, xsum8, 1, y, 0, r0, r1);
}

// ---- dx = dy·W for a frozen 4-bit W (a linear layer's backward) ----

// Rows [m0, m0 + n) (m0, n multiples of 8) of W's column block b, as floats d·(q − 8) (exact: an 11-bit
// scale times a 4-bit integer) into out[(m − m0)·32 + i].
KERNEL static void dequant_strip(const block_q4_0x8 *w, int nb, int b, int m0, int n, float *out) {
  const __m256i low = _mm256_set1_epi32(0x0F), eight = _mm256_set1_epi32(8);
  for (int g = m0 / 8; g < (m0 + n) / 8; g++) {
    const block_q4_0x8 *blk = w + (size_t)g * nb + b;
    float d[8];
    _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk->d)));
    for (int k = 0; k < 8; k++) {
      const __m128i qs = row_codes(blk, k);
      // Bytes 0…7 hold elements 0…7 (low nibbles) and 16…23 (high); bytes 8…15 elements 8…15 and 24…31.
      const __m256i v0 = _mm256_cvtepu8_epi32(qs), v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(qs, 8));
      const __m256 s = _mm256_set1_ps(d[k]);
      float *o = out + (size_t)(g * 8 + k - m0) * QK;
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, low), eight)), s));
      _mm256_storeu_ps(o + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, low), eight)), s));
      _mm256_storeu_ps(o + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), eight)), s));
      _mm256_storeu_ps(o + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), eight)), s));
    }
  }
}

// N ≤ 3 tokens' 32 columns of dx plus Σ over n rows m of dy[t, m]·wd[m], m ascending: 4N accumulators, each
// dequantised row read once for N tokens. Three tokens' 12 accumulators, a broadcast and the row's vectors
// (some as FMA memory operands) fit AVX2's 16 registers, and 12 FMAs per row then need fewer loads than
// the load ports give in the 6 cycles the two FMA pipes take. Inlined with N constant. gemm_add_f32 has the same
// tile, but with b's row stride a variable: through it these products ran 3–9% slower (bench/dyw-kernel.c).
__attribute__((always_inline)) KERNEL static inline void dyw_tile(const float *wd, int n, const float *dy, int ldy, float *dx, int ldx, const int N,
                                                                  int load) {
  __m256 a[3][4];
  for (int i = 0; i < N; i++)
    for (int c = 0; c < 4; c++) a[i][c] = load ? _mm256_loadu_ps(dx + (size_t)i * ldx + 8 * c) : _mm256_setzero_ps();
  for (int m = 0; m < n; m++) {
    const __m256 w0 = _mm256_load_ps(wd + m * QK), w1 = _mm256_load_ps(wd + m * QK + 8), w2 = _mm256_load_ps(wd + m * QK + 16),
                 w3 = _mm256_load_ps(wd + m * QK + 24);
    for (int i = 0; i < N; i++) {
      const __m256 y = _mm256_broadcast_ss(dy + (size_t)i * ldy + m);
      a[i][0] = _mm256_fmadd_ps(y, w0, a[i][0]);
      a[i][1] = _mm256_fmadd_ps(y, w1, a[i][1]);
      a[i][2] = _mm256_fmadd_ps(y, w2, a[i][2]);
      a[i][3] = _mm256_fmadd_ps(y, w3, a[i][3]);
    }
  }
  for (int i = 0; i < N; i++)
    for (int c = 0; c < 4; c++) _mm256_storeu_ps(dx + (size_t)i * ldx + 8 * c, a[i][c]);
}

// Every token's 32 columns of dx against n dequantised rows wd: three tokens at a time, then the one or two left.
KERNEL static void dyw_tokens(const float *wd, int n, const float *dy, int ldy, float *dx, int ldx, int T, int load) {
  int t = 0;
  for (; t + 3 <= T; t += 3) dyw_tile(wd, n, dy + (size_t)t * ldy, ldy, dx + (size_t)t * ldx, ldx, 3, load);
  if (T - t == 2) dyw_tile(wd, n, dy + (size_t)t * ldy, ldy, dx + (size_t)t * ldx, ldx, 2, load);
  else if (T - t == 1) dyw_tile(wd, n, dy + (size_t)t * ldy, ldy, dx + (size_t)t * ldx, ldx, 1, load);
}

// Rows of W that gemm_dy_w dequantises at a time (128 KB of floats: L2, not L1, but 128 bytes per 6 cycles
// is well within L2's bandwidth). A tile's cost outside its FMAs (loading and storing dx, the cold start of
// its dy rows) is paid once per chunk, so longer chunks win: on the 270M's shapes with T = 512 one thread
// ran at about 42, 43, 46, 47.5 and 49 GMAC/s with 64, 128, 256, 512 and 1024 rows (2048: as 1024), of a
// 51 peak (bench/dyw-kernel.c).
#define DYW_ROWS 1024
_Static_assert(GEMM_DY_W_SCRATCH >= DYW_ROWS * QK + 8, "scratch for a chunk, aligned");

// Column block by column block (32 columns), each on its own: rows of W in chunks of DYW_ROWS dequantised
// into scratch once and met by every token (the dequantising, shared by T tokens, is then a fraction of a
// percent of the work), the chunks in order of m, so each dx element's sum runs over m in the same order
// however [k0, k1) is cut.
KERNEL void gemm_dy_w(const block_q4_0x8 *w, int M, int K, const float *dy, int ldy, int T, float *dx, int ldx, int k0, int k1, int accumulate,
                      float *scratch) {
  const int nb = K / QK;
  float *wd = (float *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);
  if (M == 0 && !accumulate)  // an empty sum: no chunk would write dx
    for (int t = 0; t < T; t++) memset(dx + (size_t)t * ldx + k0, 0, sizeof(float) * (size_t)(k1 - k0));
  for (int b = k0 / QK; b < k1 / QK; b++)
    for (int m0 = 0; m0 < M; m0 += DYW_ROWS) {
      const int n = M - m0 < DYW_ROWS ? M - m0 : DYW_ROWS, load = accumulate || m0 > 0;
      dequant_strip(w, nb, b, m0, n, wd);
      dyw_tokens(wd, n, dy + m0, ldy, dx + b * QK, ldx, T, load);
    }
}

// ---- the LM head's table (GGUF rows) in float: logits at float activations, and the head's backward ----

// Row r's block b as 32 floats, exactly the stored values.
KERNEL static inline void table_block_f32(table_ref t, int r, int b, float *out) {
  const int nb = t.K / QK;
  int8_t q[QK];
  float d;
  if (t.packed) {
    const block_q4_0x8 *g = t.packed + (size_t)(r / 8) * nb + b;
    uint8_t qs[QK / 2];
    _mm_storeu_si128((__m128i *)qs, row_codes(g, r % 8));
    _mm256_storeu_si256((__m256i *)q, _mm256_sub_epi8(unpack_q4(qs), _mm256_set1_epi8(8)));
    d = _cvtsh_ss(g->d[r % 8]);
  } else if (t.q8) {
    const block_q8_0 *blk = (const block_q8_0 *)t.rows + (size_t)r * nb + b;
    memcpy(q, blk->qs, QK);
    d = _cvtsh_ss(blk->d);
  } else {
    const block_q4_0 *blk = (const block_q4_0 *)t.rows + (size_t)r * nb + b;
    _mm256_storeu_si256((__m256i *)q, _mm256_sub_epi8(unpack_q4(blk->qs), _mm256_set1_epi8(8)));
    d = _cvtsh_ss(blk->d);
  }
  // An fp16 scale (11 bits) times a code of at most 8 bits: exact in float.
  const __m256 dv = _mm256_set1_ps(d);
  for (int j = 0; j < QK; j += 8)
    _mm256_storeu_ps(out + j, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + j))))));
}

KERNEL void table_rows_f32(table_ref t, int r0, int n, float *out) {
  const int nb = t.K / QK;
  for (int r = 0; r < n; r++)
    for (int b = 0; b < nb; b++) table_block_f32(t, r0 + r, b, out + (size_t)r * t.K + b * QK);
}

// y[i·ldy + r] = Σ_k x[i·ldx + k]·wf[r·K + k] for N ≤ 4 tokens and R ≤ 3 rows: 12 accumulators, each row chunk
// loaded once for N tokens and each token chunk once for R rows (7 loads per 12 FMAs: the FMA pipes bind).
// Inlined with N and R constant.
__attribute__((always_inline)) KERNEL static inline void xw_tile(const float *wf, int K, const float *x, int ldx, float *y, int ldy, const int N, const int R) {
  __m256 a[4][3];
  for (int i = 0; i < N; i++)
    for (int r = 0; r < R; r++) a[i][r] = _mm256_setzero_ps();
  for (int k = 0; k < K; k += 8) {
    __m256 w[3];
    for (int r = 0; r < R; r++) w[r] = _mm256_loadu_ps(wf + (size_t)r * K + k);
    for (int i = 0; i < N; i++) {
      const __m256 xv = _mm256_loadu_ps(x + (size_t)i * ldx + k);
      for (int r = 0; r < R; r++) a[i][r] = _mm256_fmadd_ps(xv, w[r], a[i][r]);
    }
  }
  for (int i = 0; i < N; i++)
    for (int r = 0; r < R; r++) y[(size_t)i * ldy + r] = hsum(a[i][r]);
}

// Rows of the table gemm_x_table turns into floats at a time (48 × 640 floats: 120 KB, in L2, for every token).
#define XT_ROWS 48
_Static_assert(GEMM_TABLE_SCRATCH >= XT_ROWS * 2048, "scratch for a strip of rows");

KERNEL void gemm_x_table(table_ref E, const float *x, int T, float *y, int ldy, int m0, int m1, float *scratch) {
  const int K = E.K;
  for (int s0 = m0; s0 < m1; s0 += XT_ROWS) {
    const int n = m1 - s0 < XT_ROWS ? m1 - s0 : XT_ROWS;
    table_rows_f32(E, s0, n, scratch);
    for (int t = 0; t < T; t += 4) {
      const int N = T - t < 4 ? T - t : 4;
      const float *xt = x + (size_t)t * K;
      float *yt = y + (size_t)t * ldy + s0;
      int r = 0;
#define XW(NN, RR) xw_tile(scratch + (size_t)r * K, K, xt, K, yt + r, ldy, NN, RR)
      if (N == 4)
        for (; r + 3 <= n; r += 3) XW(4, 3);
      else if (N == 3)
        for (; r + 3 <= n; r += 3) XW(3, 3);
      else if (N == 2)
        for (; r + 3 <= n; r += 3) XW(2, 3);
      else
        for (; r + 3 <= n; r += 3) XW(1, 3);
      for (; r < n; r++) {
        if (N == 4) XW(4, 1);
        else if (N == 3) XW(3, 1);
        else if (N == 2) XW(2, 1);
        else XW(1, 1);
      }
#undef XW
    }
  }
}

// Rows of the table gemm_dy_table takes at a time: 256 rows' blocks of one column block are 32 KB of floats
// (L1-sized), and the chunk's rows (174 KB of a Q8_0 row of 640) stay in L2 for every column block.
#define DYT_ROWS 256

KERNEL void gemm_dy_table(table_ref E, int M, const float *dy, int ldy, int T, float *dx, int ldx, int k0, int k1, int accumulate, float *scratch) {
  float *wd = (float *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);
  if (M == 0 && !accumulate)
    for (int t = 0; t < T; t++) memset(dx + (size_t)t * ldx + k0, 0, sizeof(float) * (size_t)(k1 - k0));
  for (int m0 = 0; m0 < M; m0 += DYT_ROWS) {
    const int n = M - m0 < DYT_ROWS ? M - m0 : DYT_ROWS, load = accumulate || m0 > 0;
    for (int b = k0 / QK; b < k1 / QK; b++) {
      for (int m = 0; m < n; m++) table_block_f32(E, m0 + m, b, wd + (size_t)m * QK);
      dyw_tokens(wd, n, dy + m0, ldy, dx + b * QK, ldx, T, load);
    }
  }
}

// ---- small float GEMMs (LoRA) ----

// c rows [0, R) × 8·V columns += Σ_k a[i, k]·b[k, :], in registers over k: R ≤ RMAX rows of V ≤ VMAX vectors of 8
// (AVX2's 16 registers hold the accumulators, V of b and a broadcast). The accumulators' array is sized for
// the shape: GCC keeps a larger one (6 × 4) in memory, storing it every k.
#define GEMM_ADD_TILE(name, RMAX, VMAX)                                                                                          \
  __attribute__((always_inline)) KERNEL static inline void name(float *c, int ldc, const float *a, int lda, const float *b, int ldb, \
                                                                int K, const int R, const int V) {                             \
    __m256 acc[RMAX][VMAX];                                                                                                      \
    for (int i = 0; i < R; i++)                                                                                                  \
      for (int v = 0; v < V; v++) acc[i][v] = _mm256_loadu_ps(c + (size_t)i * ldc + 8 * v);                                     \
    for (int k = 0; k < K; k++) {                                                                                                \
      __m256 bv[VMAX];                                                                                                           \
      for (int v = 0; v < V; v++) bv[v] = _mm256_loadu_ps(b + (size_t)k * ldb + 8 * v);                                         \
      for (int i = 0; i < R; i++) {                                                                                              \
        const __m256 x = _mm256_broadcast_ss(a + (size_t)i * lda + k);                                                           \
        for (int v = 0; v < V; v++) acc[i][v] = _mm256_fmadd_ps(x, bv[v], acc[i][v]);                                           \
      }                                                                                                                          \
    }                                                                                                                            \
    for (int i = 0; i < R; i++)                                                                                                  \
      for (int v = 0; v < V; v++) _mm256_storeu_ps(c + (size_t)i * ldc + 8 * v, acc[i][v]);                                     \
  }
GEMM_ADD_TILE(gemm_add_tile, 3, 4)
GEMM_ADD_TILE(gemm_add_tall, 6, 2)
#undef GEMM_ADD_TILE

KERNEL void gemm_add_f32(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K) {
  const int N8 = N & ~7, N32 = N & ~31;
  // Columns 32 at a time, three rows by four vectors.
  for (int i = 0; i < M; i += 3) {
    const int R = M - i < 3 ? M - i : 3;
    float *ci = c + (size_t)i * ldc;
    const float *ai = a + (size_t)i * lda;
#define WIDE(RR) gemm_add_tile(ci + n, ldc, ai, lda, b + n, ldb, K, RR, 4)
    for (int n = 0; n < N32; n += 32) {
      if (R == 3) WIDE(3);
      else if (R == 2) WIDE(2);
      else WIDE(1);
    }
#undef WIDE
  }
  // The rest, six rows at a time: a LoRA rank of 16 is two vectors wide, and three rows of those held only six
  // accumulators, too few to cover the FMA's latency (38 against 101 GFLOP/s, bench/lora-gemm.c). Every c[i, j]
  // still sums k in order, so the tiling changes no bits.
  for (int i = 0; i < M; i += 6) {
    const int R = M - i < 6 ? M - i : 6;
    float *ci = c + (size_t)i * ldc;
    const float *ai = a + (size_t)i * lda;
#define TALL(RR, VV) gemm_add_tall(ci + n, ldc, ai, lda, b + n, ldb, K, RR, VV)
#define ROWS(VV)                \
  switch (R) {                  \
    case 6: TALL(6, VV); break; \
    case 5: TALL(5, VV); break; \
    case 4: TALL(4, VV); break; \
    case 3: TALL(3, VV); break; \
    case 2: TALL(2, VV); break; \
    default: TALL(1, VV); break; \
  }
    int n = N32;
    for (; n + 16 <= N8; n += 16) ROWS(2)
    for (; n < N8; n += 8) ROWS(1)
#undef ROWS
#undef TALL
    // The last N mod 8 columns, k ascending as above.
    for (int r = 0; r < R; r++)
      for (int m = N8; m < N; m++) {
        float s = ci[(size_t)r * ldc + m];
        for (int k = 0; k < K; k++) s = fmaf(ai[(size_t)r * lda + k], b[(size_t)k * ldb + m], s);
        ci[(size_t)r * ldc + m] = s;
      }
  }
}

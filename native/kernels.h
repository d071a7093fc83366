// The decode step's arithmetic on one token: Q4_0 and Q8_0 matrix-vector products (on GGUF's blocks, and
// on the layers' repacked ones) and the small vector operations around them. Every function here is
// compiled for AVX2+FMA+F16C (KERNEL); the binding calls none of them unless the CPU has those
// (kernels_supported).
#pragma once
#include <immintrin.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define QK 32

/** GGUF's Q4_0 block: w = d·(q − 8), q the 4-bit codes; byte j holds element j (low) and j+16 (high). */
typedef struct {
  uint16_t d;  // float16
  uint8_t qs[QK / 2];
} block_q4_0;

/**
 * Eight rows of a Q4_0 matrix side by side, block b of each: their scales, then their codes four bytes at a
 * time: qs[c][k] holds bytes 4c…4c+3 of row k's codes as GGUF orders them (elements 4c…4c+3 in the low
 * nibbles, 16+4c…16+4c+3 in the high). One 32-byte load then holds four elements of each of the eight rows,
 * one row per lane: an activation's four bytes, broadcast, meet all eight rows in one maddubs, and each row's
 * sum comes out in its own lane, without the horizontal adds that row-by-row codes need. The decoder's
 * layers and the head's 4-bit table are kept in this form (repack_q4_0x8).
 */
typedef struct {
  uint16_t d[8];  // float16
  uint8_t qs[4][8][4];
} block_q4_0x8;

/** GGUF's Q8_0 block: w = d·q. */
typedef struct {
  uint16_t d;  // float16
  int8_t qs[QK];
} block_q8_0;

/** Activations as int8 blocks of 32 with a float scale (what accuracy level 4 multiplies with). */
typedef struct {
  float d;
  float sum8;  // 8·d·Σqs: what the codes' offset of 8 contributes, for the Q4_0 dot
  int8_t qs[QK];
} block_q8;

#define KERNEL __attribute__((target("avx2,fma,f16c")))

/** 1 when this CPU runs the kernels (AVX2, FMA, F16C). */
int kernels_supported(void);
/** 1 when it also has AVX-512 with VNNI (BW, VL), which gemm_x8_q8 then uses, to the same bits (GEMMA_TUNE_NO_AVX512 set: 0). */
int kernels_vnni512(void);

KERNEL static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Both Q4_0 dots take the codes unsigned (0…15) and subtract 8·Σx once per block (a scalar, precomputed
// per input block): unpacking then needs no sign handling, the costliest part of a 4-bit dot.

/** Row k's 16 code bytes of a repacked block, in GGUF's order. */
KERNEL static inline __m128i row_codes(const block_q4_0x8 *b, int k) {
  int32_t c[4];
  for (int i = 0; i < 4; i++) memcpy(&c[i], b->qs[i][k], 4);
  return _mm_setr_epi32(c[0], c[1], c[2], c[3]);
}

// e^x for 8 lanes (Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r; relative
// error ~2e-7). x is clamped to ±88, where e^x is still finite.
KERNEL static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/** The unsigned codes qs (one block's 16 bytes) times float xb [32], as 8 partial sums. */
KERNEL static inline __m256 block_q4_f32(__m128i qs, const float *xb) {
  const __m256i low = _mm256_set1_epi32(0x0F);
  // Bytes 0…7 hold elements 0…7 (low nibbles) and 16…23 (high); bytes 8…15 elements 8…15 and 24…31.
  const __m256i v0 = _mm256_cvtepu8_epi32(qs);
  const __m256i v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(qs, 8));
  __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, low)), _mm256_loadu_ps(xb));
  s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, low)), _mm256_loadu_ps(xb + 8), s);
  s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), _mm256_loadu_ps(xb + 16), s);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), _mm256_loadu_ps(xb + 24), s);
}

/** Row k of a repacked group g [nb blocks] times float x (the exact Q4_0 product); xsum8[b] = 8·Σ of x's block b. */
KERNEL static inline float dot_x8_f32(const block_q4_0x8 *g, int k, int nb, const float *x, const float *xsum8) {
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int b = 0; b < nb; b++) {
    const float d = _cvtsh_ss(g[b].d[k]);
    acc = _mm256_fmadd_ps(block_q4_f32(row_codes(&g[b], k), x + b * QK), _mm256_set1_ps(d), acc);
    corr += d * xsum8[b];
  }
  return hsum(acc) - corr;
}

/** The 32 unsigned codes (0…15) of one block's qs [16 bytes], in element order. */
KERNEL static inline __m256i unpack_q4(const uint8_t *qs) {
  const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
  // Low nibbles are elements 0…15, high nibbles 16…31: the two halves of one 32-byte vector.
  return _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), _mm256_set1_epi8(0x0F));
}

/** A repacked block's 32-byte code vector qs[c]: the low nibbles (elements 4c…4c+3 of each row, a lane each). */
KERNEL static inline __m256i low_codes(__m256i v) {
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}
/** The same vector's high nibbles (elements 16+4c…16+4c+3 of each row). */
KERNEL static inline __m256i high_codes(__m256i v) {
  return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

/** The sum of v's eight int32 lanes. */
KERNEL static inline int hsum_i32(__m256i v) {
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
  return _mm_cvtsi128_si32(t);
}

/** Unsigned codes (0…15, a block's in element order: unpack_q4) times an int8 block a, as 8 int32 partial sums. */
KERNEL static inline __m256i codes_q8(__m256i codes, __m256i a) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, a), _mm256_set1_epi16(1));
}

/** The unsigned codes qs [16 bytes] of one block times int8 xs [32], as 8 int32 partial sums. */
KERNEL static inline __m256i block_q4_q8(const uint8_t *qs, const int8_t *xs) {
  return codes_q8(unpack_q4(qs), _mm256_loadu_si256((const __m256i *)xs));
}

/** A Q8_0 block's codes q times an int8 block a, as 8 int32 partial sums. maddubs multiplies unsigned by signed
 * bytes, so q's sign moves onto a (|q| ≤ 128, |a| ≤ 127: a pair's sum stays within int16). */
KERNEL static inline __m256i block_q8_q8(__m256i q, __m256i a) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q)), _mm256_set1_epi16(1));
}

/** One row of nb Q4_0 blocks times int8 blocks xq. */
KERNEL static inline float dot_q4_q8(const block_q4_0 *row, int nb, const block_q8 *xq) {
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int b = 0; b < nb; b++) {
    const __m256i p = block_q4_q8(row[b].qs, xq[b].qs);
    const float d = _cvtsh_ss(row[b].d);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xq[b].d), acc);
    corr += d * xq[b].sum8;
  }
  return hsum(acc) - corr;
}

/** One row of nb Q8_0 blocks times float x. */
KERNEL static inline float dot_q8_f32(const block_q8_0 *row, int nb, const float *x) {
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const int8_t *q = row[b].qs;
    const float *xb = x + b * QK;
    __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))), _mm256_loadu_ps(xb));
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8)))), _mm256_loadu_ps(xb + 8), s);
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 16)))), _mm256_loadu_ps(xb + 16), s);
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 24)))), _mm256_loadu_ps(xb + 24), s);
    acc = _mm256_fmadd_ps(s, _mm256_set1_ps(_cvtsh_ss(row[b].d)), acc);
  }
  return hsum(acc);
}

/** One row of nb Q8_0 blocks times int8 blocks xq. */
KERNEL static inline float dot_q8_q8(const block_q8_0 *row, int nb, const block_q8 *xq) {
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const __m256i p = block_q8_q8(_mm256_loadu_si256((const __m256i *)row[b].qs), _mm256_loadu_si256((const __m256i *)xq[b].qs));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(_cvtsh_ss(row[b].d) * xq[b].d), acc);
  }
  return hsum(acc);
}

/** Blocks of a [rows, K] matrix repacked: ⌈rows/8⌉ groups of K/32. */
static inline size_t packed_blocks(int rows, int K) {
  return (size_t)((rows + 7) / 8) * (size_t)(K / QK);
}
/** Room for `blocks` repacked blocks, in 2 MB pages where the kernel gives them (free() releases it); NULL when out of memory. */
block_q4_0x8 *packed_alloc(size_t blocks);
/** Groups [g0, g1) of W [rows, K] (GGUF's rows) into out [⌈rows/8⌉ groups, K/32 blocks]; rows past the end get zero blocks. */
void repack_q4_0x8(const block_q4_0 *w, int rows, int K, block_q4_0x8 *out, int g0, int g1);
/** y[r] = Σ_k W[r,k]·x[k] for rows r0 ≤ r < r1 of repacked W [rows, K], int8 activations xq (level 4). */
KERNEL void gemv_x8_q8(const block_q4_0x8 *w, int K, const block_q8 *xq, float *y, int r0, int r1);
/** The same for T inputs at once: xq [T, K/32], y[t·ldy + r]; each row's result is gemv_x8_q8's, bit for bit. */
KERNEL void gemm_x8_q8(const block_q4_0x8 *w, int K, const block_q8 *xq, int T, float *y, int ldy, int r0, int r1);
/** The same with float activations (level 0), row by row (dot_x8_f32); xsum8 as its. */
KERNEL void gemv_x8_f32(const block_q4_0x8 *w, int K, const float *x, const float *xsum8, float *y, int r0, int r1);
/** gemv_x8_f32 for T inputs: x [T, K], xsum8 [T, K/32], y[t·ldy + r]. */
KERNEL void gemm_x8_f32(const block_q4_0x8 *w, int K, const float *x, const float *xsum8, int T, float *y, int ldy, int r0, int r1);
/** Floats of scratch gemm_dy_w needs per calling thread (128 KB: 1024 rows of a 32-column block, and room to align them). */
#define GEMM_DY_W_SCRATCH (1024 * QK + 8)
/**
 * dx[t·ldx + k] = (accumulate ? dx[t·ldx + k] : 0) + Σ_{m<M} dy[t·ldy + m]·W[m, k] for every t < T and k0 ≤ k < k1
 * (k0, k1 multiples of 32), W [M, K] repacked (block_q4_0x8, M a multiple of 8), its values exactly d·(q − 8) in float.
 * scratch: GEMM_DY_W_SCRATCH floats of the caller's (per thread).
 */
KERNEL void gemm_dy_w(const block_q4_0x8 *w, int M, int K, const float *dy, int ldy, int T, float *dx, int ldx, int k0, int k1, int accumulate, float *scratch);
/** The LM head's embedding table: GGUF's rows as stored (Q4_0 or Q8_0 blocks, K/32 to a row), or a Q4_0 table repacked. */
typedef struct {
  const void *rows;              // when packed is NULL
  const block_q4_0x8 *packed;  // a Q4_0 table repacked (repack_q4_0x8), or NULL
  int q8;                        // rows: 1 block_q8_0, 0 block_q4_0
  int K;
} table_ref;
/** Rows [r0, r0 + n) of t as floats, exactly the stored values (d·q, d·(q − 8)), into out [n, K]. */
KERNEL void table_rows_f32(table_ref t, int r0, int n, float *out);
/** Floats of scratch gemm_x_table and gemm_dy_table need per calling thread. */
#define GEMM_TABLE_SCRATCH (48 * 2048 + 8)
/**
 * y[t·ldy + m] = Σ_k x[t·K + k]·E[m, k] for rows m0 ≤ m < m1 of table E and every t < T, x float (the head's
 * logits at float activations, exact table values): 8 lanes of partial sums over k, then their sum, so a
 * logit's bits depend on neither T nor how [m0, m1) is cut. K ≤ 2048.
 */
KERNEL void gemm_x_table(table_ref E, const float *x, int T, float *y, int ldy, int m0, int m1, float *scratch);
/**
 * gemm_dy_w for a table's rows as stored: dx[t·ldx + k] (+)= Σ_{m<M} dy[t·ldy + m]·E[m, k], k in [k0, k1)
 * (multiples of 32), the LM head's backward (softmax · E). Chunks of rows outside the column blocks, so that the
 * table is read from memory once. scratch: GEMM_TABLE_SCRATCH floats.
 */
KERNEL void gemm_dy_table(table_ref E, int M, const float *dy, int ldy, int T, float *dx, int ldx, int k0, int k1, int accumulate, float *scratch);
/**
 * c[i·ldc + n'] += Σ_k a[i·lda + k]·b[k·ldb + n'] for rows i < M, columns n' < N, k ascending (a small float
 * GEMM: the LoRA products and attention's backward, whose inner size is a rank, a head or a run's tokens): three
 * rows by 32 columns of c held in registers over k, and the columns past the last 32 six rows at a time.
 */
KERNEL void gemm_add_f32(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K);
/** xsum8[b] = 8·Σ of x's block b, for dot_x8_f32. */
KERNEL void block_sums8(const float *x, int K, float *xsum8);
/** x [K] in the form a level's Q4_0 dot reads: int8 blocks into xq (level 4), or block sums into xsum8 (level 0). */
KERNEL void prepare_input(const float *x, int K, int level, block_q8 *xq, float *xsum8);
/** x [K] as K/32 int8 blocks: d = max|x|/127, q = round(x/d), and each block's sum8. */
KERNEL void quantize_q8(const float *x, int K, block_q8 *out);
/** out = x·rsqrt(mean(x²) + eps)·w (w already 1 + Gemma's weight). */
KERNEL void rms_norm(const float *x, const float *w, int n, float eps, float *out);
/**
 * out = (add ? out : 0) + the gradient through rms_norm of dy [n] at x [n]: r·w·dy − x·r³·Σ(w·dy·x)/n, r as
 * rms_norm's (sums in double). out may be dy when add is 0.
 */
KERNEL void rms_norm_backward(const float *x, const float *w, const float *dy, int n, float eps, float *out, int add);
/** NeoX rotation of one head x [D] by cos/sin [D/2]: (x1·c − x2·s, x2·c + x1·s). */
KERNEL void rope_head(float *x, const float *cos, const float *sin, int D);
/** a [rows, cols] (rows lda apart) into out [cols, rows]. */
void transpose_f32(const float *a, int lda, int rows, int cols, float *out);
/** Σ a[i]·b[i]. */
KERNEL float dot_f32(const float *a, const float *b, int n);
/** y += a·x. */
KERNEL void axpy_f32(float a, const float *x, float *y, int n);
/** s [n] ← softmax(s): e^(s − max) with exp8 (the tail with expf), over their sum. */
KERNEL void softmax(float *s, int n);
/** gelu_tanh(g)·u, element-wise, into out. */
KERNEL void gelu_tanh_mul(const float *g, const float *u, float *out, int n);

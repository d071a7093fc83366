// The optimizer step's loops over the trainer's float32 tensors (adamw.ts's AdamW.update and clipGradNorm),
// bit for bit what the JavaScript computes: each of its Math.fround'ed double operations is one float32
// operation here (+, −, ·, /, sqrt of floats rounded once to float give the same bits either way), in the
// same order, never fused into an FMA.
#pragma once
#include <stddef.h>

/** AdamW's scalars for one step, as adamw.ts computes them (decay 1 where the weights do not decay). */
typedef struct {
  float decay, w1, b2, w2, neg_step, bc2_sqrt, eps;
} adamw_scalars;

/** One AdamW step over n elements: p, m and v updated in place from g. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_scalars *s);
/** Σ g[j]² in double, summed in order (the JavaScript's order, so the same bits). */
double grad_sum_squares(const float *g, size_t n);
/** g[j] = g[j]·coef rounded to float32. */
void grad_scale(float *g, size_t n, float coef);

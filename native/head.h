// The LM head in native code (lmHead.ts's lmHead): logits [N, V] = softcap(final_norm(rows)·Eᵀ) on the tied
// embedding table E as the model file stores it (Q4_0 or Q8_0 blocks). A Q8_0 table is read in place; a
// Q4_0 table at float activations (the exact 4-bit head) is copied at create, repacked eight rows side by
// side, so that head_choose can score the vocabulary with the int8 kernel and rescore a few rows exactly.
#pragma once
#include "kernels.h"

typedef enum { HEAD_Q4_0 = 0, HEAD_Q8_0 = 1 } head_type;

typedef struct {
  int vocab, hidden;
  head_type type;
  float eps;
  /** 0: no softcap. */
  float softcap;
  /** 4: int8 activations; 0: float activations. */
  int level;
} head_config;

typedef struct head head;

/** A head over the table [vocab rows of hidden/32 blocks] (borrowed until destroy unless head_copied) and a copy of the final norm (1 + w) [hidden]; NULL when out of memory or threads. */
head *head_create(const head_config *cfg, const void *table, const float *norm, int threads);
/** 1 when the head keeps its own copy of the table: the caller's may go once head_create returns. */
int head_copied(const head *h);
/** out [n, vocab] for rows [n, hidden]; returns how many of them are NaN or ±Infinity, or −1 when out of memory. */
int head_logits(head *h, const float *rows, int n, float *out);
/**
 * log softmax of the logits of rows [n, hidden] at m picks (row pick_row[j], id pick_id[j]) into out [m], in
 * double: the logits are head_logits's, a few rows at a time in a block mapped for the call alone, so that no
 * [n, vocab] array outlives it. Returns how many of those logits are NaN or ±Infinity (out is then not all
 * set), or −1 when out of memory.
 */
int head_log_probs(head *h, const float *rows, int n, const int32_t *pick_row, const int32_t *pick_id, int m, double *out);
/** Most `top` head_choose takes; more is the whole head_logits. */
#define HEAD_CHOOSE_MAX_TOP 4096
/**
 * out [vocab] for one row, for a caller that reads only its `top` largest logits (among the rows listed in
 * `among`, all rows when NULL): those are exactly head_logits's, bit for bit; every other logit is an estimate
 * from int8 activations, below them. For a Q4_0 table at level 0 (the exact float head) this scores the
 * vocabulary with the int8 kernel on a repacked copy and rescores only the rows whose error bound reaches the
 * top; any other head computes every row exactly. A NaN or infinite estimate is always rescored: *nonfinite
 * counts the exact logits (of `among`) that are NaN or ±Infinity. Rows computed exactly that hold the top go to
 * ids [ids_cap] (in no order), their count to *n_ids; −1 there when they do not fit or a logit is not finite.
 * They are the rows computed exactly, or for a head computed whole, the rows whose logit reaches the top-th
 * largest (ties included). Returns how many rows were computed exactly, or −1 when out of memory.
 */
int head_choose(head *h, const float *row, int top, const int32_t *among, int n_among, float *out, int *nonfinite, int32_t *ids, int ids_cap,
                int *n_ids);
/**
 * The training loss of the head (lmHead.ts's crossEntropy and headCrossEntropyBackward, in native code) on
 * rows [n, hidden]: the last layer's outputs, before the final norm, which it applies itself. The logits are
 * computed at float activations from the table's exact values whatever the head's level (finer than
 * head_logits's at level 4), into logits [n, vocab], which is scratch: it ends as the logits, or with d_rows
 * their softmax. A logit's bits depend on neither n nor the thread count.
 * labels [n] are vocabulary ids, each in [0, vocab). Per row: loss[i] = logsumexp(logits_i) − logits_i[label_i]
 * (in double, rounded to float), hit[i] = 1 when label_i is the first largest logit (argmax's tie rule), else 0.
 * With d_rows [n, hidden] (may be NULL), the gradient of Σ_i loss[i] with respect to the rows: softmax(logits_i)·E −
 * E[label_i] (E [vocab, hidden] the table's rows as stored, dequantised exactly, each entry summed over the
 * vocabulary in order: the same bits for any thread count), then back through the final norm. Returns 0; how many
 * of the logits are NaN or ±Infinity (loss, hit and d_rows are then not written); −1 when out of memory; −2 for a
 * head with a softcap (Gemma 3 has none).
 */
int head_loss(head *h, const float *rows, int n, const int32_t *labels, float *logits, float *loss, float *hit, float *d_rows);
void head_destroy(head *h);

// A fixed team of threads for the decode step: the caller's thread and n-1 workers run each phase's
// function together and meet at its end (llama.cpp's model, not a task queue): a token's ~90 phases
// follow each other within microseconds, so workers spin between phases and sleep between tokens.
#pragma once
#include <stdatomic.h>
#include <pthread.h>

typedef void (*pool_fn)(void *ctx, int ith, int nth);

typedef struct pool pool;

/** A team of n threads (n-1 started here); NULL when a thread cannot be started. */
pool *pool_create(int n);
/** Runs fn(ctx, i, n) on every thread of the team, i = 0 on the caller's; returns when all are done. */
void pool_run(pool *p, pool_fn fn, void *ctx);
/** Items [*i0, *i1) of n for thread ith of nth: equal runs, each a multiple of `align` but the last (empty when n runs out). */
static inline void pool_share(int n, int align, int ith, int nth, int *i0, int *i1) {
  int per = (n + nth - 1) / nth;
  per = (per + align - 1) / align * align;
  *i0 = ith * per < n ? ith * per : n;
  *i1 = *i0 + per < n ? *i0 + per : n;
}
/** Lets the workers sleep until the next pool_run (call when a burst of phases ends). */
void pool_park(pool *p);
void pool_destroy(pool *p);

#include "pool.h"
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

// How long an idle worker spins before it sleeps: longer than the gap between two phases of a token,
// far shorter than the JS and head work between tokens (which wants the cores).
#define SPIN_NS 200000

typedef struct {
  pool *p;
  int ith;
  pthread_t thread;
} worker;

struct pool {
  int n;
  worker *workers;
  pool_fn fn;
  void *ctx;
  atomic_int gen;     // bumped once per phase
  atomic_int done;    // workers finished with the current phase
  atomic_int parked;  // 1: idle workers sleep at once
  atomic_int sleepers;
  atomic_int quit;
  pthread_mutex_t lock;
  pthread_cond_t wake;
};

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  pool *p = w->p;
  // 0, the generation at creation, not a load: the first pool_run may bump it before this thread runs.
  int seen = 0;
  for (;;) {
    long long since = now_ns();
    int spins = 0;
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) {
      CPU_RELAX();
      if (atomic_load(&p->parked) || (++spins % 256 == 0 && now_ns() - since > SPIN_NS)) {
        atomic_fetch_add(&p->sleepers, 1);
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->lock);
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_sub(&p->sleepers, 1);
      }
    }
    if (atomic_load(&p->quit)) return NULL;
    seen++;  // pool_run bumps it once per phase and waits for every worker before the next
    p->fn(p->ctx, w->ith, p->n);
    atomic_fetch_add(&p->done, 1);
  }
}

pool *pool_create(int n) {
  if (n < 1) n = 1;
  pool *p = calloc(1, sizeof(pool));
  if (!p) return NULL;
  p->n = n;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  atomic_store(&p->parked, 1);
  p->workers = calloc((size_t)n, sizeof(worker));
  if (!p->workers) {
    free(p);
    return NULL;
  }
  for (int i = 1; i < n; i++) {
    p->workers[i].p = p;
    p->workers[i].ith = i;
    if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
      p->n = i;  // the team is the threads that started
      pool_destroy(p);
      return NULL;
    }
  }
  return p;
}

void pool_run(pool *p, pool_fn fn, void *ctx) {
  if (p->n == 1) {
    fn(ctx, 0, 1);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  atomic_store(&p->done, 0);
  atomic_store(&p->parked, 0);
  atomic_fetch_add(&p->gen, 1);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
  }
  fn(ctx, 0, p->n);
  while (atomic_load(&p->done) < p->n - 1) CPU_RELAX();
}

void pool_park(pool *p) {
  atomic_store(&p->parked, 1);
}

void pool_destroy(pool *p) {
  if (!p) return;
  atomic_store(&p->quit, 1);
  pthread_mutex_lock(&p->lock);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int i = 1; i < p->n; i++) pthread_join(p->workers[i].thread, NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  free(p->workers);
  free(p);
}

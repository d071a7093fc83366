// The Node-API face of the decoder (decoder.h) and the head (head.h): createDecoder, createAdapter, run,
// createHead, logits, choose, logProbs, loss, destroy, supported; a decoder's training step, trainForward and
// trainBackward; and the optimizer step's loops (optim.h), adamw, sumSquares and scale. Every array the JS
// side passes is checked for its type and length before the kernels read it, so a wrong call throws instead
// of reading out of bounds.
#define NAPI_VERSION 8
#include <node_api.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "decoder.h"
#include "head.h"
#include "optim.h"
#include "train.h"

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "gemma native: " #call " failed");    \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

#define FAIL(msg)                          \
  do {                                     \
    napi_throw_error(env, NULL, (msg));    \
    return NULL;                           \
  } while (0)

/** What JS holds: a decoder, an adapter or a head, with what keeps the arrays it borrows alive. */
typedef struct {
  decoder *d;
  decoder_config cfg;
  // A decoder's training state (trainForward), the tokens its last forward kept (0: none) and with which adapter.
  trainer *tr;
  int trained;
  const lora_layer *trained_lora;
  head *hd;
  head_config hcfg;
  // An adapter's LoRA pairs (createAdapter), for decoders of cfg's shape.
  lora_layer *lora;
  // The arrays it reads after the call that made it (a head's table given as an array, an adapter's pairs).
  napi_ref *refs;
  int nrefs;
  // The model file, mapped read-only, when weights are given as offsets into it (a decoder's only while it is made).
  const uint8_t *map;
  size_t map_size;
} handle;

/** Maps `path` read-only into h (the head reads its table in place; the decoder repacks from it at create); 0 on failure. */
static int map_file(handle *h, const char *path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  void *m = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > 0) m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return 0;
  h->map = m;
  h->map_size = (size_t)st.st_size;
  return 1;
}

static const napi_type_tag HANDLE_TAG = {0x6a2f3c1e9b7d4a05ULL, 0x91c8e2f47d3b6a10ULL};

/** Lets go of the arrays and the file mapping the handle's weights were read from. */
static void drop_sources(napi_env env, handle *h) {
  for (int i = 0; i < h->nrefs; i++) napi_delete_reference(env, h->refs[i]);
  free(h->refs);
  h->refs = NULL;
  h->nrefs = 0;
  if (h->map) munmap((void *)h->map, h->map_size);
  h->map = NULL;
}

static void release(napi_env env, handle *h) {
  trainer_destroy(h->tr);
  h->tr = NULL;
  if (h->d) decoder_destroy(h->d);
  h->d = NULL;
  if (h->hd) head_destroy(h->hd);
  h->hd = NULL;
  for (int l = 0; h->lora && l < h->cfg.layers; l++) {
    lora_pair *p[4] = {&h->lora[l].qkv, &h->lora[l].o, &h->lora[l].gateup, &h->lora[l].down};
    for (int i = 0; i < 4; i++) {
      free((void *)p[i]->at);
      free((void *)p[i]->bt);
    }
  }
  free(h->lora);
  h->lora = NULL;
  drop_sources(env, h);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  handle *h = data;
  release(env, h);
  free(h);
}

/** 1 when v is an object (reading a property of anything else would leave a pending JS exception). */
static int is_object(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_object;
}

static int get_int(napi_env env, napi_value obj, const char *key, int *out) {
  napi_value v;
  if (!is_object(env, obj) || napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int get_float(napi_env env, napi_value obj, const char *key, float *out) {
  napi_value v;
  double x;
  if (!is_object(env, obj) || napi_get_named_property(env, obj, key, &v) != napi_ok || napi_get_value_double(env, v, &x) != napi_ok) return 0;
  *out = (float)x;
  return 1;
}

/**
 * arr as a typed array of `type` with exactly `count` elements (count < 0: any) into *data and *len; 0 when it is
 * not. An empty array's data may be NULL (it may have no buffer).
 */
static int typed_info(napi_env env, napi_value arr, napi_typedarray_type type, long long count, void **data, size_t *len) {
  bool is;
  napi_typedarray_type t;
  if (napi_is_typedarray(env, arr, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, arr, &t, len, data, NULL, NULL) != napi_ok || t != type) return 0;
  return count < 0 || (long long)*len == count;
}

/** arr as a typed array of `type` with exactly `count` elements (count < 0: any, *len gets it); its data or NULL. */
static void *typed(napi_env env, napi_value arr, napi_typedarray_type type, long long count, size_t *len) {
  void *data;
  size_t n;
  if (!typed_info(env, arr, type, count, &data, &n)) return NULL;
  if (len) *len = n;
  return data;
}

/** obj[key] as typed(); the array itself in *arr_out. */
static void *get_array(napi_env env, napi_value obj, const char *key, napi_typedarray_type type, long long count, napi_value *arr_out, size_t *len) {
  napi_value arr;
  if (!is_object(env, obj) || napi_get_named_property(env, obj, key, &arr) != napi_ok) return NULL;
  if (arr_out) *arr_out = arr;
  return typed(env, arr, type, count, len);
}

/**
 * v as `bytes` bytes of weights: a Uint8Array of exactly that size, or a byte offset into h's mapped file
 * whose range fits in it. NULL when neither. `keep`: the array is referenced in h, for weights read after
 * this call (the head's table; the decoder copies its weights during the call).
 */
static const void *weight_at(napi_env env, handle *h, napi_value v, long long bytes, int keep) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return NULL;
  if (t == napi_number) {
    double off;
    if (!h->map || napi_get_value_double(env, v, &off) != napi_ok || off < 0 || off + (double)bytes > (double)h->map_size) return NULL;
    return h->map + (size_t)off;
  }
  const void *data = typed(env, v, napi_uint8_array, bytes, NULL);
  if (data && keep && napi_create_reference(env, v, 1, &h->refs[h->nrefs++]) != napi_ok) return NULL;
  return data;
}

/** Maps argv[i] (a path string) into h when given and not undefined; 0 when it is given but cannot be mapped. */
static int map_file_arg(napi_env env, handle *h, size_t argc, napi_value *argv, size_t i) {
  napi_valuetype t;
  if (argc <= i || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_undefined) return 1;
  char path[4096];
  size_t len;
  if (t != napi_string || napi_get_value_string_utf8(env, argv[i], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1) return 0;
  return map_file(h, path);
}

static napi_value supported(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_get_boolean(env, kernels_supported(), &out));
  return out;
}

/** Frees a handle that never reached JS and throws msg. */
static napi_value give_up(napi_env env, handle *h, const char *msg) {
  if (h) {
    release(env, h);
    free(h);
  }
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/** h as a tagged external for JS; NULL (h freed, error thrown) on failure. */
static napi_value wrap(napi_env env, handle *h) {
  napi_value out;
  if (napi_create_external(env, h, finalize, NULL, &out) != napi_ok) return give_up(env, h, "gemma native: napi_create_external failed");
  if (napi_type_tag_object(env, out, &HANDLE_TAG) != napi_ok) return NULL;  // h is JS's now: the finalizer frees it
  return out;
}

/**
 * A create or optimizer call's arguments into argv[0…n) (missing ones undefined, as Node-API fills them); 0,
 * with the error thrown, when fewer than `min` came or this CPU cannot run the kernels.
 */
static int create_args(napi_env env, napi_callback_info info, size_t n, size_t min, napi_value *argv, size_t *argc, const char *usage) {
  *argc = n;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok || *argc < min) {
    napi_throw_error(env, NULL, usage);
    return 0;
  }
  if (!kernels_supported()) {
    napi_throw_error(env, NULL, "gemma native: this CPU lacks AVX2, FMA or F16C");
    return 0;
  }
  return 1;
}

// createDecoder(config, layers, threads, file?): config { layers, hidden, heads, kvHeads, headDim, ffn, eps,
// attnScale, level }; layers[i] { q, k, v, o, gate, up, down: Q4_0 blocks, each a Uint8Array or a byte
// offset into `file`; inNorm, qNorm, kNorm, postAttnNorm, preFfnNorm, postFfnNorm: Float32Array; window }.
static napi_value create_decoder(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[4];
  if (!create_args(env, info, 4, 3, argv, &argc, "createDecoder(config, layers, threads, file?)")) return NULL;
  decoder_config c;
  int threads;
  if (!get_int(env, argv[0], "layers", &c.layers) || !get_int(env, argv[0], "hidden", &c.hidden) || !get_int(env, argv[0], "heads", &c.heads) ||
      !get_int(env, argv[0], "kvHeads", &c.kv_heads) || !get_int(env, argv[0], "headDim", &c.head_dim) || !get_int(env, argv[0], "ffn", &c.ffn) ||
      !get_float(env, argv[0], "eps", &c.eps) || !get_float(env, argv[0], "attnScale", &c.attn_scale) || !get_int(env, argv[0], "level", &c.level) ||
      napi_get_value_int32(env, argv[2], &threads) != napi_ok)
    FAIL("createDecoder: config needs layers, hidden, heads, kvHeads, headDim, ffn, eps, attnScale, level; threads a number");
  if (c.layers < 1 || c.layers > 1024 || c.hidden % QK || c.ffn % QK || c.head_dim % 16 || c.kv_heads < 1 || c.heads % c.kv_heads ||
      (c.heads * c.head_dim) % QK || c.hidden > 65536 || c.ffn > 262144 || c.heads > 256 || c.head_dim > 1024 || (c.level != 0 && c.level != 4) ||
      threads < 1 || threads > 256)
    FAIL("createDecoder: unsupported shape (widths must be multiples of 32, the head size of 16)");
  uint32_t n;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || (int)n != c.layers) FAIL("createDecoder: layers needs one entry per layer");
  handle *h = calloc(1, sizeof(handle));
  if (!h) return give_up(env, h, "createDecoder: out of memory");
  if (!map_file_arg(env, h, argc, argv, 3)) return give_up(env, h, "createDecoder: the model file cannot be mapped");
  decoder_layer *layers = calloc((size_t)c.layers, sizeof(decoder_layer));
  if (!layers) return give_up(env, h, "createDecoder: out of memory");
  const long long Q = (long long)c.heads * c.head_dim, KV = (long long)c.kv_heads * c.head_dim, C = c.hidden, F = c.ffn;
  const long long bb = sizeof(block_q4_0);
  char msg[160] = "";
  for (int i = 0; i < c.layers && !msg[0]; i++) {
    napi_value L;
    decoder_layer *l = &layers[i];
    if (napi_get_element(env, argv[1], (uint32_t)i, &L) != napi_ok) {
      snprintf(msg, sizeof msg, "createDecoder: no layer %d", i);
      break;
    }
    struct { const char *key; long long bytes; const block_q4_0 **into; } linears[] = {
      {"q", Q * (C / QK) * bb, &l->q}, {"k", KV * (C / QK) * bb, &l->k}, {"v", KV * (C / QK) * bb, &l->v}, {"o", C * (Q / QK) * bb, &l->o},
      {"gate", F * (C / QK) * bb, &l->gate}, {"up", F * (C / QK) * bb, &l->up}, {"down", C * (F / QK) * bb, &l->down},
    };
    struct { const char *key; long long count; const float **into; } norms[] = {
      {"inNorm", C, &l->in_norm}, {"qNorm", c.head_dim, &l->q_norm}, {"kNorm", c.head_dim, &l->k_norm},
      {"postAttnNorm", C, &l->post_attn_norm}, {"preFfnNorm", C, &l->pre_ffn_norm}, {"postFfnNorm", C, &l->post_ffn_norm},
    };
    for (size_t j = 0; j < sizeof(linears) / sizeof(linears[0]) && !msg[0]; j++) {
      napi_value v;
      *linears[j].into = is_object(env, L) && napi_get_named_property(env, L, linears[j].key, &v) == napi_ok ? weight_at(env, h, v, linears[j].bytes, 0) : NULL;
      if (!*linears[j].into) snprintf(msg, sizeof msg, "createDecoder: layer %d: %s is neither %lld bytes nor an offset into the file", i, linears[j].key, linears[j].bytes);
    }
    for (size_t j = 0; j < sizeof(norms) / sizeof(norms[0]) && !msg[0]; j++) {
      *norms[j].into = get_array(env, L, norms[j].key, napi_float32_array, norms[j].count, NULL, NULL);
      if (!*norms[j].into) snprintf(msg, sizeof msg, "createDecoder: layer %d: %s is not a Float32Array of %lld", i, norms[j].key, norms[j].count);
    }
    if (!msg[0] && (!get_int(env, L, "window", &l->window) || l->window < 0)) snprintf(msg, sizeof msg, "createDecoder: layer %d: window must be a number ≥ 0", i);
  }
  if (!msg[0] && !(h->d = decoder_create(&c, layers, threads))) snprintf(msg, sizeof msg, "createDecoder: out of memory or threads");
  free(layers);
  if (msg[0]) return give_up(env, h, msg);
  // The decoder holds a repacked copy: the model file is read only here, never during a run.
  drop_sources(env, h);
  h->cfg = c;
  return wrap(env, h);
}

/** This module's own handle behind v, or NULL (another addon's external is refused by the type tag). */
static handle *unwrap(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  bool ours = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &HANDLE_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &data) != napi_ok)
    return NULL;
  return data;
}

/** A run's arguments (run, trainForward, trainBackward), checked; caches is the caller's to free. */
typedef struct {
  handle *h;
  float *x;
  const int32_t *positions, *branch;
  size_t T;
  decoder_cache *caches;
  const lora_layer *lora;
} run_call;

/**
 * A run-shaped call's arguments: argv[0…5) as decoder, x, positions, branch, caches and argv[5] as the adapter
 * (undefined: none) into r, and its first `n` (≥ 6) arguments into argv; 0 with the error thrown.
 */
static int run_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *name, run_call *r) {
  char msg[200];
  memset(r, 0, sizeof *r);
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "gemma native: napi_get_cb_info failed");
    return 0;
  }
  handle *h = argc >= 5 ? unwrap(env, argv[0]) : NULL;
#define ARG_FAIL(...)                           \
  do {                                          \
    snprintf(msg, sizeof msg, __VA_ARGS__);     \
    napi_throw_error(env, NULL, msg);           \
    return 0;                                   \
  } while (0)
  if (!h || !h->d) ARG_FAIL("%s(decoder, x, positions, branch, caches, adapter?): no live decoder", name);
  const decoder_config *c = &h->cfg;
  napi_valuetype at;
  if (argc >= 6 && napi_typeof(env, argv[5], &at) == napi_ok && at != napi_undefined) {
    const handle *a = unwrap(env, argv[5]);
    if (!a || !a->lora || memcmp(&a->cfg, c, sizeof *c) != 0) ARG_FAIL("%s: the adapter is not one made for this decoder", name);
    r->lora = a->lora;
  }
  size_t T = 0;
  const int32_t *positions = typed(env, argv[2], napi_int32_array, -1, &T);
  if (!positions || T == 0 || T > 65536) ARG_FAIL("%s: positions must be an Int32Array of 1 to 65536 positions", name);
  for (size_t t = 0; t < T; t++)
    if (positions[t] < 0) ARG_FAIL("%s: a position is negative", name);
  const int32_t *branch = NULL;
  napi_valuetype bt;
  if (napi_typeof(env, argv[3], &bt) != napi_ok) ARG_FAIL("%s: branch must be an Int32Array or null", name);
  if (bt != napi_null && bt != napi_undefined) {
    branch = typed(env, argv[3], napi_int32_array, (long long)T, NULL);
    if (!branch) ARG_FAIL("%s: branch must be an Int32Array of one entry per position, or null", name);
  }
  float *x = typed(env, argv[1], napi_float32_array, (long long)T * c->hidden, NULL);
  if (!x) ARG_FAIL("%s: x has the wrong type or size", name);
  bool is_array = false;
  uint32_t ncaches = 0;
  if (napi_is_array(env, argv[4], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[4], &ncaches) != napi_ok || (int)ncaches != c->layers)
    ARG_FAIL("%s: caches needs one entry per layer", name);
  decoder_cache *caches = calloc((size_t)c->layers, sizeof(decoder_cache));
  if (!caches) ARG_FAIL("%s: out of memory", name);
  for (int i = 0; i < c->layers; i++) {
    napi_value e;
    int ok = napi_get_element(env, argv[4], (uint32_t)i, &e) == napi_ok && get_int(env, e, "capacity", &caches[i].capacity) &&
             get_int(env, e, "filled", &caches[i].filled) && caches[i].filled >= 0 && caches[i].capacity >= caches[i].filled;
    if (ok) {
      const long long n = (long long)c->kv_heads * caches[i].capacity * c->head_dim;
      const long long rope = (long long)T * (c->head_dim / 2);
      size_t klen = 0, vlen = 0, plen = 0;
      caches[i].k = get_array(env, e, "k", napi_float32_array, -1, NULL, &klen);
      caches[i].v = get_array(env, e, "v", napi_float32_array, -1, NULL, &vlen);
      caches[i].positions = get_array(env, e, "positions", napi_int32_array, -1, NULL, &plen);
      caches[i].slots = get_array(env, e, "slots", napi_int32_array, (long long)T, NULL, NULL);
      caches[i].cos = get_array(env, e, "cos", napi_float32_array, rope, NULL, NULL);
      caches[i].sin = get_array(env, e, "sin", napi_float32_array, rope, NULL, NULL);
      // An empty typed array may have no data pointer: only a cache with slots needs one.
      ok = caches[i].cos && caches[i].sin && caches[i].slots && (caches[i].k || n == 0) && (caches[i].v || n == 0) && (caches[i].positions || caches[i].filled == 0) &&
           (long long)klen >= n && (long long)vlen >= n && (long long)plen >= caches[i].filled;
      // Every slot written must lie inside the cache.
      for (size_t t = 0; ok && t < T; t++) ok = caches[i].slots[t] >= -1 && caches[i].slots[t] < caches[i].capacity;
    }
    if (!ok) {
      free(caches);
      ARG_FAIL("%s: cache %d is not { k, v, positions, slots, capacity, filled, cos, sin } of matching sizes", name, i);
    }
  }
#undef ARG_FAIL
  *r = (run_call){h, x, positions, branch, T, caches, r->lora};
  return 1;
}

// run(decoder, x, positions, branch, caches, adapter?): T = positions.length tokens; x Float32Array
// [T·hidden]; positions Int32Array [T]; branch Int32Array [T] or null; caches[i] { k, v: Float32Array
// [kvHeads·capacity·headDim], positions: Int32Array [≥ filled], slots: Int32Array [T] (each a slot < capacity
// or −1), capacity, filled, cos, sin: Float32Array [T·headDim/2] }. The new keys and values go into the slots.
static napi_value run(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  run_call r;
  if (!run_args(env, info, 6, argv, "run", &r)) return NULL;
  const int rc = decoder_run(r.h->d, r.x, (int)r.T, r.positions, r.branch, r.caches, r.lora);
  free(r.caches);
  if (rc != 0) FAIL("run: out of memory");
  return NULL;
}

// trainForward(decoder, x, positions, branch, caches, adapter?): run's forward (caches as run's, every slot −1),
// keeping each layer's activations in the decoder's trainer for trainBackward.
static napi_value train_forward(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  run_call r;
  if (!run_args(env, info, 6, argv, "trainForward", &r)) return NULL;
  for (int i = 0; i < r.h->cfg.layers; i++)
    for (size_t t = 0; t < r.T; t++)
      if (r.caches[i].slots[t] != -1) {
        free(r.caches);
        FAIL("trainForward: a training forward keeps no keys or values (every slot must be -1)");
      }
  if (!r.h->tr && !(r.h->tr = trainer_create(r.h->d))) {
    free(r.caches);
    FAIL("trainForward: out of memory");
  }
  r.h->trained = 0;
  const int rc = trainer_forward(r.h->tr, r.x, (int)r.T, r.positions, r.branch, r.caches, r.lora);
  free(r.caches);
  if (rc != 0) FAIL("trainForward: out of memory");
  r.h->trained = (int)r.T;
  r.h->trained_lora = r.lora;
  return NULL;
}

/** obj[key] { a: Float32Array [r·in], b: Float32Array [out·r] } for a pair of rank r into g; 0 when malformed. */
static int get_grad(napi_env env, napi_value obj, const char *key, const lora_pair *p, long long in, long long out, lora_grad *g) {
  napi_value v;
  if (p->r == 0) return 1;
  if (!is_object(env, obj) || napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  g->a = get_array(env, v, "a", napi_float32_array, p->r * in, NULL, NULL);
  g->b = get_array(env, v, "b", napi_float32_array, out * p->r, NULL, NULL);
  return g->a && g->b;
}

// trainBackward(decoder, dx, positions, branch, caches, adapter, grads): after trainForward with the same
// positions, branch, caches and adapter; dx Float32Array [T·hidden], the gradient with respect to the last
// layer's rows (it ends as the gradient with respect to the first layer's input); grads[i] { qkv, o, gateup,
// down }, each { a, b } Float32Arrays shaped as the adapter's pair (written).
static napi_value train_backward(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  run_call r;
  if (!run_args(env, info, 7, argv, "trainBackward", &r)) return NULL;
  handle *h = r.h;
  if (!h->tr || h->trained != (int)r.T || h->trained_lora != r.lora || !r.lora) {
    free(r.caches);
    FAIL("trainBackward: no trainForward of these tokens with this adapter before it");
  }
  const decoder_config *c = &h->cfg;
  const long long C = c->hidden, Q = (long long)c->heads * c->head_dim, KV = (long long)c->kv_heads * c->head_dim, F = c->ffn;
  lora_layer_grad *grads = calloc((size_t)c->layers, sizeof(lora_layer_grad));
  uint32_t n = 0;
  int ok = grads && napi_get_array_length(env, argv[6], &n) == napi_ok && (int)n == c->layers;
  for (int i = 0; ok && i < c->layers; i++) {
    napi_value L;
    const lora_layer *p = &r.lora[i];
    lora_layer_grad *g = &grads[i];
    ok = napi_get_element(env, argv[6], (uint32_t)i, &L) == napi_ok && get_grad(env, L, "qkv", &p->qkv, C, Q + 2 * KV, &g->qkv) &&
         get_grad(env, L, "o", &p->o, Q, C, &g->o) && get_grad(env, L, "gateup", &p->gateup, C, 2 * F, &g->gateup) && get_grad(env, L, "down", &p->down, F, C, &g->down);
  }
  const int rc = ok ? trainer_backward(h->tr, r.x, r.positions, r.branch, r.caches, r.lora, grads) : 0;
  free(r.caches);
  free(grads);
  if (!ok) FAIL("trainBackward: grads needs per layer { qkv, o, gateup, down } of { a, b } shaped as the adapter's pairs");
  if (rc != 0) FAIL("trainBackward: out of memory");
  h->trained = 0;
  return NULL;
}

/** obj[key] as a LoRA pair { a: Float32Array [rank·in], b: Float32Array [out·rank], rank } (rank 0: none); 0 when malformed. */
static int get_pair(napi_env env, handle *h, napi_value obj, const char *key, long long in, long long out, lora_pair *p) {
  napi_value v;
  if (!is_object(env, obj) || napi_get_named_property(env, obj, key, &v) != napi_ok || !get_int(env, v, "rank", &p->r) || p->r < 0 || p->r > 65536) return 0;
  napi_value a = NULL, b = NULL;
  p->a = get_array(env, v, "a", napi_float32_array, p->r * in, &a, NULL);
  p->b = get_array(env, v, "b", napi_float32_array, out * p->r, &b, NULL);
  if (p->r == 0) return 1;
  if (!p->a || !p->b) return 0;
  // The adapter's own a and b transposed (lora_pair.at, .bt), freed with it: a and b may change after this
  // call, the adapter does not.
  float *at = malloc(sizeof(float) * (size_t)p->r * (size_t)in), *bt = malloc(sizeof(float) * (size_t)p->r * (size_t)out);
  if (!at || !bt) {
    free(at);
    free(bt);
    return 0;
  }
  transpose_f32(p->a, (int)in, p->r, (int)in, at);
  transpose_f32(p->b, p->r, (int)out, p->r, bt);
  p->at = at;
  p->bt = bt;
  return napi_create_reference(env, a, 1, &h->refs[h->nrefs++]) == napi_ok && napi_create_reference(env, b, 1, &h->refs[h->nrefs++]) == napi_ok;
}

// createAdapter(decoder, layers): layers[i] { qkv, o, gateup, down }, each { a, b, rank } as the ONNX graph's
// lora_a/lora_b inputs (b already scaled). The adapter serves every decoder of the same shape; it keeps its
// own transposed copies of a and b as they were at this call.
static napi_value create_adapter(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const handle *d = argc == 2 ? unwrap(env, argv[0]) : NULL;
  if (!d || !d->d) FAIL("createAdapter(decoder, layers): no live decoder");
  const decoder_config c = d->cfg;
  uint32_t n;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || (int)n != c.layers) FAIL("createAdapter: layers needs one entry per layer");
  handle *h = calloc(1, sizeof(handle));
  if (!h || !(h->refs = calloc((size_t)c.layers * 8, sizeof(napi_ref))) || !(h->lora = calloc((size_t)c.layers, sizeof(lora_layer))))
    return give_up(env, h, "createAdapter: out of memory");
  h->cfg = c;
  const long long C = c.hidden, Q = (long long)c.heads * c.head_dim, KV = (long long)c.kv_heads * c.head_dim, F = c.ffn;
  for (int i = 0; i < c.layers; i++) {
    napi_value L;
    lora_layer *l = &h->lora[i];
    if (napi_get_element(env, argv[1], (uint32_t)i, &L) != napi_ok || !get_pair(env, h, L, "qkv", C, Q + 2 * KV, &l->qkv) ||
        !get_pair(env, h, L, "o", Q, C, &l->o) || !get_pair(env, h, L, "gateup", C, 2 * F, &l->gateup) || !get_pair(env, h, L, "down", F, C, &l->down)) {
      char msg[120];
      snprintf(msg, sizeof msg, "createAdapter: layer %d: a pair is not { a, b, rank } of this decoder's sizes", i);
      return give_up(env, h, msg);
    }
  }
  return wrap(env, h);
}

// createHead(config, table, norm, threads, file?): config { vocab, hidden, type: 0 Q4_0 | 1 Q8_0, eps, softcap,
// level }; table: vocab rows of blocks, a Uint8Array or a byte offset into `file`; norm: Float32Array [hidden] (1 + w).
static napi_value create_head(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[5];
  if (!create_args(env, info, 5, 4, argv, &argc, "createHead(config, table, norm, threads, file?)")) return NULL;
  head_config c;
  int type, threads;
  if (!get_int(env, argv[0], "vocab", &c.vocab) || !get_int(env, argv[0], "hidden", &c.hidden) || !get_int(env, argv[0], "type", &type) ||
      !get_float(env, argv[0], "eps", &c.eps) || !get_float(env, argv[0], "softcap", &c.softcap) || !get_int(env, argv[0], "level", &c.level) ||
      napi_get_value_int32(env, argv[3], &threads) != napi_ok)
    FAIL("createHead: config needs vocab, hidden, type, eps, softcap, level; threads a number");
  if (c.vocab < 1 || c.hidden < QK || c.hidden % QK || c.hidden > 65536 || (type != HEAD_Q4_0 && type != HEAD_Q8_0) || (c.level != 0 && c.level != 4) ||
      threads < 1 || threads > 256)
    FAIL("createHead: unsupported shape or type");
  c.type = (head_type)type;
  const long long bytes = (long long)c.vocab * (c.hidden / QK) * (type == HEAD_Q4_0 ? (long long)sizeof(block_q4_0) : (long long)sizeof(block_q8_0));
  handle *h = calloc(1, sizeof(handle));
  if (!h || !(h->refs = calloc(1, sizeof(napi_ref)))) return give_up(env, h, "createHead: out of memory");
  if (!map_file_arg(env, h, argc, argv, 4)) return give_up(env, h, "createHead: the model file cannot be mapped");
  const void *table = weight_at(env, h, argv[1], bytes, 1);
  const float *norm = typed(env, argv[2], napi_float32_array, c.hidden, NULL);
  if (!table || !norm) return give_up(env, h, "createHead: the table is neither the right size nor an offset into the file, or norm is not a Float32Array [hidden]");
  if (!(h->hd = head_create(&c, table, norm, threads))) return give_up(env, h, "createHead: out of memory or threads");
  // A head that keeps its own copy reads neither the file nor the array after this call.
  if (head_copied(h->hd)) drop_sources(env, h);
  h->hcfg = c;
  return wrap(env, h);
}

/** A head call's `count` arguments into argv, and the live head its first names; NULL, with `usage` thrown, when not. */
static handle *head_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  handle *h = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == count ? unwrap(env, argv[0]) : NULL;
  if (h && h->hd) return h;
  napi_throw_error(env, NULL, usage);
  return NULL;
}

// A head call's count of NaN or ±Infinity logits as its result; a negative count is out of memory (`what` names the call).
static napi_value nonfinite_count(napi_env env, int bad, const char *what) {
  if (bad < 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s: out of memory", what);
    FAIL(msg);
  }
  napi_value result;
  CHECK(napi_create_int32(env, bad, &result));
  return result;
}

// The rows [n·hidden] of a head call (argv[1], n in argv[2]), or NULL with an exception thrown.
static const float *head_rows(napi_env env, const handle *h, napi_value *argv, int *n, const char *what) {
  char msg[80];
  if (napi_get_value_int32(env, argv[2], n) != napi_ok || *n < 1 || *n > 1 << 20) {
    snprintf(msg, sizeof msg, "%s: n must be a positive row count", what);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  const float *rows = typed(env, argv[1], napi_float32_array, (long long)*n * h->hcfg.hidden, NULL);
  if (!rows) {
    snprintf(msg, sizeof msg, "%s: rows has the wrong type or size", what);
    napi_throw_error(env, NULL, msg);
  }
  return rows;
}

// logits(head, rows, n, out): rows Float32Array [n·hidden], out Float32Array [n·vocab]. Returns how many logits are
// NaN or ±Infinity.
static napi_value logits(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  handle *h = head_args(env, info, 4, argv, "logits(head, rows, n, out): no live head");
  int n;
  const float *rows = h ? head_rows(env, h, argv, &n, "logits") : NULL;
  if (!rows) return NULL;
  float *out = typed(env, argv[3], napi_float32_array, (long long)n * h->hcfg.vocab, NULL);
  if (!out) FAIL("logits: out has the wrong type or size");
  return nonfinite_count(env, head_logits(h->hd, rows, n, out), "logits");
}

// logProbs(head, rows, n, pickRow, pickId, out): rows Float32Array [n·hidden]; pickRow, pickId Int32Array [m]
// (a row < n, an id < vocab); out Float64Array [m]: log softmax of pick j's row at its id (head_log_probs).
// Returns how many logits of the rows are NaN or ±Infinity.
static napi_value log_probs(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  handle *h = head_args(env, info, 6, argv, "logProbs(head, rows, n, pickRow, pickId, out): no live head");
  int n;
  const float *rows = h ? head_rows(env, h, argv, &n, "logProbs") : NULL;
  if (!rows) return NULL;
  size_t m = 0;
  const int32_t *pick_row = typed(env, argv[3], napi_int32_array, -1, &m);
  const int32_t *pick_id = pick_row ? typed(env, argv[4], napi_int32_array, (long long)m, NULL) : NULL;
  double *out = pick_id ? typed(env, argv[5], napi_float64_array, (long long)m, NULL) : NULL;
  if (!pick_row || !pick_id || !out || m == 0) FAIL("logProbs: pickRow, pickId or out has the wrong type or size");
  for (size_t j = 0; j < m; j++)
    if (pick_row[j] < 0 || pick_row[j] >= n || pick_id[j] < 0 || pick_id[j] >= h->hcfg.vocab) FAIL("logProbs: a pick is outside the rows or the vocabulary");
  return nonfinite_count(env, head_log_probs(h->hd, rows, n, pick_row, pick_id, (int)m, out), "logProbs");
}

// choose(head, row, top, among, out, ids): row Float32Array [hidden]; top ≥ 1; among null or an Int32Array of
// vocabulary ids; out Float32Array [vocab]; ids an Int32Array. Returns { exact, nonFinite, listed }: how many rows
// were computed exactly, how many of those (of `among`) are NaN or ±Infinity, and how many of ids hold them
// (−1: they did not fit, or every row was exact) (head_choose).
static napi_value choose(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  handle *h = head_args(env, info, 6, argv, "choose(head, row, top, among, out, ids): no live head");
  if (!h) return NULL;
  int top;
  if (napi_get_value_int32(env, argv[2], &top) != napi_ok || top < 1) FAIL("choose: top must be a positive count");
  const float *row = typed(env, argv[1], napi_float32_array, h->hcfg.hidden, NULL);
  float *out = typed(env, argv[4], napi_float32_array, h->hcfg.vocab, NULL);
  if (!row || !out) FAIL("choose: row or out has the wrong type or size");
  napi_valuetype kind;
  CHECK(napi_typeof(env, argv[3], &kind));
  const int32_t *among = NULL;
  size_t n_among = 0;
  if (kind != napi_null && kind != napi_undefined) {
    if (!(among = typed(env, argv[3], napi_int32_array, -1, &n_among)) || n_among > (size_t)h->hcfg.vocab)
      FAIL("choose: among is not an Int32Array of at most vocab ids");
    for (size_t i = 0; i < n_among; i++)
      if (among[i] < 0 || among[i] >= h->hcfg.vocab) FAIL("choose: an id in among is outside the vocabulary");
  }
  size_t ids_cap = 0;
  int32_t *ids = typed(env, argv[5], napi_int32_array, -1, &ids_cap);
  if (!ids) FAIL("choose: ids is not a non-empty Int32Array");
  int nonfinite = 0, listed = -1;
  const int exact = head_choose(h->hd, row, top, among, (int)n_among, out, &nonfinite, ids, ids_cap > INT32_MAX ? INT32_MAX : (int)ids_cap, &listed);
  if (exact < 0) FAIL("choose: out of memory");
  napi_value result, v;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_int32(env, exact, &v));
  CHECK(napi_set_named_property(env, result, "exact", v));
  CHECK(napi_create_int32(env, nonfinite, &v));
  CHECK(napi_set_named_property(env, result, "nonFinite", v));
  CHECK(napi_create_int32(env, listed, &v));
  CHECK(napi_set_named_property(env, result, "listed", v));
  return result;
}

// loss(head, rows, n, labels, logits, loss, hit, dRows): rows Float32Array [n·hidden] (the last layer's outputs,
// before the final norm); labels Int32Array [n] of vocabulary ids; logits Float32Array [n·vocab] (scratch); loss and
// hit Float32Array [n]; dRows null or Float32Array [n·hidden], the gradient with respect to the rows
// (head.h's head_loss). Returns how many logits are NaN or ±Infinity (0: every output written; else none is).
static napi_value loss(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  handle *h = head_args(env, info, 8, argv, "loss(head, rows, n, labels, logits, loss, hit, dRows): no live head");
  int n;
  const float *rows = h ? head_rows(env, h, argv, &n, "loss") : NULL;
  if (!rows) return NULL;
  const long long C = h->hcfg.hidden, V = h->hcfg.vocab;
  const int32_t *labels = typed(env, argv[3], napi_int32_array, n, NULL);
  float *scratch = typed(env, argv[4], napi_float32_array, n * V, NULL);
  float *out = typed(env, argv[5], napi_float32_array, n, NULL);
  float *hit = typed(env, argv[6], napi_float32_array, n, NULL);
  if (!labels || !scratch || !out || !hit) FAIL("loss: labels, logits, loss or hit has the wrong type or size");
  for (int i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= V) FAIL("loss: a label is outside the vocabulary");
  napi_valuetype kind;
  CHECK(napi_typeof(env, argv[7], &kind));
  float *d_rows = NULL;
  if (kind != napi_null && kind != napi_undefined && !(d_rows = typed(env, argv[7], napi_float32_array, n * C, NULL)))
    FAIL("loss: dRows is neither null nor a Float32Array [n·hidden]");
  const int bad = head_loss(h->hd, rows, n, labels, scratch, out, hit, d_rows);
  if (bad == -2) FAIL("loss: this head caps its logits");
  return nonfinite_count(env, bad, "loss");
}

// adamw(param, grad, m, v, scalars): one AdamW step (optim.h's adamw_update) over Float32Arrays of one length,
// param, m and v updated in place; scalars { decay, w1, b2, w2, negStep, bc2Sqrt, eps }, each rounded to float32.
static napi_value adamw(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc;
  if (!create_args(env, info, 5, 5, argv, &argc, "adamw(param, grad, m, v, scalars)")) return NULL;
  void *p, *g, *m, *v;
  size_t n, len;
  if (!typed_info(env, argv[0], napi_float32_array, -1, &p, &n) || !typed_info(env, argv[1], napi_float32_array, (long long)n, &g, &len) ||
      !typed_info(env, argv[2], napi_float32_array, (long long)n, &m, &len) || !typed_info(env, argv[3], napi_float32_array, (long long)n, &v, &len))
    FAIL("adamw: param, grad, m and v must be Float32Arrays of one length");
  adamw_scalars s;
  if (!get_float(env, argv[4], "decay", &s.decay) || !get_float(env, argv[4], "w1", &s.w1) || !get_float(env, argv[4], "b2", &s.b2) ||
      !get_float(env, argv[4], "w2", &s.w2) || !get_float(env, argv[4], "negStep", &s.neg_step) || !get_float(env, argv[4], "bc2Sqrt", &s.bc2_sqrt) ||
      !get_float(env, argv[4], "eps", &s.eps))
    FAIL("adamw: scalars needs decay, w1, b2, w2, negStep, bc2Sqrt, eps (numbers)");
  adamw_update(p, g, m, v, n, &s);
  return NULL;
}

// sumSquares(grad): Σ grad[j]² of a Float32Array in float64, in order (optim.h's grad_sum_squares).
static napi_value sum_squares(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  size_t argc;
  if (!create_args(env, info, 1, 1, argv, &argc, "sumSquares(grad)")) return NULL;
  void *g;
  size_t n;
  if (!typed_info(env, argv[0], napi_float32_array, -1, &g, &n)) FAIL("sumSquares: grad must be a Float32Array");
  CHECK(napi_create_double(env, grad_sum_squares(g, n), &out));
  return out;
}

// scale(grad, coef): grad[j] = grad[j]·coef in float32 (coef rounded to float32), in place.
static napi_value scale(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  if (!create_args(env, info, 2, 2, argv, &argc, "scale(grad, coef)")) return NULL;
  void *g;
  size_t n;
  double coef;
  if (!typed_info(env, argv[0], napi_float32_array, -1, &g, &n) || napi_get_value_double(env, argv[1], &coef) != napi_ok) FAIL("scale: grad must be a Float32Array, coef a number");
  grad_scale(g, n, (float)coef);
  return NULL;
}

static napi_value destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle *h = argc == 1 ? unwrap(env, argv[0]) : NULL;
  if (h) release(env, h);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"supported", NULL, supported, NULL, NULL, NULL, napi_default, NULL},
    {"createDecoder", NULL, create_decoder, NULL, NULL, NULL, napi_default, NULL},
    {"createAdapter", NULL, create_adapter, NULL, NULL, NULL, napi_default, NULL},
    {"run", NULL, run, NULL, NULL, NULL, napi_default, NULL},
    {"trainForward", NULL, train_forward, NULL, NULL, NULL, napi_default, NULL},
    {"trainBackward", NULL, train_backward, NULL, NULL, NULL, napi_default, NULL},
    {"createHead", NULL, create_head, NULL, NULL, NULL, napi_default, NULL},
    {"logits", NULL, logits, NULL, NULL, NULL, napi_default, NULL},
    {"choose", NULL, choose, NULL, NULL, NULL, napi_default, NULL},
    {"loss", NULL, loss, NULL, NULL, NULL, napi_default, NULL},
    {"logProbs", NULL, log_probs, NULL, NULL, NULL, napi_default, NULL},
    {"destroy", NULL, destroy, NULL, NULL, NULL, napi_default, NULL},
    {"adamw", NULL, adamw, NULL, NULL, NULL, napi_default, NULL},
    {"sumSquares", NULL, sum_squares, NULL, NULL, NULL, napi_default, NULL},
    {"scale", NULL, scale, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

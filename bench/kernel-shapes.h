// The 270M's matrix shapes, for the kernel benchmarks (bench/gemv-kernels.c, bench/gemm-kernels.c).
#pragma once

typedef struct {
  const char *name;
  int rows, K, count;  // count: matrices of this shape per token (18 layers)
} shape;

/** The layers' matrices, then the all-Q4_0 head (the last: the first LAYER_SHAPES are the layers'). */
static const shape SHAPES[] = {
  {"q|k|v 1536x640 (x18)", 1536, 640, 18}, {"o 640x1024 (x18)", 640, 1024, 18}, {"gate, up 2048x640 (x36)", 2048, 640, 36},
  {"down 640x2048 (x18)", 640, 2048, 18},  {"all-Q4_0 head 262144x640", 262144, 640, 1},
};
#define LAYER_SHAPES (sizeof(SHAPES) / sizeof(SHAPES[0]) - 1)

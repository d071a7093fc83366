#!/usr/bin/env bash
# Generation benchmark through the CLI, as issue 3 states its targets: `gemma-tune bench` on the real
# 270M shape with Q4_0 weights (random values; Q4_0 linears, Q8_0 embedding as in Google's QAT GGUF),
# 2 threads: load time, prefill tokens/s (512 tokens), decode tokens/s (128 after a 64-token prompt),
# classify latency (100-token input, 4 labels), peak RSS.
# usage: bash bench/generate.sh [extra bench flags, e.g. --json or --threads 1]   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
model=bench/out/gemma3-270m-random-q4_0.gguf
mkdir -p bench/out
if [ ! -f "$model" ]; then
  node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out "$model"
fi
node dist/cli.js bench --model "$model" --threads 2 "$@"

#!/usr/bin/env bash
# Side-by-side with llama.cpp on the same file: the 270M shape with Q4_0 blocks and a Q8_0 embedding (as
# Google's QAT GGUF; EMBEDDING=q4_0 for an all-Q4_0 file), 2 threads, one after the other in one run.
#   llama.cpp: llama-bench -p 512 -n 128 -t 2 (pp512 = prefill tok/s, tg128 = decode tok/s), peak RSS
#   gemma-tune: `gemma-tune bench` (prefill 512, decode 128 after a 64-token prompt, classify, peak RSS)
# usage: LLAMA_BENCH=/path/to/llama-bench bash bench/compare-llamacpp.sh      (after npm run build)
#        LLAMA_BENCH=/path/to/llama.cpp-source bash bench/compare-llamacpp.sh (builds llama-bench under /tmp)
#        env: ROUNDS=2 (each side runs ROUNDS times, alternating), THREADS=2, EMBEDDING=q8_0|q4_0,
#        ONNX=1 (also gemma-tune with --decode onnx: decode steps on ONNX Runtime rather than the native kernels)
# llama.cpp is never part of this repository: fetch its source yourself (gguf-gemma3.md says which) and
# build outside the tree. Without LLAMA_BENCH the script says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LLAMA_BENCH:-}" ]; then
  echo "compare-llamacpp: LLAMA_BENCH is not set; skipping (set it to a llama-bench binary or a llama.cpp source folder)"
  exit 0
fi
threads=${THREADS:-2}
rounds=${ROUNDS:-1}
embedding=${EMBEDDING:-q8_0}

bin=$LLAMA_BENCH
if [ -d "$bin" ]; then
  build=/tmp/llama-bench-build
  if [ ! -x "$build/bin/llama-bench" ]; then
    echo "building llama-bench from $bin into $build (a few minutes)" >&2
    cmake -S "$bin" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF >&2
    cmake --build "$build" --target llama-bench -j "$(nproc)" >&2
  fi
  bin=$build/bin/llama-bench
fi
[ -x "$bin" ] || { echo "compare-llamacpp: $bin is not an executable llama-bench" >&2; exit 1; }
[ -f dist/cli.js ] || { echo "compare-llamacpp: dist/cli.js is missing; run npm run build first" >&2; exit 1; }

model=bench/out/270m-q4.gguf
[ "$embedding" = q4_0 ] && model=bench/out/270m-q4e4.gguf
mkdir -p bench/out
if [ ! -f "$model" ]; then
  node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --embedding "$embedding" --seed 1 --out "$model"
fi

# Peak RSS (MB) of a command, by GNU time when present.
peak() {
  local out=$1
  shift
  if [ -x /usr/bin/time ]; then /usr/bin/time -f '%M' -o "$out" "$@"; else "$@"; echo 0 > "$out"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: $model ($(du -m "$model" | cut -f1) MB), threads $threads, $(nproc) cores"
for round in $(seq 1 "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  # A llama.cpp build keeps its ggml libraries next to llama-bench; put them on the loader path.
  peak "$tmp/llama.rss" env LD_LIBRARY_PATH="$(dirname "$bin")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin" -m "$model" -p 512 -n 128 -t "$threads" -r 3 -o json > "$tmp/llama.json" 2> "$tmp/llama.err" \
    || { cat "$tmp/llama.err" >&2; exit 1; }
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const pp = r.find((x) => x.n_prompt > 0), tg = r.find((x) => x.n_gen > 0);
    const kb = Number(require("fs").readFileSync(process.argv[2], "utf8").trim());
    console.log(`round ${process.argv[3]} llama.cpp  (load ${process.argv[4]}): prefill ${pp.avg_ts.toFixed(1)} tok/s, decode ${tg.avg_ts.toFixed(1)} tok/s, peak RSS ${(kb / 1024).toFixed(0)} MB`);
  ' "$tmp/llama.json" "$tmp/llama.rss" "$round" "$load"
  for decode in native ${ONNX:+onnx}; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    node dist/cli.js bench --model "$model" --threads "$threads" --decode "$decode" --json > "$tmp/ours.json"
    node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(`round ${process.argv[2]} gemma-tune (load ${process.argv[3]}): prefill ${r.prefill_tok_s.toFixed(1)} tok/s, decode ${r.decode_tok_s.toFixed(1)} tok/s, peak RSS ${r.peak_rss_mb.toFixed(0)} MB, classify ${r.classify_ms.toFixed(0)} ms, load ${r.load_s.toFixed(2)} s; decode steps: ${r.decode_by}`);
    ' "$tmp/ours.json" "$round" "$load"
  done
done

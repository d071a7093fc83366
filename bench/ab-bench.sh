#!/usr/bin/env bash
# `gemma-tune bench` of this build against another build, alternating in one sitting (fresh process each):
#   bash bench/ab-bench.sh OTHER_CLI MODEL [RUNS] [-- extra bench flags]
# Prints each run's load, prefill, decode, classify and peak RSS, then the medians and this/other ratios.
# The converted-model cache is a temporary $GEMMA_TUNE_CACHE, filled by a first run of this build
# (printed, not counted), so this build's loads are the loads of a model loaded before.
set -euo pipefail
other=$1 model=$2 runs=${3:-3}
shift $(( $# < 3 ? $# : 3 )); [[ ${1:-} == -- ]] && shift
here=$(cd "$(dirname "$0")/.." && pwd)/dist/cli.js
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
one() { GEMMA_TUNE_CACHE=$cache node "$1" bench --model "$model" --json "${@:2}"; }
echo "this build, first load (fills the cache): $(one "$here" "$@" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).load_s)') s"
out=$(mktemp)
for ((i = 0; i < runs; i++)); do
  echo "other $(one "$other" "$@")" | tee -a "$out"
  echo "this $(one "$here" "$@")" | tee -a "$out"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => { const i = l.indexOf(" "); return [l.slice(0, i), JSON.parse(l.slice(i + 1))]; });
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
for (const k of ["load_s", "prefill_tok_s", "decode_tok_s", "classify_ms", "peak_rss_mb"]) {
  const o = med(rows.filter((r) => r[0] === "other").map((r) => r[1][k])), t = med(rows.filter((r) => r[0] === "this").map((r) => r[1][k]));
  console.log(`${k}: other ${o}, this ${t}, this/other ${(t / o).toFixed(3)}`);
}' "$out"
rm -f "$out"

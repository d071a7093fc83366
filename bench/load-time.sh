#!/usr/bin/env bash
# Load time of a model, this build against another build of the CLI, alternating in one sitting:
#   bash bench/load-time.sh OTHER_CLI MODEL [RUNS]
# e.g. OTHER_CLI=/tmp/old/dist/cli.js, a worktree of the previous commit built with `npm run build`.
# Each run is a fresh process (`gemma-tune bench --json`, load_s: file to runnable session). The
# converted-model cache lives in a temporary $GEMMA_TUNE_CACHE: this build's first run converts and fills
# it (reported apart), the rest open from it. Prints every run and the medians.
set -euo pipefail
other=$1 model=$2 runs=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)/dist/cli.js
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
load() { GEMMA_TUNE_CACHE=$cache node "$1" bench --model "$model" --prompt-tokens 16 --gen-tokens 4 --json | node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(r.load_s, r.weights_from ?? "converted")'; }
echo "this build, first load (fills the cache): $(load "$here")"
a=() b=()
for ((i = 0; i < runs; i++)); do
  x=$(load "$other"); y=$(load "$here")
  echo "run $i: other $x | this $y"
  a+=("${x%% *}"); b+=("${y%% *}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ma=$(median "${a[@]}") mb=$(median "${b[@]}")
echo "median load: other $ma s, this $mb s, ratio $(node -e "console.log(($ma / $mb).toFixed(2))")×"

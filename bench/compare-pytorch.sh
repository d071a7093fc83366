#!/usr/bin/env bash
# Side-by-side with PyTorch on issue 4's training reference, one after the other in one run:
#   PyTorch:    bench/pytorch_lora.py, fp32 weights (Debian's python3-torch 1.13 + OpenBLAS/OpenMP)
#   gemma-tune: `gemma-tune bench --train` on the Q4_0 270M file
# Same work on both sides: the 270M shape, LoRA r8 / alpha 16 on all seven projections, steps of 4 × 128
# tokens with the last 32 of each sequence labelled (LM head only there), AdamW lr 2e-4, clip 1, 2 threads;
# 2 warm-up steps then 8 timed. Training tokens/s = tokens in the batch / step time on both sides.
# Each side runs ROUNDS times, alternating, each run under `flock /tmp/bench.lock`; the end prints the
# ratios gemma-tune / PyTorch for speed (wall time, and CPU seconds per step: on a busy machine the
# steadier of the two; both sides' thread pools spin while waiting, so CPU time counts that too) and peak RSS.
# usage: bash bench/compare-pytorch.sh      (after npm run build; needs apt-get install python3-torch libopenblas0-openmp)
#        env: ROUNDS=2, THREADS=2, MICRO_BATCH=2 (gemma-tune runs each step of 4 as micro-batches of this size
#             with accumulation: the same update), MODEL=bench/out/270m-q4.gguf, PYTHON=/usr/bin/python3
# Without an importable torch the script says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "compare-pytorch: torch is not importable by $py; skipping (apt-get install python3-torch libopenblas0-openmp)"
  exit 0
fi
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
micro=${MICRO_BATCH:-2}
model=${MODEL:-bench/out/270m-q4.gguf}
[ -f dist/cli.js ] || { echo "compare-pytorch: dist/cli.js is missing; run npm run build first" >&2; exit 1; }
mkdir -p bench/out
if [ ! -f "$model" ]; then
  node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --embedding q8_0 --seed 1 --out "$model"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "start: $(uptime)"
echo "shape: 270M, LoRA r8 on q,k,v,o,gate,up,down, steps of 4 × 128 tokens (last 32 labelled), 2 warm-up + 8 timed steps, $threads threads"
echo "gemma-tune: $model (Q4_0 base), steps of 4 as micro-batches of $micro; PyTorch: fp32, $("$py" -c 'import torch; print(torch.__version__)')"
for round in $(seq 1 "$rounds"); do
  flock /tmp/bench.lock "$py" bench/pytorch_lora.py --threads "$threads" --rank 8 --batch 4 --tokens 128 --completion 32 --warmup 2 --steps 8 \
    > "$tmp/torch.out" 2> "$tmp/torch.err" || { cat "$tmp/torch.out" "$tmp/torch.err" >&2; exit 1; }
  tail -n 1 "$tmp/torch.out" > "$tmp/torch.$round.json"
  echo "round $round PyTorch    (load $(cut -d' ' -f1-3 /proc/loadavg)): $(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${r.train_tok_s.toFixed(1)} tok/s (${r.step_s.toFixed(2)} s/step, ${r.cpu_s_per_step.toFixed(2)} CPU s/step), peak RSS ${r.peak_rss_mb.toFixed(0)} MB`);' "$tmp/torch.$round.json")"
  # 50 examples hold out 10 for validation: 40 train = 10 steps of 4 in one epoch, the first 2 as warm-up.
  flock /tmp/bench.lock node dist/cli.js bench --model "$model" --train --threads "$threads" --rank 8 --examples 50 --tokens 128 --completion 32 \
    --epochs 1 --batch 4 --micro-batch "$micro" --warmup-steps 2 --json > "$tmp/ours.$round.json"
  echo "round $round gemma-tune (load $(cut -d' ' -f1-3 /proc/loadavg)): $(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${r.train_tok_s.toFixed(1)} tok/s (${r.step_s.toFixed(2)} s/step, ${r.cpu_s_per_step.toFixed(2)} CPU s/step), peak RSS ${r.peak_rss_mb.toFixed(0)} MB`);' "$tmp/ours.$round.json")"
done
node -e '
  const fs = require("fs");
  const [dir, rounds] = [process.argv[1], Number(process.argv[2])];
  const read = (side) => Array.from({ length: rounds }, (_, i) => JSON.parse(fs.readFileSync(`${dir}/${side}.${i + 1}.json`, "utf8")));
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const t = read("torch"), o = read("ours");
  const ts = median(t.map((r) => r.train_tok_s)), os = median(o.map((r) => r.train_tok_s));
  const tm = Math.max(...t.map((r) => r.peak_rss_mb)), om = Math.max(...o.map((r) => r.peak_rss_mb));
  const per = o.map((r, i) => (r.train_tok_s / t[i].train_tok_s).toFixed(2)).join(", ");
  const tc = median(t.map((r) => r.cpu_s_per_step)), oc = median(o.map((r) => r.cpu_s_per_step));
  console.log(`PyTorch:    ${ts.toFixed(1)} tok/s, ${tc.toFixed(2)} CPU s/step (medians of ${rounds}), peak RSS ${tm.toFixed(0)} MB`);
  console.log(`gemma-tune: ${os.toFixed(1)} tok/s, ${oc.toFixed(2)} CPU s/step (medians of ${rounds}), peak RSS ${om.toFixed(0)} MB`);
  console.log(`ratio gemma-tune / PyTorch: speed ${(os / ts).toFixed(2)}× (per round: ${per}), by CPU time per step ${(tc / oc).toFixed(2)}×, peak RSS ${(om / tm).toFixed(2)}× (goal: speed ≥ 1.5×, RSS ≤ 0.5×)`);
' "$tmp" "$rounds"
echo "end: $(uptime)"

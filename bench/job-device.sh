#!/usr/bin/env bash
# The training job (issue 17) on the device machine: one GPU with torch, transformers, PEFT and accelerate,
# no node and no network. Prepare a folder D here (after npm run build), carry it, run this there:
#   D/node.xz        xz -c "$(readlink -f "$(command -v node)")"
#   D/mm.js          make-model alone (no onnxruntime): esbuild an entry that calls makeModelCommand.run(argv)
#   D/job/           gemma-tune export-job --task examples/ticket-triage (a copy in a .gemma/tasks folder) --out D/job
#   D/init270/       writePeftAdapter(initLora(GEMMA3_270M, 16, 32, ALL_TARGETS, 42))
#   D/peft_logits.py test/job/peft_logits.py;  D/gemma3-1b.config.json  bench/gemma3-1b.config.json
# Then compare here: gemma-tune import-adapter of the returned adapter, gemma-tune logits --precision f32 against
# peft270.f32, the dumped tokens against our tokenizer's, and gemma-tune train --init-adapter D/init270 --steps 4
# against out270init/log.jsonl (README, "Training on GPUs", has the numbers of the run on an H100).
#
# Issue 17 on one GPU (the device machine: torch, transformers, peft, accelerate; no node, no network):
#   1. a random-weight Gemma 3 270M-shape HF folder (f32, seed 7), made by our make-model (carried node)
#   2. the exported ticket-triage job under `accelerate launch --num_processes 1`, float32: the seeded
#      init (the extension's), text examples through tokenizers (--dump-tokens), 12 steps, early stopping
#   3. the same from an adapter our writer wrote (--init-adapter), 4 steps
#   4. PEFT's logits (float32, TF32 off) of the kept adapter and of the base on 12 tokens
#   5. tokens/s: 512 examples, steps of 32, bf16 and f32 (270M); then the 1B shape in bf16 if time allows
# Results in $OUT: adapter_model.safetensors, peft270.f32, base270.f32, results.tgz (configs, metrics, logs).
set -uo pipefail
D=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:?}
T0=$(date +%s)
exec > >(tee -a "$OUT/log.txt") 2>&1
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
W=/tmp/w && mkdir -p $W/keep
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" $D/node.xz $W/node && chmod +x $W/node
stamp "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader); $(nproc) cores"
python3 -c "import torch, transformers, peft, accelerate, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'tokenizers', tokenizers.__version__)"
launch=(python3 -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)
$W/node $D/mm.js --config ${SHAPE270:-270m} --format safetensors --dtype f32 --seed 7 --out $W/m270 >/dev/null
stamp "270M-shape folder made"
cd $D/job
timeout 120 "${launch[@]}" train.py --base $W/m270 --out $W/out270 --dtype float32 --dump-tokens $W/keep/tokens270.jsonl
stamp "job run done (rc $?)"
timeout 60 "${launch[@]}" train.py --base $W/m270 --out $W/out270init --dtype float32 --init-adapter $D/init270 --max-steps 4
stamp "init-adapter run done (rc $?)"
timeout 60 python3 $D/peft_logits.py $W/m270 $W/out270/adapter 2,105,347,345,331,344,14,297,338,327,345,345 $OUT/peft270.f32 --base-out $OUT/base270.f32
stamp "logits done (rc $?)"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
ex = [json.loads(l) for l in open("examples.jsonl")]
with open(f"{w}/big.jsonl", "w") as f:
    for i in range(512):
        e = json.loads(json.dumps(ex[i % len(ex)]))
        e["id"], e["heldOut"] = f"b{i}", False
        e["messages"][0]["content"] += f" (ticket {i})"
        f.write(json.dumps(e) + "\n")
job = json.load(open("job.json"))
job["hyperparameters"].update(batchSize=32, epochs=1, valSplit=0)
json.dump(job, open(f"{w}/job-thr.json", "w"))
PY
for dt in bfloat16 float32; do
  timeout 90 "${launch[@]}" train.py --base $W/m270 --job $W/job-thr.json --data $W/big.jsonl --out $W/thr270-$dt --dtype $dt | grep -E "^(base|step 16|Trained)"
  stamp "270M throughput $dt done"
done
if [ $(( $(date +%s) - T0 )) -lt 230 ]; then
  $W/node $D/mm.js --config ${SHAPE1B:-$D/gemma3-1b.config.json} --format safetensors --dtype bf16 --seed 7 --out $W/m1b >/dev/null
  stamp "1B-shape folder made"
  timeout 100 "${launch[@]}" train.py --base $W/m1b --job $W/job-thr.json --data $W/big.jsonl --out $W/thr1b-bf16 --dtype bfloat16 | grep -E "^(base|step 1/|step 16|Trained)"
  stamp "1B throughput bf16 done"
fi
python3 - "$W" <<'PY'
import json, sys, glob, os
w = sys.argv[1]
rows = []
for f in sorted(glob.glob(f"{w}/thr*/log.jsonl")):
    steps = [json.loads(l) for l in open(f) if '"step"' in l and json.loads(l)["type"] == "step"]
    timed = steps[3:]
    if timed:
        tok = sum(s["tokens"] for s in timed); sec = sum(s["tokens"] / s["tokensPerSec"] for s in timed)
        rows.append({"run": f.split("/")[-2], "steps": len(timed), "tokens": tok, "seconds": round(sec, 3), "tokens_per_s": round(tok / sec, 1), "first_loss": steps[0]["loss"]})
print(json.dumps(rows, indent=1))
json.dump(rows, open(f"{w}/keep/throughput.json", "w"), indent=1)
PY
cp $W/out270/adapter/adapter_model.safetensors $OUT/ 2>/dev/null
for r in out270 out270init; do mkdir -p $W/keep/$r && cp $W/$r/*.jsonl $W/keep/$r/ && cp $W/$r/adapter/*.json $W/keep/$r/ ; done 2>/dev/null
for r in $W/thr*; do mkdir -p $W/keep/$(basename $r) && cp $r/log.jsonl $W/keep/$(basename $r)/; done 2>/dev/null
tar -czf $OUT/results.tgz -C $W/keep .
stamp "all done"

#!/usr/bin/env bash
# WebGPU on a GPU machine that has no Node, npm or Vulkan loader of its own (the workplace's device machine:
# one NVIDIA H100/H200, 16 cores, CUDA image, no network). Two steps:
#
#   bash bench/webgpu-device.sh prepare DIR   here, after npm run build: DIR gets a node binary, the
#        onnxruntime-node package (its linux-x64 library, WebGPU EP inside, compressed), dist/cli.js, the
#        bench scripts below bundled to plain JS, the Vulkan loader (Debian's libvulkan1, unpacked there,
#        not into /) and bench/pytorch_lora.py with the 1B config: ~45 MB.
#   bash DIR/webgpu-device.sh run DIR OUT    there: the Vulkan loader pointed at the NVIDIA ICD, then
#        1. the adapter probe (its exact error if there is none, with what the loader sees)
#        2. bench/webgpuCheck.ts: WebGPU against the CPU, value by value, on the 270M shape (q4)
#        3. bench/webgpuPlacement.ts: which kernels ORT leaves on the CPU under the WebGPU EP
#        4. per shape (270M, then 1B: 26 layers, hidden 1152, intermediate 6912): `gemma-tune bench`
#           (512-token prefill, 128 decoded tokens, classify of 100 tokens × 4 labels) and `bench --train`
#           (the default fine-tune: 20 examples × 120 tokens, 40 labelled, 3 epochs, r16) on WebGPU and on
#           the CPU (all cores), and PyTorch on CUDA running the same LoRA step (r16, 4 × 120 tokens, 40 labelled)
#      Results: OUT/results.jsonl (one JSON object a run, tagged), OUT/log.txt (everything).
#      SHAPES (env): 270m 1b (default both).
#      STEPS (env) picks steps: checktiny check placement decode infer train traincpu3 (default: checktiny check
#      placement infer train).
# Random-weight models of the real shapes (Q4_0 layers, Q8_0 embedding) are generated there by make-model.
set -uo pipefail

mode=${1:?usage: webgpu-device.sh prepare DIR | run DIR OUT}
dir=${2:?DIR}

if [ "$mode" = prepare ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  rm -rf "$dir" && mkdir -p "$dir/app/dist" "$dir/app/bench" "$dir/app/node_modules" "$dir/gl"
  cp "$here/dist/cli.js" "$dir/app/dist/"
  for s in webgpuCheck webgpuPlacement webgpuDecode; do
    (cd "$here" && npx esbuild "bench/$s.ts" --bundle --platform=node --format=cjs --target=node20 --external:onnxruntime-node --outfile="$dir/app/bench/$s.js" --log-level=warning)
  done
  cp "$here/bench/pytorch_lora.py" "$here/bench/gemma3-1b.config.json" "$0" "$dir/"
  ort="$here/node_modules/onnxruntime-node"
  mkdir -p "$dir/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
  cp -r "$ort/package.json" "$ort/dist" "$dir/app/node_modules/onnxruntime-node/"
  cp "$ort/bin/napi-v6/linux/x64/onnxruntime_binding.node" "$dir/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/"
  xz -T0 -6 -c "$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1" > "$dir/libonnxruntime.so.1.xz"
  cp -r "$here/node_modules/onnxruntime-common" "$dir/app/node_modules/"
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > "$dir/node.xz"
  # The Vulkan loader (and vulkaninfo, for diagnosis) from Debian's archive, unpacked here into DIR/gl.
  lists=$(mktemp -d) && mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oDir::State::Lists=$lists"
  apt-get $o update >/dev/null && (cd "$dir/gl" && apt-get $o download libvulkan1 vulkan-tools >/dev/null)
  for f in "$dir"/gl/*.deb; do dpkg -x "$f" "$dir/gl/root"; done
  # Links would travel as links: keep plain files.
  find "$dir/gl/root" -type l -exec sh -c 'cp --remove-destination "$(readlink -f "$1")" "$1"' _ {} \;
  rm -f "$dir"/gl/*.deb "$dir"/gl/root/usr/bin/vkcube*
  du -sh "$dir"
  exit 0
fi

[ "$mode" = run ] || { echo "unknown mode $mode" >&2; exit 2; }
out=${3:?OUT}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
app="$dir/app"
bin=/tmp/webgpu-bin && mkdir -p "$bin"
t0=$(date +%s)
stamp() { echo "== [$(($(date +%s) - t0)) s] $*"; }

python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$dir/node.xz" "$bin/node" && chmod +x "$bin/node"
python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$dir/libonnxruntime.so.1.xz" "$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
node="$bin/node"
export PATH="$bin:$PATH"
# Dawn dlopens libvulkan.so.1; the loader finds the NVIDIA driver through its ICD manifest.
export LD_LIBRARY_PATH="$dir/gl/root/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:/usr/local/nvidia/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
icd=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -1)
[ -n "$icd" ] && export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
threads=$(nproc)
stamp "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); $threads cores; node $($node -v); ICD ${icd:-none}"
[ -n "$icd" ] && cat "$icd"
"$dir/gl/root/usr/bin/vulkaninfo" --summary 2>&1 | sed -n '/Devices:/,$p' | head -20

cli=("$node" "$app/dist/cli.js")
result() { # tag, then a command whose last stdout line is JSON
  local tag=$1; shift
  local line
  line=$("$@" | tail -n 1)
  echo "$tag: $line"
  if [ "${line:0:1}" = "{" ]; then echo "{\"run\":\"$tag\",\"result\":$line}" >> "$out/results.jsonl"; else echo "{\"run\":\"$tag\",\"failed\":true}" >> "$out/results.jsonl"; fi
}

stamp "1. onnxruntime-node's backends (the adapter itself is probed by step 2)"
(cd "$app" && "$node" -e 'console.log(JSON.stringify(require("onnxruntime-node").listSupportedBackends()))' 2>&1)

models=/tmp/webgpu-models && mkdir -p "$models"
stamp "making the 270M and 1B models (background)"
shapes=${SHAPES:-270m 1b}
("${cli[@]}" make-model --config 270m --format gguf --dtype q4_0 --embedding q8_0 --seed 1 --out "$models/270m-q4.gguf" >/dev/null &&
 if [[ " $shapes " == *" 1b "* ]]; then "${cli[@]}" make-model --config "$dir/gemma3-1b.config.json" --format gguf --dtype q4_0 --embedding q8_0 --seed 1 --out "$models/1b-q4.gguf" >/dev/null; fi) &
makers=$!

want() { [[ " ${STEPS:-checktiny check placement infer train} " == *" $1 "* ]]; }
made=false
models_made() { $made || { wait $makers; made=true; stamp "models made: $(ls $models | tr '\n' ' ')"; }; }

if want checktiny; then
  stamp "2. GPU against CPU on the tiny model (f32, q4)"
  "${cli[@]}" make-model --config tiny --format gguf --dtype f32 --seed 3 --out "$models/tiny-f32.gguf" >/dev/null
  "${cli[@]}" make-model --config tiny --format gguf --dtype q4_0 --seed 3 --out "$models/tiny-q4.gguf" >/dev/null
  timeout 120 "$node" "$app/bench/webgpuCheck.js" --model "$models/tiny-f32.gguf" --precision f32 --prompt 300 --threads "$threads"
  rc=$?
  if [ $rc -eq 1 ]; then
    stamp "values differ: again with runs of at most 16 tokens"
    timeout 120 "$node" "$app/bench/webgpuCheck.js" --model "$models/tiny-f32.gguf" --precision f32 --prompt 300 --threads "$threads" --max-chunk 16 --no-train
  fi
  if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
    stamp "WebGPU does not run here; stopping after diagnostics"
    ls -la /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d /dev/nvidia* /dev/dri 2>&1
    ldconfig -p | grep -i -E "vulkan|GLX_nvidia|nvidia-glcore" | head
    VK_LOADER_DEBUG=error,warn "$node" "$app/bench/webgpuCheck.js" --model "$models/tiny-f32.gguf" --precision f32 --prompt 8 --no-train 2>&1 | tail -20
    kill $makers 2>/dev/null
    exit 1
  fi
  timeout 120 "$node" "$app/bench/webgpuCheck.js" --model "$models/tiny-q4.gguf" --precision q4 --prompt 300 --threads "$threads"
fi
if want check; then
  stamp "2. GPU against CPU on the 270M shape (q4)"
  while [ ! -f "$models/270m-q4.gguf" ]; do sleep 1; done
  timeout 180 "$node" "$app/bench/webgpuCheck.js" --model "$models/270m-q4.gguf" --precision q4 --prompt 300 --threads "$threads"
fi

if want placement; then
  stamp "3. placement under the WebGPU EP (270M, q4)"
  while [ ! -f "$models/270m-q4.gguf" ]; do sleep 1; done
  timeout 120 "$node" "$app/bench/webgpuPlacement.js" --model "$models/270m-q4.gguf" --precision q4 --threads "$threads"
fi

for shape in $shapes; do
  m="$models/$shape-q4.gguf"
  [ "$shape" = 1b ] && models_made
  while [ ! -f "$m" ]; do sleep 1; done
  [ "$shape" = 1b ] && cfg=(--config "$dir/gemma3-1b.config.json") || cfg=()
  if want decode; then
    stamp "4. $shape: WebGPU decode, step by step"
    timeout 120 "$node" "$app/bench/webgpuDecode.js" --model "$m" --steps 64 --threads "$threads"
  fi
  if want infer; then
    stamp "4. $shape: inference"
    result "$shape infer webgpu" timeout 150 "${cli[@]}" bench --model "$m" --device webgpu --threads "$threads" --json
    result "$shape infer cpu" timeout 150 "${cli[@]}" bench --model "$m" --device cpu --threads "$threads" --json
  fi
  if want train; then
    stamp "4. $shape: PyTorch CUDA LoRA step (r16, 4 × 120 tokens, 40 labelled)"
    result "$shape train pytorch-cuda" timeout 150 python3 "$dir/pytorch_lora.py" --device cuda "${cfg[@]}" --rank 16 --batch 4 --tokens 120 --completion 40 --warmup 2 --steps 8
    stamp "4. $shape: the default fine-tune"
    result "$shape train webgpu" timeout 240 "${cli[@]}" bench --model "$m" --train --device webgpu --threads "$threads" --json
    if [ "$shape" = 270m ]; then
      result "$shape train cpu" timeout 240 "${cli[@]}" bench --model "$m" --train --device cpu --threads "$threads" --json
    else
      # One epoch on the CPU (the 3-epoch wall time is about setup + 3 × this run's fine-tune time).
      result "$shape train cpu 1-epoch" timeout 240 "${cli[@]}" bench --model "$m" --train --epochs 1 --device cpu --threads "$threads" --json
    fi
  fi
  if want traincpu3 && [ "$shape" = 1b ]; then
    stamp "4. $shape: the default fine-tune (3 epochs) on the CPU"
    result "$shape train cpu" timeout 300 "${cli[@]}" bench --model "$m" --train --device cpu --threads "$threads" --json
  fi
done
stamp "done"

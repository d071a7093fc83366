#!/usr/bin/env bash
# A Python with the training job's packages (torch, transformers 5.17, PEFT, accelerate, tokenizers) for the
# job tests (test/unit/job-train.test.ts), installed from this machine's local wheel folders (no network),
# into ~/.cache/gemma-tune/hf-venv. Without it those tests run train.py on Debian's torch only (the
# plain-torch model) and skip the transformers + PEFT ones.
set -euo pipefail
venv=${1:-$HOME/.cache/gemma-tune/hf-venv}
links=()
for d in /opt/pypi/files /opt/pypi-more/files /opt/wheels; do [ -d "$d" ] && links+=(--find-links "$d"); done
[ ${#links[@]} -gt 0 ] || { echo "hf-venv: no local wheel folders (/opt/pypi/files …) on this machine" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-index "${links[@]}" "transformers==5.17.0" "peft==0.21.0" "accelerate==1.15.0" "torch" "numpy"
"$venv/bin/python" -c "import torch, transformers, peft, accelerate, tokenizers; print('hf-venv:', torch.__version__, transformers.__version__, peft.__version__)"

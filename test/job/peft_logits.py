#!/usr/bin/env python3
"""PEFT's logits of a token sequence: a base model (HF folder) with a PEFT adapter loaded by
PeftModel.from_pretrained, float32, written as little-endian float32 [T, vocab] (gemma-tune logits' format).

  python test/job/peft_logits.py BASE_DIR ADAPTER_DIR 2,105,… OUT.f32 [--base-out BASE.f32]
"""

import argparse

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("adapter")
ap.add_argument("tokens")
ap.add_argument("out")
ap.add_argument("--base-out", help="also the base model's logits, without the adapter")
a = ap.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
dev = "cuda" if torch.cuda.is_available() else "cpu"
ids = torch.tensor([[int(x) for x in a.tokens.split(",")]], device=dev)
model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32, attn_implementation="eager").to(dev)
peft = PeftModel.from_pretrained(model, a.adapter).eval()
with torch.no_grad():
    open(a.out, "wb").write(peft(input_ids=ids).logits[0].float().cpu().numpy().tobytes())
    if a.base_out:
        with peft.disable_adapter():
            open(a.base_out, "wb").write(peft(input_ids=ids).logits[0].float().cpu().numpy().tobytes())
print(f"logits of {ids.shape[1]} tokens on {dev}: {a.out}")

#!/usr/bin/python3
"""Runs the training job's train.py on the CPU with bench/pytorch_lora.py's plain-torch Gemma 3 (checked
against the HF + PEFT fixtures) in place of transformers + PEFT, which Debian's torch lacks. Everything
else is train.py's own: job.json, data, split, seeded init and order, batches, loss, AdamW, schedule,
clipping, early stopping, metrics.jsonl. For the unit tests (test/unit/job-train.test.ts).

  /usr/bin/python3 test/job/plain_train.py JOBDIR/train.py [train.py's flags]
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import pytorch_lora  # noqa: E402


class PlainGemma:
    """train.py's model interface over pytorch_lora.Gemma3Lora (LoRA on all seven projections)."""

    def __init__(self, base_dir, hp, dtype, device, attn):
        if sorted(hp["targets"]) != sorted(["q", "k", "v", "o", "gate", "up", "down"]):
            raise SystemExit("plain_train.py: the plain model has LoRA on all seven projections only")
        self.cfg = json.load(open(os.path.join(base_dir, "config.json")))
        weights = pytorch_lora.read_safetensors(os.path.join(base_dir, "model.safetensors"))
        self.m = pytorch_lora.Gemma3Lora(self.cfg, weights, hp["rank"], hp["alpha"])
        self.params = self.m.lora_params()
        self.hp = hp

    def loss_sum(self, mb):
        h = self.m.hidden(mb["ids"])
        logits = F.linear(h.reshape(-1, h.shape[-1])[mb["pos"]], self.m.embed)
        cap = self.cfg.get("final_logit_softcapping")
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits, mb["tgt"], reduction="sum")

    def train_mode(self, on):
        pass

    def save(self, folder):
        """PEFT's two files: adapter_config.json and adapter_model.safetensors (F32)."""
        os.makedirs(folder, exist_ok=True)
        header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
        for name, p in self.params.items():
            b = p.detach().contiguous().numpy().tobytes()
            header[name] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [off, off + len(b)]}
            blobs.append(b)
            off += len(b)
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
        json.dump({"peft_type": "LORA", "r": self.hp["rank"], "lora_alpha": self.hp["alpha"], "lora_dropout": 0.0, "bias": "none",
                   "target_modules": [f"{t}_proj" for t in self.hp["targets"]], "task_type": "CAUSAL_LM"},
                  open(os.path.join(folder, "adapter_config.json"), "w"))

    def shape(self):
        c = self.cfg
        return {"vocabSize": c["vocab_size"], "hidden": c["hidden_size"], "intermediate": c["intermediate_size"], "layers": c["num_hidden_layers"],
                "heads": c["num_attention_heads"], "kvHeads": c["num_key_value_heads"], "headDim": c["head_dim"]}


if __name__ == "__main__":
    script = sys.argv[1]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    import train  # noqa: E402  (the job's train.py)
    torch.set_num_threads(2)
    sys.exit(train.main(sys.argv[2:], make_model=PlainGemma))

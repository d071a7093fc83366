#!/usr/bin/env python3
"""Gemma Tune training job: the extension's LoRA recipe on Hugging Face transformers + PEFT, any number of GPUs.

Written by `gemma-tune export-job` (or "Gemma: Export training job…") next to job.json (the task's recipe)
and examples.jsonl (its labeled examples, TRL's conversational format). It trains exactly what the
extension's own trainer trains, step for step:

  data      Gemma 3's chat template (<bos><start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n…),
            the loss on the model turn only: its content, <end_of_turn> and the "\n" after it
            (src/engine/model/chatTemplate.ts, src/engine/train/tokenize.ts); examples cut at maxTokens
  split     the held-out examples (heldOut: true), else a seeded share valSplit once there are 10 or more
            (src/engine/train/split.ts)
  LoRA      rank, alpha, the chosen projections of every decoder layer, dropout 0; A drawn as the extension
            draws it from the seed, B = 0 (src/engine/train/lora.ts), or --init-adapter
  order     one seeded shuffle per epoch, the extension's generator (src/engine/rng.ts); --no-shuffle: file
            order; --order FILE: yours
  loss      per optimizer step (batchSize x gradAccum examples): the sum of cross-entropy over every label
            token of the step, divided once by the step's label count (src/engine/train/batch.ts, trainer.ts)
  update    gradient clipping (global L2 norm), then torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, decoupled
            weight decay: the extension's adamw.ts is this optimizer) at the schedule's rate (schedule.ts:
            transformers' constant/linear/cosine with warmup)
  stopping  validation loss at each epoch's end (or every evalEvery steps), early stopping after `patience`
            evaluations without improvement; the best evaluation's adapter is the one kept (earlyStop.ts)

Several GPUs (accelerate launch, one process each) split every optimizer step's examples between them and
add their gradients (an all-reduce of the sums), so N GPUs take the same steps as one.

Writes, under --out (default out/):
  adapter/        the kept adapter as PEFT saves it (adapter_config.json, adapter_model.safetensors) and
                  gemma_tune.json (the base model and its shape, the step, the validation loss)
  metrics.jsonl   the run in Gemma Tune's metrics record format (src/store/metricsLog.ts): the training
                  panel draws its loss curves after "Gemma: Import adapter…"
  log.jsonl       every trainer event with learning rate, gradient norm and tokens/s (gemma-tune train --json)

Run: accelerate launch --config_file accelerate/1gpu.yaml train.py --base google/gemma-3-270m-it
"""

import argparse
import json
import math
import os
import re
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

JOB_FORMAT = "gemma-tune-job"
IGNORE = -100
TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
# File names as src/common/files.ts gives them (test/unit/job-export.test.ts holds them equal).
ADAPTER_INFO = "gemma_tune.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
METRICS_FILE = "metrics.jsonl"
# metrics.jsonl's record version (src/store/metricsLog.ts METRICS_VERSION).
METRICS_VERSION = 2


class JobError(Exception):
    """Bad input: reported as one line, exit status 1."""


def module_of(target):
    """HF module of a target: q -> self_attn.q_proj, gate -> mlp.gate_proj."""
    return f"mlp.{target}_proj" if target in ("gate", "up", "down") else f"self_attn.{target}_proj"


# ---- the recipe ---------------------------------------------------------------------------------------

def read_job(path):
    """job.json as export-job writes it, checked."""
    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, ValueError) as e:
        raise JobError(f"{path}: {e}") from e
    if not isinstance(job, dict) or job.get("format") != JOB_FORMAT or job.get("version") != 1:
        raise JobError(f"{path}: not a version 1 {JOB_FORMAT} file")
    hp = job.get("hyperparameters")
    need = {"epochs": int, "learningRate": float, "schedule": str, "warmupSteps": int, "weightDecay": float, "maxGradNorm": float,
            "rank": int, "alpha": float, "targets": list, "batchSize": int, "gradAccum": int, "valSplit": float, "seed": int, "patience": int,
            "minSteps": int}
    if not isinstance(hp, dict):
        raise JobError(f"{path}: no hyperparameters")
    for k, t in need.items():
        v = hp.get(k)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if t is float else isinstance(v, t) and not isinstance(v, bool)
        if not ok:
            raise JobError(f"{path}: hyperparameters.{k} must be {t.__name__}, got {v!r}")
    if hp["schedule"] not in ("constant", "linear", "cosine"):
        raise JobError(f"{path}: hyperparameters.schedule must be constant, linear or cosine")
    bad = [t for t in hp["targets"] if t not in TARGETS]
    if bad or not hp["targets"]:
        raise JobError(f"{path}: hyperparameters.targets must be some of {','.join(TARGETS)}")
    for k in ("maxTokens", "evalEvery"):
        if not isinstance(job.get(k), int) or job[k] < 0:
            raise JobError(f"{path}: {k} must be a non-negative integer")
    return job


# ---- the extension's random numbers (src/engine/rng.ts, Mulberry32) --------------------------------------

M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & M32


class Rng:
    """Mulberry32 as src/engine/rng.ts computes it (32-bit wrap-around arithmetic), so shuffles, the
    validation split and the LoRA init are the extension's draws."""

    def __init__(self, seed):
        self.s = (_imul((seed & M32) ^ 0x9E3779B9, 0x85EBCA6B) ^ 0x2545F491) & M32

    def next(self):
        """A uniform number in [0, 1)."""
        self.s = (self.s + 0x6D2B79F5) & M32
        t = self.s
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    def int(self, n):
        return math.floor(self.next() * n)

    def uniforms(self, n):
        """The next n values of next(), at once (the state advances by a constant per draw)."""
        m = np.uint64(M32)
        s = (np.uint64(self.s) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x6D2B79F5)) & m
        self.s = (self.s + n * 0x6D2B79F5) & M32
        t = ((s ^ (s >> np.uint64(15))) * (s | np.uint64(1))) & m
        t = t ^ ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & m)) & m)
        return ((t ^ (t >> np.uint64(14))) & m).astype(np.float64) / 4294967296.0


def shuffled(items, rng):
    """Fisher-Yates driven by rng (rng.ts shuffled)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.int(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


# ---- chat template and tokens ------------------------------------------------------------------------

def render_chat(messages, bos_text):
    """Gemma 3's chat template without a generation prompt: the text and, per model turn, the [start, end)
    characters the loss covers (its content, "<end_of_turn>" and "\\n"). chatTemplate.ts renderChat."""
    text, prefix, loop = bos_text, "", messages
    if messages and messages[0]["role"] == "system":
        prefix, loop = messages[0]["content"] + "\n\n", messages[1:]
    ranges = []
    for i, m in enumerate(loop):
        if (m["role"] == "user") != (i % 2 == 0):
            raise JobError("Conversation roles must alternate user/assistant/user/assistant/...")
        role = "model" if m["role"] == "assistant" else m["role"]
        text += f"<start_of_turn>{role}\n" + (prefix if i == 0 else "")
        start = len(text)
        text += m["content"].strip() + "<end_of_turn>\n"
        if m["role"] == "assistant":
            ranges.append((start, len(text)))
    return text, ranges


class ChatTokenizer:
    """A model's tokenizer.json through the tokenizers library (the exact file, not a class's defaults)."""

    def __init__(self, path, bos_id, eos_id, vocab_size):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(path)
        self.bos_text = self.tok.id_to_token(bos_id) or "<bos>"
        self.vocab_size = vocab_size

    def chat(self, messages):
        """ids and the [start, end) token spans of the model turns (chatTemplate.ts encodeTrainingExample)."""
        text, ranges = render_chat(messages, self.bos_text)
        enc = self.tok.encode(text, add_special_tokens=False)
        ids, starts = enc.ids, [o[0] for o in enc.offsets]
        spans, k = [], 0
        for lo, hi in ranges:
            while k < len(ids) and starts[k] < lo:
                k += 1
            first = k
            while k < len(ids) and starts[k] < hi:
                k += 1
            spans.append((first, k))
        return ids, spans


def read_examples(path):
    """examples.jsonl: TRL conversational lines ({"messages": [...], "id", "heldOut"}) or pre-tokenised
    ones ({"input_ids", "labels"}); unlabeled lines (empty model turn) are left out, as the extension does."""
    out, seen = [], set()
    try:
        lines = open(path, encoding="utf-8").read().split("\n")
    except OSError as e:
        raise JobError(f"{path}: {e}") from e
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(raw)
        except ValueError as e:
            raise JobError(f"{where}: not valid JSON ({e})") from e
        if not isinstance(rec, dict):
            raise JobError(f"{where}: a line must be a JSON object")
        ex_id = str(rec.get("id", f"#{n}"))
        if ex_id in seen:
            raise JobError(f"{where}: id {ex_id!r} is used again")
        seen.add(ex_id)
        held = rec.get("heldOut", False) is True
        if "messages" in rec:
            msgs = rec["messages"]
            if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) and
                                                     m.get("role") in ("system", "user", "assistant", "model") for m in msgs):
                raise JobError(f"{where}: \"messages\" must be a list of {{role, content}}")
            msgs = [{"role": "assistant" if m["role"] == "model" else m["role"], "content": m["content"]} for m in msgs]
            if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
                continue
            out.append({"id": ex_id, "heldOut": held, "messages": msgs})
        elif "input_ids" in rec:
            ids, labels = rec["input_ids"], rec.get("labels", rec["input_ids"])
            if not (isinstance(ids, list) and isinstance(labels, list) and len(ids) == len(labels) >= 2):
                raise JobError(f"{where}: \"input_ids\" and \"labels\" must be lists of equal length >= 2")
            out.append({"id": ex_id, "heldOut": held, "input_ids": [int(x) for x in ids], "labels": [int(x) for x in labels]})
        else:
            raise JobError(f"{where}: expected \"messages\" or \"input_ids\"")
    if not out:
        raise JobError(f"{path}: no labeled examples")
    return out


def tokenize(ex, tok, max_tokens, vocab_size):
    """{id, input_ids, labels} with -100 where there is no loss (tokenize.ts tokenizeExample)."""
    if "input_ids" in ex:
        ids, labels = ex["input_ids"], ex["labels"]
    else:
        if tok is None:
            raise JobError(f"example {ex['id']} is text: a tokenizer is needed")
        ids, spans = tok.chat(ex["messages"])
        labels = [IGNORE] * len(ids)
        for s, e in spans:
            labels[s:e] = ids[s:e]
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise JobError(f"example {ex['id']}: token id {bad[0]} is outside the vocabulary ({vocab_size})")
    ids, labels = ids[:max_tokens], labels[:max_tokens]
    if all(x == IGNORE for x in labels[1:]):
        raise JobError(f"example {ex['id']}: no assistant tokens to learn within {max_tokens} tokens")
    return {"id": ex["id"], "input_ids": ids, "labels": labels}


def split_validation(items, fraction, seed, pinned):
    """The held-out set: the pinned ids, else round(n * fraction) seeded picks once n >= 10 (split.ts)."""
    if pinned:
        val = [e for e in items if e["id"] in pinned]
        train = [e for e in items if e["id"] not in pinned]
        if not train:
            raise JobError("every example is held out: nothing left to train on")
        return train, val
    if fraction == 0 or len(items) < 10:
        return list(items), []
    n_val = max(1, math.floor(len(items) * fraction + 0.5))
    chosen = set(shuffled(range(len(items)), Rng(seed ^ 0x5EED))[:n_val])
    return [e for i, e in enumerate(items) if i not in chosen], [e for i, e in enumerate(items) if i in chosen]


# ---- batches ------------------------------------------------------------------------------------------

def label_count(e):
    return sum(1 for x in e["labels"][1:] if x != IGNORE)


def collate(examples, pad_id, device):
    """One right-padded micro-batch: ids [B, T], mask, and the flat positions b*T+t whose next token is a
    label with those labels (batch.ts collate). Causal attention keeps pads from changing real positions."""
    B, T = len(examples), max(len(e["input_ids"]) for e in examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    pos, tgt = [], []
    for b, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[b, :n] = torch.tensor(e["input_ids"])
        mask[b, :n] = 1
        for t in range(n - 1):
            if e["labels"][t + 1] != IGNORE:
                pos.append(b * T + t)
                tgt.append(e["labels"][t + 1])
    return {"ids": ids.to(device), "mask": mask.to(device), "pos": torch.tensor(pos, dtype=torch.long, device=device),
            "tgt": torch.tensor(tgt, dtype=torch.long, device=device), "tokens": sum(len(e["input_ids"]) for e in examples)}


def runs_of(examples, budget):
    """Examples as micro-batches of at most `budget` padded tokens (one example at least), longest first."""
    ex = sorted(examples, key=lambda e: -len(e["input_ids"]))
    out, i = [], 0
    while i < len(ex):
        n = 1
        while i + n < len(ex) and (n + 1) * len(ex[i]["input_ids"]) <= budget:
            n += 1
        out.append(ex[i:i + n])
        i += n
    return out


def share(examples, rank, world):
    """This process's part of a step's examples: longest first, dealt round-robin so lengths balance."""
    return sorted(examples, key=lambda e: -len(e["input_ids"]))[rank::world]


def plan_epoch(order, batch, accum):
    """An epoch's examples as optimizer steps of batch x accum examples (batch.ts planSteps)."""
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    return [sum(batches[i:i + accum], []) for i in range(0, len(batches), accum)]


def planned_steps(n, hp):
    """Optimizer steps of a run over `n` training examples: whole epochs, `epochs` of them or as many as reach `minSteps` (plan.ts)."""
    spe = steps_per_epoch(n, hp["batchSize"], hp["gradAccum"])
    return max(hp["epochs"], -(-hp["minSteps"] // spe)) * spe


def steps_per_epoch(n, batch, accum):
    return math.ceil(math.ceil(n / batch) / accum)


def schedule_factor(kind, warmup, total, step):
    """transformers' get_{constant,linear,cosine}_schedule_with_warmup multiplier at update `step` (schedule.ts)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * 0.5 * 2 * progress)))


class EarlyStopping:
    """Best validation loss so far and whether `patience` evaluations passed without improvement (earlyStop.ts)."""

    def __init__(self, patience):
        self.patience, self.best_loss, self.best_step, self.bad = patience, math.inf, -1, 0

    def observe(self, loss, step):
        improved = loss < self.best_loss
        if improved:
            self.best_loss, self.best_step, self.bad = loss, step, 0
        else:
            self.bad += 1
        return improved, self.patience > 0 and self.bad >= self.patience


# ---- records ------------------------------------------------------------------------------------------

class Records:
    """metrics.jsonl in Gemma Tune's record format (src/store/metricsLog.ts: one record per line, version 2,
    tagged by `type`, no other keys) and log.jsonl (the trainer's events in full)."""

    def __init__(self, out_dir, enabled):
        self.enabled = enabled
        if enabled:
            self.metrics = open(os.path.join(out_dir, METRICS_FILE), "w", encoding="utf-8")
            self.log = open(os.path.join(out_dir, "log.jsonl"), "w", encoding="utf-8")

    def metric(self, kind, **fields):
        if self.enabled:
            self.metrics.write(json.dumps({"version": METRICS_VERSION, "type": kind, **fields}) + "\n")
            self.metrics.flush()

    def event(self, **fields):
        if self.enabled:
            self.log.write(json.dumps(fields) + "\n")
            self.log.flush()


# ---- safetensors (the few lines --init-adapter needs, so the loop runs without the package) ------------

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise JobError(f"{path}: truncated")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise JobError(f"{path}: {name} has dtype {info['dtype']}; F32, F16 or BF16 expected")
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=_DTYPES[info["dtype"]]).reshape(info["shape"]).float()
    return out


# ---- LoRA parameters ----------------------------------------------------------------------------------

_LORA_NAME = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.lora_(A|B)\.weight$")


def lora_index(names):
    """(layer, target, "A"|"B") -> name, for PEFT tensor names of either layout (text or multimodal)."""
    out = {}
    for n in names:
        m = _LORA_NAME.search(n)
        if not m:
            raise JobError(f"{n} is not a LoRA A/B of a Gemma 3 decoder projection")
        out[(int(m.group(1)), m.group(2), m.group(3))] = n
    return out


def init_like_extension(params, targets, seed):
    """A uniform in +-1/sqrt(in) from the seed's Mulberry32 stream, module by module in the extension's
    order (layer, then q k v o gate up down), B = 0: lora.ts initLora's exact values."""
    rng = Rng(seed)
    index = lora_index(params)
    layers = 1 + max(k[0] for k in index)
    with torch.no_grad():
        for layer in range(layers):
            for t in (t for t in TARGETS if t in targets):
                a, b = params[index[(layer, t, "A")]], params[index[(layer, t, "B")]]
                bound = 1 / math.sqrt(a.shape[1])
                vals = ((2 * rng.uniforms(a.numel()) - 1) * bound).astype(np.float32).reshape(tuple(a.shape))
                a.copy_(torch.from_numpy(vals))
                b.zero_()


def load_init_adapter(params, folder, hp):
    """Copies a PEFT adapter's tensors into params; its rank, alpha and modules must be the job's."""
    try:
        cfg = json.load(open(os.path.join(folder, ADAPTER_CONFIG_FILE), encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JobError(f"--init-adapter {folder}: adapter_config.json: {e}") from e
    if cfg.get("r") != hp["rank"] or float(cfg.get("lora_alpha", -1)) != float(hp["alpha"]):
        raise JobError(f"--init-adapter {folder}: r {cfg.get('r')} / alpha {cfg.get('lora_alpha')} differ from the job's {hp['rank']} / {hp['alpha']}")
    raw = read_safetensors(os.path.join(folder, ADAPTER_WEIGHTS_FILE))
    theirs, ours = {k: raw[n] for k, n in lora_index(raw).items()}, lora_index(params)
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        raise JobError(f"--init-adapter {folder}: its modules differ from this job's (missing {missing[:2]}, extra {extra[:2]})")
    with torch.no_grad():
        for k, n in ours.items():
            p = params[n]
            if tuple(theirs[k].shape) != tuple(p.shape):
                raise JobError(f"--init-adapter {folder}: {n} has shape {list(theirs[k].shape)}, expected {list(p.shape)}")
            p.copy_(theirs[k])


# ---- the model: transformers + PEFT -----------------------------------------------------------------

def text_config(cfg):
    return getattr(cfg, "text_config", None) or cfg


class PeftGemma:
    """A Gemma 3 checkpoint from transformers with PEFT LoRA modules: what the loop trains.

    loss_sum runs the decoder, then the LM head only at the positions that predict a label (a 262k-row
    head over every position would be most of the work and memory)."""

    def __init__(self, base_dir, hp, dtype, device, attn):
        from transformers import AutoModelForCausalLM
        from peft import LoraConfig, get_peft_model
        kw = {"attn_implementation": attn}
        try:
            model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, **kw)
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=dtype, **kw)
        names = "|".join(m.split(".")[1] for m in map(module_of, hp["targets"]))
        # Only the language model's decoder layers (a multimodal checkpoint's vision tower has q_proj too).
        pattern = rf"(model\.)?(language_model\.)?(model\.)?layers\.\d+\.(self_attn|mlp)\.({names})"
        lora = LoraConfig(r=hp["rank"], lora_alpha=hp["alpha"], lora_dropout=0.0, bias="none",
                          target_modules=pattern, task_type="CAUSAL_LM")
        self.model = get_peft_model(model, lora).to(device)
        inner = self.model.get_base_model()
        self.decoder = getattr(inner.model, "language_model", inner.model)
        self.lm_head = inner.get_output_embeddings()
        self.config = text_config(inner.config)
        self.softcap = getattr(self.config, "final_logit_softcapping", None)
        # PEFT names parameters with the adapter's name ("….lora_A.default.weight"); saved files drop it.
        self.params = {n.replace(".default.", "."): p for n, p in self.model.named_parameters() if p.requires_grad}

    def loss_sum(self, mb):
        h = self.decoder(input_ids=mb["ids"], attention_mask=mb["mask"], use_cache=False).last_hidden_state
        logits = self.lm_head(h.reshape(-1, h.shape[-1])[mb["pos"]]).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return F.cross_entropy(logits, mb["tgt"], reduction="sum")

    def train_mode(self, on):
        self.model.train(on)

    def save(self, folder):
        self.model.save_pretrained(folder)

    def shape(self):
        c = self.config
        return {"vocabSize": c.vocab_size, "hidden": c.hidden_size, "intermediate": c.intermediate_size, "layers": c.num_hidden_layers,
                "heads": c.num_attention_heads, "kvHeads": c.num_key_value_heads, "headDim": c.head_dim}


# ---- the loop -----------------------------------------------------------------------------------------

class Dist:
    """The process group: accelerate's when launched by it (or torchrun's), else one process."""

    def __init__(self, cpu=False):
        self.rank, self.world = 0, 1
        try:
            from accelerate import Accelerator
            acc = Accelerator(cpu=cpu)
            self.rank, self.world, self.device = acc.process_index, acc.num_processes, acc.device
        except ImportError:
            self.device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise JobError("several processes need accelerate: pip install -r requirements.txt")

    @property
    def main(self):
        return self.rank == 0

    def sum_(self, tensors):
        """Adds each tensor over all processes, in place."""
        if self.world == 1:
            return
        # In one order on every process (a set's order follows ids, which differ between processes).
        for dtype in sorted({t.dtype for t in tensors}, key=str):
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.reshape(-1) for t in group])
            torch.distributed.all_reduce(flat)
            i = 0
            for t in group:
                t.copy_(flat[i:i + t.numel()].view_as(t))
                i += t.numel()


def train(model, data, recipe, opts, dist, records, say):
    """The extension's training loop (trainer.ts train) over `model`; returns (reason, step, saved step, best loss)."""
    hp = recipe["hyperparameters"]
    train_set, val_set = data
    batch, accum, seed = hp["batchSize"], hp["gradAccum"], hp["seed"]
    spe = steps_per_epoch(len(train_set), batch, accum)
    total = opts.max_steps or planned_steps(len(train_set), hp)
    eval_every = recipe["evalEvery"]
    params = list(model.params.values())
    opt = torch.optim.AdamW(params, lr=hp["learningRate"], betas=(0.9, 0.999), eps=1e-8, weight_decay=hp["weightDecay"])
    early = EarlyStopping(hp["patience"])
    rng = Rng(seed)
    by_id = {e["id"]: e for e in train_set}
    step = epoch = batch_in_epoch = 0
    last_eval, saved_step = -1, -1
    has_val = len(val_set) > 0
    budget = opts.max_batch_tokens

    def order_for(ep):
        if opts.order is not None:
            return [by_id[i] for i in opts.order[ep]]
        return list(train_set) if opts.no_shuffle else shuffled(train_set, rng)

    def save(at):
        nonlocal saved_step
        saved_step = at
        if dist.main:
            folder = os.path.join(opts.out, "adapter")
            model.save(folder)
            info = {"format": "gemma-tune-adapter", "version": 1, "base": opts.base, "baseShape": model.shape(), "step": at,
                    "valLoss": early.best_loss if has_val and early.best_step == at else None}
            with open(os.path.join(folder, ADAPTER_INFO), "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2)

    def evaluate():
        model.train_mode(False)
        acc = torch.zeros(2, dtype=torch.float64, device=dist.device)
        with torch.no_grad():
            for run in runs_of(share(val_set, dist.rank, dist.world), budget):
                mb = collate(run, opts.pad_id, dist.device)
                acc[0] += model.loss_sum(mb).double()
                acc[1] += len(mb["tgt"])
        model.train_mode(True)
        dist.sum_([acc])
        val_loss = (acc[0] / acc[1]).item()
        improved, stop = early.observe(val_loss, step)
        if improved:
            save(step)
        records.metric("eval", step=step, valLoss=val_loss, bestStep=early.best_step)
        records.event(type="eval", step=step, epoch=step / spe, valLoss=val_loss, improved=improved, bestStep=early.best_step, bestValLoss=early.best_loss)
        say(f"eval at step {step}: validation loss {val_loss:.6f}{' (best so far)' if improved else ''}")
        return stop

    n_params = sum(p.numel() for p in params)
    records.metric("start", totalSteps=total, step=0, epoch=0)
    records.event(type="start", totalSteps=total, stepsPerEpoch=spe, trainExamples=len(train_set), valExamples=len(val_set),
                  trainableParams=n_params, resumedFromStep=0, processes=dist.world)
    say(f"{len(train_set)} training and {len(val_set)} held-out examples, {total} steps ({spe} per epoch), "
        f"{n_params} LoRA parameters, {dist.world} process(es)")
    model.train_mode(True)
    plan = plan_epoch(order_for(0), batch, accum)
    reason, t0 = "completed", time.perf_counter()
    while step < total:
        ts = time.perf_counter()
        group = plan[batch_in_epoch]
        labels = sum(label_count(e) for e in group)
        for p in params:
            p.grad = torch.zeros_like(p)
        stats = torch.zeros(2, dtype=torch.float64, device=dist.device)
        for run in runs_of(share(group, dist.rank, dist.world), budget):
            mb = collate(run, opts.pad_id, dist.device)
            loss_sum = model.loss_sum(mb)
            (loss_sum * (1.0 / labels)).backward()
            stats[0] += loss_sum.detach().double()
            stats[1] += mb["tokens"]
        dist.sum_([p.grad for p in params] + [stats])
        grads = [p.grad for p in params]
        if hp["maxGradNorm"] > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, hp["maxGradNorm"]).item()
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        lr = hp["learningRate"] * schedule_factor(hp["schedule"], hp["warmupSteps"], total, step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        step += 1
        batch_in_epoch += 1
        if dist.device.type == "cuda":
            torch.cuda.synchronize(dist.device)
        step_s = time.perf_counter() - ts
        elapsed = time.perf_counter() - t0
        eta = elapsed / step * (total - step)
        loss = stats[0].item() / labels
        tokens = int(stats[1].item())
        records.metric("step", step=step, epoch=step / spe, loss=loss, etaSeconds=eta)
        records.event(type="step", step=step, epoch=step / spe, loss=loss, lr=lr, gradNorm=grad_norm, tokens=tokens,
                      tokensPerSec=tokens / step_s, elapsedS=elapsed, etaS=eta)
        say(f"step {step}/{total}: loss {loss:.6f}, lr {lr:.3g}, grad norm {grad_norm:.4f}, {tokens / step_s:.0f} tokens/s")
        epoch_ended = batch_in_epoch >= len(plan)
        if epoch_ended:
            epoch += 1
            batch_in_epoch = 0
        if has_val and (step % eval_every == 0 if eval_every > 0 else epoch_ended):
            last_eval = step
            if evaluate():
                reason = "early-stop"
                break
        if epoch_ended and step < total:
            plan = plan_epoch(order_for(epoch), batch, accum)
    if reason == "completed" and has_val and last_eval != step:
        evaluate()
    if not has_val:
        save(step)
    elapsed = time.perf_counter() - t0
    best = early.best_loss if has_val else None
    how = {"completed": f"Trained {step} steps", "early-stop": f"Stopped early at step {step} (validation loss stopped improving)"}[reason]
    kept = f"the adapter from step {saved_step}" + (f" (validation loss {best:.4f})" if best is not None else "")
    message = f"{how} in {elapsed:.1f} s on {dist.world} process(es) ({opts.device_name}); {kept} is saved."
    records.metric("done", step=step, bestStep=saved_step, comparison=[], message=message)
    records.event(type="done", reason=reason, step=step, bestStep=saved_step, bestValLoss=best, outDir=opts.out, elapsedS=elapsed)
    say(message)
    return reason, step, saved_step, best


def read_order(path, train_ids, epochs_needed):
    """--order FILE: a JSON list with one list of training ids per epoch, each a permutation of them."""
    try:
        order = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JobError(f"--order {path}: {e}") from e
    if not isinstance(order, list) or len(order) < epochs_needed:
        raise JobError(f"--order {path}: expected a list of at least {epochs_needed} epochs, each a list of the training ids")
    want = sorted(train_ids)
    for i, ep in enumerate(order):
        if not isinstance(ep, list) or sorted(map(str, ep)) != want:
            raise JobError(f"--order {path}: epoch {i} is not an order of the {len(want)} training ids")
    return [[str(x) for x in ep] for ep in order]


def resolve_base(base):
    """A local folder, or a Hugging Face model id fetched into the local cache."""
    if os.path.isdir(base):
        return base
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise JobError(f"--base {base}: not a folder, and huggingface_hub is not installed to fetch it") from e
    return snapshot_download(base, allow_patterns=["*.json", "*.safetensors", "tokenizer*"])


def parse_args(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Train the exported Gemma Tune task with transformers + PEFT (see README.md).")
    ap.add_argument("--job", default=os.path.join(here, "job.json"), help="the recipe (default: job.json beside this script)")
    ap.add_argument("--data", default=os.path.join(here, "examples.jsonl"), help="the examples (default: examples.jsonl beside this script)")
    ap.add_argument("--base", help="Hugging Face model id or folder (default: job.json's base)")
    ap.add_argument("--out", default="out", help="output folder (default: out)")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="base weights: auto = bfloat16 on a GPU that has it, else float32 (LoRA weights and the loss stay float32)")
    ap.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa", help="attention implementation (default sdpa)")
    ap.add_argument("--epochs", type=int, help="override the job's epochs")
    ap.add_argument("--min-steps", type=int, help="override the job's minSteps (0: epochs alone)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (overrides epochs)")
    ap.add_argument("--max-batch-tokens", type=int, default=16384, help="padded tokens per forward pass on one GPU (a step's examples run in several when they exceed it: same step, less memory)")
    ap.add_argument("--init-adapter", help="start from this PEFT adapter instead of the seeded initialisation")
    order = ap.add_mutually_exclusive_group()
    order.add_argument("--no-shuffle", action="store_true", help="every epoch in file order")
    order.add_argument("--order", help="JSON file: one list of training example ids per epoch")
    ap.add_argument("--dump-tokens", help="write each example's input_ids and labels to this JSONL file, then train")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is present")
    return ap.parse_args(argv)


def main(argv=None, make_model=None):
    """The command line; make_model defaults to transformers + PEFT (PeftGemma)."""
    try:
        return run(parse_args(argv), make_model or PeftGemma)
    except JobError as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 1


def run(opts, make_model):
    """Reads the job and the data, builds the model with make_model(base_dir, hyperparameters, dtype, device, attn), trains."""
    recipe = read_job(opts.job)
    hp = dict(recipe["hyperparameters"])
    if opts.epochs is not None:
        if opts.epochs < 1:
            raise JobError("--epochs must be at least 1")
        hp["epochs"] = opts.epochs
    if opts.min_steps is not None:
        if opts.min_steps < 0:
            raise JobError("--min-steps must be at least 0")
        hp["minSteps"] = opts.min_steps
    recipe = {**recipe, "hyperparameters": hp}
    opts.base = opts.base or recipe.get("base")
    if not opts.base:
        raise JobError("no base model: give --base (a Hugging Face id or folder)")
    dist = Dist(cpu=opts.cpu)
    say = (lambda m: print(m, flush=True)) if dist.main else (lambda m: None)
    torch.manual_seed(hp["seed"])
    base_dir = resolve_base(opts.base)
    with open(os.path.join(base_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    tcfg = cfg.get("text_config", cfg)
    vocab = tcfg.get("vocab_size", cfg.get("vocab_size"))
    pick = lambda k, d: tcfg.get(k, cfg.get(k, d))  # noqa: E731
    bos, eos, pad = pick("bos_token_id", 2), pick("eos_token_id", 1), pick("pad_token_id", 0)
    opts.pad_id = pad
    tok_file = os.path.join(base_dir, "tokenizer.json")
    examples = read_examples(opts.data)
    tok = ChatTokenizer(tok_file, bos, eos if isinstance(eos, int) else eos[0], vocab) if any("messages" in e for e in examples) else None
    tokenized = [tokenize(e, tok, recipe["maxTokens"], vocab) for e in examples]
    if opts.dump_tokens and dist.main:
        with open(opts.dump_tokens, "w", encoding="utf-8") as f:
            for t in tokenized:
                f.write(json.dumps(t) + "\n")
    pinned = {e["id"] for e in examples if e["heldOut"]}
    train_set, val_set = split_validation(tokenized, hp["valSplit"], hp["seed"], pinned)
    spe = steps_per_epoch(len(train_set), hp["batchSize"], hp["gradAccum"])
    total = opts.max_steps or planned_steps(len(train_set), hp)
    opts.order = read_order(opts.order, [e["id"] for e in train_set], math.ceil(total / spe)) if opts.order else None

    if opts.dtype == "auto":
        gpu_bf16 = dist.device.type == "cuda" and torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if gpu_bf16 else torch.float32
    else:
        dtype = getattr(torch, opts.dtype)
    opts.device_name = torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else "CPU"
    say(f"base {opts.base} ({dtype}, {opts.attn} attention) on {opts.device_name}")
    model = make_model(base_dir, hp, dtype, dist.device, opts.attn)
    if opts.init_adapter:
        load_init_adapter(model.params, opts.init_adapter, hp)
    else:
        init_like_extension(model.params, hp["targets"], hp["seed"])
    os.makedirs(opts.out, exist_ok=True)
    records = Records(opts.out, dist.main)
    train(model, (train_set, val_set), recipe, opts, dist, records, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())

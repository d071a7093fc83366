#!/usr/bin/python3
"""PyTorch reference for issue 4's training speed: fp32 LoRA on the Gemma 3 270M shape, plain torch.

transformers is not installed here, so the Gemma 3 text decoder is written out below, exactly as
transformers computes it (see ../shared/fixtures/hf-gemma3/README.md): embedding x sqrt(hidden),
RMSNorm with (1+w), q/k norms before RoPE, query_pre_attn_scalar, RoPE bases 1e4 (sliding) / 1e6
(global), a sliding window of W keys (i-W+1..i) on 5 of 6 layers, GELU-tanh MLP, four norms per
layer, tied LM head. LoRA is PEFT's: y = x W^T + (alpha/r) (x A^T) B^T on q,k,v,o,gate,up,down.

Workload (the issue's): random frozen fp32 weights, batch 4 x 128 tokens, the last 32 of each
sequence are labels, HF's shifted cross-entropy (mean over all label tokens of the batch) with the
LM head computed only at the positions that predict a label, AdamW lr 2e-4, gradient clipping at 1
(as the HF Trainer and `gemma-tune bench --train` do), 2 threads. 2 warm-up steps, then N timed
steps; training tokens/s = tokens in the batch / step time (zero_grad + forward + backward + clip +
AdamW). Last line: one JSON object {"train_tok_s", "peak_rss_mb", "step_s", "cpu_s_per_step", ...}
(CPU seconds of all threads per timed step: on a busy machine, cpu_s_per_step / threads estimates the
idle step time).

  /usr/bin/python3 bench/pytorch_lora.py [--steps 8] [--warmup 2] [--threads 2] [--rank 8] ...
  python3 bench/pytorch_lora.py --device cuda --config bench/gemma3-1b.config.json ...
      (on a GPU: the same step on CUDA, synchronised before each step's clock is read; the weights are
      made on the CPU, then moved; --config is any HF config.json of a Gemma 3 text model, default the 270M)
  /usr/bin/python3 bench/pytorch_lora.py --check ../shared/fixtures/hf-gemma3/tiny
      (checks this implementation against the HF + PEFT fixture: loss, gradients, 5 AdamW steps;
      with .../mini-270m-shape: the forward pass of the 270M's shape ratios against HF's logits)

Needs Debian's python3-torch (1.13) with libopenblas0-openmp: apt-get install python3-torch libopenblas0-openmp
"""

import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

GEMMA3_270M = {
    "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256,
    "sliding_window": 512, "rope_theta": 1e6, "rope_local_base_freq": 1e4, "rms_norm_eps": 1e-6,
    "final_logit_softcapping": None, "_sliding_window_pattern": 6,
}
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def layer_types(cfg):
    """HF's layer_types, or its derivation from the sliding-window pattern."""
    if cfg.get("layer_types"):
        return list(cfg["layer_types"])
    p = cfg.get("_sliding_window_pattern", cfg.get("sliding_window_pattern", 6))
    return ["full_attention" if (i + 1) % p == 0 else "sliding_attention" for i in range(cfg["num_hidden_layers"])]


def rms_norm(x, w, eps):
    """Gemma3RMSNorm: the weight is stored as w and applied as (1 + w), in float32."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LoraLinear(nn.Module):
    """A frozen bias-free linear with PEFT's LoRA branch (dropout 0, no rsLoRA)."""

    def __init__(self, weight, rank, alpha):
        super().__init__()
        out_f, in_f = weight.shape
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(rank, in_f, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(out_f, rank, device=weight.device))
        self.scaling = alpha / rank

    def forward(self, x):
        return F.linear(x, self.weight) + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)


class Layer(nn.Module):
    def __init__(self, cfg, w, rank, alpha, sliding):
        super().__init__()
        self.cfg, self.sliding = cfg, sliding
        lin = lambda name: LoraLinear(w[name], rank, alpha)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj"), lin("self_attn.o_proj")
        self.gate_proj, self.up_proj, self.down_proj = lin("mlp.gate_proj"), lin("mlp.up_proj"), lin("mlp.down_proj")
        self.norms = {k: w[k] for k in ("self_attn.q_norm", "self_attn.k_norm", "input_layernorm", "post_attention_layernorm",
                                        "pre_feedforward_layernorm", "post_feedforward_layernorm")}

    def attention(self, x, cos, sin, mask):
        c = self.cfg
        B, T, _ = x.shape
        H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        eps = c["rms_norm_eps"]
        q = rms_norm(self.q_proj(x).view(B, T, H, D).transpose(1, 2), self.norms["self_attn.q_norm"], eps)
        k = rms_norm(self.k_proj(x).view(B, T, KV, D).transpose(1, 2), self.norms["self_attn.k_norm"], eps)
        v = self.v_proj(x).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv as HF does: query head h reads kv head h // (H / KV)
        k = k[:, :, None].expand(B, KV, H // KV, T, D).reshape(B, H, T, D)
        v = v[:, :, None].expand(B, KV, H // KV, T, D).reshape(B, H, T, D)
        scores = torch.matmul(q, k.transpose(2, 3)) * c["query_pre_attn_scalar"] ** -0.5 + mask
        p = torch.softmax(scores, dim=-1, dtype=torch.float32)
        return self.o_proj(torch.matmul(p, v).transpose(1, 2).reshape(B, T, H * D))

    def forward(self, h, rope, masks):
        n, eps = self.norms, self.cfg["rms_norm_eps"]
        kind = "sliding" if self.sliding else "global"
        a = self.attention(rms_norm(h, n["input_layernorm"], eps), *rope[kind], masks[kind])
        h = h + rms_norm(a, n["post_attention_layernorm"], eps)
        x = rms_norm(h, n["pre_feedforward_layernorm"], eps)
        m = self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))
        return h + rms_norm(m, n["post_feedforward_layernorm"], eps)


class Gemma3Lora(nn.Module):
    """Gemma3ForCausalLM (text) with frozen weights and LoRA on all seven projections."""

    def __init__(self, cfg, weights, rank, alpha):
        super().__init__()
        self.cfg = cfg
        self.embed = weights["model.embed_tokens.weight"]
        self.final_norm = weights["model.norm.weight"]
        types = layer_types(cfg)
        self.layers = nn.ModuleList(
            Layer(cfg, {k[len(f"model.layers.{i}."):].removesuffix(".weight"): v for k, v in weights.items() if k.startswith(f"model.layers.{i}.")},
                  rank, alpha, types[i] == "sliding_attention")
            for i in range(cfg["num_hidden_layers"]))

    def rope(self, T):
        D = self.cfg["head_dim"]
        dev = self.embed.device
        pos = torch.arange(T, dtype=torch.float32, device=dev)
        out = {}
        for kind, base in (("global", self.cfg["rope_theta"]), ("sliding", self.cfg["rope_local_base_freq"])):
            inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64, device=dev).float() / D))
            emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)
            out[kind] = (emb.cos(), emb.sin())
        return out

    def masks(self, T):
        dev = self.embed.device
        i = torch.arange(T, device=dev)[:, None]
        j = torch.arange(T, device=dev)[None, :]
        neg = torch.finfo(torch.float32).min
        causal = j <= i
        sliding = causal & (j > i - self.cfg["sliding_window"])
        return {kind: torch.zeros(T, T, device=dev).masked_fill(~ok, neg) for kind, ok in (("global", causal), ("sliding", sliding))}

    def hidden(self, ids):
        """The final norm's output [B, T, hidden] (HF's last_hidden_state)."""
        B, T = ids.shape
        h = F.embedding(ids, self.embed) * torch.tensor(self.cfg["hidden_size"] ** 0.5, dtype=torch.float32, device=self.embed.device)
        rope, masks = self.rope(T), self.masks(T)
        for layer in self.layers:
            h = layer(h, rope, masks)
        return rms_norm(h, self.final_norm, self.cfg["rms_norm_eps"])

    def loss(self, ids, labels):
        """HF ForCausalLMLoss: logits[:, :-1] vs labels[:, 1:], mean over all label tokens; the LM head
        runs only at the positions that predict a label."""
        h = self.hidden(ids)
        targets = labels[:, 1:]
        keep = targets != -100
        logits = F.linear(h[:, :-1][keep], self.embed)
        cap = self.cfg.get("final_logit_softcapping")
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits, targets[keep], reduction="sum") / keep.sum()

    def lora_params(self):
        """LoRA tensors by PEFT name (without the adapter name), in module order."""
        out = {}
        for i, layer in enumerate(self.layers):
            for t in TARGETS:
                mod = getattr(layer, t)
                part = "self_attn" if t in TARGETS[:4] else "mlp"
                base = f"base_model.model.model.layers.{i}.{part}.{t}"
                out[f"{base}.lora_A.weight"] = mod.lora_A
                out[f"{base}.lora_B.weight"] = mod.lora_B
        return out


def random_weights(cfg, seed):
    """Random frozen fp32 weights of the config's shape (HF names, [out, in] linears)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, std=0.02: torch.randn(*shape, generator=g) * std
    E, I = cfg["hidden_size"], cfg["intermediate_size"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    w = {"model.embed_tokens.weight": rnd(cfg["vocab_size"], E), "model.norm.weight": rnd(E, std=0.1)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w.update({
            p + "self_attn.q_proj.weight": rnd(H * D, E), p + "self_attn.k_proj.weight": rnd(KV * D, E),
            p + "self_attn.v_proj.weight": rnd(KV * D, E), p + "self_attn.o_proj.weight": rnd(E, H * D),
            p + "mlp.gate_proj.weight": rnd(I, E), p + "mlp.up_proj.weight": rnd(I, E), p + "mlp.down_proj.weight": rnd(E, I),
            p + "self_attn.q_norm.weight": rnd(D, std=0.1), p + "self_attn.k_norm.weight": rnd(D, std=0.1),
        })
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            w[p + n + ".weight"] = rnd(E, std=0.1)
    return w


def read_safetensors(path):
    """A minimal safetensors reader (F32 / I32 only, which is all the fixtures hold)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "I32": torch.int32}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, only F32/I32 are read")
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_forward(folder, cfg):
    """Without LoRA (B = 0): the shifted CE on the second half of each prompt, against the same CE
    taken from HF's reference logits; exit 1 if off."""
    ref = read_safetensors(os.path.join(folder, "reference.safetensors"))
    model = Gemma3Lora(cfg, read_safetensors(os.path.join(folder, "model.safetensors")), 1, 1.0)
    ids = ref["input_ids"].long()
    labels = ids.clone()
    labels[:, :ids.shape[1] // 2] = -100
    keep = labels[:, 1:] != -100
    want = F.cross_entropy(ref["logits"][:, :-1][keep], labels[:, 1:][keep]).item()
    with torch.no_grad():
        for k, p in model.lora_params().items():
            p.zero_()
        got = model.loss(ids, labels).item()
    rel = abs(got - want) / abs(want)
    print(f"check {folder}: loss {got:.7f}, from HF logits {want:.7f}, relative diff {rel:.2e}")
    print("check: ok" if rel < 1e-5 else "check: FAILED")
    return 0 if rel < 1e-5 else 1


def check_fixture(folder):
    """Loss and 5 AdamW steps against the HF + PEFT reference in the fixture folder (or, in a folder
    without a LoRA reference, the forward pass against HF's logits); exit 1 if off."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if not os.path.exists(os.path.join(folder, "lora_reference.json")):
        return check_forward(folder, cfg)
    ref = json.load(open(os.path.join(folder, "lora_reference.json")))
    tensors = read_safetensors(os.path.join(folder, "lora_reference.safetensors"))
    model = Gemma3Lora(cfg, read_safetensors(os.path.join(folder, "model.safetensors")), ref["lora"]["r"], ref["lora"]["alpha"])
    init = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    params = model.lora_params()
    if set(init) != set(params):
        raise ValueError(f"{folder}: adapter tensor names differ from this model's LoRA names")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(init[k])
    ids, labels = tensors["input_ids"].long(), tensors["labels"].long()
    a = ref["adamw"]
    opt = torch.optim.AdamW(list(params.values()), lr=a["lr"], betas=tuple(a["betas"]), eps=a["eps"], weight_decay=a["weight_decay"])
    losses = []
    grad_diff = 0.0
    grads_ref = read_safetensors(os.path.join(folder, "lora_grads.safetensors"))
    for s in range(5):
        opt.zero_grad()
        loss = model.loss(ids, labels)
        loss.backward()
        if s == 0:
            grad_diff = max(((p.grad - grads_ref[k]).abs().max() / grads_ref[k].abs().max().clamp(min=1e-12)).item() for k, p in params.items())
        losses.append(loss.item())
        opt.step()
    after5 = read_safetensors(os.path.join(folder, "lora_after_step5.safetensors"))
    w_diff = max((p.detach() - after5[k]).abs().max().item() for k, p in params.items())
    loss_rel = max(abs(x - y) / abs(y) for x, y in zip(losses, ref["loss_before_step"]))
    print(f"check {folder}: loss {losses[0]:.7f} (HF {ref['loss_init']:.7f}), max relative loss diff over 5 steps {loss_rel:.2e}, "
          f"max relative grad diff {grad_diff:.2e}, max |weight diff| after 5 steps {w_diff:.2e}")
    ok = loss_rel < 1e-5 and grad_diff < 1e-3 and w_diff < 1e-4
    print("check: ok" if ok else "check: FAILED")
    return 0 if ok else 1


def bench(args):
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg = dict(GEMMA3_270M)
    if args.config:
        cfg.update(json.load(open(args.config)))
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = Gemma3Lora(cfg, {k: v.to(dev) for k, v in random_weights(cfg, 1).items()}, args.rank, args.alpha)
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.lora_params().items():
            if name.endswith("lora_A.weight"):
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))  # PEFT's init of A (torch 1.13 takes no generator here)
            else:
                # PEFT starts B at zero; small random values so that A gets gradients from the first step.
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    params = list(model.lora_params().values())
    B, T, C = args.batch, args.tokens, args.completion
    ids = torch.cat([torch.full((B, 1), 2), torch.randint(3, cfg["vocab_size"], (B, T - 1), generator=g)], dim=1).to(dev)
    labels = ids.clone()
    labels[:, :T - C] = -100
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    setup = time.perf_counter() - t0
    n_params = sum(p.numel() for p in params)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads, BLAS: {'openblas' if 'openblas' in open('/proc/self/maps').read() else 'unknown'}"
    print(f"torch {torch.__version__}, {where}; "
          f"{cfg['num_hidden_layers']} layers × hidden {cfg['hidden_size']} fp32, LoRA r{args.rank} alpha {args.alpha} on all 7 projections ({n_params} params); setup {setup:.1f} s", flush=True)
    times, cpu = [], 0.0
    for s in range(args.warmup + args.steps):
        sync()
        ts, cs = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model.loss(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        dt = time.perf_counter() - ts
        if s >= args.warmup:
            times.append(dt)
            cpu += time.process_time() - cs
        print(f"step {s + 1}{' (warm-up)' if s < args.warmup else ''}: loss {loss.item():.4f}, {dt:.2f} s, {B * T / dt:.1f} tokens/s", flush=True)
    step_s = sum(times) / len(times)
    tok_s = B * T / step_s
    rss = peak_rss_mb()
    gpu_mb = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else 0.0
    print(f"training: {tok_s:.1f} tokens/s ({B}x{T} tokens, last {C} labelled, {step_s:.2f} s/step over {len(times)} steps); peak RSS {rss:.0f} MB")
    print(json.dumps({"train_tok_s": round(tok_s, 3), "peak_rss_mb": round(rss, 1), "step_s": round(step_s, 4), "steps": len(times),
                      "cpu_s_per_step": round(cpu / len(times), 3), "setup_s": round(setup, 2),
                      "device": args.device, "peak_gpu_mb": round(gpu_mb, 1)}))
    return 0


def main():
    ap = argparse.ArgumentParser(description="PyTorch fp32 LoRA training speed on the Gemma 3 270M shape (issue 4's reference).")
    ap.add_argument("--steps", type=int, default=8, help="timed steps (default 8)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=None, help="default 2 x rank")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per sequence")
    ap.add_argument("--completion", type=int, default=32, help="labelled tokens at the end of each sequence")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    ap.add_argument("--config", metavar="CONFIG_JSON", help="HF config.json of the shape to time (default the 270M)")
    ap.add_argument("--check", metavar="FIXTURE_DIR", help="check against the HF + PEFT LoRA fixture instead of timing")
    args = ap.parse_args()
    if args.check:
        return check_fixture(args.check)
    for name, lo in (("steps", 1), ("warmup", 0), ("threads", 1), ("rank", 1), ("batch", 1), ("tokens", 2), ("completion", 1)):
        if getattr(args, name) < lo:
            ap.error(f"--{name} must be at least {lo}")
    if args.completion >= args.tokens:
        ap.error("--completion must be below --tokens (the first token has no label)")
    if args.alpha is None:
        args.alpha = 2.0 * args.rank
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())

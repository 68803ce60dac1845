#!/usr/bin/python3
"""The PyTorch peer for bench/lora_bench.sh: LoRA fine-tuning as PEFT does it, hand-written (PEFT is
not installable here) on train_bench.py's Llama (shapes of ../shared/perf/SHAPES.md).

PEFT's semantics (peft.tuners.lora.Linear, lora_dropout 0): every targeted nn.Linear keeps its
frozen weight and gains A [r, in] (kaiming_uniform, a = sqrt(5)) and B [out, r] (zeros), and
computes y = base(x) + scale · B(A(x)), scale = alpha / r (alpha / sqrt(r) with rsLoRA). The whole
base has requires_grad=False, so autograd keeps no weight gradients for it; AdamW (torch.optim,
TRL's defaults: weight decay 0, gradient clipping at norm 1) updates the adapters only.

Prints one JSON line like bench/lora_bench.cpp: tokens/s (median step after warm-up) and peak RSS
(getrusage). Run with Debian's python3-torch 1.13 and OMP_WAIT_POLICY=PASSIVE."""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_bench as tb  # noqa: E402  (the same Llama the training benchmark uses)

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")  # train_bench's names for q_proj ... down_proj


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha, rslora):
        super().__init__()
        self.base = base
        self.scale = alpha / math.sqrt(r) if rslora else alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="M")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--context", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    cfg = dict(tb.SHAPES[a.shape])
    cfg["batch"] = a.batch or cfg["batch"]
    cfg["context"] = a.context or cfg["context"]
    model = tb.Llama(**cfg)
    model.requires_grad_(False)  # the frozen base
    for block in model.blocks:
        for t in TARGETS:
            setattr(block, t, LoraLinear(getattr(block, t), a.rank, a.alpha, a.rslora))
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    B, T = cfg["batch"], cfg["context"]
    tok = torch.randint(0, tb.VOCAB, (B, T + 1))
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(tok[:, :-1], tok[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t1 = time.perf_counter()
        if s >= a.warmup:
            times.append(t1 - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "shape": a.shape, "mode": "lora", "precision": "f32", "recompute": False,
                      "threads": a.threads, "rank": a.rank, "trainable": trainable,
                      "tokens_per_s": round(B * T / med, 1), "step_s": round(med, 4), "loss": round(loss.item(), 4),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()

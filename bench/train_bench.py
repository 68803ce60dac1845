#!/usr/bin/python3
"""The PyTorch peer for bench/train_bench.sh: the same Llama model as todae's train_bench (shapes of
../shared/perf/SHAPES.md: RMSNorm eps 1e-5, RoPE theta 1e4, SwiGLU, untied head, init std 0.02),
trained with AdamW in float32 on random tokens. Prints one JSON line like train_bench.cpp.

Run with Debian's python3-torch 1.13 and OMP_WAIT_POLICY=PASSIVE (its best setting here)."""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {"S": dict(dim=288, layers=6, heads=6, ffn=768, context=256, batch=8),
          "M": dict(dim=512, layers=8, heads=8, ffn=1408, context=512, batch=4)}
VOCAB = 32000


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.ln1, self.ln2 = RMSNorm(dim), RMSNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(dim, ffn, bias=False), nn.Linear(dim, ffn, bias=False)
        self.down = nn.Linear(ffn, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.ln1(x)
        q, k, v = (l(h).view(B, T, self.heads, self.hd).transpose(1, 2) for l in (self.q, self.k, self.v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, dim, layers, heads, ffn, context, **_):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        hd = dim // heads
        inv = 1.0 / (1e4 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(context).float()[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], -1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1))
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("o.weight", "down.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T], self.mask[:T, :T])
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="S")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--forward", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    cfg = SHAPES[a.shape]
    model = Llama(**cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = cfg["batch"], cfg["context"]
    tok = torch.randint(0, VOCAB, (B, T + 1))
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.forward:
            with torch.no_grad():
                loss = model(tok[:, :-1], tok[:, 1:])
        else:
            opt.zero_grad(set_to_none=True)
            loss = model(tok[:, :-1], tok[:, 1:])
            loss.backward()
            opt.step()
        t1 = time.perf_counter()
        if s >= a.warmup:
            times.append(t1 - t0)
    times.sort()
    med = times[len(times) // 2]
    C, L, FF = cfg["dim"], cfg["layers"], cfg["ffn"]
    flops = 6 * (L * (4 * C * C + 3 * FF * C) + VOCAB * C) + 12 * L * T * C
    if a.forward:
        flops /= 3
    tps = B * T / med
    print(json.dumps({"impl": "pytorch", "shape": a.shape, "mode": "forward" if a.forward else "train",
                      "threads": a.threads, "tokens_per_s": round(tps, 1), "step_s": round(med, 4),
                      "gflops": round(tps * flops / 1e9, 1), "loss": round(loss.item(), 4),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()

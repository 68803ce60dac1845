#!/usr/bin/python3
"""Generates tests/train/fixtures/adamw_torch.json: torch.optim.AdamW (PyTorch 1.13, Debian
python3-torch) on a small flat parameter set with two param groups (decay / no decay), gradient
accumulation over 2 micro-batches, clip_grad_norm_ and a warmup + cosine schedule.

Run with /usr/bin/python3 tests/train/gen_adamw_fixture.py > tests/train/fixtures/adamw_torch.json
"""
import json
import math
import sys

import torch

torch.manual_seed(1234)
VIEWS = [  # name, shape, weight decay (as todae::default_weight_decay decides)
    ("model.embed_tokens.weight", [6, 4], True),
    ("model.layers.0.input_layernorm.weight", [4], False),
    ("model.layers.0.mlp.up_proj.weight", [3, 4], True),
    ("model.layers.0.self_attn.q_proj.bias", [5], False),
]
CFG = dict(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0,
           max_lr=1e-2, min_lr=1e-3, warmup_steps=3, total_steps=8, accum_steps=2)
STEPS = 10  # two past total_steps, at min_lr


def lr_at(step):  # must match todae::LrSchedule::at
    c = CFG
    if step < c["warmup_steps"]:
        return c["max_lr"] * (step + 1) / c["warmup_steps"]
    if step >= c["total_steps"]:
        return c["min_lr"]
    ratio = (step - c["warmup_steps"]) / (c["total_steps"] - c["warmup_steps"])
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return c["min_lr"] + coeff * (c["max_lr"] - c["min_lr"])


def flat(ts):
    return torch.cat([t.detach().reshape(-1) for t in ts]).tolist()


params = [torch.nn.Parameter(torch.randn(*shape) * 0.5) for _, shape, _ in VIEWS]
init = flat(params)
decay = [p for p, (_, _, d) in zip(params, VIEWS) if d]
no_decay = [p for p, (_, _, d) in zip(params, VIEWS) if not d]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": CFG["weight_decay"]},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=CFG["max_lr"], betas=(CFG["beta1"], CFG["beta2"]), eps=CFG["eps"], foreach=False)
steps = []
for step in range(STEPS):
    # Small gradients on some steps (no clipping), large on others (clipped).
    scale = 0.05 if step % 3 == 1 else 2.0
    micro = [[torch.randn(*shape) * scale for _, shape, _ in VIEWS] for _ in range(CFG["accum_steps"])]
    for i, p in enumerate(params):
        p.grad = sum(m[i] for m in micro) / CFG["accum_steps"]
    norm = torch.nn.utils.clip_grad_norm_(params, CFG["grad_clip"])
    lr = lr_at(step)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    steps.append({"lr": lr, "micro_grads": [flat(m) for m in micro], "grad_norm": float(norm),
                  "params": flat(params)})

offset, views = 0, []
for name, shape, _ in VIEWS:
    views.append({"name": name, "offset": offset, "shape": shape})
    offset += math.prod(shape)
state = [opt.state[p] for p in params]
json.dump({"torch": torch.__version__, "config": CFG, "views": views, "init": init, "steps": steps,
           "exp_avg": flat([s["exp_avg"] for s in state]), "exp_avg_sq": flat([s["exp_avg_sq"] for s in state])},
          sys.stdout)
sys.stdout.write("\n")

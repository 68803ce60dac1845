#!/usr/bin/python3
"""Generates the PyTorch reference fixtures for todae's kernel and model tests.

Run with Debian's python3-torch (1.13):   /usr/bin/python3 tests/model/make_fixtures.py

A small reference Llama written in plain torch (no transformers), following Hugging Face's
modeling_llama / modeling_qwen3 step by step: RMSNorm, rotate-half RoPE (with linear, dynamic NTK and
llama3 scaling), grouped-query attention, SwiGLU, optional tied embeddings, optional Qwen3 QK-norm.
Everything is computed in float64 from float32 inputs, so the expected values are the exact answer
rounded once to float32; the C++ tests then measure todae's own float32 error against them.

Outputs (all small; committed):
  tests/tensor/fixtures/kernels.bin        one fixture per kernel: inputs, outputs, gradients
  tests/model/fixtures/<name>.config.json  a Hugging Face style config.json
  tests/model/fixtures/<name>.bin          weights (HF names), tokens, loss, logits, hidden states,
                                           and the gradient of the mean loss for every parameter

File format (little-endian): b"TODAEFX1", u32 count, then per tensor: u32 name length, name bytes,
u32 dtype (0 = f32, 1 = i32), u32 ndim, i64 dims[ndim], the data.
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write_fixture(path, tensors):
    with open(path, "wb") as f:
        f.write(b"TODAEFX1")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors.items():
            t = torch.as_tensor(t).detach()
            if t.dtype in (torch.int32, torch.int64):
                dtype, data = 1, t.to(torch.int32).contiguous().numpy().tobytes()
            else:
                dtype, data = 0, t.to(torch.float32).contiguous().numpy().tobytes()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", dtype, t.dim()))
            f.write(struct.pack("<%dq" % t.dim(), *t.shape))
            f.write(data)
    print("wrote %s (%d tensors, %d bytes)" % (os.path.relpath(path, ROOT), len(tensors), os.path.getsize(path)))


def randn(*shape, std=1.0, gen=None):
    # float32 values (what the C++ side reads), promoted to float64 for the reference computation
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * std).to(torch.float64)


# ---- reference layers (float64) ---------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def inv_freq(D, theta, scaling, max_pos, seq_len):
    kind = (scaling or {}).get("type", "none")
    factor = (scaling or {}).get("factor", 1.0)
    base = theta
    if kind == "dynamic" and seq_len > max_pos:
        base = theta * ((factor * seq_len / max_pos) - (factor - 1)) ** (D / (D - 2))
    f = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    if kind == "linear":
        f = f / factor
    if kind == "llama3":
        old = scaling["original_max_position_embeddings"]
        lo, hi = scaling["low_freq_factor"], scaling["high_freq_factor"]
        low_wl, high_wl = old / lo, old / hi
        wl = 2 * math.pi / f
        g = torch.where(wl > low_wl, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * g / factor + smooth * g
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        f = torch.where(medium, smoothed, g)
    return f


def rope_cos_sin(pos, D, theta, scaling, max_pos, seq_len):
    f = inv_freq(D, theta, scaling, max_pos, seq_len)
    ang = pos.to(torch.float64)[:, None] * f[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):  # x [..., T, D], cos/sin [T, D]
    return x * cos + rotate_half(x) * sin


def causal_attention(q, k, v, scale):  # q [B,H,T,D], k/v [B,KVH,T,D]
    H, KVH, T = q.shape[1], k.shape[1], q.shape[2]
    k = k.repeat_interleave(H // KVH, dim=1)
    v = v.repeat_interleave(H // KVH, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    return torch.softmax(s, dim=-1) @ v, lse


def silu(x):
    return x * torch.sigmoid(x)


# ---- kernel fixtures --------------------------------------------------------------------------

def kernel_fixtures():
    g = torch.Generator().manual_seed(1234)
    out = {}

    def grads(fn, inputs, dout):
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        y = fn(*leaves)
        y.backward(dout)
        return y.detach(), [t.grad for t in leaves]

    # matmul (nn.Linear)
    N, C, OC = 7, 13, 11
    x, w, b = randn(N, C, gen=g), randn(OC, C, gen=g), randn(OC, gen=g)
    dy = randn(N, OC, gen=g)
    y, (dx, dw, db) = grads(lambda x, w, b: x @ w.T + b, [x, w, b], dy)
    out.update({"matmul.x": x, "matmul.w": w, "matmul.b": b, "matmul.dy": dy, "matmul.y": y,
                "matmul.dx": dx, "matmul.dw": dw, "matmul.db": db})

    # RMSNorm (a width that is no multiple of any vector width)
    N, C, eps = 6, 37, 1e-5
    x, w, dy = randn(N, C, gen=g), 1 + 0.1 * randn(C, gen=g), randn(N, C, gen=g)
    y, (dx, dw) = grads(lambda x, w: rmsnorm(x, w, eps), [x, w], dy)
    out.update({"rmsnorm.x": x, "rmsnorm.w": w, "rmsnorm.dy": dy, "rmsnorm.y": y,
                "rmsnorm.dx": dx, "rmsnorm.dw": dw})

    # per-head RMSNorm (Qwen3 QK-norm): [N, heads, D]
    N, Hh, D, eps = 5, 3, 20, 1e-6
    x, w, dy = randn(N, Hh, D, gen=g), 1 + 0.1 * randn(D, gen=g), randn(N, Hh, D, gen=g)
    y, (dx, dw) = grads(lambda x, w: rmsnorm(x, w, eps), [x, w], dy)
    out.update({"headnorm.x": x, "headnorm.w": w, "headnorm.dy": dy, "headnorm.y": y,
                "headnorm.dx": dx, "headnorm.dw": dw})

    # RoPE on [B*T, H, D] rows, each scaling kind
    B, T, H, D = 2, 5, 3, 12
    pos = torch.arange(T).repeat(B)
    x, dy = randn(B * T, H, D, gen=g), randn(B * T, H, D, gen=g)
    out.update({"rope.x": x, "rope.dy": dy, "rope.pos": pos})
    variants = {
        "none": (10000.0, None, 64, T),
        "linear": (10000.0, {"type": "linear", "factor": 4.0}, 64, T),
        "dynamic": (10000.0, {"type": "dynamic", "factor": 2.0}, 16, 40),
        "llama3": (500000.0, {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, 64, T),
    }
    for name, (theta, sc, max_pos, seq_len) in variants.items():
        # inv_freq for a larger head so every llama3 band is exercised
        out["rope.%s.inv_freq" % name] = inv_freq(64, theta, sc, max_pos, seq_len)
        cos, sin = rope_cos_sin(pos, D, theta, sc, max_pos, seq_len)
        y, (dx,) = grads(lambda x: apply_rope(x.transpose(0, 1), cos, sin).transpose(0, 1), [x], dy)
        out["rope.%s.y" % name], out["rope.%s.dx" % name] = y, dx

    # SwiGLU on fused [gate | up]
    N, F = 7, 19
    gu, dy = randn(N, 2 * F, gen=g), randn(N, F, gen=g)
    y, (dgu,) = grads(lambda gu: silu(gu[:, :F]) * gu[:, F:], [gu], dy)
    out.update({"swiglu.gu": gu, "swiglu.dy": dy, "swiglu.y": y, "swiglu.dgu": dgu})

    # causal attention on fused qkv rows: GQA over several tiles, and plain MHA
    for name, (B, T, H, KVH, D) in {"gqa": (2, 70, 4, 2, 12), "mha": (1, 19, 2, 2, 8)}.items():
        qkv, dy = randn(B * T, (H + 2 * KVH) * D, gen=g), randn(B * T, H * D, gen=g)
        scale = 1 / math.sqrt(D)

        def attn(qkv):
            r = qkv.view(B, T, H + 2 * KVH, D)
            q = r[:, :, :H].transpose(1, 2)
            k = r[:, :, H:H + KVH].transpose(1, 2)
            v = r[:, :, H + KVH:].transpose(1, 2)
            o, _ = causal_attention(q, k, v, scale)
            return o.transpose(1, 2).reshape(B * T, H * D)

        y, (dqkv,) = grads(attn, [qkv], dy)
        r = qkv.view(B, T, H + 2 * KVH, D)
        _, lse = causal_attention(r[:, :, :H].transpose(1, 2), r[:, :, H:H + KVH].transpose(1, 2),
                                  r[:, :, H + KVH:].transpose(1, 2), scale)
        p = "attn.%s." % name
        out.update({p + "dims": torch.tensor([B, T, H, KVH, D]), p + "qkv": qkv, p + "dy": dy,
                    p + "y": y, p + "lse": lse, p + "dqkv": dqkv})

    # LM head fused with cross-entropy, one ignored row (target -1)
    N, C, V = 9, 10, 37
    x, w = randn(N, C, gen=g), randn(V, C, std=0.5, gen=g)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[4] = -1
    valid = targets >= 0
    dloss = 1.0 / int(valid.sum())

    def ce(x, w):
        logits = x @ w.T
        l = torch.logsumexp(logits, -1) - logits.gather(1, targets.clamp(min=0)[:, None])[:, 0]
        return torch.where(valid, l, torch.zeros_like(l))

    losses = ce(x, w)
    xl, wl = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    (ce(xl, wl).sum() * dloss).backward()
    out.update({"ce.x": x, "ce.w": w, "ce.targets": targets, "ce.losses": losses,
                "ce.dloss": torch.tensor([dloss]), "ce.dx": xl.grad, "ce.dw": wl.grad})

    # embedding with repeated tokens
    V, C = 11, 5
    table, tokens = randn(V, C, gen=g), torch.tensor([3, 7, 3, 0, 10, 3, 7])
    dy = randn(len(tokens), C, gen=g)
    tl = table.clone().requires_grad_(True)
    y = tl[tokens]
    y.backward(dy)
    out.update({"embed.table": table, "embed.tokens": tokens, "embed.dy": dy, "embed.y": y.detach(),
                "embed.dtable": tl.grad})

    # AdamW: three steps of torch.optim.AdamW (float32, as training runs it)
    n = 29
    p0 = torch.randn(n, generator=g, dtype=torch.float32)
    gs = [torch.randn(n, generator=g, dtype=torch.float32) for _ in range(3)]
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for gi in gs:
        p.grad = gi.clone()
        opt.step()
    st = opt.state[p]
    out.update({"adamw.p0": p0, "adamw.g": torch.stack(gs), "adamw.p": p.detach(),
                "adamw.m": st["exp_avg"], "adamw.v": st["exp_avg_sq"]})
    return out


# ---- reference model --------------------------------------------------------------------------

def model_forward(cfg, W, tokens_in, hidden_out=None):
    """tokens_in [B, T] -> logits [B, T, V], following HF LlamaForCausalLM / Qwen3ForCausalLM."""
    B, T = tokens_in.shape
    C = cfg["hidden_size"]
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    eps = cfg["rms_norm_eps"]
    qk_norm = cfg["architectures"][0] == "Qwen3ForCausalLM"
    cos, sin = rope_cos_sin(torch.arange(T), D, cfg["rope_theta"], cfg.get("rope_scaling"),
                            cfg["max_position_embeddings"], T)
    x = W["model.embed_tokens.weight"][tokens_in]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, KVH, D)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, KVH, D)
        if qk_norm:
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a, _ = causal_attention(q, k, v, 1 / math.sqrt(D))
        a = a.transpose(1, 2).reshape(B, T, H * D)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        m = silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + m @ W[p + "mlp.down_proj.weight"].T
        if hidden_out is not None:
            hidden_out.append(x.detach().clone())
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def param_shapes(cfg):
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    shapes = {"model.embed_tokens.weight": (V, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        shapes.update({
            p + "input_layernorm.weight": (C,),
            p + "self_attn.q_proj.weight": (H * D, C),
            p + "self_attn.k_proj.weight": (KVH * D, C),
            p + "self_attn.v_proj.weight": (KVH * D, C),
            p + "self_attn.o_proj.weight": (C, H * D),
            p + "post_attention_layernorm.weight": (C,),
            p + "mlp.gate_proj.weight": (F, C),
            p + "mlp.up_proj.weight": (F, C),
            p + "mlp.down_proj.weight": (C, F),
        })
        if cfg["architectures"][0] == "Qwen3ForCausalLM":
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
    shapes["model.norm.weight"] = (C,)
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def model_fixture(name, cfg, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    W = {}
    for pname, shape in param_shapes(cfg).items():
        if pname.endswith("norm.weight") or "layernorm" in pname:
            W[pname] = 1 + 0.1 * randn(*shape, gen=g)  # not all ones, so the norm weights matter
        else:
            W[pname] = randn(*shape, std=0.2, gen=g)  # larger than 0.02 so every path carries signal
    tokens = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g)
    leaves = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    hidden = []
    logits = model_forward(cfg, leaves, tokens[:, :-1], hidden)
    V = cfg["vocab_size"]
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1),
                                               reduction="none")
    loss = losses.mean()
    loss.backward()
    out = dict(W)
    out["tokens"] = tokens
    out["loss"] = loss.detach().reshape(1)
    out["losses"] = losses.detach().view(B, T)
    out["logits"] = logits.detach()
    for l, h in enumerate(hidden):
        out["hidden.%d" % l] = h
    for k, v in leaves.items():
        out["grad." + k] = v.grad
    fx = os.path.join(HERE, "fixtures")
    with open(os.path.join(fx, name + ".config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_fixture(os.path.join(fx, name + ".bin"), out)


def base_cfg(**kw):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 56,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 53,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "attention_bias": False,
        "torch_dtype": "float32",
    }
    cfg.update(kw)
    return cfg


def main():
    os.makedirs(os.path.join(ROOT, "tests/tensor/fixtures"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "fixtures"), exist_ok=True)
    write_fixture(os.path.join(ROOT, "tests/tensor/fixtures/kernels.bin"), kernel_fixtures())
    # untied Llama with grouped-query attention
    model_fixture("llama_gqa", base_cfg(), B=2, T=19, seed=1)
    # tied embeddings, plain multi-head attention, linear RoPE scaling
    model_fixture("llama_tied", base_cfg(num_key_value_heads=4, tie_word_embeddings=True,
                                         intermediate_size=40, rope_scaling={"type": "linear", "factor": 2.0}),
                  B=2, T=13, seed=2)
    # dynamic NTK RoPE with a sequence longer than max_position_embeddings, one KV head
    model_fixture("llama_dynamic", base_cfg(num_key_value_heads=1, max_position_embeddings=16,
                                            num_hidden_layers=1,
                                            rope_scaling={"type": "dynamic", "factor": 2.0}),
                  B=1, T=24, seed=3)
    # Qwen3: QK-norm, head_dim independent of hidden_size / heads, tied, theta 1e6
    model_fixture("qwen3", base_cfg(architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                                    hidden_size=24, head_dim=16, intermediate_size=48,
                                    rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                                    vocab_size=47),
                  B=2, T=11, seed=4)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Generates the PyTorch float64 reference fixtures for todae's fine-tuning tests (lora_test.cpp).

Run with Debian's python3-torch (1.13):   /usr/bin/python3 tests/model/make_lora_fixtures.py

The reference model is make_fixtures.py's (Hugging Face's modeling_llama / qwen2 / qwen3 step by
step, float64 from float32 inputs), extended by what fine-tuning adds:
  - LoRA as PEFT defines it (dropout 0): y = x·Wᵀ (+ b) + scale · (x·Aᵀ)·Bᵀ, A [r, in], B [out, r],
    scale = alpha / r, or alpha / sqrt(r) with rsLoRA; the base is frozen (no gradient);
  - loss masks: a negative target is left out; the loss is the mean cross-entropy over the targets
    >= 0 of the whole batch;
  - packed rows: a row holds several documents back to back; attention is causal within a document
    only (a block-diagonal mask) and RoPE positions restart at 0 in each document; what is left of a
    row after the last document is one more (masked-out) document;
  - Qwen2's q/k/v biases.

Outputs (tests/model/fixtures/, committed; same file format as make_fixtures.py, ~150 KB in all):
  lora_llama.bin  Llama with GQA. Base weights, inputs/targets [B, T] (some targets -1), and two
                  adapter cases: "r4" (rank 4, alpha 8, all seven targets) and "rs" (rsLoRA, rank 8,
                  alpha 4, q_proj/v_proj/down_proj only). Per case C: C.config = i32 [rank, rslora,
                  target mask (bit t = target t in q,k,v,o,gate,up,down order)], C.alpha, the adapter
                  C.<PEFT name> (e.g. r4.model.layers.0.self_attn.q_proj.lora_A.weight), C.loss and
                  C.grad.<PEFT name> (the gradient of the mean loss).
  lora_qwen3.bin  the same for Qwen3 (QK-norm, head_dim independent of hidden_size, tied), case "r4".
  lora_packed.bin Llama, full fine-tuning of a packed batch: inputs/targets [B, T], docs (i32
                  [B, 3]: document lengths, 0 = none), loss and grad.<name> of every parameter; and
                  each document alone: doc.K.inputs / doc.K.targets [1, len], doc.K.loss (its own
                  mean) and doc.K.valid (its number of targets >= 0), K in packing order.
  lora_qwen2.bin  Qwen2 (q/k/v biases): full fine-tuning loss and grad.<name> including the
                  biases' gradients, and a LoRA case "r4" on the same batch (bias frozen too).
  *.config.json   beside each, the Hugging Face config.json.
"""
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402  (the reference layers and the fixture writer)

torch.set_default_dtype(torch.float64)
FX = os.path.join(HERE, "fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def module(t):
    return "self_attn" if t in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"


def dims(cfg):
    C, H, KVH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    return C, H, KVH, cfg.get("head_dim") or C // H


def target_shape(cfg, t):  # (out, in) of the base matrix
    C, H, KVH, D = dims(cfg)
    F = cfg["intermediate_size"]
    return {"q_proj": (H * D, C), "k_proj": (KVH * D, C), "v_proj": (KVH * D, C), "o_proj": (C, H * D),
            "gate_proj": (F, C), "up_proj": (F, C), "down_proj": (C, F)}[t]


def param_shapes(cfg):
    shapes = mf.param_shapes(cfg)
    if cfg["architectures"][0] == "Qwen2ForCausalLM":
        for l in range(cfg["num_hidden_layers"]):
            for t in ("q_proj", "k_proj", "v_proj"):
                shapes["model.layers.%d.self_attn.%s.bias" % (l, t)] = (target_shape(cfg, t)[0],)
    return shapes


def forward(cfg, W, inputs, pos, doc, lora=None, scale=0.0):
    """inputs, pos, doc [B, T] -> logits [B, T, V]. pos: RoPE position of each token; doc: its
    document id within the row (attention only between equal ids, causal). lora: {(layer, target):
    (A, B)}."""
    B, T = inputs.shape
    C, H, KVH, D = dims(cfg)
    eps = cfg["rms_norm_eps"]
    qk_norm = cfg["architectures"][0] == "Qwen3ForCausalLM"
    f = mf.inv_freq(D, cfg["rope_theta"], cfg.get("rope_scaling"), cfg["max_position_embeddings"], T)
    ang = pos.to(torch.float64)[..., None] * f
    emb = torch.cat([ang, ang], dim=-1)[:, None]  # [B, 1, T, D]: broadcast over heads
    cos, sin = emb.cos(), emb.sin()
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = (doc[:, :, None] == doc[:, None, :]) & causal  # [B, T, T]
    x = W["model.embed_tokens.weight"][inputs]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l

        def lin(h, t):
            name = p + module(t) + "." + t
            y = h @ W[name + ".weight"].T
            if name + ".bias" in W:
                y = y + W[name + ".bias"]
            if lora and (l, t) in lora:
                A, Bm = lora[(l, t)]
                y = y + scale * ((h @ A.T) @ Bm.T)
            return y

        h = mf.rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, "q_proj").view(B, T, H, D)
        k = lin(h, "k_proj").view(B, T, KVH, D)
        v = lin(h, "v_proj").view(B, T, KVH, D)
        if qk_norm:
            q = mf.rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = mf.rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = mf.apply_rope(q, cos, sin), mf.apply_rope(k, cos, sin)
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + lin(a, "o_proj")
        h = mf.rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + lin(mf.silu(lin(h, "gate_proj")) * lin(h, "up_proj"), "down_proj")
    x = mf.rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def masked_loss(logits, targets):
    """Mean cross-entropy over targets >= 0; (loss, number of such targets)."""
    V = logits.shape[-1]
    valid = targets.reshape(-1) >= 0
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).clamp(min=0),
                                               reduction="none")
    n = int(valid.sum())
    return (losses * valid).sum() / n, n


def plain_rows(B, T):  # one document per row
    return torch.arange(T).repeat(B, 1), torch.zeros(B, T, dtype=torch.long)


def random_base(cfg, g):
    W = {}
    for name, shape in param_shapes(cfg).items():
        if "norm" in name:
            W[name] = 1 + 0.1 * mf.randn(*shape, gen=g)  # not all ones, so the norm weights matter
        elif name.endswith(".bias"):
            W[name] = mf.randn(*shape, std=0.3, gen=g)
        else:
            W[name] = mf.randn(*shape, std=0.2, gen=g)  # larger than 0.02 so every path carries signal
    return W


def batch(cfg, B, T, g, masked=0.25):
    """Random inputs [B, T] and their next tokens as targets, some set to -1 (the loss mask): the
    first two of every row (a "prompt") and a random quarter of the rest."""
    V = cfg["vocab_size"]
    tok = torch.randint(0, V, (B, T + 1), generator=g)
    inputs, targets = tok[:, :-1].clone(), tok[:, 1:].clone()
    targets[:, :2] = -1
    targets[torch.rand(B, T, generator=g) < masked] = -1
    return inputs, targets


def lora_case(out, tag, cfg, W, inputs, targets, g, rank, alpha, rslora, targets_on):
    """Adapters on targets_on of every layer, A and B random (B nonzero so dA is nonzero), base
    frozen; writes the case's config, adapters, loss and adapter gradients into out."""
    scale = alpha / math.sqrt(rank) if rslora else alpha / rank
    lora, leaves = {}, {}
    mask = 0
    for t in targets_on:
        mask |= 1 << TARGETS.index(t)
    for l in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            if t not in targets_on:
                continue
            o, i = target_shape(cfg, t)
            base = "model.layers.%d.%s.%s." % (l, module(t), t)
            A = mf.randn(rank, i, std=1 / math.sqrt(i), gen=g).requires_grad_(True)  # PEFT's init range
            Bm = mf.randn(o, rank, std=0.1, gen=g).requires_grad_(True)
            lora[(l, t)] = (A, Bm)
            leaves[base + "lora_A.weight"], leaves[base + "lora_B.weight"] = A, Bm
    pos, doc = plain_rows(*inputs.shape)
    loss, _ = masked_loss(forward(cfg, W, inputs, pos, doc, lora, scale), targets)
    loss.backward()
    out[tag + ".config"] = torch.tensor([rank, int(rslora), mask])
    out[tag + ".alpha"] = torch.tensor([float(alpha)])
    out[tag + ".loss"] = loss.detach().reshape(1)
    for name, t in leaves.items():
        out[tag + "." + name] = t.detach()
        out[tag + ".grad." + name] = t.grad
    # the base gets no gradient and the adapters' contribution is real: without them the loss differs
    assert all(not w.requires_grad for w in W.values())
    base_loss, _ = masked_loss(forward(cfg, W, inputs, pos, doc), targets)
    assert abs(float(base_loss) - float(loss)) > 1e-3, (tag, float(base_loss), float(loss))
    print("  %s: scale %.4f, loss %.6f (base alone %.6f)" % (tag, scale, float(loss), float(base_loss)))


def full_grads(out, cfg, W, inputs, targets, pos, doc):
    leaves = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    loss, n = masked_loss(forward(cfg, leaves, inputs, pos, doc), targets)
    loss.backward()
    out["loss"] = loss.detach().reshape(1)
    for k, v in leaves.items():
        out["grad." + k] = v.grad
    return float(loss), n


def save(name, cfg, out):
    with open(os.path.join(FX, name + ".config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    mf.write_fixture(os.path.join(FX, name + ".bin"), out)


def tiny_llama():
    # GQA (2 heads over 1 KV head), untied head; small so the committed files stay small
    return mf.base_cfg(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=1,
                       vocab_size=29)


def llama_fixture():
    cfg = tiny_llama()
    g = torch.Generator().manual_seed(11)
    W = random_base(cfg, g)
    inputs, targets = batch(cfg, 2, 11, g)
    out = dict(W)
    out["inputs"], out["targets"] = inputs, targets
    lora_case(out, "r4", cfg, W, inputs, targets, g, 4, 8.0, False, TARGETS)
    lora_case(out, "rs", cfg, W, inputs, targets, g, 8, 4.0, True, ["q_proj", "v_proj", "down_proj"])
    save("lora_llama", cfg, out)


def qwen3_fixture():
    cfg = mf.base_cfg(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=16, head_dim=8,
                      intermediate_size=24, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                      rope_theta=1000000.0, tie_word_embeddings=True, vocab_size=31)
    g = torch.Generator().manual_seed(12)
    W = random_base(cfg, g)
    inputs, targets = batch(cfg, 2, 10, g)
    out = dict(W)
    out["inputs"], out["targets"] = inputs, targets
    lora_case(out, "r4", cfg, W, inputs, targets, g, 4, 8.0, False, TARGETS)
    save("lora_qwen3", cfg, out)


def packed_fixture():
    cfg = tiny_llama()
    g = torch.Generator().manual_seed(13)
    W = random_base(cfg, g)
    T = 16
    lengths = [[5, 6, 4], [9, 7]]  # row 0 leaves one position over: an extra, masked-out stretch
    B = len(lengths)
    inputs = torch.zeros(B, T, dtype=torch.long)
    targets = torch.full((B, T), -1, dtype=torch.long)
    pos = torch.zeros(B, T, dtype=torch.long)
    doc = torch.zeros(B, T, dtype=torch.long)
    out = dict(W)
    docs = []
    for b, row in enumerate(lengths):
        at = 0
        for d, n in enumerate(row):
            di, dt = batch(cfg, 1, n, g, masked=0.2)
            inputs[b, at:at + n], targets[b, at:at + n] = di[0], dt[0]
            pos[b, at:at + n] = torch.arange(n)
            doc[b, at:at + n] = d
            docs.append((di, dt))
            at += n
        # the rest of the row: its own document, tokens that must not matter, no targets
        inputs[b, at:] = torch.randint(0, cfg["vocab_size"], (T - at,), generator=g)
        pos[b, at:] = torch.arange(T - at)
        doc[b, at:] = len(row)
    loss, n = full_grads(out, cfg, W, inputs, targets, pos, doc)
    out["inputs"], out["targets"] = inputs, targets
    out["docs"] = torch.tensor([row + [0] * (3 - len(row)) for row in lengths])
    # each document alone; packing must not change what it computes
    weighted = 0.0
    for k, (di, dt) in enumerate(docs):
        p0, d0 = plain_rows(1, di.shape[1])
        lk, nk = masked_loss(forward(cfg, W, di, p0, d0), dt)
        out["doc.%d.inputs" % k], out["doc.%d.targets" % k] = di, dt
        out["doc.%d.loss" % k], out["doc.%d.valid" % k] = lk.reshape(1), torch.tensor([nk])
        weighted += float(lk) * nk / n
    assert abs(weighted - loss) < 1e-12, (weighted, loss)
    print("  packed: loss %.6f over %d targets = token-weighted mean of %d documents" % (loss, n, len(docs)))
    save("lora_packed", cfg, out)


def qwen2_fixture():
    # Qwen2 has no head_dim field (hidden_size / heads) and always has q/k/v biases
    cfg = mf.base_cfg(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=16,
                      intermediate_size=24, num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-6,
                      rope_theta=1000000.0, vocab_size=27, use_sliding_window=False)
    del cfg["attention_bias"]
    g = torch.Generator().manual_seed(14)
    W = random_base(cfg, g)
    inputs, targets = batch(cfg, 2, 9, g)
    pos, doc = plain_rows(2, 9)
    out = dict(W)
    out["inputs"], out["targets"] = inputs, targets
    loss, _ = full_grads(out, cfg, W, inputs, targets, pos, doc)
    nobias = {k: (torch.zeros_like(v) if k.endswith(".bias") else v) for k, v in W.items()}
    assert abs(float(masked_loss(forward(cfg, nobias, inputs, pos, doc), targets)[0]) - loss) > 1e-3
    print("  qwen2 full: loss %.6f" % loss)
    lora_case(out, "r4", cfg, W, inputs, targets, g, 4, 8.0, False, TARGETS)
    save("lora_qwen2", cfg, out)


def main():
    os.makedirs(FX, exist_ok=True)
    llama_fixture()
    qwen3_fixture()
    packed_fixture()
    qwen2_fixture()


if __name__ == "__main__":
    main()

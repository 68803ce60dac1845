#!/usr/bin/python3
"""A small, readable reference Llama / Qwen3 in PyTorch, for checking todae and llama.cpp outputs.

Run with Debian's interpreter (it has python3-torch 1.13 and numpy; the `python3` first on PATH may not):

  /usr/bin/python3 tests/interop/ref_llama.py MODEL_DIR --ids "1 2 3"        --out logits.f32
  /usr/bin/python3 tests/interop/ref_llama.py MODEL_DIR --ids-file ids.txt   --out logits.npy
  /usr/bin/python3 tests/interop/ref_llama.py MODEL_DIR --ids "1 2 3" --top1          # argmax per position
  /usr/bin/python3 tests/interop/ref_llama.py MODEL_DIR --ids "1 2 3" --greedy 16     # 16 greedy ids
  /usr/bin/python3 tests/interop/ref_llama.py --make-tiny DIR [--arch llama|qwen3] [--tied] [--seed N]
  /usr/bin/python3 tests/interop/ref_llama.py --self-test

MODEL_DIR is a Hugging Face folder: config.json + model.safetensors (or model.safetensors.index.json
with shards). Weights may be F32, F16 or BF16; the safetensors format is parsed here with json + numpy
(no `safetensors` package needed). Everything is computed in float32 (--f64 for float64).

The model follows transformers' LlamaForCausalLM / Qwen3ForCausalLM step by step:
  x = embed[ids]; per layer: h = RMSNorm(x)·w; q,k,v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ (per head of head_dim);
  Qwen3 only: q,k = RMSNorm over each head (q_norm/k_norm weights, same eps) BEFORE RoPE;
  RoPE in the rotate_half ("NEOX") layout: pairs are (i, i + head_dim/2), inv_freq = theta^(-2i/head_dim);
  grouped-query attention (kv head j serves query heads j·g … j·g+g-1), causal softmax scaled 1/sqrt(head_dim);
  x += o_proj(attn); x += down(silu(gate(h2)) * up(h2)) with h2 = RMSNorm(x); logits = RMSNorm(x)·headᵀ,
  head = lm_head.weight, or embed_tokens.weight when tie_word_embeddings.
rope_scaling: none/default, "linear", "llama3" and "dynamic" (dynamic: full recompute per step).

Outputs:
  --out FILE   logits [T, V]: FILE ending in .npy -> NumPy .npy (float32); otherwise raw little-endian
               float32, row-major (position-major), T·V·4 bytes, no header.
  --top1       prints the argmax id of every position, space separated, one line.
  --greedy N   appends N greedy tokens (KV cache; argmax, lowest id on ties) and prints them, space separated.
               With --out, the logits written are those of the prompt only.
Token ids come from --ids "1 2 3" (spaces or commas) or --ids-file FILE (whitespace/comma separated ints;
"-" = stdin). No tokenizer here: tokenize with todae or llama-tokenize --ids first.
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors: u64 LE header size, JSON header, raw data)

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
              "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    """Returns {name: np.ndarray (float32 for float types)} from one .safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise SystemExit("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        a, b = info["data_offsets"]
        raw = np.frombuffer(mm[base + a:base + b], dtype=_ST_DTYPES[dt])
        if dt == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dt in ("F16", "F64"):
            arr = raw.astype(np.float32)
        else:
            arr = np.array(raw)
        out[name] = arr.reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    """tensors: {name: float32 np.ndarray}. Writes F32 safetensors (used by --make-tiny and the tests)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_model_dir(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    single = os.path.join(d, "model.safetensors")
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(single):
        W = read_safetensors(single)
    elif os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        W = {}
        for s in shards:
            W.update(read_safetensors(os.path.join(d, s)))
    else:
        raise SystemExit("%s: no model.safetensors or model.safetensors.index.json" % d)
    return cfg, W


# ---------------------------------------------------------------------------------------------
# the model


class Config:
    def __init__(self, cfg):
        arch = (cfg.get("architectures") or [""])[0]
        mt = cfg.get("model_type", "")
        self.qwen3 = mt == "qwen3" or arch == "Qwen3ForCausalLM"
        if not (self.qwen3 or mt in ("llama", "qwen2", "") or arch in ("LlamaForCausalLM", "Qwen2ForCausalLM")):
            raise SystemExit("config.json: unsupported architecture %r / model_type %r" % (arch, mt))
        if cfg.get("hidden_act", "silu") != "silu":
            raise SystemExit("config.json: hidden_act must be silu")
        if cfg.get("attention_bias") or cfg.get("mlp_bias"):
            raise SystemExit("config.json: biases are not supported")
        self.C = cfg["hidden_size"]
        self.F = cfg["intermediate_size"]
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KVH = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or self.C // self.H
        self.V = cfg["vocab_size"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.max_pos = cfg.get("max_position_embeddings", 2048)
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        rs = cfg.get("rope_scaling") or {}
        self.rope_kind = rs.get("rope_type", rs.get("type", "default")) or "default"
        if self.rope_kind not in ("default", "linear", "llama3", "dynamic"):
            raise SystemExit("config.json: rope_scaling type %r not supported" % self.rope_kind)
        self.rope_scaling = rs


def inv_freq(c, seq_len, dtype):
    D = c.D
    base = c.theta
    factor = c.rope_scaling.get("factor", 1.0)
    if c.rope_kind == "dynamic" and seq_len > c.max_pos:
        base = c.theta * ((factor * seq_len / c.max_pos) - (factor - 1)) ** (D / (D - 2))
    f = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    if c.rope_kind == "linear":
        f = f / factor
    elif c.rope_kind == "llama3":
        old = c.rope_scaling["original_max_position_embeddings"]
        lo, hi = c.rope_scaling["low_freq_factor"], c.rope_scaling["high_freq_factor"]
        wl = 2 * math.pi / f
        g = torch.where(wl > old / lo, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        medium = (wl >= old / hi) & (wl <= old / lo)
        f = torch.where(medium, (1 - smooth) * g / factor + smooth * g, g)
    return f.to(dtype)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class RefModel:
    def __init__(self, cfg_json, W, dtype=torch.float32):
        self.c = Config(cfg_json)
        self.dtype = dtype
        self.W = {k: torch.from_numpy(np.array(v, dtype=np.float32)).to(dtype) for k, v in W.items()}
        c = self.c
        need = ["model.embed_tokens.weight", "model.norm.weight"] + ([] if c.tied else ["lm_head.weight"])
        for l in range(c.L):
            p = "model.layers.%d." % l
            need += [p + n for n in ("input_layernorm.weight", "post_attention_layernorm.weight",
                                     "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                     "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                     "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")]
            if c.qwen3:
                need += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
        missing = [n for n in need if n not in self.W]
        if missing:
            raise SystemExit("model: missing tensors: %s" % ", ".join(missing[:5]))
        self.head = self.W["model.embed_tokens.weight"] if c.tied else self.W["lm_head.weight"]

    def linear(self, x, module):
        """x·Wᵀ for the projection `module` ("model.layers.0.self_attn.q_proj"); a hook for adapters
        (tests/interop/peft_apply.py adds LoRA's scale·(x·Aᵀ)·Bᵀ)."""
        return x @ self.W[module + ".weight"].T

    def forward(self, ids, cache=None, start=0):
        """ids: list of ints. cache: list of per-layer [K, V] tensors ([KVH, t, D]) to extend, or None.
        Returns logits [T, V] of the given positions start .. start+T-1."""
        c, W = self.c, self.W
        T = len(ids)
        pos = torch.arange(start, start + T, dtype=torch.float64)
        f = inv_freq(c, start + T, torch.float64)
        ang = pos[:, None] * f[None, :]
        emb = torch.cat([ang, ang], dim=-1)                  # [T, D]: rotate_half layout
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        x = W["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]
        g = c.H // c.KVH
        causal = torch.ones(T, start + T, dtype=torch.bool).triu(start + 1)  # True = masked
        for l in range(c.L):
            p = "model.layers.%d." % l
            h = rms_norm(x, W[p + "input_layernorm.weight"], c.eps)
            q = self.linear(h, p + "self_attn.q_proj")
            k = self.linear(h, p + "self_attn.k_proj")
            v = self.linear(h, p + "self_attn.v_proj")
            if p + "self_attn.q_proj.bias" in W:  # Qwen2 / attention_bias: q, k, v have biases
                q = q + W[p + "self_attn.q_proj.bias"]
                k = k + W[p + "self_attn.k_proj.bias"]
                v = v + W[p + "self_attn.v_proj.bias"]
            q, k, v = q.view(T, c.H, c.D), k.view(T, c.KVH, c.D), v.view(T, c.KVH, c.D)
            if c.qwen3:
                q = rms_norm(q, W[p + "self_attn.q_norm.weight"], c.eps)
                k = rms_norm(k, W[p + "self_attn.k_norm.weight"], c.eps)
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, T, D]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None:
                if len(cache) <= l:
                    cache.append([k, v])
                else:
                    cache[l][0] = k = torch.cat([cache[l][0], k], dim=1)
                    cache[l][1] = v = torch.cat([cache[l][1], v], dim=1)
            k = k.repeat_interleave(g, dim=0)
            v = v.repeat_interleave(g, dim=0)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(c.D)   # [H, T, start+T]
            s = s.masked_fill(causal, float("-inf"))
            a = torch.softmax(s, dim=-1) @ v                  # [H, T, D]
            a = a.transpose(0, 1).reshape(T, c.H * c.D)
            x = x + self.linear(a, p + "self_attn.o_proj")
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], c.eps)
            gate = self.linear(h, p + "mlp.gate_proj")
            x = x + self.linear(gate * torch.sigmoid(gate) * self.linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = rms_norm(x, W["model.norm.weight"], c.eps)
        return x @ self.head.T

    def greedy(self, ids, n):
        """Returns (prompt logits [T, V], list of n greedy ids)."""
        out = []
        if self.c.rope_kind == "dynamic":            # rotation depends on the total length: no cache
            logits = self.forward(ids)
            seq = list(ids)
            last = logits[-1]
            for _ in range(n):
                t = int(torch.argmax(last))
                out.append(t)
                seq.append(t)
                last = self.forward(seq)[-1]
            return logits, out
        cache = []
        logits = self.forward(ids, cache, 0)
        last, pos = logits[-1], len(ids)
        for _ in range(n):
            t = int(torch.argmax(last))                  # torch.argmax: first maximal index
            out.append(t)
            last = self.forward([t], cache, pos)[-1]
            pos += 1
        return logits, out


# ---------------------------------------------------------------------------------------------
# tiny random models and self-test


def make_tiny(d, arch="llama", tied=False, seed=0, **over):
    """Writes a tiny random HF folder (config.json + model.safetensors, F32) and returns its config."""
    cfg = {
        "architectures": [{"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM"}.get(arch, "LlamaForCausalLM")],
        "model_type": arch,
        "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 96, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6 if arch == "qwen3" else 1e-5,
        "rope_theta": 1000000.0 if arch == "qwen3" else 10000.0,
        "tie_word_embeddings": tied, "hidden_act": "silu", "attention_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    if arch == "qwen3":
        cfg["head_dim"] = 32          # Qwen3 decouples head_dim from hidden_size / heads
    cfg.update(over)
    c = Config(cfg)
    rng = np.random.default_rng(seed)

    def rnd(*shape, std=0.2):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    W = {"model.embed_tokens.weight": rnd(c.V, c.C, std=1.0),
         "model.norm.weight": 1 + rnd(c.C, std=0.1)}
    if not tied:
        W["lm_head.weight"] = rnd(c.V, c.C)
    for l in range(c.L):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = 1 + rnd(c.C, std=0.1)
        W[p + "post_attention_layernorm.weight"] = 1 + rnd(c.C, std=0.1)
        W[p + "self_attn.q_proj.weight"] = rnd(c.H * c.D, c.C)
        W[p + "self_attn.k_proj.weight"] = rnd(c.KVH * c.D, c.C)
        W[p + "self_attn.v_proj.weight"] = rnd(c.KVH * c.D, c.C)
        W[p + "self_attn.o_proj.weight"] = rnd(c.C, c.H * c.D)
        W[p + "mlp.gate_proj.weight"] = rnd(c.F, c.C)
        W[p + "mlp.up_proj.weight"] = rnd(c.F, c.C)
        W[p + "mlp.down_proj.weight"] = rnd(c.C, c.F)
        if c.qwen3:
            W[p + "self_attn.q_norm.weight"] = 1 + rnd(c.D, std=0.1)
            W[p + "self_attn.k_norm.weight"] = 1 + rnd(c.D, std=0.1)
        if arch == "qwen2":
            W[p + "self_attn.q_proj.bias"] = rnd(c.H * c.D)
            W[p + "self_attn.k_proj.bias"] = rnd(c.KVH * c.D)
            W[p + "self_attn.v_proj.bias"] = rnd(c.KVH * c.D)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(d, "model.safetensors"), W)
    return cfg


def ggml_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute: rotate_half row order -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def forward_interleaved(ref, ids):
    """The same model computed the way llama.cpp runs arch `llama` (LLAMA_ROPE_TYPE_NORM): Q/K rows
    permuted with ggml_permute and RoPE on adjacent pairs (2i, 2i+1). Must equal RefModel.forward."""
    c, W = ref.c, ref.W
    T = len(ids)
    f = inv_freq(c, T, torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * f[None, :]
    cos, sin = ang.cos().to(ref.dtype), ang.sin().to(ref.dtype)   # [T, D/2]

    def rope_norm(x):  # x [heads, T, D]; pairs (x[2i], x[2i+1])
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    g = c.H // c.KVH
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    for l in range(c.L):
        p = "model.layers.%d." % l
        h = rms_norm(x, W[p + "input_layernorm.weight"], c.eps)
        wq = ggml_permute(W[p + "self_attn.q_proj.weight"], c.H)
        wk = ggml_permute(W[p + "self_attn.k_proj.weight"], c.KVH)
        q = rope_norm((h @ wq.T).view(T, c.H, c.D).transpose(0, 1))
        k = rope_norm((h @ wk.T).view(T, c.KVH, c.D).transpose(0, 1)).repeat_interleave(g, dim=0)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, c.KVH, c.D).transpose(0, 1).repeat_interleave(g, dim=0)
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(c.D)).masked_fill(mask, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, c.H * c.D)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], c.eps)
        gate = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    return rms_norm(x, W["model.norm.weight"], c.eps) @ ref.head.T


def read_todae_fixture(path):
    """tests/model/fixtures/*.bin (TODAEFX1, written by tests/model/make_fixtures.py, float64 reference)."""
    out = {}
    with open(path, "rb") as f:
        assert f.read(8) == b"TODAEFX1"
        (n,) = struct.unpack("<I", f.read(4))
        for _ in range(n):
            (ln,) = struct.unpack("<I", f.read(4))
            name = f.read(ln).decode()
            dt, nd = struct.unpack("<II", f.read(8))
            dims = struct.unpack("<%dq" % nd, f.read(8 * nd))
            cnt = int(np.prod(dims)) if nd else 1
            a = np.frombuffer(f.read(4 * cnt), dtype="<f4" if dt == 0 else "<i4").reshape(dims)
            out[name] = a
    return out


def self_test():
    torch.manual_seed(0)
    ok = True

    def check(what, cond, detail=""):
        nonlocal ok
        print("%-62s %s %s" % (what, "ok" if cond else "FAIL", detail))
        ok &= bool(cond)

    with tempfile.TemporaryDirectory() as tmp:
        ids = [3, 17, 5, 88, 42, 7, 7, 1, 60, 33, 2, 95]
        for arch, tied in (("llama", False), ("llama", True), ("qwen3", False), ("qwen3", True)):
            d = os.path.join(tmp, "%s_%s" % (arch, "tied" if tied else "untied"))
            cfg = make_tiny(d, arch, tied, seed=7)
            cj, W = load_model_dir(d)
            assert cj == cfg
            m = RefModel(cj, W)
            m64 = RefModel(cj, W, torch.float64)
            full = m.forward(ids)
            ref64 = m64.forward(ids)
            err = float((full.double() - ref64).abs().max())
            check("%s tied=%d: f32 vs f64 forward" % (arch, tied), err < 1e-3, "max|d|=%.2e" % err)
            cache = []
            inc = torch.cat([m64.forward(ids[:5], cache, 0), m64.forward(ids[5:9], cache, 5)] +
                            [m64.forward([t], cache, 9 + i) for i, t in enumerate(ids[9:])])
            err = float((inc - ref64).abs().max())
            check("%s tied=%d: KV-cache chunks vs one pass" % (arch, tied), err < 1e-9, "max|d|=%.2e" % err)
            _, gen = m64.greedy(ids, 6)
            seq = list(ids)
            for _ in range(6):
                seq.append(int(torch.argmax(m64.forward(seq)[-1])))
            check("%s tied=%d: greedy (cache) vs recompute" % (arch, tied), gen == seq[len(ids):], str(gen))
            if arch == "llama":
                err = float((forward_interleaved(m64, ids) - ref64).abs().max())
                check("llama tied=%d: ggml-permuted Q/K + NORM rope == HF" % tied, err < 1e-9,
                      "max|d|=%.2e" % err)
            # safetensors round trip via bf16 / f16 readers
            st = os.path.join(d, "model.safetensors")
            back = read_safetensors(st)
            check("%s tied=%d: safetensors round trip" % (arch, tied),
                  all(np.array_equal(back[k], W[k]) for k in W))
        # the CLI end to end: raw f32 output file and --top1
        d = os.path.join(tmp, "llama_untied")
        out = os.path.join(tmp, "logits.f32")
        main([d, "--ids", " ".join(map(str, ids)), "--out", out, "--quiet"])
        raw = np.fromfile(out, dtype="<f4").reshape(len(ids), -1)
        cj, W = load_model_dir(d)
        check("cli --out raw f32 == forward", np.array_equal(raw, RefModel(cj, W).forward(ids).numpy()))

        # independent implementation: the float64 fixtures of tests/model (make_fixtures.py)
        fxdir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model", "fixtures")
        names = sorted(n[:-12] for n in os.listdir(fxdir) if n.endswith(".config.json")) if os.path.isdir(fxdir) else []
        for name in names:
            with open(os.path.join(fxdir, name + ".config.json")) as f:
                cj = json.load(f)
            fx = read_todae_fixture(os.path.join(fxdir, name + ".bin"))
            W = {k: v for k, v in fx.items() if k.startswith(("model.", "lm_head."))}
            m = RefModel(cj, W, torch.float64)
            tok = fx["tokens"]
            err = 0.0
            for b in range(tok.shape[0]):
                got = m.forward([int(t) for t in tok[b, :-1]])
                err = max(err, float((got - torch.from_numpy(fx["logits"][b].astype(np.float64))).abs().max()))
            check("tests/model/fixtures/%s: logits vs make_fixtures.py" % name, err < 1e-5, "max|d|=%.2e" % err)
        if not names:
            print("(tests/model/fixtures not found: skipped the cross-check against make_fixtures.py)")
    print("self-test:", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------


def parse_ids(s):
    return [int(t) for t in s.replace(",", " ").split()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:10]))
    ap.add_argument("model", nargs="?", help="Hugging Face folder (config.json + model.safetensors)")
    ap.add_argument("--ids", help='token ids, e.g. "1 2 3" or "1,2,3"')
    ap.add_argument("--ids-file", help="file of token ids (whitespace or comma separated), - for stdin")
    ap.add_argument("--out", help="write logits [T, V]: .npy, else raw little-endian float32")
    ap.add_argument("--top1", action="store_true", help="print the argmax id of every position")
    ap.add_argument("--greedy", type=int, default=0, metavar="N", help="print N greedy continuation ids")
    ap.add_argument("--f64", action="store_true", help="compute in float64 instead of float32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    ap.add_argument("--make-tiny", metavar="DIR", help="write a tiny random HF model to DIR and exit")
    ap.add_argument("--arch", choices=("llama", "qwen2", "qwen3"), default="llama", help="for --make-tiny")
    ap.add_argument("--tied", action="store_true", help="for --make-tiny: tie_word_embeddings")
    ap.add_argument("--seed", type=int, default=0, help="for --make-tiny")
    ap.add_argument("--self-test", action="store_true", help="run the built-in checks and exit")
    a = ap.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.self_test:
        return self_test()
    if a.make_tiny:
        make_tiny(a.make_tiny, a.arch, a.tied, a.seed)
        print(a.make_tiny)
        return 0
    if not a.model:
        ap.error("MODEL_DIR is required")
    if (a.ids is None) == (a.ids_file is None):
        ap.error("give exactly one of --ids / --ids-file")
    if a.ids is not None:
        ids = parse_ids(a.ids)
    else:
        ids = parse_ids(sys.stdin.read() if a.ids_file == "-" else open(a.ids_file).read())
    if not ids:
        ap.error("no token ids")
    cfg, W = load_model_dir(a.model)
    model = RefModel(cfg, W, torch.float64 if a.f64 else torch.float32)
    bad = [t for t in ids if not 0 <= t < model.c.V]
    if bad:
        raise SystemExit("token id %d out of range [0, %d)" % (bad[0], model.c.V))

    with torch.no_grad():
        if a.greedy > 0:
            logits, gen = model.greedy(ids, a.greedy)
        else:
            logits, gen = model.forward(ids), None
    L = logits.to(torch.float32).numpy()
    if a.out:
        if a.out.endswith(".npy"):
            np.save(a.out, L)
        else:
            L.astype("<f4").tofile(a.out)
    if a.top1:
        print(" ".join(str(int(t)) for t in L.argmax(axis=1)))
    if gen is not None:
        print(" ".join(map(str, gen)))
    if not a.quiet:
        print("ref_llama: %s %s, T=%d, V=%d%s" % ("qwen3" if model.c.qwen3 else "llama",
              "tied" if model.c.tied else "untied", len(ids), model.c.V,
              (", logits -> " + a.out) if a.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

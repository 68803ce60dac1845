#!/usr/bin/python3
"""A PEFT LoRA adapter applied to a Hugging Face base by PEFT's documented rule, in float64.

PEFT is not installable here, so this is the rule of peft/tuners/lora/layer.py (Linear.forward)
written out: every targeted linear layer computes

    y = x·Wᵀ + scale · (x·Aᵀ)·Bᵀ,   scale = lora_alpha / r  (lora_alpha / sqrt(r) with use_rslora)

with A = lora_A.weight [r, in] and B = lora_B.weight [out, r] from adapter_model.safetensors
("base_model.model.<module>.lora_A.weight"), on top of the reference Llama / Qwen forward of
ref_llama.py (imported, not copied). Targets are resolved from adapter_config.json as PEFT does:
a module key ("model.layers.3.self_attn.q_proj") is targeted when it equals a target_modules entry
or ends with "." + entry ("all-linear": every projection), restricted to layers_to_transform.

  /usr/bin/python3 tests/interop/peft_apply.py BASE_DIR ADAPTER_DIR --ids "1 2 3" [--scale S]
      [--out ref.f32] [--todae todae.f32 [--tol 1e-4]]

--scale multiplies scale (todae's --lora DIR:S). --todae compares with todae's logits [T, V] (raw
f32, dump_logits --lora) and exits 1 unless max |diff| / max |logit| <= --tol.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402

PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def load_adapter(d, n_layers):
    """Returns (scale, {module key: (A, B)}) of a PEFT LoRA folder."""
    with open(os.path.join(d, "adapter_config.json")) as f:
        cfg = json.load(f)
    assert cfg["peft_type"] == "LORA", cfg["peft_type"]
    for k in ("rank_pattern", "alpha_pattern"):
        assert not cfg.get(k), "%s is not handled here" % k
    r, alpha = cfg["r"], cfg.get("lora_alpha", 8)
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    targets = cfg["target_modules"]
    layers = cfg.get("layers_to_transform")
    if isinstance(layers, int):
        layers = [layers]
    W = ref_llama.read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    lora, used = {}, set()
    for l in range(n_layers):
        if layers is not None and l not in layers:
            continue
        for p in PROJ:
            key = "model.layers.%d.%s" % (l, p)
            if isinstance(targets, str):
                hit = targets.lower() == "all-linear"
                assert hit, "regular-expression target_modules are not handled here"
            else:
                hit = any(key == t or key.endswith("." + t) for t in targets)
            if not hit:
                continue
            names = ["base_model.model.%s.lora_%s.weight" % (key, ab) for ab in "AB"]
            for n in names:
                if n not in W:
                    raise SystemExit("%s: %s missing" % (d, n))
            A, B = (torch.from_numpy(np.array(W[n], dtype=np.float64)) for n in names)
            assert A.shape[0] == r and B.shape[1] == r, (key, A.shape, B.shape)
            lora[key] = (A, B)
            used.update(names)
    unused = set(W) - used
    if unused:
        raise SystemExit("%s: tensors no target uses: %s" % (d, ", ".join(sorted(unused)[:4])))
    return scale, lora


class LoraRef(ref_llama.RefModel):
    def __init__(self, cfg, W, scale, lora):
        super().__init__(cfg, W, torch.float64)
        self.scale, self.lora = scale, lora

    def linear(self, x, module):
        y = super().linear(x, module)
        if module in self.lora:
            A, B = self.lora[module]
            y = y + self.scale * ((x @ A.T) @ B.T)
        return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out")
    ap.add_argument("--todae")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    cfg, W = ref_llama.load_model_dir(a.base)
    scale, lora = load_adapter(a.adapter, cfg["num_hidden_layers"])
    ids = [int(t) for t in a.ids.replace(",", " ").split()]
    with torch.no_grad():
        ref = LoraRef(cfg, W, scale * a.scale, lora).forward(ids).numpy()
        plain = ref_llama.RefModel(cfg, W, torch.float64).forward(ids).numpy()
    if a.out:
        ref.astype("<f4").tofile(a.out)
    if a.todae:
        got = np.fromfile(a.todae, dtype="<f4").reshape(ref.shape)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        effect = float(np.abs(ref - plain).max() / np.abs(ref).max())
        print("%d targeted projections, scale %.4g: todae vs PEFT rule max |diff| / max |logit| = %.2e "
              "(the adapter moves the logits by %.2e)" % (len(lora), scale * a.scale, rel, effect))
        # the comparison means something only if the adapter changes the logits well beyond the tolerance
        if rel > a.tol or effect < 100 * a.tol:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

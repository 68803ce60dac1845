#!/usr/bin/python3
"""Inference speed, todae vs llama.cpp (llama-bench), on the shapes of ../shared/perf/SHAPES.md.

  /usr/bin/python3 bench/infer_bench.py [--todae build/todae] [--llama-bin DIR] [--shape S|M]...
                                        [--types f32,f16,q8_0,q4_0] [--rounds 3] [--threads 2]

For each shape: a Llama with random-normal weights (std 0.02, norms 1, seed 1234) and a 32k
byte-level BPE tokenizer trained by todae on data/, written once as GGUF files (F32, F16, Q8_0,
Q4_0 by `todae convert`) that BOTH engines run. Per round and type, alternately:
  llama-bench -m FILE -t T -p 128,512 -n 128 -r 3 -o json      (pp128, pp512, tg128)
  todae generate --model FILE --random-prompt N -n 1            (pp128, pp512: prompt tokens/s)
  todae generate --model FILE --random-prompt 1 -n 129 --ignore-eos   (tg128: 128 decode steps)
Both use an F16 KV cache and compute logits for the last prompt token only. The machine drifts
±20–30% over minutes, so compare the per-round ratios; the report gives medians. Peak RSS of each
engine comes from /usr/bin/time (GNU time) when present. Decode is memory-bound: the report also
gives the bytes of weights read per second against a triad bandwidth probe run in the same script.
The markdown report goes to bench/results/infer-YYYY-MM-DD-HHMM.md.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from ref_llama import write_safetensors  # noqa: E402

SHAPES = {
    "S": dict(hidden_size=288, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6,
              intermediate_size=768, vocab_size=32000, max_position_embeddings=256),
    "M": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
              intermediate_size=1408, vocab_size=32000, max_position_embeddings=512),
}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd):
    """Runs cmd under GNU time when available; returns (stdout, stderr, peak RSS MiB or None)."""
    if os.path.exists("/usr/bin/time"):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, check=True,
                               capture_output=True, text=True)
            return p.stdout, p.stderr, int(tf.read().strip().splitlines()[-1]) / 1024
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return p.stdout, p.stderr, None


def make_model(shape, work, todae, tokenizer):
    cfg = dict(SHAPES[shape])
    C, F, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    rng = np.random.default_rng(1234)
    W = {"model.embed_tokens.weight": rng.normal(0, 0.02, (V, C)), "lm_head.weight": rng.normal(0, 0.02, (V, C)),
         "model.norm.weight": np.ones(C)}
    for l in range(L):
        p = f"model.layers.{l}."
        for n in ("q", "k", "v", "o"):
            W[p + f"self_attn.{n}_proj.weight"] = rng.normal(0, 0.02, (C, C))
        W[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.02, (F, C))
        W[p + "mlp.up_proj.weight"] = rng.normal(0, 0.02, (F, C))
        W[p + "mlp.down_proj.weight"] = rng.normal(0, 0.02, (C, F))
        W[p + "input_layernorm.weight"] = np.ones(C)
        W[p + "post_attention_layernorm.weight"] = np.ones(C)
    d = os.path.join(work, f"hf-{shape}")
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.astype(np.float32) for k, v in W.items()})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "tie_word_embeddings": False, "head_dim": C // cfg["num_attention_heads"], **cfg}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(tokenizer, fn)) as src, open(os.path.join(d, fn), "w") as dst:
            dst.write(src.read())
    files = {}
    for t in ("f32", "f16", "q8_0", "q4_0"):
        files[t] = os.path.join(work, f"{shape}-{t}.gguf")
        run([todae, "convert", "--input", d, "--output", files[t], "--type", t])
    return files


def llama_bench(bin_dir, path, threads):
    out, _, rss = timed([os.path.join(bin_dir, "llama-bench"), "-m", path, "-t", str(threads), "-p", "128,512",
                         "-n", "128", "-r", "3", "-o", "json"])
    res = {}
    for r in json.loads(out):
        key = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        res[key] = r["avg_ts"]
    res["rss"] = rss
    return res


def todae_stats(todae, path, threads, prompt, n):
    cmd = [todae, "generate", "--model", path, "--threads", str(threads), "--random-prompt", str(prompt),
           "-n", str(n), "--ignore-eos", "--greedy", "--stats", "--ctx", "1024", "--ids"]
    _, err, rss = timed(cmd)
    line = [l for l in err.splitlines() if l.startswith("prompt_tokens=")][-1]
    st = {k: v for k, v in (kv.split("=") for kv in line.split())}
    st["rss"] = rss if rss is not None else float(st["peak_rss_mb"])
    return st


def todae_bench(todae, path, threads):
    res = {}
    ttft = []
    for pp in (128, 512):
        vals = []
        for _ in range(3):
            st = todae_stats(todae, path, threads, pp, 1)
            vals.append(float(st["prompt_tokens_per_s"]))
            ttft.append((pp, float(st["ttft_ms"])))
        res[f"pp{pp}"] = statistics.median(vals)
    vals, rss = [], []
    for _ in range(3):
        st = todae_stats(todae, path, threads, 1, 129)
        vals.append(float(st["decode_tokens_per_s"]))
        rss.append(st["rss"])
    res["tg128"] = statistics.median(vals)
    res["rss"] = max(rss)
    res["ttft512_ms"] = statistics.median([t for p, t in ttft if p == 512])
    return res


def triad_gbs(work, threads):
    src = os.path.join(work, "triad.c")
    with open(src, "w") as f:
        f.write(r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  const size_t n = 1 << 25;  /* 3 x 128 MiB, far past the caches */
  float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4), *c = aligned_alloc(64, n * 4);
  #pragma omp parallel for
  for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
  double best = 0;
  for (int r = 0; r < 8; r++) {
    double t = omp_get_wtime();
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
    t = omp_get_wtime() - t;
    if (3.0 * n * 4 / t / 1e9 > best) best = 3.0 * n * 4 / t / 1e9;
  }
  printf("%.1f\n", best + a[n / 2] * 0);
  return 0;
}
""")
    exe = os.path.join(work, "triad")
    run(["gcc", "-O3", "-march=native", "-fopenmp", src, "-o", exe])
    return float(run([exe], env={**os.environ, "OMP_NUM_THREADS": str(threads)}).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--todae", default=os.path.join(ROOT, "build", "todae"))
    ap.add_argument("--llama-bin", default=None)
    ap.add_argument("--shape", action="append", choices=("S", "M"))
    ap.add_argument("--types", default="f32,f16,q8_0,q4_0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    shapes = a.shape or ["S", "M"]
    types = a.types.split(",")
    todae = os.path.abspath(a.todae)
    bin_dir = a.llama_bin or run(["bash", os.path.join(ROOT, "scripts", "build-llama-cpp.sh")]).stdout.strip().splitlines()[-1]
    work = tempfile.mkdtemp(prefix="todae-infer-bench-")
    tok = os.path.join(work, "tok")
    run([todae, "tokenizer", "train", "--input", os.path.join(ROOT, "data"), "--vocab-size", "32000", "--output", tok,
         "--quiet"])
    rows = []
    bw = []
    for shape in shapes:
        files = make_model(shape, work, todae, tok)
        for r in range(a.rounds):
            bw.append(triad_gbs(work, a.threads))
            for t in types:
                lb = llama_bench(bin_dir, files[t], a.threads)
                tb = todae_bench(todae, files[t], a.threads)
                row = dict(shape=shape, type=t, round=r, llama=lb, todae=tb, bytes=os.path.getsize(files[t]))
                print(json.dumps(row), flush=True)
                rows.append(row)
    bandwidth = statistics.median(bw)
    lines = [f"# Inference: todae vs llama.cpp ({datetime.date.today()})", "",
             f"`/usr/bin/python3 bench/infer_bench.py --rounds {a.rounds} --threads {a.threads}` "
             f"(shapes {','.join(shapes)}; llama.cpp from node-llama-cpp@3.21.1, `llama-bench -t {a.threads} -p 128,512 -n 128 -r 3`).",
             f"Medians of {a.rounds} alternating rounds; ratio = todae / llama.cpp (>1: todae faster). "
             f"Triad bandwidth probe: {bandwidth:.1f} GB/s (median).", "",
             "| shape | type | file MB | pp128 todae | pp128 llama | ratio | pp512 todae | pp512 llama | ratio | "
             "tg128 todae | tg128 llama | ratio | todae decode GB/s (of triad) | TTFT pp512 ms | RSS todae / llama MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for shape in shapes:
        for t in types:
            rs = [r for r in rows if r["shape"] == shape and r["type"] == t]
            if not rs:
                continue
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            cells = []
            for k in ("pp128", "pp512", "tg128"):
                cells += [f"{med(lambda r: r['todae'][k]):,.0f}", f"{med(lambda r: r['llama'][k]):,.0f}",
                          f"**{med(lambda r: r['todae'][k] / r['llama'][k]):.2f}×**"]
            # bytes a decode step reads: every matrix but the embedding table (one row of it)
            cfg = SHAPES[shape]
            C, F, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
            per_weight = {"f32": 4, "f16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}[t]
            read = (L * (4 * C * C + 3 * C * F) + V * C) * per_weight
            gbs = med(lambda r: r["todae"]["tg128"] * read / 1e9)
            rss_l = med(lambda r: r["llama"]["rss"] or 0)
            lines.append(f"| {shape} | {t} | {rs[0]['bytes'] / 1e6:.1f} | " + " | ".join(cells) +
                         f" | {gbs:.1f} ({gbs / bandwidth * 100:.0f}%) | {med(lambda r: r['todae']['ttft512_ms']):.1f} | "
                         f"{med(lambda r: r['todae']['rss']):.0f} / {rss_l:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", f"infer-{datetime.datetime.now():%Y-%m-%d-%H%M}.md")
    with open(path, "w") as f:
        f.write(report)
    print("report:", path)


if __name__ == "__main__":
    main()

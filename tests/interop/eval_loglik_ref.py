#!/usr/bin/python3
"""`todae eval`'s multiple-choice log-likelihoods against PyTorch on the same Hugging Face folder.

  /usr/bin/python3 tests/interop/eval_loglik_ref.py TODAE MODEL_DIR SAMPLES.jsonl [--delimiter " "] [--ctx N]

For every sample `todae eval --out` wrote (prompt, choices, loglikelihoods, greedy), the requests
are rebuilt here the way lm-evaluation-harness builds them (HFLM._encode_pair and
_loglikelihood_tokens, written out again below from their description, not from todae's code):

  - trailing whitespace of the context moves to the front of the continuation;
  - continuation tokens = encode(context + continuation)[len(encode(context)):];
  - an empty context is the prefix token (BOS, else EOS), the continuation encoded alone;
  - the model reads (context + continuation)[-(max_length + 1):][:-1], each choice on its own;
  - the score is the sum of log-softmax of the continuation tokens, `greedy` whether each was the argmax.

Token ids come from `TODAE tokenizer encode` (its ids equal Hugging Face tokenizers', tested by the
tokenizer interop suite); the forward pass is tests/interop/ref_llama.py's plain-torch Llama/Qwen3,
in float64. Exit status 1 when any log-likelihood differs by more than 1e-4 relative.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402


def token_id(model_dir, tok_json, name):
    """The id of a special token named in tokenizer_config.json (bos_token / eos_token), else config.json's."""
    cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    content = None
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            t = json.load(f).get(name)
        content = t.get("content") if isinstance(t, dict) else t
    if content:
        for a in tok_json.get("added_tokens", []):
            if a.get("content") == content:
                return a["id"]
        vocab = tok_json.get("model", {}).get("vocab", {})
        if isinstance(vocab, dict) and content in vocab:
            return vocab[content]
    with open(os.path.join(model_dir, "config.json")) as f:
        v = json.load(f).get(name + "_id")
    return v[0] if isinstance(v, list) else v


class Encoder:
    def __init__(self, todae, model_dir):
        self.todae, self.model_dir = todae, model_dir
        self.cache = {}
        self.tmp = tempfile.mkdtemp()

    def __call__(self, text):
        if text not in self.cache:
            p = os.path.join(self.tmp, "t.txt")
            with open(p, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            out = subprocess.run([self.todae, "tokenizer", "encode", "--tokenizer", self.model_dir, p],
                                 check=True, capture_output=True, text=True).stdout
            self.cache[text] = [int(t) for t in out.split()]
        return self.cache[text]


def encode_pair(enc, prefix, context, continuation):
    n = len(context) - len(context.rstrip())  # Python's str whitespace, as lm-eval
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    if context == "":
        return [prefix], enc(continuation)
    whole = enc(context + continuation)
    ctx = enc(context)
    return ctx, whole[len(ctx):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("todae")
    ap.add_argument("model")
    ap.add_argument("samples")
    ap.add_argument("--delimiter", default=" ", help="the task's target_delimiter")
    ap.add_argument("--ctx", type=int, default=0, help="max_length (default: max_position_embeddings)")
    ap.add_argument("--rtol", type=float, default=1e-4)
    a = ap.parse_args()

    cfg, W = ref_llama.load_model_dir(a.model)
    model = ref_llama.RefModel(cfg, W, torch.float64)
    max_length = a.ctx or cfg["max_position_embeddings"]
    with open(os.path.join(a.model, "tokenizer.json")) as f:
        tok_json = json.load(f)
    bos = token_id(a.model, tok_json, "bos_token")
    prefix = bos if bos is not None else token_id(a.model, tok_json, "eos_token")
    enc = Encoder(a.todae, a.model)

    worst, n, bad, greedy_checked = 0.0, 0, 0, 0
    truncated = 0
    with open(a.samples) as f:
        samples = [json.loads(l) for l in f if l.strip()]
    for s in samples:
        for k, choice in enumerate(s["choices"]):
            ctx, cont = encode_pair(enc, prefix, s["prompt"], a.delimiter + choice)
            whole = (ctx + cont)[-(max_length + 1):]
            truncated += len(ctx) + len(cont) > max_length + 1
            inp = whole[:-1]
            logits = model.forward(inp)                       # [T, V]
            lp = torch.log_softmax(logits[-len(cont):], dim=-1)
            target = torch.tensor(cont)
            ll = float(lp[torch.arange(len(cont)), target].sum())
            top2 = torch.topk(logits[-len(cont):], 2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            greedy = bool((logits[-len(cont):].argmax(-1) == target).all())
            got = s["loglikelihoods"][k]
            rel = abs(got - ll) / max(abs(ll), 1e-6)
            worst = max(worst, rel)
            n += 1
            ok = rel <= a.rtol
            if margin > 1e-4:  # no near-tie: the argmax cannot flip on rounding
                greedy_checked += 1
                ok &= s["greedy"][k] == greedy
            if not ok:
                bad += 1
                print("FAIL doc %d choice %d (%r): todae %.8f torch %.8f rel %.2e greedy todae %s torch %s"
                      % (s["doc_id"], k, choice, got, ll, rel, s["greedy"][k], greedy))
    print("%d log-likelihoods (%d truncated to %d positions, %d greedy flags compared): worst relative difference %.2e"
          % (n, truncated, max_length, greedy_checked, worst))
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

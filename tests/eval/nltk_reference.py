#!/usr/bin/python3
"""Scores with Debian's python3-nltk for tests/eval/metrics_test.cpp (NltkAgrees*).

Input (argv[1], JSON): {"chrf": [[hyp, ref], ...], "bleu": {"hyps": [str], "refs": [[str, ...], ...]}}
Output (stdout, JSON): {"chrf": [sentence_chrf × 100, ...], "bleu": corpus_bleu × 100}
Texts are split on whitespace for BLEU (the test gives already tokenized text).
"""
import json
import sys

from nltk.translate.bleu_score import corpus_bleu
from nltk.translate.chrf_score import sentence_chrf

case = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"chrf": [100 * sentence_chrf(ref, hyp, min_len=1, max_len=6, beta=2.0) for hyp, ref in case["chrf"]]}
b = case["bleu"]
out["bleu"] = 100 * corpus_bleu([[r.split() for r in refs] for refs in b["refs"]], [h.split() for h in b["hyps"]])
print(json.dumps(out))

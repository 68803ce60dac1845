#!/usr/bin/env bash
# Multiple-choice items/s of `todae eval`'s local model: the choices of a question sharing one
# prefill of the context (LocalModelOptions.share_prefix) against one request per choice (issue
# #13 §7, goal >= 3x). Shape S of ../shared/perf/SHAPES.md, random init; KoBEST-hellaswag-like
# items (context ~150 tokens, 4 choices of ~20) cut from data/ko with a tokenizer trained on it.
#
#   bench/eval_mc_bench.sh [--build DIR] [--no-build] [--rounds N] [--items N] [--threads N] [--report FILE]
#
# The modes alternate within each round (the machine drifts ±20-30% over minutes); the ratio is the
# median of the per-round ratios. Writes the runs to BUILD/eval_mc_bench.jsonl and a markdown report
# to bench/results/eval-mc-<date>.md (or --report).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build BUILD_IT=1 ROUNDS=5 ITEMS=16 THREADS=2 REPORT=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --no-build) BUILD_IT=; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --items) ITEMS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $BUILD_IT ]] && cmake --build "$BUILD" --target eval_mc_bench todae >&2
BIN=$BUILD/eval_mc_bench
[[ -x $BIN ]] || { echo "no $BIN: cmake --build $BUILD --target eval_mc_bench" >&2; exit 1; }

tok=$BUILD/eval-mc-bench-tok
if [[ ! -f $tok/tokenizer.json ]]; then
  "$BUILD/todae" tokenizer train --input data/ko/*.txt --vocab-size 32000 --output "$tok" --quiet >&2
fi
out=$BUILD/eval_mc_bench.jsonl
"$BIN" --tokenizer "$tok" --text data/ko/debian_faq.txt --items "$ITEMS" --rounds "$ROUNDS" --threads "$THREADS" \
  --profile | tee "$out"

summary=$(grep '"summary"' "$out")
REPORT=${REPORT:-bench/results/eval-mc-$(date +%Y-%m-%d).md}
/usr/bin/python3 - "$summary" "$REPORT" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
s, path, cores, cpu = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
p = s.get("profile_ms", {})
with open(path, "w") as f:
    f.write("# todae eval: multiple choice with shared prefixes vs one request per choice\n\n")
    f.write("`bench/eval_mc_bench.sh` on %s (%s cores), %d threads; shape S (random init), %d items of a %.0f-token "
            "context and %d choices of %.1f tokens (KoBEST-hellaswag-like, cut from data/ko/debian_faq.txt).\n\n"
            % (cpu, cores, s["threads"], s["items"], s["context_tokens"], s["choices"], s["choice_tokens"]))
    f.write("| mode | items/s (median) |\n|---|---:|\n")
    f.write("| shared prefix, %d questions per pass (as `todae eval` runs) | %.2f |\n" % (s["batch_questions"], s["shared_batched_items_per_s"]))
    f.write("| shared prefix, one question at a time | %.2f |\n| one request per choice | %.2f |\n" %
            (s["shared_items_per_s"], s["separate_items_per_s"]))
    f.write("\nRatio to one request per choice (median of per-round ratios): **%.2f×** (goal ≥ 3×); "
            "one question at a time: %.2f×.\n" % (s["ratio"], s["ratio_one_question"]))
    if p:
        f.write("\nOne shared item by parts (ms, engine alone, one question at a time): context prefill %.2f, "
                "the choices' batch %.2f, scoring (double-precision reference loop) %.2f. For reference, the forward "
                "passes of one item as an HF forward reads it (logits at every position of each context + choice, as "
                "lm-eval's HFLM requests compute them): %.2f ms.\n"
                % (p["prefill"], p["choices_batch"], p["scoring"], p["all_position_logits_per_item"]))
    # What sharing can save at best: transformer token-forwards plus LM-head rows (a row of shape S's
    # 32000 x 288 head costs h = 1.54 token-forwards of its 6 layers), at equal matmul efficiency.
    c, x, k, h = s["choices"], s["context_tokens"], s["choice_tokens"], 9216000 / 5971968
    sep = c * (x + k - 1) + c * k * h
    sha = x + c * (k - 1) + (1 + c * (k - 1)) * h
    f.write("\nAt equal matmul efficiency sharing saves at most %.2f× here: one request per choice runs %.0f "
            "token-forwards and %.0f head rows per item, sharing %.0f and %.0f (a head row costs %.2f token-forwards "
            "on shape S), and the head rows, needed for every choice token's log-softmax either way, are a third of "
            "the shared work. Reading several questions per pass makes the shared matrix products bigger, which is "
            "what lifts the measured ratio above that.\n" % (sep / sha, c * (x + k - 1), c * k, x + c * (k - 1), 1 + c * (k - 1), h))
print("wrote", path)
PY

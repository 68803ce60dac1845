#!/usr/bin/env bash
# LoRA / QLoRA fine-tuning throughput and memory, todae vs a PyTorch LoRA reference (issue #12 §7).
#
#   bench/lora_bench.sh [--build DIR] [--no-build] [--rounds N] [--steps N] [--threads N]
#                       [--shape M] [--batch B] [--context T] [--modes "lora lora-bf16 ..."]
#                       [--report FILE]
#
# Shape M of ../shared/perf/SHAPES.md, B4×T512, LoRA r=16 alpha 32 on all seven linear layers,
# frozen base, AdamW on the adapters only. Per round: PyTorch 1.13 (bench/lora_torch.py, PEFT's
# semantics by hand, OMP_WAIT_POLICY=PASSIVE) then each todae mode (bench/lora_bench.cpp):
#   lora                  f32 LoRA                  lora-bf16      bf16 matmuls
#   qlora-q4_0, -q8_0     QLoRA (base in Q4_0/Q8_0) qlora-q4_0-rc  Q4_0 with gradient checkpointing
#   lora-rc               f32 LoRA, checkpointing
#   full                  full fine-tuning (inputs/targets)   pretrain  the pretraining entry point
# The machine drifts by ±20–30% over minutes, so the runs alternate and the ratios are the medians
# of per-round ratios. Tokens/s: median step after one warm-up; peak RSS: getrusage in each process.
# Goals: LoRA ≥ 2× PyTorch's tokens/s at ≤ 0.5× its peak RSS; QLoRA Q4_0 peak RSS ≤ 0.35× f32 LoRA's;
# full fine-tuning within 10% of pretraining. Writes the runs to BUILD/lora_bench.jsonl and a
# markdown report to bench/results/lora-<date>.md (or --report).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build BUILD_IT=1 ROUNDS=3 STEPS=3 THREADS=2 SHAPE=M BATCH= CONTEXT= REPORT=
MODES="lora lora-bf16 qlora-q4_0 qlora-q8_0 qlora-q4_0-rc full pretrain"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --no-build) BUILD_IT=; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --shape) SHAPE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --context) CONTEXT=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

[[ -n $BUILD_IT ]] && cmake --build "$BUILD" --target lora_bench >&2
BIN=$BUILD/lora_bench
[[ -x $BIN ]] || { echo "no $BIN: cmake --build $BUILD --target lora_bench" >&2; exit 1; }
SIZE=(--shape "$SHAPE" --steps "$STEPS" --threads "$THREADS")
[[ -n $BATCH ]] && SIZE+=(--batch "$BATCH")
[[ -n $CONTEXT ]] && SIZE+=(--context "$CONTEXT")

mode_args() {
  case "$1" in
    lora) echo "--mode lora" ;;
    lora-bf16) echo "--mode lora --bf16" ;;
    lora-rc) echo "--mode lora --recompute" ;;
    qlora-q4_0) echo "--mode qlora --quant q4_0" ;;
    qlora-q8_0) echo "--mode qlora --quant q8_0" ;;
    qlora-q4_0-rc) echo "--mode qlora --quant q4_0 --recompute" ;;
    qlora-q8_0-rc) echo "--mode qlora --quant q8_0 --recompute" ;;
    full) echo "--mode full" ;;
    pretrain) echo "--mode pretrain" ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
}
for m in $MODES; do mode_args "$m" >/dev/null; done

OUT=$BUILD/lora_bench.jsonl
: > "$OUT"
# each run's JSON line, tagged with the round and the mode name used in the report
run() { echo "$2" | /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["round"]=int(sys.argv[1]); r["run"]=sys.argv[2]; print(json.dumps(r))' "$ROUND" "$1" | tee -a "$OUT"; }
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  run pytorch "$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/lora_torch.py "${SIZE[@]}")"
  for m in $MODES; do
    # shellcheck disable=SC2046
    run "$m" "$("$BIN" "${SIZE[@]}" $(mode_args "$m"))"
  done
done

[[ -z $REPORT ]] && REPORT=bench/results/lora-$(date +%Y-%m-%d-%H%M).md
mkdir -p "$(dirname "$REPORT")"
/usr/bin/python3 - "$OUT" "$REPORT" "$THREADS" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" <<'EOF'
import datetime, json, platform, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
report, threads, rev = sys.argv[2], sys.argv[3], sys.argv[4]
runs = {}
for r in rows:
    runs.setdefault(r["run"], {})[r["round"]] = r
torch = runs.get("pytorch", {})
rounds = sorted(torch)

def med(name, key):
    return statistics.median(r[key] for r in runs[name].values())

def ratio(a, b, key):  # median over rounds of a/b within the same round
    rs = [runs[a][k][key] / runs[b][k][key] for k in runs[a] if k in runs.get(b, {})]
    return statistics.median(rs) if rs else None

cpu = "?"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
first = rows[0]
B_T = "%s, %d rounds, %s threads" % (first["shape"], len(rounds), threads)
lines = ["# LoRA fine-tuning: todae vs PyTorch 1.13 (%s)" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "",
         "Machine: %s, %s; commit %s; shape %s. Produced by `bench/lora_bench.sh`: the runs alternate "
         "(PyTorch, then each todae mode, per round); ratios are medians of per-round ratios, "
         "tokens/s the median step after one warm-up, peak RSS getrusage's maximum of each process." % (
             cpu, platform.machine(), rev, B_T), "",
         "| run | tokens/s | × PyTorch | peak RSS MB | RSS × PyTorch | trainable |", "|---|---|---|---|---|---|"]
for name in runs:
    tr = "%.2f" % ratio(name, "pytorch", "tokens_per_s") if name != "pytorch" and torch else ""
    mr = "%.2f" % ratio(name, "pytorch", "peak_rss_mb") if name != "pytorch" and torch else ""
    lines.append("| %s | %.1f | %s | %.0f | %s | %s |" % (name, med(name, "tokens_per_s"), tr, med(name, "peak_rss_mb"),
                                                       mr, "{:,}".format(next(iter(runs[name].values()))["trainable"])))
lines += ["", "Goals (issue #12 §7):", ""]

def goal(text, value, ok):
    lines.append("- %s: %s %s" % (text, value, "**met**" if ok else "**not met**"))

for name in ("lora", "lora-bf16"):
    if name in runs and torch:
        t, m = ratio(name, "pytorch", "tokens_per_s"), ratio(name, "pytorch", "peak_rss_mb")
        goal("%s ≥ 2× PyTorch's tokens/s at ≤ 0.5× its memory" % name, "%.2f× tokens/s, %.2f× RSS" % (t, m),
             t >= 2 and m <= 0.5)
for name in ("qlora-q4_0", "qlora-q4_0-rc"):
    if name in runs and "lora" in runs:
        r = ratio(name, "lora", "peak_rss_mb")
        goal("%s peak RSS ≤ 0.35× f32 LoRA's" % name, "%.2f×" % r, r <= 0.35)
if "full" in runs and "pretrain" in runs:
    r = ratio("full", "pretrain", "tokens_per_s")
    goal("full fine-tuning tokens/s within 10% of pretraining", "%.2f×" % r, r >= 0.9)
lines += ["", "<details><summary>every run</summary>", "", "```"] + [json.dumps(r) for r in rows] + ["```", "</details>", ""]
open(report, "w").write("\n".join(lines))
print("\n".join(lines[:lines.index("<details><summary>every run</summary>")]))
print("report: %s" % report)
EOF

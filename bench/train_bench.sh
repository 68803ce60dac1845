#!/usr/bin/env bash
# Training throughput, todae vs PyTorch, on the shapes of ../shared/perf/SHAPES.md.
#
#   bench/train_bench.sh [--build DIR] [--shape S|M] [--rounds N] [--steps N] [--threads N] [--forward]
#
# Runs PyTorch (Debian python3-torch, OMP_WAIT_POLICY=PASSIVE: its best setting here), todae f32
# and todae bf16 alternately, N rounds, because the machine drifts by ±20–30% over minutes: compare
# the ratios, not the absolute figures. Each run: same model, batch, AdamW; median step of --steps
# after one warm-up step. Prints every run as a JSON line, then medians and ratios; the lines are
# also written to BUILD/train_bench_<shape>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build SHAPE=S ROUNDS=3 STEPS=3 THREADS=2 FORWARD=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --shape) SHAPE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --forward) FORWARD=--forward; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

for lib in model tensor base; do
  [[ -f $BUILD/src/$lib/libtodae_$lib.a ]] || { echo "build first: cmake --build $BUILD (missing libtodae_$lib.a)" >&2; exit 1; }
done
BIN=$BUILD/train_bench
g++ -O2 -std=c++20 -I src -I . bench/train_bench.cpp \
  "$BUILD/src/model/libtodae_model.a" "$BUILD/src/tensor/libtodae_tensor.a" "$BUILD/src/base/libtodae_base.a" \
  $(pkg-config --libs openblas) -lpthread -o "$BIN"

OUT=$BUILD/train_bench_${SHAPE}${FORWARD:+_forward}.jsonl
: > "$OUT"
run() { echo "$1" | tee -a "$OUT"; }
for ((r = 1; r <= ROUNDS; r++)); do
  run "$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/train_bench.py --shape "$SHAPE" --steps "$STEPS" --threads "$THREADS" $FORWARD)"
  run "$("$BIN" --shape "$SHAPE" --steps "$STEPS" --threads "$THREADS" $FORWARD)"
  run "$("$BIN" --shape "$SHAPE" --steps "$STEPS" --threads "$THREADS" $FORWARD --bf16)"
done

/usr/bin/python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def key(r): return r["impl"] + ("" if r["impl"] == "pytorch" else " " + r["precision"])
groups = {}
for r in rows: groups.setdefault(key(r), []).append(r)
torch_runs = groups.get("pytorch", [])
print("\nmedian over %d rounds (%s, %s):" % (len(torch_runs), rows[0]["shape"], rows[0]["mode"]))
base = statistics.median(r["tokens_per_s"] for r in torch_runs) if torch_runs else None
for k, rs in groups.items():
    tps = statistics.median(r["tokens_per_s"] for r in rs)
    rss = max(r["peak_rss_mb"] for r in rs)
    # per-round ratio against the PyTorch run of the same round, then the median of those
    ratios = [r["tokens_per_s"] / t["tokens_per_s"] for r, t in zip(rs, torch_runs)] if base else []
    print("  %-14s %8.1f tokens/s  %6.1f GFLOP/s  peak RSS %5d MB%s" % (
        k, tps, statistics.median(r["gflops"] for r in rs), rss,
        "  x%.2f vs PyTorch (median of per-round ratios)" % statistics.median(ratios) if ratios and k != "pytorch" else ""))
EOF

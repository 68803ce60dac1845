#!/usr/bin/env bash
# Data parallel = one process: `mpirun -np 2 todae pretrain` with global batch 8 (4 per rank) logs
# the same losses as one process with batch 8, within float tolerance (the gradient is summed over
# ranks in a different order than over the batch inside one process). Exits 77 (skipped) when
# mpirun is missing or todae was built without MPI.
# Usage: pretrain_mpi_test.sh path/to/todae [SOURCE_DIR]
set -euo pipefail
BIN=$(realpath "$1")
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; exit 77; }
W=$(mktemp -d /tmp/todae-pretrain-mpi.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$BIN" tokenizer train --input "$SRC"/data/ko/debian_faq.txt --vocab-size 1024 --output "$W/tok" --quiet 2>/dev/null
"$BIN" data shard --tokenizer "$W/tok" --input "$SRC"/data/ko/debian_faq.txt "$SRC"/data/ko/debian_installation_guide.txt \
  --output "$W/shards" --val-fraction 0.05 >/dev/null 2>&1
A=(pretrain --preset tiny --data "$W/shards" --steps 16 --batch 8 --threads 1 --eval-interval 8 --eval-batches 2 --no-plot)
"$BIN" "${A[@]}" --out "$W/one" 2>"$W/one.log"
# Under ASan, OpenMPI's own never-freed allocations (in plugins it dlcloses, so they cannot be
# suppressed by name) would fail every rank at exit: leak checking is off for the MPI ranks only.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
if ! mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN" "${A[@]}" --out "$W/two" >"$W/two.log" 2>&1; then
  if grep -q "built without MPI" "$W/two.log"; then echo "SKIP: todae built without MPI"; exit 77; fi
  echo "FAIL: mpirun:"; tail -5 "$W/two.log"; exit 1
fi
grep -q "2 ranks" "$W/two.log" || { echo "FAIL: the MPI run did not see 2 ranks"; head -3 "$W/two.log"; exit 1; }
python3 - "$W/one/metrics.jsonl" "$W/two/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 16, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for k in ("loss", "val_loss", "grad_norm"):
        if k in x:
            r = abs(x[k] - y[k]) / max(abs(x[k]), 1e-12)
            worst = max(worst, r)
            if r > 1e-4:
                sys.exit(f"FAIL: step {x['step']} {k}: 1 process {x[k]} vs 2 ranks {y[k]} (rel {r:.2e})")
print(f"ok: 2 ranks match 1 process over {len(a)} steps (worst relative difference {worst:.1e})")
PY
echo PASS

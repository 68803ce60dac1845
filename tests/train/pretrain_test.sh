#!/usr/bin/env bash
# End-to-end tests of `todae pretrain` on the bundled Korean corpus (tiny preset, one thread):
#   1. resume is bit-exact: a run killed with SIGKILL at a random step and resumed (twice) logs the
#      same loss, grad_norm and val_loss strings at every step as an uninterrupted run;
#   2. SIGINT saves a checkpoint at the current step and exits 0;
#   3. an unwritable run folder and an existing run without --resume give one-line errors.
# Usage: pretrain_test.sh path/to/todae [SOURCE_DIR]
set -euo pipefail
BIN=$(realpath "$1")
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
W=$(mktemp -d /tmp/todae-pretrain-test.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
export TODAE_THREADS=1

"$BIN" tokenizer train --input "$SRC"/data/ko/debian_faq.txt "$SRC"/data/ko/debian_installation_guide.txt \
  --vocab-size 1024 --output "$W/tok" --quiet 2>/dev/null
"$BIN" data shard --tokenizer "$W/tok" --input "$SRC"/data/ko/debian_faq.txt "$SRC"/data/ko/debian_installation_guide.txt \
  --output "$W/shards" --val-fraction 0.05 >/dev/null 2>&1

STEPS=30
BASE=(--preset tiny --data "$W/shards" --threads 1 --batch 8 --eval-interval 7 --eval-batches 2 --keep-last 2 --no-plot)
ARGS=("${BASE[@]}" --steps $STEPS --checkpoint-interval 3)

# The numbers that must match, as the exact strings metrics.jsonl holds.
extract() {
  python3 -c '
import re, sys
for line in open(sys.argv[1]):
    out = [re.search(r"\"step\":(\d+)", line).group(1)]
    for k in ("loss", "grad_norm", "lr", "val_loss", "val_bpb"):
        m = re.search(r"\"" + k + r"\":([^,}]*)", line)
        out.append(k + "=" + (m.group(1) if m else "-"))
    print(" ".join(out))' "$1"
}
rows() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

"$BIN" pretrain "${ARGS[@]}" --out "$W/a" 2>"$W/a.log"
extract "$W/a/metrics.jsonl" >"$W/a.txt"
[ "$(wc -l <"$W/a.txt")" -eq $STEPS ] || { echo "FAIL: uninterrupted run logged $(wc -l <"$W/a.txt") rows"; exit 1; }

# Killed twice at random steps, resumed each time.
kill_at() {  # kill_at STEP: start (or resume) run b, SIGKILL it once metrics.jsonl has STEP rows
  "$BIN" pretrain "${ARGS[@]}" --out "$W/b" --resume 2>>"$W/b.log" &
  local pid=$!
  while kill -0 $pid 2>/dev/null && [ "$(rows "$W/b/metrics.jsonl")" -lt "$1" ]; do sleep 0.005; done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  # A run that finished before the kill would test nothing.
  [ "$(rows "$W/b/metrics.jsonl")" -lt $STEPS ] || { echo "FAIL: run b finished before SIGKILL"; exit 1; }
}
K1=$((4 + RANDOM % 10))
K2=$((K1 + 2 + RANDOM % 10))
kill_at $K1
kill_at $K2
echo "killed at steps >= $K1 and >= $K2 (logged: $(rows "$W/b/metrics.jsonl"))"
"$BIN" pretrain "${ARGS[@]}" --out "$W/b" --resume 2>>"$W/b.log"
extract "$W/b/metrics.jsonl" >"$W/b.txt"
if ! diff "$W/a.txt" "$W/b.txt" >"$W/diff.txt"; then
  echo "FAIL: resumed run differs from the uninterrupted one:"; head -20 "$W/diff.txt"; exit 1
fi
cmp "$W/a/model.safetensors" "$W/b/model.safetensors" || { echo "FAIL: final weights differ"; exit 1; }
echo "ok: resume after SIGKILL is bit-exact ($STEPS steps, loss/grad_norm/lr/val_loss strings and final weights)"

# SIGINT: checkpoint at the current step, exit 0.
"$BIN" pretrain "${BASE[@]}" --steps 100000 --checkpoint-interval 1000 --out "$W/c" 2>"$W/c.log" &
pid=$!
while kill -0 $pid 2>/dev/null && [ "$(rows "$W/c/metrics.jsonl")" -lt 5 ]; do sleep 0.02; done
kill -INT $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: SIGINT exit code $rc"; cat "$W/c.log"; exit 1; }
last=$(tail -1 "$W/c/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/')
[ "$(cat "$W/c/latest")" = "step-$last" ] || { echo "FAIL: SIGINT saved $(cat "$W/c/latest"), last step $last"; exit 1; }
echo "ok: SIGINT saved step-$last and exited 0"

# Errors: one line, non-zero.
if "$BIN" pretrain "${ARGS[@]}" --out /proc/todae-no/run 2>"$W/e.log"; then echo "FAIL: unwritable out accepted"; exit 1; fi
[ "$(wc -l <"$W/e.log")" -eq 1 ] && grep -q "error" "$W/e.log" || { echo "FAIL: unwritable out:"; cat "$W/e.log"; exit 1; }
echo "ok: $(cat "$W/e.log")"
if "$BIN" pretrain "${ARGS[@]}" --out "$W/a" 2>"$W/e.log"; then echo "FAIL: reused run folder without --resume"; exit 1; fi
grep -q "resume" "$W/e.log" || { echo "FAIL: reuse error:"; cat "$W/e.log"; exit 1; }
echo "ok: $(cat "$W/e.log")"
echo "PASS"

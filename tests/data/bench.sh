#!/usr/bin/env bash
# Throughput of every `todae data` stage on a corpus (default: ../shared/corpus ko + en), one
# thread and all threads: MB/s of wall time, MB/s per CPU-second (user+sys), peak RSS, and what
# each stage removed. Usage: tests/data/bench.sh [TODAE] [TOKENIZER_DIR] [INPUT...]
set -euo pipefail
todae=${1:-build/todae}
tok=${2:-}
shift 2 2>/dev/null || shift $#
inputs=("$@")
[[ ${#inputs[@]} -eq 0 ]] && inputs=(../shared/corpus/ko ../shared/corpus/en)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
threads=$(nproc)
# Note: todae links OpenBLAS (pthreads build), whose worker threads start with the process and spin
# on sched_yield for a while; a data stage never uses them, but their spinning is counted in the
# CPU-seconds below (tens of ms per process, varying). OPENBLAS_NUM_THREADS=1 in the environment
# leaves them out and shows the pipeline's own cost.
[[ -n ${OPENBLAS_NUM_THREADS:-} ]] && echo "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
if [[ -z $tok ]]; then
  tok=$out/tok
  "$todae" tokenizer train --input "${inputs[@]}" --vocab-size 8000 --output "$tok" --quiet 2>/dev/null
fi
printf '%-8s %-3s %9s %9s %9s %11s %8s %s\n' stage thr "MB in" "wall s" "MB/s" "MB/cpu-s" "RSS MB" "docs in -> out"
run() {  # stage threads input output args...
  local stage=$1 t=$2 in=$3 o=$4
  shift 4
  /usr/bin/time -f '%e %U %S %M' -o "$out/time" "$todae" data "$stage" --input $in --output "$o" --threads "$t" --quiet "$@" \
    >/dev/null 2>"$out/log" || { cat "$out/log"; exit 1; }
  read -r wall user sys rss <"$out/time"
  python3 - "$o/report.json" "$stage" "$t" "$wall" "$user" "$sys" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); stage, t, wall, user, sysc, rss = sys.argv[2:]
mb = r["bytes_in"] / 1e6; cpu = float(user) + float(sysc)
print(f'{stage:<8} {t:<3} {mb:9.1f} {float(wall):9.2f} {mb/float(wall):9.1f} {mb/cpu:11.1f} {int(rss)/1024:8.0f} {r["docs_in"]} -> {r["docs_out"]}')
with open(sys.argv[1].rsplit("/", 2)[0] + "/cpu", "a") as f:  # for the end-to-end lines below
    print(stage, mb, cpu, file=f)
PY
}
# End to end: the corpus's MB over the CPU-seconds of the stages run one after another (each one
# parses and writes JSONL again), the figure the issue's per-core goals are about.
chain() {  # threads
  python3 - "$out/t$1/cpu" "$1" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
mb = {s: float(m) for s, m, _ in rows}; cpu = {s: float(c) for s, _, c in rows}
for stages in (["ingest", "clean", "filter", "pii"], ["ingest", "clean", "filter", "pii", "dedup"]):
    c = sum(cpu[s] for s in stages)
    print(f'{"+".join(stages)}, {sys.argv[2]} thread(s): {mb["ingest"]:.1f} MB / {c:.2f} CPU-s = {mb["ingest"] / c:.1f} MB per CPU-second')
PY
}
for t in 1 "$threads"; do
  d=$out/t$t
  run ingest "$t" "${inputs[*]}" "$d/ingest"
  run clean "$t" "$d/ingest" "$d/clean" --boilerplate-min-docs 50
  run filter "$t" "$d/clean" "$d/filter"
  run pii "$t" "$d/filter" "$d/pii"
  run dedup "$t" "$d/pii" "$d/dedup"
  run mix "$t" "$d/dedup" "$d/mix" --weight 'ko/*=0.5' --weight 'en/*=0.5'
  run shard "$t" "$d/mix" "$d/shard" --tokenizer "$tok"
  chain "$t"
done
echo
"$todae" data report "$out/t$threads/filter" "$out/t$threads/dedup" | head -60

#!/usr/bin/env bash
# `todae eval --endpoint` against `todae serve`: documents per second with CONCURRENCY requests in
# flight against one at a time, on shape S (shared/perf/SHAPES.md: dim 288, 6 layers, vocab 32000,
# 256 positions; barely trained weights — speed does not depend on them). Two tasks: multiple
# choice (4 choices, one log-likelihood request per choice: echo + logprobs + max_tokens 0) on
# ITEMS questions cut from data/ko, and arithmetic (generate_until, 3-shot, 8 tokens) on ITEMS
# problems. The server has --parallel CONCURRENCY slots and THREADS threads; the runs alternate
# (1, N, 1, N, ...: the machine drifts) and the medians of ROUNDS are reported with their ratio.
#
#   bench/eval_endpoint_bench.sh [path/to/todae]
#   env: ITEMS (64) CONCURRENCY (8) ROUNDS (3) THREADS (2) WORK (out/eval-endpoint-bench)
set -euo pipefail
todae=$(realpath "${1:-build/todae}")
items=${ITEMS:-64} conc=${CONCURRENCY:-8} rounds=${ROUNDS:-3} threads=${THREADS:-2}
work=${WORK:-out/eval-endpoint-bench}
mkdir -p "$work"
work=$(realpath "$work")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3

run="$work/run-S"
if [ ! -f "$run/model.safetensors" ]; then
  echo "== model: preset S, 32000-token Korean byte-level BPE tokenizer, 2 training steps"
  "$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 32000 --output "$work/tok" --quiet >/dev/null
  "$todae" data shard --tokenizer "$work/tok" --input "$root/data/ko/debian_faq.txt" --output "$work/shards" >/dev/null
  "$todae" pretrain --preset S --data "$work/shards" --out "$run" --steps 2 --threads "$threads" --no-plot >/dev/null 2>&1
fi

# Multiple-choice questions from the Korean texts: a sentence's first half, its own second half
# and three others' as the choices.
mkdir -p "$work/mc"
"$py" - "$items" "$work/mc/test.jsonl" "$root"/data/ko/*.txt <<'EOF'
import json, random, re, sys
n, out, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
sents = []
for f in files:
    for s in re.split(r"(?<=[.?!])\s+", open(f, encoding="utf-8").read()):
        s = " ".join(s.split())
        if 30 <= len(s) <= 90: sents.append(s)
rng = random.Random(1234)
rng.shuffle(sents)
with open(out, "w", encoding="utf-8") as w:
    for i in range(n):
        s = sents[i % len(sents)]
        cut = s.rfind(" ", 0, len(s) // 2)
        ctx, cont = s[:cut], s[cut + 1:]
        others = [t[t.rfind(" ", 0, len(t) // 2) + 1:] for t in rng.sample(sents, 3)]
        choices = [cont] + others
        rng.shuffle(choices)
        w.write(json.dumps({"ctx": ctx, "choices": choices, "label": choices.index(cont)}, ensure_ascii=False) + "\n")
EOF
cat > "$work/mc.yaml" <<EOF
task: bench_mc
dataset_path: $work/mc
test_split: test
output_type: multiple_choice
doc_to_text: "{{ctx}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
EOF

pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
rm -f "$work/port"
"$todae" serve --model "$run" --port 0 --port-file "$work/port" --parallel "$conc" --ctx 256 --threads "$threads" --quiet &
pid=$!
for _ in $(seq 1 300); do [ -s "$work/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$work/port")
echo "== todae serve: $url (--parallel $conc, $threads threads)"

# One eval run; prints "task items seconds" per task.
one() {
  rm -rf "$work/out-$1"
  "$todae" eval --endpoint "$url" --concurrency "$1" --tasks "$work/mc.yaml,arithmetic" --limit "$items" \
    --out "$work/out-$1" -q >/dev/null
  "$py" -c "import json,sys; r=json.load(open(sys.argv[1]))['results']
for t, v in r.items(): print(t, v['n'], v['seconds'])" "$work/out-$1/results.json"
}
one 1 >/dev/null  # warm-up (page cache, the server's first passes)
: > "$work/runs.txt"
for r in $(seq 1 "$rounds"); do
  for c in 1 "$conc"; do
    one "$c" | while read -r task n s; do echo "$c $task $n $s" >> "$work/runs.txt"; done
  done
done

"$py" - "$work/runs.txt" "$conc" <<'EOF'
import statistics, sys
runs, conc = sys.argv[1], sys.argv[2]
rate = {}
for line in open(runs):
    c, task, n, s = line.split()
    rate.setdefault((task, c), []).append(int(n) / float(s))
print(f"{'task':<12} {'items/s c=1':>12} {'items/s c=' + conc:>13} {'ratio':>7}   (medians of {len(rate[next(iter(rate))])} runs)")
for task in sorted({t for t, _ in rate}):
    a, b = statistics.median(rate[(task, "1")]), statistics.median(rate[(task, conc)])
    print(f"{task:<12} {a:>12.2f} {b:>13.2f} {b / a:>6.2f}x")
EOF

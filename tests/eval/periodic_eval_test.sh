#!/usr/bin/env bash
# Evaluation while training and of a run's checkpoints (issue 13, section 5), on a tiny model:
#   1. `todae pretrain --eval-tasks` puts eval/TASK/METRIC and eval/TASK/METRIC_stderr (finite) into
#      the metrics.jsonl rows of the evaluation steps, beside val_loss, step, tokens and joules, and
#      they are exactly what `todae eval` scores on that step's checkpoint;
#   2. `todae finetune` (LoRA) --eval-tasks, from flags and from "eval_tasks" in --config: the base
#      with the adapter as it trains, exactly what `todae eval --lora` scores on the final adapter;
#   3. `todae eval --watch RUN --once` evaluates the 2 checkpoints, a second one does nothing and
#      says so, a new checkpoint (the run resumed) is evaluated alone; results.json's "model" has
#      step, tokens and joules; a live --watch picks up a checkpoint as it lands and stops on SIGTERM;
#   4. errors: an unknown --eval-tasks name fails before training, with one line.
# Usage: periodic_eval_test.sh path/to/todae
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../check_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
text=$root/data/ko/debian_faq.txt

"$todae" tokenizer train --input "$text" --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$text" "$root"/data/ko/gnome_app_help.txt "$root"/data/ko/vscode_ui_strings.txt \
  --output "$tmp/shards" --val-fraction 0.1 >/dev/null 2>&1

# A task YAML of one's own (multiple choice: acc and acc_norm with log-likelihoods that move).
mkdir -p "$tmp/yaml"
cat > "$tmp/yaml/mc.yaml" <<'EOF'
task: tiny_mc
dataset_path: mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
EOF
cat > "$tmp/yaml/mc.jsonl" <<'EOF'
{"q": "데비안은", "choices": ["리눅스 배포판이다", "과일이다", "도시이다"], "label": 0}
{"q": "패키지를 설치하려면", "choices": ["apt를 쓴다", "노래를 부른다"], "label": 0}
{"q": "커널은", "choices": ["운영체제의 핵심이다", "바다이다", "색깔이다"], "label": 0}
EOF
tasks="arithmetic,bpb,$tmp/yaml/mc.yaml"
evalflags=(--eval-tasks "$tasks" --eval-limit 6 --eval-text "$text")

# metrics.jsonl row of STEP against results.json: every metric and stderr the same number.
compare() {  # metrics.jsonl step results.json
  $py - "$1" "$2" "$3" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
row = [r for r in rows if r["step"] == int(sys.argv[2])][0]
res = json.load(open(sys.argv[3]))["results"]
n = 0
for task, r in res.items():
    for metric, m in r["metrics"].items():
        k = f"eval/{task}/{metric}"
        for key, want in ((k, m["value"]), (k + "_stderr", m["stderr"])):
            got = row.get(key)
            if got != want:
                print(f"{key}: metrics.jsonl {got!r}, todae eval {want!r}")
                sys.exit(1)
            n += 1
print(f"same {n} numbers")
EOF
}

# ---- 1. pretraining ------------------------------------------------------------------------------
run=$tmp/run
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$run" --steps 20 --batch 8 --eval-interval 10 --keep-last 10 \
  --threads 2 --no-plot "${evalflags[@]}" >"$tmp/pre.log" 2>&1
check "pretrain ran" 0 "" test -f "$run/step-20/model.safetensors"
check "pretrain logs the scores" 0 "bpb/bits_per_byte" cat "$tmp/pre.log"
check "metrics.jsonl eval rows" 0 "ok" $py - "$run/metrics.jsonl" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if any(k.startswith("eval/") for k in r)]
assert [r["step"] for r in ev] == [10, 20], [r["step"] for r in ev]
for r in ev:
    for k in ("val_loss", "step", "tokens", "joules", "tokens_per_s", "eval_s", "eval_joules",
              "eval/arithmetic/exact_match,extract", "eval/arithmetic/exact_match,extract_stderr",
              "eval/bpb/bits_per_byte", "eval/bpb/bits_per_byte_stderr", "eval/tiny_mc/acc", "eval/tiny_mc/acc_norm_stderr"):
        assert k in r, (k, sorted(r))
        assert isinstance(r[k], str) or math.isfinite(r[k]), (k, r[k])
    assert 0 < r["eval/bpb/bits_per_byte"] < 20, r
# Evaluation time is not training time: an eval step's tokens_per_s is its batch over its training
# seconds alone (step_s), with the evaluation's seconds apart.
for r in ev:
    assert abs(r["tokens_per_s"] * r["step_s"] - 8 * 64) < 1e-6 * 8 * 64, r
    assert r["eval_s"] > 0 and r["eval_joules"] >= 0, r
assert ev[1]["eval/bpb/bits_per_byte"] != ev[0]["eval/bpb/bits_per_byte"], "the scores do not follow the weights"
print("ok")
EOF
for s in 10 20; do
  "$todae" eval --model "$run/step-$s" --tasks "$tasks" --limit 6 --text "$text" --threads 2 --out "$tmp/e$s" -q >/dev/null 2>&1
  check "step $s: metrics.jsonl = todae eval on step-$s" 0 "same" compare "$run/metrics.jsonl" $s "$tmp/e$s/results.json"
done

# ---- 2. fine-tuning (LoRA) -----------------------------------------------------------------------
head -48 "$root/data/sft/debian_faq_qa_ko.jsonl" > "$tmp/train.jsonl"
ft=(--model "$run" --data "$tmp/train.jsonl" --threads 2 --max-length 64 --batch-tokens 256 --no-plot --steps 12 --lr 1e-2
    --save-interval 6 --eval-interval 6 --keep-last 0)
"$todae" finetune "${ft[@]}" --out "$tmp/ft" "${evalflags[@]}" >"$tmp/ft.log" 2>&1
check "finetune ran" 0 "" test -f "$tmp/ft/adapter_model.safetensors"
check "finetune eval rows" 0 "ok" $py - "$tmp/ft/metrics.jsonl" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if "eval/bpb/bits_per_byte" in r]
assert [r["step"] for r in ev] == [6, 12], [r["step"] for r in ev]
for r in ev:
    for k in ("step", "tokens", "joules", "eval/tiny_mc/acc", "eval/tiny_mc/acc_stderr", "eval/bpb/bits_per_byte_stderr"):
        assert k in r and math.isfinite(r[k]), (k, r)
assert "val_loss" not in ev[0]  # no --val-data: the tasks alone
print("ok")
EOF
"$todae" eval --model "$run" --lora "$tmp/ft" --tasks "$tasks" --limit 6 --text "$text" --threads 2 --out "$tmp/eft" -q >/dev/null 2>&1
check "finetune last step = todae eval --lora on the adapter" 0 "same" compare "$tmp/ft/metrics.jsonl" 12 "$tmp/eft/results.json"
# A LoRA checkpoint given as --model is its base with that checkpoint's adapter: its step's numbers.
"$todae" eval --model "$tmp/ft/step-6" --tasks "$tasks" --limit 6 --text "$text" --threads 2 --out "$tmp/eck" -q >/dev/null 2>&1
check "eval --model on a LoRA checkpoint = its step's scores" 0 "same" compare "$tmp/ft/metrics.jsonl" 6 "$tmp/eck/results.json"
check "eval --model LoRA checkpoint + --lora" fail "brings its own adapter" "$todae" eval --model "$tmp/ft/step-6" --lora "$tmp/ft" \
  --tasks arithmetic --limit 1 -q --out "$tmp/eck2"
# "eval_tasks" in --config: the same run, the same numbers.
cat > "$tmp/ft.json" <<EOF
{"eval_tasks": "$tasks", "eval_limit": 6, "eval_text": "$text"}
EOF
"$todae" finetune --config "$tmp/ft.json" "${ft[@]}" --out "$tmp/ft2" >/dev/null 2>&1
same "--config eval_tasks: same scores" "$(grep -o '"eval/[^:]*:[^,}]*' "$tmp/ft/metrics.jsonl")" \
  "$(grep -o '"eval/[^:]*:[^,}]*' "$tmp/ft2/metrics.jsonl")"

# ---- 3. --watch ----------------------------------------------------------------------------------
# A run without eval tasks, two checkpoints.
w=$tmp/w
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$w" --steps 20 --batch 8 --eval-interval 10 --keep-last 10 \
  --threads 2 --no-plot >/dev/null 2>&1
watch=(eval --watch "$w" --tasks "$tasks" --limit 6 --text "$text" --threads 2 -q)
check "watch --once: both checkpoints" 0 "evaluated 2 checkpoints" "$todae" "${watch[@]}" --once
check "watch: results.json step-10" 0 "" test -f "$w/eval/step-10/results.json"
check "watch: samples step-20" 0 "" test -f "$w/eval/step-20/samples_bpb.jsonl"
check "watch: model has step, tokens, joules" 0 "ok" $py - "$w/eval/step-20/results.json" <<'EOF'
import json, math, sys
m = json.load(open(sys.argv[1]))["model"]
assert m["step"] == 20 and m["tokens"] == 20 * 8 * 64 and m["joules"] > 0, m
assert m["checkpoint"].endswith("/step-20"), m
print("ok")
EOF
"$todae" eval --model "$w/step-10" --tasks "$tasks" --limit 6 --text "$text" --threads 2 --out "$tmp/w10" -q >/dev/null 2>&1
metrics_of() { $py -c "import json,sys;r=json.load(open(sys.argv[1]))['results'];print({t:(v['metrics'],v['n']) for t,v in r.items()})" "$1"; }
same "watch = todae eval on step-10" "$(metrics_of "$tmp/w10/results.json")" "$(metrics_of "$w/eval/step-10/results.json")"
stamp=$(stat -c %Y.%s "$w/eval/step-10/results.json" "$w/eval/step-20/results.json")
check "watch --once again: nothing to do" 0 "nothing to do: all 2 checkpoints" "$todae" "${watch[@]}" --once
same "watch again: results untouched" "$stamp" "$(stat -c %Y.%s "$w/eval/step-10/results.json" "$w/eval/step-20/results.json")"
# Another task list is another exam: evaluated again.
check "watch, other tasks: evaluated" 0 "evaluated 2 checkpoints" "$todae" eval --watch "$w" --tasks arithmetic --limit 3 --threads 2 -q --once
rm -rf "$w/eval"
"$todae" "${watch[@]}" --once >/dev/null 2>&1
# A new checkpoint: the run resumed for 10 more steps.
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$w" --steps 30 --batch 8 --eval-interval 10 --keep-last 10 \
  --threads 2 --no-plot --resume >/dev/null 2>&1
check "watch --once: the new checkpoint only" 0 "evaluated 1 checkpoint; 3 of 3" "$todae" "${watch[@]}" --once
check "watch: step-30 results" 0 "" test -f "$w/eval/step-30/results.json"
# Live: a checkpoint that lands while watching is evaluated; SIGTERM stops it cleanly.
"$todae" "${watch[@]}" --poll 0.2 >"$tmp/live.log" 2>&1 &
wpid=$!
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$w" --steps 40 --batch 8 --eval-interval 10 --keep-last 10 \
  --threads 2 --no-plot --resume >/dev/null 2>&1
for _ in $(seq 300); do [[ -f $w/eval/step-40/results.json ]] && grep -q "step-40" "$tmp/live.log" && break; sleep 0.1; done
kill -TERM $wpid
wait $wpid
rc=$?
same "live watch: exit 0 on SIGTERM" 0 "$rc"
check "live watch: evaluated step-40" 0 "watch: step-40:" cat "$tmp/live.log"
check "live watch: stopped" 0 "watch: stopped" cat "$tmp/live.log"
check "live watch: step-40 complete" 0 "nothing to do: all 4" "$todae" "${watch[@]}" --once

# ---- 4. errors -----------------------------------------------------------------------------------
check "unknown eval task" fail "unknown task 'arithmetik'" "$todae" pretrain --preset tiny --data "$tmp/shards" --out "$tmp/bad" \
  --steps 2 --eval-tasks arithmetik
check "nothing trained" fail "" test -d "$tmp/bad/step-2"
check "bpb without text" fail "--text" "$todae" finetune "${ft[@]}" --out "$tmp/bad2" --eval-tasks bpb
check "watch: no such run" fail "not a folder" "$todae" eval --watch "$tmp/nope" --tasks arithmetic --once
check "watch with --model" fail "leave out --model" "$todae" eval --watch "$w" --model "$run" --tasks arithmetic --once

echo "periodic_eval: $pass passed, $fail failed"
[[ $fail == 0 ]]

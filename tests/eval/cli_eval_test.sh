#!/usr/bin/env bash
# `todae eval` as a user meets it: a tiny model trained here, built-in tasks on small files in the
# published formats (KoBEST JSONL, KMMLU CSV, a translation TSV), a task YAML of one's own, bits
# per byte of a text file, results.json and samples JSONL, --resume, and one-line errors.
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../check_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

check "eval help" 0 "--tasks" "$todae" eval --help
check "list tasks" 0 "kobest_boolq" "$todae" eval --list-tasks
check "list has kmmlu" 0 "kmmlu_korean_history" "$todae" eval --list-tasks

"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$tmp/run" --steps 30 --threads 2 --no-plot >/dev/null 2>&1
check "trained" 0 "" test -f "$tmp/run/model.safetensors"
run=$tmp/run

# Data in the published formats.
d=$tmp/data
mkdir -p "$d/boolq" "$d/data"
cat > "$d/boolq/test.jsonl" <<'EOF'
{"paragraph": "서울은 대한민국의 수도이다.", "question": "서울은 수도인가?", "label": 1}
{"paragraph": "부산은 항구 도시이다.", "question": "부산은 내륙에 있는가?", "label": 0}
{"paragraph": "데비안은 리눅스 배포판이다.", "question": "데비안은 배포판인가?", "label": 1}
EOF
cat > "$d/data/Korean-History-test.csv" <<'EOF'
question,answer,A,B,C,D,Category,Human Accuracy
훈민정음을 만든 왕은?,1,세종,태종,세조,정조,Korean-History,0.9
"임진왜란이 일어난 해는?",3,1392,1443,1592,1910,Korean-History,0.7
EOF
printf 'ko\ten\n안녕하세요\tHello\n감사합니다\tThank you\n' > "$d/ko_en.tsv"

od=$tmp/out
check "kobest_boolq + kmmlu + arithmetic" 0 "acc" "$todae" eval --model "$run" --tasks kobest_boolq,kmmlu_korean_history,arithmetic \
  --limit 4 --data-dir "$d" --out "$od" --threads 2 -q
check "results.json" 0 "" test -f "$od/results.json"
r=$(cat "$od/results.json")
for k in '"kobest_boolq"' '"kmmlu_korean_history"' '"arithmetic"' '"acc"' '"stderr"' '"exact_match,extract"' \
         '"model_xxh64"' '"tokenizer_xxh64"' '"joules"' '"seconds"' '"num_fewshot": 3' '"n": 3' '"n": 2' '"n": 4'; do
  check "results has $k" 0 "$k" echo "$r"
done
check "boolq samples: 3 lines" 0 "" bash -c "[[ \$(wc -l < '$od/samples_kobest_boolq.jsonl') == 3 ]]"
s=$(head -1 "$od/samples_kobest_boolq.jsonl")
for k in '"prompt":"서울은 대한민국의 수도이다. 질문: 서울은 수도인가? 답변: "' '"choices":["아니오","예"]' '"loglikelihoods"' \
         '"prediction"' '"target":"예"'; do
  check "sample has $k" 0 "$k" echo "$s"
done

# --resume: nothing redone, same numbers.
before=$(python3 -c "import json;print(json.load(open('$od/results.json'))['results']['kobest_boolq']['metrics'])")
check "resume" 0 "" "$todae" eval --model "$run" --tasks kobest_boolq --limit 4 --data-dir "$d" --out "$od" --resume -q
after=$(python3 -c "import json;r=json.load(open('$od/results.json'))['results']['kobest_boolq'];print(r['metrics']);print(r['reused'])")
same "resume: same metrics, all reused" "$before
3" "$after"

# A task YAML of one's own, with an include of a built-in definition.
cat > "$tmp/my.yaml" <<'EOF'
include: _default_kmmlu_yaml
task: my_kmmlu
dataset_path: data
dataset_name: Korean-History
metric_list:
  - metric: acc
  - metric: acc_norm
EOF
cp -r "$d/data" "$tmp/data2"; mkdir -p "$tmp/yaml"; mv "$tmp/my.yaml" "$tmp/yaml/"; mv "$tmp/data2" "$tmp/yaml/data"
check "own yaml" 0 "acc_norm" "$todae" eval --model "$run" --tasks "$tmp/yaml/my.yaml" --out "$tmp/out2" -q
check "translation chrF/BLEU" 0 "chrf++" "$todae" eval --model "$run" --tasks translation_ko_en --data-dir "$d" --out "$tmp/out3" -q
check "bpb" 0 "bits_per_byte" "$todae" eval --model "$run" --tasks bpb --text "$root/data/ko/debian_faq.txt" --limit 3 --out "$tmp/out4" -q

# Errors: one line, non-zero exit, before any model work.
check "unknown task" fail "unknown task 'kobest_bolq'" "$todae" eval --model "$run" --tasks kobest_bolq
printf 'task: bad\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\nmetric_list:\n  - metric: acc_nrom\n' > "$tmp/bad.yaml"
check "unknown metric" fail "bad.yaml:7: metric_list[0]: unknown metric 'acc_nrom'" "$todae" eval --model "$run" --tasks "$tmp/bad.yaml"
printf 'task: t\ndoc_to_text: !function utils.f\ndoc_to_target: a\n' > "$tmp/py.yaml"
check "python hook" fail "is Python code" "$todae" eval --model "$run" --tasks "$tmp/py.yaml"
printf '{"paragraph": "p", "label": 1}\n' > "$d/boolq/test.jsonl"
check "missing column" fail "boolq/test.jsonl:1: no column 'question'" "$todae" eval --model "$run" --tasks kobest_boolq --data-dir "$d"
check "hub dataset without data" fail "--data-dir" "$todae" eval --model "$run" --tasks kobest_copa
check "no model" fail "no such file" "$todae" eval --model "$tmp/nope" --tasks arithmetic
check "no tasks" fail "--tasks" "$todae" eval --model "$run"

echo "cli_eval: $pass passed, $fail failed"
[[ $fail == 0 ]]

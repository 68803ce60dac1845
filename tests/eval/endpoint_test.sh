#!/usr/bin/env bash
# `todae eval --endpoint` against `todae serve` on a tiny model trained here: the same tasks (a
# multiple-choice YAML, arithmetic generate_until, bits per byte) give the same scores as `--model`
# on the same folder — acc, acc_norm, exact_match identical, bpb and every log-likelihood to 1e-6
# relative, the same generations — at --concurrency 8 and 1. Then the failures: a server that is
# down (one-line error, exit != 0), one that fails part way (the samples made so far are kept and
# --resume finishes the task), one that answers 429 twice (retried, then the same scores), and
# API keys (OPENAI_API_KEY; a wrong key fails at once, without retries). The misbehaving servers
# are tests/eval/fake_endpoint.py in front of the real one.
set -uo pipefail
todae=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
source "$here/../check_lib.sh"

# A model with 256 positions (every prompt here fits, so neither side truncates).
"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$tmp/run" --steps 30 --seq-len 256 --threads 2 --no-plot \
  >/dev/null 2>&1
check "trained" 0 "" test -f "$tmp/run/model.safetensors"
run=$tmp/run

mkdir -p "$tmp/d/mc"
cat > "$tmp/d/mc/test.jsonl" <<'EOF'
{"q": "대한민국의 수도는?", "choices": ["서울", "부산", "대구", "광주"], "label": 0}
{"q": "데비안은 무엇인가?", "choices": ["리눅스 배포판", "과일", "도시"], "label": 0}
{"q": "1 더하기 1은?", "choices": ["2", "3", "11"], "label": 0}
{"q": "한국의 글자는?", "choices": ["한글", "한자", "가나"], "label": 0}
{"q": "패키지를 설치하는 명령은?", "choices": ["apt-get install", "rm -rf", "ls"], "label": 0}
{"q": "GPU를 사용하면 학습이?", "choices": ["빨라집니다", "느려집니다"], "label": 0}
EOF
cat > "$tmp/mc.yaml" <<EOF
task: my_mc
dataset_path: $tmp/d/mc
test_split: test
output_type: multiple_choice
doc_to_text: "질문: {{q}}\n답:"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
EOF
printf '서울은 대한민국의 수도이다.\n\n데비안은 리눅스 배포판이다. 패키지를 설치하려면 다음 명령을 실행하십시오.\n\nGPU를 사용하면 학습이 빨라집니다.\n' \
  > "$tmp/text.txt"
tasks=(--tasks "$tmp/mc.yaml,arithmetic,bpb" --text "$tmp/text.txt" --limit 6 -q)

wait_file() {
  for _ in $(seq 1 300); do
    [[ -s $1 ]] && return 0
    sleep 0.05
  done
  echo "no $1" >&2
  return 1
}

# f32 KV cache: the server's scores are the model's, as the local model's are.
"$todae" serve --model "$run" --port 0 --port-file "$tmp/port" --kv-type f32 --parallel 4 --threads 2 -q &
pids+=($!)
wait_file "$tmp/port"
url=http://127.0.0.1:$(cat "$tmp/port")

# Compares two --out folders: "same" or what differs.
compare() {
  "$py" - "$1" "$2" <<'EOF'
import json, sys
a, b = sys.argv[1], sys.argv[2]
ra, rb = (json.load(open(f"{d}/results.json"))["results"] for d in (a, b))
bad = []
def close(x, y, rel=1e-6):
    return abs(x - y) <= rel * max(1.0, abs(x))
for task in ra:
    if task not in rb:
        bad.append(f"{task} missing"); continue
    for m, v in ra[task]["metrics"].items():
        w = rb[task]["metrics"].get(m)
        if w is None: bad.append(f"{task}/{m} missing"); continue
        exact = m.startswith(("acc", "exact_match"))
        if (v["value"] != w["value"]) if exact else not close(v["value"], w["value"]):
            bad.append(f"{task}/{m}: {v['value']} vs {w['value']}")
    sa = {json.loads(l)["doc_id"]: json.loads(l) for l in open(f"{a}/samples_{task}.jsonl")}
    sb = {json.loads(l)["doc_id"]: json.loads(l) for l in open(f"{b}/samples_{task}.jsonl")}
    if sorted(sa) != sorted(sb): bad.append(f"{task}: documents {sorted(sa)} vs {sorted(sb)}")
    for i in sa:
        x, y = sa[i], sb.get(i, {})
        for k in ("prediction", "prediction_norm", "greedy", "tokens", "filtered"):
            if x.get(k) != y.get(k): bad.append(f"{task}[{i}].{k}: {x.get(k)!r} vs {y.get(k)!r}")
        for k in ("loglikelihoods", "loglikelihood"):
            xs, ys = x.get(k), y.get(k)
            if xs is None: continue
            xs, ys = (xs, ys) if isinstance(xs, list) else ([xs], [ys])
            if ys is None or len(xs) != len(ys) or not all(close(p, q) for p, q in zip(xs, ys)):
                bad.append(f"{task}[{i}].{k}: {xs} vs {ys}")
print("same" if not bad else "\n".join(bad[:10]))
EOF
}

check "local model" 0 "bits_per_byte" "$todae" eval --model "$run" "${tasks[@]}" --out "$tmp/local" --threads 2
check "endpoint" 0 "bits_per_byte" "$todae" eval --endpoint "$url" "${tasks[@]}" --out "$tmp/ep8"
same "endpoint = local (acc, acc_norm, exact_match, bpb, every log-likelihood and generation)" same \
  "$(compare "$tmp/local" "$tmp/ep8")"
check "endpoint, one request at a time, lm-eval's base_url form" 0 "acc_norm" \
  "$todae" eval --endpoint "$url/v1/completions" --concurrency 1 "${tasks[@]}" --out "$tmp/ep1"
same "concurrency 1 = local" same "$(compare "$tmp/local" "$tmp/ep1")"
check "results.json names the endpoint" 0 "\"endpoint\": \"$url/v1\"" cat "$tmp/ep8/results.json"
check "results.json names the model" 0 '"model": "run"' cat "$tmp/ep8/results.json"

check "--model and --endpoint" fail "exclude each other" "$todae" eval --model "$run" --endpoint "$url" --tasks arithmetic
check "not a URL" fail "expected http://HOST" "$todae" eval --endpoint "127.0.0.1:1" --tasks arithmetic

# Down: nothing listens on the port (connection refused) -> retried, then one line naming the URL.
closed=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
check "endpoint down" fail "endpoint http://127.0.0.1:$closed/v1/models: connection failed (Connection) (gave up after 3 tries)" \
  "$todae" eval --endpoint "http://127.0.0.1:$closed" --max-retries 2 --retry-wait 0.05 --tasks "$tmp/mc.yaml" \
  --out "$tmp/down" -q

fake() {  # fake NAME ARGS...: a fake_endpoint.py in front of the real server; sets fake_url
  rm -f "$tmp/$1.port" "$tmp/$1.log"
  "$py" "$here/fake_endpoint.py" --upstream "$url" --port-file "$tmp/$1.port" --log "$tmp/$1.log" "${@:2}" &
  pids+=($!)
  wait_file "$tmp/$1.port"
  fake_url=http://127.0.0.1:$(cat "$tmp/$1.port")
  touch "$tmp/$1.log"
}

# Fails part way: 5 requests answered (document 0's four choices, one of document 1's), then 503s.
fake dies --fail-after 5
check "endpoint fails part way" fail "endpoint $fake_url/v1/completions: HTTP 503: the model went away (gave up after 2 tries)" \
  "$todae" eval --endpoint "$fake_url" --concurrency 1 --max-retries 1 --retry-wait 0.05 --tasks "$tmp/mc.yaml" --limit 6 \
  --out "$tmp/part" -q
same "the finished sample is kept" 1 "$(wc -l < "$tmp/part/samples_my_mc.jsonl")"
check "--resume on the real server" 0 "acc_norm" "$todae" eval --endpoint "$url" --tasks "$tmp/mc.yaml" --limit 6 \
  --out "$tmp/part" --resume -q
same "resume reused the kept sample" 1 "$("$py" -c "import json; print(json.load(open('$tmp/part/results.json'))['results']['my_mc']['reused'])")"
same "resumed = local" "$("$py" -c "import json; print(json.load(open('$tmp/local/results.json'))['results']['my_mc']['metrics'])")" \
  "$("$py" -c "import json; print(json.load(open('$tmp/part/results.json'))['results']['my_mc']['metrics'])")"

# Busy: 429 twice (Retry-After: 0), then answers.
fake busy --busy 2
check "429 twice, then OK" 0 "acc_norm" "$todae" eval --endpoint "$fake_url" --retry-wait 5 "${tasks[@]}" --out "$tmp/busy"
same "two 429s were retried" 2 "$(grep -c 429 "$tmp/busy.log")"
same "after retries = local" same "$(compare "$tmp/local" "$tmp/busy")"

# API keys: from OPENAI_API_KEY or --api-key; a wrong one is not retried.
fake auth --api-key sekrit
check "OPENAI_API_KEY" 0 "acc" env OPENAI_API_KEY=sekrit "$todae" eval --endpoint "$fake_url" --tasks "$tmp/mc.yaml" \
  --limit 2 --out "$tmp/auth" -q
check "wrong --api-key" fail "HTTP 401: Incorrect API key provided." env OPENAI_API_KEY=sekrit "$todae" eval \
  --endpoint "$fake_url" --api-key wrong --tasks "$tmp/mc.yaml" --out "$tmp/auth2" -q
same "401 not retried" 1 "$(grep -c 401 "$tmp/auth.log")"

echo "eval_endpoint: $pass passed, $fail failed"
[[ $fail == 0 ]]

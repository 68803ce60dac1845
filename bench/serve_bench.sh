#!/usr/bin/env bash
# Serving benchmark: todae serve vs llama.cpp's llama-server on the same GGUF, on loopback, at 1, 4
# and 16 concurrent streams (bench/serve_bench.mjs: aggregate tokens/s, TTFT and inter-token
# latency p50/p99, errors). Bounded: each level sends REQ requests per stream of MAX_TOKENS tokens
# and stops after LIMIT seconds.
#
#   bench/serve_bench.sh [path/to/todae]
#   env: PRESET (S) TYPE (q8_0) THREADS (2) MAX_TOKENS (128) REQ (3) LEVELS (1,4,16) LIMIT (180)
#        WORK (out/serve-bench) LLAMA_BIN_DIR (default: scripts/build-llama-cpp.sh --print-bin-dir)
# The model is a preset shape with (barely trained) weights: throughput does not depend on them,
# and ignore_eos keeps every stream at MAX_TOKENS.
set -euo pipefail
todae=$(realpath "${1:-build/todae}")
preset=${PRESET:-S} type=${TYPE:-q8_0} threads=${THREADS:-2} max_tokens=${MAX_TOKENS:-128} req=${REQ:-3}
levels=${LEVELS:-1,4,16} limit=${LIMIT:-180} work=${WORK:-out/serve-bench}
mkdir -p "$work"
work=$(realpath "$work")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

gguf="$work/model-$preset-$type.gguf"
if [ ! -f "$gguf" ]; then
  echo "== model: preset $preset, 4k Korean tokenizer, converted to $type GGUF"
  "$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 4096 --output "$work/tok" --quiet >/dev/null
  "$todae" data shard --tokenizer "$work/tok" --input "$root/data/ko/debian_faq.txt" --output "$work/shards" >/dev/null
  "$todae" pretrain --preset "$preset" --data "$work/shards" --out "$work/run" --steps 2 --threads "$threads" --no-plot >/dev/null 2>&1
  "$todae" convert --input "$work/run" --output "$gguf" --type "$type" >/dev/null
fi
max_level=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)
slot_ctx=512

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {  # waits until GET /health answers 200
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server on port $1 did not come up" >&2
  return 1
}

results=()
echo "== todae serve (--parallel $max_level, $threads threads)"
rm -f "$work/todae.port"
"$todae" serve --model "$gguf" --port 0 --port-file "$work/todae.port" --parallel "$max_level" --ctx "$slot_ctx" \
  --threads "$threads" --alias bench --quiet &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/todae.port" ] && break; sleep 0.1; done
tport=$(cat "$work/todae.port")
wait_port "$tport"
node "$here/serve_bench.mjs" --url "http://127.0.0.1:$tport" --concurrency "$levels" --requests-per-stream "$req" \
  --max-tokens "$max_tokens" --time-limit "$limit" --label todae --json "$work/todae.json"
grep -E '^todae_(generated_tokens_total|forward_passes_total|batch_tokens_total) ' <(curl -s "http://127.0.0.1:$tport/metrics") || true
echo "peak RSS of todae serve: $(grep VmHWM /proc/${pids[0]}/status | awk '{print $2/1024 " MiB"}')"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

llama_dir=${LLAMA_BIN_DIR:-$("$root/scripts/build-llama-cpp.sh" --print-bin-dir 2>/dev/null | tail -1 || true)}
if [ -n "$llama_dir" ] && [ -x "$llama_dir/llama-server" ]; then
  echo "== llama-server ($llama_dir, -np $max_level, $threads threads)"
  lport=$((tport + 1))
  "$llama_dir/llama-server" -m "$gguf" --host 127.0.0.1 --port "$lport" -np "$max_level" -c $((slot_ctx * max_level)) \
    -t "$threads" -tb "$threads" --no-webui >"$work/llama-server.log" 2>&1 &
  pids+=($!)
  wait_port "$lport"
  node "$here/serve_bench.mjs" --url "http://127.0.0.1:$lport" --concurrency "$levels" --requests-per-stream "$req" \
    --max-tokens "$max_tokens" --time-limit "$limit" --label llama-server --json "$work/llama-server.json"
  echo "peak RSS of llama-server: $(grep VmHWM /proc/${pids[1]}/status | awk '{print $2/1024 " MiB"}')"
else
  echo "== llama-server not built (scripts/build-llama-cpp.sh): skipped"
fi

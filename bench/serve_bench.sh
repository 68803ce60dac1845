#!/usr/bin/env bash
# Serving benchmark: todae serve vs llama.cpp's llama-server on the same GGUF, on loopback, at 1, 4
# and 16 concurrent streams (bench/serve_bench.mjs: aggregate tokens/s, TTFT and inter-token
# latency p50/p99, errors). Both servers run side by side with the same slots, per-slot context and
# threads; the load generator measures them alternately (level by level, order flipped each round,
# because the machine drifts) and reports per-level medians and the todae/llama-server ratio.
# Bounded: each level of each round sends REQ requests per stream of MAX_TOKENS tokens and stops
# after LIMIT seconds.
#
#   bench/serve_bench.sh [path/to/todae]              # comparison
#   SOAK=600 bench/serve_bench.sh [path/to/todae]     # soak: todae serve only, 16 streams for 600 s,
#                                                     # VmRSS every 10 s, errors; exit 1 unless flat and clean
#   env: PRESET (S) VOCAB (32000) TYPE (q8_0) THREADS (2) MAX_TOKENS (128) REQ (8) ROUNDS (7)
#        LEVELS (1,4,16) LIMIT (180) FA (on: llama-server --flash-attn on|off|auto; on the CPU backend
#        auto resolves to on) SOAK (0)
#        FLAT_MIB (4) WORK (out/serve-bench) LLAMA_BIN_DIR (default: scripts/build-llama-cpp.sh --print-bin-dir)
# The model is preset shape S (vocab 32000 as in shared/perf/SHAPES.md) with barely trained
# weights: throughput does not depend on them. Requests are /v1/completions with a plain prompt,
# ignore_eos (every stream makes exactly MAX_TOKENS tokens) and a logit_bias that bans the tokens
# that are not valid UTF-8 on their own (see serve_bench.mjs), identical for both servers.
# Both get --parallel/-np = the largest level and 512 positions per slot (llama-server caps a slot at
# the model's 256 training positions; prompt + MAX_TOKENS must stay under 256).
set -euo pipefail
todae=$(realpath "${1:-build/todae}")
preset=${PRESET:-S} vocab=${VOCAB:-32000} type=${TYPE:-q8_0} threads=${THREADS:-2} max_tokens=${MAX_TOKENS:-128}
req=${REQ:-8} rounds=${ROUNDS:-7} levels=${LEVELS:-1,4,16} limit=${LIMIT:-180} fa=${FA:-on} soak=${SOAK:-0}
flat_mib=${FLAT_MIB:-4} work=${WORK:-out/serve-bench}
mkdir -p "$work"
work=$(realpath "$work")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

tok="$work/tok-$vocab"
gguf="$work/model-$preset-v$vocab-$type.gguf"
if [ ! -f "$gguf" ]; then
  echo "== model: preset $preset, ${vocab}-token Korean byte-level BPE tokenizer, converted to $type GGUF"
  "$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size "$vocab" --output "$tok" --quiet >/dev/null
  "$todae" data shard --tokenizer "$tok" --input "$root/data/ko/debian_faq.txt" --output "$work/shards-$vocab" >/dev/null
  "$todae" pretrain --preset "$preset" --data "$work/shards-$vocab" --out "$work/run-$preset-$vocab" --steps 2 \
    --threads "$threads" --no-plot >/dev/null 2>&1
  "$todae" convert --input "$work/run-$preset-$vocab" --output "$gguf" --type "$type" >/dev/null
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

echo "== todae serve (--parallel $max_level --ctx $slot_ctx, $threads threads)"
rm -f "$work/todae.port"
"$todae" serve --model "$gguf" --port 0 --port-file "$work/todae.port" --parallel "$max_level" --ctx "$slot_ctx" \
  --threads "$threads" --alias bench --quiet &
tpid=$!
pids+=($tpid)
for _ in $(seq 1 100); do [ -s "$work/todae.port" ] && break; sleep 0.1; done
tport=$(cat "$work/todae.port")
wait_port "$tport"

if [ "$soak" -gt 0 ]; then
  echo "== soak: todae serve only, $max_level streams for $soak s, VmRSS every 10 s"
  status=0
  node "$here/serve_bench.mjs" --target "todae=http://127.0.0.1:$tport@$tpid" --tokenizer "$tok/tokenizer.json" \
    --concurrency "$max_level" --max-tokens "$max_tokens" --soak "$soak" --rss-every 10 --flat-mib "$flat_mib" \
    --json "$work/soak.json" || status=$?
  curl -sf "http://127.0.0.1:$tport/health" >/dev/null && echo "health after soak: ok" || { echo "health after soak: FAILED"; status=1; }
  echo "results: $work/soak.json"
  exit $status
fi

llama_dir=${LLAMA_BIN_DIR:-$("$root/scripts/build-llama-cpp.sh" --print-bin-dir 2>/dev/null | tail -1 || true)}
targets=(--target "todae=http://127.0.0.1:$tport@$tpid")
if [ -n "$llama_dir" ] && [ -x "$llama_dir/llama-server" ]; then
  lport=$((tport + 1))
  echo "== llama-server ($llama_dir: -np $max_level -c $((slot_ctx * max_level)) -t $threads -fa $fa, continuous batching)"
  "$llama_dir/llama-server" -m "$gguf" --host 127.0.0.1 --port "$lport" -np "$max_level" -c $((slot_ctx * max_level)) \
    -t "$threads" -tb "$threads" -fa "$fa" --cont-batching --no-webui >"$work/llama-server.log" 2>&1 &
  lpid=$!
  pids+=($lpid)
  wait_port "$lport"
  targets+=(--target "llama-server=http://127.0.0.1:$lport@$lpid")
else
  echo "== llama-server not built (scripts/build-llama-cpp.sh): todae serve only"
fi

status=0
node "$here/serve_bench.mjs" "${targets[@]}" --tokenizer "$tok/tokenizer.json" --concurrency "$levels" --rounds "$rounds" \
  --requests-per-stream "$req" --max-tokens "$max_tokens" --time-limit "$limit" --json "$work/serve-bench.json" || status=$?
grep -E '^todae_(generated_tokens_total|forward_passes_total|batch_tokens_total) ' <(curl -s "http://127.0.0.1:$tport/metrics") || true
echo "peak RSS: todae serve $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$tpid/status)" \
  "${lpid:+, llama-server $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$lpid/status)}"
echo "results: $work/serve-bench.json${lpid:+ (llama-server log: $work/llama-server.log)}"
exit $status

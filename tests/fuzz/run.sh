#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, starting from the seeds in tests/fuzz/corpus/.
set -uo pipefail
build=${1:-build-fuzz}
secs=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
for t in fuzz_tokenizer_json fuzz_encode fuzz_tiktoken fuzz_safetensors fuzz_shard fuzz_gguf fuzz_jinja \
    fuzz_json_schema fuzz_api_request fuzz_toolcall fuzz_model_config fuzz_adapter_config fuzz_sft_jsonl \
    fuzz_task_yaml fuzz_eval_dataset $(cd "$here" && ls fuzz_agent_*.cpp 2>/dev/null | sed 's/\.cpp$//'); do
  seeds="$here/corpus/${t#fuzz_}"
  work=$(mktemp -d)
  cp -r "$seeds/." "$work/" 2>/dev/null || true
  log=$(mktemp)
  echo "fuzz: $t for ${secs}s"
  (cd "$work" && "$OLDPWD/$build/tests/fuzz/$t" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=0 "$work" >"$log" 2>&1)
  status=$?
  grep -E "DONE" "$log" | tail -1
  if [[ $status -ne 0 ]]; then
    grep -v "^#" "$log" | tail -40
    echo "fuzz: $t FAILED (exit $status); the crashing input is in $work"
    exit 1
  fi
  rm -rf "$work" "$log"
done
echo "fuzz: all targets ran clean"

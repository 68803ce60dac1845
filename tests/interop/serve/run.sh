#!/usr/bin/env bash
# `todae serve` against the official OpenAI client (openai@6.30.1, pinned in package-lock.json) and
# raw HTTP, and its chat page in headless Chromium (playwright-core). Makes a tiny model in seconds (tokenizer -> shards -> 30 pretraining steps), installs
# the client once into WORK/node_modules, then runs serve.test.mjs with node's test runner.
#
#   bash tests/interop/serve/run.sh path/to/todae [WORK]     (WORK default: /tmp/todae-serve-interop)
# Needs node >= 18 and npm (network only for the first install).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
todae="$(realpath "${1:?usage: run.sh path/to/todae [WORK]}")"
work="${2:-/tmp/todae-serve-interop}"
mkdir -p "$work"
work="$(realpath "$work")"

say() { printf 'serve-interop: %s\n' "$*" >&2; }

# 1. The client, exactly as pinned.
installed() { node -p 'try{require(process.argv[1]).version}catch{""}' "$work/node_modules/$1/package.json" 2>/dev/null; }
if [ "$(installed openai)" != "6.30.1" ] || [ "$(installed playwright-core)" != "1.65.1" ]; then
  cp "$HERE/package.json" "$HERE/package-lock.json" "$work/"
  say "npm ci in $work"
  (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline >"$work/npm-ci.log" 2>&1) || {
    tail -n 20 "$work/npm-ci.log" >&2
    say "ERROR: npm ci failed (the npm registry is needed once for openai@6.30.1)"
    exit 1
  }
fi

# 2. A tiny model (0.6 M parameters, 1k vocabulary with todae's special tokens) in a few seconds.
model="$work/model"
if [ ! -f "$model/model.safetensors" ] || [ "$todae" -nt "$model/model.safetensors" ]; then
  rm -rf "$work/tok" "$work/shards" "$model"
  say "making a tiny model in $model"
  "$todae" tokenizer train --input "$ROOT/data/ko/debian_faq.txt" --vocab-size 1024 --output "$work/tok" --quiet >/dev/null
  "$todae" data shard --tokenizer "$work/tok" --input "$ROOT/data/ko/debian_faq.txt" --output "$work/shards" \
    --val-fraction 0.05 >/dev/null
  "$todae" pretrain --preset tiny --data "$work/shards" --out "$model" --steps 30 --threads 2 --no-plot >"$work/pretrain.log" 2>&1
fi

# 3. The tests (the page test needs Debian's chromium; without it, it is skipped and says so).
cd "$HERE"
TODAE_BIN="$todae" TODAE_MODEL="$model" TODAE_NODE_MODULES="$work/node_modules" TODAE_SCREENSHOT="$work/page.png" \
  node --test --test-concurrency=1 --test-timeout=120000 serve.test.mjs page.test.mjs

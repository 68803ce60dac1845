#!/usr/bin/env bash
# The pretraining demo (meant to become `make demo`): tokenizer -> token shards -> a small model
# trained for a few minutes on the bundled Korean corpus -> greedy samples. Under 10 minutes on
# 2 cores (about 3-4 minutes of training). Fails if the model does not reach the stated validation loss.
#   scripts/demo_pretrain.sh [path/to/todae]     (TODAE_DEMO_DIR, default out/demo-pretrain; STEPS)
set -euo pipefail
todae=${1:-build/todae}
out=${TODAE_DEMO_DIR:-out/demo-pretrain}
steps=${STEPS:-4000}
rm -rf "$out"
mkdir -p "$out"

echo "== 1. Train a 4k byte-level BPE tokenizer on the Korean corpus (data/ko) =="
"$todae" tokenizer train --input data/ko/*.txt --vocab-size 4096 --output "$out/tokenizer" --quiet

echo
echo "== 2. Tokenize it into training shards (2% held out for validation) =="
"$todae" data shard --tokenizer "$out/tokenizer" --input data/ko/*.txt --output "$out/shards" --val-fraction 0.02

echo
echo "== 3. Pretrain the tiny model (0.6 M parameters, dim 64, 2 layers, context 64) for $steps steps =="
echo "   (one progress line; every $((steps / 4)) steps: validation loss and greedy samples)"
"$todae" pretrain --preset tiny --data "$out/shards" --out "$out/run" --steps "$steps" --eval-interval $((steps / 4)) \
  --threads "${TODAE_THREADS:-2}" --prompt "대한민국의 수도는" --prompt "데비안은" --prompt "리눅스 커널은" \
  --prompt "이 패키지는"

echo
echo "== 4. Result =="
val=$(grep -o '"val_loss":[0-9.]*' "$out/run/metrics.jsonl" | tail -1 | cut -d: -f2)
tps=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(int(sorted(x["tokens_per_s"] for x in r)[len(r)//2]))' "$out/run/metrics.jsonl" 2>/dev/null || echo "?")
echo "final validation loss $val nats/token (start: ln 4096 = 8.32); median $tps tokens/s"
echo "run folder (a Hugging Face model folder: config.json, model.safetensors, tokenizer.json): $out/run"
echo "loss curve: $out/run/loss.png"
# Stated target for this CI-sized run: 1500 steps reach 4.85, 4000 steps 4.70 in 2m53s on 2 cores (measured 2026-11-27).
awk -v v="$val" -v s="$steps" 'BEGIN { lim = (s >= 4000) ? 4.9 : 5.3; if (v + 0 > lim) { print "FAIL: val_loss " v " above " lim; exit 1 } }'

echo
echo "== 5. Run it: export to GGUF (q8_0, what llama.cpp runs) and continue a prompt with todae generate =="
"$todae" quantize --input "$out/run" --output "$out/model-q8_0.gguf" --type q8_0
"$todae" generate --model "$out/model-q8_0.gguf" --prompt "대한민국의 수도는" --max-tokens 48 --temperature 0.7 --seed 1 --stats
echo "chat with it: $todae chat --model $out/model-q8_0.gguf"

#!/usr/bin/env bash
# todae's LoRA adapters ↔ PyTorch (PEFT's rule) ↔ llama.cpp (issue 12, section 4):
#   peft:  for a Llama, a Qwen3 and a Qwen2 (biases) base exported by `todae convert`, an adapter
#          written by todae (PEFT folder, and the same as GGUF LoRA) and applied unmerged by todae
#          gives the logits of tests/interop/peft_apply.py — the base in float64 with
#          y = W x + scale · B A x on every targeted projection — within 1e-4 (relative to the
#          largest logit), with the user's multiplier (DIR:0.7), rsLoRA and a subset of targets;
#          and `todae finetune merge` gives the same logits as applying the adapter.
#   llama: a small model trained by `todae pretrain` (Llama: q/k rows in llama.cpp's RoPE order, and
#          Qwen3), exported to GGUF, with todae's GGUF LoRA: llama.cpp's greedy text with --lora
#          equals `todae generate --lora` (with the GGUF file and with the PEFT folder, at scales 1 and
#          0.5), and differs
#          from the text without the adapter (so the adapter is really applied on both sides).
# usage: run_lora_interop.sh peft|llama TODAE DUMP_LOGITS LORA_TOOL [LLAMA_BIN_DIR]
set -euo pipefail
mode=$1
todae=$(realpath "$2")
dump=$(realpath "$3")
tool=$(realpath "$4")
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
fails=0
check() {  # check NAME WANT GOT
  if [[ "$2" == "$3" ]]; then echo "  ok   $1"; else
    echo "  FAIL $1"; echo "       want:  $(printf %q "$2")"; echo "       todae: $(printf %q "$3")"; fails=$((fails + 1)); fi
}
trim() { printf '%s' "$1" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }

if [[ $mode == peft ]]; then
  ids="3 17 5 88 42 7 7 1 60 33 2 95 14 14 71"
  # arch | lora_tool options | multiplier
  cases=("llama|--rank 8 --alpha 16|0.7" "qwen3|--rank 4 --alpha 8 --rslora --targets q_proj,v_proj,down_proj|1"
         "qwen2|--rank 8 --alpha 32 --targets all-linear|-0.5")
  for c in "${cases[@]}"; do
    IFS='|' read -r arch opts mult <<<"$c"
    echo "== $arch: $opts, scale x$mult =="
    $py -c 'import sys; sys.path.insert(0, "tests/interop"); import ref_llama as r; r.make_tiny(sys.argv[1], arch=sys.argv[2], seed=5)' \
      "$work/$arch-src" "$arch"
    "$todae" convert --input "$work/$arch-src" --output "$work/$arch" --type f32 2>/dev/null
    # shellcheck disable=SC2086
    "$tool" random "$work/$arch" "$work/$arch-lora" $opts --std 0.1 --seed 11
    for a in peft lora.gguf; do
      "$dump" --lora "$work/$arch-lora/$a:$mult" "$work/$arch" "$work/todae.f32" $ids
      got=$($py tests/interop/peft_apply.py "$work/$arch" "$work/$arch-lora/peft" --ids "$ids" --scale "$mult" \
            --todae "$work/todae.f32") && ok=yes || ok=no
      check "$arch $a: $got" yes "$ok"
    done
    # merged into the base (`todae finetune merge`, HF folder): the same logits as applied beside it
    "$todae" finetune merge --model "$work/$arch" --lora "$work/$arch-lora/peft" --out "$work/$arch-merged" 2>/dev/null
    "$dump" "$work/$arch-merged" "$work/merged.f32" $ids
    got=$($py tests/interop/peft_apply.py "$work/$arch" "$work/$arch-lora/peft" --ids "$ids" --todae "$work/merged.f32") \
      && ok=yes || ok=no
    check "$arch merged: $got" yes "$ok"
  done
elif [[ $mode == llama ]]; then
  bin=${5:-$(bash "$root/scripts/build-llama-cpp.sh" | tail -1)}
  echo "== train a tokenizer and two small models (Llama, Qwen3) with todae =="
  "$todae" tokenizer train --input data/ko/*.txt data/en/*.txt --vocab-size 4096 --output "$work/tok" --quiet
  "$todae" data shard --tokenizer "$work/tok" --input data/ko/*.txt --output "$work/shards" --val-fraction 0.02 >/dev/null
  cat > "$work/qwen3.json" <<JSON
{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 192,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
 "vocab_size": 4096, "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
 "tie_word_embeddings": true}
JSON
  t0=$(date +%s)
  "$todae" pretrain --preset tiny --data "$work/shards" --out "$work/llama" --steps 300 --threads 2 --no-plot >/dev/null 2>&1
  "$todae" pretrain --model "$work/qwen3.json" --seq-len 64 --batch 8 --data "$work/shards" --out "$work/qwen3" --steps 300 \
    --threads 2 --no-plot >/dev/null 2>&1
  echo "  trained in $(( $(date +%s) - t0 )) s"
  prompts=("대한민국의 수도는" "리눅스 커널은" "The package" "데비안 12에서 2024년")
  # llama.cpp's side through llama-server: its JSON answers are complete (llama-completion prints
  # through an asynchronous log that now and then loses the end of stdout at exit), and a request's
  # "lora" field sets the adapter's multiplier, as todae's --lora FILE:0.5 does.
  complete() {  # complete PORT PROMPT SCALE: llama.cpp's greedy continuation (24 tokens)
    $py - "$@" <<'PY'
import json, sys, urllib.request
port, prompt, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = {"prompt": prompt, "n_predict": 24, "temperature": 0, "top_k": 1, "cache_prompt": False,
        "lora": [{"id": 0, "scale": scale}]}
req = urllib.request.Request("http://127.0.0.1:%s/completion" % port, data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
print(prompt + json.loads(urllib.request.urlopen(req, timeout=60).read())["content"], end="")
PY
  }
  for arch in llama qwen3; do
    echo "== $arch: base GGUF + todae's GGUF LoRA in llama.cpp (llama-server --lora) vs todae generate --lora =="
    "$todae" convert --input "$work/$arch" --output "$work/$arch.gguf" 2>/dev/null
    "$tool" random "$work/$arch" "$work/$arch-lora" --rank 8 --alpha 16 --std 0.08 --seed 7
    port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin/llama-server" -m "$work/$arch.gguf" --lora "$work/$arch-lora/lora.gguf" --port "$port" --host 127.0.0.1 \
      -t 2 -c 256 -np 1 --no-warmup >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 120); do
      $py -c 'import sys, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1)' "$port" \
        2>/dev/null && break
      kill -0 $server 2>/dev/null || { tail -5 "$work/server.log"; break; }
      sleep 0.5
    done
    differs=0 half_differs=0
    for p in "${prompts[@]}"; do
      full=
      for scale in 1 0.5; do
        want=$(complete "$port" "$p" "$scale") || want="(llama-server failed)"
        for a in lora.gguf peft; do
          got=$p$("$todae" generate --model "$work/$arch.gguf" --lora "$work/$arch-lora/$a:$scale" --prompt "$p" -n 24 \
                  --greedy --kv-type f32 2>/dev/null)
          check "$arch --lora $a:$scale '$p'" "$(trim "$want")" "$(trim "$got")"
        done
        [[ $scale == 0.5 && "$want" != "$full" ]] && half_differs=$((half_differs + 1))
        if [[ $scale == 1 ]]; then
          full=$want
          base=$p$("$todae" generate --model "$work/$arch.gguf" --prompt "$p" -n 24 --greedy --kv-type f32 2>/dev/null)
          [[ "$(trim "$base")" != "$(trim "$want")" ]] && differs=$((differs + 1))
        fi
      done
    done
    kill $server 2>/dev/null; wait $server 2>/dev/null || true
    check "$arch: the adapter changes the greedy text ($differs of ${#prompts[@]} prompts)" yes "$( ((differs > 0)) && echo yes || echo no)"
    check "$arch: scale 0.5 gives another text than 1 ($half_differs of ${#prompts[@]} prompts)" yes \
      "$( ((half_differs > 0)) && echo yes || echo no)"
  done
else
  echo "usage: run_lora_interop.sh peft|llama TODAE DUMP_LOGITS LORA_TOOL [LLAMA_BIN_DIR]" >&2
  exit 2
fi
if (( fails )); then echo "lora interop ($mode): $fails check(s) FAILED"; exit 1; fi
echo "lora interop ($mode): all checks passed"

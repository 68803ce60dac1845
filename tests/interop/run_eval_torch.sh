#!/usr/bin/env bash
# `todae eval` multiple choice vs PyTorch: each choice's log-likelihood (and greedy flag) that
# `todae eval --out` writes equals eval_loglik_ref.py's, which rebuilds lm-eval's requests and runs
# ref_llama.py's torch forward on the exported Hugging Face folder (1e-4 relative; measured ~1e-8).
# Two small trained models: Llama with grouped-query attention, Qwen3 (QK-norm, tied embeddings),
# 256 positions (pretraining's window), so the long document is left-truncated, each choice on its
# own as lm-eval does.
#   run_eval_torch.sh TODAE
set -uo pipefail
todae=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
fail=0

"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1 || exit 1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1 || exit 1

mkdir -p "$tmp/task"
$py - "$tmp/task/test.jsonl" <<'PY'
import json, sys
long = " ".join(["데비안은 자유 소프트웨어로 만든 운영체제입니다."] * 30)  # > 256 tokens: truncated
docs = [
    ("서울은 대한민국의 수도이다. 질문: 서울은 수도인가? 답변: ", ["아니오", "예"]),   # trailing space moves
    ("The capital of Korea is", ["Seoul", "Busan", "a city by the Han river", "?"]),
    ("", ["데비안", "리눅스 배포판"]),                                               # empty context: prefix token
    (long + " 그래서", ["좋다", "아주 오래된 운영체제이다 그리고 지금도 널리 쓰인다", "x"]), # per-choice truncation
    ("문장: 패키지를 설치하려면\n", ["apt를 쓴다", "  dpkg -i", "\t탭"]),             # newline, odd whitespace
]
with open(sys.argv[1], "w") as f:
    for ctx, ch in docs:
        f.write(json.dumps({"q": ctx, "c": ch, "label": 0}, ensure_ascii=False) + "\n")
PY
cat > "$tmp/task/mc.yaml" <<'Y'
task: mc_ref
output_type: multiple_choice
test_split: test
dataset_path: .
doc_to_text: "{{q}}"
doc_to_choice: c
doc_to_target: label
Y

for arch in llama qwen3; do
  if [[ $arch == llama ]]; then
    cfg='{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1024,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}'
  else
    cfg='{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 160,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 1024,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}'
  fi
  echo "$cfg" > "$tmp/$arch.json"
  if ! "$todae" pretrain --model "$tmp/$arch.json" --data "$tmp/shards" --out "$tmp/$arch-run" --steps 30 --threads 2 \
       --no-plot >"$tmp/$arch-pretrain.log" 2>&1; then
    echo "FAIL $arch: pretrain"; tail -3 "$tmp/$arch-pretrain.log"; fail=1; continue
  fi
  "$todae" convert --input "$tmp/$arch-run" --output "$tmp/$arch-hf" >/dev/null 2>&1 || { echo "FAIL $arch: convert"; fail=1; continue; }
  if ! "$todae" eval --model "$tmp/$arch-hf" --tasks "$tmp/task/mc.yaml" --out "$tmp/$arch-eval" -q >"$tmp/eval.log" 2>&1; then
    echo "FAIL $arch: todae eval"; tail -3 "$tmp/eval.log"; fail=1; continue
  fi
  if out=$($py "$here/eval_loglik_ref.py" "$todae" "$tmp/$arch-hf" "$tmp/$arch-eval/samples_mc_ref.jsonl" 2>&1); then
    echo "PASS $arch: $out"
  else
    echo "FAIL $arch: $out"; fail=1
  fi
done
exit $fail

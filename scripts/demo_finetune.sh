#!/usr/bin/env bash
# The fine-tuning demo (`make demo`, after demo_pretrain.sh): the small pretrained model answers a
# question, a LoRA adapter is trained on the bundled Korean Debian FAQ question/answer pairs
# (data/sft; 26 s on 2 cores: training loss 4.27 -> 0.84), and the same questions are answered
# again with the adapter applied, then with it merged into a GGUF file.
#   scripts/demo_finetune.sh [path/to/todae]
#   (TODAE_DEMO_DIR: demo_pretrain.sh's folder, default out/demo-pretrain; TODAE_FT_DIR, default
#    out/demo-finetune; EPOCHS, default 60; TODAE_THREADS, default 2)
set -euo pipefail
todae=${1:-build/todae}
base=${TODAE_DEMO_DIR:-out/demo-pretrain}/run
out=${TODAE_FT_DIR:-out/demo-finetune}
epochs=${EPOCHS:-60}
threads=${TODAE_THREADS:-2}
data=data/sft/debian_faq_qa_ko.jsonl
[ -f "$base/model.safetensors" ] || { echo "no pretrained model in $base: run scripts/demo_pretrain.sh first"; exit 1; }
rm -rf "$out"
mkdir -p "$out"

# Two questions of the training data, shown with the first words of their reference answers.
questions=("Debian은 어떻게 발음하며 이 단어 뜻은 무엇인가요?" "데비안은 GNU/리눅스만 하나요?")
answer_of() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    m = json.loads(l)["messages"]
    if m[0]["content"] == sys.argv[2]: print(m[1]["content"][:60] + " …")' "$data" "$1"
}
ask() {  # ask QUESTION ARGS...: greedy chat answer of the model given by ARGS
  local q=$1
  shift
  "$todae" generate "$@" --chat --prompt "$q" --max-tokens 40 --greedy --threads "$threads" 2>/dev/null | tr '\n' ' '
  echo
}

echo "== 1. Before: the pretrained model (it has read the FAQ, but never answered a question) =="
for q in "${questions[@]}"; do
  echo "Q: $q"
  echo "A: $(ask "$q" --model "$base")"
done

echo
echo "== 2. LoRA fine-tune (r 16 on every linear layer) on $(wc -l <"$data") Korean QA pairs ($data), $epochs epochs =="
"$todae" finetune --model "$base" --data "$data" --out "$out/lora" --epochs "$epochs" --lr 1e-2 \
  --max-length 64 --batch-tokens 1024 --threads "$threads" --save-interval 1000

echo
echo "== 3. After: the same questions, with the adapter (todae generate --lora) =="
for q in "${questions[@]}"; do
  echo "Q: $q"
  echo "A: $(ask "$q" --model "$base" --lora "$out/lora")"
  echo "   (reference: $(answer_of "$q"))"
done

echo
echo "== 4. Merge the adapter into the base and quantize: one GGUF file that llama.cpp also runs =="
"$todae" finetune merge --model "$base" --lora "$out/lora" --out "$out/merged-q8_0.gguf" --type q8_0
echo "Q: ${questions[0]}"
echo "A: $(ask "${questions[0]}" --model "$out/merged-q8_0.gguf")"
first=$(head -1 "$out/lora/metrics.jsonl" | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["loss"])')
last=$(tail -1 "$out/lora/metrics.jsonl" | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["loss"])')
echo
echo "training loss $first -> $last; adapter (PEFT: adapter_config.json + adapter_model.safetensors; llama.cpp: adapter.gguf) in $out/lora"
echo "loss curve: $out/lora/loss.png; chat with it: $todae chat --model $base --lora $out/lora"

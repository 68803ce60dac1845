#!/usr/bin/env bash
# End-to-end tests of `todae finetune` on a tiny base pretrained here for a few steps (one thread,
# seconds in all), on the bundled Korean QA data (data/sft):
#   1. LoRA writes a PEFT adapter and a GGUF LoRA, metrics.jsonl rows with the named fields, and
#      learns (validation loss falls); `generate --lora` gives the same greedy text as the adapter
#      merged by `finetune merge` (HF folder and GGUF);
#   2. resume is bit-exact: a run killed with SIGKILL at random steps (twice) and resumed ends with
#      the same adapter bytes and logs the same loss/grad_norm/lr/val_loss strings; the same for full
#      fine-tuning's model.safetensors;
#   3. SIGINT saves a checkpoint at the current step and exits 0; --out DIR --resume alone continues;
#   4. full fine-tuning writes a model folder `generate` runs; QLoRA (q8_0, q4_0) and packing train;
#      --epochs 2 takes twice the steps of --epochs 1; --config works and flags override it;
#   5. errors are one line, non-zero: bad model, bad data line, method/quant mismatch, --steps with
#      --epochs, an unknown config key, an output folder holding checkpoints without --resume.
# Usage: finetune_cli_test.sh path/to/todae [SOURCE_DIR]
set -euo pipefail
BIN=$(realpath "$1")
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
W=$(mktemp -d /tmp/todae-finetune-test.XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
export TODAE_THREADS=1
die() { echo "FAIL: $*"; exit 1; }
rows() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# A tiny base: tokenizer (with todae's chat template), shards, 40 pretraining steps.
"$BIN" tokenizer train --input "$SRC"/data/ko/debian_faq.txt --vocab-size 1024 --output "$W/tok" --quiet 2>/dev/null
"$BIN" data shard --tokenizer "$W/tok" --input "$SRC"/data/ko/debian_faq.txt --output "$W/shards" --val-fraction 0.05 \
  >/dev/null 2>&1
"$BIN" pretrain --preset tiny --data "$W/shards" --out "$W/base" --steps 40 --batch 8 --threads 1 --no-plot 2>/dev/null
QA="$SRC/data/sft/debian_faq_qa_ko.jsonl"
head -48 "$QA" >"$W/train.jsonl"

COMMON=(--model "$W/base" --data "$W/train.jsonl" --threads 1 --max-length 64 --batch-tokens 256 --no-plot)
# Validation on the training examples themselves: the loss being trained must fall (a base this
# weak does not generalise to unseen questions in 40 steps).
LORA=("${COMMON[@]}" --val-data "$W/train.jsonl" --steps 40 --lr 1e-2 --save-interval 2 --eval-interval 10 --keep-last 2)

# ---- 1. LoRA: files, metrics, learning, merge ----------------------------------------------------
"$BIN" finetune "${LORA[@]}" --out "$W/a" 2>"$W/a.log" || { cat "$W/a.log"; die "LoRA run failed"; }
grep -q "examples from 48 lines" "$W/a.log" || { cat "$W/a.log"; die "no data report before training"; }
for f in adapter_config.json adapter_model.safetensors adapter.gguf metrics.jsonl finetune.json; do
  [ -s "$W/a/$f" ] || die "LoRA run wrote no $f"
done
python3 - "$W/a" <<'EOF' || die "LoRA outputs"
import json, sys
d = sys.argv[1]
cfg = json.load(open(d + "/adapter_config.json"))
assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM", cfg
assert cfg["r"] == 16 and cfg["lora_alpha"] == 32, cfg
assert sorted(cfg["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), cfg
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert [r["step"] for r in rows] == list(range(1, 41)), [r["step"] for r in rows]
for r in rows:
    for k in ("loss", "lr", "grad_norm", "tokens_per_s", "joules"):
        assert k in r, (k, r)
val = [r["val_loss"] for r in rows if "val_loss" in r]
assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30, 40], rows
assert val[-1] < val[0] - 0.1, ("validation loss did not fall", val)
assert rows[-1]["lr"] < rows[5]["lr"], "no linear decay"
g = open(d + "/adapter.gguf", "rb").read(4)
assert g == b"GGUF", g
print("ok: LoRA run: PEFT + GGUF adapter, 40 metrics rows, val_loss %.3f -> %.3f" % (val[0], val[-1]))
EOF
PROMPT="데비안은 무엇인가요?"
gen() { "$BIN" generate "$@" --prompt "$PROMPT" --chat --max-tokens 16 --greedy --threads 1 2>/dev/null; }
base_text=$(gen --model "$W/base")
lora_text=$(gen --model "$W/base" --lora "$W/a")
[ "$base_text" != "$lora_text" ] || die "the adapter changes nothing: '$lora_text'"
"$BIN" finetune merge --model "$W/base" --lora "$W/a" --out "$W/merged" 2>"$W/m.log" || { cat "$W/m.log"; die "merge failed"; }
"$BIN" finetune merge --model "$W/base" --lora "$W/a" --out "$W/merged.gguf" 2>"$W/m.log" || { cat "$W/m.log"; die "merge to GGUF failed"; }
[ "$(gen --model "$W/merged")" = "$lora_text" ] || die "merged HF folder: '$(gen --model "$W/merged")' != --lora '$lora_text'"
[ "$(gen --model "$W/merged.gguf")" = "$lora_text" ] || die "merged GGUF: '$(gen --model "$W/merged.gguf")' != --lora '$lora_text'"
[ "$(gen --model "$W/base" --lora "$W/a/adapter.gguf")" = "$lora_text" ] || die "the GGUF adapter gives other text than the PEFT one"
echo "ok: generate --lora (PEFT and GGUF adapter) = merged HF folder = merged GGUF; differs from the base"

# ---- 2. bit-exact resume after SIGKILL -----------------------------------------------------------
extract() {
  python3 -c '
import re, sys
for line in open(sys.argv[1]):
    out = [re.search(r"\"step\":(\d+)", line).group(1)]
    for k in ("loss", "grad_norm", "lr", "val_loss"):
        m = re.search(r"\"" + k + r"\":([^,}]*)", line)
        out.append(k + "=" + (m.group(1) if m else "-"))
    print(" ".join(out))' "$1"
}
kill_at() {  # kill_at OUT ROWS TOTAL ARGS...: start or resume, SIGKILL once metrics.jsonl has ROWS rows
  local out=$1 at=$2 total=$3
  shift 3
  "$BIN" finetune "$@" --out "$out" --resume 2>>"$out.log" &
  local pid=$!
  while kill -0 $pid 2>/dev/null && [ "$(rows "$out/metrics.jsonl")" -lt "$at" ]; do sleep 0.002; done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  [ "$(rows "$out/metrics.jsonl")" -lt "$total" ] || die "$out finished before SIGKILL (tests nothing)"
}
K1=$((3 + RANDOM % 12))
K2=$((K1 + 2 + RANDOM % 12))
kill_at "$W/b" $K1 40 "${LORA[@]}"
kill_at "$W/b" $K2 40 "${LORA[@]}"
"$BIN" finetune "${LORA[@]}" --out "$W/b" --resume 2>>"$W/b.log" || { cat "$W/b.log"; die "resume failed"; }
grep -q "resumed" "$W/b.log" || die "run b never resumed from a checkpoint"
extract "$W/a/metrics.jsonl" >"$W/a.txt"
extract "$W/b/metrics.jsonl" >"$W/b.txt"
diff "$W/a.txt" "$W/b.txt" >"$W/diff.txt" || { head -20 "$W/diff.txt"; die "resumed run logs other numbers"; }
cmp "$W/a/adapter_model.safetensors" "$W/b/adapter_model.safetensors" || die "resumed adapter differs"
cmp "$W/a/adapter.gguf" "$W/b/adapter.gguf" || die "resumed GGUF adapter differs"
echo "ok: LoRA killed at steps >= $K1 and >= $K2, resumed: same metrics strings and adapter bytes"

FULL=("${COMMON[@]}" --method full --steps 12 --lr 1e-3 --save-interval 2)
"$BIN" finetune "${FULL[@]}" --out "$W/f" 2>"$W/f.log" || { cat "$W/f.log"; die "full run failed"; }
kill_at "$W/g" $((2 + RANDOM % 8)) 12 "${FULL[@]}"
"$BIN" finetune "${FULL[@]}" --out "$W/g" --resume 2>>"$W/g.log" || { cat "$W/g.log"; die "full resume failed"; }
cmp "$W/f/model.safetensors" "$W/g/model.safetensors" || die "resumed full fine-tune's weights differ"
echo "ok: full fine-tuning killed and resumed: same model.safetensors"

# ---- 3. SIGINT, and --resume with nothing but --out -------------------------------------------------
"$BIN" finetune "${COMMON[@]}" --steps 100000 --save-interval 1000 --out "$W/c" 2>"$W/c.log" &
pid=$!
while kill -0 $pid 2>/dev/null && [ "$(rows "$W/c/metrics.jsonl")" -lt 5 ]; do sleep 0.01; done
kill -INT $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 0 ] || { cat "$W/c.log"; die "SIGINT exit code $rc"; }
last=$(tail -1 "$W/c/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/')
[ "$(cat "$W/c/latest")" = "step-$last" ] || die "SIGINT saved $(cat "$W/c/latest"), last step $last"
echo "ok: SIGINT saved step-$last and exited 0"
"$BIN" finetune --out "$W/c" --resume --steps $((last + 3)) 2>"$W/c2.log" || { cat "$W/c2.log"; die "--out --resume alone"; }
[ "$(rows "$W/c/metrics.jsonl")" -eq $((last + 3)) ] && [ -s "$W/c/adapter_model.safetensors" ] || die "--out --resume did not finish the run"
echo "ok: --out DIR --resume continued with the run's own settings"

# ---- 4. full output, QLoRA, packing, epochs, config -------------------------------------------------
for f in config.json model.safetensors tokenizer.json; do [ -s "$W/f/$f" ] || die "full run wrote no $f"; done
[ -n "$(gen --model "$W/f")" ] || die "generate cannot run the full fine-tune's folder"
echo "ok: full fine-tuning wrote a model folder that generate runs"
for q in q8_0 q4_0; do
  "$BIN" finetune "${COMMON[@]}" --method qlora --quant $q --steps 4 --out "$W/q$q" 2>"$W/q.log" || { cat "$W/q.log"; die "QLoRA $q failed"; }
  [ -s "$W/q$q/adapter_model.safetensors" ] && [ "$(rows "$W/q$q/metrics.jsonl")" -eq 4 ] || die "QLoRA $q outputs"
done
[ -n "$(gen --model "$W/base" --lora "$W/qq4_0")" ] || die "generate with the QLoRA adapter"
echo "ok: QLoRA q8_0 and q4_0"
"$BIN" finetune "${COMMON[@]}" --packing --bf16 --recompute --steps 3 --out "$W/p" 2>"$W/p.log" || { cat "$W/p.log"; die "packing failed"; }
grep -q "packing" "$W/p.log" || die "packed run does not say so"
"$BIN" finetune "${COMMON[@]}" --epochs 1 --out "$W/e1" 2>/dev/null
"$BIN" finetune "${COMMON[@]}" --epochs 2 --out "$W/e2" 2>/dev/null
n1=$(rows "$W/e1/metrics.jsonl"); n2=$(rows "$W/e2/metrics.jsonl")
[ "$n1" -ge 2 ] && [ "$n2" -eq $((2 * n1)) ] || die "--epochs 1 took $n1 steps, --epochs 2 took $n2"
echo "ok: packing with bf16 and recompute; --epochs 1 = $n1 steps, --epochs 2 = $n2"
cat >"$W/ft.json" <<EOF
{"model": "$W/base", "data": ["$W/train.jsonl"], "method": "lora", "rank": 4, "alpha": 8, "targets": "q_proj,v_proj",
 "steps": 5, "max_length": 64, "batch_tokens": 256, "threads": 1, "plot": false}
EOF
"$BIN" finetune --config "$W/ft.json" --steps 3 --out "$W/cf" 2>"$W/cf.log" || { cat "$W/cf.log"; die "--config run failed"; }
[ "$(rows "$W/cf/metrics.jsonl")" -eq 3 ] || die "--steps did not override the config's steps"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1] + "/adapter_config.json"))
assert c["r"] == 4 and c["lora_alpha"] == 8 and sorted(c["target_modules"]) == ["q_proj", "v_proj"], c' "$W/cf" ||
  die "config settings not applied"
echo "ok: --config with a flag overriding it"

# ---- 5. errors: one line, non-zero ---------------------------------------------------------------
printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": 3}\n' >"$W/bad.jsonl"
echo '{"model": "x", "lerning_rate": 1}' >"$W/badkey.json"
err() {  # err NAME TEXT ARGS...: must fail with one line of error naming TEXT
  local name=$1 text=$2
  shift 2
  local rc=0
  "$BIN" finetune "$@" 2>"$W/err.log" >/dev/null || rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || die "$name: exit code $rc"
  [ "$(grep -c error "$W/err.log")" -eq 1 ] && grep -q -- "$text" "$W/err.log" || { cat "$W/err.log"; die "$name: wanted one error line with '$text'"; }
  echo "ok: $name: $(grep error "$W/err.log")"
}
err "bad model" "nope" --model "$W/nope" --data "$W/train.jsonl" --out "$W/x1"
err "bad data line" "bad.jsonl:2" --model "$W/base" --data "$W/bad.jsonl" --threads 1 --out "$W/x2"
err "qlora with f32" "q4_0 or q8_0" "${COMMON[@]}" --method qlora --quant f32 --out "$W/x3"
err "quant without qlora" "--quant is for --method qlora" "${COMMON[@]}" --quant q8_0 --out "$W/x4"
err "steps and epochs" "not both" "${COMMON[@]}" --steps 3 --epochs 1 --out "$W/x5"
err "unknown config key" "unknown field 'lerning_rate'" --config "$W/badkey.json" --out "$W/x6"
err "unknown method" "unknown method" "${COMMON[@]}" --method dora --out "$W/x7"
err "out with checkpoints" "--resume" "${LORA[@]}" --out "$W/a"
echo "PASS"

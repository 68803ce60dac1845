#!/usr/bin/env bash
# `todae generate / chat / convert / quantize` as a user meets them: a tiny model trained here,
# every format round trip, reproducible sampling, stop strings, the --stats line scripts rely on, the
# chat REPL driven through a pipe, and one-line errors (never an abort) for bad input.
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../check_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

for sub in generate chat convert quantize; do check "$sub help" 0 "--help" "$todae" $sub --help; done

# A tiny model: tokenizer, shards, 30 steps of pretraining (seconds).
"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1
"$todae" pretrain --preset tiny --data "$tmp/shards" --out "$tmp/run" --steps 30 --threads 2 --no-plot >/dev/null 2>&1
check "trained" 0 "" test -f "$tmp/run/model.safetensors"
run=$tmp/run

check "generate" 0 "" "$todae" generate --model "$run" --prompt "대한민국의" -n 8
out=$("$todae" generate --model "$run" --prompt "대한민국의" -n 8 --stats 2>&1 >/dev/null)
for k in prompt_tokens prompt_tokens_per_s decode_tokens decode_tokens_per_s ttft_ms peak_rss_mb joules_per_token energy; do
  check "stats has $k" 0 "$k=" echo "$out"
done
a=$("$todae" generate --model "$run" --prompt "리눅스" -n 24 --temperature 1 --seed 7 2>/dev/null)
b=$("$todae" generate --model "$run" --prompt "리눅스" -n 24 --temperature 1 --seed 7 2>/dev/null)
same "same seed, same text" "$a" "$b"
ids=$("$todae" generate --model "$run" --prompt "리눅스" -n 12 --greedy --ids 2>/dev/null)
check "ids are numbers" 0 "" bash -c "[[ '$ids' =~ ^[0-9\ ]+$ ]]"

# Formats: GGUF (f32, q8_0, q4_0) and back to a Hugging Face folder.
check "convert gguf" 0 "wrote" "$todae" convert --input "$run" --output "$tmp/m.gguf"
g1=$("$todae" generate --model "$run" --prompt "데비안은" -n 16 --greedy --kv-type f32 2>/dev/null)
g2=$("$todae" generate --model "$tmp/m.gguf" --prompt "데비안은" -n 16 --greedy --kv-type f32 2>/dev/null)
same "run folder and its GGUF continue alike" "$g1" "$g2"
check "quantize q8_0" 0 "q8_0" "$todae" quantize --input "$tmp/m.gguf" --output "$tmp/q8.gguf" --type q8_0
check "quantize q4_0" 0 "q4_0" "$todae" quantize --input "$run" --output "$tmp/q4.gguf" --type q4_0
check "generate q4_0" 0 "" "$todae" generate --model "$tmp/q4.gguf" --prompt "데비안은" -n 8 --kv-type q8_0
check "convert to hf" 0 "Hugging Face" "$todae" convert --input "$tmp/q8.gguf" --output "$tmp/hf" --type f16
check "hf folder has the files" 0 "" test -f "$tmp/hf/config.json" -a -f "$tmp/hf/model.safetensors" -a -f "$tmp/hf/tokenizer.json"
check "generate from converted hf" 0 "" "$todae" generate --model "$tmp/hf" --prompt "데비안은" -n 8

# Stop strings: the text ends before the stop string.
full=$("$todae" generate --model "$run" --prompt "대한민국의" -n 40 --greedy 2>/dev/null)
stop=${full:3:2}
if [[ -n "${stop// /}" ]]; then
  cut=$("$todae" generate --model "$run" --prompt "대한민국의" -n 40 --greedy --stop "$stop" 2>/dev/null)
  check "stop string not in output" 0 "" bash -c "[[ '$cut' != *'$stop'* ]]"
fi

# Errors: one line, named file, non-zero exit, nothing overwritten.
check "missing model" fail "no such file" "$todae" generate --model "$tmp/nope" --prompt x
check "bad type" fail "not one of" "$todae" convert --input "$run" --output "$tmp/x.gguf" --type q3_k
check "quantize needs type" fail "type" "$todae" quantize --input "$run" --output "$tmp/x.gguf"
check "block type to hf" fail ".gguf file instead" "$todae" convert --input "$run" --output "$tmp/hfq" --type q4_0
check "output = input" fail "overwrite" "$todae" convert --input "$tmp/m.gguf" --output "$tmp/m.gguf"
head -c 5000 "$tmp/m.gguf" > "$tmp/trunc.gguf"
check "truncated gguf" fail "trunc.gguf" "$todae" generate --model "$tmp/trunc.gguf" --prompt x
cp "$tmp/m.gguf" "$tmp/flip.gguf"
size=$(stat -c %s "$tmp/flip.gguf")
printf '\x55' | dd of="$tmp/flip.gguf" bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null
check "corrupt tensor data" fail "checksum" "$todae" generate --model "$tmp/flip.gguf" --prompt x
check "empty prompt" fail "empty" "$todae" generate --model "$run" --prompt ""
check "bad kv type" fail "KV cache type q4_0" "$todae" generate --model "$run" --prompt x --kv-type q4_0
check "bad temperature" fail "temperature" "$todae" generate --model "$run" --prompt x --temperature -1
check "folder without a model" fail "config.json" "$todae" generate --model "$tmp/tok" --prompt x
before=$(sha1sum "$tmp/q8.gguf")
chmod 0555 "$tmp" 2>/dev/null
if [[ $(id -u) != 0 ]]; then
  check "unwritable output" fail "" "$todae" convert --input "$run" --output "$tmp/q8.gguf" --type f16
fi
chmod 0755 "$tmp"
same "existing file untouched" "$before" "$(sha1sum "$tmp/q8.gguf")"

# The chat REPL through a pipe: Korean in, commands, history saved as JSON.
printf '안녕하세요\n/system 너는 친절한 비서야\n리눅스가 뭐야?\n/save %s\n/reset\n/bogus\n/exit\n' "$tmp/chat.json" |
  "$todae" chat --model "$run" -n 8 --seed 1 > "$tmp/chat.out" 2>&1
check "chat exits cleanly" 0 "" test -s "$tmp/chat.json"
check "chat saved Korean" 0 "리눅스가 뭐야?" cat "$tmp/chat.json"
check "chat saved system" 0 "너는 친절한 비서야" cat "$tmp/chat.json"
check "chat unknown command" 0 "unknown command" cat "$tmp/chat.out"

echo "$pass passed, $fail failed"
[[ $fail == 0 ]]

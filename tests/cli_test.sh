#!/usr/bin/env bash
# The CLI as a user meets it: --help everywhere, clear one-line errors, non-zero exits, no aborts.
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/check_lib.sh"

printf '이 패키지는 리눅스에서 사용할 수 있습니다.\nYou can install it.\n%.0s' {1..50} > "$tmp/c.txt"
check "help" 0 "tokenizer" "$todae" --help
check "tokenizer help" 0 "train" "$todae" tokenizer --help
for sub in train encode decode show; do check "$sub help" 0 "--help" "$todae" tokenizer $sub --help || true; done
check "train help lists vocab" 0 "--vocab-size" "$todae" tokenizer train --help
check "no command" fail "" "$todae"
check "unknown command" fail "" "$todae" frobnicate
check "train missing input" fail "nope.txt" "$todae" tokenizer train --input "$tmp/nope.txt" --vocab-size 500 --output "$tmp/t"
check "train tiny vocab" fail "too small" "$todae" tokenizer train --input "$tmp/c.txt" --vocab-size 10 --output "$tmp/t"
check "train bad number" fail "vocab-size" "$todae" tokenizer train --input "$tmp/c.txt" --vocab-size lots --output "$tmp/t"
: > "$tmp/empty.txt"
check "train empty corpus" fail "no text" "$todae" tokenizer train --input "$tmp/empty.txt" --vocab-size 500 --output "$tmp/t"
check "train ok" 0 "wrote" "$todae" tokenizer train --input "$tmp/c.txt" --vocab-size 400 --output "$tmp/t" --quiet
check "encode count" 0 "tokens=" "$todae" tokenizer encode --tokenizer "$tmp/t" --count "$tmp/c.txt"
check "encode two modes" fail "choose one" "$todae" tokenizer encode --tokenizer "$tmp/t" --count --ids "$tmp/c.txt"
check "encode bad invalid-utf8" fail "keep" "$todae" tokenizer encode --tokenizer "$tmp/t" --invalid-utf8 drop "$tmp/c.txt"
check "encode missing tokenizer" fail "no tokenizer.json" "$todae" tokenizer encode --tokenizer "$tmp" "$tmp/c.txt"
echo '{"model": {"type": "WordPiece", "vocab": {}}}' > "$tmp/wp.json"
check "encode unknown model" fail "model type 'WordPiece' is not supported" "$todae" tokenizer encode --tokenizer "$tmp/wp.json" "$tmp/c.txt"
head -c 1000 "$tmp/t/tokenizer.json" > "$tmp/trunc.json"
check "encode truncated tokenizer" fail "trunc.json: malformed JSON" "$todae" tokenizer encode --tokenizer "$tmp/trunc.json" "$tmp/c.txt"
check "decode bad id" fail "not a token id" sh -c "echo '1 2 x' | '$todae' tokenizer decode --tokenizer '$tmp/t'"
check "decode out of range" fail "outside the vocabulary" sh -c "echo '1 99999' | '$todae' tokenizer decode --tokenizer '$tmp/t'"
# Round trip of arbitrary bytes through the CLI, NUL included.
head -c 20000 /dev/urandom > "$tmp/rand.bin"
printf 'abc\0def 한국어\xff' >> "$tmp/rand.bin"
"$todae" tokenizer encode --tokenizer "$tmp/t" "$tmp/rand.bin" | "$todae" tokenizer decode --tokenizer "$tmp/t" > "$tmp/back.bin"
if cmp -s "$tmp/rand.bin" "$tmp/back.bin"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL random bytes round trip"; fi
# Output formats scripts rely on.
out=$(printf '안녕 hello' | "$todae" tokenizer encode --tokenizer "$tmp/t" --count)
if [[ $out =~ ^tokens=[0-9]+\ chars=8\ bytes=12$ ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL --count format: $out"; fi
out=$(printf '안녕 hello' | "$todae" tokenizer encode --tokenizer "$tmp/t")
if [[ $out =~ ^[0-9]+(\ [0-9]+)*$ ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL --ids format: $out"; fi
# An unwritable output folder is an error, and never clobbers an existing tokenizer.
cp "$tmp/t/tokenizer.json" "$tmp/keep.json"
check "train unwritable output" fail "cannot" "$todae" tokenizer train --input "$tmp/c.txt" --vocab-size 400 --output /proc/todae --quiet
cmp -s "$tmp/keep.json" "$tmp/t/tokenizer.json" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL tokenizer changed"; }
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

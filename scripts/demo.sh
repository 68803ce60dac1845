#!/usr/bin/env bash
# `make demo`: train a Korean-first tokenizer on the bundled corpus (data/) and show what it does.
set -euo pipefail
todae=${1:-build/todae}
out=${TODAE_DEMO_DIR:-out/demo}
mkdir -p "$out"

echo "== 1. Train a 16k byte-level BPE tokenizer on data/ (Korean + English) =="
"$todae" tokenizer train --input data/ko/*.txt data/en/*.txt --vocab-size 16000 --output "$out/tokenizer"

echo
echo "== 2. Korean text split into tokens =="
samples=(
  "대한민국의 수도는 서울입니다. 토대는 한국어를 먼저 생각하는 파운데이션 모델입니다."
  "이 패키지는 리눅스에서 사용할 수 있습니다. 설치하려면 apt-get install 명령을 실행하십시오."
  "2026년 11월 27일, GPU를 1,234,567원에 샀어요! 漢字도 씁니다 😀"
)
for s in "${samples[@]}"; do
  "$todae" tokenizer show --tokenizer "$out/tokenizer" --text "$s"
  echo
done

echo "== 3. Statistics on the bundled corpus =="
for f in data/ko/debian_faq.txt data/en/debian_descriptions.txt; do
  printf '%-40s ' "$f"
  "$todae" tokenizer encode --tokenizer "$out/tokenizer" --count "$f"
done

echo
echo "== 4. Round trip: encode then decode gives the text back byte for byte =="
"$todae" tokenizer encode --tokenizer "$out/tokenizer" data/ko/debian_faq.txt \
  | "$todae" tokenizer decode --tokenizer "$out/tokenizer" | cmp - data/ko/debian_faq.txt && echo "identical"

echo
echo "The tokenizer is a standard Hugging Face tokenizer.json: $out/tokenizer/"

#!/usr/bin/env bash
# `todae eval report` as a user meets it: a tiny run trained here with --eval-tasks (scores in
# metrics.jsonl), two of its checkpoints evaluated into RUN/eval/step-N, a hand-written baseline
# results.json of a Korean-named model; the HTML report must be one self-contained file whose
# images are PNG data: URIs, the Markdown report has its PNGs beside it, and headless Chromium
# renders the HTML into a screenshot that is neither blank nor one colour, with the plots' line
# colours in it. Exit 77 (skipped) only when chromium is not installed, after the other checks.
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../check_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3

"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1
run=$tmp/run
check "pretrain with --eval-tasks" 0 "" "$todae" pretrain --preset tiny --data "$tmp/shards" --out "$run" --steps 60 --threads 2 \
  --no-plot --eval-interval 20 --keep-last 5 --eval-tasks bpb --eval-text "$root/data/ko/debian_faq.txt" --eval-limit 6
check "metrics.jsonl has eval scores" 0 '"eval/bpb/bits_per_byte"' cat "$run/metrics.jsonl"

d=$tmp/data
mkdir -p "$d/boolq"
cat > "$d/boolq/test.jsonl" <<'EOF'
{"paragraph": "서울은 대한민국의 수도이다.", "question": "서울은 수도인가?", "label": 1}
{"paragraph": "부산은 항구 도시이다.", "question": "부산은 내륙에 있는가?", "label": 0}
{"paragraph": "데비안은 리눅스 배포판이다.", "question": "데비안은 배포판인가?", "label": 1}
{"paragraph": "제주도는 섬이다.", "question": "제주도는 대륙인가?", "label": 0}
EOF
for s in 20 60; do
  check "eval step-$s" 0 "bits_per_byte" "$todae" eval --model "$run/step-$s" --tasks kobest_boolq,bpb --data-dir "$d" \
    --text "$root/data/ko/debian_faq.txt" --limit 6 --out "$run/eval/step-$s" --threads 2 -q
done
# results.json knows where the checkpoint stands in its training (for the curves' x axes).
m=$($py -c "import json;m=json.load(open('$run/eval/step-20/results.json'))['model'];print(m.get('step'), m.get('tokens', 0) > 0, m.get('joules', 0) > 0)")
same "results.json model: step, tokens, joules" "20 True True" "$m"

# A baseline made elsewhere: hand-written, in todae's results.json shape.
mkdir -p "$tmp/base"
cat > "$tmp/base/results.json" <<'EOF'
{"results": {"kobest_boolq": {"metrics": {"acc": {"value": 0.25, "stderr": 0.25, "higher_is_better": true},
   "acc_norm": {"value": 0.25, "stderr": 0.25, "higher_is_better": true}}, "n": 4, "seconds": 0.1, "joules": 1.0},
  "bpb": {"metrics": {"bits_per_byte": {"value": 4.5, "stderr": 0.05, "higher_is_better": false}}, "n": 6, "seconds": 0.2, "joules": 2.0}},
 "model": {"path": "/models/한국어-기준모델", "format": "hf"}, "created_unix": 1}
EOF

html=$tmp/out/report.html
check "report html" 0 "3 models" "$todae" eval report "$tmp/base/results.json" "$run" --out "$html"
check "html written" 0 "" test -s "$html"
check "baseline is the first row" 0 "한국어-기준모델<span class=\"badge\">baseline" cat "$html"
check "checkpoint rows" 0 "run/step-60" cat "$html"
# One self-contained file: nothing outside it is referenced, every image is a PNG in a data: URI.
check "self-contained, PNGs decode" 0 "ok" $py - "$html" <<'EOF'
import base64, re, sys
h = open(sys.argv[1], encoding="utf-8").read()
assert '<meta charset="utf-8">' in h and "Noto Sans CJK KR" in h
assert "<script" not in h and "<link" not in h and "url(" not in h, "external resources"
refs = re.findall(r'(?:src|href)\s*=\s*"([^"]{0,30})', h)
assert refs and all(r.startswith("data:image/png;base64,") for r in refs), refs
imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', h)
assert len(imgs) == len(refs) and len(imgs) >= 6, (len(imgs), len(refs))  # bits per byte, accuracy × step, tokens, joules
for b in imgs:
    png = base64.b64decode(b, validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[-8:-4] == b"IEND" and len(png) > 2000
print("ok", len(imgs))
EOF

md=$tmp/md/report.md
check "report md" 0 "plots in" "$todae" eval report "$tmp/base/results.json" "$run" --out "$md"
check "md table" 0 "| 한국어-기준모델 (baseline) |" cat "$md"
check "md links its plots" 0 "](report_files/score_vs_step_bpb.png)" cat "$md"
check "md plot files" 0 "" test -s "$tmp/md/report_files/score_vs_step_bpb.png"

# Errors: one line naming the file (and the field), non-zero exit.
echo '{"step": 1, "loss": 2.5}' > "$tmp/metrics_row.json"
check "not a results.json" fail "metrics_row.json: results: missing or not an object" "$todae" eval report "$tmp/metrics_row.json"
echo '{"results": {"boolq": {"metrics": {"acc": {"value": "high"}}}}}' > "$tmp/bad.json"
check "bad field" fail "bad.json: results.boolq.metrics.acc.value: missing or not a number" "$todae" eval report "$tmp/bad.json"
check "no such input" fail "nope: no such file or folder" "$todae" eval report "$tmp/nope"
check "bad format" fail "--format: 'pdf' is not html or md" "$todae" eval report "$run" --format pdf

if ! command -v chromium >/dev/null; then
  echo "report_cli: $pass passed, $fail failed; chromium is not installed: screenshot skipped"
  [[ $fail == 0 ]] || exit 1
  exit 77
fi
shot=$tmp/shot.png
timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chromium" --hide-scrollbars \
  --screenshot="$shot" --window-size=1280,2000 "file://$html" >"$tmp/chromium.log" 2>&1
check "screenshot written" 0 "" test -s "$shot"
# The screenshot decoded with zlib alone: its size, many colours, and the plots' line colours
# (Tableau 10's first three: the data: URI images were drawn) — a blank or broken page has none.
check "screenshot not trivial" 0 "ok" $py - "$shot" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert (w, h) == (1280, 2000), (w, h)
assert depth == 8 and ctype in (2, 6), (depth, ctype)
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, colours, ink, lines = bytearray(stride), set(), 0, 0
palette = [(0x4e, 0x79, 0xa7), (0xf2, 0x8e, 0x2b), (0xe1, 0x57, 0x59)]  # the plots' first three line colours
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):  # PNG's scanline filters
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    for x in range(0, w, 2):
        r, g, bl = line[x * bpp:x * bpp + 3]
        colours.add((r, g, bl))
        if r + g + bl < 600: ink += 1
        if any(abs(r - pr) < 24 and abs(g - pg) < 24 and abs(bl - pb) < 24 for pr, pg, pb in palette): lines += 1
print("colours", len(colours), "ink", ink, "line pixels", lines)
assert len(colours) > 200 and ink > 5000 and lines > 100
print("ok")
EOF
echo "report_cli: $pass passed, $fail failed"
[[ $fail == 0 ]]

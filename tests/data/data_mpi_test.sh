#!/usr/bin/env bash
# `mpirun -np 2 todae data run --recipe R` gives the output of one process: every stage's parts
# and the token shards byte for byte, report.json equal but for time, date and the inputs'
# signature (seconds, mb_per_s, created, input_signature: paths and modification times), and
# manifest.json equal but for its date (paths compared with the run folder's name swapped, the
# recorded commands without their --threads). Small chunks and parts make the ranks
# split files and parts roll over inside the second rank's share. Also: a second mpirun resumes
# (every stage up to date). Exits 77 (skipped) when mpirun is missing or todae was built without MPI.
# Usage: [NP=2] data_mpi_test.sh path/to/todae [SOURCE_DIR]
set -euo pipefail
BIN=$(realpath "$1")
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; exit 77; }
W=$(mktemp -d /tmp/todae-data-mpi.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
"$BIN" tokenizer train --input "$SRC"/data/ko/debian_faq.txt --vocab-size 1024 --output "$W/tok" --quiet 2>/dev/null

# The example recipe's stages (boilerplate: lines in 8 documents) on the bundled corpus (data/ko,
# data/en: 9 files, 4 MB), with 64 KB chunks (so every stage's input is split between the ranks,
# inside files too), 300 KB parts and 200k-token shards.
recipe() {  # recipe OUTPUT COMPRESS
  cat <<EOF
{
  "description": "data_mpi_test",
  "output": "$1",
  "input": ["$SRC/data/ko", "$SRC/data/en"],
  "input_options": {"chunk_bytes": 65536},
  "part_bytes": 300000,
  "compress": $2,
  "stages": [
    {"stage": "ingest"},
    {"stage": "clean", "boilerplate_min_docs": 8},
    {"stage": "filter", "disable": ["short_lines"]},
    {"stage": "pii"},
    {"stage": "dedup", "bands": 20, "rows": 6, "threshold": 0.8},
    {"stage": "mix", "weights": {"ko/*": 0.7, "en/*": 0.3}},
    {"stage": "shard", "tokenizer": "$W/tok", "val_fraction": 0.05, "shard_tokens": 200000}
  ]
}
EOF
}
recipe "$W/one" false >"$W/one.json"
recipe "$W/two" false >"$W/two.json"
recipe "$W/onez" true >"$W/onez.json"
recipe "$W/twoz" true >"$W/twoz.json"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"  # OpenMPI's plugins (see pretrain_mpi_test.sh)
NP=${NP:-2}  # ranks (CI: 2)
MPI=(mpirun --allow-run-as-root --oversubscribe -np "$NP")
t0=$(date +%s.%N)
"$BIN" data run --recipe "$W/one.json" --threads 2 --quiet 2>"$W/one.log"
t1=$(date +%s.%N)
if ! "${MPI[@]}" "$BIN" data run --recipe "$W/two.json" --threads 1 --quiet >"$W/two.log" 2>&1; then
  if grep -q "built without MPI" "$W/two.log"; then echo "SKIP: todae built without MPI"; exit 77; fi
  echo "FAIL: mpirun:"; tail -20 "$W/two.log"; exit 1
fi
t2=$(date +%s.%N)
grep -q "$NP ranks" "$W/two.log" || { echo "FAIL: the MPI run did not see $NP ranks"; head -5 "$W/two.log"; exit 1; }
"$BIN" data run --recipe "$W/onez.json" --threads 2 --quiet 2>"$W/onez.log"
"${MPI[@]}" "$BIN" data run --recipe "$W/twoz.json" --threads 1 --quiet >"$W/twoz.log" 2>&1 ||
  { echo "FAIL: mpirun (compressed parts):"; tail -20 "$W/twoz.log"; exit 1; }
python3 - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
print(f"1 process: {t1 - t0:.2f} s, mpirun: {t2 - t1:.2f} s")
PY

python3 - "$W" <<'PY'
import filecmp, json, os, re, sys
W = sys.argv[1]
def fail(msg):
    sys.exit("FAIL: " + msg)
for one, two in (("one", "two"), ("onez", "twoz")):
    a_root, b_root = f"{W}/{one}", f"{W}/{two}"
    stages = sorted(d for d in os.listdir(a_root) if d[:2].isdigit())
    if stages != sorted(d for d in os.listdir(b_root) if d[:2].isdigit()) or len(stages) != 7:
        fail(f"stage folders differ: {stages}")
    files = 0
    for s in stages:
        a, b = f"{a_root}/{s}", f"{b_root}/{s}"
        la = sorted(f for f in os.listdir(a) if not f.endswith(".json"))
        lb = sorted(f for f in os.listdir(b) if not f.endswith(".json"))
        if la != lb:
            fail(f"{s}: files differ: {la} vs {lb}")
        if not la:
            fail(f"{s}: no output files")
        for f in la:
            if not filecmp.cmp(f"{a}/{f}", f"{b}/{f}", shallow=False):
                fail(f"{s}/{f}: 1 process and 2 ranks differ")
            files += 1
        ra, rb = (json.load(open(f"{d}/report.json")) for d in (a, b))
        for r in (ra, rb):  # time, date, and the signature of the inputs' paths and times
            for k in ("seconds", "mb_per_s", "created", "input_signature"):
                r.pop(k)
        # Paths (and the command's recipe path) differ only by the run's name, the commands by --threads.
        rb = json.loads(json.dumps(rb).replace(b_root, a_root))
        for r in (ra, rb):
            r["command"] = re.sub(r" --threads \d+", "", r["command"])
        if ra != rb:
            diff = {k: (ra.get(k), rb.get(k)) for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)}
            fail(f"{s}/report.json differs: {json.dumps(diff)[:1500]}")
        if os.path.exists(f"{a}/manifest.json"):
            ma, mb = (json.load(open(f"{d}/manifest.json")) for d in (a, b))
            ma.pop("created"); mb.pop("created")
            mb = json.loads(json.dumps(mb).replace(b_root, a_root))
            for m in (ma, mb):
                m["command"] = re.sub(r" --threads \d+", "", m["command"])
            if ma != mb:
                fail(f"{s}/manifest.json differs")
            shards = len(ma["splits"]["train"]["files"]) + len(ma["splits"]["val"]["files"])
    dd = json.load(open(f"{a_root}/05-dedup/report.json"))["counts"]
    cl = json.load(open(f"{a_root}/02-clean/report.json"))
    if not (cl["counts"]["changed.boilerplate"] > 0 and dd["dropped.near"] > 0 and dd["dropped.exact"] > 0):
        fail("the recipe no longer exercises boilerplate removal and both kinds of dedup")
    parts = {s: len(json.load(open(f"{a_root}/{s}/report.json"))["outputs"]) for s in stages[:-1]}
    print(f"ok ({one}): {files} files byte-identical ({shards} token shards; parts per stage {list(parts.values())}); "
          f"clean removed {cl['extra']['boilerplate_lines']} boilerplate lines from {cl['counts']['changed.boilerplate']} documents, "
          f"dedup dropped {dd['dropped.exact']} exact + {dd['dropped.near']} near in both")
PY
# Every stage split its documents between the ranks (the first two, at least).
n=$(grep -c "documents in per rank: [1-9][0-9]* + [1-9]" "$W/two.log" || true)
[ "$n" -ge 7 ] || { echo "FAIL: expected both ranks to read documents in every stage:"; grep "per rank" "$W/two.log"; exit 1; }
# A second mpirun resumes: every stage is up to date.
"${MPI[@]}" "$BIN" data run --recipe "$W/two.json" --threads 1 --quiet >"$W/two2.log" 2>&1 ||
  { echo "FAIL: mpirun (resume):"; tail -5 "$W/two2.log"; exit 1; }
n=$(grep -c "up to date, skipped" "$W/two2.log" || true)
[ "$n" -eq 7 ] || { echo "FAIL: the second mpirun re-ran stages ($n of 7 skipped)"; cat "$W/two2.log"; exit 1; }
"$BIN" data verify "$W/two/07-shard" >/dev/null
echo PASS

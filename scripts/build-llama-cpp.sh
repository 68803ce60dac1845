#!/usr/bin/env bash
# Builds llama.cpp (CPU only, Release, native ISA, no curl/OpenSSL, no web UI) from the source bundled in
# the npm package node-llama-cpp@3.21.1 (llama/gitRelease.bundle, a git bundle of one squashed commit),
# into a scratch folder OUTSIDE the repository. Nothing of llama.cpp is copied into todae.
#
#   scripts/build-llama-cpp.sh [--rebuild] [--jobs N] [--print-bin-dir]
#
#   TODAE_LLAMA_DIR   where to put it (default: $HOME/.cache/todae/llama.cpp)
#                     layout: dl/ (npm tarball), src/ (git clone of the bundle), build/, build/bin/
#   --rebuild         wipe build/ and build again (src/ is kept)
#   --jobs N          parallel compile jobs (default: nproc)
#   --print-bin-dir   only print the bin dir if the build is complete (exit 1 otherwise); builds nothing
#
# Idempotent: when every tool below is already built from the pinned commit it only prints the bin dir.
# The last line of stdout is always the bin dir, so `BIN=$(scripts/build-llama-cpp.sh | tail -1)` works.
#
# Tools built (all in build/bin/):
#   llama-completion     classic text completion: -p TEXT -n N --temp 0 (greedy), -no-cnv, plain stdout
#   llama-simple         minimal greedy continuation: llama-simple -m M -n N "prompt" (always greedy)
#   llama-cli            the interactive chat CLI (conversation mode; not for scripted continuations)
#   llama-bench          -t 2 -p 128,512 -n 128 -o json|md
#   llama-quantize       F32/F16 -> Q8_0/Q4_0 (... --pure for a uniform file)
#   llama-server         OpenAI-compatible HTTP server
#   llama-tokenize       text -> ids (--ids, --no-bos, --stdin, --show-count)
#   llama-perplexity     perplexity; --kl-divergence-base FILE saves all logits, --kl-divergence compares
#   llama-debug          prints intermediate tensors; --save-logits writes the logits of a prompt to files
#   llama-eval-callback  prints every intermediate tensor of one forward pass (a few values of each)
#   llama-gguf           dumps / reads a GGUF file (keys, tensors) — handy to check our writer
set -euo pipefail

NPM_PKG="node-llama-cpp@3.21.1"
PINNED_COMMIT="80fb11ac73e66d89eae2c6a91d8a77428fa733ed"   # HEAD of llama/gitRelease.bundle in that package
TARGETS=(llama-completion llama-simple llama-cli llama-bench llama-quantize llama-server llama-tokenize
         llama-perplexity llama-debug llama-eval-callback llama-gguf)

LLAMA_DIR="${TODAE_LLAMA_DIR:-$HOME/.cache/todae/llama.cpp}"
REBUILD=0
PRINT_ONLY=0
JOBS="$(nproc 2>/dev/null || echo 2)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rebuild) REBUILD=1 ;;
    --jobs|-j) JOBS="$2"; shift ;;
    --print-bin-dir) PRINT_ONLY=1 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-llama-cpp: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
mkdir -p "$LLAMA_DIR"
LLAMA_DIR="$(cd "$LLAMA_DIR" && pwd -P)"
case "$LLAMA_DIR/" in
  "$REPO_ROOT"/*) echo "build-llama-cpp: TODAE_LLAMA_DIR ($LLAMA_DIR) must be outside the repository" >&2; exit 2 ;;
esac
SRC="$LLAMA_DIR/src"
BUILD="$LLAMA_DIR/build"
BIN="$BUILD/bin"
STAMP="$BUILD/.todae-built"
STAMP_WANT="$PINNED_COMMIT ${TARGETS[*]}"

all_built() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" ]] || return 1
  local t
  for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
}

if [[ $PRINT_ONLY -eq 1 ]]; then
  all_built && { echo "$BIN"; exit 0; }
  echo "build-llama-cpp: not built yet in $LLAMA_DIR" >&2; exit 1
fi
if [[ $REBUILD -eq 0 ]] && all_built; then
  echo "build-llama-cpp: already built ($PINNED_COMMIT from $NPM_PKG)" >&2
  echo "$BIN"
  exit 0
fi

# ---- build dependencies: apt, only what is missing ----
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v git >/dev/null 2>&1 || need+=(git)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "build-llama-cpp: installing ${need[*]} with apt-get" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

t0=$(date +%s)

# ---- source: npm tarball -> git bundle -> clone at the pinned commit ----
if [[ ! -d "$SRC/.git" ]] || [[ "$(git -C "$SRC" rev-parse HEAD 2>/dev/null)" != "$PINNED_COMMIT" ]]; then
  rm -rf "$SRC" "$LLAMA_DIR/dl"
  mkdir -p "$LLAMA_DIR/dl"
  echo "build-llama-cpp: fetching $NPM_PKG (npm pack) ..." >&2
  (cd "$LLAMA_DIR/dl" && npm pack --silent "$NPM_PKG" >/dev/null)
  tgz="$(ls "$LLAMA_DIR"/dl/node-llama-cpp-*.tgz)"
  tar -xzf "$tgz" -C "$LLAMA_DIR/dl" package/llama/gitRelease.bundle
  bundle="$LLAMA_DIR/dl/package/llama/gitRelease.bundle"
  git bundle verify -q "$bundle" >/dev/null 2>&1 || { echo "build-llama-cpp: $bundle is not a valid git bundle" >&2; exit 1; }
  git -c advice.detachedHead=false clone -q "$bundle" "$SRC"
  got="$(git -C "$SRC" rev-parse HEAD)"
  if [[ "$got" != "$PINNED_COMMIT" ]]; then
    echo "build-llama-cpp: bundle HEAD is $got, expected $PINNED_COMMIT" >&2; exit 1
  fi
fi

# ---- configure + build only the tools we use ----
if [[ $REBUILD -eq 1 ]]; then rm -rf "$BUILD"; fi
rm -f "$STAMP"
echo "build-llama-cpp: configuring (CPU, Release, GGML_NATIVE=ON, static) ..." >&2
cmake -S "$SRC" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON \
  -DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_RPC=OFF \
  -DGGML_BACKEND_DL=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF \
  >"$LLAMA_DIR/configure.log" 2>&1 || { tail -30 "$LLAMA_DIR/configure.log" >&2; exit 1; }
t1=$(date +%s)
echo "build-llama-cpp: building ${TARGETS[*]} with $JOBS jobs (log: $LLAMA_DIR/build.log) ..." >&2
cmake --build "$BUILD" --parallel "$JOBS" --target "${TARGETS[@]}" >"$LLAMA_DIR/build.log" 2>&1 \
  || { tail -40 "$LLAMA_DIR/build.log" >&2; exit 1; }
t2=$(date +%s)

for t in "${TARGETS[@]}"; do
  [[ -x "$BIN/$t" ]] || { echo "build-llama-cpp: $BIN/$t missing after the build" >&2; exit 1; }
done
echo "$STAMP_WANT" >"$STAMP"
echo "build-llama-cpp: done in $((t2 - t0)) s (fetch+configure $((t1 - t0)) s, compile $((t2 - t1)) s, $JOBS jobs)" >&2
echo "build-llama-cpp: tools: ${TARGETS[*]}" >&2
echo "$BIN"

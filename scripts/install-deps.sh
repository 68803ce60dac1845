#!/usr/bin/env bash
# Installs every Debian package todae's build, tests and benchmarks need.
# Idempotent: packages already present are skipped; works as root or through sudo.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang libclang-rt-14-dev clang-format
  nlohmann-json3-dev libutf8proc-dev libpcre2-dev libcli11-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libxxhash-dev libzstd-dev zlib1g-dev libcpp-httplib-dev
  libopenblas-dev libopenmpi-dev openmpi-bin
  gnuplot-nox python3-torch python3-numpy
  libyaml-cpp-dev python3-nltk
  nodejs npm
  chromium fonts-noto-cjk
  libcurl4-openssl-dev libical-dev libsqlite3-dev
  radicale dovecot-imapd python3-aiosmtpd
)
# Benchmarks only (peers): SentencePiece. Pass --bench to add them.
if [[ "${1:-}" == "--bench" ]]; then
  PKGS+=(sentencepiece python3-sentencepiece time)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node and npm may come from elsewhere (a preinstalled Node 20): accept them if on PATH.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 || filtered+=("$p") ;;
    npm) command -v npm >/dev/null 2>&1 || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
missing=("${filtered[@]+"${filtered[@]}"}")

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

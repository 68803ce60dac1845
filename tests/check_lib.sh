# Sourced by the CLI test scripts: check NAME WANT TEXT COMMAND... runs COMMAND and counts it as
# passed when its exit status is as wanted (0, or "fail": non-zero without a signal), its output
# contains TEXT, and nothing aborted; same NAME A B compares two strings.
pass=0 fail=0
check() {  # name, expected exit (0 or "fail"), expected text in output, command...
  local name=$1 want=$2 text=$3
  shift 3
  out=$("$@" 2>&1)
  rc=$?
  ok=1
  if [[ $want == 0 && $rc -ne 0 ]]; then ok=0; fi
  if [[ $want == fail && ( $rc -eq 0 || $rc -ge 128 ) ]]; then ok=0; fi
  if [[ -n $text && $out != *"$text"* ]]; then ok=0; fi
  if [[ $out == *"terminate called"* || $out == *"Aborted"* || $out == *"Segmentation"* ]]; then ok=0; fi
  if [[ $ok == 1 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name (exit $rc): $out" | head -5; fi
}
same() {  # name, a, b
  if [[ "$2" == "$3" ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1: '$2' != '$3'"; fi
}

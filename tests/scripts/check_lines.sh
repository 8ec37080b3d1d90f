#!/bin/sh
# scripts/check-lines.py: the tree passes; in a made-up tree a file over 1000 lines fails and
# is named, one of exactly 1000 lines passes, and generated or vendored files are skipped.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 "$here/scripts/check-lines.py" "$here"

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/src/net" "$t/tools/wsx" "$t/tests/e2e/node_modules/x" "$t/include"
long() { i=0; while [ "$i" -lt "$1" ]; do echo "x"; i=$((i + 1)); done; }
long 1001 >"$t/src/net/big.c"
long 1000 >"$t/src/net/ok.c"
long 1001 >"$t/tests/e2e/long.mjs"
long 1001 >"$t/tools/wsx/assets.h"
long 1001 >"$t/tests/e2e/node_modules/x/index.js"
long 1001 >"$t/include/notes.txt"

set +e
out=$(python3 "$here/scripts/check-lines.py" "$t" 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
fail=0
[ "$rc" -eq 1 ] || { echo "FAIL: exit status $rc, want 1" >&2; fail=1; }
for want in 'src/net/big.c: 1001 lines' 'tests/e2e/long.mjs: 1001 lines'; do
    printf '%s\n' "$out" | grep -qF "$want" || { echo "FAIL: no line with: $want" >&2; fail=1; }
done
n=$(printf '%s\n' "$out" | grep -c '^[a-z]*/.*: [0-9]* lines (limit' || true)
[ "$n" -eq 2 ] || { echo "FAIL: $n files reported, want 2" >&2; fail=1; }
[ "$fail" -eq 0 ] && echo "ok: check-lines"
exit $fail

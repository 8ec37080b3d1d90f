#!/bin/sh
# scripts/check-layers.py: the tree passes; a tree with one violation of each kind fails with
# each one named by file:line.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 "$here/scripts/check-layers.py" "$here"

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/include/wsx" "$t/src/proto" "$t/src/net" "$t/src/ws" "$t/src/pubsub" "$t/src/odd" \
    "$t/tools/wsx"
printf '#include "wsx/common.h"\n' >"$t/include/wsx.h"
printf '#pragma once\n' >"$t/include/wsx/common.h"
printf '#include "ws/ws.h"\n' >"$t/include/wsx/bad.h"                 # public -> src
printf '#include "wsx.h"\n\n#include "net/net.h"\n' >"$t/src/proto/p.c" # proto -> net
printf '#include "wsx.h"\n' >"$t/src/net/net.h"
printf '#include "net/net.h"\n#include "pubsub/pubsub.h"\n' >"$t/src/ws/ws.h"   # ws -> pubsub
printf '#include "ws/ws.h"\n' >"$t/src/pubsub/pubsub.h"
printf '#include "ws.h"\n#include "missing.h"\n' >"$t/src/ws/conn.c"          # unresolved
printf '#include "wsx.h"\n' >"$t/src/odd/x.c"                             # no layer
printf '#include "pubsub/pubsub.h"\n#include "tool.h"\n' >"$t/tools/wsx/main.c"
printf '#include "wsx.h"\n' >"$t/tools/wsx/tool.h"

set +e
out=$(python3 "$here/scripts/check-layers.py" "$t" 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
fail=0
[ "$rc" -eq 1 ] || { echo "FAIL: exit status $rc, want 1" >&2; fail=1; }
for want in 'include/wsx/bad.h:1: public header' 'src/proto/p.c:3: #include "net/net.h": layer proto' \
    'src/ws/ws.h:2: #include "pubsub/pubsub.h": layer ws includes pubsub' \
    'src/ws/conn.c:2: #include "missing.h" resolves to no file' 'src/odd/x.c:1: not in a known layer'; do
    printf '%s\n' "$out" | grep -qF "$want" || { echo "FAIL: no line with: $want" >&2; fail=1; }
done
n=$(printf '%s\n' "$out" | grep -c '^[a-z]*/.*:[0-9]*: ' || true)
[ "$n" -eq 5 ] || { echo "FAIL: $n violations reported, want 5" >&2; fail=1; }
[ "$fail" -eq 0 ] && echo "ok: check-layers"
exit $fail

#!/bin/bash
# SE (wsx bench --mode sio-echo, the defaults) against Node socket.io (ws), one `wsx sio`
# build before a change and one after, in alternating rounds, so that the three share the
# machine's state; prints the server's CPU per acked event of every run.
#   bench/sio/se_before_after.sh BEFORE/wsx AFTER/wsx [ROUNDS]   (from the repository root;
#   the load generator is build/wsx; bench/sio/node_modules from `npm ci` there)
set -euo pipefail
BEFORE=${1:?usage: se_before_after.sh BEFORE_WSX AFTER_WSX [ROUNDS]}
AFTER=${2:?usage: se_before_after.sh BEFORE_WSX AFTER_WSX [ROUNDS]}
ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
LOAD=${WSX:-build/wsx}
run() { # LABEL COMMAND...: one SE run; prints LABEL us/event events/s other-CPU% errors
    local label=$1 out pid port r
    shift
    out=$(mktemp)
    taskset -c 1 "$@" >"$out" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
    port=$(sed -n 's/.*:\([0-9]*\)\/.*$/\1/p' "$out" | head -1)
    r=$(taskset -c 0 "$LOAD" bench --mode sio-echo -w 1 -d 3 -p "$pid" --json \
        "ws://127.0.0.1:$port/" 2>/dev/null | tail -1)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$out"
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); print(sys.argv[1], d["server_us_per_msg"], round(d["msgs_per_s"]), d["other_cpu_pct"], d["errors"])' "$label" "$r"
}
echo "server us/event events/s other-CPU% errors"
for _ in $(seq "$ROUNDS"); do
    WS_NO_BUFFER_UTIL=1 run node node "$HERE/server.mjs" --host 127.0.0.1 --port 0
    run before "$BEFORE" sio --host 127.0.0.1 --port 0 --quiet --recovery 0
    run after "$AFTER" sio --host 127.0.0.1 --port 0 --quiet --recovery 0
done

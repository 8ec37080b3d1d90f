#!/bin/sh
# A local cluster of `wsx serve` (docs/cluster.md): a redis-server of its own on
# 127.0.0.1:REDIS_PORT (no persistence) and three nodes on 127.0.0.1:PORT, PORT+1, PORT+2,
# all on that Redis. Prints the three URLs; open them in three tabs and chat across them.
# Ctrl-C stops the nodes and Redis.
#
#   scripts/cluster-demo.sh [BUILD_DIR] [PORT] [REDIS_PORT]     (default: build 8081 6390)
#
# Try: kill the Redis (its pid is printed): each node goes on alone (its /healthz says
# degraded); start it again (redis-server --port REDIS_PORT --save '' --appendonly no) and
# the nodes reconnect by themselves.
set -eu
build=${1:-build}
port=${2:-8081}
rport=${3:-6390}
redis=${REDIS_SERVER:-redis-server}
wsx="$build/wsx"
[ -x "$wsx" ] || { echo "cluster-demo: $wsx not found: build first (make, or cmake --build $build)" >&2; exit 1; }
command -v "$redis" >/dev/null || { echo "cluster-demo: $redis not found (Debian: apt-get install redis-server)" >&2; exit 1; }

pids=""
cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$redis" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning &
rpid=$!
pids="$rpid"
# Ready when it answers PING (redis-cli comes with redis-server); the nodes would connect
# later by themselves anyway.
i=0
until redis-cli -p "$rport" ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$rpid" 2>/dev/null; then
        echo "cluster-demo: redis-server did not start on port $rport" >&2
        exit 1
    fi
    sleep 0.05
done

for k in 0 1 2; do
    "$wsx" serve --host 127.0.0.1 --port $((port + k)) --redis "redis://127.0.0.1:$rport" --quiet &
    pids="$pids $!"
done
sleep 0.5
echo "redis: redis://127.0.0.1:$rport (pid $rpid)"
for k in 0 1 2; do
    echo "node $((k + 1)): http://127.0.0.1:$((port + k))/"
done
echo "Ctrl-C stops them."
wait

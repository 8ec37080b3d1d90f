#!/usr/bin/env bash
# The standard benchmark scenarios in one command (`make bench` runs `bench/run.sh build`).
#
#   bench/run.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/wsx and BUILD_DIR/tcp_echo)
#
# Server on CPU 1, load generator on CPU 0 (taskset), everything on 127.0.0.1. Each scenario
# runs 3 times and the median is reported; the server's CPU time per message (us/msg) is the
# figure to compare on a shared machine, because it does not depend on how fast the load
# generator is. The neutral load generator is wsload (../shared/tools/wsload, built into
# BUILD_DIR/tools/wsload when missing); `wsx bench` repeats scenario A where it is comparable,
# and a plain TCP echo server (bench/tcp_echo.c) under `wsload -m raw` gives the ceiling of the
# machine for A, B and C.
#
# Writes bench/results/DATE-COMMIT.md and prints the same table. Environment:
#   WSLOAD_SRC   wsload.c to build (default: ../shared/tools/wsload/wsload.c beside the repo)
#   RUNS         runs per scenario (default 3)
#   DURATION     measured seconds per run (default 3), WARMUP seconds before it (default 1)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUNS=${RUNS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
WSX=$BUILD/wsx
TCP_ECHO=$BUILD/tcp_echo
WSLOAD=$BUILD/tools/wsload

die() { echo "bench/run.sh: $*" >&2; exit 1; }

[ -x "$WSX" ] || die "$WSX not found: build first (make build)"
[ -x "$TCP_ECHO" ] || die "$TCP_ECHO not found: build first (make build)"

if [ ! -x "$WSLOAD" ]; then
    src=${WSLOAD_SRC:-}
    if [ -z "$src" ]; then
        for c in "$ROOT/../shared/tools/wsload/wsload.c" /work/shared/tools/wsload/wsload.c; do
            [ -f "$c" ] && { src=$c; break; }
        done
    fi
    [ -n "$src" ] && [ -f "$src" ] || die "wsload.c not found (set WSLOAD_SRC)"
    mkdir -p "$BUILD/tools"
    echo "building $WSLOAD from $src"
    cc -O2 -Wall -o "$WSLOAD" "$src" || die "cannot build wsload"
fi

# Scenario D holds 10000 connections: both processes need the descriptors.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 20000 ] ||
    echo "warning: ulimit -n is $(ulimit -n): scenario D (10000 connections) may fail" >&2

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_CPU=(taskset -c 1)
    LOAD_CPU=(taskset -c 0)
else
    SRV_CPU=()
    LOAD_CPU=()
    echo "warning: fewer than 2 CPUs or no taskset: processes are not pinned" >&2
fi

TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# start_server NAME COMMAND...: starts it pinned, waits for "listening on ...:PORT", sets
# SERVER_PID and PORT.
start_server() {
    local log=$TMP/server.out
    : >"$log"
    "${SRV_CPU[@]}" "$@" >"$log" 2>"$TMP/server.err" &
    SERVER_PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on [a-z]*:*\/*[^ ]*:\([0-9][0-9]*\)\/*$/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TMP/server.err" >&2
    die "server did not start: $*"
}

wsx_server() { start_server "$WSX" echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000; }

# field LINE KEY: the value of KEY=... in a wsload RESULT line, or "key":... in JSON.
field() {
    local v
    v=$(printf '%s\n' "$1" | tr ' ,{}' '\n\n\n\n' | sed -n "s/^$2=//p; s/^\"$2\"://p" | head -1)
    [ "$v" = null ] && v=
    printf '%s' "$v"
}

median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

FAILED=0
ROWS=()   # "id|tool|command|rate|server us/msg|p50|p99|metric|other CPU %|rates of the runs"
declare -A RATE US

# scenario ID TOOL METRIC COMMAND...: runs COMMAND (with PORT and SERVER_PID substituted for
# @PORT@ and @PID@) RUNS times pinned to the load CPU; METRIC is the rate field (msgs_per_s
# or deliveries_per_s; bytes_per_conn for idle runs); records the medians.
scenario() {
    local id=$1 tool=$2 metric=$3
    shift 3
    local rates=() uss=() p50s=() p99s=() others=() i line cmd=()
    for ((i = 1; i <= RUNS; i++)); do
        [ "$id" = D ] && wsx_server
        cmd=()
        local a
        for a in "$@"; do
            a=${a//@PORT@/$PORT}
            cmd+=("${a//@PID@/$SERVER_PID}")
        done
        line=$(timeout 120 "${LOAD_CPU[@]}" "${cmd[@]}" 2>"$TMP/load.err" | grep -E '^RESULT |^\{' | tail -1)
        if [ -z "$line" ] || { [ "$tool" = "wsx bench" ] && [ "$(field "$line" ok)" != true ]; }; then
            echo "  $id ($tool) run $i FAILED: ${cmd[*]}" >&2
            tail -3 "$TMP/load.err" >&2
            FAILED=1
        else
            rates+=("$(field "$line" "$metric" | awk '{ printf "%.0f", $1 }')")
            uss+=("$(field "$line" server_us_per_msg)")
            local o
            o=$(field "$line" other_cpu)
            [ -n "$o" ] || o=$(field "$line" other_cpu_pct)
            others+=("${o%\%}")
            if [ "$tool" = "wsx bench" ]; then
                p50s+=("$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\1/p')")
                p99s+=("$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\2/p')")
            else
                p50s+=("$(field "$line" lat_us_p50)")
                p99s+=("$(field "$line" lat_us_p99)")
            fi
        fi
        [ "$id" = D ] && stop_server
    done
    local shown=() a
    for a in "$@"; do
        a=${a//@PORT@/PORT}
        a=${a//@PID@/PID}
        shown+=("${a#"$ROOT"/}")
    done
    local r u
    r=$(median "${rates[@]}")
    u=$(median "${uss[@]}")
    RATE[$id/$tool]=$r
    US[$id/$tool]=$u
    ROWS+=("$id|$tool|${shown[*]}|$r|$u|$(median "${p50s[@]}")|$(median "${p99s[@]}")|$metric|$(median "${others[@]}")|${rates[*]}")
    printf '  %-4s %-10s %s: %s (runs: %s), server %s us/msg\n' "$id" "$tool" "$metric" \
        "${r:--}" "${rates[*]}" "${u:--}"
}

W="-w $WARMUP -d $DURATION"
echo "wsx benchmarks: $RUNS runs per scenario, ${WARMUP} s warm-up + ${DURATION} s measured"

wsx_server
scenario A wsload msgs_per_s "$WSLOAD" -p @PORT@ -c 100 -k 16 -s 32 $W -P @PID@
scenario A "wsx bench" msgs_per_s "$WSX" bench -c 100 -k 16 -s 32 $W -p @PID@ --json \
    "ws://127.0.0.1:@PORT@/"
scenario B wsload msgs_per_s "$WSLOAD" -p @PORT@ -c 1000 -k 1 -s 32 $W -P @PID@
scenario C wsload msgs_per_s "$WSLOAD" -p @PORT@ -c 10 -k 1 -s 65536 -b $W -P @PID@
scenario E1 wsload deliveries_per_s "$WSLOAD" -m bcast -p @PORT@ -c 1000 -W 1 -s 32 $W -P @PID@
scenario E16 wsload deliveries_per_s "$WSLOAD" -m bcast -p @PORT@ -c 1000 -W 16 -s 32 $W -P @PID@
stop_server

# D: a fresh server for each run, so its RSS grows from a known start.
scenario D wsload bytes_per_conn "$WSLOAD" -m idle -p @PORT@ -c 10000 -C 256 -T 60 -w 2 -d 1 -P @PID@

start_server "$TCP_ECHO" 0
scenario A raw msgs_per_s "$WSLOAD" -m raw -p @PORT@ -c 100 -k 16 -s 32 $W -P @PID@
scenario B raw msgs_per_s "$WSLOAD" -m raw -p @PORT@ -c 1000 -k 1 -s 32 $W -P @PID@
scenario C raw msgs_per_s "$WSLOAD" -m raw -p @PORT@ -c 10 -k 1 -s 65536 -b $W -P @PID@
stop_server

# ---- the report ----
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT=$COMMIT-dirty
DATE=$(date -u +%Y-%m-%d)
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/$DATE-$COMMIT.md

ratio() { # ratio A B: A/B with 2 decimals, or -
    [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' || echo -
}

{
    echo "# wsx benchmarks, $DATE, commit $COMMIT"
    echo
    echo "- machine: $(nproc) CPUs, ${MODEL:-unknown CPU}, Linux $(uname -r)"
    echo "- server pinned to CPU 1, load generator to CPU 0; ${WARMUP} s warm-up, ${DURATION} s" \
        "measured; median of $RUNS runs"
    echo "- server: \`wsx echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000\`;" \
        "raw ceiling: \`tcp_echo 0\` (bench/tcp_echo.c)"
    echo "- us/msg is the server's CPU time (utime+stime) per message (per delivery for E);" \
        "\"vs raw\" divides by the same scenario against the plain TCP echo server;" \
        "\"other CPU\" is what the rest of the machine used meanwhile (% of one CPU):" \
        "a large value means the run was contended and its msgs/s is not comparable"
    echo
    echo "| scenario | tool | msgs/s | server us/msg | p50 us | p99 us | msgs/s vs raw | us/msg vs raw | other CPU % | runs |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r id tool cmd r u p50 p99 metric other runs <<<"$row"
        vr=-; vu=-
        if [ "$tool" != raw ] && [ -n "${RATE[$id/raw]:-}" ]; then
            vr=$(ratio "$r" "${RATE[$id/raw]}")
            vu=$(ratio "$u" "${US[$id/raw]}")
        fi
        if [ "$metric" = bytes_per_conn ]; then
            echo "| $id | $tool | ${r:--} bytes/conn (server RSS) | - | - | - | - | - | ${other:--} | $runs |"
        else
            echo "| $id | $tool | ${r:--} | ${u:--} | ${p50:--} | ${p99:--} | $vr | $vu | ${other:--} | $runs |"
        fi
    done
    echo
    echo "Commands (PORT and PID are the server's):"
    echo
    for row in "${ROWS[@]}"; do
        IFS='|' read -r id tool cmd _ <<<"$row"
        echo "- $id ($tool): \`$cmd\`"
    done
    [ "$FAILED" = 0 ] || { echo; echo "Some runs FAILED: see the output of bench/run.sh."; }
} >"$OUT"

echo
grep '^|' "$OUT" | column -t -s '|' 2>/dev/null || grep '^|' "$OUT"
echo
echo "written: ${OUT#"$ROOT"/}"
exit "$FAILED"

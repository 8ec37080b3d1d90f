#!/usr/bin/env bash
# The standard benchmark scenarios in one command (`make bench` runs `bench/run.sh build`).
#
#   bench/run.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/wsx and BUILD_DIR/tcp_echo)
#
# Server on CPU 1, load generator on CPU 0 (taskset), everything on 127.0.0.1. Three rounds
# each run every scenario once, the wsx run and its raw TCP run back to back, and the median
# over rounds is reported (ratios to raw TCP: the median of the per-round ratios, so a slow
# phase of a shared machine touches both sides). The server's CPU time per message (us/msg) is the
# figure to compare on a shared machine, because it does not depend on how fast the load
# generator is. The neutral load generator is wsload (../shared/tools/wsload, built into
# BUILD_DIR/tools/wsload when missing); `wsx bench` repeats scenario A where it is comparable,
# and a plain TCP echo server (bench/tcp_echo.c) under `wsload -m raw` gives the ceiling of the
# machine for A, B and C.
#
# Writes bench/results/DATE-COMMIT.md and prints the same table. Environment:
#   WSLOAD_SRC   wsload.c to build (default: ../shared/tools/wsload/wsload.c beside the repo)
#   RUNS         rounds (default 3)
#   DURATION     measured seconds per run (default 3), WARMUP seconds before it (default 1)
#   BASE         another build dir (an older commit, say): each round also runs A, C, E16 and D
#                against BASE/wsx echo, and the report gives new / base per scenario (the
#                median of per-round ratios), so before and after come from one run
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
BASE=${BASE:-}
if [ -n "$BASE" ]; then
    case $BASE in /*) ;; *) BASE=$ROOT/$BASE ;; esac
    [ -x "$BASE/wsx" ] || die "$BASE/wsx not found (BASE must be a build dir)"
fi

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
PIDS=()
stop_servers() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
trap 'stop_servers; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# start_server NAME COMMAND...: starts it pinned, waits for "listening on ...:PORT", sets
# PID_NAME and PORT_NAME.
start_server() {
    local name=$1 log=$TMP/server-$1.out pid port=
    shift
    : >"$log"
    "${SRV_CPU[@]}" "$@" >"$log" 2>"$TMP/server-$name.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on [a-z]*:*\/*[^ ]*:\([0-9][0-9]*\)\/*$/\1/p' "$log" | head -1)
        if [ -n "$port" ]; then
            printf -v "PID_$name" %s "$pid"
            printf -v "PORT_$name" %s "$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TMP/server-$name.err" >&2
    die "server did not start: $*"
}

# Every load generator connects from 127.0.0.1: the per-address limits (256 connections, 32
# handshakes in progress) are for public servers, so they are off here.
WSX_ECHO=("$WSX" echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000 --max-per-ip 0
    --max-handshakes-per-ip 0 --max-handshakes 0)
# The base build is started with the options every version understands, and the admission
# limits lifted when it has them (builds since the hardening refuse more than 32 handshakes in
# progress from one address by default, which scenario A and E exceed).
BASE_ECHO=("$BASE/wsx" echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000)
if [ -n "$BASE" ] && "$BASE/wsx" echo --help 2>&1 | grep -q -- --max-handshakes-per-ip; then
    BASE_ECHO+=(--max-per-ip 0 --max-handshakes-per-ip 0 --max-handshakes 0)
fi

# field LINE KEY: the value of KEY=... in a wsload RESULT line, or "key":... in JSON.
field() {
    local v
    v=$(printf '%s\n' "$1" | tr ' ,{}' '\n\n\n\n' | sed -n "s/^$2=//p; s/^\"$2\"://p" | head -1)
    [ "$v" = null ] && v=
    printf '%s' "$v"
}

median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

FAILED=0
ORDER=()  # "id|tool|metric|command shown", in report order
# Per scenario "id/tool": space-separated values of the runs, in run order.
declare -A RATES USS P50S P99S OTHERS

# run_once ID TOOL METRIC SERVER COMMAND...: one run of COMMAND pinned to the load CPU against
# the server started as SERVER (its PORT and PID substituted for @PORT@ and @PID@); METRIC is
# the rate field (msgs_per_s or deliveries_per_s; bytes_per_conn for idle runs). A failed run
# records empty values, so the runs stay aligned for the paired ratios.
run_once() {
    local id=$1 tool=$2 metric=$3 srv=$4
    shift 4
    local key="$id/$tool" pidv="PID_$srv" portv="PORT_$srv" a cmd=() shown=() line
    for a in "$@"; do
        a=${a//@PORT@/${!portv}}
        cmd+=("${a//@PID@/${!pidv}}")
    done
    if [ -z "${RATES[$key]+set}" ]; then
        for a in "$@"; do
            a=${a//@PORT@/PORT}
            a=${a//@PID@/PID}
            shown+=("${a#"$ROOT"/}")
        done
        [ -n "${SHOW:-}" ] && shown=("$SHOW")
        ORDER+=("$id|$tool|$metric|${shown[*]}")
        RATES[$key]= USS[$key]= P50S[$key]= P99S[$key]= OTHERS[$key]=
    fi
    local r= u= p50= p99= o=
    if declare -F "${cmd[0]}" >/dev/null; then # a function of this script, bounded itself
        line=$("${cmd[@]}" 2>"$TMP/load.err" | grep -E '^RESULT |^\{' | tail -1)
    else
        line=$(timeout 120 "${LOAD_CPU[@]}" "${cmd[@]}" 2>"$TMP/load.err" | grep -E '^RESULT |^\{' | tail -1)
    fi
    if [ -z "$line" ] || { [ "$tool" = "wsx bench" ] && [ "$(field "$line" ok)" != true ]; }; then
        echo "  $id ($tool) FAILED: ${cmd[*]}" >&2
        tail -3 "$TMP/load.err" >&2
        FAILED=1
    else
        r=$(field "$line" "$metric" | awk '{ printf "%.0f", $1 }')
        u=$(field "$line" server_us_per_msg)
        o=$(field "$line" other_cpu)
        [ -n "$o" ] || o=$(field "$line" other_cpu_pct)
        o=${o%\%}
        if [ "$tool" = "wsx bench" ]; then
            p50=$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\1/p')
            p99=$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\2/p')
        else
            p50=$(field "$line" lat_us_p50)
            p99=$(field "$line" lat_us_p99)
        fi
    fi
    RATES[$key]+="${r:-_} " USS[$key]+="${u:-_} " P50S[$key]+="${p50:-_} "
    P99S[$key]+="${p99:-_} " OTHERS[$key]+="${o:-_} "
    printf '  run %d  %-4s %-10s %s %s, server %s us/msg\n' "$i" "$id" "$tool" "${r:-FAILED}" \
        "$metric" "${u:--}"
}

vals() { printf '%s\n' $1 | grep -v '^_$'; } # the values of a run list, failed runs left out

# paired A B: the median over runs of A[i]/B[i] (two run lists of the same length).
paired() {
    local -a a=($1) b=($2)
    local i out=()
    for i in "${!a[@]}"; do
        [ "${a[$i]}" != _ ] && [ "${b[$i]:-_}" != _ ] &&
            out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { if (y > 0) printf "%.3f", x / y }')")
    done
    local m
    m=$(median "${out[@]}")
    [ -n "$m" ] && printf '%.2f' "$m" || printf -- -
}

W="-w $WARMUP -d $DURATION"
echo "wsx benchmarks: $RUNS rounds, ${WARMUP} s warm-up + ${DURATION} s measured per run"

# Every round runs each scenario once, the wsx run and its raw TCP ceiling back to back, so a
# phase when the shared machine is slower touches both and the paired ratio stays meaningful.
start_server wsx "${WSX_ECHO[@]}"
start_server raw "$TCP_ECHO" 0
[ -n "$BASE" ] && start_server base "${BASE_ECHO[@]}"
for ((i = 1; i <= RUNS; i++)); do
    if [ -n "$BASE" ]; then
        run_once A base msgs_per_s base "$WSLOAD" -p @PORT@ -c 100 -k 16 -s 32 $W -P @PID@
        run_once C base msgs_per_s base "$WSLOAD" -p @PORT@ -c 10 -k 1 -s 65536 -b $W -P @PID@
        run_once E16 base deliveries_per_s base "$WSLOAD" -m bcast -p @PORT@ -c 1000 -W 16 -s 32 \
            $W -P @PID@
    fi
    run_once A wsload msgs_per_s wsx "$WSLOAD" -p @PORT@ -c 100 -k 16 -s 32 $W -P @PID@
    run_once A raw msgs_per_s raw "$WSLOAD" -m raw -p @PORT@ -c 100 -k 16 -s 32 $W -P @PID@
    run_once A "wsx bench" msgs_per_s wsx "$WSX" bench -c 100 -k 16 -s 32 $W -p @PID@ --json \
        "ws://127.0.0.1:@PORT@/"
    run_once B wsload msgs_per_s wsx "$WSLOAD" -p @PORT@ -c 1000 -k 1 -s 32 $W -P @PID@
    run_once B raw msgs_per_s raw "$WSLOAD" -m raw -p @PORT@ -c 1000 -k 1 -s 32 $W -P @PID@
    run_once C wsload msgs_per_s wsx "$WSLOAD" -p @PORT@ -c 10 -k 1 -s 65536 -b $W -P @PID@
    run_once C raw msgs_per_s raw "$WSLOAD" -m raw -p @PORT@ -c 10 -k 1 -s 65536 -b $W -P @PID@
    run_once E1 wsload deliveries_per_s wsx "$WSLOAD" -m bcast -p @PORT@ -c 1000 -W 1 -s 32 $W \
        -P @PID@
    run_once E16 wsload deliveries_per_s wsx "$WSLOAD" -m bcast -p @PORT@ -c 1000 -W 16 -s 32 $W \
        -P @PID@
done
stop_servers

# D: a fresh server for each run, so its RSS grows from a known start.
for ((i = 1; i <= RUNS; i++)); do
    start_server d "${WSX_ECHO[@]}"
    run_once D wsload bytes_per_conn d "$WSLOAD" -m idle -p @PORT@ -c 10000 -C 256 -T 60 -w 2 \
        -d 1 -P @PID@
    stop_servers
    if [ -n "$BASE" ]; then
        start_server d "${BASE_ECHO[@]}"
        run_once D base bytes_per_conn d "$WSLOAD" -m idle -p @PORT@ -c 10000 -C 256 -T 60 \
            -w 2 -d 1 -P @PID@
        stop_servers
    fi
done

# T1, T2: scaling from 1 to 2 server threads. On a 2-core machine the load generator needs a
# core of its own for A-E, so those cannot show it; full TLS handshakes with an RSA-4096
# certificate can, because the server's part (signing, ~4.5 ms) is several times the
# client's (~0.7 ms with `--insecure`). Server (`wsx echo --threads N`) and client unpinned;
# the rate is handshakes per second of the connect phase (WebSocket upgrade included), the
# server's cost its CPU time per handshake over the run.
hs_run() { # hs_run PORT PID: one connect phase of HS_CONNS connections, as a RESULT line
    local t0 t1 line made secs
    t0=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    # 256 handshakes at once as in the published T runs (wsx bench's default, 32, is the
    # servers' per-address limit; WSX_ECHO lifts it).
    line=$("$WSX" bench --idle "$HS_CONNS" --max-connecting 256 -d 0.1 -w 0 --insecure --json \
        "wss://127.0.0.1:$1/" 2>/dev/null)
    t1=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    made=$(field "$line" connections_made)
    secs=$(field "$line" connect_s)
    [ "$(field "$line" ok)" = true ] && [ -n "$made" ] && [ "$made" -gt 0 ] || return 1
    awk -v m="$made" -v s="$secs" -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "RESULT ok=true handshakes_per_s=%.0f server_us_per_msg=%.0f\n", m / s, d * 1e6 / hz / m }'
}
HS_CONNS=${HS_CONNS:-1000}
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:4096 -nodes -keyout "$TMP/hs.key" -out "$TMP/hs.pem" -days 1 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
    saved_srv=("${SRV_CPU[@]}") saved_load=("${LOAD_CPU[@]}")
    SRV_CPU=() LOAD_CPU=()
    for ((i = 1; i <= RUNS; i++)); do
        for n in 1 2; do
            start_server "t$n" "${WSX_ECHO[@]}" --threads "$n" --tls-cert "$TMP/hs.pem" \
                --tls-key "$TMP/hs.key"
            SHOW="wsx bench --idle $HS_CONNS --max-connecting 256 -d 0.1 -w 0 --insecure --json wss://127.0.0.1:PORT/ against wsx echo --threads $n --tls-cert (RSA-4096), both unpinned" \
                run_once "T$n" "wsx bench" handshakes_per_s "t$n" hs_run @PORT@ @PID@
            stop_servers
        done
    done
    SRV_CPU=("${saved_srv[@]}") LOAD_CPU=("${saved_load[@]}")
else
    echo "  T1, T2 skipped: no openssl command to make the certificate" >&2
fi

# ---- the report ----
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT=$COMMIT-dirty
DATE=$(date -u +%Y-%m-%d)
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/$DATE-$COMMIT.md

{
    echo "# wsx benchmarks, $DATE, commit $COMMIT"
    echo
    echo "- machine: $(nproc) CPUs, ${MODEL:-unknown CPU}, Linux $(uname -r)"
    echo "- server pinned to CPU 1, load generator to CPU 0; ${WARMUP} s warm-up, ${DURATION} s" \
        "measured; median of $RUNS rounds, each running every scenario once (wsx and raw TCP back" \
        "to back)"
    echo "- server: \`wsx echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000 --max-per-ip 0 --max-handshakes-per-ip 0 --max-handshakes 0\`;" \
        "raw ceiling: \`tcp_echo 0\` (bench/tcp_echo.c)"
    echo "- us/msg is the server's CPU time (utime+stime) per message (per delivery for E);" \
        "\"vs raw\" is the median over rounds of wsx / raw TCP echo server in the same round;" \
        "\"other CPU\" is what the rest of the machine used meanwhile (% of one CPU):" \
        "a large value means the run was contended and its msgs/s is not comparable"
    echo
    echo "| scenario | tool | msgs/s | server us/msg | p50 us | p99 us | msgs/s vs raw | us/msg vs raw | other CPU % | runs (msgs/s) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for row in "${ORDER[@]}"; do
        IFS='|' read -r id tool metric cmd <<<"$row"
        key="$id/$tool"
        r=$(median $(vals "${RATES[$key]}"))
        u=$(median $(vals "${USS[$key]}"))
        other=$(median $(vals "${OTHERS[$key]}"))
        runs=$(vals "${RATES[$key]}" | tr '\n' ' ')
        runs=${runs% }
        vr=-; vu=-
        if [ "$tool" != raw ] && [ -n "${RATES[$id/raw]+set}" ]; then
            vr=$(paired "${RATES[$key]}" "${RATES[$id/raw]}")
            vu=$(paired "${USS[$key]}" "${USS[$id/raw]}")
        fi
        if [ "$metric" = bytes_per_conn ]; then
            echo "| $id | $tool | ${r:--} bytes/conn (server RSS) | - | - | - | - | - | ${other:--} | $runs |"
        else
            echo "| $id | $tool | ${r:--} | ${u:--} | $(median $(vals "${P50S[$key]}")) |" \
                "$(median $(vals "${P99S[$key]}")) | $vr | $vu | ${other:--} | $runs |"
        fi
    done
    if [ -n "${RATES[T1/wsx bench]+set}" ] && [ -n "${RATES[T2/wsx bench]+set}" ]; then
        echo
        echo "T1, T2: msgs/s is TLS handshakes per second, us/msg the server's CPU per handshake." \
            "Scaling from 1 to 2 server threads (T2 / T1 handshakes/s, median of the rounds):" \
            "**$(paired "${RATES[T2/wsx bench]}" "${RATES[T1/wsx bench]}")**;" \
            "server CPU per handshake T2 / T1: $(paired "${USS[T2/wsx bench]}" "${USS[T1/wsx bench]}")."
    fi
    if [ -n "$BASE" ]; then
        echo
        echo "Against the base build ($BASE, $(git -C "$BASE/.." rev-parse --short HEAD 2>/dev/null ||
            echo unknown)), same rounds: new / base, the median of per-round ratios" \
            "(us/msg below 1 and msgs/s above 1 favour the new build; D is bytes per connection)."
        echo
        echo "| scenario | msgs/s new / base | us/msg new / base |"
        echo "|---|---:|---:|"
        for id in A C E16 D; do
            [ -n "${RATES[$id/base]+set}" ] || continue
            echo "| $id | $(paired "${RATES[$id/wsload]}" "${RATES[$id/base]}") |" \
                "$(paired "${USS[$id/wsload]}" "${USS[$id/base]}") |"
        done
    fi
    echo
    echo "Commands (PORT and PID are the server's):"
    echo
    for row in "${ORDER[@]}"; do
        IFS='|' read -r id tool metric cmd <<<"$row"
        echo "- $id ($tool): \`$cmd\`"
    done
    [ "$FAILED" = 0 ] || { echo; echo "Some runs FAILED: see the output of bench/run.sh."; }
} >"$OUT"

echo
grep '^|' "$OUT" | column -t -s '|' 2>/dev/null || grep '^|' "$OUT"
echo
echo "written: ${OUT#"$ROOT"/}"
exit "$FAILED"

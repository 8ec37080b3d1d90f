#!/usr/bin/env bash
# Socket.IO side by side (issue 12, "Performance"): the Node.js socket.io 4.8.4 server
# (bench/sio/server.mjs) with its default `ws` engine and with bufferutil, and `wsx sio` when the
# build has it, under the same `wsx bench --mode sio-*` load; plus the plain pub/sub path
# (`wsx echo` /sub and /pub, `wsx bench --mode fanout`) as the baseline of broadcast CPU.
#
#   bench/sio/run.sh [BUILD_DIR]      (default: build; needs BUILD_DIR/wsx)
#
# Servers on CPU 1 (taskset: Node's helper threads too), the load generator on CPU 0,
# 127.0.0.1 only. RUNS rounds (default 3) each run every scenario once against every server,
# the servers side by side, so a slow phase of a shared machine touches all of them; medians
# over rounds, and ratios are the median of per-round ratios. The figure to compare is the
# server's CPU time per event (utime + stime from /proc/PID/stat over the measurement, divided
# by the events acked or the broadcasts delivered: `wsx bench -p`), not events/s.
#
#   SE   sio-echo: 100 clients x 16 events with acks in flight, 32-byte texts
#   SB   sio-broadcast: 1000 clients in a room, one publisher, 16 broadcasts in flight
#   SD   sio-idle: 1000 idle clients on a fresh server, its RSS growth per client
#        (SB and SD: see SB_CLIENTS and IDLE below)
#   P32, P80  the plain pub/sub path: `wsx echo`, as many subscribers as SB, 16 broadcasts of 32 bytes
#        (scenario E16) and of 80 bytes (about the size of SB's frames)
#
# Writes bench/results/DATE-COMMIT-sio.md and prints the same table. Environment:
#   RUNS (3), WARMUP (1), DURATION (3) seconds; SB_CLIENTS (1000) subscribers for SB, IDLE
#   (1000) clients for SD. When `wsx sio` is measured but has no --max-per-ip (it then answers
#   503 past 256 connections from one address), both become 250 for every server, said so in
#   the report.
#   NODE (node) the Node.js binary.
#   SIO_WSX (BUILD_DIR/wsx) the wsx whose `wsx sio` is measured (another build, say); the load
#   generator and `wsx echo` stay BUILD_DIR's; SIO_DESC, what it is built from (for the report).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/sio
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUNS=${RUNS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
IDLE=${IDLE:-1000}
SB_CLIENTS=${SB_CLIENTS:-1000}
NODE=${NODE:-node}
WSX=$BUILD/wsx
SIO_WSX=${SIO_WSX:-$WSX}

die() { echo "bench/sio/run.sh: $*" >&2; exit 1; }

[ -x "$WSX" ] || die "$WSX not found: build first (make build)"
command -v "$NODE" >/dev/null || die "no node command (NODE=...)"
if [ ! -f "$HERE/node_modules/socket.io/package.json" ]; then
    echo "npm ci in bench/sio (the pinned socket.io and bufferutil)"
    (cd "$HERE" && npm ci --no-audit --no-fund) || die "npm ci failed in bench/sio"
fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
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

# start_server NAME COMMAND...: starts it pinned, waits for "listening on ...:PORT/", sets
# PID_NAME and PORT_NAME.
start_server() {
    local name=$1 log=$TMP/server-$1.out pid port=
    shift
    : >"$log"
    "${SRV_CPU[@]}" "$@" >"$log" 2>"$TMP/server-$name.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
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

# The servers, by name: the command that starts each and what the report calls it.
SERVERS=(node node_bu)
declare -A CMD LABEL
CMD[node]="$NODE $HERE/server.mjs --host 127.0.0.1 --port 0 --engine ws"
LABEL[node]="Node socket.io 4.8.4 (ws)"
CMD[node_bu]="$NODE $HERE/server.mjs --host 127.0.0.1 --port 0 --engine bufferutil"
LABEL[node_bu]="Node socket.io 4.8.4 (ws + bufferutil)"
if "$SIO_WSX" sio --help >/dev/null 2>&1; then
    # Every load generator connects from 127.0.0.1: per-address admission limits are lifted
    # where `wsx sio` has them (as bench/run.sh does for `wsx echo`); connection state
    # recovery is off, as in server.mjs (it adds an offset to every broadcast and keeps them);
    # logs are quiet, as for `wsx echo`.
    extra=
    help=$("$SIO_WSX" sio --help 2>&1)
    for o in "--max-connections 20000" "--max-per-ip 0" "--max-handshakes-per-ip 0" \
        "--max-handshakes 0" "--max-sessions 20000" "--max-sessions-per-ip 20000" \
        "--recovery 0" "--quiet"; do
        grep -qE -- "${o%% *}([^-a-z]|$)" <<<"$help" && extra+=" $o"
    done
    CMD[wsx]="$SIO_WSX sio --host 127.0.0.1 --port 0$extra"
    LABEL[wsx]="wsx sio"
    SERVERS+=(wsx)
    if ! grep -qE -- "--max-per-ip([^-a-z]|$)" <<<"$help" && { [ "$SB_CLIENTS" -gt 250 ] || [ "$IDLE" -gt 250 ]; }; then
        LIMITED="\`wsx sio\` has no --max-per-ip, so it answers 503 past 256 connections from one address (every client here is 127.0.0.1): SB and SD ran with 250 clients for every server instead of $SB_CLIENTS and $IDLE"
        echo "warning: ${LIMITED//\`/}" >&2
        [ "$SB_CLIENTS" -gt 250 ] && SB_CLIENTS=250
        [ "$IDLE" -gt 250 ] && IDLE=250
    fi
else
    echo "wsx sio: not in this build ($SIO_WSX sio --help failed): its rows are skipped" >&2
fi
WSX_ECHO=("$WSX" echo --host 127.0.0.1 --port 0 --quiet --max-connections 20000 --max-per-ip 0
    --max-handshakes-per-ip 0 --max-handshakes 0)

# field JSON KEY: the value of "KEY": in a JSON line ("" for null).
field() {
    local v
    v=$(printf '%s\n' "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\"://p" | head -1)
    [ "$v" = null ] && v=
    printf '%s' "${v//\"/}"
}
median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
vals() { printf '%s\n' $1 | grep -v '^_$'; }
paired() { # paired A B: the median over rounds of A[i]/B[i]
    local -a a=($1) b=($2)
    local i out=() m
    for i in "${!a[@]}"; do
        [ "${a[$i]}" != _ ] && [ "${b[$i]:-_}" != _ ] &&
            out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { if (y > 0) printf "%.4f", x / y }')")
    done
    m=$(median "${out[@]}")
    [ -n "$m" ] && printf '%.2f' "$m" || printf -- -
}

FAILED=0
ORDER=()
declare -A RATES USS P50S P99S OTHERS BPC SHOWN

# run_once ID SERVER METRIC BENCH-ARGS...: one `wsx bench` run pinned to the load CPU against
# the running server SERVER; METRIC is the rate field (msgs_per_s, deliveries_per_s, or
# server_bytes_per_conn for idle runs). A failed run records "_", so rounds stay aligned.
run_once() {
    local id=$1 srv=$2 metric=$3
    shift 3
    local key="$id/$srv" pidv="PID_$srv" portv="PORT_$srv" line r= u= p50= p99= o= ok
    local cmd=("$WSX" bench "$@" -p "${!pidv}" --json "ws://127.0.0.1:${!portv}/")
    if [ -z "${SHOWN[$key]+set}" ]; then
        ORDER+=("$key")
        SHOWN[$key]="wsx bench $* -p PID --json ws://127.0.0.1:PORT/"
        RATES[$key]= USS[$key]= P50S[$key]= P99S[$key]= OTHERS[$key]= BPC[$key]=
    fi
    line=$(timeout 120 "${LOAD_CPU[@]}" "${cmd[@]}" 2>"$TMP/load.err" | grep '^{' | tail -1)
    ok=$(field "$line" ok)
    if [ "$ok" != true ]; then
        echo "  $id ($srv) FAILED: ${cmd[*]}" >&2
        [ -n "$line" ] && echo "    first error: $(field "$line" first_error)" >&2
        tail -3 "$TMP/load.err" >&2
        FAILED=1
    else
        r=$(field "$line" "$metric" | awk '{ printf "%.0f", $1 }')
        u=$(field "$line" server_us_per_msg)
        o=$(field "$line" other_cpu_pct)
        p50=$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\1/p')
        p99=$(printf '%s' "$line" | sed -n 's/.*"latency_us":{"p50":\([0-9.]*\),.*"p99":\([0-9.]*\),.*/\2/p')
    fi
    RATES[$key]+="${r:-_} " USS[$key]+="${u:-_} " P50S[$key]+="${p50:-_} "
    P99S[$key]+="${p99:-_} " OTHERS[$key]+="${o:-_} "
    printf '  round %d  %-4s %-8s %s %s, server %s us/event\n' "$i" "$id" "$srv" "${r:-FAILED}" \
        "$metric" "${u:--}"
}

W=(-w "$WARMUP" -d "$DURATION")
echo "Socket.IO benchmarks: $RUNS rounds, ${WARMUP} s warm-up + ${DURATION} s measured per run;" \
    "servers: ${SERVERS[*]} and wsx echo (plain pub/sub)"

for s in "${SERVERS[@]}"; do
    # shellcheck disable=SC2086
    start_server "$s" ${CMD[$s]}
done
start_server plain "${WSX_ECHO[@]}"
for ((i = 1; i <= RUNS; i++)); do
    for s in "${SERVERS[@]}"; do
        run_once SE "$s" msgs_per_s --mode sio-echo -c 100 -k 16 -s 32 "${W[@]}"
        run_once SB "$s" deliveries_per_s --mode sio-broadcast -c "$SB_CLIENTS" -k 16 -s 32 "${W[@]}"
    done
    run_once P32 plain deliveries_per_s --mode fanout -c "$SB_CLIENTS" -k 16 -s 32 "${W[@]}"
    run_once P80 plain deliveries_per_s --mode fanout -c "$SB_CLIENTS" -k 16 -s 80 "${W[@]}"
done
stop_servers

# SD: a fresh server for each run, so its RSS grows from a known start.
for ((i = 1; i <= RUNS; i++)); do
    for s in "${SERVERS[@]}"; do
        # shellcheck disable=SC2086
        start_server "$s" ${CMD[$s]}
        run_once SD "$s" server_bytes_per_conn --mode sio-idle -c "$IDLE" -w 2 -d 1
        stop_servers
    done
done

# ---- the report ----
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT=$COMMIT-dirty
DATE=$(date -u +%Y-%m-%d)
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/$DATE-$COMMIT-sio.md
label() { case $1 in plain) echo "wsx echo (plain pub/sub)" ;; *) echo "${LABEL[$1]}" ;; esac; }

{
    echo "# Socket.IO benchmarks, $DATE, commit $COMMIT"
    echo
    echo "- machine: $(nproc) CPUs, ${MODEL:-unknown CPU}, Linux $(uname -r); node $("$NODE" --version)"
    if [ -n "${LABEL[wsx]+set}" ] && [ "$SIO_WSX" != "$WSX" ]; then
        echo "- wsx sio: \`$SIO_WSX\`${SIO_DESC:+, $SIO_DESC} (the load generator and wsx echo: \`${WSX#"$ROOT"/}\`)"
    fi
    [ -n "${LIMITED:-}" ] && echo "- **$LIMITED**"
    echo "- servers pinned to CPU 1, \`wsx bench\` to CPU 0; ${WARMUP} s warm-up, ${DURATION} s" \
        "measured; median of $RUNS rounds, each running every scenario once against every server" \
        "(side by side; SD on a fresh server per run)"
    echo "- us/event: the server's CPU time (utime+stime, /proc/PID/stat) per acked event (SE) or" \
        "per delivery (SB, P); \"vs Node\": the median over rounds of this server / Node (ws) in" \
        "the same round (below 1 is cheaper); \"other CPU\": what the rest of the machine used" \
        "meanwhile (% of one CPU)"
    echo
    echo "| scenario | server | events/s | server us/event | p50 us | p99 us | us/event vs Node (ws) | other CPU % | runs (events/s) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    for key in "${ORDER[@]}"; do
        id=${key%%/*} srv=${key#*/}
        r=$(median $(vals "${RATES[$key]}"))
        u=$(median $(vals "${USS[$key]}"))
        other=$(median $(vals "${OTHERS[$key]}"))
        runs=$(vals "${RATES[$key]}" | tr '\n' ' ')
        vs=-
        [ "$srv" != node ] && [ -n "${USS[$id/node]+set}" ] && vs=$(paired "${USS[$key]}" "${USS[$id/node]}")
        if [ "$id" = SD ]; then
            echo "| $id | $(label "$srv") | ${r:--} bytes/client (server RSS) | - | - | - |" \
                "$(paired "${RATES[$key]}" "${RATES[SD/node]}") (bytes) | ${other:--} | ${runs% } |"
        else
            echo "| $id | $(label "$srv") | ${r:--} | ${u:--} | $(median $(vals "${P50S[$key]}")) |" \
                "$(median $(vals "${P99S[$key]}")) | $vs | ${other:--} | ${runs% } |"
        fi
    done
    echo
    echo "Against the goals of issue 12 (ratios of the same rounds):"
    echo
    for s in "${SERVERS[@]}"; do
        [ "$s" = node ] && continue
        for base in node node_bu; do
            [ "$s" = "$base" ] && continue
            echo "- $(label "$s"): SE CPU per event, $(label $base) / this:" \
                "$(paired "${USS[SE/$base]}" "${USS[SE/$s]}")x; SB CPU per delivery:" \
                "$(paired "${USS[SB/$base]}" "${USS[SB/$s]}")x (goal for wsx sio: >= 10 for both)"
        done
    done
    for s in "${SERVERS[@]}"; do
        echo "- $(label "$s"): SB CPU per delivery / plain pub/sub: vs P32" \
            "$(paired "${USS[SB/$s]}" "${USS[P32/plain]}"), vs P80 $(paired "${USS[SB/$s]}" "${USS[P80/plain]}")" \
            "(goal for wsx sio: <= 1.5); SD bytes per idle client: $(median $(vals "${RATES[SD/$s]}"))" \
            "(goal for wsx sio: < 1024)"
    done
    [ -n "${LABEL[wsx]+set}" ] || echo "- wsx sio: not measured (\`${SIO_WSX#"$ROOT"/} sio\` is not in this build)"
    echo
    echo "Servers:"
    echo
    for s in "${SERVERS[@]}"; do
        echo "- $(label "$s"): \`taskset -c 1 ${CMD[$s]#"$ROOT"/}\`" | sed "s|$ROOT/||g"
    done
    echo "- wsx echo (plain pub/sub): \`taskset -c 1 ${WSX_ECHO[*]}\`" | sed "s|$ROOT/||g"
    echo
    echo "Load (\`taskset -c 0\`; PORT and PID are the server's):"
    echo
    seen=
    for key in "${ORDER[@]}"; do
        id=${key%%/*}
        case " $seen " in *" $id "*) continue ;; esac
        seen+=" $id"
        echo "- $id: \`${SHOWN[$key]}\`"
    done
    [ "$FAILED" = 0 ] || { echo; echo "Some runs FAILED: see the output of bench/sio/run.sh."; }
} >"$OUT"

echo
grep '^|' "$OUT" | column -t -s '|' 2>/dev/null || grep '^|' "$OUT"
echo
grep '^- .*goal' "$OUT"
echo
echo "written: ${OUT#"$ROOT"/}"
exit "$FAILED"

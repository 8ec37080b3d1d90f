#!/bin/sh
# Runs every libFuzzer target built in $1 for $2 seconds on its seed corpus (a copy, so the
# committed corpus is not changed), $3 targets at a time (default: the number of CPUs; each
# target still gets its full $2 seconds). Exits non-zero if any target finds a crash.
set -eu
build=${1:-build-fuzz}
secs=${2:-20}
jobs=${3:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1

# One target: its report line (and the log's tail on a failure) in $build/fuzz_NAME.out,
# exit status 1 on a failure.
one() {
    f=$1
    name=$(basename "$f" | sed 's/^fuzz_//')
    work=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
    rc=0
    if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/" \
        "$work" >"$build/fuzz_$name.log" 2>&1; then
        printf 'fuzz %-10s %ss ... ok (%s runs)\n' "$name" "$secs" \
            "$(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/fuzz_$name.log" | awk '{print $2}')"
    else
        printf 'fuzz %-10s %ss ... FAILED (see %s)\n' "$name" "$secs" "$build/fuzz_$name.log"
        tail -30 "$build/fuzz_$name.log"
        rc=1
    fi
    rm -rf "$work"
    return $rc
}

status=0
pids=""
for f in "$build"/fuzz_*; do
    [ -x "$f" ] && [ -f "$f" ] || continue
    name=$(basename "$f" | sed 's/^fuzz_//')
    one "$f" >"$build/fuzz_$name.out" 2>&1 &
    pids="$pids $!:$name"
    # At most $jobs at once: wait for the oldest before starting another.
    set -- $pids
    if [ $# -ge "$jobs" ]; then
        p=${1%%:*}
        n=${1#*:}
        wait "$p" || status=1
        cat "$build/fuzz_$n.out"
        shift
        pids="$*"
    fi
done
for pn in $pids; do
    p=${pn%%:*}
    n=${pn#*:}
    wait "$p" || status=1
    cat "$build/fuzz_$n.out"
done
exit $status

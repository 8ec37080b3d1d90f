#!/bin/sh
# Runs every libFuzzer target built in $1 for $2 seconds on its seed corpus (a copy, so the
# committed corpus is not changed). Exits non-zero if any target finds a crash.
set -eu
build=${1:-build-fuzz}
secs=${2:-20}
status=0
for f in "$build"/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f" | sed 's/^fuzz_//')
    work=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
    printf 'fuzz %-10s %ss ... ' "$name" "$secs"
    if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/" \
        "$work" >"$build/fuzz_$name.log" 2>&1; then
        echo "ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/fuzz_$name.log" |
            awk '{print $2}') runs)"
    else
        echo "FAILED (see $build/fuzz_$name.log)"
        tail -30 "$build/fuzz_$name.log"
        status=1
    fi
    rm -rf "$work"
done
exit $status

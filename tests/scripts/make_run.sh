#!/bin/sh
# `make run` builds the wsx target alone (not the tests and benchmarks), then starts it.
# Checked on `make -n` (nothing is built or run): every cmake --build line names --target wsx.
set -eu
cd "$(dirname "$0")/../.."
out=$(make -n run BUILD=build-make-run-test PORT=1)
builds=$(printf '%s\n' "$out" | grep -c 'cmake --build' || true)
narrow=$(printf '%s\n' "$out" | grep 'cmake --build' | grep -c -- '--target wsx$' || true)
if [ "$builds" -lt 1 ] || [ "$builds" -ne "$narrow" ]; then
    echo "make run should build only --target wsx; make -n run prints:" >&2
    printf '%s\n' "$out" >&2
    exit 1
fi
printf '%s\n' "$out" | grep -q 'scripts/run.sh build-make-run-test 1' ||
    { echo "make run does not start scripts/run.sh" >&2; exit 1; }
printf '%s\n' "$out" | grep -q 'scripts/deps.sh build' ||
    { echo "make run no longer installs missing packages" >&2; exit 1; }
echo "ok: make run builds only wsx"

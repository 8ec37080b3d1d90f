#!/bin/sh
# `make run`: starts the server on PORT (default 8080) until Ctrl-C.
set -eu
build=${1:-build}
port=${2:-8080}
echo "wsx: starting the echo server on port $port (Ctrl-C stops it)"
exec "$build/wsx" echo --port "$port"

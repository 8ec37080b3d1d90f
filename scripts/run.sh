#!/bin/sh
# `make run`: the chat server on PORT (default 8080) until Ctrl-C.
set -eu
build=${1:-build}
port=${2:-8080}
echo "wsx: chat server on http://localhost:$port/ (Ctrl-C stops it)"
exec "$build/wsx" serve --port "$port"

#!/bin/sh
# `make run`: the chat server on HOST:PORT (default 127.0.0.1:8080, this machine only) until
# Ctrl-C. HOST= (empty) listens on every interface, reachable from the network.
# wsx serve prints its "listening on" lines once it listens; nothing is printed before, so
# a busy port shows only the error.
set -eu
build=${1:-build}
port=${2:-8080}
host=${3-127.0.0.1}
exec "$build/wsx" serve --host "$host" --port "$port"

#!/bin/sh
# Installs the pinned npm packages of the Socket.IO tests (tests/socketio/package-lock.json:
# socket.io-client, engine.io-client, and the reference server socket.io).
# Runs `npm ci` only when node_modules is missing or older than the lockfile, so repeated
# test runs cost nothing and never touch the network.
set -eu
cd "$(dirname "$0")"
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ]; then
    echo "setup: node_modules is up to date"
    exit 0
fi
echo "setup: npm ci (node_modules missing or older than package-lock.json)"
npm ci --no-audit --no-fund
touch "$stamp"

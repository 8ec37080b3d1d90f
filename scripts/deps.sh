#!/bin/sh
# Installs the Debian packages wsx needs, when they are missing.
#   scripts/deps.sh build   compiler, cmake, OpenSSL, zlib, jansson, hiredis and msgpack headers (for `make`)
#   scripts/deps.sh test    the above plus the test peers (python3-socketio, redis-server) and tools (for `make check`; groff
#                           and man check the manual page)
#   scripts/deps.sh fuzz    the above plus clang's libFuzzer runtime (for `make fuzz`)
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
set -eu
what=${1:-build}

pkgs="gcc make cmake pkg-config libssl-dev zlib1g-dev libjansson-dev libhiredis-dev libmsgpack-dev"
case "$what" in
build) ;;
test) pkgs="$pkgs python3 python3-websockets python3-socketio python3-requests python3-websocket python3-prometheus-client redis-server nodejs npm valgrind openssl chromium groff-base man-db" ;;
fuzz) pkgs="$pkgs clang libclang-rt-dev" ;;
*) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    # A command that is already on PATH (node from another source, say) counts as present.
    case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "wsx: missing packages:$missing" >&2
    echo "wsx: install them with: sudo apt-get update && sudo $cmd" >&2
    exit 1
fi
echo "wsx: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once if the install fails.
apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; }

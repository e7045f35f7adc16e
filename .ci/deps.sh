#!/bin/sh
# Install the Debian packages switchyard needs, if any are missing.
#   .ci/deps.sh build   what `make` needs
#   .ci/deps.sh test    what `make test` needs as well
# Runs apt-get as root, or through sudo; otherwise says what to install.
set -eu

build_pkgs="gcc make pkg-config luajit libluajit-5.1-dev libevent-dev libhiredis-dev
            libprotobuf-c-dev protobuf-c-compiler libsnappy-dev"
test_pkgs="libcmocka-dev lua-busted redis-server memcached graphite-carbon python3-whisper
           clang libclang-rt-14-dev valgrind luarocks procps chromium
           prometheus victoria-metrics"

want=$build_pkgs
[ "${1:-build}" = test ] && want="$build_pkgs $test_pkgs"

missing=""
# Node.js may come from elsewhere than Debian (and Debian's npm conflicts
# with such a node): what the tests need is the two commands.
if [ "${1:-build}" = test ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    missing="nodejs npm"
fi
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "switchyard: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "switchyard: these packages are missing and I am neither root nor allowed to sudo:" >&2
    echo "    apt-get install$missing" >&2
    echo "Install them (as root), then run make again." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

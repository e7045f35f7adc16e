#!/bin/sh
# Install the Debian packages switchyard needs, if any are missing.
#   .ci/deps.sh build   what `make` needs
#   .ci/deps.sh test    what `make test` needs as well
# Runs apt-get as root, or through sudo; otherwise says what to install.
set -eu

build_pkgs="gcc make pkg-config luajit libluajit-5.1-dev libevent-dev libhiredis-dev
            libprotobuf-c-dev protobuf-c-compiler libsnappy-dev"
test_pkgs="libcmocka-dev lua-busted redis-server memcached graphite-carbon python3-whisper
           clang libclang-rt-14-dev valgrind luarocks procps chromium podman runc locales lintian
           influxdb prometheus victoria-metrics"

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
# test_numfmt checks number parsing under a locale whose decimal point is
# a comma, and fails without one: generate de_DE.UTF-8 (the locales
# package has its definition; Debian ships none compiled).
need_locale=""
if [ "${1:-build}" = test ] && ! locale -a 2>/dev/null | grep -qiE '^de_DE\.utf-?8$'; then
    need_locale=de_DE.UTF-8
fi
[ -z "$missing" ] && [ -z "$need_locale" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "switchyard: neither root nor allowed to sudo; as root, run:" >&2
    [ -n "$missing" ] && echo "    apt-get install$missing" >&2
    [ -n "$need_locale" ] && echo "    localedef -i de_DE -f UTF-8 de_DE.UTF-8" >&2
    echo "then run make again." >&2
    exit 1
fi
if [ -n "$missing" ]; then
    echo "switchyard: installing missing Debian packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$need_locale" ]; then
    echo "switchyard: generating the locale $need_locale" >&2
    $SUDO localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi

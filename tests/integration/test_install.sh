#!/bin/bash
# Integration test: `make install`, and a sink plugin built out of tree
# against the installed header only.
#
#   1. make install DESTDIR=$tmp/dest PREFIX=/usr: every file where it
#      belongs, the pkg-config file naming /usr (not the staging dir);
#   2. the jsonl example (plugins/examples/jsonl) built from a copy, with
#      nothing but `pkg-config --cflags switchyard-sink` pointed into the
#      staging dir (PKG_CONFIG_PATH + PKG_CONFIG_SYSROOT_DIR);
#   3. the staged switchyard runs a config whose pluginPath is where
#      jsonl.so was built: a gauge, a raw sample and a name that needs JSON
#      escaping come out as the expected JSON lines;
#   4. a plugin whose descriptor says ABI major + 1, or is too small, is
#      refused with the message that says to rebuild it;
#   5. make install PREFIX=$tmp/prefix (no DESTDIR) after a plain `make`:
#      the installed binary, run from PREFIX/bin with no environment, finds
#      its plugins and Lua library; the example's `make install` puts
#      jsonl.so into that plugin directory and the config needs no
#      pluginPath; make uninstall removes switchyard's files.
#
# With SY_BIN=.../build-san/switchyard the install is made from the
# sanitizer build (the same make variables as `make san`).
#
# Prints `test_install: N passed, M failed` last; exits non-zero on failure.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
NAME=test_install
passed=0
failed=0
pids=()

tmp=$(mktemp -d /tmp/sy-install.XXXXXX)
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ "${SY_KEEP_TMP:-}" = 1 ]; then
        echo "keeping temp dir $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# check LABEL CMD...: tests/lib/check.sh
. "$(dirname "$0")/../lib/check.sh"

finish() {
    if [ $((passed + failed)) -eq 0 ]; then
        failed=1
        echo "no check ran"
    fi
    echo "$NAME: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until something accepts on 127.0.0.1:PORT (5 s).
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# send PORT TEXT: one TCP connection, closed after the text.
send() {
    printf '%s' "$2" >"/dev/tcp/127.0.0.1/$1"
}

# wait_file FILE PATTERN: until a line of FILE matches PATTERN (10 s).
wait_file() {
    for _ in $(seq 200); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# stop PID: SIGTERM, and wait for it.
stop() {
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# run_make LOG ARGS...: make in the repository, with the build's variables.
run_make() {
    local log=$1; shift
    make --no-print-directory "${make_vars[@]}" "$@" >"$log" 2>&1
}

# The make variables of the build under test.
make_vars=()
case "${SY_BIN:-}" in
*build-san/switchyard)
    make_vars=(BUILD=build-san OPT=-O1
               "SANFLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined")
    ;;
esac

cd "$REPO" || exit 1
unset SWITCHYARD_PLUGIN_DIR SWITCHYARD_LUA_DIR

# ---------------------------------------------------------------------
# 1. make install DESTDIR=... PREFIX=/usr
# ---------------------------------------------------------------------
dest=$tmp/dest
DETAIL=$tmp/install-dest.log
check "make install DESTDIR=\$tmp PREFIX=/usr succeeds" \
    run_make "$tmp/install-dest.log" install DESTDIR="$dest" PREFIX=/usr || finish
for f in bin/switchyard lib/libswitchyard.so include/switchyard_sink.h \
         lib/pkgconfig/switchyard-sink.pc \
         lib/switchyard/plugins/console.so lib/switchyard/plugins/graphite.so \
         lib/switchyard/plugins/repeater.so \
         share/switchyard/lua/switchyard/config.lua share/switchyard/lua/switchyard/route.lua; do
    check "installed: /usr/$f" test -s "$dest/usr/$f"
done
if [ -d lua/switchyard/examples ]; then
    check "installed: the Lua examples" \
        test -d "$dest/usr/share/switchyard/lua/switchyard/examples"
fi
check "installed: switchyard is executable" test -x "$dest/usr/bin/switchyard"
check "switchyard-sink.pc says prefix=/usr (not the staging dir)" \
    grep -qx 'prefix=/usr' "$dest/usr/lib/pkgconfig/switchyard-sink.pc"
check "switchyard-sink.pc has no @PLACEHOLDER@ left" \
    bash -c "! grep -q @ '$dest/usr/lib/pkgconfig/switchyard-sink.pc'"

# ---------------------------------------------------------------------
# 2. the jsonl example, built against the staged header only
# ---------------------------------------------------------------------
export PKG_CONFIG_PATH=$dest/usr/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags switchyard-sink 2>&1)
check "pkg-config --cflags switchyard-sink points into the staging dir ($cflags)" \
    test "$(echo $cflags)" = "-I$dest/usr/include"
check "pkg-config --modversion is the Makefile's VERSION" \
    test "$(pkg-config --modversion switchyard-sink)" = \
         "$(sed -n 's/^VERSION *:= *//p' Makefile)"
jdir=$tmp/jsonl
cp -r plugins/examples/jsonl "$jdir"
rm -f "$jdir/jsonl.so"
DETAIL=$tmp/jsonl-build.log
check "the jsonl example builds with its own Makefile against the installed header" \
    bash -c "make -C '$jdir' >'$tmp/jsonl-build.log' 2>&1 && test -s '$jdir/jsonl.so'"
check "its build used the staged header, not the repository's" \
    bash -c "grep -q -- '-I$dest/usr/include' '$tmp/jsonl-build.log' && ! grep -q -- '-I[^ ]*plugins ' '$tmp/jsonl-build.log'"
check "jsonl.so exports the descriptor symbol switchyard_sink" \
    bash -c "nm -D --defined-only '$jdir/jsonl.so' | grep -qw switchyard_sink"

# ---------------------------------------------------------------------
# 3. the staged switchyard runs the jsonl sink from pluginPath
# ---------------------------------------------------------------------
port=$(free_port)
out=$tmp/out.jsonl
cat >"$tmp/jsonl.lua" <<EOF
local route = require "switchyard.route"
return {
  listen = { "tcp://127.0.0.1:$port" },
  flushInterval = 1000,
  keyNameSanitize = false,
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  pluginPath = "$jdir",
  sinks = { j = { plugin = "jsonl", path = "$out", fsync = true } },
  routes = { route.prefix "raw." :passthrough "j", route.default() :to "j" },
}
EOF
DETAIL=$tmp/check.log
check "switchyard --check accepts the config with the jsonl plugin" \
    bash -c "SWITCHYARD_LUA_DIR='$dest/usr/share/switchyard/lua' '$dest/usr/bin/switchyard' --check '$tmp/jsonl.lua' >'$tmp/check.log' 2>&1"
SWITCHYARD_LUA_DIR=$dest/usr/share/switchyard/lua \
    "$dest/usr/bin/switchyard" -c "$tmp/jsonl.lua" >"$tmp/jsonl-run.log" 2>&1 &
pid=$!
pids+=("$pid")
DETAIL=$tmp/jsonl-run.log
if check "the staged switchyard starts with the jsonl sink" wait_port "$port" "$pid"; then
    send "$port" $'inst.gauge:42|g\nraw.timer:12|ms|@0.5|#env:prod\nraw.odd:1|c|#q:"a\\b"\tz\xc3\xa9\xff\n'
    DETAIL=$tmp/jsonl-run.log
    check "the flushed gauge reaches the file" wait_file "$out" '"stats.gauges.inst.gauge"'
    wait_file "$out" 'raw.odd' >/dev/null
    stop "$pid"
    cp "$out" "$tmp/out.copy" 2>/dev/null
    DETAIL=$out
    check "every line of the file is a JSON object" /usr/bin/python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    assert isinstance(json.loads(line), dict); n += 1
assert n > 0' "$out"
    check 'the gauge line is {"name":"stats.gauges.inst.gauge","value":42,"ts":<now>}' \
        /usr/bin/python3 -c '
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
g = [r for r in rows if r.get("name") == "stats.gauges.inst.gauge"]
assert g and set(g[0]) == {"name", "value", "ts"}, g
assert g[0]["value"] == 42 and isinstance(g[0]["ts"], int), g
assert abs(g[0]["ts"] - time.time()) < 120, g' "$out"
    check 'the raw sample line is {"sample":"raw.timer;env=prod","value":"12","type":"ms","rate":0.5,"tags":"env:prod"}' \
        /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = {"sample": "raw.timer;env=prod", "value": "12", "type": "ms", "rate": 0.5, "tags": "env:prod"}
assert want in rows, [r for r in rows if "sample" in r]' "$out"
    check 'tags with ", \, a tab, UTF-8 and a stray byte are escaped: q:"a\b"<TAB>z\u00e9\ufffd' \
        /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
odd = [r for r in rows if r.get("sample", "").startswith("raw.odd")]
assert odd and odd[0]["tags"] == "q:\"a\\b\"\tz\u00e9\ufffd", odd' "$out"
fi

# ---------------------------------------------------------------------
# 4. a plugin built for another ABI is refused, with "rebuild"
# ---------------------------------------------------------------------
bad=$tmp/badabi
mkdir -p "$bad"
cat >"$bad/badabi.c" <<'EOF'
/* A descriptor claiming the next ABI major (or, with SMALL, a struct too
 * small for this host): switchyard must refuse to load it. */
#include <switchyard_sink.h>

static int b_init(const sy_host_api *api, sy_host *host, void **state, char *err, size_t n)
{
    (void)api; (void)host; (void)err; (void)n;
    *state = 0;
    return 0;
}
static sy_status b_write(void *state, const sy_metric_batch *b) { (void)state; (void)b; return SY_OK; }
static sy_status b_flush(void *state, int final) { (void)state; (void)final; return SY_OK; }
static void b_close(void *state) { (void)state; }

SY_SINK_EXPORT = {
#ifdef SMALL
    .abi_major = SY_SINK_ABI_MAJOR,
    .struct_size = 16,
#else
    .abi_major = SY_SINK_ABI_MAJOR + 1,
    .struct_size = (uint32_t)sizeof(sy_sink_plugin),
#endif
    .abi_minor = 0,
    .name = "badabi",
    .init = b_init, .write = b_write, .flush = b_flush, .close = b_close,
};
EOF
DETAIL=$tmp/badabi-build.log
check "a plugin claiming ABI major + 1 compiles against the installed header" \
    bash -c "cc -std=c11 -Wall -fPIC -fvisibility=hidden $cflags -shared -o '$bad/badabi.so' '$bad/badabi.c' >'$tmp/badabi-build.log' 2>&1 &&
             cc -std=c11 -Wall -fPIC -fvisibility=hidden -DSMALL $cflags -shared -o '$bad/smallabi.so' '$bad/badabi.c' >>'$tmp/badabi-build.log' 2>&1"
for plugin in badabi smallabi; do
    cat >"$tmp/$plugin.lua" <<EOF
return {
  listen = { "tcp://127.0.0.1:$(free_port)" },
  pluginPath = "$bad",
  sinks = { x = { plugin = "$plugin" } },
}
EOF
    SWITCHYARD_LUA_DIR=$dest/usr/share/switchyard/lua \
        "$dest/usr/bin/switchyard" --check "$tmp/$plugin.lua" >"$tmp/$plugin.log" 2>&1
    rc=$?
    DETAIL=$tmp/$plugin.log
    check "$plugin: switchyard --check refuses it (exit $rc)" test "$rc" -ne 0
    DETAIL=$tmp/$plugin.log
    check "$plugin: the message says to rebuild against switchyard_sink.h" \
        grep -q "rebuild the plugin against the installed switchyard_sink.h" "$tmp/$plugin.log"
done
DETAIL=$tmp/badabi-run.log
check "badabi: switchyard -c refuses to start with it" bash -c "
    SWITCHYARD_LUA_DIR='$dest/usr/share/switchyard/lua' timeout 10 '$dest/usr/bin/switchyard' \
        -c '$tmp/badabi.lua' >'$tmp/badabi-run.log' 2>&1
    rc=\$?; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && grep -q rebuild '$tmp/badabi-run.log'"
unset PKG_CONFIG_SYSROOT_DIR

# ---------------------------------------------------------------------
# 5. a plain install under a PREFIX other than the build's
# ---------------------------------------------------------------------
prefix=$tmp/prefix
DETAIL=$tmp/install-prefix.log
check "make install PREFIX=\$tmp/prefix succeeds (after a build with the default PREFIX)" \
    run_make "$tmp/install-prefix.log" install PREFIX="$prefix" || finish
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
plugindir=$(pkg-config --variable=plugindir switchyard-sink)
check "pkg-config --variable=plugindir is PREFIX/lib/switchyard/plugins" \
    test "$plugindir" = "$prefix/lib/switchyard/plugins"
make -C "$jdir" clean >/dev/null 2>&1
DETAIL=$tmp/jsonl-install.log
check "the example's make install puts jsonl.so into that plugin directory" \
    bash -c "make -C '$jdir' install >'$tmp/jsonl-install.log' 2>&1 && test -s '$plugindir/jsonl.so'"
port=$(free_port)
out2=$tmp/out2.jsonl
cat >"$tmp/prefix.lua" <<EOF
local route = require "switchyard.route"
return {
  listen = { "tcp://127.0.0.1:$port" },
  flushInterval = 1000,
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  sinks = { j = { plugin = "jsonl", path = "$out2" },
            c = { plugin = "console", path = "$tmp/console.out" } },
  routes = { route.default() :to { "j", "c" } },
}
EOF
(cd / && exec env -u SWITCHYARD_PLUGIN_DIR -u SWITCHYARD_LUA_DIR \
    "$prefix/bin/switchyard" -c "$tmp/prefix.lua" >"$tmp/prefix-run.log" 2>&1) &
pid=$!
pids+=("$pid")
DETAIL=$tmp/prefix-run.log
if check "PREFIX/bin/switchyard starts with no environment (finds Lua and plugins)" \
        wait_port "$port" "$pid"; then
    send "$port" $'prefix.gauge:7|g\n'
    DETAIL=$tmp/prefix-run.log
    check "jsonl from the default plugin directory writes the gauge" \
        wait_file "$out2" '"stats.gauges.prefix.gauge","value":7'
    check "the built-in console plugin is found there too" \
        wait_file "$tmp/console.out" 'stats.gauges.prefix.gauge 7 '
fi
stop "$pid"
DETAIL=$tmp/uninstall.log
check "make uninstall PREFIX=\$tmp/prefix removes switchyard's files" bash -c "
    make --no-print-directory uninstall PREFIX='$prefix' >'$tmp/uninstall.log' 2>&1 &&
    ! test -e '$prefix/bin/switchyard' && ! test -e '$prefix/include/switchyard_sink.h' &&
    ! test -e '$prefix/lib/switchyard/plugins/console.so' &&
    ! test -e '$prefix/lib/pkgconfig/switchyard-sink.pc' &&
    ! test -e '$prefix/share/switchyard/lua/switchyard/route.lua'"
check "make uninstall leaves a plugin it did not install (jsonl.so)" test -s "$plugindir/jsonl.so"

finish

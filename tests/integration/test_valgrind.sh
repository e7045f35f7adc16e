#!/bin/bash
# Integration test: a smoke run of the plain build under valgrind's
# memcheck.  The daemon (build/switchyard, or $SY_BIN) runs under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
# with UDP and TCP listeners (one of them with token auth), a console sink
# writing to a file, a graphite sink whose carbon never answers (its queue
# is still full at exit), Lua routing rules, the management console and
# the HTTP endpoint.  The test sends every metric type over UDP and TCP,
# waits for two flushes, queries the admin interfaces, reloads the config
# (SIGHUP) and sends again, then stops it with SIGTERM.  Any memcheck error
# or definite leak makes valgrind exit 99, and fails the test.
#
# Ends with "test_valgrind: N passed, M failed"; exits non-zero on failure.
# Usage: bash tests/integration/test_valgrind.sh     (SY_KEEP_TMP=1 keeps the temp dir)
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
BIN=${SY_BIN:-$REPO/build/switchyard}
passed=0
failed=0
failures=()

check() { # check LABEL CONDITION-EXIT-CODE [DETAIL]
    local label=$1 ok=$2 detail=${3:-}
    if [ "$ok" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS  $label"
    else
        failed=$((failed + 1))
        failures+=("$label")
        echo "FAIL  $label"
        [ -n "$detail" ] && printf '%s\n' "$detail" | sed 's/^/      /' | tail -60
    fi
}

finish() {
    if [ "$failed" -ne 0 ]; then
        echo
        echo "failed checks:"
        printf '  - %s\n' "${failures[@]}"
    fi
    echo "test_valgrind: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

work=$(mktemp -d /tmp/sy-valgrind.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
    fi
    if [ "${SY_KEEP_TMP:-}" = 1 ]; then
        echo "keeping temp dir $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "switchyard binary: $BIN"
if ! command -v valgrind >/dev/null; then
    check "valgrind is installed" 1 "apt-get install valgrind"
    finish
fi
check "switchyard binary exists" "$([ -x "$BIN" ]; echo $?)" "$BIN"
[ -x "$BIN" ] || finish

# Free loopback ports, from the kernel (the Python helpers' way).
read -r port auth_port mgmt_port dead_port < <(/usr/bin/python3 - "$REPO/tests" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from lib.netutil import free_port, free_port_pair
print(free_port_pair(), free_port("tcp"), free_port("tcp"), free_port("tcp"))
EOF
)
console=$work/console.txt
cfg=$work/valgrind.config.lua

write_config() { # write_config VERSION
    cat >"$cfg.tmp" <<EOF
-- written by tests/integration/test_valgrind.sh
local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:$port", "tcp://127.0.0.1:$port",
             { url = "tcp://127.0.0.1:$auth_port", auth = true } },
  flushInterval = 1000,
  graphite = { legacyNamespace = false },
  percentThreshold = { 90, -10 },
  histogram = { { metric = "vg.timer", bins = { 10, 100, "inf" } } },
  mgmt_address = "127.0.0.1", mgmt_port = $mgmt_port,
  httpAddress = "127.0.0.1:0",
  shutdownTimeout = 3000,
  auth = { tokens = { tok = "tenant" } },
  sinks = {
    c = { plugin = "console", path = "$console" },
    g = { plugin = "graphite", host = "127.0.0.1", port = $dead_port, maxQueueBytes = 65536,
          reconnectMinMs = 50, reconnectMaxMs = 200 },
  },
  routes = {
    route.match "^vg%.old%.(.+)$" :rename "vg.v$1.%1" :to { "c", "g" },
    route.prefix "vg.drop." :drop "not wanted",
    route.default() :to { "c", "g" },
  },
}
EOF
    mv "$cfg.tmp" "$cfg"
}

write_config 1
# --error-exitcode: any memcheck error or definite leak turns exit 0 into 99.
valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
    --show-leak-kinds=definite --num-callers=30 --log-file="$work/valgrind.log" \
    "$BIN" -c "$cfg" >"$work/stdout" 2>"$work/stderr" &
pid=$!

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
up=1
for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    if listening "$port" && listening "$auth_port"; then up=0; break; fi
    sleep 0.1
done
check "switchyard starts under valgrind" $up "$(tail -40 "$work/stderr"; tail -40 "$work/valgrind.log")"
[ $up -eq 0 ] || finish

udp() { printf '%b' "$1" >"/dev/udp/127.0.0.1/$port"; }
tcp() { # tcp PORT PAYLOAD: send, half-close... (bash cannot half-close: the daemon
        # keeps a final line without newline at EOF, and we end with one)
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf '%b' "$2" >&3
    exec 3>&-
}

# every type, over both transports
udp 'vg.count:1|c\nvg.count:2|c|@0.5\nvg.gauge:10|g\nvg.gauge:+5|g\nvg.timer:5|ms\nvg.timer:50|ms|@0.5\nvg.hist:7|h\nvg.dist:8|d\nvg.set:a|s\nvg.set:b|s\nvg.tagged:1|c|#env:prod,x\nvg.old.a:1|c\nvg.drop.z:1|c\nbad line\n'
tcp "$port" 'vg.count:3|c\nvg.gauge2:-3|g\nvg.timer:500|ms\nvg.set:c|s\nvg.multi:1|c:2|c\nvg.old.b:4|g\n\xff\x00garbage\nvg.final:1|c'
tcp "$auth_port" 'tok.vg.authed:1|c\nwrong.vg.authed:1|c\nvg.noauth:1|c\n'

flushes() { awk '{print $3}' "$console" 2>/dev/null | sort -u | wc -l; }
value() { # value NAME: the sum of NAME over every flush (the last value for a gauge)
    awk -v n="$1" '$1 == n { s += $2; last = $2; seen = 1 }
        END { if (seen) print (n ~ /^stats\.gauges\./ ? last : s) }' "$console" 2>/dev/null
}
wait_for() { # wait_for NAME SECONDS
    local i
    for i in $(seq 1 $(($2 * 10))); do
        [ -n "$(value "$1")" ] && return 0
        sleep 0.1
    done
    return 1
}
wait_flushes() { # wait_flushes N: N more flushes than now
    local want=$(($(flushes) + $1)) i
    for i in $(seq 1 200); do
        [ "$(flushes)" -ge "$want" ] && return 0
        sleep 0.1
    done
    return 1
}
wait_for stats.counters.vg.final.count 20
wait_flushes 1     # UDP and TCP have rings of their own: both are in by now
got=""
for n in stats.counters.vg.count.count stats.gauges.vg.gauge stats.gauges.vg.gauge2 \
         stats.timers.vg.timer.count \
         stats.timers.vg.hist.count stats.timers.vg.dist.count stats.sets.vg.set.count \
         "stats.counters.vg.tagged.count;env=prod;x" stats.counters.vg.v1.a.count \
         stats.gauges.vg.v1.b stats.counters.vg.multi.count stats.counters.tenant.vg.authed.count \
         stats.counters.vg.final.count stats.counters.statsd.bad_lines_seen.count; do
    got="$got $n=$(value "$n")"
done
want=" stats.counters.vg.count.count=8 stats.gauges.vg.gauge=15 stats.gauges.vg.gauge2=-3 stats.timers.vg.timer.count=4 stats.timers.vg.hist.count=1 stats.timers.vg.dist.count=1 stats.sets.vg.set.count=3 stats.counters.vg.tagged.count;env=prod;x=1 stats.counters.vg.v1.a.count=1 stats.gauges.vg.v1.b=4 stats.counters.vg.multi.count=3 stats.counters.tenant.vg.authed.count=1 stats.counters.vg.final.count=1 stats.counters.statsd.bad_lines_seen.count=2"
check "every type sent over UDP and TCP is flushed with statsd's values" \
    "$([ "$got" = "$want" ]; echo $?)" "got: $got
want:$want
$(tail -20 "$work/stderr")"
check "a dropped key is not flushed" "$(grep -q 'vg\.drop' "$console"; [ $? -ne 0 ]; echo $?)"

# two more flushes, the admin interfaces
wait_flushes 2
check "two more flushes reach the console sink" $?
http_port=$(sed -n 's/.*admin HTTP on .* (port \([0-9]*\)).*/\1/p' "$work/stderr" | head -1)
metrics=""
if [ -n "$http_port" ]; then
    exec 3<>"/dev/tcp/127.0.0.1/$http_port"
    printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
    metrics=$(timeout 20 cat <&3)
    exec 3>&-
fi
check "HTTP /metrics answers" "$(grep -q '^switchyard_bad_lines_total 2' <<<"$metrics"; echo $?)" \
    "$(head -c 2000 <<<"$metrics")"
exec 3<>"/dev/tcp/127.0.0.1/$mgmt_port"
printf 'stats\nlisteners\nsinks\nquit\n' >&3
console_out=$(timeout 20 cat <&3)
exec 3>&-
check "the management console answers stats, listeners and sinks" \
    "$(grep -q 'bad_lines_seen' <<<"$console_out" && grep -q 'idle_closed=' <<<"$console_out"; echo $?)" \
    "$console_out"

# reload: the rename changes
write_config 2
kill -HUP "$pid"
applied=1
for _ in $(seq 1 200); do
    grep -q 'reload applied' "$work/stderr" && { applied=0; break; }
    sleep 0.1
done
check "SIGHUP: the new config is applied" $applied "$(tail -20 "$work/stderr")"
udp 'vg.old.c:5|c\nvg.count:1|c\n'
tcp "$port" 'vg.old.d:6|c\nvg.after:1|c'
wait_for stats.counters.vg.after.count 20
wait_flushes 1
check "after the reload the new rules route (vg.old.c -> vg.v2.c)" \
    "$([ "$(value stats.counters.vg.v2.c.count)" = 5 ] && [ "$(value stats.counters.vg.v2.d.count)" = 6 ]; echo $?)" \
    "vg.v2.c=$(value stats.counters.vg.v2.c.count) vg.v2.d=$(value stats.counters.vg.v2.d.count)"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
check "SIGTERM: exit 0 (99 = memcheck errors or definite leaks)" "$([ $rc -eq 0 ]; echo $?)" \
    "exit code $rc
$(grep -A40 -E 'Invalid|uninitialised|definitely lost in|Mismatched|overlap|Syscall param' "$work/valgrind.log" | head -150)"
check "valgrind: ERROR SUMMARY: 0 errors" \
    "$(grep -q 'ERROR SUMMARY: 0 errors' "$work/valgrind.log"; echo $?)" "$(tail -40 "$work/valgrind.log")"
check "valgrind: nothing definitely lost" \
    "$(grep -qE 'definitely lost: [1-9]' "$work/valgrind.log"; [ $? -ne 0 ]; echo $?)" \
    "$(grep -B2 -A30 'definitely lost' "$work/valgrind.log" | head -120)"
check "the daemon logged a clean stop" "$(grep -q 'info  stopped' "$work/stderr"; echo $?)" \
    "$(tail -20 "$work/stderr")"
sed -n '/HEAP SUMMARY/,/ERROR SUMMARY/p' "$work/valgrind.log" | sed 's/^==[0-9]*== /      /'
finish

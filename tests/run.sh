#!/bin/bash
# Run every test suite: unit tests (plain and under ASan+UBSan), the Lua
# specs under LuaJIT, and the integration and differential tests, which
# start the real servers they need, against the plain daemon and again
# against the ASan+UBSan one (make san).  Prints one summary line at the
# end:
#   tests: N passed, M failed
# and exits non-zero if anything failed.
#
#   SY_SAN_TESTS=none   skip the integration tests against the ASan+UBSan
#                       daemon (the unit tests still run under it)
set -u
cd "$(dirname "$0")/.."
export SY_ROOT=$PWD
logdir=$(mktemp -d /tmp/switchyard-tests.XXXXXX)
# One line per suite, "PASSED FAILED NAME", appended by run(): suites run
# in concurrent lanes (below), so the totals are summed from this file.
results=$logdir/results
: >"$results"

# count OUTPUT_FILE: add the suite's own pass/fail counts to the totals.
count() {
    local out=$1 p=0 f=0
    # cmocka
    p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$out" | awk '{s+=$NF} END {print s+0}')
    f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$out" | awk '{s+=$(NF-1)} END {print s+0}')
    # our Python tests and anything else that ends with "N passed, M failed"
    local pl
    pl=$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    if [ -n "$pl" ]; then
        p=$((p + $(echo "$pl" | awk '{print $1}')))
        f=$((f + $(echo "$pl" | awk '{print $3}')))
    fi
    # busted: "N successes / M failures / E errors / P pending"
    local bl
    bl=$(grep -oE '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$out" | tail -1)
    if [ -n "$bl" ]; then
        p=$((p + $(echo "$bl" | awk '{print $1}')))
        f=$((f + $(echo "$bl" | awk '{print $4 + $7}')))
    fi
    echo "$p $f"
}

# run NAME CMD...: run one suite, record its counts, show its output on
# failure.  Each report is printed with a single write, so that two lanes
# running at once do not interleave inside one.
#
# With SAN_REPORTS=DIR set, the suite's sanitized processes write their
# reports there (ASan's and UBSan's log_path) instead of to their stderr,
# which the tests keep in temporary files: any report found in DIR
# afterwards fails the suite, whatever its own checks said (a leak found
# at exit, say, which only changes the daemon's exit status).
run() {
    local name=$1; shift
    local out="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$SECONDS
    "$@" >"$out" 2>&1
    local rc=$?
    read -r p f < <(count "$out")
    local reports=""
    if [ -n "${SAN_REPORTS:-}" ]; then
        reports=$(ls "$SAN_REPORTS"/report.* 2>/dev/null)
        if [ -n "$reports" ]; then
            { echo "sanitizer reports:"; cat $reports; } >>"$out"
            f=$((f + 1))
        fi
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed, or failed without saying how many
    fi
    echo "$p $f $name" >>"$results"
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf 'FAIL  %-48s %3ds  (%d passed, %d failed)\n%s\n' "$name" $((SECONDS - start)) \
            "$p" "$f" "$(sed 's/^/    | /' "$out" | tail -60)"
    else
        printf 'ok    %-48s %3ds  (%d passed)\n' "$name" $((SECONDS - start)) "$p"
    fi
}

# run_san NAME CMD...: run under ASan+UBSan, reports collected per suite.
run_san() {
    local dir="$logdir/san/$(echo "$1" | tr '/ ' '__')"
    mkdir -p "$dir"
    SAN_REPORTS=$dir \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$dir/report \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$dir/report \
        run "$@"
}

# SY_BIN: the daemon the integration tests run.  SY_PLUGIN_DIR: where the
# C unit tests load plugins from (the daemon itself finds its plugins next
# to its binary, or through SWITCHYARD_PLUGIN_DIR).
export SY_BIN=$PWD/build/switchyard
export SY_PLUGIN_DIR=$PWD/build/plugins

for t in build/tests/test_*; do
    [ -x "$t" ] && run "unit/$(basename "$t")" "$t"
done
for t in build-san/tests/test_*; do
    [ -x "$t" ] && SY_PLUGIN_DIR=$PWD/build-san/plugins \
        run_san "asan+ubsan/$(basename "$t")" "$t"
done
if ls spec/*_spec.lua >/dev/null 2>&1; then
    run "busted/spec" busted --lua=luajit -o plainTerminal spec
fi

# The integration and differential tests run in two lanes at once: lane 0
# against the plain daemon, lane 1 against the ASan+UBSan one, where a
# memory error or undefined behaviour aborts the daemon and a leak is
# reported when it exits.  Most of their time is spent waiting for flush
# intervals and servers, so two lanes take little longer than one.  Each
# lane draws its ports from its own slice (tests/lib/netutil.py), so the
# two never race for one.
suites=()
for t in tests/integration/test_*.py tests/diff/test_*.py; do
    [ -f "$t" ] && suites+=("$t")
done
lane_plain() {
    export SY_TEST_LANE=0 SY_TEST_LANES=2
    for t in "${suites[@]}"; do
        run "${t#tests/}" /usr/bin/python3 "$t"
    done
    # Shell tests: installs, the Debian package, valgrind (plain lane only:
    # they build or install what they test themselves).
    for t in tests/integration/test_*.sh; do
        [ -f "$t" ] && run "${t#tests/}" bash "$t"
    done
}
lane_san() {
    export SY_TEST_LANE=1 SY_TEST_LANES=2
    export SY_BIN=$PWD/build-san/switchyard SY_PLUGIN_DIR=$PWD/build-san/plugins
    for t in "${suites[@]}"; do
        run_san "asan+ubsan/${t#tests/}" /usr/bin/python3 "$t"
    done
}
if [ -x build-san/switchyard ] && [ "${SY_SAN_TESTS:-}" != none ]; then
    lane_san &
    san_pid=$!
    lane_plain
    wait "$san_pid"
else
    lane_plain
fi

# Short modes of the long runs: they check that every piece works, and
# assert no timing (figures come from make bench / soak / fuzz).
[ -x tests/bench/run.sh ] && run "bench/short" tests/bench/run.sh short
[ -x tests/fuzz/run.sh ] && run "fuzz/short" tests/fuzz/run.sh short
[ -x tests/soak/run.sh ] && run "soak/short" tests/soak/run.sh short

passed=$(awk '{s+=$1} END {print s+0}' "$results")
failed=$(awk '{s+=$2} END {print s+0}' "$results")
echo
if [ "$failed" -ne 0 ]; then
    echo "failed suites: $(awk '$2 > 0 {printf "%s ", $3}' "$results")"
    echo "logs: $logdir"
else
    rm -rf "$logdir"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/bash
# Run every test suite: unit tests (plain and under ASan+UBSan), the Lua
# specs under LuaJIT, and the integration and differential tests, which
# start the real servers they need.  Prints one summary line at the end:
#   tests: N passed, M failed
# and exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
export SY_ROOT=$PWD
passed=0
failed=0
failed_names=()
logdir=$(mktemp -d /tmp/switchyard-tests.XXXXXX)

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

# run NAME CMD...: run one suite, show its output on failure.
run() {
    local name=$1; shift
    local out="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$SECONDS
    "$@" >"$out" 2>&1
    local rc=$?
    read -r p f < <(count "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed, or failed without saying how many
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        failed_names+=("$name")
        printf 'FAIL  %-40s %3ds  (%d passed, %d failed)\n' "$name" $((SECONDS - start)) "$p" "$f"
        sed 's/^/    | /' "$out" | tail -60
    else
        printf 'ok    %-40s %3ds  (%d passed)\n' "$name" $((SECONDS - start)) "$p"
    fi
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
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run "asan+ubsan/$(basename "$t")" "$t"
done
if ls spec/*_spec.lua >/dev/null 2>&1; then
    run "busted/spec" busted --lua=luajit -o plainTerminal spec
fi
for t in tests/integration/test_*.py tests/diff/test_*.py; do
    [ -f "$t" ] && run "${t#tests/}" /usr/bin/python3 "$t"
done
# Integration tests again against the ASan+UBSan build (make san): a
# memory error aborts the daemon, a leak makes its exit code non-zero, and
# the tests look for sanitizer reports in its stderr.  SY_SAN_TESTS picks
# the files ("none" skips); the default keeps make test well under 15 min
# with the tests that drive the most code (bad input, reloads, flush
# pacing, traces, the repeater); test_faults.py passes against it too but
# adds 80 s of flush waits, so it runs there on request.
if [ -x build-san/switchyard ] && [ "${SY_SAN_TESTS:-}" != none ]; then
    for t in ${SY_SAN_TESTS:-test_badinput.py test_reload.py test_pacing.py test_traces.py test_repeater.py}; do
        [ -f "$t" ] || t=$(ls tests/integration/"$t" tests/diff/"$t" 2>/dev/null | head -1)
        [ -f "$t" ] && SY_BIN=$PWD/build-san/switchyard SY_PLUGIN_DIR=$PWD/build-san/plugins \
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run "asan+ubsan/${t#tests/}" /usr/bin/python3 "$t"
    done
fi
for t in tests/integration/test_*.sh; do
    [ -f "$t" ] && run "${t#tests/}" bash "$t"
done
# Short modes of the long runs: they check that every piece works, and
# assert no timing (figures come from make bench / soak / fuzz).
[ -x tests/bench/run.sh ] && run "bench/short" tests/bench/run.sh short
[ -x tests/fuzz/run.sh ] && run "fuzz/short" tests/fuzz/run.sh short
[ -x tests/soak/run.sh ] && run "soak/short" tests/soak/run.sh short

echo
if [ "$failed" -ne 0 ]; then
    echo "failed suites: ${failed_names[*]}"
    echo "logs: $logdir"
else
    rm -rf "$logdir"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

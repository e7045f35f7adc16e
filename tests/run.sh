#!/bin/bash
# Run every test suite: unit tests (plain and under ASan+UBSan), the Lua
# specs under LuaJIT, and the integration and differential tests, which
# start the real servers they need, against the plain daemon and again
# against the ASan+UBSan one (make san).  Prints one summary line at the
# end:
#   tests: N passed, M failed, K skipped
# summed from what each suite reports, and exits non-zero if anything
# failed.
#
# The suites are listed below by name.  A listed suite whose file is
# missing fails, and so does a suite that reports no check at all (it
# proved nothing), one that runs longer than SY_SUITE_TIMEOUT seconds
# (default 900), and a test file that is not in the lists (so that a new
# suite is not silently left out).
#
#   SY_SAN_TESTS=none   skip the integration tests against the ASan+UBSan
#                       daemon (the unit tests still run under it)
#   SY_SUITES="PATTERN..."  run only the suites whose name matches one of
#                       the shell patterns, e.g. SY_SUITES='diff/* bench/*'
#                       or SY_SUITES='*test_traces*'; the names are those the
#                       report shows ("unit/test_parse", "asan+ubsan/diff/
#                       test_inspect_diff.py", "fuzz/short", ...)
#   SY_SUITE_TIMEOUT=N  seconds a suite may run before it is stopped and
#                       failed
set -u
cd "$(dirname "$0")/.."
export SY_ROOT=$PWD
logdir=$(mktemp -d /tmp/switchyard-tests.XXXXXX)
# One line per suite, "PASSED FAILED SKIPPED NAME", appended by run():
# suites run in concurrent lanes (below), so the totals are summed from
# this file.
results=$logdir/results
: >"$results"
suite_timeout=${SY_SUITE_TIMEOUT:-900}

# The suites make test runs.  Add a new test file here: one that is not
# listed fails the run.
unit_tests="test_budget test_carbon_ch test_carbon_name test_dd_events test_flush test_fuzz_regressions test_inspect test_keeplog test_lineq test_lpattern
    test_promstore test_netlib test_numfmt test_parse test_predecide test_reader test_repeater_ring test_ring test_samplelog test_sinkhost test_spool
    test_tap test_traces"
py_suites="integration/test_admin.py integration/test_badinput.py integration/test_carbon.py integration/test_cli.py
    integration/test_carbon_cluster.py integration/test_dashboard.py integration/test_faults.py integration/test_flush_carbon.py
    integration/test_budgets.py integration/test_influxdb.py integration/test_pacing.py integration/test_prometheus.py
    integration/test_redis.py integration/test_redis_cluster.py
    integration/test_relay_tier.py integration/test_reload.py integration/test_remote_write.py integration/test_shadow.py
    integration/test_repeater.py integration/test_spool.py integration/test_tap.py
    integration/test_traces.py diff/test_inspect_diff.py diff/test_statsd_diff.py"
sh_suites="integration/test_deb.sh integration/test_image.sh integration/test_install.sh integration/test_valgrind.sh"
long_runs="bench fuzz soak"  # fuzz and soak in lane 2, bench alone at the end
# Lane 2 (below) runs the shell tests and the short fuzz and soak runs,
# which leave it room: it also takes these Python suites, plain and under
# ASan+UBSan, so that the three lanes end at about the same time.
lane2_plain="integration/test_faults.py integration/test_influxdb.py integration/test_redis_cluster.py
    integration/test_relay_tier.py"
lane2_san="integration/test_admin.py integration/test_pacing.py integration/test_redis.py
    integration/test_repeater.py integration/test_spool.py"

# in_list WORD LIST...: whether WORD is one of LIST.
in_list() {
    local w=$1; shift
    for x in "$@"; do [ "$x" = "$w" ] && return 0; done
    return 1
}

# selected NAME: whether SY_SUITES (if set) asks for this suite.
selected() {
    [ -z "${SY_SUITES:-}" ] && return 0
    local p
    for p in $SY_SUITES; do
        # shellcheck disable=SC2053
        [[ $1 == $p ]] && return 0
    done
    return 1
}

# count OUTPUT_FILE: the suite's own pass, fail and skip counts.
count() {
    local out=$1 p=0 f=0 s=0
    # cmocka
    p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$out" | awk '{s+=$NF} END {print s+0}')
    f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$out" | awk '{s+=$(NF-1)} END {print s+0}')
    s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$out" | awk '{s+=$(NF-1)} END {print s+0}')
    # our Python and shell tests, and anything else that ends with
    # "N passed, M failed" (", K skipped" when something was skipped)
    local pl
    pl=$(grep -oE '[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?' "$out" | tail -1)
    if [ -n "$pl" ]; then
        p=$((p + $(echo "$pl" | awk '{print $1}')))
        f=$((f + $(echo "$pl" | awk '{print $3}')))
        s=$((s + $(echo "$pl" | awk '{print $5 + 0}')))
    fi
    # busted: "N successes / M failures / E errors / P pending"
    local bl
    bl=$(grep -oE '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -1)
    if [ -n "$bl" ]; then
        p=$((p + $(echo "$bl" | awk '{print $1}')))
        f=$((f + $(echo "$bl" | awk '{print $4 + $7}')))
        s=$((s + $(echo "$bl" | awk '{print $10}')))
    fi
    echo "$p $f $s"
}

# fail_suite NAME WHY: record a suite that could not run as one failure.
fail_suite() {
    echo "0 1 0 $1" >>"$results"
    printf 'FAIL  %-48s %s\n' "$1" "$2"
}

# run NAME CMD...: run one suite (stopped after $suite_timeout seconds),
# record its counts, show its output on failure.  Each report is printed
# with a single write, so that two lanes running at once do not
# interleave inside one.
#
# With SAN_REPORTS=DIR set, the suite's sanitized processes write their
# reports there (ASan's and UBSan's log_path) instead of to their stderr,
# which the tests keep in temporary files: any report found in DIR
# afterwards fails the suite, whatever its own checks said (a leak found
# at exit, say, which only changes the daemon's exit status).
run() {
    local name=$1; shift
    selected "$name" || return 0
    local out="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$SECONDS
    # timeout runs the suite in a process group of its own and signals the
    # whole group; KILL 30 s after the TERM if it is still there.
    timeout -k 30 "$suite_timeout" "$@" >"$out" 2>&1
    local rc=$?
    local why=""
    read -r p f s < <(count "$out")
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        why="timed out after ${suite_timeout} s (SY_SUITE_TIMEOUT)"
        f=$((f + 1))
    fi
    local reports=""
    if [ -n "${SAN_REPORTS:-}" ]; then
        reports=$(ls "$SAN_REPORTS"/report.* 2>/dev/null)
        if [ -n "$reports" ]; then
            { echo "sanitizer reports:"; cat $reports; } >>"$out"
            f=$((f + 1))
            why="${why:+$why; }sanitizer report(s) in $SAN_REPORTS"
        fi
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        f=1
        why="${why:+$why; }reported no check (it proved nothing)"
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed, or failed without saying how many
        why="exit status $rc"
    fi
    echo "$p $f $s $name" >>"$results"
    local skipped=""
    [ "$s" -ne 0 ] && skipped=", $s skipped"
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf 'FAIL  %-48s %3ds  (%d passed, %d failed%s)%s\n%s\n' "$name" $((SECONDS - start)) \
            "$p" "$f" "$skipped" "${why:+  $why}" "$(sed 's/^/    | /' "$out" | tail -60)"
    else
        printf 'ok    %-48s %3ds  (%d passed%s)\n' "$name" $((SECONDS - start)) "$p" "$skipped"
    fi
}

# run_san NAME CMD...: run under ASan+UBSan, reports collected per suite.
run_san() {
    selected "$1" || return 0
    local dir="$logdir/san/$(echo "$1" | tr '/ ' '__')"
    mkdir -p "$dir"
    SAN_REPORTS=$dir \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$dir/report \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$dir/report \
        run "$@"
}

# need NAME FILE: true if FILE exists; else the suite fails as missing.
need() {
    selected "$1" || return 1
    [ -e "$2" ] && return 0
    fail_suite "$1" "missing: $2 (listed in tests/run.sh)"
    return 1
}

# Test files that are in no list fail the run: a suite nobody runs.
listed=" $(for t in $unit_tests; do echo "tests/unit/$t.c"; done | tr '\n' ' ')"
for t in $py_suites $sh_suites; do listed+="tests/$t "; done
for f in tests/unit/test_*.c tests/integration/test_* tests/diff/test_*; do
    [ -e "$f" ] || continue
    case "$listed" in
        *" $f "*) ;;
        *) selected "unlisted/$f" && fail_suite "unlisted/$f" "is not in tests/run.sh's lists" ;;
    esac
done

# Lane 2's Python suites are py_suites' own: a name only there would run
# in one lane only, or not at all.
for t in $lane2_plain $lane2_san; do
    in_list "$t" $py_suites || { selected "lane2/$t" && fail_suite "lane2/$t" "in lane2_plain or lane2_san but not in py_suites"; }
done

# SY_BIN: the daemon the integration tests run.  SY_PLUGIN_DIR: where the
# C unit tests load plugins from (the daemon itself finds its plugins next
# to its binary, or through SWITCHYARD_PLUGIN_DIR).
export SY_BIN=$PWD/build/switchyard
export SY_PLUGIN_DIR=$PWD/build/plugins

# The unit tests (plain and ASan+UBSan) and the Lua specs: in the ASan
# lane, whose suites take the least time, or first when it does not run.
unit_suites() {
    for t in $unit_tests; do
        need "unit/$t" "build/tests/$t" && run "unit/$t" "build/tests/$t"
    done
    for t in $unit_tests; do
        need "asan+ubsan/$t" "build-san/tests/$t" && SY_PLUGIN_DIR=$PWD/build-san/plugins \
            run_san "asan+ubsan/$t" "build-san/tests/$t"
    done
    if need "busted/spec" spec/readme_spec.lua; then
        run "busted/spec" busted --lua=luajit -o plainTerminal spec
    fi
}

# The integration and differential tests run in lanes at once: lane 0
# against the plain daemon, lane 1 with the unit tests and specs, then
# against the ASan+UBSan daemon, where a memory error or undefined
# behaviour aborts the daemon and a leak is reported when it exits, and
# lane 2 with the shell tests, the short fuzz and soak runs, and the
# Python suites in lane2_plain and lane2_san.  Most of their time is spent
# waiting for flush intervals and servers, so the lanes take little longer
# than one (a clean run at bce13ed: 659, 606 and 683 s of suites, with
# the unit tests' 69 s before them; lane 1 now takes those: 683, 675
# and 680 s at cd25396, 13 min 50 s in all).  Each
# lane draws its ports from its own slice (tests/lib/netutil.py), so they
# never race for one.  The benchmark's short run comes last, alone.
# san_lane_runs: whether the ASan+UBSan integration suites run at all.
san_lane_runs() {
    [ "${SY_SAN_TESTS:-}" != none ] && [ -x build-san/switchyard ]
}
plain_suites() { # SUITE...: against the plain daemon
    for t in "$@"; do
        need "$t" "tests/$t" && run "$t" /usr/bin/python3 "tests/$t"
    done
}
san_suites() { # SUITE...: against the ASan+UBSan daemon
    (
        export SY_BIN=$PWD/build-san/switchyard SY_PLUGIN_DIR=$PWD/build-san/plugins
        # the aggregator test_inspect_diff.py drives, from the sanitizer build
        export SY_INSPECT_DRIVER=$PWD/build-san/tests/test_inspect
        for t in "$@"; do
            need "asan+ubsan/$t" "tests/$t" && run_san "asan+ubsan/$t" /usr/bin/python3 "tests/$t"
        done
    )
}
lane_plain() {
    export SY_TEST_LANE=0 SY_TEST_LANES=3
    local mine=""
    for t in $py_suites; do in_list "$t" $lane2_plain || mine+=" $t"; done
    plain_suites $mine
}
lane_other() {
    export SY_TEST_LANE=2 SY_TEST_LANES=3
    # Shell tests: installs, the Debian package, the image, valgrind
    # (against the plain build: they build or install what they test).
    for t in $sh_suites; do
        need "$t" "tests/$t" && run "$t" bash "tests/$t"
    done
    # Short modes of the long runs: they check that every piece works, and
    # assert no timing (figures come from make bench / soak / fuzz).
    for t in $long_runs; do
        [ "$t" = bench ] && continue
        need "$t/short" "tests/$t/run.sh" && run "$t/short" "tests/$t/run.sh" short
    done
    plain_suites $lane2_plain
    san_lane_runs && san_suites $lane2_san
}
lane_san() {
    export SY_TEST_LANE=1 SY_TEST_LANES=3
    unit_suites
    local mine=""
    for t in $py_suites; do in_list "$t" $lane2_san || mine+=" $t"; done
    san_suites $mine
}
lane_other &
other_pid=$!
if [ "${SY_SAN_TESTS:-}" = none ]; then
    unit_suites
    lane_plain
elif [ ! -x build-san/switchyard ]; then
    for t in $py_suites; do
        selected "asan+ubsan/$t" && { fail_suite "asan+ubsan/$t" \
            "build-san/switchyard is missing (make san, or SY_SAN_TESTS=none)"; }
    done
    unit_suites
    lane_plain
else
    lane_san &
    san_pid=$!
    lane_plain
    wait "$san_pid"
fi
wait "$other_pid"

# The benchmark's short run (no timing asserted): alone, after the lanes.
need "bench/short" "tests/bench/run.sh" && run "bench/short" "tests/bench/run.sh" short

passed=$(awk '{s+=$1} END {print s+0}' "$results")
failed=$(awk '{s+=$2} END {print s+0}' "$results")
skipped=$(awk '{s+=$3} END {print s+0}' "$results")
suites=$(wc -l <"$results")
echo
if [ "$suites" -eq 0 ]; then
    echo "no suite ran (SY_SUITES='${SY_SUITES:-}' matches none)"
    failed=1
fi
if [ "$failed" -ne 0 ]; then
    echo "failed suites: $(awk '$2 > 0 {printf "%s ", $4}' "$results")"
    echo "logs: $logdir"
else
    rm -rf "$logdir"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

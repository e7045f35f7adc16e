#!/bin/bash
# Build and run the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
#
#   tests/fuzz/run.sh [short|full] [HARNESS...]
#
#   short   about 6 s of fuzzing per harness (~30 s for the five), for make test
#   full    10 minutes per harness (make fuzz)
#
#   FUZZ_SECONDS=N   seconds per harness instead
#   FUZZ_JOBS=N      libFuzzer workers per harness (full mode; default 1)
#
# For each harness, first every input under tests/fuzz/regressions/<harness>/
# is replayed (each must pass, with every sanitizer check fatal and nothing
# suppressed; a harness with no regression input fails), then the fuzzer runs from the seeds in tests/fuzz/corpus/
# <harness>/ plus what earlier runs found (kept in build/fuzz/corpus/<harness>/),
# with the dictionary statsd.dict (lua.dict for config, lpattern.dict for
# pattern).  While
# fuzzing, the findings listed in tests/fuzz/known.supp are not reported
# again (they have regression inputs that fail until they are fixed).
#
# Crashes, sanitizer reports, broken invariants, timeouts and out-of-memory
# inputs are saved under build/fuzz/crashes/<harness>/.  In full mode a
# crash does not end the run: the fuzzer starts again for the time left
# (at most 5 times per harness).  Prints executions and findings per
# harness, then "fuzz: N passed, M failed"; exits non-zero on any finding
# (libFuzzer's logs are then kept in build/fuzz/logs/<mode>.XXXXXX/).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
export SY_ROOT=$ROOT

mode=${1:-short}
shift || true
case "$mode" in
    short) seconds=${FUZZ_SECONDS:-6} ;;
    full) seconds=${FUZZ_SECONDS:-600} ;;
    *) echo "usage: $0 [short|full] [harness...]" >&2; exit 2 ;;
esac
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(parse framing token config pattern)
jobs=${FUZZ_JOBS:-1}
[ "$mode" = short ] && jobs=1

OUT=build/fuzz
# Several runs may overlap (make test beside make fuzz): each keeps its logs
# apart (removed when it passes), the build is done under a lock, and the
# corpora and crash directories are shared, which libFuzzer allows.
mkdir -p "$OUT/logs"
LOGS=$(mktemp -d "$OUT/logs/$mode.XXXXXX")
if ! flock "$OUT/.build-lock" make -f tests/fuzz/Makefile -j"$(nproc)" >"$LOGS/build.log" 2>&1; then
    echo "FAIL  building the harnesses (clang with libFuzzer, ASan, UBSan):"
    tail -30 "$LOGS/build.log" | sed 's/^/    | /'
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

# Every sanitizer finding is fatal; leaks are findings too.
base_asan="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"
base_ubsan="halt_on_error=1:print_stacktrace=1"

# Per-harness libFuzzer limits.  The config loader bounds a config's setup
# to 5 s and 256 MiB of Lua heap (LuaJIT's heap lives outside malloc, so the
# RSS limit is set well above it); the router is capped at 100 ms a call by
# the harness.
opts_for() {
    case "$1" in
        parse) echo "-max_len=4096 -timeout=10 -dict=tests/fuzz/statsd.dict" ;;
        framing) echo "-max_len=4096 -timeout=10 -dict=tests/fuzz/statsd.dict" ;;
        # The token harness keeps its sy_tests across inputs, so libFuzzer's
        # per-input leak check (a full LeakSanitizer scan whenever an input
        # mallocs more than it frees) would fire all the time and cost 40%
        # of the run; leaks are still looked for at exit.
        token) echo "-max_len=4096 -timeout=10 -detect_leaks=0 -dict=tests/fuzz/statsd.dict" ;;
        config) echo "-max_len=8192 -timeout=60 -rss_limit_mb=4096 -dict=tests/fuzz/lua.dict" ;;
        # The bounded matcher stops after ~256K steps; LuaJIT's own runs
        # only on inputs the bounded one finished.
        # LuaJIT tags its pointers, so LeakSanitizer cannot follow them: the
        # persistent Lua state would look like a leak after every input.
        pattern) echo "-max_len=2048 -timeout=10 -detect_leaks=0 -dict=tests/fuzz/lpattern.dict" ;;
    esac
}

passed=0
failed=0
summary=()

# The sanitizer report of a failed run, shortened.
show_report() {
    grep -aE -A14 'ERROR: |runtime error|INVARIANT FAILED|ERROR: libFuzzer|==ERROR|SEGV|deadly signal' "$1" \
        | grep -v '^INFO' | head -40 | sed 's/^/    | /'
}

replay() {
    local h=$1 bin=$OUT/fuzz_$1 dir=tests/fuzz/regressions/$1 n=0 bad=0
    [ -d "$dir" ] || { echo "0 0"; return; }
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        case "$f" in *.md|*.txt) continue ;; esac
        n=$((n + 1))
        local log="$LOGS/replay-$h-$(basename "$f").log"
        # shellcheck disable=SC2046
        if ! ASAN_OPTIONS=$base_asan UBSAN_OPTIONS=$base_ubsan \
            "$bin" $(opts_for "$h") -runs=1 "$f" </dev/null >"$log" 2>&1; then
            bad=$((bad + 1))
            echo "FAIL  regression $f" >&2
            show_report "$log" >&2
        fi
    done
    echo "$n $bad"
}

# fuzz HARNESS: prints "EXECS CRASHES" on stdout, details on stderr.
fuzz() {
    local h=$1 bin=$OUT/fuzz_$1
    local corpus=$OUT/corpus/$h crashes=$OUT/crashes/$h
    mkdir -p "$corpus" "$crashes"
    local deadline=$((SECONDS + seconds)) execs=0 found=0 round=0
    while :; do
        local left=$((deadline - SECONDS))
        [ "$left" -ge 1 ] || break
        round=$((round + 1))
        local log="$LOGS/fuzz-$h-$round.log"
        local before
        before=$(ls "$crashes" | wc -l)
        local par=""
        [ "$jobs" -gt 1 ] && par="-fork=$jobs -ignore_crashes=0"
        # shellcheck disable=SC2046,SC2086
        ASAN_OPTIONS=$base_asan UBSAN_OPTIONS="$base_ubsan:suppressions=$ROOT/tests/fuzz/known.supp" \
            "$bin" $(opts_for "$h") $par -max_total_time="$left" -print_final_stats=1 \
            -artifact_prefix="$crashes/" "$corpus" "tests/fuzz/corpus/$h" </dev/null >"$log" 2>&1
        local rc=$?
        local e
        e=$(grep -aoE '^stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1)
        [ -z "$e" ] && e=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        execs=$((execs + ${e:-0}))
        if [ "$rc" -ne 0 ]; then
            found=$((found + 1))
            local after
            after=$(ls "$crashes" | wc -l)
            {
                echo "FAIL  fuzz_$h found something (exit $rc); log: $log"
                [ "$after" -gt "$before" ] && ls -t "$crashes" | head -1 | sed "s|^|    input: $crashes/|"
                show_report "$log"
            } >&2
            [ "$mode" = full ] && [ "$found" -lt 5 ] || break
        else
            break
        fi
    done
    echo "$execs $found"
}

for h in "${harnesses[@]}"; do
    if [ ! -x "$OUT/fuzz_$h" ]; then
        echo "FAIL  no harness named '$h'"
        failed=$((failed + 1))
        continue
    fi
    read -r nreg badreg < <(replay "$h")
    if [ "$nreg" -eq 0 ]; then
        # a missing or emptied directory would otherwise pass by replaying nothing
        echo "FAIL  no regression input in tests/fuzz/regressions/$h/"
        failed=$((failed + 1))
    elif [ "$badreg" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    start=$SECONDS
    read -r execs found < <(fuzz "$h")
    if [ "$found" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    line=$(printf '%-8s regressions %d/%d pass   %10d executions in %4ds   %s' "$h" \
        $((nreg - badreg)) "$nreg" "$execs" $((SECONDS - start)) \
        "$([ "$found" -eq 0 ] && echo "nothing found" || echo "$found finding(s) in build/fuzz/crashes/$h/")")
    summary+=("$line")
    echo "$line"
done

echo
for l in "${summary[@]}"; do echo "  $l"; done
if [ "$failed" -eq 0 ]; then
    rm -rf "$LOGS"
else
    echo "logs: $LOGS"
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

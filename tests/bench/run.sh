#!/bin/bash
# switchyard's benchmarks (see bench.py for what is measured and how).
#
#   tests/bench/run.sh full    what `make bench` runs: 3 rounds of 10 s, every scenario, and
#                              tests/bench/remote_write.py (~50 min)
#   tests/bench/run.sh short   1 round of 2 s, fewer scenarios, no 1M-key tests (~80 s; for make test)
#   tests/bench/run.sh MODE [bench.py options]   e.g. --scenarios udp20 --duration 5
#
# Builds the benchmark tools into build/bench/; switchyard itself must be
# built already (`make bench` and `make test` do that), or named by SY_BIN.
# Exits non-zero only when a component failed to run; timings are never
# asserted.
set -eu
cd "$(dirname "$0")/../.."
mode=${1:-}
case "$mode" in
short|full) shift ;;
*) echo "usage: tests/bench/run.sh short|full [bench.py options]" >&2; exit 2 ;;
esac
make --no-print-directory -s -f tests/bench/Makefile
/usr/bin/python3 tests/bench/bench.py "$mode" "$@"
# the remote-write scenario (StatsD in, VictoriaMetrics out), beside
# graphite's above; full mode only
if [ "$mode" = full ] && [ $# -eq 0 ]; then
    /usr/bin/python3 tests/bench/remote_write.py --duration 10 --rounds 3 --rate 300000
    /usr/bin/python3 tests/bench/remote_write.py --duration 10 --rounds 1
fi

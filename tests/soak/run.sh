#!/bin/bash
# Soak test: switchyard under concurrent load on every kind of listener,
# every aggregate checked exactly (see tests/soak/soak.py).
#
#   tests/soak/run.sh [short|full]
#
#   short   12 s of sending, 5000 lines/s from each of 7 senders (~400k lines)
#   full    120 s at 20000 lines/s each (~17M lines)
#
#   SOAK_SECONDS=N  SOAK_RATE=N (lines/s per sender, 0 = as fast as possible)
#   SY_BIN=path     the daemon (default build/switchyard)
#
# Ends with "soak: N passed, M failed" and exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
case "${1:-short}" in
    short) seconds=${SOAK_SECONDS:-12}; rate=${SOAK_RATE:-5000} ;;
    full) seconds=${SOAK_SECONDS:-120}; rate=${SOAK_RATE:-20000} ;;
    *) echo "usage: $0 [short|full]" >&2; exit 2 ;;
esac
exec /usr/bin/python3 tests/soak/soak.py --seconds "$seconds" --rate "$rate"

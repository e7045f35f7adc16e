#!/bin/sh
# Run the cmocka unit tests of one build directory (TEST.d beside each
# binary is its header dependencies, not a test).
set -e
for t in "${1:-build}"/tests/test_*; do
    case $t in *.d) continue ;; esac
    [ -x "$t" ] || continue
    "$t"
done

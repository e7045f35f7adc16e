#!/bin/sh
# Run the cmocka unit tests of one build directory.
set -e
for t in "${1:-build}"/tests/test_*; do
    [ -x "$t" ] && "$t"
done

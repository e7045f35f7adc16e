# Shared by the shell tests (tests/integration/test_*.sh): source it after
# setting passed=0 failed=0.
#
# check LABEL CMD...: one sub-check, returning its status; on failure show
# the file named by DETAIL, if set.
DETAIL=
check() {
    local label=$1 rc=0; shift
    if "$@" >/dev/null 2>&1; then
        passed=$((passed + 1))
        echo "PASS  $label"
    else
        rc=1
        failed=$((failed + 1))
        echo "FAIL  $label"
        if [ -n "$DETAIL" ] && [ -f "$DETAIL" ]; then
            tail -30 "$DETAIL" | sed 's/^/      /'
        fi
    fi
    DETAIL=
    return $rc
}

#!/usr/bin/env bash
# tests/run_all.sh — what `make test` runs: the whole suite, in stages.
#
#  1. gcc (or $CC), -Wall -Wextra -Werror: every test, full length.
#  2. clang, -Wall -Wextra -Werror: the build and the quick suite.
#  3. -fsanitize=address,undefined: the quick suite (QUICK=1 shortens long runs).
#  Later chapters add stages below (cross-compiled NEON under qemu, ThreadSanitizer).
#
# Ends with one line "N passed, N failed, N skipped" over all stages and exits
# non-zero if anything failed. SHARED (../shared) holds the reference data;
# tests that need it are skipped, visibly, when it is absent.
set -u
cd "$(dirname "$0")/.."
export SHARED=${SHARED:-../shared}
CC=${CC:-cc}
JOBS=${JOBS:-2}
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
COUNTS=$(mktemp)
trap 'rm -f "$COUNTS"' EXIT

add_counts() { read -r p f s <"$COUNTS"; TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + f)); TOTAL_SKIP=$((TOTAL_SKIP + s)); }
result() { # result ok|bad|skip NAME [WHY]
    case $1 in
    ok) TOTAL_PASS=$((TOTAL_PASS + 1)); echo "ok    $2" ;;
    bad) TOTAL_FAIL=$((TOTAL_FAIL + 1)); echo "FAIL  $2: $3" ;;
    skip) TOTAL_SKIP=$((TOTAL_SKIP + 1)); echo "skip  $2: $3" ;;
    esac
}

# stage LABEL BUILD_DIR QUICK MAKE_ARGS...: build with warnings as errors, then run the suite.
stage() {
    local label=$1 build=$2 quick=$3; shift 3
    echo "==== stage: $label"
    local log; log=$(mktemp)
    if make -s -j"$JOBS" all WERROR=1 BUILD="$build" SHARED="$SHARED" "$@" >"$log" 2>&1; then
        result ok "$label: build with -Wall -Wextra -Werror"
    else
        result bad "$label: build with -Wall -Wextra -Werror" "$(tail -n 5 "$log" | tr '\n' ' ')"
        rm -f "$log"
        return
    fi
    rm -f "$log"
    echo "0 0 0" >"$COUNTS"
    LABEL=$label COUNTS=$COUNTS BUILD=$build QUICK=$quick bash tests/run.sh
    add_counts
}

stage "$CC" build 0 CC="$CC"
if command -v clang >/dev/null; then
    stage clang build/clang 1 CC=clang
else
    result skip "clang: build and quick suite" "clang is not installed"
fi
stage "asan+ubsan" build/asan 1 CC="$CC" SANITIZE=1

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
[ "$TOTAL_FAIL" -eq 0 ]

#!/usr/bin/env bash
# tests/run.sh — run every tests/t_*.sh (or those matching $ONLY) against one build.
#
#   BUILD=build SHARED=../shared [QUICK=1] [ONLY=ch02] bash tests/run.sh
#
# Prints one line per test and ends with "N passed, N failed, N skipped";
# exits 1 if any test failed. With COUNTS=FILE it also writes "PASS FAIL SKIP"
# there (tests/run_all.sh adds up its stages that way) and labels its summary.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
QUICK=${QUICK:-0}
ONLY=${ONLY:-}
LABEL=${LABEL:-}
export BUILD SHARED QUICK
PASS=0 FAIL=0 SKIP=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. tests/lib.sh
for t in tests/t_*.sh; do
    case "$t" in *"$ONLY"*) ;; *) continue ;; esac
    echo "== $t${LABEL:+ ($LABEL)}"
    . "$t"
done
if [ -n "${COUNTS:-}" ]; then
    echo "$PASS $FAIL $SKIP" >"$COUNTS"
    echo "-- ${LABEL:-suite}: $PASS ok, $FAIL failing, $SKIP skipped"
else
    echo "$PASS passed, $FAIL failed, $SKIP skipped"
fi
[ "$FAIL" -eq 0 ]

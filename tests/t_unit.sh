# Unit tests: every build/tests/unit_* program prints ok/FAIL/skip lines.
for prog in "$BUILD"/tests/unit_*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    timeout 300 "$prog" "$SHARED" "$BUILD" >"$TMP/unit.out" 2>"$TMP/unit.err"
    rc=$?
    n_before=$((PASS + FAIL + SKIP)) f_before=$FAIL
    while IFS= read -r line; do
        case "$line" in
        "ok    "*) ok "$name: ${line#ok    }" ;;
        "FAIL  "*) rest=${line#FAIL  }; bad "$name: ${rest%%: *}" "${rest#*: }" ;;
        "skip  "*) rest=${line#skip  }; skip "$name: ${rest%%: *}" "${rest#*: }" ;;
        esac
    done <"$TMP/unit.out"
    if [ "$rc" -ne 0 ] && [ "$FAIL" -eq "$f_before" ]; then bad "$name" "exit status $rc: $(tail -c 300 "$TMP/unit.err")"; fi
    if [ $((PASS + FAIL + SKIP)) -eq "$n_before" ]; then bad "$name" "printed no results (exit $rc)"; fi
done

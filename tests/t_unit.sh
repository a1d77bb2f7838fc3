# Unit tests: every build/tests/unit_* program prints ok/FAIL/skip lines.
for prog in "$BUILD"/tests/unit_*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    timeout 300 "$prog" "$SHARED" "$BUILD" >"$TMP/unit.out" 2>"$TMP/unit.err"
    relay_results "$name: " "$TMP/unit.out" "$TMP/unit.err" $? "$name"
done

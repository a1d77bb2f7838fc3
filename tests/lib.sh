# tests/lib.sh — the test harness every tests/t_*.sh file uses.
#
# Each test file is sourced by tests/run.sh with these variables set:
#   BUILD   the build folder holding chNN binaries and tools (e.g. build)
#   SHARED  ../shared (may be absent: then tests that need it call skip)
#   QUICK   1 in the sanitizer pass: tests may shorten long runs (document how)
#   TMP     a scratch folder, removed afterwards
# and record each result with exactly one call of ok, bad or skip.

ok()   { PASS=$((PASS + 1)); printf 'ok    %s\n' "$1"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL  %s: %s\n' "$1" "$2"; }
skip() { SKIP=$((SKIP + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }

# have_shared FILE...: true when every named file under $SHARED exists.
have_shared() {
    for f in "$@"; do [ -e "$SHARED/$f" ] || return 1; done
    return 0
}

# expect_error NAME CMD...: CMD must exit with status 1 and print exactly one
# line, starting with "error: ", on stderr, with nothing on stdout; it must not
# be killed by a signal or time out (30 s).
expect_error() {
    local name=$1; shift
    local out="$TMP/ee.out" err="$TMP/ee.err" rc
    timeout 30 "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    local lines; lines=$(wc -l <"$err")
    if [ "$rc" -ne 1 ]; then
        bad "$name" "exit status $rc, expected 1 ($(head -c 200 "$err" | tr '\n' ' '))"
    elif [ "$lines" -ne 1 ] || ! grep -q '^error: ' "$err"; then
        bad "$name" "stderr should be one 'error: ' line, got: $(head -c 300 "$err" | tr '\n' '|')"
    elif [ -s "$out" ]; then
        bad "$name" "printed to stdout: $(head -c 100 "$out")"
    else
        ok "$name"
    fi
}

# same_ids NAME OURS REF: two token-id lines; ours may run past a reference
# that stopped early at BOS (llama2.c stops when the argmax is BOS, which it
# does not write), but then our next id must be BOS (1).
same_ids() {
    local name=$1 ours=$2 ref=$3
    local verdict
    verdict=$(awk -v a="$ours" -v b="$ref" 'BEGIN {
        na = split(a, x, " "); nb = split(b, y, " ");
        for (i = 1; i <= nb; i++) if (i > na || x[i] != y[i]) {
            printf "first difference at index %d: ours %s, reference %s", i - 1, (i > na ? "(end)" : x[i]), y[i]; exit }
        if (na > nb && x[nb + 1] != 1) { printf "reference stopped at BOS after %d ids, ours continued with %s", nb, x[nb + 1]; exit }
        if (na < nb) { printf "ours has %d ids, reference %d", na, nb; exit }
        print "same" }')
    if [ "$verdict" = same ]; then ok "$name"; else bad "$name" "$verdict"; fi
}

# The reference prompts: "id<TAB>text" lines of $SHARED/reference/prompts.tsv.
prompt_ids() { cut -f1 "$SHARED/reference/prompts.tsv"; }
prompt_text() { awk -F '\t' -v id="$1" '$1 == id { print $2 }' "$SHARED/reference/prompts.tsv"; }

# greedy_ids BIN MODEL TOKENIZER PROMPT POSITIONS [EXTRA...]: print the ids of a
# greedy run that uses POSITIONS positions in all (BOS and prompt included),
# which is how the reference .tokens files count.
greedy_ids() {
    local bin=$1 model=$2 tok=$3 prompt=$4 positions=$5; shift 5
    local n_prompt
    n_prompt=$("$bin" -m "$model" -z "$tok" -p "$prompt" -n 0 --ids "$@" 2>/dev/null | wc -w) || return 1
    "$bin" -m "$model" -z "$tok" -p "$prompt" --temp 0 -n $((positions + 1 - n_prompt)) --ids "$@" 2>/dev/null
}

# save_greedy FILE ARGS...: greedy_ids ARGS... > FILE
save_greedy() { local out=$1; shift; greedy_ids "$@" >"$out"; }

# in_parallel CMD...: run CMD in the background, at most $JOBS (2) at a time.
in_parallel() {
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n 2>/dev/null || sleep 0.1; done
    "$@" &
}

# first_ids N LINE: the first N ids of a space-separated line.
first_ids() { echo "$2" | cut -d' ' -f1-"$1"; }

# le32 N...: the little-endian int32 bytes of each N, on stdout.
le32() {
    local v
    for v in "$@"; do
        [ "$v" -lt 0 ] && v=$((v + 4294967296))
        printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)))"
    done
}

# with_header OUT SRC H1..H7: SRC's weights behind a new 7-int llama2.c header.
with_header() {
    local out=$1 src=$2; shift 2
    { le32 "$@"; tail -c +29 "$src"; } >"$out"
}

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

# relay_results PREFIX OUT ERR RC NAME: a checker program's "ok    NAME", "FAIL  NAME: why" and
# "skip  NAME: why" lines (in file OUT) counted as this suite's own, PREFIX before each name; an
# exit status RC other than 0 without a FAIL line of its own, or no line at all, fails NAME (with
# the end of its stderr, file ERR).
relay_results() {
    local prefix=$1 out=$2 err=$3 rc=$4 name=$5 line rest n_before=$((PASS + FAIL + SKIP)) f_before=$FAIL
    while IFS= read -r line; do
        case "$line" in
        "ok    "*) ok "$prefix${line#ok    }" ;;
        "FAIL  "*) rest=${line#FAIL  }; bad "$prefix${rest%%: *}" "${rest#*: }" ;;
        "skip  "*) rest=${line#skip  }; skip "$prefix${rest%%: *}" "${rest#*: }" ;;
        esac
    done <"$out"
    if [ "$rc" -ne 0 ] && [ "$FAIL" -eq "$f_before" ]; then bad "$name" "exit status $rc: $(tail -c 300 "$err")"; fi
    if [ $((PASS + FAIL + SKIP)) -eq "$n_before" ]; then bad "$name" "printed no results (exit $rc)"; fi
}

# The reference prompts: "id<TAB>text" lines of $SHARED/reference/prompts.tsv.
prompt_ids() { cut -f1 "$SHARED/reference/prompts.tsv"; }
prompt_text() { awk -F '\t' -v id="$1" '$1 == id { print $2 }' "$SHARED/reference/prompts.tsv"; }

# greedy_ids BIN MODEL TOKENIZER PROMPT POSITIONS [EXTRA...]: print the ids of a
# greedy run that uses POSITIONS positions in all (BOS and prompt included),
# which is how the reference .tokens files count. TOKENIZER "-": none (a GGUF
# file brings its own vocabulary).
greedy_ids() {
    local bin=$1 model=$2 tok=$3 prompt=$4 positions=$5; shift 5
    local n_prompt z=()
    [ "$tok" != - ] && z=(-z "$tok")
    n_prompt=$("$bin" -m "$model" "${z[@]}" -p "$prompt" -n 0 --ids "$@" 2>/dev/null | wc -w) || return 1
    "$bin" -m "$model" "${z[@]}" -p "$prompt" --temp 0 -n $((positions + 1 - n_prompt)) --ids "$@" 2>/dev/null
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

# ---- The chapters' table (chapters/chapters.tsv) ------------------------
# The test stages find the chapters here instead of naming them, so that a new chapter is
# tested by its row alone. Columns: chapter NN, kind plain|simd, reads bin|gguf, introduces.
CHAPTER_TABLE=${CHAPTER_TABLE:-chapters/chapters.tsv}

# chapters [COLUMN=VALUE...]: the chapter numbers (NN) of the table, in order, that match
# every filter: `chapters` (all), `chapters kind=simd`, `chapters kind=simd reads=gguf`.
chapters() {
    awk -F '\t' -v want="$*" '
        BEGIN { col["chapter"] = 1; col["kind"] = 2; col["reads"] = 3; col["introduces"] = 4
                n = split(want, f, " ")
                for (i = 1; i <= n; i++) {
                    split(f[i], kv, "=")
                    if (!(kv[1] in col)) { print "chapters: unknown column " kv[1] > "/dev/stderr"; exit 2 }
                    c[i] = col[kv[1]]; v[i] = kv[2]
                } }
        /^#/ || NF < 4 { next }
        { for (i = 1; i <= n; i++) if ($(c[i]) != v[i]) next; print $1 }' "$CHAPTER_TABLE"
}

# chapter_is NN COLUMN=VALUE...: true when chapter NN's row matches every filter
chapter_is() { local nn=$1; shift; chapters "$@" | grep -qx "$nn"; }

# chapter_field NN COLUMN: one field of chapter NN's row (kind, reads or introduces)
chapter_field() {
    awk -F '\t' -v nn="$1" -v name="$2" '
        BEGIN { col["chapter"] = 1; col["kind"] = 2; col["reads"] = 3; col["introduces"] = 4 }
        !/^#/ && $1 == nn { print $(col[name]); exit }' "$CHAPTER_TABLE"
}

# chapter_before NN [COLUMN=VALUE...]: the last chapter before NN that matches the filters
# (`chapter_before 06` is 05, `chapter_before 06 reads=bin` is 04); nothing when there is none
chapter_before() {
    local nn=$1; shift
    chapters "$@" | awk -v nn="$nn" '$1 + 0 < nn + 0 { last = $1 } END { if (last != "") print last }'
}

# chapter_first [COLUMN=VALUE...]: the first chapter that matches the filters
chapter_first() { chapters "$@" | head -n 1; }

# thread_args NN T: "-t T" for a simd chapter (which has a thread pool), nothing for a plain one
thread_args() { [ "$2" != - ] && chapter_is "$1" kind=simd && echo "-t $2"; return 0; }

# tiny_gguf TYPE: build/models/tiny.bin converted to a GGUF of TYPE (q4_0, q8_0, f32, ...) by
# gguf_convert, made beside it on first use and again whenever tiny.bin is newer, as
# tools/grade/grade.sh and the Makefile's `run` make it; prints its path, or fails. A cross
# build (HOST_BUILD) uses the host's converter.
tiny_gguf() {
    local host=${HOST_BUILD:-$BUILD}
    local out=$host/models/tiny-$1.gguf
    if [ ! -e "$out" ] || [ "$host/models/tiny.bin" -nt "$out" ]; then
        [ -x "$host/gguf_convert" ] && [ -e "$host/models/tiny.bin" ] || return 1
        "$host/gguf_convert" -m "$host/models/tiny.bin" -z "$host/models/tok512.bin" -o "$out.tmp$$" -t "$1" \
            >/dev/null 2>&1 && mv "$out.tmp$$" "$out" || { rm -f "$out.tmp$$"; return 1; }
    fi
    echo "$out"
}

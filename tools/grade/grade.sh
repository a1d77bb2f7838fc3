#!/usr/bin/env bash
# tools/grade/grade.sh — the exercises: starter files for students, and the grader.
#
#   bash tools/grade/grade.sh student N     write $STUDENT/NN_name.c: chapter N with the bodies
#                                           of its exercises removed (make student CH=N)
#   bash tools/grade/grade.sh grade N       grade $STUDENT/NN_name.c (make grade CH=N)
#   bash tools/grade/grade.sh list          every chapter's exercises: "NN id name" lines
#   bash tools/grade/grade.sh files N       the files of chapter N's exercises, the chapter first
#   bash tools/grade/grade.sh chain N       "prev max_diff min_top1 max_kl": the previous chapter that
#                                           grading compares with, and its tolerances (tests/chain.tsv);
#                                           nothing when there is none
#
# An exercise is a region of a chapter's source between two comments,
# /* EXERCISE N.k BEGIN: name ... */ and /* EXERCISE N.k END */ (tools/grade/exercises.awk
# reads them). Grading builds, with the shared driver, one program per exercise — the
# unmodified chapter with only that exercise's body taken from the student's file, so that a
# failure is attributed to the exercise that causes it — and one from the student's whole
# file. Each must compile, then agree with the unmodified chapter (build/chNN) and with the
# previous chapter (tests/chain.tsv) on teacher-forced logits (build/logits_cmp decides; the
# report adds from which position on they differ), give the same greedy ids, and pass the
# chapter's probe if it has one (tools/grade/chapters.tsv says which checks, on which model).
# An exercise may also live in a file of src/ that the chapter uses (chapter 4's SIMD
# kernels are in src/q8_kernels.h, chapter 5's GGUF reader is src/gguf.c): the chapter's
# line in tools/grade/chapters.tsv names such files, and their EXERCISE N.k markers of
# chapter N count. The starter then holds a copy of each too (student/gguf.c), and every
# program is built with those copies in place of src's: each candidate is a folder with
# the chapter, every header of src/ (so that any #include "x.h" finds the candidate's
# version) and the named .c files, whose objects replace build/obj's.
# Exit status 0 when everything passes, 1 when something fails, 2 on misuse.
#
# Environment (the Makefile's grade target sets it): CC, CFLAGS (the chapter's compile flags),
# LDLIBS, MAIN_OBJ (the driver: build/obj/main.o build/obj/server.o), LIB_OBJS, BUILD (build), SHARED (../shared),
# STUDENT (student), JOBS (2).
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
STUDENT=${STUDENT:-student}
JOBS=${JOBS:-2}
CC=${CC:-cc}
CFLAGS=${CFLAGS:--std=c11 -O2 -g -Wall -Wextra -D_DEFAULT_SOURCE -D_DARWIN_C_SOURCE -Isrc}
LDLIBS=${LDLIBS:--lm -lpthread}
MAIN_OBJ=${MAIN_OBJ:-$BUILD/obj/main.o $BUILD/obj/server.o}
if [ -z "${LIB_OBJS:-}" ]; then
    for o in "$BUILD"/obj/*.o; do case " $MAIN_OBJ " in *" $o "*) ;; *) LIB_OBJS="${LIB_OBJS:-} $o" ;; esac; done
fi
EX_AWK=tools/grade/exercises.awk
PROMPT="Once upon a time"
GREEDY_POSITIONS=24

die() { echo "error: $*" >&2; exit 2; }

# chapter_file N: chapters/NN_*.c
chapter_file() {
    local f
    f=$(ls chapters/"$1"_*.c 2>/dev/null | head -n 1)
    [ -n "$f" ] || die "no chapter $1 (chapters/$1_*.c)"
    echo "$f"
}

# exercises FILE NN: "id<TAB>name<TAB>function<TAB>line<TAB>parts" for chapter NN's exercises
exercises() { awk -v mode=list -v ch="$((10#$2))" -f "$EX_AWK" "$1"; }

# exercise_files NN: the chapter's source, then the files of src/ that hold some of its
# exercises (the sources column of tools/grade/chapters.tsv)
exercise_files() {
    local ref f sources
    ref=$(chapter_file "$1") || exit 2
    echo "$ref"
    sources=$(awk -F '\t' -v ch="$1" '$1 == ch { print $10 }' tools/grade/chapters.tsv)
    for f in ${sources//,/ }; do
        [ "$f" = - ] && continue
        case $f in src/*.c | src/*.h) ;; *) die "tools/grade/chapters.tsv, chapter $1: $f is not a file of src/" ;; esac
        [ -e "$f" ] || die "tools/grade/chapters.tsv, chapter $1: $f not found"
        echo "$f"
    done
    return 0
}

# all_exercises NN: the exercises of every file of the chapter, ordered by number, each line
# with the file it is in as a sixth field
all_exercises() {
    local f
    for f in $(exercise_files "$1"); do
        exercises "$f" "$1" | awk -v f="$f" '{ print $0 "\t" f }'
    done | sort -t . -k 2,2n
}

nn_of() {
    case $1 in '' | *[!0-9]*) die "CH=$1: expected a chapter number" ;; esac
    printf %02d $((10#$1))
}

# --------------------------------------------------------------------------------------------
cmd_list() {
    local f nn
    for f in chapters/[0-9][0-9]_*.c; do
        nn=$(basename "$f" | cut -c1-2)
        all_exercises "$nn" | awk -F '\t' -v nn="$nn" '{ print nn, $1, $2 }'
    done
}

cmd_student() {
    local nn ref out f files
    nn=$(nn_of "$1") || exit 2
    ref=$(chapter_file "$nn") || exit 2
    files=$(exercise_files "$nn") || exit 2
    [ -n "$(all_exercises "$nn")" ] || die "chapter $((10#$nn)) has no exercises yet (no EXERCISE $((10#$nn)).k markers in $ref)"
    # never overwrite a student's file; write only those missing (a chapter whose src/ file
    # gained exercises later), and refuse when none is
    local missing=0
    for f in $files; do [ -e "$STUDENT/$(basename "$f")" ] || missing=1; done
    if [ "$missing" = 0 ] && [ "${FORCE:-0}" != 1 ]; then
        [ "$(echo "$files" | wc -l)" -eq 1 ] &&
            die "$STUDENT/$(basename "$ref") exists and may hold your work: move it away, or run with FORCE=1 to overwrite it"
        die "$(for f in $files; do printf '%s ' "$STUDENT/$(basename "$f")"; done)exist and may hold your work: move them away, or run with FORCE=1 to overwrite them"
    fi
    mkdir -p "$STUDENT"
    for f in $files; do
        out=$STUDENT/$(basename "$f")
        if [ -e "$out" ] && [ "${FORCE:-0}" != 1 ]; then
            echo "kept $out (it exists and may hold your work)"
            continue
        fi
        {
            echo "/* Starter for the exercises of chapter $((10#$nn)), made by \`make student CH=$((10#$nn))\` from $f."
            echo " * Write the body of each EXERCISE $((10#$nn)).k region below (keep its BEGIN and END comments),"
            echo " * then run \`make grade CH=$((10#$nn))\`. The chapter's page in the book explains each exercise. */"
            awk -v mode=starter -v ch="$((10#$nn))" -f "$EX_AWK" "$f"
        } >"$out.tmp" || { rm -f "$out.tmp"; die "could not write $out"; }
        mv "$out.tmp" "$out"
        local these
        these=$(exercises "$f" "$nn" | awk -F '\t' '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
        echo "wrote $out${these:+: $these}"
    done
    echo "next: write the bodies, then \`make grade CH=$((10#$nn))\`"
}

# --------------------------------------------------------------------------------------------
# Grading

# config NN: the chapter's line of tools/grade/chapters.tsv (tab-separated fields)
config() { awk -F '\t' -v ch="$1" '$1 == ch' tools/grade/chapters.tsv; }
# chain NN: "prev max_diff min_top1 max_kl" from chapter NN's line of tests/chain.tsv; nothing
# when it has none, or when the previous chapter reads another format than NN (the "reads"
# column of chapters/chapters.tsv): chapter 4 cannot run chapter 5's GGUF model, the chain
# compares those two on two files made from one model, and a student's chapter 5 is held to
# the unmodified chapter 5 alone
reads_of() { awk -F '\t' -v ch="$1" '!/^#/ && $1 == ch { print $3 }' chapters/chapters.tsv; }
chain() {
    local line
    line=$(awk -F '\t' -v ch="$1" '$1 == ch { print $2, $4, $5, $6; exit }' tests/chain.tsv 2>/dev/null)
    [ -n "$line" ] && [ "$(reads_of "${line%% *}")" = "$(reads_of "$1")" ] && echo "$line"
    return 0
}

# pick_model LIST: "MODEL TOKENIZER NAME" for the first model of the comma list that exists
# (TOKENIZER "-" for a GGUF file, which brings its own vocabulary)
pick_model() {
    local name
    for name in ${1//,/ }; do
        case $name in
        tiny) [ -e "$BUILD/models/tiny.bin" ] && { echo "$BUILD/models/tiny.bin $BUILD/models/tok512.bin tiny"; return; } ;;
        tiny-*.gguf) # the synthetic model converted (build/gguf_convert), once, and again when tiny.bin is newer
            local type=${name#tiny-} out=$BUILD/models/$name
            type=${type%.gguf}
            if { [ ! -e "$out" ] || [ "$BUILD/models/tiny.bin" -nt "$out" ]; } && [ -x "$BUILD/gguf_convert" ] &&
                [ -e "$BUILD/models/tiny.bin" ]; then
                "$BUILD/gguf_convert" -m "$BUILD/models/tiny.bin" -z "$BUILD/models/tok512.bin" -o "$out.tmp" -t "$type" \
                    >/dev/null 2>&1 && mv "$out.tmp" "$out"
            fi
            [ -e "$out" ] && { echo "$out - $name"; return; } ;;
        *.gguf) [ -e "$SHARED/models/gguf/$name" ] && { echo "$SHARED/models/gguf/$name - $name"; return; } ;;
        *) [ -e "$SHARED/models/$name.bin" ] && [ -e "$SHARED/models/tok512.bin" ] &&
            { echo "$SHARED/models/$name.bin $SHARED/models/tok512.bin $name"; return; } ;;
        esac
    done
    return 1
}

# token_ids K: the first K ids of the reference sequence ts0 (or a fixed synthetic one)
token_ids() {
    if [ -e "$SHARED/reference/ts0.tok512.tokens" ]; then
        tr -s ' \n' '\n\n' <"$SHARED/reference/ts0.tok512.tokens" | grep . | head -n "$1" | tr '\n' ' '
    else
        awk -v k="$1" 'BEGIN { printf "1"; for (i = 1; i < k; i++) printf " %d", (i * 37) % 509 + 3 }'
    fi
    echo
}

# why_failed RC ERRFILE: words for a run that did not exit 0
why_failed() {
    case $1 in
    124) echo "timed out (an endless loop?)" ;;
    13[0-9] | 1[4-9][0-9]) echo "crashed (signal $(($1 - 128))$([ "$1" = 139 ] && echo ": segmentation fault, an index out of range?"))" ;;
    *) echo "exited with status $1: $(tail -n 1 "$2" | cut -c1-160)" ;;
    esac
}

# compare REF NEW WHAT MAX_DIFF MIN_TOP1 MAX_KL: empty when NEW's logits agree with REF's
# within the tolerances ("-": not checked), else one line saying how they differ. The verdict
# and the figures are build/logits_cmp's (the suite's own comparison); where the logits start
# to differ is found here: the first position whose largest |diff| is over MAX_DIFF, or
# whose argmax differs when only MIN_TOP1 or MAX_KL are given.
compare() {
    local ref=$1 new=$2 what=$3 args=() allowed=() summary rc n v where
    [ "$4" != - ] && args+=(--max-diff "$4") && allowed+=("max |diff| $4")
    [ "$5" != - ] && args+=(--min-top1 "$5") && allowed+=("top-1 share $5")
    [ "$6" != - ] && args+=(--max-kl "$6") && allowed+=("mean KL $6")
    [ ${#args[@]} -eq 0 ] && return
    summary=$("$BUILD/logits_cmp" "$ref" "$new" "${args[@]}" 2>"$new.cmp")
    rc=$?
    [ "$rc" -eq 0 ] && return
    if [ "$rc" -ne 1 ]; then echo "its logits could not be compared with $what: $(tail -n 1 "$new.cmp")"; return; fi
    read -r n v <<<"$(od -An -tu4 -j8 -N8 "$ref")"
    where=$(paste -d ' ' <(od -An -v -tf4 -j $((16 + 4 * n)) "$ref") <(od -An -v -tf4 -j $((16 + 4 * n)) "$new") |
        awk -v V="$v" -v N="$n" -v tol="$4" '
        function row_done(   j, ia, ib, worst, d) {
            ia = ib = 0; worst = 0
            for (j = 0; j < V; j++) {
                if (a[j] > a[ia]) ia = j
                if (b[j] > b[ib]) ib = j
                d = a[j] - b[j]; if (d < 0) d = -d
                if (d > worst) worst = d
            }
            bad[row] = nan ? 1 : (tol != "-") ? worst > tol + 0 : ia != ib
            if (nan && first_nan < 0) first_nan = row
            row++; nan = 0
        }
        BEGIN { row = k = nan = 0; first_nan = -1 }
        {
            h = NF / 2
            for (i = 1; i <= h; i++) {
                a[k] = $i + 0; b[k] = $(i + h) + 0
                if ($(i + h) ~ /nan|inf/) nan = 1
                if (++k == V) { row_done(); k = 0 }
            }
        }
        END {
            for (r = 0; r < N && !bad[r]; r++);
            if (r == N) exit
            n_bad = 0; for (s = r; s < N; s++) n_bad += bad[s]
            what = first_nan >= 0 ? sprintf(" (NaN or infinite from position %d)", first_nan) : ""
            if (n_bad == N - r) printf "from position %d on%s", r, what
            else printf "at %d of %d positions, from position %d%s", n_bad, N, r, what
        }')
    local limits
    limits=$(printf '%s, ' "${allowed[@]}")
    echo "teacher-forced logits differ from $what${where:+ $where}: $summary (allowed: ${limits%, })"
}

# greedy BIN OUT: the ids of a greedy run of GREEDY_POSITIONS positions from PROMPT
greedy() {
    local n_prompt
    n_prompt=$(timeout 60 "$1" "${GREEDY_ARGS[@]}" -p "$PROMPT" -n 0 --ids 2>/dev/null | wc -w)
    timeout 60 "$1" "${GREEDY_ARGS[@]}" -p "$PROMPT" --temp 0 --ignore-eos -n $((GREEDY_POSITIONS + 1 - n_prompt)) --ids >"$2" 2>"$2.err"
}

# check_program BIN: the checks every candidate must pass; prints one reason per failure
check_program() {
    local bin=$1 rc reason
    timeout 60 "$bin" "${RUN_ARGS[@]}" --logits "$bin.lgts" --tokens-file "$W/ids" >/dev/null 2>"$bin.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then echo "teacher-forced run $(why_failed "$rc" "$bin.err")"; return; fi
    reason=$(compare "$W/ref.lgts" "$bin.lgts" "chapter $CH's" "$MAX_DIFF" "$MIN_TOP1" "$MAX_KL")
    [ -n "$reason" ] && echo "$reason"
    # the previous chapter's tolerance matters when the chapter's own is looser
    if [ -n "$PREV" ] && [ -z "$reason" ]; then
        reason=$(compare "$W/prev.lgts" "$bin.lgts" "chapter $((10#$PREV))'s" "$PREV_DIFF" "$PREV_TOP1" "$PREV_KL")
        [ -n "$reason" ] && echo "$reason"
    fi
    if [ "$GREEDY" = same ]; then
        greedy "$bin" "$bin.ids"
        rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "greedy run $(why_failed "$rc" "$bin.ids.err")"
        else
            awk -v a="$(cat "$bin.ids")" -v b="$(cat "$W/ref.ids")" -v what="chapter $CH's" 'BEGIN {
                na = split(a, x, " "); nb = split(b, y, " ")
                for (i = 1; i <= nb; i++) if (i > na || x[i] != y[i]) {
                    printf "greedy ids differ from %s at index %d of %d (yours %s, reference %s)\n", what, i - 1, nb,
                        (i > na ? "(none)" : x[i]), y[i]; exit } }'
        fi
    fi
}

# check_probe DIR TAG: compile and run the chapter's probe around the candidate in DIR
check_probe() {
    local dir=$1 bin=$W/probe-$2 rc
    [ "$PROBE" = - ] && return
    # shellcheck disable=SC2086,SC2046
    if ! $CC $CFLAGS -O0 -w -DGRADE_SOURCE="\"$dir/$(basename "$REF")\"" -o "$bin" "tools/grade/$PROBE" \
        $(candidate_c_files "$dir") $CAND_LIB_OBJS $LDLIBS 2>"$bin.cc"; then
        echo "the probe (tools/grade/$PROBE) does not compile with this file: $(grep -m 1 'error' "$bin.cc" | cut -c1-200)"
        return
    fi
    timeout 60 "$bin" "$MODEL" ${THREADS:+"$THREADS"} >"$bin.out" 2>"$bin.err"
    rc=$?
    grep '^FAIL  ' "$bin.out" | sed 's/^FAIL  /probe: /' | awk 'NR == 1 { first = $0 } END { if (NR) print first (NR > 1 ? sprintf(" (and %d more probe failures)", NR - 1) : "") }'
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$bin.out"; then echo "probe $(why_failed "$rc" "$bin.err")"; fi
}

# candidate_dir DIR: a folder for one candidate, holding every header of src/ (the chapter's
# #include "x.h" looks beside the chapter first); the caller adds the exercise files
candidate_dir() { mkdir -p "$1" && cp src/*.h "$1/"; }

# candidate_c_files DIR: the candidate's copies of the marked .c files of src/ (compiled in
# place of their objects in build/obj, which CAND_LIB_OBJS leaves out)
candidate_c_files() {
    local f
    for f in $FILES; do
        [ "$f" != "$REF" ] && case $f in *.c) echo "$1/$(basename "$f")" ;; esac
    done
    return 0
}

# candidate TAG DIR: compile the candidate in DIR with the driver and check it; writes
# $W/result-TAG. A candidate that is the unmodified chapter (#line directives aside) is not
# compiled again: build/chNN is that program.
candidate() {
    local tag=$1 dir=$2 bin=$W/bin-$1 out=$W/result-$1 f same=1
    for f in $FILES; do grep -v '^#line ' "$dir/$(basename "$f")" | cmp -s - "$f" || same=0; done
    # shellcheck disable=SC2086,SC2046
    if [ "$same" = 1 ]; then
        cp "$BUILD/ch$NN" "$bin"
    elif ! $CC $CFLAGS -o "$bin" "$dir/$(basename "$REF")" $(candidate_c_files "$dir") $MAIN_OBJ $CAND_LIB_OBJS $LDLIBS \
        2>"$bin.cc"; then
        echo "does not compile: $(grep -m 1 -E 'error|undefined reference' "$bin.cc" | cut -c1-200)" >"$out"
        return
    fi
    {
        check_program "$bin"
        check_probe "$dir" "$tag"
    } >"$out"
    if [ -e "$bin.cc" ] && grep -q 'warning' "$bin.cc"; then
        echo "note: compiles with $(grep -c 'warning:' "$bin.cc") warning(s), first: $(grep -m 1 'warning:' "$bin.cc" | cut -c1-160)" >"$W/note-$tag"
    fi
}

# summary LINES: the reasons of a failure, on one line
summary() { echo "$1" | paste -sd ';' - | sed 's/;/; /g'; }

in_parallel() {
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n 2>/dev/null || sleep 0.1; done
    "$@" &
}

cmd_grade() {
    local nn ref stu list cfg models f o
    nn=$(nn_of "$1") || exit 2
    CH=$((10#$nn))
    ref=$(chapter_file "$nn") || exit 2
    REF=$ref NN=$nn
    FILES=$(exercise_files "$nn" | tr '\n' ' ') || exit 2
    list=$(all_exercises "$nn")
    [ -n "$list" ] || die "chapter $CH has no exercises yet (no EXERCISE $CH.k markers in $ref)"
    stu=
    for f in $FILES; do
        [ -e "$STUDENT/$(basename "$f")" ] || die "$STUDENT/$(basename "$f") not found: run \`make student CH=$CH\` first"
        stu="$stu${stu:+, }$STUDENT/$(basename "$f")"
    done
    # build/obj's objects, less those of the marked .c files (each candidate has its own copy)
    CAND_LIB_OBJS=
    for o in $LIB_OBJS; do
        case " $FILES " in *" src/$(basename "$o" .o).c "*) ;; *) CAND_LIB_OBJS="$CAND_LIB_OBJS $o" ;; esac
    done
    cfg=$(config "$nn")
    [ -n "$cfg" ] || die "chapter $CH has no line in tools/grade/chapters.tsv"
    IFS=$'\t' read -r _ models POSITIONS MAX_DIFF MIN_TOP1 MAX_KL GREEDY PROBE THREADS _ <<<"$cfg"
    [ "${THREADS:--}" = - ] && THREADS=
    cfg=$(pick_model "$models") || die "none of the models $models is available (run make)"
    read -r MODEL TOK MODEL_NAME <<<"$cfg"
    # every run: the model, and the thread count when the chapter's line sets one
    RUN_ARGS=(-m "$MODEL" ${THREADS:+-t "$THREADS"})
    GREEDY_ARGS=("${RUN_ARGS[@]}")
    [ "$TOK" != - ] && GREEDY_ARGS+=(-z "$TOK") # "-": a GGUF file brings its own vocabulary
    read -r PREV PREV_DIFF PREV_TOP1 PREV_KL <<<"$(chain "$nn")"
    [ -n "$PREV" ] && [ ! -x "$BUILD/ch$PREV" ] && PREV=
    [ -x "$BUILD/ch$nn" ] || die "$BUILD/ch$nn not built (run make)"
    for o in $MAIN_OBJ; do [ -e "$o" ] || die "$o not built (run make)"; done
    [ -x "$BUILD/logits_cmp" ] || die "$BUILD/logits_cmp not built (run make)"

    W=$(mktemp -d)
    trap 'rm -rf "$W"' EXIT
    token_ids "$POSITIONS" >"$W/ids"
    "$BUILD/ch$nn" "${RUN_ARGS[@]}" --logits "$W/ref.lgts" --tokens-file "$W/ids" 2>"$W/ref.err" ||
        die "the reference $BUILD/ch$nn failed: $(tail -n 1 "$W/ref.err")"
    if [ -n "$PREV" ] && ! "$BUILD/ch$PREV" "${RUN_ARGS[@]}" --logits "$W/prev.lgts" --tokens-file "$W/ids" 2>"$W/prev.err"; then
        # a chapter before the GGUF reader cannot read a GGUF model: compare with the chapter alone
        case $MODEL in *.gguf) PREV= ;; *) die "$BUILD/ch$PREV failed: $(tail -n 1 "$W/prev.err")" ;; esac
    fi
    [ "$GREEDY" = same ] && { greedy "$BUILD/ch$nn" "$W/ref.ids" || die "the reference greedy run failed"; }

    echo "grading $stu: chapter $CH, $(echo "$list" | wc -l | tr -d ' ') exercises; model $MODEL_NAME, $POSITIONS teacher-forced positions${THREADS:+, $THREADS threads}$([ -n "$PREV" ] && echo ", vs chapter $CH and chapter $((10#$PREV))")"
    # One program per exercise, and the whole file; programs made from the same source (a
    # student's file that leaves some exercises as they were) are built and checked once.
    local id name i=0 key same="" dir
    while IFS=$'\t' read -r id name _; do
        i=$((i + 1))
        dir=$W/cand-$i
        candidate_dir "$dir"
        for f in $FILES; do
            if ! awk -v mode=hybrid -v id="$id" -v student_name="$STUDENT/$(basename "$f")" -v ref_name="$f" \
                -f "$EX_AWK" "$STUDENT/$(basename "$f")" "$f" >"$dir/$(basename "$f")" 2>"$W/src-$i.err"; then
                sed 's/^error: //' "$W/src-$i.err" | head -n 1 >"$W/result-$i"
                rm -rf "$dir"
                break
            fi
        done
    done <<<"$list"
    dir=$W/cand-whole
    candidate_dir "$dir"
    for f in $FILES; do
        { echo "#line 1 \"$STUDENT/$(basename "$f")\""; cat "$STUDENT/$(basename "$f")"; } >"$dir/$(basename "$f")"
    done
    for dir in "$W"/cand-*; do
        i=${dir#"$W"/cand-}
        key=$(for f in $FILES; do grep -v '^#line ' "$dir/$(basename "$f")"; done | cksum | tr ' ' _)
        case " $same " in
        *" $key="*) echo "$i ${same##*" $key="}" | cut -d' ' -f1,2 >>"$W/aliases" ;;
        *) same="$same $key=$i"; in_parallel candidate "$i" "$dir" ;;
        esac
    done
    wait
    [ -e "$W/aliases" ] && while read -r i leader; do
        cp "$W/result-$leader" "$W/result-$i"
        [ -e "$W/note-$leader" ] && cp "$W/note-$leader" "$W/note-$i"
    done <"$W/aliases"

    local n_pass=0 n=0 result
    while IFS=$'\t' read -r id name _; do
        n=$((n + 1))
        result=$(grep -v '^$' "$W/result-$n")
        if [ -z "$result" ]; then
            echo "ok    exercise $id $name"; n_pass=$((n_pass + 1))
        else
            echo "FAIL  exercise $id $name: $(summary "$result")"
        fi
        [ -e "$W/note-$n" ] && sed 's/^/      /' "$W/note-$n"
    done <<<"$list"
    result=$(grep -v '^$' "$W/result-whole")
    local whole="the whole file $stu"
    case $stu in *,*) whole="the whole files $stu" ;; esac
    if [ -z "$result" ]; then echo "ok    $whole"
    else echo "FAIL  $whole: $(summary "$result")"; fi
    [ -e "$W/note-whole" ] && sed 's/^/      /' "$W/note-whole"
    echo "$n_pass of $n exercises pass$([ -z "$result" ] && echo "; the whole file passes" || echo "; the whole file fails")"
    [ "$n_pass" -eq "$n" ] && [ -z "$result" ]
}

case ${1:-} in
list) cmd_list ;;
files) [ $# -eq 2 ] || die "usage: grade.sh files N"; exercise_files "$(nn_of "$2")" ;;
chain) [ $# -eq 2 ] || die "usage: grade.sh chain N"; chain "$(nn_of "$2")" ;;
student) [ $# -eq 2 ] || die "usage: grade.sh student N"; cmd_student "$2" ;;
grade) [ $# -eq 2 ] || die "usage: grade.sh grade N"; cmd_grade "$2" ;;
*) die "usage: grade.sh list | files N | chain N | student N | grade N" ;;
esac

# Chapter 4: SIMD kernels and threads change the speed, not one bit of the result.
#
#  - teacher-forced logits (LGTS files compared with cmp) identical to chapter 3's and to
#    themselves with 1, 2, 3 and 4 threads, on stories260K, llama2xs and syn-k256 ($SHARED)
#    and on a synthetic model made here (dim 256, 2 layers, 200 positions) in which every
#    step of a token is large enough to be shared among threads;
#  - greedy ids and sampled text the same with 1 and 4 threads;
#  - -v names the kernels and the thread count; bad --threads values are refused.
#
# A cross build (tests/run_all.sh's arm64 stage) sets RUNNER (e.g. "qemu-aarch64 -L
# /usr/aarch64-linux-gnu") and HOST_BUILD (the native build with ch03, mksynth and
# logits_cmp): chapter 4 then runs under RUNNER and is compared with the host's chapter 3,
# and this file also runs the cross-built unit tests (tests/unit_ch04.c, and tests/unit_tiles.c
# where it was built) under RUNNER.
# QUICK=1 (sanitizer and clang passes, qemu): threads 1 and 3 only, and the real models
# with 64 positions.
RUNNER=${RUNNER:-}
HOST_BUILD=${HOST_BUILD:-$BUILD}
CH04=$BUILD/ch04
CH04_RUN=$CH04 # what runs it: the binary itself, or a script that hands it to the runner
if [ -n "$RUNNER" ]; then
    CH04_RUN=$TMP/ch04-run
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$RUNNER" "$CH04" >"$CH04_RUN"
    chmod +x "$CH04_RUN"
fi

ch04() { "$CH04_RUN" "$@"; }

# ch04_logits NAME MODEL IDS_FILE: ch04's logits with each thread count equal ch03's, bit for bit
ch04_logits() {
    local name=$1 model=$2 ids=$3 threads="1 2 3 4" t
    [ "$QUICK" = 1 ] && threads="1 3"
    if [ ! -x "$HOST_BUILD/ch03" ]; then skip "ch04 $name logits = ch03" "$HOST_BUILD/ch03 not built"; return; fi
    if ! "$HOST_BUILD/ch03" -m "$model" --logits "$TMP/c3.lgts" --tokens-file "$ids" 2>"$TMP/err"; then
        bad "ch04 $name logits = ch03" "ch03 failed: $(tail -n 1 "$TMP/err")"; return
    fi
    for t in $threads; do
        local what="ch04 $name teacher-forced logits, $t thread(s): chapter 3's bit for bit"
        if ! ch04 -m "$model" -t "$t" --logits "$TMP/c4.lgts" --tokens-file "$ids" 2>"$TMP/err"; then
            bad "$what" "ch04 failed: $(tail -n 1 "$TMP/err")"
        elif cmp -s "$TMP/c3.lgts" "$TMP/c4.lgts"; then
            ok "$what"
        else
            bad "$what" "$("$HOST_BUILD/logits_cmp" "$TMP/c3.lgts" "$TMP/c4.lgts" 2>&1 | tr '\n' ' ')"
        fi
    done
}

# The synthetic model: big enough that matmuls, attention and the classifier are all split.
SYN=$TMP/syn256.bin SYN_TOK=$TMP/syn256-tok.bin
if [ ! -x "$CH04" ]; then
    skip "ch04" "$CH04 not built"
elif ! "$HOST_BUILD/mksynth" --dim 256 --hidden 768 --layers 2 --heads 8 --kv-heads 4 --vocab 512 --seq-len 256 \
    --seed 4 -o "$SYN" --tokenizer-out "$SYN_TOK" >/dev/null 2>"$TMP/err"; then
    bad "ch04 synthetic model" "mksynth failed: $(tail -n 1 "$TMP/err")"
else
    awk 'BEGIN { printf "1"; for (i = 1; i < 200; i++) printf " %d", (i * 73) % 509 + 3; print "" }' >"$TMP/ids200"
    ch04_logits "synthetic dim-256" "$SYN" "$TMP/ids200"

    for m in stories260K llama2xs syn-k256; do
        if ! have_shared "models/$m.bin" reference/ts0.tok512.tokens; then skip "ch04 $m logits" "not in $SHARED"; continue; fi
        ids=$SHARED/reference/ts0.tok512.tokens
        if [ "$QUICK" = 1 ]; then cut -d' ' -f1-64 "$ids" >"$TMP/ids64"; ids=$TMP/ids64; fi
        ch04_logits "$m" "$SHARED/models/$m.bin" "$ids"
    done

    # generation: ids of a greedy run and a sampled text, 1 thread against 4
    g1=$(ch04 -m "$SYN" -z "$SYN_TOK" -p "Once upon a time" -n 150 --temp 0 --ids -t 1 2>/dev/null)
    g4=$(ch04 -m "$SYN" -z "$SYN_TOK" -p "Once upon a time" -n 150 --temp 0 --ids -t 4 2>/dev/null)
    if [ -n "$g1" ] && [ "$g1" = "$g4" ]; then ok "ch04 greedy ids with 4 threads = 1 thread ($(echo "$g1" | wc -w) ids)"
    else bad "ch04 greedy ids with 4 threads = 1 thread" "$(echo "$g1" | cut -c1-60) | $(echo "$g4" | cut -c1-60)"; fi
    s1=$(ch04 -m "$SYN" -z "$SYN_TOK" -p "Once upon a time" -n 100 --temp 0.8 --top-p 0.9 -s 42 -t 1 2>/dev/null)
    s3=$(ch04 -m "$SYN" -z "$SYN_TOK" -p "Once upon a time" -n 100 --temp 0.8 --top-p 0.9 -s 42 -t 3 2>/dev/null)
    if [ -n "$s1" ] && [ "$s1" = "$s3" ]; then ok "ch04 sampled text (seed 42) with 3 threads = 1 thread"
    else bad "ch04 sampled text (seed 42) with 3 threads = 1 thread" "$(echo "$s1" | head -c 60) | $(echo "$s3" | head -c 60)"; fi

    # what it says about itself
    ch04 -m "$SYN" -z "$SYN_TOK" -n 1 -t 3 -v >/dev/null 2>"$TMP/v.err"
    if grep -q '^kernels: .*; threads: 3$' "$TMP/v.err"; then ok "ch04 -v: $(grep '^kernels: ' "$TMP/v.err")"
    else bad "ch04 -v names the kernels and 3 threads" "$(grep -m1 -i kernel "$TMP/v.err")"; fi
    if ch04 -m "$SYN" -z "$SYN_TOK" -n 4 -t 0 >/dev/null 2>&1; then ok "ch04 --threads 0 (one per CPU) runs"
    else bad "ch04 --threads 0 (one per CPU) runs" "failed"; fi

    expect_error "ch04 --threads negative" "$CH04_RUN" -m "$SYN" -z "$SYN_TOK" -n 1 -t -2
    expect_error "ch04 --threads not a number" "$CH04_RUN" -m "$SYN" -z "$SYN_TOK" -n 1 --threads four
    # more than 4 threads per CPU (or 8) only wait for each other: clamped, with a note
    if "$CH04_RUN" -m "$SYN" -z "$SYN_TOK" -n 1 --threads 1025 >/dev/null 2>"$TMP/threads.err" &&
        grep -q "^note: -t 1025: [0-9]* CPUs* to run on; using [0-9]* threads" "$TMP/threads.err"; then
        ok "ch04 --threads 1025: clamped, with a note"
    else
        bad "ch04 --threads 1025: clamped, with a note" "$(head -c 200 "$TMP/threads.err" | tr '\n' '|')"
    fi
fi

# A cross build: greedy ids of three reference prompts against the host's chapter 3 (the chain
# does this natively), and the cross-built chapter 3 against the host's (plain C is portable).
if [ -n "$RUNNER" ] && [ -x "$CH04" ] && [ -x "$HOST_BUILD/ch03" ]; then
    for m in stories260K llama2xs; do
        if ! have_shared "models/$m.bin" models/tok512.bin reference/prompts.tsv; then skip "ch04 $m greedy (cross)" "not in $SHARED"; continue; fi
        for p in p1 p2 p3; do
            ours=$(greedy_ids "$CH04_RUN" "$SHARED/models/$m.bin" "$SHARED/models/tok512.bin" "$(prompt_text "$p")" 64)
            ref=$(greedy_ids "$HOST_BUILD/ch03" "$SHARED/models/$m.bin" "$SHARED/models/tok512.bin" "$(prompt_text "$p")" 64)
            same_ids "ch04 $m greedy $p (64 positions) = host ch03" "$ours" "$ref"
        done
    done
    if [ -x "$BUILD/ch03" ] && have_shared models/stories260K.bin reference/ts0.tok512.tokens; then
        $RUNNER "$BUILD/ch03" -m "$SHARED/models/stories260K.bin" --logits "$TMP/x3.lgts" \
            --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
        "$HOST_BUILD/ch03" -m "$SHARED/models/stories260K.bin" --logits "$TMP/h3.lgts" \
            --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
        if [ -s "$TMP/x3.lgts" ] && cmp -s "$TMP/x3.lgts" "$TMP/h3.lgts"; then ok "ch03 cross-built: stories260K logits = the host's, bit for bit"
        else bad "ch03 cross-built: stories260K logits = the host's, bit for bit" "they differ"; fi
    fi
fi

# A cross build's unit tests run here, under the runner (tests/t_unit.sh runs native ones):
# chapter 4's, and chapter 7's tiles against the one-position kernels where it was built.
if [ -n "$RUNNER" ]; then
    for unit in unit_ch04 unit_tiles unit_dequant; do
        [ -x "$BUILD/tests/$unit" ] || continue
        $RUNNER "$BUILD/tests/$unit" >"$TMP/unit.out" 2>"$TMP/unit.err"
        rc=$?
        while IFS= read -r line; do
            case "$line" in
            "ok    "*) ok "$unit (cross): ${line#ok    }" ;;
            "FAIL  "*) rest=${line#FAIL  }; bad "$unit (cross): ${rest%%: *}" "${rest#*: }" ;;
            esac
        done <"$TMP/unit.out"
        [ "$rc" -eq 0 ] || bad "$unit (cross)" "exit status $rc: $(tail -c 200 "$TMP/unit.err")"
    done
fi

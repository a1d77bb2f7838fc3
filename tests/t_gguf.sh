# The GGUF chapters (those whose "reads" column in chapters/chapters.tsv is gguf: 5, 6, ...),
# each against llama.cpp itself:
#
#  - bad input: every malformed GGUF of tests/unit_gguf.c (reader level) and
#    every broken tiny llama (loader level) gets one "error:" line; so do the flags that
#    tests/t_badinput.sh checks for the .bin chapters (on tiny-q4_0.gguf);
#  - golden: for every GGUF of $SHARED/models/gguf (and the holdout ones that
#    have references) against llama.cpp's outputs:
#      F32: greedy ids equal in full; ts0 logits within 1e-3;
#      F16: ts0 max |diff| <= 0.05, top-1 >= 127/128; tie-aware greedy shortfall <= 0.01;
#      quantized: ts0 top-1 >= 92% and mean KL(llama.cpp || ours) <= 5e-3 (stories260K,
#        llama2xs), >= 90% and <= 3e-3 (syn-k256); tie-aware greedy: teacher-forced
#        on llama.cpp's greedy ids, its choice is our argmax or within 0.75 (0.5 for
#        syn-k256) of our best logit at every generated position;
#  - the holdout model against chapters 2 and 4 on its .bin;
#  - perplexity ladder F32 > Q8_0 > Q4_0 on llama2xs;
#  - a simd chapter's: threads do not change a bit; the SIMD kernels agree with the plain-C ones;
#  - once, not per chapter: the converter, byte-identical to llama.cpp's files where it can
#    make them.
# The chain (tests/chain.tsv) compares each GGUF chapter with the one before it: chapter 5 on
# Q8_0 GGUF files with chapter 4 on the .bin they were made from (tiny-q8_0.gguf, made by
# our converter, and llama2xs-q8_0.gguf, which the converter check below shows to be the
# converter's output byte for byte), chapter 6 with chapter 5 bit for bit on every weight
# format. Every check here runs for every GGUF chapter: all of them together take some 20 s
# a chapter on 2 cores, so none is kept to the first chapter alone.
#
# QUICK=1 (the sanitizer pass): greedy and tie-aware runs use 64 positions and
# prompts p1 and p4 only.
#
# A foreign build (tests/run_all.sh's AVX2 and ARM64 stages) sets HOST_BUILD (the native build)
# and, for a cross build, RUNNER (e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu"): then this file
# checks only that each GGUF chapter of that build, run under RUNNER, gives the host build's
# logits bit for bit and that its SIMD kernels agree with the plain-C ones (the end of the file).
GG=models/gguf
RUNNER=${RUNNER:-}
HOST_BUILD=${HOST_BUILD:-$BUILD}

# ---- bad input ----------------------------------------------------------

gguf_bad_input() {
    local cases=$TMP/gguf-cases
    if ! "$BUILD/tests/unit_gguf" --write-cases "$cases" >/dev/null 2>"$TMP/err"; then
        bad "$G bad GGUF files" "unit_gguf --write-cases failed: $(head -c 200 "$TMP/err")"
        return
    fi
    local slug what expect
    while IFS=$'\t' read -r slug what; do
        expect_error "$G GGUF: $what" "$CHB" -m "$cases/$slug.gguf" -n 1
    done <"$cases/cases.tsv"
    expect_error "$G GGUF: a valid file of another architecture" "$CHB" -m "$cases/valid-small.gguf" -n 1
    while IFS=$'\t' read -r slug what expect; do
        if [ -z "$expect" ]; then
            if "$CHB" -m "$cases/$slug.gguf" -p "abc" -n 8 --temp 0 >"$TMP/out" 2>"$TMP/err"; then
                ok "$G loads $what"
            else
                bad "$G loads $what" "$(tail -n 1 "$TMP/err")"
            fi
            continue
        fi
        # the expected messages (tests/unit_gguf.c) name chapter 5; each chapter names itself
        expect=${expect//chapter 5/chapter $((10#${G#ch}))}
        # chapter 8 reads byte-level BPE ("gpt2") vocabularies: this one lacks the merges they need
        [ "$slug" = model-tokenizer-gpt2 ] && [ $((10#${G#ch})) -ge 8 ] && expect="tokenizer.ggml.merges is missing"
        expect_error "$G model: $what" "$CHB" -m "$cases/$slug.gguf" -n 1
        if ! grep -qF -- "$expect" "$TMP/ee.err" || ! grep -qF "$cases/$slug.gguf" "$TMP/ee.err"; then
            bad "$G model: $what: the message" "expected the file name and \"$expect\", got: $(head -c 200 "$TMP/ee.err")"
        fi
    done <"$cases/models.tsv"
    # a model without output.weight uses token_embd as its classifier
    if "$CHB" -m "$cases/model-tied.gguf" --logits "$TMP/t.lgts" --tokens "1 260 261 262 299" 2>/dev/null &&
        [ -s "$TMP/t.lgts" ]; then
        ok "$G runs a model without output.weight (tied classifier)"
    else
        bad "$G runs a model without output.weight (tied classifier)" "failed"
    fi
    expect_error "$G a llama2.c checkpoint (it reads GGUF only)" "$CHB" -m "$BUILD/models/tiny.bin" -n 1
    if have_shared "$GG/llama-spm-vocab.gguf"; then
        expect_error "$G a vocabulary-only GGUF (no weights)" "$CHB" -m "$SHARED/$GG/llama-spm-vocab.gguf" -n 1
    fi
    expect_error "$G missing file" "$CHB" -m "$TMP/nope.gguf" -n 1
    expect_error "$G a directory" "$CHB" -m "$TMP" -n 1
    if [ -e "$cases/model-valid.gguf" ]; then
        expect_error "$G --tokens id outside the file's vocabulary" "$CHB" -m "$cases/model-valid.gguf" \
            --logits "$TMP/x.lgts" --tokens "1 300"
    fi
}

# gguf_flags: the command-line errors that tests/t_badinput.sh checks for the .bin chapters,
# here on tiny-q4_0.gguf (vocabulary 512, context 256): one "error:" line each, and no partial
# --logits file left behind
gguf_flags() {
    local m
    if ! m=$(tiny_gguf q4_0); then bad "$G flags: tiny-q4_0.gguf" "could not make it with $BUILD/gguf_convert"; return; fi
    local long
    long=$(awk 'BEGIN { for (i = 0; i < 400; i++) printf "once upon a time there was "; }')
    expect_error "$G unknown flag" "$CHB" -m "$m" --frobnicate
    expect_error "$G flag missing its value" "$CHB" -m "$m" -n
    expect_error "$G -n not a number" "$CHB" -m "$m" -n 12abc
    expect_error "$G --temp negative" "$CHB" -m "$m" --temp -1
    expect_error "$G --top-p above 1" "$CHB" -m "$m" --top-p 1.5
    if chapter_is "${G#ch}" kind=simd; then
        expect_error "$G --threads negative" "$CHB" -m "$m" -n 1 -t -2
        expect_error "$G --threads not a number" "$CHB" -m "$m" -n 1 --threads four
    fi
    expect_error "$G no model given" "$CHB" -n 1
    expect_error "$G prompt longer than the context" "$CHB" -m "$m" -p "$long" -n 1
    expect_error "$G -n beyond the context" "$CHB" -m "$m" -p "Hello" -n 300
    expect_error "$G --tokens id outside the vocabulary" "$CHB" -m "$m" --logits "$TMP/out.lgts" --tokens "1 512"
    expect_error "$G --tokens not numbers" "$CHB" -m "$m" --logits "$TMP/out.lgts" --tokens "1 two"
    expect_error "$G --logits without --tokens" "$CHB" -m "$m" --logits "$TMP/out.lgts"
    if [ -e "$TMP/out.lgts" ]; then bad "$G no partial --logits file" "$TMP/out.lgts exists"; rm -f "$TMP/out.lgts"
    else ok "$G no partial --logits file"; fi
    expect_error "$G --logits into a missing folder" "$CHB" -m "$m" --logits "$TMP/no/such/dir/x.lgts" --tokens "1 2 3"
    if ls "$TMP/no" >/dev/null 2>&1; then bad "$G --logits left a file" "$TMP/no exists"; else ok "$G --logits left no file"; fi
    expect_error "$G --perplexity missing file" "$CHB" -m "$m" --perplexity "$TMP/nope.txt"
}

# ---- golden: every GGUF against llama.cpp -------------------------------

# golden_prompts: the reference prompts (p1 and p4 only in QUICK mode)
golden_prompts() { if [ "$QUICK" = 1 ]; then echo p1 p4; else prompt_ids; fi; }

# positions_of STEM: the positions of the reference greedy runs
positions_of() { case $1 in llama2xs*) echo 200 ;; *) echo 256 ;; esac; }

# greedy5 OUT MODEL PROMPT POSITIONS: greedy ids of the chapter with the file's own vocabulary
greedy5() {
    local n_prompt
    n_prompt=$("$CHB" -m "$2" -p "$3" -n 0 --ids 2>/dev/null | wc -w)
    "$CHB" -m "$2" -p "$3" --temp 0 -n $(($4 + 1 - n_prompt)) --ids >"$1" 2>/dev/null
}

# golden_f32 STEM: greedy ids equal llama.cpp's in full, ts0 logits within 1e-3
golden_f32() {
    local stem=$1 model=$SHARED/$GG/$1.gguf ref=$SHARED/reference/$1/llamacpp positions
    positions=$(positions_of "$stem")
    [ "$QUICK" = 1 ] && positions=64
    for p in $(golden_prompts); do
        in_parallel greedy5 "$TMP/g5-$stem-$p" "$model" "$(prompt_text "$p")" "$positions"
    done
    wait
    for p in $(golden_prompts); do
        same_ids "$G $stem greedy $p ($positions positions) = llama.cpp" "$(cat "$TMP/g5-$stem-$p")" \
            "$(first_ids $((positions + 1)) "$(cat "$ref/greedy-$p.tokens")")"
    done
}

# golden_logits STEM ARGS...: ts0 teacher-forced logits against llama.cpp's, with logits_cmp ARGS
golden_logits() {
    local stem=$1 model=$SHARED/$GG/$1.gguf ref=$SHARED/reference/$1/llamacpp out; shift
    if "$CHB" -m "$model" --logits "$TMP/ts0-$stem.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>"$TMP/err" &&
        out=$("$BUILD/logits_cmp" "$ref/logits-ts0.bin" "$TMP/ts0-$stem.lgts" "$@" 2>&1); then
        ok "$G $stem ts0 logits vs llama.cpp ($*): $out"
    else
        bad "$G $stem ts0 logits vs llama.cpp ($*)" "${out:-$(tail -n 1 "$TMP/err")}"
    fi
}

# golden_ties STEM DELTA: llama.cpp's greedy ids, teacher-forced: at every generated
# position its choice is our argmax or within DELTA of our largest logit
golden_ties() {
    local stem=$1 delta=$2 model=$SHARED/$GG/$1.gguf ref=$SHARED/reference/$1/llamacpp positions
    positions=$(positions_of "$stem")
    [ "$QUICK" = 1 ] && positions=64
    for p in $(golden_prompts); do
        local n_prompt out
        n_prompt=$("$CHB" -m "$model" -p "$(prompt_text "$p")" -n 0 --ids 2>/dev/null | wc -w)
        # feed the ids of the first `positions` positions; the reference's choice at the last one follows them
        first_ids "$positions" "$(cat "$ref/greedy-$p.tokens")" >"$TMP/tf-ids"
        first_ids $((positions + 1)) "$(cat "$ref/greedy-$p.tokens")" >"$TMP/tf-ref"
        if "$CHB" -m "$model" --logits "$TMP/tf.lgts" --tokens-file "$TMP/tf-ids" 2>"$TMP/err" &&
            out=$("$BUILD/logits_cmp" "$TMP/tf-ref" "$TMP/tf.lgts" --tie-aware "$delta" --from "$n_prompt" 2>&1); then
            ok "$G $stem greedy $p, tie-aware (delta $delta): $out"
        else
            bad "$G $stem greedy $p, tie-aware (delta $delta)" "${out:-$(tail -n 1 "$TMP/err")}"
        fi
    done
}

golden_gguf() {
    local stem=$1 kind=$2
    if ! have_shared "$GG/$stem.gguf" "reference/$stem/llamacpp/logits-ts0.bin" reference/ts0.tok512.tokens; then
        skip "$G $stem vs llama.cpp" "reference data not found in $SHARED"
        return
    fi
    case $kind in
    f32) golden_f32 "$stem"; golden_logits "$stem" --max-diff 1e-3 ;;
    f16) golden_logits "$stem" --max-diff 0.05 --min-top1 0.992; golden_ties "$stem" 0.01 ;;
    quant) golden_logits "$stem" --min-top1 0.92 --max-kl 5e-3; golden_ties "$stem" 0.75 ;;
    synquant) golden_logits "$stem" --min-top1 0.90 --max-kl 3e-3; golden_ties "$stem" 0.5 ;;
    esac
}

# golden_all: every GGUF of $SHARED with llama.cpp's references
golden_all() {
    golden_gguf stories260K-f32 f32
    golden_gguf llama2xs-f32 f32
    golden_gguf syn-k256-f32 f32
    golden_gguf stories260K-f16 f16
    golden_gguf syn-k256-f16 f16
    golden_gguf stories260K-q6_k quant
    golden_gguf stories260K-q4_k_m quant
    golden_gguf llama2xs-q8_0 quant
    golden_gguf llama2xs-q4_0 quant
    golden_gguf syn-k256-q8_0 synquant
    golden_gguf syn-k256-q4_0 synquant
    golden_gguf syn-k256-q4_k_m synquant
    golden_gguf syn-k256-q6_k synquant
}

# ---- the holdout model (no llama.cpp references: against chapters 2 and 4) ----

holdout() {
    local H=models/holdout
    if ! have_shared "$H/babyllama_tok105_model5000.bin" "$H/gguf/babyllama-f32.gguf" "$H/gguf/babyllama-q8_0.gguf"; then
        skip "$G holdout babyllama" "not found in $SHARED"
        return
    fi
    local bin=$SHARED/$H/babyllama_tok105_model5000.bin tok=$SHARED/$H/babyllama_tok105.bin out ids
    ids=$(awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 102 + 3; print "" }')
    "$BUILD/ch02" -m "$bin" --logits "$TMP/b2.lgts" --tokens "$ids" 2>/dev/null
    "$BUILD/ch$BINPREV" -m "$bin" --logits "$TMP/b4.lgts" --tokens "$ids" 2>/dev/null
    for f in f32 q8_0; do
        "$CHB" -m "$SHARED/$H/gguf/babyllama-$f.gguf" --logits "$TMP/b5-$f.lgts" --tokens "$ids" 2>/dev/null
    done
    if out=$("$BUILD/logits_cmp" "$TMP/b2.lgts" "$TMP/b5-f32.lgts" --max-diff 1e-3 2>&1); then
        ok "$G babyllama-f32.gguf vs ch02 on the .bin: logits within 1e-3 ($out)"
    else bad "$G babyllama-f32.gguf vs ch02 on the .bin: logits within 1e-3" "$out"; fi
    if out=$("$BUILD/logits_cmp" "$TMP/b4.lgts" "$TMP/b5-q8_0.lgts" --max-diff 1e-3 2>&1); then
        ok "$G babyllama-q8_0.gguf vs ch$BINPREV on the .bin: logits within 1e-3 ($out)"
    else bad "$G babyllama-q8_0.gguf vs ch$BINPREV on the .bin" "$out"; fi
    save_greedy "$TMP/bg2" "$BUILD/ch02" "$bin" "$tok" "Once upon a time" 128
    greedy5 "$TMP/bg5" "$SHARED/$H/gguf/babyllama-f32.gguf" "Once upon a time" 128
    same_ids "$G babyllama-f32.gguf greedy (its own vocabulary) = ch02 on the .bin (128 positions)" \
        "$(cat "$TMP/bg5")" "$(cat "$TMP/bg2")"
    expect_error "$G babyllama: a character outside a vocabulary without byte tokens" \
        "$CHB" -m "$SHARED/$H/gguf/babyllama-q4_0.gguf" -p "snow ☃" -n 1
}

# ---- perplexity: F32 > Q8_0 > Q4_0 on llama2xs --------------------------

ppl_of() { "$@" 2>/dev/null | awk '/^perplexity:/ { print $2 }'; }
ppl_ladder() {
    local text=$SHARED/data/tinystories-valid-excerpt.txt
    if ! have_shared "$GG/llama2xs-f32.gguf" "$GG/llama2xs-q8_0.gguf" "$GG/llama2xs-q4_0.gguf" models/llama2xs.bin \
        data/tinystories-valid-excerpt.txt; then
        skip "$G perplexity ladder" "reference data not found"
        return
    fi
    local f32 q8 q4 ch2 ch3
    f32=$(ppl_of "$CHB" -m "$SHARED/$GG/llama2xs-f32.gguf" --perplexity "$text")
    q8=$(ppl_of "$CHB" -m "$SHARED/$GG/llama2xs-q8_0.gguf" --perplexity "$text")
    q4=$(ppl_of "$CHB" -m "$SHARED/$GG/llama2xs-q4_0.gguf" --perplexity "$text")
    ch2=$(ppl_of "$BUILD/ch02" -m "$SHARED/models/llama2xs.bin" -z "$SHARED/models/tok512.bin" --perplexity "$text")
    ch3=$(ppl_of "$BUILD/ch03" -m "$SHARED/models/llama2xs.bin" -z "$SHARED/models/tok512.bin" --perplexity "$text")
    local verdict
    verdict=$(awk -v f="$f32" -v q8="$q8" -v q4="$q4" -v c2="$ch2" -v c3="$ch3" 'BEGIN {
        if (f == "" || q8 == "" || q4 == "") { print "a run failed"; exit }
        d2 = (f - c2) / c2; if (d2 < 0) d2 = -d2
        d8 = (q8 - f) / f; d3 = (q8 - c3) / c3; if (d3 < 0) d3 = -d3
        if (d2 > 1e-4) { printf "F32 GGUF %s differs from chapter 2 on the .bin (%s)", f, c2; exit }
        if (d8 > 0.03 || d8 < -0.03) { printf "Q8_0 %s is not within 3%% of F32 %s", q8, f; exit }
        if (q8 != c3) { printf "Q8_0 %s is not chapter 3'"'"'s figure %s (the same arithmetic)", q8, c3; exit }
        if (!(q4 > q8)) { printf "Q4_0 %s is not above Q8_0 %s", q4, q8; exit }
        print "ok" }')
    if [ "$verdict" = ok ]; then
        ok "$G llama2xs perplexity ladder: F32 $f32 (ch02 $ch2), Q8_0 $q8 (ch03 $ch3), Q4_0 $q4"
    else
        bad "$G llama2xs perplexity ladder" "$verdict"
    fi
}

# ---- threads and kernels ------------------------------------------------

# same_bits_threads: a K-quant model's logits with 1 and with 3 threads, the same bits
same_bits_threads() {
    have_shared "$GG/syn-k256-q4_k_m.gguf" reference/ts0.tok512.tokens || return 0
    local m=$SHARED/$GG/syn-k256-q4_k_m.gguf out
    "$CHB" -m "$m" -t 1 --logits "$TMP/t1.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
    "$CHB" -m "$m" -t 3 --logits "$TMP/t3.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
    if out=$("$BUILD/logits_cmp" "$TMP/t1.lgts" "$TMP/t3.lgts" --max-diff 0 2>&1); then
        ok "$G logits are the same bits with 1 and 3 threads ($out)"
    else bad "$G logits are the same bits with 1 and 3 threads" "$out"; fi
}

# kernel_check NAME MODEL [RUN...]: with LLAMABOOK_CHECK_KERNELS set, the chapter (run by RUN,
# default $CHB) compares its SIMD kernels with the plain-C ones on every row of MODEL
kernel_check() {
    local name=$1 model=$2 out; shift 2
    [ $# -eq 0 ] && set -- "$CHB"
    if out=$(LLAMABOOK_CHECK_KERNELS=1 "$@" -m "$model" -n 0 2>&1 >/dev/null | grep '^kernel check'); then
        ok "$G $name: SIMD kernels agree with the plain-C ones (${out#kernel check })"
    else
        bad "$G $name: SIMD kernels agree with the plain-C ones" "$(LLAMABOOK_CHECK_KERNELS=1 "$@" -m "$model" -n 0 2>&1 | tail -n 1)"
    fi
}

kernels_all() {
    local stem
    for stem in syn-k256-f32 syn-k256-f16 syn-k256-q8_0 syn-k256-q4_0 stories260K-q4_k_m syn-k256-q4_k_m syn-k256-q6_k; do
        have_shared "$GG/$stem.gguf" && kernel_check "$stem" "$SHARED/$GG/$stem.gguf"
    done
}

# ---- A foreign build: the host's logits, bit for bit, and the kernel check ----

# foreign_chapter NN: chapter NN of $BUILD (under $RUNNER) against $HOST_BUILD's on a few small
# GGUF files: tiny-q4_0.gguf, llama2xs-q4_0.gguf, the K-quants and F16 on stories260K (the SIMD
# kernels may differ, the bits may not: the rule of src/quants.h)
foreign_chapter() {
    local nn=$1 run=$BUILD/ch$1 host=$HOST_BUILD/ch$1 positions=128 m name model out
    if [ -n "$RUNNER" ]; then
        run=$TMP/ch$nn-run
        printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$RUNNER" "$BUILD/ch$nn" >"$run"
        chmod +x "$run"
    fi
    [ "$QUICK" = 1 ] && positions=64
    if [ ! -x "$host" ]; then skip "$G (foreign build) = the host's" "$host not built"; return; fi
    ts0_ids | cut -d' ' -f1-"$positions" >"$TMP/fids"
    for m in tiny-q4_0.gguf llama2xs-q4_0.gguf stories260K-q4_k_m.gguf stories260K-q6_k.gguf stories260K-f16.gguf; do
        name=$m
        case $m in
        tiny-*) model=$(tiny_gguf q4_0) || { bad "$G $m" "could not make it with $HOST_BUILD/gguf_convert"; continue; } ;;
        *) have_shared "$GG/$m" || { skip "$G $m (foreign build)" "not in $SHARED"; continue; }; model=$SHARED/$GG/$m ;;
        esac
        "$host" -m "$model" -t 3 --logits "$TMP/fh.lgts" --tokens-file "$TMP/fids" 2>/dev/null
        local what="$G $name teacher-forced logits ($positions positions, 3 threads) = the host build's, bit for bit"
        if ! "$run" -m "$model" -t 3 --logits "$TMP/ff.lgts" --tokens-file "$TMP/fids" 2>"$TMP/err"; then
            bad "$what" "it failed: $(tail -n 1 "$TMP/err")"
        elif [ -s "$TMP/fh.lgts" ] && cmp -s "$TMP/fh.lgts" "$TMP/ff.lgts"; then
            ok "$what"
        else
            bad "$what" "$("$HOST_BUILD/logits_cmp" "$TMP/fh.lgts" "$TMP/ff.lgts" 2>&1 | tr '\n' ' ')"
        fi
        kernel_check "$name" "$model" "$run"
    done
}

# ts0 ids: the reference's, or a fixed sequence over the 512-token vocabulary
ts0_ids() {
    if [ -e "$SHARED/reference/ts0.tok512.tokens" ]; then cat "$SHARED/reference/ts0.tok512.tokens"
    else awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 509 + 3; print "" }'; fi
}

# ---- Every GGUF chapter ------------------------------------------------------

if [ "$HOST_BUILD" != "$BUILD" ]; then
    # a foreign build: its simd GGUF chapters against the host's
    for nn in $(chapters reads=gguf kind=simd); do
        G=ch$nn CHB=$BUILD/ch$nn
        if [ -x "$CHB" ]; then foreign_chapter "$nn"; else skip "$G (foreign build)" "$CHB not built"; fi
    done
    return 0 2>/dev/null || exit 0
fi

for nn in $(chapters reads=gguf); do
    G=ch$nn CHB=$BUILD/ch$nn
    # the chapter before it that reads llama2.c checkpoints: the same Q8_0 arithmetic (holdout)
    BINPREV=$(chapter_before "$nn" reads=bin)
    if [ ! -x "$CHB" ]; then skip "$G" "$CHB not built"; continue; fi
    gguf_bad_input
    gguf_flags
    golden_all
    holdout
    ppl_ladder
    # threads and SIMD kernels: a simd chapter's (chapters/chapters.tsv)
    if chapter_is "$nn" kind=simd; then
        same_bits_threads
        kernels_all
    fi
done

# ---- the converter ------------------------------------------------------

# convert_same NAME BIN TOK TYPE REF: our converter's output is llama.cpp's file, byte for byte
convert_same() {
    local name=$1 bin=$2 tok=$3 type=$4 ref=$5
    if ! have_shared "$bin" "$tok" "$ref"; then skip "gguf_convert $name $type" "reference data not found"; return; fi
    if "$BUILD/gguf_convert" -m "$SHARED/$bin" -z "$SHARED/$tok" -o "$TMP/conv.gguf" -t "$type" 2>"$TMP/err" &&
        cmp -s "$TMP/conv.gguf" "$SHARED/$ref"; then
        ok "gguf_convert $name -t $type = llama.cpp's $(basename "$ref"), byte for byte"
    else
        bad "gguf_convert $name -t $type = llama.cpp's $(basename "$ref")" "$(tail -n 1 "$TMP/err") $(cmp "$TMP/conv.gguf" "$SHARED/$ref" 2>&1 | head -c 100)"
    fi
}
convert_same llama2xs models/llama2xs.bin models/tok512.bin f32 "$GG/llama2xs-f32.gguf"
convert_same llama2xs models/llama2xs.bin models/tok512.bin q8_0 "$GG/llama2xs-q8_0.gguf"
convert_same llama2xs models/llama2xs.bin models/tok512.bin q4_0 "$GG/llama2xs-q4_0.gguf"
convert_same stories260K models/stories260K.bin models/tok512.bin f16 "$GG/stories260K-f16.gguf"
convert_same babyllama models/holdout/babyllama_tok105_model5000.bin models/holdout/babyllama_tok105.bin q4_0 \
    models/holdout/gguf/babyllama-q4_0.gguf
expect_error "gguf_convert missing tokenizer" "$BUILD/gguf_convert" -m "$BUILD/models/tiny.bin" -z "$TMP/nope" -o "$TMP/x.gguf"
expect_error "gguf_convert unknown type" "$BUILD/gguf_convert" -m "$BUILD/models/tiny.bin" -z "$BUILD/models/tok512.bin" -o "$TMP/x.gguf" -t q2_k
head -c 5000 "$BUILD/models/tiny.bin" >"$TMP/trunc.bin"
expect_error "gguf_convert truncated checkpoint" "$BUILD/gguf_convert" -m "$TMP/trunc.bin" -z "$BUILD/models/tok512.bin" -o "$TMP/x.gguf"
if ls "$TMP"/x.gguf* >/dev/null 2>&1; then bad "gguf_convert leaves no partial file" "$(ls "$TMP"/x.gguf*)"; else ok "gguf_convert leaves no partial file"; fi

# Chapter 5: GGUF files and 4-bit weights, against llama.cpp itself.
#
#  - bad input: every malformed GGUF of tests/unit_gguf.c (reader level) and
#    every broken tiny llama (loader level) gets one "error:" line;
#  - golden: for every GGUF of $SHARED/models/gguf (and the holdout ones that
#    have references) against llama.cpp's outputs:
#      F32: greedy ids equal in full; ts0 logits within 1e-3;
#      F16: ts0 max |diff| <= 0.05, top-1 >= 127/128; tie-aware greedy shortfall <= 0.01;
#      quantized: ts0 top-1 >= 92% and mean KL(llama.cpp || ours) <= 5e-3 (stories260K,
#        llama2xs), >= 90% and <= 3e-3 (syn-k256); tie-aware greedy: teacher-forced
#        on llama.cpp's greedy ids, its choice is our argmax or within 0.75 (0.5 for
#        syn-k256) of our best logit at every generated position;
#  - the converter: byte-identical to llama.cpp's files where it can make them;
#  - the chain: chapter 5 on a converted Q8_0 GGUF = chapter 4 on the .bin (within 1e-3;
#    they share chapter 4's kernels, src/q8_kernels.h, so the measured difference is 0);
#  - perplexity ladder F32 > Q8_0 > Q4_0 on llama2xs;
#  - threads do not change a bit; the SIMD kernels agree with the plain-C ones.
#
# QUICK=1 (the sanitizer pass): greedy and tie-aware runs use 64 positions and
# prompts p1 and p4 only; the chain's greedy runs 32 positions.
CH5=$BUILD/ch05
GG=models/gguf

if [ ! -x "$CH5" ]; then
    skip "ch05" "$CH5 not built"
    return 0 2>/dev/null || exit 0
fi

# ---- bad input ----------------------------------------------------------

gguf_bad_input() {
    local cases=$TMP/gguf-cases
    if ! "$BUILD/tests/unit_gguf" --write-cases "$cases" >/dev/null 2>"$TMP/err"; then
        bad "ch05 bad GGUF files" "unit_gguf --write-cases failed: $(head -c 200 "$TMP/err")"
        return
    fi
    local slug what expect
    while IFS=$'\t' read -r slug what; do
        expect_error "ch05 GGUF: $what" "$CH5" -m "$cases/$slug.gguf" -n 1
    done <"$cases/cases.tsv"
    expect_error "ch05 GGUF: a valid file of another architecture" "$CH5" -m "$cases/valid-small.gguf" -n 1
    while IFS=$'\t' read -r slug what expect; do
        if [ -z "$expect" ]; then
            if "$CH5" -m "$cases/$slug.gguf" -p "abc" -n 8 --temp 0 >"$TMP/out" 2>"$TMP/err"; then
                ok "ch05 loads $what"
            else
                bad "ch05 loads $what" "$(tail -n 1 "$TMP/err")"
            fi
            continue
        fi
        expect_error "ch05 model: $what" "$CH5" -m "$cases/$slug.gguf" -n 1
        if ! grep -qF -- "$expect" "$TMP/ee.err" || ! grep -qF "$cases/$slug.gguf" "$TMP/ee.err"; then
            bad "ch05 model: $what: the message" "expected the file name and \"$expect\", got: $(head -c 200 "$TMP/ee.err")"
        fi
    done <"$cases/models.tsv"
    # a model without output.weight uses token_embd as its classifier
    if "$CH5" -m "$cases/model-tied.gguf" --logits "$TMP/t.lgts" --tokens "1 260 261 262 299" 2>/dev/null &&
        [ -s "$TMP/t.lgts" ]; then
        ok "ch05 runs a model without output.weight (tied classifier)"
    else
        bad "ch05 runs a model without output.weight (tied classifier)" "failed"
    fi
    expect_error "ch05 a llama2.c checkpoint (chapter 5 reads GGUF only)" "$CH5" -m "$BUILD/models/tiny.bin" -n 1
    if have_shared "$GG/llama-spm-vocab.gguf"; then
        expect_error "ch05 a vocabulary-only GGUF (no weights)" "$CH5" -m "$SHARED/$GG/llama-spm-vocab.gguf" -n 1
    fi
    expect_error "ch05 missing file" "$CH5" -m "$TMP/nope.gguf" -n 1
    expect_error "ch05 a directory" "$CH5" -m "$TMP" -n 1
    if [ -e "$cases/model-valid.gguf" ]; then
        expect_error "ch05 --tokens id outside the file's vocabulary" "$CH5" -m "$cases/model-valid.gguf" \
            --logits "$TMP/x.lgts" --tokens "1 300"
    fi
}
gguf_bad_input

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

# ---- the chain: chapter 5 on a converted Q8_0 GGUF = chapter 4 on the .bin ----

ts0_file() {
    if [ -e "$SHARED/reference/ts0.tok512.tokens" ]; then cat "$SHARED/reference/ts0.tok512.tokens"
    else awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 509 + 3; print "" }'; fi
}

# chain_q8 NAME BIN TOK GGUF: logits within 1e-3 and greedy ids equal (128 positions, 5 prompts)
chain_q8() {
    local name=$1 bin=$2 tok=$3 gguf=$4 positions=128
    [ "$QUICK" = 1 ] && positions=32
    if [ ! -x "$BUILD/ch04" ]; then skip "ch05 vs ch04 $name" "ch04 not built"; return; fi
    ts0_file >"$TMP/ts0"
    local out
    if "$BUILD/ch04" -m "$bin" --logits "$TMP/c4.lgts" --tokens-file "$TMP/ts0" 2>"$TMP/err" &&
        "$CH5" -m "$gguf" --logits "$TMP/c5.lgts" --tokens-file "$TMP/ts0" 2>"$TMP/err" &&
        out=$("$BUILD/logits_cmp" "$TMP/c4.lgts" "$TMP/c5.lgts" --max-diff 1e-3 2>&1); then
        ok "ch05 on $name Q8_0 GGUF vs ch04 on the .bin: ts0 logits within 1e-3 ($out)"
    else
        bad "ch05 on $name Q8_0 GGUF vs ch04 on the .bin: ts0 logits within 1e-3" "${out:-$(tail -n 1 "$TMP/err")}"
    fi
    local prompts=(p1 p2 p3 p4 p5)
    [ "$QUICK" = 1 ] && prompts=(p1 p4)
    [ -e "$SHARED/reference/prompts.tsv" ] || prompts=(p1)
    for p in "${prompts[@]}"; do
        local text="Once upon a time"
        [ -e "$SHARED/reference/prompts.tsv" ] && text=$(prompt_text "$p")
        in_parallel save_greedy "$TMP/q4-$p" "$BUILD/ch04" "$bin" "$tok" "$text" "$positions"
        in_parallel save_greedy "$TMP/q5-$p" "$CH5" "$gguf" "$tok" "$text" "$positions"
    done
    wait
    for p in "${prompts[@]}"; do
        same_ids "ch05 on $name Q8_0 GGUF vs ch04 on the .bin: greedy $p ($positions positions)" \
            "$(cat "$TMP/q5-$p")" "$(cat "$TMP/q4-$p")"
    done
}
if "$BUILD/gguf_convert" -m "$BUILD/models/tiny.bin" -z "$BUILD/models/tok512.bin" -o "$TMP/tiny-q8.gguf" -t q8_0 2>/dev/null; then
    chain_q8 tiny "$BUILD/models/tiny.bin" "$BUILD/models/tok512.bin" "$TMP/tiny-q8.gguf"
else
    bad "gguf_convert tiny.bin -t q8_0" "failed"
fi
if have_shared models/llama2xs.bin models/tok512.bin "$GG/llama2xs-q8_0.gguf"; then
    "$BUILD/gguf_convert" -m "$SHARED/models/llama2xs.bin" -z "$SHARED/models/tok512.bin" -o "$TMP/xs-q8.gguf" -t q8_0 2>/dev/null
    chain_q8 "llama2xs (converted)" "$SHARED/models/llama2xs.bin" "$SHARED/models/tok512.bin" "$TMP/xs-q8.gguf"
    chain_q8 "llama2xs (llama.cpp's file)" "$SHARED/models/llama2xs.bin" "$SHARED/models/tok512.bin" "$SHARED/$GG/llama2xs-q8_0.gguf"
else
    skip "ch05 vs ch04 llama2xs" "reference data not found"
fi

# ---- golden: every GGUF against llama.cpp -------------------------------

# golden_prompts: the reference prompts (p1 and p4 only in QUICK mode)
golden_prompts() { if [ "$QUICK" = 1 ]; then echo p1 p4; else prompt_ids; fi; }

# positions_of STEM: the positions of the reference greedy runs
positions_of() { case $1 in llama2xs*) echo 200 ;; *) echo 256 ;; esac; }

# greedy5 OUT MODEL PROMPT POSITIONS: greedy ids of ch05 with the file's own vocabulary
greedy5() {
    local n_prompt
    n_prompt=$("$CH5" -m "$2" -p "$3" -n 0 --ids 2>/dev/null | wc -w)
    "$CH5" -m "$2" -p "$3" --temp 0 -n $(($4 + 1 - n_prompt)) --ids >"$1" 2>/dev/null
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
        same_ids "ch05 $stem greedy $p ($positions positions) = llama.cpp" "$(cat "$TMP/g5-$stem-$p")" \
            "$(first_ids $((positions + 1)) "$(cat "$ref/greedy-$p.tokens")")"
    done
}

# golden_logits STEM ARGS...: ts0 teacher-forced logits against llama.cpp's, with logits_cmp ARGS
golden_logits() {
    local stem=$1 model=$SHARED/$GG/$1.gguf ref=$SHARED/reference/$1/llamacpp out; shift
    if "$CH5" -m "$model" --logits "$TMP/ts0-$stem.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>"$TMP/err" &&
        out=$("$BUILD/logits_cmp" "$ref/logits-ts0.bin" "$TMP/ts0-$stem.lgts" "$@" 2>&1); then
        ok "ch05 $stem ts0 logits vs llama.cpp ($*): $out"
    else
        bad "ch05 $stem ts0 logits vs llama.cpp ($*)" "${out:-$(tail -n 1 "$TMP/err")}"
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
        n_prompt=$("$CH5" -m "$model" -p "$(prompt_text "$p")" -n 0 --ids 2>/dev/null | wc -w)
        # feed the ids of the first `positions` positions; the reference's choice at the last one follows them
        first_ids "$positions" "$(cat "$ref/greedy-$p.tokens")" >"$TMP/tf-ids"
        first_ids $((positions + 1)) "$(cat "$ref/greedy-$p.tokens")" >"$TMP/tf-ref"
        if "$CH5" -m "$model" --logits "$TMP/tf.lgts" --tokens-file "$TMP/tf-ids" 2>"$TMP/err" &&
            out=$("$BUILD/logits_cmp" "$TMP/tf-ref" "$TMP/tf.lgts" --tie-aware "$delta" --from "$n_prompt" 2>&1); then
            ok "ch05 $stem greedy $p, tie-aware (delta $delta): $out"
        else
            bad "ch05 $stem greedy $p, tie-aware (delta $delta)" "${out:-$(tail -n 1 "$TMP/err")}"
        fi
    done
}

golden_gguf() {
    local stem=$1 kind=$2
    if ! have_shared "$GG/$stem.gguf" "reference/$stem/llamacpp/logits-ts0.bin" reference/ts0.tok512.tokens; then
        skip "ch05 $stem vs llama.cpp" "reference data not found in $SHARED"
        return
    fi
    case $kind in
    f32) golden_f32 "$stem"; golden_logits "$stem" --max-diff 1e-3 ;;
    f16) golden_logits "$stem" --max-diff 0.05 --min-top1 0.992; golden_ties "$stem" 0.01 ;;
    quant) golden_logits "$stem" --min-top1 0.92 --max-kl 5e-3; golden_ties "$stem" 0.75 ;;
    synquant) golden_logits "$stem" --min-top1 0.90 --max-kl 3e-3; golden_ties "$stem" 0.5 ;;
    esac
}

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

# ---- the holdout model (no llama.cpp references: against chapters 2 and 4) ----

holdout() {
    local H=models/holdout
    if ! have_shared "$H/babyllama_tok105_model5000.bin" "$H/gguf/babyllama-f32.gguf" "$H/gguf/babyllama-q8_0.gguf"; then
        skip "ch05 holdout babyllama" "not found in $SHARED"
        return
    fi
    local bin=$SHARED/$H/babyllama_tok105_model5000.bin tok=$SHARED/$H/babyllama_tok105.bin out ids
    ids=$(awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 102 + 3; print "" }')
    "$BUILD/ch02" -m "$bin" --logits "$TMP/b2.lgts" --tokens "$ids" 2>/dev/null
    "$BUILD/ch04" -m "$bin" --logits "$TMP/b4.lgts" --tokens "$ids" 2>/dev/null
    for f in f32 q8_0; do
        "$CH5" -m "$SHARED/$H/gguf/babyllama-$f.gguf" --logits "$TMP/b5-$f.lgts" --tokens "$ids" 2>/dev/null
    done
    if out=$("$BUILD/logits_cmp" "$TMP/b2.lgts" "$TMP/b5-f32.lgts" --max-diff 1e-3 2>&1); then
        ok "ch05 babyllama-f32.gguf vs ch02 on the .bin: logits within 1e-3 ($out)"
    else bad "ch05 babyllama-f32.gguf vs ch02 on the .bin: logits within 1e-3" "$out"; fi
    if out=$("$BUILD/logits_cmp" "$TMP/b4.lgts" "$TMP/b5-q8_0.lgts" --max-diff 1e-3 2>&1); then
        ok "ch05 babyllama-q8_0.gguf vs ch04 on the .bin: logits within 1e-3 ($out)"
    else bad "ch05 babyllama-q8_0.gguf vs ch04 on the .bin" "$out"; fi
    save_greedy "$TMP/bg2" "$BUILD/ch02" "$bin" "$tok" "Once upon a time" 128
    greedy5 "$TMP/bg5" "$SHARED/$H/gguf/babyllama-f32.gguf" "Once upon a time" 128
    same_ids "ch05 babyllama-f32.gguf greedy (its own vocabulary) = ch02 on the .bin (128 positions)" \
        "$(cat "$TMP/bg5")" "$(cat "$TMP/bg2")"
    expect_error "ch05 babyllama: a character outside a vocabulary without byte tokens" \
        "$CH5" -m "$SHARED/$H/gguf/babyllama-q4_0.gguf" -p "snow ☃" -n 1
}
holdout

# ---- perplexity: F32 > Q8_0 > Q4_0 on llama2xs --------------------------

ppl_of() { "$@" 2>/dev/null | awk '/^perplexity:/ { print $2 }'; }
ppl_ladder() {
    local text=$SHARED/data/tinystories-valid-excerpt.txt
    if ! have_shared "$GG/llama2xs-f32.gguf" "$GG/llama2xs-q8_0.gguf" "$GG/llama2xs-q4_0.gguf" models/llama2xs.bin \
        data/tinystories-valid-excerpt.txt; then
        skip "ch05 perplexity ladder" "reference data not found"
        return
    fi
    local f32 q8 q4 ch2 ch3
    f32=$(ppl_of "$CH5" -m "$SHARED/$GG/llama2xs-f32.gguf" --perplexity "$text")
    q8=$(ppl_of "$CH5" -m "$SHARED/$GG/llama2xs-q8_0.gguf" --perplexity "$text")
    q4=$(ppl_of "$CH5" -m "$SHARED/$GG/llama2xs-q4_0.gguf" --perplexity "$text")
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
        ok "ch05 llama2xs perplexity ladder: F32 $f32 (ch02 $ch2), Q8_0 $q8 (ch03 $ch3), Q4_0 $q4"
    else
        bad "ch05 llama2xs perplexity ladder" "$verdict"
    fi
}
ppl_ladder

# ---- threads and kernels ------------------------------------------------

if have_shared "$GG/syn-k256-q4_k_m.gguf" reference/ts0.tok512.tokens; then
    m=$SHARED/$GG/syn-k256-q4_k_m.gguf
    "$CH5" -m "$m" -t 1 --logits "$TMP/t1.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
    "$CH5" -m "$m" -t 3 --logits "$TMP/t3.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>/dev/null
    if out=$("$BUILD/logits_cmp" "$TMP/t1.lgts" "$TMP/t3.lgts" --max-diff 0 2>&1); then
        ok "ch05 logits are the same bits with 1 and 3 threads ($out)"
    else bad "ch05 logits are the same bits with 1 and 3 threads" "$out"; fi
fi
for stem in syn-k256-f32 syn-k256-f16 syn-k256-q8_0 syn-k256-q4_0 stories260K-q4_k_m syn-k256-q4_k_m syn-k256-q6_k; do
    have_shared "$GG/$stem.gguf" || continue
    if out=$(LLAMABOOK_CHECK_KERNELS=1 "$CH5" -m "$SHARED/$GG/$stem.gguf" -n 0 2>&1 >/dev/null | grep '^kernel check'); then
        ok "ch05 $stem: SIMD kernels agree with the plain-C ones (${out#kernel check })"
    else
        bad "ch05 $stem: SIMD kernels agree with the plain-C ones" "$(LLAMABOOK_CHECK_KERNELS=1 "$CH5" -m "$SHARED/$GG/$stem.gguf" -n 0 2>&1 | tail -n 1)"
    fi
done

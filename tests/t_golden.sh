# Golden tests against llama2.c (an independent program): the fp32 chapters
# must reproduce its greedy ids exactly and its teacher-forced logits within
# a tolerance. References: $SHARED/reference/<model>/llama2c/.
#
# QUICK=1 (the sanitizer pass) compares the first 64 positions of each
# greedy run instead of the full 200/256.

# golden_fp32 CH MODEL POSITIONS MAX_DIFF
golden_fp32() {
    local ch=$1 model=$2 positions=$3 max_diff=$4
    local bin=$BUILD/ch$ch name="ch$ch $model"
    local ref=$SHARED/reference/$model/llama2c
    if [ ! -x "$bin" ]; then skip "$name golden" "$bin not built"; return; fi
    if ! have_shared "models/$model.bin" "models/tok512.bin" "reference/$model/llama2c/logits-ts0.bin"; then
        skip "$name golden" "reference data not found in $SHARED"; return
    fi
    [ "$QUICK" = 1 ] && positions=64
    local model_path=$SHARED/models/$model.bin tok=$SHARED/models/tok512.bin
    for p in $(prompt_ids); do
        in_parallel save_greedy "$TMP/g-$ch-$model-$p" "$bin" "$model_path" "$tok" "$(prompt_text "$p")" "$positions"
    done
    wait
    for p in $(prompt_ids); do
        same_ids "$name greedy $p ($positions positions) = llama2.c" "$(cat "$TMP/g-$ch-$model-$p")" \
            "$(first_ids $((positions + 1)) "$(cat "$ref/greedy-$p.tokens")")"
    done
    if "$bin" -m "$model_path" --logits "$TMP/ts0.lgts" --tokens-file "$SHARED/reference/ts0.tok512.tokens" 2>"$TMP/err" &&
        out=$("$BUILD/logits_cmp" "$ref/logits-ts0.bin" "$TMP/ts0.lgts" --max-diff "$max_diff" 2>&1); then
        ok "$name teacher-forced ts0 logits within $max_diff of llama2.c ($out)"
    else
        bad "$name teacher-forced ts0 logits within $max_diff of llama2.c" "${out:-$(cat "$TMP/err")}"
    fi
}

golden_fp32 01 stories260K 256 1e-4
golden_fp32 01 llama2xs 200 1e-4
golden_fp32 02 stories260K 256 1e-4
golden_fp32 02 llama2xs 200 1e-4
golden_fp32 02 syn-k256 256 1e-4

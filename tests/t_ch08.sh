# Chapter 8: today's model families against llama.cpp's own outputs.
# The files of $SHARED/models/gguf/families (synthetic weights, made by llama.cpp's tools):
# qwen2-syn (arch qwen2: Q/K/V biases, NEOX RoPE, rms eps 1e-6, no BOS, byte-level BPE),
# smollm-syn (llama with byte-level BPE, no BOS), llama3-syn (Llama 3's vocabulary, rope_freqs),
# llama-ropescale-syn-{linear,yarn,llama3} (RoPE scaled three ways). The rules are the GGUF
# chapter's (tests/t_gguf.sh), with the families' conventions (../shared/reference/README.md:
# 128 positions, no early stop, BOS only where the vocabulary adds one):
#   F32: llama.cpp's greedy ids in full (every prompt, 129 ids) and ts0 logits within 1e-3;
#   Q8_0, K-quants and IQ4_XS: ts0 top-1 >= 90% and mean KL <= 3e-3 (the rule of the
#     synthetic-weight files), and tie-aware greedy: teacher-forced on llama.cpp's greedy ids,
#     its choice is our argmax or within 0.5 of our best logit at every generated position.
# The refusals are in tests/t_ch08_refuse.sh; chapter 8 against chapter 7 on the Llama 2
# files is the chain (tests/chain.tsv: bit for bit).
# QUICK=1 (the sanitizer pass): prompts p1 and p4 only, and the F32 files and one Q8_0 file.
T8=$TMP/t_ch08
mkdir -p "$T8"
FAM=models/gguf/families
CH8=$BUILD/ch08

# t8_vocab STEM: the vocabulary's ts0 ids file (reference/ts0.<vocab>.tokens)
t8_vocab() {
    case $1 in qwen2*) echo qwen2-syn ;; smollm*) echo smollm-syn ;; llama3*) echo llama3 ;; *) echo tok512 ;; esac
}

# t8_prompts STEM: the prompts llama.cpp ran (p3, the empty prompt, only where the vocabulary adds BOS)
t8_prompts() {
    local p
    for p in $( [ "$QUICK" = 1 ] && echo p1 p4 || prompt_ids ); do
        [ -e "$SHARED/reference/$1/llamacpp/greedy-$p.tokens" ] && echo "$p"
    done
}

# t8_logits STEM ARGS...: ts0 teacher-forced logits against llama.cpp's, with logits_cmp ARGS
t8_logits() {
    local stem=$1 out; shift
    local ref=$SHARED/reference/$stem/llamacpp
    if "$CH8" -m "$SHARED/$FAM/$stem.gguf" --logits "$T8/$stem.lgts" \
        --tokens-file "$SHARED/reference/ts0.$(t8_vocab "$stem").tokens" 2>"$T8/err" &&
        out=$("$BUILD/logits_cmp" "$ref/logits-ts0.bin" "$T8/$stem.lgts" "$@" 2>&1); then
        ok "ch08 $stem ts0 logits vs llama.cpp ($*): $out"
    else
        bad "ch08 $stem ts0 logits vs llama.cpp ($*)" "${out:-$(tail -n 1 "$T8/err")}"
    fi
    rm -f "$T8/$stem.lgts"
}

# t8_greedy_run OUT STEM PROMPT: our greedy ids over 128 positions, never stopping early
t8_greedy_run() {
    local n_prompt model=$SHARED/$FAM/$2.gguf
    n_prompt=$("$CH8" -m "$model" -p "$3" -n 0 --ids 2>/dev/null | wc -w)
    "$CH8" -m "$model" -p "$3" --temp 0 --ignore-eos -n $((129 - n_prompt)) --ids >"$1" 2>"$1.err"
}

# t8_greedy STEM: llama.cpp's greedy ids in full, for every prompt
t8_greedy() {
    local stem=$1 p
    for p in $(t8_prompts "$stem"); do
        in_parallel t8_greedy_run "$T8/g-$stem-$p" "$stem" "$(prompt_text "$p")"
    done
    wait
    for p in $(t8_prompts "$stem"); do
        same_ids "ch08 $stem greedy $p (128 positions) = llama.cpp" "$(cat "$T8/g-$stem-$p")" \
            "$(cat "$SHARED/reference/$stem/llamacpp/greedy-$p.tokens")"
    done
}

# t8_ties STEM DELTA: llama.cpp's greedy ids teacher-forced; at every generated position its
# choice is our argmax or within DELTA of our largest logit
t8_ties() {
    local stem=$1 delta=$2 p out n_prompt ref
    for p in $(t8_prompts "$stem"); do
        ref=$SHARED/reference/$stem/llamacpp/greedy-$p.tokens
        n_prompt=$("$CH8" -m "$SHARED/$FAM/$stem.gguf" -p "$(prompt_text "$p")" -n 0 --ids 2>/dev/null | wc -w)
        first_ids 128 "$(cat "$ref")" >"$T8/tf-ids"
        if [ "$n_prompt" -lt 1 ]; then
            bad "ch08 $stem greedy $p, tie-aware (delta $delta)" "the prompt gave no ids"
        elif "$CH8" -m "$SHARED/$FAM/$stem.gguf" --logits "$T8/tf.lgts" --tokens-file "$T8/tf-ids" 2>"$T8/err" &&
            out=$("$BUILD/logits_cmp" "$ref" "$T8/tf.lgts" --tie-aware "$delta" --from "$n_prompt" 2>&1); then
            ok "ch08 $stem greedy $p, tie-aware (delta $delta): $out"
        else
            bad "ch08 $stem greedy $p, tie-aware (delta $delta)" "${out:-$(tail -n 1 "$T8/err")}"
        fi
        rm -f "$T8/tf.lgts"
    done
}

# t8_file STEM KIND: the checks of one file (KIND f32 or quant)
t8_file() {
    local stem=$1
    if ! have_shared "$FAM/$stem.gguf" "reference/$stem/llamacpp/logits-ts0.bin" \
        "reference/ts0.$(t8_vocab "$stem").tokens"; then
        skip "ch08 $stem vs llama.cpp" "not in $SHARED"
        return
    fi
    case $2 in
    f32) t8_logits "$stem" --max-diff 1e-3; t8_greedy "$stem" ;;
    quant) t8_logits "$stem" --min-top1 0.90 --max-kl 3e-3; t8_ties "$stem" 0.5 ;;
    esac
}

if ! chapter_is 08 || [ ! -x "$CH8" ]; then
    skip "chapter 8" "$CH8 is missing"
else
    for stem in qwen2-syn-f32 smollm-syn-f32 llama-ropescale-syn-linear-f32 llama-ropescale-syn-yarn-f32 \
        llama-ropescale-syn-llama3-f32; do
        t8_file "$stem" f32
    done
    if [ "$QUICK" = 1 ]; then t8_quant="qwen2-syn-q8_0"
    else
        t8_quant="qwen2-syn-q8_0 qwen2-syn-q4_k_m qwen2-syn-q5_k_m smollm-syn-q8_0 smollm-syn-q4_k_m smollm-syn-q5_k_m
            smollm-syn-q3_k_m smollm-syn-iq4_xs llama-ropescale-syn-linear-q8_0 llama-ropescale-syn-yarn-q8_0
            llama-ropescale-syn-llama3-q8_0 llama3-syn-q4_k_m"
    fi
    for stem in $t8_quant; do t8_file "$stem" quant; done
fi

# Chapter 7: many positions at once, bit for bit chapter 6, at the edges of the tiles.
# tests/chain.tsv already compares the two chapters on every weight type (teacher-forced
# ts0, greedy, sampled, perplexity); here the lengths and batch sizes that put the tiles'
# edges in every place:
#  1. teacher-forced logits (--logits) of 1, 2, 7, 31, 32, 33 and 300 positions (as many as
#     the model's context holds) at 1, 2, 3 and 7 threads: the same bytes as chapter 6's;
#  2. -b 1, 7, 32 and 512 on 300 positions (batches that end inside a tile group, and one
#     position at a time through the batch code): the same bytes;
#  3. prompts of exactly those lengths through generation (the prompt in one batch, then chapter 6's
#     decode): the same greedy ids;
#  4. --perplexity in batches of 7 and of 512: the same line as chapter 6's;
#  5. -b rejects 0, negatives and non-numbers, naming the flag.
# Models: one file per weight type from ../shared, and a synthetic one made here whose row
# counts are no multiple of any tile (dim 96, hidden 232, vocab 517, context 512), converted
# to Q4_0, Q8_0, F16 and F32.
T7=$TMP/t_ch07
mkdir -p "$T7"
if ! chapter_is 07 || [ ! -x "$BUILD/ch07" ] || [ ! -x "$BUILD/ch06" ]; then
    skip "chapter 7" "build/ch07 or build/ch06 is missing"
else
    # the synthetic model with odd row counts
    t7_models=""
    if "$BUILD/mksynth" --dim 96 --hidden 232 --layers 2 --heads 3 --kv-heads 1 --vocab 517 --seq-len 512 --seed 7 \
        -o "$T7/odd.bin" --tokenizer-out "$T7/odd-tok.bin" >/dev/null 2>&1; then
        for ty in q4_0 q8_0 f16 f32; do
            if "$BUILD/gguf_convert" -m "$T7/odd.bin" -z "$T7/odd-tok.bin" -o "$T7/odd-$ty.gguf" -t "$ty" >/dev/null 2>&1; then
                t7_models="$t7_models $T7/odd-$ty.gguf"
            else bad "ch07: a synthetic $ty model" "gguf_convert failed"; fi
        done
    else bad "ch07: a synthetic model with odd row counts" "mksynth failed"; fi
    t7_shared=""
    for stem in llama2xs-q4_0 llama2xs-q8_0 syn-k256-q4_k_m syn-k256-q6_k stories260K-q4_k_m stories260K-f16; do
        if have_shared "models/gguf/$stem.gguf"; then t7_shared="$t7_shared $SHARED/models/gguf/$stem.gguf"
        else skip "ch07 on $stem.gguf" "not in $SHARED"; fi
    done
    [ "$QUICK" = 1 ] && t7_threads="1 3" || t7_threads="1 2 3 7"

    # t7_context MODEL: the model's context length (from -v)
    t7_context() { "$BUILD/ch06" -m "$1" -n 0 -v 2>&1 | sed -n 's/.*context \([0-9]*\).*/\1/p' | head -n 1; }
    # t7_ids N VOCAB: N pseudo-random token ids below VOCAB, after a BOS (1)
    t7_ids() { awk -v n="$1" -v v="$2" 'BEGIN { s = 12345; printf "1"; for (i = 1; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf " %d", 3 + s % (v - 3) } print "" }'; }
    t7_vocab() { "$BUILD/ch06" -m "$1" -n 0 -v 2>&1 | sed -n 's/.*vocab \([0-9]*\).*/\1/p' | head -n 1; }

    # 1 and 2: teacher-forced logits
    for model in $t7_models $t7_shared; do
        name=$(basename "$model" .gguf)
        ctx=$(t7_context "$model") vocab=$(t7_vocab "$model")
        if [ -z "$ctx" ] || [ -z "$vocab" ]; then bad "ch07 on $name" "chapter 6 cannot read it (-v printed no context): $("$BUILD/ch06" -m "$model" -n 0 -v 2>&1 | tail -n 1)"; continue; fi
        for n in 1 2 7 31 32 33 300; do
            [ "$n" -gt "$ctx" ] && continue
            t7_ids "$n" "$vocab" >"$T7/ids"
            if ! "$BUILD/ch06" -m "$model" -t 1 --logits "$T7/want.lgts" --tokens-file "$T7/ids" 2>"$T7/err"; then
                bad "ch07 on $name, $n positions" "chapter 6 failed: $(head -c 200 "$T7/err")"; continue
            fi
            fails=""
            for t in $t7_threads; do
                if ! "$BUILD/ch07" -m "$model" -t "$t" --logits "$T7/got.lgts" --tokens-file "$T7/ids" 2>"$T7/err"; then
                    fails="$fails -t $t: failed ($(head -c 120 "$T7/err"));"
                elif ! cmp -s "$T7/want.lgts" "$T7/got.lgts"; then
                    fails="$fails -t $t: $("$BUILD/logits_cmp" "$T7/want.lgts" "$T7/got.lgts" --max-diff 0 2>&1 | head -c 160);"
                fi
            done
            if [ "$n" = 300 ] || { [ "$n" = 33 ] && [ "$ctx" -lt 300 ]; }; then
                for b in 1 7 32 512; do
                    if ! "$BUILD/ch07" -m "$model" -t 3 -b "$b" --logits "$T7/got.lgts" --tokens-file "$T7/ids" 2>"$T7/err"; then
                        fails="$fails -b $b: failed;"
                    elif ! cmp -s "$T7/want.lgts" "$T7/got.lgts"; then fails="$fails -b $b: the logits differ;"; fi
                done
            fi
            if [ -z "$fails" ]; then ok "ch07 = ch06 on $name, $n teacher-forced positions (threads $t7_threads)"
            else bad "ch07 = ch06 on $name, $n teacher-forced positions" "$fails"; fi
        done
    done

    # 3: prompts of exactly these lengths through generation: the shortest prefix of the
    # excerpt that the model's tokenizer makes into N ids (BOS included), found by bisection
    text=$SHARED/data/tinystories-valid-excerpt.txt
    [ -e "$text" ] || text=README.md
    chars=$(tr -s ' \n\t' '   ' <"$text" | cut -c1-3000)
    t7_count() { "$BUILD/ch06" -m "$1" -n 0 -p "${chars:0:$2}" --ids 2>/dev/null | wc -w; }
    # t7_prefix MODEL N: a prefix length whose ids number exactly N, or nothing
    t7_prefix() {
        local lo=0 hi=${#chars} mid c
        while [ "$lo" -lt "$hi" ]; do
            mid=$(((lo + hi) / 2))
            c=$(t7_count "$1" "$mid") # 0: no ids at all, the prompt is longer than the context
            if [ "$c" -gt 0 ] && [ "$c" -lt "$2" ]; then lo=$((mid + 1)); else hi=$mid; fi
        done
        for c in $lo $((lo + 1)) $((lo + 2)); do
            [ "$(t7_count "$1" "$c")" -eq "$2" ] && { echo "$c"; return; }
        done
    }
    for model in $t7_shared $T7/odd-q4_0.gguf; do
        [ -e "$model" ] || continue
        name=$(basename "$model" .gguf)
        ctx=$(t7_context "$model")
        [ "$QUICK" = 1 ] && lengths="1 7 33" || lengths="1 2 7 31 32 33 300"
        for n in $lengths; do
            [ $((n + 8)) -gt "${ctx:-0}" ] && continue
            len=$(t7_prefix "$model" "$n")
            if [ -z "$len" ]; then skip "ch07 = ch06 on $name: a prompt of $n positions" "no prefix of the text makes exactly $n ids"; continue; fi
            prompt=${chars:0:$len}
            want=$("$BUILD/ch06" -m "$model" -t 1 -p "$prompt" -n 8 --temp 0 --ids 2>/dev/null)
            fails=""
            for t in $t7_threads; do
                got=$("$BUILD/ch07" -m "$model" -t "$t" -p "$prompt" -n 8 --temp 0 --ids 2>/dev/null)
                [ -n "$want" ] && [ "$got" = "$want" ] || fails="$fails -t $t;"
            done
            if [ -z "$fails" ]; then ok "ch07 = ch06 on $name: greedy ids after a prompt of $n positions (threads $t7_threads)"
            else bad "ch07 = ch06 on $name: greedy ids after a prompt of $n positions" "they differ at$fails"; fi
        done
    done

    # 4: --perplexity in batches
    for model in $t7_shared $T7/odd-q8_0.gguf; do
        [ -e "$model" ] || continue
        name=$(basename "$model" .gguf)
        head -c 3000 "$text" >"$T7/ppl.txt" # some 700 positions: windows of the whole context, in several batches
        want=$("$BUILD/ch06" -m "$model" -t 2 --perplexity "$T7/ppl.txt" 2>/dev/null | grep -i perplexity | tail -n 1)
        fails=""
        for b in 7 512; do
            got=$("$BUILD/ch07" -m "$model" -t 3 -b "$b" --perplexity "$T7/ppl.txt" 2>/dev/null | grep -i perplexity | tail -n 1)
            [ -n "$want" ] && [ "$got" = "$want" ] || fails="$fails -b $b: '$got';"
        done
        if [ -z "$fails" ]; then ok "ch07 = ch06 on $name: --perplexity in batches of 7 and 512 ($want)"
        else bad "ch07 = ch06 on $name: --perplexity" "chapter 6: '$want';$fails"; fi
    done

    # 5: the flag
    m=$(tiny_gguf q4_0)
    for v in 0 -3 x 1.5; do
        expect_error "ch07 -b $v: one error line" "$BUILD/ch07" -m "$m" -b "$v" --tokens "1 2 3" --logits "$T7/x.lgts"
    done
fi

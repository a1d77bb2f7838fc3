# Bad input: every case prints one "error: " line on stderr, exits with status
# 1, prints nothing on stdout and leaves no output file behind. Checked for
# every chapter that reads llama2.c checkpoints, on the synthetic tiny model,
# and for gguf_convert, which reads them with chapter 1's reader too (src/llama2c.c).
TINY=$BUILD/models/tiny.bin TINY_TOK=$BUILD/models/tok512.bin
# tiny: dim 64, hidden 192, 2 layers, 4 heads, 2 kv heads, vocab 512, seq_len 256
H="64 192 2 4 2 512 256"

bad_checkpoints() { # the broken files, made once
    : >"$TMP/empty.bin"
    head -c 20 "$TINY" >"$TMP/short-header.bin"
    head -c 100000 "$TINY" >"$TMP/truncated.bin"
    with_header "$TMP/zero-dim.bin" "$TINY" 0 192 2 4 2 512 256
    with_header "$TMP/neg-layers.bin" "$TINY" 64 192 -2 4 2 512 256
    with_header "$TMP/zero-seq.bin" "$TINY" 64 192 2 4 2 512 0
    with_header "$TMP/heads-divide.bin" "$TINY" 64 192 2 5 5 512 256
    with_header "$TMP/kv-divide.bin" "$TINY" 64 192 2 4 3 512 256
    with_header "$TMP/odd-head.bin" "$TINY" 64 192 2 64 64 512 256
    with_header "$TMP/huge.bin" "$TINY" 2147483647 2147483647 2147483647 1 1 2147483647 2147483647
    with_header "$TMP/overflow.bin" "$TINY" 1073741824 2 1073741824 2 2 2 2 # n_layers * dim * dim = 2^90
    with_header "$TMP/wrong-size.bin" "$TINY" 64 192 3 4 2 512 256
    { cat "$TINY"; printf 'x'; } >"$TMP/trailing.bin"
    printf 'GGUF\003\000\000\000' >"$TMP/gguf.bin"
    head -c 3000 "$TINY_TOK" >"$TMP/tok-truncated.bin"
    { le32 -5; tail -c +5 "$TINY_TOK"; } >"$TMP/tok-badmax.bin"
    { head -c 8 "$TINY_TOK"; le32 -7; tail -c +13 "$TINY_TOK"; } >"$TMP/tok-neglen.bin"
    { cat "$TINY_TOK" "$TINY_TOK"; } >"$TMP/tok-toolong.bin"
    awk 'BEGIN { for (i = 0; i < 400; i++) printf "once upon a time there was "; }' >"$TMP/long-prompt.txt"
}

bad_input_for() {
    local ch=$1 bin=$BUILD/ch$1
    local run="$bin -z $TINY_TOK"
    expect_error "ch$ch missing model file" $run -m "$TMP/does-not-exist.bin" -n 1
    expect_error "ch$ch empty model file" $run -m "$TMP/empty.bin" -n 1
    expect_error "ch$ch header shorter than 28 bytes" $run -m "$TMP/short-header.bin" -n 1
    expect_error "ch$ch truncated checkpoint" $run -m "$TMP/truncated.bin" -n 1
    expect_error "ch$ch header dim 0" $run -m "$TMP/zero-dim.bin" -n 1
    expect_error "ch$ch header n_layers negative" $run -m "$TMP/neg-layers.bin" -n 1
    expect_error "ch$ch header seq_len 0" $run -m "$TMP/zero-seq.bin" -n 1
    expect_error "ch$ch dim not divisible by n_heads" $run -m "$TMP/heads-divide.bin" -n 1
    expect_error "ch$ch n_heads not divisible by n_kv_heads" $run -m "$TMP/kv-divide.bin" -n 1
    expect_error "ch$ch odd head size" $run -m "$TMP/odd-head.bin" -n 1
    expect_error "ch$ch header sizes that overflow" $run -m "$TMP/huge.bin" -n 1
    expect_error "ch$ch header sizes whose product overflows 64 bits" $run -m "$TMP/overflow.bin" -n 1
    expect_error "ch$ch file size does not match the header" $run -m "$TMP/wrong-size.bin" -n 1
    expect_error "ch$ch trailing byte after the weights" $run -m "$TMP/trailing.bin" -n 1
    expect_error "ch$ch a directory as the model" $run -m "$TMP" -n 1
    # a GGUF file: the message names the chapter that is running, not another one
    expect_error "ch$ch a GGUF file" $run -m "$TMP/gguf.bin" -n 1
    if grep -q "this is a GGUF file; chapter $((10#$ch)) reads llama2.c checkpoints" "$TMP/ee.err"; then
        ok "ch$ch a GGUF file: the message names chapter $((10#$ch))"
    else
        bad "ch$ch a GGUF file: the message names chapter $((10#$ch))" "$(head -c 200 "$TMP/ee.err")"
    fi
    expect_error "ch$ch missing tokenizer" "$bin" -m "$TINY" -z "$TMP/nope.bin" -n 1
    expect_error "ch$ch truncated tokenizer" "$bin" -m "$TINY" -z "$TMP/tok-truncated.bin" -n 1
    expect_error "ch$ch tokenizer max_token_length negative" "$bin" -m "$TINY" -z "$TMP/tok-badmax.bin" -n 1
    expect_error "ch$ch tokenizer piece length negative" "$bin" -m "$TINY" -z "$TMP/tok-neglen.bin" -n 1
    expect_error "ch$ch tokenizer with more tokens than the model" "$bin" -m "$TINY" -z "$TMP/tok-toolong.bin" -n 1
    expect_error "ch$ch unknown flag" $run -m "$TINY" --frobnicate
    expect_error "ch$ch flag missing its value" $run -m "$TINY" -n
    expect_error "ch$ch -n not a number" $run -m "$TINY" -n 12abc
    expect_error "ch$ch --temp negative" $run -m "$TINY" --temp -1
    expect_error "ch$ch --top-p above 1" $run -m "$TINY" --top-p 1.5
    expect_error "ch$ch no model given" "$bin" -n 1
    expect_error "ch$ch prompt longer than the context" $run -m "$TINY" -p "$(cat "$TMP/long-prompt.txt")" -n 1
    expect_error "ch$ch -n beyond the context" $run -m "$TINY" -p "Hello" -n 300
    expect_error "ch$ch --tokens id outside the vocabulary" "$bin" -m "$TINY" --logits "$TMP/out.lgts" --tokens "1 512"
    expect_error "ch$ch --tokens not numbers" "$bin" -m "$TINY" --logits "$TMP/out.lgts" --tokens "1 two"
    expect_error "ch$ch --logits without --tokens" "$bin" -m "$TINY" --logits "$TMP/out.lgts"
    if [ -e "$TMP/out.lgts" ]; then bad "ch$ch no partial --logits file" "$TMP/out.lgts exists"; else ok "ch$ch no partial --logits file"; fi
    expect_error "ch$ch --logits into a missing folder" "$bin" -m "$TINY" --logits "$TMP/no/such/dir/x.lgts" --tokens "1 2 3"
    if ls "$TMP/no" >/dev/null 2>&1; then bad "ch$ch --logits left a file" "$TMP/no exists"; else ok "ch$ch --logits left no file"; fi
    expect_error "ch$ch --perplexity missing file" $run -m "$TINY" --perplexity "$TMP/nope.txt"
}

if [ -e "$TINY" ] && [ -e "$TINY_TOK" ]; then
    bad_checkpoints
    # every chapter whose "reads" column in chapters/chapters.tsv is bin (the GGUF chapters
    # get theirs in tests/t_gguf.sh)
    for ch in $(chapters reads=bin); do
        if [ -x "$BUILD/ch$ch" ]; then bad_input_for "$ch"; else skip "ch$ch bad input" "$BUILD/ch$ch not built"; fi
    done
    # the converter shares chapter 1's reader; its messages name the converter
    expect_error "gguf_convert a GGUF file" "$BUILD/gguf_convert" -m "$TMP/gguf.bin" -z "$TINY_TOK" -o "$TMP/x.gguf"
    if grep -q "this is a GGUF file; gguf_convert reads llama2.c checkpoints" "$TMP/ee.err"; then
        ok "gguf_convert a GGUF file: the message names gguf_convert"
    else
        bad "gguf_convert a GGUF file: the message names gguf_convert" "$(head -c 200 "$TMP/ee.err")"
    fi
    expect_error "gguf_convert header sizes whose product overflows 64 bits" "$BUILD/gguf_convert" -m "$TMP/overflow.bin" -z "$TINY_TOK" -o "$TMP/x.gguf"
    if ls "$TMP"/x.gguf* >/dev/null 2>&1; then bad "gguf_convert bad checkpoints leave no file" "$(ls "$TMP"/x.gguf*)"; else ok "gguf_convert bad checkpoints leave no file"; fi
else
    skip "bad input" "the tiny synthetic model was not built"
fi

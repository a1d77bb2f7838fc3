# The shared driver's llama.cpp habits and the terminal chat (src/main.c), on the newest
# chapter (CLI_CH=NN picks another); the options are the driver's, so every chapter has them:
#  1. the prompt: -f equals -p on the same text (one final newline dropped); the escapes of -e
#     (on by default) in -p, -f and -sys, llama.cpp's set (\n \r \t \' \" \\ \xNN; any other
#     backslash kept); --no-escape keeps them; \x00, a bad -f path, -f with -p: refused;
#  2. -c: a prompt, -n or --logits longer than -c refused, naming -c; generation stops at -c;
#     -c above the model's context: a note, the same ids; --perplexity windows of -c;
#  3. sampling: --repeat-penalty 1 (off) and --repeat-last-n 0 leave greedy ids unchanged, a
#     penalty changes them; --min-p 1 samples the greedy ids whatever the seed, --min-p 0
#     samples others; bad values refused;
#  4. --tokenize: llama-tokenize's two output forms exactly, BOS as the vocabulary adds it,
#     -p/-f/TEXT alike, on a llama2.c tokenizer and on GGUF vocabularies without weights; every
#     row of every tokenizer reference (../shared/reference/tokenizer/*.tsv) through it;
#  5. -cnv through a pipe, greedy: two replies and two [chat] lines, the second turn feeding
#     only its own tokens, the replies the argmax of one teacher-forced pass over the whole
#     conversation, -p as the first message, the end of the input = status 0, the context
#     filling up (a reply or a message) = a "context full" line and status 0, bad template
#     options refused; Ctrl-C stops a reply and the chat goes on, at the prompt it ends (130).
# The model: ../shared's stories260K-f32.gguf (else the tiny model converted to F32); the Ctrl-C
# test needs a reply slow enough to interrupt: chapter 1 on ../shared's syn-k256.bin.
# QUICK=1 (the sanitizer pass): every fourth row of each tokenizer reference.
CL=$TMP/t_cli
mkdir -p "$CL"
CL_CH=${CLI_CH:-$(chapters reads=gguf | tail -n 1)}
CB=$BUILD/ch$CL_CH
if [ ! -x "$CB" ]; then
    skip "cli" "$CB is missing"
else
    if have_shared models/gguf/stories260K-f32.gguf; then CM=$SHARED/models/gguf/stories260K-f32.gguf
    else CM=$(tiny_gguf f32) || CM=""; fi
fi
if [ -x "$CB" ] && [ -z "$CM" ]; then bad "cli: a model" "no stories260K-f32.gguf in $SHARED and no tiny model"; fi
if [ -x "$CB" ] && [ -n "$CM" ]; then
    cl_name=ch$CL_CH
    # cl_ids ARGS...: the prompt's ids (no generation)
    cl_ids() { "$CB" -m "$CM" -n 0 --ids "$@" 2>/dev/null; }
    # cl_same NAME A B: two outputs that must be equal (and not empty)
    cl_same() {
        if [ -n "$2" ] && [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "'$(echo "$2" | head -c 120)' vs '$(echo "$3" | head -c 120)'"; fi
    }
    cl_differ() {
        if [ -n "$2" ] && [ -n "$3" ] && [ "$2" != "$3" ]; then ok "$1"; else bad "$1" "both '$(echo "$2" | head -c 120)'"; fi
    }
    # cl_err_names NAME WORDS: the last expect_error's line holds WORDS
    cl_err_names() {
        if grep -qF -- "$2" "$TMP/ee.err"; then ok "$1"; else bad "$1" "the message does not say '$2': $(head -c 200 "$TMP/ee.err")"; fi
    }

    # ---- 1. -f, -p and the escapes ----
    real=$(printf 'Lily\nwanted to\tplay "ball"')
    printf 'Lily\nwanted to\tplay "ball"\n' >"$CL/real.txt"
    printf 'Lily\\nwanted to\\tplay \\"ball\\"' >"$CL/escaped.txt"
    want=$(cl_ids -p "$real")
    cl_same "$cl_name -f equals -p on the same text (its final newline dropped)" "$want" "$(cl_ids -f "$CL/real.txt")"
    cl_same "$cl_name -p: \\n \\t \\\" give the bytes they stand for" "$want" "$(cl_ids -p 'Lily\nwanted to\tplay \"ball\"')"
    cl_same "$cl_name -f: the escapes apply to the file too (as llama-cli)" "$want" "$(cl_ids -f "$CL/escaped.txt")"
    cl_same "$cl_name -e: accepted, the default" "$want" "$(cl_ids -e -p 'Lily\nwanted to\tplay \"ball\"')"
    kept=$(cl_ids --no-escape -p 'Lily\nwanted to')
    cl_differ "$cl_name --no-escape keeps backslash-n as two characters" "$kept" "$(cl_ids -p 'Lily\nwanted to')"
    cl_same "$cl_name --no-escape: the same ids as the escaped spelling of a backslash" "$kept" "$(cl_ids -p 'Lily\\nwanted to')"
    cl_same "$cl_name -p: \\xNN is the byte NN, \\' a quote, \\r a CR" "$(cl_ids -p "ABC'D$(printf '\r')")" "$(cl_ids -p 'A\x42C\'"'"'D\r')"
    cl_same "$cl_name -p: an unknown escape (\\q), a short \\x and a final backslash stay as they are" \
        "$(cl_ids --no-escape -p 'a\qb\x4 c\')" "$(cl_ids -p 'a\qb\x4 c\')"
    expect_error "$cl_name -p with \\x00: refused" "$CB" -m "$CM" -p 'a\x00b' -n 1
    expect_error "$cl_name -f with a path that does not exist" "$CB" -m "$CM" -f "$CL/nope.txt" -n 1
    cl_err_names "$cl_name -f: the message names the file" "$CL/nope.txt"
    expect_error "$cl_name -f and -p together: refused" "$CB" -m "$CM" -f "$CL/real.txt" -p x -n 1
    printf 'a\0b' >"$CL/nul.txt"
    expect_error "$cl_name -f with a NUL byte: refused" "$CB" -m "$CM" -f "$CL/nul.txt" -n 1

    # ---- 2. -c ----
    long=$(awk 'BEGIN { for (i = 0; i < 10; i++) printf "once upon a time "; }')
    expect_error "$cl_name a prompt longer than -c: refused" "$CB" -m "$CM" -c 8 -p "$long" -n 1
    cl_err_names "$cl_name a prompt longer than -c: the message names -c" "(-c 8)"
    expect_error "$cl_name -n beyond -c: refused" "$CB" -m "$CM" -c 8 -p "Once upon" -n 10
    cl_err_names "$cl_name -n beyond -c: the message names -c" "(-c 8)"
    expect_error "$cl_name --logits with more ids than -c: refused" "$CB" -m "$CM" -c 4 --logits "$CL/l.lgts" --tokens "1 2 3 4 5"
    cl_err_names "$cl_name --logits beyond -c: the message names -c" "(-c 4)"
    if [ -e "$CL/l.lgts" ]; then bad "$cl_name --logits beyond -c: no file written" "$CL/l.lgts exists"; else ok "$cl_name --logits beyond -c: no file written"; fi
    expect_error "$cl_name -c -1: refused" "$CB" -m "$CM" -c -1 -n 1
    full=$("$CB" -m "$CM" -p "Once upon a time" --temp 0 --ignore-eos -n 40 --ids 2>/dev/null)
    short=$("$CB" -m "$CM" -p "Once upon a time" --temp 0 --ignore-eos -c 16 --ids 2>/dev/null)
    if [ "$(echo "$short" | wc -w)" = 17 ] && [ "$short" = "$(first_ids 17 "$full")" ]; then
        ok "$cl_name -c 16: generation stops at 16 positions (17 ids), the same ids"
    else bad "$cl_name -c 16: generation stops at 16 positions (17 ids), the same ids" "got $(echo "$short" | wc -w) ids: $short"; fi
    "$CB" -m "$CM" -p "Once upon a time" --temp 0 --ignore-eos -n 40 --ids -c 100000000 >"$CL/big.out" 2>"$CL/big.err"
    if [ "$(cat "$CL/big.out")" = "$full" ] && grep -q '^note: -c 100000000: the model.s context is [0-9]* positions; using' "$CL/big.err"; then
        ok "$cl_name -c above the model's context: a note, and the model's context"
    else bad "$cl_name -c above the model's context: a note, and the model's context" "$(head -c 200 "$CL/big.err")"; fi
    text=$SHARED/data/tinystories-valid-excerpt.txt
    [ -e "$text" ] || text=README.md
    head -c 3000 "$text" >"$CL/ppl.txt"
    p_all=$("$CB" -m "$CM" --perplexity "$CL/ppl.txt" 2>/dev/null)
    p_32=$("$CB" -m "$CM" --perplexity "$CL/ppl.txt" -c 32 2>/dev/null)
    if [ -n "$p_32" ] && [ "${p_all#* over }" = "${p_32#* over }" ] && [ "$p_all" != "$p_32" ]; then
        ok "$cl_name --perplexity -c 32: windows of 32, every token scored once ($p_32)"
    else bad "$cl_name --perplexity -c 32: windows of 32, every token scored once" "'$p_all' vs '$p_32'"; fi
    expect_error "$cl_name --perplexity -c 1: refused" "$CB" -m "$CM" --perplexity "$CL/ppl.txt" -c 1

    # ---- 3. sampling ----
    gen() { "$CB" -m "$CM" -p "Once upon a time" -n 60 --ids "$@" 2>/dev/null; }
    greedy=$(gen --temp 0)
    cl_same "$cl_name --repeat-penalty 1 (off): the greedy ids unchanged" "$greedy" "$(gen --temp 0 --repeat-penalty 1.0 --repeat-last-n 5)"
    cl_same "$cl_name --repeat-last-n 0 (off): the greedy ids unchanged" "$greedy" "$(gen --temp 0 --repeat-penalty 1.5 --repeat-last-n 0)"
    pen=$(gen --temp 0 --repeat-penalty 1.5)
    cl_differ "$cl_name --repeat-penalty 1.5: other greedy ids" "$greedy" "$pen"
    cl_same "$cl_name --repeat-penalty: deterministic" "$pen" "$(gen --temp 0 --repeat-penalty 1.5)"
    cl_differ "$cl_name --repeat-last-n: the window matters (2 vs 64)" "$pen" "$(gen --temp 0 --repeat-penalty 1.5 --repeat-last-n 2)"
    cl_same "$cl_name --repeat-last-n -1: the whole context (= 64 within 64 positions)" \
        "$("$CB" -m "$CM" -p "Once upon a time" -n 40 --ids --temp 0 --repeat-penalty 1.5 2>/dev/null)" \
        "$("$CB" -m "$CM" -p "Once upon a time" -n 40 --ids --temp 0 --repeat-penalty 1.5 --repeat-last-n -1 2>/dev/null)"
    minp_fails=""
    for seed in 1 2 3; do
        got=$(gen --temp 0.8 --min-p 1 -s "$seed")
        [ "$got" = "$greedy" ] || minp_fails="$minp_fails -s $seed: $(echo "$got" | head -c 80);"
    done
    if [ -z "$minp_fails" ]; then ok "$cl_name --min-p 1: the greedy ids whatever the seed"
    else bad "$cl_name --min-p 1: the greedy ids whatever the seed" "$minp_fails"; fi
    s1=$(gen --temp 0.8 --min-p 0 -s 1) s2=$(gen --temp 0.8 --min-p 0 -s 2)
    if [ "$s1" != "$greedy" ] && [ "$s1" != "$s2" ]; then ok "$cl_name --min-p 0: sampled ids, seed by seed"
    else bad "$cl_name --min-p 0: sampled ids, seed by seed" "greedy or equal: $s1"; fi
    cl_same "$cl_name sampling with the defaults: the same seed, the same ids" "$(gen -s 5)" "$(gen -s 5)"
    expect_error "$cl_name --repeat-last-n -2: refused" "$CB" -m "$CM" --repeat-last-n -2 -n 1
    expect_error "$cl_name --repeat-last-n x: refused" "$CB" -m "$CM" --repeat-last-n x -n 1
    expect_error "$cl_name --repeat-penalty 0: refused" "$CB" -m "$CM" --repeat-penalty 0 -n 1
    expect_error "$cl_name --repeat-penalty -1: refused" "$CB" -m "$CM" --repeat-penalty -1 -n 1
    expect_error "$cl_name --min-p 1.5: refused" "$CB" -m "$CM" --min-p 1.5 -n 1

    # ---- 4. --tokenize ----
    # cl_tok_lines MODEL TEXT [ARGS...]: --tokenize's output
    cl_tok() { local model=$1; shift; "$CB" -m "$model" "$@" 2>"$CL/tok.err"; }
    cl_tok_expect() { # NAME WANT MODEL ARGS...
        local name=$1 want=$2 got; shift 2
        got=$(cl_tok "$@")
        if [ "$got" = "$want" ]; then ok "$name"; else bad "$name" "got '$got' $(head -c 200 "$CL/tok.err")"; fi
    }
    bin_model=$SHARED/models/stories260K.bin bin_tok=$SHARED/models/tok512.bin
    if [ ! -e "$bin_model" ] || [ ! -e "$bin_tok" ]; then bin_model=$BUILD/models/tiny.bin bin_tok=$BUILD/models/tok512.bin; fi
    # the ids: tok512.tsv's row for ../shared's tok512, else generation's own (the tiny model's
    # GGUF holds the same vocabulary as its tokenizer file)
    if [ "$bin_tok" = "$SHARED/models/tok512.bin" ]; then hw="1 346 306 414 263 304 341" hw_nl="$hw 13"
    else hw=$(cl_ids -p "Hello world") hw_nl=$(cl_ids -p 'Hello world\n'); fi
    cl_tok_expect "$cl_name --tokenize --ids on a llama2.c tokenizer: llama-tokenize's [a, b] form" \
        "[${hw// /, }]" "$bin_model" -z "$bin_tok" --tokenize "Hello world" --ids
    cl_tok_expect "$cl_name --tokenize -p: the same" "[${hw// /, }]" "$bin_model" -z "$bin_tok" --ids -p "Hello world" --tokenize
    printf 'Hello world\n' >"$CL/hw.txt"
    cl_tok_expect "$cl_name --tokenize -f: every byte of the file, its final newline too" \
        "[${hw_nl// /, }]" "$bin_model" -z "$bin_tok" --tokenize -f "$CL/hw.txt" --ids
    expect_error "$cl_name --tokenize without a text: refused" "$CB" -m "$bin_model" -z "$bin_tok" --tokenize
    expect_error "$cl_name --tokenize TEXT with -p too: refused" "$CB" -m "$bin_model" -z "$bin_tok" --tokenize a -p b
    expect_error "$cl_name --tokenize with --logits: refused" "$CB" -m "$bin_model" -z "$bin_tok" --tokenize a --logits "$CL/x.lgts" --tokens 1
    if have_shared models/gguf/stories260K-f32.gguf; then
        cl_tok_expect "$cl_name --tokenize on a GGUF: llama-tokenize's lines (%6d -> 'piece'), BOS as its text" \
            "$(printf "     1 -> '<s>'\n   346 -> ' He'\n   306 -> 'll'\n   414 -> 'o'\n   263 -> ' w'\n   304 -> 'or'\n   341 -> 'ld'")" \
            "$SHARED/models/gguf/stories260K-f32.gguf" --tokenize "Hello world"
    else skip "$cl_name --tokenize on a GGUF" "no stories260K-f32.gguf in $SHARED"; fi
    if have_shared models/gguf/llama-spm-vocab.gguf; then
        cl_tok_expect "$cl_name --tokenize on a vocabulary-only GGUF (no tensors: no model is opened)" \
            "$(printf "     1 -> '<s>'\n 15043 -> ' Hello'\n  3186 -> ' world'")" "$SHARED/models/gguf/llama-spm-vocab.gguf" --tokenize "Hello world"
        expect_error "$cl_name generation on a vocabulary-only GGUF: refused" "$CB" -m "$SHARED/models/gguf/llama-spm-vocab.gguf" -p "Hello" -n 1
    else skip "$cl_name --tokenize on a vocabulary-only GGUF" "no llama-spm-vocab.gguf in $SHARED"; fi
    if have_shared models/gguf/vocab/llama3-vocab.gguf; then
        cl_tok_expect "$cl_name --tokenize on Llama 3's vocabulary: byte-level pieces as their bytes, BOS 128000" \
            "$(printf "128000 -> '<|begin_of_text|>'\n  9906 -> 'Hello'\n  1917 -> ' world'")" "$SHARED/models/gguf/vocab/llama3-vocab.gguf" --tokenize "Hello world"
    else skip "$cl_name --tokenize on Llama 3's vocabulary" "no vocab/llama3-vocab.gguf in $SHARED"; fi
    # every row of a reference: the text (a JSON string; the rows use only \n \t \r \" \\, which
    # are -e's escapes too) through --tokenize=TEXT --ids against the ids of COLUMN (2: llama.cpp,
    # 3: llama2.c)
    cl_tsv() { # NAME TSV COLUMN MODEL ARGS...
        local name=$1 tsv=$SHARED/reference/tokenizer/$2 col=$3 model=$4 line json want got n=0 fails="" i=0; shift 4
        if [ ! -e "$tsv" ] || [ ! -e "$model" ]; then skip "$name" "$tsv or $model is missing"; return; fi
        while IFS= read -r line; do
            case $line in '#'*|'') continue ;; esac
            i=$((i + 1))
            [ "$QUICK" = 1 ] && [ $((i % 4)) != 1 ] && continue
            json=${line%%$'\t'*}
            want=$(echo "$line" | cut -f"$col")
            case $json in *'\u'*|*'\/'*|*'\b'*|*'\f'*) fails="$fails row $i: a JSON escape -e does not read;"; continue ;; esac
            json=${json#\"} json=${json%\"}
            got=$("$CB" -m "$model" "$@" --tokenize="$json" --ids 2>&1 | tr -d '[],')
            n=$((n + 1))
            [ "$got" = "$want" ] || fails="$fails row $i ($json): got '$(echo "$got" | head -c 80)' want '$want';"
        done <"$tsv"
        if [ -z "$fails" ]; then ok "$name ($n rows)"; else bad "$name" "$(echo "$fails" | head -c 400)"; fi
    }
    cl_tsv "$cl_name --tokenize on a llama2.c tokenizer = llama2.c's encode, tok512.tsv" tok512.tsv 3 "$SHARED/models/stories260K.bin" -z "$SHARED/models/tok512.bin"
    cl_tsv "$cl_name --tokenize = llama-tokenize, tok512.tsv on stories260K-f32.gguf" tok512.tsv 2 "$SHARED/models/gguf/stories260K-f32.gguf"
    cl_tsv "$cl_name --tokenize = llama-tokenize, llama-spm-32000.tsv on llama-spm-vocab.gguf" llama-spm-32000.tsv 2 "$SHARED/models/gguf/llama-spm-vocab.gguf"
    for cl_pair in gpt2:vocab/gpt2-vocab gpt2-llama-bpe:vocab/gpt2-llama-bpe-vocab gpt2-qwen2:vocab/gpt2-qwen2-vocab \
        gpt2-smollm:vocab/gpt2-smollm-vocab llama3:vocab/llama3-vocab qwen2-syn:families/qwen2-syn-f32 \
        smollm-syn:families/smollm-syn-f32; do
        cl_tsv "$cl_name --tokenize = llama-tokenize, ${cl_pair%%:*}.tsv on ${cl_pair#*:}.gguf" "${cl_pair%%:*}.tsv" 2 \
            "$SHARED/models/gguf/${cl_pair#*:}.gguf"
    done

    # ---- 6 (here, before the chat). A vocabulary that adds no BOS and has end-of-turn ids ----
    cl_qwen=$SHARED/models/gguf/families/qwen2-syn-f32.gguf
    if [ -e "$cl_qwen" ] && "$CB" -m "$cl_qwen" -p x -n 0 >/dev/null 2>&1; then
        expect_error "$cl_name qwen2-syn (no BOS): an empty prompt is refused" "$CB" -m "$cl_qwen" -p "" -n 1
        cl_err_names "$cl_name qwen2-syn (no BOS): the message says there is nothing to start from" "nothing to start from"
        # greedy without --ignore-eos: llama.cpp's ids (which never stop) up to the first <|im_end|> or
        # <|endoftext|> after the prompt, which ends the generation
        eog=$("$CB" -m "$cl_qwen" --tokenize "<|im_end|><|endoftext|>" --ids 2>/dev/null | tr -d '[],')
        fails=""
        for p in p1 p2 p4 p5; do
            ref=$(cat "$SHARED/reference/qwen2-syn-f32/llamacpp/greedy-$p.tokens")
            n_prompt=$("$CB" -m "$cl_qwen" -p "$(prompt_text "$p")" -n 0 --ids 2>/dev/null | wc -w)
            want=$(echo "$ref" | awk -v np="$n_prompt" -v eog="$eog" 'BEGIN { split(eog, e, " "); for (i in e) stop[e[i]] = 1 }
                { for (i = 1; i <= NF; i++) { if (i > np && ($i in stop)) break; printf "%s%s", (i > 1 ? " " : ""), $i } print "" }')
            got=$("$CB" -m "$cl_qwen" -p "$(prompt_text "$p")" --temp 0 -n $((129 - n_prompt)) --ids 2>/dev/null)
            [ "$got" = "$want" ] || fails="$fails $p: got $(echo "$got" | wc -w) ids, want $(echo "$want" | wc -w);"
        done
        if [ -n "$eog" ] && [ "$(echo "$eog" | wc -w)" = 2 ] && [ -z "$fails" ]; then
            ok "$cl_name qwen2-syn greedy: no BOS, and the generation ends at its first end-of-generation id (p1 p2 p4 p5)"
        else bad "$cl_name qwen2-syn greedy: the generation ends at its first end-of-generation id" "eog ids '$eog';$fails"; fi
    else skip "$cl_name a vocabulary without BOS, with end-of-turn ids" "$CB does not read qwen2-syn-f32.gguf (or it is not in $SHARED)"; fi

    # ---- 5. the chat ----
    expect_error "$cl_name --chat-template unknown: refused" "$CB" -m "$CM" -cnv --chat-template nosuch
    cl_err_names "$cl_name --chat-template unknown: the message lists the names" "chatml"
    expect_error "$cl_name -sys without -cnv: refused" "$CB" -m "$CM" -sys "Be brief." -n 1
    expect_error "$cl_name --chat-template without -cnv: refused" "$CB" -m "$CM" --chat-template chatml -n 1
    expect_error "$cl_name -cnv with --perplexity: refused" "$CB" -m "$CM" -cnv --chat-template chatml --perplexity "$CL/ppl.txt"
    if "$CB" -m "$CM" -n 0 -v 2>&1 | grep -qi 'chat template'; then skip "$cl_name -cnv without a template" "$CM has one"
    else
        expect_error "$cl_name -cnv on a model without a chat template: refused" "$CB" -m "$CM" -cnv
        cl_err_names "$cl_name -cnv without a template: the message asks for --chat-template" "--chat-template"
    fi
    chat=("$CB" -m "$CM" -cnv --chat-template chatml --temp 0 -sys "You tell stories.")
    printf 'Once upon a time\n\nLily wanted to\n' | timeout 60 "${chat[@]}" -n 12 --ids >"$CL/chat.out" 2>"$CL/chat.err"
    rc=$?
    turns=$(grep -c '^\[chat\] turn ' "$CL/chat.err")
    replies=$(grep -c '^> .' "$CL/chat.out")
    if [ "$rc" = 0 ] && [ "$turns" = 2 ] && [ "$replies" = 2 ]; then
        ok "$cl_name -cnv through a pipe: two replies, two [chat] lines, status 0 at the end of the input"
    else bad "$cl_name -cnv through a pipe: two replies, two [chat] lines, status 0 at the end of the input" \
        "status $rc, $turns turn lines, $replies replies: $(head -c 300 "$CL/chat.err")"; fi
    # turn K: N new tokens, C in the cache, reply R tokens
    cl_field() { sed -n "s/^\[chat\] turn $1: \([0-9]*\) new tokens, \([0-9]*\) in the cache, reply \([0-9]*\) tokens.*/\\$2/p" "$CL/chat.err"; }
    n1=$(cl_field 1 1) c1=$(cl_field 1 2) r1=$(cl_field 1 3) n2=$(cl_field 2 1) c2=$(cl_field 2 2) r2=$(cl_field 2 3)
    if [ -n "$n2" ] && [ "$n1" = "$c1" ] && [ "$n2" -lt "$c2" ] && [ "$n2" = $((c2 - (c1 + r1 - 1))) ]; then
        ok "$cl_name -cnv: turn 2 feeds only its own $n2 tokens ($c2 in the cache)"
    else bad "$cl_name -cnv: turn 2 feeds only its own tokens" "turn 1: $n1 new, $c1 cached, $r1 reply; turn 2: $n2 new, $c2 cached"; fi
    # the replies are what one pass over the whole conversation predicts: teacher-force its ids
    tail -n 1 "$CL/chat.out" >"$CL/chat.tokens"
    n_ids=$(wc -w <"$CL/chat.tokens")
    if [ -n "$r2" ] && [ "$n_ids" = $((c2 + r2)) ] &&
        "$CB" -m "$CM" --logits "$CL/chat.lgts" --tokens "$(cut -d' ' -f1-$((n_ids - 1)) "$CL/chat.tokens")" 2>/dev/null &&
        "$BUILD/logits_cmp" "$CL/chat.tokens" "$CL/chat.lgts" --tie-aware 0 --rows "$((c1 - 1)):$((c1 + r1 - 1))" >/dev/null 2>"$CL/cmp1" &&
        "$BUILD/logits_cmp" "$CL/chat.tokens" "$CL/chat.lgts" --tie-aware 0 --rows "$((c2 - 1)):$((c2 + r2 - 1))" >/dev/null 2>"$CL/cmp2"; then
        ok "$cl_name -cnv: both replies are the argmax of one pass over the whole conversation"
    else bad "$cl_name -cnv: both replies are the argmax of one pass over the whole conversation" \
        "$n_ids ids (want $c2 + $r2): $(cat "$CL/cmp1" "$CL/cmp2" 2>/dev/null | head -c 300)"; fi
    printf 'Once upon a time\n' | timeout 60 "${chat[@]}" -n 12 --ids 2>/dev/null | tail -n 1 >"$CL/typed.ids"
    timeout 60 "${chat[@]}" -n 12 --ids -p "Once upon a time" </dev/null 2>/dev/null | tail -n 1 >"$CL/p.ids"
    cl_same "$cl_name -cnv -p: the first user message, as if typed" "$(cat "$CL/typed.ids")" "$(cat "$CL/p.ids")"
    # one run over the whole templated text (the first reply written out as the text of its tokens) gives the
    # conversation's tokens: the same prompt ids and the same second reply (Qwen2's chatml: specials are tokens)
    qm=$SHARED/models/gguf/families/qwen2-syn-f32.gguf
    if ! have_shared models/gguf/families/qwen2-syn-f32.gguf || ! command -v python3 >/dev/null || [ $((10#$CL_CH)) -lt 8 ]; then
        skip "$cl_name -cnv: the tokens of one run over the whole templated text" "needs chapter 8, python3 and qwen2-syn-f32.gguf"
    else
        printf 'Once upon a time\nLily wanted to\n' | timeout 60 "$CB" -m "$qm" -cnv --temp 0 -sys "You tell stories." -n 12 --ids \
            2>"$CL/q.err" | tail -n 1 >"$CL/q.ids"
        nl=$'\n'
        q1=$(sed -n 's/^\[chat\] turn 1: [0-9]* new tokens, \([0-9]*\) in the cache, reply \([0-9]*\) tokens.*/\1 \2/p' "$CL/q.err")
        qc1=${q1% *} qr1=${q1#* }
        reply=$(python3 tests/detok.py "$qm" $(cut -d' ' -f$((qc1 + 1))-$((qc1 + qr1)) "$CL/q.ids"); echo x)
        reply=${reply%x}
        text="<|im_start|>system${nl}You tell stories.<|im_end|>${nl}<|im_start|>user${nl}Once upon a time<|im_end|>${nl}"
        text+="<|im_start|>assistant${nl}${reply}<|im_end|>${nl}<|im_start|>user${nl}Lily wanted to<|im_end|>${nl}<|im_start|>assistant${nl}"
        one=$("$CB" -m "$qm" --no-escape -p "$text" -n 12 --temp 0 --ids 2>/dev/null)
        cl_same "$cl_name -cnv on qwen2-syn: the tokens of one run over the whole templated text" "$one" "$(cat "$CL/q.ids")"
    fi
    timeout 30 "${chat[@]}" </dev/null >"$CL/eof.out" 2>"$CL/eof.err"
    rc=$?
    if [ "$rc" = 0 ] && ! grep -q '^\[chat\] turn' "$CL/eof.err"; then ok "$cl_name -cnv: no input at all ends the chat with status 0"
    else bad "$cl_name -cnv: no input at all ends the chat with status 0" "status $rc: $(head -c 200 "$CL/eof.err")"; fi
    cl_c=$(( ${c1:-80} + 20 )) # room for 20 tokens of the first reply
    printf 'Once upon a time\nLily wanted to\n' | timeout 60 "${chat[@]}" -c "$cl_c" --ignore-eos --ids >"$CL/full.out" 2>"$CL/full.err"
    rc=$?
    if [ "$rc" = 0 ] && grep -q "^context full: the conversation reached $cl_c tokens, .*(-c $cl_c); start a new chat or use a larger -c\$" "$CL/full.err" &&
        [ "$(tail -n 1 "$CL/full.out" | wc -w)" = "$cl_c" ] && [ "$(grep -c '^\[chat\] turn' "$CL/full.err")" = 1 ]; then
        ok "$cl_name -cnv -c $cl_c: the reply fills the context, 'context full', status 0"
    else bad "$cl_name -cnv -c $cl_c: the reply fills the context, 'context full', status 0" "status $rc: $(head -c 300 "$CL/full.err")"; fi
    printf '%s\n' "$long$long" | timeout 60 "${chat[@]}" -c 40 -n 4 >"$CL/long.out" 2>"$CL/long.err"
    rc=$?
    if [ "$rc" = 0 ] && grep -q '^context full: .*(-c 40); start a new chat or use a larger -c$' "$CL/long.err" &&
        ! grep -q '^\[chat\] turn' "$CL/long.err"; then
        ok "$cl_name -cnv -c 40: a message that does not fit, 'context full', status 0"
    else bad "$cl_name -cnv -c 40: a message that does not fit, 'context full', status 0" "status $rc: $(head -c 300 "$CL/long.err")"; fi

    # Ctrl-C: in a reply it stops that reply and the chat goes on; at the prompt it ends the chat.
    # Chapter 1 on syn-k256 (about 7 tokens/s) leaves time to press it; the loop is the same driver.
    if [ -x "$BUILD/ch01" ] && have_shared models/syn-k256.bin models/tok512.bin; then
        cl_fifo=$CL/in
        rm -f "$cl_fifo" && mkfifo "$cl_fifo"
        # a background job of a script starts with Ctrl-C ignored (and the driver keeps it so, as
        # nohup wants): the subshell gives it back before the chapter starts
        (trap - INT; exec "$BUILD/ch01" -m "$SHARED/models/syn-k256.bin" -z "$SHARED/models/tok512.bin" -cnv \
            --chat-template chatml --temp 0 --ignore-eos -n 300) <"$cl_fifo" >"$CL/int.out" 2>"$CL/int.err" &
        cl_pid=$!
        exec 7<>"$cl_fifo" # read-write: never blocks, and closing it is the end of the input
        # cl_wait TEST...: up to 60 s for TEST to hold
        cl_wait() { local i; for i in $(seq 600); do "$@" && return 0; sleep 0.1; done; return 1; }
        cl_grown() { [ "$(wc -c <"$CL/int.out")" -gt "$1" ]; } # the reply has begun: stdout past SIZE
        cl_turn_done() { grep -q "^\[chat\] turn $1: " "$CL/int.err"; }
        echo "Once upon a time" >&7
        cl_wait cl_grown 4 && kill -INT "$cl_pid"
        cl_wait cl_turn_done 1 && sleep 0.5
        cl_size=$(wc -c <"$CL/int.out")
        echo "Lily wanted to" >&7
        cl_wait cl_grown $((cl_size + 2)) && kill -INT "$cl_pid"
        cl_wait cl_turn_done 2
        sleep 0.5
        kill -INT "$cl_pid" 2>/dev/null # at the prompt: the end
        exec 7>&-
        cl_wait eval '! kill -0 "$cl_pid" 2>/dev/null'
        kill -KILL "$cl_pid" 2>/dev/null
        wait "$cl_pid"
        rc=$?
        if grep -q '^\[chat\] turn 1: .*(stopped by Ctrl-C)' "$CL/int.err" && grep -q '^\[chat\] turn 2: .*(stopped by Ctrl-C)' "$CL/int.err"; then
            ok "ch01 -cnv: Ctrl-C stops a reply and the chat goes on (twice, one reply each)"
        else bad "ch01 -cnv: Ctrl-C stops a reply and the chat goes on" "$(head -c 300 "$CL/int.err")"; fi
        if [ "$rc" = 130 ]; then ok "ch01 -cnv: Ctrl-C at the prompt ends the chat, status 130"
        else bad "ch01 -cnv: Ctrl-C at the prompt ends the chat, status 130" "status $rc"; fi
        rm -f "$cl_fifo"
    else skip "ch01 -cnv: Ctrl-C" "build/ch01 or syn-k256.bin is missing"; fi
fi

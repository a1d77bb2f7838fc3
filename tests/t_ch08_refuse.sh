# Chapter 8 refuses what it does not understand, and the golden tests can fail.
#
# Chapter 8 loads today's families (llama and qwen2: biases, NEOX RoPE, rope_freqs.weight,
# rope.scaling linear/yarn, tied embeddings) and must refuse, with one `error:` line naming the
# file and the key or tensor, every metadata key and tensor it does not understand: ignoring
# one would give fluent-looking wrong logits without a word. Here build/gguf_edit makes each
# bad file from the shared family files by one edit (or a few), and:
#  1. the tool itself: every shared GGUF file comes back byte for byte through it unedited,
#     edits that change nothing change no byte, edits show in --list, an added tensor holds its
#     value, and its bad input is one error line with no output file left behind;
#  2. every refusal, with expect_error, and then that the error line names the file and the
#     thing (the key, the tensor, the value). The tokenizer's refusals (tokenizer.ggml.model,
#     .pre, an unknown tokenizer.* key, BPE without merges) belong to src/gguf_vocab.c;
#  3. what must load still loads: every shipped family file, and copies with harmless changes
#     (an extra general.* or quantize.* key, a zero bias on a llama file, rope_freqs of ones),
#     whose logits are the unedited file's, bit for bit; rope_freqs of twos changes them;
#  4. ignoring a feature would not be silent: with the Qwen2 biases zeroed (what a loader that
#     skipped them computes; zeroed rather than dropped, because llama.cpp requires them in a
#     qwen2 file), with the YaRN file's rope.scaling.* keys dropped or its type read as linear,
#     and with the Qwen2 file relabelled as llama (adjacent RoPE pairs instead of NEOX halves),
#     the logits are more than 1 away from llama.cpp's, and without the Llama 3 file's
#     rope_freqs.weight more than 0.1, where the unedited files are within 1e-3: a loader that
#     ignored biases, scaling, factors or the pairing would fail the golden tests.
# The runs use --logits with --tokens, which needs no vocabulary.
R8=$TMP/t_ch08_refuse
mkdir -p "$R8"
R8_FAM=$SHARED/models/gguf/families
R8_EDIT=$BUILD/gguf_edit

# ---- 1. the tool ---------------------------------------------------------
if [ ! -x "$R8_EDIT" ]; then
    skip "gguf_edit" "$R8_EDIT is missing"
elif ! have_shared models/gguf/families/qwen2-syn-q8_0.gguf models/gguf/llama2xs-q8_0.gguf; then
    skip "gguf_edit on the shared files" "$SHARED/models/gguf (with families/) is absent"
else
    # unedited: byte for byte, folder by folder
    for dir in models/gguf models/gguf/families models/gguf/vocab; do
        n=0 diffs=""
        for f in "$SHARED/$dir"/*.gguf; do
            [ -e "$f" ] || continue
            n=$((n + 1))
            if ! "$R8_EDIT" "$f" "$R8/rt.gguf" 2>"$R8/err"; then diffs="$diffs $(basename "$f") (failed: $(head -c 100 "$R8/err"))"
            elif ! cmp -s "$f" "$R8/rt.gguf"; then diffs="$diffs $(basename "$f") ($(cmp "$f" "$R8/rt.gguf" 2>&1 | head -c 100))"; fi
            rm -f "$R8/rt.gguf"
        done
        if [ "$n" -eq 0 ]; then skip "gguf_edit round trip of $dir" "no .gguf files there"
        elif [ -z "$diffs" ]; then ok "gguf_edit IN OUT: the $n files of $dir come back byte for byte"
        else bad "gguf_edit IN OUT on $dir" "not identical:$diffs"; fi
    done

    # edits that change nothing change no byte
    r8_q8=$R8_FAM/qwen2-syn-q8_0.gguf r8_f32=$SHARED/models/gguf/llama2xs-f32.gguf
    r8_same() { # NAME FILE EDITS...: the edits give FILE back, byte for byte
        local name=$1 f=$2; shift 2
        if ! "$R8_EDIT" "$f" "$R8/same.gguf" "$@" 2>"$R8/err"; then bad "gguf_edit: $name" "failed: $(head -c 200 "$R8/err")"
        elif cmp -s "$f" "$R8/same.gguf"; then ok "gguf_edit: $name changes no byte"
        else bad "gguf_edit: $name" "the file changed: $(cmp "$f" "$R8/same.gguf" 2>&1 | head -c 100)"; fi
        rm -f "$R8/same.gguf"
    }
    r8_same "--set-str of a key's own value" "$r8_q8" --set-str general.name qwen2-syn
    r8_same "--set-u32 of a key's own value" "$r8_q8" --set-u32 qwen2.block_count 4
    r8_same "--set-bool of a key's own value" "$r8_q8" --set-bool tokenizer.ggml.add_bos_token 0
    r8_same "--set-f32 of a key's own value" "$r8_q8" --set-f32 qwen2.rope.freq_base 1000000
    r8_same "--rename-key there and back" "$r8_q8" --rename-key qwen2.block_count x --rename-key x qwen2.block_count
    r8_same "--rename-prefix there and back" "$r8_q8" --rename-prefix qwen2. llama. --rename-prefix llama. qwen2.
    r8_same "--rename-tensor there and back" "$r8_q8" --rename-tensor blk.0.attn_q.bias b --rename-tensor b blk.0.attn_q.bias
    r8_same "--set-type of a tensor's own type" "$r8_f32" --set-type token_embd.weight 0
    r8_same "--add-f32-tensor then --drop-tensor" "$r8_q8" --add-f32-tensor extra 64x2 1.5 --drop-tensor extra

    # edits show in --list, and the reader accepts what the tool writes
    if ! "$R8_EDIT" "$r8_q8" "$R8/e.gguf" --set-u32 mymodel.x 7 --drop-key general.name --set-str general.type "a b" \
        --rename-tensor blk.3.ffn_up.weight up3 --add-f32-tensor extra 3x2 0.5 --set-type blk.0.attn_q.weight 16 2>"$R8/err"; then
        bad "gguf_edit: several edits" "failed: $(head -c 200 "$R8/err")"
    elif ! "$R8_EDIT" --list "$R8/e.gguf" >"$R8/list" 2>"$R8/err"; then
        bad "gguf_edit: several edits" "the reader refuses the result: $(head -c 200 "$R8/err")"
    else
        r8_missing=""
        for line in "key mymodel.x u32 7" 'key general.type string "a b"' "tensor up3 q8_0 256x768 at" \
            "tensor extra f32 3x2 at" "tensor blk.0.attn_q.weight iq2_xxs 256x256 at"; do
            grep -qF "$line" "$R8/list" || r8_missing="$r8_missing [$line]"
        done
        grep -q "general.name\|blk.3.ffn_up.weight" "$R8/list" && r8_missing="$r8_missing [a dropped key or old tensor name is still there]"
        # the new tensor's 6 values of 0.5 (0x3f000000) end the data, then 8 zeros up to the alignment (32)
        r8_tail=$(tail -c 32 "$R8/e.gguf" | od -An -v -tx1 | tr -d ' \n')
        r8_want=$(printf '0000003f%.0s' 1 2 3 4 5 6; printf '00%.0s' 1 2 3 4 5 6 7 8)
        [ "$r8_tail" = "$r8_want" ] || r8_missing="$r8_missing [the file's last 32 bytes are $r8_tail, expected $r8_want]"
        if [ -z "$r8_missing" ]; then ok "gguf_edit: --set-u32, --set-str, --drop-key, --rename-tensor, --add-f32-tensor, --set-type show in --list"
        else bad "gguf_edit: several edits" "missing from --list or the data:$r8_missing"; fi
    fi
    rm -f "$R8/e.gguf"

    # bad input: one line, status 1, and no output file
    r8_no_out=""
    r8_tool_error() { # NAME ARGS...: gguf_edit ARGS refused, and $R8/out.gguf not created
        local name=$1; shift
        expect_error "gguf_edit refuses $name" "$R8_EDIT" "$@"
        [ -e "$R8/out.gguf" ] && r8_no_out="$r8_no_out [$name]"
        rm -f "$R8/out.gguf"
    }
    r8_tool_error "an unknown option" "$r8_q8" "$R8/out.gguf" --set-int x 1
    r8_tool_error "a missing option argument" "$r8_q8" "$R8/out.gguf" --set-str general.name
    r8_tool_error "a missing output" "$r8_q8"
    r8_tool_error "a missing input" "$R8/nothing.gguf" "$R8/out.gguf"
    r8_tool_error "an input that is not GGUF" "$SHARED/reference/prompts.tsv" "$R8/out.gguf"
    r8_tool_error "--drop-key of a missing key" "$r8_q8" "$R8/out.gguf" --set-u32 a 1 --drop-key no.such.key
    r8_tool_error "--rename-key onto a key that exists" "$r8_q8" "$R8/out.gguf" --rename-key general.name general.type
    r8_tool_error "--rename-prefix that matches nothing" "$r8_q8" "$R8/out.gguf" --rename-prefix phi3. llama.
    r8_tool_error "--drop-tensor of a missing tensor" "$r8_q8" "$R8/out.gguf" --drop-tensor blk.9.attn_q.weight
    r8_tool_error "--rename-tensor onto a tensor that exists" "$r8_q8" "$R8/out.gguf" --rename-tensor blk.0.attn_q.bias blk.0.attn_k.bias
    r8_tool_error "a tensor name of 65 bytes" "$r8_q8" "$R8/out.gguf" --add-f32-tensor "$(printf 'x%.0s' $(seq 65))" 4 0
    r8_tool_error "--add-f32-tensor of shape 0x3" "$r8_q8" "$R8/out.gguf" --add-f32-tensor t 0x3 1
    r8_tool_error "--add-f32-tensor of value nan" "$r8_q8" "$R8/out.gguf" --add-f32-tensor t 4 nan
    r8_tool_error "--set-type to an id the reader does not know (4)" "$r8_q8" "$R8/out.gguf" --set-type blk.0.attn_q.weight 4
    r8_tool_error "--set-type to blocks the row cannot hold" "$r8_q8" "$R8/out.gguf" --set-type blk.0.attn_k.bias 16
    r8_tool_error "--set-u32 -1" "$r8_q8" "$R8/out.gguf" --set-u32 general.x -1
    r8_tool_error "--set-bool 2" "$r8_q8" "$R8/out.gguf" --set-bool general.x 2
    r8_tool_error "--set-f32 of junk" "$r8_q8" "$R8/out.gguf" --set-f32 general.x 1.5x
    r8_tool_error "general.alignment 3" "$r8_q8" "$R8/out.gguf" --set-u32 general.alignment 3
    if [ -z "$r8_no_out" ]; then ok "gguf_edit: none of those errors leaves an output file"
    else bad "gguf_edit: an error left an output file" "$r8_no_out"; fi
fi

# ---- 2.-4. chapter 8 -----------------------------------------------------
if ! chapter_is 08 || [ ! -x "$BUILD/ch08" ]; then
    skip "chapter 8 refusals" "$BUILD/ch08 is missing"
elif [ ! -x "$R8_EDIT" ] || [ ! -x "$BUILD/logits_cmp" ]; then
    skip "chapter 8 refusals" "$R8_EDIT or $BUILD/logits_cmp is missing"
elif ! have_shared models/gguf/families/qwen2-syn-q8_0.gguf models/gguf/families/llama-ropescale-syn-yarn-q8_0.gguf \
    models/gguf/families/llama-ropescale-syn-llama3-q8_0.gguf; then
    skip "chapter 8 refusals" "$R8_FAM is absent"
else
    R8_CH8=$BUILD/ch08
    R8_Q=$R8_FAM/qwen2-syn-q8_0.gguf              # qwen2: dim 256, 8 heads (head 32), kv_dim 64, hidden 768, 4 blocks
    R8_LY=$R8_FAM/llama-ropescale-syn-yarn-q8_0.gguf # llama: dim 256, kv_dim 128, hidden 256, 2 blocks, vocab 512, yarn
    R8_L3=$R8_FAM/llama-ropescale-syn-llama3-q8_0.gguf # llama with rope_freqs.weight (16 = rope_dim / 2 factors)

    # r8_make NAME BASE EDITS...: BASE edited into a new file, $r8_file (a bad result if the tool fails)
    r8_case=0
    r8_make() {
        local name=$1 base=$2; shift 2
        r8_case=$((r8_case + 1))
        r8_file=$R8/case$r8_case.gguf
        "$R8_EDIT" "$base" "$r8_file" "$@" 2>"$R8/err" && return 0
        bad "ch08: $name" "gguf_edit could not make the file: $(head -c 200 "$R8/err")"
        return 1
    }
    # r8_refuse NAME BASE "NEEDLE..." EDITS...: chapter 8 refuses the edited file with one error
    # line (expect_error), which names the file and contains every space-separated NEEDLE
    r8_refuse() {
        local name=$1 base=$2 needles=$3; shift 3
        r8_make "$name" "$base" "$@" || return 0
        local file=$r8_file before=$FAIL r8_missing="" n
        # expect_error (tests/lib.sh) leaves the command's stderr in $TMP/ee.err
        expect_error "ch08 refuses $name" "$R8_CH8" -m "$file" --logits "$R8/x.lgts" --tokens "1 2 3"
        if [ "$FAIL" -ne "$before" ]; then
            skip "ch08 names the problem: $name" "no refusal to read"
        else
            grep -qF -- "$file" "$TMP/ee.err" || r8_missing="$r8_missing [the file]"
            for n in $needles; do grep -qF -- "$n" "$TMP/ee.err" || r8_missing="$r8_missing [$n]"; done
            if [ -z "$r8_missing" ]; then ok "ch08 names the problem: $name"
            else bad "ch08 names the problem: $name" "the line lacks$r8_missing: $(cat "$TMP/ee.err")"; fi
        fi
        rm -f "$file" "$R8/x.lgts"
    }
    # r8_logits FILE OUT [IDS-FILE]: chapter 8's teacher-forced logits of FILE (ids 1 2 3 or IDS-FILE)
    r8_logits() {
        if [ -n "${3:-}" ]; then "$R8_CH8" -m "$1" --logits "$2" --tokens-file "$3" 2>"$R8/err"
        else "$R8_CH8" -m "$1" --logits "$2" --tokens "1 2 3" 2>"$R8/err"; fi
    }
    # r8_loads_same NAME BASE EDITS...: the edited file loads and gives BASE's logits, bit for bit
    r8_loads_same() {
        local name=$1 base=$2; shift 2
        r8_make "$name" "$base" "$@" || return 0
        if ! r8_logits "$base" "$R8/want.lgts"; then bad "ch08 accepts $name" "the unedited file fails: $(head -c 200 "$R8/err")"
        elif ! r8_logits "$r8_file" "$R8/got.lgts"; then bad "ch08 accepts $name" "$(head -c 300 "$R8/err")"
        elif cmp -s "$R8/want.lgts" "$R8/got.lgts"; then ok "ch08 accepts $name, with the unedited file's logits"
        else bad "ch08 accepts $name" "the logits changed: $("$BUILD/logits_cmp" "$R8/want.lgts" "$R8/got.lgts" 2>&1 | head -c 160)"; fi
        rm -f "$r8_file" "$R8/want.lgts" "$R8/got.lgts"
    }

    # -- the architecture and the family's keys
    r8_refuse 'general.architecture "phi3"' "$R8_LY" "phi3" --set-str general.architecture phi3
    r8_refuse 'general.architecture "gpt2"' "$R8_Q" "gpt2" --set-str general.architecture gpt2
    r8_refuse 'no general.architecture' "$R8_LY" "general.architecture" --drop-key general.architecture
    r8_refuse 'general.architecture of type u32' "$R8_LY" "general.architecture" --set-u32 general.architecture 1
    r8_refuse 'an unknown llama.* key (llama.foo)' "$R8_LY" "llama.foo" --set-u32 llama.foo 1
    r8_refuse 'qwen2.attention.logit_softcapping' "$R8_Q" "qwen2.attention.logit_softcapping" \
        --set-f32 qwen2.attention.logit_softcapping 30
    r8_refuse 'llama.attention.layer_norm_epsilon (LayerNorm)' "$R8_LY" "llama.attention.layer_norm_epsilon" \
        --set-f32 llama.attention.layer_norm_epsilon 1e-5
    r8_refuse 'llama.attention.sliding_window' "$R8_LY" "llama.attention.sliding_window" --set-u32 llama.attention.sliding_window 64
    r8_refuse "another family's key in a qwen2 file (llama.context_length)" "$R8_Q" "llama.context_length" \
        --set-u32 llama.context_length 512
    r8_refuse 'an unknown top-level key (mymodel.x)' "$R8_LY" "mymodel.x" --set-u32 mymodel.x 1
    r8_refuse 'split.count 2' "$R8_Q" "split.count" --set-u32 split.count 2
    r8_refuse 'llama.expert_count 8' "$R8_LY" "llama.expert_count" --set-u32 llama.expert_count 8
    r8_refuse 'qwen2.expert_used_count 2' "$R8_Q" "qwen2.expert_used_count" --set-u32 qwen2.expert_used_count 2
    r8_refuse 'attention.key_length 64 (heads are 32 wide)' "$R8_LY" "llama.attention.key_length" \
        --set-u32 llama.attention.key_length 64
    r8_refuse 'attention.value_length 16' "$R8_Q" "qwen2.attention.value_length" --set-u32 qwen2.attention.value_length 16
    r8_refuse 'llama.vocab_size 513 (512 rows)' "$R8_LY" "llama.vocab_size" --set-u32 llama.vocab_size 513
    r8_refuse 'qwen2.vocab_size 1000 (2048 rows)' "$R8_Q" "qwen2.vocab_size" --set-u32 qwen2.vocab_size 1000
    r8_refuse 'no block_count' "$R8_Q" "qwen2.block_count" --drop-key qwen2.block_count
    r8_refuse 'no embedding_length' "$R8_LY" "llama.embedding_length" --drop-key llama.embedding_length
    r8_refuse 'no layer_norm_rms_epsilon' "$R8_LY" "llama.attention.layer_norm_rms_epsilon" \
        --drop-key llama.attention.layer_norm_rms_epsilon
    r8_refuse 'block_count of type string' "$R8_Q" "qwen2.block_count" --set-str qwen2.block_count 4
    r8_refuse 'block_count 0' "$R8_Q" "qwen2.block_count" --set-u32 qwen2.block_count 0

    # -- RoPE scaling
    r8_refuse 'rope.scaling.type "longrope"' "$R8_LY" "llama.rope.scaling.type longrope" --set-str llama.rope.scaling.type longrope
    r8_refuse 'rope.scaling.type "su"' "$R8_LY" "llama.rope.scaling.type su" --set-str llama.rope.scaling.type su
    r8_refuse 'rope.scaling.factor -2' "$R8_LY" "llama.rope.scaling.factor" --set-f32 llama.rope.scaling.factor -2
    r8_refuse 'rope.scale_linear -2 (the old name)' "$R8_L3" "llama.rope.scale_linear" --set-f32 llama.rope.scale_linear -2
    r8_refuse 'rope.scaling.original_context_length 0' "$R8_LY" "llama.rope.scaling.original_context_length" \
        --set-u32 llama.rope.scaling.original_context_length 0
    r8_refuse 'an unknown rope.scaling.* key (yarn_beta_fast)' "$R8_LY" "llama.rope.scaling.yarn_beta_fast" \
        --set-f32 llama.rope.scaling.yarn_beta_fast 16

    # -- tensors
    r8_refuse 'blk.0.attn_output.bias' "$R8_LY" "blk.0.attn_output.bias" --add-f32-tensor blk.0.attn_output.bias 256 0
    r8_refuse 'blk.0.ffn_gate.bias' "$R8_Q" "blk.0.ffn_gate.bias" --add-f32-tensor blk.0.ffn_gate.bias 768 0
    r8_refuse 'output.bias' "$R8_Q" "output.bias" --add-f32-tensor output.bias 2048 0
    r8_refuse 'blk.0.attn_q_norm.weight' "$R8_Q" "blk.0.attn_q_norm.weight" --add-f32-tensor blk.0.attn_q_norm.weight 32 1
    r8_refuse 'blk.4.attn_q.weight (4 blocks: 0..3)' "$R8_Q" "blk.4.attn_q.weight" --add-f32-tensor blk.4.attn_q.weight 256x256 0
    r8_refuse 'blk.9.attn_q.weight' "$R8_Q" "blk.9.attn_q.weight" --add-f32-tensor blk.9.attn_q.weight 256x256 0
    r8_refuse 'blk.01.attn_q.weight' "$R8_Q" "blk.01.attn_q.weight" --add-f32-tensor blk.01.attn_q.weight 256x256 0
    r8_refuse 'blk.-1.attn_q.weight' "$R8_Q" "blk.-1.attn_q.weight" --add-f32-tensor blk.-1.attn_q.weight 256x256 0
    r8_refuse 'no blk.1.ffn_up.weight' "$R8_Q" "blk.1.ffn_up.weight" --drop-tensor blk.1.ffn_up.weight
    r8_refuse 'no output_norm.weight' "$R8_LY" "output_norm.weight" --drop-tensor output_norm.weight
    r8_refuse 'no token_embd.weight' "$R8_Q" "token_embd.weight" --drop-tensor token_embd.weight
    r8_refuse 'blk.0.attn_k.weight of shape [256, 128] (kv_dim 64)' "$R8_Q" "blk.0.attn_k.weight" \
        --drop-tensor blk.0.attn_k.weight --add-f32-tensor blk.0.attn_k.weight 256x128 0
    r8_refuse 'rope_freqs.weight of 17 factors (16)' "$R8_L3" "rope_freqs.weight" \
        --drop-tensor rope_freqs.weight --add-f32-tensor rope_freqs.weight 17 1
    r8_refuse 'rope_freqs.weight of factors 0' "$R8_L3" "rope_freqs.weight" \
        --drop-tensor rope_freqs.weight --add-f32-tensor rope_freqs.weight 16 0
    r8_refuse 'rope_freqs.weight of factors -1' "$R8_L3" "rope_freqs.weight" \
        --drop-tensor rope_freqs.weight --add-f32-tensor rope_freqs.weight 16 -1
    r8_refuse 'blk.0.attn_k.bias of 65 values (kv_dim 64)' "$R8_Q" "blk.0.attn_k.bias" \
        --drop-tensor blk.0.attn_k.bias --add-f32-tensor blk.0.attn_k.bias 65 0
    r8_refuse 'blk.1.attn_q.bias of 128 values (dim 256)' "$R8_Q" "blk.1.attn_q.bias" \
        --drop-tensor blk.1.attn_q.bias --add-f32-tensor blk.1.attn_q.bias 128 0
    r8_refuse 'a matrix of type iq2_xxs (16)' "$R8_Q" "blk.0.attn_q.weight iq2_xxs" --set-type blk.0.attn_q.weight 16
    r8_refuse 'a matrix of type q4_1 (3)' "$R8_Q" "blk.2.ffn_down.weight q4_1" --set-type blk.2.ffn_down.weight 3
    r8_refuse 'token_embd.weight of type bf16 (30)' "$R8_LY" "token_embd.weight bf16" --set-type token_embd.weight 30
    r8_refuse 'a norm of type f16' "$R8_Q" "blk.0.attn_norm.weight f16" --set-type blk.0.attn_norm.weight 1
    r8_refuse 'a bias of type f16' "$R8_Q" "blk.0.attn_v.bias f16" --set-type blk.0.attn_v.bias 1
    r8_refuse 'rope_freqs.weight of type f16' "$R8_L3" "rope_freqs.weight f16" --set-type rope_freqs.weight 1

    # -- the tokenizer's keys (src/gguf_vocab.c)
    r8_refuse 'tokenizer.ggml.model "bert"' "$R8_Q" "tokenizer.ggml.model bert" --set-str tokenizer.ggml.model bert
    r8_refuse 'tokenizer.ggml.pre "deepseek-llm"' "$R8_Q" "tokenizer.ggml.pre deepseek-llm" \
        --set-str tokenizer.ggml.pre deepseek-llm
    r8_refuse 'an unknown tokenizer.* key (tokenizer.ggml.foo)' "$R8_Q" "tokenizer.ggml.foo" --set-u32 tokenizer.ggml.foo 1
    r8_refuse 'a BPE vocabulary without tokenizer.ggml.merges' "$R8_Q" "tokenizer.ggml.merges" --drop-key tokenizer.ggml.merges

    # -- 3. what must load, loads
    for f in "$R8_FAM"/*.gguf; do
        if ! r8_logits "$f" "$R8/ship.lgts"; then bad "ch08 loads $(basename "$f")" "$(head -c 300 "$R8/err")"
        elif [ ! -s "$R8/ship.lgts" ]; then bad "ch08 loads $(basename "$f")" "no logits written"
        else ok "ch08 loads $(basename "$f") (--logits)"; fi
        rm -f "$R8/ship.lgts"
    done
    r8_loads_same 'an extra general.* key' "$R8_Q" --set-str general.url https://example.org --set-u32 general.version 2
    r8_loads_same 'extra quantize.* keys' "$R8_LY" --set-str quantize.imatrix.file imatrix.dat \
        --set-u32 quantize.imatrix.entries_count 14
    r8_loads_same 'rope.scaling.finetuned' "$R8_LY" --set-bool llama.rope.scaling.finetuned 1
    r8_loads_same 'zero biases on a llama file' "$R8_LY" --add-f32-tensor blk.0.attn_q.bias 256 0 \
        --add-f32-tensor blk.1.attn_k.bias 128 0 --add-f32-tensor blk.1.attn_v.bias 128 0
    r8_loads_same 'rope_freqs.weight of ones' "$R8_LY" --add-f32-tensor rope_freqs.weight 16 1
    # rope_freqs of twos is read: the logits move
    if r8_make freqs2 "$R8_LY" --add-f32-tensor rope_freqs.weight 16 2; then
        if ! r8_logits "$R8_LY" "$R8/want.lgts" || ! r8_logits "$r8_file" "$R8/got.lgts"; then
            bad "ch08 applies rope_freqs.weight" "$(head -c 200 "$R8/err")"
        elif cmp -s "$R8/want.lgts" "$R8/got.lgts"; then bad "ch08 applies rope_freqs.weight" "factors of 2 leave the logits unchanged"
        else ok "ch08 applies rope_freqs.weight: factors of 2 change the logits"; fi
        rm -f "$r8_file" "$R8/want.lgts" "$R8/got.lgts"
    fi

    # -- 4. the golden tests can fail
    # r8_far NAME STEM IDS MIN EDITS...: STEM's f32 file is within 1e-3 of llama.cpp's logits-ts0
    # (once per STEM: the control), the edited copy more than MIN away
    r8_far() {
        local name=$1 stem=$2 ids=$3 min=$4; shift 4
        local base=$R8_FAM/$stem.gguf ref=$SHARED/reference/$stem/llamacpp/logits-ts0.bin rc line
        if [ ! -e "$base" ] || [ ! -e "$ref" ] || [ ! -e "$ids" ]; then
            skip "ch08 golden test can fail: $name" "$stem.gguf, its logits-ts0.bin or $(basename "$ids") is not in $SHARED"
            return 0
        fi
        if [ ! -e "$R8/control-$stem" ]; then
            touch "$R8/control-$stem"
            if ! r8_logits "$base" "$R8/ours.lgts" "$ids"; then bad "ch08 on $stem (control)" "$(head -c 200 "$R8/err")"
            elif line=$("$BUILD/logits_cmp" "$ref" "$R8/ours.lgts" --max-diff 1e-3 2>&1); then ok "ch08 on $stem is within 1e-3 of llama.cpp (control: $line)"
            else bad "ch08 on $stem (control)" "not within 1e-3 of llama.cpp: $(echo "$line" | tr "\n" " " | head -c 200)"; fi
        fi
        r8_make "$stem-$name" "$base" "$@" || return 0
        if ! r8_logits "$r8_file" "$R8/ours.lgts" "$ids"; then
            bad "ch08 golden test can fail: $name" "the edited file does not run: $(head -c 200 "$R8/err")"
        else
            line=$("$BUILD/logits_cmp" "$ref" "$R8/ours.lgts" --max-diff "$min" 2>/dev/null)
            rc=$?
            if [ "$rc" -eq 1 ]; then ok "ch08 golden test can fail: $name: $line"
            elif [ "$rc" -eq 0 ]; then bad "ch08 golden test can fail: $name" "only $line: within $min of llama.cpp"
            else bad "ch08 golden test can fail: $name" "logits_cmp could not compare (status $rc)"; fi
        fi
        rm -f "$r8_file" "$R8/ours.lgts"
    }
    r8_zero_biases=()
    for l in 0 1 2 3; do
        r8_zero_biases+=(--drop-tensor blk.$l.attn_q.bias --add-f32-tensor blk.$l.attn_q.bias 256 0
                         --drop-tensor blk.$l.attn_k.bias --add-f32-tensor blk.$l.attn_k.bias 64 0
                         --drop-tensor blk.$l.attn_v.bias --add-f32-tensor blk.$l.attn_v.bias 64 0)
    done
    r8_far "qwen2 biases zeroed" qwen2-syn-f32 "$SHARED/reference/ts0.qwen2-syn.tokens" 1 "${r8_zero_biases[@]}"
    r8_far "qwen2 read as llama (adjacent RoPE pairs)" qwen2-syn-f32 "$SHARED/reference/ts0.qwen2-syn.tokens" 1 \
        --set-str general.architecture llama --rename-prefix qwen2. llama.
    r8_far "yarn without its rope.scaling keys" llama-ropescale-syn-yarn-f32 "$SHARED/reference/ts0.tok512.tokens" 1 \
        --drop-key llama.rope.scaling.type --drop-key llama.rope.scaling.factor \
        --drop-key llama.rope.scaling.original_context_length
    r8_far "yarn read as linear" llama-ropescale-syn-yarn-f32 "$SHARED/reference/ts0.tok512.tokens" 1 \
        --set-str llama.rope.scaling.type linear
    # Llama 3's factors only slow the slowest pairs: the logits move by less, but still 100 times the tolerance
    r8_far "rope_freqs.weight dropped" llama-ropescale-syn-llama3-f32 "$SHARED/reference/ts0.tok512.tokens" 0.1 \
        --drop-tensor rope_freqs.weight
fi

# The chain: each chapter agrees with the previous one on the same inputs, with
# the tolerance its line in tests/chain.tsv states. A later chapter adds one
# line there, not a new test program. First, that every chapter has its line:
# the chapters are those of chapters/chapters.tsv (tests/lib.sh reads it).

# model_files NAME: "MODEL TOKENIZER" for one model name of chain.tsv (TOKENIZER "-" for a
# GGUF file, which brings its own vocabulary), or nothing when the model is not there
model_files() {
    local f
    case $1 in
    tiny) [ -e "$BUILD/models/tiny.bin" ] && echo "$BUILD/models/tiny.bin $BUILD/models/tok512.bin" ;;
    tiny-*.gguf) # tiny.bin converted by gguf_convert -t TYPE (made once, in $BUILD/models)
        f=${1#tiny-}
        f=$(tiny_gguf "${f%.gguf}") && echo "$f -" ;;
    *.gguf) have_shared "models/gguf/$1" && echo "$SHARED/models/gguf/$1 -" ;;
    *) have_shared "models/$1.bin" models/tok512.bin && echo "$SHARED/models/$1.bin $SHARED/models/tok512.bin" ;;
    esac
}

# pair_files SPEC: "NEW_MODEL NEW_TOK PREV_MODEL PREV_TOK" for a models entry NAME (both
# chapters on it) or NEW:PREV (the new chapter on NEW, the previous one on PREV)
pair_files() {
    local a b
    a=$(model_files "${1%%:*}") && b=$(model_files "${1#*:}") && echo "$a $b"
}

# pair_name NEW PREV SPEC: how a test names the pair ("ch04 vs ch03 tiny", "ch05 on
# tiny-q8_0.gguf vs ch04 on tiny")
pair_name() {
    case $3 in
    *:*) echo "ch$1 on ${3%%:*} vs ch$2 on ${3#*:}" ;;
    *) echo "ch$1 vs ch$2 $3" ;;
    esac
}

# run_ch NN MODEL TOKENIZER ARGS...: build/chNN on MODEL (with -z TOKENIZER unless it is "-")
run_ch() {
    local ch=$1 model=$2 tok=$3; shift 3
    if [ "$tok" = - ]; then "$BUILD/ch$ch" -m "$model" "$@"; else "$BUILD/ch$ch" -m "$model" -z "$tok" "$@"; fi
}

# Every chapter of the table has a source file, and every one but the first a line here
# against the chapter before it; every source file has its row in the table.
chain_table() {
    local nn prev src f line
    for f in chapters/[0-9][0-9]_*.c; do
        nn=$(basename "$f" | cut -c1-2)
        chapters | grep -qx "$nn" || bad "ch$nn in chapters/chapters.tsv" "$f has no row there"
    done
    for nn in $(chapters); do
        src=$(ls chapters/"$nn"_*.c 2>/dev/null | head -n 1)
        prev=$(chapter_before "$nn")
        if [ -z "$src" ]; then bad "ch$nn has its source and chain line" "no chapters/${nn}_*.c"; continue; fi
        if [ -z "$prev" ]; then ok "ch$nn: $src, the first chapter (no chain line)"; continue; fi
        line=$(awk -F '\t' -v nn="$nn" '$1 == nn { print $2 }' tests/chain.tsv)
        if [ "$line" = "$prev" ]; then ok "ch$nn: $src, its chain line against ch$prev"
        else bad "ch$nn has its chain line" "tests/chain.tsv has no line \"$nn $prev ...\"${line:+ (it has $nn $line)}"; fi
    done
}
chain_table

# ts0: the reference teacher-forced ids; the tiny model gets the same ids (its vocabulary is 512 too)
ts0_ids() {
    if [ -e "$SHARED/reference/ts0.tok512.tokens" ]; then cat "$SHARED/reference/ts0.tok512.tokens"
    else awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 509 + 3; print "" }'; fi
}

chain_logits() { # new prev spec max_diff min_top1 max_kl threads
    local new=$1 prev=$2 spec=$3 max_diff=$4 min_top1=$5 max_kl=$6 threads=${7:--} files nm nt pm pt name t
    name=$(pair_name "$new" "$prev" "$spec")
    local args=()
    [ "$max_diff" != - ] && args+=(--max-diff "$max_diff")
    [ "$min_top1" != - ] && args+=(--min-top1 "$min_top1")
    [ "$max_kl" != - ] && args+=(--max-kl "$max_kl")
    [ ${#args[@]} -eq 0 ] && return
    files=$(pair_files "$spec") || { skip "$name logits" "model not found"; return; }
    read -r nm nt pm pt <<<"$files"
    ts0_ids >"$TMP/ids"
    # each thread count of the line's threads column (given to the simd chapters only)
    for t in ${threads//,/ }; do
        local tl="" out
        [ "$t" != - ] && tl=", $t thread(s)"
        local what="$name teacher-forced logits (${args[*]}$tl)"
        # shellcheck disable=SC2046
        if "$BUILD/ch$prev" -m "$pm" $(thread_args "$prev" "$t") --logits "$TMP/prev.lgts" --tokens-file "$TMP/ids" 2>"$TMP/err" &&
            "$BUILD/ch$new" -m "$nm" $(thread_args "$new" "$t") --logits "$TMP/new.lgts" --tokens-file "$TMP/ids" 2>"$TMP/err"; then
            if out=$("$BUILD/logits_cmp" "$TMP/prev.lgts" "$TMP/new.lgts" "${args[@]}" 2>&1); then ok "$what: $out"
            else bad "$what" "$out"; fi
        else
            bad "$what" "$(tail -n 1 "$TMP/err")"
        fi
    done
}

chain_greedy() { # new prev spec mode
    local new=$1 prev=$2 spec=$3 mode=$4 files nm nt pm pt name positions=128
    [ "$mode" = - ] && return
    name=$(pair_name "$new" "$prev" "$spec")
    files=$(pair_files "$spec") || { skip "$name greedy" "model not found"; return; }
    read -r nm nt pm pt <<<"$files"
    [ "$QUICK" = 1 ] && positions=32
    local prompts=(p1 p2 p3 p4 p5)
    [ -e "$SHARED/reference/prompts.tsv" ] || prompts=(p1)
    for p in "${prompts[@]}"; do
        local text="Once upon a time"
        [ -e "$SHARED/reference/prompts.tsv" ] && text=$(prompt_text "$p")
        in_parallel save_greedy "$TMP/gn-$p" "$BUILD/ch$new" "$nm" "$nt" "$text" "$positions"
        in_parallel save_greedy "$TMP/gp-$p" "$BUILD/ch$prev" "$pm" "$pt" "$text" "$positions"
    done
    wait
    for p in "${prompts[@]}"; do
        if [ "$mode" = same ]; then
            same_ids "$name greedy $p ($positions positions)" "$(cat "$TMP/gn-$p")" "$(cat "$TMP/gp-$p")"
        else
            local n_same
            n_same=$(awk -v a="$(cat "$TMP/gn-$p")" -v b="$(cat "$TMP/gp-$p")" 'BEGIN {
                na = split(a, x, " "); nb = split(b, y, " "); for (i = 1; i <= na && i <= nb && x[i] == y[i]; i++); print i - 1 }')
            if [ -s "$TMP/gn-$p" ]; then ok "$name greedy $p: first $n_same of $(wc -w <"$TMP/gp-$p") ids agree (reported, not required)"
            else bad "ch$new $spec greedy $p" "no output"; fi
        fi
    done
}

chain_sampled() { # new prev spec mode
    local new=$1 prev=$2 spec=$3 mode=$4 files nm nt pm pt name
    [ "$mode" = - ] && return
    name=$(pair_name "$new" "$prev" "$spec")
    files=$(pair_files "$spec") || { skip "$name sampled" "model not found"; return; }
    read -r nm nt pm pt <<<"$files"
    local args=(-p "Once upon a time" -n 100 --temp 0.8 --top-p 0.9 -s 42)
    run_ch "$new" "$nm" "$nt" "${args[@]}" >"$TMP/sn" 2>/dev/null
    run_ch "$prev" "$pm" "$pt" "${args[@]}" >"$TMP/sp" 2>/dev/null
    if [ -s "$TMP/sn" ] && cmp -s "$TMP/sn" "$TMP/sp"; then ok "$name sampled text (seed 42) identical"
    else bad "$name sampled text (seed 42) identical" "$(head -c 80 "$TMP/sn") | $(head -c 80 "$TMP/sp")"; fi
}

chain_perplexity() { # new prev spec rel
    local new=$1 prev=$2 spec=$3 rel=$4 files nm nt pm pt name
    [ "$rel" = - ] && return
    name=$(pair_name "$new" "$prev" "$spec")
    files=$(pair_files "$spec") || { skip "$name perplexity" "model not found"; return; }
    have_shared data/tinystories-valid-excerpt.txt || { skip "$name perplexity" "text not found"; return; }
    read -r nm nt pm pt <<<"$files"
    local text=$SHARED/data/tinystories-valid-excerpt.txt pn pp
    pn=$(run_ch "$new" "$nm" "$nt" --perplexity "$text" 2>/dev/null | awk '/^perplexity:/ { print $2 }')
    pp=$(run_ch "$prev" "$pm" "$pt" --perplexity "$text" 2>/dev/null | awk '/^perplexity:/ { print $2 }')
    local what="$name perplexity within $rel"
    if [ -z "$pn" ] || [ -z "$pp" ]; then bad "$what" "no perplexity printed"; return; fi
    if awk -v a="$pn" -v b="$pp" -v r="$rel" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(d <= r) }'; then
        ok "$what: $pn vs $pp"
    else
        bad "$what" "$pn vs $pp"
    fi
}

while IFS=$'\t' read -r new prev models max_diff min_top1 max_kl greedy sampled ppl_rel threads _; do
    case "$new" in '#'* | '') continue ;; esac
    if [ ! -x "$BUILD/ch$new" ] || [ ! -x "$BUILD/ch$prev" ]; then skip "ch$new vs ch$prev" "not built"; continue; fi
    for spec in ${models//,/ }; do
        chain_logits "$new" "$prev" "$spec" "$max_diff" "$min_top1" "$max_kl" "${threads:--}"
        chain_greedy "$new" "$prev" "$spec" "$greedy"
        chain_sampled "$new" "$prev" "$spec" "$sampled"
        [ "$QUICK" = 1 ] || chain_perplexity "$new" "$prev" "$spec" "$ppl_rel"
    done
done <tests/chain.tsv

# The chain: each chapter agrees with the previous one on the same inputs, with
# the tolerance its line in tests/chain.tsv states. A later chapter adds one
# line there, not a new test program.

# model_files NAME: "MODEL TOKENIZER" for a model name of chain.tsv, or nothing.
model_files() {
    case $1 in
    tiny) [ -e "$BUILD/models/tiny.bin" ] && echo "$BUILD/models/tiny.bin $BUILD/models/tok512.bin" ;;
    *) have_shared "models/$1.bin" models/tok512.bin && echo "$SHARED/models/$1.bin $SHARED/models/tok512.bin" ;;
    esac
}

# ts0: the reference teacher-forced ids; the tiny model gets the same ids (its vocabulary is 512 too)
ts0_ids() {
    if [ -e "$SHARED/reference/ts0.tok512.tokens" ]; then cat "$SHARED/reference/ts0.tok512.tokens"
    else awk 'BEGIN { printf "1"; for (i = 1; i < 128; i++) printf " %d", (i * 37) % 509 + 3; print "" }'; fi
}

chain_logits() { # new prev model max_diff min_top1 max_kl
    local new=$1 prev=$2 name=$3 max_diff=$4 min_top1=$5 max_kl=$6 files model tok
    files=$(model_files "$name") || { skip "ch$new vs ch$prev $name logits" "model not found"; return; }
    read -r model tok <<<"$files"
    local args=()
    [ "$max_diff" != - ] && args+=(--max-diff "$max_diff")
    [ "$min_top1" != - ] && args+=(--min-top1 "$min_top1")
    [ "$max_kl" != - ] && args+=(--max-kl "$max_kl")
    [ ${#args[@]} -eq 0 ] && return
    ts0_ids >"$TMP/ids"
    local what="ch$new vs ch$prev $name teacher-forced logits (${args[*]})" out
    if "$BUILD/ch$prev" -m "$model" --logits "$TMP/prev.lgts" --tokens-file "$TMP/ids" 2>"$TMP/err" &&
        "$BUILD/ch$new" -m "$model" --logits "$TMP/new.lgts" --tokens-file "$TMP/ids" 2>"$TMP/err"; then
        if out=$("$BUILD/logits_cmp" "$TMP/prev.lgts" "$TMP/new.lgts" "${args[@]}" 2>&1); then ok "$what: $out"
        else bad "$what" "$out"; fi
    else
        bad "$what" "$(tail -n 1 "$TMP/err")"
    fi
}

chain_greedy() { # new prev model mode
    local new=$1 prev=$2 name=$3 mode=$4 files model tok positions=128
    [ "$mode" = - ] && return
    files=$(model_files "$name") || { skip "ch$new vs ch$prev $name greedy" "model not found"; return; }
    read -r model tok <<<"$files"
    [ "$QUICK" = 1 ] && positions=32
    local prompts=(p1 p2 p3 p4 p5)
    [ -e "$SHARED/reference/prompts.tsv" ] || prompts=(p1)
    for p in "${prompts[@]}"; do
        local text="Once upon a time"
        [ -e "$SHARED/reference/prompts.tsv" ] && text=$(prompt_text "$p")
        in_parallel save_greedy "$TMP/gn-$p" "$BUILD/ch$new" "$model" "$tok" "$text" "$positions"
        in_parallel save_greedy "$TMP/gp-$p" "$BUILD/ch$prev" "$model" "$tok" "$text" "$positions"
    done
    wait
    for p in "${prompts[@]}"; do
        if [ "$mode" = same ]; then
            same_ids "ch$new vs ch$prev $name greedy $p ($positions positions)" "$(cat "$TMP/gn-$p")" "$(cat "$TMP/gp-$p")"
        else
            local n_same
            n_same=$(awk -v a="$(cat "$TMP/gn-$p")" -v b="$(cat "$TMP/gp-$p")" 'BEGIN {
                na = split(a, x, " "); nb = split(b, y, " "); for (i = 1; i <= na && i <= nb && x[i] == y[i]; i++); print i - 1 }')
            if [ -s "$TMP/gn-$p" ]; then ok "ch$new vs ch$prev $name greedy $p: first $n_same of $(wc -w <"$TMP/gp-$p") ids agree (reported, not required)"
            else bad "ch$new $name greedy $p" "no output"; fi
        fi
    done
}

chain_sampled() { # new prev model mode
    local new=$1 prev=$2 name=$3 mode=$4 files model tok
    [ "$mode" = - ] && return
    files=$(model_files "$name") || { skip "ch$new vs ch$prev $name sampled" "model not found"; return; }
    read -r model tok <<<"$files"
    local args=(-m "$model" -z "$tok" -p "Once upon a time" -n 100 --temp 0.8 --top-p 0.9 -s 42)
    "$BUILD/ch$new" "${args[@]}" >"$TMP/sn" 2>/dev/null
    "$BUILD/ch$prev" "${args[@]}" >"$TMP/sp" 2>/dev/null
    if [ -s "$TMP/sn" ] && cmp -s "$TMP/sn" "$TMP/sp"; then ok "ch$new vs ch$prev $name sampled text (seed 42) identical"
    else bad "ch$new vs ch$prev $name sampled text (seed 42) identical" "$(head -c 80 "$TMP/sn") | $(head -c 80 "$TMP/sp")"; fi
}

chain_perplexity() { # new prev model rel
    local new=$1 prev=$2 name=$3 rel=$4 files model tok
    [ "$rel" = - ] && return
    files=$(model_files "$name") || { skip "ch$new vs ch$prev $name perplexity" "model not found"; return; }
    have_shared data/tinystories-valid-excerpt.txt || { skip "ch$new vs ch$prev $name perplexity" "text not found"; return; }
    read -r model tok <<<"$files"
    local text=$SHARED/data/tinystories-valid-excerpt.txt pn pp
    pn=$("$BUILD/ch$new" -m "$model" -z "$tok" --perplexity "$text" 2>/dev/null | awk '/^perplexity:/ { print $2 }')
    pp=$("$BUILD/ch$prev" -m "$model" -z "$tok" --perplexity "$text" 2>/dev/null | awk '/^perplexity:/ { print $2 }')
    local what="ch$new vs ch$prev $name perplexity within $rel"
    if [ -z "$pn" ] || [ -z "$pp" ]; then bad "$what" "no perplexity printed"; return; fi
    if awk -v a="$pn" -v b="$pp" -v r="$rel" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(d <= r) }'; then
        ok "$what: $pn vs $pp"
    else
        bad "$what" "$pn vs $pp"
    fi
}

while IFS=$'\t' read -r new prev models max_diff min_top1 max_kl greedy sampled ppl_rel; do
    case "$new" in '#'* | '') continue ;; esac
    if [ ! -x "$BUILD/ch$new" ] || [ ! -x "$BUILD/ch$prev" ]; then skip "ch$new vs ch$prev" "not built"; continue; fi
    for name in ${models//,/ }; do
        chain_logits "$new" "$prev" "$name" "$max_diff" "$min_top1" "$max_kl"
        chain_greedy "$new" "$prev" "$name" "$greedy"
        chain_sampled "$new" "$prev" "$name" "$sampled"
        [ "$QUICK" = 1 ] || chain_perplexity "$new" "$prev" "$name" "$ppl_rel"
    done
done <tests/chain.tsv

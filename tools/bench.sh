#!/usr/bin/env bash
# tools/bench.sh — what `make bench` runs: every line of tools/bench.tsv, as a markdown table.
#
#   BUILD=build SHARED=../shared [BENCH_BIG=1] [BENCH_REPEAT=R] bash tools/bench.sh [--out DIR] [--only REGEX]
#
# Columns: prefill and decode tok/s (from the driver's [stats] line), the decode
# speed-up over the previous chapter on the same model, length and threads, peak RSS, the
# weight bytes each token reads, the effective bandwidth (those bytes x decode tok/s) and its
# share of the machine's memory read bandwidth (build/membw, one thread or all), perplexity
# on the TinyStories excerpt (real models), and agreement with the previous chapter
# (teacher-forced logits: max |diff| and top-1). With --out DIR it also writes DIR/bench.md
# and DIR/bench.svg. Benchmarks never fail: a run that breaks shows "failed" in its row.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
OUT_DIR="" ONLY="."
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT_DIR=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "error: bench.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
PROMPT="Once upon a time"

# model_args NAME: "-m MODEL -z TOKENIZER" for a model name of bench.tsv (made on first use).
model_args() {
    local m=$BUILD/models
    case $1 in
    stories260K | llama2xs)
        [ -e "$SHARED/models/$1.bin" ] && echo "-m $SHARED/models/$1.bin -z $SHARED/models/tok512.bin" ;;
    syn-110m)
        [ -e "$m/syn-110m.bin" ] || "$BUILD/mksynth" --preset stories110m -o "$m/syn-110m.bin" --tokenizer-out "$m/tok32000.bin" >&2 || return 1
        echo "-m $m/syn-110m.bin -z $m/tok32000.bin" ;;
    syn-k256)
        [ -e "$SHARED/models/syn-k256.bin" ] && echo "-m $SHARED/models/syn-k256.bin -z $SHARED/models/tok512.bin" ;;
    syn-tinyllama)
        [ "${BENCH_BIG:-0}" = 1 ] || return 1
        [ -e "$m/syn-tinyllama.bin" ] || "$BUILD/mksynth" --preset tinyllama -o "$m/syn-tinyllama.bin" --tokenizer-out "$m/tok32000.bin" >&2 || return 1
        echo "-m $m/syn-tinyllama.bin -z $m/tok32000.bin" ;;
    syn-110m-* | syn-tinyllama-*)
        # a GGUF made by our converter from the synthetic checkpoint (chapter 5)
        local base=${1%-*} type=${1##*-} base_args
        base_args=$(model_args "$base") || return 1
        if [ ! -e "$m/$1.gguf" ]; then
            # shellcheck disable=SC2086
            "$BUILD/gguf_convert" $base_args -o "$m/$1.gguf" -t "$type" >&2 || return 1
        fi
        echo "-m $m/$1.gguf" ;;
    *-f32 | *-f16 | *-q8_0 | *-q4_0 | *-q4_k_m | *-q6_k)
        # a GGUF made by llama.cpp's own tools (../shared/models/gguf)
        [ -e "$SHARED/models/gguf/$1.gguf" ] && echo "-m $SHARED/models/gguf/$1.gguf" ;;
    *) return 1 ;;
    esac
}

# base_model NAME: the llama2.c checkpoint a GGUF name was made from (itself for a .bin).
base_model() {
    case $1 in
    *-f32 | *-f16 | *-q8_0 | *-q4_0 | *-q4_k_m | *-q6_k) echo "${1%-*}" ;;
    *) echo "$1" ;;
    esac
}

# threads_arg SPEC: the --threads value for "all" or a number.
threads_arg() { if [ "$1" = all ]; then echo "$CPUS"; else echo "$1"; fi; }

# run_one CH THREADS MODEL_ARGS TOKENS: prints "prefill decode rss_mib mb_per_tok" or "failed".
# With BENCH_REPEAT=R (default 1) the run is made up to R times (not again once 20 s have gone)
# and the fastest decode kept: on a shared machine, other tenants' traffic only slows a run down.
run_one() {
    local ch=$1 threads=$2 args=$3 n=$4 r
    : >"$TMP/runs"
    local start=$SECONDS
    for ((r = 0; r < ${BENCH_REPEAT:-1}; r++)); do
        [ $r -gt 0 ] && [ $((SECONDS - start)) -gt 20 ] && break # a long run averages the noise out itself
        # shellcheck disable=SC2086
        "$BUILD/ch$ch" $args -p "$PROMPT" -n "$n" --temp 0 --ignore-eos -t "$threads" >/dev/null 2>"$TMP/stats" || { echo failed; return; }
        sed -n 's/.*prefill \([0-9.]*\) tok\/s, decode \([0-9.]*\) tok\/s, peak RSS \([0-9.]*\) MiB, weights \([0-9.]*\) MB\/tok.*/\1 \2 \3 \4/p' "$TMP/stats" | tail -n 1 >>"$TMP/runs"
    done
    sort -k2,2gr "$TMP/runs" | head -n 1
}

# agreement CH MODEL_NAME MODEL_ARGS: previous chapter vs this one, teacher-forced.
agreement() {
    local ch=$1 name=$2 args=$3 prev
    prev=$(printf %02d $((10#$ch - 1)))
    [ -x "$BUILD/ch$prev" ] || { echo "-"; return; }
    local key="$prev-$ch-$name"
    if [ ! -e "$TMP/agree-$key" ]; then
        local ids
        case $(base_model "$name") in stories260K | llama2xs | syn-k256) ids=$SHARED/reference/ts0.tok512.tokens ;;
        *) awk 'BEGIN { printf "1"; for (i = 1; i < 24; i++) printf " %d", (i * 7919) % 30000 + 300; print "" }' >"$TMP/ids"; ids=$TMP/ids ;;
        esac
        local m=${args%% -z*} prev_args
        prev_args=$(model_args "$(base_model "$name")") || { echo "-"; return; }
        prev_args=${prev_args%% -z*}
        # shellcheck disable=SC2086
        if "$BUILD/ch$prev" $prev_args --logits "$TMP/a.lgts" --tokens-file "$ids" 2>/dev/null &&
            "$BUILD/ch$ch" $m --logits "$TMP/b.lgts" --tokens-file "$ids" 2>/dev/null; then
            "$BUILD/logits_cmp" "$TMP/a.lgts" "$TMP/b.lgts" 2>/dev/null |
                sed -n 's/max|diff| \([^ ]*\).*top-1 \([0-9]*\/[0-9]*\).*/max abs diff \1, top-1 \2/p' >"$TMP/agree-$key"
        else
            echo failed >"$TMP/agree-$key"
        fi
    fi
    cat "$TMP/agree-$key"
}

# perplexity CH NAME MODEL_ARGS: on the TinyStories excerpt, real models only; chapter 1 is
# skipped (its logits are chapter 2's, bit for bit, and it would take hours).
perplexity() {
    local ch=$1 name=$2 args=$3 text=$SHARED/data/tinystories-valid-excerpt.txt
    case $name in stories260K* | llama2xs*) ;; *) echo "-"; return ;; esac
    [ "$ch" = 01 ] || [ ! -e "$text" ] && { echo "-"; return; }
    # shellcheck disable=SC2086
    "$BUILD/ch$ch" $args --perplexity "$text" 2>/dev/null | awk '/^perplexity:/ { print $2 }'
}

# membw THREADS: GB/s read by build/membw with that many threads (empty if it cannot run).
membw() { "$BUILD/membw" --threads "$1" 2>/dev/null | sed -n 's/.*GB\/s=\([0-9.]*\).*/\1/p'; }
# The bandwidth is measured before the runs and again after them, and the higher figure is the
# bound: on a shared machine a single measurement can fall in a slow moment and make every
# share look larger than it is. So the shares are filled in at the end (placeholders until then).
BW1_BEFORE=$(membw 1)
BWN_BEFORE=$(membw "$CPUS")
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || sysctl -n machdep.cpu.brand_string 2>/dev/null)

{
    echo "Measured $(date -u +%Y-%m-%d) on ${CPU_MODEL:-unknown CPU}, $CPUS CPUs online."
    echo "Memory read bandwidth (build/membw, the higher of a measurement before the runs and one after them): @BW1@ with 1 thread, @BWN@ with $CPUS threads."
    [ "${BENCH_REPEAT:-1}" -gt 1 ] && echo "Each run made ${BENCH_REPEAT} times; the fastest decode is shown (membw also keeps its best pass)."
    echo
    echo "| model | chapter | threads | tokens | prefill tok/s | decode tok/s | speed-up vs previous chapter | peak RSS MiB | weights MB/tok | GB/s | % of bandwidth | perplexity | agreement with previous chapter |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$TMP/table"

: >"$TMP/rows"
while IFS=$'\t' read -r ch threads name tokens; do
    case "$ch" in '#'* | '') continue ;; esac
    echo "$ch $threads $name $tokens" | grep -Eq -- "$ONLY" || continue
    [ -x "$BUILD/ch$ch" ] || continue
    args=$(model_args "$name") || { echo "bench: skipping $name (not available)" >&2; continue; }
    if [ "$threads" = scale ]; then
        echo "$ch $name $tokens" >>"$TMP/scale"
        continue
    fi
    t=$(threads_arg "$threads")
    echo "bench: ch$ch $name -n $tokens -t $t" >&2
    read -r prefill decode rss mbtok <<<"$(run_one "$ch" "$t" "$args" "$tokens")"
    echo "$ch $t $name $tokens ${decode:-failed}" >>"$TMP/rows"
    prev=$(printf %02d $((10#$ch - 1)))
    # the previous chapter's row: same threads, else one thread; same model, else its .bin
    prev_decode=""
    for pm in "$name" "$(base_model "$name")"; do
        for pt in "$t" 1; do
            [ -n "$prev_decode" ] || prev_decode=$(awk -v p="$prev" -v t="$pt" -v m="$pm" -v n="$tokens" \
                '$1 == p && $2 == t && $3 == m && $4 == n { d = $5 } END { print d }' "$TMP/rows")
        done
    done
    if [ "$prefill" = failed ] || [ -z "$decode" ]; then
        echo "| $name | $ch | $t | $tokens | failed | | | | | | | | |" >>"$TMP/table"
        continue
    fi
    awk -v name="$name" -v ch="$ch" -v t="$t" -v n="$tokens" -v pf="$prefill" -v dc="$decode" -v pd="$prev_decode" \
        -v rss="$rss" -v mb="$mbtok" -v ppl="$(perplexity "$ch" "$name" "$args")" \
        -v agree="$(agreement "$ch" "$name" "$args")" 'BEGIN {
        gbs = mb * dc / 1000
        up = (pd != "" && pd + 0 > 0) ? sprintf("%.2fx", dc / pd) : "-"
        pct = sprintf("@PCT:%s:%.4f@", (t > 1 ? "N" : "1"), gbs) # filled in at the end
        printf "| %s | %s | %s | %s | %.1f | %.2f | %s | %.1f | %.1f | %.2f | %s | %s | %s |\n", name, ch, t, n, pf, dc, up, rss, mb, gbs, pct, (ppl == "" ? "-" : ppl), agree }' >>"$TMP/table"
done <tools/bench.tsv

if [ -e "$TMP/scale" ]; then
    while read -r ch name tokens; do
        args=$(model_args "$name") || continue
        line="| ch$ch $name |"
        head="| thread scaling (decode tok/s) |"
        sep="|---|"
        t=1
        while [ "$t" -le "$CPUS" ]; do
            read -r _ decode _ _ <<<"$(run_one "$ch" "$t" "$args" "$tokens")"
            head="$head $t |"; sep="$sep---|"; line="$line ${decode:-failed} |"
            if [ "$t" -lt "$CPUS" ] && [ $((t * 2)) -gt "$CPUS" ]; then t=$CPUS; else t=$((t * 2)); fi
        done
        printf '\n%s\n%s\n%s\n' "$head" "$sep" "$line" >>"$TMP/table"
    done <"$TMP/scale"
fi

# the shares of the bandwidth: the higher of the two measurements
BW1=$(printf '%s\n%s\n' "$BW1_BEFORE" "$(membw 1)" | sort -g | tail -n 1)
BWN=$(printf '%s\n%s\n' "$BWN_BEFORE" "$(membw "$CPUS")" | sort -g | tail -n 1)
awk -v bw1="$BW1" -v bwn="$BWN" -v b1="$BW1_BEFORE" -v bn="$BWN_BEFORE" '
    function shown(bw, before) { return bw == "" ? "?" : sprintf("%s GB/s (before the runs: %s)", bw, before == "" ? "?" : before) }
    {
        sub(/@BW1@/, shown(bw1, b1)); sub(/@BWN@/, shown(bwn, bn))
        while (match($0, /@PCT:[1N]:[0-9.]+@/)) {
            split(substr($0, RSTART + 1, RLENGTH - 2), f, ":")
            bw = f[2] == "N" ? bwn : bw1
            pct = bw + 0 > 0 ? sprintf("%.0f%%", 100 * f[3] / bw) : "-"
            $0 = substr($0, 1, RSTART - 1) pct substr($0, RSTART + RLENGTH)
        }
        print
    }' "$TMP/table" >"$TMP/table.done" && mv "$TMP/table.done" "$TMP/table"

cat "$TMP/table"
if [ -n "$OUT_DIR" ]; then
    mkdir -p "$OUT_DIR"
    cp "$TMP/table" "$OUT_DIR/bench.md"
    bash tools/bench_svg.sh <"$TMP/table" >"$OUT_DIR/bench.svg"
    echo "bench: wrote $OUT_DIR/bench.md and $OUT_DIR/bench.svg" >&2
fi

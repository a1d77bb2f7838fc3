#!/usr/bin/env bash
# tools/bench.sh — what `make bench` runs: every chapter measured on one machine, in one run.
#
#   BUILD=build SHARED=../shared [BENCH_BIG=1] [BENCH_REPEAT=R] [BENCH_QUICK=1]
#       [LLAMA_BENCH=path/to/llama-bench] bash tools/bench.sh [--out DIR] [--only REGEX]
#
# It prints markdown, and with --out DIR writes DIR/bench.md, DIR/bench.svg (the chart of the
# first table) and DIR/roofline.svg (tools/roofline_svg.sh, the chart of the roofline table).
# The tables:
#
#  1. The progression: every chapter of chapters/chapters.tsv (no list of chapters here), on
#     the stories110M shape (syn-110m, made by build/mksynth). A chapter that reads "bin" runs
#     syn-110m itself, one that reads "gguf" runs it converted to Q4_0 by build/gguf_convert
#     (syn-110m-q4_0); the first GGUF chapter also runs the Q8_0 conversion, so that the new
#     file format and the step to 4 bits show separately. One thread, and all online CPUs for
#     the "simd" chapters. Columns: decode tok/s, GB/s (weight bytes per token × tok/s), % of
#     the memory read bandwidth (build/membw, as many threads), peak RSS, and the perplexity of
#     the same chapter on the trained llama2xs model in the same format (the synthetic weights
#     are random) over $SHARED/data/tinystories-valid-excerpt.txt.
#     Then prompt processing (the "prompt" table): every GGUF row again, prompts of exactly
#     BENCH_PP tokens (128 and 512, BOS included: pp128, pp512), the driver's "prefill" tok/s
#     beside the decode speed. Chapters 1-6 take a prompt one position at a time, chapter 7
#     all of its positions through each layer together.
#  2. The focused comparisons of tools/bench.tsv: its tables of runs, of thread scaling, of
#     prompt processing, and of --perplexity timed (two chapters on one file, text, threads).
#  3. With LLAMA_BENCH=path/to/llama-bench (llama.cpp's, e.g. built by
#     $SHARED/anchors/build.sh): llama-bench on every GGUF file and thread count measured above
#     (-p 128,512 -n TOKENS -t THREADS -r R), its prompt (pp128, pp512) and generation (tg)
#     speeds beside the newest chapter's on the same file and threads, and their ratio.
#  4. The roofline: build/peak (the int8 and fp32 multiply-add rate of the chapters' SIMD
#     instructions, 1 thread and all) and build/membw; the newest GGUF chapter's prompt
#     processing and the chapter before's decode as points at their arithmetic intensity.
#     Operations are counted for the matrix multiplications only, 2 per weight and position
#     (a multiply and an add): decode 2 × parameters per token; a prompt of N positions
#     2 × (layer parameters × N + classifier parameters), the classifier running for the last
#     position only. Bytes: the weight bytes read per token (read once for all N positions).
#     Attention (which grows with the context) and the norms are not counted.
#
# A run that two tables need (same chapter, model, threads and tokens) is made once, and both
# show that one figure. Each row generates BENCH_TOKENS (64) tokens after "Once upon a time",
# greedy; a chapter that needs so long for a quarter of them that the whole would take more
# than BENCH_SLOW (30) seconds is measured on that quarter instead (chapter 1, which recomputes
# every earlier position for each token). Rows read syn-tinyllama (the TinyLlama-1.1B shape,
# 4.4 GB in fp32) only with BENCH_BIG=1. A prompt of N tokens is "a a a ...": BOS and N - 1
# times the token of " a" (the driver's [stats] line must say "prompt N tok", or the cell
# fails), generating 1 token, so that the first forward pass, the prompt's, is all there is.
#
#   BENCH_REPEAT=R    make each run up to R times (none again once 20 s have gone), keep the
#                     fastest: other work on the machine only ever slows a run down
#   BENCH_QUICK=1     a short check of the whole script: 16 tokens, prompts of 32 and 128
#                     tokens, perplexity on the first 8 lines of the excerpt (timed on the
#                     first 2), short peak measurements; not figures to publish
#   BENCH_SECONDS=S   perplexity (which measures no speed) is scored last, slowest chapter last,
#                     and stopped S seconds after the start of the run (500); its cell says so
#   BENCH_TOKENS=N    tokens per progression row (64; 16 with BENCH_QUICK=1)
#   BENCH_PP="N M"    the prompt lengths (128 512; 32 128 with BENCH_QUICK=1), llama-bench's too
#   LLAMA_BENCH=PATH  the llama.cpp rows (above)
#   BENCH_TSV=FILE    the comparisons to make instead of tools/bench.tsv
#   --only REGEX      only the chapters whose number matches (e.g. '0[56]')
#
# BUILD and SHARED are relative to the repository's root; --out, LLAMA_BENCH and BENCH_TSV to
# the directory it is called from. The llama.cpp rows need llama-bench built first, e.g.
#   bash $SHARED/anchors/build.sh build/anchors      (about 80 s with 16 cores)
#   LLAMA_BENCH=build/anchors/llama.cpp/build/bin/llama-bench make bench
# On 16 cores, `BENCH_BIG=1 BENCH_REPEAT=2` takes about 6 minutes (llama.cpp's rows about one
# more), chapter 1's perplexity a good part of it; BENCH_QUICK=1 about a minute and a half on
# 2 cores.
#
# Benchmarks never fail: a run that breaks shows "failed" in its row.
set -u
export LC_ALL=C
OUT_DIR="" ONLY="."
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT_DIR=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "error: bench.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
# the paths given relative to the caller's directory, made absolute before the cd
absolute() { case $1 in '' | /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT_DIR=$(absolute "$OUT_DIR")
LLAMA_BENCH=$(absolute "${LLAMA_BENCH:-}")
BENCH_TSV=$(absolute "${BENCH_TSV:-}")
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
QUICK=${BENCH_QUICK:-0}
REPEAT=${BENCH_REPEAT:-1}
BIG=${BENCH_BIG:-0}
if [ "$QUICK" = 1 ]; then TOKENS=${BENCH_TOKENS:-16}; SLOW=${BENCH_SLOW:-10}; PP_SIZES=${BENCH_PP:-32 128}; PEAK_SECONDS=0.2
else TOKENS=${BENCH_TOKENS:-64}; SLOW=${BENCH_SLOW:-30}; PP_SIZES=${BENCH_PP:-128 512}; PEAK_SECONDS=1; fi
DEADLINE=${BENCH_SECONDS:-500}
for v in REPEAT TOKENS SLOW DEADLINE; do
    case ${!v} in '' | *[!0-9]*) echo "error: bench.sh: BENCH_${v} must be a number, not '${!v}'" >&2; exit 1 ;; esac
done
for n in $PP_SIZES; do
    case $n in '' | *[!0-9]* | 0 | 1) echo "error: bench.sh: BENCH_PP must be prompt lengths >= 2, not '$PP_SIZES'" >&2; exit 1 ;; esac
done
# shellcheck disable=SC2086 # the words are wanted
PP_LIST=$(echo $PP_SIZES | tr ' ' ',')
[ "$REPEAT" -ge 1 ] || REPEAT=1
if [ -n "$LLAMA_BENCH" ] && [ ! -x "$LLAMA_BENCH" ]; then
    echo "error: bench.sh: LLAMA_BENCH=$LLAMA_BENCH is not an executable file" >&2; exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
PROMPT="Once upon a time"
TEXT=$SHARED/data/tinystories-valid-excerpt.txt
PPL_TEXT=$TEXT # the text --perplexity is timed on (tools/bench.tsv's "perplexity" rows)
if [ "$QUICK" = 1 ] && [ -e "$TEXT" ]; then
    head -n 8 "$TEXT" >"$TMP/text"; head -n 2 "$TEXT" >"$TMP/ppl_text"; TEXT=$TMP/text; PPL_TEXT=$TMP/ppl_text
fi
: >"$TMP/runs" # key \t prefill decode rss mbtok   (key: chapter model threads tokens)
: >"$TMP/pp"   # key \t prefill mbtok              (key: chapter model threads prompt-length)
: >"$TMP/pplrun" # key \t tok/s perplexity tokens (key: chapter model threads), --perplexity timed
: >"$TMP/params" # model \t layer-parameters classifier-parameters (the matrices' weights)
: >"$TMP/ppl"  # chapter model \t perplexity
: >"$TMP/agree"
: >"$TMP/llama"

now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
START=$(now)
elapsed() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }

# model_args NAME: "-m MODEL [-z TOKENIZER]" for a model name (made on first use), or status 1.
#   stories260K, llama2xs, syn-k256   $SHARED/models/NAME.bin (tokenizer tok512.bin)
#   syn-110m, syn-tinyllama           the stories110M and TinyLlama-1.1B shapes, random weights
#                                     (build/mksynth --preset; syn-tinyllama with BENCH_BIG=1)
#   syn-*-TYPE                        that checkpoint converted by build/gguf_convert -t TYPE
#   NAME-TYPE                         llama.cpp's own GGUF file, $SHARED/models/gguf/NAME-TYPE.gguf
model_args() {
    local m=$BUILD/models
    mkdir -p "$m"
    case $1 in
    stories260K | llama2xs | syn-k256)
        [ -e "$SHARED/models/$1.bin" ] && echo "-m $SHARED/models/$1.bin -z $SHARED/models/tok512.bin" ;;
    syn-110m | syn-tinyllama)
        local preset=stories110m
        if [ "$1" = syn-tinyllama ]; then [ "$BIG" = 1 ] || return 1; preset=tinyllama; fi
        if [ ! -e "$m/$1.bin" ]; then
            "$BUILD/mksynth" --preset $preset -o "$m/$1.bin.tmp" --tokenizer-out "$m/tok32000.bin" >&2 &&
                mv "$m/$1.bin.tmp" "$m/$1.bin" || return 1
        fi
        echo "-m $m/$1.bin -z $m/tok32000.bin" ;;
    syn-110m-* | syn-tinyllama-*)
        local base=${1%-*} type=${1##*-} base_args
        base_args=$(model_args "$base") || return 1
        if [ ! -e "$m/$1.gguf" ]; then
            # shellcheck disable=SC2086
            "$BUILD/gguf_convert" $base_args -o "$m/$1.gguf.tmp" -t "$type" >&2 &&
                mv "$m/$1.gguf.tmp" "$m/$1.gguf" || return 1
        fi
        echo "-m $m/$1.gguf" ;;
    *-*)
        [ -e "$SHARED/models/gguf/$1.gguf" ] && echo "-m $SHARED/models/gguf/$1.gguf" ;;
    *) return 1 ;;
    esac
}
is_gguf() { case $1 in *-f32 | *-f16 | *-q[0-9]* | *-bf16) return 0 ;; *) return 1 ;; esac; }
# base_model NAME: the checkpoint a GGUF name was made from (itself for a .bin)
base_model() { if is_gguf "$1"; then echo "${1%-*}"; else echo "$1"; fi; }
# ppl_model NAME: the trained model in NAME's format whose perplexity the row shows
ppl_model() { case $1 in syn-110m-*) echo "llama2xs-${1##*-}" ;; syn-110m) echo llama2xs ;; *) echo "$1" ;; esac; }

# run_once CH THREADS ARGS TOKENS: "prefill decode rss mbtok" from the driver's [stats] line
run_once() {
    # shellcheck disable=SC2086
    "$BUILD/ch$1" $3 -p "$PROMPT" -n "$4" --temp 0 --ignore-eos -t "$2" >/dev/null 2>"$TMP/stats" || return 1
    sed -n 's/.*prefill \([0-9.]*\) tok\/s, decode \([0-9.]*\) tok\/s, peak RSS \([0-9.]*\) MiB, weights \([0-9.]*\) MB\/tok.*/\1 \2 \3 \4/p' "$TMP/stats" | tail -n 1
}

lookup() { awk -F '\t' -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# measure CH MODEL THREADS TOKENS [FIRST]: the fastest of up to BENCH_REPEAT runs (FIRST: the
# stats of a run already made), kept under its key; prints "prefill decode rss mbtok" or "failed"
measure() {
    local key="$1 $2 $3 $4" got args r line start=$SECONDS
    got=$(lookup "$key" "$TMP/runs")
    if [ -n "$got" ]; then echo "$got"; return; fi
    if ! args=$(model_args "$2"); then echo "bench: $2 is not available (BENCH_BIG=1? $SHARED?)" >&2; return 1; fi
    : >"$TMP/tries"
    [ -n "${5:-}" ] && echo "$5" >>"$TMP/tries"
    for ((r = $([ -n "${5:-}" ] && echo 1 || echo 0); r < REPEAT; r++)); do
        [ "$r" -gt 0 ] && [ $((SECONDS - start)) -gt 20 ] && break # a long run averages the noise out itself
        if ! line=$(run_once "$1" "$3" "$args" "$4") || [ -z "$line" ]; then : >"$TMP/tries"; break; fi
        echo "$line" >>"$TMP/tries"
    done
    got=$(sort -k2,2gr "$TMP/tries" | head -n 1)
    got=${got:-failed}
    printf '%s\t%s\n' "$key" "$got" >>"$TMP/runs"
    echo "bench: ch$1 $2 -t $3 -n $4: $(echo "$got" | awk 'NF == 4 { printf "decode %s tok/s", $2; next } { print }') ($(elapsed) s)" >&2
    echo "$got"
}

# run_prompt CH THREADS ARGS N: "prefill mbtok" of a prompt of exactly N tokens (BOS and N - 1
# times " a"), generating 1 token; status 1 if the run fails or the prompt is not N tokens
run_prompt() {
    local prompt got
    prompt=$(awk -v n="$4" 'BEGIN { for (i = 1; i < n; i++) printf "%s", (i > 1 ? " a" : "a") }')
    # shellcheck disable=SC2086
    "$BUILD/ch$1" $3 -p "$prompt" -n 1 --temp 0 -t "$2" </dev/null >/dev/null 2>"$TMP/stats" || return 1
    got=$(sed -n 's/.*\[stats\] prompt \([0-9]*\) tok, .*prefill \([0-9.]*\) tok\/s,.* weights \([0-9.]*\) MB\/tok.*/\1 \2 \3/p' "$TMP/stats" | tail -n 1)
    # shellcheck disable=SC2086 # its words, N prefill mbtok
    set -- "$4" $got
    if [ "$#" != 4 ] || [ "$2" != "$1" ]; then echo "bench: the prompt of $1 tokens became ${2:-?} tokens" >&2; return 1; fi
    echo "$3 $4"
}

# measure_pp CH MODEL THREADS N: the fastest prefill of up to BENCH_REPEAT runs of a prompt of N
# tokens, kept under its key in pp; prints "prefill mbtok" or "failed"
measure_pp() {
    local key="$1 $2 $3 $4" got args r line start=$SECONDS
    got=$(lookup "$key" "$TMP/pp")
    if [ -n "$got" ]; then echo "$got"; return; fi
    args=$(model_args "$2") || { echo failed; return 1; }
    : >"$TMP/tries"
    for ((r = 0; r < REPEAT; r++)); do
        [ "$r" -gt 0 ] && [ $((SECONDS - start)) -gt 20 ] && break
        if ! line=$(run_prompt "$1" "$3" "$args" "$4"); then : >"$TMP/tries"; break; fi
        echo "$line" >>"$TMP/tries"
    done
    got=$(sort -k1,1gr "$TMP/tries" | head -n 1)
    got=${got:-failed}
    printf '%s\t%s\n' "$key" "$got" >>"$TMP/pp"
    echo "bench: ch$1 $2 -t $3 pp$4: $(echo "$got" | awk 'NF == 2 { printf "prefill %s tok/s", $1; next } { print }') ($(elapsed) s)" >&2
    echo "$got"
}

# measure_ppl CH MODEL THREADS: --perplexity over PPL_TEXT timed, the fastest of up to
# BENCH_REPEAT runs, kept under its key in pplrun; prints "tok/s perplexity tokens" or "failed"
measure_ppl() {
    local key="$1 $2 $3" got args r start=$SECONDS
    got=$(lookup "$key" "$TMP/pplrun")
    if [ -n "$got" ]; then echo "$got"; return; fi
    : >"$TMP/tries"
    if args=$(model_args "$2") && [ -e "$PPL_TEXT" ]; then
        for ((r = 0; r < REPEAT; r++)); do
            [ "$r" -gt 0 ] && [ $((SECONDS - start)) -gt 20 ] && break
            # shellcheck disable=SC2086
            "$BUILD/ch$1" $args --perplexity "$PPL_TEXT" -t "$3" >"$TMP/ppl.out" 2>&1 || { : >"$TMP/tries"; break; }
            awk '/^\[stats\] [0-9]+ positions in/ { r = $7; sub(/^\(/, "", r) } /^perplexity:/ { p = $2; n = $4 }
                 END { if (r != "" && p != "") print r, p, n }' "$TMP/ppl.out" >>"$TMP/tries"
        done
    fi
    got=$(sort -k1,1gr "$TMP/tries" | head -n 1)
    got=${got:-failed}
    printf '%s\t%s\n' "$key" "$got" >>"$TMP/pplrun"
    echo "bench: ch$1 $2 -t $3 --perplexity: $(echo "$got" | awk 'NF == 3 { printf "%s tok/s, perplexity %s", $1, $2; next } { print }') ($(elapsed) s)" >&2
    echo "$got"
}

# model_params MODEL: "layer-parameters classifier-parameters", the weights of the matrices (the
# shape from the newest GGUF chapter's -v line: per layer wq and wo dim², wk and wv dim × kv_dim,
# w1, w2 and w3 dim × hidden; the classifier vocab × dim), or status 1
model_params() {
    local got args
    got=$(lookup "$1" "$TMP/params")
    if [ -z "$got" ]; then
        args=$(model_args "$1") || return 1
        # shellcheck disable=SC2086
        got=$("$BUILD/ch$NEWEST_GGUF" $args -p "" -n 1 -t 1 -v 2>&1 >/dev/null |
            sed -n 's/.* dim \([0-9]*\), hidden \([0-9]*\), \([0-9]*\) layers, \([0-9]*\)\/\([0-9]*\) heads, vocab \([0-9]*\),.*/\1 \2 \3 \4 \5 \6/p' |
            awk 'NR == 1 { kv = $1 * $5 / $4; printf "%.0f %.0f\n", $3 * (2 * $1 * $1 + 2 * $1 * kv + 3 * $1 * $2), $6 * $1 }')
        [ -n "$got" ] || return 1
        printf '%s\t%s\n' "$1" "$got" >>"$TMP/params"
    fi
    echo "$got"
}

# membw THREADS: GB/s read by build/membw with that many threads (empty if it cannot run)
membw() { "$BUILD/membw" --threads "$1" 2>/dev/null | sed -n 's/.*GB\/s=\([0-9.]*\).*/\1/p'; }
BW1_BEFORE=$(membw 1)
BWN_BEFORE=$(membw "$CPUS")
# peak THREADS: "int8 fp32", the G operations a second of build/peak with that many threads
# (empty if it cannot run); measured before the runs and after them, as the bandwidth is
peak() { "$BUILD/peak" --threads "$1" --seconds "$PEAK_SECONDS" 2>/dev/null | tee "$TMP/peak.out" | sed -n 's/.*int8 GOP\/s=\([0-9.]*\) fp32 GFLOP\/s=\([0-9.]*\).*/\1 \2/p'; }
PEAK1=$(peak 1)
PEAK_KERNELS=$(sed -n 's/^peak kernels: //p' "$TMP/peak.out" 2>/dev/null)
if [ "$CPUS" -gt 1 ]; then PEAKN=$(peak "$CPUS"); else PEAKN=$PEAK1; fi
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(sysctl -n machdep.cpu.brand_string 2>/dev/null)
# the last-level cache in MiB (empty if unknown)
LLC=$(for f in /sys/devices/system/cpu/cpu0/cache/index*/size; do [ -e "$f" ] && cat "$f"; done 2>/dev/null | tail -n 1 |
    awk '/K$/ { printf "%.0f", $0 / 1024 } /M$/ { printf "%.0f", $0 + 0 }')
[ -n "$LLC" ] || LLC=$(getconf LEVEL3_CACHE_SIZE 2>/dev/null | awk '$1 > 0 { printf "%.0f", $1 / 1048576 }')

# ---------------------------------------------------------------------------------------------
# 1. The progression: rows "chapter kind model tokens", in the order of chapters/chapters.tsv
: >"$TMP/prog"
FIRST_GGUF=$(awk -F '\t' '$1 ~ /^[0-9][0-9]$/ && $3 == "gguf" { print $1; exit }' chapters/chapters.tsv)
# the GGUF chapters this run measures: the roofline shows the newest one's prompt processing
# and the decode of the one before it; the llama.cpp rows compare with the newest
GGUF_RUN=$(awk -F '\t' '$1 ~ /^[0-9][0-9]$/ && $3 == "gguf" { print $1 }' chapters/chapters.tsv |
    while read -r ch; do echo "$ch" | grep -Eq -- "$ONLY" && [ -x "$BUILD/ch$ch" ] && echo "$ch"; done)
NEWEST_GGUF=$(echo "$GGUF_RUN" | tail -n 1)
PREV_GGUF=$(echo "$GGUF_RUN" | tail -n 2 | sed -n '1{$!p}')
while IFS=$'\t' read -r ch kind reads _; do
    [[ $ch =~ ^[0-9][0-9]$ ]] || continue
    echo "$ch" | grep -Eq -- "$ONLY" || continue
    [ -x "$BUILD/ch$ch" ] || { echo "bench: $BUILD/ch$ch is not built" >&2; continue; }
    case $reads in
    bin) models=syn-110m ;;
    gguf) models=syn-110m-q4_0; [ "$ch" = "$FIRST_GGUF" ] && models="syn-110m-q8_0 syn-110m-q4_0" ;;
    *) echo "bench: chapter $ch reads '$reads', which bench.sh has no model for" >&2; continue ;;
    esac
    for model in $models; do
        args=$(model_args "$model") || { echo "bench: $model is not available" >&2; continue; }
        # a probe of a quarter of the tokens says whether the whole would take too long
        n=$TOKENS probe=$((TOKENS / 4)) first=""
        [ "$probe" -ge 4 ] || probe=4
        t0=$(now)
        if line=$(run_once "$ch" 1 "$args" "$probe") && [ -n "$line" ]; then
            if awk -v a="$t0" -v b="$(now)" -v k=$((TOKENS / probe)) -v s="$SLOW" 'BEGIN { exit !((b - a) * k > s) }'; then
                n=$probe first=$line
            fi
        fi
        measure "$ch" "$model" 1 "$n" "$first" >/dev/null
        [ "$kind" = simd ] && [ "$CPUS" -gt 1 ] && measure "$ch" "$model" "$CPUS" "$n" >/dev/null
        if is_gguf "$model"; then # the "prompt" table
            for pp in $PP_SIZES; do
                measure_pp "$ch" "$model" 1 "$pp" >/dev/null
                [ "$kind" = simd ] && [ "$CPUS" -gt 1 ] && measure_pp "$ch" "$model" "$CPUS" "$pp" >/dev/null
            done
        fi
        printf '%s %s %s %s\n' "$ch" "$kind" "$model" "$n" >>"$TMP/prog"
    done
done <chapters/chapters.tsv

# ---------------------------------------------------------------------------------------------
# 2. The tables of tools/bench.tsv: "table ID TITLE", then "row CH THREADS MODEL TOKENS",
# "scale CH MODEL TOKENS", "prompt CH THREADS MODEL" or "perplexity CH_A CH_B THREADS MODEL"
# lines; kept as "ID \t TITLE" in tables and, for the rows that could run, in trows as
# "ID CH THREADS MODEL TOKENS" (THREADS "scale" for a scale line), "ID CH prompt MODEL THREADS"
# or "ID CH_A ppl MODEL THREADS CH_B"
: >"$TMP/tables"
: >"$TMP/trows"
id=""
threads_list() { local t=1; while [ "$t" -lt "$CPUS" ]; do echo $t; t=$((t * 2)); done; echo "$CPUS"; }
while IFS=$'\t' read -r what a b c d; do
    case $what in
    table) id=$a; printf '%s\t%s\n' "$a" "$b" >>"$TMP/tables"; continue ;;
    row) ch=$a threads=$b model=$c n=$d ;;
    scale) ch=$a threads=scale model=$b n=$c ;;
    prompt) ch=$a threads=$b model=$c n=prompt ;;
    perplexity) ch=$a chb=$b threads=$c model=$d n=ppl ;;
    *) continue ;;
    esac
    echo "$ch" | grep -Eq -- "$ONLY" || continue
    [ -x "$BUILD/ch$ch" ] || continue
    if [ "$n" = ppl ]; then { echo "$chb" | grep -Eq -- "$ONLY" && [ -x "$BUILD/ch$chb" ]; } || continue; fi
    model_args "$model" >/dev/null || { echo "bench: skipping $model (not available; BENCH_BIG=1?)" >&2; continue; }
    [ "$threads" = all ] && threads=$CPUS
    if [ "$n" = prompt ]; then
        for pp in $PP_SIZES; do measure_pp "$ch" "$model" "$threads" "$pp" >/dev/null; done
        echo "$id $ch prompt $model $threads" >>"$TMP/trows"
        continue
    elif [ "$n" = ppl ]; then
        measure_ppl "$ch" "$model" "$threads" >/dev/null
        measure_ppl "$chb" "$model" "$threads" >/dev/null
        echo "$id $ch ppl $model $threads $chb" >>"$TMP/trows"
        continue
    fi
    [ "$n" = - ] && n=$TOKENS
    [ "$QUICK" = 1 ] && [ "$n" -gt "$TOKENS" ] && n=$TOKENS
    if [ "$threads" = scale ]; then
        for t in $(threads_list); do measure "$ch" "$model" "$t" "$n" >/dev/null; done
    else
        measure "$ch" "$model" "$threads" "$n" >/dev/null
    fi
    echo "$id $ch $threads $model $n" >>"$TMP/trows"
done <"${BENCH_TSV:-tools/bench.tsv}"

# ---------------------------------------------------------------------------------------------
# 3. llama.cpp on every GGUF file and thread count measured (1 and all; not the scaling steps),
# and the newest GGUF chapter's prompt processing on each (kept in llama: "pp... tg", in the
# order of BENCH_PP)
if [ -n "$LLAMA_BENCH" ]; then
    awk -F '\t' '{ print $1 }' "$TMP/runs" | while read -r ch model t n; do
        is_gguf "$model" && { [ "$t" = 1 ] || [ "$t" = "$CPUS" ]; } && echo "$model $t $n"
    done | sort -u >"$TMP/llama_keys"
    while read -r model t n; do
        args=$(model_args "$model") || continue
        if [ -n "$NEWEST_GGUF" ]; then # the newest chapter on every file and thread count too
            measure "$NEWEST_GGUF" "$model" "$t" "$n" >/dev/null
            for pp in $PP_SIZES; do measure_pp "$NEWEST_GGUF" "$model" "$t" "$pp" >/dev/null; done
        fi
        echo "bench: llama-bench ${args#-m } -p $PP_LIST -n $n -t $t -r $REPEAT" >&2
        # one JSON object a line; per test: n_prompt, n_gen, and every repetition's tok/s
        # shellcheck disable=SC2086
        "$LLAMA_BENCH" -m ${args#-m } -p "$PP_LIST" -n "$n" -t "$t" -r "$REPEAT" -o jsonl >"$TMP/lb.json" 2>"$TMP/lb.err"
        awk -v key="$model $t $n" -v sizes="$PP_SIZES" '
            function best(s,   a, i, k, m) { k = split(s, a, /[ ,]+/); m = 0; for (i = 1; i <= k; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
            function fmt(v) { return v ? sprintf("%.1f", v) : "failed" }
            {
                np = $0; sub(/.*"n_prompt": */, "", np); np += 0
                ng = $0; sub(/.*"n_gen": */, "", ng); ng += 0
                ts = $0; sub(/.*"samples_ts": *\[/, "", ts); sub(/\].*/, "", ts)
                if (np > 0 && ng == 0) pp[np] = best(ts)
                if (ng > 0 && np == 0) tg = best(ts)
            }
            END { k = split(sizes, sz, " "); line = ""; for (i = 1; i <= k; i++) line = line fmt(pp[sz[i]]) " "; printf "%s\t%s%s\n", key, line, fmt(tg) }' "$TMP/lb.json" >>"$TMP/llama"
    done <"$TMP/llama_keys"
fi

# ---------------------------------------------------------------------------------------------
# The report: written once the speeds are in (so that a run stopped during the perplexities
# still leaves its tables), and again at the end.

# agreement CH_A MODEL_A CH_B MODEL_B: teacher-forced logits of B against A
agreement() {
    local key="$1 $2 $3 $4" got ids a b
    got=$(lookup "$key" "$TMP/agree")
    if [ -z "$got" ]; then
        case $(base_model "$2") in stories260K | llama2xs | syn-k256) ids=$SHARED/reference/ts0.tok512.tokens ;;
        *) awk 'BEGIN { printf "1"; for (i = 1; i < 24; i++) printf " %d", (i * 7919) % 30000 + 300; print "" }' >"$TMP/ids"; ids=$TMP/ids ;;
        esac
        # shellcheck disable=SC2086
        if a=$(model_args "$2") && b=$(model_args "$4") &&
            "$BUILD/ch$1" ${a%% -z*} --logits "$TMP/a.lgts" --tokens-file "$ids" 2>/dev/null &&
            "$BUILD/ch$3" ${b%% -z*} --logits "$TMP/b.lgts" --tokens-file "$ids" 2>/dev/null; then
            got=$("$BUILD/logits_cmp" "$TMP/a.lgts" "$TMP/b.lgts" 2>/dev/null |
                sed -n 's/max|diff| \([^ ]*\).*top-1 \([0-9]*\/[0-9]*\).*/max abs diff \1, top-1 \2/p')
        fi
        got=${got:-failed}
        printf '%s\t%s\n' "$key" "$got" >>"$TMP/agree"
    fi
    echo "$got"
}

# the bound: the higher of a measurement before the runs and one after them (a single one can
# fall in a slow moment of the machine)
BW1=$(printf '%s\n%s\n' "$BW1_BEFORE" "$(membw 1)" | sort -g | tail -n 1)
BWN=$(printf '%s\n%s\n' "$BWN_BEFORE" "$(membw "$CPUS")" | sort -g | tail -n 1)
# and the peaks likewise, each figure the higher of the two
higher() { printf '%s\n%s\n' "$1" "$2" | awk 'NF == 2 { for (i = 1; i <= 2; i++) if ($i > m[i]) m[i] = $i } END { if (m[1] != "") print m[1], m[2] }'; }
PEAK1=$(higher "$PEAK1" "$(peak 1)")
if [ "$CPUS" -gt 1 ]; then PEAKN=$(higher "$PEAKN" "$(peak "$CPUS")"); else PEAKN=$PEAK1; fi

# the weights of the roofline's model (the newest GGUF chapter's progression rows)
awk -v ch="$NEWEST_GGUF" '$1 == ch { print $3 }' "$TMP/prog" | while read -r model; do
    is_gguf "$model" && model_params "$model" >/dev/null
done

# the agreements of every table row with its table's first row (no speed is measured from here on)
awk '$3 == "prompt" || $3 == "ppl" { next } { if (!($1 in first)) first[$1] = $2 " " $4; else if ($3 != "scale") print first[$1], $2, $4 }' "$TMP/trows" |
    sort -u | while read -r ca ma cb mb; do agreement "$ca" "$ma" "$cb" "$mb" >/dev/null; done

report() { # report FINAL(0|1) BW1 BWN
    local final=$1 bw1=$2 bwn=$3
    {
        echo "Measured $(date -u +%Y-%m-%d) on ${CPU_MODEL:-an unknown CPU}, $CPUS CPUs online${LLC:+, last-level cache $LLC MiB}."
        echo "Memory read bandwidth (build/membw, the higher of a measurement before the runs and one after them): ${bw1:-?} GB/s with 1 thread, ${bwn:-?} GB/s with $CPUS threads."
        [ "$final" = 1 ] || echo "Incomplete: the run stopped before it had scored the perplexities (…)."
        [ "$REPEAT" -gt 1 ] && echo "Each run made up to $REPEAT times (not again once 20 s had gone); the fastest is shown."
        [ "$QUICK" = 1 ] && echo "A short run (BENCH_QUICK=1): $TOKENS tokens a row, prompts of ${PP_SIZES// / and } tokens, perplexity on the first 8 lines of the excerpt (timed on the first 2); a check of tools/bench.sh, not figures to quote."
        echo "A run that two tables show (same chapter, model, threads and tokens) was made once: both show its figure."
        echo
    }
    # the progression, the comparisons, the scaling tables, llama.cpp
    awk -v cpus="$CPUS" -v bw1="$bw1" -v bwn="$bwn" -v llc="$LLC" -v tokens="$TOKENS" -v slow="$SLOW" \
        -v first_gguf="$FIRST_GGUF" -v text_tokens="$(cat "$TMP/text_tokens" 2>/dev/null)" \
        -v has_llama="$([ -s "$TMP/llama" ] && echo 1)" -v pp_sizes="$PP_SIZES" -v pp_list="$PP_LIST" -v repeat="$REPEAT" -v final="$final" \
        -v newest="$NEWEST_GGUF" -v prev="$PREV_GGUF" -v peak1="$PEAK1" -v peakn="$PEAKN" -v peak_kernels="$PEAK_KERNELS" \
        -v ppl_text="$([ "$PPL_TEXT" = "$TEXT" ] && echo the TinyStories excerpt || echo the first 2 lines of the TinyStories excerpt)" '
        function num(s) { return s ~ /^[0-9.]+$/ }
        # pct GBS THREADS NAME MBTOK: the share of the bandwidth, "‡" (and the row noted) above 100%
        function pct(gbs, t, name, mb,   bw, p) {
            bw = (t == 1) ? bw1 : bwn
            if (!(bw + 0 > 0)) return "-"
            p = 100 * gbs / bw
            if (p <= 100) return sprintf("%.0f%%", p)
            if (llc != "" && mb + 0 < llc * 1.048576) fit = fit (fit == "" ? "" : ", ") name
            else nofit = nofit (nofit == "" ? "" : ", ") name
            return sprintf("%.0f%% ‡", p)
        }
        function over_note(   s) { # the footnote of the rows marked ‡ in the table just printed
            if (fit == "" && nofit == "") return
            s = "‡ More than build/membw measured with as many threads."
            if (fit != "") s = s " " fit ": the weights of a token (MB/tok) are fewer than the " llc " MiB last-level cache, so a part of them comes from the cache, not from memory."
            if (nofit != "") s = s " " nofit ": the chapter reads memory faster than the meter'\''s read pattern does (a kernel that keeps more reads in flight, fetching rows ahead, can), so for it the meter is no upper bound."
            print ""; print s
            fit = nofit = ""
        }
        function gbs(mb, d) { return mb * d / 1000 }
        function cell(v) { return num(v) ? sprintf("%.1f", v) : "failed" }
        function ratio(a, b) { return (num(a) && num(b) && b > 0) ? sprintf("%.2f×", a / b) : "-" }
        # the prefill tok/s of chapter CH on MODEL with T threads, prompt of N tokens ("" if not run)
        function ppv(ch, model, t, n,   a) { if (!((ch " " model " " t " " n) in ppr)) return ""; split(ppr[ch " " model " " t " " n], a, " "); return a[1] }
        function is_gguf(m) { return m ~ /-(f32|f16|bf16|q[0-9].*)$/ }
        # the roofline: a point NAME (T threads) of G GFLOP/s at intensity I FLOP/byte, against the
        # roof there, the lower of the int8 peak and the bandwidth times I
        function point(name, t, i, g,   roof, p, bw, pk) {
            bw = (t == 1) ? bw1 : bwn; split(t == 1 ? peak1 : peakn, pk, " ")
            roof = (num(pk[1]) && pk[1] < bw * i) ? pk[1] : bw * i
            p = (roof > 0) ? sprintf("%.0f%%", 100 * g / roof) : "-"
            if (roof > 0 && g > roof) { p = p " ‡"; over_roof = 1 }
            printf "| %s | %s | %.2f | %.1f | %.1f | %s |\n", name, t, i, g, roof, p
        }
        FILENAME ~ /runs$/ { split($0, kv, "\t"); run[kv[1]] = kv[2]; next }
        FILENAME ~ /ppl$/ { split($0, kv, "\t"); ppl[kv[1]] = kv[2]; next }
        FILENAME ~ /agree$/ { split($0, kv, "\t"); agree[kv[1]] = kv[2]; next }
        FILENAME ~ /llama$/ { split($0, kv, "\t"); llama[kv[1]] = kv[2]; next }
        FILENAME ~ /tables$/ { split($0, kv, "\t"); ntab++; tab_id[ntab] = kv[1]; tab_title[kv[1]] = kv[2]; next }
        FILENAME ~ /trows$/ { nt[$1]++; trow[$1, nt[$1]] = substr($0, length($1) + 2); next }
        FILENAME ~ /prog$/ { np++; prog[np] = $0; next }
        FILENAME ~ /\/pp$/ { split($0, kv, "\t"); ppr[kv[1]] = kv[2]; next }
        FILENAME ~ /pplrun$/ { split($0, kv, "\t"); pplr[kv[1]] = kv[2]; next }
        FILENAME ~ /params$/ { split($0, kv, "\t"); params[kv[1]] = kv[2]; next }
        END {
            # --- 1. the progression
            if (np > 0) {
                print "<!-- bench:progression -->"
                printf "**Every chapter on the stories110M shape**: syn-110m, the shape of stories110M (dim 768, hidden 2048, 12 layers, 12 heads, vocabulary 32000) with random weights, made by build/mksynth. "
                printf "The chapters that read GGUF files run it converted by build/gguf_convert to Q4_0 (syn-110m-q4_0)"
                if (first_gguf != "") printf "; chapter %d, the first of them, also to Q8_0, so that the new file format and the step from 8 to 4 bits show separately", first_gguf + 0
                printf ". Prompt \"Once upon a time\", then %d tokens, greedy. ", tokens
                printf "GB/s: the weight bytes read per token times decode tok/s; %% of bandwidth: against build/membw with as many threads. Peak RSS: the one-thread run. "
                printf "Random weights have no perplexity worth the name, so that column is the same chapter on the trained llama2xs model in the same format (llama2xs.bin; llama.cpp'\''s llama2xs-q8_0.gguf and llama2xs-q4_0.gguf), scored over the TinyStories excerpt%s.\n", (text_tokens != "" ? " (" text_tokens " tokens)" : "")
                print ""
                printf "| chapter | model | tokens | weights MB/tok | decode tok/s, 1 thread | GB/s, 1 thread | %% of bandwidth, 1 thread | decode tok/s, %d threads | GB/s, %d threads | %% of bandwidth, %d threads | peak RSS MiB | perplexity (llama2xs) |\n", cpus, cpus, cpus
                print "|---|---|---|---|---|---|---|---|---|---|---|---|"
                for (i = 1; i <= np; i++) {
                    split(prog[i], f, " "); ch = f[1]; kind = f[2]; model = f[3]; n = f[4]
                    split(run[ch " " model " 1 " n], a, " ")
                    name = "ch" ch " " model
                    tok = n; if (n != tokens) { tok = n " †"; short = 1 }
                    p = ppl[ch " " model]; if (p == "") p = (final ? "-" : "…")
                    if (p == "unscored") { p = "- ◊"; unscored = 1 }
                    if (!num(a[2])) { printf "| ch%s | %s | %s | | failed | | | | | | | %s |\n", ch, model, tok, p; continue }
                    c1 = sprintf("%.1f | %.2f | %s", a[2], gbs(a[4], a[2]), pct(gbs(a[4], a[2]), 1, name " (1 thread)", a[4]))
                    if (kind != "simd" || cpus == 1) { cn = "— | — | —"; plain = 1 }
                    else {
                        split(run[ch " " model " " cpus " " n], b, " ")
                        cn = num(b[2]) ? sprintf("%.1f | %.2f | %s", b[2], gbs(b[4], b[2]), pct(gbs(b[4], b[2]), cpus, name " (" cpus " threads)", b[4])) : "failed | | "
                    }
                    printf "| ch%s | %s | %s | %.1f | %s | %s | %.1f | %s |\n", ch, model, tok, a[4], c1, cn, a[3], p
                }
                if (plain) { print ""; print "— A plain chapter (chapters/chapters.tsv): strict fp32 C on one thread, no thread pool." }
                if (short) { print ""; printf "† Fewer tokens: at this chapter'\''s speed %d tokens would take more than %d s, so it generates a quarter of them. A chapter whose tokens cost more the longer the text (chapter 1 recomputes every earlier position for each new token) is slower over a longer text.\n", tokens, slow }
                if (unscored) { print ""; print "◊ Not scored: the run had used up its time for perplexities (BENCH_SECONDS), which are scored last." }
                over_note()
                print ""
            }
            # --- 1b. prompt processing: the GGUF rows of the progression again
            npp = split(pp_sizes, ps, " "); ngguf = 0
            for (i = 1; i <= np; i++) { split(prog[i], f, " "); if (is_gguf(f[3])) ngguf++ }
            if (ngguf > 0) {
                print "<!-- bench:prompt -->"
                printf "**Prompt processing**: the GGUF rows of the progression again, each given a prompt of exactly N tokens (ppN: BOS, then N - 1 times the token \"a\") and generating one. ppN tok/s: the driver'\''s prefill speed, N over the time of the prompt'\''s forward pass; decode tok/s: the progression'\''s. Until chapter 7 a prompt goes through the layers one position at a time, as generated tokens do; from chapter 7 on, all of its positions together (up to -b, 512), so that each weight is read once for all of them. pp%d ÷ decode: what that gains.\n\n", ps[npp]
                hdr = "| chapter | model |"; sep = "|---|---|"
                for (g = 1; g <= (cpus > 1 ? 2 : 1); g++) {
                    tl = (g == 1) ? "1 thread" : cpus " threads"
                    for (k = 1; k <= npp; k++) { hdr = hdr " pp" ps[k] " tok/s, " tl " |"; sep = sep "---|" }
                    hdr = hdr " decode tok/s, " tl " | pp" ps[npp] " ÷ decode, " tl " |"; sep = sep "---|---|"
                }
                print hdr; print sep
                for (i = 1; i <= np; i++) {
                    split(prog[i], f, " "); ch = f[1]; kind = f[2]; model = f[3]; n = f[4]
                    if (!is_gguf(model)) continue
                    line = "| ch" ch " | " model " |"
                    for (g = 1; g <= (cpus > 1 ? 2 : 1); g++) {
                        t = (g == 1) ? 1 : cpus
                        if (g == 2 && kind != "simd") { for (k = 1; k <= npp + 2; k++) line = line " — |"; continue }
                        for (k = 1; k <= npp; k++) line = line " " cell(ppv(ch, model, t, ps[k])) " |"
                        split(run[ch " " model " " t " " n], a, " ")
                        line = line " " cell(a[2]) " | " ratio(ppv(ch, model, t, ps[npp]), a[2]) " |"
                    }
                    print line
                }
                print ""
            }
            # --- 2. the tables of tools/bench.tsv
            for (k = 1; k <= ntab; k++) {
                id = tab_id[k]; if (!nt[id]) continue
                print "<!-- bench:" id " -->"
                print "**" tab_title[id] "**"
                print ""
                split(trow[id, 1], f0, " ")
                if (f0[2] == "prompt") { # trow: ch prompt model threads
                    hdr = "| chapter | model | threads |"; sep = "|---|---|---|"
                    for (k = 1; k <= npp; k++) { hdr = hdr " pp" ps[k] " tok/s |"; sep = sep "---|" }
                    print hdr " pp" ps[npp] " × first row |"; print sep "---|"
                    for (r = 1; r <= nt[id]; r++) {
                        split(trow[id, r], f, " ")
                        line = "| ch" f[1] " | " f[3] " | " f[4] " |"
                        for (k = 1; k <= npp; k++) line = line " " cell(ppv(f[1], f[3], f[4], ps[k])) " |"
                        if (r == 1) base = ppv(f[1], f[3], f[4], ps[npp])
                        print line " " (r > 1 ? ratio(ppv(f[1], f[3], f[4], ps[npp]), base) : "-") " |"
                    }
                } else if (f0[2] == "ppl") { # trow: ch_a ppl model threads ch_b
                    print "| model | threads | tokens scored | ch" f0[1] " tok/s | ch" f0[5] " tok/s | ch" f0[5] " ÷ ch" f0[1] " | ch" f0[1] " perplexity | ch" f0[5] " perplexity | the same perplexity |"
                    print "|---|---|---|---|---|---|---|---|---|"
                    for (r = 1; r <= nt[id]; r++) {
                        split(trow[id, r], f, " ")
                        na = split(pplr[f[1] " " f[3] " " f[4]], a, " "); nb = split(pplr[f[5] " " f[3] " " f[4]], b, " ")
                        same = (na == 3 && nb == 3) ? (a[2] == b[2] && a[3] == b[3] ? "yes" : "**no**") : "-"
                        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[3], f[4], (na == 3 ? a[3] : (nb == 3 ? b[3] : "-")), cell(a[1]), cell(b[1]), ratio(b[1], a[1]), (na == 3 ? a[2] : "failed"), (nb == 3 ? b[2] : "failed"), same
                    }
                    printf "\n--perplexity over %s: each chapter'\''s [stats] positions per second (loading excluded), the fastest of its runs; the perplexity printed with 4 decimals.\n", ppl_text
                } else if (f0[2] == "scale") {
                    printf "| decode tok/s by threads | tokens |"; sep = "|---|---|"
                    for (t = 1; ; t = (t * 2 < cpus ? t * 2 : cpus)) { printf " %d |", t; sep = sep "---|"; ts[++nts] = t; if (t == cpus) break }
                    printf " %d threads ÷ 1 |\n%s---|\n", cpus, sep
                    for (r = 1; r <= nt[id]; r++) {
                        split(trow[id, r], f, " "); line = "| ch" f[1] " " f[3] " | " f[4] " |"
                        for (j = 1; j <= nts; j++) { split(run[f[1] " " f[3] " " ts[j] " " f[4]], a, " "); line = line " " (num(a[2]) ? sprintf("%.1f", a[2]) : "failed") " |"; v[j] = a[2] }
                        line = line " " ((num(v[1]) && num(v[nts]) && v[1] > 0) ? sprintf("%.2f×", v[nts] / v[1]) : "-") " |"
                        print line
                    }
                    delete ts; nts = 0
                } else {
                    print "| chapter | model | threads | tokens | prefill tok/s | decode tok/s | decode × first row | peak RSS MiB | weights MB/tok | GB/s | % of bandwidth | agreement with the first row |"
                    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
                    for (r = 1; r <= nt[id]; r++) {
                        split(trow[id, r], f, " ")
                        split(run[f[1] " " f[3] " " f[2] " " f[4]], a, " ")
                        if (r == 1) base = a[2]
                        if (!num(a[2])) { printf "| ch%s | %s | %s | %s | failed | | | | | | | |\n", f[1], f[3], f[2], f[4]; continue }
                        up = (r > 1 && num(base) && base > 0) ? sprintf("%.2f×", a[2] / base) : "-"
                        ag = (r > 1) ? agree[f0[1] " " f0[3] " " f[1] " " f[3]] : "-"
                        printf "| ch%s | %s | %s | %s | %.1f | %.1f | %s | %.1f | %.1f | %.2f | %s | %s |\n", f[1], f[3], f[2], f[4], a[1], a[2], up, a[3], a[4], gbs(a[4], a[2]), pct(gbs(a[4], a[2]), f[2], "ch" f[1] " " f[3] " (" f[2] " threads)", a[4]), (ag == "" ? "-" : ag)
                    }
                    over_note()
                }
                print ""
            }
            # --- 3. llama.cpp
            if (has_llama) {
                nl = (newest != "") ? "ch" newest : "the newest chapter"
                print "<!-- bench:llama_cpp -->"
                printf "**llama.cpp on the same files**: its llama-bench, `-p %s -n TOKENS -t THREADS -r %d`, the fastest repetition, on every GGUF file and thread count above: prompt processing (ppN, N tokens) and generation (tg, TOKENS tokens), beside %s'\''s prompt processing (the prompt table'\''s measure) and decode on the same file and threads, and the decode of every chapter that ran that file.\n\n", pp_list, repeat, nl
                hdr = "| model | threads | tokens |"; sep = "|---|---|---|"
                for (k = 1; k <= npp; k++) { hdr = hdr " llama.cpp pp" ps[k] " tok/s |"; sep = sep "---|" }
                hdr = hdr " llama.cpp tg tok/s | the chapters'\'' decode tok/s |"; sep = sep "---|---|"
                for (k = 1; k <= npp; k++) { hdr = hdr " " nl " pp" ps[k] " tok/s |"; sep = sep "---|" }
                for (k = 1; k <= npp; k++) { hdr = hdr " " nl " ÷ llama.cpp, pp" ps[k] " |"; sep = sep "---|" }
                print hdr " " nl " ÷ llama.cpp, tg |"; print sep "---|"
                nk = 0
                for (key in llama) keys[++nk] = key
                # in a stable order: model, then threads
                for (i = 1; i <= nk; i++) for (j = i + 1; j <= nk; j++) {
                    split(keys[i], x, " "); split(keys[j], y, " ")
                    if (x[1] > y[1] || (x[1] == y[1] && x[2] + 0 > y[2] + 0)) { tmp = keys[i]; keys[i] = keys[j]; keys[j] = tmp }
                }
                for (i = 1; i <= nk; i++) {
                    split(keys[i], x, " "); split(llama[keys[i]], l, " ") # l[1..npp]: pp, l[npp + 1]: tg
                    chs = ""
                    for (rk in run) { split(rk, y, " "); if (y[2] == x[1] && y[3] == x[2] && y[4] == x[3]) { split(run[rk], a, " "); if (num(a[2])) cl[y[1]] = a[2] } }
                    for (c = 1; c <= 99; c++) { cc = sprintf("%02d", c); if (cc in cl) chs = chs (chs == "" ? "" : ", ") "ch" cc " " sprintf("%.1f", cl[cc]) }
                    tg = (newest in cl) ? cl[newest] : ""
                    delete cl
                    line = "| " x[1] " | " x[2] " | " x[3] " |"
                    for (k = 1; k <= npp; k++) line = line " " l[k] " |"
                    line = line " " l[npp + 1] " | " chs " |"
                    for (k = 1; k <= npp; k++) line = line " " cell(ppv(newest, x[1], x[2], ps[k])) " |"
                    for (k = 1; k <= npp; k++) line = line " " ratio(ppv(newest, x[1], x[2], ps[k]), l[k]) " |"
                    print line " " ratio(tg, l[npp + 1]) " |"
                }
                print ""
            }
            # --- 4. the roofline: the newest GGUF chapter'\''s last progression model
            roof_model = ""
            for (i = 1; i <= np; i++) { split(prog[i], f, " "); if (f[1] == newest && is_gguf(f[3])) { roof_model = f[3]; roof_n = f[4] } }
            if (roof_model != "" && (roof_model in params)) {
                split(params[roof_model], pr, " "); pl = pr[1]; pc = pr[2] # layer and classifier weights
                split(peak1, k1, " "); split(peakn, kn, " "); nkk = split(peak_kernels, kk, "; ")
                i8 = (nkk >= 2) ? kk[2] : "int8"; sub(/^int8: */, "", i8); f32 = (nkk >= 3) ? kk[3] : "fp32"; sub(/^fp32: */, "", f32)
                print "<!-- bench:roofline -->"
                printf "**The roofline of this machine**: how many operations a second the cores can do (build/peak: the multiply-add instructions of the chapters'\'' kernels on data in the L1 cache; %s) and how many bytes a second memory delivers (build/membw), each the higher of a measurement before the runs and one after them, against what %s do with them on %s. ", (peak_kernels != "" ? "this build: " peak_kernels : "not measured"), (prev != "" ? "ch" prev "'\''s decode and ch" newest "'\''s prompt processing" : "ch" newest "'\''s prompt processing"), roof_model
                printf "Operations are those of the matrix multiplications only, 2 per weight and position (a multiply and an add), for %.1f M weights in the layers and %.1f M in the classifier: a generated token costs 2 × all of them; a prompt of N positions 2 × (layer weights × N + classifier weights), the classifier running for its last position only. Attention and the norms are not counted. Arithmetic intensity: those operations over the weight bytes read for them (weights MB/tok), read once for all N positions of a prompt. The roof at an intensity is the lower of the int8 peak and the bandwidth times the intensity (a point under the sloped part is bound by memory, under the flat part by arithmetic).\n\n", pl / 1e6, pc / 1e6
                print "| roof | 1 thread | " cpus " threads |"
                print "|---|---|---|"
                printf "| memory read bandwidth (build/membw), GB/s | %s | %s |\n", bw1, bwn
                printf "| int8 multiply-add (build/peak: %s), GOP/s | %s | %s |\n", i8, (num(k1[1]) ? k1[1] : "-"), (num(kn[1]) ? kn[1] : "-")
                printf "| fp32 multiply, then add (build/peak: %s), GFLOP/s | %s | %s |\n", f32, (num(k1[2]) ? k1[2] : "-"), (num(kn[2]) ? kn[2] : "-")
                print ""
                print "| point | threads | FLOP/byte | GFLOP/s | roof there, GFLOP/s | % of the roof |"
                print "|---|---|---|---|---|---|"
                for (g = 1; g <= (cpus > 1 ? 2 : 1); g++) {
                    t = (g == 1) ? 1 : cpus
                    if (prev != "") {
                        split(run[prev " " roof_model " " t " " roof_n], a, " ")
                        if (num(a[2]) && a[4] > 0) point("ch" prev " decode", t, 2 * (pl + pc) / (a[4] * 1e6), 2 * (pl + pc) * a[2] / 1e9)
                    }
                    split(run[newest " " roof_model " " t " " roof_n], a, " "); mb = a[4]
                    for (k = 1; k <= npp; k++) {
                        pv = ppv(newest, roof_model, t, ps[k]); fl = 2 * (pl * ps[k] + pc)
                        if (num(pv) && mb > 0) point("ch" newest " pp" ps[k], t, fl / (mb * 1e6), fl * pv / ps[k] / 1e9)
                    }
                    lk = roof_model " " t " " roof_n
                    if ((lk in llama) && mb > 0) {
                        split(llama[lk], l, " ")
                        if (num(l[npp + 1])) point("llama.cpp tg", t, 2 * (pl + pc) / (mb * 1e6), 2 * (pl + pc) * l[npp + 1] / 1e9)
                        fl = 2 * (pl * ps[npp] + pc)
                        if (num(l[npp])) point("llama.cpp pp" ps[npp], t, fl / (mb * 1e6), fl * l[npp] / ps[npp] / 1e9)
                    }
                }
                if (over_roof) { print ""; print "‡ Above its roof: the meters measured less than this run reached, so for it they are no bound (other work on the machine while they measured; or, under the sloped part, weights that partly stay in the cache)." }
                print ""
            }
        }' "$TMP/runs" "$TMP/ppl" "$TMP/agree" "$TMP/llama" "$TMP/tables" "$TMP/trows" "$TMP/prog" "$TMP/pp" "$TMP/pplrun" "$TMP/params"
}

write_out() { # write_out FILE_WITH_THE_REPORT
    cat "$1"
    if [ -n "$OUT_DIR" ]; then
        mkdir -p "$OUT_DIR"
        cp "$1" "$OUT_DIR/bench.md"
        bash tools/bench_svg.sh <"$1" >"$OUT_DIR/bench.svg"
        bash tools/roofline_svg.sh <"$1" >"$OUT_DIR/roofline.svg"
        echo "bench: wrote $OUT_DIR/bench.md, $OUT_DIR/bench.svg and $OUT_DIR/roofline.svg ($(elapsed) s)" >&2
    fi
}
if [ -n "$OUT_DIR" ]; then
    report 0 "$BW1" "$BWN" >"$TMP/report"
    mkdir -p "$OUT_DIR" && cp "$TMP/report" "$OUT_DIR/bench.md" && bash tools/bench_svg.sh <"$TMP/report" >"$OUT_DIR/bench.svg" &&
        bash tools/roofline_svg.sh <"$TMP/report" >"$OUT_DIR/roofline.svg"
fi

# ---------------------------------------------------------------------------------------------
# Perplexity: of each progression row's model in the trained llama2xs form, fastest chapter
# first (the slowest may not fit in the time left, BENCH_SECONDS)
perplexity() { # perplexity CH MODEL SECONDS_LEFT: the figure, "-" (no model or text), "failed"
    local args rc limit="" got
    if ! args=$(model_args "$(ppl_model "$2")") || [ ! -e "$TEXT" ]; then echo "-"; return; fi
    # already scored on the same text, with all CPUs (the default of -t), by a timed run
    got=$(lookup "$1 $(ppl_model "$2") $CPUS" "$TMP/pplrun")
    if [ "$PPL_TEXT" = "$TEXT" ] && [ "$(echo "$got" | wc -w)" = 3 ]; then echo "${got#* }" | awk '{ print $2 >"'"$TMP/text_tokens"'"; print $1 }'; return; fi
    command -v timeout >/dev/null && limit="timeout $3"
    # shellcheck disable=SC2086
    $limit "$BUILD/ch$1" $args --perplexity "$TEXT" >"$TMP/ppl.out" 2>/dev/null
    rc=$?
    if [ "$rc" = 124 ]; then echo unscored; return; fi
    [ "$rc" = 0 ] || { echo failed; return; }
    awk '/^perplexity:/ { print $2; n = $4 } END { if (n) print n >"'"$TMP/text_tokens"'" }' "$TMP/ppl.out"
}
while read -r ch _ model n; do
    got=$(lookup "$ch $model 1 $n" "$TMP/runs")
    echo "${got#* }" | awk -v k="$ch $model" '{ print ($1 ~ /^[0-9.]+$/ ? $1 : 0), k }'
done <"$TMP/prog" | sort -k1,1gr | while read -r _ ch model; do
    left=$((DEADLINE - $(elapsed)))
    if [ "$left" -lt 5 ]; then
        p=unscored
    else
        echo "bench: perplexity, ch$ch $(ppl_model "$model") ($left s left)" >&2
        p=$(perplexity "$ch" "$model" "$left")
        [ -n "$p" ] || p=failed
    fi
    printf '%s %s\t%s\n' "$ch" "$model" "$p" >>"$TMP/ppl"
done

report 1 "$BW1" "$BWN" >"$TMP/report"
write_out "$TMP/report"

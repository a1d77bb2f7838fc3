#!/usr/bin/env bash
# tools/bench.sh — what `make bench` runs: every chapter measured on one machine, in one run.
#
#   BUILD=build SHARED=../shared [BENCH_BIG=1] [BENCH_REPEAT=R] [BENCH_QUICK=1]
#       [LLAMA_BENCH=path/to/llama-bench] bash tools/bench.sh [--out DIR] [--only REGEX]
#
# It prints markdown, and with --out DIR writes DIR/bench.md and DIR/bench.svg (the chart of
# the first table). The tables:
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
#  2. The focused comparisons of tools/bench.tsv (its tables of runs and of thread scaling).
#  3. With LLAMA_BENCH=path/to/llama-bench (llama.cpp's, e.g. built by
#     $SHARED/anchors/build.sh): llama-bench on every GGUF file and thread count measured above
#     (-p PROMPT -n TOKENS -t THREADS -r R), its prompt and generation speed beside the chapters'.
#
# A run that two tables need (same chapter, model, threads and tokens) is made once, and both
# show that one figure. Each row generates BENCH_TOKENS (64) tokens after "Once upon a time",
# greedy; a chapter that needs so long for a quarter of them that the whole would take more
# than BENCH_SLOW (30) seconds is measured on that quarter instead (chapter 1, which recomputes
# every earlier position for each token). Rows read syn-tinyllama (the TinyLlama-1.1B shape,
# 4.4 GB in fp32) only with BENCH_BIG=1.
#
#   BENCH_REPEAT=R    make each run up to R times (none again once 20 s have gone), keep the
#                     fastest decode: other work on the machine only ever slows a run down
#   BENCH_QUICK=1     a short check of the whole script: 16 tokens, perplexity on the first
#                     8 lines of the excerpt, llama-bench with -p 16; not figures to publish
#   BENCH_SECONDS=S   perplexity (which measures no speed) is scored last, slowest chapter last,
#                     and stopped S seconds after the start of the run (500); its cell says so
#   BENCH_TOKENS=N    tokens per progression row (64; 16 with BENCH_QUICK=1)
#   LLAMA_BENCH=PATH  the llama.cpp rows (above); LLAMA_PROMPT=P their prompt length (128)
#   BENCH_TSV=FILE    the comparisons to make instead of tools/bench.tsv
#   --only REGEX      only the chapters whose number matches (e.g. '0[56]')
#
# BUILD and SHARED are relative to the repository's root; --out, LLAMA_BENCH and BENCH_TSV to
# the directory it is called from. The llama.cpp rows need llama-bench built first, e.g.
#   bash $SHARED/anchors/build.sh build/anchors      (about 80 s with 16 cores)
#   LLAMA_BENCH=build/anchors/llama.cpp/build/bin/llama-bench make bench
# On 16 cores, `BENCH_BIG=1 BENCH_REPEAT=2` takes about 6 minutes (llama.cpp's rows about one
# more), chapter 1's perplexity a good part of it; BENCH_QUICK=1 about a minute on 2 cores.
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
if [ "$QUICK" = 1 ]; then TOKENS=${BENCH_TOKENS:-16}; SLOW=${BENCH_SLOW:-10}; PP=${LLAMA_PROMPT:-16}
else TOKENS=${BENCH_TOKENS:-64}; SLOW=${BENCH_SLOW:-30}; PP=${LLAMA_PROMPT:-128}; fi
DEADLINE=${BENCH_SECONDS:-500}
for v in REPEAT TOKENS SLOW PP DEADLINE; do
    case ${!v} in '' | *[!0-9]*) echo "error: bench.sh: BENCH_${v} (or LLAMA_PROMPT) must be a number, not '${!v}'" >&2; exit 1 ;; esac
done
[ "$REPEAT" -ge 1 ] || REPEAT=1
if [ -n "$LLAMA_BENCH" ] && [ ! -x "$LLAMA_BENCH" ]; then
    echo "error: bench.sh: LLAMA_BENCH=$LLAMA_BENCH is not an executable file" >&2; exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
PROMPT="Once upon a time"
TEXT=$SHARED/data/tinystories-valid-excerpt.txt
if [ "$QUICK" = 1 ] && [ -e "$TEXT" ]; then head -n 8 "$TEXT" >"$TMP/text"; TEXT=$TMP/text; fi
: >"$TMP/runs" # key \t prefill decode rss mbtok   (key: chapter model threads tokens)
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

# membw THREADS: GB/s read by build/membw with that many threads (empty if it cannot run)
membw() { "$BUILD/membw" --threads "$1" 2>/dev/null | sed -n 's/.*GB\/s=\([0-9.]*\).*/\1/p'; }
BW1_BEFORE=$(membw 1)
BWN_BEFORE=$(membw "$CPUS")
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
        printf '%s %s %s %s\n' "$ch" "$kind" "$model" "$n" >>"$TMP/prog"
    done
done <chapters/chapters.tsv

# ---------------------------------------------------------------------------------------------
# 2. The tables of tools/bench.tsv: "table ID TITLE", then "row CH THREADS MODEL TOKENS" or
# "scale CH MODEL TOKENS" lines; kept as "ID \t TITLE" in tables and "ID kind ch threads model
# tokens" in trows, for the rows that could run
: >"$TMP/tables"
: >"$TMP/trows"
id=""
threads_list() { local t=1; while [ "$t" -lt "$CPUS" ]; do echo $t; t=$((t * 2)); done; echo "$CPUS"; }
while IFS=$'\t' read -r what a b c d; do
    case $what in
    table) id=$a; printf '%s\t%s\n' "$a" "$b" >>"$TMP/tables"; continue ;;
    row) ch=$a threads=$b model=$c n=$d ;;
    scale) ch=$a threads=scale model=$b n=$c ;;
    *) continue ;;
    esac
    echo "$ch" | grep -Eq -- "$ONLY" || continue
    [ -x "$BUILD/ch$ch" ] || continue
    model_args "$model" >/dev/null || { echo "bench: skipping $model (not available; BENCH_BIG=1?)" >&2; continue; }
    [ "$n" = - ] && n=$TOKENS
    [ "$QUICK" = 1 ] && [ "$n" -gt "$TOKENS" ] && n=$TOKENS
    [ "$threads" = all ] && threads=$CPUS
    if [ "$threads" = scale ]; then
        for t in $(threads_list); do measure "$ch" "$model" "$t" "$n" >/dev/null; done
    else
        measure "$ch" "$model" "$threads" "$n" >/dev/null
    fi
    echo "$id $ch $threads $model $n" >>"$TMP/trows"
done <"${BENCH_TSV:-tools/bench.tsv}"

# ---------------------------------------------------------------------------------------------
# 3. llama.cpp on every GGUF file and thread count measured (1 and all; not the scaling steps)
if [ -n "$LLAMA_BENCH" ]; then
    awk -F '\t' '{ print $1 }' "$TMP/runs" | while read -r ch model t n; do
        is_gguf "$model" && { [ "$t" = 1 ] || [ "$t" = "$CPUS" ]; } && echo "$model $t $n"
    done | sort -u >"$TMP/llama_keys"
    while read -r model t n; do
        args=$(model_args "$model") || continue
        echo "bench: llama-bench ${args#-m } -p $PP -n $n -t $t -r $REPEAT" >&2
        # one JSON object a line; per test: n_prompt, n_gen, and every repetition's tok/s
        # shellcheck disable=SC2086
        "$LLAMA_BENCH" -m ${args#-m } -p "$PP" -n "$n" -t "$t" -r "$REPEAT" -o jsonl >"$TMP/lb.json" 2>"$TMP/lb.err"
        awk -v key="$model $t $n" '
            function best(s,   a, i, k, m) { k = split(s, a, /[ ,]+/); m = 0; for (i = 1; i <= k; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
            {
                np = $0; sub(/.*"n_prompt": */, "", np); np += 0
                ng = $0; sub(/.*"n_gen": */, "", ng); ng += 0
                ts = $0; sub(/.*"samples_ts": *\[/, "", ts); sub(/\].*/, "", ts)
                if (np > 0 && ng == 0) pp = best(ts)
                if (ng > 0 && np == 0) tg = best(ts)
            }
            END { printf "%s\t%s %s\n", key, (pp ? sprintf("%.1f", pp) : "failed"), (tg ? sprintf("%.1f", tg) : "failed") }' "$TMP/lb.json" >>"$TMP/llama"
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

# the agreements of every table row with its table's first row (no speed is measured from here on)
awk '{ if (!($1 in first)) first[$1] = $2 " " $4; else if ($3 != "scale") print first[$1], $2, $4 }' "$TMP/trows" |
    sort -u | while read -r ca ma cb mb; do agreement "$ca" "$ma" "$cb" "$mb" >/dev/null; done

report() { # report FINAL(0|1) BW1 BWN
    local final=$1 bw1=$2 bwn=$3
    {
        echo "Measured $(date -u +%Y-%m-%d) on ${CPU_MODEL:-an unknown CPU}, $CPUS CPUs online${LLC:+, last-level cache $LLC MiB}."
        echo "Memory read bandwidth (build/membw, the higher of a measurement before the runs and one after them): ${bw1:-?} GB/s with 1 thread, ${bwn:-?} GB/s with $CPUS threads."
        [ "$final" = 1 ] || echo "Incomplete: the run stopped before it had scored the perplexities (…)."
        [ "$REPEAT" -gt 1 ] && echo "Each run made up to $REPEAT times (not again once 20 s had gone); the fastest decode is shown."
        [ "$QUICK" = 1 ] && echo "A short run (BENCH_QUICK=1): $TOKENS tokens a row, perplexity on the first 8 lines of the excerpt; a check of tools/bench.sh, not figures to quote."
        echo "A run that two tables show (same chapter, model, threads and tokens) was made once: both show its figure."
        echo
    }
    # the progression, the comparisons, the scaling tables, llama.cpp
    awk -v cpus="$CPUS" -v bw1="$bw1" -v bwn="$bwn" -v llc="$LLC" -v tokens="$TOKENS" -v slow="$SLOW" \
        -v first_gguf="$FIRST_GGUF" -v text_tokens="$(cat "$TMP/text_tokens" 2>/dev/null)" \
        -v has_llama="$([ -s "$TMP/llama" ] && echo 1)" -v pp="$PP" -v repeat="$REPEAT" -v final="$final" '
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
        FILENAME ~ /runs$/ { split($0, kv, "\t"); run[kv[1]] = kv[2]; next }
        FILENAME ~ /ppl$/ { split($0, kv, "\t"); ppl[kv[1]] = kv[2]; next }
        FILENAME ~ /agree$/ { split($0, kv, "\t"); agree[kv[1]] = kv[2]; next }
        FILENAME ~ /llama$/ { split($0, kv, "\t"); llama[kv[1]] = kv[2]; next }
        FILENAME ~ /tables$/ { split($0, kv, "\t"); ntab++; tab_id[ntab] = kv[1]; tab_title[kv[1]] = kv[2]; next }
        FILENAME ~ /trows$/ { nt[$1]++; trow[$1, nt[$1]] = $2 " " $3 " " $4 " " $5; next }
        FILENAME ~ /prog$/ { np++; prog[np] = $0; next }
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
            # --- 2. the tables of tools/bench.tsv
            for (k = 1; k <= ntab; k++) {
                id = tab_id[k]; if (!nt[id]) continue
                print "<!-- bench:" id " -->"
                print "**" tab_title[id] "**"
                print ""
                split(trow[id, 1], f0, " ")
                if (f0[2] == "scale") {
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
                print "<!-- bench:llama_cpp -->"
                printf "**llama.cpp on the same files**: its llama-bench, `-p %d -n TOKENS -t THREADS -r %d`, the fastest repetition, on every GGUF file and thread count above, beside the decode speed of every chapter that ran that file (the same runs as in the tables above).\n\n", pp, repeat
                printf "| model | threads | tokens | llama.cpp prompt tok/s (pp%d) | llama.cpp generation tok/s | the chapters'\'' decode tok/s | newest chapter ÷ llama.cpp |\n", pp
                print "|---|---|---|---|---|---|---|"
                nk = 0
                for (key in llama) keys[++nk] = key
                # in a stable order: model, then threads
                for (i = 1; i <= nk; i++) for (j = i + 1; j <= nk; j++) {
                    split(keys[i], x, " "); split(keys[j], y, " ")
                    if (x[1] > y[1] || (x[1] == y[1] && x[2] + 0 > y[2] + 0)) { tmp = keys[i]; keys[i] = keys[j]; keys[j] = tmp }
                }
                for (i = 1; i <= nk; i++) {
                    split(keys[i], x, " "); split(llama[keys[i]], l, " ")
                    chs = ""; newest = ""
                    for (rk in run) { split(rk, y, " "); if (y[2] == x[1] && y[3] == x[2] && y[4] == x[3]) { split(run[rk], a, " "); if (num(a[2])) cl[y[1]] = a[2] } }
                    for (c = 1; c <= 99; c++) { cc = sprintf("%02d", c); if (cc in cl) { chs = chs (chs == "" ? "" : ", ") "ch" cc " " sprintf("%.1f", cl[cc]); newest = cl[cc] } }
                    delete cl
                    printf "| %s | %s | %s | %s | %s | %s | %s |\n", x[1], x[2], x[3], l[1], l[2], chs, (num(l[2]) && newest != "" ? sprintf("%.2f×", newest / l[2]) : "-")
                }
                print ""
            }
        }' "$TMP/runs" "$TMP/ppl" "$TMP/agree" "$TMP/llama" "$TMP/tables" "$TMP/trows" "$TMP/prog"
}

write_out() { # write_out FILE_WITH_THE_REPORT
    cat "$1"
    if [ -n "$OUT_DIR" ]; then
        mkdir -p "$OUT_DIR"
        cp "$1" "$OUT_DIR/bench.md"
        bash tools/bench_svg.sh <"$1" >"$OUT_DIR/bench.svg"
        echo "bench: wrote $OUT_DIR/bench.md and $OUT_DIR/bench.svg ($(elapsed) s)" >&2
    fi
}
if [ -n "$OUT_DIR" ]; then
    report 0 "$BW1" "$BWN" >"$TMP/report"
    mkdir -p "$OUT_DIR" && cp "$TMP/report" "$OUT_DIR/bench.md" && bash tools/bench_svg.sh <"$TMP/report" >"$OUT_DIR/bench.svg"
fi

# ---------------------------------------------------------------------------------------------
# Perplexity: of each progression row's model in the trained llama2xs form, fastest chapter
# first (the slowest may not fit in the time left, BENCH_SECONDS)
perplexity() { # perplexity CH MODEL SECONDS_LEFT: the figure, "-" (no model or text), "failed"
    local args rc limit=""
    if ! args=$(model_args "$(ppl_model "$2")") || [ ! -e "$TEXT" ]; then echo "-"; return; fi
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

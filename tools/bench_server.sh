#!/usr/bin/env bash
# tools/bench_server.sh — the serving benchmark of chapter 9: build/ch09 --server under load from
# build/loadgen, beside chapter 7's prefill and, when it is built, llama.cpp's llama-server.
#
#   BUILD=build SHARED=../shared [MODEL=FILE.gguf] [LLAMA_SERVER=path/to/llama-server | ANCHORS=DIR]
#       [PARTS="a b c d"] [THREADS=16] [SLOTS=8] [CTX=2048] [TOKENS=128] [REPEAT=3]
#       [PROMPT_TOKENS=500] [CONV_TOKENS=1000] [TEMPLATE=zephyr] [PORT=18431] [BENCH_MAKE=1]
#       [BENCH_SECONDS=420]
#       bash tools/bench_server.sh [--out FILE]
#
# It builds what it needs first (make BUILD=$BUILD; BENCH_MAKE=0: use what is built).
#
# The model (MODEL): by default the TinyLlama-1.1B shape (dim 2048, hidden 5632, 22 layers, 32
# heads, 4 KV heads, vocabulary 32000, context 2048) with random weights, made by build/mksynth
# --preset tinyllama and converted to Q4_0 by build/gguf_convert, as tools/bench.sh makes it
# ($BUILD/models/syn-tinyllama-q4_0.gguf, reused when it is there). The servers:
#
#   build/ch09 --server -m MODEL --port PORT -np SLOTS -t THREADS -c CTX --chat-template TEMPLATE
#   llama-server -m MODEL --port PORT+1 -np SLOTS -t THREADS -c SLOTS*CTX --chat-template TEMPLATE
#
# (llama-server divides its -c among its slots, ch09 gives each slot -c), each ready when GET
# /health answers 200. Both run at once, so that every measurement can alternate between them
# (ch09, llama-server, ch09, ...); an idle server sleeps. The parts (PARTS, default all):
#
#  a  decode under load: 1 client streaming TOKENS tokens (ignore_eos, greedy), then SLOTS clients
#     at once, REPEAT times alternated. Rows: the single client's decode tok/s, the aggregate
#     tok/s of 1 and of SLOTS clients (all tokens ÷ wall time, so it holds the prompts too), their
#     ratio, and the slowest of the SLOTS clients' decode tok/s ÷ the single client's.
#  b  prompt processing: the time to first token (TTFT) of a prompt of about PROMPT_TOKENS tokens
#     (POST /v1/completions, streamed), against chapter 7's prefill of the same text
#     (build/ch07 -f FILE -n 1: the [stats] line's prompt tokens ÷ prefill tok/s). Each
#     repetition starts the text with its own words ("Story 1001."), so that no server finds it
#     in a cache.
#  c  prefix reuse: a conversation of about CONV_TOKENS tokens (a user message, a reply of 16
#     tokens, a short follow-up question): the TTFT of the follow-up turn (loadgen --followup:
#     the server has the first turn in a slot) against the TTFT of the same conversation sent
#     fresh (the same messages with the first words changed, "Session 1001." to "Session 2001.",
#     so that only the template's first tokens can match a cache).
#  d  llama-server beside ch09 in every part above: LLAMA_SERVER names it (bash
#     $SHARED/anchors/build.sh DIR builds it as DIR/llama.cpp/build/bin/llama-server), or
#     ANCHORS=DIR names a folder holding that build.sh (e.g. $SHARED/anchors), which this script
#     then runs into $BUILD/anchors while it makes the model (about 80 s with 16 cores).
#
# Every figure is the median of REPEAT runs; once BENCH_SECONDS have gone since the start, each
# part makes only its first run (the table's heading then says so), so that the whole stays
# inside one 10-minute command of the device machine. Output: progress on stderr, then a
# markdown table on stdout (and in --out FILE): rows are measurements, columns ch09,
# llama-server, their ratio. The texts come from $SHARED/data/tinystories-valid-excerpt.txt
# (without it, from README.md), cut to the token counts with build/ch07 --tokenize (the model's
# own vocabulary). Budget (estimated from the 2-core machine, not yet timed on 16 cores): the
# builds and the model about 1.5 minutes the first time, the parts 3 to 4 more. A quick check of
# the script: MODEL=$SHARED/models/gguf/llama2xs-q4_0.gguf THREADS=2 SLOTS=4 CTX=512 TOKENS=32
# REPEAT=1 PROMPT_TOKENS=100 CONV_TOKENS=120 (llama2xs holds 256 positions), a few seconds.
#
# On the device machine, which has no $SHARED, with the anchors carried in .devshare:
#   ANCHORS=.devshare/anchors bash tools/bench_server.sh --out $OUT/bench_server.md
#
# A benchmark never fails: a measurement that breaks shows "failed" in its cell (the loadgen
# output of failed runs is kept in the log this prints). Exit status 1 only when ch09 does not
# start, or a flag is wrong.
set -u
export LC_ALL=C
OUT_FILE=""
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT_FILE=$2; shift 2 ;;
    *) echo "error: bench_server.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
absolute() { case $1 in '' | /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT_FILE=$(absolute "$OUT_FILE")
LLAMA_SERVER=$(absolute "${LLAMA_SERVER:-}")
ANCHORS=$(absolute "${ANCHORS:-}")
MODEL=$(absolute "${MODEL:-}")
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
PARTS=${PARTS:-a b c d}
THREADS=${THREADS:-16}
SLOTS=${SLOTS:-8}
CTX=${CTX:-2048}
TOKENS=${TOKENS:-128}
REPEAT=${REPEAT:-3}
PROMPT_TOKENS=${PROMPT_TOKENS:-500}
CONV_TOKENS=${CONV_TOKENS:-1000}
TEMPLATE=${TEMPLATE:-zephyr}
PORT=${PORT:-18431}
DEADLINE=${BENCH_SECONDS:-420}
for v in THREADS SLOTS CTX TOKENS REPEAT PROMPT_TOKENS CONV_TOKENS PORT DEADLINE; do
    case ${!v} in '' | *[!0-9]* | 0) echo "error: bench_server.sh: $v must be a positive number, not '${!v}'" >&2; exit 1 ;; esac
done
for p in $PARTS; do
    case $p in a | b | c | d) ;; *) echo "error: bench_server.sh: PARTS holds '$p': the parts are a b c d" >&2; exit 1 ;; esac
done
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
PORT2=$((PORT + 1))
CONV_REPLY=16 # tokens of the first turn's reply in part c
TMP=$(mktemp -d)
LOG=$TMP/log
PIDS=""
# shellcheck disable=SC2317 # the trap calls it
cleanup() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
START=$SECONDS
say() { echo "bench_server: $* ($((SECONDS - START)) s)" >&2; }
CUT_SHORT=""
# more_runs R PART: 0 when run R of PART is to be made (the first always is)
more_runs() {
    [ "$1" -le 1 ] && return 0
    [ $((SECONDS - START)) -lt "$DEADLINE" ] && return 0
    say "$2: past BENCH_SECONDS=$DEADLINE, no run $1"
    CUT_SHORT="$CUT_SHORT $2"
    return 1
}

# ---------------------------------------------------------------------------------------------
# What the benchmark needs: the programs, the model, llama-server.

CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
NEEDED="ch07 ch09 loadgen mksynth gguf_convert"
# llama-server from the anchors, built while the rest is made
ANCHORS_PID=""
if has_part d && [ -z "$LLAMA_SERVER" ] && [ -n "$ANCHORS" ]; then
    if [ ! -r "$ANCHORS/build.sh" ]; then echo "error: bench_server.sh: ANCHORS=$ANCHORS holds no build.sh" >&2; exit 1; fi
    LLAMA_SERVER=$PWD/$BUILD/anchors/llama.cpp/build/bin/llama-server
    if [ ! -x "$LLAMA_SERVER" ]; then
        say "building llama-server from $ANCHORS into $BUILD/anchors (log: $BUILD/anchors.log)"
        mkdir -p "$BUILD/anchors"
        bash "$ANCHORS/build.sh" "$BUILD/anchors" "$CPUS" >"$BUILD/anchors.log" 2>&1 &
        ANCHORS_PID=$!
        PIDS="$PIDS $ANCHORS_PID"
    fi
fi
if [ "${BENCH_MAKE:-1}" != 0 ]; then
    say "building $NEEDED in $BUILD"
    # shellcheck disable=SC2046 # the words are wanted
    if ! make -s BUILD="$BUILD" SHARED="$SHARED" -j"$CPUS" $(printf "$BUILD/%s " $NEEDED) >"$TMP/make.log" 2>&1; then
        cat "$TMP/make.log" >&2
        echo "error: bench_server.sh: the build failed" >&2
        exit 1
    fi
fi
for p in $NEEDED; do
    [ -x "$BUILD/$p" ] || { echo "error: bench_server.sh: $BUILD/$p is not built" >&2; exit 1; }
done
if [ -z "$MODEL" ]; then
    MODEL=$BUILD/models/syn-tinyllama-q4_0.gguf
    if [ ! -e "$MODEL" ]; then
        mkdir -p "$BUILD/models"
        say "making $MODEL (mksynth --preset tinyllama, gguf_convert -t q4_0)"
        bin=$BUILD/models/syn-tinyllama.bin
        if [ ! -e "$bin" ]; then
            "$BUILD/mksynth" --preset tinyllama -o "$bin.tmp" --tokenizer-out "$BUILD/models/tok32000.bin" >&2 &&
                mv "$bin.tmp" "$bin" || { echo "error: bench_server.sh: mksynth failed" >&2; exit 1; }
        fi
        "$BUILD/gguf_convert" -m "$bin" -z "$BUILD/models/tok32000.bin" -o "$MODEL.tmp" -t q4_0 >&2 &&
            mv "$MODEL.tmp" "$MODEL" || { echo "error: bench_server.sh: gguf_convert failed" >&2; exit 1; }
    fi
fi
[ -r "$MODEL" ] || { echo "error: bench_server.sh: MODEL=$MODEL is not a readable file" >&2; exit 1; }
if [ -n "$ANCHORS_PID" ]; then
    wait "$ANCHORS_PID" || { echo "bench_server: the anchors' build failed:" >&2; tail -n 5 "$BUILD/anchors.log" >&2; }
    say "llama-server built"
fi
USE_LLAMA=0
if has_part d; then
    if [ -n "$LLAMA_SERVER" ] && [ -x "$LLAMA_SERVER" ]; then USE_LLAMA=1
    else say "no llama-server (LLAMA_SERVER='$LLAMA_SERVER' is not an executable): its column stays empty"; fi
fi

# ---------------------------------------------------------------------------------------------
# Texts of a given number of tokens.

TEXT=$SHARED/data/tinystories-valid-excerpt.txt
[ -r "$TEXT" ] || TEXT=README.md # the device machine has no $SHARED: any prose will do
tr '\n' ' ' <"$TEXT" | tr -s ' ' >"$TMP/text"
# double the text until it is surely long enough (a token takes at least one byte)
while [ "$(wc -c <"$TMP/text")" -lt $((4 * CONV_TOKENS + 4 * PROMPT_TOKENS + 4096)) ]; do
    cat "$TMP/text" "$TMP/text" >"$TMP/text2" && mv "$TMP/text2" "$TMP/text"
done
count_tokens() { # FILE: tokens of its text, BOS included, in the model's vocabulary
    "$BUILD/ch07" -m "$MODEL" --tokenize -f "$1" 2>/dev/null | grep -c ' -> '
}
# cut_text N OUT: the longest start of the text (whole words) of at most N tokens, BOS included
cut_text() {
    local lo=1 hi hi_bytes mid
    hi_bytes=$(wc -c <"$TMP/text")
    hi=$hi_bytes
    while [ $((hi - lo)) -gt 8 ]; do # bisect on bytes
        mid=$(((lo + hi) / 2))
        head -c "$mid" "$TMP/text" | sed 's/ [^ ]*$//' >"$TMP/cut"
        if [ "$(count_tokens "$TMP/cut")" -le "$1" ]; then lo=$mid; else hi=$mid; fi
    done
    head -c "$lo" "$TMP/text" | sed 's/ [^ ]*$//' >"$2"
}
say "cutting texts of $PROMPT_TOKENS and $CONV_TOKENS tokens"
cut_text "$PROMPT_TOKENS" "$TMP/prompt_body"
cut_text "$CONV_TOKENS" "$TMP/conv_body"
say "texts: $(count_tokens "$TMP/prompt_body") and $(count_tokens "$TMP/conv_body") tokens"

# ---------------------------------------------------------------------------------------------
# Servers.

# health PORT: the status of GET /health (000 when nothing answers)
health() {
    local line
    line=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
        IFS= read -r -t 5 l <&3 && echo "$l") 2>/dev/null)
    case $line in "HTTP/1."?" "[0-9][0-9][0-9]*) echo "${line:9:3}" ;; *) echo 000 ;; esac
}
# start_server NAME PORT COMMAND...: start it in the background, wait for /health == 200 (300 s)
start_server() {
    local name=$1 port=$2 pid i
    shift 2
    if [ "$(health "$port")" != 000 ]; then
        echo "error: bench_server.sh: something already answers on port $port (PORT=...)" >&2; return 1
    fi
    "$@" >"$TMP/$name.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    for ((i = 0; i < 1500; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench_server: $name exited:" >&2; tail -n 20 "$TMP/$name.log" >&2; return 1
        fi
        [ "$(health "$port")" = 200 ] && { say "$name is ready on port $port"; return 0; }
        sleep 0.2
    done
    echo "bench_server: $name did not become ready in 300 s" >&2
    return 1
}
SERVERS="ch09"
start_server ch09 "$PORT" "$BUILD/ch09" --server -m "$MODEL" --port "$PORT" -np "$SLOTS" -t "$THREADS" -c "$CTX" \
    --chat-template "$TEMPLATE" || exit 1
if [ "$USE_LLAMA" = 1 ]; then
    if start_server llama "$PORT2" "$LLAMA_SERVER" -m "$MODEL" --port "$PORT2" -np "$SLOTS" -t "$THREADS" \
        -c $((SLOTS * CTX)) --chat-template "$TEMPLATE"; then
        SERVERS="ch09 llama"
    else
        USE_LLAMA=0
    fi
fi
port_of() { if [ "$1" = ch09 ]; then echo "$PORT"; else echo "$PORT2"; fi; }

# ---------------------------------------------------------------------------------------------
# Measurements: loadgen --json runs, their figures picked out with sed.

RUN=0
# loadgen SERVER ARGS...: run loadgen against it; its JSON in the file it prints (status 1: failed)
loadgen() {
    local server=$1 out
    shift
    RUN=$((RUN + 1))
    out=$TMP/run$RUN.json
    if ! "$BUILD/loadgen" --port "$(port_of "$server")" --timeout 300 --json "$@" >"$out" 2>"$out.err"; then
        { echo "bench_server: loadgen on $server failed: $*" | cut -c 1-300; head -n 5 "$out.err"; } >>"$LOG"
        echo "$out"
        return 1
    fi
    echo "$out"
}
# top FILE KEY: a top-level number of loadgen's JSON
top() { sed -n "s/^  \"$2\": \([^,]*\),\{0,1\}\$/\1/p" "$1" | head -n 1; }
# req FILE CLIENT REQUEST KEY: a number of one request's line
req() { grep "\"client\": $2, \"request\": $3," "$1" | sed -n "s/.*\"$4\": \([^,}]*\).*/\1/p" | head -n 1; }
# record KEY VALUE: one measurement of KEY (repetitions append)
record() { case $2 in '' | null | failed) echo "$1 failed" >>"$TMP/values" ;; *) echo "$1 $2" >>"$TMP/values" ;; esac; }
# value KEY: the median of KEY's measurements, "failed" if one failed, "" if none
value() {
    awk -v k="$1" '$1 == k { if ($2 == "failed") bad = 1; else v[n++] = $2 }
        END { if (bad) { print "failed"; exit } if (!n) exit
              for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              print (n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2) }' "$TMP/values"
}
: >"$TMP/values"
: >"$LOG"

for s in $SERVERS; do # a first request pays for the weights' page faults: not measured
    loadgen "$s" --prompt "Hello" --max-tokens 8 --ignore-eos >/dev/null
done

if has_part a; then
    for ((r = 1; r <= REPEAT; r++)); do
        more_runs "$r" a || break
        for s in $SERVERS; do
            f=$(loadgen "$s" --clients 1 --prompt "Once upon a time" --vary --max-tokens "$TOKENS" --ignore-eos) || f=failed
            if [ "$f" = failed ] || [ ! -s "$f" ]; then record "$s.a1_rate" failed; record "$s.a1_agg" failed
            else record "$s.a1_rate" "$(top "$f" client_tok_s_min)"; record "$s.a1_agg" "$(top "$f" aggregate_tok_s)"; fi
            f=$(loadgen "$s" --clients "$SLOTS" --prompt "Once upon a time" --vary --max-tokens "$TOKENS" --ignore-eos) || f=failed
            if [ "$f" = failed ] || [ ! -s "$f" ]; then record "$s.aN_min" failed; record "$s.aN_agg" failed
            else record "$s.aN_min" "$(top "$f" client_tok_s_min)"; record "$s.aN_agg" "$(top "$f" aggregate_tok_s)"; fi
            say "a: $s run $r: 1 client $(value "$s.a1_rate") tok/s, $SLOTS clients $(value "$s.aN_agg") tok/s (medians so far)"
        done
    done
fi

if has_part b; then
    for ((r = 1; r <= REPEAT; r++)); do
        more_runs "$r" b || break
        printf 'Story %d. ' $((1000 + r)) >"$TMP/prompt$r"
        cat "$TMP/prompt_body" >>"$TMP/prompt$r"
        for s in $SERVERS; do
            # the salt makes each repetition new to every server; 4 tokens, so that one has text
            f=$(loadgen "$s" --endpoint completions --prompt-file "$TMP/prompt$r" --max-tokens 4 --ignore-eos) || f=failed
            if [ "$f" = failed ]; then record "$s.b_ttft" failed; record "$s.b_ptok" failed
            else record "$s.b_ttft" "$(req "$f" 0 0 ttft_ms)"; record "$s.b_ptok" "$(req "$f" 0 0 prompt_tokens)"; fi
        done
        if "$BUILD/ch07" -m "$MODEL" -f "$TMP/prompt$r" -n 1 --temp 0 -t "$THREADS" </dev/null >/dev/null 2>"$TMP/ch07.err"; then
            record ch07.b_ms "$(sed -n 's/.*\[stats\] prompt \([0-9]*\) tok, .*prefill \([0-9.]*\) tok\/s.*/\1 \2/p' "$TMP/ch07.err" |
                awk 'NF == 2 && $2 > 0 { printf "%.3f", $1 / $2 * 1000 }')"
            record ch07.b_ptok "$(sed -n 's/.*\[stats\] prompt \([0-9]*\) tok,.*/\1/p' "$TMP/ch07.err")"
        else
            record ch07.b_ms failed
            tail -n 3 "$TMP/ch07.err" >>"$LOG"
        fi
        say "b: run $r: TTFT ch09 $(value ch09.b_ttft) ms, ch07 prefill $(value ch07.b_ms) ms (medians so far)"
    done
fi

if has_part c; then
    for ((r = 1; r <= REPEAT; r++)); do
        more_runs "$r" c || break
        for s in $SERVERS; do
            tag=$((1000 + 10 * r + ${#s})) # a different conversation for every server and repetition
            printf 'Session %d. ' "$tag" >"$TMP/conv$r$s"
            cat "$TMP/conv_body" >>"$TMP/conv$r$s"
            # the first turn and the follow-up; the follow-up's messages are dumped to send again
            f=$(loadgen "$s" --prompt-file "$TMP/conv$r$s" --followup --requests 2 --followup-prompt "What happened next?" \
                --max-tokens "$CONV_REPLY" --ignore-eos --dump-messages "$TMP/msgs$r$s.json") || f=failed
            if [ "$f" = failed ]; then record "$s.c_follow" failed
            else record "$s.c_follow" "$(req "$f" 0 1 ttft_ms)"; record "$s.c_ptok" "$(req "$f" 0 1 prompt_tokens)"; fi
            # the same conversation, fresh: only its first words differ (same length)
            if [ -s "$TMP/msgs$r$s.json" ]; then
                sed "s/Session $tag\\./Session $((tag + 1000))./" "$TMP/msgs$r$s.json" >"$TMP/fresh$r$s.json"
                f=$(loadgen "$s" --messages-file "$TMP/fresh$r$s.json" --max-tokens "$CONV_REPLY" --ignore-eos) || f=failed
                if [ "$f" = failed ]; then record "$s.c_fresh" failed; else record "$s.c_fresh" "$(req "$f" 0 0 ttft_ms)"; fi
            else
                record "$s.c_fresh" failed
            fi
        done
        say "c: run $r: ch09 follow-up $(value ch09.c_follow) ms, fresh $(value ch09.c_fresh) ms (medians so far)"
    done
fi

# ---------------------------------------------------------------------------------------------
# The table.

# ratio A B [DIGITS]: A ÷ B, or "—"
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0 && a != "failed" && b != "failed") printf "%.*f×", d, a / b; else print "—" }'; }
num() { case $1 in '') echo "—" ;; failed) echo failed ;; *) awk -v x="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, x }' ;; esac; }
ROWS=$TMP/rows
: >"$ROWS"
# row LABEL CH09 LLAMA [ratio DIGITS]: the ratio column is ch09 ÷ llama-server
row() {
    local llama=${3:-}
    [ "$USE_LLAMA" = 1 ] || llama=""
    printf '| %s | %s | %s | %s |\n' "$1" "$(num "$2" "${4:-1}")" "$(num "$llama" "${4:-1}")" "$(ratio "$2" "$llama")" >>"$ROWS"
}
derived() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0 && a != "failed" && b != "failed") printf "%.3f", a / b; else if (a == "failed" || b == "failed") print "failed" }'; }
if has_part a; then
    row "1 client: decode tok/s" "$(value ch09.a1_rate)" "$(value llama.a1_rate)"
    row "1 client: aggregate tok/s (tokens ÷ wall time)" "$(value ch09.a1_agg)" "$(value llama.a1_agg)"
    row "$SLOTS clients: aggregate tok/s" "$(value ch09.aN_agg)" "$(value llama.aN_agg)"
    row "$SLOTS clients ÷ 1 client, aggregate" "$(derived "$(value ch09.aN_agg)" "$(value ch09.a1_agg)")" \
        "$(derived "$(value llama.aN_agg)" "$(value llama.a1_agg)")" 2
    row "slowest of $SLOTS clients ÷ 1 client, decode tok/s" "$(derived "$(value ch09.aN_min)" "$(value ch09.a1_rate)")" \
        "$(derived "$(value llama.aN_min)" "$(value llama.a1_rate)")" 2
fi
if has_part b; then
    n=$(value ch09.b_ptok)
    case $n in '' | failed) n=$(value llama.b_ptok) ;; esac
    row "TTFT, prompt of ${n:-?} tokens (ms)" "$(value ch09.b_ttft)" "$(value llama.b_ttft)"
    row "chapter 7 prefill of the same text, $(value ch07.b_ptok) tokens (ms)" "$(value ch07.b_ms)" ""
    row "TTFT ÷ chapter 7 prefill" "$(derived "$(value ch09.b_ttft)" "$(value ch07.b_ms)")" \
        "$(derived "$(value llama.b_ttft)" "$(value ch07.b_ms)")" 2
fi
if has_part c; then
    n=$(value ch09.c_ptok)
    case $n in '' | failed) n=$(value llama.c_ptok) ;; esac
    row "follow-up turn of a ${n:-?}-token conversation: TTFT (ms)" "$(value ch09.c_follow)" "$(value llama.c_follow)"
    row "the same conversation sent fresh: TTFT (ms)" "$(value ch09.c_fresh)" "$(value llama.c_fresh)"
    row "fresh ÷ follow-up" "$(derived "$(value ch09.c_fresh)" "$(value ch09.c_follow)")" \
        "$(derived "$(value llama.c_fresh)" "$(value llama.c_follow)")" 2
fi
{
    echo "Serving $(basename "$MODEL"): $SLOTS slots, -t $THREADS, $CTX positions per slot, $TEMPLATE template;"
    echo "$TOKENS tokens per reply in (a), greedy with ignore_eos; medians of $REPEAT runs${CUT_SHORT:+ (one run only in part$CUT_SHORT: past BENCH_SECONDS)}; $CPUS CPUs$(
        sed -n 's/^model name[[:space:]]*: */, /p' /proc/cpuinfo 2>/dev/null | head -n 1)."
    echo
    echo "| measurement | llamabook ch09 | llama-server | ch09 ÷ llama-server |"
    echo "|---|---|---|---|"
    cat "$ROWS"
    echo
    echo "Rates: higher is better, times (ms): lower is better; the last column is ch09's figure over llama-server's."
} >"$TMP/table"
if [ -s "$LOG" ]; then echo "bench_server: failures:" >&2; cat "$LOG" >&2; fi
say "done"
cat "$TMP/table"
[ -n "$OUT_FILE" ] && cp "$TMP/table" "$OUT_FILE"
exit 0

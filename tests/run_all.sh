#!/usr/bin/env bash
# tests/run_all.sh — what `make test` runs: the whole suite, in stages.
#
#  1. gcc (or $CC), -Wall -Wextra -Werror: every test, full length.
#  2. clang, -Wall -Wextra -Werror: the build and the quick suite.
#  3. -fsanitize=address,undefined: the quick suite (QUICK=1 shortens long runs).
#  4. SIMD=0: every simd chapter with the plain-C kernels; the agreement tests only (the
#     chain quick, tests/t_ch04.sh in full).
#  5. x86 kernels: every simd chapter's AVX2 path (-march=haswell) against the host build
#     (chapter 4 against chapter 3, the GGUF chapters' logits bit for bit and their kernel
#     check), and the native kernels in the unit tests of chapter 4, of chapter 7's tiles and of
#     chapter 9's sequences.
#  6. ARM64: every simd chapter (and the plain chapter before the first, for its portability
#     check) cross-compiled with NEON (+dotprod), run under qemu: tests/t_ch04.sh,
#     unit_ch04 and unit_tiles, and for each GGUF chapter its logits = the host build's, bit
#     for bit, and its kernel check.
#  7. ThreadSanitizer: every simd chapter, a short generation and teacher-forced logits with
#     several threads on a model of the format it reads; the newest GGUF chapter, 200 tokens
#     with 7 threads on a Q4_0 file; the pool's unit test; and the server's tests
#     (tests/t_server.sh) on the newest GGUF chapter.
#  Stages 5-7 are skipped, visibly, where the CPU, the cross compiler or qemu is missing.
#  The chapters of stages 4-7 are those of chapters/chapters.tsv (its kind and reads columns).
#
# Ends with one line "N passed, N failed, N skipped" over all stages and exits
# non-zero if anything failed. SHARED (../shared) holds the reference data;
# tests that need it are skipped, visibly, when it is absent.
#
#   STAGES="simd0 arm64"   only these stages (names: main clang asan simd0 x86 arm64 tsan;
#                          default all). Without main, the host build is made first (stages
#                          5-7 compare with it and use its tools).
#   BUILD=build            the host build, stage 1's folder
#   STAGE_DIR=build        where the other stages build: STAGE_DIR/clang, /asan, /nosimd,
#                          /avx2, /simd-native, /arm64, /tsan
#   DRY=1                  print each stage's chapters and make targets, build and run nothing
set -u
cd "$(dirname "$0")/.."
export SHARED=${SHARED:-../shared}
CC=${CC:-cc}
JOBS=${JOBS:-2}
BUILD=${BUILD:-build}
STAGE_DIR=${STAGE_DIR:-build}
STAGES=${STAGES:-all}
DRY=${DRY:-0}
. tests/lib.sh # the chapters' table: chapters, chapter_before, ...
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
COUNTS=$(mktemp)
trap 'rm -f "$COUNTS"' EXIT

add_counts() { read -r p f s <"$COUNTS"; TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + f)); TOTAL_SKIP=$((TOTAL_SKIP + s)); }
result() { # result ok|bad|skip NAME [WHY]
    case $1 in
    ok) TOTAL_PASS=$((TOTAL_PASS + 1)); echo "ok    $2" ;;
    bad) TOTAL_FAIL=$((TOTAL_FAIL + 1)); echo "FAIL  $2: $3" ;;
    skip) TOTAL_SKIP=$((TOTAL_SKIP + 1)); echo "skip  $2: $3" ;;
    esac
}

# want NAME: true when stage NAME is to run
want() { [ "$STAGES" = all ] || case " ${STAGES//,/ } " in *" $1 "*) true ;; *) false ;; esac; }

# stage LABEL BUILD_DIR QUICK MAKE_ARGS...: build with warnings as errors, then run the suite.
stage() {
    local label=$1 build=$2 quick=$3; shift 3
    echo "==== stage: $label"
    if [ "$DRY" = 1 ]; then echo "   make all BUILD=$build $*; every tests/t_*.sh, QUICK=$quick"; return; fi
    local log; log=$(mktemp)
    if make -s -j"$JOBS" all WERROR=1 BUILD="$build" SHARED="$SHARED" "$@" >"$log" 2>&1; then
        result ok "$label: build with -Wall -Wextra -Werror"
    else
        result bad "$label: build with -Wall -Wextra -Werror" "$(tail -n 5 "$log" | tr '\n' ' ')"
        rm -f "$log"
        return
    fi
    rm -f "$log"
    echo "0 0 0" >"$COUNTS"
    LABEL=$label COUNTS=$COUNTS BUILD=$build QUICK=$quick bash tests/run.sh
    add_counts
}

# ---- The later stages: the same results from every kernel set, and clean threads ----

SIMD_CHAPTERS=$(chapters kind=simd | tr '\n' ' ')
SIMD_CHAPTERS=${SIMD_CHAPTERS% }
# the plain chapter before the first simd one (3): t_ch04.sh checks its cross build too
LAST_PLAIN=$(chapter_before "$(chapter_first kind=simd)" kind=plain)

# targets DIR NN...: the make targets DIR/chNN
targets() { local dir=$1 nn; shift; for nn in "$@"; do printf '%s ' "$dir/ch$nn"; done; }

# build_only LABEL LOG MAKE_ARGS...: make the given targets with warnings as errors.
build_only() {
    local label=$1 log=$2; shift 2
    if [ "$DRY" = 1 ]; then echo "   $label: make $*"; return 1; fi
    if make -s -j"$JOBS" WERROR=1 SHARED="$SHARED" "$@" >"$log" 2>&1; then
        result ok "$label: build with -Wall -Wextra -Werror"
    else
        result bad "$label: build with -Wall -Wextra -Werror" "$(tail -n 5 "$log" | tr '\n' ' ')"
        return 1
    fi
}

# tests_only LABEL BUILD QUICK GROUP [VAR=VALUE...]: tests/run.sh on one group of tests/t_*.sh.
tests_only() {
    local label=$1 build=$2 quick=$3 group=$4; shift 4
    echo "0 0 0" >"$COUNTS"
    env "$@" LABEL="$label" COUNTS="$COUNTS" BUILD="$build" QUICK="$quick" ONLY="$group" bash tests/run.sh
    add_counts
}

# timed LABEL CMD...: run CMD and print how long the stage took
timed() {
    local label=$1 t0=$SECONDS; shift
    "$@"
    echo "-- $label: $((SECONDS - t0)) s"
}

simd0_stage() {
    echo "==== stage: SIMD=0 (plain-C kernels)"
    local dir=$STAGE_DIR/nosimd log; log=$(mktemp)
    [ "$DRY" = 1 ] && echo "   the simd chapters $SIMD_CHAPTERS with the plain-C kernels: the chain (every line of tests/chain.tsv, quick), t_ch04"
    # every chapter (the chain compares each simd one with the chapter before it)
    if build_only "SIMD=0" "$log" all CC="$CC" SIMD=0 BUILD="$dir"; then
        tests_only "SIMD=0" "$dir" 1 t_chain
        tests_only "SIMD=0" "$dir" 0 t_ch04
    fi
    rm -f "$log"
}

x86_stage() {
    echo "==== stage: x86 SIMD kernels"
    local flags avx2=0
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
    case " $flags " in *" avx2 "*) case " $flags " in *" fma "*) case " $flags " in *" f16c "*) avx2=1 ;; esac ;; esac ;; esac
    if [ "$avx2" = 0 ] && [ "$DRY" != 1 ]; then result skip "x86 SIMD kernels" "this CPU has no AVX2/FMA/F16C (or is not x86)"; return; fi
    local dir=$STAGE_DIR/avx2 native=$STAGE_DIR/simd-native log; log=$(mktemp)
    [ "$DRY" = 1 ] && echo "   the simd chapters $SIMD_CHAPTERS with -march=haswell: t_ch04 and t_gguf against the host build $BUILD, t_unit"
    # the AVX2 path end to end (a native build of an AVX-512 CPU never takes it), and its unit test;
    # t_gguf.sh, given a HOST_BUILD, checks each GGUF chapter's logits against the host's, bit for bit
    # shellcheck disable=SC2046
    if build_only "AVX2 (-march=haswell)" "$log" CC="$CC" ARCH=haswell CFLAGS=-march=haswell BUILD="$dir" \
        $(targets "$dir" $SIMD_CHAPTERS) "$dir/tests/unit_ch04" "$dir/tests/unit_tiles" "$dir/tests/unit_dequant" "$dir/tests/unit_seqs"; then
        tests_only "AVX2 (-march=haswell)" "$dir" 0 t_ch04 HOST_BUILD="$BUILD"
        tests_only "AVX2 (-march=haswell)" "$dir" 0 t_gguf.sh HOST_BUILD="$BUILD"
        tests_only "AVX2 (-march=haswell)" "$dir" 1 t_unit
    fi
    # the native kernels in the unit tests (the Makefile builds unit tests without -march)
    if build_only "native SIMD unit test" "$log" CC="$CC" CFLAGS=-march=native BUILD="$native" \
        "$native/tests/unit_ch04" "$native/tests/unit_tiles" "$native/tests/unit_dequant" "$native/tests/unit_seqs"; then
        tests_only "native SIMD unit test" "$native" 1 t_unit
    fi
    rm -f "$log"
}

arm64_stage() {
    echo "==== stage: ARM64 NEON under qemu"
    local cross=aarch64-linux-gnu-gcc qemu=qemu-aarch64 sysroot=/usr/aarch64-linux-gnu
    local dir=$STAGE_DIR/arm64
    if [ "$DRY" = 1 ]; then
        echo "   the simd chapters $SIMD_CHAPTERS (and ch$LAST_PLAIN) cross-built, under $qemu: t_ch04, and t_gguf against the host build $BUILD"
    else
        if ! command -v "$cross" >/dev/null; then result skip "ARM64 NEON under qemu" "$cross is not installed"; return; fi
        if ! command -v "$qemu" >/dev/null; then result skip "ARM64 NEON under qemu" "$qemu is not installed"; return; fi
    fi
    local log; log=$(mktemp)
    # the chapters with the dot-product extension (sdot); the unit tests without (-march default: plain NEON)
    # shellcheck disable=SC2046
    if build_only "ARM64 (armv8.2-a+dotprod)" "$log" CC="$cross" ARCH=armv8.2-a+dotprod BUILD="$dir" \
        $(targets "$dir" $LAST_PLAIN $SIMD_CHAPTERS) "$dir/tests/unit_ch04" "$dir/tests/unit_tiles" "$dir/tests/unit_dequant"; then
        tests_only "ARM64 under qemu" "$dir" 1 t_ch04 HOST_BUILD="$BUILD" RUNNER="$qemu -L $sysroot"
        tests_only "ARM64 under qemu" "$dir" 1 t_gguf.sh HOST_BUILD="$BUILD" RUNNER="$qemu -L $sysroot"
    fi
    rm -f "$log"
}

tsan_stage() {
    echo "==== stage: ThreadSanitizer"
    # the newest GGUF chapter, for the long run (a simd one: only those are built here)
    local long_ch; long_ch=$(chapters reads=gguf kind=simd | tail -n 1)
    local dir=$STAGE_DIR/tsan log; log=$(mktemp)
    if [ "$DRY" = 1 ]; then
        local nn
        for nn in $SIMD_CHAPTERS; do echo "   ch$nn: generation with 4 threads, logits with 3, on a $(chapter_field "$nn" reads) model"; done
        echo "   ch$long_ch: 200 generated tokens with 7 threads on a Q4_0 GGUF (the newest GGUF chapter)"
    fi
    # shellcheck disable=SC2046
    if build_only "ThreadSanitizer" "$log" CC="$CC" SANITIZE=thread BUILD="$dir" \
        $(targets "$dir" $SIMD_CHAPTERS) "$dir/tests/unit_ch04"; then
        local tmp; tmp=$(mktemp -d)
        export TSAN_OPTIONS="halt_on_error=1 exitcode=66"
        tsan_run() { # tsan_run NAME CMD...: exit status 0 and no report
            local name=$1 rc; shift
            "$@" >"$tmp/out" 2>"$tmp/err"
            rc=$?
            if [ "$rc" -eq 0 ] && ! grep -q 'ThreadSanitizer' "$tmp/err"; then result ok "ThreadSanitizer: $name"
            else result bad "ThreadSanitizer: $name" "exit status $rc: $(grep -m3 -E 'WARNING|SUMMARY|error' "$tmp/err" | tr '\n' ' ')"; fi
        }
        # a model big enough that every step is shared among threads, as a .bin and as a Q4_0 GGUF
        if ! "$BUILD/mksynth" --dim 256 --hidden 768 --layers 2 --heads 8 --kv-heads 4 --vocab 512 --seq-len 256 \
            -o "$tmp/m.bin" --tokenizer-out "$tmp/tok.bin" >/dev/null 2>&1; then
            result bad "ThreadSanitizer: a synthetic model" "$BUILD/mksynth failed"
        else
            "$BUILD/gguf_convert" -m "$tmp/m.bin" -z "$tmp/tok.bin" -o "$tmp/m.gguf" -t q4_0 >/dev/null 2>&1 ||
                rm -f "$tmp/m.gguf"
            local nn model what
            for nn in $SIMD_CHAPTERS; do
                case $(chapter_field "$nn" reads) in
                gguf) model=(-m "$tmp/m.gguf") what="Q4_0 GGUF" ;;
                *) model=(-m "$tmp/m.bin" -z "$tmp/tok.bin") what=".bin" ;;
                esac
                if [ "$what" = "Q4_0 GGUF" ] && [ ! -e "$tmp/m.gguf" ]; then
                    result bad "ThreadSanitizer: ch$nn, a GGUF file" "$BUILD/gguf_convert failed"; continue
                fi
                tsan_run "ch$nn, $what, generation with 4 threads, clean" "$dir/ch$nn" "${model[@]}" \
                    -p "Once upon a time" -n 48 --ignore-eos --temp 0.8 -s 1 -t 4
                tsan_run "ch$nn, $what, teacher-forced logits with 3 threads, clean" "$dir/ch$nn" -m "${model[1]}" -t 3 \
                    --logits "$tmp/l.lgts" --tokens "1 403 407 261 300 301 302 303 304 305 306 307 308 309 310 311"
            done
            # a long run of the newest GGUF chapter: 200 tokens, with more threads (7) than cores, so that
            # workers are descheduled mid-step; Q4_0 so that chapter 6's fetch-ahead runs in every matmul
            if [ -n "$long_ch" ] && [ -e "$tmp/m.gguf" ]; then
                tsan_run "ch$long_ch, Q4_0 GGUF, 200 generated tokens with 7 threads, clean" "$dir/ch$long_ch" \
                    -m "$tmp/m.gguf" -p "Once upon a time" -n 200 --ignore-eos --temp 0.8 -s 1 -t 7
            fi
        fi
        tsan_run "the pool's unit test (20000 handoffs), clean" "$dir/tests/unit_ch04"
        # the server (chapter 9): its acceptor, connection and engine threads through every check of
        # tests/t_server.sh, which fails on any ThreadSanitizer report in a server's output
        if [ -n "$long_ch" ] && build_only "ThreadSanitizer: the server" "$log" CC="$CC" SANITIZE=thread BUILD="$dir" \
            "$dir/loadgen"; then
            tests_only "ThreadSanitizer" "$dir" 1 t_server HOST_BUILD="$BUILD" SERVER_CH="$long_ch"
        fi
        unset TSAN_OPTIONS
        rm -rf "$tmp"
    fi
    rm -f "$log"
}

# ---- The run ----

if want main; then
    stage "$CC" "$BUILD" 0 CC="$CC"
elif [ "$DRY" != 1 ]; then
    # the later stages compare with the host build and use its tools
    echo "==== the host build"
    log=$(mktemp)
    build_only "host build $BUILD" "$log" all CC="$CC" BUILD="$BUILD"
    rm -f "$log"
fi
if want clang; then
    if command -v clang >/dev/null; then
        stage clang "$STAGE_DIR/clang" 1 CC=clang
    else
        result skip "clang: build and quick suite" "clang is not installed"
    fi
fi
want asan && stage "asan+ubsan" "$STAGE_DIR/asan" 1 CC="$CC" SANITIZE=1
want simd0 && timed "SIMD=0 stage" simd0_stage
want x86 && timed "x86 SIMD kernels stage" x86_stage
want arm64 && timed "ARM64 stage" arm64_stage
want tsan && timed "ThreadSanitizer stage" tsan_stage

[ "$DRY" = 1 ] && exit 0
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
[ "$TOTAL_FAIL" -eq 0 ]

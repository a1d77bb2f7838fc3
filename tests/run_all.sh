#!/usr/bin/env bash
# tests/run_all.sh — what `make test` runs: the whole suite, in stages.
#
#  1. gcc (or $CC), -Wall -Wextra -Werror: every test, full length.
#  2. clang, -Wall -Wextra -Werror: the build and the quick suite.
#  3. -fsanitize=address,undefined: the quick suite (QUICK=1 shortens long runs).
#  4. SIMD=0: chapter 4 on with the plain-C kernels; the agreement tests only (the chain
#     quick, tests/t_ch04.sh in full).
#  5. x86 kernels: chapter 4's AVX2 path (-march=haswell) and the native one, against plain C.
#  6. ARM64: chapters 3 and 4 cross-compiled with NEON (+dotprod), run under qemu.
#  7. ThreadSanitizer: chapter 4's threads, a short generation and the pool's unit test.
#  Stages 5-7 are skipped, visibly, where the CPU, the cross compiler or qemu is missing.
#
# Ends with one line "N passed, N failed, N skipped" over all stages and exits
# non-zero if anything failed. SHARED (../shared) holds the reference data;
# tests that need it are skipped, visibly, when it is absent.
set -u
cd "$(dirname "$0")/.."
export SHARED=${SHARED:-../shared}
CC=${CC:-cc}
JOBS=${JOBS:-2}
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

# stage LABEL BUILD_DIR QUICK MAKE_ARGS...: build with warnings as errors, then run the suite.
stage() {
    local label=$1 build=$2 quick=$3; shift 3
    echo "==== stage: $label"
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

stage "$CC" build 0 CC="$CC"
if command -v clang >/dev/null; then
    stage clang build/clang 1 CC=clang
else
    result skip "clang: build and quick suite" "clang is not installed"
fi
stage "asan+ubsan" build/asan 1 CC="$CC" SANITIZE=1

# ---- Chapter 4's stages: the same results from every kernel set, and clean threads ----

# build_only LABEL LOG MAKE_ARGS...: make the given targets with warnings as errors.
build_only() {
    local label=$1 log=$2; shift 2
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
    local log; log=$(mktemp)
    if build_only "SIMD=0" "$log" all CC="$CC" SIMD=0 BUILD=build/nosimd; then
        tests_only "SIMD=0" build/nosimd 1 t_chain
        tests_only "SIMD=0" build/nosimd 0 t_ch04
    fi
    rm -f "$log"
}

x86_stage() {
    echo "==== stage: x86 SIMD kernels"
    local flags avx2=0
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
    case " $flags " in *" avx2 "*) case " $flags " in *" fma "*) case " $flags " in *" f16c "*) avx2=1 ;; esac ;; esac ;; esac
    if [ "$avx2" = 0 ]; then result skip "x86 SIMD kernels" "this CPU has no AVX2/FMA/F16C (or is not x86)"; return; fi
    local log; log=$(mktemp)
    # the AVX2 path end to end (a native build of an AVX-512 CPU never takes it), and its unit test
    if build_only "AVX2 (-march=haswell)" "$log" CC="$CC" ARCH=haswell CFLAGS=-march=haswell BUILD=build/avx2 \
        build/avx2/ch04 build/avx2/tests/unit_ch04; then
        tests_only "AVX2 (-march=haswell)" build/avx2 0 t_ch04 HOST_BUILD=build
        tests_only "AVX2 (-march=haswell)" build/avx2 1 t_unit
    fi
    # the native kernels in the unit test (the Makefile builds unit tests without -march)
    if build_only "native SIMD unit test" "$log" CC="$CC" CFLAGS=-march=native BUILD=build/simd-native \
        build/simd-native/tests/unit_ch04; then
        tests_only "native SIMD unit test" build/simd-native 1 t_unit
    fi
    rm -f "$log"
}

arm64_stage() {
    echo "==== stage: ARM64 NEON under qemu"
    local cross=aarch64-linux-gnu-gcc qemu=qemu-aarch64 sysroot=/usr/aarch64-linux-gnu
    if ! command -v "$cross" >/dev/null; then result skip "ARM64 NEON under qemu" "$cross is not installed"; return; fi
    if ! command -v "$qemu" >/dev/null; then result skip "ARM64 NEON under qemu" "$qemu is not installed"; return; fi
    local log; log=$(mktemp)
    # ch04 with the dot-product extension (sdot); the unit test without (-march default: plain NEON)
    if build_only "ARM64 (armv8.2-a+dotprod)" "$log" CC="$cross" ARCH=armv8.2-a+dotprod BUILD=build/arm64 \
        build/arm64/ch03 build/arm64/ch04 build/arm64/tests/unit_ch04; then
        tests_only "ARM64 under qemu" build/arm64 1 t_ch04 HOST_BUILD=build RUNNER="$qemu -L $sysroot"
    fi
    rm -f "$log"
}

tsan_stage() {
    echo "==== stage: ThreadSanitizer"
    local log; log=$(mktemp)
    if build_only "ThreadSanitizer" "$log" CC="$CC" SANITIZE=thread BUILD=build/tsan build/tsan/ch04 build/tsan/ch05 build/tsan/tests/unit_ch04; then
        local tmp; tmp=$(mktemp -d)
        export TSAN_OPTIONS="halt_on_error=1 exitcode=66"
        tsan_run() { # tsan_run NAME CMD...: exit status 0 and no report
            local name=$1 rc; shift
            "$@" >"$tmp/out" 2>"$tmp/err"
            rc=$?
            if [ "$rc" -eq 0 ] && ! grep -q 'ThreadSanitizer' "$tmp/err"; then result ok "ThreadSanitizer: $name"
            else result bad "ThreadSanitizer: $name" "exit status $rc: $(grep -m3 -E 'WARNING|SUMMARY|error' "$tmp/err" | tr '\n' ' ')"; fi
        }
        if build/mksynth --dim 256 --hidden 768 --layers 2 --heads 8 --kv-heads 4 --vocab 512 --seq-len 256 \
            -o "$tmp/m.bin" --tokenizer-out "$tmp/tok.bin" >/dev/null 2>&1; then
            tsan_run "generation with 4 threads, clean" build/tsan/ch04 -m "$tmp/m.bin" -z "$tmp/tok.bin" \
                -p "Once upon a time" -n 48 --ignore-eos --temp 0.8 -s 1 -t 4
            tsan_run "teacher-forced logits with 3 threads, clean" build/tsan/ch04 -m "$tmp/m.bin" -t 3 \
                --logits "$tmp/l.lgts" --tokens "1 403 407 261 300 301 302 303 304 305 306 307 308 309 310 311"
            if build/gguf_convert -m "$tmp/m.bin" -z "$tmp/tok.bin" -o "$tmp/m.gguf" -t q4_0 >/dev/null 2>&1; then
                tsan_run "chapter 5, Q4_0, 4 threads (workers fetch ahead between steps), clean" build/tsan/ch05 \
                    -m "$tmp/m.gguf" -p "Once upon a time" -n 48 --ignore-eos --temp 0.8 -s 1 -t 4
            else
                result bad "ThreadSanitizer: a GGUF file" "build/gguf_convert failed"
            fi
        else
            result bad "ThreadSanitizer: a synthetic model" "build/mksynth failed"
        fi
        tsan_run "the pool's unit test (20000 handoffs), clean" build/tsan/tests/unit_ch04
        unset TSAN_OPTIONS
        rm -rf "$tmp"
    fi
    rm -f "$log"
}

timed "SIMD=0 stage" simd0_stage
timed "x86 SIMD kernels stage" x86_stage
timed "ARM64 stage" arm64_stage
timed "ThreadSanitizer stage" tsan_stage

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
[ "$TOTAL_FAIL" -eq 0 ]

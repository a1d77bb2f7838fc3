/**
 * @file q8_kernels.h
 * @brief Chapter 4's kernels, shared with chapter 5: the Q8_0 block, its
 * quantizer and dot product, in plain C and SIMD (AVX2, AVX-512, NEON), and
 * the fp32 lane kernels of attention.
 *
 * This is chapters/04_simd_threads.c's code, moved here unchanged (its
 * functions became `static inline`, so that a file that uses only some of
 * them does not warn) so that chapter 5 computes a Q8_0 matmul exactly as
 * chapter 4 does: the same quantized activations and the same sums in the
 * same order, hence the same bits. Read it as part of chapter 4; the rule it
 * follows is explained there (@ref ch04_exact "lanes never split a float sum").
 *
 * It is a header, not a .c file, because it must be compiled with the flags
 * of the chapter that includes it: the Makefile gives chapters 4 and on
 * -march=native -DLB_SIMD=1, and the .c files of src/ are built without
 * them. Built without -march (unit tests, tools), every simd_* function is
 * the plain-C one.
 */
#ifndef LLAMABOOK_Q8_KERNELS_H
#define LLAMABOOK_Q8_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"
#include "model.h"

/*
 * Which kernels this build has is decided at compile time, from the target
 * the compiler was told about: the Makefile passes -march=$(ARCH) (native by
 * default) and -DLB_SIMD=$(SIMD). With SIMD=0, or for a CPU family without a
 * path here, every simd_* function below is chapter 3's plain C.
 */
#ifndef LB_SIMD
#define LB_SIMD 1
#endif
#if LB_SIMD && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX2__) && \
    defined(__F16C__)
#define SIMD_AVX512 1 /* registers of 512 bits: 16 floats */
#elif LB_SIMD && defined(__AVX2__) && defined(__F16C__)
#define SIMD_AVX2 1 /* 256 bits: 8 floats, or 32 bytes */
#elif LB_SIMD && defined(__aarch64__) && defined(__ARM_NEON)
#define SIMD_NEON 1 /* 128 bits: 4 floats, or 16 bytes */
#endif
#if SIMD_AVX512 || SIMD_AVX2
#define SIMD_X86 1
#include <immintrin.h>
#elif SIMD_NEON
#include <arm_neon.h>
#endif

/** The kernels of this build, for --help and -v. */
#if SIMD_AVX512 && defined(__AVX512VNNI__)
#define SIMD_NAME "AVX-512, VNNI"
#elif SIMD_AVX512
#define SIMD_NAME "AVX-512"
#elif SIMD_AVX2 && defined(__AVXVNNI__)
#define SIMD_NAME "AVX2, AVX-VNNI"
#elif SIMD_AVX2
#define SIMD_NAME "AVX2"
#elif SIMD_NEON && defined(__ARM_FEATURE_DOTPROD)
#define SIMD_NAME "NEON, dotprod"
#elif SIMD_NEON
#define SIMD_NAME "NEON"
#else
#define SIMD_NAME "plain C"
#endif

/*
 * Every float operation below must round exactly as chapter 3's does (see
 * the rule in "SIMD kernels"), so a*b+c must stay a multiply and an add:
 * gcc never fuses them in ISO C mode (-std=c11); clang must be told.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Chapter 3's dot_q8 stays as the plain-C path and as the definition the SIMD one is tested against. */
#if defined(__GNUC__)
#define MAYBE_UNUSED __attribute__((unused))
#else
#define MAYBE_UNUSED
#endif

/* ======================================================================== */
/* Q8_0: 32 weights, one scale                                              */
/* ======================================================================== */

enum { QK = 32 }; /* values per Q8_0 block */

/** One Q8_0 block, 34 bytes, laid out as in a GGUF file: value j is d * qs[j]. */
typedef struct {
    uint16_t d;    // the scale, an IEEE half (src/fp16.h)
    int8_t qs[QK]; // the 32 values in units of d
} BlockQ8;
_Static_assert(sizeof(BlockQ8) == 2 + QK, "a Q8_0 block is 34 bytes, no padding");

/**
 * A rounded value as an int8. quantize_q8 makes |r| <= 127, so this is a plain
 * conversion; the clamps only keep a NaN or an infinity (from a non-finite
 * weight, or a scale so tiny that 1/d overflows) from being converted to an
 * integer, which C leaves undefined.
 */
static inline int8_t to_int8(float r) {
    if (!(r > -127.0f)) return r == r ? -127 : 0;
    return r < 127.0f ? (int8_t)r : 127;
}

/**
 * Not part of llama.cpp's bytes: a block holding a NaN gets a NaN scale (the
 * maximum above skips a NaN, and to_int8() makes it 0), so that a NaN weight
 * or activation reaches the logits, where the driver stops with a clear line,
 * instead of quietly becoming a 0. (An infinity needs nothing: its block's
 * scale is infinite, and infinity × 0 is NaN.) Finite blocks are untouched.
 */
static inline void nan_blocks_get_nan_scales(BlockQ8 *out, const float *x, int n) {
    for (int b = 0; b < n / QK; b++)
        for (int j = 0; j < QK; j++)
            if (isnan(x[(size_t)b * QK + j])) {
                out[b].d = 0x7e00; /* an fp16 NaN */
                break;
            }
}

/**
 * Quantize n values (n a multiple of 32) into n / 32 blocks, exactly as
 * llama.cpp's reference quantizer (docs/formats.md, section Q8_0):
 * d = max|x| / 127, id = 1/d (0 for a block of zeros), q = roundf(x * id),
 * all in fp32; only then is d rounded to fp16. (So q is computed with the
 * fp32 d, not the stored one; that is what makes the bytes match.)
 */
static inline void quantize_q8(BlockQ8 *out, const float *x, int n) {
    /* EXERCISE 3.1 BEGIN: the Q8_0 quantizer
     * Task: For each block of 32 values of x: amax = the largest |value|, d = amax / 127,
     *   id = 1 / d (0 when d is 0), q[j] = roundf(x[j] * id) as an int8 (use to_int8()),
     *   then store d as an IEEE half (fp16_from_float()).
     * Contract: n is a multiple of 32; out holds n / 32 blocks. The bytes must be
     *   llama.cpp's (quantize_row_q8_0_ref): everything in fp32, q computed with the fp32
     *   id, not with the stored half; halves round away from zero; a block of zeros is
     *   d = 0 with every q 0.
     * Hint: roundf() rounds halves away from zero, rintf() and nearbyintf() to even.
     *   Rounding d to fp16 first and dividing by that changes a q by one here and there:
     *   close, but not llama.cpp's bytes.
     * Graded: Besides the logits, the probe (tools/grade/probe_03.c) quantizes hand-made
     *   blocks (zeros, an outlier, halves, one sign, a scale that is not a half) and
     *   pseudo-random ones, and compares every byte with llama.cpp's procedure.
     * Stub: (void)out; (void)x; (void)n; (void)to_int8;
     */
    for (int b = 0; b < n / QK; b++) {
        const float *v = x + (size_t)b * QK;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            float a = fabsf(v[j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = fp16_from_float(d);
        for (int j = 0; j < QK; j++) out[b].qs[j] = to_int8(roundf(v[j] * id)); /* half away from zero */
    }
    /* EXERCISE 3.1 END */
    nan_blocks_get_nan_scales(out, x, n);
}

/** The n values that n / 32 blocks stand for: d * q, exact in fp32. */
static inline void dequantize_q8(float *out, const BlockQ8 *in, int n) {
    for (int b = 0; b < n / QK; b++) {
        float d = fp16_to_float(in[b].d);
        for (int j = 0; j < QK; j++) out[(size_t)b * QK + j] = (float)in[b].qs[j] * d;
    }
}

/**
 * The dot product of two rows of @p n_blocks blocks each:
 * Σ_b d_w·d_x·Σ_j q_w[j]·q_x[j]. The inner sum is exact in an int32 (at most
 * 32 × 127² = 516128). The format documents do not fix how the blocks are
 * combined; here they are added left to right in fp32, each as
 * (float)isum * (d_w * d_x), the order of ggml's plain-C Q8_0 × Q8_0 dot
 * product (its SIMD versions order the additions differently again).
 */
static inline MAYBE_UNUSED float dot_q8(const BlockQ8 *w, const BlockQ8 *x, int n_blocks) {
    /* EXERCISE 3.2 BEGIN: the integer dot product
     * Task: Return the sum over the n_blocks blocks of d_w * d_x * (sum over j of
     *   qs_w[j] * qs_x[j]), with the inner sum of 32 byte products in an int32 and the
     *   scales turned back into floats with fp16_to_float().
     * Contract: Add the blocks left to right in a float, each as
     *   (float)isum * (d_w * d_x): the order of ggml's plain-C Q8_0 dot product, which
     *   the logits of this chapter were checked against. 0 for n_blocks == 0.
     * Hint: 32 * 127 * 127 = 516128 does not fit an int16; an int32 holds it exactly,
     *   whatever order the compiler adds the products in. The float part is another
     *   matter: isum * d_w * d_x can differ from it in the last bit, and since the next
     *   matmul rounds its input to Q8_0 again, one bit can move a value to the next
     *   point of the grid and the logits by far more than 1e-4.
     * Graded: Besides the logits, the probe (tools/grade/probe_03.c) checks blocks whose
     *   products are extreme (all 127 times all -127), scales of each block used with
     *   their own block, an empty row, and pseudo-random rows: against the same sum done
     *   in double, then bit for bit in the order above.
     * Stub: (void)w; (void)x; (void)n_blocks; return 0.0f;
     */
    float sum = 0.0f;
    for (int b = 0; b < n_blocks; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK; j++) isum += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
        sum += (float)isum * (fp16_to_float(w[b].d) * fp16_to_float(x[b].d));
    }
    return sum;
    /* EXERCISE 3.2 END */
}

/* ======================================================================== */
/* SIMD kernels                                                             */
/* ======================================================================== */

/*
 * A SIMD register holds several values side by side, its lanes, and one
 * instruction works on all of them at once. The rule of this chapter is
 * that lanes only ever hold independent computations: the products of one
 * block (an integer sum is exact in any order), the scores of several
 * positions, the elements of a vector. A float sum is never split across
 * lanes, because float addition is not associative and a sum taken in
 * another order rounds differently. So every float here is rounded exactly as
 * in chapter 3, and the logits are chapter 3's, bit for bit.
 */

/* ---- Lanes of floats: the few operations the fp32 kernels use --------- */

#if SIMD_X86
/** The largest of the 8 lanes. */
static inline float max_lane_256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
#endif

#if SIMD_AVX512
typedef __m512 VecF;
enum { LANES = 16 };
#define vec_load(p) _mm512_loadu_ps(p)
#define vec_store(p, v) _mm512_storeu_ps(p, v)
#define vec_set(f) _mm512_set1_ps(f)
#define vec_add(a, b) _mm512_add_ps(a, b)
#define vec_mul(a, b) _mm512_mul_ps(a, b)
#define vec_div(a, b) _mm512_div_ps(a, b)
#define vec_max(a, b) _mm512_max_ps(a, b)
#define vec_max_lane(v) _mm512_reduce_max_ps(v)
#elif SIMD_AVX2
typedef __m256 VecF;
enum { LANES = 8 };
#define vec_load(p) _mm256_loadu_ps(p)
#define vec_store(p, v) _mm256_storeu_ps(p, v)
#define vec_set(f) _mm256_set1_ps(f)
#define vec_add(a, b) _mm256_add_ps(a, b)
#define vec_mul(a, b) _mm256_mul_ps(a, b)
#define vec_div(a, b) _mm256_div_ps(a, b)
#define vec_max(a, b) _mm256_max_ps(a, b)
#define vec_max_lane(v) max_lane_256(v)
#elif SIMD_NEON
typedef float32x4_t VecF;
enum { LANES = 4 };
#define vec_load(p) vld1q_f32(p)
#define vec_store(p, v) vst1q_f32(p, v)
#define vec_set(f) vdupq_n_f32(f)
#define vec_add(a, b) vaddq_f32(a, b)
#define vec_mul(a, b) vmulq_f32(a, b)
#define vec_div(a, b) vdivq_f32(a, b)
#define vec_max(a, b) vmaxq_f32(a, b)
#define vec_max_lane(v) vmaxvq_f32(v)
#endif

/* ---- Q8_0 × Q8_0: the integer dot product ------------------------------ */

#if SIMD_X86
/** An IEEE half to float: one F16C instruction (exact, like fp16_to_float). */
static inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i load_qs(const BlockQ8 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

/**
 * The 32 byte products of one block pair, in 8 int32 lanes of 4 products
 * each. The instructions multiply an *unsigned* byte by a signed one, so the
 * sign of w moves onto x first: w·x = |w| · (x·sign(w)); neither is ever
 * -128 (the quantizer clamps to ±127), so negating cannot overflow. VNNI does
 * the rest in one instruction; without it, pairs are summed into int16 (at
 * most 2·127² = 32258, no overflow) and pairs of those into int32.
 */
static inline __m256i block_products(__m256i w, __m256i x) {
    __m256i w_abs = _mm256_sign_epi8(w, w), x_signed = _mm256_sign_epi8(x, w);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w_abs, x_signed);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w_abs, x_signed);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w_abs, x_signed), _mm256_set1_epi16(1));
#endif
}

/** Eight registers of 8 int32 lanes -> one register whose lane j is the sum of register j. */
static inline __m256i sum_8x8(const __m256i s[8]) {
    __m256i s01 = _mm256_hadd_epi32(s[0], s[1]), s23 = _mm256_hadd_epi32(s[2], s[3]);
    __m256i s45 = _mm256_hadd_epi32(s[4], s[5]), s67 = _mm256_hadd_epi32(s[6], s[7]);
    __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
    /* each 128-bit half of s0123 now holds partial sums of registers 0..3: add the halves */
    return _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20),
                            _mm256_permute2x128_si256(s0123, s4567, 0x31));
}

/** The sum of the 8 int32 lanes of one register. */
static inline int32_t sum_lanes(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_hadd_epi32(s, s);
    return _mm_cvtsi128_si32(_mm_hadd_epi32(s, s));
}

/**
 * dot_q8 with SIMD; @p xd holds the scales of x as floats. Eight blocks at a
 * time: their integer sums (exact) and the products isum·(d_w·d_x) (one
 * rounding each, as in dot_q8) are computed in the lanes, then added into
 * the sum one by one, left to right, exactly as dot_q8 adds them.
 */
static inline float simd_dot_q8(const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    /* EXERCISE 4.2 BEGIN: the SIMD Q8_0 dot product
     * Task: dot_q8() with SIMD, for the kernels this build compiles (`build/ch04 -n 0 -v`
     *   names them: this x86 version serves AVX2 and AVX-512, the next one NEON; the
     *   plain-C build just calls dot_q8()). Blocks in groups of 8 (NEON: 4):
     *   their integer sums in lanes with block_products() and sum_8x8(), the products
     *   isum * (d_w * d_x) in lanes (the weight scales with _mm256_cvtph_ps(), x's scales
     *   from xd); then add those products to the sum one at a time, in block order; the
     *   last n_blocks % 8 blocks one by one, as dot_q8() does.
     * Contract: The result must equal dot_q8(w, x, n_blocks) bit for bit, for every
     *   n_blocks >= 0: xd[b] is x[b]'s scale as a float. Lanes never split a float sum
     *   (see the chapter's rule): integer sums may be added in any order, float ones
     *   only in dot_q8()'s.
     * Hint: A horizontal add of the 8 products (hadd, or a reduce intrinsic) sums them
     *   in another order: close, and not the same bits.
     * Graded: The probe (tools/grade/probe_04.c) compares simd_dot_q8() with dot_q8() on
     *   rows of 0 to 40 blocks (every remainder of 8), pseudo-random and extreme, bit for
     *   bit; the logits must equal the unmodified chapter's exactly.
     * Stub: (void)w; (void)x; (void)xd; (void)n_blocks; return 0.0f;
     */
    float sum = 0.0f;
    int b = 0;
    for (; b + 8 <= n_blocks; b += 8) {
        __m256i s[8];
        for (int j = 0; j < 8; j++) s[j] = block_products(load_qs(w + b + j), load_qs(x + b + j));
        __m256 isum = _mm256_cvtepi32_ps(sum_8x8(s)); /* exact: |isum| <= 516128 < 2^24 */
        __m128i dw_half = _mm_setr_epi16((short)w[b].d, (short)w[b + 1].d, (short)w[b + 2].d, (short)w[b + 3].d,
                                         (short)w[b + 4].d, (short)w[b + 5].d, (short)w[b + 6].d, (short)w[b + 7].d);
        __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(dw_half), _mm256_loadu_ps(xd + b));
        float products[8];
        _mm256_storeu_ps(products, _mm256_mul_ps(isum, scales));
        for (int j = 0; j < 8; j++) sum += products[j];
    }
    for (; b < n_blocks; b++) /* the last n_blocks % 8 blocks one at a time */
        sum += (float)sum_lanes(block_products(load_qs(w + b), load_qs(x + b))) * (half_to_float(w[b].d) * xd[b]);
    return sum;
    /* EXERCISE 4.2 END */
}

/*
 * Eight rows at once, one per lane. A matmul is many dot products with the
 * same input, so the lanes can also hold eight *rows*: lane k is row k's sum,
 * and each block's product is added into it, block after block, exactly as
 * dot_q8 adds them, so every lane rounds like chapter 3's loop (the rule holds:
 * no float sum is split). This is faster than one row at a time, measured on
 * the 16-core machine: the eight sums are added by one vector instruction
 * instead of eight dependent scalar ones, each block of x is loaded once for
 * eight rows, and the 8 scales come from 8 rows in one go.
 */

/**
 * Ask for the next eight rows ahead of time, in order. Eight rows read side
 * by side are eight streams, and the hardware prefetcher follows few of them
 * (Intel documents its L2 streamer as following one forward stream per 4 KiB
 * page; eight Q8_0 rows of TinyLlama's width span five pages), so most rows
 * would wait on DRAM. The *next* eight rows, though, are one contiguous run
 * of bytes: the kernel
 * fetches them linearly, one equal slice per block column (slice @p b, of
 * @p slice_bytes), so they are in cache when their turn comes. Measured with
 * one thread reading from DRAM, this doubled the 8-row kernels' speed (Q8_0
 * 19 -> 36 GB/s, Q4_0 14 -> 27); past the last row the fetch is harmless
 * (prefetches never fault).
 */
static inline void prefetch_slice(const uint8_t *next_rows, size_t slice_bytes, int b) {
    const char *p = (const char *)next_rows + slice_bytes * (size_t)b;
    for (size_t at = 0; at < slice_bytes; at += 64) _mm_prefetch(p + at, _MM_HINT_T0); /* 64: a cache line */
}

/**
 * The fp16 scales at @p p, p + @p row_bytes, ... (8 rows), as 8 halves.
 * With AVX-512, one gather instruction loads the 8 words (and the 2 bytes
 * after each, which vpmovdw drops). Without it they are assembled in two
 * 64-bit integers, which costs loads and integer instructions: on AVX2-only
 * chips gathers can be slow (microcoded on AMD's Zen 2 and 3), and 8 inserts
 * would queue on the one port that moves data between lanes, the port that
 * sum_8x8 also needs.
 */
static inline __m128i halves_of_8_rows(const uint8_t *p, size_t row_bytes) {
#if defined(__AVX512VL__)
    if (row_bytes <= (1u << 27)) { /* 7 rows' offset fits the gather's int32 (always, for real models) */
        const int r = (int)row_bytes;
        const __m256i offsets = _mm256_setr_epi32(0, r, 2 * r, 3 * r, 4 * r, 5 * r, 6 * r, 7 * r);
        return _mm256_cvtepi32_epi16(_mm256_i32gather_epi32((const int *)(const void *)p, offsets, 1));
    }
#endif
    uint64_t lo = 0, hi = 0;
    for (int k = 0; k < 4; k++) {
        uint16_t a, b;
        memcpy(&a, p + row_bytes * (size_t)k, 2);
        memcpy(&b, p + row_bytes * (size_t)(k + 4), 2);
        lo |= (uint64_t)a << (16 * k);
        hi |= (uint64_t)b << (16 * k);
    }
    return _mm_set_epi64x((long long)hi, (long long)lo);
}

/** Fully unroll the next loop (gcc and clang): a loop over 8 registers must not live in memory. */
#define UNROLL_8 _Pragma("GCC unroll 8")

/**
 * out[k] = simd_dot_q8(w + k·n_blocks, x, xd, n_blocks) for k = 0..7, bit for
 * bit: rows k of a matrix of rows of @p n_blocks blocks, starting at @p w.
 */
static inline void simd_dot_q8_8rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    const size_t row_bytes = (size_t)n_blocks * sizeof(BlockQ8);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < n_blocks; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ8), b);
        __m256i xq = load_qs(x + b), s[8];
        UNROLL_8 for (int k = 0; k < 8; k++) s[k] = block_products(load_qs((const BlockQ8 *)(col + row_bytes * (size_t)k)), xq);
        __m256 isum = _mm256_cvtepi32_ps(sum_8x8(s)); /* lane k: block b of row k, exact */
        __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(halves_of_8_rows(col, row_bytes)), _mm256_set1_ps(xd[b]));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(isum, scales));
    }
    _mm256_storeu_ps(out, sum);
}
#elif SIMD_NEON
/** An IEEE half to float: the CPU's own conversion (exact). */
static inline float half_to_float(uint16_t h) {
    __fp16 f;
    memcpy(&f, &h, sizeof f);
    return (float)f;
}

/** The 32 byte products of one block pair, in 4 int32 lanes of 8 products each. */
static inline int32x4_t block_products(const BlockQ8 *w, const BlockQ8 *x) {
    int8x16_t w0 = vld1q_s8(w->qs), w1 = vld1q_s8(w->qs + 16);
    int8x16_t x0 = vld1q_s8(x->qs), x1 = vld1q_s8(x->qs + 16);
#if defined(__ARM_FEATURE_DOTPROD) /* SDOT: 4 byte products summed into each int32 lane */
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else /* bytes times bytes into int16 (exact), then pairs of those added into int32 */
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
    s = vpadalq_s16(s, vmull_s8(vget_high_s8(w0), vget_high_s8(x0)));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
    return vpadalq_s16(s, vmull_s8(vget_high_s8(w1), vget_high_s8(x1)));
#endif
}

/** dot_q8 with SIMD, four blocks at a time; the same arithmetic as the x86 version above. */
static inline float simd_dot_q8(const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    /* EXERCISE 4.2 BEGIN (NEON: four blocks at a time, with vpaddq_s32 and vcvt_f32_f16)
     * Stub: (void)w; (void)x; (void)xd; (void)n_blocks; return 0.0f;
     */
    float sum = 0.0f;
    int b = 0;
    for (; b + 4 <= n_blocks; b += 4) {
        int32x4_t s01 = vpaddq_s32(block_products(w + b, x + b), block_products(w + b + 1, x + b + 1));
        int32x4_t s23 = vpaddq_s32(block_products(w + b + 2, x + b + 2), block_products(w + b + 3, x + b + 3));
        float32x4_t isum = vcvtq_f32_s32(vpaddq_s32(s01, s23)); /* lane j: block b + j, exact */
        uint16_t dw_half[4] = {w[b].d, w[b + 1].d, w[b + 2].d, w[b + 3].d};
        float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(dw_half)));
        float products[4];
        vst1q_f32(products, vmulq_f32(isum, vmulq_f32(dw, vld1q_f32(xd + b))));
        for (int j = 0; j < 4; j++) sum += products[j];
    }
    for (; b < n_blocks; b++)
        sum += (float)vaddvq_s32(block_products(w + b, x + b)) * (half_to_float(w[b].d) * xd[b]);
    return sum;
    /* EXERCISE 4.2 END */
}

/** Four rows at once, one per lane, as the x86 simd_dot_q8_8rows: lane k is row k's sum, blocks in order. */
static inline void dot_q8_4rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_blocks; b++) {
        const BlockQ8 *r[4] = {w + b, w + n_blocks + b, w + 2 * n_blocks + b, w + 3 * n_blocks + b};
        int32x4_t s01 = vpaddq_s32(block_products(r[0], x + b), block_products(r[1], x + b));
        int32x4_t s23 = vpaddq_s32(block_products(r[2], x + b), block_products(r[3], x + b));
        float32x4_t isum = vcvtq_f32_s32(vpaddq_s32(s01, s23)); /* lane k: block b of row k, exact */
        uint16_t dw_half[4] = {r[0]->d, r[1]->d, r[2]->d, r[3]->d};
        float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(dw_half)));
        sum = vaddq_f32(sum, vmulq_f32(isum, vmulq_f32(dw, vdupq_n_f32(xd[b]))));
    }
    vst1q_f32(out, sum);
}

/** out[k] = simd_dot_q8(w + k·n_blocks, x, xd, n_blocks) for k = 0..7, bit for bit. */
static inline void simd_dot_q8_8rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    dot_q8_4rows(out, w, x, xd, n_blocks);
    dot_q8_4rows(out + 4, w + 4 * (size_t)n_blocks, x, xd, n_blocks);
}
#else
static inline float simd_dot_q8(const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    /* EXERCISE 4.2 BEGIN (plain C, SIMD=0 or another CPU: chapter 3's dot product)
     * Stub: (void)w; (void)x; (void)xd; (void)n_blocks; return 0.0f;
     */
    (void)xd;
    return dot_q8(w, x, n_blocks);
    /* EXERCISE 4.2 END */
}

/** out[k] = dot_q8 of row k, for the 8 rows of @p n_blocks blocks from @p w. */
static inline void simd_dot_q8_8rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd, int n_blocks) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q8(w + (size_t)k * (size_t)n_blocks, x, xd, n_blocks);
}
#endif

/* ---- Quantizing the activations: the same bytes as quantize_q8 --------- */

#if SIMD_X86
/**
 * to_int8(roundf(v)) on 8 lanes. The rounding instructions round halves to
 * even (2.5 -> 2, where roundf gives 3), so: take the truncation t, and add
 * ±1 (v's sign) where |v - t| >= 0.5 (v - t is exact). A NaN lane becomes 0
 * and the rest is clamped to ±127, as in to_int8().
 */
static inline __m256i round_to_int8_range(__m256 v) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign_bit), _mm256_set1_ps(1.0f));
    __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

/** quantize_q8, 8 lanes at a time (256 bits are plenty: this runs once per matmul). */
static inline void simd_quantize_q8(BlockQ8 *out, const float *x, int n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int b = 0; b < n / QK; b++) {
        const float *v = x + (size_t)b * QK;
        __m256 xs[4], amax = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            xs[j] = _mm256_loadu_ps(v + 8 * j);
            amax = _mm256_max_ps(_mm256_and_ps(xs[j], abs_mask), amax); /* skips a NaN lane, as quantize_q8 */
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(xs[j], xs[j], _CMP_UNORD_Q));
        }
        float d = max_lane_256(amax) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = _mm256_movemask_ps(nan) ? 0x7e00 : fp16_from_float(d); /* NaN scale: nan_blocks_get_nan_scales */
        __m256i q[4];
        for (int j = 0; j < 4; j++) q[j] = round_to_int8_range(_mm256_mul_ps(xs[j], _mm256_set1_ps(id)));
        /* int32 -> int8 by two saturating packs; they interleave 128-bit halves, the permute restores the order */
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].qs, bytes);
    }
}
#elif SIMD_NEON
/** quantize_q8, 4 lanes at a time. NEON can round halves away from zero itself (FCVTAS); a NaN becomes 0. */
static inline void simd_quantize_q8(BlockQ8 *out, const float *x, int n) {
    for (int b = 0; b < n / QK; b++) {
        const float *v = x + (size_t)b * QK;
        float32x4_t xs[8], amax = vdupq_n_f32(0.0f);
        uint32x4_t numbers = vdupq_n_u32(0xffffffffu); /* all ones while no lane is NaN */
        for (int j = 0; j < 8; j++) {
            xs[j] = vld1q_f32(v + 4 * j);
            amax = vmaxnmq_f32(amax, vabsq_f32(xs[j])); /* maxNum skips a NaN lane */
            numbers = vandq_u32(numbers, vceqq_f32(xs[j], xs[j]));
        }
        float d = vmaxnmvq_f32(amax) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = vminvq_u32(numbers) ? fp16_from_float(d) : 0x7e00; /* NaN scale: nan_blocks_get_nan_scales */
        for (int j = 0; j < 8; j += 2) { /* saturating narrowing: int32 -> int16 -> int8 */
            int32x4_t q0 = vcvtaq_s32_f32(vmulq_n_f32(xs[j], id)), q1 = vcvtaq_s32_f32(vmulq_n_f32(xs[j + 1], id));
            int8x8_t bytes = vqmovn_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1)));
            vst1_s8(out[b].qs + 4 * j, vmax_s8(bytes, vdup_n_s8(-127)));
        }
    }
}
#else
static inline void simd_quantize_q8(BlockQ8 *out, const float *x, int n) { quantize_q8(out, x, n); }
#endif

/* ---- fp32: attention ---------------------------------------------------- */

enum { KEY_TILE = 64 }; /* positions per tile of the transposed key cache (a multiple of 4 × LANES) */

/** Tiles of KEY_TILE positions that the key cache has per kv head and layer. */
static inline size_t key_tiles(const ModelConfig *c) { return ((size_t)c->seq_len + KEY_TILE - 1) / KEY_TILE; }

#if SIMD_AVX512 || SIMD_AVX2 || SIMD_NEON
/**
 * att[t] = (q · k_t) / scale for positions t = 0..n-1, from keys stored
 * transposed in tiles of KEY_TILE positions: kt[(t / KEY_TILE) * head_size *
 * KEY_TILE + i * KEY_TILE + t % KEY_TILE] is element i of position t's key.
 * Lane j of a register is one position; it sums q[i]·k[i] over i in chapter
 * 3's order, so every score is chapter 3's. Four registers side by side keep
 * the adder busy while each waits for its previous sum.
 */
static inline void simd_attention_scores(float *att, const float *q, const float *kt, int n, int head_size, float scale) {
    const VecF vscale = vec_set(scale);
    for (int t0 = 0; t0 < n; t0 += KEY_TILE) {
        const float *tile = kt + (size_t)t0 * (size_t)head_size;
        int m = n - t0 < KEY_TILE ? n - t0 : KEY_TILE, t = 0;
        for (; t + 4 * LANES <= m; t += 4 * LANES) {
            VecF s0 = vec_set(0.0f), s1 = s0, s2 = s0, s3 = s0;
            for (int i = 0; i < head_size; i++) {
                const float *row = tile + (size_t)i * KEY_TILE + t;
                VecF qi = vec_set(q[i]);
                s0 = vec_add(s0, vec_mul(qi, vec_load(row)));
                s1 = vec_add(s1, vec_mul(qi, vec_load(row + LANES)));
                s2 = vec_add(s2, vec_mul(qi, vec_load(row + 2 * LANES)));
                s3 = vec_add(s3, vec_mul(qi, vec_load(row + 3 * LANES)));
            }
            vec_store(att + t0 + t, vec_div(s0, vscale));
            vec_store(att + t0 + t + LANES, vec_div(s1, vscale));
            vec_store(att + t0 + t + 2 * LANES, vec_div(s2, vscale));
            vec_store(att + t0 + t + 3 * LANES, vec_div(s3, vscale));
        }
        for (; t + LANES <= m; t += LANES) {
            VecF s = vec_set(0.0f);
            for (int i = 0; i < head_size; i++)
                s = vec_add(s, vec_mul(vec_set(q[i]), vec_load(tile + (size_t)i * KEY_TILE + t)));
            vec_store(att + t0 + t, vec_div(s, vscale));
        }
        for (; t < m; t++) {
            float score = 0.0f;
            for (int i = 0; i < head_size; i++) score += q[i] * tile[(size_t)i * KEY_TILE + t];
            att[t0 + t] = score / scale;
        }
    }
}

/** y += a·x, lane j being element i + j: a multiply and an add, as chapter 3 (no fused multiply-add). */
static inline void simd_axpy(float *y, float a, const float *x, int n) {
    VecF va = vec_set(a);
    int i = 0;
    for (; i + LANES <= n; i += LANES) vec_store(y + i, vec_add(vec_load(y + i), vec_mul(va, vec_load(x + i))));
    for (; i < n; i++) y[i] += a * x[i];
}

/** The largest of x[0..n-1] (n >= 1); the order of comparisons does not change a maximum. */
static inline float simd_max(const float *x, int n) {
    VecF m = vec_set(x[0]);
    int i = 0;
    for (; i + LANES <= n; i += LANES) m = vec_max(m, vec_load(x + i));
    float max = vec_max_lane(m);
    for (; i < n; i++)
        if (x[i] > max) max = x[i];
    return max;
}
#else
/* Without SIMD: chapter 3's loops. */
static inline void simd_attention_scores(float *att, const float *q, const float *kt, int n, int head_size, float scale) {
    for (int t = 0; t < n; t++) {
        const float *tile = kt + (size_t)(t / KEY_TILE) * (size_t)head_size * KEY_TILE;
        float score = 0.0f;
        for (int i = 0; i < head_size; i++) score += q[i] * tile[(size_t)i * KEY_TILE + t % KEY_TILE];
        att[t] = score / scale;
    }
}

static inline void simd_axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static inline float simd_max(const float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    return max;
}
#endif

#endif

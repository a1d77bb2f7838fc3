/**
 * @file tiles.h
 * @brief Chapter 7's register tiles: a few rows of a weight matrix times a few
 * positions' inputs at once, for every weight type chapter 5 reads, each
 * output bit for bit what chapter 5's one-position kernel gives it.
 *
 * Header-only, like src/quants.h, whose block formats and kernels it builds
 * on: each chapter, tool and unit test compiles it with its own flags.
 *
 * @section tile_idea Why a tile
 * A one-position kernel reads each weight once and uses it once: two bytes
 * of memory traffic per multiply-add at 8 bits, and the memory sets its
 * speed. A tile of R rows × P positions loads each weight block once and
 * multiplies it with P inputs, and loads each input block once for R rows:
 * R·P products for R + P loads. The tile sizes come from the register count
 * (16 vector registers with AVX2 and NEON's 32 halved for pairs, 32 with
 * AVX-512): the weights of the R rows, decoded, and one accumulator per
 * output must fit, with a few registers left for the input and the scales.
 *
 * @section tile_exact Same numbers
 * Every kernel of src/quants.h adds its float terms in the order of its
 * plain-C definition (one term per block, left to right; 16 interleaved
 * partial sums for F32 and F16), whatever its SIMD width. A tile keeps one
 * accumulator per (row, position) and adds the same terms in the same order,
 * so each output equals the one-position kernel's bit for bit; only the
 * order in which the outputs are produced differs. The integer sums inside
 * a block are exact and may be taken in any order.
 *
 * @section tile_api The interface
 * tile_for(type) gives the tile of a weight type on this build: its rows R,
 * positions P and function, or rows = 0 where there is none. The function
 * computes out[p·R + r] = row r · input p for r < R, p < P, from R rows of
 * @c row_bytes each starting at @c rows, and P TileInput (each position's
 * input, rounded as chapter 5's matmul rounds it). The plain-C tiles
 * (tile_*_c) are the definitions the SIMD ones are tested against, and the
 * tiles of builds without SIMD.
 */
#ifndef LLAMABOOK_TILES_H
#define LLAMABOOK_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "quants.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* as in quants.h: the tiles must round as the kernels do */
#endif

/** One position's input to a matmul, in every form a weight type may want (those it does not need may be NULL). */
typedef struct {
    const float *x;      // (n_in)        F32 rows
    const BlockQ8 *xq;   // (n_in / 32)   Q8_0, Q5_0 and Q4_0 rows
    const float *xd;     // (n_in / 32)   the scales of xq as floats
    const int16_t *xs;   // (n_in / 32)   the sum of each block of xq's quants
    const BlockQ8_K *xk; // (n_in / 256)  Q4_K and Q6_K rows
    const float *xh;     // (n_in)        the input rounded to fp16, F16 rows
} TileInput;

/** out[p·R + r] = row r · input p: R rows of @p row_bytes from @p rows, P inputs of @p n_in values. */
typedef void TileFn(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in);

/** A tile kernel: @c rows × @c positions outputs per call (rows = 0: the type has none here). */
typedef struct {
    int rows, positions;
    TileFn *fn;
} Tile;

enum { TILE_MAX_ROWS = 16, TILE_MAX_POSITIONS = 8 }; /* the largest tile of any build: the callers' buffers */

/* ======================================================================== */
/* The definitions, in plain C                                              */
/* ======================================================================== */

/*
 * Each weight block is decoded once for the tile's rows, then multiplied
 * with every position's block: the reuse the SIMD tiles make in registers,
 * here in a small array. The float terms are those of dot_*_c, in its order.
 */
enum { TILE_C_ROWS = 4, TILE_C_POSITIONS = 4 };

/** The three types with Q8_0 inputs: sum += (float)isum_b · (d_w · d_x), block after block. */
#define TILE_Q_Q8_0_C(name, Block, unpack)                                                                         \
    static inline void name(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {  \
        float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};                                                          \
        int8_t q[TILE_C_ROWS][QK];                                                                                 \
        float dw[TILE_C_ROWS];                                                                                     \
        for (int b = 0; b < n_in / QK; b++) {                                                                      \
            for (int r = 0; r < TILE_C_ROWS; r++) {                                                                \
                const Block *blk = (const Block *)(const void *)(rows + row_bytes * (size_t)r) + b;                \
                unpack(blk, q[r]);                                                                                 \
                dw[r] = fp16_to_float(blk->d);                                                                     \
            }                                                                                                      \
            for (int p = 0; p < TILE_C_POSITIONS; p++)                                                             \
                for (int r = 0; r < TILE_C_ROWS; r++)                                                              \
                    acc[p][r] += (float)dot_i8(q[r], in[p].xq[b].qs, QK) * (dw[r] * in[p].xd[b]);                  \
        }                                                                                                          \
        for (int p = 0; p < TILE_C_POSITIONS; p++)                                                                 \
            for (int r = 0; r < TILE_C_ROWS; r++) out[p * TILE_C_ROWS + r] = acc[p][r];                            \
    }

/** A Q8_0 block is its own unpacked form. */
static inline void unpack_q8_0(const BlockQ8 *b, int8_t q[QK]) { memcpy(q, b->qs, QK); }

TILE_Q_Q8_0_C(tile_q8_0_c, BlockQ8, unpack_q8_0)
TILE_Q_Q8_0_C(tile_q5_0_c, BlockQ5_0, unpack_q5_0)
TILE_Q_Q8_0_C(tile_q4_0_c, BlockQ4_0, unpack_q4_0)
#undef TILE_Q_Q8_0_C

/** Q4_K: per super-block, sum += d·(float)isum − dmin·(float)imin, as dot_q4_K_c. */
static inline void tile_q4_K_c(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};
    uint8_t q[TILE_C_ROWS][QK_K];
    int sc[TILE_C_ROWS][8], m[TILE_C_ROWS][8];
    for (int b = 0; b < n_in / QK_K; b++) {
        for (int r = 0; r < TILE_C_ROWS; r++) {
            const BlockQ4_K *blk = (const BlockQ4_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
            unpack_q4_K(blk, q[r]);
            for (int j = 0; j < 8; j++) q4_K_scale_min(blk->scales, j, &sc[r][j], &m[r][j]);
        }
        for (int p = 0; p < TILE_C_POSITIONS; p++) {
            const BlockQ8_K *x = in[p].xk + b;
            for (int r = 0; r < TILE_C_ROWS; r++) {
                const BlockQ4_K *blk = (const BlockQ4_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
                int32_t isum = 0, imin = 0;
                for (int j = 0; j < 8; j++) {
                    int32_t s = 0;
                    for (int l = 0; l < 32; l++) s += (int32_t)q[r][32 * j + l] * x->qs[32 * j + l];
                    isum += sc[r][j] * s;
                    imin += m[r][j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
                }
                float d = fp16_to_float(blk->d) * x->d, dmin = fp16_to_float(blk->dmin) * x->d;
                acc[p][r] += d * (float)isum - dmin * (float)imin;
            }
        }
    }
    for (int p = 0; p < TILE_C_POSITIONS; p++)
        for (int r = 0; r < TILE_C_ROWS; r++) out[p * TILE_C_ROWS + r] = acc[p][r];
}

/** Q6_K: per super-block, sum += d·d_x·(float)isum, as dot_q6_K_c. */
static inline void tile_q6_K_c(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};
    int8_t q[TILE_C_ROWS][QK_K];
    for (int b = 0; b < n_in / QK_K; b++) {
        for (int r = 0; r < TILE_C_ROWS; r++)
            unpack_q6_K((const BlockQ6_K *)(const void *)(rows + row_bytes * (size_t)r) + b, q[r]);
        for (int p = 0; p < TILE_C_POSITIONS; p++) {
            const BlockQ8_K *x = in[p].xk + b;
            for (int r = 0; r < TILE_C_ROWS; r++) {
                const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
                int32_t isum = 0;
                for (int g = 0; g < QK_K / 16; g++) isum += blk->scales[g] * dot_i8(q[r] + 16 * g, x->qs + 16 * g, 16);
                acc[p][r] += fp16_to_float(blk->d) * x->d * (float)isum;
            }
        }
    }
    for (int p = 0; p < TILE_C_POSITIONS; p++)
        for (int r = 0; r < TILE_C_ROWS; r++) out[p * TILE_C_ROWS + r] = acc[p][r];
}

/**
 * F32 and F16: per output the 16 partial sums of dot_f32_c (sum j takes the
 * elements i ≡ j mod 16), added left to right, then the tail. The weights of
 * a step of 16 are read (for F16: widened) once for all positions.
 */
#define TILE_FLOAT_C(name, Weight, widen, field)                                                                   \
    static inline void name(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {  \
        float part[TILE_C_POSITIONS][TILE_C_ROWS][FLOAT_LANES] = {{{0}}}, wf[FLOAT_LANES];                         \
        int i = 0;                                                                                                 \
        for (; i + FLOAT_LANES <= n_in; i += FLOAT_LANES)                                                          \
            for (int r = 0; r < TILE_C_ROWS; r++) {                                                                \
                const Weight *w = (const Weight *)(const void *)(rows + row_bytes * (size_t)r);                    \
                for (int j = 0; j < FLOAT_LANES; j++) wf[j] = widen(w[i + j]);                                     \
                for (int p = 0; p < TILE_C_POSITIONS; p++)                                                         \
                    for (int j = 0; j < FLOAT_LANES; j++) part[p][r][j] += wf[j] * in[p].field[i + j];             \
            }                                                                                                      \
        for (int p = 0; p < TILE_C_POSITIONS; p++)                                                                 \
            for (int r = 0; r < TILE_C_ROWS; r++) {                                                                \
                const Weight *w = (const Weight *)(const void *)(rows + row_bytes * (size_t)r);                    \
                float sum = 0.0f;                                                                                  \
                for (int j = 0; j < FLOAT_LANES; j++) sum += part[p][r][j];                                        \
                for (int k = i; k < n_in; k++) sum += widen(w[k]) * in[p].field[k];                                \
                out[p * TILE_C_ROWS + r] = sum;                                                                    \
            }                                                                                                      \
    }

static inline float same_float(float v) { return v; }

TILE_FLOAT_C(tile_f32_c, float, same_float, x)
TILE_FLOAT_C(tile_f16_c, uint16_t, fp16_to_float, xh)
#undef TILE_FLOAT_C

/** The plain-C tile of @p type (rows = 0 for a type chapter 5 does not read). */
static inline Tile tile_for_c(int type) {
    TileFn *fn = type == Q_Q8_0   ? tile_q8_0_c
                 : type == Q_Q5_0 ? tile_q5_0_c
                 : type == Q_Q4_0 ? tile_q4_0_c
                 : type == Q_Q4_K ? tile_q4_K_c
                 : type == Q_Q6_K ? tile_q6_K_c
                 : type == Q_F16  ? tile_f16_c
                 : type == Q_F32  ? tile_f32_c
                                  : NULL;
    return (Tile){fn ? TILE_C_ROWS : 0, TILE_C_POSITIONS, fn};
}

/* ======================================================================== */
/* x86 (AVX2; VNNI where the CPU has it)                                    */
/* ======================================================================== */
#if SIMD_X86

enum { TILE_Q4_0_POSITIONS = 6 }; /* 6 accumulators beside 8 decoded weight registers and the scales */

/**
 * Rows 0..7 of a Q4_0 matrix times TILE_Q4_0_POSITIONS positions: what
 * simd_dot_q4_0_8rows() computes for each position, bit for bit, with each
 * weight block unpacked once for all of them. Lane r of acc[p] is row r's
 * sum for position p, added block after block exactly as there.
 */
static inline void tile_q4_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc[TILE_Q4_0_POSITIONS];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ4_0);
        __m256i lo[4], hi[4]; /* lo[k]: the low nibbles of rows k (lane half 0) and k + 4 (half 1) */
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            __m256i two = q4_0_rows_k_and_k4(col + row_bytes * (size_t)k, 4 * row_bytes);
            lo[k] = _mm256_and_si256(two, low4);
            hi[k] = _mm256_and_si256(_mm256_srli_epi16(two, 4), low4);
        }
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) {
            __m256i x_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)in[p].xq[b].qs));
            __m256i x_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(in[p].xq[b].qs + 16)));
            __m256i s[4];
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
                s[k] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo[k], x_lo), hi[k], x_hi);
#elif defined(__AVXVNNI__)
                s[k] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo[k], x_lo), hi[k], x_hi);
#else
                __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[k], x_lo), _mm256_maddubs_epi16(hi[k], x_hi));
                s[k] = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
#endif
            }
            __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            __m256i isum = _mm256_sub_epi32(sums, _mm256_set1_epi32(in[p].xs[b] * 8));
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}

enum { TILE_Q8_0_POSITIONS = 4 }; /* Q8_0 needs |w| and w's signs: 16 weight registers, so fewer positions */

/** Rows 0..7 of a Q8_0 matrix times TILE_Q8_0_POSITIONS positions: simd_dot_q8_8rows() for each, bit for bit. */
static inline void tile_q8_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    __m256 acc[TILE_Q8_0_POSITIONS];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ8);
        __m256i wq[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) wq[k] = load_qs((const BlockQ8 *)(const void *)(col + row_bytes * (size_t)k));
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) {
            __m256i xq = load_qs(in[p].xq + b), s8[8];
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) s8[k] = block_products(wq[k], xq);
            __m256 isum = _mm256_cvtepi32_ps(sum_8x8(s8));
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(isum, scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}

#endif

/* ======================================================================== */
/* The tile of each type on this build                                      */
/* ======================================================================== */

/**
 * The tile this build has for @p type. A SIMD build without a SIMD tile for
 * the type says rows = 0: its one-position SIMD kernel, once per position,
 * is faster than the plain-C tile. Without SIMD the plain-C tiles serve.
 */
static inline Tile tile_for(int type) {
#if SIMD_X86
    if (type == Q_Q4_0) return (Tile){8, TILE_Q4_0_POSITIONS, tile_q4_0_avx2};
    if (type == Q_Q8_0) return (Tile){8, TILE_Q8_0_POSITIONS, tile_q8_0_avx2};
#endif
#if SIMD_X86 || SIMD_NEON
    (void)type;
    return (Tile){0, 0, NULL};
#else
    return tile_for_c(type);
#endif
}

#endif

/**
 * @file tiles.h
 * @brief Chapter 7's register tiles: a few rows of a weight matrix times a few
 * positions' inputs at once, for every weight type chapter 5 reads and the
 * three chapter 8 adds (Q5_K, Q3_K, IQ4_XS), each output bit for bit what
 * the one-position kernel of src/quants.h gives it.
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
    const BlockQ8_K *xk; // (n_in / 256)  Q4_K, Q6_K, Q5_K, Q3_K and IQ4_XS rows
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

/** Q5_K: tile_q4_K_c with the 5-bit quants, as dot_q5_K_c. */
static inline void tile_q5_K_c(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};
    uint8_t q[TILE_C_ROWS][QK_K];
    int sc[TILE_C_ROWS][8], m[TILE_C_ROWS][8];
    for (int b = 0; b < n_in / QK_K; b++) {
        for (int r = 0; r < TILE_C_ROWS; r++) {
            const BlockQ5_K *blk = (const BlockQ5_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
            unpack_q5_K(blk, q[r]);
            for (int j = 0; j < 8; j++) q4_K_scale_min(blk->scales, j, &sc[r][j], &m[r][j]);
        }
        for (int p = 0; p < TILE_C_POSITIONS; p++) {
            const BlockQ8_K *x = in[p].xk + b;
            for (int r = 0; r < TILE_C_ROWS; r++) {
                const BlockQ5_K *blk = (const BlockQ5_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
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

/** Q3_K: per super-block, sum += d·d_x·(float)isum over 16 groups of 16, as dot_q3_K_c. */
static inline void tile_q3_K_c(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};
    int8_t q[TILE_C_ROWS][QK_K];
    int sc[TILE_C_ROWS][QK_K / 16];
    for (int b = 0; b < n_in / QK_K; b++) {
        for (int r = 0; r < TILE_C_ROWS; r++) {
            const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
            unpack_q3_K(blk, q[r]);
            for (int g = 0; g < QK_K / 16; g++) sc[r][g] = q3_K_scale(blk->scales, g);
        }
        for (int p = 0; p < TILE_C_POSITIONS; p++) {
            const BlockQ8_K *x = in[p].xk + b;
            for (int r = 0; r < TILE_C_ROWS; r++) {
                const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)(rows + row_bytes * (size_t)r) + b;
                int32_t isum = 0;
                for (int g = 0; g < QK_K / 16; g++) isum += sc[r][g] * dot_i8(q[r] + 16 * g, x->qs + 16 * g, 16);
                acc[p][r] += fp16_to_float(blk->d) * x->d * (float)isum;
            }
        }
    }
    for (int p = 0; p < TILE_C_POSITIONS; p++)
        for (int r = 0; r < TILE_C_ROWS; r++) out[p * TILE_C_ROWS + r] = acc[p][r];
}

/** IQ4_XS: per super-block, sum += d·d_x·(float)isum over 8 sub-blocks of 32, as dot_iq4_xs_c. */
static inline void tile_iq4_xs_c(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    float acc[TILE_C_POSITIONS][TILE_C_ROWS] = {{0}};
    int8_t q[TILE_C_ROWS][QK_K];
    int sc[TILE_C_ROWS][8];
    for (int b = 0; b < n_in / QK_K; b++) {
        for (int r = 0; r < TILE_C_ROWS; r++) {
            const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)(rows + row_bytes * (size_t)r) + b;
            unpack_iq4_xs(blk, q[r]);
            for (int j = 0; j < 8; j++) sc[r][j] = iq4_xs_scale(blk, j);
        }
        for (int p = 0; p < TILE_C_POSITIONS; p++) {
            const BlockQ8_K *x = in[p].xk + b;
            for (int r = 0; r < TILE_C_ROWS; r++) {
                const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)(rows + row_bytes * (size_t)r) + b;
                int32_t isum = 0;
                for (int j = 0; j < 8; j++) isum += sc[r][j] * dot_i8(q[r] + 32 * j, x->qs + 32 * j, 32);
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

/** The plain-C tile of @p type (rows = 0 for a type neither chapter 5 nor chapter 8 reads). */
static inline Tile tile_for_c(int type) {
    TileFn *fn = type == Q_Q8_0     ? tile_q8_0_c
                 : type == Q_Q5_0   ? tile_q5_0_c
                 : type == Q_Q4_0   ? tile_q4_0_c
                 : type == Q_Q4_K   ? tile_q4_K_c
                 : type == Q_Q6_K   ? tile_q6_K_c
                 : type == Q_Q5_K   ? tile_q5_K_c
                 : type == Q_Q3_K   ? tile_q3_K_c
                 : type == Q_IQ4_XS ? tile_iq4_xs_c
                 : type == Q_F16    ? tile_f16_c
                 : type == Q_F32    ? tile_f32_c
                                    : NULL;
    return (Tile){fn ? TILE_C_ROWS : 0, TILE_C_POSITIONS, fn};
}

/* ======================================================================== */
/* The SIMD tiles, one file per family of types                             */
/* ======================================================================== */

/* Each defines tile_simd_<family>(type): the SIMD tile of this build for the
 * types of its family, or rows = 0. */
#include "tiles_q8_0.h"  /* Q8_0, Q5_0, Q4_0: the types with Q8_0 inputs */
#include "tiles_q8_K.h"  /* Q4_K, Q6_K, Q5_K, Q3_K, IQ4_XS: the types with Q8_K inputs */
#include "tiles_float.h" /* F32, F16 */

/* ======================================================================== */
/* The tile of each type on this build                                      */
/* ======================================================================== */

/**
 * The tile this build has for @p type. A SIMD build without a SIMD tile for
 * the type says rows = 0: its one-position SIMD kernel, once per position,
 * is faster than the plain-C tile. Without SIMD the plain-C tiles serve.
 */
static inline Tile tile_for(int type) {
#if SIMD_X86 || SIMD_NEON
    Tile t = tile_simd_q8_0(type);
    if (!t.rows) t = tile_simd_q8_K(type);
    if (!t.rows) t = tile_simd_float(type);
    return t;
#else
    return tile_for_c(type);
#endif
}

#endif

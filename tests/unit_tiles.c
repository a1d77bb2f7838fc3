/**
 * @file unit_tiles.c
 * @brief Chapter 7's tiles (src/tiles.h) against chapter 5's one-position kernels.
 *
 *     build/tests/unit_tiles
 *
 * For every weight type chapter 5 reads and the three chapter 8 adds (Q5_K, Q3_K, IQ4_XS), on odd sizes (1, 3, 7 and 25 blocks; for F32
 * and F16 also lengths that leave a tail after the last 16), random rows and random
 * inputs rounded as the chapters round them: every output of the build's tile
 * (tile_for(): AVX2, AVX-512 or NEON where the build has one) and of the plain-C tile
 * (tile_for_c()) must equal, bit for bit, both the one-position SIMD kernel (simd_dot_*,
 * what chapter 6 computes) and the plain-C definition (dot_*_c).
 *
 * The K-quant tiles also on rows of extremes (every byte 0x00 or 0xff) against input quants
 * all -127 or all +127, where their int16 steps come closest to overflowing.
 *
 * The Makefile builds unit tests without -march, so this checks the plain-C tiles; the
 * test stages build it again with -march=haswell (AVX2), -march=native and for ARM64
 * (NEON, under qemu), so that each SIMD tile is checked on its own build.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "quants.h"
#include "tiles.h"
#include "unit.h"
#include "util.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xffffff) / (float)0x1000000; }

/** A random fp16 scale of either sign, of a size real files have. */
static uint16_t random_scale(void) { return fp16_from_float(uniform(0.001f, 0.05f) * (next_u32() & 1 ? 1.0f : -1.0f)); }

/*
 * Extremes, for the K-quant tiles (whose integer sums come closest to the
 * limits of their int16 steps): rows whose every byte is 0x00 or 0xff (the
 * bottom or top of every quant, scale and min, with random finite fp16
 * super-scales) against inputs whose quants are all −127 or +127 (Q8_K maps
 * the input of largest magnitude to −127: a first input of −2 among +2 makes
 * every other one +127). 0: random rows and inputs; 1, 2: rows of 0x00, of
 * 0xff, quants −127; 3, 4: the same with quants +127.
 */
static int extreme;

/** @p n_rows random rows of @p type, @p n_in weights each, with finite scales (int8 quants never −128: chapter 3's rule). */
static uint8_t *random_rows(int type, int n_rows, int n_in, size_t *row_bytes) {
    *row_bytes = quant_row_bytes(type, (size_t)n_in);
    size_t bytes = *row_bytes * (size_t)n_rows;
    uint8_t *m = xmalloc(bytes + 64);
    for (size_t i = 0; i < bytes; i++) m[i] = extreme ? (extreme % 2 ? 0x00 : 0xff) : (uint8_t)next_u32();
    for (int r = 0; r < n_rows; r++) {
        uint8_t *row = m + *row_bytes * (size_t)r;
        int nb = n_in / quant_block_size_ch8(type);
        for (int b = 0; b < nb; b++) {
            uint16_t s = random_scale(), s2 = random_scale();
            switch (type) {
            case Q_Q8_0: {
                BlockQ8 *blk = (BlockQ8 *)(void *)row + b;
                blk->d = s;
                for (int j = 0; j < QK; j++) if (blk->qs[j] == -128) blk->qs[j] = -127;
                break;
            }
            case Q_Q5_0: ((BlockQ5_0 *)(void *)row)[b].d = s; break;
            case Q_Q4_0: ((BlockQ4_0 *)(void *)row)[b].d = s; break;
            case Q_Q4_K: ((BlockQ4_K *)(void *)row)[b].d = s; ((BlockQ4_K *)(void *)row)[b].dmin = s2; break;
            case Q_Q6_K: ((BlockQ6_K *)(void *)row)[b].d = s; break;
            case Q_Q5_K: ((BlockQ5_K *)(void *)row)[b].d = s; ((BlockQ5_K *)(void *)row)[b].dmin = s2; break;
            case Q_Q3_K: ((BlockQ3_K *)(void *)row)[b].d = s; break;
            case Q_IQ4_XS: ((BlockIQ4_XS *)(void *)row)[b].d = s; break;
            default: break;
            }
        }
        if (type == Q_F32)
            for (int i = 0; i < n_in; i++) ((float *)(void *)row)[i] = uniform(-1, 1);
        if (type == Q_F16)
            for (int i = 0; i < n_in; i++) ((uint16_t *)(void *)row)[i] = fp16_from_float(uniform(-1, 1));
    }
    return m;
}

/** One position's input, rounded into every form (as chapter 7's round_input() does). */
typedef struct {
    float *x, *xd, *xh;
    BlockQ8 *xq;
    int16_t *xs;
    BlockQ8_K *xk;
} Input;

static Input random_input(int n_in) {
    Input in;
    int nb = n_in / QK + 1, nk = n_in / QK_K + 1;
    in.x = xmalloc(sizeof(float) * (size_t)n_in);
    in.xh = xmalloc(sizeof(float) * (size_t)n_in);
    in.xq = xcalloc((size_t)nb, sizeof(BlockQ8));
    in.xd = xcalloc((size_t)nb, sizeof(float));
    in.xs = xcalloc((size_t)nb, sizeof(int16_t));
    in.xk = xcalloc((size_t)nk, sizeof(BlockQ8_K));
    for (int i = 0; i < n_in; i++) in.x[i] = extreme ? (extreme > 2 && i == 0 ? -2.0f : 2.0f) : uniform(-3, 3);
    if (n_in % QK == 0) {
        quantize_q8(in.xq, in.x, n_in);
        for (int b = 0; b < n_in / QK; b++) {
            int s = 0;
            for (int j = 0; j < QK; j++) s += in.xq[b].qs[j];
            in.xd[b] = fp16_to_float(in.xq[b].d);
            in.xs[b] = (int16_t)s;
        }
    }
    if (n_in % QK_K == 0) quantize_q8_K(in.x, in.xk, n_in);
    round_to_f16(in.x, in.xh, n_in);
    return in;
}

static void free_input(Input *in) {
    free(in->x); free(in->xh); free(in->xq); free(in->xd); free(in->xs); free(in->xk);
}

/** Row @p row · input @p in with chapter 5's one-position SIMD kernel (@p simd) or its plain-C definition. */
static float one_position(int type, const uint8_t *bytes, const Input *in, int n_in, int simd) {
    const void *row = bytes;
    int nb = n_in / QK, nk = n_in / QK_K;
    switch (type) {
    case Q_Q8_0: return simd ? simd_dot_q8(row, in->xq, in->xd, nb) : dot_q8(row, in->xq, nb);
    case Q_Q5_0: return simd ? simd_dot_q5_0(row, in->xq, in->xd, in->xs, nb) : dot_q5_0_c(row, in->xq, in->xd, in->xs, nb);
    case Q_Q4_0: return simd ? simd_dot_q4_0(row, in->xq, in->xd, in->xs, nb) : dot_q4_0_c(row, in->xq, in->xd, in->xs, nb);
    case Q_Q4_K: return simd ? simd_dot_q4_K(row, in->xk, nk) : dot_q4_K_c(row, in->xk, nk);
    case Q_Q6_K: return simd ? simd_dot_q6_K(row, in->xk, nk) : dot_q6_K_c(row, in->xk, nk);
    case Q_Q5_K: return simd ? simd_dot_q5_K(row, in->xk, nk) : dot_q5_K_c(row, in->xk, nk);
    case Q_Q3_K: return simd ? simd_dot_q3_K(row, in->xk, nk) : dot_q3_K_c(row, in->xk, nk);
    case Q_IQ4_XS: return simd ? simd_dot_iq4_xs(row, in->xk, nk) : dot_iq4_xs_c(row, in->xk, nk);
    case Q_F16: return simd ? simd_dot_f16(row, in->xh, n_in) : dot_f16_c(row, in->xh, n_in);
    default: return simd ? simd_dot_f32(row, in->x, n_in) : dot_f32_c(row, in->x, n_in);
    }
}

static const char *type_name(int type) {
    switch (type) {
    case Q_Q8_0: return "Q8_0";
    case Q_Q5_0: return "Q5_0";
    case Q_Q4_0: return "Q4_0";
    case Q_Q4_K: return "Q4_K";
    case Q_Q6_K: return "Q6_K";
    case Q_Q5_K: return "Q5_K";
    case Q_Q3_K: return "Q3_K";
    case Q_IQ4_XS: return "IQ4_XS";
    case Q_F16: return "F16";
    default: return "F32";
    }
}

/**
 * The tile @p tile on rows of @p n_in weights: every output against both one-position
 * kernels, bit for bit. Three row groups (the tile is called on each), so that a tile
 * that reads beyond its rows or mixes up row_bytes shows.
 */
static void check_tile(const char *which, int type, Tile tile, int n_in) {
    char name[160];
    snprintf(name, sizeof name, "%s %s tile %dx%d, %d inputs%s", which, type_name(type), tile.rows, tile.positions, n_in,
             !extreme ? "" : extreme == 1 ? ", rows of 0x00, input quants -127" : extreme == 2 ? ", rows of 0xff, input quants -127"
             : extreme == 3 ? ", rows of 0x00, input quants +127" : ", rows of 0xff, input quants +127");
    if (!tile.fn) {
        CHECK(name, tile.rows == 0, "a tile without a function claims %d rows", tile.rows);
        return;
    }
    if (tile.rows > TILE_MAX_ROWS || tile.positions > TILE_MAX_POSITIONS || tile.rows < 1 || tile.positions < 1) {
        CHECK(name, 0, "%dx%d exceeds TILE_MAX_ROWS x TILE_MAX_POSITIONS", tile.rows, tile.positions);
        return;
    }
    int n_rows = 3 * tile.rows;
    size_t row_bytes;
    uint8_t *rows = random_rows(type, n_rows, n_in, &row_bytes);
    Input inputs[TILE_MAX_POSITIONS];
    TileInput tin[TILE_MAX_POSITIONS];
    for (int p = 0; p < tile.positions; p++) {
        inputs[p] = random_input(n_in);
        tin[p] = (TileInput){inputs[p].x, inputs[p].xq, inputs[p].xd, inputs[p].xs, inputs[p].xk, inputs[p].xh};
    }
    int mismatches = 0;
    char first[200] = "";
    for (int g = 0; g < 3; g++) {
        float out[TILE_MAX_ROWS * TILE_MAX_POSITIONS];
        const uint8_t *group = rows + row_bytes * (size_t)(g * tile.rows);
        tile.fn(out, group, row_bytes, tin, n_in);
        for (int p = 0; p < tile.positions; p++)
            for (int r = 0; r < tile.rows; r++) {
                const uint8_t *row = group + row_bytes * (size_t)r;
                float got = out[p * tile.rows + r];
                float simd = one_position(type, row, &inputs[p], n_in, 1), plain = one_position(type, row, &inputs[p], n_in, 0);
                if (memcmp(&got, &simd, sizeof got) != 0 || memcmp(&got, &plain, sizeof got) != 0) {
                    if (!mismatches++)
                        snprintf(first, sizeof first, "row %d, position %d: tile %.9g, one-position SIMD %.9g, plain C %.9g",
                                 g * tile.rows + r, p, got, simd, plain);
                }
            }
    }
    CHECK(name, mismatches == 0, "%d of %d outputs differ; first %s", mismatches, 3 * tile.rows * tile.positions, first);
    for (int p = 0; p < tile.positions; p++) free_input(&inputs[p]);
    free(rows);
}

int main(void) {
    const int types[] = {Q_Q8_0, Q_Q5_0, Q_Q4_0, Q_Q4_K, Q_Q6_K, Q_Q5_K, Q_Q3_K, Q_IQ4_XS, Q_F16, Q_F32};
    const int blocks[] = {1, 3, 7, 25};
    const int float_lengths[] = {1, 15, 16, 17, 48, 100, 800};
    printf("# kernels: %s\n", SIMD_NAME);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int type = types[t], bs = quant_block_size_ch8(type);
        for (int which = 0; which < 2; which++) {
            Tile tile = which ? tile_for(type) : tile_for_c(type);
            const char *label = which ? "build's (" SIMD_NAME ")" : "plain-C";
            if (bs > 1)
                for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) check_tile(label, type, tile, blocks[k] * bs);
            if (bs == QK_K) /* the K-quants, whose tiles keep integer sums in int16 steps: at their limits too */
                for (extreme = 1; extreme <= 4; extreme++)
                    for (int nb = 1; nb <= 3; nb += 2) check_tile(label, type, tile, nb * bs);
            extreme = 0;
            if (bs == 1)
                for (size_t k = 0; k < sizeof float_lengths / sizeof float_lengths[0]; k++)
                    check_tile(label, type, tile, float_lengths[k]);
        }
    }
    return UNIT_EXIT();
}

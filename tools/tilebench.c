/**
 * @file tilebench.c
 * @brief One thread, one weight matrix: GFLOP/s of chapter 6's one-position kernels against
 * chapter 7's tiles (src/tiles.h), on random weights of any type chapter 5 or chapter 8 reads.
 *
 *     build/tilebench [-t TYPE] [--rows N] [--cols N] [--positions P] [--seconds S]
 *
 * TYPE: q8_0 q5_0 q4_0 q4_k q6_k q5_k q3_k iq4_xs f16 f32 (default q4_0); rows × cols the matrix (default
 * 2048 × 768, the w1 of the stories110M shape), P positions (default 128). Each way is timed
 * for about S seconds (0.5), the fastest repetition kept. "one position" multiplies the matrix
 * with each position in turn, with the kernels chapter 6 uses (eight rows at a time for Q8_0,
 * Q4_0, Q4_K and Q6_K, and chapter 8's Q5_K, Q3_K and IQ4_XS); "tiles" walks it as chapter 7's batch_range() does: rows in blocks of 256 KiB,
 * every group of the tile's positions over each block. A check that the two agree bit for bit
 * comes with every run. Built with the chapters' -march (the Makefile), so it measures their
 * kernels.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp16.h"
#include "quants.h"
#include "tiles.h"
#include "util.h"

static uint64_t rng = 88172645463325252u;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xffffff) / (float)0x1000000; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_type(const char *s) {
    const char *names[] = {"q8_0", "q5_0", "q4_0", "q4_k", "q6_k", "q5_k", "q3_k", "iq4_xs", "f16", "f32"};
    const int types[] = {Q_Q8_0, Q_Q5_0, Q_Q4_0, Q_Q4_K, Q_Q6_K, Q_Q5_K, Q_Q3_K, Q_IQ4_XS, Q_F16, Q_F32};
    for (int i = 0; i < 10; i++)
        if (!strcmp(s, names[i])) return types[i];
    fatal("-t: unknown type '%s' (q8_0 q5_0 q4_0 q4_k q6_k q5_k q3_k iq4_xs f16 f32)", s);
    return -1;
}

/** Random rows with finite fp16 scales of a real model's size (int8 quants never -128). */
static uint8_t *random_matrix(int type, int rows, int cols, size_t row_bytes) {
    size_t bytes = row_bytes * (size_t)rows;
    uint8_t *m = xmalloc(bytes);
    for (size_t i = 0; i < bytes; i++) m[i] = (uint8_t)next_u32();
    int bs = quant_block_size_ch8(type), nb = cols / bs;
    for (int r = 0; r < rows; r++) {
        uint8_t *row = m + row_bytes * (size_t)r;
        for (int b = 0; b < nb && bs > 1; b++) {
            uint16_t d = fp16_from_float(uniform(-0.05f, 0.05f));
            if (type == Q_Q8_0) {
                BlockQ8 *blk = (BlockQ8 *)(void *)row + b;
                blk->d = d;
                for (int j = 0; j < QK; j++) if (blk->qs[j] == -128) blk->qs[j] = 0;
            }
            if (type == Q_Q5_0) ((BlockQ5_0 *)(void *)row)[b].d = d;
            if (type == Q_Q4_0) ((BlockQ4_0 *)(void *)row)[b].d = d;
            if (type == Q_Q4_K) ((BlockQ4_K *)(void *)row)[b].d = ((BlockQ4_K *)(void *)row)[b].dmin = d;
            if (type == Q_Q6_K) ((BlockQ6_K *)(void *)row)[b].d = d;
            if (type == Q_Q5_K) ((BlockQ5_K *)(void *)row)[b].d = ((BlockQ5_K *)(void *)row)[b].dmin = d;
            if (type == Q_Q3_K) ((BlockQ3_K *)(void *)row)[b].d = d;
            if (type == Q_IQ4_XS) ((BlockIQ4_XS *)(void *)row)[b].d = d;
        }
        for (int i = 0; i < cols && type == Q_F32; i++) ((float *)(void *)row)[i] = uniform(-1, 1);
        for (int i = 0; i < cols && type == Q_F16; i++) ((uint16_t *)(void *)row)[i] = fp16_from_float(uniform(-1, 1));
    }
    return m;
}

/** Row @p i times input @p in with chapter 6's kernel of its type. */
static float one_row(int type, const uint8_t *row, const TileInput *in, int n) {
    const void *w = row;
    switch (type) {
    case Q_Q8_0: return simd_dot_q8(w, in->xq, in->xd, n / QK);
    case Q_Q5_0: return simd_dot_q5_0(w, in->xq, in->xd, in->xs, n / QK);
    case Q_Q4_0: return simd_dot_q4_0(w, in->xq, in->xd, in->xs, n / QK);
    case Q_Q4_K: return simd_dot_q4_K(w, in->xk, n / QK_K);
    case Q_Q6_K: return simd_dot_q6_K(w, in->xk, n / QK_K);
    case Q_Q5_K: return simd_dot_q5_K(w, in->xk, n / QK_K);
    case Q_Q3_K: return simd_dot_q3_K(w, in->xk, n / QK_K);
    case Q_IQ4_XS: return simd_dot_iq4_xs(w, in->xk, n / QK_K);
    case Q_F16: return simd_dot_f16(w, in->xh, n);
    default: return simd_dot_f32(w, in->x, n);
    }
}

/** out (positions, rows) = W · each input, one position after another (chapter 6). */
static void one_position_way(float *out, int type, const uint8_t *m, size_t row_bytes, int rows, const TileInput *in, int np, int cols) {
    for (int p = 0; p < np; p++) {
        int i = 0;
        float *o = out + (size_t)p * rows;
        for (; i + 8 <= rows && type != Q_Q5_0 && type != Q_F16 && type != Q_F32; i += 8) {
            const void *w = m + row_bytes * (size_t)i;
            if (type == Q_Q8_0) simd_dot_q8_0_8rows(o + i, w, in[p].xq, in[p].xd, in[p].xs, cols / QK);
            else if (type == Q_Q4_0) simd_dot_q4_0_8rows(o + i, w, in[p].xq, in[p].xd, in[p].xs, cols / QK);
            else if (type == Q_Q4_K) simd_dot_q4_K_8rows(o + i, w, in[p].xk, cols / QK_K);
            else if (type == Q_Q6_K) simd_dot_q6_K_8rows(o + i, w, in[p].xk, cols / QK_K);
            else if (type == Q_Q5_K) simd_dot_q5_K_8rows(o + i, w, in[p].xk, cols / QK_K);
            else if (type == Q_Q3_K) simd_dot_q3_K_8rows(o + i, w, in[p].xk, cols / QK_K);
            else simd_dot_iq4_xs_8rows(o + i, w, in[p].xk, cols / QK_K);
        }
        for (; i < rows; i++) o[i] = one_row(type, m + row_bytes * (size_t)i, &in[p], cols);
    }
}

/** The same with the tiles, walked as chapter 7's batch_range() walks them (whole tiles only: a benchmark shape). */
static void tile_way(float *out, Tile tile, const uint8_t *m, size_t row_bytes, int rows, const TileInput *in, int np, int cols) {
    int block = (int)((256u << 10) / row_bytes / (size_t)tile.rows * (size_t)tile.rows);
    if (block < tile.rows) block = tile.rows;
    for (int r0 = 0; r0 < rows; r0 += block) {
        int r1 = r0 + block < rows ? r0 + block : rows;
        for (int p = 0; p + tile.positions <= np; p += tile.positions)
            for (int r = r0; r + tile.rows <= r1; r += tile.rows) {
                float t[TILE_MAX_ROWS * TILE_MAX_POSITIONS];
                tile.fn(t, m + row_bytes * (size_t)r, row_bytes, in + p, cols);
                for (int q = 0; q < tile.positions; q++) memcpy(out + (size_t)(p + q) * rows + r, t + q * tile.rows, sizeof(float) * (size_t)tile.rows);
            }
    }
}

int main(int argc, char **argv) {
    int type = Q_Q4_0, rows = 2048, cols = 768, np = 128;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) fatal("%s: needs a value", argv[i]);
        if (!strcmp(argv[i], "-t")) type = parse_type(argv[++i]);
        else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols")) cols = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--positions")) np = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else fatal("unknown flag %s", argv[i]);
    }
    if (rows < 1 || rows > (1 << 20) || cols < 1 || cols > (1 << 16) || np < 1 || np > 4096 || cols % quant_block_size_ch8(type))
        fatal("impossible shape %d x %d, %d positions", rows, cols, np);
    Tile tile = tile_for(type);
    size_t row_bytes = quant_row_bytes(type, (size_t)cols);
    uint8_t *m = random_matrix(type, rows, cols, row_bytes);
    TileInput *in = xcalloc((size_t)np, sizeof *in);
    for (int p = 0; p < np; p++) {
        float *x = xmalloc(sizeof(float) * (size_t)cols), *xh = xmalloc(sizeof(float) * (size_t)cols), *xd = xcalloc((size_t)cols / QK + 1, sizeof(float));
        BlockQ8 *xq = xcalloc((size_t)cols / QK + 1, sizeof(BlockQ8));
        int16_t *xs = xcalloc((size_t)cols / QK + 1, sizeof(int16_t));
        BlockQ8_K *xk = xcalloc((size_t)cols / QK_K + 1, sizeof(BlockQ8_K));
        for (int i = 0; i < cols; i++) x[i] = uniform(-2, 2);
        if (cols % QK == 0) {
            quantize_q8(xq, x, cols);
            for (int b = 0; b < cols / QK; b++) {
                int s = 0;
                for (int j = 0; j < QK; j++) s += xq[b].qs[j];
                xd[b] = fp16_to_float(xq[b].d), xs[b] = (int16_t)s;
            }
        }
        if (cols % QK_K == 0) quantize_q8_K(x, xk, cols);
        round_to_f16(x, xh, cols);
        in[p] = (TileInput){x, xq, xd, xs, xk, xh};
    }
    float *a = xcalloc((size_t)np * (size_t)rows, sizeof(float)), *b = xcalloc((size_t)np * (size_t)rows, sizeof(float));
    double flops = 2.0 * rows * cols * np, best[2] = {1e30, 1e30};
    printf("# %s, %d x %d, %d positions, %s; tile %d rows x %d positions\n", argv[0], rows, cols, np, SIMD_NAME, tile.rows, tile.positions);
    for (int way = 0; way < 2; way++) {
        if (way == 1 && !tile.rows) break;
        double start = now();
        do {
            double t0 = now();
            if (way == 0) one_position_way(a, type, m, row_bytes, rows, in, np, cols);
            else tile_way(b, tile, m, row_bytes, rows, in, np, cols);
            double t = now() - t0;
            if (t < best[way]) best[way] = t;
        } while (now() - start < seconds);
        printf("%-14s %8.1f GFLOP/s  %8.3f ms\n", way ? "tiles" : "one position", flops / best[way] * 1e-9, best[way] * 1e3);
    }
    if (tile.rows) {
        int whole_p = np / tile.positions * tile.positions, whole_r = rows / tile.rows * tile.rows, diff = 0;
        for (int p = 0; p < whole_p; p++)
            for (int r = 0; r < whole_r; r++) diff += memcmp(a + (size_t)p * rows + r, b + (size_t)p * rows + r, sizeof(float)) != 0;
        printf("tiles/one position %.2fx; %d outputs differ\n", best[0] / best[1], diff);
        return diff ? 1 : 0;
    }
    printf("no tile for this type on this build\n");
    return 0;
}

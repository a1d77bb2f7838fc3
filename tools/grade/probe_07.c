/*
 * tools/grade/probe_07.c — what the logits cannot show about chapter 7's exercises.
 *
 * Chapter 7 computes chapter 6's numbers, bit for bit; its tiles only change
 * which outputs are computed together. So a batch_range() (exercise 7.1) that
 * never calls a tile, computing every position with chapter 6's kernels, gives
 * the right logits, only slowly; one that drops the rows or positions after
 * the last whole tile is wrong only where a model's sizes leave such rows, and
 * the graded models' sizes are multiples of the tiles. The grader therefore
 * also builds this probe around the file being graded (#include GRADE_SOURCE)
 * and calls batch_range() itself on hand-made steps: Q4_0, Q8_0 and F32
 * matrices of 1 to 37 rows, 1 to 13 positions, and row ranges [lo, hi) that
 * start and end inside tiles:
 *
 *  - every output of rows lo..hi-1 of every position equals chapter 6's
 *    matmul_range() for that position, bit for bit, and no other row is
 *    written (the outputs are filled with a marker first);
 *  - where the type has a tile, the tile is called once for every whole tile
 *    of rows in the range and every group of positions (whole groups, and the
 *    padded last one where padding_pays() says so), and for nothing more (tile_for() is
 *    redirected to a counting wrapper for the included file; the chapter is
 *    not changed), and no tile reads a row outside [lo, hi).
 *
 * usage: probe_07 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines; MODEL is not read)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tiles.h"

static Tile probe_tile_for(int type);
#define tile_for probe_tile_for
#include GRADE_SOURCE
#undef tile_for

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    fflush(stdout);
    failures += !pass;
}

/* --- the counting wrapper ------------------------------------------------------------ */

static Tile real_tile;          /* the tile the build has for the type of the current matrix */
static long tile_calls;         /* calls since the last reset */
static const uint8_t *rows_lo;  /* the first byte of row lo and the end of row hi - 1: a tile must stay inside */
static const uint8_t *rows_hi;
static int tile_outside;        /* a call whose rows reach outside [lo, hi) */

static void counting_tile(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_calls++;
    if (rows < rows_lo || rows + row_bytes * (size_t)real_tile.rows > rows_hi) tile_outside = 1;
    else real_tile.fn(out, rows, row_bytes, in, n_in);
}

static Tile probe_tile_for(int type) {
    real_tile = tile_for(type);
    Tile t = real_tile;
    if (t.rows) t.fn = counting_tile;
    return t;
}

/* --- hand-made steps ----------------------------------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1du;
static float rnd(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / (double)(1ull << 23) - 1.0);
}

enum { N_IN = 64, MAX_ROWS = 40, MAX_POS = 13 };

/** A matrix of @p rows rows of @p type, N_IN weights each, from random floats. */
static void make_matrix(QTensor *w, uint8_t *data, int type, int rows) {
    size_t row_bytes = quant_row_bytes(type, N_IN);
    float x[N_IN];
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < N_IN; i++) x[i] = rnd();
        uint8_t *row = data + row_bytes * (size_t)r;
        if (type == Q_Q4_0) quantize_q4_0(x, (BlockQ4_0 *)(void *)row, N_IN);
        else if (type == Q_Q8_0) quantize_q8((BlockQ8 *)(void *)row, x, N_IN);
        else memcpy(row, x, sizeof x);
    }
    *w = (QTensor){"probe", type, data, rows, N_IN, row_bytes};
}

/** One position's input, rounded as chapter 7 rounds it (round_input()). */
typedef struct {
    float x[N_IN], xd[N_IN / QK + 1], xh[N_IN];
    BlockQ8 xq[N_IN / QK + 1];
    int16_t xs[N_IN / QK + 1];
    BlockQ8_K xk[1];
} ProbeInput;

static const float MARK = -12345.0f;

static void check(int type, const char *type_name, int rows, int np, int lo, int hi) {
    static uint8_t data[MAX_ROWS * N_IN * 4];
    static ProbeInput inputs[MAX_POS];
    static float got[MAX_POS][MAX_ROWS], want[MAX_POS][MAX_ROWS];
    QTensor w;
    make_matrix(&w, data, type, rows);
    MatmulTask steps[MAX_POS];
    for (int p = 0; p < np; p++) {
        for (int i = 0; i < N_IN; i++) inputs[p].x[i] = rnd();
        for (int r = 0; r < MAX_ROWS; r++) got[p][r] = want[p][r] = MARK;
        steps[p] = (MatmulTask){{{got[p], &w, rows, 0}}, 1, N_IN, 0, inputs[p].x, NULL, NULL, NULL, NULL, NULL};
        round_input(&steps[p], inputs[p].xq, inputs[p].xd, inputs[p].xs, inputs[p].xk, inputs[p].xh);
    }
    /* what chapter 6 computes, position by position */
    for (int p = 0; p < np; p++) {
        MatmulTask t = steps[p];
        t.part[0].out = want[p];
        matmul_range(&t, &t.part[0], lo, hi);
    }
    BatchStep s = {steps, np, rows, 1};
    real_tile = tile_for(type); /* the build's tile (tiles.h's own: the macro is gone), whether or not batch_range asks */
    tile_calls = 0;
    tile_outside = 0;
    rows_lo = w.data + w.row_bytes * (size_t)lo;
    rows_hi = w.data + w.row_bytes * (size_t)hi;
    batch_range(&s, 0, lo, hi);
    char name[160], why[300] = "";
    snprintf(name, sizeof name, "batch_range: %s, %d rows, %d positions, rows [%d, %d)", type_name, rows, np, lo, hi);
    int ok = 1;
    for (int p = 0; p < np && ok; p++)
        for (int r = 0; r < MAX_ROWS && ok; r++)
            if (memcmp(&got[p][r], &want[p][r], sizeof(float)) != 0) {
                ok = 0;
                if (want[p][r] == MARK)
                    snprintf(why, sizeof why, "it wrote row %d of position %d, outside its rows [%d, %d)", r, p, lo, hi);
                else if (got[p][r] == MARK)
                    snprintf(why, sizeof why, "row %d of position %d was never written", r, p);
                else
                    snprintf(why, sizeof why, "row %d of position %d is %.9g, chapter 6's kernel gives %.9g", r, p, got[p][r], want[p][r]);
            }
    if (ok && tile_outside) ok = 0, snprintf(why, sizeof why, "a tile was called on rows outside [%d, %d)", lo, hi);
    if (ok && real_tile.rows) {
        int groups = np / real_tile.positions + padding_pays(np % real_tile.positions, real_tile.positions);
        long whole = (long)((hi - lo) / real_tile.rows) * groups;
        if (tile_calls != whole)
            ok = 0, snprintf(why, sizeof why, "%ld tile calls for %ld tiles of %d rows x %d positions (%d groups)", tile_calls, whole,
                             real_tile.rows, real_tile.positions, groups);
    }
    result(name, ok, why);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const struct { int type; const char *name; } types[] = {{Q_Q4_0, "Q4_0"}, {Q_Q8_0, "Q8_0"}, {Q_F32, "F32"}};
    const int shapes[][4] = {
        /* rows, positions, lo, hi */
        {8, 6, 0, 8},    {16, 12, 0, 16}, {37, 13, 0, 37}, {37, 13, 3, 29}, {9, 1, 0, 9},   {40, 7, 8, 40},
        {1, 13, 0, 1},   {24, 5, 0, 24},  {33, 9, 5, 6},   {40, 13, 1, 39}, {32, 8, 16, 32}, {17, 2, 0, 17},
    };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
            check(types[t].type, types[t].name, shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]);
    printf("%s\n", failures ? "probe: FAILED" : "probe: all passed");
    return failures ? 1 : 0;
}

/*
 * tools/grade/probe_04.c — what the logits cannot show about chapter 4's exercises.
 *
 * Chapter 4 computes chapter 3's numbers, bit for bit, faster. The logits show
 * most mistakes, but not all of them: a worker that computes every row instead
 * of its own share gives the right logits (each row is written several times
 * with the same value, the threads only get in each other's way), and on the
 * small models the pool does not split small steps at all. A SIMD kernel that
 * is wrong only for a row whose length is not a multiple of its stride may not
 * meet such a row in the model. So the grader also builds this probe around the
 * file being graded (#include GRADE_SOURCE) and checks, through the chapter's
 * own functions:
 *
 *  - matmul_rows() (the worker's share of a matmul step): for ranges cut the
 *    way the pool cuts them, in any order, every output row of every part is
 *    right; a single range [begin, end) writes exactly its own rows and no
 *    other; the same for the SwiGLU step (w1 and w3, then SwiGLU of the range);
 *  - simd_dot_q8(), the kernel this build compiled (AVX-512, AVX2, NEON or plain
 *    C): equal to chapter 3's dot_q8() bit for bit, for every row length from 0
 *    to 40 blocks, on pseudo-random and extreme blocks.
 *
 * usage: probe_04 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines)
 */
#include GRADE_SOURCE

#include <stdio.h>

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    failures += !pass;
}

/** A deterministic pseudo-random float in [-1, 1). */
static float rnd(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 40) / (double)(1ull << 23) - 1.0);
}

/* --- matmul_rows(): the worker's share -------------------------------------------- */

enum { N_IN = 8, MAX_ROWS = 16 };

static const uint32_t SENTINEL = 0x7fc0dead; /* a NaN that no row computes */

static int is_sentinel(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u == SENTINEL;
}

static float sentinel(void) {
    float v;
    memcpy(&v, &SENTINEL, sizeof v);
    return v;
}

typedef struct {
    MatmulTask t;
    float w[3][MAX_ROWS * N_IN];
    float x[N_IN];
    float out[3][MAX_ROWS];
    float want[3][MAX_ROWS];
    int n_rows; /* the index range: all parts' rows, or (SwiGLU) the rows of one */
} Step;

/** A step of @p n_parts fp32 matrices of @p rows[p] rows each (SwiGLU: two of rows[0]). */
static void make_step(Step *s, int n_parts, const int *rows, int swiglu_step, uint64_t seed) {
    memset(s, 0, sizeof *s);
    for (int j = 0; j < N_IN; j++) s->x[j] = rnd(&seed);
    s->t.n_parts = n_parts;
    s->t.n_in = N_IN;
    s->t.swiglu = swiglu_step;
    s->t.x = s->x;
    for (int p = 0; p < n_parts; p++) {
        int n_out = swiglu_step ? rows[0] : rows[p];
        for (int i = 0; i < n_out * N_IN; i++) s->w[p][i] = rnd(&seed);
        s->t.part[p].out = s->out[p];
        s->t.part[p].n_out = n_out;
        s->t.part[p].w.q = NULL;
        s->t.part[p].w.f = s->w[p];
        s->t.part[p].w.rows = (size_t)n_out;
        s->t.part[p].w.cols = N_IN;
        for (int i = 0; i < n_out; i++) s->want[p][i] = matmul_row(&s->t, &s->t.part[p], i);
        s->n_rows = swiglu_step ? n_out : s->n_rows + n_out;
    }
    if (swiglu_step) swiglu(s->want[0], s->want[1], rows[0]);
}

static void clear_outputs(Step *s) {
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < MAX_ROWS; i++) s->out[p][i] = sentinel();
}

/** Part and row of index @p k of the step's range (SwiGLU: index k is row k of both). */
static void locate(const Step *s, int k, int *part, int *row) {
    if (s->t.swiglu) {
        *part = 0, *row = k;
        return;
    }
    int p = 0;
    while (k >= s->t.part[p].n_out) k -= s->t.part[p++].n_out;
    *part = p, *row = k;
}

/**
 * Checks the outputs after the ranges in @p covered were run: rows of those
 * ranges must hold their value, all others the sentinel. Writes why into @p why.
 */
static int outputs_ok(const Step *s, const int *covered, char *why, size_t len) {
    for (int k = 0; k < s->n_rows; k++) {
        int p, i;
        locate(s, k, &p, &i);
        int parts = s->t.swiglu ? 2 : 1;
        for (int q = p; q < p + parts; q++) {
            float got = s->out[q][i], want = s->want[q][i];
            const char *what = s->t.swiglu ? (q == 0 ? "the SwiGLU output (w1's row, then SwiGLU)" : "w3's row")
                                           : "the output";
            if (covered[k] && is_sentinel(got)) {
                snprintf(why, len, "index %d of the range (part %d, row %d): %s was not written", k, q, i, what);
                return 0;
            }
            if (covered[k] && memcmp(&got, &want, sizeof got) != 0) {
                snprintf(why, len, "index %d of the range (part %d, row %d): %s is %.9g, expected %.9g", k, q, i, what,
                         (double)got, (double)want);
                return 0;
            }
            if (!covered[k] && !is_sentinel(got)) {
                snprintf(why, len,
                         "index %d (part %d, row %d) is outside the range it was given, but it was written: "
                         "each thread must write only its own rows",
                         k, q, i);
                return 0;
            }
        }
    }
    return 1;
}

static void check_step(const char *what, int n_parts, const int *rows, int swiglu_step) {
    Step s;
    make_step(&s, n_parts, rows, swiglu_step, 99 + (uint64_t)n_parts * 7 + (uint64_t)swiglu_step);
    int covered[3 * MAX_ROWS];
    char why[400] = "", name[200];

    /* the pool's chunks, k = 1 .. n_rows of them, run last to first */
    for (int k = 1; k <= s.n_rows && !why[0]; k++) {
        clear_outputs(&s);
        for (int c = k - 1; c >= 0; c--) {
            int b = (int)((long long)s.n_rows * c / k), e = (int)((long long)s.n_rows * (c + 1) / k);
            matmul_rows(&s.t, b, e, c % 3);
        }
        for (int i = 0; i < s.n_rows; i++) covered[i] = 1;
        char sub[260];
        if (!outputs_ok(&s, covered, sub, sizeof sub)) snprintf(why, sizeof why, "cut into %d chunks: %s", k, sub);
    }
    snprintf(name, sizeof name, "matmul_rows, %s: the chunks of the range together compute every row", what);
    result(name, !why[0], why);

    /* one range at a time: its rows and no others */
    why[0] = 0;
    for (int b = 0; b < s.n_rows && !why[0]; b++)
        for (int e = b; e <= s.n_rows && !why[0]; e++) {
            clear_outputs(&s);
            matmul_rows(&s.t, b, e, 1);
            for (int i = 0; i < s.n_rows; i++) covered[i] = i >= b && i < e;
            char sub[260];
            if (!outputs_ok(&s, covered, sub, sizeof sub))
                snprintf(why, sizeof why, "the range [%d, %d) alone: %s", b, e, sub);
        }
    snprintf(name, sizeof name, "matmul_rows, %s: one range [begin, end) writes its own rows and no other", what);
    result(name, !why[0], why);
}

static void check_matmul_rows(void) {
    int one[1] = {7}, three[3] = {5, 3, 4}, ffn[1] = {7};
    check_step("one matrix of 7 rows", 1, one, 0);
    check_step("three matrices of 5, 3 and 4 rows (wq, wk, wv)", 3, three, 0);
    check_step("the SwiGLU step (w1 and w3 of 7 rows)", 2, ffn, 1);
}

/* --- simd_dot_q8(): the SIMD kernel ------------------------------------------------ */

enum { MAX_BLOCKS = 40 };

static void check_simd_dot(void) {
    BlockQ8 w[MAX_BLOCKS], x[MAX_BLOCKS];
    float xd[MAX_BLOCKS];
    char why[300] = "", name[200];
    uint64_t s = 4242;
    for (int round = 0; round < 3 && !why[0]; round++) {
        for (int b = 0; b < MAX_BLOCKS; b++) {
            w[b].d = fp16_from_float(fabsf(rnd(&s)) * 0.02f + 1e-4f);
            x[b].d = fp16_from_float(fabsf(rnd(&s)) * 0.2f + 1e-3f);
            for (int j = 0; j < QK; j++) {
                /* round 1: extreme blocks, the largest sums an int32 lane may hold */
                w[b].qs[j] = (int8_t)(round == 1 ? (b % 2 ? 127 : -127) : (int)(rnd(&s) * 127.0f));
                x[b].qs[j] = (int8_t)(round == 1 ? ((b / 2) % 2 ? -127 : 127) : (int)(rnd(&s) * 127.0f));
                if (round == 2 && j % 5 == 0) w[b].qs[j] = 0;
            }
            xd[b] = fp16_to_float(x[b].d);
        }
        for (int n = 0; n <= MAX_BLOCKS && !why[0]; n++) {
            float got = simd_dot_q8(w, x, xd, n), want = dot_q8(w, x, n);
            if (memcmp(&got, &want, sizeof got) != 0)
                snprintf(why, sizeof why, "a row of %d blocks (%s blocks): simd_dot_q8() returned %.9g, dot_q8() %.9g", n,
                         round == 1 ? "extreme" : "pseudo-random", (double)got, (double)want);
        }
    }
    snprintf(name, sizeof name, "simd_dot_q8 (this build: %s) equals dot_q8 bit for bit, rows of 0 to %d blocks",
             SIMD_NAME, MAX_BLOCKS);
    result(name, !why[0], why);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s MODEL [THREADS]\n", argv[0]);
        return 2;
    }
    check_matmul_rows();
    check_simd_dot();
    fflush(stdout);
    return failures ? 1 : 0;
}

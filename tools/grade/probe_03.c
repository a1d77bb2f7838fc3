/*
 * tools/grade/probe_03.c — what the logits cannot show about chapter 3's exercises.
 *
 * The point of the quantizer is llama.cpp's exact Q8_0 bytes, but a quantizer that
 * is off by one step in a few values (rounding halves to even, computing q with the
 * fp16 scale) may move the logits of a short run by less than the grader's
 * tolerance, or not at all: real weights are seldom exact halves. So the grader also
 * builds this probe around the file being graded (#include GRADE_SOURCE) and checks,
 * through the chapter's own functions:
 *
 *  - quantize_q8(): hand-made blocks with known bytes (zeros, halves, an outlier,
 *    a scale that is not a half), blocks of one sign and pseudo-random rows of
 *    several blocks, byte for byte against llama.cpp's reference procedure
 *    (quantize_row_q8_0_ref, transcribed below), and that it writes no block after
 *    the last;
 *  - dot_q8(): extreme products (127 × −127 in every place), each block with its
 *    own scales, an empty row, and pseudo-random rows against the sum done in
 *    double, then bit for bit in the order the contract states (blocks left to
 *    right, each (float)isum * (d_w * d_x)): another order differs in the last bit,
 *    which the next matmul's rounding of its input to Q8_0 can turn into a whole
 *    step of the grid, far beyond the logits' tolerance, but only now and then.
 *
 * usage: probe_03 MODEL   (the model is not needed; prints "ok    NAME" or
 *                          "FAIL  NAME: why" lines)
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

/* --- the quantizer ------------------------------------------------------------ */

/** llama.cpp's quantize_row_q8_0_ref for one block (ggml-quants.c), in its own words. */
static void reference_block(BlockQ8 *y, const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) {
        const float v = x[j];
        amax = fmaxf(amax, fabsf(v));
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y->d = fp16_from_float(d);
    for (int j = 0; j < QK; ++j) {
        const float x0 = x[j] * id;
        y->qs[j] = (int8_t)roundf(x0);
    }
}

/**
 * Quantizes @p n_blocks blocks of @p x with the student's quantize_q8() and compares
 * every byte with @p want (the reference's when NULL). The block after the last must
 * stay untouched.
 */
static void check_quantize(const char *name, const float *x, int n_blocks, const BlockQ8 *want) {
    BlockQ8 *got = xmalloc(sizeof(BlockQ8) * (size_t)(n_blocks + 1));
    BlockQ8 *ref = xmalloc(sizeof(BlockQ8) * (size_t)n_blocks);
    memset(got, 0xA5, sizeof(BlockQ8) * (size_t)(n_blocks + 1));
    if (want) memcpy(ref, want, sizeof(BlockQ8) * (size_t)n_blocks);
    else
        for (int b = 0; b < n_blocks; b++) reference_block(&ref[b], x + (size_t)b * QK);
    quantize_q8(got, x, n_blocks * QK);
    char why[400] = "";
    for (int b = 0; b < n_blocks && !why[0]; b++) {
        if (got[b].d != ref[b].d) {
            snprintf(why, sizeof why,
                     "block %d: the scale d is the half 0x%04x (%g), llama.cpp's is 0x%04x (%g: max|x| / 127, "
                     "rounded to fp16)",
                     b, got[b].d, (double)fp16_to_float(got[b].d), ref[b].d, (double)fp16_to_float(ref[b].d));
            break;
        }
        for (int j = 0; j < QK; j++)
            if (got[b].qs[j] != ref[b].qs[j]) {
                snprintf(why, sizeof why, "block %d: q[%d] is %d, llama.cpp's is %d (x = %.9g, x / d = %.9g)", b, j,
                         got[b].qs[j], ref[b].qs[j], (double)x[(size_t)b * QK + j],
                         ref[b].d ? (double)x[(size_t)b * QK + j] / (double)fp16_to_float(ref[b].d) : 0.0);
                break;
            }
    }
    const unsigned char *after = (const unsigned char *)&got[n_blocks];
    for (size_t i = 0; i < sizeof(BlockQ8) && !why[0]; i++)
        if (after[i] != 0xA5)
            snprintf(why, sizeof why, "it wrote past the last of the %d block(s) (n = %d values)", n_blocks,
                     n_blocks * QK);
    char full[200];
    snprintf(full, sizeof full, "quantize_q8: %s", name);
    result(full, !why[0], why);
    free(got);
    free(ref);
}

static void check_quantizer(void) {
    float x[QK * 64];
    BlockQ8 want[1];

    memset(x, 0, sizeof(float) * QK);
    memset(want, 0, sizeof want);
    check_quantize("a block of zeros has d = 0 and every q 0", x, 1, want);

    /* d = 127 / 127 = 1 exactly, so q is x rounded: halves go away from zero */
    static const float halves[9] = {127.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f};
    static const int8_t halves_q[9] = {127, 1, -1, 2, -2, 3, -3, 127, -127};
    memset(x, 0, sizeof(float) * QK);
    memset(want, 0, sizeof want);
    want[0].d = 0x3C00; /* 1.0 */
    for (int j = 0; j < 9; j++) x[j] = halves[j], want[0].qs[j] = halves_q[j];
    check_quantize("halves round away from zero (0.5 -> 1, -2.5 -> -3)", x, 1, want);

    /* one outlier, -254: d = 2, and every neighbour of magnitude < 1 becomes 0 or ±1 */
    memset(want, 0, sizeof want);
    want[0].d = 0x4000; /* 2.0 */
    for (int j = 0; j < QK; j++) {
        x[j] = j % 3 == 0 ? 1.0f : j % 3 == 1 ? -1.0f : 0.9f;
        want[0].qs[j] = (int8_t)(j % 3 == 0 ? 1 : j % 3 == 1 ? -1 : 0);
    }
    x[5] = -254.0f;
    want[0].qs[5] = -127;
    check_quantize("an outlier takes -127 and coarsens the grid of its neighbours", x, 1, want);

    /* d = 1/127 is not a half: q must be computed with the fp32 scale. These values
     * sit just below a half step, where the rounded scale tips them over. */
    x[0] = 1.0f;
    for (int j = 1; j < QK; j++) x[j] = ((float)(j + 38) + 0.499f) / 127.0f * (j % 2 ? 1.0f : -1.0f);
    check_quantize("q is computed with the fp32 scale, not the stored half", x, 1, NULL);

    for (int j = 0; j < QK; j++) x[j] = -(float)(j + 1) * 0.0371f;
    for (int j = 0; j < QK; j++) x[QK + j] = (float)(QK - j) * 1.7e-3f;
    check_quantize("blocks of one sign (all negative, all positive)", x, 2, NULL);

    uint64_t s = 12345;
    for (int i = 0; i < QK * 64; i++) {
        float v = rnd(&s);
        x[i] = v * (i % 97 == 0 ? 40.0f : 1.0f) * ((i / QK) % 5 == 4 ? 1e-4f : 1.0f);
    }
    check_quantize("64 pseudo-random blocks in one call, outliers and small scales among them", x, 64, NULL);
}

/* --- the integer dot product ----------------------------------------------------- */

static BlockQ8 block_of(uint16_t d, int q) {
    BlockQ8 b;
    b.d = d;
    for (int j = 0; j < QK; j++) b.qs[j] = (int8_t)q;
    return b;
}

static void check_dot_value(const char *name, const BlockQ8 *w, const BlockQ8 *x, int n_blocks, double want,
                            double tol) {
    float got = dot_q8(w, x, n_blocks);
    char why[300], full[200];
    snprintf(why, sizeof why, "dot_q8() returned %.9g, expected %.9g%s", (double)got, want,
             tol > 0 ? " (up to fp32 rounding)" : " exactly");
    snprintf(full, sizeof full, "dot_q8: %s", name);
    result(full, fabs((double)got - want) <= tol, why);
}

static void check_dot(void) {
    BlockQ8 w[64], x[64];

    w[0] = block_of(0x3C00, 127);  /* d = 1 */
    x[0] = block_of(0x3C00, -127); /* d = 1 */
    check_dot_value("32 products of 127 and -127 sum to -516128 (an int32, not an int16)", w, x, 1, -516128.0, 0);

    w[0] = block_of(0x3800, 1); /* d = 0.5 */
    w[1] = block_of(0x4000, 1); /* d = 2 */
    x[0] = block_of(0x3C00, 2); /* d = 1 */
    x[1] = block_of(0x3400, 3); /* d = 0.25 */
    check_dot_value("each block is scaled by its own d_w * d_x (0.5·1·64 + 2·0.25·96 = 80)", w, x, 2, 80.0, 0);

    check_dot_value("an empty row (n_blocks = 0) gives 0", w, x, 0, 0.0, 0);

    uint64_t s = 777;
    for (int b = 0; b < 64; b++) {
        w[b].d = fp16_from_float(fabsf(rnd(&s)) * 0.01f + 1e-4f);
        x[b].d = fp16_from_float(fabsf(rnd(&s)) * 0.1f + 1e-3f);
        for (int j = 0; j < QK; j++) {
            w[b].qs[j] = (int8_t)(rnd(&s) * 127.0f);
            x[b].qs[j] = (int8_t)(rnd(&s) * 127.0f);
        }
    }
    double want = 0, mag = 0;
    for (int b = 0; b < 64; b++) {
        double scale = (double)fp16_to_float(w[b].d) * (double)fp16_to_float(x[b].d), isum = 0;
        for (int j = 0; j < QK; j++) isum += (double)w[b].qs[j] * (double)x[b].qs[j];
        want += scale * isum;
        mag += fabs(scale * isum);
    }
    check_dot_value("64 pseudo-random blocks against the same sum in double", w, x, 64, want, 1e-5 * mag);

    float sum = 0.0f; /* the contract's order: blocks left to right, (float)isum * (d_w * d_x) */
    for (int b = 0; b < 64; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK; j++) isum += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
        sum += (float)isum * (fp16_to_float(w[b].d) * fp16_to_float(x[b].d));
    }
    check_dot_value("the same blocks, bit for bit in the contract's order: left to right, (float)isum * (d_w * d_x)",
                    w, x, 64, (double)sum, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    check_quantizer();
    check_dot();
    fflush(stdout);
    return failures ? 1 : 0;
}

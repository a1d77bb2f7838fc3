/*
 * tools/grade/probe_08.c — what one model's logits cannot show about chapter 8's exercises.
 *
 * The grader runs chapter 8 on one file, the YaRN model: its logits check exercise 8.1
 * (scaled angles), but that model pairs RoPE's values llama's way, so exercise 8.2 (Qwen2's
 * NEOX pairs) would never run. This probe, built around the graded file (#include
 * GRADE_SOURCE), calls rope_halves() itself on random heads of several shapes (rope_dim
 * equal to the head size and smaller, one head and several) and compares every value with
 * the rotation written out here: pair j is values j and j + rope_dim / 2 of each head,
 * turned by cs[2j], cs[2j + 1]; values from rope_dim on stay as they were. It also calls
 * rope_angles() with linear and YaRN settings and checks cos² + sin² = mscale² and the
 * angles of the fastest pair (kept by YaRN) and the slowest (divided by the factor).
 *
 * usage: probe_08 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines; MODEL is not read)
 */
#include GRADE_SOURCE

#include <stdio.h>

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    fflush(stdout);
    failures += !pass;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static float rnd(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / (double)(1ull << 23) - 1.0);
}

enum { MAX_HEADS = 4, MAX_HEAD = 16 };

static void check_halves(int n_heads, int head_size, int rope_dim) {
    float v[MAX_HEADS * MAX_HEAD], want[MAX_HEADS * MAX_HEAD], cs[MAX_HEAD];
    for (int i = 0; i < n_heads * head_size; i++) v[i] = want[i] = rnd();
    for (int i = 0; i < rope_dim; i++) cs[i] = rnd();
    int half = rope_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < half; j++) {
            float *w = want + h * head_size, a = w[j], b = w[j + half];
            w[j] = a * cs[2 * j] - b * cs[2 * j + 1];
            w[j + half] = a * cs[2 * j + 1] + b * cs[2 * j];
        }
    rope_halves(v, n_heads, head_size, rope_dim, cs);
    char name[120], why[200] = "";
    snprintf(name, sizeof name, "rope_halves: %d heads of %d, rope_dim %d", n_heads, head_size, rope_dim);
    int ok = 1;
    for (int i = 0; i < n_heads * head_size && ok; i++)
        if (v[i] != want[i]) {
            ok = 0;
            snprintf(why, sizeof why, "value %d of head %d is %.9g, the NEOX rotation gives %.9g%s", i % head_size,
                     i / head_size, v[i], want[i], i % head_size >= rope_dim ? " (it is past rope_dim: leave it)" : "");
        }
    result(name, ok, why);
}

static void check_angles(const char *what, Rope r, int pos) {
    enum { DIM = 16 };
    float cs[DIM];
    rope_angles(cs, &r, DIM, pos, 10000.0f);
    char name[120], why[200] = "";
    snprintf(name, sizeof name, "rope_angles: %s, position %d", what, pos);
    int ok = 1;
    for (int i = 0; i < DIM && ok; i += 2) {
        double norm = (double)cs[i] * cs[i] + (double)cs[i + 1] * cs[i + 1], want = (double)r.mscale * r.mscale;
        if (fabs(norm - want) > 1e-4 * want) {
            ok = 0;
            snprintf(why, sizeof why, "pair %d: cos^2 + sin^2 = %g, expected mscale^2 = %g", i / 2, norm, want);
        }
    }
    /* pair 0 turns fastest: YaRN keeps its angle (pos), linear divides it; the last pair is divided by both */
    double a0 = atan2(cs[1], cs[0]), want0 = r.ext_factor != 0 ? pos : pos * (double)r.freq_scale;
    if (ok && fabs(remainder(a0 - want0, 2 * M_PI)) > 1e-3) {
        ok = 0;
        snprintf(why, sizeof why, "pair 0 turns by %g, expected %g", a0, remainder(want0, 2 * M_PI));
    }
    result(name, ok, why);
}

int main(void) {
    check_halves(1, 8, 8);
    check_halves(3, 16, 16);
    check_halves(2, 16, 8);
    check_halves(4, 6, 4);
    Rope linear = {0, 0.25f, 0.0f, 1.0f, 0.0f, 0.0f, NULL};
    Rope yarn = {0, 0.25f, 1.0f, 1.0f + 0.1f * logf(4.0f), 1.0f, 5.0f, NULL};
    check_angles("linear, factor 4", linear, 3);
    check_angles("yarn, factor 4", yarn, 3);
    check_angles("yarn, factor 4", yarn, 0);
    return failures ? 1 : 0;
}

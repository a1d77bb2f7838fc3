/**
 * @file unit_ops.c
 * @brief Chapter 1's building blocks against values computed by hand, and the sampler.
 *
 * The chapter is included whole so that its static functions can be called.
 */
#include "../chapters/01_naive.c"

#include <stdio.h>

#include "sampler.h"
#include "unit.h"

static int close_to(const float *got, const double *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > tol) return 0;
    return 1;
}

static void test_rmsnorm(void) {
    /* mean of squares of 1,2,3,4 is 7.5; 1/sqrt(7.5) = 0.36514837 */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 2}, out[4];
    double want[4] = {0.36514837, 0.73029674, 1.09544512, 2.92118697};
    rmsnorm(out, x, w, 4, 0.0f);
    CHECK("rmsnorm of 1,2,3,4 (weights 1,1,1,2)", close_to(out, want, 4, 1e-6), "got %g %g %g %g", out[0], out[1], out[2], out[3]);
    float zero[4] = {0, 0, 0, 0};
    rmsnorm(out, zero, w, 4, 1e-5f);
    CHECK("rmsnorm of zeros stays finite (epsilon)", out[0] == 0 && out[3] == 0, "got %g", out[0]);
}

static void test_softmax(void) {
    float x[3] = {1, 2, 3};
    double want[3] = {0.09003057, 0.24472847, 0.66524096};
    softmax(x, 3);
    CHECK("softmax of 1,2,3", close_to(x, want, 3, 1e-7), "got %g %g %g", x[0], x[1], x[2]);
    float big[2] = {1000, 1000};
    softmax(big, 2);
    CHECK("softmax of large equal logits is 1/2 each (max subtracted)", big[0] == 0.5f && big[1] == 0.5f, "got %g %g", big[0], big[1]);
}

static void test_rope(void) {
    /* head_size 4: pair 0 turns by pos rad, pair 1 by pos * 10000^(-1/2) = pos / 100 */
    float v[4] = {1, 0, 0, 1};
    rope(v, 1, 4, 1, 10000.0f);
    double want[4] = {0.54030231, 0.84147098, -0.00999983, 0.99995000};
    CHECK("rope at position 1", close_to(v, want, 4, 1e-6), "got %g %g %g %g", v[0], v[1], v[2], v[3]);
    float same[4] = {0.3f, -1.2f, 2.0f, 0.5f}, orig[4];
    memcpy(orig, same, sizeof same);
    rope(same, 1, 4, 0, 10000.0f);
    CHECK("rope at position 0 is the identity", memcmp(same, orig, sizeof same) == 0, "changed");
    /* q.k after rotation depends only on the distance between positions */
    float q1[4] = {0.3f, -1.2f, 2.0f, 0.5f}, k1[4] = {1.0f, 0.4f, -0.7f, 0.2f}, q2[4], k2[4];
    memcpy(q2, q1, sizeof q1);
    memcpy(k2, k1, sizeof k1);
    rope(q1, 1, 4, 7, 10000.0f);
    rope(k1, 1, 4, 3, 10000.0f);
    rope(q2, 1, 4, 14, 10000.0f);
    rope(k2, 1, 4, 10, 10000.0f);
    float d1 = 0, d2 = 0;
    for (int i = 0; i < 4; i++) d1 += q1[i] * k1[i], d2 += q2[i] * k2[i];
    CHECK("rope: q.k depends only on the distance", fabsf(d1 - d2) < 1e-5f, "%g vs %g", d1, d2);
}

static void test_swiglu_matmul(void) {
    float gate[2] = {1.0f, -2.0f}, up[2] = {2.0f, 3.0f};
    double want[2] = {1.46211716, -0.71521753}; /* silu(1)*2, silu(-2)*3 */
    swiglu(gate, up, 2);
    CHECK("swiglu", close_to(gate, want, 2, 1e-6), "got %g %g", gate[0], gate[1]);
    float w[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 0, -1}, out[2];
    double want_mm[2] = {-2, -2};
    matmul(out, x, w, 3, 2);
    CHECK("matmul of a 2x3 matrix", close_to(out, want_mm, 2, 0), "got %g %g", out[0], out[1]);
}

static void test_sampler(void) {
    Sampler s;
    float logits[5] = {0.5f, 2.0f, 2.0f, -1.0f, 1.0f};
    sampler_init(&s, 5, 0.0f, 1.0f, 0, 1);
    CHECK("greedy picks the first of equal maxima", sampler_sample(&s, logits, NULL, 0) == 1, "got %d", sampler_sample(&s, logits, NULL, 0));
    sampler_free(&s);

    /* probabilities 0.5, 0.3, 0.15, 0.05: the nucleus for top-p 0.7 is {0, 1} */
    float lp[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int counts[4] = {0};
    sampler_init(&s, 4, 1.0f, 0.7f, 0, 42);
    for (int i = 0; i < 20000; i++) counts[sampler_sample(&s, lp, NULL, 0)]++;
    sampler_free(&s);
    double share0 = counts[0] / 20000.0;
    CHECK("top-p 0.7 keeps only the two likeliest tokens", counts[2] == 0 && counts[3] == 0, "counts %d %d %d %d", counts[0], counts[1], counts[2], counts[3]);
    CHECK("top-p renormalises (token 0 ~ 0.5/0.8)", fabs(share0 - 0.625) < 0.02, "share %g", share0);

    int k_counts[4] = {0};
    sampler_init(&s, 4, 1.0f, 1.0f, 3, 7);
    for (int i = 0; i < 20000; i++) k_counts[sampler_sample(&s, lp, NULL, 0)]++;
    sampler_free(&s);
    CHECK("top-k 3 never picks the 4th token", k_counts[3] == 0 && k_counts[2] > 0, "counts %d %d %d %d", k_counts[0], k_counts[1], k_counts[2], k_counts[3]);

    int a[50], b[50], c[50], same_ab = 1, same_ac = 1;
    Sampler sa, sb, sc;
    sampler_init(&sa, 4, 0.9f, 0.95f, 0, 1234);
    sampler_init(&sb, 4, 0.9f, 0.95f, 0, 1234);
    sampler_init(&sc, 4, 0.9f, 0.95f, 0, 1235);
    for (int i = 0; i < 50; i++) {
        a[i] = sampler_sample(&sa, lp, NULL, 0), b[i] = sampler_sample(&sb, lp, NULL, 0), c[i] = sampler_sample(&sc, lp, NULL, 0);
        same_ab &= a[i] == b[i];
        same_ac &= a[i] == c[i];
    }
    sampler_free(&sa), sampler_free(&sb), sampler_free(&sc);
    CHECK("same seed, same samples", same_ab, "sequences differ");
    CHECK("another seed, other samples", !same_ac, "sequences equal");
}

int main(void) {
    test_rmsnorm();
    test_softmax();
    test_rope();
    test_swiglu_matmul();
    test_sampler();
    return UNIT_EXIT();
}

/**
 * @file unit_sampler.c
 * @brief The sampler's chain (src/sampler.c) on logits made by hand: the
 * repetition penalty's arithmetic and window, min-p, and llama.cpp's order
 * (top-p judged at temperature 1, the temperature only in the draw).
 *
 * Each check is chosen so that the wrong rule gives another answer: a
 * penalty that divided a negative logit, counted an id once per occurrence
 * or looked past its window would pick another token; a top-p applied after
 * the temperature would keep a third token. Draw counts are over 20000
 * draws, with tolerances far above their noise (about 0.004).
 */
#include <math.h>
#include <stdio.h>

#include "sampler.h"
#include "unit.h"

enum { DRAWS = 20000 };

/** The greedy choice for @p logits with the penalty @p penalty over the last @p last_n of @p recent. */
static int greedy_after_penalty(const float *logits, int n, float penalty, int last_n, const int *recent,
                                int n_recent) {
    Sampler s;
    sampler_init(&s, n, 0.0f, 1.0f, 0, 1);
    s.repeat_penalty = penalty;
    s.repeat_last_n = last_n;
    int id = sampler_sample(&s, logits, recent, n_recent);
    sampler_free(&s);
    return id;
}

static void test_penalty(void) {
    float pos[4] = {3.0f, 2.5f, -1.0f, 0.5f};
    int zero[1] = {0};
    CHECK("penalty 1 (off): greedy is argmax", greedy_after_penalty(pos, 4, 1.0f, 64, zero, 1) == 0, "picked another");
    CHECK("penalty 2: a positive logit is divided (3 -> 1.5 < 2.5)", greedy_after_penalty(pos, 4, 2.0f, 64, zero, 1) == 1,
          "picked %d", greedy_after_penalty(pos, 4, 2.0f, 64, zero, 1));
    float neg[3] = {-1.0f, -1.5f, -3.0f};
    CHECK("penalty 2: a negative logit is multiplied (-1 -> -2 < -1.5)",
          greedy_after_penalty(neg, 3, 2.0f, 64, zero, 1) == 1, "picked %d (dividing would keep 0)",
          greedy_after_penalty(neg, 3, 2.0f, 64, zero, 1));
    float two[2] = {3.0f, 1.0f};
    int thrice[3] = {0, 0, 0};
    CHECK("an id seen three times is penalized once (3 -> 1.5, not 0.375)",
          greedy_after_penalty(two, 2, 2.0f, 64, thrice, 3) == 0, "picked 1");
    int old_then_new[2] = {0, 3};
    CHECK("the window: --repeat-last-n 1 sees only the newest id",
          greedy_after_penalty(pos, 4, 2.0f, 1, old_then_new, 2) == 0, "token 0 was penalized");
    CHECK("the window: -1 sees every id given", greedy_after_penalty(pos, 4, 2.0f, -1, old_then_new, 2) == 1,
          "token 0 was not penalized");
    CHECK("--repeat-last-n 0 turns the penalty off", greedy_after_penalty(pos, 4, 2.0f, 0, zero, 1) == 0,
          "token 0 was penalized");
    CHECK("the penalty leaves the caller's logits alone", pos[0] == 3.0f, "logit 0 is now %g", pos[0]);
}

/** Draw DRAWS tokens from probabilities 0.5, 0.3, 0.15, 0.05 with the given settings; counts per id. */
static void draw_counts(float temperature, float top_p, int top_k, float min_p, int counts[4]) {
    float lp[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    Sampler s;
    sampler_init(&s, 4, temperature, top_p, top_k, 42);
    s.min_p = min_p;
    for (int i = 0; i < 4; i++) counts[i] = 0;
    for (int i = 0; i < DRAWS; i++) counts[sampler_sample(&s, lp, NULL, 0)]++;
    sampler_free(&s);
}

static void test_min_p_and_order(void) {
    int c[4];
    draw_counts(1.0f, 1.0f, 0, 0.5f, c);
    CHECK("min-p 0.5 keeps the tokens at least half as likely as the first (0.5, 0.3)", c[2] == 0 && c[3] == 0 && c[1] > 0,
          "counts %d %d %d %d", c[0], c[1], c[2], c[3]);
    CHECK("min-p renormalises (token 0 ~ 0.5/0.8)", fabs(c[0] / (double)DRAWS - 0.625) < 0.02, "share %g",
          c[0] / (double)DRAWS);
    draw_counts(1.0f, 1.0f, 0, 1.0f, c);
    CHECK("min-p 1 keeps only the likeliest: greedy", c[0] == DRAWS, "counts %d %d %d %d", c[0], c[1], c[2], c[3]);
    draw_counts(1.0f, 1.0f, 0, 0.0f, c);
    CHECK("min-p 0 keeps every token", c[3] > 0, "counts %d %d %d %d", c[0], c[1], c[2], c[3]);
    /* At temperature 100 the four are nearly equal: a top-p after the temperature would keep three
     * of them for 0.7; llama.cpp's order judges at temperature 1 and keeps two, then flattens them. */
    draw_counts(100.0f, 0.7f, 0, 0.0f, c);
    CHECK("top-p is judged at temperature 1 (0.7 keeps two tokens at --temp 100)", c[2] == 0 && c[3] == 0,
          "counts %d %d %d %d", c[0], c[1], c[2], c[3]);
    CHECK("the temperature shapes the draw among them (--temp 100: about half each)",
          fabs(c[0] / (double)DRAWS - 0.5) < 0.03, "share %g", c[0] / (double)DRAWS);
    draw_counts(100.0f, 1.0f, 0, 0.5f, c);
    CHECK("min-p is judged at temperature 1 too (0.5 keeps two at --temp 100)", c[2] == 0 && c[3] == 0 && c[1] > 0,
          "counts %d %d %d %d", c[0], c[1], c[2], c[3]);
}

static void test_top_k_ties(void) {
    enum { N = 10 };
    float flat[N] = {0};
    int counts[N] = {0};
    Sampler s;
    sampler_init(&s, N, 1.0f, 1.0f, 3, 7);
    for (int i = 0; i < DRAWS; i++) counts[sampler_sample(&s, flat, NULL, 0)]++;
    sampler_free(&s);
    int others = 0;
    for (int i = 3; i < N; i++) others += counts[i];
    CHECK("top-k 3 among equal logits keeps the three smallest ids, each drawn", others == 0 && counts[0] > 0 &&
          counts[1] > 0 && counts[2] > 0, "counts %d %d %d, others %d", counts[0], counts[1], counts[2], others);
    float ramp[N];
    for (int i = 0; i < N; i++) ramp[i] = (float)((i * 7) % N); /* a permutation of 0..9 */
    sampler_init(&s, N, 1.0f, 1.0f, 4, 9);
    int outside = 0;
    for (int i = 0; i < DRAWS; i++) outside += ramp[sampler_sample(&s, ramp, NULL, 0)] < N - 4;
    sampler_free(&s);
    CHECK("top-k 4 of a shuffled ramp draws only the 4 largest", outside == 0, "%d draws outside", outside);
}

int main(void) {
    test_penalty();
    test_min_p_and_order();
    test_top_k_ties();
    return UNIT_EXIT();
}

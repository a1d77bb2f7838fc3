/*
 * tools/grade/probe_02.c — what the logits cannot show about chapter 2's exercises.
 *
 * Teacher-forced logits and greedy runs only ever extend a sequence, and a
 * model that recomputes every position (chapter 1) gives the same logits as
 * one that reuses its cache. So the grader also builds this probe around the
 * file being graded (#include GRADE_SOURCE) and checks, through the chapter's
 * own structures:
 *
 *  - the reuse rule, reusable_prefix(), on small hand-made cache states;
 *  - that model_forward() reuses the cache: after a call, the cached keys of
 *    the first positions are overwritten with garbage; a model that reuses
 *    them must now give different logits, one that recomputes them gives the
 *    same;
 *  - that the cache is rolled back when a sequence does not extend it (a
 *    diverging sequence, a rewind, a new prompt): the logits must equal a
 *    fresh model's.
 *
 * usage: probe_02 MODEL   (prints "ok    NAME" or "FAIL  NAME: why" lines)
 */
#include GRADE_SOURCE

#include <stdio.h>

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    failures += !pass;
}

/* --- the reuse rule on hand-made cache states ----------------------------- */

static void reuse_case(const int *cached, int n_cached, const int *tokens, int n, int want, const char *why) {
    int cache_ids[8] = {0};
    for (int i = 0; i < n_cached; i++) cache_ids[i] = cached[i];
    Activations a = {0};
    a.cached = cache_ids;
    a.n_cached = n_cached;
    int got = reusable_prefix(&a, tokens, n);
    char name[200], msg[300];
    snprintf(name, sizeof name, "reuse rule: %s", why);
    snprintf(msg, sizeof msg, "reusable_prefix() returned %d for %d cached and %d new tokens, expected %d", got,
             n_cached, n, want);
    result(name, got == want, msg);
}

static void check_reuse_rule(void) {
    int c[4] = {1, 10, 11, 12};
    int extend[5] = {1, 10, 11, 12, 13}, same[4] = {1, 10, 11, 12}, diverge[5] = {1, 10, 99, 12, 13};
    int other[3] = {1, 50, 51}, first_differs[3] = {2, 10, 11};
    reuse_case(c, 4, extend, 5, 4, "a sequence that extends the cache keeps all of it");
    reuse_case(c, 4, same, 4, 3, "the last position is always run again");
    reuse_case(c, 4, diverge, 5, 2, "only the common prefix is kept");
    reuse_case(c, 4, other, 3, 1, "a new prompt keeps only BOS");
    reuse_case(c, 4, first_differs, 3, 0, "nothing is kept when the first token differs");
    reuse_case(c, 0, extend, 5, 0, "an empty cache keeps nothing");
    reuse_case(c, 4, same, 1, 0, "one token keeps nothing");
}

/* --- the cache through model_forward() ------------------------------------- */

static float *copy_logits(const Model *m, const float *logits) {
    float *out = xmalloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    memcpy(out, logits, sizeof(float) * (size_t)m->cfg.vocab_size);
    return out;
}

/** Logits for tokens[0..n) from a model that has seen nothing else. */
static float *fresh_logits(const char *path, const int *tokens, int n) {
    Model *m = model_open(path, NULL);
    float *out = copy_logits(m, model_forward(m, tokens, n));
    model_close(m);
    return out;
}

/** Largest |a - b| over the vocabulary (NaN counts as infinitely far). */
static double max_diff(const Model *m, const float *a, const float *b) {
    double worst = 0;
    for (int i = 0; i < m->cfg.vocab_size; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

static void check_same(const char *name, const Model *m, const float *got, const float *want) {
    char msg[200];
    double d = max_diff(m, got, want);
    snprintf(msg, sizeof msg, "logits differ from a fresh model's by up to %g", d);
    result(name, d <= 1e-5, msg);
}

static void check_cache(const char *path) {
    int a[12] = {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310};
    int b[12] = {1, 300, 301, 302, 303, 400, 401, 402, 403, 404, 405, 406}; /* diverges at 5 */
    int c[3] = {1, 7, 8};
    Model *m = model_open(path, NULL);
    if (m->cfg.seq_len < 12 || m->cfg.vocab_size <= 406) {
        result("cache probe", 0, "the probe needs a model with seq_len >= 12 and a vocabulary of more than 406");
        model_close(m);
        return;
    }
    float *want, *got;

    /* Reuse: spoil positions 0..4 of every layer's keys after a call; the next call
     * that extends the sequence must read them, so its logits must change. */
    model_forward(m, a, 6);
    const ModelConfig *cfg = &m->cfg;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int t = 0; t < 5; t++)
            for (int i = 0; i < cfg->kv_dim; i++)
                m->a.keys[((size_t)l * (size_t)cfg->seq_len + (size_t)t) * (size_t)cfg->kv_dim + (size_t)i] =
                    (float)((i % 7) - 3) * 10.0f;
    got = copy_logits(m, model_forward(m, a, 7));
    want = fresh_logits(path, a, 7);
    result("cache reuse: positions already in the cache are not computed again", max_diff(m, got, want) > 0,
           "after the cached keys were overwritten the logits did not change: the call did not read the cache "
           "(it computed those positions again, or nothing at all)");
    free(got);
    free(want);
    model_close(m);

    m = model_open(path, NULL);
    model_forward(m, a, 12);
    got = copy_logits(m, model_forward(m, b, 10));
    want = fresh_logits(path, b, 10);
    check_same("roll-back: a sequence that diverges from the cache at position 5", m, got, want);
    free(got);
    free(want);

    got = copy_logits(m, model_forward(m, b, 4));
    want = fresh_logits(path, b, 4);
    check_same("roll-back: a rewind to a shorter prefix", m, got, want);
    free(got);
    free(want);

    model_forward(m, a, 12);
    got = copy_logits(m, model_forward(m, a, 12));
    want = fresh_logits(path, a, 12);
    check_same("the same sequence twice", m, got, want);
    free(got);
    free(want);

    got = copy_logits(m, model_forward(m, c, 3));
    want = fresh_logits(path, c, 3);
    check_same("roll-back: a new prompt", m, got, want);
    free(got);
    free(want);
    model_close(m);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    check_reuse_rule();
    check_cache(argv[1]);
    fflush(stdout);
    return failures ? 1 : 0;
}

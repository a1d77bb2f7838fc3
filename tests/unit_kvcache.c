/**
 * @file unit_kvcache.c
 * @brief Chapter 2's cache rule: a sequence that no longer extends the cached
 * one rolls the cache back to the longest common prefix, and the logits are
 * exactly those of a fresh model.
 */
#include "../chapters/02_kvcache.c"

#include <stdio.h>

#include "unit.h"

/** Logits for tokens[0..n) from a model that has seen nothing else. */
static float *fresh_logits(const char *path, const int *tokens, int n) {
    Model *m = model_open(path, NULL);
    float *out = xmalloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    memcpy(out, model_forward(m, tokens, n), sizeof(float) * (size_t)m->cfg.vocab_size);
    model_close(m);
    return out;
}

static void check_same(const char *name, Model *m, const float *got, const float *want) {
    int same = memcmp(got, want, sizeof(float) * (size_t)m->cfg.vocab_size) == 0;
    CHECK(name, same, "logits differ from a fresh model's");
}

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/tiny.bin", argc > 2 ? argv[2] : "build");
    FILE *f = fopen(path, "rb");
    if (!f) {
        SKIP("kv cache roll-back", "the tiny synthetic model is not built");
        return 0;
    }
    fclose(f);
    int a[12] = {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310};
    int b[12] = {1, 300, 301, 302, 303, 400, 401, 402, 403, 404, 405, 406}; /* diverges at 5 */
    Model *m = model_open(path, NULL);
    int V = m->cfg.vocab_size;
    float *got = xmalloc(sizeof(float) * (size_t)V), *want;

    model_forward(m, a, 12);
    memcpy(got, model_forward(m, b, 10), sizeof(float) * (size_t)V);
    want = fresh_logits(path, b, 10);
    check_same("a diverging sequence rolls the cache back to the common prefix", m, got, want);
    free(want);
    CHECK("the cache now holds the new sequence", m->a.n_cached == 10 && m->a.cached[7] == 402, "n_cached %d", m->a.n_cached);

    memcpy(got, model_forward(m, b, 4), sizeof(float) * (size_t)V);
    want = fresh_logits(path, b, 4);
    check_same("a rewind to a shorter prefix", m, got, want);
    free(want);

    memcpy(got, model_forward(m, a, 12), sizeof(float) * (size_t)V);
    memcpy(got, model_forward(m, a, 12), sizeof(float) * (size_t)V);
    want = fresh_logits(path, a, 12);
    check_same("the same sequence twice", m, got, want);
    free(want);

    int c[3] = {1, 7, 8};
    memcpy(got, model_forward(m, c, 3), sizeof(float) * (size_t)V);
    want = fresh_logits(path, c, 3);
    check_same("a new prompt from the first token on", m, got, want);
    free(want);

    free(got);
    model_close(m);
    return UNIT_EXIT();
}

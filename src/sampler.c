/**
 * @file sampler.c
 * @brief Greedy sampling and llama.cpp's chain of filters (see sampler.h).
 *
 * The order is llama.cpp's default chain (common/sampling.cpp: penalties,
 * top-k, top-p, min-p, temperature, draw), so that its habits mean the same here:
 *  1. repetition penalty: each distinct id among the last repeat_last_n
 *     recent ones has its logit divided by the penalty when positive and
 *     multiplied by it when not (dividing a negative logit would make the
 *     token more likely, the opposite of the intent);
 *  2. greedy (temperature 0) stops here: the first index of the largest
 *     penalized logit. With the penalty off that is argmax(logits), exactly
 *     what every chapter's greedy references were made with;
 *  3. the candidates sorted by logit (ties by id, so the order never depends
 *     on the sort algorithm), cut to the top k;
 *  4. top-p: the shortest prefix whose probabilities, at temperature 1 and
 *     renormalised over the top k, add up to at least top_p;
 *  5. min-p: the tokens whose probability is at least min_p times the
 *     likeliest one's, that is whose logit is at least max + log(min_p);
 *  6. the temperature divides what is left, and one token is drawn.
 * Top-k, top-p and min-p judge at temperature 1 and the temperature only
 * shapes the final draw (llama.cpp's order; before the book took
 * llama.cpp's options the temperature came first and there was no min-p).
 *
 * Cost: greedy is one pass over the vocabulary (two with the penalty, plus
 * the window). Sampling with top-k keeps the k best in a heap, O(V log k),
 * and sorts only those; without top-k it sorts the whole vocabulary,
 * O(V log V): a few milliseconds per token for 128k tokens.
 *
 * Checked by tests/unit_sampler.c (each filter on hand-made logits) and
 * tests/t_cli.sh (the options end to end).
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sampler_init(Sampler *s, int vocab_size, float temperature, float top_p, int top_k, uint64_t seed) {
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_p = top_p;
    s->top_k = top_k;
    s->min_p = 0.0f;
    s->repeat_penalty = 1.0f;
    s->repeat_last_n = 0;
    /* splitmix64 scrambles the user's seed; xorshift needs a non-zero state */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s->rng = (z ^ (z >> 31)) | 1;
    s->cand = xmalloc(checked_mul((size_t)vocab_size, sizeof(TokenProb), "sampler"));
    s->penalized = xmalloc(checked_mul((size_t)vocab_size, sizeof(float), "sampler"));
    s->seen = xcalloc((size_t)vocab_size, 1);
}

void sampler_free(Sampler *s) {
    free(s->cand);
    free(s->penalized);
    free(s->seen);
    s->cand = NULL;
    s->penalized = NULL;
    s->seen = NULL;
}

int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

float sampler_random(Sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    uint64_t r = s->rng * 0x2545F4914F6CDD1Dull;
    return (float)(r >> 40) / 16777216.0f; /* top 24 bits: exact in a float */
}

/*
 * Step 1. The logits the chain works on: @p logits itself when the penalty is
 * off, else a copy in which each distinct id of the window is penalized once
 * (an id seen five times is divided once, as in llama.cpp: the count only
 * matters to the frequency penalty, which the book leaves out).
 */
static const float *penalized_logits(Sampler *s, const float *logits, const int *recent, int n_recent) {
    if (s->repeat_penalty == 1.0f || s->repeat_last_n == 0 || !recent || n_recent <= 0) return logits;
    int window = (s->repeat_last_n < 0 || s->repeat_last_n > n_recent) ? n_recent : s->repeat_last_n;
    const int *ids = recent + (n_recent - window);
    memcpy(s->penalized, logits, sizeof(float) * (size_t)s->vocab_size);
    for (int i = 0; i < window; i++) {
        int id = ids[i];
        if (id < 0 || id >= s->vocab_size || s->seen[id]) continue;
        s->seen[id] = 1;
        float *l = &s->penalized[id];
        *l = *l <= 0.0f ? *l * s->repeat_penalty : *l / s->repeat_penalty;
    }
    for (int i = 0; i < window; i++)
        if (ids[i] >= 0 && ids[i] < s->vocab_size) s->seen[ids[i]] = 0;
    return s->penalized;
}

/** 1 when @p a ranks before @p b: the larger logit, and the smaller id among equals. */
static int ranks_before(const TokenProb *a, const TokenProb *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int by_rank(const void *a, const void *b) {
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* A heap of the k best so far, the worst of them at the root: a candidate
 * that ranks before the root replaces it and sinks to its place. */
static void sink(TokenProb *heap, int k, int i) {
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && ranks_before(&heap[worst], &heap[l])) worst = l;
        if (r < k && ranks_before(&heap[worst], &heap[r])) worst = r;
        if (worst == i) return;
        TokenProb t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/** Step 3: s->cand[0..k) = the k best of @p x, in rank order; returns k (the whole vocabulary when top_k is off). */
static int best_candidates(Sampler *s, const float *x) {
    int n = s->vocab_size, k = (s->top_k > 0 && s->top_k < n) ? s->top_k : n;
    TokenProb *c = s->cand;
    if (k == n) {
        for (int i = 0; i < n; i++) c[i] = (TokenProb){x[i], 0.0f, i};
    } else {
        for (int i = 0; i < k; i++) c[i] = (TokenProb){x[i], 0.0f, i};
        for (int i = k / 2 - 1; i >= 0; i--) sink(c, k, i);
        for (int i = k; i < n; i++) {
            TokenProb t = {x[i], 0.0f, i};
            if (ranks_before(&t, &c[0])) {
                c[0] = t;
                sink(c, k, 0);
            }
        }
    }
    qsort(c, (size_t)k, sizeof(TokenProb), by_rank);
    return k;
}

/** Softmax of cand[0..n) (sorted: cand[0] holds the largest logit) at @p temperature, into .prob. */
static void softmax_candidates(TokenProb *cand, int n, float temperature) {
    float max = cand[0].logit;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        cand[i].prob = expf((cand[i].logit - max) / temperature);
        sum += cand[i].prob;
    }
    for (int i = 0; i < n; i++) cand[i].prob = (float)(cand[i].prob / sum);
}

/** Step 4: the length of the shortest prefix of cand[0..n) whose probabilities reach @p mass. */
static int nucleus_size(const TokenProb *cand, int n, double mass) {
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += cand[i].prob;
        if (cum >= mass) return i + 1;
    }
    return n;
}

/** Step 5: how many of cand[0..n) have a logit of at least max + log(min_p) (the first always does). */
static int min_p_size(const TokenProb *cand, int n, float min_p) {
    float floor_logit = cand[0].logit + logf(min_p);
    int i = 1;
    while (i < n && cand[i].logit >= floor_logit) i++;
    return i;
}

int sampler_sample(Sampler *s, const float *logits, const int *recent, int n_recent) {
    const float *x = penalized_logits(s, logits, recent, n_recent);
    if (s->temperature == 0.0f) return argmax(x, s->vocab_size);
    int n = best_candidates(s, x);
    if (s->top_p < 1.0f) {
        softmax_candidates(s->cand, n, 1.0f);
        n = nucleus_size(s->cand, n, s->top_p);
    }
    if (s->min_p > 0.0f) n = min_p_size(s->cand, n, s->min_p);
    /* step 6: the draw, at the temperature, among what is left */
    softmax_candidates(s->cand, n, s->temperature);
    double kept = 0;
    for (int i = 0; i < n; i++) kept += s->cand[i].prob;
    double coin = sampler_random(s) * kept, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->cand[i].prob;
        if (coin < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* rounding: the coin landed at the very end */
}

/**
 * @file sampler.c
 * @brief Greedy and top-k/top-p sampling (see sampler.h).
 *
 * Sampling order: divide the logits by the temperature, softmax, sort the
 * candidates by probability (ties by id, so the order never depends on the
 * sort algorithm), cut to the top k, cut to the nucleus (the shortest prefix
 * whose probabilities add up to at least top_p), renormalise, and draw.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void sampler_init(Sampler *s, int vocab_size, float temperature, float top_p, int top_k, uint64_t seed) {
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_p = top_p;
    s->top_k = top_k;
    /* splitmix64 scrambles the user's seed; xorshift needs a non-zero state */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s->rng = (z ^ (z >> 31)) | 1;
    s->cand = xmalloc(sizeof(TokenProb) * (size_t)vocab_size);
}

void sampler_free(Sampler *s) {
    free(s->cand);
    s->cand = NULL;
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

static int by_prob_desc(const void *a, const void *b) {
    const TokenProb *x = a, *y = b;
    if (x->prob != y->prob) return x->prob > y->prob ? -1 : 1;
    return x->id - y->id;
}

/** Fill s->cand with softmax(logits / temperature), sorted; returns vocab_size. */
static int sorted_probabilities(Sampler *s, const float *logits) {
    int n = s->vocab_size;
    float max = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float p = expf((logits[i] - max) / s->temperature);
        s->cand[i] = (TokenProb){p, i};
        sum += p;
    }
    for (int i = 0; i < n; i++) s->cand[i].prob = (float)(s->cand[i].prob / sum);
    qsort(s->cand, (size_t)n, sizeof(TokenProb), by_prob_desc);
    return n;
}

static double probability_mass(const TokenProb *cand, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += cand[i].prob;
    return sum;
}

/** Length of the shortest prefix of cand[0..n) whose probabilities reach @p mass. */
static int nucleus_size(const TokenProb *cand, int n, double mass) {
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += cand[i].prob;
        if (cum >= mass) return i + 1;
    }
    return n;
}

int sampler_sample(Sampler *s, const float *logits) {
    if (s->temperature == 0.0f) return argmax(logits, s->vocab_size);
    int n = sorted_probabilities(s, logits);
    if (s->top_k > 0 && s->top_k < n) n = s->top_k;
    /* top-p applies to the top-k set renormalised, as llama.cpp's chain does */
    if (s->top_p < 1.0f) n = nucleus_size(s->cand, n, s->top_p * probability_mass(s->cand, n));
    double kept = probability_mass(s->cand, n);
    double coin = sampler_random(s) * kept, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->cand[i].prob;
        if (coin < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* rounding: the coin landed at the very end */
}

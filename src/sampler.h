/**
 * @file sampler.h
 * @brief Choosing the next token from the logits: greedy, or a chain of
 * filters (repetition penalty, top-k, top-p, min-p, temperature) and a draw
 * from a seeded, reproducible generator.
 *
 * The chain is llama.cpp's default one, in its order: the penalty changes the
 * raw logits of the tokens seen lately; top-k, top-p and min-p then cut the
 * candidates, judged at temperature 1; the temperature only shapes the draw
 * among the survivors. Greedy (temperature 0) takes the largest logit after
 * the penalty, so that with the penalty off it is exactly argmax(logits).
 */
#ifndef LLAMABOOK_SAMPLER_H
#define LLAMABOOK_SAMPLER_H

#include <stdint.h>

/** A candidate token during sampling. */
typedef struct {
    float logit; /**< after the penalty */
    float prob;  /**< softmax over the candidates still in the running */
    int id;
} TokenProb;

/** Sampling settings and state. */
typedef struct {
    int vocab_size;
    float temperature;    /**< 0 = greedy (argmax) */
    float top_p;          /**< keep the smallest set of tokens with cumulative probability >= top_p (1 = off) */
    int top_k;            /**< keep only the k most likely tokens (0 = off) */
    float min_p;          /**< keep the tokens at least min_p times as likely as the likeliest (0 = off) */
    float repeat_penalty; /**< divide a recent token's positive logit by it, multiply a negative one (1 = off) */
    int repeat_last_n;    /**< how many of the recent ids the penalty looks at (0 = off, -1 = all given) */
    uint64_t rng;         /**< xorshift64* state; never 0 */
    TokenProb *cand;      /**< (vocab_size) scratch */
    float *penalized;     /**< (vocab_size) the logits after the penalty */
    unsigned char *seen;  /**< (vocab_size) 1 for an id of the penalty's window, while it is applied */
} Sampler;

/**
 * Temperature, top-p and top-k as given; min-p 0 and the penalty off (set the
 * fields min_p, repeat_penalty and repeat_last_n afterwards to turn them on).
 */
void sampler_init(Sampler *s, int vocab_size, float temperature, float top_p, int top_k, uint64_t seed);
void sampler_free(Sampler *s);

/**
 * The next token for @p logits (vocab_size values, not modified). @p recent
 * are the ids before it, oldest first (@p n_recent of them; NULL and 0 when
 * the penalty is off): the penalty applies once to each distinct id among the
 * last repeat_last_n of them.
 */
int sampler_sample(Sampler *s, const float *logits, const int *recent, int n_recent);

/** Index of the largest value, the first one among equal maxima. */
int argmax(const float *x, int n);

/** A uniform float in [0, 1) from the sampler's generator. */
float sampler_random(Sampler *s);

#endif

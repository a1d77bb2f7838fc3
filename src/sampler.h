/**
 * @file sampler.h
 * @brief Choosing the next token from the logits: greedy, or temperature +
 * top-k + top-p (nucleus) sampling with a seeded, reproducible generator.
 */
#ifndef LLAMABOOK_SAMPLER_H
#define LLAMABOOK_SAMPLER_H

#include <stdint.h>

/** A candidate token during sampling. */
typedef struct {
    float prob;
    int id;
} TokenProb;

/** Sampling settings and state. */
typedef struct {
    int vocab_size;
    float temperature; /**< 0 = greedy (argmax) */
    float top_p;       /**< keep the smallest set of tokens with cumulative probability >= top_p (1 = off) */
    int top_k;         /**< keep only the k most likely tokens (0 = off) */
    uint64_t rng;      /**< xorshift64* state; never 0 */
    TokenProb *cand;   /**< (vocab_size) scratch */
} Sampler;

void sampler_init(Sampler *s, int vocab_size, float temperature, float top_p, int top_k, uint64_t seed);
void sampler_free(Sampler *s);

/** The next token for @p logits (vocab_size values, not modified). */
int sampler_sample(Sampler *s, const float *logits);

/** Index of the largest value, the first one among equal maxima. */
int argmax(const float *x, int n);

/** A uniform float in [0, 1) from the sampler's generator. */
float sampler_random(Sampler *s);

#endif

/**
 * @file lgts.h
 * @brief LGTS files: teacher-forced logits of every position of a token sequence.
 *
 * The format of the reference outputs in ../shared/reference (little-endian):
 * `"LGTS"`, int32 version 1, int32 n_tokens, int32 vocab, int32 tokens[n_tokens],
 * float32 logits[n_tokens][vocab]. Row p holds the logits after tokens[0..p],
 * the prediction for position p+1.
 */
#ifndef LLAMABOOK_LGTS_H
#define LLAMABOOK_LGTS_H

#include "util.h"

/** One LGTS file in memory. */
typedef struct {
    int n_tokens;  /**< rows */
    int vocab;     /**< columns */
    int *tokens;   /**< (n_tokens) the fed ids, BOS first */
    float *logits; /**< (n_tokens, vocab) */
} Lgts;

/** Read @p path; fatal() naming the file on any malformation. */
Lgts lgts_read(const char *path);

/**
 * Write @p l into @p out (from output_create(), util.h) and commit it: the
 * file appears complete under its name, or not at all. fatal() on error, with
 * the reason.
 */
void lgts_write(OutputFile *out, const Lgts *l);

void lgts_free(Lgts *l);

#endif

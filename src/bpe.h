/**
 * @file bpe.h
 * @brief Byte-level BPE, private to tokenizer.c (and its tests): GPT-2's
 * byte-to-unicode mapping, the pre-tokenizers, the merges by rank.
 *
 * tokenizer.c owns the vocabulary (pieces, special tokens, the look-up by
 * text); this part knows what is particular to byte-level BPE: how a stretch
 * of text is cut into words, and how each word's bytes merge into tokens.
 */
#ifndef LLAMABOOK_BPE_H
#define LLAMABOOK_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/** How a text is cut into words before merging (tokenizer.ggml.pre). */
typedef enum {
    PRE_GPT2,    /**< GPT-2: contractions, letters, numbers and other runs, each with one space before it */
    PRE_LLAMA3,  /**< Llama 3: as GPT-2, but numbers in groups of three, newlines kept together */
    PRE_QWEN2,   /**< Qwen2: Llama 3's rules with every digit alone */
    PRE_SMOLLM,  /**< SmolLM: every digit alone, then GPT-2's rules */
    PRE_DEFAULT  /**< the rules for a vocabulary that names none ("default") */
} PreTokenizer;

/** What a pre-tokenizer name means. */
typedef struct {
    PreTokenizer split;
    int ignore_merges; /**< a whole word that is a token becomes that token, merged or not (Llama 3) */
    int add_bos;       /**< the default of tokenizer.ggml.add_bos_token */
} BpeRules;

/** The rules for the @p len bytes of pre-tokenizer name @p name; 0 if the name is unknown. */
int bpe_rules(const char *name, size_t len, BpeRules *out);

/**
 * Token text as GGUF stores it (every byte as one character of GPT-2's
 * byte-to-unicode map) to the raw bytes, into @p out (room for @p len bytes).
 * Returns the number of bytes, or -1 if the text is not in the mapped form.
 */
long bpe_unmap(const char *s, size_t len, char *out);

/** The character (code point) that GPT-2's map gives byte @p b. */
unsigned bpe_byte_to_char(unsigned char b);

/** Called for each word [start, end) of the text (byte offsets); returns 0 to stop. */
typedef int (*BpeWordFn)(void *ctx, size_t start, size_t end);

/**
 * Cut the @p len bytes at @p text into words by the rules of @p split, calling
 * @p word for each in order. The words cover the text. Returns 0 if @p word
 * stopped it, else 1. Reentrant; no allocation.
 */
int bpe_split(PreTokenizer split, const char *text, size_t len, BpeWordFn word, void *ctx);

/** The merges, ready for encoding. */
typedef struct Bpe Bpe;

/**
 * The merges of tokenizer.ggml.merges ("left right", ranked by position) over
 * @p keys, a vocabulary whose pieces are the tokens' texts in raw bytes as
 * llama.cpp compares them (see tokenizer.c). A merge that is not two token
 * texts joined by one space, or whose result is no token, is a fatal() error
 * naming @p origin and the entry.
 */
Bpe *bpe_build(const char *origin, const Vocab *keys, const char *const *merges, const size_t *merge_lens,
               int n_merges, const BpeRules *rules);

void bpe_free(Bpe *b);

/** The buffers of one encoding, kept from word to word (zero-initialise; bpe_work_free() after). */
typedef struct {
    unsigned char *bytes; /**< a word's bytes */
    size_t bytes_cap;
    int *id, *prev, *next; /**< per symbol */
    size_t sym_cap;
    struct BpePair *heap;
    size_t heap_n, heap_cap;
    size_t largest_word; /**< most symbols merged at once */
} BpeWork;

void bpe_work_free(BpeWork *w);

/** Where encoded ids go: returns 0 to stop (the reason is the callback's to report). */
typedef int (*BpeEmitFn)(void *sink, int id);

/**
 * Encode the @p len bytes at @p text: words by the pre-tokenizer, then each
 * word's bytes merged, lowest rank first. Returns 0 if @p emit stopped, or if
 * a word is too long for int counts (message in @p err).
 */
int bpe_encode(const Bpe *b, const char *text, size_t len, BpeWork *w, BpeEmitFn emit, void *sink, char *err,
               size_t err_len);

#endif

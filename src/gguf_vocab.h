/**
 * @file gguf_vocab.h
 * @brief The vocabulary of a GGUF file, whichever kind it is (chapter 8).
 *
 * Chapters 5 to 7 read SentencePiece vocabularies themselves. Chapter 8 reads
 * today's files too: byte-level BPE ("gpt2") with its merges and pre-tokenizer,
 * the BOS/EOS/EOT ids, add_bos_token and the chat template. The driver's
 * --tokenize mode uses the same reader on a vocabulary-only GGUF, which has no
 * tensors for a chapter to load.
 */
#ifndef LLAMABOOK_GGUF_VOCAB_H
#define LLAMABOOK_GGUF_VOCAB_H

#include "gguf.h"
#include "tokenizer.h"

/**
 * The vocabulary stored in @p g (read from @p path), or NULL when it has none.
 * @p n_rows is the embedding's row count that the token count must equal (-1: any).
 * Every problem (an unknown tokenizer.ggml.model or .pre, a count that does not
 * match, an id outside the vocabulary, a tokenizer key it does not understand) is a
 * fatal() error naming @p path and the key.
 */
Vocab *vocab_from_gguf(const char *path, const GgufFile *g, int n_rows);

/** 1 if @p key is a tokenizer.* key vocab_from_gguf() reads or knows to be harmless. */
int vocab_gguf_understands(const char *key);

#endif

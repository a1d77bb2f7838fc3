/**
 * @file llama2c.h
 * @brief Chapter 1's reader of llama2.c checkpoints, shared by chapters 1-4 and tools/gguf_convert.c.
 *
 * A llama2.c "version 0" checkpoint (the book's formats appendix, docs/formats.md) is a header
 * of seven int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len — and
 * then nothing but fp32 arrays, one after another, in a fixed order. A negative vocab_size
 * says that a separate classifier follows the other arrays; a positive one that the
 * classifier is the token embedding itself.
 *
 * llama2c_open() maps the file, checks the header and that the file holds exactly the bytes
 * the header implies (no fewer, no trailing ones), and hands out the shape (a ModelConfig)
 * and a pointer to each array inside the mapping. What a program then does with the arrays
 * is its own business: chapters 1 and 2 compute with them where they lie, chapters 3 and 4
 * quantize them while they load, the converter writes them into a GGUF file.
 *
 * Every problem ends in fatal(): one line naming the file and what is wrong with it. The
 * caller says who it is ("chapter 4", "gguf_convert"), so that a message about what the
 * program reads names the program that is running.
 */
#ifndef LLAMABOOK_LLAMA2C_H
#define LLAMABOOK_LLAMA2C_H

#include "model.h"
#include "util.h"

/** Bytes of the header: seven int32. The first array starts right after it. */
enum { LLAMA2C_HEADER_BYTES = 7 * 4 };

/**
 * The checkpoint's fp32 arrays, in file order: pointers into the mapping. Row-major, one
 * matrix row per output; the per-layer arrays hold the layers one after another.
 */
typedef struct {
    const float *token_embedding; // (vocab_size, dim)
    const float *rms_att;         // (n_layers, dim)
    const float *wq;              // (n_layers, dim, dim)
    const float *wk;              // (n_layers, kv_dim, dim)
    const float *wv;              // (n_layers, kv_dim, dim)
    const float *wo;              // (n_layers, dim, dim)
    const float *rms_ffn;         // (n_layers, dim)
    const float *w1;              // (n_layers, hidden_dim, dim)  gate
    const float *w2;              // (n_layers, dim, hidden_dim)  down
    const float *w3;              // (n_layers, hidden_dim, dim)  up
    const float *rms_final;       // (dim)
    const float *freq_cis_real;   // (seq_len, head_size / 2)  obsolete RoPE tables: nothing reads them
    const float *freq_cis_imag;   // (seq_len, head_size / 2)
    const float *wcls;            // (vocab_size, dim)  = token_embedding when shared
} Llama2cWeights;

/** An open checkpoint: the mapping, its shape and its arrays. */
typedef struct {
    MappedFile file;       // the whole file, mapped read-only
    ModelConfig cfg;       // the header, checked, with head_size, kv_dim, rope_dim, rms_eps, rope_theta
    int shared_classifier; // 1: wcls is token_embedding (the header's vocab_size was positive)
    Llama2cWeights w;      // the arrays, inside file
} Llama2cCheckpoint;

/**
 * Map and check the checkpoint at @p path. @p who is the program that reads it ("chapter 1",
 * "gguf_convert"), for the messages that speak of it. Never returns on a bad file: missing,
 * a directory, empty, a GGUF file, a header too short, sizes that are not positive or do not
 * divide (dim by n_heads, n_heads by n_kv_heads, an odd head size), a context longer than
 * MODEL_MAX_CONTEXT (model.h), sizes whose product
 * overflows 64 bits, or a file size other than the one the header implies.
 */
Llama2cCheckpoint llama2c_open(const char *path, const char *who);

/**
 * --check-tensors: stop with one line naming the first weight that is NaN or infinite, as
 * `tensor wq[3], row 17: NaN` (array, layer, row of that layer's matrix).
 */
void llama2c_check_tensors(const Llama2cCheckpoint *ck, const char *path);

/** Unmap the file; every pointer of @p ck is invalid afterwards. */
void llama2c_close(Llama2cCheckpoint *ck);

#endif

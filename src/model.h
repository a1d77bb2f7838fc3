/**
 * @file model.h
 * @brief The contract between a chapter and the shared driver.
 *
 * Every chapter of the book is one C file that implements the functions below
 * for its own `struct Model`. The driver (src/main.c) knows nothing else about
 * a chapter: it opens a model, asks for its shape, feeds it token sequences and
 * reads back logits. That is why one command line, one tokenizer, one sampler
 * and one test suite serve every chapter, and why two chapters can be compared
 * on exactly the same inputs.
 *
 * The central call is model_forward(): given the *whole* token sequence so
 * far, return the logits that predict the next token. Chapter 1 recomputes
 * everything from position 0 on each call; chapter 2 remembers what it has
 * already seen. The caller cannot tell the difference except by the clock.
 */
#ifndef LLAMABOOK_MODEL_H
#define LLAMABOOK_MODEL_H

#include <stddef.h>

struct Vocab;

/**
 * The longest context any chapter accepts from a file (2^20 positions). A file may claim
 * up to 2^31 - 1; positions are ints, and a limit here keeps every position arithmetic
 * (seq_len + 1, n_layers × seq_len × kv_dim) far from overflowing.
 */
#define MODEL_MAX_CONTEXT (1 << 20)

/** The shape of a LLaMA-style transformer, as every chapter reports it. */
typedef struct {
    int dim;        /**< width of the residual stream (embedding length) */
    int hidden_dim; /**< inner width of the feed-forward network */
    int n_layers;   /**< number of transformer blocks */
    int n_heads;    /**< query heads per attention layer */
    int n_kv_heads; /**< key/value heads (fewer than n_heads: grouped-query attention) */
    int vocab_size; /**< number of tokens, rows of the embedding and the classifier */
    int seq_len;    /**< context length: the most positions a sequence may use */
    int head_size;  /**< dim / n_heads */
    int kv_dim;     /**< head_size * n_kv_heads: width of one position's keys (or values) */
    int rope_dim;   /**< how many dimensions of each head RoPE rotates (= head_size here) */
    float rms_eps;  /**< epsilon inside RMSNorm's square root */
    float rope_theta; /**< RoPE base frequency (10000 for LLaMA 1/2) */
} ModelConfig;

/** What the driver asks of a chapter when it opens a model. */
typedef struct {
    int n_threads; /**< worker threads; chapters before 4 ignore it (0 = all online CPUs) */
    int verbose;   /**< print load details (tensor types, memory) on stderr */
    int check_tensors; /**< --check-tensors: refuse a weight that is NaN or infinite, naming it */
    int n_batch;       /**< -b: the most positions model_forward_batch() takes at once (chapter 7 on) */
    int n_ctx;         /**< -c: the most positions to keep (0 = the file's context); chapter 8 on sizes its
                            KV cache by it and reports it as seq_len; the driver keeps every chapter within it */
    int n_seqs;        /**< -np: how many sequences the model keeps caches for at once (chapter 9 on; 0 or 1 = one) */
} ModelOptions;

/** A chapter's model. Each chapter defines the struct its own way. */
typedef struct Model Model;

/**
 * Open the model file at @p path. On any problem (missing, truncated,
 * malformed) it prints one line on stderr naming the file and the problem and
 * exits with status 1: it never returns NULL.
 */
Model *model_open(const char *path, const ModelOptions *opts);

/** The model's shape. */
const ModelConfig *model_config(const Model *m);

/**
 * Logits predicting the token after `tokens[n-1]`, given the whole sequence
 * `tokens[0..n-1]` (tokens[0] is BOS, at position 0). 1 <= n <= seq_len.
 * Returns a (vocab_size) array owned by the model, valid until the next call.
 */
const float *model_forward(Model *m, const int *tokens, int n);

/**
 * The logits of several positions at once: row j of @p out (n - first rows of vocab_size
 * floats) predicts the token after tokens[first + j], exactly as model_forward(m, tokens,
 * first + j + 1) would return it. 0 <= first < n <= seq_len, and n - first <= the batch size
 * of ModelOptions. Chapter 7 runs the positions the cache lacks through each layer together;
 * chapters 1-6 do not define it, and the driver's own definition (src/main.c, a weak symbol)
 * calls model_forward() once per row for them. Returns the rows written: all n - first (the
 * driver's version stops early after Ctrl-C, as its loop would).
 */
int model_forward_batch(Model *m, const int *tokens, int first, int n, float *out);

/** One sequence's share of a model_forward_seqs() step. */
typedef struct {
    int seq;           /**< whose cache: 0 .. ModelOptions.n_seqs - 1; each at most once per call */
    const int *tokens; /**< (n) the sequence's whole tokens so far, tokens[0] BOS at position 0 */
    int n;             /**< its length, 1 <= n <= seq_len */
    float *logits;     /**< (vocab_size) where the logits predicting the token after tokens[n-1] go */
} ModelSeqStep;

/**
 * One step of several sequences: for each of the @p n_steps entries, the logits that
 * model_forward(tokens, n) would return on a model holding only that sequence, bit for bit.
 * Each sequence has its own KV cache and keeps the longest prefix of @p tokens it already holds,
 * as model_forward() does. Chapter 9 runs the positions every cache lacks as the rows of one
 * batch (a token of each decoding sequence and pieces of new prompts, at most the batch size of
 * ModelOptions per pass), so each weight matrix is read once for all of them. Chapters 1-8 do
 * not define it: the driver's definition (src/main.c, a weak symbol) calls model_forward() for
 * each entry in turn on their one cache, which recomputes a sequence whenever another ran in
 * between. Returns n_steps.
 */
int model_forward_seqs(Model *m, const ModelSeqStep *steps, int n_steps);

/** Bytes of weights read from memory to produce one token (for GB/s figures). */
size_t model_weight_bytes(const Model *m);

/**
 * The vocabulary stored in the model file itself, or NULL when the format has
 * none (llama2.c checkpoints keep it in a separate tokenizer file).
 */
const struct Vocab *model_vocab(const Model *m);

/** Release everything model_open() took. */
void model_close(Model *m);

/** One line naming the chapter, for --help and benchmark tables. */
extern const char model_chapter_title[];

#endif

/**
 * @file 01_naive.c
 * @brief Chapter 1: a LLaMA forward pass in plain fp32 C, recomputed from scratch for every token.
 *
 * @section ch01_model The model
 * A LLaMA-style language model turns a sequence of token ids into a score
 * (logit) for every possible next token. Each token id selects one row of the
 * embedding table, a vector of `dim` floats: the *residual stream*. Then
 * `n_layers` identical blocks each add two corrections to that stream:
 *
 *  1. **Attention.** RMSNorm the stream, project it to a query, a key and a
 *     value (`wq`, `wk`, `wv`), rotate query and key by an angle proportional
 *     to the position (RoPE), and let each position's query look at the keys
 *     of itself and every earlier position. The softmax of those scores
 *     weights the values; `wo` projects the result back into the stream. With
 *     grouped-query attention several query heads share one key/value head.
 *  2. **Feed-forward (SwiGLU).** RMSNorm again, then `w2(silu(w1 x) * w3 x)`.
 *
 * A final RMSNorm and the classifier (`wcls`, here shared with the embedding
 * table) turn the last position's stream into `vocab_size` logits.
 *
 * @section ch01_cost Why this chapter is slow: O(n²)
 * The driver asks model_forward() for the next token's logits given the whole
 * sequence so far. This chapter answers the simplest way: it runs every
 * position from 0 to n-1 through every layer, every time. Generating n tokens
 * therefore costs 1 + 2 + ... + n = n(n+1)/2 position passes, each of which
 * multiplies the stream by every weight matrix: O(n²) matrix work where O(n)
 * would do. (Attention adds an O(n) term per position on top, O(n³) in all,
 * but for short contexts the weight matrices dominate.) Nothing computed for
 * a position ever changes when a later token arrives — chapter 2 uses exactly
 * that.
 *
 * @section ch01_cost2 What it costs
 * Memory: the weights are mapped from the file, not copied (the kernel pages
 * them in as they are read); activations are a few vectors of `dim` or
 * `hidden_dim` floats, plus keys and values for the positions of one pass,
 * (n_layers, seq_len, kv_dim) each, rebuilt from position 0 on every call.
 *
 * @section ch01_check How it is checked
 * Against llama2.c's `run.c` (an independent program): greedy token ids for
 * the five reference prompts must be identical over the full length, and the
 * teacher-forced logits within 1e-4. To make that possible every sum here is
 * computed in the same order and precision as the reference: plain fp32,
 * left to right, no fused multiply-add (the Makefile builds chapters 1-3 with
 * `-ffp-contract=off`).
 *
 * @section ch01_left_out What it leaves out on purpose
 * Caching (chapter 2), quantization (chapter 3), SIMD and threads (chapter 4)
 * and GGUF files (chapter 5). It reads only llama2.c "version 0" checkpoints, with
 * its reader src/llama2c.c, which chapters 2-4 and tools/gguf_convert.c share.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama2c.h"
#include "model.h"
#include "util.h"

const char model_chapter_title[] = "llamabook chapter 1: naive fp32 forward pass (recomputes every position)";

/* ======================================================================== */
/* The weights                                                              */
/* ======================================================================== */

/**
 * The weights are the checkpoint's fp32 arrays themselves, used where they lie in the mapped
 * file (src/llama2c.h): token_embedding (vocab_size, dim); for each of the n_layers layers
 * rms_att and rms_ffn (dim), wq and wo (dim, dim), wk and wv (kv_dim, dim), w1 and w3
 * (hidden_dim, dim), w2 (dim, hidden_dim); rms_final (dim); wcls (vocab_size, dim), which is
 * token_embedding itself when the classifier is shared. Row-major, one matrix row per output.
 */
typedef Llama2cWeights Weights;

/** Scratch vectors for one position, and keys/values for a whole pass. */
typedef struct {
    float *x;      // (dim)  residual stream
    float *xb;     // (dim)  normalised stream; attention output
    float *xb2;    // (dim)  a projection to add back into x
    float *q;      // (dim)  queries of all heads
    float *hb;     // (hidden_dim)  FFN gate
    float *hb2;    // (hidden_dim)  FFN up
    float *att;    // (n_heads, seq_len)  attention weights
    float *keys;   // (n_layers, seq_len, kv_dim)  recomputed from position 0 on every call
    float *values; // (n_layers, seq_len, kv_dim)
    float *logits; // (vocab_size)
} Activations;

struct Model {
    ModelConfig cfg;
    MappedFile file;
    Weights w;
    Activations a;
};

/* ======================================================================== */
/* Loading a llama2.c checkpoint                                            */
/* ======================================================================== */

/**
 * Map the checkpoint and check it (src/llama2c.c: the header, and a file of exactly the size
 * the header implies), then point every weight array into the mapping: nothing is copied,
 * and the file stays mapped for as long as the model lives. --check-tensors reads every
 * weight once more, for a NaN or an infinity.
 */
static void map_weights(Model *m, const char *path, int check_tensors) {
    Llama2cCheckpoint ckpt = llama2c_open(path, "chapter 1");
    if (check_tensors) llama2c_check_tensors(&ckpt, path);
    m->cfg = ckpt.cfg;
    m->file = ckpt.file;
    m->w = ckpt.w;
}

static void alloc_activations(Activations *a, const ModelConfig *c) {
    size_t kv_cells = checked_mul(checked_mul((size_t)c->n_layers, (size_t)c->seq_len, "kv"), (size_t)c->kv_dim, "kv");
    a->x = xcalloc((size_t)c->dim, sizeof(float));
    a->xb = xcalloc((size_t)c->dim, sizeof(float));
    a->xb2 = xcalloc((size_t)c->dim, sizeof(float));
    a->q = xcalloc((size_t)c->dim, sizeof(float));
    a->hb = xcalloc((size_t)c->hidden_dim, sizeof(float));
    a->hb2 = xcalloc((size_t)c->hidden_dim, sizeof(float));
    a->att = xcalloc(checked_mul((size_t)c->n_heads, (size_t)c->seq_len, "att"), sizeof(float));
    a->keys = xcalloc(kv_cells, sizeof(float));
    a->values = xcalloc(kv_cells, sizeof(float));
    a->logits = xcalloc((size_t)c->vocab_size, sizeof(float));
}

static void free_activations(Activations *a) {
    free(a->x); free(a->xb); free(a->xb2); free(a->q); free(a->hb); free(a->hb2);
    free(a->att); free(a->keys); free(a->values); free(a->logits);
}

/* ======================================================================== */
/* The building blocks                                                      */
/* ======================================================================== */

/** out = x / sqrt(mean(x²) + eps) * weight. */
static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
    /* EXERCISE 1.1 BEGIN: RMSNorm
     * Task: Normalise x by its root mean square, then scale each element by its weight:
     *   out[i] = weight[i] * (x[i] / sqrt(mean(x[0..n-1]^2) + eps)).
     * Contract: x, weight and out hold n floats each; out may be the same array as x
     *   (the final norm in model_forward() works in place).
     * Hint: Sum the squares in a float, left to right; compute scale = 1 / sqrtf(...)
     *   once, then out[i] = weight[i] * (scale * x[i]): that order matches llama2.c
     *   bit for bit.
     * Graded: Every layer normalises twice and the output once, so a wrong norm shows
     *   in the logits from position 0 on.
     * Stub: (void)out; (void)x; (void)weight; (void)n; (void)eps;
     */
    float sum_sq = 0.0f;
    for (int i = 0; i < n; i++) sum_sq += x[i] * x[i];
    float scale = 1.0f / sqrtf(sum_sq / n + eps);
    for (int i = 0; i < n; i++) out[i] = weight[i] * (scale * x[i]);
    /* EXERCISE 1.1 END */
}

/**
 * out = W x, for W of shape (n_out, n_in): one dot product per output row.
 *
 * Rows go four at a time. Each row's sum is still added left to right, one
 * product after another, so it rounds exactly as llama2.c's loop does; but
 * four independent sums are in flight, and the CPU need not wait for one
 * addition (3-4 cycles) to finish before it starts the next.
 */
static void matmul(float *out, const float *x, const float *w, int n_in, int n_out) {
    int i = 0;
    for (; i + 4 <= n_out; i += 4) {
        const float *r0 = w + (size_t)i * (size_t)n_in, *r1 = r0 + n_in, *r2 = r1 + n_in, *r3 = r2 + n_in;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int j = 0; j < n_in; j++) {
            s0 += r0[j] * x[j];
            s1 += r1[j] * x[j];
            s2 += r2[j] * x[j];
            s3 += r3[j] * x[j];
        }
        out[i] = s0, out[i + 1] = s1, out[i + 2] = s2, out[i + 3] = s3;
    }
    for (; i < n_out; i++) {
        const float *row = w + (size_t)i * (size_t)n_in;
        float sum = 0.0f;
        for (int j = 0; j < n_in; j++) sum += row[j] * x[j];
        out[i] = sum;
    }
}

/** In place: x = exp(x - max) / sum(exp(x - max)). */
static void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/**
 * Rotary position embedding: in each head, rotate the adjacent pair
 * (2i, 2i+1) by the angle pos * theta^(-2i/head_size). A dot product of two
 * rotated vectors then depends only on their distance, not on where they are.
 */
static void rope(float *vec, int n_heads, int head_size, int pos, float theta) {
    /* EXERCISE 1.2 BEGIN: RoPE
     * Task: In each of the n_heads heads of vec (head_size floats each), rotate every
     *   pair of neighbours (j, j+1) of the head, j even, by the angle pos * theta^(-j/head_size):
     *   (a, b) becomes (a cos - b sin, a sin + b cos).
     * Contract: In place; head_size is even; pos is the absolute position (0 for BOS,
     *   where nothing turns).
     * Hint: The angle depends on j and pos but not on the head; compute it in float,
     *   as 1.0f / powf(theta, (float)j / (float)head_size) times (float)pos.
     * Graded: Position 0 does not turn, so a wrong rotation shows in the logits from
     *   position 1 on.
     * Stub: (void)vec; (void)n_heads; (void)head_size; (void)pos; (void)theta;
     */
    for (int i = 0; i < head_size; i += 2) {
        float freq = 1.0f / powf(theta, (float)i / (float)head_size);
        float angle = (float)pos * freq;
        float c = cosf(angle), s = sinf(angle);
        for (int h = 0; h < n_heads; h++) {
            float *pair = vec + h * head_size + i;
            float a = pair[0], b = pair[1];
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
    /* EXERCISE 1.2 END */
}

/** In place: gate = silu(gate) * up, where silu(v) = v * sigmoid(v). */
static void swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float v = gate[i];
        v *= 1.0f / (1.0f + expf(-v));
        gate[i] = v * up[i];
    }
}

/* ======================================================================== */
/* The forward pass                                                         */
/* ======================================================================== */

/**
 * Causal attention of one position over positions 0..pos of layer l. Query
 * head h reads key/value head h / (n_heads / n_kv_heads). Result in a->xb.
 */
static void attention(Model *m, int l, int pos) {
    /* EXERCISE 1.3 BEGIN: attention
     * Task: For each query head h (head_size floats at a->q + h * head_size), score it
     *   against the keys of positions 0..pos of layer l (dot product / sqrt(head_size)),
     *   turn the scores into weights with softmax(), and write the weighted sum of
     *   those positions' values to a->xb + h * head_size.
     * Contract: The key (value) of position t in layer l is the kv_dim floats at
     *   a->keys (a->values) + (l * seq_len + t) * kv_dim; query head h reads key/value
     *   head h / (n_heads / n_kv_heads), which starts head_size floats times its number
     *   into that vector. Scratch: a->att, seq_len floats per head. Causal: never read
     *   a position after pos.
     * Hint: Divide each dot product by sqrtf(head_size) rather than multiplying by its
     *   inverse, and sum in float, left to right: then the logits match llama2.c exactly.
     * Graded: The logits, from position 0 on (even one position attends to itself).
     * Stub: (void)m; (void)l; (void)pos; (void)softmax;
     */
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->a;
    int group = c->n_heads / c->n_kv_heads;
    size_t layer = (size_t)l * (size_t)c->seq_len * (size_t)c->kv_dim;
    float scale = sqrtf((float)c->head_size);
    for (int h = 0; h < c->n_heads; h++) {
        const float *q = a->q + h * c->head_size;
        float *att = a->att + (size_t)h * (size_t)c->seq_len;
        size_t head = (size_t)(h / group) * (size_t)c->head_size;
        for (int t = 0; t <= pos; t++) {
            const float *k = a->keys + layer + (size_t)t * (size_t)c->kv_dim + head;
            float score = 0.0f;
            for (int i = 0; i < c->head_size; i++) score += q[i] * k[i];
            att[t] = score / scale;
        }
        softmax(att, pos + 1);
        float *out = a->xb + h * c->head_size;
        memset(out, 0, sizeof(float) * (size_t)c->head_size);
        for (int t = 0; t <= pos; t++) {
            const float *v = a->values + layer + (size_t)t * (size_t)c->kv_dim + head;
            for (int i = 0; i < c->head_size; i++) out[i] += att[t] * v[i];
        }
    }
    /* EXERCISE 1.3 END */
}

/** Run token @p token at position @p pos through every layer; leaves the stream in a->x. */
static void forward_position(Model *m, int token, int pos) {
    const ModelConfig *c = &m->cfg;
    const Weights *w = &m->w;
    Activations *a = &m->a;
    int d = c->dim, kv = c->kv_dim, hd = c->hidden_dim;
    memcpy(a->x, w->token_embedding + (size_t)token * (size_t)d, sizeof(float) * (size_t)d);
    for (int l = 0; l < c->n_layers; l++) {
        size_t dd = (size_t)d * (size_t)d, kvd = (size_t)kv * (size_t)d, hdd = (size_t)hd * (size_t)d;
        size_t slot = ((size_t)l * (size_t)c->seq_len + (size_t)pos) * (size_t)kv;
        float *k = a->keys + slot, *v = a->values + slot;

        rmsnorm(a->xb, a->x, w->rms_att + (size_t)l * d, d, c->rms_eps);
        matmul(a->q, a->xb, w->wq + l * dd, d, d);
        matmul(k, a->xb, w->wk + l * kvd, d, kv);
        matmul(v, a->xb, w->wv + l * kvd, d, kv);
        rope(a->q, c->n_heads, c->head_size, pos, c->rope_theta);
        rope(k, c->n_kv_heads, c->head_size, pos, c->rope_theta);
        attention(m, l, pos);
        matmul(a->xb2, a->xb, w->wo + l * dd, d, d);
        for (int i = 0; i < d; i++) a->x[i] += a->xb2[i];

        rmsnorm(a->xb, a->x, w->rms_ffn + (size_t)l * d, d, c->rms_eps);
        matmul(a->hb, a->xb, w->w1 + l * hdd, d, hd);
        matmul(a->hb2, a->xb, w->w3 + l * hdd, d, hd);
        swiglu(a->hb, a->hb2, hd);
        matmul(a->xb, a->hb, w->w2 + l * hdd, hd, d);
        for (int i = 0; i < d; i++) a->x[i] += a->xb[i];
    }
}

/* ======================================================================== */
/* The chapter interface (src/model.h)                                      */
/* ======================================================================== */

Model *model_open(const char *path, const ModelOptions *opts) {
    Model *m = xcalloc(1, sizeof(Model));
    map_weights(m, path, opts && opts->check_tensors);
    alloc_activations(&m->a, &m->cfg);
    if (opts && opts->verbose)
        fprintf(stderr, "%s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %zu weight bytes\n",
                path, m->cfg.dim, m->cfg.hidden_dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads,
                m->cfg.vocab_size, m->cfg.seq_len, m->file.size);
    return m;
}

const ModelConfig *model_config(const Model *m) { return &m->cfg; }

/** Everything from position 0, every call: O(n) position passes for one token. */
const float *model_forward(Model *m, const int *tokens, int n) {
    const ModelConfig *c = &m->cfg;
    for (int pos = 0; pos < n; pos++) forward_position(m, tokens[pos], pos);
    rmsnorm(m->a.x, m->a.x, m->w.rms_final, c->dim, c->rms_eps);
    matmul(m->a.logits, m->a.x, m->w.wcls, c->dim, c->vocab_size);
    return m->a.logits;
}

size_t model_weight_bytes(const Model *m) {
    const ModelConfig *c = &m->cfg;
    size_t d = (size_t)c->dim, per_layer = 2 * d + 2 * d * d + 2 * (size_t)c->kv_dim * d + 3 * (size_t)c->hidden_dim * d;
    return sizeof(float) * ((size_t)c->n_layers * per_layer + d + (size_t)c->vocab_size * d);
}

const struct Vocab *model_vocab(const Model *m) {
    (void)m;
    return NULL; /* llama2.c checkpoints keep their vocabulary in a separate file */
}

void model_close(Model *m) {
    if (!m) return;
    free_activations(&m->a);
    unmap_file(&m->file);
    free(m);
}

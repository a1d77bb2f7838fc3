/**
 * @file 02_kvcache.c
 * @brief Chapter 2: the KV cache — each position is computed once, not once per generated token.
 *
 * @section ch02_idea The idea
 * In chapter 1, producing the token at position n ran positions 0..n-1
 * through the whole network again, although nothing about them had changed:
 * a position's keys and values depend only on the tokens up to it (attention
 * is causal), so they are the same on every call. This chapter keeps them.
 * The per-layer key and value vectors of every position seen so far stay in
 * a cache of shape (n_layers, seq_len, kv_dim), one for K and one for V, and
 * model_forward() runs only the positions the cache has not seen: the whole
 * prompt once (prefill), then one position per generated token (decode).
 * RoPE is applied to a key before it is cached, at its absolute position, so
 * a cached key never needs touching again. With grouped-query attention each
 * cached head serves n_heads / n_kv_heads query heads.
 *
 * @section ch02_cost Why it is faster: O(n²) becomes O(n)
 * Generating n tokens used to cost n(n+1)/2 position passes through every
 * weight matrix; now it costs n. Every decode step still reads all the
 * weights once (that is the part chapters 3-5 attack), plus the cached keys
 * and values of the earlier positions, which grows linearly with n. So the
 * speed-up over chapter 1 grows with the length of the text: about n/2 at
 * n tokens, less the attention work both chapters share.
 *
 * @section ch02_memory What it costs
 * Memory for the cache: 2 × n_layers × seq_len × kv_dim × 4 bytes (printed at
 * load with -v). Chapter 1 needed the same buffers as scratch for one pass; the
 * difference is that they now live as long as the model. For stories110M
 * (12 layers, 1024 positions, kv_dim 768) that is 72 MiB; grouped-query
 * attention shrinks it by n_heads / n_kv_heads.
 *
 * The cache also brings a rule the caller cannot see: it belongs to one token
 * sequence. If the next call's sequence does not extend the cached one (a new
 * prompt, or a rewind), the cache is rolled back to the longest common prefix
 * and the rest is recomputed, instead of silently mixing two sequences.
 *
 * @section ch02_check How it is checked
 * The arithmetic of each position is chapter 1's, in the same order, so the
 * logits are bit-identical to chapter 1's (tested with tolerance 1e-5 on
 * teacher-forced logits); greedy ids equal chapter 1's and llama2.c's for
 * every reference prompt; sampled text equals chapter 1's for the same seed;
 * and the roll-back rule is tested with sequences that diverge.
 *
 * @section ch02_left_out What it leaves out on purpose
 * Batching the prompt into matrix-matrix products (prefill here is one
 * position at a time), quantization (chapter 3), SIMD and threads (chapter 4).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama2c.h"
#include "model.h"
#include "util.h"

const char model_chapter_title[] = "llamabook chapter 2: fp32 forward pass with a KV cache";

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

/** Scratch vectors for one position, and the KV cache. */
typedef struct {
    float *x;      // (dim)  residual stream
    float *xb;     // (dim)  normalised stream; attention output
    float *xb2;    // (dim)  a projection to add back into x
    float *q;      // (dim)  queries of all heads
    float *hb;     // (hidden_dim)  FFN gate
    float *hb2;    // (hidden_dim)  FFN up
    float *att;    // (n_heads, seq_len)  attention weights
    float *keys;   // (n_layers, seq_len, kv_dim)  the KV cache: kept between calls
    float *values; // (n_layers, seq_len, kv_dim)
    int *cached;   // (seq_len)  the tokens whose keys and values are in the cache
    int n_cached;  // how many positions of the cache are valid
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
    Llama2cCheckpoint ckpt = llama2c_open(path, "chapter 2");
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
    a->cached = xcalloc((size_t)c->seq_len, sizeof(int));
    a->n_cached = 0;
    a->logits = xcalloc((size_t)c->vocab_size, sizeof(float));
}

static void free_activations(Activations *a) {
    free(a->x); free(a->xb); free(a->xb2); free(a->q); free(a->hb); free(a->hb2);
    free(a->att); free(a->keys); free(a->values); free(a->cached); free(a->logits);
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
    if (opts && opts->verbose) {
        fprintf(stderr, "%s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %zu weight bytes\n",
                path, m->cfg.dim, m->cfg.hidden_dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads,
                m->cfg.vocab_size, m->cfg.seq_len, m->file.size);
        fprintf(stderr, "KV cache: 2 x %d layers x %d positions x %d kv_dim x 4 bytes = %.1f MiB\n", m->cfg.n_layers,
                m->cfg.seq_len, m->cfg.kv_dim, 8.0 * m->cfg.n_layers * m->cfg.seq_len * m->cfg.kv_dim / 1048576.0);
    }
    return m;
}

const ModelConfig *model_config(const Model *m) { return &m->cfg; }

/**
 * How many leading positions of @p tokens the cache already holds. The last
 * position is always run again, because its stream (not cached) makes the logits.
 */
static int reusable_prefix(const Activations *a, const int *tokens, int n) {
    /* EXERCISE 2.1 BEGIN: the reuse rule
     * Task: Return how many leading positions of tokens[0..n-1] the cache can keep:
     *   the length of the common prefix of tokens and a->cached[0..a->n_cached-1].
     * Contract: At most n - 1, because the last position is always run again (its
     *   stream, which is not cached, makes the logits); 0 when the first tokens differ.
     * Hint: A new prompt or a rewind shares only a prefix with the cache; the slots
     *   after it hold another sequence's keys and values and must be recomputed.
     * Graded: Teacher forcing only ever extends the sequence, so the probe
     *   (tools/grade/probe_02.c) also calls reusable_prefix() on small cache states (an
     *   extension, a rewind, a new prompt, an empty cache) and checks that a sequence
     *   that diverges from the cache gives a fresh model's logits.
     * Stub: (void)a; (void)tokens; (void)n; return 0;
     */
    int same = 0;
    while (same < a->n_cached && same < n - 1 && a->cached[same] == tokens[same]) same++;
    return same;
    /* EXERCISE 2.1 END */
}

/** Only the positions the cache has not seen: O(1) position passes per generated token. */
const float *model_forward(Model *m, const int *tokens, int n) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->a;
    /* EXERCISE 2.2 BEGIN: the cache write
     * Task: Run through forward_position() only the positions the cache lacks, from
     *   reusable_prefix(a, tokens, n) to n - 1 (it writes their keys and values into
     *   the cache), and record which tokens the cache now holds.
     * Contract: Afterwards a->n_cached == n and a->cached[0..n-1] == tokens[0..n-1],
     *   and a->x holds the stream of position n - 1 (the lines below make the logits).
     * Hint: Chapter 1 ran this loop from position 0 on every call; what changes is
     *   where it starts, and the bookkeeping after it.
     * Graded: Recomputing everything gives the right logits too, only slowly, so the
     *   probe (tools/grade/probe_02.c) spoils cached keys after a call and expects the
     *   next call's logits to change; it also checks the logits after a new prompt.
     * Stub: (void)a; (void)tokens; (void)n; (void)reusable_prefix; (void)forward_position;
     */
    int start = reusable_prefix(a, tokens, n); /* a new prompt or a rewind rolls the cache back */
    for (int pos = start; pos < n; pos++) {
        forward_position(m, tokens[pos], pos);
        a->cached[pos] = tokens[pos];
    }
    a->n_cached = n;
    /* EXERCISE 2.2 END */
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

/**
 * @file 04_simd_threads.c
 * @brief Chapter 4: SIMD kernels and threads — chapter 3's logits, bit for bit, several times faster.
 *
 * @section ch04_idea The idea
 * Chapter 3 made every decode step read a quarter of the bytes. This chapter
 * changes nothing about what is computed, only how: the inner loops use the
 * CPU's SIMD instructions, and the rows of every matrix-vector product (and
 * the heads of attention) are shared among threads.
 *
 * @section ch04_simd SIMD: lanes
 * A SIMD register is a short vector: 256 bits hold 8 floats or 32 bytes
 * (AVX2), 512 bits 16 floats or 64 bytes (AVX-512), 128 bits 4 floats or 16
 * bytes (ARM NEON). Each slot is a *lane*, and one instruction applies the
 * same operation to every lane at once: 8 or 16 multiplications for the
 * price of one. The kernels are chosen at compile time from the target
 * (-march), with chapter 3's plain C always there for SIMD=0 or an
 * unknown CPU.
 *
 * @section ch04_int Why integer dot products are the heart of it
 * Almost all the time of a decode step goes into dot products of a Q8_0
 * weight row with the quantized input: 32 products of two bytes per block,
 * summed in an int32. Bytes are small, so one register holds a whole block,
 * and the CPUs have instructions made for exactly this: AVX2's
 * `vpmaddubsw`+`vpmaddwd` (multiply bytes, add neighbours), the VNNI
 * `vpdpbusd` (multiply four byte pairs and add them to an int32, in one
 * instruction) and NEON's `sdot`. A block's 32 products take one or two
 * instructions instead of 64, and since integer sums are exact, doing them
 * in any order changes nothing.
 *
 * @section ch04_exact The rule: lanes never split a float sum
 * Float addition is not associative: (a + b) + c and a + (b + c) can differ
 * in the last bit. The usual SIMD dot product keeps 8 partial sums and adds
 * them at the end, which rounds differently from chapter 3's left-to-right
 * sum. That would be harmless on its own (a relative change of 1e-7), but
 * this model rounds every matmul input to integers: an input that moves by
 * one ulp across a rounding boundary moves its int8 by one whole step, and
 * that difference spreads through the layers. Measured on stories260K, such
 * reordering moves teacher-forced logits by up to 0.26. So in this chapter
 * the lanes only hold independent computations: the products of one block
 * (exact), the per-block products isum·(d_w·d_x) of eight blocks (one
 * rounding each, as in chapter 3) which are then added in chapter 3's order;
 * the sums of eight *rows* of a matrix, one per lane, each adding its blocks
 * in chapter 3's order (the matmul's main kernel, simd_dot_q8_8rows: the
 * eight sums advance with one vector add instead of eight dependent scalar
 * ones, each block of the input is loaded once for eight rows, and the next
 * eight rows are fetched ahead in address order, which the hardware
 * prefetcher does not do for eight streams at once);
 * the scores of several positions (one lane each, each summed in chapter 3's
 * order, which is why the key cache is stored transposed); the elements of a
 * vector. No fused multiply-add either: a·b + c stays two roundings. The
 * reward is that this chapter's logits are chapter 3's bit for bit, on any
 * CPU and with any number of threads, and the tests say so with `cmp`.
 * Sums that are short (RMSNorm) and the exponentials (libm's expf) stay in
 * plain C.
 *
 * @section ch04_threads Threads, and where the barriers are
 * A pool of worker threads (src/threadpool.h) is started when the model is
 * opened and lives until it is closed. A step's index range (the rows of a
 * matmul, the heads of attention) is cut into contiguous chunks, a few per
 * thread; each thread, the caller too, takes the chunks of its own share and
 * then what is left of the others', so a thread that the system has put
 * aside for a moment delays only the chunk it holds. Every output element is
 * computed by one thread, in one fixed order, which is why the thread count
 * cannot change a result. A decode step, per layer:
 *
 *     rmsnorm, quantize x           caller
 *     q, k, v = Wq x, Wk x, Wv x    rows of all three shared     -- barrier
 *     rope, store k; attention      heads shared                 -- barrier
 *     x += Wo · att                 rows shared                  -- barrier
 *     rmsnorm, quantize x           caller
 *     h = silu(W1 x) * (W3 x)       rows of W1 and W3 shared     -- barrier
 *     x += W2 h                     rows shared                  -- barrier
 *
 * and one more for the classifier: 5 × n_layers + 1 handoffs per token
 * (chapter 3's order of calls would need 8 × n_layers + 1; the matmuls that
 * share an input share a step). A handoff costs a few microseconds when the
 * workers are awake (they spin a little before they sleep), so a step with
 * too little work to share (a small matrix, attention at the first
 * positions) runs on fewer threads, or on the caller alone.
 *
 * @section ch04_bandwidth Why more threads stop helping
 * A decode step reads every weight once and does two operations per byte.
 * Chapter 3's plain C computed far slower than memory delivers; with SIMD,
 * one core computes about as fast as its own share of the memory traffic
 * arrives, so the time per token approaches model_weight_bytes() divided by
 * the bandwidth. One core cannot use the whole bandwidth of the machine (it
 * can keep only so many cache misses in flight), so more threads help, each
 * adding its share, until together they pull all the memory system can
 * give; from then on more threads only wait longer for the same bytes. On a
 * machine with many cores and few memory channels that comes after a few
 * threads. The measured numbers are in docs/ch04.md.
 *
 * @section ch04_check How it is checked
 * Teacher-forced logits bit-identical to chapter 3's (stories260K, llama2xs,
 * syn-k256, a synthetic model) and to themselves with 1, 2, 3 and 4 threads;
 * greedy ids identical to chapter 3's on every reference prompt (the chain,
 * tests/chain.tsv, asks for 1e-3 and gets 0); the same with SIMD=0; the NEON
 * kernels cross-compiled and run under qemu; the thread pool under
 * ThreadSanitizer (tests/t_ch04.sh, tests/run_all.sh).
 *
 * @section ch04_left_out What it leaves out on purpose
 * Kernels chosen at run time (a binary built with -march=native runs only on
 * CPUs like the one that built it); batching the prompt into matrix-matrix
 * products (prefill is still one position at a time); pinning threads to
 * cores; reordering float sums for speed (see above); 4-bit weights and GGUF
 * files (chapter 5).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "llama2c.h"
#include "model.h"
#include "threadpool.h"
#include "util.h"

/*
 * The SIMD kernels of this chapter — the Q8_0 block, its quantizer and dot
 * product, and the fp32 lane kernels of attention, in plain C, AVX2, AVX-512
 * and NEON — are in src/q8_kernels.h: chapter 5 uses them unchanged, so they
 * live in one place. Read that file as part of this chapter; the rule they
 * follow is @ref ch04_exact "lanes never split a float sum".
 */
#include "q8_kernels.h"

const char model_chapter_title[] = "llamabook chapter 4: SIMD kernels and threads (" SIMD_NAME ")";

/* ======================================================================== */
/* The weights                                                              */
/* ======================================================================== */

/**
 * A stack of matrix rows of @c cols values each: Q8_0 blocks when a row splits
 * into blocks of 32, else the fp32 values themselves (llama.cpp's fallback too).
 */
typedef struct {
    const BlockQ8 *q; // (rows, cols / 32) blocks; NULL when the rows stayed fp32
    const float *f;   // (rows, cols) fp32 values when q is NULL
    size_t rows;
    int cols;
} QMatrix;

/** The rows of @p m from element @p first on (a whole number of rows in). */
static QMatrix slice(const QMatrix *m, size_t first) {
    QMatrix s = *m;
    size_t row = first / (size_t)m->cols;
    s.rows -= row;
    if (m->q) s.q += row * (size_t)(m->cols / QK);
    else s.f += first;
    return s;
}

/** Bytes that the rows of @p m occupy (and that a matmul by all of them reads). */
static size_t matrix_bytes(const QMatrix *m) {
    return m->q ? m->rows * (size_t)(m->cols / QK) * sizeof(BlockQ8) : m->rows * (size_t)m->cols * sizeof(float);
}

/** The model's own copy of the checkpoint; row-major, one matrix row per output. */
typedef struct {
    QMatrix token_embedding; // (vocab_size, dim)
    const float *rms_att;    // (n_layers, dim)
    QMatrix wq;              // (n_layers, dim, dim)
    QMatrix wk;              // (n_layers, kv_dim, dim)
    QMatrix wv;              // (n_layers, kv_dim, dim)
    QMatrix wo;              // (n_layers, dim, dim)
    const float *rms_ffn;    // (n_layers, dim)
    QMatrix w1;              // (n_layers, hidden_dim, dim)  gate
    QMatrix w2;              // (n_layers, dim, hidden_dim)  down
    QMatrix w3;              // (n_layers, hidden_dim, dim)  up
    const float *rms_final;  // (dim)
    QMatrix wcls;            // (vocab_size, dim)  = token_embedding when shared
} Weights;

/** Scratch vectors for one position, and the KV cache. */
typedef struct {
    float *x;      // (dim)  residual stream
    float *xb;     // (dim)  normalised stream; attention output
    float *xb2;    // (dim)  a projection to add back into x
    float *q;      // (dim)  queries of all heads
    float *hb;     // (hidden_dim)  FFN gate
    float *hb2;    // (hidden_dim)  FFN up
    float *att;    // (n_heads, seq_len)  attention weights
    float *k;      // (kv_dim)  the new position's key, before it goes into the cache
    float *keys;   // (n_layers, n_kv_heads, seq_len / 64, head_size, 64)  the KV cache, keys transposed in tiles
    float *values; // (n_layers, seq_len, kv_dim)
    int *cached;   // (seq_len)  the tokens whose keys and values are in the cache
    int n_cached;  // how many positions of the cache are valid
    BlockQ8 *xq;   // (max(dim, hidden_dim) / 32)  a matmul's input, quantized
    float *xd;     // (max(dim, hidden_dim) / 32)  the scales of xq as floats
    float *logits; // (vocab_size)
} Activations;

struct Model {
    ModelConfig cfg;
    void *memory;        // all the weights, quantized or fp32: one allocation
    size_t memory_bytes; // its size
    Weights w;
    Activations a;
    ThreadPool *pool;    // the worker threads: started at load, used by every matmul
};

/* ======================================================================== */
/* Loading a llama2.c checkpoint                                            */
/* ======================================================================== */

/**
 * Walks the checkpoint's arrays in file order and converts them into the
 * model's own memory (chapter 1's reader, src/llama2c.h, has mapped and
 * checked the file and points at each array). Behind it, the pages of the
 * mapping already read go back to the kernel, so the fp32 file and its int8
 * copy are never both resident. With out == NULL it only counts the bytes it
 * would need.
 */
typedef struct {
    const MappedFile *file; // the checkpoint's mapping
    size_t released;        // the file's bytes before this have been handed back
    uint8_t *out;           // the model's memory (NULL: only count)
    size_t used;            // bytes of it given out so far
    int verbose;            // say which matrices stay fp32
} Loader;

/* Release in steps of 1 MiB, cut at 64 KiB (a multiple of any page size). */
enum { RELEASE_STEP = 1 << 20, RELEASE_ALIGN = 1 << 16 };

/** @p bytes of the model's memory, 64-byte aligned; NULL when only counting. */
static void *take(Loader *ld, size_t bytes) {
    size_t at = (ld->used + 63) & ~(size_t)63;
    ld->used = at + bytes;
    return ld->out ? ld->out + at : NULL;
}

/** @p src, the file's floats read next. Everything before them has been used: release it. */
static const float *consume(Loader *ld, const float *src) {
    size_t pos = (size_t)((const uint8_t *)src - ld->file->data);
    if (ld->out && pos - ld->released >= RELEASE_STEP) {
        size_t upto = pos & ~(size_t)(RELEASE_ALIGN - 1);
        release_mapped_range(ld->file, ld->released, upto - ld->released);
        ld->released = upto;
    }
    return src;
}

/** The @p n floats at @p src, copied (RMSNorm weights stay fp32). */
static const float *load_floats(Loader *ld, const float *src, size_t n) {
    float *dst = take(ld, n * sizeof(float));
    consume(ld, src);
    if (dst) memcpy(dst, src, n * sizeof(float));
    return dst;
}

/**
 * The @p rows rows of @p cols floats at @p src, quantized row by row to Q8_0,
 * or copied as fp32 when @p cols is not a multiple of 32.
 */
static QMatrix load_matrix(Loader *ld, const char *name, const float *src, size_t rows, int cols) {
    QMatrix m = {NULL, NULL, rows, cols};
    size_t n = (size_t)cols;
    if (cols % QK == 0) {
        BlockQ8 *q = take(ld, rows * (n / QK) * sizeof(BlockQ8));
        for (size_t r = 0; r < rows; r++) {
            const float *row = consume(ld, src + r * n);
            if (q) quantize_q8(q + r * (n / QK), row, cols);
        }
        m.q = q;
    } else {
        float *f = take(ld, rows * n * sizeof(float));
        for (size_t r = 0; r < rows; r++) {
            const float *row = consume(ld, src + r * n);
            if (f) memcpy(f + r * n, row, n * sizeof(float));
        }
        m.f = f;
        if (f && ld->verbose)
            fprintf(stderr, "%s stays fp32: its rows of %d values do not split into blocks of %d\n", name, cols, QK);
    }
    return m;
}

/** Read every array of the checkpoint (src/llama2c.h) into the model's memory, in file order. */
static void load_weights(Weights *w, const Llama2cCheckpoint *ckpt, Loader *ld) {
    const ModelConfig *c = &ckpt->cfg;
    const Llama2cWeights *f = &ckpt->w;
    size_t L = (size_t)c->n_layers, d = (size_t)c->dim, kv = (size_t)c->kv_dim, h = (size_t)c->hidden_dim;
    size_t vocab = (size_t)c->vocab_size;
    w->token_embedding = load_matrix(ld, "token_embedding", f->token_embedding, vocab, c->dim);
    w->rms_att = load_floats(ld, f->rms_att, L * d);
    w->wq = load_matrix(ld, "wq", f->wq, L * d, c->dim);
    w->wk = load_matrix(ld, "wk", f->wk, L * kv, c->dim);
    w->wv = load_matrix(ld, "wv", f->wv, L * kv, c->dim);
    w->wo = load_matrix(ld, "wo", f->wo, L * d, c->dim);
    w->rms_ffn = load_floats(ld, f->rms_ffn, L * d);
    w->w1 = load_matrix(ld, "w1", f->w1, L * h, c->dim);
    w->w2 = load_matrix(ld, "w2", f->w2, L * d, c->hidden_dim);
    w->w3 = load_matrix(ld, "w3", f->w3, L * h, c->dim);
    w->rms_final = load_floats(ld, f->rms_final, d);
    w->wcls = ckpt->shared_classifier ? w->token_embedding : load_matrix(ld, "wcls", f->wcls, vocab, c->dim);
}

static void alloc_activations(Activations *a, const ModelConfig *c) {
    size_t kv_cells = checked_mul(checked_mul((size_t)c->n_layers, (size_t)c->seq_len, "kv"), (size_t)c->kv_dim, "kv");
    a->x = xcalloc((size_t)c->dim, sizeof(float));
    a->xb = xcalloc((size_t)c->dim, sizeof(float));
    a->xb2 = xcalloc((size_t)c->dim, sizeof(float));
    a->q = xcalloc((size_t)c->dim, sizeof(float));
    a->k = xcalloc((size_t)c->kv_dim, sizeof(float));
    a->hb = xcalloc((size_t)c->hidden_dim, sizeof(float));
    a->hb2 = xcalloc((size_t)c->hidden_dim, sizeof(float));
    a->att = xcalloc(checked_mul((size_t)c->n_heads, (size_t)c->seq_len, "att"), sizeof(float));
    size_t key_cells = checked_mul(checked_mul((size_t)c->n_layers, key_tiles(c) * KEY_TILE, "kv"), (size_t)c->kv_dim, "kv");
    a->keys = xcalloc(key_cells, sizeof(float)); /* seq_len rounded up to whole tiles */
    a->values = xcalloc(kv_cells, sizeof(float));
    a->cached = xcalloc((size_t)c->seq_len, sizeof(int));
    a->n_cached = 0;
    a->xq = xcalloc((size_t)(c->dim > c->hidden_dim ? c->dim : c->hidden_dim) / QK + 1, sizeof(BlockQ8));
    a->xd = xcalloc((size_t)(c->dim > c->hidden_dim ? c->dim : c->hidden_dim) / QK + 1, sizeof(float));
    a->logits = xcalloc((size_t)c->vocab_size, sizeof(float));
}

static void free_activations(Activations *a) {
    free(a->x); free(a->xb); free(a->xb2); free(a->q); free(a->k); free(a->hb); free(a->hb2);
    free(a->att); free(a->keys); free(a->values); free(a->cached); free(a->xq); free(a->xd); free(a->logits);
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

/** Row @p row of @p m as fp32: d * q exactly (as llama.cpp's get_rows), or a copy. */
static void dequantize_row(float *out, const QMatrix *m, size_t row) {
    QMatrix r = slice(m, row * (size_t)m->cols);
    if (r.q) dequantize_q8(out, r.q, m->cols);
    else memcpy(out, r.f, sizeof(float) * (size_t)m->cols);
}

/** In place: x = exp(x - max) / sum(exp(x - max)). */
static void softmax(float *x, int n) {
    float max = simd_max(x, n);
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
/* Sharing the work among threads                                           */
/* ======================================================================== */

/**
 * The least work, in multiply-adds, worth handing to one more thread. A
 * handoff to spinning workers costs some microseconds (measured: 0.3 with 2
 * threads on 2 cores, 4 with 16 threads on the 16-core machine), the time of
 * tens of thousands of int8 multiply-adds; a step with less work per thread
 * than this runs on fewer threads, and a small one on the calling thread alone.
 */
enum { MIN_WORK_PER_THREAD = 1 << 15 };

/** How many items of @p work_per_item multiply-adds make one thread's share worth its handoff. */
static int min_items_per_thread(size_t work_per_item) {
    size_t items = (MIN_WORK_PER_THREAD + work_per_item - 1) / (work_per_item ? work_per_item : 1);
    return items > (size_t)INT32_MAX ? INT32_MAX : (int)items;
}

/** One matrix of a parallel matmul step: out = W x. */
typedef struct {
    float *out;
    QMatrix w;
    int n_out;
} MatmulPart;

/**
 * One to three matmuls that share their input (wq, wk and wv all multiply
 * the normalised stream), as the threads see them. Their rows form one index
 * range, which the pool cuts into contiguous chunks. With @c swiglu, part 0
 * is w1 and part 1 is w3: index i computes row i of both, then SwiGLU of
 * element i, so the whole gate/up step needs one barrier.
 */
typedef struct {
    MatmulPart part[3];
    int n_parts;
    int n_in;
    int swiglu;
    const float *x;    // the input, for fp32 rows
    const BlockQ8 *xq; // the input quantized, for Q8_0 rows
    const float *xd;   // the scales of xq as floats
} MatmulTask;

/** Row @p i of one part times the input: an integer dot product, or chapter 2's fp32 one. */
static float matmul_row(const MatmulTask *t, const MatmulPart *p, int i) {
    if (p->w.q) {
        int n_blocks = t->n_in / QK;
        return simd_dot_q8(p->w.q + (size_t)i * (size_t)n_blocks, t->xq, t->xd, n_blocks);
    }
    const float *row = p->w.f + (size_t)i * (size_t)t->n_in;
    float sum = 0.0f;
    for (int j = 0; j < t->n_in; j++) sum += row[j] * t->x[j];
    return sum;
}

/**
 * Rows [lo, hi) of one part into its output. Eight rows at a time where the
 * kernel can (simd_dot_q8_8rows: one row per lane, the same bits as one row
 * at a time), the rest one by one.
 */
static void matmul_range(const MatmulTask *t, const MatmulPart *p, int lo, int hi) {
    int i = lo;
    if (p->w.q) {
        int n_blocks = t->n_in / QK;
        for (; i + 8 <= hi; i += 8)
            simd_dot_q8_8rows(p->out + i, p->w.q + (size_t)i * (size_t)n_blocks, t->xq, t->xd, n_blocks);
    }
    for (; i < hi; i++) p->out[i] = matmul_row(t, p, i);
}

/** Rows [begin, end) of a matmul step (a ThreadTask): every output row by exactly one thread. */
static void matmul_rows(void *arg, int begin, int end, int thread) {
    /* EXERCISE 4.1 BEGIN: a thread's share of a matmul step
     * Task: Compute the outputs of indices begin..end-1 of the step's index range. Without
     *   SwiGLU the range is the rows of part 0, then those of part 1, then part 2 (wq, wk
     *   and wv share one step): index k is a row of the part it falls in, counted from that
     *   part's first index. With t->swiglu, index i is row i of both part 0 (w1) and part 1
     *   (w3); afterwards apply swiglu() to elements begin..end-1 of the two outputs.
     * Contract: arg is the MatmulTask. The pool cuts the range into chunks and runs this on
     *   several threads at once, each with its own [begin, end): write the outputs of those
     *   indices and nothing else, with matmul_range() (it picks the kernel, and does
     *   eight rows at a time where it can). thread is the worker's number, not needed here.
     * Hint: For part p, intersect [begin, end) with [first, first + n_out), where first is
     *   the number of rows of the parts before it; the intersection may be empty.
     * Graded: The logits come from several threads (syn-k256 has steps big enough to be
     *   shared), but a thread that computes every row gives the same logits, only slower
     *   and racing the others. So the probe (tools/grade/probe_04.c) also calls
     *   matmul_rows() on small hand-made steps: every way the pool cuts a range must give
     *   every row, and a range alone must write exactly its own rows.
     * Stub: (void)arg; (void)begin; (void)end; (void)thread; (void)matmul_range; (void)swiglu;
     */
    const MatmulTask *t = arg;
    (void)thread;
    if (t->swiglu) {
        const MatmulPart *gate = &t->part[0], *up = &t->part[1];
        matmul_range(t, gate, begin, end);
        matmul_range(t, up, begin, end);
        swiglu(gate->out + begin, up->out + begin, end - begin);
        return;
    }
    int first = 0; /* index of the part's row 0 in the combined range */
    for (int p = 0; p < t->n_parts; p++) {
        const MatmulPart *part = &t->part[p];
        int lo = begin > first ? begin : first, hi = end < first + part->n_out ? end : first + part->n_out;
        if (lo < hi) matmul_range(t, part, lo - first, hi - first);
        first += part->n_out;
    }
    /* EXERCISE 4.1 END */
}

/**
 * Run a matmul step on the model's threads. The caller first quantizes the
 * input once (chapter 3's rule) and keeps its scales as floats; then the rows
 * are shared out, and threadpool_for() returns when every row is done: the
 * barrier after which the next step may read the outputs.
 */
static void run_matmuls(Model *m, MatmulTask *t) {
    Activations *a = &m->a;
    int n_rows = t->swiglu ? t->part[0].n_out : 0, quantized = 0;
    for (int p = 0; p < t->n_parts; p++) {
        if (!t->swiglu) n_rows += t->part[p].n_out;
        quantized |= t->part[p].w.q != NULL;
    }
    if (quantized) {
        simd_quantize_q8(a->xq, t->x, t->n_in);
        for (int b = 0; b < t->n_in / QK; b++) a->xd[b] = fp16_to_float(a->xq[b].d);
    }
    t->xq = a->xq;
    t->xd = a->xd;
    size_t work_per_row = (size_t)t->n_in * (t->swiglu ? 2 : 1);
    threadpool_for(m->pool, n_rows, min_items_per_thread(work_per_row), matmul_rows, t);
}

/** out = W x, for W of shape (n_out, n_in), on the model's threads. */
static void matmul(Model *m, float *out, const float *x, QMatrix w, int n_in, int n_out) {
    MatmulTask t = {{{out, w, n_out}}, 1, n_in, 0, x, NULL, NULL};
    run_matmuls(m, &t);
}

/* ======================================================================== */
/* The forward pass                                                         */
/* ======================================================================== */

/** Layer @p l, kv head @p kv_head of the key cache: key_tiles() tiles of (head_size, KEY_TILE) floats. */
static float *key_cache(const Model *m, int l, int kv_head) {
    const ModelConfig *c = &m->cfg;
    size_t per_head = key_tiles(c) * KEY_TILE * (size_t)c->head_size;
    return m->a.keys + ((size_t)l * (size_t)c->n_kv_heads + (size_t)kv_head) * per_head;
}

/**
 * Store the new position's key (a->k, rotated by RoPE) into layer @p l's key
 * cache. Keys are kept transposed in tiles of KEY_TILE positions: within a
 * tile, element i of consecutive positions sits side by side, ready for the
 * lanes of simd_attention_scores(), and a tile is a few contiguous pages.
 */
static void store_key(Model *m, int l, int pos) {
    const ModelConfig *c = &m->cfg;
    size_t at = (size_t)(pos / KEY_TILE) * (size_t)c->head_size * KEY_TILE + (size_t)(pos % KEY_TILE);
    for (int h = 0; h < c->n_kv_heads; h++) {
        float *tile = key_cache(m, l, h) + at;
        for (int i = 0; i < c->head_size; i++) tile[(size_t)i * KEY_TILE] = m->a.k[h * c->head_size + i];
    }
}

/** One attention step as the threads see it: each thread computes whole heads. */
typedef struct {
    Model *m;
    int l, pos;
} AttentionTask;

/**
 * Query heads [begin, end) of causal attention of one position over
 * positions 0..pos of layer l (a ThreadTask). Query head h reads key/value
 * head h / (n_heads / n_kv_heads), and writes only its own row of a->att and
 * its own slice of a->xb: heads need no coordination.
 */
static void attention_heads(void *arg, int begin, int end, int thread) {
    const AttentionTask *task = arg;
    const ModelConfig *c = &task->m->cfg;
    Activations *a = &task->m->a;
    int l = task->l, pos = task->pos;
    (void)thread;
    int group = c->n_heads / c->n_kv_heads;
    size_t layer = (size_t)l * (size_t)c->seq_len * (size_t)c->kv_dim;
    float scale = sqrtf((float)c->head_size);
    for (int h = begin; h < end; h++) {
        const float *q = a->q + h * c->head_size;
        float *att = a->att + (size_t)h * (size_t)c->seq_len;
        size_t head = (size_t)(h / group) * (size_t)c->head_size;
        simd_attention_scores(att, q, key_cache(task->m, l, h / group), pos + 1, c->head_size, scale);
        softmax(att, pos + 1);
        float *out = a->xb + h * c->head_size;
        memset(out, 0, sizeof(float) * (size_t)c->head_size);
        for (int t = 0; t <= pos; t++) {
            const float *v = a->values + layer + (size_t)t * (size_t)c->kv_dim + head;
            simd_axpy(out, att[t], v, c->head_size);
        }
    }
}

/** Causal attention of one position over positions 0..pos of layer l, heads shared among threads; result in a->xb. */
static void attention(Model *m, int l, int pos) {
    AttentionTask task = {m, l, pos};
    size_t work_per_head = 2 * (size_t)(pos + 1) * (size_t)m->cfg.head_size; /* scores, then the weighted sum */
    threadpool_for(m->pool, m->cfg.n_heads, min_items_per_thread(work_per_head), attention_heads, &task);
}

/** Run token @p token at position @p pos through every layer; leaves the stream in a->x. */
static void forward_position(Model *m, int token, int pos) {
    const ModelConfig *c = &m->cfg;
    const Weights *w = &m->w;
    Activations *a = &m->a;
    int d = c->dim, kv = c->kv_dim, hd = c->hidden_dim;
    dequantize_row(a->x, &w->token_embedding, (size_t)token);
    for (int l = 0; l < c->n_layers; l++) {
        size_t dd = (size_t)d * (size_t)d, kvd = (size_t)kv * (size_t)d, hdd = (size_t)hd * (size_t)d;
        size_t slot = ((size_t)l * (size_t)c->seq_len + (size_t)pos) * (size_t)kv;
        float *k = a->k, *v = a->values + slot;

        rmsnorm(a->xb, a->x, w->rms_att + (size_t)l * d, d, c->rms_eps);
        MatmulTask qkv = {{{a->q, slice(&w->wq, l * dd), d}, {k, slice(&w->wk, l * kvd), kv},
                           {v, slice(&w->wv, l * kvd), kv}}, 3, d, 0, a->xb, NULL, NULL};
        run_matmuls(m, &qkv); /* q, k and v in one step */
        rope(a->q, c->n_heads, c->head_size, pos, c->rope_theta);
        rope(k, c->n_kv_heads, c->head_size, pos, c->rope_theta);
        store_key(m, l, pos);
        attention(m, l, pos);
        matmul(m, a->xb2, a->xb, slice(&w->wo, l * dd), d, d);
        for (int i = 0; i < d; i++) a->x[i] += a->xb2[i];

        rmsnorm(a->xb, a->x, w->rms_ffn + (size_t)l * d, d, c->rms_eps);
        MatmulTask gate_up = {{{a->hb, slice(&w->w1, l * hdd), hd}, {a->hb2, slice(&w->w3, l * hdd), hd}},
                              2, d, 1, a->xb, NULL, NULL};
        run_matmuls(m, &gate_up); /* hb and hb2 in one step, then swiglu(a->hb, a->hb2, hd) row by row */
        matmul(m, a->xb, a->hb, slice(&w->w2, l * hdd), hd, d);
        for (int i = 0; i < d; i++) a->x[i] += a->xb[i];
    }
}

/* ======================================================================== */
/* The chapter interface (src/model.h)                                      */
/* ======================================================================== */

Model *model_open(const char *path, const ModelOptions *opts) {
    Model *m = xcalloc(1, sizeof(Model));
    Llama2cCheckpoint ckpt = llama2c_open(path, "chapter 4");
    if (opts && opts->check_tensors) llama2c_check_tensors(&ckpt, path); /* on the file's floats, so the row named is the file's */
    m->cfg = ckpt.cfg;
    int verbose = opts && opts->verbose;
    Loader count = {&ckpt.file, 0, NULL, 0, verbose}; /* a dry run: how many bytes the model needs */
    load_weights(&m->w, &ckpt, &count);
    m->memory_bytes = count.used;
    m->memory = xmalloc(m->memory_bytes);
    Loader fill = {&ckpt.file, 0, m->memory, 0, verbose};
    load_weights(&m->w, &ckpt, &fill);
    size_t file_bytes = ckpt.file.size;
    llama2c_close(&ckpt); /* everything the model needs is in m->memory now */
    alloc_activations(&m->a, &m->cfg);
    m->pool = threadpool_create(opts ? opts->n_threads : 0);
    if (opts && opts->verbose) {
        fprintf(stderr, "kernels: %s; threads: %d\n", SIMD_NAME, threadpool_threads(m->pool));
        fprintf(stderr, "%s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %zu weight bytes\n",
                path, m->cfg.dim, m->cfg.hidden_dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads,
                m->cfg.vocab_size, m->cfg.seq_len, file_bytes);
        fprintf(stderr, "KV cache: 2 x %d layers x %d positions x %d kv_dim x 4 bytes = %.1f MiB\n", m->cfg.n_layers,
                m->cfg.seq_len, m->cfg.kv_dim, 8.0 * m->cfg.n_layers * m->cfg.seq_len * m->cfg.kv_dim / 1048576.0);
        fprintf(stderr, "weights in memory: %zu bytes (%.1f MiB, %.2f of the fp32 file); read per token: %zu bytes\n",
                m->memory_bytes, m->memory_bytes / 1048576.0, (double)m->memory_bytes / (double)file_bytes,
                model_weight_bytes(m));
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
    matmul(m, m->a.logits, m->a.x, m->w.wcls, c->dim, c->vocab_size);
    return m->a.logits;
}

/** Q8_0 blocks and fp32 leftovers: every layer, the final norm and the classifier. */
size_t model_weight_bytes(const Model *m) {
    const ModelConfig *c = &m->cfg;
    const Weights *w = &m->w;
    size_t norms = sizeof(float) * (2 * (size_t)c->n_layers + 1) * (size_t)c->dim;
    return norms + matrix_bytes(&w->wq) + matrix_bytes(&w->wk) + matrix_bytes(&w->wv) + matrix_bytes(&w->wo) +
           matrix_bytes(&w->w1) + matrix_bytes(&w->w2) + matrix_bytes(&w->w3) + matrix_bytes(&w->wcls);
}

const struct Vocab *model_vocab(const Model *m) {
    (void)m;
    return NULL; /* llama2.c checkpoints keep their vocabulary in a separate file */
}

void model_close(Model *m) {
    if (!m) return;
    threadpool_destroy(m->pool);
    free_activations(&m->a);
    free(m->memory);
    free(m);
}

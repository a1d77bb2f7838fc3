/**
 * @file llama2c.c
 * @brief Chapter 1's reader of llama2.c checkpoints (src/llama2c.h), shared by chapters 1-4
 * and tools/gguf_convert.c.
 *
 * The header's seven numbers come from the file, so nothing about them can be trusted: each
 * must be positive, they must fit together (whole heads, whole key/value groups, pairs for
 * RoPE), and the sizes they imply are multiplied out in 64 bits with a check on every
 * product, because three int32 factors (n_layers × dim × dim) overflow even 64 bits. Only a
 * file of exactly the implied size is accepted; after that every array offset is known to
 * lie inside the mapping, and pointing at the arrays cannot go wrong.
 */
#include "llama2c.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { HEADER_INTS = 7 };

/** a · b · c, or 0 with *ok cleared when the product does not fit in 64 bits. */
static uint64_t product(uint64_t a, uint64_t b, uint64_t c, int *ok) {
    if ((b && a > UINT64_MAX / b) || (c && a * b > UINT64_MAX / c)) {
        *ok = 0;
        return 0;
    }
    return a * b * c;
}

/** Read and check the header into ck->cfg and ck->shared_classifier. */
static void read_header(Llama2cCheckpoint *ck, const char *path, const char *who) {
    const MappedFile *f = &ck->file;
    ModelConfig *cfg = &ck->cfg;
    if (f->size == 0) fatal("%s: file is empty", path);
    if (f->size >= 4 && memcmp(f->data, "GGUF", 4) == 0)
        fatal("%s: this is a GGUF file; %s reads llama2.c checkpoints (chapters 5 on read GGUF files)", path, who);
    if (f->size < LLAMA2C_HEADER_BYTES)
        fatal("%s: %zu bytes is too short for a llama2.c header", path, f->size);
    int32_t h[HEADER_INTS];
    memcpy(h, f->data, sizeof h);
    *cfg = (ModelConfig){.dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3],
                         .n_kv_heads = h[4], .vocab_size = h[5], .seq_len = h[6]};
    ck->shared_classifier = cfg->vocab_size > 0; /* negative: a separate classifier follows */
    if (cfg->vocab_size < 0 && cfg->vocab_size != INT32_MIN) cfg->vocab_size = -cfg->vocab_size;
    static const char *const names[HEADER_INTS] = {"dim", "hidden_dim", "n_layers", "n_heads",
                                                   "n_kv_heads", "vocab_size", "seq_len"};
    const int values[HEADER_INTS] = {cfg->dim, cfg->hidden_dim, cfg->n_layers, cfg->n_heads,
                                     cfg->n_kv_heads, cfg->vocab_size, cfg->seq_len};
    for (int i = 0; i < HEADER_INTS; i++)
        if (values[i] <= 0) fatal("%s: header has %s = %d; it must be positive", path, names[i], (int)h[i]);
    if (cfg->seq_len > MODEL_MAX_CONTEXT)
        fatal("%s: header has seq_len %d; the book's chapters allow at most %d positions", path, cfg->seq_len,
              MODEL_MAX_CONTEXT);
    if (cfg->dim % cfg->n_heads)
        fatal("%s: header has dim %d, not divisible by n_heads %d", path, cfg->dim, cfg->n_heads);
    if (cfg->n_kv_heads > cfg->n_heads || cfg->n_heads % cfg->n_kv_heads)
        fatal("%s: header has n_heads %d, not a multiple of n_kv_heads %d", path, cfg->n_heads, cfg->n_kv_heads);
    cfg->head_size = cfg->dim / cfg->n_heads;
    if (cfg->head_size % 2) fatal("%s: head size %d is odd; RoPE rotates pairs", path, cfg->head_size);
    cfg->kv_dim = cfg->head_size * cfg->n_kv_heads; /* <= dim: no overflow */
    cfg->rope_dim = cfg->head_size;
    cfg->rms_eps = 1e-5f;       /* not in the header: llama2.c's fixed values */
    cfg->rope_theta = 10000.0f;
}

Llama2cCheckpoint llama2c_open(const char *path, const char *who) {
    Llama2cCheckpoint ck = {0};
    ck.file = map_file(path); /* missing, unreadable, a directory: fatal() there */
    read_header(&ck, path, who ? who : "this program");
    const ModelConfig *c = &ck.cfg;
    Llama2cWeights *w = &ck.w;

    /* The arrays in file order, with their sizes in floats: one table for the size check
     * and for the pointers, so that the two cannot disagree. */
    uint64_t V = (uint64_t)c->vocab_size, d = (uint64_t)c->dim, L = (uint64_t)c->n_layers;
    uint64_t kv = (uint64_t)c->kv_dim, hd = (uint64_t)c->hidden_dim, S = (uint64_t)c->seq_len;
    uint64_t half_head = (uint64_t)c->head_size / 2;
    int ok = 1;
    const struct {
        const float **at;
        uint64_t floats;
    } arrays[] = {
        {&w->token_embedding, product(V, d, 1, &ok)},
        {&w->rms_att, product(L, d, 1, &ok)},
        {&w->wq, product(L, d, d, &ok)},
        {&w->wk, product(L, kv, d, &ok)},
        {&w->wv, product(L, kv, d, &ok)},
        {&w->wo, product(L, d, d, &ok)},
        {&w->rms_ffn, product(L, d, 1, &ok)},
        {&w->w1, product(L, hd, d, &ok)},
        {&w->w2, product(L, d, hd, &ok)},
        {&w->w3, product(L, hd, d, &ok)},
        {&w->rms_final, d},
        {&w->freq_cis_real, product(S, half_head, 1, &ok)},
        {&w->freq_cis_imag, product(S, half_head, 1, &ok)},
        {&w->wcls, ck.shared_classifier ? 0 : product(V, d, 1, &ok)},
    };
    enum { N_ARRAYS = sizeof arrays / sizeof arrays[0] };
    uint64_t floats = 0;
    for (int i = 0; i < N_ARRAYS && ok; i++) {
        if (arrays[i].floats > UINT64_MAX - floats) ok = 0;
        floats += arrays[i].floats;
    }
    if (!ok || floats > (UINT64_MAX - LLAMA2C_HEADER_BYTES) / 4) fatal("%s: header sizes overflow", path);
    uint64_t want = LLAMA2C_HEADER_BYTES + 4 * floats;
    if (want != (uint64_t)ck.file.size) /* a truncated file, or bytes after the last array */
        fatal("%s: file is %zu bytes, but its header (dim %d, hidden %d, %d layers, vocab %d, seq_len %d) implies %llu",
              path, ck.file.size, c->dim, c->hidden_dim, c->n_layers, c->vocab_size, c->seq_len,
              (unsigned long long)want);

    /* Every offset is now inside the file, so size_t arithmetic is safe from here on. */
    const float *p = (const float *)(ck.file.data + LLAMA2C_HEADER_BYTES);
    for (int i = 0; i < N_ARRAYS; i++) {
        *arrays[i].at = p;
        p += (size_t)arrays[i].floats;
    }
    if (ck.shared_classifier) w->wcls = w->token_embedding;
    return ck;
}

void llama2c_check_tensors(const Llama2cCheckpoint *ck, const char *path) {
    const ModelConfig *c = &ck->cfg;
    const Llama2cWeights *w = &ck->w;
    size_t L = (size_t)c->n_layers, d = (size_t)c->dim, kv = (size_t)c->kv_dim, hd = (size_t)c->hidden_dim;
    size_t V = (size_t)c->vocab_size;
    /* (name, first float, layers (0: not a per-layer array), rows per layer, floats per row);
     * the obsolete RoPE tables are left out: nothing reads them. */
    const struct {
        const char *name;
        const float *x;
        size_t layers, rows, cols;
    } tensors[] = {
        {"token_embedding", w->token_embedding, 0, V, d}, {"rms_att", w->rms_att, L, 1, d},
        {"wq", w->wq, L, d, d},         {"wk", w->wk, L, kv, d},   {"wv", w->wv, L, kv, d},
        {"wo", w->wo, L, d, d},         {"rms_ffn", w->rms_ffn, L, 1, d},
        {"w1", w->w1, L, hd, d},        {"w2", w->w2, L, d, hd},   {"w3", w->w3, L, hd, d},
        {"rms_final", w->rms_final, 0, 1, d},
        {"wcls", ck->shared_classifier ? NULL : w->wcls, 0, V, d},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        if (!tensors[i].x) continue;
        size_t per_layer = tensors[i].rows * tensors[i].cols; /* fits: the file holds it */
        for (size_t l = 0; l < (tensors[i].layers ? tensors[i].layers : 1); l++) {
            const float *x = tensors[i].x + l * per_layer;
            long bad = find_nonfinite(x, per_layer);
            if (bad < 0) continue;
            char name[64];
            if (tensors[i].layers) snprintf(name, sizeof name, "%s[%zu]", tensors[i].name, l);
            else snprintf(name, sizeof name, "%s", tensors[i].name);
            fatal("%s: --check-tensors: tensor %s, row %zu: %s", path, name, (size_t)bad / tensors[i].cols,
                  isnan(x[bad]) ? "NaN" : "infinite");
        }
    }
}

void llama2c_close(Llama2cCheckpoint *ck) {
    unmap_file(&ck->file);
    memset(&ck->w, 0, sizeof ck->w);
}

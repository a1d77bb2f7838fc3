/**
 * @file gguf_convert.c
 * @brief Convert a llama2.c checkpoint and its tokenizer into a GGUF v3 file
 * with F32, F16, Q8_0 or Q4_0 weights (chapter 5's tool).
 *
 *     build/gguf_convert -m MODEL.bin -z TOKENIZER.bin -o OUT.gguf [-t f32|f16|q8_0|q4_0]
 *
 * It reads the checkpoint with chapter 1's reader (src/llama2c.h) and writes
 * what llama.cpp's own tools write (the file format: the book's formats
 * appendix, docs/formats.md, section GGUF): the llama.* shape keys with
 * context_length = the checkpoint's seq_len, the vocabulary with
 * spaces as U+2581, ids 0/1/2 renamed `<unk>`/`<s>`/`</s>` (types unknown,
 * control, control), `<0xNN>` pieces typed as bytes, and always a separate
 * `output.weight`. The tensor order and the metadata order are those of
 * llama.cpp's converter (f32) and llama-quantize (the others), so that for a
 * model llama.cpp can quantize the output is the same file, byte for byte
 * (tests/t_gguf.sh checks llama2xs).
 *
 * Types: norms stay F32. With -t q8_0 or q4_0 a matrix whose rows are not a
 * multiple of 32 falls back to F16 (as newer llama-quantize does), and with
 * q4_0 the classifier `output.weight` is Q8_0 (llama-quantize's Q6_K falls
 * back to Q8_0 on such small models too). The quantizers are llama.cpp's
 * reference ones: Q8_0 is chapter 3's (src/q8_kernels.h), Q4_0 src/quants.h's.
 *
 * The output appears atomically: it is written to a temporary file beside
 * the target and renamed at the end, so an error leaves nothing behind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "gguf.h"
#include "llama2c.h"
#include "q8_kernels.h"
#include "quants.h"
#include "util.h"

/* ======================================================================== */
/* Reading the llama2.c files                                               */
/* ======================================================================== */

/* The checkpoint is read by chapter 1's reader (src/llama2c.h), in main(). */

/** The llama2.c tokenizer's pieces and scores, for exactly @p n tokens. */
typedef struct {
    int n;
    char **texts; /* as the GGUF stores them: U+2581 for spaces, specials renamed */
    size_t *lens;
    float *scores;
    int32_t *types;
} Pieces;

static Pieces read_tokenizer(const char *path, int n) {
    MappedFile f = map_file(path);
    Pieces v = {n, xcalloc((size_t)n, sizeof(char *)), xcalloc((size_t)n, sizeof(size_t)),
                xcalloc((size_t)n, sizeof(float)), xcalloc((size_t)n, sizeof(int32_t))};
    size_t pos = 4;
    if (f.size < 4) fatal("%s: too short for a llama2.c tokenizer", path);
    for (int i = 0; i < n; i++) {
        int32_t len;
        if (f.size - pos < 8) fatal("%s: truncated at token %d (the model has %d)", path, i, n);
        memcpy(&v.scores[i], f.data + pos, 4);
        memcpy(&len, f.data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (size_t)len > f.size - pos) fatal("%s: token %d has a bad length %d", path, i, (int)len);
        const char *raw = (const char *)f.data + pos;
        pos += (size_t)len;
        static const char *const special[3] = {"<unk>", "<s>", "</s>"};
        char *t = xmalloc((size_t)len * 3 + 8); /* a space (1 byte) becomes 3 bytes */
        size_t o = 0;
        if (i < 3) {
            o = strlen(special[i]);
            memcpy(t, special[i], o);
        } else {
            for (int32_t j = 0; j < len; j++) {
                if (raw[j] == ' ') {
                    memcpy(t + o, "\xe2\x96\x81", 3);
                    o += 3;
                } else {
                    t[o++] = raw[j];
                }
            }
        }
        t[o] = 0;
        unsigned byte;
        char tail;
        int is_byte = o == 6 && sscanf(t, "<0x%2X%c", &byte, &tail) == 2 && tail == '>';
        v.texts[i] = t;
        v.lens[i] = o;
        v.types[i] = i == 0 ? 2 : i < 3 ? 3 : is_byte ? 6 : 1; /* unknown, control, byte, normal */
    }
    unmap_file(&f);
    return v;
}

/* ======================================================================== */
/* Writing GGUF                                                             */
/* ======================================================================== */

typedef struct {
    OutputFile file; /* util.h: complete under its name, or nothing there */
    uint64_t pos;
} Out;

static void out_write(Out *o, const void *p, size_t n) {
    output_write(&o->file, p, n);
    o->pos += n;
}
static void out_u32(Out *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    out_write(o, b, 4);
}
static void out_u64(Out *o, uint64_t v) {
    out_u32(o, (uint32_t)v);
    out_u32(o, (uint32_t)(v >> 32));
}
static void out_f32(Out *o, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    out_u32(o, u);
}
static void out_bytes_str(Out *o, const char *s, size_t len) {
    out_u64(o, len);
    out_write(o, s, len);
}
static void out_str(Out *o, const char *s) { out_bytes_str(o, s, strlen(s)); }
static void out_pad(Out *o) {
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT] = {0};
    out_write(o, zeros, (size_t)((GGUF_DEFAULT_ALIGNMENT - o->pos % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT));
}
static void kv_u32(Out *o, const char *key, uint32_t v) { out_str(o, key); out_u32(o, GGUF_U32); out_u32(o, v); }
static void kv_f32(Out *o, const char *key, float v) { out_str(o, key); out_u32(o, GGUF_F32); out_f32(o, v); }
static void kv_str(Out *o, const char *key, const char *v) { out_str(o, key); out_u32(o, GGUF_STRING); out_str(o, v); }

/** One tensor to write: @p rows rows of @p cols floats from @p src, stored as @p type. */
typedef struct {
    char name[GGUF_MAX_NAME + 1];
    int rows, cols; /* rows 0: a 1-D vector of cols values */
    int type;
    const float *src;
    uint64_t offset, bytes;
} Tensor;

static uint64_t tensor_size(const Tensor *t) {
    return (uint64_t)(t->rows ? t->rows : 1) * quant_row_bytes(t->type, (size_t)t->cols);
}

/** Convert and write the data of @p t, row by row. */
static void write_data(Out *o, const Tensor *t) {
    size_t row_bytes = quant_row_bytes(t->type, (size_t)t->cols);
    uint8_t *row = xmalloc(row_bytes);
    for (int r = 0; r < (t->rows ? t->rows : 1); r++) {
        const float *x = t->src + (size_t)r * (size_t)t->cols;
        switch (t->type) {
        case Q_F32: memcpy(row, x, row_bytes); break;
        case Q_F16:
            for (int j = 0; j < t->cols; j++) {
                uint16_t h = fp16_from_float(x[j]);
                memcpy(row + 2 * j, &h, 2);
            }
            break;
        case Q_Q8_0: quantize_q8((BlockQ8 *)row, x, t->cols); break; /* chapter 3's quantizer */
        case Q_Q4_0: quantize_q4_0(x, (BlockQ4_0 *)row, t->cols); break;
        }
        out_write(o, row, row_bytes);
    }
    free(row);
}

/* ======================================================================== */
/* The conversion                                                           */
/* ======================================================================== */

static void usage(FILE *f) {
    fprintf(f, "usage: gguf_convert -m MODEL.bin -z TOKENIZER.bin -o OUT.gguf [-t f32|f16|q8_0|q4_0]\n"
               "Convert a llama2.c checkpoint and tokenizer into a llama GGUF v3 file (chapter 5).\n");
}

int main(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out_path = NULL, *type_name = "f32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) fatal("%s: missing argument (see --help)", a);
        if (!strcmp(a, "-m")) model = argv[++i];
        else if (!strcmp(a, "-z")) tok = argv[++i];
        else if (!strcmp(a, "-o")) out_path = argv[++i];
        else if (!strcmp(a, "-t")) type_name = argv[++i];
        else fatal("%s: unknown option (see --help)", a);
    }
    if (!model || !tok || !out_path) fatal("need -m MODEL.bin, -z TOKENIZER.bin and -o OUT.gguf (see --help)");
    int type, file_type;
    if (!strcmp(type_name, "f32")) type = Q_F32, file_type = 0;
    else if (!strcmp(type_name, "f16")) type = Q_F16, file_type = 1;
    else if (!strcmp(type_name, "q8_0")) type = Q_Q8_0, file_type = 7;
    else if (!strcmp(type_name, "q4_0")) type = Q_Q4_0, file_type = 2;
    else fatal("-t %s: expected f32, f16, q8_0 or q4_0", type_name);

    Llama2cCheckpoint ckpt = llama2c_open(model, "gguf_convert"); /* chapter 1's reader */
    const ModelConfig *c = &ckpt.cfg;
    const Llama2cWeights *w = &ckpt.w;
    Pieces v = read_tokenizer(tok, c->vocab_size);

    /* The tensors, in the order llama.cpp's tools write them. */
    size_t d = (size_t)c->dim, kv = (size_t)c->kv_dim, H = (size_t)c->hidden_dim;
    int n_t = 3 + 9 * c->n_layers;
    Tensor *ts = xcalloc((size_t)n_t, sizeof(Tensor));
    int k = 0;
#define ADD(nm, r, cl, src_, ty) (snprintf(ts[k].name, sizeof ts[k].name, "%s", nm), ts[k].rows = (r), \
                                  ts[k].cols = (cl), ts[k].src = (src_), ts[k].type = (ty), k++)
    /* a matrix gets the file's type, or F16 when its rows do not split into blocks */
    int mat = type, out_type = type == Q_Q4_0 ? Q_Q8_0 : type;
#define MAT_TYPE(cols) ((cols) % quant_block_size(mat) ? Q_F16 : mat)
    char nm[GGUF_MAX_NAME + 1];
    if (type == Q_F32) { /* llama-convert-llama2c-to-ggml's order */
        ADD("token_embd.weight", c->vocab_size, c->dim, w->token_embedding, Q_F32);
        ADD("output_norm.weight", 0, c->dim, w->rms_final, Q_F32);
        ADD("output.weight", c->vocab_size, c->dim, w->wcls, Q_F32);
        for (int l = 0; l < c->n_layers; l++) {
            static const char *const order[9] = {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
                                                 "ffn_gate", "ffn_down", "ffn_up", "ffn_norm"};
            for (int j = 0; j < 9; j++) {
                snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, order[j]);
                ADD(nm, 0, 0, NULL, Q_F32);
            }
        }
    } else { /* llama-quantize's order: output, output_norm, token_embd, then each block alphabetically */
        ADD("output.weight", c->vocab_size, c->dim, w->wcls, c->dim % quant_block_size(out_type) ? Q_F16 : out_type);
        ADD("output_norm.weight", 0, c->dim, w->rms_final, Q_F32);
        ADD("token_embd.weight", c->vocab_size, c->dim, w->token_embedding, MAT_TYPE(c->dim));
        for (int l = 0; l < c->n_layers; l++) {
            static const char *const order[9] = {"attn_k", "attn_norm", "attn_output", "attn_q", "attn_v",
                                                 "ffn_down", "ffn_gate", "ffn_norm", "ffn_up"};
            for (int j = 0; j < 9; j++) {
                snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, order[j]);
                ADD(nm, 0, 0, NULL, Q_F32);
            }
        }
    }
#undef ADD
    /* Fill in the per-layer tensors' shapes, sources and types by name. */
    for (int i = 0; i < n_t; i++) {
        Tensor *t = &ts[i];
        int l;
        char part[32];
        if (sscanf(t->name, "blk.%d.%31[a-z_].weight", &l, part) != 2) continue;
        size_t L = (size_t)l;
        if (!strcmp(part, "attn_norm")) t->rows = 0, t->cols = c->dim, t->src = w->rms_att + L * d;
        else if (!strcmp(part, "ffn_norm")) t->rows = 0, t->cols = c->dim, t->src = w->rms_ffn + L * d;
        else if (!strcmp(part, "attn_q")) t->rows = c->dim, t->cols = c->dim, t->src = w->wq + L * d * d;
        else if (!strcmp(part, "attn_k")) t->rows = (int)kv, t->cols = c->dim, t->src = w->wk + L * kv * d;
        else if (!strcmp(part, "attn_v")) t->rows = (int)kv, t->cols = c->dim, t->src = w->wv + L * kv * d;
        else if (!strcmp(part, "attn_output")) t->rows = c->dim, t->cols = c->dim, t->src = w->wo + L * d * d;
        else if (!strcmp(part, "ffn_gate")) t->rows = c->hidden_dim, t->cols = c->dim, t->src = w->w1 + L * H * d;
        else if (!strcmp(part, "ffn_down")) t->rows = c->dim, t->cols = c->hidden_dim, t->src = w->w2 + L * d * H;
        else if (!strcmp(part, "ffn_up")) t->rows = c->hidden_dim, t->cols = c->dim, t->src = w->w3 + L * H * d;
        if (t->rows) t->type = type == Q_F32 ? Q_F32 : MAT_TYPE(t->cols);
    }
#undef MAT_TYPE
    uint64_t offset = 0;
    for (int i = 0; i < n_t; i++) {
        ts[i].offset = offset;
        ts[i].bytes = tensor_size(&ts[i]);
        offset += ts[i].bytes;
        offset += (GGUF_DEFAULT_ALIGNMENT - offset % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT;
    }

    Out o = {output_create(out_path), 0};
    out_write(&o, "GGUF", 4);
    out_u32(&o, 3);
    out_u64(&o, (uint64_t)n_t);
    out_u64(&o, type == Q_F32 ? 19 : 21);
    /* the vocabulary */
    out_str(&o, "tokenizer.ggml.tokens");
    out_u32(&o, GGUF_ARRAY);
    out_u32(&o, GGUF_STRING);
    out_u64(&o, (uint64_t)v.n);
    for (int i = 0; i < v.n; i++) out_bytes_str(&o, v.texts[i], v.lens[i]);
    out_str(&o, "tokenizer.ggml.scores");
    out_u32(&o, GGUF_ARRAY);
    out_u32(&o, GGUF_F32);
    out_u64(&o, (uint64_t)v.n);
    for (int i = 0; i < v.n; i++) out_f32(&o, v.scores[i]);
    out_str(&o, "tokenizer.ggml.token_type");
    out_u32(&o, GGUF_ARRAY);
    out_u32(&o, GGUF_I32);
    out_u64(&o, (uint64_t)v.n);
    for (int i = 0; i < v.n; i++) out_u32(&o, (uint32_t)v.types[i]);
    kv_str(&o, "tokenizer.ggml.model", "llama");
    kv_str(&o, "general.architecture", "llama");
    kv_str(&o, "general.name", "llama");
    kv_u32(&o, "tokenizer.ggml.unknown_token_id", 0);
    kv_u32(&o, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&o, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(&o, "tokenizer.ggml.seperator_token_id", 0xffffffffu); /* sic: llama.cpp's spelling */
    kv_u32(&o, "tokenizer.ggml.padding_token_id", 0xffffffffu);
    /* the shape */
    kv_u32(&o, "llama.context_length", (uint32_t)c->seq_len);
    kv_u32(&o, "llama.embedding_length", (uint32_t)c->dim);
    kv_u32(&o, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    kv_u32(&o, "llama.attention.head_count", (uint32_t)c->n_heads);
    kv_u32(&o, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    kv_u32(&o, "llama.block_count", (uint32_t)c->n_layers);
    kv_u32(&o, "llama.rope.dimension_count", (uint32_t)c->head_size);
    kv_f32(&o, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (type != Q_F32) {
        kv_u32(&o, "general.quantization_version", 2);
        kv_u32(&o, "general.file_type", (uint32_t)file_type);
    }
    /* the tensor directory, then the data */
    for (int i = 0; i < n_t; i++) {
        const Tensor *t = &ts[i];
        out_str(&o, t->name);
        out_u32(&o, t->rows ? 2 : 1);
        out_u64(&o, (uint64_t)t->cols);
        if (t->rows) out_u64(&o, (uint64_t)t->rows);
        out_u32(&o, (uint32_t)t->type);
        out_u64(&o, t->offset);
    }
    out_pad(&o);
    for (int i = 0; i < n_t; i++) {
        write_data(&o, &ts[i]);
        out_pad(&o);
    }
    output_commit(&o.file);
    int counts[16] = {0};
    for (int i = 0; i < n_t; i++) counts[ts[i].type]++;
    fprintf(stderr, "%s: %d tensors (", out_path, n_t);
    for (int t = 0, first = 1; t < 16; t++)
        if (counts[t]) fprintf(stderr, "%s%d %s", first ? "" : ", ", counts[t], gguf_tensor_type_name((uint32_t)t)), first = 0;
    fprintf(stderr, "), %llu bytes\n", (unsigned long long)o.pos);
    for (int i = 0; i < v.n; i++) free(v.texts[i]);
    free(v.texts); free(v.lens); free(v.scores); free(v.types);
    free(ts);
    llama2c_close(&ckpt);
    return 0;
}

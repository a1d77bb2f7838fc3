/**
 * @file unit_dequant.c
 * @brief Chapter 5's block formats (src/quants.h) against llama.cpp, and chapter 8's
 * Q5_K, Q3_K and IQ4_XS.
 *
 *     build/tests/unit_dequant SHARED
 *
 * 1. Decoding: for every (file, tensor) line of SHARED/reference/dequant/NAME.tsv
 *    (values that gguf-py and ggml's own C decoder print), our dequantizer
 *    must give every one of the 768 values bit for bit — one check per line.
 *    NAME.gguf is looked for in SHARED/models/gguf and then in its families/
 *    folder (chapter 8's files, with the Q5_K, Q3_K and IQ4_XS tensors).
 * 2. The activation quantizers: Q8_0 is chapter 3's (ties away from zero); Q8_K rounds as llama.cpp does (ties to even), the
 *    Q8_K scale from the signed extreme, bsums.
 * 3. Each plain-C dot product equals the double-precision dot product of the
 *    dequantized weights and the dequantized activations, to float rounding,
 *    on rows of the real tensors.
 * 4. llama.cpp's reference quantizers: re-quantizing the decoded Q8_0/Q4_0
 *    weights of a file gives back its bytes.
 * 5. The K-quant SIMD kernels, one row and eight rows at a time, and the
 *    8-row Q8_0 kernel against the plain-C definitions, bit for bit.
 * 6. Chapter 8's Q5_K, Q3_K and IQ4_XS kernels: each plain-C dot product
 *    equals the exact sum of its decoded operands (random blocks, blocks of
 *    extremes, 0..9 super-blocks), and the SIMD ones (one row and eight rows
 *    at a time) equal it bit for bit.
 *
 * The Makefile builds it without -march (tests are plain C), so there the
 * SIMD kernels are the plain-C ones; built with CFLAGS=-march=native (or
 * haswell, or for ARM64) it checks the build's SIMD kernels. Chapter 5 checks
 * its SIMD kernels against them at load time when LLAMABOOK_CHECK_KERNELS=1
 * (tests/t_gguf.sh): bit for bit.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "q8_kernels.h"
#include "quants.h"
#include "unit.h"
#include "util.h"

static char *join(const char *a, const char *b) {
    char *p = xmalloc(strlen(a) + strlen(b) + 2);
    sprintf(p, "%s/%s", a, b);
    return p;
}

/** Decode the first @p rows rows of tensor @p t into a new array. */
static float *decode_rows(const GgufTensor *t, size_t rows) {
    size_t ne0 = (size_t)t->ne[0];
    float *out = xmalloc(sizeof(float) * ne0 * rows);
    size_t row_bytes = quant_row_bytes((int)t->type, ne0);
    for (size_t r = 0; r < rows; r++) dequant_row((int)t->type, t->data + r * row_bytes, out + r * ne0, (int)ne0);
    return out;
}

/* ------------------------------------------------------------------------ */
/* 1. The reference values                                                  */

static void check_file(const char *shared, const char *tsv_name) {
    char stem[256], name[512];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(tsv_name) - 4), tsv_name);
    char *tsv_rel = join("reference/dequant", tsv_name), *tsv = join(shared, tsv_rel);
    char gguf_rel[300];
    snprintf(gguf_rel, sizeof gguf_rel, "models/gguf/%s.gguf", stem);
    char *gguf = join(shared, gguf_rel);
    if (access(gguf, R_OK) != 0) { /* chapter 8's files are in a folder of their own */
        free(gguf);
        snprintf(gguf_rel, sizeof gguf_rel, "models/gguf/families/%s.gguf", stem);
        gguf = join(shared, gguf_rel);
    }
    FILE *f = fopen(tsv, "r");
    if (!f || access(gguf, R_OK) != 0) {
        snprintf(name, sizeof name, "%s: decode every listed tensor", stem);
        SKIP(name, "file not found");
        if (f) fclose(f);
        free(tsv_rel); free(tsv); free(gguf);
        return;
    }
    GgufFile *g = gguf_open(gguf);
    size_t cap = 1 << 16;
    char *line = xmalloc(cap);
    while (fgets(line, (int)cap, f)) {
        char *tensor = strtok(line, "\t"), *type = strtok(NULL, "\t"), *shape = strtok(NULL, "\t");
        char *values = strtok(NULL, "\n");
        if (!tensor || !type || !shape || !values) continue;
        snprintf(name, sizeof name, "%s %s (%s %s): 768 values bit-equal to llama.cpp's", stem, tensor, type, shape);
        const GgufTensor *t = gguf_find_tensor(g, tensor);
        unsigned long ne0 = 0, ne1 = 0;
        sscanf(shape, "%lux%lu", &ne0, &ne1);
        if (!t || t->ne[0] != ne0 || t->ne[1] != ne1 || strcmp(gguf_tensor_type_name(t->type), type) != 0 ||
            quant_block_size_ch8((int)t->type) == 0) {
            CHECK(name, 0, "tensor missing, of another shape or type, or a type chapters 5 and 8 do not decode");
            continue;
        }
        size_t last = 2 * ne0 + 287, rows = (last > 511 ? last : 511) / ne0 + 1;
        if (rows > ne1) rows = ne1;
        float *dec = decode_rows(t, rows);
        int bad = -1, n = 0;
        float want = 0, got = 0;
        char *p = values;
        for (int i = 0; i < 768; i++, n++) {
            char *end;
            want = strtof(p, &end);
            if (end == p) break;
            p = end;
            size_t idx = i < 512 ? (size_t)i : 2 * ne0 + 32 + (size_t)(i - 512);
            if (idx >= rows * ne0) break;
            got = dec[idx];
            if (memcmp(&want, &got, 4) != 0) {
                bad = i;
                break;
            }
        }
        CHECK(name, bad < 0 && n == 768, "value %d: ours %.9g, llama.cpp %.9g (%d values read)", bad, got, want, n);
        free(dec);
    }
    free(line);
    fclose(f);
    gguf_close(g);
    free(tsv_rel); free(tsv); free(gguf);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void check_references(const char *shared) {
    char *dir = join(shared, "reference/dequant");
    DIR *d = opendir(dir);
    if (!d) {
        SKIP("dequantization references", "reference/dequant not found");
        free(dir);
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tsv") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        check_file(shared, names[i]);
        free(names[i]);
    }
    free(dir);
}

/* ------------------------------------------------------------------------ */
/* 2. Activation rounding                                                   */

static void check_activation_rounding(void) {
    float x[QK_K];
    BlockQ8 q8[QK_K / QK], xq[QK_K / QK];
    /* Q8_0 activations are chapter 3's quantizer: amax 127 makes the factor exactly 1, and x = k + 0.5
     * rounds away from zero (roundf) */
    for (int j = 0; j < QK; j++) x[j] = j == 0 ? 127.0f : (float)(j % 8) - 3.5f; /* -3.5 .. 3.5 */
    quantize_q8(q8, x, QK);
    int away = q8[0].qs[0] == 127 && q8[0].qs[1] == -3 && q8[0].qs[2] == -2 && q8[0].qs[3] == -1 && q8[0].qs[4] == 1 &&
               q8[0].qs[5] == 2 && q8[0].qs[6] == 3 && q8[0].qs[7] == 4;
    CHECK("Q8_0 activations (chapter 3's quantizer): ties round away from zero (-2.5 -> -3, 0.5 -> 1)", away,
          "got %d %d %d %d %d %d %d", q8[0].qs[1], q8[0].qs[2], q8[0].qs[3], q8[0].qs[4], q8[0].qs[5], q8[0].qs[6], q8[0].qs[7]);
    for (int j = 0; j < QK_K; j++) x[j] = (float)((j * 53) % 97 - 48) / 7.0f;
    quantize_q8(q8, x, QK_K);
    simd_quantize_q8(xq, x, QK_K);
    CHECK("simd_quantize_q8 gives quantize_q8's bytes", memcmp(q8, xq, sizeof q8) == 0, "bytes differ");
    memset(x, 0, sizeof x);
    quantize_q8(q8, x, QK);
    CHECK("Q8_0 activations: a block of zeros has scale 0 and quants 0", q8[0].d == 0 && q8[0].qs[5] == 0, "d %u", q8[0].d);

    BlockQ8_K k8;
    for (int j = 0; j < QK_K; j++) x[j] = (float)((j * 37) % 101 - 50) / 10.0f; /* -5.0 .. 5.0 */
    x[7] = -12.7f;                                                               /* the extreme, negative */
    quantize_q8_K(x, &k8, QK_K);
    int sums_ok = 1;
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += k8.qs[16 * g + j];
        sums_ok &= s == k8.bsums[g];
    }
    /* the extreme m itself becomes m·(-127/m) = -127, whatever its sign */
    CHECK("Q8_K activations: scale from the signed extreme, d = 1/(-127/m), bsums", k8.qs[7] == -127 &&
          k8.d == 1.0f / (-127.0f / -12.7f) && sums_ok && k8.qs[0] == round_half_even(x[0] * (-127.0f / -12.7f)),
          "q[7] %d d %g sums %d", k8.qs[7], k8.d, sums_ok);
    for (int j = 0; j < QK_K; j++) x[j] = -x[j];
    quantize_q8_K(x, &k8, QK_K);
    CHECK("Q8_K activations: a positive extreme maps to -127 too, with d < 0", k8.qs[7] == -127 && k8.d < 0, "q[7] %d d %g", k8.qs[7], k8.d);
    memset(x, 0, sizeof x);
    quantize_q8_K(x, &k8, QK_K);
    CHECK("Q8_K activations: zeros give d 0", k8.d == 0.0f && k8.qs[3] == 0 && k8.bsums[2] == 0, "d %g", k8.d);
    /* a non-finite activation (from a broken weight upstream): no NaN -> int conversion (UBSan would
     * say so), a NaN scale and zero quants, so the dot products and then the logits are NaN too */
    for (int bad = 0; bad < 3; bad++) {
        for (int j = 0; j < QK_K; j++) x[j] = (float)(j % 9) - 4.0f;
        x[100] = bad == 0 ? NAN : bad == 1 ? INFINITY : -INFINITY;
        memset(&k8, 0x55, sizeof k8);
        quantize_q8_K(x, &k8, QK_K);
        int zero = 1;
        for (int j = 0; j < QK_K; j++) zero &= k8.qs[j] == 0;
        for (int g = 0; g < 16; g++) zero &= k8.bsums[g] == 0;
        BlockQ4_K w4;
        BlockQ6_K w6;
        BlockQ5_K w5;
        BlockQ3_K w3;
        BlockIQ4_XS wi;
        memset(&w4, 0x11, sizeof w4);
        memset(&w6, 0x22, sizeof w6);
        memset(&w5, 0x33, sizeof w5);
        memset(&w3, 0x44, sizeof w3);
        memset(&wi, 0x55, sizeof wi);
        w4.d = w4.dmin = w6.d = w5.d = w5.dmin = w3.d = wi.d = 0x3c00; /* 1.0 */
        float d4 = dot_q4_K_c(&w4, &k8, 1), d6 = dot_q6_K_c(&w6, &k8, 1);
        float d5 = dot_q5_K_c(&w5, &k8, 1), d3 = dot_q3_K_c(&w3, &k8, 1), di = dot_iq4_xs_c(&wi, &k8, 1);
        char name[200];
        snprintf(name, sizeof name, "Q8_K activations: a block with %s gets d = NaN and zero quants; Q4_K, Q6_K, Q5_K, Q3_K and "
                 "IQ4_XS dots are NaN", bad == 0 ? "a NaN" : bad == 1 ? "+infinity" : "-infinity");
        CHECK(name, isnan(k8.d) && zero && isnan(d4) && isnan(d6) && isnan(d5) && isnan(d3) && isnan(di),
              "d %g, quants zero %d, dots %g %g %g %g %g", k8.d, zero, d4, d6, d5, d3, di);
    }
    /* the weight quantizer of tools/gguf_convert: a non-finite weight decodes as NaN, not as a number */
    for (int j = 0; j < QK; j++) x[j] = (float)j / 8.0f;
    x[9] = NAN;
    x[40] = INFINITY; /* in the second block */
    BlockQ4_0 q4[QK_K / QK];
    quantize_q4_0(x, q4, 2 * QK);
    float back[2 * QK];
    dequant_q4_0(q4, back, 2 * QK);
    CHECK("Q4_0 weights: a block with a NaN or an infinity decodes as NaN (scale NaN)", isnan(back[0]) && isnan(back[31]) &&
          isnan(back[32]) && isnan(back[63]), "%g %g %g %g", back[0], back[31], back[32], back[63]);
    float r[4] = {1.0f, 1.0009765625f, 1.00048828125f, 65520.0f}, y[4];
    round_to_f16(r, y, 4);
    CHECK("F16 activations: rounded to the nearest half, ties to even", y[0] == 1.0f && y[1] == 1.0009765625f &&
          y[2] == 1.0f && isinf(y[3]), "%g %g %g %g", y[0], y[1], y[2], y[3]);
}

/* ------------------------------------------------------------------------ */
/* 3. Dot products against a double-precision sum                           */

static uint64_t rng_state = 88172645463325252ull;
static float rnd(void) { /* xorshift64*, uniform in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((rng_state * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}

/** The plain-C dot product of a row of K-quant @p type with @p nb Q8_K blocks. */
static float k_dot_c(int type, const void *row, const BlockQ8_K *x, int nb) {
    switch (type) {
    case Q_Q4_K: return dot_q4_K_c(row, x, nb);
    case Q_Q6_K: return dot_q6_K_c(row, x, nb);
    case Q_Q5_K: return dot_q5_K_c(row, x, nb);
    case Q_Q3_K: return dot_q3_K_c(row, x, nb);
    default: return dot_iq4_xs_c(row, x, nb);
    }
}

/** The same with the build's SIMD kernel. */
static float k_dot_simd(int type, const void *row, const BlockQ8_K *x, int nb) {
    switch (type) {
    case Q_Q4_K: return simd_dot_q4_K(row, x, nb);
    case Q_Q6_K: return simd_dot_q6_K(row, x, nb);
    case Q_Q5_K: return simd_dot_q5_K(row, x, nb);
    case Q_Q3_K: return simd_dot_q3_K(row, x, nb);
    default: return simd_dot_iq4_xs(row, x, nb);
    }
}

/** The build's 8-row kernel of chapter 8's @p type: out[k] for the 8 rows of @p nb super-blocks at @p rows. */
static void family_dot_8rows(int type, float *out, const void *rows, const BlockQ8_K *x, int nb) {
    if (type == Q_Q5_K) simd_dot_q5_K_8rows(out, rows, x, nb);
    else if (type == Q_Q3_K) simd_dot_q3_K_8rows(out, rows, x, nb);
    else simd_dot_iq4_xs_8rows(out, rows, x, nb);
}

/** Our dot of row @p r of @p t with activations x, and the exact sum it stands for. */
static void dot_both(const GgufTensor *t, size_t r, const float *x, double *ours, double *exact, double *mag) {
    int n = (int)t->ne[0], type = (int)t->type;
    const uint8_t *row = t->data + r * quant_row_bytes(type, (size_t)n);
    float *w = xmalloc(sizeof(float) * (size_t)n), *xd = xmalloc(sizeof(float) * (size_t)n);
    dequant_row(type, row, w, n);
    BlockQ8 *q8 = xmalloc(sizeof(BlockQ8) * (size_t)(n / QK + 1));
    BlockQ8_K *k8 = xmalloc(sizeof(BlockQ8_K) * (size_t)(n / QK_K + 1));
    switch (type) {
    case Q_F32: memcpy(xd, x, sizeof(float) * (size_t)n); *ours = dot_f32_c((const float *)row, x, n); break;
    case Q_F16: round_to_f16(x, xd, n); *ours = dot_f16_c((const uint16_t *)row, xd, n); break;
    case Q_Q8_0: case Q_Q4_0: case Q_Q5_0: {
        quantize_q8(q8, x, n);
        dequantize_q8(xd, q8, n);
        float *scales = xmalloc(sizeof(float) * (size_t)(n / QK));
        for (int b = 0; b < n / QK; b++) scales[b] = fp16_to_float(q8[b].d);
        *ours = type == Q_Q8_0 ? dot_q8((const BlockQ8 *)row, q8, n / QK)
              : type == Q_Q4_0 ? dot_q4_0_c((const BlockQ4_0 *)row, q8, scales, NULL, n / QK)
                               : dot_q5_0_c((const BlockQ5_0 *)row, q8, scales, NULL, n / QK);
        free(scales);
        break;
    }
    case Q_Q4_K: case Q_Q6_K: case Q_Q5_K: case Q_Q3_K: case Q_IQ4_XS:
        quantize_q8_K(x, k8, n);
        for (int b = 0; b < n / QK_K; b++)
            for (int j = 0; j < QK_K; j++) xd[b * QK_K + j] = k8[b].d * (float)k8[b].qs[j];
        *ours = k_dot_c(type, row, k8, n / QK_K);
        break;
    }
    *exact = 0;
    *mag = 0;
    for (int i = 0; i < n; i++) {
        *exact += (double)w[i] * (double)xd[i];
        *mag += fabs((double)w[i] * (double)xd[i]);
    }
    free(w); free(xd); free(q8); free(k8);
}

static void check_dots(const char *shared) {
    static const struct { const char *file, *tensor; } rows[] = {
        {"models/gguf/syn-k256-f32.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/syn-k256-f16.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/syn-k256-q8_0.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/syn-k256-q4_0.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/stories260K-q4_k_m.gguf", "blk.0.attn_q.weight"}, /* Q5_0 */
        {"models/gguf/syn-k256-q4_k_m.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/syn-k256-q6_k.gguf", "blk.0.ffn_down.weight"},
        {"models/gguf/families/qwen2-syn-q5_k_m.gguf", "blk.0.attn_q.weight"},  /* Q5_K */
        {"models/gguf/families/smollm-syn-q3_k_m.gguf", "blk.0.attn_q.weight"}, /* Q3_K */
        {"models/gguf/families/smollm-syn-iq4_xs.gguf", "blk.0.attn_q.weight"}, /* IQ4_XS */
    };
    char name[300];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *p = join(shared, rows[i].file);
        if (access(p, R_OK) != 0) {
            snprintf(name, sizeof name, "dot product on %s", rows[i].file);
            SKIP(name, "file not found");
            free(p);
            continue;
        }
        GgufFile *g = gguf_open(p);
        const GgufTensor *t = gguf_find_tensor(g, rows[i].tensor);
        snprintf(name, sizeof name, "plain-C %s dot product = the exact sum of its decoded operands (%s)",
                 t ? gguf_tensor_type_name(t->type) : "?", rows[i].file);
        double worst = 0;
        if (t) {
            int n = (int)t->ne[0];
            float *x = xmalloc(sizeof(float) * (size_t)n);
            for (size_t r = 0; r < 16 && r < t->ne[1]; r++) {
                for (int j = 0; j < n; j++) x[j] = rnd() * (j % 7 == 0 ? 4.0f : 1.0f);
                double ours = 0, exact, mag;
                dot_both(t, r, x, &ours, &exact, &mag);
                double rel = fabs(ours - exact) / (mag > 0 ? mag : 1);
                if (rel > worst) worst = rel;
            }
            free(x);
        }
        CHECK(name, t && worst < 1e-5, "worst |ours - exact| / sum|w x| = %.3g", worst);
        gguf_close(g);
        free(p);
    }
}

/* ------------------------------------------------------------------------ */
/* 4. The reference quantizers give back llama-quantize's bytes             */

static void check_requantize(const char *shared) {
    static const struct { const char *file, *tensor; int type; } cases[] = {
        {"models/gguf/llama2xs-q8_0.gguf", "blk.0.ffn_down.weight", Q_Q8_0},
        {"models/gguf/llama2xs-q4_0.gguf", "blk.0.ffn_down.weight", Q_Q4_0},
        {"models/gguf/syn-k256-q4_0.gguf", "blk.1.ffn_gate.weight", Q_Q4_0},
    };
    char name[300];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = join(shared, cases[i].file);
        char *f32 = xmalloc(strlen(p) + 8);
        strcpy(f32, p);
        char *dash = strrchr(f32, '-');
        strcpy(dash, "-f32.gguf");
        snprintf(name, sizeof name, "%s %s: llama.cpp's reference quantizer on the f32 weights gives the file's bytes",
                 cases[i].file, cases[i].tensor);
        if (access(p, R_OK) != 0 || access(f32, R_OK) != 0) {
            SKIP(name, "file not found");
            free(p); free(f32);
            continue;
        }
        GgufFile *g = gguf_open(p), *gf = gguf_open(f32);
        const GgufTensor *t = gguf_find_tensor(g, cases[i].tensor), *tf = gguf_find_tensor(gf, cases[i].tensor);
        int ok = t && tf && (int)t->type == cases[i].type && tf->type == GGML_F32;
        if (ok) {
            size_t n = (size_t)tf->n_elements;
            float *x = xmalloc(sizeof(float) * n);
            memcpy(x, tf->data, sizeof(float) * n);
            uint8_t *q = xmalloc(quant_row_bytes(cases[i].type, n));
            if (cases[i].type == Q_Q8_0) quantize_q8((BlockQ8 *)q, x, (int)n);
            else quantize_q4_0(x, (BlockQ4_0 *)q, (int)n);
            ok = t->n_bytes == quant_row_bytes(cases[i].type, n) && memcmp(q, t->data, t->n_bytes) == 0;
            free(x);
            free(q);
        }
        CHECK(name, ok, "bytes differ");
        gguf_close(g);
        gguf_close(gf);
        free(p);
        free(f32);
    }
}

/* ------------------------------------------------------------------------ */
/* 5. The K-quant SIMD kernels against the definitions, bit for bit          */

/** Random K-quant rows: random bytes, then finite fp16 scales; @p extreme: every quant and 6-bit scale at its top. */
static void random_k_rows(int type, uint8_t *rows, size_t bytes, int extreme) {
    for (size_t i = 0; i < bytes; i++) rows[i] = extreme ? 0xff : (uint8_t)(rnd() * 128.0f + 128.0f);
    if (type == Q_Q4_K)
        for (BlockQ4_K *b = (BlockQ4_K *)(void *)rows; (uint8_t *)(b + 1) <= rows + bytes; b++)
            b->d = fp16_from_float(rnd() * 0.01f), b->dmin = fp16_from_float(rnd() * 0.01f);
    else
        for (BlockQ6_K *b = (BlockQ6_K *)(void *)rows; (uint8_t *)(b + 1) <= rows + bytes; b++) {
            b->d = fp16_from_float(rnd() * 0.01f);
            if (extreme) b->scales[b->ql[0] % 16] = -128; /* the int8 scale's bottom too */
        }
}

/**
 * simd_dot_q4_K / simd_dot_q6_K and their 8-row kernels give each row's
 * dot_q4_K_c / dot_q6_K_c, bit for bit: random rows and activations, and
 * rows of extremes against activations of ±127 (the largest integer sums).
 */
static void check_k_kernels(void) {
    enum { MAX_NB = 9 };
    static uint8_t rows[8 * MAX_NB * sizeof(BlockQ6_K)];
    static float x[MAX_NB * QK_K];
    static BlockQ8_K xk[MAX_NB];
    const int types[2] = {Q_Q4_K, Q_Q6_K};
    for (int ti = 0; ti < 2; ti++) {
        int type = types[ti], ok = 1, bad_nb = -1, bad_row = -1;
        float got = 0.0f, want = 0.0f;
        for (int trial = 0; trial < 6 && ok; trial++)
            for (int nb = 0; nb <= MAX_NB && ok; nb++) {
                int extreme = trial >= 4;
                size_t row_bytes = quant_row_bytes(type, (size_t)nb * QK_K);
                random_k_rows(type, rows, 8 * row_bytes, extreme);
                for (int i = 0; i < nb * QK_K; i++)
                    x[i] = extreme ? (trial == 4 ? 1.0f : (i % 3 ? -1.0f : 1.0f)) : rnd() * (i % 61 == 0 ? 40.0f : 1.0f);
                quantize_q8_K(x, xk, nb * QK_K);
                float eight[8];
                if (type == Q_Q4_K) simd_dot_q4_K_8rows(eight, (const BlockQ4_K *)(void *)rows, xk, nb);
                else simd_dot_q6_K_8rows(eight, (const BlockQ6_K *)(void *)rows, xk, nb);
                for (int k = 0; k < 8 && ok; k++) {
                    const void *row = rows + row_bytes * (size_t)k;
                    want = type == Q_Q4_K ? dot_q4_K_c(row, xk, nb) : dot_q6_K_c(row, xk, nb);
                    float one = type == Q_Q4_K ? simd_dot_q4_K(row, xk, nb) : simd_dot_q6_K(row, xk, nb);
                    got = memcmp(&one, &want, sizeof want) ? one : eight[k];
                    if (memcmp(&got, &want, sizeof want)) ok = 0, bad_nb = nb, bad_row = k;
                }
            }
        char name[128];
        snprintf(name, sizeof name, "%s SIMD kernels (one row, 8 rows) = the plain-C definition, bit for bit, 0..%d super-blocks",
                 type == Q_Q4_K ? "Q4_K" : "Q6_K", MAX_NB);
        CHECK(name, ok, "%d super-blocks, row %d: %a, want %a", bad_nb, bad_row, got, want);
    }
}

/**
 * Chapter 5's simd_dot_q8_0_8rows (w + 128 against Q8_0 activations, less
 * 128·Σx): each lane is dot_q8 of its row, bit for bit, for 0..40 blocks,
 * on random rows and on rows of extremes (−128, which no quantizer writes but
 * a file may hold, and ±127) against activations of ±127.
 */
static void check_q8_0_8rows(void) {
    enum { MAX_BLOCKS = 40 };
    static BlockQ8 w[8 * MAX_BLOCKS], x[MAX_BLOCKS];
    static float v[MAX_BLOCKS * QK];
    float xd[MAX_BLOCKS], got[8], want = 0.0f;
    int16_t xsum[MAX_BLOCKS];
    int ok = 1, bad_n = -1, bad_row = -1;
    for (int trial = 0; trial < 4 && ok; trial++)
        for (int n = 0; n <= MAX_BLOCKS && ok; n++) {
            int extreme = trial >= 2;
            for (int i = 0; i < n * QK; i++) v[i] = extreme ? (i % 5 ? 1.0f : -1.0f) : rnd() * (i % 29 == 0 ? 20.0f : 1.0f);
            quantize_q8(x, v, n * QK);
            for (int b = 0; b < n; b++) {
                int sum = 0;
                for (int j = 0; j < QK; j++) sum += x[b].qs[j];
                xd[b] = fp16_to_float(x[b].d), xsum[b] = (int16_t)sum;
            }
            for (int b = 0; b < 8 * n; b++) {
                w[b].d = fp16_from_float(rnd() * 0.01f);
                for (int j = 0; j < QK; j++) {
                    int q = extreme ? (j % 3 == 0 ? -128 : j % 3 == 1 ? 127 : -127) : (int)(rnd() * 127.0f);
                    w[b].qs[j] = (int8_t)q;
                }
            }
            simd_dot_q8_0_8rows(got, w, x, xd, xsum, n);
            for (int k = 0; k < 8 && ok; k++) {
                want = dot_q8(w + (size_t)k * (size_t)n, x, n);
                if (memcmp(&got[k], &want, sizeof want)) ok = 0, bad_n = n, bad_row = k;
            }
        }
    CHECK("simd_dot_q8_0_8rows = dot_q8 of each of its 8 rows, bit for bit, 0..40 blocks", ok, "%d blocks, row %d: %a, want %a",
          bad_n, bad_row, bad_row >= 0 ? got[bad_row] : 0.0f, want);
}

/* ------------------------------------------------------------------------ */
/* 6. Chapter 8's Q5_K, Q3_K and IQ4_XS kernels                             */

/** Rows of @p type: random bytes (@p fill < 0) or every byte @p fill, then finite random fp16 super-scales. */
static void family_rows(int type, uint8_t *rows, size_t bytes, int fill) {
    for (size_t i = 0; i < bytes; i++) rows[i] = fill < 0 ? (uint8_t)(rnd() * 128.0f + 128.0f) : (uint8_t)fill;
    const size_t block = quant_row_bytes(type, QK_K);
    for (size_t at = 0; at + block <= bytes; at += block) {
        void *b = rows + at;
        uint16_t d = fp16_from_float(rnd() * 0.01f), dmin = fp16_from_float(rnd() * 0.01f);
        if (type == Q_Q5_K) ((BlockQ5_K *)b)->d = d, ((BlockQ5_K *)b)->dmin = dmin;
        if (type == Q_Q3_K) ((BlockQ3_K *)b)->d = d;
        if (type == Q_IQ4_XS) ((BlockIQ4_XS *)b)->d = d;
    }
}

static const char *family_name(int type) { return type == Q_Q5_K ? "Q5_K" : type == Q_Q3_K ? "Q3_K" : "IQ4_XS"; }

/**
 * For each of Q5_K, Q3_K and IQ4_XS, 0..9 super-blocks, 8 rows each: random
 * rows; rows of 0x00 (Q3_K: every quant −4 and every scale −32; IQ4_XS: level
 * −127, scale −32: the largest integer sums) and of 0xff (the top quants,
 * scales and mins); against random activations with spikes, activations all
 * alike (every quant −127), all +127 but the first (which is −127: Q8_K maps
 * the extreme to −127) and of alternating sign.
 *  - The plain-C dot product equals Σ w·x in double precision over the
 *    decoded weights (dequant_row(), checked against llama.cpp's values in 1.)
 *    and the decoded activations, to float rounding: the definition computes
 *    the same sum, only with integers inside each super-block.
 *  - The build's SIMD kernels, one row and eight rows at a time, give the
 *    plain-C value bit for bit.
 */
static void check_family_kernels(void) {
    enum { MAX_NB = 9, ROWS = 8 };
    static uint8_t rows[ROWS * MAX_NB * sizeof(BlockQ5_K)];
    static float x[MAX_NB * QK_K], w[MAX_NB * QK_K], xd[MAX_NB * QK_K];
    static BlockQ8_K xk[MAX_NB];
    const int types[3] = {Q_Q5_K, Q_Q3_K, Q_IQ4_XS};
    for (int ti = 0; ti < 3; ti++) {
        int type = types[ti], same = 1, bad_nb = -1, bad_row = -1, bad_trial = -1, cases = 0;
        double worst = 0;
        float got = 0.0f, want = 0.0f;
        for (int trial = 0; trial < 12; trial++) {
            int fill = trial < 4 ? -1 : trial < 8 ? 0x00 : 0xff, xs = trial % 4; /* x: random, quants −127, +127, alternating */
            for (int nb = 0; nb <= MAX_NB; nb++) {
                int n = nb * QK_K;
                size_t row_bytes = quant_row_bytes(type, (size_t)n);
                family_rows(type, rows, ROWS * row_bytes, fill);
                for (int i = 0; i < n; i++)
                    x[i] = xs == 0 ? rnd() * (i % 61 == 0 ? 40.0f : 1.0f) : xs == 1 ? 0.5f : xs == 2 ? (i ? 0.5f : -0.5f) : (i % 2 ? -1.0f : 1.0f);
                quantize_q8_K(x, xk, n);
                for (int b = 0; b < nb; b++)
                    for (int j = 0; j < QK_K; j++) xd[b * QK_K + j] = xk[b].d * (float)xk[b].qs[j];
                float eight[ROWS];
                family_dot_8rows(type, eight, rows, xk, nb);
                for (int r = 0; r < ROWS; r++, cases++) {
                    const uint8_t *row = rows + row_bytes * (size_t)r;
                    float plain = k_dot_c(type, row, xk, nb), simd = k_dot_simd(type, row, xk, nb);
                    if (!memcmp(&plain, &simd, sizeof plain)) simd = eight[r]; /* the one-row kernel agrees: check the 8-row one */
                    dequant_row(type, row, w, n);
                    double exact = 0, mag = 0;
                    for (int i = 0; i < n; i++) exact += (double)w[i] * (double)xd[i], mag += fabs((double)w[i] * (double)xd[i]);
                    double rel = fabs((double)plain - exact) / (mag > 0 ? mag : 1);
                    if (rel > worst || (nb == 0 && plain != 0.0f)) worst = nb == 0 && plain != 0.0f ? 1.0 : rel;
                    if (same && memcmp(&plain, &simd, sizeof plain)) same = 0, bad_nb = nb, bad_row = r, bad_trial = trial, got = simd, want = plain;
                }
            }
        }
        char name[200];
        snprintf(name, sizeof name, "plain-C %s dot product = the exact sum of its decoded operands (%d rows: random, 0x00, 0xff; 0..%d super-blocks)",
                 family_name(type), cases, MAX_NB);
        CHECK(name, worst < 1e-5, "worst |ours - exact| / sum|w x| = %.3g", worst);
        snprintf(name, sizeof name, "%s SIMD kernels (%s; one row, 8 rows) = the plain-C definition, bit for bit, on the same %d rows",
                 family_name(type), SIMD_NAME, cases);
        CHECK(name, same, "trial %d, %d super-blocks, row %d: %a, want %a", bad_trial, bad_nb, bad_row, got, want);
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_references(shared);
    check_activation_rounding();
    check_dots(shared);
    check_requantize(shared);
    check_k_kernels();
    check_q8_0_8rows();
    check_family_kernels();
    return UNIT_EXIT();
}

/**
 * @file fuzz_gguf.c
 * @brief libFuzzer target for chapter 5's GGUF reader: gguf_parse() on
 * arbitrary bytes must either succeed or return an error message; it must
 * never read outside the buffer, overflow, leak or crash.
 *
 *     make fuzz FUZZ_TIME=300
 *
 * builds it with `clang -fsanitize=fuzzer,address,undefined` and runs it on a
 * seed corpus: the first 16 KiB of every shared GGUF file (header, metadata
 * and usually the whole tensor directory) and the malformed files that
 * tests/unit_gguf.c writes. When a parse succeeds, the target also walks what
 * the reader promised is valid: every key is looked up, the tokenizer
 * getters run, and the first and last byte of every tensor are read, so that
 * AddressSanitizer checks the promised bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GgufFile g;
    char err[256];
    if (gguf_parse(&g, data, size, err, sizeof err) != 0) {
        if (err[0] == 0) abort(); /* every failure must say why */
        return 0;
    }
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        sink ^= t->data[0];
        sink ^= t->data[t->n_bytes - 1];
        if (gguf_find_tensor(&g, t->name) == NULL) abort();
    }
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const GgufKV *kv = &g.kv[i];
        if (kv->value_len) sink ^= kv->value[kv->value_len - 1];
        char key[256];
        if (kv->key_len < sizeof key && !memchr(kv->key, 0, kv->key_len)) {
            memcpy(key, kv->key, kv->key_len);
            key[kv->key_len] = 0;
            if (gguf_find_key(&g, key) != kv) abort();
        }
    }
    const char **texts;
    size_t *lens;
    float *scores;
    int32_t *types;
    uint64_t n;
    uint32_t u;
    if (gguf_get_string_array(&g, "tokenizer.ggml.tokens", &texts, &lens, &n, err, sizeof err) == GGUF_FOUND) {
        for (uint64_t i = 0; i < n; i++)
            if (lens[i]) sink ^= (uint8_t)texts[i][lens[i] - 1];
        free(texts);
        free(lens);
    }
    if (gguf_get_f32_array(&g, "tokenizer.ggml.scores", &scores, &n, err, sizeof err) == GGUF_FOUND) free(scores);
    if (gguf_get_i32_array(&g, "tokenizer.ggml.token_type", &types, &n, err, sizeof err) == GGUF_FOUND) free(types);
    (void)gguf_get_u32(&g, "llama.block_count", &u, err, sizeof err);
    (void)sink;
    gguf_free(&g);
    return 0;
}

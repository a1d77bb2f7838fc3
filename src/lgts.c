/**
 * @file lgts.c
 * @brief Reading and writing LGTS logits files (see lgts.h).
 */
#include "lgts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int32_t read_i32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t s;
    memcpy(&s, &v, 4);
    return s;
}

Lgts lgts_read(const char *path) {
    MappedFile f = map_file(path);
    Lgts l = {0, 0, NULL, NULL};
    if (f.size < 16 || memcmp(f.data, "LGTS", 4) != 0) fatal("%s: not an LGTS file", path);
    if (read_i32(f.data + 4) != 1) fatal("%s: unsupported LGTS version %d", path, (int)read_i32(f.data + 4));
    int32_t n = read_i32(f.data + 8), vocab = read_i32(f.data + 12);
    if (n <= 0 || vocab <= 0) fatal("%s: bad LGTS sizes %d x %d", path, (int)n, (int)vocab);
    uint64_t want = 16 + 4ull * (uint64_t)n + 4ull * (uint64_t)n * (uint64_t)vocab;
    if (want != f.size) fatal("%s: LGTS size %zu, header says %llu", path, f.size, (unsigned long long)want);
    l.n_tokens = n;
    l.vocab = vocab;
    l.tokens = xmalloc(4 * (size_t)n);
    l.logits = xmalloc(4 * (size_t)n * (size_t)vocab);
    for (int i = 0; i < n; i++) l.tokens[i] = read_i32(f.data + 16 + 4 * (size_t)i);
    memcpy(l.logits, f.data + 16 + 4 * (size_t)n, 4 * (size_t)n * (size_t)vocab); /* little-endian host */
    unmap_file(&f);
    return l;
}

void lgts_write(OutputFile *out, const Lgts *l) {
    int32_t head[4];
    memcpy(head, "LGTS", 4);
    head[1] = 1;
    head[2] = l->n_tokens;
    head[3] = l->vocab;
    output_write(out, head, sizeof head);
    output_write(out, l->tokens, 4 * (size_t)l->n_tokens);
    output_write(out, l->logits, 4 * (size_t)l->n_tokens * (size_t)l->vocab);
    output_commit(out);
}

void lgts_free(Lgts *l) {
    free(l->tokens);
    free(l->logits);
    l->tokens = NULL;
    l->logits = NULL;
}

/**
 * @file unit_ch05.c
 * @brief Chapter 5's vocabulary loader against llama.cpp's tokenizer.
 *
 *     build/tests/unit_ch05 SHARED
 *
 * Includes chapters/05_gguf.c to call its load_vocab() on a GGUF file, and
 * checks that encoding every string of SHARED/reference/tokenizer/TSV gives
 * llama.cpp's ids (the second column: llama-tokenize, BOS added, special
 * tokens parsed):
 *  - llama-spm-32000.tsv with llama-spm-vocab.gguf, the 32000-piece Llama 2
 *    vocabulary, which has no weights (so chapter 5 itself cannot open it);
 *  - tok512.tsv with stories260K-f32.gguf.
 * One check per string, so a failure names the text.
 */
#include "../chapters/05_gguf.c"

#include <unistd.h>

#include "unit.h"

/** Decode the JSON string literal at @p p into @p out (UTF-8); the end of the literal, or NULL. */
static const char *json_text(const char *p, char *out, size_t cap) {
    if (*p++ != '"') return NULL;
    size_t o = 0;
    while (*p && *p != '"') {
        unsigned long cp;
        if (*p != '\\') {
            if (o + 1 >= cap) return NULL;
            out[o++] = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u': {
            char hex[5] = {0};
            memcpy(hex, p + 1, 4);
            cp = strtoul(hex, NULL, 16);
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u') { /* a surrogate pair */
                memcpy(hex, p + 3, 4);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (strtoul(hex, NULL, 16) - 0xdc00);
                p += 6;
            }
            break;
        }
        default: cp = (unsigned char)*p; break; /* \" \\ \/ */
        }
        p++;
        if (o + 4 >= cap) return NULL;
        if (cp < 0x80) out[o++] = (char)cp;
        else if (cp < 0x800) out[o++] = (char)(0xc0 | cp >> 6), out[o++] = (char)(0x80 | (cp & 63));
        else if (cp < 0x10000)
            out[o++] = (char)(0xe0 | cp >> 12), out[o++] = (char)(0x80 | ((cp >> 6) & 63)), out[o++] = (char)(0x80 | (cp & 63));
        else
            out[o++] = (char)(0xf0 | cp >> 18), out[o++] = (char)(0x80 | ((cp >> 12) & 63)),
            out[o++] = (char)(0x80 | ((cp >> 6) & 63)), out[o++] = (char)(0x80 | (cp & 63));
    }
    out[o] = 0;
    return *p == '"' ? p + 1 : NULL;
}

static void check_vocabulary(const char *shared, const char *gguf_rel, const char *tsv_rel) {
    char gguf[1024], tsv[1024], name[512];
    snprintf(gguf, sizeof gguf, "%s/%s", shared, gguf_rel);
    snprintf(tsv, sizeof tsv, "%s/%s", shared, tsv_rel);
    FILE *f = fopen(tsv, "r");
    if (!f || access(gguf, R_OK) != 0) {
        snprintf(name, sizeof name, "%s: encodes as llama.cpp", gguf_rel);
        SKIP(name, "reference data not found");
        if (f) fclose(f);
        return;
    }
    GgufFile *g = gguf_open(gguf);
    const GgufKV *tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    Vocab *v = tokens ? load_vocab(gguf, g, (int)tokens->count) : NULL;
    snprintf(name, sizeof name, "%s: the vocabulary loads (%llu tokens)", gguf_rel,
             tokens ? (unsigned long long)tokens->count : 0ull);
    CHECK(name, v != NULL, "no tokenizer.ggml.tokens");
    static char line[1 << 16], text[1 << 16];
    int rows = 0;
    while (v && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        const char *p = json_text(line, text, sizeof text);
        if (!p || *p != '\t') continue;
        int want[4096], n_want = 0, got[4096];
        char *q = (char *)p + 1, *end;
        while (*q != '\t' && *q && n_want < 4096) {
            long id = strtol(q, &end, 10);
            if (end == q) break;
            want[n_want++] = (int)id;
            q = end;
            while (*q == ' ') q++;
        }
        char err[200] = "";
        int n_got = vocab_encode(v, text, 1, got, 4096, err, sizeof err);
        char shown[64];
        size_t o = 0;
        for (const char *s = text; *s && o < 40; s++) shown[o++] = (*s == '\n' || *s == '\t') ? ' ' : *s;
        shown[o] = 0;
        snprintf(name, sizeof name, "%s: \"%s\" gives llama.cpp's ids", gguf_rel, shown);
        int same = n_got == n_want;
        for (int i = 0; same && i < n_got; i++) same = got[i] == want[i];
        CHECK(name, same, "%d ids (first %d) vs llama.cpp's %d (first %d) %s", n_got, n_got > 1 ? got[1] : -1, n_want,
              n_want > 1 ? want[1] : -1, err);
        rows++;
    }
    snprintf(name, sizeof name, "%s: the reference has rows", tsv_rel);
    CHECK(name, rows >= 30, "%d rows read", rows);
    fclose(f);
    if (v) vocab_free(v);
    gguf_close(g);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_vocabulary(shared, "models/gguf/llama-spm-vocab.gguf", "reference/tokenizer/llama-spm-32000.tsv");
    check_vocabulary(shared, "models/gguf/stories260K-f32.gguf", "reference/tokenizer/tok512.tsv");
    return UNIT_EXIT();
}

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

#include <sys/mman.h>
#include <sys/wait.h>
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
        int want[4096], n_want = 0, n_got;
        char *q = (char *)p + 1, *end;
        while (*q != '\t' && *q && n_want < 4096) {
            long id = strtol(q, &end, 10);
            if (end == q) break;
            want[n_want++] = (int)id;
            q = end;
            while (*q == ' ') q++;
        }
        char err[200] = "";
        int *got = vocab_encode(v, text, 1, &n_got, err, sizeof err);
        if (!got) n_got = -1;
        char shown[64];
        size_t o = 0;
        for (const char *s = text; *s && o < 40; s++) shown[o++] = (*s == '\n' || *s == '\t') ? ' ' : *s;
        shown[o] = 0;
        snprintf(name, sizeof name, "%s: \"%s\" gives llama.cpp's ids", gguf_rel, shown);
        int same = n_got == n_want;
        for (int i = 0; same && i < n_got; i++) same = got[i] == want[i];
        CHECK(name, same, "%d ids (first %d) vs llama.cpp's %d (first %d) %s", n_got, n_got > 1 ? got[1] : -1, n_want,
              n_want > 1 ? want[1] : -1, err);
        free(got);
        rows++;
    }
    snprintf(name, sizeof name, "%s: the reference has rows", tsv_rel);
    CHECK(name, rows >= 30, "%d rows read", rows);
    fclose(f);
    if (v) vocab_free(v);
    gguf_close(g);
}

/* ------------------------------------------------------------------------ */
/* A vocabulary that a sparse file claims                                   */

static long sparse_before_kib; /* the child's address-space peak before load_vocab() */

/** fatal()'s hook in the child: after the message (on the pipe, as stderr), how much the peak grew. */
static LB_NORETURN void sparse_fatal(void) {
    fprintf(stderr, "|grew %ld KiB", vm_peak_kib() - sparse_before_kib);
    fflush(stderr);
    _exit(0);
}

/**
 * tokenizer.ggml.tokens claiming 50 million empty strings: 400 MB of zeros,
 * a few pages of a sparse file, and valid GGUF. load_vocab() must compare
 * the count with the embedding's 300 rows before it makes the array's 800 MB
 * of pointers and lengths (the peak of the address space shows it). Run in a
 * child process: fatal() ends it, and the peak never comes down.
 */
static void check_sparse_vocabulary(void) {
    const char *name = "a sparse tokenizer.ggml.tokens of 50 million strings is refused before it is allocated";
    const uint64_t count = 50000000;
    const char key[] = "tokenizer.ggml.tokens";
    const size_t size = 24 + 8 + (sizeof key - 1) + 4 + 4 + 8 + 8 * count;
    int fds[2];
    fflush(stdout);
    pid_t pid = sizeof(size_t) >= 8 && pipe(fds) == 0 ? fork() : -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED || (sparse_before_kib = vm_peak_kib()) < 0) {
            fprintf(stderr, "skip: no 400 MB mapping, or no VmPeak in /proc/self/status");
            _exit(0);
        }
        uint8_t *o = p;
        const uint64_t fields[] = {0, 1, sizeof key - 1}; /* tensors, metadata pairs, the key's length */
        memcpy(o, "GGUF\3\0\0\0", 8), o += 8;
        for (int f = 0; f < 3; f++, o += 8)
            for (int i = 0; i < 8; i++) o[i] = (uint8_t)(fields[f] >> (8 * i));
        memcpy(o, key, sizeof key - 1), o += sizeof key - 1;
        o[0] = GGUF_ARRAY, o += 4;
        o[0] = GGUF_STRING, o += 4;
        for (int i = 0; i < 8; i++) o[i] = (uint8_t)(count >> (8 * i));
        /* the rest stays zero: 50 million strings of length 0 */
        char err[200];
        GgufFile g;
        if (gguf_parse(&g, p, size, err, sizeof err) != 0) {
            fprintf(stderr, "does not parse: %s", err);
            _exit(0);
        }
        fatal_set_hook(sparse_fatal);
        load_vocab("sparse.gguf", &g, 300);
        fprintf(stderr, "load_vocab() returned");
        _exit(0);
    }
    if (pid < 0) {
        SKIP(name, "no fork, or a 32-bit system");
        return;
    }
    close(fds[1]);
    char got[600];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(fds[0], got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
    got[n] = 0;
    for (char *c = got; *c; c++) *c = *c == '\n' ? ' ' : *c; /* one line of output */
    close(fds[0]);
    waitpid(pid, NULL, 0);
    const char *grew = strstr(got, "|grew ");
    if (strncmp(got, "skip: ", 6) == 0) SKIP(name, got + 6);
    else CHECK(name, strstr(got, "tokenizer.ggml.tokens has 50000000 entries, but token_embd.weight has 300 rows") && grew &&
                         atol(grew + 6) < 65536, "%s", got);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_vocabulary(shared, "models/gguf/llama-spm-vocab.gguf", "reference/tokenizer/llama-spm-32000.tsv");
    check_vocabulary(shared, "models/gguf/stories260K-f32.gguf", "reference/tokenizer/tok512.tsv");
    check_sparse_vocabulary();
    return UNIT_EXIT();
}

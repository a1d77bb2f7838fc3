/**
 * @file unit_tokenizer.c
 * @brief Unit tests of tokenizer.c against the reference token ids of two
 * independent programs (llama2.c and llama.cpp).
 *
 * Usage: unit_tokenizer [SHARED]   (default ../shared). Checks whose files are
 * missing under SHARED are skipped, not failed.
 *
 * The reference files in SHARED/reference/tokenizer/ hold one text per
 * line as a JSON string literal, then llama.cpp's ids, then llama2.c's ids:
 *  - a llama2.c vocabulary (vocab_load_llama2c) must give the llama2.c column;
 *  - the same pieces presented the way a GGUF file holds them (vocab_from_arrays)
 *    must give the llama.cpp column, which differs on "<s>hello</s>" only;
 *  - decoding the ids must give the text back.
 * Beyond those: the heap-based merge must agree with a plain rescan after every
 * merge (llama2.c's method) on texts full of ties, a 200 KB text must encode
 * quickly, a vocabulary without byte tokens must refuse what it cannot spell,
 * and safe_print must drop what a terminal should not see.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"
#include "unit.h"
#include "util.h"

#define MAX_IDS 4096

/* ======================================================================== */
/* Reading the reference files                                              */
/* ======================================================================== */

static void put_utf8(unsigned long cp, char *out, size_t *n) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/** Four hex digits at @p p, or -1. */
static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/** The character a one-letter JSON escape \\c stands for, or -1. */
static int simple_escape(char c) {
    switch (c) {
    case '"': case '\\': case '/': return c;
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
    }
}

/**
 * Unescape the JSON string literal at @p p into @p out (NUL-terminated; it is
 * never longer than the literal). Returns the character after the closing
 * quote, or NULL if the literal is malformed.
 */
static const char *json_string(const char *p, char *out) {
    size_t n = 0;
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if (*p == '\0') return NULL;
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        p++;
        int simple = simple_escape(*p);
        if (simple >= 0) {
            out[n++] = (char)simple;
            p++;
            continue;
        }
        if (*p != 'u') return NULL;
        long cp = hex4(p + 1);
        p += 5;
        if (cp >= 0xD800 && cp < 0xDC00) { /* a high surrogate must pair with a low one */
            long lo = p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
            return NULL;
        }
        put_utf8((unsigned long)cp, out, &n);
    }
    out[n] = '\0';
    return p + 1;
}

/** Whitespace-separated ids from @p s up to a tab or the end; -1 on junk. */
static int parse_ids(const char *s, int *ids, int cap, const char **end) {
    int n = 0;
    while (*s == ' ') s++;
    while (*s && *s != '\t' && *s != '\n') {
        char *after;
        long id = strtol(s, &after, 10);
        if (after == s || n == cap) return -1;
        ids[n++] = (int)id;
        s = after;
        while (*s == ' ') s++;
    }
    *end = s;
    return n;
}

typedef struct {
    char *text;
    int cpp[MAX_IDS], n_cpp; /* llama.cpp's ids */
    int l2c[MAX_IDS], n_l2c; /* llama2.c's ids */
} Row;

/** All rows of a reference file; NULL (with *n_rows = -1 - line) on a bad line. */
static Row *read_rows(const char *path, int *n_rows) {
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    Row *rows = NULL;
    int n = 0, line_no = 0;
    while (fp && getline(&line, &cap, fp) > 0) {
        line_no++;
        if (line[0] == '#' || line[0] == '\n') continue;
        rows = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        Row *r = &rows[n++];
        r->text = xmalloc(strlen(line) + 1);
        const char *p = json_string(line, r->text);
        if (!p || *p != '\t' || (r->n_cpp = parse_ids(p + 1, r->cpp, MAX_IDS, &p)) < 0 || *p != '\t' ||
            (r->n_l2c = parse_ids(p + 1, r->l2c, MAX_IDS, &p)) < 0) {
            *n_rows = -1 - line_no;
            return NULL;
        }
    }
    free(line);
    if (fp) fclose(fp);
    *n_rows = n;
    return rows;
}

static void free_rows(Row *rows, int n) {
    for (int i = 0; i < n; i++) free(rows[i].text);
    free(rows);
}

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static int readable(const char *path) { return access(path, R_OK) == 0; }

/** @p s with bytes outside printable ASCII as \xNN, for one-line messages. */
static const char *shown(const char *s) {
    static char buf[256];
    size_t n = 0;
    for (; *s && n + 5 < sizeof buf; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7F) buf[n++] = (char)c;
        else n += (size_t)snprintf(buf + n, sizeof buf - n, "\\x%02X", c);
    }
    buf[n] = '\0';
    return buf;
}

static const char *ids_text(const int *ids, int n) {
    static char buf[512];
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 12 < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%d", i ? " " : "", ids[i]);
    return buf;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

/** vocab_encode() into an array of @p cap ids: their number, -1 if encoding
 * fails, -2 if there are more than @p cap. */
static int encode_into(const Vocab *v, const char *text, int add_bos, int *ids, int cap, char *err, size_t err_len) {
    int n;
    int *got = vocab_encode(v, text, add_bos, &n, err, err_len);
    if (!got) return -1;
    if (n > cap) n = -2;
    else memcpy(ids, got, (size_t)n * sizeof *ids);
    free(got);
    return n;
}

/* ======================================================================== */
/* The checks                                                               */
/* ======================================================================== */

/** Every row's encoding against column @p llamacpp (1) or llama2.c (0). */
static void check_column(const char *name, const Vocab *v, const Row *rows, int n, int llamacpp) {
    static int ids[MAX_IDS];
    char err[200], first[600] = "";
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const int *want = llamacpp ? rows[i].cpp : rows[i].l2c;
        int n_want = llamacpp ? rows[i].n_cpp : rows[i].n_l2c;
        int got = encode_into(v, rows[i].text, 1, ids, MAX_IDS, err, sizeof err);
        if (got >= 0 && same_ids(ids, got, want, n_want)) continue;
        if (bad++ == 0) {
            int k = snprintf(first, sizeof first, "row %d \"%s\": ours [%s]", i + 1, shown(rows[i].text),
                             got < 0 ? err : ids_text(ids, got));
            snprintf(first + k, sizeof first - (size_t)k, ", reference [%s]", ids_text(want, n_want));
        }
    }
    CHECK(name, bad == 0, "%d of %d rows differ; first: %s", bad, n, first);
}

/** The row whose text is @p text, or NULL. */
static const Row *find_row(const Row *rows, int n, const char *text) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].text, text) == 0) return &rows[i];
    return NULL;
}

/** Concatenate the decoded pieces of @p ids (BOS first) into @p out. */
static size_t decode_all(const Vocab *v, const int *ids, int n, char *out, size_t cap) {
    size_t len = 0;
    for (int i = 1; i < n; i++) {
        int piece_len;
        const char *piece = vocab_decode(v, ids[i - 1], ids[i], &piece_len);
        if (len + (size_t)piece_len >= cap) break;
        memcpy(out + len, piece, (size_t)piece_len);
        len += (size_t)piece_len;
    }
    out[len] = '\0';
    return len;
}

static void check_round_trip(const char *name, const Vocab *v, const Row *rows, int n) {
    static int ids[MAX_IDS];
    static char back[4 * MAX_IDS];
    int bad = 0, first = -1;
    for (int i = 0; i < n; i++) {
        int got = encode_into(v, rows[i].text, 1, ids, MAX_IDS, NULL, 0);
        if (got > 0 && decode_all(v, ids, got, back, sizeof back) == strlen(rows[i].text) &&
            strcmp(back, rows[i].text) == 0)
            continue;
        if (bad++ == 0) first = i;
    }
    CHECK(name, bad == 0, "%d of %d rows do not decode to their text; first: \"%s\"", bad, n,
          first >= 0 ? shown(rows[first].text) : "");
}

/** The same pieces as a GGUF file made by llama.cpp's llama2.c converter holds them. */
static Vocab *as_gguf(const Vocab *v) {
    int n = v->n_tokens;
    char **texts = xmalloc((size_t)n * sizeof *texts);
    size_t *lens = xmalloc((size_t)n * sizeof *lens);
    int *types = xmalloc((size_t)n * sizeof *types);
    for (int id = 0; id < n; id++) {
        const char *renamed = id == 0 ? "<unk>" : id == 1 ? "<s>" : id == 2 ? "</s>" : NULL;
        const char *src = renamed ? renamed : v->pieces[id];
        size_t src_len = renamed ? strlen(renamed) : (size_t)v->piece_lens[id];
        texts[id] = xmalloc(3 * src_len + 1);
        lens[id] = 0;
        for (size_t i = 0; i < src_len; i++) { /* a space is U+2581 in GGUF vocabularies */
            if (src[i] == ' ') memcpy(texts[id] + lens[id], "\xE2\x96\x81", 3), lens[id] += 3;
            else texts[id][lens[id]++] = src[i];
        }
        int is_byte = 0;
        for (int b = 0; b < 256; b++) is_byte |= v->byte_token[b] == id;
        types[id] = id == 0 ? 2 : id <= 2 || src_len == 0 ? 3 : is_byte ? 6 : 1;
    }
    Vocab *g = vocab_from_arrays("test-gguf", n, (const char *const *)texts, lens, v->scores, types, 1, 2, 0);
    for (int id = 0; id < n; id++) free(texts[id]);
    free(texts);
    free(lens);
    free(types);
    return g;
}

/** vocab_lookup(), except that a special token (@p special[id], may be NULL) is not found. */
static int lookup_plain(const Vocab *v, const unsigned char *special, const char *s, size_t len) {
    int id = vocab_lookup(v, s, len);
    return id >= 0 && special && special[id] ? -1 : id;
}

/** llama2.c's method, written out plainly: rescan every pair after every
 * merge, over the whole of @p len bytes of @p text at once. Pieces that are
 * special tokens (@p special, may be NULL) are never merged into. */
static int naive_encode_len(const Vocab *v, const unsigned char *special, const char *text, size_t len, int *ids) {
    int n = 0;
    if (len > 0 && lookup_plain(v, special, " ", 1) >= 0) ids[n++] = lookup_plain(v, special, " ", 1);
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        while (i + k < len && k < 4 && ((unsigned char)text[i + k] & 0xC0) == 0x80) k++;
        int id = lookup_plain(v, special, text + i, k);
        if (id >= 0) ids[n++] = id;
        else
            for (size_t j = 0; j < k; j++) ids[n++] = v->byte_token[(unsigned char)text[i + j]];
        i += k;
    }
    char buf[256];
    for (;;) {
        float best_score = -1e10f;
        int best = -1, best_id = -1;
        for (int i = 0; i + 1 < n; i++) {
            int la = v->piece_lens[ids[i]], lb = v->piece_lens[ids[i + 1]];
            if (la + lb > (int)sizeof buf) continue;
            memcpy(buf, v->pieces[ids[i]], (size_t)la);
            memcpy(buf + la, v->pieces[ids[i + 1]], (size_t)lb);
            int id = lookup_plain(v, special, buf, (size_t)(la + lb));
            if (id >= 0 && v->scores[id] > best_score) best_score = v->scores[id], best = i, best_id = id;
        }
        if (best < 0) return n;
        ids[best] = best_id;
        memmove(ids + best + 1, ids + best + 2, (size_t)(n - best - 2) * sizeof *ids);
        n--;
    }
}

static int naive_encode(const Vocab *v, const char *text, int *ids) {
    return naive_encode_len(v, NULL, text, strlen(text), ids);
}

/** Texts full of equal-score ties, repeated pieces, byte fallback and bad UTF-8. */
static void check_against_rescan(const char *name, const Vocab *v, const char *excerpt_path) {
    static const char *parts[] = {"a", "b", "ab", " ", "  ", "the", " the", "\n", "é", "株", "\xE2\x96\x81",
                                  "\xFF", "\x80", "🦙", "aaa", "ll", "o", ".", "Once", "\t"};
    static char text[4096];
    static int ours[MAX_IDS], theirs[MAX_IDS];
    unsigned long state = 12345;
    int bad = 0, texts = 0;
    char first[300] = "";
    for (int t = 0; t < 60; t++, texts++) {
        size_t len = 0;
        for (int k = 0; k < 150; k++) {
            state = state * 6364136223846793005ul + 1442695040888963407ul;
            const char *p = parts[(state >> 33) % (sizeof parts / sizeof *parts)];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        text[len] = '\0';
        int n = encode_into(v, text, 0, ours, MAX_IDS, NULL, 0);
        if (!same_ids(ours, n, theirs, naive_encode(v, text, theirs)) && bad++ == 0)
            snprintf(first, sizeof first, "\"%s\"", shown(text));
    }
    FILE *fp = fopen(excerpt_path, "rb");
    if (fp) { /* real prose as well: 2 KB of TinyStories */
        size_t len = fread(text, 1, 2048, fp);
        text[len] = '\0';
        fclose(fp);
        int n = encode_into(v, text, 0, ours, MAX_IDS, NULL, 0);
        if (!same_ids(ours, n, theirs, naive_encode(v, text, theirs)) && bad++ == 0)
            snprintf(first, sizeof first, "the TinyStories excerpt");
        texts++;
    }
    CHECK(name, bad == 0, "%d of %d texts differ; first: %s", bad, texts, first);
}

static void check_long_text(const Vocab *v) {
    const char *paragraph = "Once upon a time, there was a little girl named Lily. She loved to play "
                            "outside in the park with her friends, and every day she found something new: "
                            "a shiny stone, a red leaf, a funny bug. \"Look!\" she said.\n";
    size_t want = 200 * 1024, plen = strlen(paragraph), len = 0;
    char *text = xmalloc(want + plen + 1);
    while (len < want) memcpy(text + len, paragraph, plen), len += plen;
    text[len] = '\0';
    double t0 = now_seconds();
    int n;
    int *ids = vocab_encode(v, text, 1, &n, NULL, 0);
    double ms = 1e3 * (now_seconds() - t0);
    EncodeCounts counts = vocab_last_encode_counts();
    char name[120];
    snprintf(name, sizeof name, "encode %zu bytes with 32000 pieces: %d ids in %.1f ms", len, n, ms);
    CHECK(name, ids && n > 0, "returned %d", n);
    /* Merged whole, the text held all its 200 K symbols and their candidate
     * pairs at once (about 36 bytes per byte of text). */
    CHECK("a long text is merged a word at a time (at most 32 symbols at once)", counts.largest_chunk <= 32,
          "%zu symbols were merged at once", counts.largest_chunk);
    free(ids);
    free(text);
}

/* ======================================================================== */
/* Special tokens                                                           */
/* ======================================================================== */

/** A vocabulary as a GGUF file gives it: <unk>, <s>, </s>, the 256 byte
 * tokens (ids 3..258), then the @p n @p texts (ids 259 on) of @p types
 * (1 normal, 3 control, 4 user-defined), earlier ones merging first. With
 * @p special_out, also which ids are special tokens (the caller frees it). */
static Vocab *small_vocab(int n, const char *const *texts, const int *types, unsigned char **special_out) {
    int total = 259 + n;
    const char **all = xmalloc((size_t)total * sizeof *all);
    size_t *lens = xmalloc((size_t)total * sizeof *lens);
    int *all_types = xmalloc((size_t)total * sizeof *all_types);
    float *scores = xmalloc((size_t)total * sizeof *scores);
    char(*bytes)[8] = xmalloc(256 * sizeof *bytes);
    for (int id = 0; id < total; id++) {
        if (id < 3) {
            all[id] = id == 0 ? "<unk>" : id == 1 ? "<s>" : "</s>";
            all_types[id] = id == 0 ? 2 : 3;
        } else if (id < 259) {
            snprintf(bytes[id - 3], sizeof bytes[id - 3], "<0x%02X>", id - 3);
            all[id] = bytes[id - 3];
            all_types[id] = 6;
        } else {
            all[id] = texts[id - 259];
            all_types[id] = types[id - 259];
        }
        lens[id] = strlen(all[id]);
        scores[id] = -(float)id;
    }
    Vocab *v = vocab_from_arrays("test", total, all, lens, scores, all_types, 1, 2, 0);
    if (special_out) {
        *special_out = xcalloc((size_t)total, 1);
        for (int id = 0; id < total; id++) (*special_out)[id] = all_types[id] >= 2 && all_types[id] <= 4;
    }
    free(all), free(lens), free(all_types), free(scores), free(bytes);
    return v;
}

/**
 * The special-token rule written plainly (and tokenizer.c's method before the
 * automaton): every special in turn, longest first then by id, claims each
 * occurrence, from the left, that overlaps no claim so far; then the
 * stretches between the claims are merged, each with its own dummy prefix.
 */
static int naive_encode_special(const Vocab *v, const unsigned char *special, const char *text, int *ids) {
    size_t len = strlen(text);
    int *claim = xmalloc((len + 1) * sizeof *claim); /* -1 plain, -2 inside a claim, else the id claimed there */
    for (size_t i = 0; i < len; i++) claim[i] = -1;
    int longest = 0;
    for (int id = 0; id < v->n_tokens; id++)
        if (special[id] && v->piece_lens[id] > longest) longest = v->piece_lens[id];
    for (int plen = longest; plen >= 1; plen--) {
        for (int id = 0; id < v->n_tokens; id++) {
            if (!special[id] || v->piece_lens[id] != plen) continue;
            for (size_t i = 0; i + (size_t)plen <= len; i++) {
                int free_run = 1;
                for (int k = 0; k < plen; k++) free_run &= claim[i + (size_t)k] == -1;
                if (!free_run || memcmp(text + i, v->pieces[id], (size_t)plen) != 0) continue;
                claim[i] = id;
                for (int k = 1; k < plen; k++) claim[i + (size_t)k] = -2;
                i += (size_t)plen - 1;
            }
        }
    }
    int n = 0;
    ids[n++] = v->bos_id;
    for (size_t i = 0; i < len;) {
        if (claim[i] >= 0) {
            ids[n++] = claim[i];
            i += (size_t)v->piece_lens[claim[i]];
            continue;
        }
        size_t end = i;
        while (end < len && claim[end] == -1) end++;
        n += naive_encode_len(v, special, text + i, end - i, ids + n);
        i = end;
    }
    free(claim);
    return n;
}

/** Random vocabularies whose special tokens overlap, nest, repeat and are one
 * byte long, on random texts: the same ids as the rule written plainly. */
static void check_special_rule(void) {
    static const char alphabet[] = "ab c";
    static int ours[MAX_IDS], theirs[MAX_IDS];
    unsigned long state = 2024;
#define NEXT_RANDOM(n) (state = state * 6364136223846793005ul + 1442695040888963407ul, (int)((state >> 33) % (n)))
    int bad = 0, cases = 300, specials_found = 0;
    char first[600] = "";
    for (int t = 0; t < cases; t++) {
        char texts[32][8];
        const char *ptrs[32];
        int types[32], n = 12 + NEXT_RANDOM(20);
        for (int i = 0; i < n; i++) {
            int len = 1 + NEXT_RANDOM(4), run = NEXT_RANDOM(4) == 0;
            for (int k = 0; k < len; k++) texts[i][k] = run && k > 0 ? texts[i][0] : alphabet[NEXT_RANDOM(4)];
            texts[i][len] = '\0';
            if (i > 0 && NEXT_RANDOM(8) == 0) strcpy(texts[i], texts[NEXT_RANDOM(i)]); /* a text twice */
            types[i] = NEXT_RANDOM(3) != 0 ? 1 : NEXT_RANDOM(2) ? 3 : 4;
            ptrs[i] = texts[i];
        }
        unsigned char *special;
        Vocab *v = small_vocab(n, ptrs, types, &special);
        char text[401];
        int text_len = 1 + NEXT_RANDOM(400);
        for (int k = 0; k < text_len; k++) text[k] = alphabet[NEXT_RANDOM(4)];
        text[text_len] = '\0';
        int n_theirs = naive_encode_special(v, special, text, theirs);
        int n_ours = encode_into(v, text, 1, ours, MAX_IDS, NULL, 0);
        for (int i = 0; i < n_theirs; i++) specials_found += i > 0 && special[theirs[i]];
        if (!same_ids(ours, n_ours, theirs, n_theirs) && bad++ == 0) {
            int k = snprintf(first, sizeof first, "\"%.60s\": ours [%s]", text, ids_text(ours, n_ours));
            snprintf(first + k, sizeof first - (size_t)k, ", plainly [%s]", ids_text(theirs, n_theirs));
        }
        free(special);
        vocab_free(v);
    }
#undef NEXT_RANDOM
    char name[160];
    snprintf(name, sizeof name, "special tokens: %d random vocabularies and texts (%d specials found) as the rule "
             "written plainly", cases, specials_found);
    CHECK(name, bad == 0 && specials_found > 1000, "%d of %d differ; first: %s", bad, cases, first);
}

/**
 * The denial of service: 65,536 control tokens made searching the text once
 * per special cost 65,536 x (text) (32 s for a 120 KB prompt). The automaton
 * takes at most two steps per byte, plus one per occurrence.
 */
static void check_many_specials(void) {
    enum { N_SPECIALS = 65536, N_PIECES = 40, TEXT_BYTES = 120 * 1024 };
    static const char *pieces[N_PIECES] = {" ", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
                                           "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "<",
                                           "|", ">", "_", "1", "7", "th", "he", " the", "ow", " q", " f", " d"};
    const char **texts = xmalloc((N_PIECES + N_SPECIALS) * sizeof *texts);
    int *types = xmalloc((N_PIECES + N_SPECIALS) * sizeof *types);
    char(*names)[16] = xmalloc(N_SPECIALS * sizeof *names);
    for (int i = 0; i < N_PIECES; i++) texts[i] = pieces[i], types[i] = 1;
    for (int k = 0; k < N_SPECIALS; k++) {
        snprintf(names[k], sizeof names[k], "<|ctl_%d|>", k);
        texts[N_PIECES + k] = names[k];
        types[N_PIECES + k] = 3;
    }
    Vocab *v = small_vocab(N_PIECES + N_SPECIALS, texts, types, NULL);
    /* Prose with a special every 4 KB, and near misses ("<|ctl_17", "<|ctl_|>") between. */
    const char *words = "the quick brown fox jumps over the lazy dog <|ctl_17 <|ctl_|> ";
    char *text = xmalloc(TEXT_BYTES + 64);
    size_t len = 0, wlen = strlen(words);
    int planted = 0;
    while (len < TEXT_BYTES) {
        if (len / 4096 > (size_t)planted) len += (size_t)sprintf(text + len, "<|ctl_17|>"), planted++;
        memcpy(text + len, words, wlen), len += wlen;
    }
    text[len] = '\0';
    int n, found = 0, others = 0, want = 259 + N_PIECES + 17;
    int *ids = vocab_encode(v, text, 1, &n, NULL, 0);
    EncodeCounts counts = vocab_last_encode_counts();
    for (int i = 1; ids && i < n; i++) found += ids[i] == want, others += ids[i] >= 259 + N_PIECES && ids[i] != want;
    char name[200];
    snprintf(name, sizeof name, "%d control tokens, %zu bytes of text: the %d planted found in %llu matcher steps "
             "(at most 2 per byte + 1 per occurrence)", N_SPECIALS, len, planted, counts.match_steps);
    CHECK(name, ids && found == planted && others == 0 && counts.match_steps <= 2 * len + (size_t)planted,
          "found %d (and %d other specials), %llu steps", found, others, counts.match_steps);
    free(ids);
    free(text);
    vocab_free(v);
    free(names), free(types), free(texts);
}

/** One 4 KB special of one letter after 16 near misses (4095 of the letter and
 * another): searching from every byte compares 2048 bytes per byte on average
 * (a trie walked from every byte as much); the failure links keep it at two. */
static void check_long_special(void) {
    enum { SPECIAL = 4096, MISSES = 16, TEXT = (MISSES + 1) * SPECIAL };
    char *special = xmalloc(SPECIAL + 1), *text = xmalloc(TEXT + 1);
    memset(special, 'a', SPECIAL), special[SPECIAL] = '\0';
    memset(text, 'a', TEXT), text[TEXT] = '\0';
    for (int k = 1; k <= MISSES; k++) text[k * SPECIAL - 1] = 'b';
    const char *texts[] = {" ", "a", "b", special};
    int types[] = {1, 1, 1, 3}, n_want = 0;
    int *want = xmalloc((TEXT + 3) * sizeof *want);
    want[n_want++] = 1;
    want[n_want++] = 259; /* the dummy prefix */
    for (int i = 0; i < MISSES * SPECIAL; i++) want[n_want++] = text[i] == 'a' ? 260 : 261;
    want[n_want++] = 262;
    Vocab *v = small_vocab(4, texts, types, NULL);
    int n;
    int *ids = vocab_encode(v, text, 1, &n, NULL, 0);
    EncodeCounts counts = vocab_last_encode_counts();
    char name[200];
    snprintf(name, sizeof name, "a %d-byte special after %d near misses: found once, in %llu matcher steps "
             "(at most 2 per byte + 1 per occurrence)", SPECIAL, MISSES, counts.match_steps);
    CHECK(name, ids && same_ids(ids, n, want, n_want) && counts.match_steps <= 2ull * TEXT + 1,
          "got %d ids (want %d), %llu steps", n, n_want, counts.match_steps);
    free(ids);
    free(want);
    vocab_free(v);
    free(special), free(text);
}

/** One-byte special tokens between one-byte words: 3 ids per 2 bytes. Callers
 * that sized the ids as one per byte plus 3 refused such a 20-byte prompt. */
static void check_one_byte_specials(void) {
    const char *texts[] = {" ", "q", "x"};
    int types[] = {1, 1, 3}, want[31], n_want = 0;
    want[n_want++] = 1;
    for (int i = 0; i < 10; i++) want[n_want++] = 259, want[n_want++] = 260, want[n_want++] = 261;
    Vocab *v = small_vocab(3, texts, types, NULL);
    char err[200];
    int n;
    int *ids = vocab_encode(v, "qxqxqxqxqxqxqxqxqxqx", 1, &n, err, sizeof err);
    CHECK("a 20-byte text between 1-byte special tokens gives all its 31 ids", ids && same_ids(ids, n, want, n_want),
          "got %d [%s] %s", n, ids ? ids_text(ids, n) : "", ids ? "" : err);
    free(ids);
    ids = vocab_encode(v, "", 0, &n, err, sizeof err);
    CHECK("an empty text without BOS gives an array of no ids", ids && n == 0, "got %d", n);
    free(ids);
    vocab_free(v);
}

static void check_holdout(const char *shared) {
    char *path = join(shared, "models/holdout/babyllama_tok105.bin");
    if (!readable(path)) {
        SKIP("holdout vocabulary without byte tokens", "models/holdout/babyllama_tok105.bin is missing");
        free(path);
        return;
    }
    Vocab *v = vocab_load_llama2c(path, 105);
    int ids[64];
    char err[200], back[64];
    int n = encode_into(v, "hello", 1, ids, 64, err, sizeof err);
    CHECK("holdout: \"hello\" encodes and decodes back", n > 1 && decode_all(v, ids, n, back, sizeof back) &&
          strcmp(back, "hello") == 0, "got %d ids (%s)", n, n < 0 ? err : ids_text(ids, n));
    n = encode_into(v, "a\nb", 1, ids, 64, err, sizeof err);
    CHECK("holdout: a newline (no such piece, no byte tokens) is refused", n == -1 && strstr(err, "U+000A"),
          "got %d, error \"%s\"", n, n < 0 ? err : "");
    vocab_free(v);
    free(path);
}

static void check_small_things(const Vocab *v) {
    int len;
    CHECK("lookup finds pieces and byte tokens", vocab_lookup(v, " ", 1) >= 0 && vocab_lookup(v, "<0x0A>", 6) == 13 &&
          vocab_lookup(v, "no such piece", 13) == -1, "lookup gave wrong ids");
    const char *nl = vocab_decode(v, 1, 13, &len);
    const char *nul = vocab_decode(v, 5, 3, &len);
    CHECK("a byte token decodes to its raw byte", nl[0] == '\n' && len == 1 && nul[0] == '\0',
          "<0x0A> gave \"%s\"", shown(nl));
    const char *none = vocab_decode(v, 1, v->n_tokens, &len);
    CHECK("an id outside the vocabulary decodes to nothing", none[0] == '\0' && len == 0, "got length %d", len);
}

/** What safe_print writes to stdout for @p chunks, passed one call each. */
static void safe_printed(const char *const *chunks, int n, char *out, size_t cap) {
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    if (saved < 0 || !tmp || dup2(fileno(tmp), 1) < 0) fatal("cannot capture stdout");
    SafePrinter sp = {{0}, 0};
    for (int i = 0; i < n; i++) safe_print(&sp, chunks[i], (int)strlen(chunks[i]));
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    rewind(tmp);
    size_t len = fread(out, 1, cap - 1, tmp);
    out[len] = '\0';
    fclose(tmp);
}

static void check_safe_print(void) {
    static const struct {
        const char *name, *chunks[4], *want;
    } cases[] = {
        {"safe_print: a character split across calls", {"h\xC3", "\xA9llo"}, "h\xC3\xA9llo"},
        {"safe_print: a 4-byte character in 4 calls", {"\xF0", "\x9F", "\xA6", "\x99"}, "\xF0\x9F\xA6\x99"},
        {"safe_print: keeps newline and tab, drops ESC and DEL", {"\x1B[31mred\x7F\n\t"}, "[31mred\n\t"},
        {"safe_print: an invalid continuation drops the partial character", {"a\xE2\x96", "b"}, "ab"},
        {"safe_print: drops stray bytes, C1 controls and surrogates", {"\x80\xFF\xC2\x9B\xED\xA0\x80 ok"}, " ok"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got[64];
        int n = 0;
        while (n < 4 && cases[i].chunks[n]) n++;
        safe_printed(cases[i].chunks, n, got, sizeof got);
        CHECK(cases[i].name, strcmp(got, cases[i].want) == 0, "got \"%s\"", shown(got));
    }
}

/** Everything that needs one llama2.c tokenizer file and its reference file. */
static void check_vocabulary(const char *shared, const char *bin, int n_tokens, const char *tsv) {
    char *bin_path = join(shared, bin), *tsv_path = join(shared, tsv), name[160];
    if (!readable(bin_path) || !readable(tsv_path)) {
        snprintf(name, sizeof name, "%s against %s", bin, tsv);
        SKIP(name, "file missing");
        free(bin_path), free(tsv_path);
        return;
    }
    int n_rows;
    Row *rows = read_rows(tsv_path, &n_rows);
    snprintf(name, sizeof name, "%s parses (%d rows)", tsv, n_rows);
    CHECK(name, rows && n_rows > 0, "bad line %d", -1 - n_rows);
    if (!rows) return;
    Vocab *v = vocab_load_llama2c(bin_path, n_tokens);
    snprintf(name, sizeof name, "%s: every row gives llama2.c's ids", bin);
    check_column(name, v, rows, n_rows, 0);
    const Row *special = find_row(rows, n_rows, "<s>hello</s>");
    snprintf(name, sizeof name, "%s: \"<s>hello</s>\" is plain text for llama2.c", bin);
    int ids[64], n = special ? encode_into(v, special->text, 1, ids, 64, NULL, 0) : -1;
    CHECK(name, special && same_ids(ids, n, special->l2c, special->n_l2c), "got [%s]", ids_text(ids, n));
    snprintf(name, sizeof name, "%s: every row decodes back to its text", bin);
    check_round_trip(name, v, rows, n_rows);

    Vocab *g = as_gguf(v);
    snprintf(name, sizeof name, "%s as a GGUF vocabulary: every row gives llama.cpp's ids", bin);
    check_column(name, g, rows, n_rows, 1);
    snprintf(name, sizeof name, "%s as a GGUF vocabulary: \"<s>hello</s>\" gives control ids", bin);
    n = special ? encode_into(g, special->text, 1, ids, 64, NULL, 0) : -1;
    CHECK(name, special && same_ids(ids, n, special->cpp, special->n_cpp), "got [%s]", ids_text(ids, n));

    char *excerpt = join(shared, "data/tinystories-valid-excerpt.txt");
    snprintf(name, sizeof name, "%s: heap merges equal a rescan after every merge", bin);
    check_against_rescan(name, v, excerpt);
    if (n_tokens == 32000) check_long_text(v);
    else check_small_things(v);
    free(excerpt);
    vocab_free(g);
    vocab_free(v);
    free_rows(rows, n_rows);
    free(bin_path), free(tsv_path);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_vocabulary(shared, "models/tok512.bin", 512, "reference/tokenizer/tok512.tsv");
    check_vocabulary(shared, "models/tokenizer.bin", 32000, "reference/tokenizer/llama-spm-32000.tsv");
    check_holdout(shared);
    check_special_rule();
    check_many_specials();
    check_long_special();
    check_one_byte_specials();
    check_safe_print();
    return UNIT_EXIT();
}

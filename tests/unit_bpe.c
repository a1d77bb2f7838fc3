/**
 * @file unit_bpe.c
 * @brief Unit tests of the byte-level BPE tokenizer (src/bpe.c, src/tokenizer.c)
 * and the GGUF vocabulary reader (src/gguf_vocab.c).
 *
 *     build/tests/unit_bpe [SHARED [BUILD]]    (defaults ../shared, build)
 *
 * With the shared data: every row of the seven BPE reference files (and the
 * two SentencePiece ones) gives llama.cpp's ids exactly, the vocabularies
 * loaded with vocab_from_gguf() from the GGUFs the reference README names;
 * the ids decode back to the text; the BOS, EOS, end-of-turn and
 * end-of-generation ids are llama.cpp's. Checks whose files are missing are
 * skipped, visibly, with a count. Without the data too: GPT-2's byte map,
 * each pre-tokenizer's rules on hand-made texts, merging by rank, and one
 * refusal per kind of bad GGUF vocabulary (tiny files built in memory; each
 * refusal runs in a child process, since fatal() ends it). And, where the
 * Unicode data files are installed, that tools/mkunicode regenerates
 * src/unicode_table.h byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bpe.h"
#include "gguf.h"
#include "gguf_vocab.h"
#include "tokenizer.h"
#include "unit.h"
#include "util.h"

#define MAX_IDS 4096

static int n_skipped;
#define SKIP_COUNTED(name, why) (n_skipped++, SKIP(name, why))

/* ======================================================================== */
/* Reading the reference files                                              */
/* ======================================================================== */

static void put_utf8(unsigned long cp, char *out, size_t *n) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
        return;
    }
    int extra = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
    out[(*n)++] = (char)((0xF00u >> (extra + 1)) | (cp >> (6 * extra)));
    for (int k = extra - 1; k >= 0; k--) out[(*n)++] = (char)(0x80 | (cp >> (6 * k) & 0x3F));
}

/** Four hex digits at @p p, or -1. */
static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/** Unescape the JSON string literal at @p p into @p out (never longer than the
 * literal); the character after the closing quote, or NULL if malformed. */
static const char *json_string(const char *p, char *out) {
    static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    size_t n = 0;
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if (*p == '\0') return NULL;
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        const char *e = p[1] ? strchr(escapes, p[1]) : NULL;
        if (e && (e - escapes) % 2 == 0) {
            out[n++] = e[1];
            p += 2;
            continue;
        }
        if (p[1] != 'u') return NULL;
        long cp = hex4(p + 2);
        p += 6;
        if (cp >= 0xD800 && cp < 0xDC00) { /* a high surrogate pairs with a low one */
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

typedef struct {
    char *text;
    int ids[MAX_IDS], n_ids; /* llama.cpp's */
} Row;

/** The rows of a reference file (text, llama.cpp's ids); NULL with *n_rows = -line on a bad line. */
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
        r->n_ids = 0;
        const char *p = json_string(line, r->text);
        if (!p || *p++ != '\t') {
            *n_rows = -line_no;
            return NULL;
        }
        while (*p && *p != '\t' && *p != '\n') {
            char *after;
            long id = strtol(p, &after, 10);
            if (after == p || r->n_ids == MAX_IDS) {
                *n_rows = -line_no;
                return NULL;
            }
            r->ids[r->n_ids++] = (int)id;
            for (p = after; *p == ' '; p++) {}
        }
    }
    free(line);
    if (fp) fclose(fp);
    *n_rows = fp ? n : 0;
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

/** @p s (@p len bytes) with bytes outside printable ASCII as \xNN, for one-line messages. */
static const char *shown_n(const char *s, size_t len) {
    static char buf[4][256];
    static int which;
    char *b = buf[which++ % 4];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < sizeof buf[0]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F) b[n++] = (char)c;
        else n += (size_t)snprintf(b + n, sizeof buf[0] - n, "\\x%02X", c);
    }
    b[n] = '\0';
    return b;
}
static const char *shown(const char *s) { return shown_n(s, strlen(s)); }

static const char *ids_text(const int *ids, int n) {
    static char buf[2][512];
    static int which;
    char *b = buf[which++ % 2];
    size_t len = 0;
    b[0] = '\0';
    for (int i = 0; i < n && len + 12 < sizeof buf[0]; i++)
        len += (size_t)snprintf(b + len, sizeof buf[0] - len, "%s%d", i ? " " : "", ids[i]);
    return b;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/** vocab_encode() into @p ids: their number, -1 if encoding fails, -2 if more than @p cap. */
static int encode_into(const Vocab *v, const char *text, int add_bos, int *ids, int cap) {
    int n;
    char err[200];
    int *got = vocab_encode(v, text, add_bos, &n, err, sizeof err);
    if (!got) return -1;
    if (n > cap) n = -2;
    else memcpy(ids, got, (size_t)n * sizeof *ids);
    free(got);
    return n;
}

/** Open @p path and read its vocabulary. */
static Vocab *load_gguf_vocab(const char *path) {
    GgufFile *g = gguf_open(path);
    Vocab *v = vocab_from_gguf(path, g, -1);
    gguf_close(g);
    return v;
}

/* ======================================================================== */
/* The reference rows                                                       */
/* ======================================================================== */

/** Every row of @p tsv through the vocabulary of @p gguf (both under @p shared). */
static void check_reference(const char *shared, const char *tsv, const char *gguf) {
    char *tsv_path = join(shared, tsv), *gguf_path = join(shared, gguf), name[300];
    snprintf(name, sizeof name, "%s with %s", tsv, gguf);
    if (!readable(tsv_path) || !readable(gguf_path)) {
        SKIP_COUNTED(name, "file missing");
        free(tsv_path), free(gguf_path);
        return;
    }
    int n_rows;
    Row *rows = read_rows(tsv_path, &n_rows);
    snprintf(name, sizeof name, "%s parses (%d rows)", tsv, n_rows);
    CHECK(name, rows && n_rows > 0, "bad line %d", -n_rows);
    if (!rows) return;
    Vocab *v = load_gguf_vocab(gguf_path);
    static int ids[MAX_IDS];
    int bad = 0;
    char first[900] = "";
    for (int i = 0; i < n_rows; i++) {
        int got = encode_into(v, rows[i].text, 1, ids, MAX_IDS);
        if (got >= 0 && same_ids(ids, got, rows[i].ids, rows[i].n_ids)) continue;
        if (bad++ == 0)
            snprintf(first, sizeof first, "row %d \"%s\": ours [%s], llama.cpp [%s]", i + 1, shown(rows[i].text),
                     got < 0 ? "error" : ids_text(ids, got), ids_text(rows[i].ids, rows[i].n_ids));
    }
    snprintf(name, sizeof name, "%s: every row gives llama.cpp's ids", tsv);
    CHECK(name, bad == 0, "%d of %d rows differ; first: %s", bad, n_rows, first);
    vocab_free(v);
    free_rows(rows, n_rows);
    free(tsv_path), free(gguf_path);
}

/** Decoding: the pieces llama-tokenize shows (special tokens as text) give the text back. */
static void check_round_trip(const char *shared, const char *tsv, const char *gguf) {
    char *tsv_path = join(shared, tsv), *gguf_path = join(shared, gguf), name[300];
    snprintf(name, sizeof name, "%s: the pieces of every row's ids spell its text", tsv);
    if (!readable(tsv_path) || !readable(gguf_path)) {
        SKIP_COUNTED(name, "file missing");
        free(tsv_path), free(gguf_path);
        return;
    }
    int n_rows, bad = 0, first = -1;
    Row *rows = read_rows(tsv_path, &n_rows);
    Vocab *v = load_gguf_vocab(gguf_path);
    static char back[8 * MAX_IDS];
    for (int i = 0; rows && i < n_rows; i++) {
        const Row *r = &rows[i];
        size_t len = 0;
        for (int k = v->add_bos ? 1 : 0; k < r->n_ids; k++) { /* the BOS the vocabulary adds is not the text's */
            int n;
            const char *piece = vocab_piece_text(v, r->ids[k], &n);
            if (len + (size_t)n < sizeof back) memcpy(back + len, piece, (size_t)n), len += (size_t)n;
        }
        if (len == strlen(r->text) && memcmp(back, r->text, len) == 0) continue;
        if (bad++ == 0) first = i;
    }
    CHECK(name, rows && bad == 0, "%d of %d rows differ; first: \"%s\"", bad, n_rows,
          first >= 0 ? shown(rows[first].text) : "");
    vocab_free(v);
    if (rows) free_rows(rows, n_rows);
    free(tsv_path), free(gguf_path);
}

/** The ids llama.cpp reports for a vocabulary (its llama_vocab_bos(), _eos(), _eot(), _is_eog()). */
typedef struct {
    const char *gguf;
    int bos, eos, eot, add_bos, eog[4], n_eog;
    const char *template_start; /* NULL: no template */
} Specials;

static void check_specials(const char *shared, const Specials *want) {
    char *path = join(shared, want->gguf), name[300];
    snprintf(name, sizeof name, "%s: BOS %d, EOS %d, EOT %d, add_bos %d, %d end-of-generation ids, %s", want->gguf,
             want->bos, want->eos, want->eot, want->add_bos, want->n_eog,
             want->template_start ? "its chat template" : "no chat template");
    if (!readable(path)) {
        SKIP_COUNTED(name, "file missing");
        free(path);
        return;
    }
    Vocab *v = load_gguf_vocab(path);
    int eog[16], n_eog = 0;
    for (int id = 0; id < v->n_tokens && n_eog < 16; id++)
        if (vocab_is_eog(v, id)) eog[n_eog++] = id;
    int template_ok = want->template_start ? v->chat_template && strncmp(v->chat_template, want->template_start,
                                                                        strlen(want->template_start)) == 0
                                           : !v->chat_template;
    CHECK(name, v->bos_id == want->bos && v->eos_id == want->eos && v->eot_id == want->eot &&
              v->add_bos == want->add_bos && v->add_eos == 0 && same_ids(eog, n_eog, want->eog, want->n_eog) &&
              template_ok,
          "BOS %d, EOS %d, EOT %d, add_bos %d, add_eos %d, end-of-generation [%s], template %s", v->bos_id,
          v->eos_id, v->eot_id, v->add_bos, v->add_eos, ids_text(eog, n_eog),
          v->chat_template ? shown_n(v->chat_template, 20) : "none");
    vocab_free(v);
    free(path);
}

/** Loading Llama 3's vocabulary (128,256 tokens, 280,147 merges) takes well under a second. */
static void check_load_time(const char *shared) {
    char *path = join(shared, "models/gguf/vocab/llama3-vocab.gguf");
    const char *name = "Llama 3's vocabulary loads in under 2 s (128256 tokens, 280147 merges)";
    if (!readable(path)) {
        SKIP_COUNTED(name, "file missing");
        free(path);
        return;
    }
    GgufFile *g = gguf_open(path);
    double t = now_seconds();
    Vocab *v = vocab_from_gguf(path, g, 128256);
    t = now_seconds() - t;
    CHECK(name, v && v->n_tokens == 128256 && t < 2.0, "%.3f s", t);
    printf("note: Llama 3's vocabulary loaded in %.1f ms\n", t * 1e3);
    vocab_free(v);
    gguf_close(g);
    free(path);
}

/* ======================================================================== */
/* GPT-2's byte map                                                         */
/* ======================================================================== */

static void check_byte_map(void) {
    CHECK("byte map: space is U+0120, newline U+010A, DEL U+0121, soft hyphen U+0143, 'A' and U+00E9 themselves",
          bpe_byte_to_char(' ') == 0x120 && bpe_byte_to_char('\n') == 0x10A && bpe_byte_to_char(0x7F) == 0x121 &&
              bpe_byte_to_char(0xAD) == 0x143 && bpe_byte_to_char('A') == 'A' && bpe_byte_to_char(0xE9) == 0xE9 &&
              bpe_byte_to_char(0) == 0x100 && bpe_byte_to_char(0xA0) == 0x142,
          "got U+%04X U+%04X U+%04X U+%04X", bpe_byte_to_char(' '), bpe_byte_to_char('\n'), bpe_byte_to_char(0x7F),
          bpe_byte_to_char(0xAD));
    /* every byte's character, written as UTF-8, reads back as that byte; the 256 characters differ */
    char mapped[512], raw[512];
    size_t n = 0;
    int distinct = 1;
    for (int b = 0; b < 256; b++) {
        put_utf8(bpe_byte_to_char((unsigned char)b), mapped, &n);
        for (int c = 0; c < b; c++) distinct &= bpe_byte_to_char((unsigned char)c) != bpe_byte_to_char((unsigned char)b);
    }
    long got = bpe_unmap(mapped, n, raw);
    int same = got == 256;
    for (int b = 0; same && b < 256; b++) same = (unsigned char)raw[b] == b;
    CHECK("byte map: the 256 characters are distinct and read back as bytes 0..255", distinct && same, "got %ld bytes",
          got);
    static const char *const not_mapped[] = {" ", "\n", "\xC5\x84" /* U+0144 */, "\xE4\xB8\xAD" /* U+4E2D */, "\xC3",
                                             "\x80"};
    int refused = 1;
    for (size_t i = 0; i < sizeof not_mapped / sizeof not_mapped[0]; i++)
        refused &= bpe_unmap(not_mapped[i], strlen(not_mapped[i]), raw) == -1;
    CHECK("byte map: a raw space or newline, U+0144, a CJK character and broken UTF-8 are not mapped text", refused,
          "one was read");
}

/* ======================================================================== */
/* The pre-tokenizers                                                       */
/* ======================================================================== */

typedef struct {
    const char *text;
    char out[512];
    size_t len;
} Words;

/* The words joined by '|'. */
static int add_word(void *ctx, size_t start, size_t end) {
    Words *w = ctx;
    if (w->len > 0 && w->len < sizeof w->out - 1) w->out[w->len++] = '|';
    for (size_t i = start; i < end && w->len < sizeof w->out - 1; i++) w->out[w->len++] = w->text[i];
    w->out[w->len] = '\0';
    return 1;
}

static void check_split(PreTokenizer split, const char *split_name, const char *text, const char *want) {
    Words w = {text, "", 0};
    bpe_split(split, text, strlen(text), add_word, &w);
    char name[300];
    snprintf(name, sizeof name, "%s words: \"%s\" -> %s", split_name, shown(text), shown(want));
    CHECK(name, strcmp(w.out, want) == 0, "got %s", shown(w.out));
}

static void check_splits(void) {
    /* GPT-2: a space belongs to the word after it; a run of spaces leaves its last one to the next word;
     * contractions in lower case only; numbers of any length. */
    check_split(PRE_GPT2, "gpt2", "Hello world", "Hello| world");
    check_split(PRE_GPT2, "gpt2", "  hello", " | hello");
    check_split(PRE_GPT2, "gpt2", "I'm here, we'll see", "I|'m| here|,| we|'ll| see");
    check_split(PRE_GPT2, "gpt2", "I'M", "I|'|M");
    check_split(PRE_GPT2, "gpt2", "1234567 abc123", "1234567| abc|123");
    check_split(PRE_GPT2, "gpt2", "a\n\nb", "a|\n|\n|b");
    check_split(PRE_GPT2, "gpt2", "ok!!  ", "ok|!!|  ");
    check_split(PRE_GPT2, "gpt2", " caf\xC3\xA9 \xD0\xBD\xD0\xB5", " caf\xC3\xA9| \xD0\xBD\xD0\xB5");
    check_split(PRE_GPT2, "gpt2", "x\xC2\xA0y", "x|\xC2\xA0|y"); /* no-break space is white space */
    /* Llama 3: contractions in any case, a letter run takes one non-letter before it, numbers by three,
     * punctuation takes the line breaks after it, a run of white space with line breaks ends after the last. */
    check_split(PRE_LLAMA3, "llama3", "I'M here", "I|'M| here");
    check_split(PRE_LLAMA3, "llama3", "1234567", "123|456|7");
    check_split(PRE_LLAMA3, "llama3", "a\n\nb", "a|\n\n|b");
    check_split(PRE_LLAMA3, "llama3", "end.\n\n  New", "end|.\n\n| | New");
    check_split(PRE_LLAMA3, "llama3", "(word) $x", "(word|)| $|x");
    check_split(PRE_LLAMA3, "llama3", "  \n  x", "  \n| | x");
    /* Qwen2: Llama 3's rules, digits one by one. */
    check_split(PRE_QWEN2, "qwen2", "1234567", "1|2|3|4|5|6|7");
    check_split(PRE_QWEN2, "qwen2", "a\n\nb", "a|\n\n|b");
    /* SmolLM: digits one by one first, then GPT-2's rules on what lies between. */
    check_split(PRE_SMOLLM, "smollm", " 123abc", " |1|2|3|abc");
    check_split(PRE_SMOLLM, "smollm", "a\n\nb", "a|\n|\n|b");
    /* "default": runs of punctuation first, then GPT-2's rules, then number runs, then ASCII digits by three. */
    check_split(PRE_DEFAULT, "default", "a+b=12345 ok", "a|+|b|=|123|45| ok");
    check_split(PRE_DEFAULT, "default", "x, y!", "x|,| y|!");
    /* invalid UTF-8 is one character per bad byte, and every byte is in some word */
    check_split(PRE_GPT2, "gpt2", "a\x80\xFF b", "a|\x80\xFF| b");
}

/* ======================================================================== */
/* Merging by rank                                                          */
/* ======================================================================== */

/** A small BPE vocabulary from mapped texts and merges. */
static Vocab *small_bpe(const char *pre, const char *const *texts, int n, const int *types, const char *const *merges,
                        int n_merges) {
    size_t lens[64], merge_lens[64];
    for (int i = 0; i < n; i++) lens[i] = strlen(texts[i]);
    for (int i = 0; i < n_merges; i++) merge_lens[i] = strlen(merges[i]);
    return vocab_from_bpe("small", n, texts, lens, types, merges, merge_lens, n_merges, pre, -1, -1, -1);
}

static void check_encoding(const Vocab *v, const char *name, const char *text, const int *want, int n_want) {
    int ids[64];
    int n = encode_into(v, text, 1, ids, 64);
    CHECK(name, same_ids(ids, n, want, n_want), "got [%s], want [%s]", ids_text(ids, n), ids_text(want, n_want));
}

static void check_merges(void) {
    /* ids:                        0    1    2    3     4     5      6    7     8 */
    static const char *const t[] = {"a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġa", "aa"};
    static const char *const bc_first[] = {"b c", "a b", "a bc", "Ġ a", "a a"};
    static const char *const ab_first[] = {"a b", "ab c", "b c", "Ġ a", "a a"};
    Vocab *v = small_bpe("gpt-2", t, 9, NULL, bc_first, 5);
    check_encoding(v, "merges: the lowest rank first (\"b c\" before \"a b\": abc = a + bc)", "abc", (int[]){5}, 1);
    check_encoding(v, "merges: a pair the list lacks stays apart (ab + c is no merge here)", "abcab", (int[]){5, 3}, 2);
    check_encoding(v, "merges: equal ranks merge leftmost first (aaa = aa + a)", "aaa", (int[]){8, 0}, 2);
    check_encoding(v, "merges: a byte without a token is dropped, as llama.cpp drops it", "azb", (int[]){0, 1}, 2);
    check_encoding(v, "merges: the space before a word merges with it (Ġ = space)", "a a", (int[]){0, 7}, 2);
    vocab_free(v);
    v = small_bpe("gpt-2", t, 9, NULL, ab_first, 5);
    check_encoding(v, "merges: with \"a b\" first, abc = ab + c", "abc", (int[]){5}, 1);
    check_encoding(v, "merges: with \"a b\" first, bcab = bc + ab", "bcab", (int[]){4, 3}, 2);
    vocab_free(v);
    /* Llama 3 takes a word that is a token whole, even when no merges lead there */
    static const char *const few[] = {"a b"};
    v = small_bpe("llama-bpe", t, 9, NULL, few, 1);
    check_encoding(v, "merges: Llama 3 takes a whole word that is a token (abc) without merging", "abc", (int[]){5}, 1);
    vocab_free(v);
    v = small_bpe("gpt-2", t, 9, NULL, few, 1);
    check_encoding(v, "merges: GPT-2 merges that word as far as its merges go (ab + c)", "abc", (int[]){3, 2}, 2);
    vocab_free(v);
    /* special tokens are cut out of the text first, and each stretch between them is merged alone */
    static const char *const st[] = {"a", "b", "ab", "<|end|>", "<", "|", ">", "e", "n", "d"};
    static const int types[] = {1, 1, 1, 3, 1, 1, 1, 1, 1, 1};
    static const char *const m1[] = {"a b"};
    v = small_bpe("gpt-2", st, 10, types, m1, 1);
    check_encoding(v, "special tokens: \"ab<|end|>ab\" is ab, <|end|>, ab", "ab<|end|>ab", (int[]){2, 3, 2}, 3);
    int n;
    const char *p = vocab_piece_text(v, 3, &n);
    int dn;
    vocab_decode(v, 2, 3, &dn);
    CHECK("special tokens: a control token shows as its text, and decodes to nothing",
          n == 7 && memcmp(p, "<|end|>", 7) == 0 && dn == 0, "piece %d bytes, decoded %d bytes", n, dn);
    vocab_free(v);
}
/* ======================================================================== */
/* GGUF vocabularies built in memory                                        */
/* ======================================================================== */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
} Gguf;

static void put(Gguf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(Gguf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(Gguf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_str(Gguf *b, const char *s, size_t len) {
    put_u64(b, len);
    put(b, s, len);
}
static void key(Gguf *b, const char *k, uint32_t type) {
    b->n_kv++;
    put_str(b, k, strlen(k));
    put_u32(b, type);
}
static void kv_str(Gguf *b, const char *k, const char *v) { key(b, k, GGUF_STRING), put_str(b, v, strlen(v)); }
static void kv_u32(Gguf *b, const char *k, uint32_t v) { key(b, k, GGUF_U32), put_u32(b, v); }
static void kv_bool(Gguf *b, const char *k, int v) {
    uint8_t x = (uint8_t)v;
    key(b, k, GGUF_BOOL), put(b, &x, 1);
}
static void kv_strs(Gguf *b, const char *k, const char *const *v, int n) {
    key(b, k, GGUF_ARRAY), put_u32(b, GGUF_STRING), put_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) put_str(b, v[i], strlen(v[i]));
}
static void kv_i32s(Gguf *b, const char *k, const int *v, int n) {
    key(b, k, GGUF_ARRAY), put_u32(b, GGUF_I32), put_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) put_u32(b, (uint32_t)v[i]);
}
static void kv_f32s(Gguf *b, const char *k, int n) {
    key(b, k, GGUF_ARRAY), put_u32(b, GGUF_F32), put_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) put_u32(b, 0);
}

/** What a test vocabulary changes in the standard one (zero: nothing). */
typedef struct {
    int spm;                   /* a SentencePiece vocabulary instead of BPE */
    const char *model, *pre;   /* other values of these keys ("-": no key) */
    const char *merge0;        /* another first merge */
    const char *token1;        /* another text for token 1 */
    int no_merges, short_types;
    const char *extra_u32;     /* one more key, a u32 (value extra_value) */
    uint32_t extra_value;
    int space_prefix;          /* 1: add_space_prefix false, 2: true */
    int bos_as_u32, add_bos, add_eos; /* add_bos_token as a u32; add_bos/add_eos_token: 1 false, 2 true */
    int tokens_as_i32, model_as_u32;
    const char *name;          /* general.name */
    int template_nul, harmless;
    uint32_t bos;              /* 0: the standard BOS */
} Tweak;

/* The standard BPE vocabulary: a, b, ab, Ġ, Ġa, Ġab and <|im_end|> (typed normal here: recognised by its text). */
static const char *const bpe_tokens[] = {"a", "b", "ab", "\304\240", "\304\240a", "\304\240ab", "<|im_end|>"};
static const int bpe_types[] = {1, 1, 1, 1, 1, 1, 1};
static const char *const bpe_merges[] = {"\304\240 a", "a b", "\304\240a b"};
static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "\342\226\201a", "a", "b", "\342\226\201"};
static const int spm_types[] = {2, 3, 3, 1, 1, 1, 1};

static Gguf build_vocab(const Tweak *t) {
    Gguf b = {0};
    put(&b, "GGUF", 4), put_u32(&b, 3), put_u64(&b, 0), put_u64(&b, 0); /* version 3, no tensors, n_kv later */
    const char *model = t->model ? t->model : t->spm ? "llama" : "gpt2";
    if (t->model_as_u32) kv_u32(&b, "tokenizer.ggml.model", 1);
    else if (strcmp(model, "-") != 0) kv_str(&b, "tokenizer.ggml.model", model);
    const char *pre = t->pre ? t->pre : t->spm ? "default" : "gpt-2";
    if (strcmp(pre, "-") != 0) kv_str(&b, "tokenizer.ggml.pre", pre);
    const char *tokens[8];
    int n = 7;
    memcpy(tokens, t->spm ? spm_tokens : bpe_tokens, sizeof(char *) * (size_t)n);
    if (t->token1) tokens[1] = t->token1;
    if (t->tokens_as_i32) kv_i32s(&b, "tokenizer.ggml.tokens", bpe_types, n);
    else kv_strs(&b, "tokenizer.ggml.tokens", tokens, n);
    kv_i32s(&b, "tokenizer.ggml.token_type", t->spm ? spm_types : bpe_types, t->short_types ? n - 1 : n);
    if (t->spm) kv_f32s(&b, "tokenizer.ggml.scores", n);
    const char *merges[3] = {bpe_merges[0], bpe_merges[1], bpe_merges[2]};
    if (t->merge0) merges[0] = t->merge0;
    if (!t->spm && !t->no_merges) kv_strs(&b, "tokenizer.ggml.merges", merges, 3);
    if (t->bos_as_u32) kv_u32(&b, "tokenizer.ggml.add_bos_token", 1);
    if (t->add_bos) kv_bool(&b, "tokenizer.ggml.add_bos_token", t->add_bos - 1);
    if (t->add_eos) kv_bool(&b, "tokenizer.ggml.add_eos_token", t->add_eos - 1);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", t->bos ? t->bos : t->spm ? 1 : 6);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", t->spm ? 2 : 6);
    if (t->extra_u32) kv_u32(&b, t->extra_u32, t->extra_value);
    if (t->space_prefix) kv_bool(&b, "tokenizer.ggml.add_space_prefix", t->space_prefix - 1);
    if (t->name) kv_str(&b, "general.name", t->name);
    if (t->template_nul) key(&b, "tokenizer.chat_template", GGUF_STRING), put_str(&b, "a\0b", 3);
    if (t->harmless) {
        kv_u32(&b, "tokenizer.ggml.padding_token_id", UINT32_MAX);
        kv_u32(&b, "tokenizer.ggml.seperator_token_id", UINT32_MAX);
        kv_u32(&b, "tokenizer.ggml.eot_token_id", UINT32_MAX); /* "none", as converters write it */
        kv_str(&b, "tokenizer.huggingface.json", "{}");
        kv_str(&b, "tokenizer.chat_template.tool_use", "{{ x }}");
        kv_str(&b, "tokenizer.chat_template", "{{ messages }}");
        kv_bool(&b, "tokenizer.ggml.remove_extra_whitespaces", 1);
        kv_u32(&b, "tokenizer.ggml.token_type_count", 1);
    }
    for (int i = 0; i < 8; i++) b.p[16 + i] = (uint8_t)(b.n_kv >> (8 * i));
    return b;
}

/** Parse the built file and read its vocabulary; NULL if it does not even parse (message in @p err). */
static Vocab *read_built(const Gguf *b, GgufFile *g, int n_rows, char *err, size_t err_len) {
    if (gguf_parse(g, b->p, b->n, err, err_len) != 0) return NULL;
    return vocab_from_gguf("test.gguf", g, n_rows);
}

/** The vocabulary of @p t must be refused with one error line that holds @p expect. */
static void check_refused(const char *name, const Tweak *t, int n_rows, const char *expect) {
    Gguf b = build_vocab(t);
    int fds[2];
    fflush(stdout);
    pid_t pid = pipe(fds) == 0 ? fork() : -1;
    if (pid == 0) { /* the child: its stderr is the pipe; fatal() ends it with status 1 */
        close(fds[0]);
        dup2(fds[1], 2);
        GgufFile g;
        char err[300];
        Vocab *v = read_built(&b, &g, n_rows, err, sizeof err);
        fprintf(stderr, v ? "the vocabulary was accepted" : "does not parse: %s", err);
        _exit(0);
    }
    free(b.p);
    if (pid < 0) {
        SKIP_COUNTED(name, "no fork");
        return;
    }
    close(fds[1]);
    char got[600];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(fds[0], got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
    got[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char *newline = strchr(got, '\n');
    int one_line = newline && newline[1] == '\0';
    if (newline) *newline = '\0';
    CHECK(name, WIFEXITED(status) && WEXITSTATUS(status) == 1 && one_line && strncmp(got, "error: test.gguf: ", 18) == 0 &&
              strstr(got, expect),
          "status %d, stderr \"%s\"; expected an error line with \"%s\"", status, shown(got), expect);
}

static void check_refusals(void) {
    static const struct {
        const char *name;
        Tweak t;
        int n_rows;
        const char *expect;
    } cases[] = {
        {"refused: tokenizer.ggml.model \"bert\"", {.model = "bert"}, -1, "tokenizer.ggml.model \"bert\" is not supported"},
        {"refused: tokenizer.ggml.model of type u32", {.model_as_u32 = 1}, -1, "has type u32, expected string"},
        {"refused: an unknown pre-tokenizer", {.pre = "tekken"}, -1, "tokenizer.ggml.pre \"tekken\" is not supported"},
        {"refused: a merge naming a missing token", {.merge0 = "a z"}, -1, "names a right part that is no token"},
        {"refused: a merge whose result is no token", {.merge0 = "b a"}, -1, "makes a text that is no token"},
        {"refused: a merge without a space", {.merge0 = "ab"}, -1, "is not two tokens joined by a space"},
        {"refused: a merge not in byte-to-unicode form", {.merge0 = "a \xC3"}, -1, "is not in GPT-2's byte-to-unicode"},
        {"refused: BPE without merges", {.no_merges = 1}, -1, "tokenizer.ggml.merges is missing"},
        {"refused: an ordinary token with a raw space", {.token1 = "a b"}, -1, "token 1 (\"a b\") is not in GPT-2's"},
        {"refused: two tokens with one text", {.token1 = "a"}, -1, "tokens 0 and 1 have the same text"},
        {"refused: an unknown tokenizer key", {.extra_u32 = "tokenizer.ggml.foo"}, -1,
         "key tokenizer.ggml.foo is not understood"},
        {"refused: a token count that is not the embedding's rows", {0}, 8,
         "tokenizer.ggml.tokens has 7 entries, but token_embd.weight has 8 rows"},
        {"refused: token types for fewer tokens", {.short_types = 1}, -1,
         "tokenizer.ggml.token_type has 6 entries for 7 tokens"},
        {"refused: a BOS id outside the vocabulary", {.bos = 99}, -1, "tokenizer.ggml.bos_token_id = 99 is not a token id"},
        {"refused: an end-of-turn id outside the vocabulary",
         {.extra_u32 = "tokenizer.ggml.eot_token_id", .extra_value = 7},
         -1, "tokenizer.ggml.eot_token_id = 7 is not a token id"},
        {"refused: add_bos_token as a u32", {.bos_as_u32 = 1}, -1, "has type u32, expected bool"},
        {"refused: tokens that are not strings", {.tokens_as_i32 = 1}, -1, "expected array of string"},
        {"refused: BPE with add_space_prefix true", {.space_prefix = 2}, -1, "add_space_prefix = true is not supported"},
        {"refused: SentencePiece with add_space_prefix false", {.spm = 1, .space_prefix = 1}, -1,
         "add_space_prefix = false is not supported"},
        {"refused: SentencePiece model of another kind", {.spm = 1, .model = "t5"}, -1,
         "tokenizer.ggml.model \"t5\" is not supported"},
        {"refused: a Phi-3 vocabulary (spaces stripped around special tokens)", {.spm = 1, .name = "Phi-3 mini"}, -1,
         "strips the spaces"},
        {"refused: a chat template holding a NUL byte", {.template_nul = 1}, -1, "holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_refused(cases[i].name, &cases[i].t, cases[i].n_rows, cases[i].expect);
}

/** The standard vocabularies as they should load, and what their keys change. */
static void check_accepted(void) {
    char err[300];
    GgufFile g;
    Gguf b = build_vocab(&(Tweak){.harmless = 1});
    Vocab *v = read_built(&b, &g, 7, err, sizeof err);
    int ids[16] = {0}, n = v ? encode_into(v, "ab<|im_end|> ab", 1, ids, 16) : -1;
    CHECK("accepted: harmless keys (padding, separator, EOT \"none\", JSON, named templates, ...)", v && n >= 0,
          "%s", v ? "encoding failed" : err);
    CHECK("BPE: no BOS by default (gpt-2); <|im_end|> typed normal is recognised: one control id, end of generation",
          v && same_ids(ids, n, (int[]){2, 6, 5}, 3) && vocab_is_eog(v, 6) && !vocab_is_eog(v, 2) && v->eot_id == 6,
          "ids [%s], eot %d", ids_text(ids, n), v ? v->eot_id : -2);
    CHECK("BPE: tokenizer.chat_template is copied", v && v->chat_template && strcmp(v->chat_template, "{{ messages }}") == 0,
          "got %s", v && v->chat_template ? v->chat_template : "none");
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    b = build_vocab(&(Tweak){.add_bos = 2, .add_eos = 2, .bos = 3});
    v = read_built(&b, &g, -1, err, sizeof err);
    n = v ? encode_into(v, "ab", 1, ids, 16) : -1;
    int n0 = v ? encode_into(v, "ab", 0, ids + 8, 8) : -1;
    CHECK("BPE: add_bos_token and add_eos_token true put BOS first and EOS last (only when asked for BOS)",
          v && same_ids(ids, n, (int[]){3, 2, 6}, 3) && same_ids(ids + 8, n0, (int[]){2}, 1), "ids [%s] and [%s]",
          ids_text(ids, n), ids_text(ids + 8, n0));
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    b = build_vocab(&(Tweak){.pre = "llama-bpe"});
    v = read_built(&b, &g, -1, err, sizeof err);
    CHECK("BPE: llama-bpe adds BOS by default", v && v->add_bos == 1 && v->kind == VOCAB_BPE, "add_bos %d",
          v ? v->add_bos : -1);
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    b = build_vocab(&(Tweak){.pre = "-"});
    v = read_built(&b, &g, -1, err, sizeof err);
    n = v ? encode_into(v, " ab", 1, ids, 16) : -1;
    CHECK("BPE: no tokenizer.ggml.pre means llama.cpp's \"default\" rules", v && same_ids(ids, n, (int[]){5}, 1),
          "ids [%s]", ids_text(ids, n));
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    b = build_vocab(&(Tweak){.spm = 1, .space_prefix = 2});
    v = read_built(&b, &g, 7, err, sizeof err);
    n = v ? encode_into(v, "a<s>b", 1, ids, 16) : -1;
    int piece_len;
    const char *piece = v ? vocab_piece_text(v, 3, &piece_len) : "";
    CHECK("SentencePiece: BOS added, dummy prefix (add_space_prefix true accepted), <s> parsed, piece of ▁a is \" a\"",
          v && v->kind == VOCAB_SPM && same_ids(ids, n, (int[]){1, 3, 1, 6, 5}, 5) && piece_len == 2 &&
              memcmp(piece, " a", 2) == 0 && vocab_is_eog(v, 2) && !vocab_is_eog(v, 1),
          "ids [%s]", ids_text(ids, n));
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    b = build_vocab(&(Tweak){.spm = 1, .model = "-", .bos = 0});
    v = read_built(&b, &g, -1, err, sizeof err);
    CHECK("SentencePiece: no tokenizer.ggml.model means \"llama\"", v && v->kind == VOCAB_SPM && v->bos_id == 1,
          "%s", v ? "other ids" : err);
    vocab_free(v);
    gguf_free(&g);
    free(b.p);

    static const char *const spm_texts[] = {"<unk>", "<s>", "</s>", "<0x0A>", "\342\226\201a", "unused"};
    static const size_t spm_lens[] = {5, 3, 4, 6, 4, 6};
    static const int spm_kinds[] = {2, 3, 3, 6, 1, 5};
    v = vocab_from_arrays("spm", 6, spm_texts, spm_lens, NULL, spm_kinds, 1, 2, 0);
    int l[6];
    const char *pc[6];
    for (int id = 0; id < 6; id++) pc[id] = vocab_piece_text(v, id, &l[id]);
    CHECK("SentencePiece pieces as llama-tokenize shows them: <s> as text, <0x0A> as a newline, "
          "\"\342\226\201a\" as \" a\", an unused token as nothing",
          l[1] == 3 && memcmp(pc[1], "<s>", 3) == 0 && l[3] == 1 && pc[3][0] == '\n' && l[4] == 2 &&
              memcmp(pc[4], " a", 2) == 0 && l[5] == 0,
          "lengths %d %d %d %d", l[1], l[3], l[4], l[5]);
    vocab_free(v);

    static const char *const understood[] = {"tokenizer.ggml.model", "tokenizer.ggml.merges",
                                             "tokenizer.chat_template", "tokenizer.chat_template.rag",
                                             "tokenizer.ggml.padding_token_id"};
    static const char *const not_understood[] = {"tokenizer.ggml.foo", "tokenizer.chat_template.", "tokenizer.ggml",
                                                 "tokenizer.ggml.models"};
    int ok = 1;
    for (size_t i = 0; i < 5; i++) ok &= vocab_gguf_understands(understood[i]);
    for (size_t i = 0; i < 4; i++) ok &= !vocab_gguf_understands(not_understood[i]);
    CHECK("vocab_gguf_understands(): the keys read and the harmless ones, nothing else", ok, "a key is misjudged");
}
/**
 * A sparse file: tokenizer.ggml.tokens claims 50 million (empty) strings, in a
 * few pages. With no embedding to compare with, the reader must refuse the
 * count before it allocates pointers and lengths for it (800 MB).
 */
static void check_sparse(void) {
    const char *name = "refused: 50 million tokens in a sparse file, before any allocation for them";
    const uint64_t count = 50000000;
    const char k[] = "tokenizer.ggml.tokens";
    const size_t size = 24 + 8 + (sizeof k - 1) + 4 + 4 + 8 + 8 * count;
    int fds[2];
    fflush(stdout);
    pid_t pid = sizeof(size_t) >= 8 && pipe(fds) == 0 ? fork() : -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        long before = vm_peak_kib();
        if (p == MAP_FAILED || before < 0) {
            fprintf(stderr, "skip: no 400 MB mapping, or no VmPeak");
            _exit(0);
        }
        uint8_t *o = p;
        const uint64_t fields[] = {0, 1, sizeof k - 1}; /* tensors, metadata pairs, the key's length */
        memcpy(o, "GGUF\3\0\0\0", 8), o += 8;
        for (int f = 0; f < 3; f++, o += 8)
            for (int i = 0; i < 8; i++) o[i] = (uint8_t)(fields[f] >> (8 * i));
        memcpy(o, k, sizeof k - 1), o += sizeof k - 1;
        o[0] = GGUF_ARRAY, o += 4;
        o[0] = GGUF_STRING, o += 4;
        for (int i = 0; i < 8; i++) o[i] = (uint8_t)(count >> (8 * i));
        GgufFile g;
        char err[200];
        if (gguf_parse(&g, p, size, err, sizeof err) != 0) {
            fprintf(stderr, "does not parse: %s", err);
            _exit(0);
        }
        before = vm_peak_kib();
        fatal_set_hook(NULL);
        vocab_from_gguf("sparse.gguf", &g, -1);
        fprintf(stderr, "vocab_from_gguf() returned");
        _exit(0);
    }
    if (pid < 0) {
        SKIP_COUNTED(name, "no fork, or a 32-bit system");
        return;
    }
    close(fds[1]);
    char got[600];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(fds[0], got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
    got[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (strncmp(got, "skip: ", 6) == 0) SKIP_COUNTED(name, got + 6);
    else CHECK(name, WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(got, "more than any vocabulary"),
               "status %d, \"%s\"", status, shown(got));
}

/** tools/mkunicode, run on the installed Unicode data, writes src/unicode_table.h exactly. */
static void check_table_regenerates(const char *build) {
    const char *name = "tools/mkunicode regenerates src/unicode_table.h from the Unicode data files";
    const char *ucd = "/usr/share/unicode";
    if (!readable("/usr/share/unicode/UnicodeData.txt") || !readable("/usr/share/unicode/PropList.txt")) {
        SKIP_COUNTED(name, "no /usr/share/unicode/UnicodeData.txt (Debian's package unicode-data)");
        return;
    }
    if (!readable("src/unicode_table.h")) {
        SKIP_COUNTED(name, "src/unicode_table.h not found (run from the repository's root)");
        return;
    }
    char *tool = join(build, "mkunicode"), out[] = "/tmp/unit_bpe_table_XXXXXX";
    int fd = mkstemp(out);
    fflush(stdout);
    pid_t pid = fd >= 0 ? fork() : -1;
    if (pid == 0) {
        dup2(fd, 1);
        execl(tool, tool, ucd, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    if (pid > 0) waitpid(pid, &status, 0);
    if (fd >= 0) lseek(fd, 0, SEEK_SET); /* the child wrote through the same file offset */
    MappedFile want = map_file("src/unicode_table.h");
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    char *got = xmalloc(want.size + 2);
    size_t n = f ? fread(got, 1, want.size + 1, f) : 0;
    CHECK(name, WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == want.size && memcmp(got, want.data, n) == 0,
          "%s exited with status %d and wrote %zu bytes, the table in src/ has %zu (or they differ)", tool, status, n,
          want.size);
    if (f) fclose(f);
    unlink(out);
    unmap_file(&want);
    free(got);
    free(tool);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    static const char *const refs[][2] = {
        {"reference/tokenizer/gpt2.tsv", "models/gguf/vocab/gpt2-vocab.gguf"},
        {"reference/tokenizer/gpt2-llama-bpe.tsv", "models/gguf/vocab/gpt2-llama-bpe-vocab.gguf"},
        {"reference/tokenizer/gpt2-qwen2.tsv", "models/gguf/vocab/gpt2-qwen2-vocab.gguf"},
        {"reference/tokenizer/gpt2-smollm.tsv", "models/gguf/vocab/gpt2-smollm-vocab.gguf"},
        {"reference/tokenizer/llama3.tsv", "models/gguf/vocab/llama3-vocab.gguf"},
        {"reference/tokenizer/qwen2-syn.tsv", "models/gguf/families/qwen2-syn-f32.gguf"},
        {"reference/tokenizer/smollm-syn.tsv", "models/gguf/families/smollm-syn-f32.gguf"},
        {"reference/tokenizer/tok512.tsv", "models/gguf/stories260K-f32.gguf"},
        {"reference/tokenizer/llama-spm-32000.tsv", "models/gguf/llama-spm-vocab.gguf"},
    };
    const char *build = argc > 2 ? argv[2] : "build";
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) check_reference(shared, refs[i][0], refs[i][1]);
    for (size_t i = 0; i < 7; i++) check_round_trip(shared, refs[i][0], refs[i][1]);
    static const Specials specials[] = {
        {"models/gguf/vocab/llama3-vocab.gguf", 128000, 128009, 128009, 1, {128008, 128009}, 2, "{{- bos_token }}"},
        {"models/gguf/vocab/gpt2-vocab.gguf", 50256, 50256, 50256, 0, {50256}, 1, NULL},
        {"models/gguf/vocab/gpt2-llama-bpe-vocab.gguf", 50256, 50256, 50256, 1, {50256}, 1, NULL},
        {"models/gguf/families/qwen2-syn-f32.gguf", 2045, 2047, 2047, 0, {2045, 2047}, 2, "{%- if tools %}"},
        /* llama.cpp picks <|endoftext|> (0) as EOT here, by the order of its hash map: see gguf_vocab.c */
        {"models/gguf/families/smollm-syn-f32.gguf", 1, 2, 2, 0, {0, 2}, 2, NULL},
        {"models/gguf/llama-spm-vocab.gguf", 1, 2, -1, 1, {2}, 1, NULL},
        {"models/gguf/stories260K-f32.gguf", 1, 2, -1, 1, {2}, 1, NULL},
    };
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) check_specials(shared, &specials[i]);
    check_load_time(shared);
    check_byte_map();
    check_splits();
    check_merges();
    check_refusals();
    check_accepted();
    check_sparse();
    check_table_regenerates(build);
    if (n_skipped) printf("note: %d checks skipped because %s lacks their files\n", n_skipped, shared);
    return UNIT_EXIT();
}

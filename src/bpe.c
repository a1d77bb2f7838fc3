/**
 * @file bpe.c
 * @brief Byte-level BPE (GGUF tokenizer.ggml.model "gpt2"): the byte-to-unicode
 * mapping, the pre-tokenizers as hand-written scanners, and merging by rank.
 *
 * @section bpe_map Bytes as characters
 * GPT-2's vocabulary is made of byte strings, but stored as text: each byte
 * is written as one printable character. The 188 bytes that print as
 * themselves in Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
 * themselves; the other 68 (control bytes, space, DEL, U+0080..U+00A0 and the
 * soft hyphen U+00AD) become U+0100, U+0101, ... in byte order, so a space is
 * "Ġ" (U+0120) and a newline "Ċ" (U+010A). The vocabulary is converted back
 * to raw bytes once, when it is loaded; from then on everything here works on
 * the text's own bytes.
 *
 * @section bpe_pre Words first
 * Merges never cross the boundaries of words, which a pre-tokenizer finds
 * first. Each vocabulary names its rules (tokenizer.ggml.pre); the models
 * write them as regular expressions, and the reference implementation runs
 * some through hand-written scanners and the others through a regex engine
 * on a text where every character stands for its class. Here all of them are
 * scanners: each rule below is a function that, at a position, says where the
 * word that starts there ends. The classes are Unicode's (src/unicode_table.h):
 * a letter (\\p{L}), a number (\\p{N}), white space (\\s) and anything else.
 *
 * Invalid UTF-8 is read as the reference reads it: a byte that does not start
 * a complete sequence is U+FFFD, and the word then holds U+FFFD's three bytes
 * instead of that byte; sequences are not checked for overlong forms, and are
 * written back from their code point.
 *
 * @section bpe_merge Merges by rank
 * Within a word every byte starts as one symbol (the token of that byte).
 * The merges are a ranked list of pairs of tokens; while some adjacent pair
 * is in the list, the pair of lowest rank (the leftmost of equals) becomes
 * the token it spells. A min-heap of candidate pairs with lazy invalidation
 * (as in tokenizer.c) makes that O(n log n) in the word's length. A byte that
 * has no token of its own is dropped, as the reference drops it.
 *
 * Cost: loading Llama 3's 280,147 merges takes three hash look-ups each (the
 * two tokens and the one they make) and a counting sort by the left token
 * (about 65 ms for the whole vocabulary on the machine the book was written
 * on); encoding reads each byte a few times and finds each candidate pair by
 * binary search among the merges of its left token (about 20 MB/s of English,
 * 80 MB/s with Llama 3, whose common words are tokens whole). Checked by tests/unit_bpe.c against llama.cpp's
 * ids for every reference row of seven vocabularies.
 */
#include "bpe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_table.h"
#include "util.h"

/* ======================================================================== */
/* GPT-2's byte-to-unicode map                                              */
/* ======================================================================== */

/* The 68 bytes that are not printable in Latin-1 become U+0100 + their index among themselves. */
#define FIRST_MOVED 0x100u

static int prints_as_itself(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

unsigned bpe_byte_to_char(unsigned char b) {
    if (prints_as_itself(b)) return b;
    if (b <= 0x20) return FIRST_MOVED + b;                  /* 0x00..0x20: U+0100..U+0120 */
    if (b < 0xAD) return FIRST_MOVED + 0x21 + (b - 0x7Fu); /* 0x7F..0xA0: U+0121..U+0142 */
    return FIRST_MOVED + 0x43;                              /* 0xAD: U+0143 */
}

/** The byte that character @p c stands for, or -1. */
static int char_to_byte(unsigned c) {
    if (c < 0x100) return prints_as_itself(c) ? (int)c : -1;
    if (c <= 0x120) return (int)(c - FIRST_MOVED);
    if (c <= 0x142) return (int)(c - FIRST_MOVED - 0x21 + 0x7F);
    return c == 0x143 ? 0xAD : -1;
}

long bpe_unmap(const char *s, size_t len, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned c; /* every mapped character is below U+0800: one or two bytes */
        if (p[i] < 0x80) {
            c = p[i++];
        } else if (p[i] >= 0xC2 && p[i] <= 0xDF && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            c = (p[i] & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu);
            i += 2;
        } else {
            return -1;
        }
        int b = char_to_byte(c);
        if (b < 0) return -1;
        out[n++] = (char)b;
    }
    return (long)n;
}

/* ======================================================================== */
/* Characters and their classes                                             */
/* ======================================================================== */

/** A stretch of text being cut into words: positions are byte offsets. */
typedef struct {
    const unsigned char *s;
    size_t len;
} Text;

/**
 * The code point at byte @p off, the reference's way: the lead byte says the
 * length, the sequence must be complete within the text and its continuation
 * bytes 10xxxxxx; anything else is one byte read as U+FFFD. Returns the
 * number of bytes read.
 */
static size_t decode(const Text *t, size_t off, uint32_t *cp) {
    const unsigned char *p = t->s + off;
    size_t left = t->len - off, n;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] < 0xC0 || p[0] >= 0xF8) n = 0;
    else n = p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
    for (size_t i = 1; n && i < n; i++)
        if (i >= left || (p[i] & 0xC0) != 0x80) n = 0;
    if (n == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t c = p[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) c = c << 6 | (p[i] & 0x3Fu);
    *cp = c;
    return n;
}

/** The class (src/unicode_table.h) of code point @p cp; beyond U+10FFFF unassigned. */
static unsigned char class_of(uint32_t cp) {
    if (cp < 256) return unicode_latin1[cp];
    if (cp >= 0x110000) return UC_UNASSIGNED;
    size_t lo = 0, hi = sizeof unicode_ranges / sizeof unicode_ranges[0]; /* last range starting <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_ranges[mid] >> 4 <= cp) lo = mid;
        else hi = mid;
    }
    return (unsigned char)(unicode_ranges[lo] & 15);
}

/** What the scanners tell apart. */
enum { K_END, K_LETTER, K_NUMBER, K_SPACE, K_OTHER };

static int kind_of(uint32_t cp) {
    unsigned char c = class_of(cp);
    if (c & UC_SPACE) return K_SPACE;
    c &= UC_CATEGORY;
    return c == UC_LETTER ? K_LETTER : c == UC_NUMBER ? K_NUMBER : K_OTHER;
}

/** The kind of the character at @p off, K_END at or past @p end (the piece being cut). */
static int kind_at(const Text *t, size_t off, size_t end) {
    uint32_t cp;
    if (off >= end) return K_END;
    decode(t, off, &cp);
    return kind_of(cp);
}

/** The first offset from @p off on (before @p end) whose character is not of @p kind. */
static size_t run_end(const Text *t, size_t off, size_t end, int kind) {
    uint32_t cp;
    while (off < end) {
        size_t n = decode(t, off, &cp);
        if (kind_of(cp) != kind) break;
        off += n;
    }
    return off;
}

/* ======================================================================== */
/* The rules of words                                                       */
/* ======================================================================== */

/* A pre-tokenizer is a chain of passes: each cuts the pieces the one before
 * it made, and the last one's pieces are the words. */
typedef struct Chain Chain;
typedef int (*PassFn)(Chain *c, int level, size_t start, size_t end);
struct Chain {
    const Text *t;
    const PassFn *passes;
    int n_passes;
    BpeWordFn word;
    void *ctx;
};

/** Hand piece [start, end) to pass @p level, or to the caller after the last. */
static int piece(Chain *c, int level, size_t start, size_t end) {
    if (start == end) return 1;
    if (level == c->n_passes) return c->word(c->ctx, start, end);
    return c->passes[level](c, level, start, end);
}

/** ASCII lower case: the only case folding that can matter for the contractions
 * below (no other character folds to one of their letters). */
static uint32_t fold(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/**
 * The length of the contraction 's 't 're 've 'm 'll 'd at @p off (with
 * @p any_case also 'S 'RE 'Ll ...), or 0. Its characters are ASCII: one byte each.
 */
static size_t contraction(const Text *t, size_t off, size_t end, int any_case) {
    const unsigned char *p = t->s + off;
    if (p[0] != '\'' || off + 1 >= end) return 0;
    uint32_t a = any_case ? fold(p[1]) : p[1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (off + 2 >= end) return 0;
    uint32_t b = any_case ? fold(p[2]) : p[2];
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
}

/**
 * A run of white space at @p off. With @p newlines (Llama 3), a run holding a
 * line break ends after its last one (\\s*[\\r\\n]+). Otherwise a run of two or
 * more that something follows leaves its last character to the next word
 * (\\s+(?!\\S)), so that "  hello" becomes " " and " hello"; else the whole run.
 */
static size_t spaces_end(const Text *t, size_t off, size_t end, int newlines) {
    size_t pos = off, last = off, after_break = 0;
    int n = 0;
    uint32_t cp;
    while (pos < end) {
        size_t len = decode(t, pos, &cp);
        if (kind_of(cp) != K_SPACE) break;
        if (cp == '\r' || cp == '\n') after_break = pos + len;
        last = pos;
        pos += len;
        n++;
    }
    if (newlines && after_break) return after_break;
    if (n > 1 && pos < end) return last;
    if (n > 0) return pos;
    return off + decode(t, off, &cp); /* matches nothing: one character alone */
}

/**
 * GPT-2's word at @p off: a contraction; else an optional space and then a run
 * of letters, of numbers, or of other characters (not space, letter or number);
 * else white space.
 */
static size_t gpt2_word(const Text *t, size_t off, size_t end) {
    uint32_t cp;
    size_t after = off + decode(t, off, &cp), n = contraction(t, off, end, 0);
    if (n) return off + n;
    int kind = cp == ' ' ? kind_at(t, after, end) : kind_of(cp);
    if (kind == K_LETTER || kind == K_NUMBER || kind == K_OTHER) return run_end(t, cp == ' ' ? after : off, end, kind);
    return spaces_end(t, off, end, 0);
}

/**
 * Llama 3's word at @p off: a contraction in any case; else letters after at
 * most one character that is not a line break, letter or number ("-word",
 * " word"); else up to @p max_digits numbers; else an optional space, a run of
 * other characters and the line breaks after it; else white space, a run
 * with line breaks ending after the last one.
 */
static size_t llama3_word(const Text *t, size_t off, size_t end, int max_digits) {
    uint32_t cp;
    size_t after = off + decode(t, off, &cp), n = contraction(t, off, end, 1);
    if (n) return off + n;
    int kind = kind_of(cp);
    if (cp != '\r' && cp != '\n' && kind != K_NUMBER && (kind == K_LETTER || kind_at(t, after, end) == K_LETTER))
        return run_end(t, after, end, K_LETTER);
    if (kind == K_NUMBER) {
        size_t pos = off;
        for (int k = 0; k < max_digits && kind_at(t, pos, end) == K_NUMBER; k++) pos += decode(t, pos, &cp);
        return pos;
    }
    int next = cp == ' ' ? kind_at(t, after, end) : kind; /* K_END: a space at the very end */
    if (next == K_OTHER || next == K_END) {
        size_t pos = run_end(t, cp == ' ' ? after : off, end, K_OTHER);
        while (pos < end && (t->s[pos] == '\r' || t->s[pos] == '\n')) pos++;
        return pos;
    }
    return spaces_end(t, off, end, 1);
}

static int pass_words(Chain *c, int level, size_t start, size_t end, size_t (*word_end)(const Text *, size_t, size_t, int),
                      int arg) {
    for (size_t pos = start; pos < end;) {
        size_t next = word_end(c->t, pos, end, arg);
        if (!piece(c, level + 1, pos, next)) return 0;
        pos = next;
    }
    return 1;
}

static size_t gpt2_word_arg(const Text *t, size_t off, size_t end, int unused) {
    (void)unused;
    return gpt2_word(t, off, end);
}

static int pass_gpt2(Chain *c, int level, size_t start, size_t end) {
    return pass_words(c, level, start, end, gpt2_word_arg, 0);
}
static int pass_llama3(Chain *c, int level, size_t start, size_t end) {
    return pass_words(c, level, start, end, llama3_word, 3);
}
static int pass_qwen2(Chain *c, int level, size_t start, size_t end) {
    return pass_words(c, level, start, end, llama3_word, 1);
}

/**
 * Pieces by a test of single characters: the runs of characters that pass
 * @p test and the runs between them (with @p alone, each passing character is
 * a piece by itself).
 */
static int pass_runs(Chain *c, int level, size_t start, size_t end, int (*test)(uint32_t), int alone) {
    size_t gap = start;
    uint32_t cp;
    for (size_t pos = start; pos < end;) {
        size_t n = decode(c->t, pos, &cp);
        if (!test(cp)) {
            pos += n;
            continue;
        }
        size_t stop = pos + n;
        while (!alone && stop < end && (n = decode(c->t, stop, &cp), test(cp))) stop += n;
        if (!piece(c, level + 1, gap, pos) || !piece(c, level + 1, pos, stop)) return 0;
        gap = pos = stop;
    }
    return piece(c, level + 1, gap, end);
}

static int is_number(uint32_t cp) { return kind_of(cp) == K_NUMBER; }

/** The "default" rules' punctuation: \\p{P} and the ASCII symbols $ + < = > ^ ~ | (not the backquote). */
static int is_default_punctuation(uint32_t cp) {
    if (cp < 0x80) return cp != '`' && ((cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
                                         (cp >= 0x5B && cp <= 0x5E) || cp == '_' || (cp >= 0x7B && cp <= 0x7E));
    unsigned char k = class_of(cp);
    return !(k & UC_SPACE) && (k & UC_CATEGORY) == UC_PUNCTUATION;
}

static int pass_single_numbers(Chain *c, int level, size_t start, size_t end) {
    return pass_runs(c, level, start, end, is_number, 1);
}
static int pass_number_runs(Chain *c, int level, size_t start, size_t end) {
    return pass_runs(c, level, start, end, is_number, 0);
}
static int pass_punctuation_runs(Chain *c, int level, size_t start, size_t end) {
    return pass_runs(c, level, start, end, is_default_punctuation, 0);
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/** Three ASCII digits in a row, taken from the left and never overlapping. */
static int pass_digit_triples(Chain *c, int level, size_t start, size_t end) {
    const unsigned char *s = c->t->s;
    size_t gap = start;
    uint32_t cp;
    for (size_t pos = start; pos < end;) {
        if (end - pos >= 3 && is_digit(s[pos]) && is_digit(s[pos + 1]) && is_digit(s[pos + 2])) {
            if (!piece(c, level + 1, gap, pos) || !piece(c, level + 1, pos, pos + 3)) return 0;
            gap = pos = pos + 3;
        } else {
            pos += decode(c->t, pos, &cp);
        }
    }
    return piece(c, level + 1, gap, end);
}

int bpe_split(PreTokenizer split, const char *text, size_t len, BpeWordFn word, void *ctx) {
    static const PassFn gpt2[] = {pass_gpt2}, llama3[] = {pass_llama3}, qwen2[] = {pass_qwen2},
                        smollm[] = {pass_single_numbers, pass_gpt2},
                        fallback[] = {pass_punctuation_runs, pass_gpt2, pass_number_runs, pass_digit_triples};
    const Text t = {(const unsigned char *)text, len};
    Chain c = {&t, gpt2, 1, word, ctx};
    switch (split) {
    case PRE_GPT2: break;
    case PRE_LLAMA3: c.passes = llama3; break;
    case PRE_QWEN2: c.passes = qwen2; break;
    case PRE_SMOLLM: c.passes = smollm, c.n_passes = 2; break;
    case PRE_DEFAULT: c.passes = fallback, c.n_passes = 4; break;
    }
    return piece(&c, 0, 0, len);
}

/* ======================================================================== */
/* Pre-tokenizer names                                                      */
/* ======================================================================== */

/* The names llama.cpp gives each set of rules, where nothing else about the
 * vocabulary changes with the name (no stripping around special tokens, no
 * other BOS). */
static const struct {
    const char *name;
    BpeRules rules;
} rule_names[] = {
    {"default", {PRE_DEFAULT, 0, 0}},
    {"gpt-2", {PRE_GPT2, 0, 0}},
    {"gpt2", {PRE_GPT2, 0, 0}},
    {"phi-2", {PRE_GPT2, 0, 0}},
    {"roberta-bpe", {PRE_GPT2, 0, 0}},
    {"jina-es", {PRE_GPT2, 0, 0}},
    {"jina-de", {PRE_GPT2, 0, 0}},
    {"jina-v1-en", {PRE_GPT2, 0, 0}},
    {"gigachat", {PRE_GPT2, 0, 0}},
    {"mpt", {PRE_GPT2, 0, 0}},
    {"olmo", {PRE_GPT2, 0, 0}},
    {"jais", {PRE_GPT2, 0, 0}},
    {"llama-bpe", {PRE_LLAMA3, 1, 1}},
    {"llama3", {PRE_LLAMA3, 1, 1}},
    {"llama-v3", {PRE_LLAMA3, 1, 1}},
    {"falcon3", {PRE_LLAMA3, 1, 1}},
    {"dbrx", {PRE_LLAMA3, 0, 0}},
    {"smaug-bpe", {PRE_LLAMA3, 0, 0}},
    {"qwen2", {PRE_QWEN2, 0, 0}},
    {"deepseek-r1-qwen", {PRE_QWEN2, 0, 0}},
    {"megrez", {PRE_QWEN2, 0, 0}},
    {"stablelm2", {PRE_QWEN2, 0, 0}},
    {"smollm", {PRE_SMOLLM, 0, 0}},
    {"starcoder", {PRE_SMOLLM, 0, 0}},
    {"refact", {PRE_SMOLLM, 0, 0}},
    {"command-r", {PRE_SMOLLM, 0, 0}},
    {"codeshell", {PRE_SMOLLM, 0, 0}},
    {"exaone", {PRE_SMOLLM, 0, 0}},
    {"minerva-7b", {PRE_SMOLLM, 0, 0}},
};

int bpe_rules(const char *name, size_t len, BpeRules *out) {
    for (size_t i = 0; i < sizeof rule_names / sizeof rule_names[0]; i++)
        if (strlen(rule_names[i].name) == len && memcmp(rule_names[i].name, name, len) == 0) {
            *out = rule_names[i].rules;
            return 1;
        }
    return 0;
}

/* ======================================================================== */
/* The merges                                                               */
/* ======================================================================== */

/** Merge @p left @p right (token ids) into @p result; the lower the rank, the earlier. */
typedef struct {
    int left, right, rank, result;
} Merge;

struct Bpe {
    BpeRules rules;
    const Vocab *keys;   /* not owned: the look-up of token texts */
    int byte_id[256];    /* the token of each single byte, or -1 */
    Merge *merges;       /* (n_merges) by left, then right */
    int *first_of_left;  /* (n_tokens + 1) merges of left token a: [first_of_left[a], first_of_left[a + 1]) */
    int n_merges;
};

static int by_pair_then_rank(const void *pa, const void *pb) {
    const Merge *a = pa, *b = pb;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    if (a->right != b->right) return a->right < b->right ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/** @p s as printable ASCII for an error line: other bytes as \\xNN, cut short. */
static const char *shown(const char *s, size_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') buf[n++] = (char)c;
        else n += (size_t)snprintf(buf + n, cap - n, "\\x%02X", c);
    }
    buf[n] = '\0';
    return buf;
}

/** Read merge @p rank ("left right", mapped) into token ids; fatal() if it is not one. */
static Merge read_merge(const char *origin, const Vocab *keys, int rank, const char *s, size_t len, char *raw) {
    char what[160];
    /* the separator is the first space after the first character, as in llama.cpp */
    const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!space) fatal("%s: tokenizer.ggml.merges entry %d (\"%s\") is not two tokens joined by a space", origin, rank,
                      shown(s, len, what, sizeof what));
    size_t left_len = (size_t)(space - s);
    long a = bpe_unmap(s, left_len, raw), b = a < 0 ? -1 : bpe_unmap(space + 1, len - left_len - 1, raw + a);
    if (a < 0 || b < 0)
        fatal("%s: tokenizer.ggml.merges entry %d (\"%s\") is not in GPT-2's byte-to-unicode form", origin, rank,
              shown(s, len, what, sizeof what));
    Merge m = {vocab_lookup(keys, raw, (size_t)a), vocab_lookup(keys, raw + a, (size_t)b), rank,
               vocab_lookup(keys, raw, (size_t)(a + b))};
    if (m.left < 0 || m.right < 0)
        fatal("%s: tokenizer.ggml.merges entry %d (\"%s\") names a %s that is no token", origin, rank,
              shown(s, len, what, sizeof what), m.left < 0 ? "left part" : "right part");
    if (m.result < 0)
        fatal("%s: tokenizer.ggml.merges entry %d (\"%s\") makes a text that is no token", origin, rank,
              shown(s, len, what, sizeof what));
    return m;
}

Bpe *bpe_build(const char *origin, const Vocab *keys, const char *const *merges, const size_t *merge_lens,
               int n_merges, const BpeRules *rules) {
    Bpe *b = xcalloc(1, sizeof *b);
    b->rules = *rules;
    b->keys = keys;
    for (int c = 0; c < 256; c++) {
        char byte = (char)c;
        b->byte_id[c] = vocab_lookup(keys, &byte, 1);
    }
    size_t longest = 0;
    for (int i = 0; i < n_merges; i++)
        if (merge_lens[i] > longest) longest = merge_lens[i];
    char *raw = xmalloc(longest + 1); /* raw text is never longer than its mapped form */
    Merge *ranked = xmalloc(checked_mul((size_t)n_merges + 1, sizeof *ranked, "merges"));
    for (int i = 0; i < n_merges; i++) ranked[i] = read_merge(origin, keys, i, merges[i], merge_lens[i], raw);
    free(raw);
    /* By left token (a counting sort, which keeps the ranks in order), then by right token within each. */
    int n_tokens = keys->n_tokens;
    b->first_of_left = xcalloc((size_t)n_tokens + 1, sizeof *b->first_of_left);
    for (int i = 0; i < n_merges; i++) b->first_of_left[ranked[i].left + 1]++;
    for (int a = 0; a < n_tokens; a++) b->first_of_left[a + 1] += b->first_of_left[a];
    b->merges = xmalloc(checked_mul((size_t)n_merges + 1, sizeof *b->merges, "merges"));
    int *fill = xmalloc(checked_mul((size_t)n_tokens, sizeof *fill, "merges"));
    memcpy(fill, b->first_of_left, (size_t)n_tokens * sizeof *fill);
    for (int i = 0; i < n_merges; i++) b->merges[fill[ranked[i].left]++] = ranked[i];
    free(fill);
    free(ranked);
    int n = 0; /* a pair listed twice keeps its first (lowest) rank */
    for (int a = 0; a < n_tokens; a++) {
        int lo = b->first_of_left[a], hi = b->first_of_left[a + 1];
        qsort(b->merges + lo, (size_t)(hi - lo), sizeof *b->merges, by_pair_then_rank);
        b->first_of_left[a] = n;
        for (int i = lo; i < hi; i++)
            if (n == b->first_of_left[a] || b->merges[n - 1].right != b->merges[i].right) b->merges[n++] = b->merges[i];
    }
    b->first_of_left[n_tokens] = n;
    b->n_merges = n;
    return b;
}

void bpe_free(Bpe *b) {
    if (!b) return;
    free(b->merges);
    free(b->first_of_left);
    free(b);
}

/** The merge of tokens @p a and @p b, or NULL. */
static const Merge *find_merge(const Bpe *bpe, int a, int b) {
    int lo = bpe->first_of_left[a], hi = bpe->first_of_left[a + 1];
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (bpe->merges[mid].right < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < bpe->first_of_left[a + 1] && bpe->merges[lo].right == b ? &bpe->merges[lo] : NULL;
}

/* ======================================================================== */
/* Encoding                                                                 */
/* ======================================================================== */

/** A candidate merge of symbols left and right (adjacent, with tokens left_id and right_id when pushed). */
typedef struct BpePair {
    int rank, left, right, left_id, right_id, result;
} BpePair;

/* The heap's order: the lowest rank first, then the leftmost pair. */
static int pair_before(const BpePair *a, const BpePair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void *grow(void *p, size_t *cap, size_t need, size_t size, const char *what) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c = c > SIZE_MAX / 2 ? need : 2 * c;
    p = realloc(p, checked_mul(c, size, what));
    if (!p) fatal("out of memory (%s: %zu entries)", what, c);
    *cap = c;
    return p;
}

static void heap_push(BpeWork *w, BpePair p) {
    w->heap = grow(w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap, "merge heap");
    size_t i = w->heap_n++;
    while (i > 0 && pair_before(&p, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = p;
}

static BpePair heap_pop(BpeWork *w) {
    BpePair top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= w->heap_n) break;
        if (child + 1 < w->heap_n && pair_before(&w->heap[child + 1], &w->heap[child])) child++;
        if (!pair_before(&w->heap[child], &last)) break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (w->heap_n > 0) w->heap[i] = last;
    return top;
}

/** Push the merge of symbol @p left with the one after it, if the merges have it. */
static void consider(const Bpe *b, BpeWork *w, int left) {
    int right = left < 0 ? -1 : w->next[left];
    if (right < 0 || w->id[left] < 0 || w->id[right] < 0) return;
    const Merge *m = find_merge(b, w->id[left], w->id[right]);
    if (m) heap_push(w, (BpePair){m->rank, left, right, m->left, m->right, m->result});
}

/* Stale when either symbol changed or left the list since the pair was pushed. */
static int pair_is_live(const BpeWork *w, const BpePair *p) {
    return w->id[p->left] == p->left_id && w->next[p->left] == p->right && w->id[p->right] == p->right_id;
}

/** Merge the @p n symbols in w->id (one per byte) as far as the merges go. */
static void merge_word(const Bpe *b, BpeWork *w, int n) {
    w->heap_n = 0;
    for (int s = 0; s < n; s++) {
        w->prev[s] = s - 1;
        w->next[s] = s + 1 < n ? s + 1 : -1;
    }
    for (int s = 0; s + 1 < n; s++) consider(b, w, s);
    while (w->heap_n > 0) {
        BpePair p = heap_pop(w);
        if (!pair_is_live(w, &p)) continue;
        w->id[p.left] = p.result;
        w->id[p.right] = -2; /* merged away (-1 is a byte without a token) */
        w->next[p.left] = w->next[p.right];
        if (w->next[p.right] >= 0) w->prev[w->next[p.right]] = p.left;
        consider(b, w, w->prev[p.left]);
        consider(b, w, p.left);
    }
}

/** One encoding in progress. */
typedef struct {
    const Bpe *b;
    const Text *t;
    BpeWork *w;
    BpeEmitFn emit;
    void *sink;
    char *err;
    size_t err_len;
} Encoding;

/** Code point @p cp as UTF-8 at @p out; returns the length. Beyond U+10FFFF
 * (which the reference cannot write back, and stops on) its four bytes anyway. */
static size_t put_utf8(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6) out[i] = (unsigned char)(0x80 | (cp & 0x3F));
    out[0] = (unsigned char)((0xF00u >> n) | cp); /* 110xxxxx, 1110xxxx or 11110xxx */
    return n;
}

/** A word's bytes as the reference hands them to the merges: each code point
 * written back as UTF-8, so an invalid byte becomes U+FFFD's three bytes and
 * an overlong form its short one. */
static size_t word_bytes(Encoding *e, size_t start, size_t end) {
    BpeWork *w = e->w;
    w->bytes = grow(w->bytes, &w->bytes_cap, 3 * (end - start), 1, "word"); /* 1 byte -> at most 3 */
    size_t n = 0;
    uint32_t cp;
    for (size_t pos = start; pos < end;) {
        pos += decode(e->t, pos, &cp);
        n += put_utf8(cp, w->bytes + n);
    }
    return n;
}

static int encode_word(void *ctx, size_t start, size_t end) {
    Encoding *e = ctx;
    BpeWork *w = e->w;
    size_t n = word_bytes(e, start, end);
    if (e->b->rules.ignore_merges) {
        int id = vocab_lookup(e->b->keys, (const char *)w->bytes, n);
        if (id >= 0) return e->emit(e->sink, id);
    }
    if (n > INT_MAX / 4) {
        if (e->err && e->err_len) snprintf(e->err, e->err_len, "the text is too long (a word of %zu bytes)", n);
        return 0;
    }
    if (n > w->sym_cap) {
        size_t cap_id = w->sym_cap, cap_prev = w->sym_cap, cap_next = w->sym_cap;
        w->id = grow(w->id, &cap_id, n, sizeof *w->id, "word");
        w->prev = grow(w->prev, &cap_prev, n, sizeof *w->prev, "word");
        w->next = grow(w->next, &cap_next, n, sizeof *w->next, "word");
        w->sym_cap = cap_id;
    }
    if (n > w->largest_word) w->largest_word = n;
    for (size_t i = 0; i < n; i++) w->id[i] = e->b->byte_id[w->bytes[i]];
    merge_word(e->b, w, (int)n);
    for (int s = 0; s >= 0; s = w->next[s]) /* symbol 0 is never merged away */
        if (w->id[s] >= 0 && !e->emit(e->sink, w->id[s])) return 0;
    return 1;
}

int bpe_encode(const Bpe *b, const char *text, size_t len, BpeWork *w, BpeEmitFn emit, void *sink, char *err,
               size_t err_len) {
    const Text t = {(const unsigned char *)text, len};
    Encoding e = {b, &t, w, emit, sink, err, err_len};
    return bpe_split(b->rules.split, text, len, encode_word, &e);
}

void bpe_work_free(BpeWork *w) {
    free(w->bytes);
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->heap);
    *w = (BpeWork){0};
}

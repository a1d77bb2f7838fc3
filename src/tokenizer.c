/**
 * @file tokenizer.c
 * @brief Text to token ids and back (see tokenizer.h).
 *
 * @section tok_encode Encoding
 * The result is, id for id, what llama2.c's `encode(text, bos, eos=0)` gives:
 *  1. A non-empty text gets the piece " " in front (SentencePiece's "dummy
 *     prefix", so that the first word is spelled like every other word).
 *  2. The text is cut into code points: a byte plus the continuation bytes
 *     (10xxxxxx) after it, at most 4 bytes in all. Each is looked up as a
 *     piece; one that is not a piece becomes one byte token `<0xNN>` per byte.
 *  3. While some adjacent pair of symbols concatenates to a piece, the pair
 *     whose piece scores best is replaced by it; on equal scores the leftmost.
 *
 * @section tok_heap Why a heap
 * llama2.c finds each merge by scanning every pair: O(n) lookups per merge and
 * O(n²) per text, minutes for a long prompt. Here the symbols form a doubly
 * linked list and the candidate pairs sit in a binary max-heap ordered by
 * (score, then leftmost). A merge changes only the two pairs next to the new
 * symbol, so it pushes at most two candidates. Candidates that a merge made
 * stale are not searched for; they are recognised and dropped when they reach
 * the top ("lazy invalidation"). Every live pair always has an entry, and
 * symbols keep their text order, so the best live entry is exactly the pair
 * the full scan would pick: the same ids in O(n log n).
 *
 * @section tok_special GGUF vocabularies
 * With parse_special (llama.cpp's default for GGUF files), text spelling a
 * control token such as "<s>" becomes that token, and each stretch of text
 * between them is encoded as above, with its own dummy prefix. Control tokens
 * are never the result of a merge.
 */
#include "tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Pieces of real vocabularies are at most a few dozen bytes; a length beyond
 * this is a corrupt file, not a vocabulary, and is refused before allocating. */
#define MAX_PIECE_BYTES 65536

/* llama2.c searches for the best merge starting from this score, so a piece
 * scoring at or below it is never merged into. Kept for identical results. */
#define NEVER_MERGED_SCORE -1e10f

/* GGUF token types (tokenizer.ggml.token_type). */
enum { TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_BYTE = 6 };

/** The vocabulary plus what only this file needs. Vocab comes first, so a
 * Vocab * handed out by the constructors converts back to a VocabImpl *. */
typedef struct {
    Vocab pub;
    char *text;                /* every piece, NUL-terminated, back to back */
    unsigned char *is_special; /* (n_tokens) GGUF control/unknown/user-defined token; NULL for llama2.c */
    int *specials;             /* special ids with non-empty text, longest first (llama.cpp's order) */
    int n_specials;
    int max_piece_len;         /* longer concatenations need no lookup */
} VocabImpl;

static const VocabImpl *impl_of(const Vocab *v) { return (const VocabImpl *)v; }

/* ======================================================================== */
/* Building a vocabulary                                                    */
/* ======================================================================== */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/** The byte NN if the piece is exactly "<0xNN>", else -1. */
static int byte_of_piece(const char *s, int len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static VocabImpl *vocab_alloc(int n_tokens, size_t text_bytes) {
    VocabImpl *vi = xcalloc(1, sizeof *vi);
    Vocab *v = &vi->pub;
    size_t n = (size_t)n_tokens;
    v->n_tokens = n_tokens;
    v->pieces = xmalloc(checked_mul(n, sizeof *v->pieces, "vocabulary"));
    v->piece_lens = xmalloc(checked_mul(n, sizeof *v->piece_lens, "vocabulary"));
    v->scores = xmalloc(checked_mul(n, sizeof *v->scores, "vocabulary"));
    v->sorted = xmalloc(checked_mul(n, sizeof *v->sorted, "vocabulary"));
    vi->text = xmalloc(text_bytes);
    return vi;
}

/** Copy piece @p id to @p *cursor in vi->text. With @p from_gguf, U+2581
 * (E2 96 81, SentencePiece's visible space) becomes ' ' as in llama2.c files. */
static void store_piece(VocabImpl *vi, int id, const char *src, size_t len, float score,
                        int from_gguf, size_t *cursor) {
    char *dst = vi->text + *cursor;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (from_gguf && len - i >= 3 && memcmp(src + i, "\xE2\x96\x81", 3) == 0) {
            dst[n++] = ' ';
            i += 2;
        } else {
            dst[n++] = src[i];
        }
    }
    dst[n] = '\0';
    vi->pub.pieces[id] = dst;
    vi->pub.piece_lens[id] = (int)n;
    vi->pub.scores[id] = score;
    *cursor += n + 1;
}

typedef struct {
    const char *text;
    int len, id;
} PieceKey;

static int compare_bytes(const char *a, int alen, const char *b, int blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    return c ? c : (alen > blen) - (alen < blen);
}

/* By bytes; equal texts by id, so that a lookup finds the lowest id. */
static int by_text_then_id(const void *pa, const void *pb) {
    const PieceKey *a = pa, *b = pb;
    int c = compare_bytes(a->text, a->len, b->text, b->len);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* Longest first: llama.cpp matches special tokens in this order. */
static int by_length_desc_then_id(const void *pa, const void *pb) {
    const PieceKey *a = pa, *b = pb;
    if (a->len != b->len) return a->len < b->len ? 1 : -1;
    return (a->id > b->id) - (a->id < b->id);
}

/** Sort keys of the @p n ids @p ids (all of them when NULL) into @p out. */
static void sort_ids(const Vocab *v, const int *ids, int n, int (*order)(const void *, const void *),
                     int *out) {
    PieceKey *keys = xmalloc(checked_mul((size_t)n, sizeof *keys, "vocabulary"));
    for (int i = 0; i < n; i++) {
        int id = ids ? ids[i] : i;
        keys[i] = (PieceKey){v->pieces[id], v->piece_lens[id], id};
    }
    qsort(keys, (size_t)n, sizeof *keys, order);
    for (int i = 0; i < n; i++) out[i] = keys[i].id;
    free(keys);
}

/** The indexes every constructor needs once the pieces are in place. */
static void vocab_finish(VocabImpl *vi) {
    Vocab *v = &vi->pub;
    sort_ids(v, NULL, v->n_tokens, by_text_then_id, v->sorted);
    for (int b = 0; b < 256; b++) v->byte_token[b] = -1;
    for (int id = 0; id < v->n_tokens; id++) {
        int b = byte_of_piece(v->pieces[id], v->piece_lens[id]);
        if (b >= 0 && v->byte_token[b] < 0) v->byte_token[b] = id;
        if (v->piece_lens[id] > vi->max_piece_len) vi->max_piece_len = v->piece_lens[id];
        if (vi->is_special && vi->is_special[id] && v->piece_lens[id] > 0) vi->n_specials++;
    }
    if (vi->n_specials == 0) return;
    vi->specials = xmalloc((size_t)vi->n_specials * sizeof *vi->specials);
    for (int id = 0, k = 0; id < v->n_tokens; id++)
        if (vi->is_special[id] && v->piece_lens[id] > 0) vi->specials[k++] = id;
    sort_ids(v, vi->specials, vi->n_specials, by_length_desc_then_id, vi->specials);
}

static int32_t read_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t s;
    memcpy(&s, &u, 4);
    return s;
}

static float read_f32(const uint8_t *p) {
    int32_t bits = read_i32(p);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

Vocab *vocab_load_llama2c(const char *path, int n_tokens) {
    /* Ids 0, 1, 2 are <unk>, BOS and EOS by llama2.c's convention. */
    if (n_tokens < 3) fatal("%s: a vocabulary of %d tokens cannot hold <unk>, <s> and </s>", path, n_tokens);
    MappedFile f = map_file(path);
    if (f.size < 4) fatal("%s: too short for a tokenizer (%zu bytes)", path, f.size);
    int32_t max_len = read_i32(f.data);
    if (max_len <= 0 || max_len > MAX_PIECE_BYTES)
        fatal("%s: max_token_length %d is not in 1..%d", path, (int)max_len, MAX_PIECE_BYTES);
    /* Each token takes at least 8 bytes: refuse before allocating for n_tokens. */
    if ((f.size - 4) / 8 < (size_t)n_tokens)
        fatal("%s: %zu bytes is too short for %d tokens", path, f.size, n_tokens);
    /* The pieces plus one NUL each fit in the file's size. */
    VocabImpl *vi = vocab_alloc(n_tokens, f.size);
    size_t off = 4, cursor = 0;
    for (int id = 0; id < n_tokens; id++) {
        if (f.size - off < 8) fatal("%s: truncated in token %d of %d", path, id, n_tokens);
        float score = read_f32(f.data + off);
        int32_t len = read_i32(f.data + off + 4);
        off += 8;
        if (!isfinite(score)) fatal("%s: token %d has a non-finite score", path, id);
        if (len < 0 || len > max_len)
            fatal("%s: token %d has length %d, outside 0..max_token_length (%d)", path, id, (int)len, (int)max_len);
        if (f.size - off < (size_t)len) fatal("%s: truncated in token %d of %d", path, id, n_tokens);
        store_piece(vi, id, (const char *)f.data + off, (size_t)len, score, 0, &cursor);
        off += (size_t)len;
    }
    if (off != f.size) fatal("%s: the file has more tokens than the model's vocabulary (%d)", path, n_tokens);
    unmap_file(&f);
    vi->pub.unk_id = 0;
    vi->pub.bos_id = 1;
    vi->pub.eos_id = 2;
    vi->pub.parse_special = 0;
    vocab_finish(vi);
    return &vi->pub;
}

/** @p s as printable ASCII for an error line: other bytes as `\\xNN`, cut short. */
static const char *printable(const char *s, size_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') buf[n++] = (char)c;
        else n += (size_t)snprintf(buf + n, cap - n, "\\x%02X", c);
    }
    buf[n] = '\0';
    return buf;
}

static void check_special_id(const char *origin, const char *what, int id, int n_tokens) {
    if (id < -1 || id >= n_tokens)
        fatal("%s: %s id %d is outside the vocabulary of %d tokens", origin, what, id, n_tokens);
}

Vocab *vocab_from_arrays(const char *origin, int n_tokens, const char *const *texts,
                         const size_t *lens, const float *scores, const int *types,
                         int bos_id, int eos_id, int unk_id) {
    if (n_tokens <= 0) fatal("%s: vocabulary size %d is not positive", origin, n_tokens);
    check_special_id(origin, "BOS", bos_id, n_tokens);
    check_special_id(origin, "EOS", eos_id, n_tokens);
    check_special_id(origin, "unknown-token", unk_id, n_tokens);
    size_t text_bytes = (size_t)n_tokens; /* the NULs */
    for (int id = 0; id < n_tokens; id++) {
        if (lens[id] > MAX_PIECE_BYTES) fatal("%s: token %d is %zu bytes long", origin, id, lens[id]);
        if (lens[id] > 0 && !texts[id]) fatal("%s: token %d has no text", origin, id);
        if (scores && !isfinite(scores[id])) fatal("%s: token %d has a non-finite score", origin, id);
        if (lens[id] > SIZE_MAX - text_bytes) fatal("%s: the token texts overflow memory sizes", origin);
        text_bytes += lens[id];
    }
    VocabImpl *vi = vocab_alloc(n_tokens, text_bytes);
    if (types) vi->is_special = xcalloc((size_t)n_tokens, 1);
    size_t cursor = 0;
    for (int id = 0; id < n_tokens; id++) {
        store_piece(vi, id, texts[id], lens[id], scores ? scores[id] : 0.0f, 1, &cursor);
        int type = types ? types[id] : 1;
        if (type == TYPE_BYTE && byte_of_piece(vi->pub.pieces[id], vi->pub.piece_lens[id]) < 0) {
            char shown[64];
            fatal("%s: token %d has type BYTE but text '%s' is not <0xNN>", origin, id,
                  printable(texts[id], lens[id], shown, sizeof shown));
        }
        /* The token types llama.cpp matches literally in text with parse_special. */
        if (type == TYPE_CONTROL || type == TYPE_UNKNOWN || type == TYPE_USER_DEFINED) vi->is_special[id] = 1;
    }
    vi->pub.bos_id = bos_id;
    vi->pub.eos_id = eos_id;
    vi->pub.unk_id = unk_id;
    vi->pub.parse_special = 1;
    vocab_finish(vi);
    return &vi->pub;
}

void vocab_free(Vocab *v) {
    if (!v) return;
    VocabImpl *vi = (VocabImpl *)v;
    free(v->pieces);
    free(v->piece_lens);
    free(v->scores);
    free(v->sorted);
    free(vi->text);
    free(vi->is_special);
    free(vi->specials);
    free(vi);
}

int vocab_lookup(const Vocab *v, const char *s, size_t len) {
    if (len > MAX_PIECE_BYTES) return -1;
    int lo = 0, hi = v->n_tokens; /* first sorted entry >= s lies in [lo, hi] */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, id = v->sorted[mid];
        if (compare_bytes(v->pieces[id], v->piece_lens[id], s, (int)len) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == v->n_tokens) return -1;
    int id = v->sorted[lo];
    return compare_bytes(v->pieces[id], v->piece_lens[id], s, (int)len) == 0 ? id : -1;
}

/** A piece encoding may produce: special tokens come only from parse_special. */
static int lookup_mergeable(const VocabImpl *vi, const char *s, size_t len) {
    int id = vocab_lookup(&vi->pub, s, len);
    return id >= 0 && vi->is_special && vi->is_special[id] ? -1 : id;
}

/* ======================================================================== */
/* Encoding                                                                 */
/* ======================================================================== */

/** Where encoded ids go, and why encoding stopped if it did. */
typedef struct {
    int *ids;
    int n, cap;
    char *err;
    size_t err_len;
} IdSink;

static LB_PRINTF(2, 3) void sink_error(IdSink *out, const char *fmt, ...) {
    if (!out->err || out->err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->err, out->err_len, fmt, ap);
    va_end(ap);
}

static int emit(IdSink *out, int id) {
    if (out->n >= out->cap) {
        sink_error(out, "the text needs more than %d tokens", out->cap);
        return 0;
    }
    out->ids[out->n++] = id;
    return 1;
}

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

/** The code point of a complete UTF-8 sequence of exactly @p len bytes, or -1. */
static long code_point(const unsigned char *s, int len) {
    int want = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
             : s[0] >= 0xF0 && s[0] < 0xF5 ? 4 : 0;
    if (want != len) return -1;
    long cp = want == 1 ? s[0] : s[0] & (0x7F >> want);
    for (int i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3F);
    return cp;
}

static void report_unencodable(const Vocab *v, const unsigned char *s, int len, int missing, IdSink *out) {
    char what[48];
    long cp = code_point(s, len);
    if (cp >= 0) snprintf(what, sizeof what, "character U+%04lX", cp);
    else snprintf(what, sizeof what, "byte 0x%02X (invalid UTF-8)", missing);
    int has_byte_tokens = 0;
    for (int b = 0; b < 256; b++) has_byte_tokens |= v->byte_token[b] >= 0;
    if (has_byte_tokens) sink_error(out, "%s is not in the vocabulary, nor is byte token <0x%02X>", what, missing);
    else sink_error(out, "%s is not in the vocabulary, which has no byte tokens", what);
}

/** One candidate merge: symbols left and right (adjacent when pushed) into piece merged. */
typedef struct {
    float score;
    int left, right, left_id, right_id, merged;
} Pair;

/** The symbols of one stretch of text and the candidate merges between them. */
typedef struct {
    const VocabImpl *vi;
    int *id, *prev, *next; /* per symbol; id -1 = merged away */
    int n_sym;
    Pair *heap;
    int n_heap, heap_cap;
    char *scratch; /* concatenation of two pieces, max_piece_len bytes */
} Merger;

/* The heap's order: better score first, then the leftmost pair. */
static int pair_before(const Pair *a, const Pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(Merger *m, Pair p) {
    if (m->n_heap == m->heap_cap) {
        m->heap_cap = m->heap_cap ? 2 * m->heap_cap : 64;
        m->heap = realloc(m->heap, checked_mul((size_t)m->heap_cap, sizeof *m->heap, "merge heap"));
        if (!m->heap) fatal("out of memory (merge heap of %d pairs)", m->heap_cap);
    }
    int i = m->n_heap++;
    while (i > 0 && pair_before(&p, &m->heap[(i - 1) / 2])) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i] = p;
}

static Pair heap_pop(Merger *m) {
    Pair top = m->heap[0], last = m->heap[--m->n_heap];
    int i = 0;
    for (;;) {
        int child = 2 * i + 1;
        if (child >= m->n_heap) break;
        if (child + 1 < m->n_heap && pair_before(&m->heap[child + 1], &m->heap[child])) child++;
        if (!pair_before(&m->heap[child], &last)) break;
        m->heap[i] = m->heap[child];
        i = child;
    }
    if (m->n_heap > 0) m->heap[i] = last;
    return top;
}

/** Push the merge of symbol @p left with the one after it, if that makes a piece. */
static void consider_pair(Merger *m, int left) {
    int right = left < 0 ? -1 : m->next[left];
    if (right < 0) return;
    const Vocab *v = &m->vi->pub;
    int a = m->id[left], b = m->id[right];
    int alen = v->piece_lens[a], blen = v->piece_lens[b];
    if (alen + blen > m->vi->max_piece_len) return; /* longer than any piece */
    memcpy(m->scratch, v->pieces[a], (size_t)alen);
    memcpy(m->scratch + alen, v->pieces[b], (size_t)blen);
    int merged = lookup_mergeable(m->vi, m->scratch, (size_t)(alen + blen));
    if (merged < 0 || !(v->scores[merged] > NEVER_MERGED_SCORE)) return;
    heap_push(m, (Pair){v->scores[merged], left, right, a, b, merged});
}

/* Stale when either symbol changed or left the list since the pair was pushed. */
static int pair_is_live(const Merger *m, const Pair *p) {
    return m->id[p->left] == p->left_id && m->next[p->left] == p->right && m->id[p->right] == p->right_id;
}

/* A merge changes only the pairs on either side of the merged symbol: those
 * two are pushed afresh, and the entries they replace are now stale. */
static void merge_all(Merger *m) {
    for (int s = 0; s + 1 < m->n_sym; s++) consider_pair(m, s);
    while (m->n_heap > 0) {
        Pair p = heap_pop(m);
        if (!pair_is_live(m, &p)) continue;
        m->id[p.left] = p.merged;
        m->id[p.right] = -1;
        m->next[p.left] = m->next[p.right];
        if (m->next[p.right] >= 0) m->prev[m->next[p.right]] = p.left;
        consider_pair(m, m->prev[p.left]);
        consider_pair(m, p.left);
    }
}

static void add_symbol(Merger *m, int id) {
    int s = m->n_sym++;
    m->id[s] = id;
    m->prev[s] = s - 1;
    m->next[s] = -1;
    if (s > 0) m->next[s - 1] = s;
}

/** Code points (or their byte tokens) as the initial symbols; 0 if one cannot be encoded. */
static int split_into_symbols(Merger *m, const char *text, size_t len, IdSink *out) {
    const Vocab *v = &m->vi->pub;
    int prefix = lookup_mergeable(m->vi, " ", 1); /* absent: skipped (llama2.c would emit id -1) */
    if (prefix >= 0) add_symbol(m, prefix);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int n = 1;
        while (i + (size_t)n < len && n < 4 && is_continuation(s[i + (size_t)n])) n++;
        int id = lookup_mergeable(m->vi, text + i, (size_t)n);
        if (id >= 0) {
            add_symbol(m, id);
        } else {
            for (int k = 0; k < n; k++) {
                if (v->byte_token[s[i + (size_t)k]] < 0) {
                    report_unencodable(v, s + i, n, s[i + (size_t)k], out);
                    return 0;
                }
                add_symbol(m, v->byte_token[s[i + (size_t)k]]);
            }
        }
        i += (size_t)n;
    }
    return 1;
}

/** Encode @p len bytes of plain text (dummy prefix included) onto @p out. */
static int encode_plain(const VocabImpl *vi, const char *text, size_t len, IdSink *out) {
    if (len == 0) return 1;
    size_t max_symbols = len + 1; /* the prefix, then at most one symbol per byte */
    if (max_symbols > INT_MAX / 4) { /* ids and heap sizes are ints */
        sink_error(out, "the text is too long (%zu bytes)", len);
        return 0;
    }
    Merger m = {.vi = vi};
    m.id = xmalloc(checked_mul(max_symbols, 3 * sizeof(int), "text"));
    m.prev = m.id + max_symbols;
    m.next = m.prev + max_symbols;
    m.scratch = xmalloc((size_t)vi->max_piece_len + 1);
    int ok = split_into_symbols(&m, text, len, out);
    if (ok) merge_all(&m);
    for (int s = 0; ok && s >= 0 && m.n_sym > 0; s = m.next[s]) ok = emit(out, m.id[s]);
    free(m.id);
    free(m.heap);
    free(m.scratch);
    return ok;
}

/* Marks in encode_special's claim array: plain text, or inside a special token. */
enum { PLAIN = -1, COVERED = -2 };

/** Claim every leftmost non-overlapping occurrence of special @p id in still-plain text. */
static void claim_occurrences(const Vocab *v, int id, const char *text, size_t len, int *claim) {
    size_t plen = (size_t)v->piece_lens[id];
    for (size_t i = 0; i + plen <= len; i++) {
        if (claim[i] != PLAIN || memcmp(text + i, v->pieces[id], plen) != 0) continue;
        size_t k = 1;
        while (k < plen && claim[i + k] == PLAIN) k++;
        if (k < plen) continue; /* overlaps a longer special found earlier */
        claim[i] = id;
        for (k = 1; k < plen; k++) claim[i + k] = COVERED;
        i += plen - 1;
    }
}

/** llama.cpp's way: special tokens first (longest first), then the plain
 * stretches between them, each with its own dummy prefix: llama.cpp encodes
 * "<s>hello</s>" as BOS, " hello", EOS. */
static int encode_special(const VocabImpl *vi, const char *text, size_t len, IdSink *out) {
    int *claim = xmalloc(checked_mul(len + 1, sizeof *claim, "text"));
    for (size_t i = 0; i < len; i++) claim[i] = PLAIN;
    for (int k = 0; k < vi->n_specials; k++) claim_occurrences(&vi->pub, vi->specials[k], text, len, claim);
    int ok = 1;
    for (size_t i = 0; ok && i < len;) {
        if (claim[i] >= 0) {
            ok = emit(out, claim[i]);
            i += (size_t)vi->pub.piece_lens[claim[i]];
        } else {
            size_t end = i;
            while (end < len && claim[end] == PLAIN) end++;
            ok = encode_plain(vi, text + i, end - i, out);
            i = end;
        }
    }
    free(claim);
    return ok;
}

int vocab_encode(const Vocab *v, const char *text, int add_bos, int *out, int max_out,
                 char *err, size_t err_len) {
    const VocabImpl *vi = impl_of(v);
    IdSink sink = {out, 0, max_out < 0 ? 0 : max_out, err, err_len};
    if (err && err_len) err[0] = '\0';
    if (add_bos && v->bos_id >= 0 && !emit(&sink, v->bos_id)) return -1;
    size_t len = strlen(text);
    int ok = v->parse_special && vi->n_specials > 0 ? encode_special(vi, text, len, &sink)
                                                   : encode_plain(vi, text, len, &sink);
    return ok ? sink.n : -1;
}

/* ======================================================================== */
/* Decoding and printing                                                    */
/* ======================================================================== */

/* Every byte as a one-byte string, so decoded byte tokens need no storage. */
#define BYTE_STR(n) {(char)(n), 0}
#define BYTE_STR4(n) BYTE_STR(n), BYTE_STR((n) + 1), BYTE_STR((n) + 2), BYTE_STR((n) + 3)
#define BYTE_STR16(n) BYTE_STR4(n), BYTE_STR4((n) + 4), BYTE_STR4((n) + 8), BYTE_STR4((n) + 12)
#define BYTE_STR64(n) BYTE_STR16(n), BYTE_STR16((n) + 16), BYTE_STR16((n) + 32), BYTE_STR16((n) + 48)
static const char byte_strings[256][2] = {BYTE_STR64(0), BYTE_STR64(64), BYTE_STR64(128), BYTE_STR64(192)};

const char *vocab_decode(const Vocab *v, int prev, int tok, int *len) {
    if (tok < 0 || tok >= v->n_tokens) {
        *len = 0;
        return "";
    }
    const char *piece = v->pieces[tok];
    int n = v->piece_lens[tok];
    int byte = byte_of_piece(piece, n);
    if (byte >= 0) {
        *len = 1;
        return byte_strings[byte];
    }
    /* The space after BOS is the dummy prefix encoding added: not the text's. */
    if (v->bos_id >= 0 && prev == v->bos_id && n > 0 && piece[0] == ' ') {
        piece++;
        n--;
    }
    *len = n;
    return piece;
}

/** Bytes in the UTF-8 character that @p lead starts; 0 if it cannot start one. */
static int utf8_length(unsigned char lead) {
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

/* Whether @p c may follow the bytes pending so far. The second byte's range
 * depends on the lead: this refuses overlong forms, surrogates and > U+10FFFF. */
static int continues(const SafePrinter *sp, unsigned char c) {
    if (!is_continuation(c)) return 0;
    if (sp->n_pending > 1) return 1;
    switch (sp->pending[0]) {
    case 0xE0: return c >= 0xA0;
    case 0xED: return c <= 0x9F;
    case 0xF0: return c >= 0x90;
    case 0xF4: return c <= 0x8F;
    default: return 1;
    }
}

void safe_print(SafePrinter *sp, const char *bytes, int len) {
    for (int i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (sp->n_pending > 0) {
            if (continues(sp, c)) {
                sp->pending[sp->n_pending++] = c;
                if (sp->n_pending < utf8_length(sp->pending[0])) continue;
                /* U+0080..U+009F are C1 controls; some terminals obey U+009B as an escape. */
                int c1_control = sp->pending[0] == 0xC2 && sp->pending[1] < 0xA0;
                if (!c1_control) fwrite(sp->pending, 1, (size_t)sp->n_pending, stdout);
                sp->n_pending = 0;
                continue;
            }
            sp->n_pending = 0; /* an invalid sequence: drop it, and look at c afresh */
        }
        if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F)) putchar(c);
        else if (utf8_length(c) > 0) sp->pending[sp->n_pending++] = c;
        /* anything else (control bytes, DEL, stray continuations, C0/C1/F5..FF) is dropped */
    }
}

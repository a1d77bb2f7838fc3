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
 * @section tok_chunks A word at a time
 * A merge joins two neighbours into a piece whose text is theirs end to end,
 * so a merge across the boundary between symbols A and B makes a piece that
 * holds A's last byte followed by B's first byte. If no piece of the
 * vocabulary holds that pair of bytes, no merge ever crosses there: the
 * symbols on either side merge exactly as they would alone (each side's best
 * pair is the best of the whole text whenever it is picked). In SentencePiece
 * vocabularies a piece holds a space only at its start, so a text falls apart
 * into words. Merging each one alone gives the same ids, keeps the heap a few
 * entries deep and in cache, and needs memory for one word instead of for
 * every symbol and candidate pair of the text (over a gigabyte for 50 MB).
 *
 * @section tok_special GGUF vocabularies
 * With parse_special (llama.cpp's default for GGUF files), text spelling a
 * control token such as "<s>" becomes that token, and each stretch of text
 * between them is encoded as above, with its own dummy prefix. Control tokens
 * are never the result of a merge. The rule (llama.cpp's): the specials are
 * taken longest first, then by id, and each claims every occurrence, from the
 * left, that does not overlap one claimed before it.
 *
 * Searching the text once per special costs (specials) x (text): half a
 * minute for a 120 KB prompt with 65,536 control tokens. Instead the specials form a byte
 * trie with Aho-Corasick failure links (the longest proper suffix of a node's
 * text that is also a node): one pass over the text finds every occurrence of
 * every special, in steps linear in the text plus the occurrences, whatever
 * the number or length of the specials. The occurrences are then claimed in
 * the rule's order. Two facts keep that cheap. Occurrences that do not overlap
 * each other, even through others, cannot affect each other, so they are
 * claimed group by group as the pass goes (a group ends when the automaton's
 * depth shows that no later occurrence can reach back into it). And as claims
 * go longest first, a new occurrence overlaps an earlier claim exactly when
 * its first or its last byte is claimed (a claim at least as long cannot hide
 * strictly inside it), so the overlap test costs two lookups.
 *
 * @section tok_bpe Byte-level BPE vocabularies
 * vocab_from_bpe() builds the same structure for a byte-level BPE vocabulary
 * (GGUF tokenizer.ggml.model "gpt2": Llama 3, Qwen2, SmolLM): the pieces are
 * the tokens' raw bytes, special tokens are cut out of the text by the same
 * automaton, and each stretch between them goes to bpe.c (its pre-tokenizer
 * and its merges) instead of the SentencePiece merging above. There is no
 * dummy prefix. The text look-up that BPE needs is not quite vocab_lookup():
 * llama.cpp compares texts in the byte-to-unicode form, where a special token
 * whose text is not in that form can never be found, so a second index (the
 * "keys") holds each token under the raw bytes its stored text stands for.
 */
#include "tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "util.h"

/* Pieces of real vocabularies are at most a few dozen bytes; a length beyond
 * this is a corrupt file, not a vocabulary, and is refused before allocating. */
#define MAX_PIECE_BYTES 65536

/* llama2.c searches for the best merge starting from this score, so a piece
 * scoring at or below it is never merged into. Kept for identical results. */
#define NEVER_MERGED_SCORE -1e10f

/* A piece lies at most this many slots past its hash's slot (see build_hash). */
#define MAX_PROBES 32

/* GGUF token types (tokenizer.ggml.token_type). */
enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_BYTE = 6 };

/* What a token prints as (llama.cpp's token_to_piece): its piece; nothing
 * unless special tokens are shown (control and unknown); always its text
 * (user-defined); its byte (byte tokens); never anything (unused, undefined). */
enum { PIECE_NORMAL, PIECE_CONTROL, PIECE_USER, PIECE_BYTE, PIECE_HIDDEN };

/* llama.cpp gives an empty token this text ("[EMPTY_7]"): at most this long. */
#define EMPTY_NAME_MAX 24

/** The vocabulary plus what only this file needs. Vocab comes first, so a
 * Vocab * handed out by the constructors converts back to a VocabImpl *. */
typedef struct {
    int first_child;        /* children have consecutive ids, in byte order */
    int fail;               /* the node of the longest proper suffix of this node's text */
    int dict;               /* the nearest node along fail links that ends a special, or -1 */
    int rank;               /* the special ending here (its index in specials), or -1 */
    int depth;              /* bytes from the root */
    unsigned short n_child;
    unsigned char label;    /* the byte on the edge into this node */
} TrieNode;

typedef struct VocabImplTag {
    Vocab pub;
    char *text;                /* every piece, NUL-terminated, back to back */
    int *sorted;               /* (n_tokens) ids sorted by piece text, for binary search */
    int *slots;                /* hash table of ids by piece text, -1 = empty; NULL: use sorted */
    size_t slot_mask;          /* slots - 1, a power of two less one */
    unsigned char *is_special; /* (n_tokens) GGUF control/unknown/user-defined token; NULL for llama2.c */
    int *specials;             /* special ids with non-empty text, longest first (llama.cpp's order) */
    int n_specials;
    int max_piece_len;         /* longer concatenations need no lookup */
    unsigned char joins[256][32]; /* bit b of row a: some piece holds byte a followed by byte b */
    TrieNode *trie;            /* the specials' automaton; node 0 is the root */
    int root_child[256];       /* the root's child for each byte, or -1 */
    unsigned char *piece_kind; /* (n_tokens) PIECE_*, from the GGUF types; NULL for llama2.c */
    struct VocabImplTag *keys; /* BPE: the tokens under the raw bytes llama.cpp compares (see tok_bpe) */
    Bpe *bpe;                  /* BPE: the pre-tokenizer and the merges; NULL for SentencePiece */
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
    vi->sorted = xmalloc(checked_mul(n, sizeof *vi->sorted, "vocabulary"));
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

/** FNV-1a over the bytes, then a final mix so that the low bits (the slot) depend on all of them. */
static size_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xCBF29CE484222325u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3u;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93u;
    h ^= h >> 32;
    return (size_t)h;
}

/**
 * The lookup table: every piece in the first free slot from its hash's, and
 * a text that repeats keeps its lowest id. Slots outnumber pieces four to one,
 * so a piece sits a slot or two from its hash's. A vocabulary whose texts were
 * chosen to collide could make that hundreds of probes (and building the
 * table quadratic): a piece farther than MAX_PROBES drops the table, and
 * lookups fall back to binary search over the sorted ids. Lookups probe at
 * most MAX_PROBES + 1 slots either way.
 */
static void build_hash(VocabImpl *vi) {
    const Vocab *v = &vi->pub;
    size_t n_slots = 64;
    while (n_slots / 4 < (size_t)v->n_tokens) n_slots *= 2;
    vi->slots = xmalloc(checked_mul(n_slots, sizeof *vi->slots, "vocabulary"));
    vi->slot_mask = n_slots - 1;
    for (size_t i = 0; i < n_slots; i++) vi->slots[i] = -1;
    for (int id = 0; id < v->n_tokens; id++) {
        size_t slot = hash_bytes(v->pieces[id], (size_t)v->piece_lens[id]) & vi->slot_mask;
        for (int probe = 0;; probe++, slot = (slot + 1) & vi->slot_mask) {
            int other = vi->slots[slot];
            if (other < 0) {
                vi->slots[slot] = id;
                break;
            }
            if (compare_bytes(v->pieces[other], v->piece_lens[other], v->pieces[id], v->piece_lens[id]) == 0) break;
            if (probe == MAX_PROBES) {
                free(vi->slots);
                vi->slots = NULL;
                return;
            }
        }
    }
}

/** The child of trie node @p node on byte @p c, or -1 (children are sorted by byte). */
static int trie_child(const VocabImpl *vi, int node, unsigned char c) {
    if (node == 0) return vi->root_child[c];
    const TrieNode *t = vi->trie;
    int lo = t[node].first_child, hi = lo + t[node].n_child;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t[mid].label < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < t[node].first_child + t[node].n_child && t[lo].label == c ? lo : -1;
}

/**
 * The specials' automaton, built breadth first from their texts sorted by
 * bytes: the texts below a node form one run of that order, and its children
 * split the run by the next byte. So every node's children get consecutive
 * ids, and every node comes after the shorter nodes its failure link can
 * point to, which are therefore complete when it needs them.
 */
static void build_trie(VocabImpl *vi, const char *origin) {
    const Vocab *v = &vi->pub;
    int n = vi->n_specials;
    /* key id = rank, the special's place in the claiming order */
    PieceKey *keys = xmalloc(checked_mul((size_t)n, sizeof *keys, "special tokens"));
    for (int r = 0; r < n; r++) keys[r] = (PieceKey){v->pieces[vi->specials[r]], v->piece_lens[vi->specials[r]], r};
    qsort(keys, (size_t)n, sizeof *keys, by_text_then_id);
    /* A repeated text keeps its best rank: the later copies would find
     * every occurrence claimed or overlapped already. */
    int n_keys = 0;
    size_t max_nodes = 1;
    for (int i = 0; i < n; i++) {
        if (n_keys > 0 && compare_bytes(keys[n_keys - 1].text, keys[n_keys - 1].len, keys[i].text, keys[i].len) == 0)
            continue;
        keys[n_keys++] = keys[i];
        max_nodes += (size_t)keys[i].len;
    }
    if (max_nodes > INT_MAX) fatal("%s: the special tokens hold too much text (%zu bytes)", origin, max_nodes - 1);
    vi->trie = xmalloc(checked_mul(max_nodes, sizeof *vi->trie, "special tokens"));
    int *run = xmalloc(checked_mul(max_nodes, 2 * sizeof *run, "special tokens")); /* [lo, hi) of keys per node */
    TrieNode *t = vi->trie;
    t[0] = (TrieNode){0, 0, -1, -1, 0, 0, 0};
    run[0] = 0, run[1] = n_keys;
    int n_nodes = 1;
    for (int b = 0; b < 256; b++) vi->root_child[b] = -1;
    for (int node = 0; node < n_nodes; node++) {
        int lo = run[2 * node], hi = run[2 * node + 1], depth = t[node].depth;
        if (lo < hi && keys[lo].len == depth) lo++; /* the text ending here sorts first */
        t[node].first_child = n_nodes;
        while (lo < hi) {
            unsigned char c = (unsigned char)keys[lo].text[depth];
            int end = lo + 1;
            while (end < hi && (unsigned char)keys[end].text[depth] == c) end++;
            int fail = 0;
            for (int f = t[node].fail; node != 0; f = t[f].fail) { /* the longest suffix that goes on with c */
                int next = trie_child(vi, f, c);
                if (next >= 0) {
                    fail = next;
                    break;
                }
                if (f == 0) break;
            }
            int child = n_nodes++;
            t[child] = (TrieNode){0, fail, t[fail].rank >= 0 ? fail : t[fail].dict,
                                  keys[lo].len == depth + 1 ? keys[lo].id : -1, depth + 1, 0, c};
            run[2 * child] = lo, run[2 * child + 1] = end;
            if (node == 0) vi->root_child[c] = child;
            lo = end;
        }
        t[node].n_child = (unsigned short)(n_nodes - t[node].first_child);
    }
    TrieNode *fitted = realloc(t, (size_t)n_nodes * sizeof *t); /* shared prefixes left nodes unused */
    if (fitted) vi->trie = fitted;
    free(run);
    free(keys);
}

/** The indexes every constructor needs once the pieces are in place. */
static void vocab_finish(VocabImpl *vi, const char *origin) {
    Vocab *v = &vi->pub;
    build_hash(vi);
    if (!vi->slots) sort_ids(v, NULL, v->n_tokens, by_text_then_id, vi->sorted); /* only the fallback needs it */
    for (int b = 0; b < 256; b++) v->byte_token[b] = -1;
    for (int id = 0; id < v->n_tokens; id++) {
        const unsigned char *p = (const unsigned char *)v->pieces[id];
        int len = v->piece_lens[id];
        int b = byte_of_piece(v->pieces[id], len);
        if (b >= 0 && v->byte_token[b] < 0) v->byte_token[b] = id;
        if (len > vi->max_piece_len) vi->max_piece_len = len;
        if (vi->is_special && vi->is_special[id] && len > 0) vi->n_specials++;
        for (int i = 0; i + 1 < len; i++) vi->joins[p[i]][p[i + 1] >> 3] |= (unsigned char)(1u << (p[i + 1] & 7));
    }
    if (vi->n_specials == 0) return;
    vi->specials = xmalloc((size_t)vi->n_specials * sizeof *vi->specials);
    for (int id = 0, k = 0; id < v->n_tokens; id++)
        if (vi->is_special[id] && v->piece_lens[id] > 0) vi->specials[k++] = id;
    sort_ids(v, vi->specials, vi->n_specials, by_length_desc_then_id, vi->specials);
    build_trie(vi, origin);
}

/** What every SentencePiece vocabulary starts with: BOS added, no EOS, no end-of-turn token, no
 * list of end-of-generation ids (vocab_is_eog() is then id == EOS), no chat template. */
static void set_spm_defaults(Vocab *v) {
    v->kind = VOCAB_SPM;
    v->add_bos = 1;
    v->add_eos = 0;
    v->eot_id = -1;
    v->eog_ids = NULL;
    v->n_eog = 0;
    v->chat_template = NULL;
}

/** How a token of GGUF type @p type prints (PIECE_*). */
static unsigned char piece_kind_of(int type) {
    switch (type) {
    case TYPE_NORMAL: return PIECE_NORMAL;
    case TYPE_UNKNOWN: case TYPE_CONTROL: return PIECE_CONTROL;
    case TYPE_USER_DEFINED: return PIECE_USER;
    case TYPE_BYTE: return PIECE_BYTE;
    default: return PIECE_HIDDEN; /* unused (5), undefined (0) and types GGUF does not define */
    }
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
    set_spm_defaults(&vi->pub);
    vocab_finish(vi, path);
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
    vi->piece_kind = xmalloc((size_t)n_tokens);
    size_t cursor = 0;
    for (int id = 0; id < n_tokens; id++) {
        store_piece(vi, id, texts[id], lens[id], scores ? scores[id] : 0.0f, 1, &cursor);
        int type = types ? types[id] : 1;
        vi->piece_kind[id] = piece_kind_of(type);
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
    set_spm_defaults(&vi->pub);
    vocab_finish(vi, origin);
    return &vi->pub;
}

/** The text token @p id has in llama.cpp: its own, or a name when it is empty. */
static const char *token_text(const char *const *texts, const size_t *lens, int id, size_t *len, char *name) {
    if (lens[id] > 0) {
        *len = lens[id];
        return texts[id];
    }
    *len = (size_t)snprintf(name, EMPTY_NAME_MAX, "[EMPTY_%d]", id);
    return name;
}

/** Tokens whose keys are equal would be one token to llama.cpp, which refuses such a vocabulary.
 * A look-up finds the lowest id of a repeated text, so a token that is not found repeats one. */
static void check_distinct_keys(const VocabImpl *keys, const char *origin) {
    const Vocab *k = &keys->pub;
    for (int id = 0; id < k->n_tokens; id++) {
        int first = k->piece_lens[id] > 0 ? vocab_lookup(k, k->pieces[id], (size_t)k->piece_lens[id]) : id;
        if (first != id) {
            char shown[64];
            fatal("%s: tokens %d and %d have the same text \"%s\"", origin, first, id,
                  printable(k->pieces[id], (size_t)k->piece_lens[id], shown, sizeof shown));
        }
    }
}

Vocab *vocab_from_bpe(const char *origin, int n_tokens, const char *const *texts, const size_t *lens,
                      const int *types, const char *const *merges, const size_t *merge_lens, int n_merges,
                      const char *pre, int bos_id, int eos_id, int unk_id) {
    BpeRules rules;
    char shown[64], name[EMPTY_NAME_MAX];
    if (!pre) pre = "default"; /* what llama.cpp assumes when the file names none */
    if (!bpe_rules(pre, strlen(pre), &rules))
        fatal("%s: pre-tokenizer \"%s\" is not supported (gpt-2, llama-bpe, qwen2, smollm, default are)", origin,
              printable(pre, strlen(pre), shown, sizeof shown));
    if (n_tokens <= 0) fatal("%s: vocabulary size %d is not positive", origin, n_tokens);
    if (n_merges < 0) fatal("%s: %d merges", origin, n_merges);
    check_special_id(origin, "BOS", bos_id, n_tokens);
    check_special_id(origin, "EOS", eos_id, n_tokens);
    check_special_id(origin, "unknown-token", unk_id, n_tokens);
    size_t text_bytes = (size_t)n_tokens, longest = EMPTY_NAME_MAX; /* the NULs */
    for (int id = 0; id < n_tokens; id++) {
        if (lens[id] > MAX_PIECE_BYTES) fatal("%s: token %d is %zu bytes long", origin, id, lens[id]);
        if (lens[id] > 0 && !texts[id]) fatal("%s: token %d has no text", origin, id);
        size_t room = lens[id] > EMPTY_NAME_MAX ? lens[id] : EMPTY_NAME_MAX;
        if (room > SIZE_MAX - text_bytes) fatal("%s: the token texts overflow memory sizes", origin);
        text_bytes += room;
        if (lens[id] > longest) longest = lens[id];
    }
    VocabImpl *vi = vocab_alloc(n_tokens, text_bytes), *keys = vocab_alloc(n_tokens, text_bytes);
    vi->is_special = xcalloc((size_t)n_tokens, 1);
    vi->piece_kind = xmalloc((size_t)n_tokens);
    char *raw = xmalloc(longest);
    size_t cursor = 0, key_cursor = 0;
    for (int id = 0; id < n_tokens; id++) {
        size_t len;
        const char *text = token_text(texts, lens, id, &len, name);
        int type = types ? types[id] : TYPE_NORMAL;
        long n_raw = bpe_unmap(text, len, raw); /* the raw bytes the stored text stands for */
        vi->piece_kind[id] = piece_kind_of(type);
        if (type == TYPE_CONTROL || type == TYPE_UNKNOWN || type == TYPE_USER_DEFINED) {
            vi->is_special[id] = 1; /* matched in the text as it is written, not mapped */
            store_piece(vi, id, text, len, 0.0f, 0, &cursor);
        } else if (n_raw < 0) {
            fatal("%s: token %d (\"%s\") is not in GPT-2's byte-to-unicode form", origin, id,
                  printable(text, len, shown, sizeof shown));
        } else {
            store_piece(vi, id, raw, (size_t)n_raw, 0.0f, 0, &cursor);
        }
        store_piece(keys, id, raw, n_raw < 0 ? 0 : (size_t)n_raw, 0.0f, 0, &key_cursor); /* "": never found */
    }
    free(raw);
    vocab_finish(vi, origin);
    for (int b = 0; b < 256; b++) vi->pub.byte_token[b] = -1; /* "<0xNN>" is ordinary text here */
    vocab_finish(keys, origin);
    check_distinct_keys(keys, origin);
    vi->keys = keys;
    vi->bpe = bpe_build(origin, &keys->pub, merges, merge_lens, n_merges, &rules);
    Vocab *v = &vi->pub;
    v->bos_id = bos_id;
    v->eos_id = eos_id;
    v->unk_id = unk_id;
    v->parse_special = 1;
    v->kind = VOCAB_BPE;
    v->add_bos = rules.add_bos;
    v->add_eos = 0;
    v->eot_id = -1;
    return v;
}

int vocab_is_eog(const Vocab *v, int id) {
    if (id < 0) return 0;
    if (v->n_eog == 0) return id == v->eos_id;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog_ids[i] == id) return 1;
    return 0;
}

int vocab_ends_text(const Vocab *v, int id) {
    return vocab_is_eog(v, id) || (v->kind == VOCAB_SPM && v->bos_id >= 0 && id == v->bos_id);
}

void vocab_free(Vocab *v) {
    if (!v) return;
    VocabImpl *vi = (VocabImpl *)v;
    if (vi->keys) vocab_free(&vi->keys->pub);
    bpe_free(vi->bpe);
    free(vi->piece_kind);
    free(v->eog_ids);
    free(v->chat_template);
    free(v->pieces);
    free(v->piece_lens);
    free(v->scores);
    free(vi->sorted);
    free(vi->slots);
    free(vi->text);
    free(vi->is_special);
    free(vi->specials);
    free(vi->trie);
    free(vi);
}

int vocab_lookup(const Vocab *v, const char *s, size_t len) {
    const VocabImpl *vi = impl_of(v);
    if (len > (size_t)vi->max_piece_len) return -1;
    if (vi->slots) {
        size_t slot = hash_bytes(s, len) & vi->slot_mask;
        for (int probe = 0; probe <= MAX_PROBES; probe++, slot = (slot + 1) & vi->slot_mask) {
            int id = vi->slots[slot];
            if (id < 0) return -1;
            if ((size_t)v->piece_lens[id] == len && memcmp(v->pieces[id], s, len) == 0) return id;
        }
        return -1;
    }
    int lo = 0, hi = v->n_tokens; /* first sorted entry >= s lies in [lo, hi] */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, id = vi->sorted[mid];
        if (compare_bytes(v->pieces[id], v->piece_lens[id], s, (int)len) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == v->n_tokens) return -1;
    int id = vi->sorted[lo];
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

/** Where encoded ids go (an array that grows), and why encoding stopped if it did. */
typedef struct {
    int *ids;
    int n;
    size_t cap;
    char *err;
    size_t err_len;
} IdSink;

/* What the calling thread's last vocab_encode() did (vocab_last_encode_counts). */
static _Thread_local EncodeCounts counts;

EncodeCounts vocab_last_encode_counts(void) { return counts; }

static LB_PRINTF(2, 3) void sink_error(IdSink *out, const char *fmt, ...) {
    if (!out->err || out->err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->err, out->err_len, fmt, ap);
    va_end(ap);
}

/** @p p with room for @p need elements of @p size bytes (*@p cap of them now): doubles. */
static void *grow(void *p, size_t *cap, size_t need, size_t size, const char *what) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c = c > SIZE_MAX / 2 ? need : 2 * c;
    p = realloc(p, checked_mul(c, size, what));
    if (!p) fatal("out of memory (%s: %zu entries)", what, c);
    *cap = c;
    return p;
}

static int emit(IdSink *out, int id) {
    if (out->n == INT_MAX) {
        sink_error(out, "the text gives more than %d tokens", INT_MAX);
        return 0;
    }
    out->ids = grow(out->ids, &out->cap, (size_t)out->n + 1, sizeof *out->ids, "token ids");
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

/** The symbols of one chunk of text and the candidate merges between them;
 * the buffers are kept from chunk to chunk. */
typedef struct {
    const VocabImpl *vi;
    int *id, *prev, *next; /* per symbol; id -1 = merged away */
    int n_sym;
    size_t sym_cap;
    Pair *heap;
    int n_heap;
    size_t heap_cap;
    char *scratch; /* concatenation of two pieces, max_piece_len bytes */
    BpeWork bpe;   /* the same for byte-level BPE (bpe.c) */
} Merger;

/* The heap's order: better score first, then the leftmost pair. */
static int pair_before(const Pair *a, const Pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(Merger *m, Pair p) {
    m->heap = grow(m->heap, &m->heap_cap, (size_t)m->n_heap + 1, sizeof *m->heap, "merge heap");
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

/** Merge the symbols gathered so far and emit what they became. */
static int flush_chunk(Merger *m, IdSink *out) {
    if (m->n_sym == 0) return 1;
    if ((size_t)m->n_sym > counts.largest_chunk) counts.largest_chunk = (size_t)m->n_sym;
    merge_all(m);
    int ok = 1;
    for (int s = 0; ok && s >= 0; s = m->next[s]) ok = emit(out, m->id[s]); /* symbol 0 is never merged away */
    m->n_sym = 0;
    return ok;
}

/** Whether some piece holds the last byte of piece @p a followed by the first of piece @p b. */
static int may_join(const VocabImpl *vi, int a, int b) {
    const Vocab *v = &vi->pub;
    unsigned char last = (unsigned char)v->pieces[a][v->piece_lens[a] - 1], first = (unsigned char)v->pieces[b][0];
    return vi->joins[last][first >> 3] >> (first & 7) & 1;
}

/** Append symbol @p id; where no merge can reach across, merge the chunk before it first. */
static int add_symbol(Merger *m, int id, IdSink *out) {
    if (m->n_sym > 0 && !may_join(m->vi, m->id[m->n_sym - 1], id) && !flush_chunk(m, out)) return 0;
    if ((size_t)m->n_sym == m->sym_cap) {
        if (m->n_sym >= INT_MAX / 4) { /* ids and heap sizes are ints */
            sink_error(out, "the text is too long (more than %d symbols to merge at once)", m->n_sym);
            return 0;
        }
        size_t need = m->sym_cap + 1, cap_id = m->sym_cap, cap_prev = m->sym_cap, cap_next = m->sym_cap;
        m->id = grow(m->id, &cap_id, need, sizeof *m->id, "text");
        m->prev = grow(m->prev, &cap_prev, need, sizeof *m->prev, "text");
        m->next = grow(m->next, &cap_next, need, sizeof *m->next, "text");
        m->sym_cap = cap_id;
    }
    int s = m->n_sym++;
    m->id[s] = id;
    m->prev[s] = s - 1;
    m->next[s] = -1;
    if (s > 0) m->next[s - 1] = s;
    return 1;
}

/** Encode @p len bytes of plain text (dummy prefix included) onto @p out: code
 * points (or their byte tokens) as the initial symbols, then the merges. */
static int encode_spm(Merger *m, const char *text, size_t len, IdSink *out) {
    if (len == 0) return 1;
    const Vocab *v = &m->vi->pub;
    int prefix = lookup_mergeable(m->vi, " ", 1); /* absent: skipped (llama2.c would emit id -1) */
    if (prefix >= 0 && !add_symbol(m, prefix, out)) return 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int n = 1;
        while (i + (size_t)n < len && n < 4 && is_continuation(s[i + (size_t)n])) n++;
        int id = lookup_mergeable(m->vi, text + i, (size_t)n);
        if (id >= 0) {
            if (!add_symbol(m, id, out)) return 0;
        } else {
            for (int k = 0; k < n; k++) {
                if (v->byte_token[s[i + (size_t)k]] < 0) {
                    report_unencodable(v, s + i, n, s[i + (size_t)k], out);
                    return 0;
                }
                if (!add_symbol(m, v->byte_token[s[i + (size_t)k]], out)) return 0;
            }
        }
        i += (size_t)n;
    }
    return flush_chunk(m, out);
}

static int emit_to_sink(void *sink, int id) { return emit(sink, id); }

/** Encode a stretch of text without special tokens, the vocabulary's way. */
static int encode_plain(Merger *m, const char *text, size_t len, IdSink *out) {
    if (!m->vi->bpe) return encode_spm(m, text, len, out);
    int ok = bpe_encode(m->vi->bpe, text, len, &m->bpe, emit_to_sink, out, out->err, out->err_len);
    if (m->bpe.largest_word > counts.largest_chunk) counts.largest_chunk = m->bpe.largest_word;
    return ok;
}

/** An occurrence of a special token: where it starts, and the special's rank
 * (its index in specials, so the claiming order). */
typedef struct {
    size_t start;
    int rank;
} Occurrence;

static int by_rank_then_start(const void *pa, const void *pb) {
    const Occurrence *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    return (a->start > b->start) - (a->start < b->start);
}

static int by_start(const void *pa, const void *pb) {
    const Occurrence *a = pa, *b = pb;
    return (a->start > b->start) - (a->start < b->start);
}

/** Occurrences that overlap one another (directly or through others), and the
 * text encoded so far. */
typedef struct {
    Occurrence *occ;
    size_t n, cap;
    size_t lo, end;         /* the group's bytes: [lo, end) */
    unsigned char *claimed; /* (end - lo) one per byte of the group: inside a claimed occurrence */
    size_t claimed_cap;
    size_t done;            /* the text before this is encoded */
} Group;

/** Claim a group's occurrences in the rule's order, then encode the text up to
 * its last claim: the plain stretches and the special tokens. */
static int claim_group(const VocabImpl *vi, const char *text, Group *g, Merger *m, IdSink *out) {
    const Vocab *v = &vi->pub;
    qsort(g->occ, g->n, sizeof *g->occ, by_rank_then_start);
    g->claimed = grow(g->claimed, &g->claimed_cap, g->end - g->lo, 1, "special tokens");
    memset(g->claimed, 0, g->end - g->lo);
    size_t kept = 0;
    for (size_t i = 0; i < g->n; i++) {
        size_t at = g->occ[i].start - g->lo, len = (size_t)v->piece_lens[vi->specials[g->occ[i].rank]];
        /* Every claim so far is at least this long: if it overlaps this
         * occurrence it covers the first or the last byte. */
        if (g->claimed[at] || g->claimed[at + len - 1]) continue;
        memset(g->claimed + at, 1, len);
        g->occ[kept++] = g->occ[i];
    }
    qsort(g->occ, kept, sizeof *g->occ, by_start);
    int ok = 1;
    for (size_t i = 0; ok && i < kept; i++) {
        int id = vi->specials[g->occ[i].rank];
        ok = encode_plain(m, text + g->done, g->occ[i].start - g->done, out) && emit(out, id);
        g->done = g->occ[i].start + (size_t)v->piece_lens[id];
    }
    g->n = 0;
    return ok;
}

/** llama.cpp's way: special tokens first (longest first), then the plain
 * stretches between them, each with its own dummy prefix: llama.cpp encodes
 * "<s>hello</s>" as BOS, " hello", EOS. One pass of the automaton finds the
 * occurrences (see @ref tok_special). */
static int encode_special(const VocabImpl *vi, const char *text, size_t len, Merger *m, IdSink *out) {
    const TrieNode *t = vi->trie;
    Group g = {0};
    unsigned long long steps = 0;
    int ok = 1, node = 0; /* node: the longest suffix of the text so far that begins some special */
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        for (;;) { /* shorter suffixes until one goes on with c */
            steps++;
            int next = trie_child(vi, node, c);
            if (next >= 0) {
                node = next;
                break;
            }
            if (node == 0) break;
            node = t[node].fail;
        }
        for (int hit = t[node].rank >= 0 ? node : t[node].dict; hit >= 0; hit = t[hit].dict) {
            steps++; /* a special ends at byte i */
            size_t start = i + 1 - (size_t)t[hit].depth;
            if (g.n == 0 || start < g.lo) g.lo = start;
            g.end = i + 1;
            g.occ = grow(g.occ, &g.cap, g.n + 1, sizeof *g.occ, "special tokens");
            g.occ[g.n++] = (Occurrence){start, t[hit].rank};
        }
        /* A later occurrence starts at i + 1 - depth or after: if that is past
         * the group's end, none can overlap it and the group is complete. */
        if (g.n > 0 && g.end + (size_t)t[node].depth <= i + 1) ok = claim_group(vi, text, &g, m, out);
    }
    if (ok && g.n > 0) ok = claim_group(vi, text, &g, m, out);
    if (ok) ok = encode_plain(m, text + g.done, len - g.done, out);
    counts.match_steps += steps;
    free(g.occ);
    free(g.claimed);
    return ok;
}

int *vocab_encode(const Vocab *v, const char *text, int add_bos, int *n_ids, char *err, size_t err_len) {
    const VocabImpl *vi = impl_of(v);
    IdSink sink = {NULL, 0, 0, err, err_len};
    Merger m = {.vi = vi};
    m.scratch = xmalloc((size_t)vi->max_piece_len + 1);
    counts = (EncodeCounts){0, 0};
    if (err && err_len) err[0] = '\0';
    size_t len = strlen(text);
    int ok = !(add_bos && v->add_bos && v->bos_id >= 0) || emit(&sink, v->bos_id);
    if (ok) ok = v->parse_special && vi->n_specials > 0 ? encode_special(vi, text, len, &m, &sink)
                                                        : encode_plain(&m, text, len, &sink);
    if (ok && add_bos && v->add_eos && v->eos_id >= 0) ok = emit(&sink, v->eos_id);
    bpe_work_free(&m.bpe);
    free(m.id);
    free(m.prev);
    free(m.next);
    free(m.heap);
    free(m.scratch);
    *n_ids = ok ? sink.n : 0;
    if (!ok) {
        free(sink.ids);
        return NULL;
    }
    if (!sink.ids) return xmalloc(sizeof(int)); /* no ids at all is still an array */
    int *ids = realloc(sink.ids, (size_t)sink.n * sizeof *ids); /* give back the slack */
    return ids ? ids : sink.ids;
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

/** Byte-level BPE: the bytes of an ordinary or user-defined token, nothing for the others
 * (llama.cpp's detokenizer without special tokens); no space is ever removed. */
static const char *decode_bpe(const VocabImpl *vi, int tok, int *len) {
    unsigned char kind = vi->piece_kind[tok];
    if (kind != PIECE_NORMAL && kind != PIECE_USER) {
        *len = 0;
        return "";
    }
    *len = vi->pub.piece_lens[tok];
    return vi->pub.pieces[tok];
}

const char *vocab_decode(const Vocab *v, int prev, int tok, int *len) {
    if (tok < 0 || tok >= v->n_tokens) {
        *len = 0;
        return "";
    }
    if (v->kind == VOCAB_BPE) return decode_bpe(impl_of(v), tok, len);
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

const char *vocab_piece_text(const Vocab *v, int tok, int *len) {
    const VocabImpl *vi = impl_of(v);
    *len = 0;
    if (tok < 0 || tok >= v->n_tokens) return "";
    unsigned char kind = vi->piece_kind ? vi->piece_kind[tok] : PIECE_NORMAL;
    int byte = byte_of_piece(v->pieces[tok], v->piece_lens[tok]);
    if (kind == PIECE_HIDDEN || (kind == PIECE_BYTE && v->kind == VOCAB_BPE)) return "";
    /* A byte token prints as its byte; so does "<0xNN>" in a llama2.c vocabulary, which has no types. */
    if (v->kind == VOCAB_SPM && byte >= 0 && (kind == PIECE_BYTE || !vi->piece_kind)) {
        *len = 1;
        return byte_strings[byte];
    }
    *len = v->piece_lens[tok];
    return v->pieces[tok];
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

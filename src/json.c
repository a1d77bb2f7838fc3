/**
 * @file json.c
 * @brief The strict JSON reader and the small writer of json.h (chapter 9's server).
 *
 * The reader is a recursive-descent parser over a byte range that is not NUL-terminated. Its
 * rules are RFC 8259's grammar and nothing looser, plus the limits a server needs: a nesting
 * depth of JSON_MAX_DEPTH (so recursion is bounded), no duplicate keys (two "model" keys would be
 * an ambiguity a client could exploit), strings that are valid UTF-8 with no NUL (so every string
 * is also a C string) and numbers that fit a double.
 *
 * Memory: every node and string goes into an arena, a list of large malloc'd blocks, so that a
 * document is freed in one call and a failed parse leaves nothing behind. An array's items must be
 * contiguous, but their count is only known at the closing bracket, so the parser first collects
 * them on a scratch stack (shared by all nesting levels) and copies them into the arena when the
 * array ends. What a document costs is proportional to its size: a string takes at most its own
 * bytes, a value one JsonValue.
 *
 * The writer appends to a Buf and makes anything it is given into valid JSON: strings are
 * escaped and their invalid UTF-8 replaced, non-finite numbers become null.
 */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------------ */
/* UTF-8, shared by the reader and the writer                               */

/**
 * Length of the valid UTF-8 sequence at @p s (at most @p n bytes available), or 0 when the bytes
 * there are not one: a stray continuation byte, a truncated sequence, an overlong form (C0, C1,
 * E0 80..9F, F0 80..8F), a UTF-16 surrogate (ED A0..BF) or a code point above U+10FFFF (F4 90..,
 * F5..FF). The second byte's range decides all of these, the later ones are plain continuations.
 */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

/** Write code point @p cp (<= U+10FFFF, not a surrogate) as UTF-8 into @p out; returns the bytes. */
static size_t utf8_encode(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------ */
/* The arena                                                                */

/** One block of the arena; the data follows, aligned for any type. */
typedef struct Block {
    struct Block *next;
    size_t used, cap;
    max_align_t data[];
} Block;

struct Json {
    JsonValue root;
    Block *blocks; /* the newest first */
};

enum { ARENA_BLOCK = 64 * 1024 };

static void *arena_alloc(Json *j, size_t n) {
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX - align - sizeof(Block)) fatal("json: allocation of %zu bytes overflows", n);
    n = (n + align - 1) / align * align;
    Block *b = j->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        Block *nb = xmalloc(sizeof(Block) + cap);
        nb->used = 0;
        nb->cap = cap;
        if (b && cap > ARENA_BLOCK) {
            /* a large string gets a block of its own behind the current one, whose room stays usable */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            j->blocks = nb;
        }
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

void json_free(Json *j) {
    if (!j) return;
    Block *b = j->blocks;
    while (b) {
        Block *next = b->next;
        free(b);
        b = next;
    }
    free(j);
}

const JsonValue *json_root(const Json *j) { return j ? &j->root : NULL; }

/** realloc() that ends the program through fatal() instead of returning NULL. */
static void *grow_array(void *p, size_t *cap, size_t need, size_t elem, const char *what) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2) fatal("%s: size overflows", what);
        n *= 2;
    }
    void *q = realloc(p, checked_mul(n, elem, what));
    if (!q) fatal("out of memory (%s of %zu items)", what, n);
    *cap = n;
    return q;
}

/* ------------------------------------------------------------------------ */
/* The reader                                                               */

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    Json *doc;
    JsonValue *vals; /* scratch: items of the arrays and objects being read, innermost last */
    size_t n_vals, cap_vals;
    const char **keys; /* scratch: keys of the objects being read */
    size_t *key_pos;   /* where each key began, for the duplicate message */
    size_t n_keys, cap_keys, cap_key_pos;
    char *err;
    size_t err_len;
} Parser;

/** Record the first error, "at byte N: ...", and return -1 so that callers can `return fail(...)`. */
static int fail(Parser *p, size_t at, const char *fmt, ...) LB_PRINTF(3, 4);
static int fail(Parser *p, size_t at, const char *fmt, ...) {
    if (p->err && p->err_len) {
        int k = snprintf(p->err, p->err_len, "at byte %zu: ", at);
        if (k >= 0 && (size_t)k < p->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->err_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/** Describe the byte at @p at for a message: 'x' when printable, else 0xNN. */
static const char *describe_byte(const Parser *p, size_t at, char out[16]) {
    unsigned char c = p->s[at];
    if (c >= 0x21 && c <= 0x7E) snprintf(out, 16, "'%c'", c);
    else snprintf(out, 16, "byte 0x%02X", c);
    return out;
}

static void skip_space(Parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/** The 4 hex digits after "\u" at @p at (which points at the 'u'), or -1. */
static long read_hex4(const Parser *p, size_t at) {
    long v = 0;
    for (size_t i = 1; i <= 4; i++) {
        if (at + i >= p->len) return -1;
        int h = hex_value(p->s[at + i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/** Decode one backslash escape at p->s[k] == '\\' into @p out; advances @p k past it. */
static int read_escape(Parser *p, size_t *k, char *out, size_t *n_out) {
    size_t at = *k;
    if (at + 1 >= p->len) return fail(p, at, "unterminated string");
    unsigned char e = p->s[at + 1];
    char simple = 0;
    switch (e) {
    case '"': simple = '"'; break;
    case '\\': simple = '\\'; break;
    case '/': simple = '/'; break;
    case 'b': simple = '\b'; break;
    case 'f': simple = '\f'; break;
    case 'n': simple = '\n'; break;
    case 'r': simple = '\r'; break;
    case 't': simple = '\t'; break;
    case 'u': break;
    default: {
        char d[16];
        return fail(p, at, "invalid escape: backslash followed by %s", describe_byte(p, at + 1, d));
    }
    }
    if (simple) {
        *out = simple;
        *n_out = 1;
        *k = at + 2;
        return 0;
    }
    long cp = read_hex4(p, at + 1);
    if (cp < 0) return fail(p, at, "\\u must be followed by 4 hex digits");
    size_t next = at + 6;
    if (cp == 0) return fail(p, at, "\\u0000 is not allowed (strings may not hold NUL)");
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, at, "lone low surrogate \\u%04lX", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* a high surrogate must be followed at once by an escaped low one */
        long lo = -1;
        if (next + 1 < p->len && p->s[next] == '\\' && p->s[next + 1] == 'u') lo = read_hex4(p, next + 1);
        if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, at, "lone high surrogate \\u%04lX (no low surrogate after it)", cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        next += 6;
    }
    *n_out = utf8_encode((unsigned)cp, out);
    *k = next;
    return 0;
}

/**
 * Read the string at p->pos (a '"') into the arena. The unescaped text is never longer than the
 * escaped one (every escape of n bytes decodes to at most n bytes), so one allocation of the raw
 * length is enough; the closing quote is found first by skipping escapes.
 */
static int parse_string(Parser *p, const char **out, size_t *out_len) {
    size_t start = p->pos, end = start + 1;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, start, "unterminated string");
    char *dst = arena_alloc(p->doc, end - start);
    size_t n = 0, k = start + 1;
    while (k < end) {
        unsigned char c = p->s[k];
        if (c == '\\') {
            size_t m = 0;
            if (read_escape(p, &k, dst + n, &m) != 0) return -1;
            n += m;
        } else if (c < 0x20) {
            return fail(p, k, "control character 0x%02X in a string (it must be escaped)", c);
        } else if (c < 0x80) {
            dst[n++] = (char)c;
            k++;
        } else {
            size_t m = utf8_sequence_length(p->s + k, end - k);
            if (m == 0) return fail(p, k, "invalid UTF-8 in a string");
            memcpy(dst + n, p->s + k, m);
            n += m;
            k += m;
        }
    }
    dst[n] = 0;
    *out = dst;
    *out_len = n;
    p->pos = end + 1;
    return 0;
}

/** The most characters a number may have: far more than any double needs, and strtod stays cheap. */
enum { JSON_MAX_NUMBER_CHARS = 1000 };

/** RFC 8259's number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, then strtod. */
static int parse_number(Parser *p, JsonValue *v) {
    size_t start = p->pos, k = start;
    if (k < p->len && p->s[k] == '-') k++;
    if (k >= p->len || !is_digit(p->s[k])) return fail(p, k, "expected a digit in a number");
    if (p->s[k] == '0') {
        k++;
        if (k < p->len && is_digit(p->s[k])) return fail(p, start, "leading zeros are not allowed in a number");
    } else {
        while (k < p->len && is_digit(p->s[k])) k++;
    }
    if (k < p->len && p->s[k] == '.') {
        k++;
        if (k >= p->len || !is_digit(p->s[k])) return fail(p, k, "expected a digit after the decimal point");
        while (k < p->len && is_digit(p->s[k])) k++;
    }
    if (k < p->len && (p->s[k] == 'e' || p->s[k] == 'E')) {
        k++;
        if (k < p->len && (p->s[k] == '+' || p->s[k] == '-')) k++;
        if (k >= p->len || !is_digit(p->s[k])) return fail(p, k, "expected a digit in the exponent");
        while (k < p->len && is_digit(p->s[k])) k++;
    }
    size_t n = k - start;
    if (n > JSON_MAX_NUMBER_CHARS) return fail(p, start, "number longer than %d characters", JSON_MAX_NUMBER_CHARS);
    char text[JSON_MAX_NUMBER_CHARS + 1];
    memcpy(text, p->s + start, n);
    text[n] = 0;
    double x = strtod(text, NULL);
    if (isinf(x)) return fail(p, start, "number out of range (too large for a double)");
    v->type = JSON_NUMBER;
    v->number = x;
    p->pos = k;
    return 0;
}

static int parse_value(Parser *p, JsonValue *v, int depth);

/** Copy the scratch values (and keys) from @p base on into the arena as @p v's items. */
static int close_container(Parser *p, JsonValue *v, size_t base, size_t key_base, size_t at) {
    size_t n = p->n_vals - base;
    if (n > (size_t)INT32_MAX) return fail(p, at, "too many items");
    v->n = (int)n;
    v->items = NULL;
    if (n) {
        v->items = arena_alloc(p->doc, checked_mul(n, sizeof(JsonValue), "json items"));
        memcpy(v->items, p->vals + base, n * sizeof(JsonValue));
    }
    p->n_vals = base;
    if (v->type == JSON_OBJECT) {
        v->keys = NULL;
        if (n) {
            v->keys = arena_alloc(p->doc, checked_mul(n, sizeof(char *), "json keys"));
            memcpy(v->keys, p->keys + key_base, n * sizeof(char *));
        }
        p->n_keys = key_base;
    }
    return 0;
}

static int push_value(Parser *p, const JsonValue *v) {
    p->vals = grow_array(p->vals, &p->cap_vals, p->n_vals + 1, sizeof(JsonValue), "json values");
    p->vals[p->n_vals++] = *v;
    return 0;
}

static int parse_array(Parser *p, JsonValue *v, int depth) {
    size_t open = p->pos, base = p->n_vals;
    p->pos++; /* '[' */
    v->type = JSON_ARRAY;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return close_container(p, v, base, 0, open);
    }
    for (;;) {
        JsonValue item;
        if (parse_value(p, &item, depth) != 0) return -1;
        push_value(p, &item);
        skip_space(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated array (expected ',' or ']')");
        unsigned char c = p->s[p->pos];
        if (c == ']') {
            p->pos++;
            return close_container(p, v, base, 0, open);
        }
        if (c != ',') {
            char d[16];
            return fail(p, p->pos, "expected ',' or ']' in an array, found %s", describe_byte(p, p->pos, d));
        }
        p->pos++;
    }
}

/** A key and its place in the object, sorted by text and then place to find repeats. */
typedef struct {
    const char *key;
    size_t index;
} KeyRef;

static int compare_key_refs(const void *a, const void *b) {
    const KeyRef *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/**
 * Refuse an object whose keys [key_base, n_keys) repeat one. Small objects (every request the
 * server expects) compare each pair; large ones sort indices, so that a hostile object with many
 * keys costs n log n, not n squared.
 */
static int check_duplicate_keys(Parser *p, size_t key_base) {
    const char **keys = p->keys + key_base;
    size_t n = p->n_keys - key_base, dup = SIZE_MAX;
    if (n <= 16) {
        for (size_t i = 1; i < n && dup == SIZE_MAX; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(keys[i], keys[j]) == 0) {
                    dup = i;
                    break;
                }
    } else {
        KeyRef *refs = xmalloc(checked_mul(n, sizeof(KeyRef), "json key index"));
        for (size_t i = 0; i < n; i++) refs[i] = (KeyRef){keys[i], i};
        qsort(refs, n, sizeof(KeyRef), compare_key_refs);
        for (size_t i = 1; i < n; i++)
            if (strcmp(refs[i].key, refs[i - 1].key) == 0 && (dup == SIZE_MAX || refs[i].index < dup)) dup = refs[i].index;
        free(refs);
    }
    if (dup == SIZE_MAX) return 0;
    return fail(p, p->key_pos[key_base + dup], "duplicate key \"%.40s\"", keys[dup]);
}

static int parse_object(Parser *p, JsonValue *v, int depth) {
    size_t open = p->pos, base = p->n_vals, key_base = p->n_keys;
    p->pos++; /* '{' */
    v->type = JSON_OBJECT;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return close_container(p, v, base, key_base, open);
    }
    for (;;) {
        skip_space(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated object (expected a key)");
        if (p->s[p->pos] != '"') {
            char d[16];
            return fail(p, p->pos, "expected a string key in an object, found %s", describe_byte(p, p->pos, d));
        }
        size_t key_at = p->pos, key_len;
        const char *key;
        if (parse_string(p, &key, &key_len) != 0) return -1;
        skip_space(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, p->pos, "expected ':' after an object key");
        p->pos++;
        JsonValue item;
        if (parse_value(p, &item, depth) != 0) return -1;
        push_value(p, &item);
        p->keys = grow_array(p->keys, &p->cap_keys, p->n_keys + 1, sizeof(char *), "json keys");
        p->key_pos = grow_array(p->key_pos, &p->cap_key_pos, p->n_keys + 1, sizeof(size_t), "json keys");
        p->keys[p->n_keys] = key;
        p->key_pos[p->n_keys++] = key_at;
        skip_space(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated object (expected ',' or '}')");
        unsigned char c = p->s[p->pos];
        if (c == '}') {
            p->pos++;
            if (check_duplicate_keys(p, key_base) != 0) return -1;
            return close_container(p, v, base, key_base, open);
        }
        if (c != ',') {
            char d[16];
            return fail(p, p->pos, "expected ',' or '}' in an object, found %s", describe_byte(p, p->pos, d));
        }
        p->pos++;
    }
}

static int parse_literal(Parser *p, const char *word, JsonType type, JsonValue *v) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        char d[16];
        return fail(p, p->pos, "unexpected %s (expected a value)", describe_byte(p, p->pos, d));
    }
    v->type = type;
    p->pos += n;
    return 0;
}

/** One value at p->pos (after optional whitespace); @p depth counts the containers around it. */
static int parse_value(Parser *p, JsonValue *v, int depth) {
    memset(v, 0, sizeof *v);
    skip_space(p);
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input (expected a value)");
    unsigned char c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        return c == '{' ? parse_object(p, v, depth + 1) : parse_array(p, v, depth + 1);
    case '"': {
        v->type = JSON_STRING;
        return parse_string(p, &v->string, &v->length);
    }
    case 't': return parse_literal(p, "true", JSON_TRUE, v);
    case 'f': return parse_literal(p, "false", JSON_FALSE, v);
    case 'n': return parse_literal(p, "null", JSON_NULL, v);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, v);
        char d[16];
        return fail(p, p->pos, "unexpected %s (expected a value)", describe_byte(p, p->pos, d));
    }
}

Json *json_parse(const char *text, size_t len, char *err, size_t err_len) {
    Parser p = {.s = (const unsigned char *)text, .len = len, .err = err, .err_len = err_len};
    if (err && err_len) err[0] = 0;
    p.doc = xcalloc(1, sizeof(Json));
    int rc;
    skip_space(&p);
    if (p.pos >= len) rc = fail(&p, p.pos, len ? "no value, only whitespace" : "empty input");
    else rc = parse_value(&p, &p.doc->root, 0);
    if (rc == 0) {
        skip_space(&p);
        if (p.pos < len) {
            char d[16];
            rc = fail(&p, p.pos, "unexpected %s after the JSON value", describe_byte(&p, p.pos, d));
        }
    }
    free(p.vals);
    free(p.keys);
    free(p.key_pos);
    if (rc != 0) {
        json_free(p.doc);
        return NULL;
    }
    return p.doc;
}

const JsonValue *json_get(const JsonValue *v, const char *key) {
    if (!v || v->type != JSON_OBJECT || !key) return NULL;
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0) return &v->items[i];
    return NULL;
}

const char *json_type_name(JsonType t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_FALSE:
    case JSON_TRUE: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Buf                                                                      */

/* A Buf that is all zeros (never initialised) works too: data is NULL until the first append. */

void buf_init(Buf *b) {
    b->cap = 64;
    b->data = xmalloc(b->cap);
    b->data[0] = 0;
    b->len = 0;
}

void buf_free(Buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_clear(Buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

/** Make room for @p extra more bytes and the NUL after them. */
static void buf_reserve(Buf *b, size_t extra) {
    if (extra > SIZE_MAX - 1 - b->len) fatal("buffer size overflows");
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = realloc(b->data, cap);
    if (!d) fatal("out of memory (a buffer of %zu bytes)", cap);
    b->data = d;
    b->cap = cap;
}

void buf_add(Buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_adds(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    buf_reserve(b, 0);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) fatal("buf_printf: bad format");
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

/* ------------------------------------------------------------------------ */
/* The writer                                                               */

void json_write_string(Buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    buf_reserve(b, n + 2);
    buf_add(b, "\"", 1);
    size_t run = 0; /* start of the bytes that are copied as they are */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t m = 1;
        const char *esc = NULL;
        char tmp[6];
        if (c >= 0x80) {
            m = utf8_sequence_length(u + i, n - i);
            if (m) {
                i += m;
                continue;
            }
            m = 1;
            esc = "\xEF\xBF\xBD"; /* U+FFFD, the replacement character */
        } else if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\t') esc = "\\t";
        else if (c == '\r') esc = "\\r";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) {
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 15];
        } else {
            i++;
            continue;
        }
        buf_add(b, u + run, i - run);
        if (esc) buf_adds(b, esc);
        else buf_add(b, tmp, 6);
        i += m;
        run = i;
    }
    buf_add(b, u + run, n - run);
    buf_add(b, "\"", 1);
}

void json_write_number(Buf *b, double x) {
    if (isnan(x) || isinf(x)) {
        buf_adds(b, "null");
        return;
    }
    if (x == floor(x) && fabs(x) < 9007199254740992.0) { /* 2^53: every such integer is exact */
        buf_printf(b, "%.0f", x);
        return;
    }
    /* the shortest of 15, 16 and 17 significant digits that reads back as the same double */
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (digits == 17 || strtod(text, NULL) == x) break;
    }
    buf_adds(b, text);
}

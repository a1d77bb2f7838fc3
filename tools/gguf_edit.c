/**
 * @file gguf_edit.c
 * @brief Copy a GGUF file while changing its metadata or its tensor
 * directory: the maker of the bad (and the harmlessly different) files that
 * the loader's refusal tests need.
 *
 *     build/gguf_edit IN.gguf OUT.gguf [EDIT...]
 *     build/gguf_edit --list IN.gguf
 *
 * Edits, applied in the order given, each to the result of the ones before
 * (so `--drop-key K --set-u32 K 3` moves K to the end with a new value):
 *
 *     --set-str KEY VALUE         KEY becomes the string VALUE
 *     --set-u32 KEY N             KEY becomes the u32 N (0 .. 4294967295)
 *     --set-f32 KEY X             KEY becomes the f32 X (any finite number)
 *     --set-bool KEY 0|1          KEY becomes the bool 0 or 1
 *     --drop-key KEY              KEY is removed
 *     --rename-key OLD NEW        key OLD is called NEW (value and place kept)
 *     --rename-prefix OLD NEW     every key that starts with OLD starts with NEW
 *                                 instead ("qwen2." "llama.": a family's keys)
 *     --drop-tensor NAME          tensor NAME and its data are removed
 *     --rename-tensor OLD NEW     tensor OLD is called NEW (data kept)
 *     --add-f32-tensor NAME SHAPE VALUE
 *                                 a new F32 tensor of SHAPE = N0[xN1[xN2[xN3]]]
 *                                 elements (ne[0] first, as ggml counts), every
 *                                 one VALUE, after the others
 *     --set-type NAME TYPEID      tensor NAME's type id becomes TYPEID (a ggml
 *                                 id the reader knows, e.g. 16 = iq2_xxs)
 *
 * A --set-* of a key that exists replaces its value (and its type: a u32 key
 * set with --set-str becomes a string) where it stands; of a new key, appends
 * it. A key or tensor to drop or rename must exist, and a new name must be
 * free. --list prints the file's keys (type and value; arrays as their element
 * type and count) and tensors (type, shape, offset), one a line.
 *
 * What it writes. Always a GGUF version 3 file laid out as llama.cpp's own
 * writer lays one out: header, metadata pairs, tensor directory, zeros up to
 * the alignment (general.alignment of the edited metadata, else 32), then each
 * tensor's data followed by zeros up to the alignment (a file without tensors
 * ends after its directory). Metadata pairs that no
 * edit touched, arrays included, are copied byte for byte from the input's
 * buffer; tensor data too. The data keeps the order it has in the input (new
 * tensors last), and each tensor's offset is recomputed. So a file written
 * that way (every llama.cpp file, tests/t_ch08_refuse.sh checks the shared
 * ones) comes back byte for byte when no edit is given.
 *
 * --set-type keeps the file well-formed, not the tensor meaningful: the
 * directory entry gets the new type, and the tensor's data is resized to the
 * new type's size (cut, or padded with zero bytes), so the reader still
 * accepts the file; the values are garbage. It is meant for "type not
 * supported" tests, which must refuse before any value is read. The row
 * length ne[0] must be a multiple of the new type's block.
 *
 * Bad input (an unreadable or malformed input, an unknown option, a missing
 * key or tensor, a name taken, a bad number): one `error:` line naming the
 * option or the file, exit status 1, and no output file: every edit is checked
 * before OUT is created, and OUT appears complete or not at all (util.h's
 * OutputFile). Cost: the input is mapped, not read; the output is written in
 * one pass, so memory stays at the size of the directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "util.h"

/* ======================================================================== */
/* The file being edited                                                    */
/* ======================================================================== */

/**
 * One metadata pair as it will be written: the key, the value type, and the
 * bytes that follow the type in the file (a string's u64 length and text; an
 * array's element type, count and elements; a scalar's bytes).
 */
typedef struct {
    char *key;          // the key bytes (malloc'd, NUL added for messages)
    size_t key_len;
    uint32_t type;      // GGUF_U8 .. GGUF_F64
    const uint8_t *enc; // the encoded value: in the input's buffer, or == owned
    size_t enc_len;
    uint8_t *owned;     // an edited value's encoding (malloc'd), or NULL
} Kv;

/** One tensor as it will be written. */
typedef struct {
    char name[GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t n_bytes;    // its size under @c type
    const uint8_t *src;  // its data in the input (NULL: a new tensor, filled with @c fill)
    uint64_t src_bytes;  // bytes available at @c src (its size under the input's type)
    uint64_t src_offset; // its offset in the input: the data keeps the input's order
    float fill;          // a new tensor's value
    uint64_t offset;     // its offset in the output's data section
} Tensor;

typedef struct {
    Kv *kv;
    size_t n_kv, cap_kv;
    Tensor *t;
    size_t n_t, cap_t;
} Edit;

static void *grow_array(void *p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(p, checked_mul(n, size, "gguf_edit's tables"));
    if (!q) fatal("out of memory");
    *cap = n;
    return q;
}

static char *copy_bytes(const char *s, size_t len) {
    char *c = xmalloc(len + 1);
    memcpy(c, s, len);
    c[len] = 0;
    return c;
}

/** The input's pairs and tensors, pointing into its buffer. */
static void load(Edit *e, const GgufFile *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const GgufKV *s = &g->kv[i];
        /* the reader points at the text of a string and at the first element
         * of an array; their headers (u64 length; u32 type + u64 count) come
         * just before */
        size_t head = s->type == GGUF_STRING ? 8 : s->type == GGUF_ARRAY ? 12 : 0;
        e->kv = grow_array(e->kv, &e->cap_kv, e->n_kv + 1, sizeof(Kv));
        e->kv[e->n_kv++] = (Kv){copy_bytes(s->key, s->key_len), s->key_len, s->type, s->value - head,
                                (size_t)s->value_len + head, NULL};
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *s = &g->tensors[i];
        e->t = grow_array(e->t, &e->cap_t, e->n_t + 1, sizeof(Tensor));
        Tensor *t = &e->t[e->n_t++];
        memset(t, 0, sizeof *t);
        memcpy(t->name, s->name, sizeof t->name);
        t->n_dims = s->n_dims;
        memcpy(t->ne, s->ne, sizeof t->ne);
        t->type = s->type;
        t->n_bytes = t->src_bytes = s->n_bytes;
        t->src = s->data;
        t->src_offset = s->offset;
    }
}

static void free_edit(Edit *e) {
    for (size_t i = 0; i < e->n_kv; i++) {
        free(e->kv[i].key);
        free(e->kv[i].owned);
    }
    free(e->kv);
    free(e->t);
}

/* ======================================================================== */
/* Edits of the metadata                                                    */
/* ======================================================================== */

static Kv *find_kv(Edit *e, const char *key) {
    size_t len = strlen(key);
    for (size_t i = 0; i < e->n_kv; i++)
        if (e->kv[i].key_len == len && memcmp(e->kv[i].key, key, len) == 0) return &e->kv[i];
    return NULL;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/** Give @p key (new or not) the value of @p type encoded in @p enc (taken over). */
static void set_value(Edit *e, const char *opt, const char *key, uint32_t type, uint8_t *enc, size_t enc_len) {
    if (!*key) fatal("%s: the key is empty", opt);
    Kv *kv = find_kv(e, key);
    if (!kv) {
        e->kv = grow_array(e->kv, &e->cap_kv, e->n_kv + 1, sizeof(Kv));
        kv = &e->kv[e->n_kv++];
        *kv = (Kv){copy_bytes(key, strlen(key)), strlen(key), 0, NULL, 0, NULL};
    }
    free(kv->owned);
    kv->type = type;
    kv->enc = kv->owned = enc;
    kv->enc_len = enc_len;
}

static void set_str(Edit *e, const char *key, const char *value) {
    size_t n = strlen(value);
    uint8_t *enc = xmalloc(8 + n);
    put_le(enc, n, 8);
    memcpy(enc + 8, value, n);
    set_value(e, "--set-str", key, GGUF_STRING, enc, 8 + n);
}

static void set_u32(Edit *e, const char *key, const char *text) {
    long v;
    if (parse_long(text, &v) != 0 || v < 0 || v > (long)UINT32_MAX)
        fatal("--set-u32 %s %s: expected a whole number from 0 to 4294967295", key, text);
    uint8_t *enc = xmalloc(4);
    put_le(enc, (uint64_t)v, 4);
    set_value(e, "--set-u32", key, GGUF_U32, enc, 4);
}

static void set_f32(Edit *e, const char *key, const char *text) {
    float f;
    if (parse_float(text, &f) != 0) fatal("--set-f32 %s %s: expected a finite number", key, text);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint8_t *enc = xmalloc(4);
    put_le(enc, bits, 4);
    set_value(e, "--set-f32", key, GGUF_F32, enc, 4);
}

static void set_bool(Edit *e, const char *key, const char *text) {
    if (strcmp(text, "0") != 0 && strcmp(text, "1") != 0) fatal("--set-bool %s %s: expected 0 or 1", key, text);
    uint8_t *enc = xmalloc(1);
    enc[0] = (uint8_t)(text[0] - '0');
    set_value(e, "--set-bool", key, GGUF_BOOL, enc, 1);
}

static void drop_key(Edit *e, const char *key) {
    Kv *kv = find_kv(e, key);
    if (!kv) fatal("--drop-key %s: the file has no such key", key);
    free(kv->key);
    free(kv->owned);
    size_t i = (size_t)(kv - e->kv);
    memmove(kv, kv + 1, (e->n_kv - i - 1) * sizeof(Kv));
    e->n_kv--;
}

static void rename_kv(Kv *kv, const char *name, size_t len) {
    free(kv->key);
    kv->key = copy_bytes(name, len);
    kv->key_len = len;
}

static void rename_key(Edit *e, const char *old, const char *new_key) {
    Kv *kv = find_kv(e, old);
    if (!kv) fatal("--rename-key %s %s: the file has no key %s", old, new_key, old);
    if (!*new_key) fatal("--rename-key %s: the new key is empty", old);
    if (strcmp(old, new_key) != 0 && find_kv(e, new_key))
        fatal("--rename-key %s %s: the file already has a key %s", old, new_key, new_key);
    rename_kv(kv, new_key, strlen(new_key));
}

/** Every key that starts with @p old starts with @p new_prefix instead. */
static void rename_prefix(Edit *e, const char *old, const char *new_prefix) {
    size_t lo = strlen(old), ln = strlen(new_prefix);
    if (!lo) fatal("--rename-prefix: the old prefix is empty");
    size_t renamed = 0;
    for (size_t i = 0; i < e->n_kv; i++) {
        Kv *kv = &e->kv[i];
        if (kv->key_len < lo || memcmp(kv->key, old, lo) != 0) continue;
        size_t len = kv->key_len - lo + ln;
        if (len == 0) fatal("--rename-prefix %s %s: key %s would become empty", old, new_prefix, kv->key);
        char *name = xmalloc(len + 1);
        memcpy(name, new_prefix, ln);
        memcpy(name + ln, kv->key + lo, kv->key_len - lo);
        name[len] = 0;
        rename_kv(kv, name, len);
        free(name);
        renamed++;
    }
    if (!renamed) fatal("--rename-prefix %s %s: no key starts with %s", old, new_prefix, old);
    /* two keys may now have one name (x.a and y.a renamed to y.): refuse, as the reader would */
    for (size_t i = 0; i < e->n_kv; i++)
        for (size_t j = i + 1; j < e->n_kv; j++)
            if (e->kv[i].key_len == e->kv[j].key_len && memcmp(e->kv[i].key, e->kv[j].key, e->kv[i].key_len) == 0)
                fatal("--rename-prefix %s %s: two keys would be called %s", old, new_prefix, e->kv[i].key);
}

/* ======================================================================== */
/* Edits of the tensors                                                     */
/* ======================================================================== */

static Tensor *find_t(Edit *e, const char *name) {
    for (size_t i = 0; i < e->n_t; i++)
        if (strcmp(e->t[i].name, name) == 0) return &e->t[i];
    return NULL;
}

/** fatal() unless @p name can name a new tensor. */
static void check_new_name(Edit *e, const char *opt, const char *name) {
    size_t len = strlen(name);
    if (len == 0) fatal("%s: the tensor name is empty", opt);
    if (len > GGUF_MAX_NAME) fatal("%s %s: a tensor name has at most %d bytes", opt, name, GGUF_MAX_NAME);
    if (find_t(e, name)) fatal("%s %s: the file already has a tensor of that name", opt, name);
}

static Tensor *need_t(Edit *e, const char *opt, const char *name) {
    Tensor *t = find_t(e, name);
    if (!t) fatal("%s %s: the file has no such tensor", opt, name);
    return t;
}

static void drop_tensor(Edit *e, const char *name) {
    Tensor *t = need_t(e, "--drop-tensor", name);
    size_t i = (size_t)(t - e->t);
    memmove(t, t + 1, (e->n_t - i - 1) * sizeof(Tensor));
    e->n_t--;
}

static void rename_tensor(Edit *e, const char *old, const char *new_name) {
    Tensor *t = need_t(e, "--rename-tensor", old);
    if (strcmp(old, new_name) == 0) return;
    check_new_name(e, "--rename-tensor", new_name);
    snprintf(t->name, sizeof t->name, "%s", new_name);
}

/** Bytes of @p n_elements of @p type with row length @p ne0; fatal() naming @p what if impossible. */
static uint64_t tensor_bytes(const char *what, uint32_t type, uint64_t ne0, uint64_t n_elements) {
    uint32_t be, bb;
    if (!gguf_tensor_type_size(type, &be, &bb)) fatal("%s: type id %u is not one the GGUF reader knows", what, type);
    if (ne0 % be)
        fatal("%s: row length %llu is not a multiple of the %u-element blocks of type %s", what,
              (unsigned long long)ne0, be, gguf_tensor_type_name(type));
    uint64_t blocks = n_elements / be;
    if (blocks > UINT64_MAX / bb) fatal("%s: the tensor's byte size overflows", what);
    return blocks * bb;
}

/** "N0[xN1[xN2[xN3]]]" into @p ne; returns the number of dimensions. */
static uint32_t parse_shape(const char *text, uint64_t ne[GGUF_MAX_DIMS], uint64_t *n_elements) {
    uint32_t n = 0;
    uint64_t total = 1;
    const char *p = text;
    for (;;) {
        char *end;
        if (n == GGUF_MAX_DIMS || *p < '0' || *p > '9') break;
        unsigned long long v = strtoull(p, &end, 10);
        if (v == 0 || v > (uint64_t)INT64_MAX / total) break;
        ne[n++] = v;
        total *= v;
        if (*end == 0) {
            for (uint32_t d = n; d < GGUF_MAX_DIMS; d++) ne[d] = 1;
            *n_elements = total;
            return n;
        }
        if (*end != 'x') break;
        p = end + 1;
    }
    fatal("--add-f32-tensor: shape %s: expected N0[xN1[xN2[xN3]]], positive whole numbers", text);
}

static void add_f32_tensor(Edit *e, const char *name, const char *shape, const char *value) {
    check_new_name(e, "--add-f32-tensor", name);
    Tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    uint64_t n_elements;
    t.n_dims = parse_shape(shape, t.ne, &n_elements);
    t.type = GGML_F32;
    if (parse_float(value, &t.fill) != 0) fatal("--add-f32-tensor %s %s %s: expected a finite number", name, shape, value);
    t.n_bytes = tensor_bytes("--add-f32-tensor", GGML_F32, t.ne[0], n_elements);
    t.src_offset = UINT64_MAX; /* after every tensor of the input */
    e->t = grow_array(e->t, &e->cap_t, e->n_t + 1, sizeof(Tensor));
    e->t[e->n_t++] = t;
}

static void set_type(Edit *e, const char *name, const char *text) {
    Tensor *t = need_t(e, "--set-type", name);
    long id;
    if (parse_long(text, &id) != 0 || id < 0 || id > (long)UINT32_MAX)
        fatal("--set-type %s %s: expected a ggml type id (a whole number)", name, text);
    char what[GGUF_MAX_NAME + 64];
    snprintf(what, sizeof what, "--set-type %s %s", name, text);
    uint64_t n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* the reader checked it fits */
    t->n_bytes = tensor_bytes(what, (uint32_t)id, t->ne[0], n_elements);
    t->type = (uint32_t)id;
}

/* ======================================================================== */
/* Writing                                                                  */
/* ======================================================================== */

typedef struct {
    OutputFile file;
    uint64_t pos;
} Out;

static void out_bytes(Out *o, const void *p, size_t n) {
    output_write(&o->file, p, n);
    o->pos += n;
}

static void out_le(Out *o, uint64_t v, int n) {
    uint8_t b[8];
    put_le(b, v, n);
    out_bytes(o, b, (size_t)n);
}

static void out_zeros(Out *o, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        out_bytes(o, zeros, k);
        n -= k;
    }
}

static uint64_t padding(uint64_t pos, uint32_t alignment) { return (alignment - pos % alignment) % alignment; }

/** The alignment the edited metadata asks for. */
static uint32_t output_alignment(Edit *e) {
    Kv *kv = find_kv(e, "general.alignment");
    if (!kv) return GGUF_DEFAULT_ALIGNMENT;
    if (kv->type != GGUF_U32) fatal("general.alignment must be a u32 (use --set-u32)");
    uint32_t a = (uint32_t)kv->enc[0] | (uint32_t)kv->enc[1] << 8 | (uint32_t)kv->enc[2] << 16 |
                 (uint32_t)kv->enc[3] << 24;
    if (a == 0 || (a & (a - 1))) fatal("general.alignment %u is not a power of two", a);
    return a;
}

/** The input's data order; new tensors (offset UINT64_MAX) last, in the order they were added. */
static int by_source_offset(const void *x, const void *y) {
    const Tensor *a = *(const Tensor *const *)x, *b = *(const Tensor *const *)y;
    if (a->src_offset != b->src_offset) return a->src_offset < b->src_offset ? -1 : 1;
    return a < b ? -1 : a > b; /* both in e->t: its order is the order they were added */
}

/** The tensors in the order their data is written, with their new offsets set. */
static Tensor **plan_data(Edit *e, uint32_t alignment) {
    Tensor **order = xmalloc(sizeof(Tensor *) * (e->n_t ? e->n_t : 1));
    for (size_t i = 0; i < e->n_t; i++) order[i] = &e->t[i];
    qsort(order, e->n_t, sizeof(Tensor *), by_source_offset);
    uint64_t pos = 0;
    for (size_t i = 0; i < e->n_t; i++) {
        order[i]->offset = pos;
        if (order[i]->n_bytes > UINT64_MAX - pos - alignment) fatal("the output would be too large");
        pos += order[i]->n_bytes;
        pos += padding(pos, alignment);
    }
    return order;
}

static void write_tensor_data(Out *o, const Tensor *t) {
    if (!t->src) {
        uint8_t block[4096];
        for (size_t i = 0; i < sizeof block; i += 4) memcpy(block + i, &t->fill, 4);
        for (uint64_t left = t->n_bytes; left;) {
            size_t k = left < sizeof block ? (size_t)left : sizeof block;
            out_bytes(o, block, k);
            left -= k;
        }
        return;
    }
    uint64_t kept = t->src_bytes < t->n_bytes ? t->src_bytes : t->n_bytes;
    out_bytes(o, t->src, (size_t)kept);
    out_zeros(o, t->n_bytes - kept); /* --set-type to a larger type */
}

static void write_gguf(Edit *e, const char *path) {
    uint32_t alignment = output_alignment(e);
    Tensor **order = plan_data(e, alignment);
    Out o = {output_create(path), 0};
    out_bytes(&o, "GGUF", 4);
    out_le(&o, 3, 4);
    out_le(&o, e->n_t, 8);
    out_le(&o, e->n_kv, 8);
    for (size_t i = 0; i < e->n_kv; i++) {
        const Kv *kv = &e->kv[i];
        out_le(&o, kv->key_len, 8);
        out_bytes(&o, kv->key, kv->key_len);
        out_le(&o, kv->type, 4);
        out_bytes(&o, kv->enc, kv->enc_len);
    }
    for (size_t i = 0; i < e->n_t; i++) {
        const Tensor *t = &e->t[i];
        out_le(&o, strlen(t->name), 8);
        out_bytes(&o, t->name, strlen(t->name));
        out_le(&o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) out_le(&o, t->ne[d], 8);
        out_le(&o, t->type, 4);
        out_le(&o, t->offset, 8);
    }
    /* The data section starts aligned, as llama.cpp writes it; a file without
     * tensors (a vocabulary) ends with its directory, as llama.cpp's are. */
    if (e->n_t) out_zeros(&o, padding(o.pos, alignment));
    uint64_t start = o.pos;
    for (size_t i = 0; i < e->n_t; i++) {
        write_tensor_data(&o, order[i]);
        out_zeros(&o, padding(o.pos - start, alignment));
    }
    output_commit(&o.file);
    free(order);
}

/* ======================================================================== */
/* --list                                                                   */
/* ======================================================================== */

static uint64_t le_at(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void print_value(const GgufKV *kv) {
    const uint8_t *v = kv->value;
    switch (kv->type) {
    case GGUF_U8: case GGUF_BOOL: printf("%u", v[0]); break;
    case GGUF_I8: printf("%d", (int8_t)v[0]); break;
    case GGUF_U16: printf("%u", (unsigned)le_at(v, 2)); break;
    case GGUF_I16: printf("%d", (int16_t)le_at(v, 2)); break;
    case GGUF_U32: printf("%u", (uint32_t)le_at(v, 4)); break;
    case GGUF_I32: printf("%d", (int32_t)le_at(v, 4)); break;
    case GGUF_U64: printf("%llu", (unsigned long long)le_at(v, 8)); break;
    case GGUF_I64: printf("%lld", (long long)(int64_t)le_at(v, 8)); break;
    case GGUF_F32: { uint32_t b = (uint32_t)le_at(v, 4); float f; memcpy(&f, &b, 4); printf("%.9g", f); break; }
    case GGUF_F64: { uint64_t b = le_at(v, 8); double f; memcpy(&f, &b, 8); printf("%.17g", f); break; }
    case GGUF_STRING: {
        /* shortened, and every byte that is not printable ASCII as \xNN: one line per key */
        size_t n = kv->value_len < 60 ? (size_t)kv->value_len : 60;
        putchar('"');
        for (size_t i = 0; i < n; i++) {
            if (v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\') putchar(v[i]);
            else printf("\\x%02x", v[i]);
        }
        printf(kv->value_len > 60 ? "\"..." : "\"");
        break;
    }
    case GGUF_ARRAY: printf("[%llu %s]", (unsigned long long)kv->count, gguf_value_type_name(kv->elem_type)); break;
    }
}

static void list(const GgufFile *g) {
    printf("GGUF version %u, %llu keys, %llu tensors, alignment %u, data at byte %llu\n", g->version,
           (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->alignment,
           (unsigned long long)g->data_offset);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const GgufKV *kv = &g->kv[i];
        printf("key %.*s %s ", (int)kv->key_len, kv->key, gguf_value_type_name(kv->type));
        print_value(kv);
        putchar('\n');
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        printf("tensor %s %s ", t->name, gguf_tensor_type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%llu", d ? "x" : "", (unsigned long long)t->ne[d]);
        printf(" at %llu\n", (unsigned long long)t->offset);
    }
}

/* ======================================================================== */
/* The command line                                                         */
/* ======================================================================== */

static void usage(FILE *f) {
    fprintf(f,
            "usage: gguf_edit IN.gguf OUT.gguf [EDIT...]   copy IN to OUT (GGUF v3), changed by the edits, in order\n"
            "       gguf_edit --list IN.gguf               print IN's keys and tensors\n"
            "edits:\n"
            "  --set-str KEY VALUE       KEY becomes the string VALUE (replaced in place, or appended)\n"
            "  --set-u32 KEY N           KEY becomes the u32 N\n"
            "  --set-f32 KEY X           KEY becomes the f32 X\n"
            "  --set-bool KEY 0|1        KEY becomes the bool 0 or 1\n"
            "  --drop-key KEY            remove KEY\n"
            "  --rename-key OLD NEW      rename key OLD to NEW (value and place kept)\n"
            "  --rename-prefix OLD NEW   every key starting with OLD starts with NEW instead\n"
            "  --drop-tensor NAME        remove tensor NAME and its data\n"
            "  --rename-tensor OLD NEW   rename tensor OLD to NEW\n"
            "  --add-f32-tensor NAME N0[xN1[xN2[xN3]]] VALUE\n"
            "                            append an F32 tensor of that shape, every element VALUE\n"
            "  --set-type NAME TYPEID    retype tensor NAME (a ggml type id the reader knows, e.g. 16 =\n"
            "                            iq2_xxs); its data is cut or zero-padded to the new size: a\n"
            "                            well-formed file with meaningless values, for refusal tests\n"
            "Unedited keys, arrays included, and tensor data are copied byte for byte; with no edits a\n"
            "file laid out as llama.cpp writes one comes back identical. Errors: one line, exit 1, no OUT.\n");
}

typedef struct {
    const char *name;
    int n_args;
} Option;

static const Option options[] = {
    {"--set-str", 2},     {"--set-u32", 2},     {"--set-f32", 2},       {"--set-bool", 2},
    {"--drop-key", 1},    {"--rename-key", 2},  {"--rename-prefix", 2}, {"--drop-tensor", 1},
    {"--rename-tensor", 2}, {"--add-f32-tensor", 3}, {"--set-type", 2},
};

static void apply(Edit *e, const char *opt, char **a) {
    if (!strcmp(opt, "--set-str")) set_str(e, a[0], a[1]);
    else if (!strcmp(opt, "--set-u32")) set_u32(e, a[0], a[1]);
    else if (!strcmp(opt, "--set-f32")) set_f32(e, a[0], a[1]);
    else if (!strcmp(opt, "--set-bool")) set_bool(e, a[0], a[1]);
    else if (!strcmp(opt, "--drop-key")) drop_key(e, a[0]);
    else if (!strcmp(opt, "--rename-key")) rename_key(e, a[0], a[1]);
    else if (!strcmp(opt, "--rename-prefix")) rename_prefix(e, a[0], a[1]);
    else if (!strcmp(opt, "--drop-tensor")) drop_tensor(e, a[0]);
    else if (!strcmp(opt, "--rename-tensor")) rename_tensor(e, a[0], a[1]);
    else if (!strcmp(opt, "--add-f32-tensor")) add_f32_tensor(e, a[0], a[1], a[2]);
    else set_type(e, a[0], a[1]);
}

static const Option *find_option(const char *name) {
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (!strcmp(options[i].name, name)) return &options[i];
    return NULL;
}

int main(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0, listing = 0;
    /* first pass: the options' shapes and the two paths; the edits run once the input is open */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            listing = 1;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            const Option *op = find_option(a);
            if (!op) fatal("%s: unknown option (see --help)", a);
            if (argc - 1 - i < op->n_args)
                fatal("%s: needs %d argument%s (see --help)", a, op->n_args, op->n_args > 1 ? "s" : "");
            i += op->n_args;
            continue;
        }
        if (n_paths == 2) fatal("%s: one input and one output only (see --help)", a);
        paths[n_paths++] = a;
    }
    if (listing) {
        if (n_paths != 1 || argc != 3) fatal("--list takes one file and no edits (see --help)");
        GgufFile *g = gguf_open(paths[0]);
        list(g);
        gguf_close(g);
        return 0;
    }
    if (n_paths != 2) fatal("need an input and an output file (see --help)");
    GgufFile *g = gguf_open(paths[0]);
    Edit e = {0};
    load(&e, g);
    for (int i = 1; i < argc; i++) {
        const Option *op = argv[i][0] == '-' && argv[i][1] ? find_option(argv[i]) : NULL;
        if (!op) continue;
        apply(&e, argv[i], argv + i + 1);
        i += op->n_args;
    }
    write_gguf(&e, paths[1]);
    free_edit(&e);
    gguf_close(g);
    return 0;
}

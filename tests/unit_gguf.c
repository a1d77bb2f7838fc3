/**
 * @file unit_gguf.c
 * @brief Unit tests of chapter 5's GGUF reader (src/gguf.c), and the maker of
 * the broken GGUF files that tests/t_gguf.sh feeds to build/ch05.
 *
 *     build/tests/unit_gguf SHARED [BUILD]      run the checks
 *     build/tests/unit_gguf --write-cases DIR   write DIR/<case>.gguf and DIR/cases.tsv
 *     build/tests/unit_gguf --poison IN OUT TENSOR ROW [inf]
 *                                               copy IN to OUT with element 3 of row ROW of the
 *                                               F32 tensor TENSOR made NaN (or +infinity)
 *
 * The checks: every GGUF in SHARED parses, with the tensor counts and types
 * that the shared data lists for it and tensor bytes equal to the .bin's; each
 * malformed file below is rejected by gguf_parse() with the expected message
 * (one check per case); the typed getters refuse the wrong types; and the
 * 32000-token vocabulary of llama-spm-vocab.gguf, read through the reader,
 * tokenizes every reference string as llama.cpp does.
 *
 * The malformed files are built here, byte by byte, from a small valid file
 * (two metadata pairs, two F32 tensors) with one thing broken in each. The
 * model-level cases (a complete tiny llama with a missing key, a wrong shape,
 * an unsupported tensor type, ...) are valid GGUF that chapter 5's loader must
 * refuse; gguf_parse() accepts them, so they are only written out for the
 * shell tests.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fp16.h"
#include "gguf.h"
#include "llama2c.h"
#include "tokenizer.h"
#include "unit.h"
#include "util.h"

/* ======================================================================== */
/* A byte builder                                                           */
/* ======================================================================== */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u8(Buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(Buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(Buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(Buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_str(Buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad_to(Buf *b, size_t a) {
    while (b->n % a) put_u8(b, 0);
}
static void kv_u32(Buf *b, const char *k, uint32_t v) { put_str(b, k); put_u32(b, GGUF_U32); put_u32(b, v); }
static void kv_i32(Buf *b, const char *k, int32_t v) { put_str(b, k); put_u32(b, GGUF_I32); put_u32(b, (uint32_t)v); }
static void kv_f32(Buf *b, const char *k, float v) { put_str(b, k); put_u32(b, GGUF_F32); put_f32(b, v); }
static void kv_str(Buf *b, const char *k, const char *v) { put_str(b, k); put_u32(b, GGUF_STRING); put_str(b, v); }

/* ======================================================================== */
/* Reader-level cases: a small file with one thing broken                   */
/* ======================================================================== */

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} TensorInfo;

/** What the small file looks like; every field has a "normal" zero value. */
typedef struct {
    const char *magic;         /* NULL: "GGUF" */
    uint32_t version;          /* 0: 3 */
    int has_version;           /* 1: use version as given, even 0 */
    uint64_t n_tensors, n_kv;  /* 0: the real counts */
    int set_counts;            /* 1: write n_tensors/n_kv as given */
    void (*extra_kv)(Buf *);   /* extra metadata pairs */
    int n_extra;
    const TensorInfo *tensors; /* NULL: the two standard tensors */
    int n_t;
    uint32_t alignment;        /* 0: 32 (no key written) */
    long data_bytes;           /* 0: what the tensors need; -1: none at all */
    long cut;                  /* > 0: keep only the first cut bytes; < 0: drop -cut bytes */
} Spec;

static const TensorInfo standard_tensors[] = {
    {"norm.weight", 1, {8}, GGML_F32, 0},
    {"w.weight", 2, {8, 4}, GGML_F32, 32},
};

static uint64_t tensor_bytes(const TensorInfo *t) {
    uint32_t be, bb;
    if (!gguf_tensor_type_size(t->type, &be, &bb)) return 0;
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < 4; d++) n *= t->ne[d];
    return n / be * bb;
}

static Buf build(const Spec *s) {
    Buf b = {0};
    const TensorInfo *ts = s->tensors ? s->tensors : standard_tensors;
    int nt = s->tensors ? s->n_t : 2;
    put(&b, s->magic ? s->magic : "GGUF", 4);
    put_u32(&b, s->has_version ? s->version : 3);
    int n_kv = 1 + (s->alignment != 0) + s->n_extra;
    put_u64(&b, s->set_counts ? s->n_tensors : (uint64_t)nt);
    put_u64(&b, s->set_counts ? s->n_kv : (uint64_t)n_kv);
    kv_str(&b, "general.architecture", "test");
    if (s->alignment) kv_u32(&b, "general.alignment", s->alignment);
    if (s->extra_kv) s->extra_kv(&b);
    uint64_t need = 0;
    for (int i = 0; i < nt; i++) {
        const TensorInfo *t = &ts[i];
        put_str(&b, t->name);
        put_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&b, t->ne[d]);
        put_u32(&b, t->type);
        put_u64(&b, t->offset);
        uint64_t end = t->offset + tensor_bytes(t);
        if (end > need && t->offset < (1u << 20) && tensor_bytes(t) < (1u << 20)) need = end;
    }
    if (s->data_bytes >= 0) {
        pad_to(&b, s->alignment ? s->alignment : 32);
        uint64_t n = s->data_bytes ? (uint64_t)s->data_bytes : need;
        for (uint64_t i = 0; i < n; i++) put_u8(&b, (uint8_t)(i * 7));
    }
    if (s->cut > 0 && (size_t)s->cut < b.n) b.n = (size_t)s->cut;
    if (s->cut < 0 && (size_t)-s->cut <= b.n) b.n -= (size_t)-s->cut;
    return b;
}

static void kv_unknown_type(Buf *b) { put_str(b, "x.bad"); put_u32(b, 13); put_u32(b, 0); }
static void kv_long_key(Buf *b) { put_u64(b, (1u << 20) + 1); put(b, "x.key", 5); }
static void kv_key_past_end(Buf *b) { put_u64(b, 5000); put(b, "x.key", 5); }
static void kv_empty_key(Buf *b) { put_u64(b, 0); put_u32(b, GGUF_U32); put_u32(b, 1); }
static void kv_string_past_end(Buf *b) { put_str(b, "x.s"); put_u32(b, GGUF_STRING); put_u64(b, 1u << 30); put(b, "abc", 3); }
static void kv_huge_array(Buf *b) {
    put_str(b, "x.arr"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_U32); put_u64(b, UINT64_MAX / 2);
}
static void kv_huge_string_array(Buf *b) {
    put_str(b, "x.arr"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_STRING); put_u64(b, 1ull << 40);
}
static void kv_nested_array(Buf *b) {
    put_str(b, "x.arr"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_ARRAY); put_u64(b, 1);
    put_u32(b, GGUF_U8); put_u64(b, 1); put_u8(b, 7);
}
static void kv_array_unknown_elem(Buf *b) {
    put_str(b, "x.arr"); put_u32(b, GGUF_ARRAY); put_u32(b, 77); put_u64(b, 1); put_u32(b, 0);
}
static void kv_long_value(Buf *b) {
    char v[401];
    memset(v, 'x', 400);
    v[400] = 0;
    kv_str(b, "x.long", v);
}
static void kv_bad_bool(Buf *b) { put_str(b, "x.flag"); put_u32(b, GGUF_BOOL); put_u8(b, 2); }
static void kv_duplicate(Buf *b) { kv_str(b, "general.architecture", "again"); }
static void kv_alignment_u64(Buf *b) { put_str(b, "general.alignment"); put_u32(b, GGUF_U64); put_u64(b, 32); }
static void kv_alignment_i32(Buf *b) { kv_i32(b, "general.alignment", 32); }
static void kv_alignment_zero(Buf *b) { kv_u32(b, "general.alignment", 0); }
static void kv_alignment_48(Buf *b) { kv_u32(b, "general.alignment", 48); }
static void kv_all_types(Buf *b) { /* one of every value type: the valid file must take them all */
    put_str(b, "t.u8"); put_u32(b, GGUF_U8); put_u8(b, 200);
    put_str(b, "t.i8"); put_u32(b, GGUF_I8); put_u8(b, 0x80);
    put_str(b, "t.u16"); put_u32(b, GGUF_U16); put_u8(b, 1); put_u8(b, 2);
    put_str(b, "t.i16"); put_u32(b, GGUF_I16); put_u8(b, 1); put_u8(b, 0x82);
    kv_u32(b, "t.u32", 4000000000u);
    kv_i32(b, "t.i32", -5);
    kv_f32(b, "t.f32", 1.5f);
    put_str(b, "t.bool"); put_u32(b, GGUF_BOOL); put_u8(b, 1);
    kv_str(b, "t.str", "hello");
    put_str(b, "t.arr"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_STRING); put_u64(b, 2); put_str(b, "a"); put_str(b, "bc");
    put_str(b, "t.u64"); put_u32(b, GGUF_U64); put_u64(b, 1ull << 40);
    put_str(b, "t.i64"); put_u32(b, GGUF_I64); put_u64(b, (uint64_t)-3);
    put_str(b, "t.f64"); put_u32(b, GGUF_F64); put_u64(b, 0x3ff0000000000000ull);
    put_str(b, "t.f32s"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_F32); put_u64(b, 3);
    put_f32(b, 1.0f); put_f32(b, -2.0f); put_f32(b, 0.25f);
    put_str(b, "t.i32s"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_I32); put_u64(b, 2); put_u32(b, 7); put_u32(b, (uint32_t)-7);
    put_str(b, "t.u8s"); put_u32(b, GGUF_ARRAY); put_u32(b, GGUF_U8); put_u64(b, 0);
}

static const char long_name[] = "blk.0.a_tensor_name_that_is_far_too_long_to_be_a_ggml_tensor_name.weight";
static const TensorInfo t_long_name[] = {{long_name, 1, {8}, GGML_F32, 0}};
static const TensorInfo t_nul_name[] = {{"a\0b", 1, {8}, GGML_F32, 0}}; /* put_str stops at the NUL: patched below */
static const TensorInfo t_dup[] = {{"a", 1, {8}, GGML_F32, 0}, {"a", 1, {8}, GGML_F32, 32}};
static const TensorInfo t_5dims[] = {{"a", 5, {1, 1, 1, 1, 8}, GGML_F32, 0}};
static const TensorInfo t_0dims[] = {{"a", 0, {0}, GGML_F32, 0}};
static const TensorInfo t_zero_dim[] = {{"a", 2, {8, 0}, GGML_F32, 0}};
static const TensorInfo t_elem_overflow[] = {{"a", 3, {1ull << 32, 1ull << 32, 4}, GGML_F32, 0}};
static const TensorInfo t_byte_overflow[] = {{"a", 2, {1ull << 31, 1ull << 31}, GGML_F32, 0}};
static const TensorInfo t_unknown_type[] = {{"a", 1, {32}, 4, 0}};
static const TensorInfo t_type_99[] = {{"a", 1, {32}, 99, 0}};
static const TensorInfo t_partial_block[] = {{"a", 2, {33, 2}, GGML_Q4_0, 0}};
static const TensorInfo t_partial_iq4_xs[] = {{"a", 2, {128, 2}, GGML_IQ4_XS, 0}};
static const TensorInfo t_type_31[] = {{"a", 1, {32}, 31, 0}};
static const TensorInfo t_misaligned[] = {{"a", 1, {8}, GGML_F32, 0}, {"b", 1, {8}, GGML_F32, 40}};
static const TensorInfo t_overlap[] = {{"a", 1, {16}, GGML_F32, 0}, {"b", 1, {8}, GGML_F32, 32}};
static const TensorInfo t_past_end[] = {{"a", 1, {8}, GGML_F32, 0}, {"b", 1, {8}, GGML_F32, 1ull << 40}};
static const TensorInfo t_offset_wraps[] = {{"a", 1, {8}, GGML_F32, UINT64_MAX - 31}};
static const TensorInfo t_huge_tensor[] = {{"a", 2, {4096, 4096}, GGML_F32, 0}};

typedef struct {
    const char *slug;   /* file name for --write-cases */
    const char *what;   /* test name */
    const char *expect; /* substring of the error */
    Spec spec;
} Case;

static const Case cases[] = {
    {"bad-magic", "bad magic", "not a GGUF file", {.magic = "GGUG"}},
    {"empty", "empty file", "empty", {0}},
    {"short-header", "file shorter than the header", "too short for a GGUF header", {.cut = 12}},
    {"version-0", "version 0", "version 0 is not supported", {.has_version = 1, .version = 0}},
    {"version-1", "version 1", "version 1 is not supported", {.has_version = 1, .version = 1}},
    {"version-4", "version 4", "version 4 is not supported", {.has_version = 1, .version = 4}},
    {"big-endian", "byte-swapped version (big-endian file)", "big-endian GGUF is not supported", {.has_version = 1, .version = 0x03000000}},
    {"too-many-tensors", "tensor count too large for the file", "tensors, more than", {.set_counts = 1, .n_tensors = 1000000, .n_kv = 1}},
    {"too-many-kv", "metadata count too large for the file", "metadata pairs, more than", {.set_counts = 1, .n_tensors = 2, .n_kv = UINT64_MAX}},
    {"key-past-end", "key longer than the file", "truncated: a metadata key", {.extra_kv = kv_key_past_end, .n_extra = 1}},
    {"key-over-cap", "key longer than 1 MiB", "the limit is 1048576", {.extra_kv = kv_long_key, .n_extra = 1}},
    {"empty-key", "empty key", "empty key", {.extra_kv = kv_empty_key, .n_extra = 1}},
    {"string-past-end", "string value longer than the file", "truncated: a string value", {.extra_kv = kv_string_past_end, .n_extra = 1}},
    {"unknown-value-type", "unknown metadata value type", "unknown value type 13", {.extra_kv = kv_unknown_type, .n_extra = 1}},
    {"huge-array", "array count too large for the file", "does not fit", {.extra_kv = kv_huge_array, .n_extra = 1}},
    {"huge-string-array", "string array count too large for the file", "does not fit", {.extra_kv = kv_huge_string_array, .n_extra = 1}},
    {"nested-array", "nested array", "array of arrays", {.extra_kv = kv_nested_array, .n_extra = 1}},
    {"array-unknown-type", "array of an unknown element type", "array of unknown value type 77", {.extra_kv = kv_array_unknown_elem, .n_extra = 1}},
    {"bad-bool", "bool value 2", "neither 0 nor 1", {.extra_kv = kv_bad_bool, .n_extra = 1}},
    {"duplicate-key", "duplicated key", "appears twice", {.extra_kv = kv_duplicate, .n_extra = 1}},
    {"alignment-zero", "general.alignment 0", "not a power of two", {.extra_kv = kv_alignment_zero, .n_extra = 1}},
    {"alignment-48", "general.alignment 48 (not a power of two)", "not a power of two", {.extra_kv = kv_alignment_48, .n_extra = 1}},
    {"alignment-u64", "general.alignment stored as u64", "has type u64, expected u32", {.extra_kv = kv_alignment_u64, .n_extra = 1}},
    {"alignment-i32", "general.alignment stored as i32", "has type i32, expected u32", {.extra_kv = kv_alignment_i32, .n_extra = 1}},
    {"long-tensor-name", "tensor name over 64 bytes", "the limit is 64", {.tensors = t_long_name, .n_t = 1}},
    {"nul-tensor-name", "tensor name with a NUL byte", "contains a NUL byte", {.tensors = t_nul_name, .n_t = 1}},
    {"duplicate-tensor", "duplicated tensor name", "appears twice", {.tensors = t_dup, .n_t = 2}},
    {"five-dims", "tensor with 5 dimensions", "has 5 dimensions", {.tensors = t_5dims, .n_t = 1}},
    {"zero-dims", "tensor with 0 dimensions", "has 0 dimensions", {.tensors = t_0dims, .n_t = 1, .data_bytes = 64}}, /* room for a valid entry */
    {"zero-dim", "tensor dimension 0", "dimension 1 is 0", {.tensors = t_zero_dim, .n_t = 1}},
    {"elem-overflow", "element count overflow", "element count overflows", {.tensors = t_elem_overflow, .n_t = 1}},
    {"byte-overflow", "byte size overflow", "byte size overflows", {.tensors = t_byte_overflow, .n_t = 1}},
    {"type-4", "unknown tensor type 4 (removed Q4_2)", "unknown type id 4", {.tensors = t_unknown_type, .n_t = 1}},
    {"type-99", "unknown tensor type 99", "unknown type id 99", {.tensors = t_type_99, .n_t = 1}},
    {"partial-block", "row length not a multiple of the block", "not a multiple of the 32-element blocks", {.tensors = t_partial_block, .n_t = 1}},
    {"partial-iq4_xs", "iq4_xs row length not a multiple of 256 (the type is known by name)", "not a multiple of the 256-element blocks of type iq4_xs", {.tensors = t_partial_iq4_xs, .n_t = 1}},
    {"type-31", "tensor type 31 (a repacked layout ggml dropped)", "unknown type id 31", {.tensors = t_type_31, .n_t = 1}},
    {"misaligned", "misaligned tensor offset", "not a multiple of the alignment", {.tensors = t_misaligned, .n_t = 2}},
    {"overlap", "overlapping tensors", "overlap", {.tensors = t_overlap, .n_t = 2}},
    {"offset-past-end", "tensor offset past the end of the file", "run past the end of the data section", {.tensors = t_past_end, .n_t = 2}},
    {"offset-wraps", "tensor offset + size wraps around 64 bits", "run past the end of the data section", {.tensors = t_offset_wraps, .n_t = 1}},
    {"huge-tensor", "tensor larger than the file", "run past the end of the data section", {.tensors = t_huge_tensor, .n_t = 1}},
    {"truncated-data", "truncated data section", "run past the end of the data section", {.cut = -16}},
    {"no-data-section", "file ends before the data section", "data section", {.data_bytes = -1}},
    {"truncated-kv", "file cut inside the metadata", "truncated: ", {.extra_kv = kv_long_value, .n_extra = 1, .cut = 300}},
    {"truncated-tensor-info", "file cut inside the tensor directory", "truncated: ", {.data_bytes = -1, .cut = -5}},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static Buf build_case(const Case *c) {
    Buf b = build(&c->spec);
    if (c->spec.tensors == t_nul_name) { /* the name "a\0b": rewrite its length and bytes */
        /* build() wrote length 1 and "a"; rebuild by hand */
        free(b.p);
        b = (Buf){0};
        put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, 1); put_u64(&b, 1);
        kv_str(&b, "general.architecture", "test");
        put_u64(&b, 3); put(&b, "a\0b", 3); put_u32(&b, 1); put_u64(&b, 8); put_u32(&b, GGML_F32); put_u64(&b, 0);
        pad_to(&b, 32);
        for (int i = 0; i < 32; i++) put_u8(&b, 0);
    }
    if (strcmp(c->slug, "empty") == 0) b.n = 0;
    return b;
}

static void check_cases(void) {
    char name[200], err[300];
    GgufFile g;
    for (int i = 0; i < N_CASES; i++) {
        Buf b = build_case(&cases[i]);
        /* a private, exactly-sized copy so that ASan sees every byte read past the end */
        uint8_t *copy = malloc(b.n ? b.n : 1);
        if (b.n) memcpy(copy, b.p, b.n);
        int rc = gguf_parse(&g, copy, b.n, err, sizeof err);
        snprintf(name, sizeof name, "reject %s", cases[i].what);
        CHECK(name, rc != 0 && strstr(err, cases[i].expect), "rc %d, message \"%s\", expected \"%s\"", rc, err,
              cases[i].expect);
        gguf_free(&g);
        free(copy);
        free(b.p);
    }
}

/** The unbroken small file, with one metadata pair of every type. */
static void check_valid(void) {
    char err[300] = "", name[200];
    GgufFile g;
    Spec s = {.extra_kv = kv_all_types, .n_extra = 16};
    Buf b = build(&s);
    int rc = gguf_parse(&g, b.p, b.n, err, sizeof err);
    CHECK("the small valid file parses", rc == 0, "%s", err);
    if (rc == 0) {
        const GgufTensor *w = gguf_find_tensor(&g, "w.weight");
        CHECK("tensor lookup, shape and data offset", w && w->n_dims == 2 && w->ne[0] == 8 && w->ne[1] == 4 &&
              w->n_bytes == 128 && w->data == b.p + g.data_offset + 32 && g.data_offset % 32 == 0, "w %p", (void *)w);
        CHECK("an absent tensor is NULL", gguf_find_tensor(&g, "nope") == NULL, "found");
        uint32_t u = 0; int32_t i = 0; float f = 0; const char *str; size_t len;
        CHECK("get u32", gguf_get_u32(&g, "t.u32", &u, err, sizeof err) == GGUF_FOUND && u == 4000000000u, "%u", u);
        CHECK("get i32", gguf_get_i32(&g, "t.i32", &i, err, sizeof err) == GGUF_FOUND && i == -5, "%d", i);
        CHECK("get f32", gguf_get_f32(&g, "t.f32", &f, err, sizeof err) == GGUF_FOUND && f == 1.5f, "%g", f);
        CHECK("get string", gguf_get_string(&g, "t.str", &str, &len, err, sizeof err) == GGUF_FOUND && len == 5 &&
              memcmp(str, "hello", 5) == 0, "len %zu", len);
        CHECK("get u32 of an absent key", gguf_get_u32(&g, "t.none", &u, err, sizeof err) == GGUF_ABSENT, "not absent");
        rc = gguf_get_u32(&g, "t.i32", &u, err, sizeof err);
        CHECK("get u32 of an i32 key is refused", rc == GGUF_BAD_TYPE && strstr(err, "key t.i32 has type i32, expected u32"), "%d %s", rc, err);
        const char **texts; size_t *lens; uint64_t n = 0;
        rc = gguf_get_string_array(&g, "t.arr", &texts, &lens, &n, err, sizeof err);
        CHECK("get string array", rc == GGUF_FOUND && n == 2 && lens[0] == 1 && lens[1] == 2 && memcmp(texts[1], "bc", 2) == 0, "rc %d n %llu", rc, (unsigned long long)n);
        if (rc == GGUF_FOUND) { free(texts); free(lens); }
        float *fs = NULL; int32_t *is = NULL;
        rc = gguf_get_f32_array(&g, "t.f32s", &fs, &n, err, sizeof err);
        CHECK("get f32 array", rc == GGUF_FOUND && n == 3 && fs[1] == -2.0f && fs[2] == 0.25f, "rc %d", rc);
        free(fs);
        rc = gguf_get_i32_array(&g, "t.i32s", &is, &n, err, sizeof err);
        CHECK("get i32 array", rc == GGUF_FOUND && n == 2 && is[0] == 7 && is[1] == -7, "rc %d", rc);
        free(is);
        rc = gguf_get_f32_array(&g, "t.u8s", &fs, &n, err, sizeof err);
        CHECK("an array of u8 where f32 is expected is refused", rc == GGUF_BAD_TYPE &&
              strstr(err, "has type array of u8, expected array of f32"), "rc %d %s", rc, err);
        rc = gguf_get_string_array(&g, "t.f32s", &texts, &lens, &n, err, sizeof err);
        CHECK("an array of f32 where strings are expected is refused", rc == GGUF_BAD_TYPE, "rc %d", rc);
        rc = gguf_get_f32_array(&g, "t.f32", &fs, &n, err, sizeof err);
        CHECK("a scalar where an array is expected is refused", rc == GGUF_BAD_TYPE &&
              strstr(err, "has type f32, expected array of f32"), "rc %d %s", rc, err);
    }
    gguf_free(&g);
    /* A different alignment moves the data section. */
    static const TensorInfo aligned256[] = {{"a", 1, {8}, GGML_F32, 0}, {"b", 1, {8}, GGML_F32, 256}};
    s = (Spec){.alignment = 256, .tensors = aligned256, .n_t = 2};
    Buf b2 = build(&s);
    rc = gguf_parse(&g, b2.p, b2.n, err, sizeof err);
    CHECK("general.alignment 256 moves the data section", rc == 0 && g.alignment == 256 && g.data_offset == 256, "rc %d %s", rc, err);
    gguf_free(&g);
    /* GGUF asks only for a power of two: 1 and 2 are valid (the loaders copy what they cannot read in place) */
    static const TensorInfo packed[] = {{"a", 1, {3}, GGML_F16, 0}, {"b", 1, {8}, GGML_F32, 6}};
    for (uint32_t A = 1; A <= 2; A++) {
        Buf b3 = build(&(Spec){.alignment = A, .tensors = packed, .n_t = 2});
        rc = gguf_parse(&g, b3.p, b3.n, err, sizeof err);
        const GgufTensor *tb = rc == 0 ? gguf_find_tensor(&g, "b") : NULL;
        snprintf(name, sizeof name, "general.alignment %u is valid: tensors packed at offsets 0 and 6", A);
        CHECK(name, rc == 0 && g.alignment == A && tb && tb->data == b3.p + g.data_offset + 6, "rc %d %s", rc, err);
        gguf_free(&g);
        free(b3.p);
    }
    /* every type ggml defines has a name and a block size; the ids it dropped stay unknown */
    static const struct { uint32_t id; const char *name; uint32_t elems, bytes; } facts[] = {
        {GGML_IQ2_XXS, "iq2_xxs", 256, 66}, {GGML_IQ2_XS, "iq2_xs", 256, 74}, {GGML_IQ3_XXS, "iq3_xxs", 256, 98},
        {GGML_IQ1_S, "iq1_s", 256, 50},     {GGML_IQ4_NL, "iq4_nl", 32, 18},  {GGML_IQ3_S, "iq3_s", 256, 110},
        {GGML_IQ2_S, "iq2_s", 256, 82},     {GGML_IQ4_XS, "iq4_xs", 256, 136}, {GGML_I8, "i8", 1, 1},
        {GGML_I16, "i16", 1, 2},            {GGML_I32, "i32", 1, 4},          {GGML_I64, "i64", 1, 8},
        {GGML_F64, "f64", 1, 8},            {GGML_IQ1_M, "iq1_m", 256, 56},   {GGML_TQ1_0, "tq1_0", 256, 54},
        {GGML_TQ2_0, "tq2_0", 256, 66},     {GGML_MXFP4, "mxfp4", 32, 17},    {23, "iq4_xs", 256, 136},
    };
    int facts_ok = 1;
    for (size_t k = 0; k < sizeof facts / sizeof facts[0]; k++) {
        uint32_t be = 0, bb = 0;
        const char *nm = gguf_tensor_type_name(facts[k].id);
        if (!nm || strcmp(nm, facts[k].name) || !gguf_tensor_type_size(facts[k].id, &be, &bb) || be != facts[k].elems ||
            bb != facts[k].bytes) {
            facts_ok = 0;
            printf("# type %u: %s %u/%u\n", facts[k].id, nm ? nm : "(unknown)", be, bb);
        }
    }
    static const uint32_t dropped[] = {4, 5, 31, 32, 33, 36, 37, 38, 40};
    for (size_t k = 0; k < sizeof dropped / sizeof dropped[0]; k++) facts_ok &= gguf_tensor_type_name(dropped[k]) == NULL;
    CHECK("the IQ, TQ, MXFP4 and integer types have ggml's names and block sizes; dropped ids are unknown", facts_ok,
          "see the lines above");
    /* Every prefix of the valid file is rejected cleanly (no crash, a message). */
    int all_fail = 1;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        if (gguf_parse(&g, copy, n, err, sizeof err) == 0 || !err[0]) all_fail = 0;
        gguf_free(&g);
        free(copy);
    }
    CHECK("every truncation of the valid file is rejected with a message", all_fail, "one prefix parsed");
    free(b.p);
    free(b2.p);
}

/**
 * A sparse file: a header that claims 130 million tensors (or 300 million
 * metadata pairs), then 4 GiB of zeros, which cost nothing on disk. Both
 * counts fit in the size, so only the entries themselves can refute them:
 * the parser must fail at the first one without having reserved memory for
 * the count (19 GB of GgufTensor). The address-space peak shows any such
 * reservation, touched or not; each case runs in a child process of its
 * own, because the peak never comes down again.
 */
static void check_sparse(void) {
    const size_t size = 24 + 130000000ull * 33 + 4096;
    static const struct { uint64_t n_tensors, n_kv; const char *what, *expect; } claims[] = {
        {130000000, 0, "130 million tensors", "tensor 0 has an empty name"},
        {0, 300000000, "300 million metadata pairs", "metadata pair 0 has an empty key"},
    };
    for (size_t k = 0; k < sizeof claims / sizeof claims[0]; k++) {
        char name[200], why[400] = "";
        snprintf(name, sizeof name, "a 4 GiB sparse buffer claiming %s: refused at the first entry, under 64 MiB allocated",
                 claims[k].what);
        int fds[2];
        fflush(stdout);
        pid_t pid = sizeof(size_t) >= 8 && pipe(fds) == 0 ? fork() : -1;
        if (pid == 0) { /* the child: parse, then write "ok" or why not into the pipe */
            close(fds[0]);
            uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            long before = vm_peak_kib();
            if (p == MAP_FAILED || before < 0) {
                snprintf(why, sizeof why, "skip: no 4 GiB mapping, or no VmPeak in /proc/self/status");
            } else {
                memcpy(p, "GGUF\3\0\0\0", 8);
                for (int i = 0; i < 8; i++) {
                    p[8 + i] = (uint8_t)(claims[k].n_tensors >> (8 * i));
                    p[16 + i] = (uint8_t)(claims[k].n_kv >> (8 * i));
                }
                char err[300] = "";
                GgufFile g;
                int rc = gguf_parse(&g, p, size, err, sizeof err);
                long grew = vm_peak_kib() - before;
                if (rc != 0 && strstr(err, claims[k].expect) && grew < 65536) snprintf(why, sizeof why, "ok");
                else snprintf(why, sizeof why, "rc %d, \"%s\", address space grew by %ld KiB", rc, err, grew);
                gguf_free(&g);
            }
            if (write(fds[1], why, strlen(why)) < 0) _exit(1);
            _exit(0);
        }
        if (pid < 0) {
            SKIP(name, "no fork, or a 32-bit system");
            continue;
        }
        close(fds[1]);
        ssize_t n = read(fds[0], why, sizeof why - 1);
        why[n > 0 ? n : 0] = 0;
        close(fds[0]);
        waitpid(pid, NULL, 0);
        if (strncmp(why, "skip: ", 6) == 0) SKIP(name, why + 6);
        else CHECK(name, strcmp(why, "ok") == 0, "%s", why[0] ? why : "the child said nothing");
    }
}

/* ======================================================================== */
/* Model-level cases: a complete tiny llama with one thing wrong            */
/* ======================================================================== */
/* dim 64, hidden 96, 2 layers, 4 heads, 2 kv heads, vocab 300 (3 specials,
 * 256 byte tokens, 41 letters and pairs), context 64; random F32 weights.
 * gguf_parse() accepts every one of these files: it is chapter 5's loader
 * that must refuse them, each with one line naming the key or tensor. */

enum { TD = 64, TH = 96, TL = 2, TNH = 4, TNKV = 2, TV = 300, TCTX = 64 };

typedef struct {
    const char *arch;         /* NULL: "llama" */
    const char *skip_key;     /* leave this metadata key out */
    const char *skip_tensor;  /* leave this tensor out */
    const char *retype;       /* this tensor gets type `new_type` (data sized for it) */
    uint32_t new_type;
    const char *reshape;      /* this tensor gets ne = {reshape_ne0, reshape_ne1} */
    uint64_t reshape_ne0, reshape_ne1;
    const char *u32_key;      /* this u32 key gets the value u32_value */
    uint32_t u32_value;
    int block_count_i32;      /* llama.block_count stored as i32 */
    int scores_u8;            /* tokenizer.ggml.scores as an array of u8 */
    int tokens_i32;           /* tokenizer.ggml.tokens as an array of i32 */
    int n_tokens;             /* 0: TV */
    const char *tok_model;    /* NULL: "llama" */
    float eps;                /* 0: 1e-5 */
    int no_output;            /* no output.weight (tied classifier) */
    const char *pad_dims;     /* this tensor is written with pad_n_dims dimensions, the extra ones 1 */
    uint32_t pad_n_dims;
    uint32_t alignment;       /* 0: 32, no key; 1 or 2: general.alignment, and the data section starts at
                               * a byte that is 1 (2) past a multiple of 4, so every float is misaligned */
    const char *poison;       /* this tensor gets a NaN (poison_inf: +infinity) in row poison_row: */
    int poison_row, poison_inf; /* element 3 of an F32 or F16 row, the scale of block 1 of a Q8_0 row */
} ModelSpec;

typedef struct {
    char name[80];
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
} ModelTensor;

static uint64_t model_rng = 0x9e3779b97f4a7c15ull;
static float model_rnd(void) {
    model_rng = model_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((model_rng >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

static int model_tensors(const ModelSpec *s, ModelTensor *ts) {
    int n = 0;
#define T(nm, nd, a, b) (snprintf(ts[n].name, sizeof ts[n].name, "%s", nm), ts[n].n_dims = nd, ts[n].ne[0] = a, \
                         ts[n].ne[1] = b, ts[n].ne[2] = ts[n].ne[3] = 1, ts[n].type = GGML_F32, n++)
    T("token_embd.weight", 2, TD, TV);
    T("output_norm.weight", 1, TD, 1);
    if (!s->no_output) T("output.weight", 2, TD, TV);
    int kv = TD / TNH * TNKV;
    char nm[80];
    for (int l = 0; l < TL; l++) {
#define L(part, nd, a, b) (snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, part), T(nm, nd, a, b))
        L("attn_norm", 1, TD, 1); L("attn_q", 2, TD, TD); L("attn_k", 2, TD, kv); L("attn_v", 2, TD, kv);
        L("attn_output", 2, TD, TD); L("ffn_norm", 1, TD, 1); L("ffn_gate", 2, TD, TH); L("ffn_up", 2, TD, TH);
        L("ffn_down", 2, TH, TD);
#undef L
    }
#undef T
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (s->skip_tensor && !strcmp(ts[i].name, s->skip_tensor)) continue;
        ts[m] = ts[i];
        if (s->retype && !strcmp(ts[m].name, s->retype)) ts[m].type = s->new_type;
        if (s->reshape && !strcmp(ts[m].name, s->reshape)) {
            ts[m].ne[0] = s->reshape_ne0;
            ts[m].ne[1] = s->reshape_ne1;
            ts[m].n_dims = s->reshape_ne1 ? 2 : 1;
            if (!s->reshape_ne1) ts[m].ne[1] = 1;
        }
        if (s->pad_dims && !strcmp(ts[m].name, s->pad_dims)) ts[m].n_dims = s->pad_n_dims;
        m++;
    }
    return m;
}

/** The file of @p s with a metadata string of @p pad bytes when s->alignment is set; *data_at: where its data starts. */
static Buf build_model_padded(const ModelSpec *s, size_t pad, size_t *data_at) {
    model_rng = 0x9e3779b97f4a7c15ull; /* the same weights in every file: files can be compared */
    const uint32_t A = s->alignment ? s->alignment : 32;
    Buf kvs = {0};
    int n_kv = 0;
#define KEY_OK(k) (!s->skip_key || strcmp(s->skip_key, k))
#define U32(k, v) do { if (KEY_OK(k)) { uint32_t val = (s->u32_key && !strcmp(s->u32_key, k)) ? s->u32_value : (v); \
                       kv_u32(&kvs, k, val); n_kv++; } } while (0)
    if (KEY_OK("general.architecture")) { kv_str(&kvs, "general.architecture", s->arch ? s->arch : "llama"); n_kv++; }
    U32("llama.context_length", TCTX);
    U32("llama.embedding_length", TD);
    U32("llama.feed_forward_length", TH);
    U32("llama.attention.head_count", TNH);
    U32("llama.attention.head_count_kv", TNKV);
    if (s->block_count_i32) { kv_i32(&kvs, "llama.block_count", TL); n_kv++; }
    else U32("llama.block_count", TL);
    U32("llama.rope.dimension_count", TD / TNH);
    if (KEY_OK("llama.attention.layer_norm_rms_epsilon")) {
        kv_f32(&kvs, "llama.attention.layer_norm_rms_epsilon", s->eps != 0 ? s->eps : 1e-5f);
        n_kv++;
    }
    if (KEY_OK("tokenizer.ggml.model")) { kv_str(&kvs, "tokenizer.ggml.model", s->tok_model ? s->tok_model : "llama"); n_kv++; }
    int nt = s->n_tokens ? s->n_tokens : TV;
    put_str(&kvs, "tokenizer.ggml.tokens"); put_u32(&kvs, GGUF_ARRAY);
    if (s->tokens_i32) {
        put_u32(&kvs, GGUF_I32); put_u64(&kvs, (uint64_t)nt);
        for (int i = 0; i < nt; i++) put_u32(&kvs, (uint32_t)i);
    } else {
        put_u32(&kvs, GGUF_STRING); put_u64(&kvs, (uint64_t)nt);
        for (int i = 0; i < nt; i++) {
            char t[16];
            static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
            if (i < 3) snprintf(t, sizeof t, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else if (i < 259) snprintf(t, sizeof t, "<0x%02X>", i - 3);
            else if (i < 285) snprintf(t, sizeof t, "%c", letters[i - 259]);
            else snprintf(t, sizeof t, "\xe2\x96\x81%c", letters[i - 285]);
            put_str(&kvs, t);
        }
    }
    n_kv++;
    put_str(&kvs, "tokenizer.ggml.scores"); put_u32(&kvs, GGUF_ARRAY);
    put_u32(&kvs, s->scores_u8 ? GGUF_U8 : GGUF_F32); put_u64(&kvs, (uint64_t)nt);
    for (int i = 0; i < nt; i++) {
        if (s->scores_u8) put_u8(&kvs, (uint8_t)i);
        else put_f32(&kvs, i < 259 ? 0.0f : -(float)i);
    }
    n_kv++;
    put_str(&kvs, "tokenizer.ggml.token_type"); put_u32(&kvs, GGUF_ARRAY); put_u32(&kvs, GGUF_I32); put_u64(&kvs, (uint64_t)nt);
    for (int i = 0; i < nt; i++) put_u32(&kvs, i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1);
    n_kv++;
    U32("tokenizer.ggml.bos_token_id", 1);
    U32("tokenizer.ggml.eos_token_id", 2);
    if (s->alignment) {
        kv_u32(&kvs, "general.alignment", s->alignment);
        char text[8] = "xxxxxxx";
        text[pad] = 0;
        kv_str(&kvs, "general.test_pad", text); /* general.*: a key every chapter may ignore (chapter 8 refuses unknown others) */
        n_kv += 2;
    }
#undef U32
#undef KEY_OK

    ModelTensor ts[64];
    int n_t = model_tensors(s, ts);
    Buf b = {0};
    put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, (uint64_t)n_t); put_u64(&b, (uint64_t)n_kv);
    put(&b, kvs.p, kvs.n);
    free(kvs.p);
    uint64_t offset = 0, bytes[64];
    for (int i = 0; i < n_t; i++) {
        uint32_t be = 1, bb = 4;
        gguf_tensor_type_size(ts[i].type, &be, &bb);
        bytes[i] = ts[i].ne[0] * ts[i].ne[1] / be * bb;
        put_str(&b, ts[i].name); put_u32(&b, ts[i].n_dims);
        for (uint32_t d = 0; d < ts[i].n_dims; d++) put_u64(&b, ts[i].ne[d]);
        put_u32(&b, ts[i].type); put_u64(&b, offset);
        offset += (bytes[i] + A - 1) / A * A;
    }
    pad_to(&b, A);
    *data_at = b.n;
    for (int i = 0; i < n_t; i++) {
        int norm = strstr(ts[i].name, "norm") != NULL;
        size_t start = b.n;
        for (uint64_t j = 0; j < bytes[i] / 4; j++) {
            if (ts[i].type == GGML_F32) put_f32(&b, norm ? 1.0f : model_rnd() * 0.3f);
            else put_u32(&b, 0x3c003c00u); /* F16 (or any block): small, valid numbers */
        }
        for (uint64_t j = bytes[i] / 4 * 4; j < bytes[i]; j++) put_u8(&b, 0);
        if (s->poison && !strcmp(ts[i].name, s->poison)) {
            size_t row_bytes = (size_t)(bytes[i] / ts[i].ne[1]), at = start + (size_t)s->poison_row * row_bytes;
            float f = s->poison_inf ? INFINITY : NAN;
            uint16_t h = s->poison_inf ? 0x7c00 : 0x7e00;
            if (ts[i].type == GGML_F32) memcpy(b.p + at + 3 * 4, &f, 4);
            else if (ts[i].type == GGML_F16) memcpy(b.p + at + 3 * 2, &h, 2);
            else if (ts[i].type == GGML_Q8_0) memcpy(b.p + at + 34, &h, 2);
            else abort();
        }
        pad_to(&b, A);
    }
    return b;
}

static Buf build_model(const ModelSpec *s) {
    size_t data_at;
    Buf b = build_model_padded(s, 0, &data_at);
    if (!s->alignment) return b;
    /* a second time with the padding that puts the data section 1 (alignment 1) or 2 bytes past a multiple of 4 */
    free(b.p);
    size_t pad = (s->alignment + 4 - data_at % 4) % 4;
    b = build_model_padded(s, pad, &data_at);
    if (data_at % 4 != s->alignment) abort();
    return b;
}

typedef struct {
    const char *slug, *what, *expect;
    ModelSpec spec;
} ModelCase;

static const ModelCase model_cases[] = {
    {"model-valid", "a valid tiny llama", NULL, {0}},
    {"model-tied", "a valid tiny llama without output.weight (tied classifier)", NULL, {.no_output = 1}},
    {"model-arch-gpt2", "architecture gpt2", "architecture \"gpt2\" is not supported", {.arch = "gpt2"}},
    {"model-no-arch", "no general.architecture", "general.architecture is missing", {.skip_key = "general.architecture"}},
    {"model-no-block-count", "no llama.block_count", "llama.block_count is missing", {.skip_key = "llama.block_count"}},
    {"model-no-embedding-length", "no llama.embedding_length", "llama.embedding_length is missing", {.skip_key = "llama.embedding_length"}},
    {"model-no-context", "no llama.context_length", "llama.context_length is missing", {.skip_key = "llama.context_length"}},
    {"model-no-ffn-length", "no llama.feed_forward_length", "llama.feed_forward_length is missing", {.skip_key = "llama.feed_forward_length"}},
    {"model-no-head-count", "no llama.attention.head_count", "llama.attention.head_count is missing", {.skip_key = "llama.attention.head_count"}},
    {"model-no-eps", "no llama.attention.layer_norm_rms_epsilon", "layer_norm_rms_epsilon is missing", {.skip_key = "llama.attention.layer_norm_rms_epsilon"}},
    {"model-block-count-i32", "llama.block_count stored as i32", "llama.block_count has type i32, expected u32", {.block_count_i32 = 1}},
    {"model-block-count-huge", "llama.block_count 100000", "llama.block_count = 100000 is outside", {.u32_key = "llama.block_count", .u32_value = 100000}},
    {"model-context-zero", "llama.context_length 0", "llama.context_length = 0 is outside", {.u32_key = "llama.context_length", .u32_value = 0}},
    {"model-heads-divide", "head_count 5 does not divide embedding_length 64", "not divisible by head_count 5", {.u32_key = "llama.attention.head_count", .u32_value = 5}},
    {"model-kv-heads-divide", "head_count 4 not a multiple of head_count_kv 3", "not a multiple of head_count_kv 3", {.u32_key = "llama.attention.head_count_kv", .u32_value = 3}},
    {"model-eps-negative", "negative rms epsilon", "must be a positive number", {.eps = -1.0f}},
    {"model-missing-tensor", "missing tensor blk.1.ffn_up.weight", "tensor blk.1.ffn_up.weight is missing", {.skip_tensor = "blk.1.ffn_up.weight"}},
    {"model-missing-embd", "missing token_embd.weight", "tensor token_embd.weight is missing", {.skip_tensor = "token_embd.weight"}},
    {"model-missing-norm", "missing output_norm.weight", "tensor output_norm.weight is missing", {.skip_tensor = "output_norm.weight"}},
    {"model-wrong-shape", "attn_q of shape [64, 32]", "tensor blk.0.attn_q.weight has shape [64, 32], expected [64, 64]", {.reshape = "blk.0.attn_q.weight", .reshape_ne0 = 64, .reshape_ne1 = 32}},
    {"model-norm-2d", "a norm with two dimensions", "tensor blk.1.ffn_norm.weight has shape [64, 2], expected [64]", {.reshape = "blk.1.ffn_norm.weight", .reshape_ne0 = 64, .reshape_ne1 = 2}},
    {"model-unsupported-type", "attn_k of type q4_1", "tensor blk.0.attn_k.weight: type q4_1 is not supported by chapter 5", {.retype = "blk.0.attn_k.weight", .new_type = GGML_Q4_1}},
    {"model-unsupported-q8_1", "ffn_gate of type q8_1", "tensor blk.1.ffn_gate.weight: type q8_1 is not supported by chapter 5", {.retype = "blk.1.ffn_gate.weight", .new_type = GGML_Q8_1}},
    {"model-unsupported-iq4_nl", "attn_k of type iq4_nl (named, not an unknown id)", "tensor blk.0.attn_k.weight: type iq4_nl is not supported by chapter 5", {.retype = "blk.0.attn_k.weight", .new_type = GGML_IQ4_NL}},
    {"model-norm-64x1", "a norm shaped [64, 1] (a trailing 1)", NULL, {.reshape = "blk.0.attn_norm.weight", .reshape_ne0 = 64, .reshape_ne1 = 1}},
    {"model-norm-4d", "a norm shaped [64, 1, 1, 1]", NULL, {.pad_dims = "blk.1.ffn_norm.weight", .pad_n_dims = 4}},
    {"model-matrix-3d", "attn_q shaped [64, 64, 1]", NULL, {.pad_dims = "blk.0.attn_q.weight", .pad_n_dims = 3}},
    {"model-align1", "general.alignment 1, every tensor misaligned", NULL, {.alignment = 1}},
    {"model-align1-f16", "general.alignment 1, attn_v f16, misaligned", NULL, {.alignment = 1, .retype = "blk.0.attn_v.weight", .new_type = GGML_F16}},
    {"model-f16-v", "attn_v f16 (model-align1-f16 aligned)", NULL, {.retype = "blk.0.attn_v.weight", .new_type = GGML_F16}},
    {"model-align2-q8_0", "general.alignment 2, attn_k q8_0, floats misaligned", NULL, {.alignment = 2, .retype = "blk.0.attn_k.weight", .new_type = GGML_Q8_0}},
    {"model-q8_0-k", "attn_k q8_0 (model-align2-q8_0 aligned)", NULL, {.retype = "blk.0.attn_k.weight", .new_type = GGML_Q8_0}},
    {"model-f16-norm", "an f16 norm", "norm weights must be f32", {.retype = "blk.0.attn_norm.weight", .new_type = GGML_F16}},
    {"model-tokens-count", "301 tokens for 300 embedding rows", "tokenizer.ggml.tokens has 301 entries, but token_embd.weight has 300 rows", {.n_tokens = 301}},
    {"model-scores-u8", "tokenizer.ggml.scores as an array of u8", "tokenizer.ggml.scores has type array of u8, expected array of f32", {.scores_u8 = 1}},
    {"model-tokens-i32", "tokenizer.ggml.tokens as an array of i32", "tokenizer.ggml.tokens has type array of i32, expected array of string", {.tokens_i32 = 1}},
    {"model-bos-range", "bos_token_id outside the vocabulary", "bos_token_id = 300 is not a token id", {.u32_key = "tokenizer.ggml.bos_token_id", .u32_value = 300}},
    {"model-tokenizer-gpt2", "tokenizer model gpt2", "tokenizer \"gpt2\" is not supported", {.tok_model = "gpt2"}},
};
enum { N_MODEL_CASES = sizeof model_cases / sizeof model_cases[0] };

/* Valid files with a NaN or an infinite weight: --check-tensors must name it (tests/t_gguf_faults.sh) */
static const ModelCase fault_cases[] = {
    {"fault-nan-f32", "a NaN in an f32 matrix", "--check-tensors: tensor blk.1.ffn_down.weight, row 5: NaN", {.poison = "blk.1.ffn_down.weight", .poison_row = 5}},
    {"fault-inf-norm", "an infinite norm weight", "--check-tensors: tensor blk.0.ffn_norm.weight, row 0: infinite", {.poison = "blk.0.ffn_norm.weight", .poison_inf = 1}},
    {"fault-inf-f16", "an infinite f16 weight", "--check-tensors: tensor blk.0.attn_v.weight, row 3: infinite", {.retype = "blk.0.attn_v.weight", .new_type = GGML_F16, .poison = "blk.0.attn_v.weight", .poison_row = 3, .poison_inf = 1}},
    {"fault-nan-q8_0", "a q8_0 block with a NaN scale", "--check-tensors: tensor blk.1.attn_q.weight, row 2: NaN", {.retype = "blk.1.attn_q.weight", .new_type = GGML_Q8_0, .poison = "blk.1.attn_q.weight", .poison_row = 2}},
    {"fault-nan-embd", "a NaN in the token embedding", "--check-tensors: tensor token_embd.weight, row 42: NaN", {.poison = "token_embd.weight", .poison_row = 42}},
    {"fault-nan-misaligned", "a NaN in a misaligned tensor (general.alignment 1)", "--check-tensors: tensor blk.0.attn_k.weight, row 1: NaN", {.alignment = 1, .poison = "blk.0.attn_k.weight", .poison_row = 1}},
};
enum { N_FAULT_CASES = sizeof fault_cases / sizeof fault_cases[0] };

/** Every model-level file must be valid GGUF: the error has to come from the loader. */
static void check_model_files(void) {
    char name[200], err[300];
    int all = 1;
    for (int i = 0; i < N_MODEL_CASES + N_FAULT_CASES; i++) {
        const ModelCase *mc = i < N_MODEL_CASES ? &model_cases[i] : &fault_cases[i - N_MODEL_CASES];
        Buf b = build_model(&mc->spec);
        GgufFile g;
        if (gguf_parse(&g, b.p, b.n, err, sizeof err) != 0) {
            all = 0;
            snprintf(name, sizeof name, "model file %s", mc->slug);
            CHECK(name, 0, "does not parse: %s", err);
        }
        gguf_free(&g);
        free(b.p);
    }
    CHECK("every model-level test file is valid GGUF (the loader must find the fault)", all, "see above");
}

/* ======================================================================== */
/* The shared GGUF files                                                    */
/* ======================================================================== */

static char *path_join(const char *a, const char *b) {
    char *p = xmalloc(strlen(a) + strlen(b) + 2);
    sprintf(p, "%s/%s", a, b);
    return p;
}

static int readable(const char *p) { return access(p, R_OK) == 0; }

typedef struct {
    const char *file;
    int n_tensors;
    const char *types; /* "f32:48" style, counts by type name, sorted as written */
} SharedGguf;

static const SharedGguf shared_files[] = {
    {"models/gguf/stories260K-f32.gguf", 48, "f32:48"},
    {"models/gguf/stories260K-f16.gguf", 48, "f32:11 f16:37"},
    {"models/gguf/stories260K-q6_k.gguf", 48, "f32:11 f16:5 q8_0:32"},
    {"models/gguf/stories260K-q4_k_m.gguf", 48, "f32:11 f16:5 q5_0:29 q8_0:3"},
    {"models/gguf/llama2xs-f32.gguf", 48, "f32:48"},
    {"models/gguf/llama2xs-q8_0.gguf", 48, "f32:11 q8_0:37"},
    {"models/gguf/llama2xs-q4_0.gguf", 48, "f32:11 q4_0:36 q8_0:1"},
    {"models/gguf/syn-k256-f32.gguf", 39, "f32:39"},
    {"models/gguf/syn-k256-f16.gguf", 39, "f32:9 f16:30"},
    {"models/gguf/syn-k256-q8_0.gguf", 39, "f32:9 q8_0:30"},
    {"models/gguf/syn-k256-q4_0.gguf", 39, "f32:9 q4_0:29 q6_K:1"},
    {"models/gguf/syn-k256-q4_k_m.gguf", 39, "f32:9 q4_K:25 q6_K:5"},
    {"models/gguf/syn-k256-q6_k.gguf", 39, "f32:9 q6_K:30"},
    {"models/gguf/llama-spm-vocab.gguf", 0, ""},
    {"models/holdout/gguf/babyllama-f32.gguf", 48, "f32:48"},
    {"models/holdout/gguf/babyllama-q8_0.gguf", 48, "f32:11 q8_0:37"},
    {"models/holdout/gguf/babyllama-q4_0.gguf", 48, "f32:11 q4_0:36 q8_0:1"},
    {"models/gguf/families/smollm-syn-iq4_xs.gguf", 38, "f32:9 q6_K:1 iq4_xs:28"}, /* a type no chapter runs */
};

/** "f32:11 q8_0:37": the tensor count of each type, in type-id order. */
static void type_counts(const GgufFile *g, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (uint32_t id = 0; id < 64; id++) {
        int n = 0;
        for (uint64_t t = 0; t < g->n_tensors; t++) n += g->tensors[t].type == id;
        if (n) o += (size_t)snprintf(out + o, cap - o, "%s%s:%d", o ? " " : "", gguf_tensor_type_name(id), n);
    }
}

/** The F32 GGUF's tensors are the .bin's arrays, bit for bit. */
static void check_f32_equals_bin(const char *shared, const char *gguf_name, const char *bin_name) {
    char name[200];
    char *gp = path_join(shared, gguf_name), *bp = path_join(shared, bin_name);
    snprintf(name, sizeof name, "%s: token_embd, blk.0.attn_q and output_norm equal %s", gguf_name, bin_name);
    if (!readable(gp) || !readable(bp)) {
        SKIP(name, "file not found");
        free(gp); free(bp);
        return;
    }
    GgufFile *g = gguf_open(gp);
    Llama2cCheckpoint bin = llama2c_open(bp, "unit_gguf"); /* chapter 1's reader: the arrays' places */
    size_t dim = (size_t)bin.cfg.dim, vocab = (size_t)bin.cfg.vocab_size;
    const GgufTensor *te = gguf_find_tensor(g, "token_embd.weight"), *tq = gguf_find_tensor(g, "blk.0.attn_q.weight"),
                     *tn = gguf_find_tensor(g, "output_norm.weight");
    int ok = te && tq && tn && te->n_bytes == 4 * vocab * dim && tq->n_bytes == 4 * dim * dim &&
             tn->n_bytes == 4 * dim && memcmp(te->data, bin.w.token_embedding, te->n_bytes) == 0 &&
             memcmp(tq->data, bin.w.wq, tq->n_bytes) == 0 && memcmp(tn->data, bin.w.rms_final, tn->n_bytes) == 0;
    CHECK(name, ok, "bytes differ");
    llama2c_close(&bin);
    gguf_close(g);
    free(gp);
    free(bp);
}

static void check_shared(const char *shared) {
    char name[300], err[300], got[200];
    for (size_t i = 0; i < sizeof shared_files / sizeof shared_files[0]; i++) {
        const SharedGguf *s = &shared_files[i];
        char *p = path_join(shared, s->file);
        snprintf(name, sizeof name, "%s parses: %d tensors, types %s", s->file, s->n_tensors, s->types);
        if (!readable(p)) {
            SKIP(name, "file not found");
            free(p);
            continue;
        }
        MappedFile f = map_file(p);
        GgufFile g;
        int rc = gguf_parse(&g, f.data, f.size, err, sizeof err);
        if (rc == 0) type_counts(&g, got, sizeof got);
        CHECK(name, rc == 0 && g.n_tensors == (uint64_t)s->n_tensors && strcmp(got, s->types) == 0 && g.version == 3,
              "rc %d (%s), %llu tensors, types %s", rc, rc ? err : "", (unsigned long long)g.n_tensors, rc ? "" : got);
        gguf_free(&g);
        unmap_file(&f);
        free(p);
    }
    check_f32_equals_bin(shared, "models/gguf/stories260K-f32.gguf", "models/stories260K.bin");
    check_f32_equals_bin(shared, "models/gguf/llama2xs-f32.gguf", "models/llama2xs.bin");
    check_f32_equals_bin(shared, "models/gguf/syn-k256-f32.gguf", "models/syn-k256.bin");
}

/* ======================================================================== */
/* --write-cases                                                            */
/* ======================================================================== */

static void write_file(const char *dir, const char *slug, const Buf *b) {
    char *p = xmalloc(strlen(dir) + strlen(slug) + 8);
    sprintf(p, "%s/%s.gguf", dir, slug);
    FILE *f = fopen(p, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) fatal("%s: cannot write", p);
    free(p);
}

static int write_cases(const char *dir) {
    mkdir(dir, 0777);
    char *tsv = path_join(dir, "cases.tsv");
    FILE *list = fopen(tsv, "w");
    if (!list) fatal("%s: cannot write", tsv);
    for (int i = 0; i < N_CASES; i++) {
        Buf b = build_case(&cases[i]);
        write_file(dir, cases[i].slug, &b);
        fprintf(list, "%s\t%s\n", cases[i].slug, cases[i].what);
        free(b.p);
    }
    Spec s = {.extra_kv = kv_all_types, .n_extra = 16};
    Buf b = build(&s);
    write_file(dir, "valid-small", &b);
    free(b.p);
    fclose(list);
    /* model-level cases: "slug<TAB>what<TAB>expected message" (empty: must load) */
    char *mtsv = path_join(dir, "models.tsv");
    list = fopen(mtsv, "w");
    if (!list) fatal("%s: cannot write", mtsv);
    for (int i = 0; i < N_MODEL_CASES; i++) {
        Buf m = build_model(&model_cases[i].spec);
        write_file(dir, model_cases[i].slug, &m);
        fprintf(list, "%s\t%s\t%s\n", model_cases[i].slug, model_cases[i].what, model_cases[i].expect ? model_cases[i].expect : "");
        free(m.p);
    }
    fclose(list);
    /* the same for the NaN and infinity cases (the message --check-tensors must give) */
    char *ftsv = path_join(dir, "faults.tsv");
    list = fopen(ftsv, "w");
    if (!list) fatal("%s: cannot write", ftsv);
    for (int i = 0; i < N_FAULT_CASES; i++) {
        Buf m = build_model(&fault_cases[i].spec);
        write_file(dir, fault_cases[i].slug, &m);
        fprintf(list, "%s\t%s\t%s\n", fault_cases[i].slug, fault_cases[i].what, fault_cases[i].expect);
        free(m.p);
    }
    fclose(list);
    free(ftsv);
    free(mtsv);
    free(tsv);
    return 0;
}

/** --poison: a real model with one broken weight, for tests/t_gguf_faults.sh. */
static int poison(int argc, char **argv) {
    GgufFile *g = gguf_open(argv[2]);
    const GgufTensor *t = gguf_find_tensor(g, argv[4]);
    long row = atol(argv[5]);
    if (!t || t->type != GGML_F32 || row < 0 || (uint64_t)row >= t->n_elements / t->ne[0] || t->ne[0] < 4)
        fatal("%s: no f32 tensor %s with a row %ld", argv[2], argv[4], row);
    uint8_t *copy = xmalloc(g->size);
    memcpy(copy, g->data, g->size);
    float bad = argc > 6 && strcmp(argv[6], "inf") == 0 ? INFINITY : NAN;
    memcpy(copy + (t->data - g->data) + 4 * ((uint64_t)row * t->ne[0] + 3), &bad, 4);
    Buf b = {copy, g->size, g->size};
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(b.p, 1, b.n, f) != b.n || fclose(f) != 0) fatal("%s: cannot write", argv[3]);
    free(copy);
    gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-cases") == 0) return write_cases(argv[2]);
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "--poison") == 0) return poison(argc, argv);
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_cases();
    check_valid();
    check_sparse();
    check_model_files();
    check_shared(shared);
    return UNIT_EXIT();
}

/**
 * @file unit_json.c
 * @brief Unit tests of src/json.c: the strict reader's every rule, accepted and refused, the
 * depth limit, the tree and its lookups, the Buf, and the writer (escapes, U+FFFD for invalid
 * UTF-8, numbers that read back as the same double, strings that read back as themselves).
 *
 *     build/tests/unit_json                      run the checks
 *     build/tests/unit_json --write-cases DIR    write the JSON documents below as DIR/json-*.json
 *                                                (seeds for the server fuzzer, tests/fuzz_server.c)
 *
 * Every document is parsed from a malloc'd copy of exactly its length, so that AddressSanitizer
 * catches a read past the end.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "unit.h"
#include "util.h"

/** Parse @p n bytes of @p text from an exact-size copy. */
static Json *parse_n(const char *text, size_t n, char *err, size_t err_len) {
    char *copy = xmalloc(n);
    memcpy(copy, text, n);
    Json *j = json_parse(copy, n, err, err_len);
    free(copy);
    return j;
}

/** A document that must parse; @p n 0 means strlen. */
static void accepts(const char *name, const char *text, size_t n) {
    char err[200] = "";
    Json *j = parse_n(text, n ? n : strlen(text), err, sizeof err);
    CHECK(name, j != NULL, "refused: %s", err);
    json_free(j);
}

/** A document that must be refused with a message holding @p expect (and starting "at byte "). */
static void refuses(const char *name, const char *text, size_t n, const char *expect) {
    char err[200] = "";
    Json *j = parse_n(text, n ? n : strlen(text), err, sizeof err);
    CHECK(name, !j && strncmp(err, "at byte ", 8) == 0 && strstr(err, expect), "%s (wanted \"%s\")",
          j ? "accepted" : err, expect);
    json_free(j);
}

/* The documents that must parse. */
typedef struct {
    const char *name, *text;
} Doc;

static const Doc good_docs[] = {
    {"null", "null"},
    {"true", "true"},
    {"false", "false"},
    {"zero", "0"},
    {"minus zero", "-0"},
    {"integer", "123"},
    {"negative", "-45"},
    {"fraction", "1.5"},
    {"exponent", "-1.5e10"},
    {"exponent E+", "1E+2"},
    {"exponent e-", "2e-3"},
    {"zero fraction exponent", "0.0e0"},
    {"underflow to zero", "1e-400"},
    {"largest double", "1.7976931348623157e308"},
    {"empty string", "\"\""},
    {"string", "\"abc\""},
    {"simple escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""},
    {"\\u escape", "\"\\u00e9\\u20AC\""},
    {"surrogate pair", "\"\\ud83d\\ude00\""},
    {"raw UTF-8", "\"\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
    {"U+10FFFF", "\"\xF4\x8F\xBF\xBF\""},
    {"U+D7FF and U+E000", "\"\xED\x9F\xBF\xEE\x80\x80\""},
    {"DEL in a string", "\"\x7F\""},
    {"empty array", "[]"},
    {"empty object", "{}"},
    {"array", "[1,2,3]"},
    {"whitespace everywhere", " \t\n\r[ 1 , \"a\" ,{ \"k\" : null } ] \r\n\t "},
    {"object", "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}"},
    {"keys sharing a prefix", "{\"a\":1,\"ab\":2,\"abc\":3}"},
    {"same key in two objects", "[{\"a\":1},{\"a\":2}]"},
    {"chat request",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,\"max_tokens\":16,"
     "\"temperature\":0.7,\"stop\":[\"\\n\"]}"},
};

typedef struct {
    const char *name, *text;
    size_t n; /* 0: strlen */
    const char *expect;
} BadDoc;

static const BadDoc bad_docs[] = {
    {"empty input", "", 0, "empty input"},
    {"only whitespace", " \n\t ", 0, "only whitespace"},
    {"truncated literal", "nul", 0, "expected a value"},
    {"capitalised literal", "True", 0, "expected a value"},
    {"NaN", "NaN", 0, "expected a value"},
    {"Infinity", "-Infinity", 0, "digit"},
    {"lone minus", "-", 0, "digit"},
    {"leading zero", "01", 0, "leading zeros"},
    {"negative leading zero", "-012", 0, "leading zeros"},
    {"trailing decimal point", "1.", 0, "after the decimal point"},
    {"leading decimal point", ".5", 0, "expected a value"},
    {"empty exponent", "1e", 0, "exponent"},
    {"signed empty exponent", "1e+", 0, "exponent"},
    {"plus sign", "+1", 0, "expected a value"},
    {"hex number", "0x10", 0, "after the JSON value"},
    {"number too large", "1e400", 0, "out of range"},
    {"negative number too large", "-2e308", 0, "out of range"},
    {"trailing comma in array", "[1,]", 0, "at byte 3: unexpected ']'"},
    {"leading comma in array", "[,1]", 0, "expected a value"},
    {"missing comma", "[1 2]", 0, "expected ',' or ']'"},
    {"unterminated array", "[1,2", 0, "unterminated array"},
    {"key without value", "{\"a\"}", 0, "at byte 4: expected ':' after an object key"},
    {"missing colon", "{\"a\" 1}", 0, "at byte 5: expected ':'"},
    {"empty value", "{\"a\":}", 0, "expected a value"},
    {"trailing comma in object", "{\"a\":1,}", 0, "expected a string key"},
    {"unquoted key", "{a:1}", 0, "expected a string key"},
    {"single quotes", "{'a':1}", 0, "expected a string key"},
    {"number key", "{1:1}", 0, "expected a string key"},
    {"unterminated object", "{\"a\":1", 0, "unterminated object"},
    {"trailing garbage", "[1]x", 0, "at byte 3: unexpected 'x' after the JSON value"},
    {"two values", "[1] [2]", 0, "after the JSON value"},
    {"NUL after the value", "1\0", 2, "byte 0x00 after the JSON value"},
    {"NUL in an array", "[1,\0]", 5, "expected a value"},
    {"byte order mark", "\xEF\xBB\xBF{}", 0, "expected a value"},
    {"comment", "/* c */ 1", 0, "expected a value"},
    {"unterminated string", "\"abc", 0, "unterminated string"},
    {"string ending in a backslash", "\"abc\\", 0, "unterminated string"},
    {"unknown escape", "\"\\x41\"", 0, "invalid escape"},
    {"escaped single quote", "\"\\'\"", 0, "invalid escape"},
    {"short \\u", "\"\\u12\"", 0, "4 hex digits"},
    {"\\u with a non-hex digit", "\"\\u12G4\"", 0, "4 hex digits"},
    {"\\u at the end", "\"\\u", 0, "unterminated string"},
    {"lone high surrogate", "\"\\ud800\"", 0, "lone high surrogate"},
    {"high surrogate then a letter", "\"\\ud800\\u0041\"", 0, "lone high surrogate"},
    {"two high surrogates", "\"\\ud800\\ud800\"", 0, "lone high surrogate"},
    {"lone low surrogate", "\"\\udc00\"", 0, "lone low surrogate"},
    {"\\u0000", "\"a\\u0000b\"", 0, "\\u0000 is not allowed"},
    {"raw control character", "\"a\x01z\"", 0, "at byte 2: control character 0x01"},
    {"raw newline", "\"a\nb\"", 0, "control character 0x0A"},
    {"raw tab", "\"a\tb\"", 0, "control character 0x09"},
    {"raw NUL", "\"a\0b\"", 5, "control character 0x00"},
    {"stray continuation byte", "\"\x80\"", 0, "at byte 1: invalid UTF-8"},
    {"overlong 2-byte (C0 80)", "\"\xC0\x80\"", 0, "invalid UTF-8"},
    {"overlong 2-byte (C1 BF)", "\"\xC1\xBF\"", 0, "invalid UTF-8"},
    {"overlong 3-byte (E0 80 80)", "\"\xE0\x80\x80\"", 0, "invalid UTF-8"},
    {"overlong 3-byte (E0 9F BF)", "\"\xE0\x9F\xBF\"", 0, "invalid UTF-8"},
    {"overlong 4-byte (F0 8F BF BF)", "\"\xF0\x8F\xBF\xBF\"", 0, "invalid UTF-8"},
    {"UTF-8 surrogate (ED A0 80)", "\"\xED\xA0\x80\"", 0, "invalid UTF-8"},
    {"UTF-8 surrogate (ED BF BF)", "\"\xED\xBF\xBF\"", 0, "invalid UTF-8"},
    {"above U+10FFFF (F4 90 80 80)", "\"\xF4\x90\x80\x80\"", 0, "invalid UTF-8"},
    {"F5 lead byte", "\"\xF5\x80\x80\x80\"", 0, "invalid UTF-8"},
    {"FF byte", "\"\xFF\"", 0, "invalid UTF-8"},
    {"truncated sequence", "\"\xE2\x82\"", 0, "invalid UTF-8"},
    {"sequence cut by the quote", "\"\xF0\x9F\x98\"", 0, "invalid UTF-8"},
    {"bad continuation", "\"\xE2\x28\xA1\"", 0, "invalid UTF-8"},
    {"invalid UTF-8 outside a string", "\xC3\xA9", 0, "expected a value"},
    {"duplicate key", "{\"a\":1,\"b\":2,\"a\":3}", 0, "at byte 13: duplicate key \"a\""},
    {"duplicate key by escape", "{\"a\":1,\"\\u0061\":2}", 0, "duplicate key \"a\""},
    {"duplicate key inside", "[{\"x\":{\"k\":1,\"k\":1}}]", 0, "duplicate key \"k\""},
};

static void test_documents(void) {
    for (size_t i = 0; i < sizeof good_docs / sizeof *good_docs; i++) {
        char name[128];
        snprintf(name, sizeof name, "accepts %s", good_docs[i].name);
        accepts(name, good_docs[i].text, 0);
    }
    for (size_t i = 0; i < sizeof bad_docs / sizeof *bad_docs; i++) {
        char name[128];
        snprintf(name, sizeof name, "refuses %s", bad_docs[i].name);
        refuses(name, bad_docs[i].text, bad_docs[i].n, bad_docs[i].expect);
    }
}

/** A big object (the sorted duplicate check) with and without a repeated key. */
static void test_big_objects(void) {
    Buf b = {0};
    buf_adds(&b, "{");
    for (int i = 0; i < 5000; i++) buf_printf(&b, "%s\"key%d\":%d", i ? "," : "", i, i);
    size_t before_end = b.len;
    buf_adds(&b, "}");
    char err[200];
    Json *j = parse_n(b.data, b.len, err, sizeof err);
    CHECK("object of 5000 keys", j && json_root(j)->n == 5000 && json_get(json_root(j), "key4321") &&
                                      json_get(json_root(j), "key4321")->number == 4321,
          "%s", j ? "wrong tree" : err);
    json_free(j);
    b.len = before_end;
    buf_adds(&b, ",\"key17\":0}");
    j = parse_n(b.data, b.len, err, sizeof err);
    CHECK("object of 5000 keys with a duplicate", !j && strstr(err, "duplicate key \"key17\""), "%s", j ? "accepted" : err);
    json_free(j);
    buf_free(&b);
}

static void test_depth(void) {
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) text[n++] = '[';
        for (int i = 0; i < depth; i++) text[n++] = ']';
        char err[200] = "", name[64];
        Json *j = parse_n(text, n, err, sizeof err);
        snprintf(name, sizeof name, "%d nested arrays", depth);
        if (depth <= JSON_MAX_DEPTH) CHECK(name, j != NULL, "refused: %s", err);
        else CHECK(name, !j && strstr(err, "nesting deeper than"), "%s", j ? "accepted" : err);
        json_free(j);
    }
    /* objects count too: 32 arrays each holding an object holding the next (64 levels), then one more */
    Buf b = {0};
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_adds(&b, "[{\"k\":");
    buf_adds(&b, "1");
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_adds(&b, "}]");
    char err[200] = "";
    Json *j = parse_n(b.data, b.len, err, sizeof err);
    CHECK("64 levels of arrays and objects", j != NULL, "refused: %s", err);
    json_free(j);
    buf_clear(&b);
    buf_adds(&b, "[");
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_adds(&b, "[{\"k\":");
    buf_adds(&b, "1");
    for (int i = 0; i < JSON_MAX_DEPTH / 2; i++) buf_adds(&b, "}]");
    buf_adds(&b, "]");
    j = parse_n(b.data, b.len, err, sizeof err);
    CHECK("65 levels of arrays and objects", !j && strstr(err, "at byte 188: nesting deeper than 64"), "%s", j ? "accepted" : err);
    json_free(j);
    /* a hostile body: a megabyte of '[' is refused at the limit, without deep recursion */
    buf_clear(&b);
    for (int i = 0; i < 1 << 20; i++) buf_add(&b, "[", 1);
    j = parse_n(b.data, b.len, err, sizeof err);
    CHECK("a megabyte of '['", !j && strstr(err, "nesting deeper"), "%s", j ? "accepted" : err);
    json_free(j);
    buf_free(&b);
}

static void test_tree(void) {
    const char *text = "{\"model\":\"m\\u00e9\",\"n\":[1,-2.5,true,false,null,{}],\"s\":\"a\\\"b\",\"e\":\"\"}";
    char err[200] = "";
    Json *j = parse_n(text, strlen(text), err, sizeof err);
    CHECK("tree parses", j != NULL, "%s", err);
    if (!j) return;
    const JsonValue *r = json_root(j);
    CHECK("root is an object of 4", r->type == JSON_OBJECT && r->n == 4, "type %s n %d", json_type_name(r->type), r->n);
    CHECK("keys in order", r->n == 4 && !strcmp(r->keys[0], "model") && !strcmp(r->keys[1], "n") && !strcmp(r->keys[2], "s") &&
                               !strcmp(r->keys[3], "e"),
          "wrong keys");
    const JsonValue *m = json_get(r, "model");
    CHECK("string unescaped", m && m->type == JSON_STRING && m->length == 3 && !memcmp(m->string, "m\xC3\xA9", 4),
          "got %s", m ? m->string : "(none)");
    const JsonValue *n = json_get(r, "n");
    CHECK("array of 6", n && n->type == JSON_ARRAY && n->n == 6, "wrong array");
    if (n && n->n == 6) {
        CHECK("array items", n->items[0].type == JSON_NUMBER && n->items[0].number == 1 && n->items[1].number == -2.5 &&
                                 n->items[2].type == JSON_TRUE && n->items[3].type == JSON_FALSE &&
                                 n->items[4].type == JSON_NULL && n->items[5].type == JSON_OBJECT && n->items[5].n == 0,
              "wrong items");
    }
    const JsonValue *s = json_get(r, "s");
    CHECK("escaped quote", s && s->length == 3 && !strcmp(s->string, "a\"b"), "wrong");
    const JsonValue *e = json_get(r, "e");
    CHECK("empty string", e && e->type == JSON_STRING && e->length == 0 && e->string && e->string[0] == 0, "wrong");
    CHECK("json_get of a missing key", json_get(r, "absent") == NULL && json_get(r, "mode") == NULL, "found");
    CHECK("json_get of a non-object", json_get(n, "model") == NULL && json_get(NULL, "model") == NULL, "found");
    CHECK("type names", !strcmp(json_type_name(JSON_NULL), "null") && !strcmp(json_type_name(JSON_TRUE), "boolean") &&
                            !strcmp(json_type_name(JSON_FALSE), "boolean") && !strcmp(json_type_name(JSON_NUMBER), "number") &&
                            !strcmp(json_type_name(JSON_STRING), "string") && !strcmp(json_type_name(JSON_ARRAY), "array") &&
                            !strcmp(json_type_name(JSON_OBJECT), "object"),
          "wrong names");
    json_free(j);
    json_free(NULL);

    /* numbers read exactly */
    const char *nums = "[0,-0,9007199254740993,1e-400,0.1,5e-324,1.7976931348623157e308,123456789012345678901234567890]";
    j = parse_n(nums, strlen(nums), err, sizeof err);
    r = j ? json_root(j) : NULL;
    CHECK("number values", r && r->n == 8 && r->items[0].number == 0 && !signbit(r->items[0].number) &&
                               r->items[1].number == 0 && signbit(r->items[1].number) &&
                               r->items[2].number == 9007199254740992.0 && r->items[3].number == 0 && r->items[4].number == 0.1 &&
                               r->items[5].number == 5e-324 && r->items[6].number == DBL_MAX &&
                               r->items[7].number == 1.2345678901234568e29,
          "%s", j ? "wrong values" : err);
    json_free(j);

    /* a long string in its own arena block, and many small ones */
    Buf b = {0};
    buf_adds(&b, "[\"");
    for (int i = 0; i < 200000; i++) buf_add(&b, "x", 1);
    buf_adds(&b, "\"");
    for (int i = 0; i < 20000; i++) buf_adds(&b, ",\"ab\\n\"");
    buf_adds(&b, "]");
    j = parse_n(b.data, b.len, err, sizeof err);
    r = j ? json_root(j) : NULL;
    CHECK("long string and 20000 short ones", r && r->n == 20001 && r->items[0].length == 200000 &&
                                                  strlen(r->items[0].string) == 200000 && r->items[20000].length == 3 &&
                                                  !strcmp(r->items[20000].string, "ab\n"),
          "%s", j ? "wrong tree" : err);
    json_free(j);
    buf_free(&b);

    /* err may be NULL or tiny */
    CHECK("NULL err buffer", json_parse("[", 1, NULL, 0) == NULL, "accepted");
    char tiny[5];
    CHECK("tiny err buffer", json_parse("[", 1, tiny, sizeof tiny) == NULL && strlen(tiny) < sizeof tiny, "overflow");
}

static void test_buf(void) {
    Buf z = {0};
    buf_add(&z, "", 0);
    CHECK("zeroed Buf takes an empty append", z.data && z.len == 0 && z.data[0] == 0, "wrong");
    buf_free(&z);
    Buf b;
    buf_init(&b);
    CHECK("buf_init", b.len == 0 && b.data && b.data[0] == 0, "wrong");
    buf_adds(&b, "abc");
    buf_printf(&b, "-%d-%s", 42, "x");
    CHECK("buf_adds and buf_printf", b.len == 8 && !strcmp(b.data, "abc-42-x"), "got %s", b.data);
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    buf_printf(&b, "%s|%s", big, big);
    CHECK("buf_printf growing", b.len == 8 + 1999 && b.data[b.len] == 0 && b.data[8 + 999] == '|' && b.data[b.len - 1] == 'q',
          "len %zu", b.len);
    buf_clear(&b);
    CHECK("buf_clear", b.len == 0 && b.data[0] == 0, "wrong");
    buf_free(&b);
    CHECK("buf_free", b.data == NULL && b.len == 0 && b.cap == 0, "wrong");
}

/** json_write_string(s) must be exactly @p expect. */
static void writes_string(const char *name, const char *s, size_t n, const char *expect) {
    Buf b = {0};
    json_write_string(&b, s, n);
    CHECK(name, b.len == strlen(expect) && !memcmp(b.data, expect, b.len), "got [%s] wanted [%s]", b.data, expect);
    buf_free(&b);
}

static void writes_number(const char *name, double x, const char *expect) {
    Buf b = {0};
    json_write_number(&b, x);
    CHECK(name, !strcmp(b.data, expect), "got %s wanted %s", b.data, expect);
    buf_free(&b);
}

/*
 * The writer's expected output for random strings, computed differently from json.c: decode each
 * sequence to its code point and check the code point's range, instead of the second byte's.
 */
static size_t reference_utf8_length(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_writer(void) {
    writes_string("plain string", "hello", 5, "\"hello\"");
    writes_string("empty string", "", 0, "\"\"");
    writes_string("escapes", "a\"b\\c\n\t\r\b\f\x01\x1f/", 13, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\"");
    writes_string("NUL", "a\0b", 3, "\"a\\u0000b\"");
    writes_string("DEL copied", "\x7f", 1, "\"\x7f\"");
    writes_string("valid UTF-8 copied", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF", 13,
                  "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\"");
    writes_string("invalid byte", "\xff", 1, "\"\xEF\xBF\xBD\"");
    writes_string("overlong NUL", "a\xC0\x80z", 4, "\"a\xEF\xBF\xBD\xEF\xBF\xBDz\"");
    writes_string("UTF-8 surrogate", "\xED\xA0\x80", 3, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    writes_string("truncated at the end", "ab\xE2\x82", 4, "\"ab\xEF\xBF\xBD\xEF\xBF\xBD\"");
    writes_string("above U+10FFFF", "\xF4\x90\x80\x80", 4,
                  "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");

    /* random strings: written, they parse back to themselves with invalid sequences as U+FFFD */
    int bad = 0, n_invalid = 0;
    char why[200] = "";
    for (int t = 0; t < 3000 && !bad; t++) {
        size_t n = rng() % 64;
        unsigned char s[256];
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng();
            if (r % 3 == 0) { /* a random code point, encoded, so that valid sequences are common */
                unsigned cp = (unsigned)(r >> 8) % 0x110000;
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0x41;
                unsigned char tmp[4];
                size_t m = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (m == 1) tmp[0] = (unsigned char)cp;
                else {
                    for (size_t k = m - 1; k > 0; k--, cp >>= 6) tmp[k] = (unsigned char)(0x80 | (cp & 0x3F));
                    tmp[0] = (unsigned char)((m == 2 ? 0xC0 : m == 3 ? 0xE0 : 0xF0) | cp);
                }
                memcpy(s + len, tmp, m);
                len += m;
            } else {
                s[len++] = (unsigned char)(1 + (r >> 8) % 255); /* any byte but NUL, which JSON strings may not hold */
            }
        }
        Buf expect = {0};
        buf_add(&expect, "", 0);
        for (size_t i = 0; i < len;) {
            size_t m = reference_utf8_length(s + i, len - i);
            if (m) buf_add(&expect, s + i, m), i += m;
            else buf_add(&expect, "\xEF\xBF\xBD", 3), i++, n_invalid++;
        }
        Buf b = {0};
        json_write_string(&b, (const char *)s, len);
        char err[200] = "";
        Json *j = parse_n(b.data, b.len, err, sizeof err);
        const JsonValue *r = j ? json_root(j) : NULL;
        if (!r || r->type != JSON_STRING || r->length != expect.len || memcmp(r->string, expect.data, expect.len)) {
            bad = 1;
            snprintf(why, sizeof why, "case %d: %s", t, j ? "different string" : err);
        }
        json_free(j);
        buf_free(&b);
        buf_free(&expect);
    }
    CHECK("random strings round trip", !bad && n_invalid > 100, "%s (invalid sequences seen: %d)", why, n_invalid);

    writes_number("zero", 0.0, "0");
    writes_number("minus zero", -0.0, "-0");
    writes_number("integer", 42, "42");
    writes_number("negative integer", -7, "-7");
    writes_number("2^53 - 1", 9007199254740991.0, "9007199254740991");
    writes_number("-(2^53 - 1)", -9007199254740991.0, "-9007199254740991");
    writes_number("2^53", 9007199254740992.0, "9007199254740992");
    writes_number("1e20", 1e20, "1e+20");
    writes_number("0.1", 0.1, "0.1");
    writes_number("1.5", 1.5, "1.5");
    writes_number("1/3", 1.0 / 3, "0.3333333333333333");
    writes_number("NaN", NAN, "null");
    writes_number("infinity", INFINITY, "null");
    writes_number("minus infinity", -INFINITY, "null");

    /* random doubles (random bit patterns) read back bit for bit */
    bad = 0;
    for (int t = 0; t < 20000 && !bad; t++) {
        uint64_t bits = rng();
        if (t % 4 == 0) bits = (bits & 0x801FFFFFFFFFFFFFull) | 0x4300000000000000ull; /* near 2^53 */
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        Buf b = {0};
        json_write_number(&b, x);
        char err[200] = "";
        Json *j = parse_n(b.data, b.len, err, sizeof err);
        double y = j ? json_root(j)->number : 0;
        if (!j || memcmp(&x, &y, sizeof x) != 0) {
            bad = 1;
            snprintf(why, sizeof why, "%.17g written as %s: %s", x, b.data, j ? "read back different" : err);
        }
        json_free(j);
        buf_free(&b);
    }
    CHECK("random doubles round trip", !bad, "%s", why);
    writes_number("smallest subnormal", 5e-324, "4.94065645841247e-324");
}

/* --write-cases: the documents above (good and bad) as fuzzer seeds. */
static int write_cases(const char *dir) {
    mkdir(dir, 0777);
    int k = 0;
    for (size_t i = 0; i < sizeof good_docs / sizeof *good_docs + sizeof bad_docs / sizeof *bad_docs; i++) {
        size_t ng = sizeof good_docs / sizeof *good_docs;
        const char *text = i < ng ? good_docs[i].text : bad_docs[i - ng].text;
        size_t n = i < ng ? strlen(text) : bad_docs[i - ng].n ? bad_docs[i - ng].n : strlen(text);
        char path[4096];
        snprintf(path, sizeof path, "%s/json-%03d.json", dir, k++);
        FILE *f = fopen(path, "wb");
        if (!f || (n && fwrite(text, 1, n, f) != n) || fclose(f) != 0) fatal("%s: cannot write", path);
    }
    printf("wrote %d JSON cases to %s\n", k, dir);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-cases")) return write_cases(argv[2]);
    test_documents();
    test_big_objects();
    test_depth();
    test_tree();
    test_buf();
    test_writer();
    return UNIT_EXIT();
}

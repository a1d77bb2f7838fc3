/**
 * @file fuzz_server.c
 * @brief libFuzzer target for the server's two parsers (chapter 9): http_parse_head() and
 * json_parse() on arbitrary bytes must either succeed with what they promise, or fail with a
 * status and a reason; never read outside the input, overflow, leak or crash.
 *
 *     make fuzz FUZZ_TARGET=server FUZZ_TIME=300
 *
 * builds it with `clang -fsanitize=fuzzer,address,undefined` and runs it on seeds that
 * tests/unit_http.c and tests/unit_json.c write (their good and malformed cases). For each input:
 *
 * - the head parser runs on an exact-size copy. When it returns a head length, every string it
 *   promises (target, header names and values) must end with its NUL inside the head, the parsed
 *   fields must agree with the headers (Content-Length, Connection), and the same bytes one short
 *   must be "need more". When it fails, the status must be one of the documented ones.
 * - the JSON reader runs on the whole input and on the bytes after the first blank line (a body).
 *   A parsed tree is walked (every string's length is its strlen, json_get finds every key's own
 *   value), written back through json_write_string/json_write_number, and the output must parse
 *   to the same tree.
 * - the whole input, written as one JSON string, must parse back as a string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { FUZZ_MAX_HEAD = 8192 };

/** 1 when @p s lies in [lo, hi) and its NUL does too. */
static int string_inside(const char *s, const char *lo, const char *hi) {
    if (!s || s < lo || s >= hi) return 0;
    return memchr(s, 0, (size_t)(hi - s)) != NULL;
}

static void check_head(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (!copy) abort();
    if (size) memcpy(copy, data, size);
    HttpRequest req;
    HttpError err;
    long r = http_parse_head(copy, size, FUZZ_MAX_HEAD, &req, &err);
    if (r < -1 || r > (long)size || r > FUZZ_MAX_HEAD) abort();
    if (r == 0 && size >= FUZZ_MAX_HEAD) abort(); /* "need more" only below the limit */
    if (r == -1) {
        static const int statuses[] = {400, 405, 411, 414, 431, 505};
        int known = 0;
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) known |= err.status == statuses[i];
        if (!known || !err.message[0]) abort();
    }
    if (r > 0) {
        const char *end = copy + r;
        if (!string_inside(req.target, copy, end) || req.target[0] != '/') abort();
        size_t ml = strnlen(req.method, sizeof req.method), pl = strnlen(req.path, sizeof req.path);
        if (ml == 0 || ml >= sizeof req.method || pl == 0 || pl >= sizeof req.path) abort();
        if (strncmp(req.target, req.path, pl) != 0) abort();
        if (req.minor != 0 && req.minor != 1) abort();
        if (req.keep_alive != 0 && req.keep_alive != 1) abort();
        if (req.n_headers < 0 || req.n_headers > HTTP_MAX_HEADERS) abort();
        long long length = -1;
        int saw_close = 0, saw_keep_alive = 0;
        for (int i = 0; i < req.n_headers; i++) {
            const HttpHeader *h = &req.headers[i];
            if (!string_inside(h->name, copy, end) || !string_inside(h->value, copy, end) || !h->name[0]) abort();
            if (http_header(&req, h->name) == NULL) abort();
            if (strcasecmp(h->name, "Transfer-Encoding") == 0) abort(); /* must have been 411 */
            if (strcasecmp(h->name, "Content-Length") == 0) {
                char *stop;
                long long v = strtoll(h->value, &stop, 10);
                if (*stop || !h->value[0] || h->value[0] == '-' || h->value[0] == '+' || (length >= 0 && v != length)) abort();
                length = v;
            }
            if (strcasecmp(h->name, "Connection") == 0) {
                /* the comma list's elements, trimmed, compared whole */
                char opts[FUZZ_MAX_HEAD + 1];
                snprintf(opts, sizeof opts, "%s", h->value);
                for (char *save = NULL, *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    while (*t == ' ' || *t == '\t') t++;
                    size_t n = strlen(t);
                    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = 0;
                    if (!strcasecmp(t, "close")) saw_close = 1;
                    if (!strcasecmp(t, "keep-alive")) saw_keep_alive = 1;
                }
            }
        }
        if (req.content_length != length) abort();
        if (req.keep_alive != (!saw_close && (req.minor == 1 || saw_keep_alive))) abort();
        /* one byte short of a complete head is never complete */
        memcpy(copy, data, size);
        HttpRequest req2;
        HttpError err2;
        if (http_parse_head(copy, (size_t)r - 1, FUZZ_MAX_HEAD, &req2, &err2) != 0) abort();
    }
    free(copy);
}

static void walk(const JsonValue *v) {
    switch (v->type) {
    case JSON_STRING:
        if (!v->string || strlen(v->string) != v->length) abort();
        break;
    case JSON_ARRAY:
        for (int i = 0; i < v->n; i++) walk(&v->items[i]);
        break;
    case JSON_OBJECT:
        for (int i = 0; i < v->n; i++) {
            if (json_get(v, v->keys[i]) != &v->items[i]) abort(); /* keys are unique */
            walk(&v->items[i]);
        }
        break;
    default:
        if (v->n != 0) abort();
        break;
    }
}

static void write_value(Buf *b, const JsonValue *v) {
    switch (v->type) {
    case JSON_NULL: buf_adds(b, "null"); break;
    case JSON_TRUE: buf_adds(b, "true"); break;
    case JSON_FALSE: buf_adds(b, "false"); break;
    case JSON_NUMBER: json_write_number(b, v->number); break;
    case JSON_STRING: json_write_string(b, v->string, v->length); break;
    case JSON_ARRAY:
        buf_adds(b, "[");
        for (int i = 0; i < v->n; i++) {
            if (i) buf_adds(b, ",");
            write_value(b, &v->items[i]);
        }
        buf_adds(b, "]");
        break;
    case JSON_OBJECT:
        buf_adds(b, "{");
        for (int i = 0; i < v->n; i++) {
            if (i) buf_adds(b, ",");
            json_write_string(b, v->keys[i], strlen(v->keys[i]));
            buf_adds(b, ":");
            write_value(b, &v->items[i]);
        }
        buf_adds(b, "}");
        break;
    }
}

static int same_value(const JsonValue *a, const JsonValue *b) {
    if (a->type != b->type || a->n != b->n) return 0;
    switch (a->type) {
    case JSON_NUMBER: return memcmp(&a->number, &b->number, sizeof a->number) == 0;
    case JSON_STRING: return a->length == b->length && memcmp(a->string, b->string, a->length) == 0;
    case JSON_ARRAY:
    case JSON_OBJECT:
        for (int i = 0; i < a->n; i++) {
            if (a->type == JSON_OBJECT && strcmp(a->keys[i], b->keys[i]) != 0) return 0;
            if (!same_value(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    default: return 1;
    }
}

static void check_json(const uint8_t *data, size_t size) {
    char err[256];
    Json *j = json_parse((const char *)data, size, err, sizeof err);
    if (!j) {
        if (strncmp(err, "at byte ", 8) != 0) abort(); /* every failure says where and why */
        return;
    }
    const JsonValue *root = json_root(j);
    walk(root);
    Buf b = {0};
    write_value(&b, root);
    Json *again = json_parse(b.data, b.len, err, sizeof err);
    if (!again || !same_value(root, json_root(again))) abort();
    json_free(again);
    buf_free(&b);
    json_free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_head(data, size);
    check_json(data, size);
    for (size_t i = 0; i + 4 <= size; i++)
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            check_json(data + i + 4, size - i - 4);
            break;
        }
    /* any bytes, written as a JSON string, read back as one */
    Buf b = {0};
    json_write_string(&b, (const char *)data, size);
    char err[256];
    Json *j = json_parse(b.data, b.len, err, sizeof err);
    if (memchr(data, 0, size) == NULL) {
        if (!j || json_root(j)->type != JSON_STRING) abort();
    } else if (j) {
        abort(); /* a NUL is written as \u0000, which the reader refuses */
    }
    json_free(j);
    buf_free(&b);
    return 0;
}

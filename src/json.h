/**
 * @file json.h
 * @brief A strict JSON reader and a small writer, for the server's requests and replies (chapter 9).
 *
 * The reader turns a request body into a tree (RFC 8259, nothing more: no comments, no trailing
 * commas, no NaN, no duplicate keys, strings valid UTF-8 without lone surrogates or NUL), with a
 * depth limit, so that a hostile body costs at most its own size in memory and never a crash. Every
 * node lives in one arena that json_free() releases at once. The writer appends to a growing byte
 * buffer and escapes strings so that anything it writes is valid JSON, whatever bytes it is given.
 */
#ifndef LLAMABOOK_JSON_H
#define LLAMABOOK_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

/** One value of the tree. */
typedef struct JsonValue {
    JsonType type;
    double number;            /**< JSON_NUMBER */
    const char *string;       /**< JSON_STRING: the unescaped UTF-8, NUL-terminated */
    size_t length;            /**< JSON_STRING: its bytes, without the NUL */
    int n;                    /**< JSON_ARRAY, JSON_OBJECT: how many items or members */
    struct JsonValue *items;  /**< (n) the items, or the members' values, in the order of the text */
    const char **keys;        /**< (n) JSON_OBJECT: the members' names (unescaped, NUL-terminated) */
} JsonValue;

/** A parsed document: its root and the arena that holds every node and string. */
typedef struct Json Json;

/** The deepest nesting json_parse() accepts (arrays and objects inside each other). */
#define JSON_MAX_DEPTH 64

/**
 * Parse @p len bytes of @p text (not NUL-terminated). Returns the document, or NULL with a
 * one-line reason in @p err ("at byte 17: expected ':' after an object key"). Never reads
 * outside text[0..len).
 */
Json *json_parse(const char *text, size_t len, char *err, size_t err_len);

/** The document's root value. */
const JsonValue *json_root(const Json *j);

void json_free(Json *j);

/** The member @p key of object @p v, or NULL (also when @p v is NULL or not an object). */
const JsonValue *json_get(const JsonValue *v, const char *key);

/** The name of @p t, for messages: "null", "boolean", "number", "string", "array", "object". */
const char *json_type_name(JsonType t);

/** A growing byte buffer; every append either succeeds or exits through fatal() when memory runs out. */
typedef struct {
    char *data; /**< the bytes, always NUL-terminated after len */
    size_t len, cap;
} Buf;

void buf_init(Buf *b);
void buf_free(Buf *b);
void buf_clear(Buf *b);
void buf_add(Buf *b, const void *data, size_t n);
void buf_adds(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/**
 * Append @p n bytes of @p s as a JSON string, quotes included: `"` and `\` and control characters
 * escaped, valid UTF-8 copied as it is, and every byte that is not part of valid UTF-8 written as
 * U+FFFD, so the output is valid JSON whatever @p s holds.
 */
void json_write_string(Buf *b, const char *s, size_t n);

/** Append a number as JSON: integers exactly, others with enough digits to read back the same double; NaN and infinities as null. */
void json_write_number(Buf *b, double x);

#endif

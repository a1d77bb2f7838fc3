/**
 * @file http.h
 * @brief Just enough HTTP/1.1 for the server (chapter 9): reading requests with limits, writing
 * responses and server-sent events.
 *
 * The parser, http_parse_head(), works on bytes in memory and knows nothing of sockets, so that it
 * can be fuzzed and unit-tested; http_read_request() feeds it from a socket under a size limit and
 * a deadline. Requests are GET or POST (others: 405), a body needs a Content-Length (a chunked body:
 * 411), `Expect: 100-continue` is answered, and keep-alive follows HTTP/1.1's rules (HTTP/1.0 and
 * `Connection: close` close). Everything else that is malformed gets status 400 with a reason.
 */
#ifndef LLAMABOOK_HTTP_H
#define LLAMABOOK_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

/** The most header fields a request may have. */
#define HTTP_MAX_HEADERS 64

typedef struct {
    const char *name, *value; /**< NUL-terminated, inside the request's own copy of its head; the value trimmed */
} HttpHeader;

/** A parsed request. Its strings point into the buffer it was parsed from, which must outlive it. */
typedef struct {
    char method[8];        /**< "GET", "POST", ... (at most 7 characters, else 400) */
    const char *target;    /**< the request target as sent ("/v1/models?x=1"), NUL-terminated */
    char path[256];        /**< the target's path, without the query ("/v1/models"); longer targets: 414 */
    int minor;             /**< HTTP/1.minor: 0 or 1 (HTTP/2 and others: 505) */
    HttpHeader headers[HTTP_MAX_HEADERS];
    int n_headers;
    long long content_length; /**< -1 when absent */
    int keep_alive;        /**< 1 when the connection stays open after the response */
    int expect_continue;   /**< the client sent `Expect: 100-continue` */
    char *body;            /**< (content_length bytes, NUL after them) set by http_read_request() */
    size_t body_len;
} HttpRequest;

/** A failure to parse or read, as the status to answer with and a one-line reason. */
typedef struct {
    int status;        /**< 400, 405, 408, 411, 413, 414, 431, 505; 0 when the client simply went away */
    char message[160];
} HttpError;

/**
 * Parse the head (request line and header fields, up to and including the empty line) of a
 * request at the start of @p buf (@p len bytes). The parser writes NULs into @p buf to end the
 * strings it points to. Returns the head's length in bytes when it is complete and valid, 0 when
 * more bytes are needed (and @p len is still within @p max_head), or -1 with @p err set. Line
 * endings are CRLF (a bare LF is accepted too); obsolete line folding, a field name with spaces
 * before the colon, two Content-Length fields that differ, a negative or non-decimal length,
 * Transfer-Encoding (411) and a head longer than @p max_head (431) are errors.
 */
long http_parse_head(char *buf, size_t len, size_t max_head, HttpRequest *req, HttpError *err);

/** The value of header @p name (compared ignoring case), or NULL. */
const char *http_header(const HttpRequest *req, const char *name);

/** Limits of one connection. */
typedef struct {
    size_t max_head;       /**< bytes of request line and headers (8 KiB) */
    size_t max_body;       /**< bytes of body (e.g. 1 MiB): larger is 413 */
    int idle_ms;           /**< how long to wait for the first byte of a request on a kept-alive connection */
    int read_ms;           /**< how long the whole request may take once it has begun (408 after it) */
} HttpLimits;

/** A connection's reading state: bytes received beyond the current request wait here for the next one. */
typedef struct {
    int fd;
    char *buf;             /**< (cap) */
    size_t len, cap;
    size_t used;           /**< bytes of buf that belong to the request last returned */
} HttpConn;

void http_conn_init(HttpConn *c, int fd);
void http_conn_free(HttpConn *c);  /**< frees the buffer; does not close fd */

/**
 * Read the next request from @p c (head, then body of Content-Length bytes), sending
 * `100 Continue` first when asked for. Returns 1 with @p req filled in (valid until the next
 * call), 0 when the client closed the connection or stayed idle past idle_ms before sending
 * anything (nothing to answer), or -1 with @p err set (answer err->status unless it is 0).
 * A stop flag, when non-NULL and set, ends the wait as if the client had gone (checked at
 * least every 100 ms).
 */
int http_read_request(HttpConn *c, const HttpLimits *lim, const atomic_int *stop, HttpRequest *req, HttpError *err);

/** The reason phrase of a status code ("Not Found"). */
const char *http_reason(int status);

/**
 * Write a complete response: status line, Content-Type, Content-Length, Connection (keep-alive or
 * close) and any @p extra_headers (each line ending in CRLF, or NULL), then the body. Returns 0,
 * or -1 when the client has gone (the write failed; SIGPIPE must be ignored by the program).
 */
int http_send(int fd, int status, const char *content_type, const char *body, size_t len, int keep_alive,
              const char *extra_headers);

/** Start a stream of server-sent events: 200, text/event-stream, no-cache, Connection: close. 0 or -1. */
int http_send_sse_head(int fd);

/** One event: `data: ` + @p data + a blank line (@p data must not hold a newline). 0 or -1. */
int http_send_sse_data(int fd, const char *data, size_t len);

/** Write @p len bytes as they are (several events at once, already formatted); 0 or -1. */
int http_send_bytes(int fd, const char *data, size_t len);

/** 1 when the peer of @p fd has closed its side or the connection broke (a poll without waiting). */
int http_peer_gone(int fd);

#endif

/**
 * @file http.c
 * @brief The HTTP/1.1 subset of http.h: a pure parser for request heads, a reader that feeds it
 * from a socket under limits and deadlines, and the writers of responses and server-sent events.
 *
 * The parser is strict where looseness has let attacks through elsewhere (request smuggling lives
 * in the gaps between two parsers' ideas of where a body ends): one Content-Length, digits only;
 * no Transfer-Encoding at all; no spaces before a field's colon; no folded lines; no control
 * characters. It only looks at a head once the empty line that ends it has arrived, so it never
 * has to remember where it stopped, and a head that is still growing is either "need more" or,
 * beyond max_head, 431.
 *
 * The reader waits with poll() in steps of at most 100 ms, so that a stop flag is noticed soon,
 * and keeps whatever bytes arrive after a request's body for the next call (pipelining). A body
 * over the limit is refused from its Content-Length, before a byte of it is read.
 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: the server sets SO_NOSIGPIPE and ignores SIGPIPE instead */
#endif

/* ------------------------------------------------------------------------ */
/* Parsing a head                                                           */

static long http_fail(HttpError *err, int status, const char *fmt, ...) LB_PRINTF(3, 4);
static long http_fail(HttpError *err, int status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/** RFC 9110's tchar: the characters of a method or a field name. */
static int is_token_char(unsigned char c) {
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/**
 * Where the head in buf[0..len) ends (just after its empty line), or 0 when no empty line is in
 * the first @p limit bytes. Empty lines before the request line are skipped (RFC 9112 lets a
 * server ignore them; clients send a stray CRLF after a body), so the end is the first empty line
 * after a non-empty one. @p start receives where the request line begins.
 */
static size_t find_head_end(const char *buf, size_t limit, size_t *start) {
    size_t i = 0;
    while (i < limit && (buf[i] == '\r' || buf[i] == '\n')) {
        if (buf[i] == '\r' && (i + 1 >= limit || buf[i + 1] != '\n')) break; /* a CR alone: let the parser refuse it */
        i += buf[i] == '\r' ? 2 : 1;
    }
    *start = i;
    size_t line = i;
    for (; i < limit; i++) {
        if (buf[i] != '\n') continue;
        size_t n = i - line;
        if (n > 0 && buf[i - 1] == '\r') n--;
        if (n == 0 && line > *start) return i + 1;
        line = i + 1;
    }
    return 0;
}

/** Cut the line at @p *pos (ending in LF or CRLF, before @p end) off with a NUL; returns its start. */
static char *next_line(char *buf, size_t *pos, size_t end, size_t *line_len) {
    char *line = buf + *pos;
    char *nl = memchr(line, '\n', end - *pos);
    size_t n = (size_t)(nl - line);
    *pos += n + 1;
    if (n > 0 && line[n - 1] == '\r') n--;
    line[n] = 0;
    *line_len = n;
    return line;
}

static int has_control_char(const char *s, size_t n, int allow_tab) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7F) return 1;
    }
    return 0;
}

/** The request line "METHOD SP target SP HTTP/1.x", cut into @p req. */
static long parse_request_line(char *line, size_t n, HttpRequest *req, HttpError *err) {
    size_t m = 0;
    while (m < n && is_token_char((unsigned char)line[m])) m++;
    if (m == 0 || m >= n || line[m] != ' ') return http_fail(err, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
    char *target = line + m + 1;
    char *sp = memchr(target, ' ', n - (m + 1));
    if (!sp) return http_fail(err, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
    size_t target_len = (size_t)(sp - target);
    char *version = sp + 1;
    size_t version_len = n - (size_t)(version - line);

    if (version_len != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' || version[6] != '.' ||
        version[7] < '0' || version[7] > '9')
        return http_fail(err, 400, "malformed HTTP version (expected HTTP/1.1)");
    if (version[5] != '1' || version[7] > '1') return http_fail(err, 505, "HTTP/%c.%c is not supported (use HTTP/1.1)", version[5], version[7]);
    req->minor = version[7] - '0';

    if (target_len == 0 || target[0] != '/') return http_fail(err, 400, "the request target must be a path starting with '/'");
    for (size_t i = 0; i < target_len; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7F)
            return http_fail(err, 400, "invalid character in the request target");
    size_t path_len = 0;
    while (path_len < target_len && target[path_len] != '?' && target[path_len] != '#') path_len++;
    if (path_len >= sizeof req->path) return http_fail(err, 414, "request path longer than %zu bytes", sizeof req->path - 1);
    memcpy(req->path, target, path_len);
    req->path[path_len] = 0;
    target[target_len] = 0;
    req->target = target;

    if (m >= sizeof req->method) return http_fail(err, 400, "method name longer than %zu characters", sizeof req->method - 1);
    memcpy(req->method, line, m);
    req->method[m] = 0;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
        return http_fail(err, 405, "method %s is not supported (GET and POST are)", req->method);
    return 0;
}

/** Compare @p n bytes at @p s with the lowercase word @p w, ignoring case. */
static int token_is(const char *s, size_t n, const char *w) { return strlen(w) == n && strncasecmp(s, w, n) == 0; }

/** Apply a Connection field: a comma list of options, of which "close" and "keep-alive" matter. */
static void apply_connection(const char *v, int *saw_close, int *saw_keep_alive) {
    for (;;) {
        const char *comma = strchr(v, ',');
        const char *e = comma ? comma : v + strlen(v);
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t n = (size_t)(e - v);
        if (token_is(v, n, "close")) *saw_close = 1;
        else if (token_is(v, n, "keep-alive")) *saw_keep_alive = 1;
        if (!comma) break;
        v = comma + 1;
    }
}

/** Content-Length: one or more decimal digits, nothing else, at most LLONG_MAX. */
static long parse_content_length(const char *v, long long *out, HttpError *err) {
    if (!*v) return http_fail(err, 400, "empty Content-Length");
    long long x = 0;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9') return http_fail(err, 400, "Content-Length must be a decimal number of bytes");
        int d = *c - '0';
        if (x > (LLONG_MAX - d) / 10) return http_fail(err, 400, "Content-Length is too large");
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/** The meaning of the fields the server cares about: length, connection, expectation. */
static long interpret_headers(HttpRequest *req, HttpError *err) {
    int saw_close = 0, saw_keep_alive = 0;
    for (int i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name, *value = req->headers[i].value;
        if (strcasecmp(name, "Transfer-Encoding") == 0)
            return http_fail(err, 411, "chunked request bodies are not supported; send Content-Length");
        if (strcasecmp(name, "Content-Length") == 0) {
            long long len = 0;
            if (parse_content_length(value, &len, err) != 0) return -1;
            if (req->content_length >= 0 && req->content_length != len)
                return http_fail(err, 400, "two Content-Length fields that differ");
            req->content_length = len;
        } else if (strcasecmp(name, "Connection") == 0) {
            apply_connection(value, &saw_close, &saw_keep_alive);
        } else if (strcasecmp(name, "Expect") == 0) {
            /* RFC 9110: a server must ignore 100-continue from an HTTP/1.0 client */
            if (strcasecmp(value, "100-continue") == 0 && req->minor == 1) req->expect_continue = 1;
        }
    }
    req->keep_alive = saw_close ? 0 : req->minor == 1 ? 1 : saw_keep_alive;
    return 0;
}

long http_parse_head(char *buf, size_t len, size_t max_head, HttpRequest *req, HttpError *err) {
    memset(req, 0, sizeof *req);
    req->content_length = -1;
    req->target = "";
    if (err) {
        err->status = 0;
        err->message[0] = 0;
    }
    size_t limit = len < max_head ? len : max_head, start;
    size_t end = find_head_end(buf, limit, &start);
    if (end == 0) {
        if (len >= max_head) return http_fail(err, 431, "request head larger than %zu bytes", max_head);
        return 0;
    }
    if (end > (size_t)LONG_MAX) return http_fail(err, 431, "request head too large");

    size_t pos = start, n;
    char *line = next_line(buf, &pos, end, &n);
    if (has_control_char(line, n, 0)) return http_fail(err, 400, "control character in the request line");
    if (parse_request_line(line, n, req, err) != 0) return -1;

    for (;;) {
        line = next_line(buf, &pos, end, &n);
        if (n == 0) break; /* the empty line that ends the head */
        if (line[0] == ' ' || line[0] == '\t') return http_fail(err, 400, "obsolete line folding is not allowed");
        char *colon = memchr(line, ':', n);
        if (!colon) return http_fail(err, 400, "header line without a colon");
        size_t name_len = (size_t)(colon - line);
        if (name_len == 0) return http_fail(err, 400, "empty header name");
        for (size_t i = 0; i < name_len; i++) {
            if (line[i] == ' ' || line[i] == '\t') return http_fail(err, 400, "whitespace before the colon of a header");
            if (!is_token_char((unsigned char)line[i])) return http_fail(err, 400, "invalid character in a header name");
        }
        char *value = colon + 1, *value_end = line + n;
        while (value < value_end && (*value == ' ' || *value == '\t')) value++;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) value_end--;
        if (has_control_char(value, (size_t)(value_end - value), 1)) return http_fail(err, 400, "control character in a header value");
        if (req->n_headers >= HTTP_MAX_HEADERS) return http_fail(err, 431, "more than %d header fields", HTTP_MAX_HEADERS);
        *colon = 0;
        *value_end = 0;
        req->headers[req->n_headers].name = line;
        req->headers[req->n_headers].value = value;
        req->n_headers++;
    }
    if (interpret_headers(req, err) != 0) return -1;
    return (long)end;
}

const char *http_header(const HttpRequest *req, const char *name) {
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Reading from a socket                                                    */

void http_conn_init(HttpConn *c, int fd) {
    memset(c, 0, sizeof *c);
    c->fd = fd;
}

void http_conn_free(HttpConn *c) {
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = c->used = 0;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** Grow c->buf so that it holds at least @p need bytes (never beyond what the limits allow). */
static void conn_reserve(HttpConn *c, size_t need) {
    if (need <= c->cap) return;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *b = realloc(c->buf, cap);
    if (!b) fatal("out of memory (a request buffer of %zu bytes)", cap);
    c->buf = b;
    c->cap = cap;
}

enum { WAIT_DATA = 1, WAIT_TIMEOUT = 0, WAIT_STOP = -1, WAIT_CLOSED = -2 };

/**
 * Receive more bytes into c->buf, at most up to @p max_len bytes in all, waiting until @p deadline
 * (ms on the monotonic clock). Returns WAIT_DATA, WAIT_TIMEOUT, WAIT_STOP or WAIT_CLOSED (end of
 * stream or a broken connection).
 */
static int receive_more(HttpConn *c, size_t max_len, long long deadline, const atomic_int *stop) {
    size_t want = max_len - c->len;
    if (want > 65536) want = 65536;
    conn_reserve(c, c->len + want);
    for (;;) {
        if (stop && *stop) return WAIT_STOP;
        long long left = deadline - now_ms();
        if (left <= 0) return WAIT_TIMEOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pfd, 1, left < 100 ? (int)left : 100);
        if (r < 0) {
            if (errno == EINTR) continue;
            return WAIT_CLOSED;
        }
        if (r == 0) continue;
        ssize_t got = recv(c->fd, c->buf + c->len, want, MSG_DONTWAIT);
        if (got > 0) {
            c->len += (size_t)got;
            return WAIT_DATA;
        }
        if (got == 0) return WAIT_CLOSED;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return WAIT_CLOSED;
    }
}

/** What a failed wait means in the middle of a request (WAIT_STOP and idle ends are handled by the caller). */
static int wait_failure(int w, HttpError *err, const HttpLimits *lim, const char *part) {
    if (w == WAIT_TIMEOUT) return (int)http_fail(err, 408, "the %s did not arrive within %d ms", part, lim->read_ms);
    return (int)http_fail(err, 0, "the client went away in the middle of the %s", part);
}

static int send_all(int fd, const void *data, size_t len);

/** conn_reserve(), moving the strings of @p req (which point into c->buf) along with the buffer. */
static void reserve_keeping_head(HttpConn *c, HttpRequest *req, size_t need) {
    size_t target = (size_t)(req->target - c->buf), names[HTTP_MAX_HEADERS], values[HTTP_MAX_HEADERS];
    for (int i = 0; i < req->n_headers; i++) {
        names[i] = (size_t)(req->headers[i].name - c->buf);
        values[i] = (size_t)(req->headers[i].value - c->buf);
    }
    conn_reserve(c, need);
    req->target = c->buf + target;
    for (int i = 0; i < req->n_headers; i++) {
        req->headers[i].name = c->buf + names[i];
        req->headers[i].value = c->buf + values[i];
    }
}

int http_read_request(HttpConn *c, const HttpLimits *lim, const atomic_int *stop, HttpRequest *req, HttpError *err) {
    err->status = 0;
    err->message[0] = 0;
    /* forget the previous request, keep what followed it */
    if (c->used) {
        memmove(c->buf, c->buf + c->used, c->len - c->used);
        c->len -= c->used;
        c->used = 0;
    }
    /* stray empty lines between requests (some clients end a body with CRLF) are not a request begun */
    size_t skip = 0;
    while (skip < c->len && (c->buf[skip] == '\n' || (c->buf[skip] == '\r' && skip + 1 < c->len && c->buf[skip + 1] == '\n')))
        skip += c->buf[skip] == '\r' ? 2 : 1;
    if (skip) {
        memmove(c->buf, c->buf + skip, c->len - skip);
        c->len -= skip;
    }

    /* the head: nothing is a clean end, then read_ms from its first byte */
    long long deadline = 0;
    long head_len;
    for (;;) {
        if (c->len && !deadline) deadline = now_ms() + lim->read_ms;
        if (c->len) {
            head_len = http_parse_head(c->buf, c->len, lim->max_head, req, err);
            if (head_len < 0) return -1;
            if (head_len > 0) break;
        }
        long long until = deadline ? deadline : now_ms() + lim->idle_ms;
        int w = receive_more(c, lim->max_head + 1 > c->len ? lim->max_head + 1 : c->len + 1, until, stop);
        if (w == WAIT_DATA) continue;
        if (w == WAIT_STOP) return 0;
        if (c->len == 0) return 0; /* idle past idle_ms, or closed between requests */
        return wait_failure(w, err, lim, "request head");
    }

    /* the body: refused from its length alone when too large */
    size_t hl = (size_t)head_len;
    size_t body_len = req->content_length > 0 ? (size_t)req->content_length : 0;
    if (req->content_length > 0 && (unsigned long long)req->content_length > lim->max_body)
        return (int)http_fail(err, 413, "request body of %lld bytes is larger than the limit of %zu bytes", req->content_length,
                         lim->max_body);
    /* room for the whole body and its NUL now, so that the buffer does not move under req's strings again */
    reserve_keeping_head(c, req, (c->len > hl + body_len ? c->len : hl + body_len) + 2);
    if (req->expect_continue && body_len > 0 && c->len - hl < body_len) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send_all(c->fd, cont, sizeof cont - 1) != 0) return (int)http_fail(err, 0, "the client went away before its body");
    }
    while (c->len - hl < body_len) {
        int w = receive_more(c, hl + body_len, deadline, stop);
        if (w == WAIT_DATA) continue;
        if (w == WAIT_STOP) return 0;
        return wait_failure(w, err, lim, "request body");
    }

    /*
     * The body gets a NUL after it. That byte may be the first of a pipelined request, so the
     * bytes after the body move up by one and the NUL takes a byte of its own.
     */
    size_t end = hl + body_len; /* c->len + 1 <= c->cap: reserved above */
    memmove(c->buf + end + 1, c->buf + end, c->len - end);
    c->buf[end] = 0;
    c->len++;
    c->used = end + 1;
    req->body = c->buf + hl;
    req->body_len = body_len;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

const char *http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/** Send the pieces in @p iov (modified), all of them, looping on partial writes; 0 or -1. */
static int send_iov(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = n;
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1; /* EPIPE, ECONNRESET, or EAGAIN after the socket's send timeout: the client is gone */
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static int send_all(int fd, const void *data, size_t len) {
    struct iovec iov = {(void *)(uintptr_t)data, len};
    return send_iov(fd, &iov, 1);
}

int http_send(int fd, int status, const char *content_type, const char *body, size_t len, int keep_alive,
              const char *extra_headers) {
    size_t extra = extra_headers ? strlen(extra_headers) : 0;
    size_t cap = 256 + (content_type ? strlen(content_type) : 0) + extra;
    char *head = xmalloc(cap);
    int n = snprintf(head, cap, "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\nConnection: %s\r\n", status,
                     http_reason(status), content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", len, keep_alive ? "keep-alive" : "close");
    size_t hn = (size_t)n;
    memcpy(head + hn, extra_headers ? extra_headers : "", extra);
    hn += extra;
    memcpy(head + hn, "\r\n", 2);
    hn += 2;
    /* one sendmsg for head and body: two writes would let Nagle hold the body back for an ACK */
    struct iovec iov[2] = {{head, hn}, {(void *)(uintptr_t)body, body ? len : 0}};
    int rc = send_iov(fd, iov, 2);
    free(head);
    return rc;
}

int http_send_sse_head(int fd) {
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                               "Connection: close\r\nX-Accel-Buffering: no\r\n\r\n";
    return send_all(fd, head, sizeof head - 1);
}

int http_send_sse_data(int fd, const char *data, size_t len) {
    struct iovec iov[3] = {{(void *)"data: ", 6}, {(void *)(uintptr_t)data, len}, {(void *)"\n\n", 2}};
    return send_iov(fd, iov, 3);
}

int http_peer_gone(int fd) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r;
    do r = poll(&pfd, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) return 1;
    if (r == 0) return 0;
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (pfd.revents & POLLIN) {
        char byte;
        ssize_t got = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (got == 0) return 1;
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    }
    return 0;
}

int http_send_bytes(int fd, const char *data, size_t len) { return send_all(fd, data, len); }

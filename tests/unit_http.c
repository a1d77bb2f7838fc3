/**
 * @file unit_http.c
 * @brief Unit tests of src/http.c: the head parser on good heads, on every prefix of them and on
 * each malformed kind (with its status), then the socket side over a socketpair: pipelined
 * requests, a body read in pieces, `Expect: 100-continue`, a body over the limit (413), the
 * deadlines (408 and the idle end, with short limits), the stop flag, the writers and
 * http_peer_gone().
 *
 *     build/tests/unit_http                      run the checks
 *     build/tests/unit_http --write-cases DIR    write the requests below as DIR/http-*.txt
 *                                                (seeds for the server fuzzer, tests/fuzz_server.c)
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "json.h"
#include "unit.h"
#include "util.h"

enum { MAX_HEAD = 8192 };

/** Parse @p text (strlen) from an exact-size copy; the copy is returned in @p keep (free it) so req stays valid. */
static long parse(const char *text, size_t n, HttpRequest *req, HttpError *err, char **keep) {
    char *copy = xmalloc(n ? n : 1);
    memcpy(copy, text, n);
    long r = http_parse_head(copy, n, MAX_HEAD, req, err);
    if (keep) *keep = copy;
    else free(copy);
    return r;
}

static const char *good_requests[] = {
    "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /v1/models HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: "
     "68\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"stream\":true,\"n\":1}"),
    "POST /v1/completions HTTP/1.1\r\nContent-Length: 37\r\nExpect: 100-continue\r\n\r\n{\"prompt\":\"Once upon\",\"max_tokens\":8}",
    "GET /health HTTP/1.0\r\n\r\n",
    "GET /?a=b&c=%20 HTTP/1.1\nHost: x\n\n",
    "\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
};

static void test_good_head(void) {
    const char *text = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost:   example  \t\r\ncontent-type: application/json\r\n"
                       "Content-Length: 5\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\nhello";
    HttpRequest req;
    HttpError err;
    char *buf;
    long hl = parse(text, strlen(text), &req, &err, &buf);
    CHECK("good head: length", hl == (long)(strstr(text, "hello") - text), "got %ld (%d %s)", hl, err.status, err.message);
    CHECK("good head: request line", !strcmp(req.method, "POST") && !strcmp(req.target, "/v1/chat/completions?x=1") &&
                                         !strcmp(req.path, "/v1/chat/completions") && req.minor == 1,
          "method %s target %s path %s minor %d", req.method, req.target, req.path, req.minor);
    CHECK("good head: fields", req.n_headers == 5 && !strcmp(req.headers[0].name, "Host") && !strcmp(req.headers[0].value, "example"),
          "%d fields, first [%s]=[%s]", req.n_headers, req.n_headers ? req.headers[0].name : "", req.n_headers ? req.headers[0].value : "");
    const char *ct = http_header(&req, "Content-Type"), *empty = http_header(&req, "x-empty"), *tab = http_header(&req, "X-TAB");
    CHECK("http_header ignores case", ct && !strcmp(ct, "application/json"), "got %s", ct ? ct : "NULL");
    CHECK("empty and tabbed values", empty && !strcmp(empty, "") && tab && !strcmp(tab, "a\tb"), "wrong");
    CHECK("http_header of a missing field", http_header(&req, "Cookie") == NULL, "found");
    CHECK("good head: length and connection", req.content_length == 5 && req.keep_alive == 1 && req.expect_continue == 0,
          "cl %lld keep %d expect %d", req.content_length, req.keep_alive, req.expect_continue);
    free(buf);

    /* every good request, and every prefix of its head: complete, or "need more" */
    for (size_t i = 0; i < sizeof good_requests / sizeof *good_requests; i++) {
        const char *t = good_requests[i];
        hl = parse(t, strlen(t), &req, &err, NULL);
        char name[80];
        snprintf(name, sizeof name, "good request %zu parses", i);
        CHECK(name, hl > 0, "%d %s", err.status, err.message);
        int bad = 0;
        size_t at = 0;
        for (size_t n = 0; n < (size_t)(hl > 0 ? hl : 0); n++) {
            long r = parse(t, n, &req, &err, NULL);
            if (r != 0) bad = 1, at = n;
            if (bad) break;
        }
        snprintf(name, sizeof name, "every prefix of good request %zu needs more", i);
        CHECK(name, !bad, "prefix of %zu bytes gave %d %s", at, err.status, err.message);
    }
}

static void test_semantics(void) {
    struct {
        const char *name, *text;
        int keep_alive, expect;
        long long length;
    } cases[] = {
        {"HTTP/1.1 keeps alive", "GET / HTTP/1.1\r\n\r\n", 1, 0, -1},
        {"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", 0, 0, -1},
        {"HTTP/1.0 with keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0, -1},
        {"Connection: close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 0, -1},
        {"close in a list", "GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0, 0, -1},
        {"close in a second field", "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, 0, -1},
        {"closed is not close", "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1, 0, -1},
        {"Expect: 100-continue", "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", 1, 1, 3},
        {"Expect ignored from HTTP/1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", 0, 0, 3},
        {"two equal lengths", "POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", 1, 0, 7},
        {"zero length", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 1, 0, 0},
        {"length with leading zeros", "POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", 1, 0, 7},
        {"largest length", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", 1, 0, 9223372036854775807LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        HttpRequest req;
        HttpError err;
        long r = parse(cases[i].text, strlen(cases[i].text), &req, &err, NULL);
        CHECK(cases[i].name, r > 0 && req.keep_alive == cases[i].keep_alive && req.expect_continue == cases[i].expect &&
                                 req.content_length == cases[i].length,
              "r %ld (%s) keep %d expect %d length %lld", r, err.message, req.keep_alive, req.expect_continue, req.content_length);
    }
}

typedef struct {
    const char *name, *text;
    int status;
    const char *expect; /* in the message */
} BadHead;

static const BadHead bad_heads[] = {
    {"empty method", " / HTTP/1.1\r\n\r\n", 400, "malformed request line"},
    {"method with a bad character", "G@T / HTTP/1.1\r\n\r\n", 400, "malformed request line"},
    {"no target", "GET HTTP/1.1\r\n\r\n", 400, "malformed"},
    {"two spaces", "GET  / HTTP/1.1\r\n\r\n", 400, "malformed"},
    {"HTTP/0.9 request", "GET /\r\n\r\n", 400, "malformed request line"},
    {"absolute-form target", "GET http://x/ HTTP/1.1\r\n\r\n", 400, "must be a path"},
    {"asterisk target", "OPTIONS * HTTP/1.1\r\n\r\n", 400, "must be a path"},
    {"space after the version", "GET / HTTP/1.1 \r\n\r\n", 400, "malformed HTTP version"},
    {"bad protocol name", "GET / HTTX/1.1\r\n\r\n", 400, "malformed HTTP version"},
    {"version without minor", "GET / HTTP/1\r\n\r\n", 400, "malformed HTTP version"},
    {"lowercase protocol", "GET / http/1.1\r\n\r\n", 400, "malformed HTTP version"},
    {"non-ASCII in the target", "GET /\xC3\xA9 HTTP/1.1\r\n\r\n", 400, "invalid character in the request target"},
    {"DEL in the target", "GET /\x7F HTTP/1.1\r\n\r\n", 400, "control character"},
    {"bare CR in the request line", "GET /\r HTTP/1.1\r\n\r\n", 400, "control character"},
    {"NUL in the request line", "GET /\0 HTTP/1.1\r\n\r\n", 400, "control character"},
    {"method of 8 characters", "GETGETGE / HTTP/1.1\r\n\r\n", 400, "method name longer than 7"},
    {"folded line", "GET / HTTP/1.1\r\nX-A: a\r\n  b\r\n\r\n", 400, "folding"},
    {"first field folded", "GET / HTTP/1.1\r\n\tX-A: a\r\n\r\n", 400, "folding"},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before the colon"},
    {"tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "whitespace before the colon"},
    {"field without a colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "without a colon"},
    {"empty field name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "empty header name"},
    {"bad character in a name", "GET / HTTP/1.1\r\nX(a): a\r\n\r\n", 400, "invalid character in a header name"},
    {"non-ASCII in a name", "GET / HTTP/1.1\r\nX\xC3\xA9: a\r\n\r\n", 400, "invalid character in a header name"},
    {"control character in a value", "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", 400, "control character in a header value"},
    {"DEL in a value", "GET / HTTP/1.1\r\nX-A: a\x7F\r\n\r\n", 400, "control character in a header value"},
    {"bare CR in a value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400, "control character in a header value"},
    {"NUL in a value", "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 400, "control character in a header value"},
    {"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "decimal number"},
    {"signed length", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400, "decimal number"},
    {"hex length", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, "decimal number"},
    {"length with junk", "POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\n", 400, "decimal number"},
    {"length with an inner space", "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, "decimal number"},
    {"length list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, "decimal number"},
    {"empty length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "empty Content-Length"},
    {"overflowing length", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", 400, "too large"},
    {"two lengths that differ", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "differ"},
    {"PUT", "PUT / HTTP/1.1\r\n\r\n", 405, "PUT is not supported"},
    {"HEAD", "HEAD / HTTP/1.1\r\n\r\n", 405, "HEAD is not supported"},
    {"DELETE", "DELETE /x HTTP/1.1\r\n\r\n", 405, "not supported"},
    {"lowercase get", "get / HTTP/1.1\r\n\r\n", 405, "not supported"},
    {"chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
     "chunked request bodies are not supported; send Content-Length"},
    {"any Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: identity\r\n\r\n", 411, "chunked"},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not supported"},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", 505, "not supported"},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505, "not supported"},
};

static void test_bad_heads(void) {
    for (size_t i = 0; i < sizeof bad_heads / sizeof *bad_heads; i++) {
        const BadHead *b = &bad_heads[i];
        /* the texts hold NULs: their length is up to the end of the head */
        size_t n = 0;
        while (memcmp(b->text + n, "\r\n\r\n", 4) != 0) n++;
        n += 4;
        HttpRequest req;
        HttpError err;
        long r = parse(b->text, n, &req, &err, NULL);
        char name[128];
        snprintf(name, sizeof name, "%d: %s", b->status, b->name);
        CHECK(name, r == -1 && err.status == b->status && strstr(err.message, b->expect), "r %ld status %d: %s", r, err.status,
              err.message);
    }
}

static void test_limits(void) {
    HttpRequest req;
    HttpError err;
    Buf b = {0};
    char name[64];
    /* path length: 255 is fine, 256 is 414; a long query after a short path is fine */
    for (int len = 255; len <= 256; len++) {
        buf_clear(&b);
        buf_adds(&b, "GET /");
        for (int i = 1; i < len; i++) buf_add(&b, "p", 1);
        buf_adds(&b, "?q=1 HTTP/1.1\r\n\r\n");
        long r = parse(b.data, b.len, &req, &err, NULL);
        snprintf(name, sizeof name, "path of %d bytes", len);
        if (len == 255) CHECK(name, r > 0 && strlen(req.path) == 255, "%d %s", err.status, err.message);
        else CHECK(name, r == -1 && err.status == 414, "r %ld status %d", r, err.status);
    }
    buf_clear(&b);
    buf_adds(&b, "GET /x?");
    for (int i = 0; i < 2000; i++) buf_add(&b, "q", 1);
    buf_adds(&b, " HTTP/1.1\r\n\r\n");
    char *kept;
    long rq = parse(b.data, b.len, &req, &err, &kept);
    CHECK("long query", rq > 0 && !strcmp(req.path, "/x") && strlen(req.target) == 2003, "%d %s", err.status, err.message);
    free(kept);
    /* HTTP_MAX_HEADERS fields are fine, one more is 431 */
    for (int n = HTTP_MAX_HEADERS; n <= HTTP_MAX_HEADERS + 1; n++) {
        buf_clear(&b);
        buf_adds(&b, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < n; i++) buf_printf(&b, "X-%d: %d\r\n", i, i);
        buf_adds(&b, "\r\n");
        long r = parse(b.data, b.len, &req, &err, NULL);
        snprintf(name, sizeof name, "%d header fields", n);
        if (n == HTTP_MAX_HEADERS) CHECK(name, r > 0 && req.n_headers == n, "%d %s", err.status, err.message);
        else CHECK(name, r == -1 && err.status == 431, "r %ld status %d", r, err.status);
    }
    /* a head of exactly max_head bytes is fine; one byte more is 431, complete or not */
    buf_clear(&b);
    buf_adds(&b, "GET / HTTP/1.1\r\nX-Pad: ");
    while (b.len < MAX_HEAD - 4) buf_add(&b, "a", 1);
    buf_adds(&b, "\r\n\r\n");
    CHECK("head of max_head bytes", parse(b.data, b.len, &req, &err, NULL) == MAX_HEAD, "%d %s", err.status, err.message);
    b.len -= 4;
    buf_adds(&b, "a\r\n\r\n");
    long r = parse(b.data, b.len, &req, &err, NULL);
    CHECK("complete head of max_head + 1 bytes", r == -1 && err.status == 431, "r %ld status %d", r, err.status);
    b.len = MAX_HEAD - 1;
    r = parse(b.data, b.len, &req, &err, NULL);
    CHECK("incomplete head under max_head needs more", r == 0, "r %ld status %d", r, err.status);
    b.len = MAX_HEAD;
    r = parse(b.data, b.len, &req, &err, NULL);
    CHECK("incomplete head of max_head bytes", r == -1 && err.status == 431 && strstr(err.message, "larger than 8192"),
          "r %ld status %d", r, err.status);
    buf_free(&b);

    /* two requests in one buffer: the first's length leaves the second untouched */
    const char *two = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
    char *copy;
    r = parse(two, strlen(two), &req, &err, &copy);
    CHECK("pipelined: first head", r == 39 && !strcmp(req.path, "/a") && !memcmp(copy + r, "hiGET /b HTTP/1.1\r\n\r\n", 21),
          "r %ld", r);
    long r2 = r > 0 ? http_parse_head(copy + r + 2, strlen(two) - (size_t)r - 2, MAX_HEAD, &req, &err) : -1;
    CHECK("pipelined: second head", r2 == 19 && !strcmp(req.path, "/b"), "r %ld", r2);
    free(copy);
}

/* ------------------------------------------------------------------------ */
/* Over a socketpair                                                        */

static const HttpLimits limits = {.max_head = MAX_HEAD, .max_body = 1 << 20, .idle_ms = 40, .read_ms = 80};

static void write_str(int fd, const char *s) {
    size_t n = strlen(s), done = 0;
    while (done < n) {
        ssize_t w = write(fd, s + done, n - done);
        if (w <= 0) return;
        done += (size_t)w;
    }
}

/** What arrived on @p fd within @p ms, NUL-terminated in @p out. */
static size_t read_available(int fd, char *out, size_t cap, int ms) {
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (n + 1 < cap && poll(&p, 1, ms) > 0) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        ms = 20;
    }
    out[n] = 0;
    return n;
}

static void test_pipelined(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        SKIP("pipelined requests", "no socketpair");
        return;
    }
    write_str(sv[1], "\r\nGET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz\r\n"
                     "GET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /d HTTP/1.1\r\n\r\n");
    HttpConn c;
    http_conn_init(&c, sv[0]);
    HttpRequest req;
    HttpError err;
    int r = http_read_request(&c, &limits, NULL, &req, &err);
    CHECK("pipelined 1", r == 1 && !strcmp(req.path, "/a") && req.body_len == 0 && req.keep_alive, "r %d %s", r, err.message);
    r = http_read_request(&c, &limits, NULL, &req, &err);
    CHECK("pipelined 2 with a body", r == 1 && !strcmp(req.path, "/b") && req.body_len == 3 && !memcmp(req.body, "xyz", 4),
          "r %d %s", r, err.message);
    r = http_read_request(&c, &limits, NULL, &req, &err);
    CHECK("pipelined 3 after a CRLF, closing", r == 1 && !strcmp(req.path, "/c") && !req.keep_alive, "r %d %s", r, err.message);
    r = http_read_request(&c, &limits, NULL, &req, &err);
    CHECK("pipelined 4", r == 1 && !strcmp(req.path, "/d") && !strcmp(req.method, "GET"), "r %d %s", r, err.message);
    close(sv[1]);
    r = http_read_request(&c, &limits, NULL, &req, &err);
    CHECK("closed between requests: 0", r == 0, "r %d %d %s", r, err.status, err.message);
    http_conn_free(&c);
    close(sv[0]);
}

typedef struct {
    int fd;
    const char *head;
    size_t body_len;
    int wait_continue;
    char got[256]; /* what the server sent back before the body */
} Client;

/** A client thread: the head, optionally wait for 100 Continue, then a body of a pattern in pieces. */
static void *client_thread(void *arg) {
    Client *cl = arg;
    write_str(cl->fd, cl->head);
    if (cl->wait_continue) read_available(cl->fd, cl->got, sizeof cl->got, 2000);
    char piece[4096];
    for (size_t done = 0; done < cl->body_len;) {
        size_t n = cl->body_len - done < sizeof piece ? cl->body_len - done : sizeof piece;
        for (size_t i = 0; i < n; i++) piece[i] = (char)('a' + (done + i) % 26);
        ssize_t w = write(cl->fd, piece, n);
        if (w <= 0) break;
        done += (size_t)w;
    }
    return NULL;
}

static int body_is_pattern(const HttpRequest *req, size_t n) {
    if (req->body_len != n || req->body[n] != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (req->body[i] != (char)('a' + i % 26)) return 0;
    return 1;
}

static void test_bodies(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        SKIP("bodies", "no socketpair");
        return;
    }
    HttpLimits lim = limits;
    lim.read_ms = lim.idle_ms = 10000; /* these finish as soon as the bytes are there */
    HttpConn c;
    http_conn_init(&c, sv[0]);
    HttpRequest req;
    HttpError err;

    /* a body of 300000 bytes, larger than the socket's buffer, written by another thread */
    Client cl = {.fd = sv[1], .head = "POST /big HTTP/1.1\r\nContent-Length: 300000\r\n\r\n", .body_len = 300000};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &cl);
    int r = http_read_request(&c, &lim, NULL, &req, &err);
    pthread_join(t, NULL);
    CHECK("body of 300000 bytes", r == 1 && body_is_pattern(&req, 300000) && !strcmp(req.path, "/big"), "r %d %s", r, err.message);

    /* Expect: 100-continue: the client waits for it before sending the body */
    Client cc = {.fd = sv[1], .head = "POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n", .body_len = 1000,
                 .wait_continue = 1};
    pthread_create(&t, NULL, client_thread, &cc);
    r = http_read_request(&c, &lim, NULL, &req, &err);
    pthread_join(t, NULL);
    CHECK("100-continue sent", !strcmp(cc.got, "HTTP/1.1 100 Continue\r\n\r\n"), "client got [%s]", cc.got);
    CHECK("body after 100-continue", r == 1 && body_is_pattern(&req, 1000) && req.expect_continue, "r %d %s", r, err.message);

    /* a body over max_body: 413 from the length alone, and no 100 Continue */
    write_str(sv[1], "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1048577\r\n\r\n");
    double t0 = now_seconds();
    r = http_read_request(&c, &lim, NULL, &req, &err);
    char got[256];
    read_available(sv[1], got, sizeof got, 0);
    CHECK("413 for a body over the limit", r == -1 && err.status == 413 && strstr(err.message, "1048577"), "r %d %d %s", r,
          err.status, err.message);
    CHECK("413 without reading or waiting", now_seconds() - t0 < 5 && got[0] == 0, "client got [%s]", got);
    http_conn_free(&c);
    close(sv[0]);
    close(sv[1]);
}

/** A fresh connection with @p text already sent; @p close_after closes the client's side. */
static int read_one(const char *text, int close_after, const HttpLimits *lim, const atomic_int *stop, HttpError *err,
                    double *secs) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -99;
    write_str(sv[1], text);
    if (close_after) close(sv[1]);
    HttpConn c;
    http_conn_init(&c, sv[0]);
    HttpRequest req;
    double t0 = now_seconds();
    int r = http_read_request(&c, lim, stop, &req, err);
    *secs = now_seconds() - t0;
    http_conn_free(&c);
    close(sv[0]);
    if (!close_after) close(sv[1]);
    return r;
}

static void test_deadlines(void) {
    HttpError err;
    double s;
    HttpLimits slow = limits; /* for the checks that must end before any deadline */
    slow.idle_ms = slow.read_ms = 10000;
    int r = read_one("", 0, &limits, NULL, &err, &s);
    CHECK("idle connection ends with 0", r == 0 && s >= 0.035, "r %d after %.3f s", r, s);
    r = read_one("GET / HT", 0, &limits, NULL, &err, &s);
    CHECK("408 for a head that stalls", r == -1 && err.status == 408 && s >= 0.075, "r %d status %d after %.3f s", r, err.status, s);
    r = read_one("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 0, &limits, NULL, &err, &s);
    CHECK("408 for a body that stalls", r == -1 && err.status == 408 && strstr(err.message, "body"), "r %d status %d %s", r,
          err.status, err.message);
    atomic_int stop = 1;
    r = read_one("", 0, &slow, &stop, &err, &s);
    CHECK("stop flag ends the wait", r == 0 && s < 5, "r %d after %.3f s", r, s);
    r = read_one("GET / HTTP/1.1\r\nHo", 0, &slow, &stop, &err, &s);
    CHECK("stop flag ends a request begun", r == 0 && s < 5, "r %d after %.3f s", r, s);
    r = read_one("", 1, &slow, NULL, &err, &s);
    CHECK("client closing at once: 0", r == 0 && s < 5, "r %d after %.3f s", r, s);
    r = read_one("GET / HTTP/1.1\r\nHo", 1, &slow, NULL, &err, &s);
    CHECK("client closing mid-head: status 0", r == -1 && err.status == 0 && err.message[0], "r %d status %d", r, err.status);
    r = read_one("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 1, &slow, NULL, &err, &s);
    CHECK("client closing mid-body: status 0", r == -1 && err.status == 0, "r %d status %d", r, err.status);
    r = read_one("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &slow, NULL, &err, &s);
    CHECK("411 over a socket", r == -1 && err.status == 411, "r %d status %d", r, err.status);
    Buf b = {0};
    buf_adds(&b, "GET / HTTP/1.1\r\nX-Long: ");
    while (b.len < MAX_HEAD + 100) buf_add(&b, "x", 1);
    r = read_one(b.data, 0, &slow, NULL, &err, &s);
    CHECK("431 over a socket", r == -1 && err.status == 431, "r %d status %d after %.3f s", r, err.status, s);
    buf_free(&b);
}

static void test_writers(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        SKIP("writers", "no socketpair");
        return;
    }
    char got[1024];
    int r = http_send(sv[0], 404, "application/json", "{\"a\":1}", 7, 1, "X-One: 1\r\nX-Two: 2\r\n");
    read_available(sv[1], got, sizeof got, 500);
    CHECK("http_send", r == 0 && !strcmp(got, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
                                               "Connection: keep-alive\r\nX-One: 1\r\nX-Two: 2\r\n\r\n{\"a\":1}"),
          "r %d got [%s]", r, got);
    r = http_send(sv[0], 200, NULL, NULL, 0, 0, NULL);
    read_available(sv[1], got, sizeof got, 500);
    CHECK("http_send without a body", r == 0 && !strcmp(got, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
          "got [%s]", got);
    r = http_send_sse_head(sv[0]);
    read_available(sv[1], got, sizeof got, 500);
    CHECK("http_send_sse_head", r == 0 && !strncmp(got, "HTTP/1.1 200 OK\r\n", 17) && strstr(got, "Content-Type: text/event-stream\r\n") &&
                                    strstr(got, "Cache-Control: no-cache\r\n") && strstr(got, "Connection: close\r\n") &&
                                    strstr(got, "\r\n\r\n") == got + strlen(got) - 4,
          "got [%s]", got);
    r = http_send_sse_data(sv[0], "{\"x\":2}", 7);
    read_available(sv[1], got, sizeof got, 500);
    CHECK("http_send_sse_data", r == 0 && !strcmp(got, "data: {\"x\":2}\n\n"), "got [%s]", got);
    CHECK("http_reason", !strcmp(http_reason(404), "Not Found") && !strcmp(http_reason(413), "Content Too Large") &&
                             !strcmp(http_reason(503), "Service Unavailable") && !strcmp(http_reason(431), "Request Header Fields Too Large"),
          "wrong phrases");

    CHECK("peer there: not gone", http_peer_gone(sv[0]) == 0, "gone");
    write_str(sv[1], "more");
    CHECK("peer sent bytes: not gone", http_peer_gone(sv[0]) == 0, "gone");
    close(sv[1]);
    CHECK("peer closed: gone", http_peer_gone(sv[0]) == 1, "not gone");
    /* a large write to a closed peer fails instead of raising SIGPIPE */
    char *big = xcalloc(1, 1 << 20);
    r = http_send(sv[0], 200, "text/plain", big, 1 << 20, 1, NULL);
    CHECK("http_send to a closed peer", r == -1, "r %d", r);
    CHECK("sse to a closed peer", http_send_sse_data(sv[0], "x", 1) == -1, "succeeded");
    free(big);
    close(sv[0]);
}

/* --write-cases: the requests above (good and bad) as fuzzer seeds. */
static int write_cases(const char *dir) {
    mkdir(dir, 0777);
    int k = 0;
    size_t ng = sizeof good_requests / sizeof *good_requests, nb = sizeof bad_heads / sizeof *bad_heads;
    for (size_t i = 0; i < ng + nb; i++) {
        const char *t = i < ng ? good_requests[i] : bad_heads[i - ng].text;
        size_t n = strlen(t);
        if (i >= ng)
            for (n = 0; memcmp(t + n, "\r\n\r\n", 4) != 0; n++) continue;
        if (i >= ng) n += 4;
        char path[4096];
        snprintf(path, sizeof path, "%s/http-%03d.txt", dir, k++);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(t, 1, n, f) != n || fclose(f) != 0) fatal("%s: cannot write", path);
    }
    printf("wrote %d HTTP cases to %s\n", k, dir);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-cases")) return write_cases(argv[2]);
#ifndef __linux__
    signal(SIGPIPE, SIG_IGN); /* MSG_NOSIGNAL is Linux's; elsewhere the program ignores SIGPIPE, as this test does */
#endif
    test_good_head();
    test_semantics();
    test_bad_heads();
    test_limits();
    test_pipelined();
    test_bodies();
    test_deadlines();
    test_writers();
    return UNIT_EXIT();
}

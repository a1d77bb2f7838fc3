/**
 * @file loadgen.c
 * @brief A load client for the chat server (chapter 9): N clients at once, each sending M requests
 * one after another, and what they saw: tokens per second, time to the first token, failures.
 *
 *     build/loadgen [--host 127.0.0.1] --port P [--clients N] [--requests M]
 *                   [--endpoint chat|completions] (--prompt TEXT | --prompt-file F | --messages-file F)
 *                   [--vary] [--max-tokens N] [--temperature T] [--seed S] [--stream 0|1]
 *                   [--ignore-eos] [--followup [--followup-prompt TEXT]] [--dump-messages F]
 *                   [--model NAME] [--timeout S] [--json]
 *
 * Each client is a thread with its own connection per request (`Connection: close`), so N
 * clients are N requests in flight: what a server with N slots should serve at once, in one
 * batch. A streamed reply is read event by event (`data: {...}` lines, `data: [DONE]` last):
 * every event with non-empty content is a token, and the time of the first one is the time
 * to first token (TTFT, measured from the start of the connection, so it holds the wait for a
 * slot and the prompt's processing). The decode rate of a request is (tokens - 1) / (time of
 * the last token - time of the first), the speed a reader sees once text flows. When the
 * server reports `usage.completion_tokens`, that is the token count (a server may hold back a
 * token whose bytes end inside a UTF-8 character, and send two in one event); otherwise the
 * events are counted. A request that is not streamed is timed as a whole, with its usage.
 *
 * Prefix reuse is measured with --followup: each client's second and later requests continue
 * its conversation (the previous reply as the assistant's message, then --followup-prompt as
 * the user's), so that a server that kept the conversation in its slot needs to process only
 * the new part. --dump-messages writes the messages of client 0's last request as a JSON array,
 * and --messages-file sends such an array as the conversation to start from, which lets a
 * benchmark send the same conversation again, fresh.
 *
 * Output: one line per client and a summary, or with --json one JSON object (one key per line
 * at the top level, one line per client and per request, so that a shell script can pick
 * values out with sed). A request fails when it cannot connect or send, runs past --timeout,
 * or gets a reply that is not HTTP 200 with the expected JSON; "lost" counts the failures that
 * got an answer but not a whole one (not 200, or a stream that ended without `[DONE]`).
 *
 * Exit status: 0 when every request succeeded, 1 when one failed, 2 on a bad flag (one
 * `error:` line naming it).
 *
 * The replies come from a program under test, so nothing in them is trusted: every read has
 * a deadline (poll), a head, a line and a body each have a size limit, the body may be framed
 * by Content-Length, chunked transfer coding (llama-server's streams) or the end of the
 * connection, and any garbage is one failed request, never a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

/** Exit statuses. */
enum { EXIT_FAILED = 1, EXIT_BAD_FLAG = 2 };

/** Limits on what a reply may be. */
enum {
    MAX_HEAD = 64 * 1024,          /**< status line and header fields */
    MAX_LINE = 1024 * 1024,        /**< one line: a header, a chunk size, an event */
    MAX_BODY = 64 * 1024 * 1024,   /**< a whole reply that is not streamed */
    MAX_ERROR_BODY = 64 * 1024,    /**< what is read of a reply that is not 200, for its message */
    MAX_PROMPT_FILE = 64 * 1024 * 1024,
    MAX_CLIENTS = 1024,
    MAX_REQUESTS_TOTAL = 1000000,  /**< clients × requests: each has a result in memory */
    MAX_ERRORS_PRINTED = 20,       /**< stderr lines about failed requests, for the whole run */
};

/* ------------------------------------------------------------------------ */
/** @name Options */
/** @{ */

typedef struct {
    const char *host, *port;
    int clients;
    long requests;
    int chat;                    /**< 1: /v1/chat/completions, 0: /v1/completions */
    char *prompt;                /**< --prompt or the --prompt-file's text (NUL-free) */
    const char *messages_file;   /**< --messages-file */
    const char *dump_messages;   /**< --dump-messages */
    const char *followup_prompt;
    const char *model;
    int vary, followup, ignore_eos, stream, json;
    long max_tokens;
    double temperature;
    long long seed;
    int has_seed;
    double timeout;              /**< seconds per request */
} Options;

static void usage(FILE *f) {
    fputs("usage: loadgen [--host H] --port P [--clients N] [--requests M] [--endpoint chat|completions]\n"
          "               (--prompt TEXT | --prompt-file F | --messages-file F) [--vary]\n"
          "               [--max-tokens N] [--temperature T] [--seed S] [--stream 0|1] [--ignore-eos]\n"
          "               [--followup [--followup-prompt TEXT]] [--dump-messages F] [--model NAME]\n"
          "               [--timeout S] [--json]\n"
          "  --host H            server address (127.0.0.1)\n"
          "  --port P            server port (required)\n"
          "  --clients N         clients at once, each a thread (1)\n"
          "  --requests M        requests per client, one after another (1)\n"
          "  --endpoint E        chat: POST /v1/chat/completions (default); completions: /v1/completions\n"
          "  --prompt TEXT       the user's message (chat) or the prompt (completions)\n"
          "  --prompt-file F     the same, read from a file\n"
          "  --messages-file F   chat only: a JSON array of {\"role\",\"content\"} to send as the conversation\n"
          "  --vary              append \" [client C request R]\" to each prompt, so that requests differ\n"
          "  --max-tokens N      tokens to generate per request (128)\n"
          "  --temperature T     sampling temperature (0: greedy)\n"
          "  --seed S            the sampler's seed, sent as \"seed\"\n"
          "  --stream 0|1        stream the replies as server-sent events (1)\n"
          "  --ignore-eos        send \"ignore_eos\": true, so that every reply has max-tokens tokens\n"
          "  --followup          a client's later requests continue its conversation\n"
          "  --followup-prompt T the user's message of each later turn (\"Please go on.\")\n"
          "  --dump-messages F   write the messages of client 0's last request to F (JSON)\n"
          "  --model NAME        send \"model\": NAME\n"
          "  --timeout S         seconds each request may take, connecting included (120)\n"
          "  --json              print one JSON object instead of the text lines\n"
          "Exit status: 0 all requests succeeded, 1 some failed or were lost, 2 bad flags.\n",
          f);
}

/** One `error:` line naming the flag, status 2. */
LB_NORETURN LB_PRINTF(1, 2) static void bad_flag(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_BAD_FLAG);
}

static long flag_long(const char *flag, const char *v, long lo, long hi) {
    long x;
    if (parse_long(v, &x) != 0 || x < lo || x > hi) bad_flag("%s %s: expected an integer from %ld to %ld", flag, v, lo, hi);
    return x;
}

static double flag_double(const char *flag, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi)) bad_flag("%s %s: expected a number from %g to %g", flag, v, lo, hi);
    return x;
}

/**
 * Read a whole text file (at most MAX_PROMPT_FILE bytes, no NUL bytes: it goes into JSON as a
 * C string), or bad_flag() naming @p flag.
 */
static char *read_text_file(const char *flag, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) bad_flag("%s %s: %s", flag, path, strerror(errno));
    Buf b;
    buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_PROMPT_FILE) bad_flag("%s %s: larger than %d MiB", flag, path, MAX_PROMPT_FILE >> 20);
        buf_add(&b, chunk, n);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) bad_flag("%s %s: read error", flag, path);
    if (memchr(b.data, 0, b.len)) bad_flag("%s %s: holds a NUL byte", flag, path);
    return b.data; /* the Buf's bytes are NUL-terminated; the caller owns them */
}

static Options parse_options(int argc, char **argv) {
    Options o = {0};
    o.host = "127.0.0.1";
    o.clients = 1;
    o.requests = 1;
    o.chat = 1;
    o.stream = 1;
    o.max_tokens = 128;
    o.timeout = 120;
    o.followup_prompt = "Please go on.";
    const char *prompt_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); exit(0); }
        /* switches */
        if (strcmp(a, "--vary") == 0) { o.vary = 1; continue; }
        if (strcmp(a, "--ignore-eos") == 0) { o.ignore_eos = 1; continue; }
        if (strcmp(a, "--followup") == 0) { o.followup = 1; continue; }
        if (strcmp(a, "--json") == 0) { o.json = 1; continue; }
        /* flags with a value: "--flag VALUE" or "--flag=VALUE" */
        char name[64];
        const char *v;
        const char *eq = strchr(a, '=');
        if (eq && strncmp(a, "--", 2) == 0 && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            v = NULL;
        }
        static const char *const valued[] = {"--host", "--port", "--clients", "--requests", "--endpoint",
                                             "--prompt", "--prompt-file", "--messages-file", "--max-tokens",
                                             "--temperature", "--seed", "--stream", "--timeout",
                                             "--followup-prompt", "--dump-messages", "--model"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= strcmp(name, valued[k]) == 0;
        if (!known) bad_flag("unknown flag '%s' (loadgen --help lists them)", a);
        if (!v) {
            if (i + 1 >= argc) bad_flag("%s needs a value", name);
            v = argv[++i];
        }
        if (strcmp(name, "--host") == 0) o.host = v;
        else if (strcmp(name, "--port") == 0) { flag_long(name, v, 1, 65535); o.port = v; }
        else if (strcmp(name, "--clients") == 0) o.clients = (int)flag_long(name, v, 1, MAX_CLIENTS);
        else if (strcmp(name, "--requests") == 0) o.requests = flag_long(name, v, 1, MAX_REQUESTS_TOTAL);
        else if (strcmp(name, "--endpoint") == 0) {
            if (strcmp(v, "chat") == 0) o.chat = 1;
            else if (strcmp(v, "completions") == 0) o.chat = 0;
            else bad_flag("--endpoint %s: expected chat or completions", v);
        } else if (strcmp(name, "--prompt") == 0) o.prompt = (char *)v;
        else if (strcmp(name, "--prompt-file") == 0) prompt_file = v;
        else if (strcmp(name, "--messages-file") == 0) o.messages_file = v;
        else if (strcmp(name, "--max-tokens") == 0) o.max_tokens = flag_long(name, v, 1, 1000000);
        else if (strcmp(name, "--temperature") == 0) o.temperature = flag_double(name, v, 0, 100);
        else if (strcmp(name, "--seed") == 0) { o.seed = flag_long(name, v, 0, 0x7fffffffL); o.has_seed = 1; }
        else if (strcmp(name, "--stream") == 0) o.stream = (int)flag_long(name, v, 0, 1);
        else if (strcmp(name, "--timeout") == 0) o.timeout = flag_double(name, v, 0.001, 86400);
        else if (strcmp(name, "--followup-prompt") == 0) o.followup_prompt = v;
        else if (strcmp(name, "--dump-messages") == 0) o.dump_messages = v;
        else if (strcmp(name, "--model") == 0) o.model = v;
    }
    if (!o.port) bad_flag("--port is required");
    int sources = (o.prompt != NULL) + (prompt_file != NULL) + (o.messages_file != NULL);
    if (sources != 1) bad_flag("--prompt, --prompt-file, --messages-file: give exactly one of them");
    if (o.messages_file && !o.chat) bad_flag("--messages-file: only with --endpoint chat");
    if ((long long)o.clients * o.requests > MAX_REQUESTS_TOTAL)
        bad_flag("--clients %d x --requests %ld: at most %d requests in all", o.clients, o.requests, MAX_REQUESTS_TOTAL);
    if (prompt_file) o.prompt = read_text_file("--prompt-file", prompt_file);
    return o;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Conversations */
/** @{ */

typedef struct {
    char *role, *content;
    size_t content_len;
} Message;

typedef struct {
    Message *m;
    int n, cap;
} Messages;

static char *copy_bytes(const char *s, size_t n) {
    char *c = xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static void messages_add(Messages *ms, const char *role, const char *content, size_t len) {
    if (ms->n == ms->cap) {
        ms->cap = ms->cap ? 2 * ms->cap : 8;
        Message *grown = realloc(ms->m, sizeof *grown * (size_t)ms->cap);
        if (!grown) fatal("out of memory");
        ms->m = grown;
    }
    ms->m[ms->n++] = (Message){copy_bytes(role, strlen(role)), copy_bytes(content, len), len};
}

static void messages_clear(Messages *ms) {
    for (int i = 0; i < ms->n; i++) {
        free(ms->m[i].role);
        free(ms->m[i].content);
    }
    ms->n = 0;
}

static void messages_free(Messages *ms) {
    messages_clear(ms);
    free(ms->m);
    *ms = (Messages){0};
}

/** The --messages-file conversation: a JSON array of objects with string "role" and "content". */
static Messages read_messages_file(const char *path) {
    char *text = read_text_file("--messages-file", path);
    char err[160];
    Json *j = json_parse(text, strlen(text), err, sizeof err);
    if (!j) bad_flag("--messages-file %s: %s", path, err);
    const JsonValue *root = json_root(j);
    if (root->type != JSON_ARRAY || root->n == 0) bad_flag("--messages-file %s: expected a non-empty array of messages", path);
    Messages ms = {0};
    for (int i = 0; i < root->n; i++) {
        const JsonValue *role = json_get(&root->items[i], "role"), *content = json_get(&root->items[i], "content");
        if (!role || role->type != JSON_STRING || !content || content->type != JSON_STRING)
            bad_flag("--messages-file %s: message %d needs string \"role\" and \"content\"", path, i);
        messages_add(&ms, role->string, content->string, content->length);
    }
    json_free(j);
    free(text);
    return ms;
}

/** " [client C request R]" when --vary asks for it, else "". */
static void vary_suffix(const Options *o, int client, long request, char *out, size_t n) {
    if (o->vary) snprintf(out, n, " [client %d request %ld]", client, request);
    else if (n) out[0] = 0;
}

/** The request body: the conversation (chat) or its text in one prompt (completions), and the options. */
static void build_body(const Options *o, const Messages *ms, Buf *b) {
    buf_clear(b);
    buf_adds(b, "{");
    if (o->chat) {
        buf_adds(b, "\"messages\":[");
        for (int i = 0; i < ms->n; i++) {
            buf_adds(b, i ? ",{\"role\":" : "{\"role\":");
            json_write_string(b, ms->m[i].role, strlen(ms->m[i].role));
            buf_adds(b, ",\"content\":");
            json_write_string(b, ms->m[i].content, ms->m[i].content_len);
            buf_adds(b, "}");
        }
        buf_adds(b, "]");
    } else {
        /* completions: the turns one after another, as one text */
        Buf p;
        buf_init(&p);
        for (int i = 0; i < ms->n; i++) buf_add(&p, ms->m[i].content, ms->m[i].content_len);
        buf_adds(b, "\"prompt\":");
        json_write_string(b, p.data ? p.data : "", p.len);
        buf_free(&p);
    }
    if (o->model) {
        buf_adds(b, ",\"model\":");
        json_write_string(b, o->model, strlen(o->model));
    }
    buf_printf(b, ",\"max_tokens\":%ld,\"temperature\":", o->max_tokens);
    json_write_number(b, o->temperature);
    if (o->has_seed) buf_printf(b, ",\"seed\":%lld", o->seed);
    buf_printf(b, ",\"stream\":%s", o->stream ? "true" : "false");
    if (o->ignore_eos) buf_adds(b, ",\"ignore_eos\":true");
    buf_adds(b, "}");
}

/** Write @p ms as a JSON array (--dump-messages). */
static void dump_messages(const char *path, const Messages *ms) {
    Buf b;
    buf_init(&b);
    buf_adds(&b, "[\n");
    for (int i = 0; i < ms->n; i++) {
        buf_adds(&b, "  {\"role\": ");
        json_write_string(&b, ms->m[i].role, strlen(ms->m[i].role));
        buf_adds(&b, ", \"content\": ");
        json_write_string(&b, ms->m[i].content, ms->m[i].content_len);
        buf_adds(&b, i + 1 < ms->n ? "},\n" : "}\n");
    }
    buf_adds(&b, "]\n");
    OutputFile out = output_create(path);
    output_write(&out, b.data, b.len);
    output_commit(&out);
    buf_free(&b);
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Sockets with deadlines */
/** @{ */

/** What went wrong with a request, for its one line on stderr. */
typedef struct {
    char text[200];
} Why;

LB_PRINTF(2, 3) static void why_set(Why *w, const char *fmt, ...) {
    if (w->text[0]) return; /* the first reason is the one that matters */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof w->text, fmt, ap);
    va_end(ap);
    /* the text may quote the server's bytes: keep the terminal safe */
    for (char *p = w->text; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p >= 127) *p = '?';
}

/** Milliseconds until @p deadline (a now_seconds() time), 0 when it has passed. */
static int ms_left(double deadline) {
    double ms = (deadline - now_seconds()) * 1000.0;
    if (ms <= 0) return 0;
    return ms > 1e9 ? 1000000000 : (int)ms + 1;
}

/** Wait until @p fd is ready for @p events: 1, or 0 at the deadline, or -1 on an error. */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int left = ms_left(deadline);
        if (left == 0) return 0;
        int r = poll(&p, 1, left);
        if (r > 0) return 1;
        if (r == 0) continue; /* recomputes what is left: 0 ends it */
        if (errno != EINTR) return -1;
    }
}

/** Connect to one of @p addrs before @p deadline: the socket, or -1 with @p why set. */
static int connect_to(const struct addrinfo *addrs, double deadline, Why *why) {
    int last_errno = 0;
    for (const struct addrinfo *a = addrs; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) { last_errno = errno; continue; }
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) { last_errno = errno; close(fd); continue; }
#ifdef SO_NOSIGPIPE
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
        if (errno != EINPROGRESS && errno != EINTR) { last_errno = errno; close(fd); continue; }
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r == 0) { close(fd); why_set(why, "connect: timed out"); return -1; }
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
        if (soerr == 0) return fd;
        last_errno = soerr;
        close(fd);
    }
    why_set(why, "connect: %s", last_errno ? strerror(last_errno) : "no address");
    return -1;
}

/** Send all @p n bytes before @p deadline: 0, or -1 with @p why set. */
static int send_all(int fd, const char *p, size_t n, double deadline, Why *why) {
#ifdef MSG_NOSIGNAL
    const int flags = MSG_NOSIGNAL;
#else
    const int flags = 0;
#endif
    while (n > 0) {
        ssize_t w = send(fd, p, n, flags);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r == 0) { why_set(why, "send: timed out"); return -1; }
            if (r > 0) continue;
        }
        why_set(why, "send: %s", w < 0 ? strerror(errno) : "nothing written");
        return -1;
    }
    return 0;
}

/** Buffered reading from a socket, every wait bounded by the request's deadline. */
typedef struct {
    int fd;
    double deadline;
    char buf[65536];
    size_t pos, end;
    int eof;
} Reader;

/** Read more bytes: 1, 0 at the end of the connection, -1 on an error or the deadline (@p why set). */
static int reader_fill(Reader *r, Why *why) {
    if (r->eof) return 0;
    if (r->pos == r->end) r->pos = r->end = 0;
    if (r->end == sizeof r->buf) { /* keep the unread bytes, make room after them */
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    for (;;) {
        ssize_t got = recv(r->fd, r->buf + r->end, sizeof r->buf - r->end, 0);
        if (got > 0) { r->end += (size_t)got; return 1; }
        if (got == 0) { r->eof = 1; return 0; }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) { why_set(why, "recv: %s", strerror(errno)); return -1; }
        int w = wait_fd(r->fd, POLLIN, r->deadline);
        if (w == 0) { why_set(why, "timed out waiting for the server"); return -1; }
        if (w < 0) { why_set(why, "poll: %s", strerror(errno)); return -1; }
    }
}

/**
 * Read one line (up to LF, which is dropped with a CR before it) into @p line, at most @p max
 * bytes: 1, 0 when the connection ended before any byte of it, -1 on an error (@p why set).
 */
static int reader_line(Reader *r, Buf *line, size_t max, Why *why) {
    buf_clear(line);
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->end - r->pos);
        size_t take = nl ? (size_t)(nl - (r->buf + r->pos)) : r->end - r->pos;
        if (line->len + take > max) { why_set(why, "a line longer than %zu bytes", max); return -1; }
        buf_add(line, r->buf + r->pos, take);
        r->pos += take;
        if (nl) {
            r->pos++;
            if (line->len && line->data[line->len - 1] == '\r') line->data[--line->len] = 0;
            return 1;
        }
        int f = reader_fill(r, why);
        if (f < 0) return -1;
        if (f == 0) {
            if (line->len == 0) return 0;
            why_set(why, "the connection ended inside a line");
            return -1;
        }
    }
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name HTTP responses */
/** @{ */

typedef enum { BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE } BodyFraming;

/** A response's head, and the state of reading its body. */
typedef struct {
    Reader *r;
    int status;
    BodyFraming framing;
    unsigned long long left; /**< bytes left of the body (LENGTH) or of the current chunk (CHUNKED) */
    int in_chunk;            /**< CHUNKED: a chunk's data was read, its CRLF not yet */
    int finished;
} Response;

/** Parse a whole decimal (LENGTH) or hex (chunk size) number without overflow: 0, or -1. */
static int parse_size(const char *s, size_t n, int base, unsigned long long *out) {
    unsigned long long x = 0;
    if (n == 0 || n > 15) return -1; /* 15 digits stay far below 2^64 in either base */
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        x = x * (unsigned)base + (unsigned)d;
    }
    *out = x;
    return 0;
}

/** Trim spaces and tabs at both ends of s[0..*n), returning the new start. */
static const char *trim(const char *s, size_t *n) {
    while (*n && (*s == ' ' || *s == '\t')) { s++; (*n)--; }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t')) (*n)--;
    return s;
}

/**
 * Read the status line and the header fields (skipping any 1xx interim response): 0 with
 * the status and the body's framing in @p resp, or -1 with @p why set.
 */
static int read_head(Response *resp, Why *why) {
    Buf line;
    buf_init(&line);
    int rc = -1;
    size_t head_bytes = 0;
    for (;;) {
        int l = reader_line(resp->r, &line, MAX_HEAD, why);
        if (l <= 0) { if (l == 0) why_set(why, "the connection closed before a response"); goto done; }
        head_bytes += line.len + 2;
        const char *s = line.data;
        if (line.len < 12 || strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
            s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
            (line.len > 12 && s[12] != ' ')) {
            why_set(why, "not an HTTP/1.x status line: '%.60s'", s);
            goto done;
        }
        resp->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        int has_length = 0, chunked = 0;
        unsigned long long length = 0;
        for (;;) {
            l = reader_line(resp->r, &line, MAX_HEAD, why);
            if (l <= 0) { if (l == 0) why_set(why, "the connection closed inside the head"); goto done; }
            head_bytes += line.len + 2;
            if (head_bytes > MAX_HEAD) { why_set(why, "a response head over %d bytes", MAX_HEAD); goto done; }
            if (line.len == 0) break;
            const char *colon = memchr(line.data, ':', line.len);
            if (!colon) { why_set(why, "a header line without ':'"); goto done; }
            size_t name_len = (size_t)(colon - line.data), value_len = line.len - name_len - 1;
            const char *value = trim(colon + 1, &value_len);
            if (name_len == 14 && strncasecmp(line.data, "Content-Length", 14) == 0) {
                unsigned long long x;
                if (parse_size(value, value_len, 10, &x) != 0 || (has_length && x != length)) {
                    why_set(why, "a bad Content-Length");
                    goto done;
                }
                has_length = 1;
                length = x;
            } else if (name_len == 17 && strncasecmp(line.data, "Transfer-Encoding", 17) == 0) {
                /* the coding that matters is the last; only chunked is used by servers */
                chunked = value_len >= 7 && strncasecmp(value + value_len - 7, "chunked", 7) == 0;
                if (!chunked) { why_set(why, "an unknown Transfer-Encoding"); goto done; }
            }
        }
        if (resp->status >= 100 && resp->status < 200) continue; /* 100 Continue: the real one follows */
        resp->framing = chunked ? BODY_CHUNKED : has_length ? BODY_LENGTH : BODY_UNTIL_CLOSE;
        resp->left = chunked ? 0 : length;
        rc = 0;
        goto done;
    }
done:
    buf_free(&line);
    return rc;
}

/**
 * Read up to @p cap bytes of the body into @p dst, in whichever framing it has: how many
 * (> 0), 0 at the end of the body, -1 on an error (@p why set).
 */
static long read_body(Response *resp, char *dst, size_t cap, Why *why) {
    Reader *r = resp->r;
    if (resp->finished) return 0;
    if (resp->framing == BODY_LENGTH && resp->left == 0) { resp->finished = 1; return 0; }
    if (resp->framing == BODY_CHUNKED && resp->left == 0) {
        Buf line;
        buf_init(&line);
        long rc = -1;
        if (resp->in_chunk) { /* the CRLF after a chunk's data */
            if (reader_line(r, &line, 2, why) != 1 || line.len != 0) { why_set(why, "a chunk not followed by CRLF"); goto chunk_done; }
            resp->in_chunk = 0;
        }
        if (reader_line(r, &line, 1024, why) != 1) { why_set(why, "the body ended without its last chunk"); goto chunk_done; }
        size_t n = line.len;
        const char *semi = memchr(line.data, ';', n); /* chunk extensions: ignored */
        if (semi) n = (size_t)(semi - line.data);
        const char *size_text = trim(line.data, &n);
        unsigned long long size;
        if (parse_size(size_text, n, 16, &size) != 0) { why_set(why, "a bad chunk size"); goto chunk_done; }
        if (size == 0) { /* the last chunk: trailer fields until an empty line */
            size_t trailer = 0;
            for (;;) {
                int l = reader_line(r, &line, MAX_HEAD, why);
                if (l == 0) break; /* a server that closes right after "0\r\n": accepted */
                if (l < 0) goto chunk_done;
                trailer += line.len + 2;
                if (line.len == 0) break;
                if (trailer > MAX_HEAD) { why_set(why, "trailer fields over %d bytes", MAX_HEAD); goto chunk_done; }
            }
            resp->finished = 1;
            rc = 0;
            goto chunk_done;
        }
        resp->left = size;
        resp->in_chunk = 1;
        rc = 1;
    chunk_done:
        buf_free(&line);
        if (rc <= 0) return rc;
    }
    if (r->pos == r->end) {
        int f = reader_fill(r, why);
        if (f < 0) return -1;
        if (f == 0) {
            if (resp->framing == BODY_UNTIL_CLOSE) { resp->finished = 1; return 0; }
            why_set(why, resp->framing == BODY_LENGTH ? "the body is shorter than its Content-Length"
                                                      : "the connection ended inside a chunk");
            return -1;
        }
    }
    size_t n = r->end - r->pos;
    if (n > cap) n = cap;
    if (resp->framing != BODY_UNTIL_CLOSE && n > resp->left) n = (size_t)resp->left;
    memcpy(dst, r->buf + r->pos, n);
    r->pos += n;
    if (resp->framing != BODY_UNTIL_CLOSE) resp->left -= n;
    return (long)n;
}

/** Read the whole body into @p out, at most @p max bytes: 0, or -1 (@p why set). */
static int read_whole_body(Response *resp, Buf *out, size_t max, Why *why) {
    char chunk[16384];
    for (;;) {
        long n = read_body(resp, chunk, sizeof chunk, why);
        if (n < 0) return -1;
        if (n == 0) return 0;
        if (out->len + (size_t)n > max) { why_set(why, "a body over %zu bytes", max); return -1; }
        buf_add(out, chunk, (size_t)n);
    }
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name One request */
/** @{ */

/** What one request did. Times are now_seconds() values; t_first is 0 until a token came. */
typedef struct {
    int status;         /**< HTTP status, 0 when none came */
    int ok, lost;
    long events;        /**< stream: events with content */
    long tokens;        /**< usage.completion_tokens when the server said, else events */
    long prompt_tokens; /**< usage.prompt_tokens, -1 when absent */
    long prompt_evaluated; /**< timings.prompt_n (llama-server: the prompt tokens it processed), -1 */
    double t_start, t_first, t_last, t_end;
} Result;

/** The content of choice 0 of a reply or an event: delta.content, message.content or text. */
static const JsonValue *choice_content(const JsonValue *root) {
    const JsonValue *choices = json_get(root, "choices");
    if (!choices || choices->type != JSON_ARRAY || choices->n < 1) return NULL;
    const JsonValue *c0 = &choices->items[0], *v;
    if ((v = json_get(json_get(c0, "delta"), "content")) && v->type == JSON_STRING) return v;
    if ((v = json_get(json_get(c0, "message"), "content")) && v->type == JSON_STRING) return v;
    if ((v = json_get(c0, "text")) && v->type == JSON_STRING) return v;
    return NULL;
}

/**
 * The usage (and llama-server's timings) of a reply or an event, when it has them: 1 when it
 * gave the count of completion tokens.
 */
static int read_usage(const JsonValue *root, Result *res) {
    const JsonValue *usage = json_get(root, "usage"), *v;
    int counted = 0;
    if ((v = json_get(usage, "completion_tokens")) && v->type == JSON_NUMBER && v->number >= 0 && v->number < 1e12) {
        res->tokens = (long)v->number;
        counted = 1;
    }
    if ((v = json_get(usage, "prompt_tokens")) && v->type == JSON_NUMBER && v->number >= 0 && v->number < 1e12)
        res->prompt_tokens = (long)v->number;
    if ((v = json_get(json_get(root, "timings"), "prompt_n")) && v->type == JSON_NUMBER && v->number >= 0 && v->number < 1e12)
        res->prompt_evaluated = (long)v->number;
    return counted;
}

/** The message of an OpenAI-style error body, or the body's start. */
static void error_message(const char *body, size_t len, char *out, size_t n) {
    char err[160];
    Json *j = json_parse(body, len, err, sizeof err);
    const JsonValue *m = j ? json_get(json_get(json_root(j), "error"), "message") : NULL;
    if (m && m->type == JSON_STRING) snprintf(out, n, "%s", m->string);
    else {
        size_t k = len < 80 ? len : 80;
        snprintf(out, n, "%.*s", (int)k, body);
        for (char *p = out; *p; p++) if ((unsigned char)*p < 32) *p = ' ';
    }
    json_free(j);
}

/**
 * Turn every `\u0000` escape in the JSON text s[0..n) into `\uFFFD`, in place. A server may
 * send a NUL in a string (llama-server does, for a model's byte token 0x00), and json.h's
 * strict reader refuses one, since its strings are C strings; a token stays a token.
 */
static void replace_nul_escapes(char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) memcpy(s + i + 2, "FFFD", 4);
        i++; /* the escaped character is never the start of another escape */
    }
}

/** Stream state: the usage seen so far, [DONE], and whether a usage told the token count. */
typedef struct {
    Result *res;
    Buf *reply;
    int done, usage_seen;
} Stream;

/**
 * Handle one event's data: 1 to go on, 0 after [DONE], -1 on an event that is not the JSON of a
 * chunk, or an error event (@p why set).
 */
static int handle_event(Stream *st, char *data, size_t len, Why *why) {
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) { st->done = 1; return 0; }
    replace_nul_escapes(data, len);
    char err[160];
    Json *j = json_parse(data, len, err, sizeof err);
    if (!j) { why_set(why, "an event that is not JSON (%s)", err); return -1; }
    const JsonValue *root = json_root(j);
    int rc = 1;
    const JsonValue *e = json_get(root, "error");
    if (e) {
        const JsonValue *m = json_get(e, "message");
        why_set(why, "error event: %.120s", m && m->type == JSON_STRING ? m->string : "(no message)");
        rc = -1;
    } else {
        const JsonValue *c = choice_content(root);
        if (c && c->length > 0) {
            double t = now_seconds();
            if (st->res->events == 0) st->res->t_first = t;
            st->res->t_last = t;
            st->res->events++;
            buf_add(st->reply, c->string, c->length);
        }
        if (read_usage(root, st->res)) st->usage_seen = 1;
    }
    json_free(j);
    return rc;
}

/** Stream lines so far: the current line and the event its data lines gather into. */
typedef struct {
    Buf line, event;
    int has_event;
} EventReader;

/**
 * Handle one line of a stream (its LF gone): `data: X` adds to the event, which an empty line
 * dispatches (several data lines join with LF, as the format says); `error: X` is a failure;
 * `:` comments and other fields are skipped. 1 to go on, 0 after [DONE], -1 on a failure.
 */
static int stream_line(Stream *st, EventReader *er, Why *why) {
    Buf *line = &er->line;
    if (line->len && line->data[line->len - 1] == '\r') line->data[--line->len] = 0;
    int rc = 1;
    if (line->len == 0) {
        if (er->has_event) {
            er->has_event = 0;
            rc = handle_event(st, er->event.data, er->event.len, why);
            buf_clear(&er->event);
        }
    } else if (strncmp(line->data, "data:", 5) == 0) {
        const char *d = line->data + 5 + (line->data[5] == ' ');
        size_t n = line->len - (size_t)(d - line->data);
        if (er->event.len + n + 1 > MAX_LINE) {
            why_set(why, "an event over %d bytes", MAX_LINE);
            rc = -1;
        } else {
            if (er->has_event) buf_add(&er->event, "\n", 1);
            buf_add(&er->event, d, n);
            er->has_event = 1;
        }
    } else if (strncmp(line->data, "error:", 6) == 0) {
        why_set(why, "error event: %.120s", line->data + 6);
        rc = -1;
    }
    buf_clear(line);
    return rc;
}

/**
 * Read a stream of server-sent events to its [DONE]: 0, or -1 (@p why set) when it ends
 * without one, or holds an event that is not a chunk's JSON, or an error event.
 */
static int read_stream(Response *resp, Stream *st, Why *why) {
    EventReader er;
    buf_init(&er.line);
    buf_init(&er.event);
    er.has_event = 0;
    int rc = -1;
    char chunk[16384];
    for (;;) {
        long n = read_body(resp, chunk, sizeof chunk, why);
        if (n < 0) goto done;
        if (n == 0) break;
        const char *p = chunk, *end = chunk + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t take = (size_t)((nl ? nl : end) - p);
            if (er.line.len + take > MAX_LINE) { why_set(why, "an event line over %d bytes", MAX_LINE); goto done; }
            buf_add(&er.line, p, take);
            p += take;
            if (!nl) break;
            p++;
            int s = stream_line(st, &er, why);
            if (s <= 0) { rc = s; goto done; }
        }
    }
    /* the body ended: a last line without its LF, then the event it may have left open */
    if (er.line.len) {
        int s = stream_line(st, &er, why);
        if (s <= 0) { rc = s; goto done; }
    }
    if (er.has_event) {
        int s = stream_line(st, &er, why); /* the line is empty now: this dispatches */
        if (s <= 0) { rc = s; goto done; }
    }
    why_set(why, "the stream ended without [DONE]");
done:
    buf_free(&er.line);
    buf_free(&er.event);
    return rc;
}

/** A reply that is not streamed: one JSON object with the content and the usage. 0, or -1. */
static int read_reply(Response *resp, Result *res, Buf *reply, Why *why) {
    Buf body;
    buf_init(&body);
    int rc = -1;
    if (read_whole_body(resp, &body, MAX_BODY, why) != 0) goto done;
    replace_nul_escapes(body.data, body.len);
    char err[160];
    Json *j = json_parse(body.data ? body.data : "", body.len, err, sizeof err);
    if (!j) { why_set(why, "the reply is not JSON (%s)", err); goto done; }
    const JsonValue *c = choice_content(json_root(j));
    if (!c) why_set(why, "the reply has no choices[0] content");
    else {
        buf_add(reply, c->string, c->length);
        if (!read_usage(json_root(j), res)) res->tokens = c->length > 0; /* no usage: only that something came */
        rc = 0;
    }
    json_free(j);
done:
    buf_free(&body);
    return rc;
}

/**
 * Send one request and read its reply (the assistant's text into @p reply): @p res filled in,
 * @p why set when it failed.
 */
static void run_request(const Options *o, const struct addrinfo *addrs, const Buf *body, Result *res, Buf *reply,
                        Why *why) {
    *res = (Result){.prompt_tokens = -1, .prompt_evaluated = -1};
    buf_clear(reply);
    res->t_start = now_seconds();
    double deadline = res->t_start + o->timeout;
    Reader *r = xmalloc(sizeof *r);
    r->pos = r->end = 0;
    r->eof = 0;
    r->deadline = deadline;
    r->fd = connect_to(addrs, deadline, why);
    if (r->fd < 0) goto done;
    Buf head;
    buf_init(&head);
    int ipv6 = strchr(o->host, ':') != NULL; /* an IPv6 literal goes in brackets */
    buf_printf(&head,
               "POST %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nContent-Type: application/json\r\nAccept: %s\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n\r\n",
               o->chat ? "/v1/chat/completions" : "/v1/completions", ipv6 ? "[" : "", o->host, ipv6 ? "]" : "", o->port,
               o->stream ? "text/event-stream" : "application/json", body->len);
    buf_add(&head, body->data, body->len);
    int sent = send_all(r->fd, head.data, head.len, deadline, why);
    buf_free(&head);
    if (sent != 0) goto done;
    Response resp = {.r = r};
    if (read_head(&resp, why) != 0) goto done;
    res->status = resp.status;
    if (resp.status != 200) {
        Buf eb;
        buf_init(&eb);
        Why ignored = {{0}};
        read_whole_body(&resp, &eb, MAX_ERROR_BODY, &ignored);
        char msg[120];
        error_message(eb.data ? eb.data : "", eb.len, msg, sizeof msg);
        why_set(why, "HTTP %d: %s", resp.status, msg);
        res->lost = 1;
        buf_free(&eb);
        goto done;
    }
    if (o->stream) {
        Stream st = {res, reply, 0, 0};
        int s = read_stream(&resp, &st, why);
        if (!st.usage_seen) res->tokens = res->events;
        if (s != 0) { res->lost = !st.done; goto done; }
    } else if (read_reply(&resp, res, reply, why) != 0) {
        res->lost = 1;
        goto done;
    }
    res->ok = 1;
done:
    res->t_end = now_seconds();
    if (r->fd >= 0) close(r->fd);
    free(r);
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Clients */
/** @{ */

typedef struct {
    const Options *o;
    const struct addrinfo *addrs;
    const Messages *start; /**< --messages-file's conversation, or NULL */
    int index;
    Result *results;       /**< (requests) */
} Client;

/** The start line every client waits at, so that they begin together. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static int started;
static int errors_printed;

static void report_failure(int client, long request, const Why *why) {
    pthread_mutex_lock(&start_lock);
    int n = errors_printed++;
    pthread_mutex_unlock(&start_lock);
    if (n < MAX_ERRORS_PRINTED) fprintf(stderr, "loadgen: client %d request %ld: %s\n", client, request, why->text);
    else if (n == MAX_ERRORS_PRINTED) fprintf(stderr, "loadgen: (more failures not shown)\n");
}

/** The conversation of request @p r: the start, or what it has grown to after the last reply. */
static void next_conversation(Client *c, long r, Messages *ms, const Buf *last_reply) {
    const Options *o = c->o;
    char suffix[64];
    vary_suffix(o, c->index, r, suffix, sizeof suffix);
    if (r > 0 && o->followup) {
        messages_add(ms, "assistant", last_reply->data ? last_reply->data : "", last_reply->len);
        Buf u;
        buf_init(&u);
        /* completions: the turns are one text, so each new one starts on its own line */
        buf_printf(&u, "%s%s%s", o->chat ? "" : "\n", o->followup_prompt, suffix);
        messages_add(ms, "user", u.data, u.len);
        buf_free(&u);
        return;
    }
    messages_clear(ms);
    if (c->start) {
        for (int i = 0; i < c->start->n; i++) {
            const Message *m = &c->start->m[i];
            if (i + 1 < c->start->n || !suffix[0]) { messages_add(ms, m->role, m->content, m->content_len); continue; }
            Buf last;
            buf_init(&last);
            buf_add(&last, m->content, m->content_len);
            buf_adds(&last, suffix);
            messages_add(ms, m->role, last.data, last.len);
            buf_free(&last);
        }
    } else {
        Buf p;
        buf_init(&p);
        buf_printf(&p, "%s%s", o->prompt, suffix);
        messages_add(ms, "user", p.data, p.len);
        buf_free(&p);
    }
}

static void *client_main(void *arg) {
    Client *c = arg;
    const Options *o = c->o;
    pthread_mutex_lock(&start_lock);
    while (!started) pthread_cond_wait(&start_cond, &start_lock);
    pthread_mutex_unlock(&start_lock);
    Messages ms = {0};
    Buf body, reply;
    buf_init(&body);
    buf_init(&reply);
    for (long r = 0; r < o->requests; r++) {
        next_conversation(c, r, &ms, &reply);
        if (c->index == 0 && r == o->requests - 1 && o->dump_messages) dump_messages(o->dump_messages, &ms);
        build_body(o, &ms, &body);
        Why why = {{0}};
        run_request(o, c->addrs, &body, &c->results[r], &reply, &why);
        if (!c->results[r].ok) report_failure(c->index, r, &why);
    }
    messages_free(&ms);
    buf_free(&body);
    buf_free(&reply);
    return NULL;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Figures */
/** @{ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/** The median of x[0..n) (sorting it), NaN when n is 0. */
static double median(double *x, size_t n) {
    if (n == 0) return NAN;
    qsort(x, n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/** A request's time to first token in ms (streams with a token), else NaN. */
static double ttft_ms(const Options *o, const Result *r) {
    return o->stream && r->ok && r->events > 0 ? (r->t_first - r->t_start) * 1e3 : NAN;
}

/** The decode rate of one request: streamed, (tokens - 1) over the first to last token; else tokens over the whole. */
static double request_rate(const Options *o, const Result *r) {
    if (!r->ok) return NAN;
    if (!o->stream) return r->t_end > r->t_start ? r->tokens / (r->t_end - r->t_start) : NAN;
    return r->tokens > 1 && r->t_last > r->t_first ? (r->tokens - 1) / (r->t_last - r->t_first) : NAN;
}

typedef struct {
    long ok, failed, lost, tokens;
    double ttft_mean_ms; /**< NaN when no request streamed a token */
    double rate;         /**< tok/s: its requests' tokens after the first over their decode time; NaN when none */
} ClientFigures;

static ClientFigures client_figures(const Options *o, const Client *c) {
    ClientFigures f = {0};
    double ttft_sum = 0, tok = 0, secs = 0;
    long ttft_n = 0;
    for (long r = 0; r < o->requests; r++) {
        const Result *x = &c->results[r];
        if (!x->ok) { f.failed++; f.lost += x->lost; continue; }
        f.ok++;
        f.tokens += x->tokens;
        double t = ttft_ms(o, x);
        if (!isnan(t)) { ttft_sum += t; ttft_n++; }
        if (!o->stream) { tok += x->tokens; secs += x->t_end - x->t_start; }
        else if (x->tokens > 1 && x->t_last > x->t_first) { tok += x->tokens - 1; secs += x->t_last - x->t_first; }
    }
    f.ttft_mean_ms = ttft_n ? ttft_sum / ttft_n : NAN;
    f.rate = secs > 0 ? tok / secs : NAN;
    return f;
}

/** A number for the text output: "-" for NaN. */
static const char *fmt(char *out, size_t n, const char *spec, double x) {
    if (isnan(x)) snprintf(out, n, "-");
    else snprintf(out, n, spec, x);
    return out;
}

/** Append x to the JSON output, to a thousandth (null for NaN). */
static void json_num(Buf *b, double x) {
    json_write_number(b, isfinite(x) && fabs(x) < 1e12 ? round(x * 1000) / 1000 : x);
}

/** Append ,"key": x. */
static void json_field(Buf *b, const char *key, double x) {
    buf_printf(b, ", \"%s\": ", key);
    json_num(b, x);
}

static int report(const Options *o, const Client *clients, double wall) {
    int n = o->clients;
    double *rates = xmalloc(sizeof(double) * (size_t)n);
    double *ttfts = xmalloc(sizeof(double) * (size_t)(n * o->requests));
    size_t n_rates = 0, n_ttfts = 0;
    long tokens = 0, ok = 0, failed = 0, lost = 0;
    Buf js;
    buf_init(&js);
    char a[32], b2[32];
    if (o->json) buf_adds(&js, "{\n  \"clients_detail\": [\n");
    for (int i = 0; i < n; i++) {
        ClientFigures f = client_figures(o, &clients[i]);
        tokens += f.tokens;
        ok += f.ok;
        failed += f.failed;
        lost += f.lost;
        if (!isnan(f.rate)) rates[n_rates++] = f.rate;
        for (long r = 0; r < o->requests; r++) {
            double t = ttft_ms(o, &clients[i].results[r]);
            if (!isnan(t)) ttfts[n_ttfts++] = t;
        }
        if (o->json) {
            buf_printf(&js, "    {\"client\": %d, \"ok\": %ld, \"errors\": %ld, \"lost\": %ld, \"tokens\": %ld", i, f.ok,
                       f.failed, f.lost, f.tokens);
            json_field(&js, "ttft_ms", f.ttft_mean_ms);
            json_field(&js, "tok_s", f.rate);
            buf_adds(&js, i + 1 < n ? "},\n" : "}\n");
        } else {
            printf("client %d: %ld ok, %ld errors (%ld lost), %ld tokens, TTFT %s ms, %s tok/s\n", i, f.ok, f.failed, f.lost, f.tokens,
                   fmt(a, sizeof a, "%.1f", f.ttft_mean_ms), fmt(b2, sizeof b2, "%.2f", f.rate));
        }
    }
    double aggregate = wall > 0 ? tokens / wall : NAN;
    double rate_median = median(rates, n_rates), rate_min = n_rates ? rates[0] : NAN; /* sorted by median() */
    double ttft_median = median(ttfts, n_ttfts), ttft_max = n_ttfts ? ttfts[n_ttfts - 1] : NAN;
    if (o->json) {
        buf_adds(&js, "  ],\n  \"requests_detail\": [\n");
        for (int i = 0; i < n; i++)
            for (long r = 0; r < o->requests; r++) {
                const Result *x = &clients[i].results[r];
                buf_printf(&js, "    {\"client\": %d, \"request\": %ld, \"status\": %d, \"ok\": %d, \"lost\": %d, "
                                "\"tokens\": %ld, \"events\": %ld, \"prompt_tokens\": %ld, \"prompt_evaluated\": %ld",
                           i, r, x->status, x->ok, x->lost, x->tokens, x->events, x->prompt_tokens, x->prompt_evaluated);
                json_field(&js, "ttft_ms", ttft_ms(o, x));
                json_field(&js, "tok_s", request_rate(o, x));
                json_field(&js, "total_ms", (x->t_end - x->t_start) * 1e3);
                buf_adds(&js, (i + 1 < n || r + 1 < o->requests) ? "},\n" : "}\n");
            }
        buf_adds(&js, "  ],\n");
        buf_printf(&js, "  \"clients\": %d,\n  \"requests\": %ld,\n  \"ok\": %ld,\n  \"errors\": %ld,\n  \"lost\": %ld,\n"
                        "  \"total_tokens\": %ld,\n", n, o->requests, ok, failed, lost, tokens);
        const char *keys[] = {"wall_s", "aggregate_tok_s", "client_tok_s_median", "client_tok_s_min", "ttft_ms_median",
                              "ttft_ms_max"};
        double vals[] = {wall, aggregate, rate_median, rate_min, ttft_median, ttft_max};
        for (int k = 0; k < 6; k++) {
            buf_printf(&js, "  \"%s\": ", keys[k]);
            json_num(&js, vals[k]);
            buf_adds(&js, k < 5 ? ",\n" : "\n");
        }
        buf_adds(&js, "}\n");
        fwrite(js.data, 1, js.len, stdout);
    } else {
        char c[32], d[32], e[32];
        printf("total: %d clients x %ld requests, %ld tokens in %.2f s, %s tok/s aggregate; "
               "per client tok/s median %s min %s; TTFT ms median %s max %s; errors %ld, lost %ld\n",
               n, o->requests, tokens, wall, fmt(a, sizeof a, "%.2f", aggregate), fmt(b2, sizeof b2, "%.2f", rate_median),
               fmt(c, sizeof c, "%.2f", rate_min), fmt(d, sizeof d, "%.1f", ttft_median), fmt(e, sizeof e, "%.1f", ttft_max),
               failed, lost);
    }
    fflush(stdout);
    buf_free(&js);
    free(rates);
    free(ttfts);
    return failed ? EXIT_FAILED : 0;
}

/** @} */

int main(int argc, char **argv) {
    Options o = parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* a server that hangs up is a failed request, not the end of the run */
    struct addrinfo hints = {0}, *addrs = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(o.host, o.port, &hints, &addrs);
    if (g != 0) bad_flag("--host %s: %s", o.host, gai_strerror(g));
    Messages start = {0};
    if (o.messages_file) start = read_messages_file(o.messages_file);
    Client *clients = xcalloc((size_t)o.clients, sizeof *clients);
    pthread_t *threads = xcalloc((size_t)o.clients, sizeof *threads);
    for (int i = 0; i < o.clients; i++) {
        clients[i] = (Client){&o, addrs, o.messages_file ? &start : NULL, i,
                              xcalloc((size_t)o.requests, sizeof(Result))};
        if (pthread_create(&threads[i], NULL, client_main, &clients[i]) != 0) fatal("cannot start client thread %d", i);
    }
    pthread_mutex_lock(&start_lock);
    started = 1;
    double t0 = now_seconds();
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);
    for (int i = 0; i < o.clients; i++) pthread_join(threads[i], NULL);
    double wall = now_seconds() - t0;
    int status = report(&o, clients, wall);
    for (int i = 0; i < o.clients; i++) free(clients[i].results);
    free(clients);
    free(threads);
    messages_free(&start);
    freeaddrinfo(addrs);
    return status;
}

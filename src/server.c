/**
 * @file server.c
 * @brief Chapter 9's chat server: one model, many users, over HTTP, with OpenAI's API.
 *
 * @section server_threads Who does what
 * One thread owns the model: the engine (engine_main()). Everything else only talks to it:
 *  - the acceptor (accept_main()) takes connections, one thread each (connection_main()), up to
 *    --max-connections; beyond that a client gets 503 at once;
 *  - a connection thread reads a request (src/http.c), checks its JSON (src/json.c) against the
 *    table of fields below, builds the prompt with the model's chat template (src/chat.c, the
 *    terminal chat's code) and tokenizes it, and hands the engine a Job; then it waits for the
 *    job's text and writes it out, as server-sent events or as one JSON reply;
 *  - the engine keeps -np slots, one KV cache each (the model's sequences, ModelOptions.n_seqs).
 *    A waiting job goes to the free slot whose cache holds the longest prefix of its prompt, so
 *    a conversation's next turn finds its history already computed (a new conversation, which
 *    shares only the template's first tokens with any cache, to the slot used longest ago). Each step runs every busy
 *    slot's new positions as rows of one batch (model_forward_seqs()): one token of each
 *    replying slot and a piece of each new prompt, at most -b rows. That is continuous
 *    batching: a job joins or leaves between two steps, never waiting for the others to end.
 *
 * A job's text lives in its own buffer under its own mutex: the engine appends to it after each
 * step and marks how much may be sent (not a byte that could still become part of a stop string,
 * nor half of a UTF-8 character); the connection thread sends what is marked. A connection that
 * goes away, a request past --timeout and SIGINT/SIGTERM all end the same way: the job is marked
 * cancelled, and the engine frees its slot before its next step.
 *
 * @section server_same The same answers
 * A slot's logits are what model_forward() would give for its sequence alone, bit for bit,
 * whatever else shares the batch (chapter 9's contract), and each job has its own sampler and
 * seed: a request's tokens do not depend on the other users. --logits-dir writes each job's
 * logits so that the tests can check it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "http.h"
#include "json.h"
#include "lgts.h"
#include "model.h"
#include "sampler.h"
#include "server.h"
#include "server_page.h"
#include "slots.h"
#include "tokenizer.h"
#include "util.h"

/* ======================================================================== */
/* Options                                                                  */
/* ======================================================================== */

typedef struct {
    const char *model_path, *host, *alias, *chat_template, *logits_dir;
    long port, n_slots, n_ctx, threads, n_batch, timeout_s, max_conns, max_queue, max_body, load_delay_ms;
    int verbose;
} ServerOptions;

static void server_usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s --server -m MODEL.gguf [options]\n"
            "Serve the model over HTTP: OpenAI's /v1/chat/completions, /v1/completions and /v1/models,\n"
            "/health, and a chat page at /.\n"
            "  -m, --model FILE        a GGUF file with its vocabulary (required)\n"
            "      --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0: every interface)\n"
            "      --port N            port (default 8080; 0: any free port, printed on stderr)\n"
            "  -np, --parallel N       slots: requests served at once, each with its own KV cache (default 1)\n"
            "  -c, --ctx-size N        positions of each slot's cache (default: the file's context)\n"
            "  -t, --threads N         threads of the forward pass (default: all online CPUs)\n"
            "  -b, --batch-size N      most positions of one step, all slots together (default 512)\n"
            "      --timeout S         seconds a request may take to arrive, and again to be answered (default 600)\n"
            "      --max-connections N open connections at once; more get 503 (default 64)\n"
            "      --max-queue N       requests waiting for a slot; more get 503 (default 64)\n"
            "      --max-body BYTES    the largest request body; larger gets 413 (default 1048576)\n"
            "      --alias NAME        the model's name in the API (default: the file's name)\n"
            "      --chat-template T   the chat template (default: the one the file names; %s)\n"
            "      --logits-dir DIR    write each request's logits to DIR/N.lgts (for tests)\n"
            "      --load-delay MS     wait MS milliseconds before loading the model (for tests of /health)\n"
            "  -v, --verbose           print load details\n"
            "  -h, --help              this text\n",
            prog, chat_template_names());
}

static long server_long(const char *flag, const char *value, long lo, long hi) {
    long v;
    if (!value) fatal("%s: needs a value", flag);
    if (parse_long(value, &v) != 0 || v < lo || v > hi)
        fatal("%s: expected an integer from %ld to %ld, got '%s'", flag, lo, hi, value);
    return v;
}

enum { MAX_SLOTS = 256 }; /* -np: enough for any one machine's batch, and the scheduler's arrays stay on the stack */

static ServerOptions server_options(int argc, char **argv) {
    ServerOptions o = {NULL, "127.0.0.1", NULL, NULL, NULL, 8080, 1, 0, 0, 512, 600, 64, 64, 1L << 20, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1; /* the option takes the next argument */
        if (!strcmp(a, "--server")) used = 0;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!v) fatal("%s: needs a file", a); o.model_path = v; }
        else if (!strcmp(a, "--host")) { if (!v || !*v) fatal("--host: needs an address"); o.host = v; }
        else if (!strcmp(a, "--port")) o.port = server_long(a, v, 0, 65535);
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) o.n_slots = server_long(a, v, 1, MAX_SLOTS);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) o.n_ctx = server_long(a, v, 0, MODEL_MAX_CONTEXT);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) o.threads = server_long(a, v, 1, 1024);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) o.n_batch = server_long(a, v, 1, 1L << 16);
        else if (!strcmp(a, "--timeout")) o.timeout_s = server_long(a, v, 1, 86400);
        else if (!strcmp(a, "--max-connections")) o.max_conns = server_long(a, v, 1, 4096);
        else if (!strcmp(a, "--max-queue")) o.max_queue = server_long(a, v, 0, 1L << 20);
        else if (!strcmp(a, "--max-body")) o.max_body = server_long(a, v, 64, 1L << 30);
        else if (!strcmp(a, "--load-delay")) o.load_delay_ms = server_long(a, v, 0, 600000);
        else if (!strcmp(a, "--alias")) { if (!v || !*v) fatal("--alias: needs a name"); o.alias = v; }
        else if (!strcmp(a, "--chat-template")) {
            if (!v || chat_template_by_name(v) == CHAT_UNKNOWN)
                fatal("--chat-template: expected one of %s, got '%s'", chat_template_names(), v ? v : "");
            o.chat_template = v;
        } else if (!strcmp(a, "--logits-dir")) { if (!v) fatal("--logits-dir: needs a folder"); o.logits_dir = v; }
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { o.verbose = 1; used = 0; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { server_usage(stdout, argv[0]); exit(0); }
        else fatal("%s: not an option of the server (%s --server --help lists them)", a, argv[0]);
        i += used;
    }
    if (!o.model_path) fatal("--server: needs a model: -m FILE.gguf");
    if (o.n_batch < o.n_slots) /* else the slots past the budget would never get a row while the first ones reply */
        fatal("-b %ld: a step needs at least a row per slot (-np %ld)", o.n_batch, o.n_slots);
    return o;
}

/* ======================================================================== */
/* Jobs: what a request asks of the engine, and what it gets back           */
/* ======================================================================== */

typedef enum { JOB_CHAT, JOB_COMPLETION } JobKind;
enum { MAX_STOPS = 4, MAX_STOP_LEN = 256 };

typedef struct Job {
    /* The request, set by the connection thread before the job is queued; read-only after. */
    JobKind kind;
    long number;              /* the request's number: ids "chatcmpl-N" and the logits file N.lgts */
    long created;             /* Unix time of the request */
    int stream, include_usage, return_tokens, ignore_eos;
    long max_tokens;          /* -1: until the end of generation or of the context */
    float temperature, top_p, min_p, repeat_penalty;
    long top_k;
    uint64_t seed;
    char *stops[MAX_STOPS];
    int n_stops;
    int *prompt;              /* (n_prompt) BOS first where the vocabulary adds one */
    int n_prompt;
    double t_submit, deadline;
    struct Job *next;         /* the queue */

    /* What the engine produces, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t changed;
    Buf text;                 /* the reply so far */
    size_t releasable;        /* text[0 .. releasable) may be sent */
    int *out_ids;             /* (n_out) the generated ids */
    size_t *text_ends;        /* (n_out) where each one's text ends in text: a stream sends a chunk per token */
    int n_out, cap_out;
    int done;                 /* the engine has finished with the job and never touches it again */
    const char *finish;       /* "stop", "length", or NULL when it did not end by itself */
    int error_status;         /* non-zero: the job failed with this status and error_message */
    char error_message[160];
    int cancelled;            /* set by the connection thread: the client left, the time ran out */
    int slot, n_reused;       /* where it ran, and how many prompt positions its cache already held */
    double t_start, t_prompt_done, t_end;
} Job;

static Job *job_new(JobKind kind) {
    Job *j = xcalloc(1, sizeof(Job));
    j->kind = kind;
    j->max_tokens = -1;
    j->temperature = 0.8f, j->top_p = 0.95f, j->min_p = 0.05f, j->repeat_penalty = 1.0f, j->top_k = 40;
    j->seed = UINT64_MAX; /* none given: a random one */
    j->include_usage = 1; /* a stream ends with the usage chunk unless the request turns it off */
    j->slot = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->changed, NULL);
    buf_init(&j->text);
    return j;
}

static void job_free(Job *j) {
    for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
    free(j->prompt);
    free(j->out_ids);
    free(j->text_ends);
    buf_free(&j->text);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->changed);
    free(j);
}

/* ======================================================================== */
/* The server's state                                                       */
/* ======================================================================== */

/** One slot: a sequence of the model, with the tokens its KV cache holds. */
typedef struct {
    Job *job;            /* NULL: free */
    int *ids;            /* (cap) the sequence: the prompt, then the reply */
    int n_ids;
    int n_fed;           /* ids[0 .. n_fed) are in the model's cache for this slot */
    Sampler sampler;
    float *logits;       /* (vocab_size) */
    double last_used;
    float *lgts_rows;    /* --logits-dir: (n_lgts, vocab) the logits of every sampled step */
    int *lgts_ids, n_lgts, cap_lgts;
} Slot;

typedef struct {
    ServerOptions opt;
    char model_name[128];
    Model *model;
    const Vocab *vocab;
    ChatTemplate tmpl;
    int vocab_size, n_ctx;

    /*
     * mu guards the queue, the counters below and ready. The slots are the engine's alone (it
     * changes their job pointers under mu only so that slot_for() reads them whole). Where a
     * thread holds both locks, it takes s->mu first, then a job's mu (admit_jobs(), the
     * engine's shutdown); wait_for_job() lets go of a job's mu before it takes s->mu.
     */
    pthread_mutex_t mu;
    pthread_cond_t work;     /* a job arrived, a job was cancelled, or the server stops */
    Job *queue_head, *queue_tail;
    int n_queued;
    Slot *slots;
    int n_busy;
    int n_conns;
    long next_number;
    int ready;               /* the model is loaded: model, vocab, n_ctx, ... may be read (under mu: it publishes them) */
    int engine_gone;         /* the engine has ended: a job queued now would never be answered */
    int listen_fd;
} Server;

/** Whether the model is loaded; the lock makes the fields load_model() wrote visible to the caller's thread. */
static int server_ready(Server *s) {
    pthread_mutex_lock(&s->mu);
    int r = s->ready;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/*
 * Set by SIGINT and SIGTERM; every thread looks at it at least every 100 ms. An atomic: the
 * handler runs in one thread and the others read the flag (volatile sig_atomic_t is only safe
 * within the thread the signal interrupts), and a lock-free atomic may be stored in a handler.
 */
static atomic_int stopping;

/** Sleep @p ms milliseconds (nanosleep(): usleep() may refuse a second or more, and POSIX dropped it). */
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void on_stop_signal(int sig) {
    int saved = errno; /* the thread it interrupts may be about to read errno */
    (void)sig;
    stopping = 1;
    errno = saved;
}

/* ======================================================================== */
/* Requests: the fields of a body, each checked                             */
/* ======================================================================== */

/* A request error: the status, and the message of OpenAI's error object. */
typedef struct {
    int status;
    char message[200];
} ReqError;

static int req_fail(ReqError *e, int status, const char *fmt, ...) LB_PRINTF(3, 4);
static int req_fail(ReqError *e, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    return -1;
}

/** The fields a request may have (any other is a 400: a typo should not pass silently). */
typedef enum { F_STRING, F_BOOL, F_NUMBER, F_INT, F_STOP, F_MESSAGES, F_PROMPT, F_OBJECT, F_ANY } FieldType;
enum { FOR_CHAT = 1, FOR_COMPLETION = 2, FOR_BOTH = 3 };

static const struct {
    const char *name;
    FieldType type;
    int endpoints;
    double lo, hi; /* numbers: the accepted range */
} request_fields[] = {
    {"model", F_STRING, FOR_BOTH, 0, 0},
    {"messages", F_MESSAGES, FOR_CHAT, 0, 0},
    {"prompt", F_PROMPT, FOR_COMPLETION, 0, 0},
    {"stream", F_BOOL, FOR_BOTH, 0, 0},
    {"stream_options", F_OBJECT, FOR_BOTH, 0, 0},
    {"max_tokens", F_INT, FOR_BOTH, -1, 1 << 30},
    {"max_completion_tokens", F_INT, FOR_CHAT, -1, 1 << 30},
    {"temperature", F_NUMBER, FOR_BOTH, 0, 100},
    {"top_p", F_NUMBER, FOR_BOTH, 0, 1},
    {"top_k", F_INT, FOR_BOTH, 0, 1 << 30},
    {"min_p", F_NUMBER, FOR_BOTH, 0, 1},
    {"repeat_penalty", F_NUMBER, FOR_BOTH, 0.01, 100},
    {"seed", F_INT, FOR_BOTH, -1, 9007199254740991.0},
    {"stop", F_STOP, FOR_BOTH, 0, 0},
    {"n", F_INT, FOR_BOTH, 1, 1},
    {"presence_penalty", F_NUMBER, FOR_BOTH, 0, 0},
    {"frequency_penalty", F_NUMBER, FOR_BOTH, 0, 0},
    {"logprobs", F_ANY, FOR_BOTH, 0, 0},
    {"user", F_STRING, FOR_BOTH, 0, 0},
    {"ignore_eos", F_BOOL, FOR_BOTH, 0, 0},
    {"return_tokens", F_BOOL, FOR_BOTH, 0, 0},
};

static int field_index(const char *name, int endpoint) {
    for (size_t i = 0; i < sizeof request_fields / sizeof request_fields[0]; i++)
        if ((request_fields[i].endpoints & endpoint) && !strcmp(request_fields[i].name, name)) return (int)i;
    return -1;
}

/** Check @p v against row @p f of the table: its type and range. */
static int check_field(int f, const JsonValue *v, ReqError *e) {
    const char *name = request_fields[f].name;
    double lo = request_fields[f].lo, hi = request_fields[f].hi;
    /* null means "not given", as OpenAI's API takes it (clients send "stream": null, "stop": null);
       "messages" and "prompt" are then missing, which read_request() reports */
    if (v->type == JSON_NULL) return 0;
    switch (request_fields[f].type) {
    case F_STRING:
        if (v->type != JSON_STRING) return req_fail(e, 400, "'%s' must be a string, not %s", name, json_type_name(v->type));
        return 0;
    case F_BOOL:
        if (v->type != JSON_TRUE && v->type != JSON_FALSE)
            return req_fail(e, 400, "'%s' must be true or false, not %s", name, json_type_name(v->type));
        return 0;
    case F_INT:
        if (v->type != JSON_NUMBER || v->number != floor(v->number))
            return req_fail(e, 400, "'%s' must be an integer, not %s", name,
                            v->type == JSON_NUMBER ? "a fraction" : json_type_name(v->type));
        /* fall through */
    case F_NUMBER:
        if (v->type != JSON_NUMBER) return req_fail(e, 400, "'%s' must be a number, not %s", name, json_type_name(v->type));
        if (v->number < lo || v->number > hi) {
            if (lo == hi) return req_fail(e, 400, "'%s' other than %g is not supported", name, lo);
            return req_fail(e, 400, "'%s' must be from %g to %g, got %g", name, lo, hi, v->number);
        }
        return 0;
    case F_OBJECT:
        if (v->type != JSON_OBJECT) return req_fail(e, 400, "'%s' must be an object, not %s", name, json_type_name(v->type));
        for (int i = 0; i < v->n; i++) {
            if (strcmp(v->keys[i], "include_usage"))
                return req_fail(e, 400, "'%s.%s' is not a field this server knows", name, v->keys[i]);
            if (v->items[i].type != JSON_TRUE && v->items[i].type != JSON_FALSE)
                return req_fail(e, 400, "'%s.include_usage' must be true or false", name);
        }
        return 0;
    case F_ANY:
        if (v->type != JSON_FALSE)
            return req_fail(e, 400, "'%s' is not supported (only false)", name);
        return 0;
    default: return 0; /* F_STOP, F_MESSAGES, F_PROMPT: read by their own functions */
    }
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int read_stops(Job *j, const JsonValue *v, ReqError *e) {
    if (v->type == JSON_NULL) return 0;
    const JsonValue *one = v;
    int n = 1;
    if (v->type == JSON_ARRAY) n = v->n, one = v->items;
    else if (v->type != JSON_STRING) return req_fail(e, 400, "'stop' must be a string or an array of strings");
    if (n > MAX_STOPS) return req_fail(e, 400, "'stop' may hold at most %d strings, got %d", MAX_STOPS, n);
    for (int i = 0; i < n; i++) {
        if (one[i].type != JSON_STRING) return req_fail(e, 400, "'stop' must hold strings, not %s", json_type_name(one[i].type));
        if (one[i].length == 0 || one[i].length > MAX_STOP_LEN)
            return req_fail(e, 400, "a 'stop' string must have 1 to %d bytes, got %zu", MAX_STOP_LEN, one[i].length);
        j->stops[j->n_stops++] = dup_bytes(one[i].string, one[i].length);
    }
    return 0;
}

/** A message's content: a string, or OpenAI's array of {"type":"text","text":...} parts, joined. */
static int message_content(const JsonValue *c, int i, Buf *out, ReqError *e) {
    if (c && c->type == JSON_STRING) {
        buf_add(out, c->string, c->length);
        return 0;
    }
    if (!c || c->type != JSON_ARRAY) return req_fail(e, 400, "messages[%d].content must be a string or an array of text parts", i);
    for (int k = 0; k < c->n; k++) {
        const JsonValue *type = json_get(&c->items[k], "type"), *text = json_get(&c->items[k], "text");
        if (!type || type->type != JSON_STRING || strcmp(type->string, "text") || !text || text->type != JSON_STRING)
            return req_fail(e, 400, "messages[%d].content[%d] must be {\"type\": \"text\", \"text\": \"...\"}", i, k);
        buf_add(out, text->string, text->length);
    }
    return 0;
}

/** The messages, written in the model's chat template (the terminal chat's chat_apply()), then tokenized. */
static int read_messages(const Server *s, Job *j, const JsonValue *v, ReqError *e) {
    if (v->type != JSON_ARRAY || v->n == 0) return req_fail(e, 400, "'messages' must be a non-empty array");
    ChatMessage *msgs = xcalloc((size_t)v->n, sizeof(ChatMessage));
    Buf *contents = xcalloc((size_t)v->n, sizeof(Buf));
    int rc = 0;
    for (int i = 0; i < v->n && rc == 0; i++) {
        const JsonValue *m = &v->items[i], *role;
        buf_init(&contents[i]);
        if (m->type != JSON_OBJECT) { rc = req_fail(e, 400, "messages[%d] must be an object", i); break; }
        for (int k = 0; k < m->n && rc == 0; k++)
            if (strcmp(m->keys[k], "role") && strcmp(m->keys[k], "content") && strcmp(m->keys[k], "name"))
                rc = req_fail(e, 400, "messages[%d].%s is not a field this server knows", i, m->keys[k]);
        if (rc) break;
        role = json_get(m, "role");
        if (!role || role->type != JSON_STRING ||
            (strcmp(role->string, "system") && strcmp(role->string, "user") && strcmp(role->string, "assistant"))) {
            rc = req_fail(e, 400, "messages[%d].role must be \"system\", \"user\" or \"assistant\"", i);
            break;
        }
        rc = message_content(json_get(m, "content"), i, &contents[i], e);
        if (rc == 0 && strlen(contents[i].data ? contents[i].data : "") != contents[i].len)
            rc = req_fail(e, 400, "messages[%d].content holds a NUL character", i);
        msgs[i].role = role->string;
        msgs[i].content = contents[i].data ? contents[i].data : "";
    }
    if (rc == 0) {
        char *text = chat_apply(s->tmpl, msgs, v->n, 1, chat_eos_text(s->vocab));
        char err[200];
        j->prompt = text ? vocab_encode(s->vocab, text, 1, &j->n_prompt, err, sizeof err) : NULL;
        if (!j->prompt) rc = req_fail(e, 400, "the messages cannot be tokenized: %s", text ? err : "no template");
        free(text);
    }
    for (int i = 0; i < v->n; i++) buf_free(&contents[i]);
    free(contents);
    free(msgs);
    return rc;
}

/** A completion's prompt: a string (tokenized, BOS first), or an array of token ids (taken as they are). */
static int read_prompt(const Server *s, Job *j, const JsonValue *v, ReqError *e) {
    if (v->type == JSON_STRING) {
        char err[200];
        if (strlen(v->string) != v->length) return req_fail(e, 400, "'prompt' holds a NUL character");
        j->prompt = vocab_encode(s->vocab, v->string, 1, &j->n_prompt, err, sizeof err);
        if (!j->prompt) return req_fail(e, 400, "'prompt' cannot be tokenized: %s", err);
        return 0;
    }
    if (v->type != JSON_ARRAY || v->n == 0) return req_fail(e, 400, "'prompt' must be a string or a non-empty array of token ids");
    j->prompt = xcalloc((size_t)v->n, sizeof(int));
    j->n_prompt = v->n;
    for (int i = 0; i < v->n; i++) {
        double x = v->items[i].number;
        if (v->items[i].type != JSON_NUMBER || x != floor(x) || x < 0 || x >= s->vocab_size)
            return req_fail(e, 400, "prompt[%d] must be a token id from 0 to %d", i, s->vocab_size - 1);
        j->prompt[i] = (int)x;
    }
    return 0;
}

/** Read a request body into @p j: every field checked, the prompt built. 0, or -1 with @p e set. */
static int read_request(const Server *s, Job *j, const char *body, size_t len, ReqError *e) {
    char err[200];
    Json *doc = json_parse(body, len, err, sizeof err);
    if (!doc) return req_fail(e, 400, "the body is not valid JSON: %s", err);
    const JsonValue *root = json_root(doc);
    int endpoint = j->kind == JOB_CHAT ? FOR_CHAT : FOR_COMPLETION, rc = 0;
    if (root->type != JSON_OBJECT) rc = req_fail(e, 400, "the body must be a JSON object, not %s", json_type_name(root->type));
    for (int i = 0; rc == 0 && i < root->n; i++) {
        const char *key = root->keys[i];
        const JsonValue *v = &root->items[i];
        int f = field_index(key, endpoint);
        if (f < 0) { rc = req_fail(e, 400, "'%s' is not a field this server knows", key); break; }
        if ((rc = check_field(f, v, e)) != 0) break;
        int is_true = v->type == JSON_TRUE;
        if (!strcmp(key, "messages")) rc = read_messages(s, j, v, e);
        else if (!strcmp(key, "prompt")) rc = read_prompt(s, j, v, e);
        else if (!strcmp(key, "stop")) rc = read_stops(j, v, e);
        else if (!strcmp(key, "stream")) j->stream = is_true;
        else if (!strcmp(key, "stream_options")) { /* only {"include_usage": false} turns the usage chunk off */
            const JsonValue *u = json_get(v, "include_usage");
            j->include_usage = !u || u->type == JSON_TRUE;
        }
        else if (!strcmp(key, "ignore_eos")) j->ignore_eos = is_true;
        else if (!strcmp(key, "return_tokens")) j->return_tokens = is_true;
        else if (v->type == JSON_NULL) continue;
        else if (!strcmp(key, "max_tokens") || !strcmp(key, "max_completion_tokens")) j->max_tokens = (long)v->number;
        else if (!strcmp(key, "temperature")) j->temperature = (float)v->number;
        else if (!strcmp(key, "top_p")) j->top_p = (float)v->number;
        else if (!strcmp(key, "top_k")) j->top_k = (long)v->number;
        else if (!strcmp(key, "min_p")) j->min_p = (float)v->number;
        else if (!strcmp(key, "repeat_penalty")) j->repeat_penalty = (float)v->number;
        else if (!strcmp(key, "seed") && v->number >= 0) j->seed = (uint64_t)v->number;
    }
    if (rc == 0 && !j->prompt)
        rc = req_fail(e, 400, "'%s' is required", j->kind == JOB_CHAT ? "messages" : "prompt");
    if (rc == 0 && j->max_tokens == 0) rc = req_fail(e, 400, "'max_tokens' must be at least 1 (or -1: no limit)");
    if (rc == 0 && j->n_prompt >= s->n_ctx)
        rc = req_fail(e, 400, "the prompt is %d tokens, and a slot holds %d positions (-c): it does not fit", j->n_prompt,
                      s->n_ctx);
    json_free(doc);
    return rc;
}

/* ======================================================================== */
/* The engine: slots and continuous batching                                */
/* ======================================================================== */

/** The free slot for @p j (slots.c's rule: the longest cached prefix of its prompt). Under s->mu. */
static int slot_for(const Server *s, const Job *j) {
    SlotView views[MAX_SLOTS];
    for (int i = 0; i < (int)s->opt.n_slots; i++)
        views[i] = (SlotView){s->slots[i].ids, s->slots[i].n_fed, s->slots[i].last_used, s->slots[i].job != NULL};
    return choose_slot(views, (int)s->opt.n_slots, j->prompt, j->n_prompt);
}

/** Give @p j slot @p i: its prompt becomes the slot's sequence, keeping the cached prefix. Under s->mu. */
static void start_job(Server *s, int i, Job *j) {
    Slot *sl = &s->slots[i];
    int reuse = common_prefix(sl->ids, sl->n_fed, j->prompt, j->n_prompt);
    if (reuse > j->n_prompt - 1) reuse = j->n_prompt - 1; /* the last prompt position is run again: it makes the logits */
    memcpy(sl->ids, j->prompt, sizeof(int) * (size_t)j->n_prompt);
    sl->n_ids = j->n_prompt;
    sl->n_fed = reuse;
    sl->job = j;
    sl->n_lgts = 0;
    s->n_busy++;
    sampler_free(&sl->sampler);
    uint64_t seed = j->seed != UINT64_MAX ? j->seed : (uint64_t)time(NULL) ^ ((uint64_t)j->number << 32);
    sampler_init(&sl->sampler, s->vocab_size, j->temperature, j->top_p, (int)j->top_k, seed);
    sl->sampler.min_p = j->min_p;
    sl->sampler.repeat_penalty = j->repeat_penalty;
    sl->sampler.repeat_last_n = 64;
    j->slot = i;
    j->n_reused = reuse;
    j->t_start = now_seconds();
}

/** Write a job's logits to --logits-dir/N.lgts: row k is the step after token ids[k]. */
static void write_logits(const Server *s, const Slot *sl, const Job *j) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%ld.lgts", s->opt.logits_dir, j->number);
    OutputFile out = output_create(path);
    Lgts l = {sl->n_lgts, s->vocab_size, sl->lgts_ids, sl->lgts_rows};
    lgts_write(&out, &l);
}

/** The engine is done with slot @p i's job: results published, slot free (its cache stays for reuse). */
static void finish_job(Server *s, int i, const char *finish, int error_status, const char *error) {
    Slot *sl = &s->slots[i];
    Job *j = sl->job;
    if (s->opt.logits_dir && sl->n_lgts > 0) write_logits(s, sl, j);
    double t = now_seconds();
    double decode_s = j->t_prompt_done > 0 ? t - j->t_prompt_done : 0;
    fprintf(stderr, "[server] #%ld slot %d: %d prompt tokens (%d from the cache), %d generated (%s) in %.2f s; "
            "%.1f ms to the first token, %.1f tok/s\n", j->number, i, j->n_prompt, j->n_reused, j->n_out,
            finish ? finish : error ? error : "cancelled", t - j->t_submit,
            j->t_prompt_done > 0 ? 1000 * (j->t_prompt_done - j->t_submit) : 0.0,
            decode_s > 0 && j->n_out > 1 ? (j->n_out - 1) / decode_s : 0.0);
    pthread_mutex_lock(&s->mu);
    sl->job = NULL;
    sl->last_used = t;
    s->n_busy--;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&j->mu);
    j->finish = finish;
    j->error_status = error_status;
    if (error) snprintf(j->error_message, sizeof j->error_message, "%s", error);
    j->releasable = j->text.len;
    j->t_end = t;
    j->done = 1; /* from here on the job belongs to its connection thread alone */
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->mu);
}

/** A job that never got a slot ends here (cancelled, or the server stops). Under s->mu. */
static void drop_queued(Job *j, int status, const char *why) {
    pthread_mutex_lock(&j->mu);
    j->error_status = status;
    snprintf(j->error_message, sizeof j->error_message, "%s", why);
    j->done = 1;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->mu);
}

static int job_cancelled(Job *j) {
    pthread_mutex_lock(&j->mu);
    int c = j->cancelled;
    pthread_mutex_unlock(&j->mu);
    return c;
}

/** Between two steps: drop cancelled jobs from the queue, give free slots to waiting jobs. Under s->mu. */
static void admit_jobs(Server *s) {
    for (Job **p = &s->queue_head; *p;) {
        Job *j = *p;
        if (job_cancelled(j)) {
            *p = j->next;
            s->n_queued--;
            drop_queued(j, 0, "cancelled while waiting for a slot");
        } else {
            p = &j->next;
        }
    }
    s->queue_tail = NULL;
    for (Job *j = s->queue_head; j; j = j->next) s->queue_tail = j;
    while (s->queue_head && s->n_busy < s->opt.n_slots) {
        Job *j = s->queue_head;
        s->queue_head = j->next;
        if (!s->queue_head) s->queue_tail = NULL;
        s->n_queued--;
        start_job(s, slot_for(s, j), j);
    }
}

/**
 * Add token @p id's text to the job's reply; returns 1 when a stop string ended it (the text is
 * cut before the stop string, as OpenAI's API does).
 */
static int add_text(Job *j, int prev, int id, const Vocab *v) {
    int len;
    const char *piece = vocab_decode(v, prev, id, &len);
    pthread_mutex_lock(&j->mu);
    size_t old = j->text.len, longest = 0;
    /* a NUL byte (the byte token <0x00>) is left out: a client could not send it back in the next turn */
    for (int i = 0; i < len; i++)
        if (piece[i]) buf_add(&j->text, piece + i, 1);
    for (int k = 0; k < j->n_stops; k++)
        if (strlen(j->stops[k]) > longest) longest = strlen(j->stops[k]);
    const char *const *stops = (const char *const *)j->stops;
    size_t at = find_stop(j->text.data, j->text.len, old + 1 > longest ? old + 1 - longest : 0, stops, j->n_stops);
    int stopped = at < j->text.len;
    if (stopped) { /* the reply ends before the stop string, which is never sent */
        j->text.len = at;
        j->text.data[at] = 0;
    }
    size_t ok = releasable_bytes(j->text.data, j->text.len, stops, j->n_stops);
    if (ok > j->releasable) j->releasable = ok;
    if (j->n_out == j->cap_out) {
        j->cap_out = j->cap_out ? 2 * j->cap_out : 64;
        j->out_ids = realloc(j->out_ids, sizeof(int) * (size_t)j->cap_out);
        j->text_ends = realloc(j->text_ends, sizeof(size_t) * (size_t)j->cap_out);
        if (!j->out_ids || !j->text_ends) fatal("out of memory");
    }
    j->text_ends[j->n_out] = j->text.len;
    j->out_ids[j->n_out++] = id;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->mu);
    return stopped;
}

/** Keep a sampled step's logits for --logits-dir. */
static void record_logits(Server *s, Slot *sl, int fed_id) {
    if (sl->n_lgts == sl->cap_lgts) {
        sl->cap_lgts = sl->cap_lgts ? 2 * sl->cap_lgts : 16;
        sl->lgts_rows = realloc(sl->lgts_rows, checked_mul((size_t)sl->cap_lgts, sizeof(float) * (size_t)s->vocab_size, "logits"));
        sl->lgts_ids = realloc(sl->lgts_ids, sizeof(int) * (size_t)sl->cap_lgts);
        if (!sl->lgts_rows || !sl->lgts_ids) fatal("--logits-dir: out of memory");
    }
    memcpy(sl->lgts_rows + (size_t)sl->n_lgts * (size_t)s->vocab_size, sl->logits, sizeof(float) * (size_t)s->vocab_size);
    sl->lgts_ids[sl->n_lgts++] = fed_id;
}

/** Slot @p i has the logits after its whole sequence: sample the next token and decide whether the job is done. */
static void next_token(Server *s, int i) {
    Slot *sl = &s->slots[i];
    Job *j = sl->job;
    if (j->t_prompt_done == 0) j->t_prompt_done = now_seconds();
    if (s->opt.logits_dir) record_logits(s, sl, sl->ids[sl->n_ids - 1]);
    int id = sampler_sample(&sl->sampler, sl->logits, sl->ids, sl->n_ids);
    if (!j->ignore_eos && vocab_ends_text(s->vocab, id)) { /* the terminal's rule: the end of a turn, EOS, or BOS */
        finish_job(s, i, "stop", 0, NULL);
        return;
    }
    sl->ids[sl->n_ids++] = id;
    if (add_text(j, sl->ids[sl->n_ids - 2], id, s->vocab)) finish_job(s, i, "stop", 0, NULL);
    else if (j->max_tokens > 0 && j->n_out >= j->max_tokens) finish_job(s, i, "length", 0, NULL);
    else if (sl->n_ids > s->n_ctx) finish_job(s, i, "length", 0, NULL); /* the next step would need a position past the cache */
}

/**
 * One step of every busy slot (slots.c's share_rows()): a replying slot adds one row, the token
 * it sampled last; a slot still reading its prompt adds as many of its positions as the batch
 * has room for after the replying ones, so a long prompt never stalls the others' replies.
 */
static int build_step(Server *s, ModelSeqStep *steps, int *slot_of) {
    int wanted[MAX_SLOTS], replying[MAX_SLOTS], rows[MAX_SLOTS], n = 0;
    for (int i = 0; i < (int)s->opt.n_slots; i++) {
        const Slot *sl = &s->slots[i];
        wanted[i] = sl->job ? sl->n_ids - sl->n_fed : 0;
        replying[i] = sl->job && sl->n_ids > sl->job->n_prompt;
    }
    share_rows(wanted, replying, (int)s->opt.n_slots, (int)s->opt.n_batch, rows);
    for (int i = 0; i < (int)s->opt.n_slots; i++)
        if (rows[i] > 0) {
            steps[n] = (ModelSeqStep){i, s->slots[i].ids, s->slots[i].n_fed + rows[i], s->slots[i].logits};
            slot_of[n++] = i;
        }
    return n;
}

static void *engine_main(void *arg) {
    Server *s = arg;
    ModelSeqStep *steps = xcalloc((size_t)s->opt.n_slots, sizeof(ModelSeqStep));
    int *slot_of = xcalloc((size_t)s->opt.n_slots, sizeof(int));
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!stopping && s->n_busy == 0 && !s->queue_head) pthread_cond_wait(&s->work, &s->mu);
        if (stopping) {
            while (s->queue_head) {
                Job *j = s->queue_head;
                s->queue_head = j->next;
                drop_queued(j, 503, "the server is shutting down");
            }
            s->queue_tail = NULL;
            s->n_queued = 0;
            s->engine_gone = 1; /* under the same lock as the last look at the queue: nothing joins it after */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit_jobs(s);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < (int)s->opt.n_slots; i++) /* a client that left frees its slot before the step */
            if (s->slots[i].job && job_cancelled(s->slots[i].job)) finish_job(s, i, NULL, 0, NULL);
        int n = build_step(s, steps, slot_of);
        if (n == 0) continue;
        model_forward_seqs(s->model, steps, n);
        for (int k = 0; k < n; k++) {
            Slot *sl = &s->slots[slot_of[k]];
            sl->n_fed = steps[k].n;
            if (sl->n_fed == sl->n_ids) next_token(s, slot_of[k]);
        }
    }
    for (int i = 0; i < (int)s->opt.n_slots; i++)
        if (s->slots[i].job) finish_job(s, i, NULL, 503, "the server is shutting down");
    free(steps);
    free(slot_of);
    return NULL;
}

/** Queue @p j for the engine; 0, or -1 with @p e set when the queue is full. */
static int submit_job(Server *s, Job *j, ReqError *e) {
    pthread_mutex_lock(&s->mu);
    if (s->engine_gone || stopping) { /* a request read while the server stops */
        pthread_mutex_unlock(&s->mu);
        return req_fail(e, 503, "the server is shutting down");
    }
    int free_slots = (int)s->opt.n_slots - s->n_busy - s->n_queued;
    if (free_slots <= 0 && s->n_queued >= s->opt.max_queue) {
        pthread_mutex_unlock(&s->mu);
        return req_fail(e, 503, "all %ld slots are busy and %ld requests wait (--max-queue); try again later",
                        s->opt.n_slots, s->opt.max_queue);
    }
    j->next = NULL;
    if (s->queue_tail) s->queue_tail->next = j;
    else s->queue_head = j;
    s->queue_tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ======================================================================== */
/* Responses                                                                */
/* ======================================================================== */

static const char *error_type(int status) {
    switch (status) {
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 408: return "timeout_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static void error_json(Buf *b, int status, const char *message) {
    buf_adds(b, "{\"error\":{\"message\":");
    json_write_string(b, message, strlen(message));
    buf_printf(b, ",\"type\":\"%s\",\"code\":%d}}", error_type(status), status);
}

static int send_json(int fd, int status, const Buf *b, int keep_alive, const char *extra) {
    return http_send(fd, status, "application/json; charset=utf-8", b->data, b->len, keep_alive, extra);
}

static int send_error(int fd, int status, const char *message, int keep_alive) {
    Buf b;
    buf_init(&b);
    error_json(&b, status, message);
    int rc = send_json(fd, status, &b, keep_alive, status == 405 ? "Allow: GET, POST\r\n" : NULL);
    buf_free(&b);
    return rc;
}

/** The beginning every object of a reply shares: id, object, created, model. */
static void reply_head(Buf *b, const Server *s, const Job *j, const char *object) {
    buf_printf(b, "{\"id\":\"%s-%ld\",\"object\":\"%s\",\"created\":%ld,\"model\":",
               j->kind == JOB_CHAT ? "chatcmpl" : "cmpl", j->number, object, j->created);
    json_write_string(b, s->model_name, strlen(s->model_name));
}

static void usage_json(Buf *b, const Job *j) {
    double prompt_ms = j->t_prompt_done > 0 ? 1000 * (j->t_prompt_done - j->t_start) : 0;
    double predicted_ms = j->t_prompt_done > 0 ? 1000 * (j->t_end - j->t_prompt_done) : 0;
    buf_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d},", j->n_prompt, j->n_out,
               j->n_prompt + j->n_out);
    buf_printf(b, "\"timings\":{\"cache_n\":%d,\"prompt_n\":%d,\"prompt_ms\":%.3f,\"predicted_n\":%d,\"predicted_ms\":%.3f,"
               "\"predicted_per_second\":%.3f}", j->n_reused, j->n_prompt - j->n_reused, prompt_ms, j->n_out, predicted_ms,
               j->n_out > 1 && predicted_ms > 0 ? (j->n_out - 1) * 1000.0 / predicted_ms : 0.0);
}

static void tokens_json(Buf *b, const Job *j) {
    buf_adds(b, ",\"tokens\":[");
    for (int i = 0; i < j->n_out; i++) buf_printf(b, i ? ",%d" : "%d", j->out_ids[i]);
    buf_adds(b, "]");
}

/** The whole reply of a request without "stream". */
static void full_reply(Buf *b, const Server *s, const Job *j) {
    reply_head(b, s, j, j->kind == JOB_CHAT ? "chat.completion" : "text_completion");
    buf_adds(b, ",\"choices\":[{\"index\":0,");
    if (j->kind == JOB_CHAT) {
        buf_adds(b, "\"message\":{\"role\":\"assistant\",\"content\":");
        json_write_string(b, j->text.data ? j->text.data : "", j->text.len);
        buf_adds(b, "}");
    } else {
        buf_adds(b, "\"text\":");
        json_write_string(b, j->text.data ? j->text.data : "", j->text.len);
        buf_adds(b, ",\"logprobs\":null");
    }
    if (j->return_tokens) tokens_json(b, j);
    buf_printf(b, ",\"finish_reason\":\"%s\"}],", j->finish ? j->finish : "stop");
    usage_json(b, j);
    buf_adds(b, "}");
}

/**
 * One chunk of a stream: a piece of text, the role (chat's first chunk) or the finish reason;
 * the caller adds any more members and the closing brace. When a usage chunk ends the stream,
 * every other chunk says "usage": null, as OpenAI's do.
 */
static void chunk_json(Buf *b, const Server *s, const Job *j, const char *text, size_t len, int role, const char *finish) {
    reply_head(b, s, j, j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion");
    buf_adds(b, ",\"choices\":[{\"index\":0,");
    if (j->kind == JOB_CHAT) {
        buf_adds(b, "\"delta\":{");
        if (role) buf_adds(b, "\"role\":\"assistant\",\"content\":\"\"");
        else if (text) { buf_adds(b, "\"content\":"); json_write_string(b, text, len); }
        buf_adds(b, "}");
    } else {
        buf_adds(b, "\"text\":");
        json_write_string(b, text ? text : "", text ? len : 0);
        buf_adds(b, ",\"logprobs\":null");
    }
    if (finish) buf_printf(b, ",\"finish_reason\":\"%s\"}]", finish);
    else buf_adds(b, ",\"finish_reason\":null}]");
    if (j->include_usage) buf_adds(b, ",\"usage\":null");
}

static int send_event(int fd, const Buf *b) { return http_send_sse_data(fd, b->data, b->len); }

/* ======================================================================== */
/* Connections                                                              */
/* ======================================================================== */

/** wait_for_job()'s @p sent for a reply that is sent whole: wait for the end only. */
#define WHOLE_REPLY SIZE_MAX

/**
 * Wait until the job has text beyond @p sent to send, or is done. Meanwhile, on each call and
 * every 50 ms: a client that left, the request's deadline or the server stopping cancel the job
 * (the engine then ends it, and *why says which). The look comes before the wait, not only after
 * one: a stream whose text is always ready when it asks would otherwise never time out.
 * Returns with j->mu held.
 */
static void wait_for_job(Server *s, Job *j, int fd, size_t sent, int *why) {
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (!j->cancelled && !j->done) {
            int reason = stopping ? 503 : now_seconds() > j->deadline ? 408 : http_peer_gone(fd) ? 499 : 0;
            if (reason) {
                j->cancelled = 1;
                *why = reason;
                pthread_mutex_unlock(&j->mu); /* s->mu before a job's mu, never after (the lock order) */
                pthread_mutex_lock(&s->mu);
                pthread_cond_signal(&s->work);
                pthread_mutex_unlock(&s->mu);
                pthread_mutex_lock(&j->mu);
            }
        }
        if (j->done || (sent != WHOLE_REPLY && j->releasable != sent)) return;
        struct timespec ts;
        struct timeval tv;
        gettimeofday(&tv, NULL); /* pthread_cond_timedwait() takes the wall clock (macOS has no other) */
        long ns = (long)tv.tv_usec * 1000 + 50 * 1000000L;
        ts.tv_sec = tv.tv_sec + ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&j->changed, &j->mu, &ts);
    }
}

static const char *cancel_message(int why, const Server *s, char *buf, size_t n) {
    if (why == 408) snprintf(buf, n, "the request took longer than --timeout %ld s", s->opt.timeout_s);
    else if (why == 503) snprintf(buf, n, "the server is shutting down");
    else snprintf(buf, n, "the request was cancelled");
    return buf;
}

/**
 * Whether a job ends in an error: the engine's, or a cancel (@p why) that came before the job
 * ended by itself. One that had its finish reason by the time the cancel took effect is answered.
 */
static int job_failed(const Job *j, int why) { return j->error_status || (why && !j->finish); }

/**
 * Stream the job's reply as server-sent events, ending with the finish chunk, the usage chunk
 * ("choices": [], the usage and timings, as OpenAI's API sends it with
 * stream_options.include_usage) and [DONE] (a stream closes its connection). A request with
 * {"include_usage": false} gets no usage chunk, for clients that read choices[0] of every
 * chunk: its usage and timings ride on the finish chunk, as llama-server sends them.
 */
static void stream_reply(Server *s, Job *j, int fd) {
    Buf b;
    buf_init(&b);
    int why = 0, gone = http_send_sse_head(fd) != 0;
    if (!gone && j->kind == JOB_CHAT) {
        chunk_json(&b, s, j, NULL, 0, 1, NULL);
        buf_adds(&b, "}");
        gone = send_event(fd, &b) != 0;
    }
    size_t sent = 0;
    int token = 0; /* the next token whose text ends beyond sent */
    Buf events;
    buf_init(&events);
    for (;;) {
        if (gone) { /* the client left: let the engine free the slot, then wait until it has */
            pthread_mutex_lock(&j->mu);
            j->cancelled = 1;
            pthread_mutex_unlock(&j->mu);
        }
        wait_for_job(s, j, fd, sent, &why);
        size_t upto = j->releasable;
        int done = j->done;
        buf_clear(&events);
        while (sent < upto) { /* a chunk per token, as OpenAI's API streams; held-back text joins the next */
            while (token < j->n_out && j->text_ends[token] <= sent) token++;
            size_t end = token < j->n_out && j->text_ends[token] < upto ? j->text_ends[token] : upto;
            /* a token that ends inside a character (byte tokens do): its chunk takes the character's
               other bytes too, else each chunk would hold half a character, sent as U+FFFD */
            while (end < upto && ((unsigned char)j->text.data[end] & 0xC0) == 0x80) end++;
            buf_clear(&b);
            chunk_json(&b, s, j, j->text.data + sent, end - sent, 0, NULL);
            buf_adds(&b, "}");
            buf_adds(&events, "data: ");
            buf_add(&events, b.data, b.len);
            buf_adds(&events, "\n\n");
            sent = end;
        }
        pthread_mutex_unlock(&j->mu);
        if (events.len && !gone) gone = http_send_bytes(fd, events.data, events.len) != 0;
        if (done) break;
    }
    buf_free(&events);
    if (!gone) {
        buf_clear(&b);
        if (job_failed(j, why)) {
            char msg[160];
            error_json(&b, j->error_status ? j->error_status : why,
                       j->error_status ? j->error_message : cancel_message(why, s, msg, sizeof msg));
            send_event(fd, &b);
        } else {
            chunk_json(&b, s, j, NULL, 0, 0, j->finish ? j->finish : "stop");
            if (!j->include_usage) {
                buf_adds(&b, ",");
                usage_json(&b, j);
            }
            buf_adds(&b, "}");
            send_event(fd, &b);
            if (j->include_usage) {
                buf_clear(&b);
                reply_head(&b, s, j, j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion");
                buf_adds(&b, ",\"choices\":[],");
                usage_json(&b, j);
                buf_adds(&b, "}");
                send_event(fd, &b);
            }
            http_send_sse_data(fd, "[DONE]", 6);
        }
    }
    buf_free(&b);
}

/** A completion request, from its body to its last byte out. Returns 1 when the connection may stay open. */
static int serve_completion(Server *s, int fd, const HttpRequest *req, JobKind kind) {
    if (!server_ready(s)) return send_error(fd, 503, "the model is still loading", req->keep_alive) == 0 && req->keep_alive;
    Job *j = job_new(kind);
    ReqError e = {0, ""};
    pthread_mutex_lock(&s->mu);
    j->number = ++s->next_number;
    pthread_mutex_unlock(&s->mu);
    j->created = (long)time(NULL);
    j->t_submit = now_seconds();
    j->deadline = j->t_submit + (double)s->opt.timeout_s;
    if (read_request(s, j, req->body, req->body_len, &e) != 0 || submit_job(s, j, &e) != 0) {
        int rc = send_error(fd, e.status, e.message, req->keep_alive) == 0 && req->keep_alive;
        job_free(j);
        return rc;
    }
    int keep = 0;
    if (j->stream) {
        stream_reply(s, j, fd);
    } else {
        int why = 0;
        for (;;) { /* wait for the whole reply */
            wait_for_job(s, j, fd, WHOLE_REPLY, &why);
            int done = j->done;
            pthread_mutex_unlock(&j->mu);
            if (done) break;
        }
        Buf b;
        buf_init(&b);
        char msg[160];
        if (job_failed(j, why)) {
            int status = j->error_status ? j->error_status : why == 499 ? 400 : why;
            error_json(&b, status, j->error_status ? j->error_message : cancel_message(why, s, msg, sizeof msg));
            keep = why != 499 && send_json(fd, status, &b, req->keep_alive, NULL) == 0 && req->keep_alive;
        } else {
            full_reply(&b, s, j);
            keep = send_json(fd, 200, &b, req->keep_alive, NULL) == 0 && req->keep_alive;
        }
        buf_free(&b);
    }
    job_free(j);
    return keep;
}

static int serve_models(Server *s, int fd, const HttpRequest *req) {
    Buf b;
    buf_init(&b);
    buf_adds(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
    json_write_string(&b, s->model_name, strlen(s->model_name));
    buf_printf(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"llamabook\",\"meta\":{\"n_ctx\":%d,\"n_vocab\":%d,"
               "\"slots\":%ld}}]}", s->n_ctx, s->vocab_size, s->opt.n_slots);
    int rc = send_json(fd, 200, &b, req->keep_alive, NULL);
    buf_free(&b);
    return rc == 0 && req->keep_alive;
}

/** Route one request. Returns 1 when the connection may stay open for the next one. */
static int handle_request(Server *s, int fd, const HttpRequest *req) {
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST"), keep = req->keep_alive;
    static const struct { const char *path; int post; } routes[] = {
        {"/", 0}, {"/index.html", 0}, {"/health", 0}, {"/v1/models", 0},
        {"/v1/chat/completions", 1}, {"/v1/completions", 1},
    };
    int known = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof routes[0]); i++)
        if (!strcmp(req->path, routes[i].path)) known = i;
    if (known < 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "no such endpoint: %s %.200s", req->method, req->path);
        return send_error(fd, 404, msg, keep) == 0 && keep;
    }
    if ((routes[known].post && !post) || (!routes[known].post && !get))
        return send_error(fd, 405, routes[known].post ? "use POST here" : "use GET here", keep) == 0 && keep;
    if (known <= 1)
        return http_send(fd, 200, "text/html; charset=utf-8", server_page_html, server_page_len, keep, NULL) == 0 && keep;
    int ready = server_ready(s);
    if (known == 2) {
        const char *body = ready ? "{\"status\":\"ok\"}" : "{\"status\":\"loading model\"}";
        return http_send(fd, ready ? 200 : 503, "application/json; charset=utf-8", body, strlen(body), keep, NULL) == 0 && keep;
    }
    if (known == 3) /* its n_ctx and n_vocab are the model's: not known before it is loaded */
        return ready ? serve_models(s, fd, req) : send_error(fd, 503, "the model is still loading", keep) == 0 && keep;
    return serve_completion(s, fd, req, known == 4 ? JOB_CHAT : JOB_COMPLETION);
}

typedef struct {
    Server *s;
    int fd;
} ConnArg;

/**
 * After an error reply to a request that was not read to its end: close our side for writing
 * and read (and drop) what the client is still sending, for a moment. Closing with unread bytes
 * would make the kernel reset the connection, and the client could lose the reply it was sent.
 */
static void linger_close(int fd) {
    char sink[4096];
    shutdown(fd, SHUT_WR);
    double end = now_seconds() + 0.5;
    for (size_t total = 0; total < (1u << 20) && now_seconds() < end;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n <= 0) break;
        total += (size_t)n;
    }
}

static void *connection_main(void *arg) {
    ConnArg *c = arg;
    Server *s = c->s;
    HttpConn hc;
    http_conn_init(&hc, c->fd);
    HttpLimits lim = {8192, (size_t)s->opt.max_body, 15000, (int)(s->opt.timeout_s * 1000)};
    for (;;) {
        HttpRequest req;
        HttpError err = {0, ""};
        int r = http_read_request(&hc, &lim, &stopping, &req, &err);
        if (r == 0) break;
        if (r < 0) {
            if (err.status) {
                send_error(c->fd, err.status, err.message, 0);
                linger_close(c->fd);
            }
            break;
        }
        if (!handle_request(s, c->fd, &req) || stopping) break;
    }
    http_conn_free(&hc);
    close(c->fd);
    pthread_mutex_lock(&s->mu);
    s->n_conns--;
    pthread_mutex_unlock(&s->mu);
    free(c);
    return NULL;
}

/**
 * The acceptor's refusal: a 503, then close without waiting. The request the client may already
 * have sent is read first, as far as it has come: closing with unread bytes would reset the
 * connection, and the client could lose the 503 (linger_close() waits; the acceptor must not).
 */
static void refuse_connection(int fd, const char *message) {
    char sink[4096];
    send_error(fd, 503, message, 0);
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {}
    close(fd);
}

/** Take connections until the server stops; each gets a thread, within --max-connections. */
static void *accept_main(void *arg) {
    Server *s = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!stopping) {
        struct pollfd p = {s->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) { /* gone before we took it (EAGAIN), or out of descriptors (EMFILE): not a reason to spin */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) sleep_ms(50);
            continue;
        }
        /* the listening socket does not block (see listen_on()); on macOS a connection inherits that */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
#ifdef SO_NOSIGPIPE
        int no_sigpipe = 1; /* macOS has no MSG_NOSIGNAL: a write to a closed connection must not raise SIGPIPE */
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &no_sigpipe, sizeof no_sigpipe);
#endif
        struct timeval tv = {s->opt.timeout_s, 0}; /* a client that stops reading cannot hold a thread forever */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1; /* a token's chunk goes out at once, not when the previous one is acknowledged */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&s->mu);
        int full = s->n_conns >= s->opt.max_conns;
        if (!full) s->n_conns++;
        pthread_mutex_unlock(&s->mu);
        if (full) {
            char msg[120];
            snprintf(msg, sizeof msg, "too many connections (--max-connections %ld); try again later", s->opt.max_conns);
            refuse_connection(fd, msg);
            continue;
        }
        ConnArg *c = xmalloc(sizeof *c);
        c->s = s, c->fd = fd;
        pthread_t t;
        if (pthread_create(&t, &attr, connection_main, c) != 0) {
            refuse_connection(fd, "the server cannot start a thread for this connection");
            free(c);
            pthread_mutex_lock(&s->mu);
            s->n_conns--;
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

/* ======================================================================== */
/* Starting and stopping                                                    */
/* ======================================================================== */

/** Listen on --host and --port; prints the address (the port chosen when --port is 0). */
static int listen_on(const ServerOptions *o) {
    char port[16];
    snprintf(port, sizeof port, "%ld", o->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0) fatal("--host %s: %s", o->host, gai_strerror(rc));
    int fd = -1, one = 1;
    const char *why = "no address";
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) { why = strerror(errno); continue; }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            why = strerror(errno);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) fatal("--host %s --port %ld: cannot listen: %s", o->host, o->port, why);
    /* poll() said a connection waits, but the client may reset it before accept(): a blocking
       accept() would then wait for the next one, and the acceptor would not see the server stop */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int bound = (int)o->port;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        bound = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                 : ((struct sockaddr_in *)&addr)->sin_port);
    int v6 = strchr(o->host, ':') != NULL; /* an IPv6 address goes in brackets in a URL */
    fprintf(stderr, "[server] listening on http://%s%s%s:%d\n", v6 ? "[" : "", o->host, v6 ? "]" : "", bound);
    return fd;
}

/** The model's name in the API: --alias, else the file's name without its folder and .gguf. */
static void name_model(Server *s) {
    const char *base = strrchr(s->opt.model_path, '/');
    base = s->opt.alias ? s->opt.alias : base ? base + 1 : s->opt.model_path;
    snprintf(s->model_name, sizeof s->model_name, "%s", base);
    size_t n = strlen(s->model_name);
    if (!s->opt.alias && n > 5 && !strcmp(s->model_name + n - 5, ".gguf")) s->model_name[n - 5] = 0;
}

/** Open the model with a cache per slot, and find its chat template. */
static void load_model(Server *s) {
    ModelOptions mo = {(int)s->opt.threads, s->opt.verbose, 0, (int)s->opt.n_batch, (int)s->opt.n_ctx, (int)s->opt.n_slots};
    s->model = model_open(s->opt.model_path, &mo);
    s->vocab = model_vocab(s->model);
    if (!s->vocab) fatal("%s: the server needs a GGUF file with its vocabulary", s->opt.model_path);
    const ModelConfig *c = model_config(s->model);
    s->vocab_size = c->vocab_size;
    s->n_ctx = s->opt.n_ctx > 0 && s->opt.n_ctx < c->seq_len ? (int)s->opt.n_ctx : c->seq_len;
    if (s->opt.chat_template) {
        s->tmpl = chat_template_by_name(s->opt.chat_template);
    } else {
        s->tmpl = s->vocab->chat_template ? chat_template_detect(s->vocab->chat_template) : CHAT_UNKNOWN;
        if (s->tmpl == CHAT_UNKNOWN)
            fatal("%s: %s: choose one with --chat-template NAME (%s)", s->opt.model_path,
                  s->vocab->chat_template ? "its chat template is not one this book knows"
                                          : "the model has no chat template (tokenizer.chat_template)",
                  chat_template_names());
    }
    s->slots = xcalloc((size_t)s->opt.n_slots, sizeof(Slot));
    for (int i = 0; i < (int)s->opt.n_slots; i++) {
        s->slots[i].ids = xcalloc((size_t)s->n_ctx + 2, sizeof(int));
        s->slots[i].logits = xcalloc((size_t)s->vocab_size, sizeof(float));
        sampler_init(&s->slots[i].sampler, s->vocab_size, 0, 1, 0, 1);
    }
}

static void free_slots(Server *s) {
    for (int i = 0; s->slots && i < (int)s->opt.n_slots; i++) {
        free(s->slots[i].ids);
        free(s->slots[i].logits);
        free(s->slots[i].lgts_rows);
        free(s->slots[i].lgts_ids);
        sampler_free(&s->slots[i].sampler);
    }
    free(s->slots);
}

int server_main(int argc, char **argv) {
    static Server srv; /* static: the signal handler's flags and the threads outlive nothing else */
    Server *s = &srv;
    s->opt = server_options(argc, argv);
    name_model(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    interrupt_arm(); /* util.c's handlers first (--logits-dir's files use them), then the server's own over them */
    signal(SIGPIPE, SIG_IGN); /* a client that leaves makes a write fail, not the server die */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (!is_regular_file(s->opt.model_path)) /* a wrong path in one line, before the listening line */
        fatal("%s: %s", s->opt.model_path, access(s->opt.model_path, F_OK) != 0 ? strerror(errno) : "not a regular file");
    s->listen_fd = listen_on(&s->opt); /* first: /health answers 503 while the model loads */
    pthread_t acceptor, engine;
    if (pthread_create(&acceptor, NULL, accept_main, s) != 0) fatal("cannot start the acceptor thread");
    if (s->opt.load_delay_ms) sleep_ms(s->opt.load_delay_ms);
    load_model(s);
    if (pthread_create(&engine, NULL, engine_main, s) != 0) fatal("cannot start the engine thread");
    pthread_mutex_lock(&s->mu);
    s->ready = 1;
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "[server] ready: %s, %ld slot%s of %d positions, template %s\n", s->model_name, s->opt.n_slots,
            s->opt.n_slots == 1 ? "" : "s", s->n_ctx, chat_template_name(s->tmpl));

    while (!stopping) sleep_ms(100);
    fprintf(stderr, "[server] stopping\n");
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(acceptor, NULL);
    close(s->listen_fd);
    pthread_join(engine, NULL);
    for (int waited = 0; waited < 50; waited++) { /* the connections see the flag within 100 ms */
        pthread_mutex_lock(&s->mu);
        int open = s->n_conns;
        pthread_mutex_unlock(&s->mu);
        if (open == 0) break;
        sleep_ms(100);
    }
    pthread_mutex_lock(&s->mu);
    int still_open = s->n_conns;
    pthread_mutex_unlock(&s->mu);
    if (still_open == 0) { /* else a connection thread may still read the vocabulary: leave it to exit() */
        model_close(s->model);
        free_slots(s);
    }
    fprintf(stderr, "[server] stopped\n");
    return 0;
}

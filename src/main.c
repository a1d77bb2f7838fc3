/**
 * @file main.c
 * @brief The shared driver: one command line for every chapter.
 *
 * Each chapter binary is this file linked with one chapters/NN_*.c, which
 * implements src/model.h. The options follow llama.cpp's conventions:
 *
 *     build/chNN -m MODEL [-z TOKENIZER] [-p PROMPT] [-n N] [--temp F]
 *                [--top-p F] [--top-k N] [-s SEED] [-t THREADS] [--ignore-eos]
 *                [--ids | --logits FILE (--tokens "1 2 3" | --tokens-file F)
 *                 | --perplexity TEXTFILE]
 *
 * Four modes share one loop, "feed the sequence so far, read the logits":
 * generate (text, the default), --ids (the token ids, as the reference
 * .tokens files), --logits (teacher-forced logits of given ids, LGTS format)
 * and --perplexity (how well the model predicts a text).
 *
 * What can go wrong is handled where it belongs, so that every chapter
 * behaves the same: files are opened and mapped by util.c (a pipe or a device
 * is refused at once, a file that shrinks while mapped ends the run with a
 * line naming it), the one output file is written by util.h's OutputFile
 * rule (never over a link or a device, never partial, no temporary left),
 * every logit is checked to be a number before it is used (a NaN weight
 * stops every chapter the same way; --check-tensors names it at load), and
 * Ctrl-C stops the loop at the next token with the usual [stats] line and
 * status 130. The options are whole words, never grouped letters, so that a
 * llama.cpp option this book lacks (-ngl, -cnv) is named as unknown.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lgts.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"
#include "util.h"

/** Exit status after Ctrl-C, as a shell reports a program killed by SIGINT (128 + 2). */
enum { EXIT_INTERRUPTED = 130 };

/** Everything the command line says. */
typedef struct {
    const char *model_path;
    const char *tokenizer_path;
    const char *prompt;
    long n_predict; /* -1: until the context is full */
    float temperature, top_p;
    long top_k, seed, threads, batch;
    int ignore_eos, print_ids, verbose, check_tensors;
    const char *logits_path, *tokens_text, *tokens_file, *perplexity_path;
} Options;

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "%s\n"
            "usage: %s -m MODEL [options]\n"
            "  -m, --model FILE        model file (a lone positional argument also works)\n"
            "  -z, --tokenizer FILE    llama2.c tokenizer (default: the model's own vocabulary,\n"
            "                          else tok<vocab>.bin or tokenizer.bin beside the model)\n"
            "  -p, --prompt TEXT       prompt (default: empty, BOS only)\n"
            "  -n, --n-predict N       tokens to generate (default -1: until the context is full)\n"
            "      --temp F            temperature, 0 = greedy (default 0.8)\n"
            "      --top-p F           nucleus sampling threshold, 1 = off (default 0.95)\n"
            "      --top-k N           keep the N most likely tokens, 0 = off (default 40)\n"
            "  -s, --seed N            random seed (default: from the clock)\n"
            "  -t, --threads N         worker threads (chapter 4 on; default: all CPUs; at most\n"
            "                          4 per CPU)\n"
            "      --ignore-eos        do not stop at BOS/EOS\n"
            "      --ids               print the token ids (BOS, prompt, generated) instead of text\n"
            "      --logits FILE       teacher-force --tokens/--tokens-file, write LGTS logits\n"
            "      --tokens \"1 2 ..\"   token ids for --logits\n"
            "      --tokens-file F     token ids for --logits, from a file\n"
            "      --perplexity FILE   perplexity of the model on a text file\n"
            "  -b, --batch-size N      most positions computed at once by --logits and --perplexity\n"
            "                          (chapter 7 on; default 512)\n"
            "      --check-tensors     refuse a model whose weights hold NaN or infinities, naming\n"
            "                          the first bad tensor and row (slower load)\n"
            "  -v, --verbose           print load details\n"
            "  -h, --help              this help\n",
            model_chapter_title, prog);
}

static long option_long(const char *flag, const char *arg, long lo, long hi) {
    long v;
    if (parse_long(arg, &v) != 0 || v < lo || v > hi)
        fatal("%s %s: expected an integer from %ld to %ld", flag, arg, lo, hi);
    return v;
}

static float option_float(const char *flag, const char *arg, float lo, float hi) {
    float v;
    if (parse_float(arg, &v) != 0 || v < lo || v > hi)
        fatal("%s %s: expected a number from %g to %g", flag, arg, lo, hi);
    return v;
}

/*
 * The options, one row each. Every argument is a whole word: "-n 5" or
 * "--n-predict 5" or "--n-predict=5", never grouped letters, so that a
 * llama.cpp flag like -ngl or -cnv is named as unknown instead of being read
 * as "-n gl" or "-c -n -v" (what getopt's grouping would do).
 */
enum { O_MODEL, O_TOKENIZER, O_PROMPT, O_PREDICT, O_TEMP, O_TOPP, O_TOPK, O_SEED, O_THREADS, O_IGNORE_EOS,
       O_IDS, O_LOGITS, O_TOKENS, O_TOKENS_FILE, O_PPL, O_CHECK, O_BATCH, O_VERBOSE, O_HELP };
static const struct {
    const char *short_name, *long_name;
    int takes_value, id;
} option_table[] = {
    {"-m", "--model", 1, O_MODEL},         {"-z", "--tokenizer", 1, O_TOKENIZER},
    {"-p", "--prompt", 1, O_PROMPT},       {"-n", "--n-predict", 1, O_PREDICT},
    {NULL, "--temp", 1, O_TEMP},           {NULL, "--top-p", 1, O_TOPP},
    {NULL, "--top-k", 1, O_TOPK},          {"-s", "--seed", 1, O_SEED},
    {"-t", "--threads", 1, O_THREADS},     {NULL, "--ignore-eos", 0, O_IGNORE_EOS},
    {NULL, "--ids", 0, O_IDS},             {NULL, "--logits", 1, O_LOGITS},
    {NULL, "--tokens", 1, O_TOKENS},       {NULL, "--tokens-file", 1, O_TOKENS_FILE},
    {NULL, "--perplexity", 1, O_PPL},      {NULL, "--check-tensors", 0, O_CHECK},
    {"-b", "--batch-size", 1, O_BATCH},
    {"-v", "--verbose", 0, O_VERBOSE},     {"-h", "--help", 0, O_HELP},
};

/** The row of @p arg ("--temp" or "--temp=0.5": *inline_value then points at "0.5"), or -1. */
static int find_option(const char *arg, const char **inline_value) {
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    *inline_value = eq ? eq + 1 : NULL;
    for (size_t i = 0; i < sizeof option_table / sizeof option_table[0]; i++) {
        const char *s = option_table[i].short_name, *l = option_table[i].long_name;
        if ((s && !eq && strcmp(arg, s) == 0) || (strlen(l) == len && strncmp(arg, l, len) == 0)) return (int)i;
    }
    return -1;
}

/** More threads than 4 per CPU only makes them wait for each other: clamp, and say so. */
static long clamp_threads(long asked) {
    long cpus = online_cpus(), most = 4 * cpus > 8 ? 4 * cpus : 8;
    if (asked <= most) return asked;
    fprintf(stderr, "note: -t %ld: %ld CPU%s to run on; using %ld threads\n", asked, cpus, cpus == 1 ? "" : "s", most);
    return most;
}

static void set_option(Options *o, int id, const char *flag, const char *value, const char *prog) {
    switch (id) {
    case O_MODEL: o->model_path = value; break;
    case O_TOKENIZER: o->tokenizer_path = value; break;
    case O_PROMPT: o->prompt = value; break;
    case O_PREDICT: o->n_predict = option_long(flag, value, -1, 1L << 30); break;
    case O_TEMP: o->temperature = option_float(flag, value, 0.0f, 100.0f); break;
    case O_TOPP: o->top_p = option_float(flag, value, 0.0f, 1.0f); break;
    case O_TOPK: o->top_k = option_long(flag, value, 0, 1L << 30); break;
    case O_SEED: o->seed = option_long(flag, value, -1, 0x7fffffffL); break;
    case O_THREADS: o->threads = clamp_threads(option_long(flag, value, 0, 1L << 30)); break;
    case O_IGNORE_EOS: o->ignore_eos = 1; break;
    case O_IDS: o->print_ids = 1; break;
    case O_LOGITS: o->logits_path = value; break;
    case O_TOKENS: o->tokens_text = value; break;
    case O_TOKENS_FILE: o->tokens_file = value; break;
    case O_PPL: o->perplexity_path = value; break;
    case O_CHECK: o->check_tensors = 1; break;
    case O_BATCH: o->batch = option_long(flag, value, 1, 1L << 20); break;
    case O_VERBOSE: o->verbose = 1; break;
    case O_HELP: usage(stdout, prog); exit(0);
    }
}

static Options parse_options(int argc, char **argv) {
    Options o = {0};
    o.n_predict = -1;
    o.temperature = 0.8f;
    o.top_p = 0.95f;
    o.top_k = 40;
    o.seed = -1;
    o.batch = 512;
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        if (only_positional || arg[0] != '-' || arg[1] == 0) {
            if (o.model_path) fatal("%s: unexpected argument (see --help)", arg);
            o.model_path = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        int row = find_option(arg, &value);
        if (row < 0) fatal("%s: unknown option (see --help)", arg);
        const char *flag = option_table[row].long_name;
        if (!option_table[row].takes_value && value) fatal("%s: takes no value", flag);
        if (option_table[row].takes_value && !value) {
            if (i + 1 >= argc) fatal("%s: missing its value", arg);
            value = argv[++i];
        }
        set_option(&o, option_table[row].id, strchr(arg, '=') ? flag : arg, value, argv[0]);
    }
    if (!o.model_path) fatal("no model given: use -m MODEL (see --help)");
    if (o.top_p <= 0.0f) fatal("--top-p %g: must be above 0", o.top_p);
    if ((o.tokens_text || o.tokens_file) && !o.logits_path) fatal("--tokens needs --logits FILE");
    if (o.logits_path && !o.tokens_text == !o.tokens_file)
        fatal("--logits needs exactly one of --tokens or --tokens-file");
    if ((o.logits_path != NULL) + (o.perplexity_path != NULL) + o.print_ids > 1)
        fatal("--ids, --logits and --perplexity are separate modes: choose one");
    return o;
}

/* ------------------------------------------------------------------------ */
/* Tokenizer: the model's own vocabulary, or a llama2.c file.               */

/** Path of @p name in the folder of @p model_path (caller frees). */
static char *beside(const char *model_path, const char *name) {
    const char *slash = strrchr(model_path, '/');
    size_t dir_len = slash ? (size_t)(slash - model_path + 1) : 0;
    char *p = xmalloc(dir_len + strlen(name) + 1);
    memcpy(p, model_path, dir_len);
    strcpy(p + dir_len, name);
    return p;
}

static Vocab *load_tokenizer(const Options *o, const Model *m, int *owned) {
    int vocab_size = model_config(m)->vocab_size;
    *owned = 1;
    if (o->tokenizer_path) return vocab_load_llama2c(o->tokenizer_path, vocab_size);
    const Vocab *own = model_vocab(m);
    if (own) {
        *owned = 0;
        return (Vocab *)own;
    }
    char name[32];
    snprintf(name, sizeof name, "tok%d.bin", vocab_size);
    char *by_size = beside(o->model_path, name), *plain = beside(o->model_path, "tokenizer.bin");
    const char *found = is_regular_file(by_size) ? by_size : is_regular_file(plain) ? plain : NULL;
    if (!found) fatal("%s: no tokenizer found (looked for %s and %s): pass -z FILE", o->model_path, by_size, plain);
    Vocab *v = vocab_load_llama2c(found, vocab_size);
    free(by_size);
    free(plain);
    return v;
}

/*
 * For the chapters that compute one position at a time (1-6): the rows one
 * by one through model_forward(). A weak definition, so that a chapter that
 * has its own model_forward_batch() (chapter 7 on) replaces it at link time;
 * gcc and clang support that on ELF and Mach-O alike.
 */
__attribute__((weak)) int model_forward_batch(Model *m, const int *tokens, int first, int n, float *out) {
    size_t vocab = (size_t)model_config(m)->vocab_size;
    int p = first;
    for (; p < n && !interrupted(); p++) /* Ctrl-C: stop at the next row, as chapter 1 would */
        memcpy(out + (size_t)(p - first) * vocab, model_forward(m, tokens, p + 1), sizeof(float) * vocab);
    return p - first;
}

/** model_forward_batch() with forward()'s check on every row; returns the rows written (fewer after Ctrl-C). */
static int forward_batch(Model *m, const int *tokens, int first, int n, float *out, const char *model_path) {
    size_t vocab = (size_t)model_config(m)->vocab_size;
    n = first + model_forward_batch(m, tokens, first, n, out);
    for (int p = first; p < n; p++)
        if (find_nonfinite(out + (size_t)(p - first) * vocab, vocab) >= 0)
            fatal("%s: the logits at position %d are not finite: a weight is NaN or infinite (--check-tensors names it)",
                  model_path, p);
    return n - first;
}

/* ------------------------------------------------------------------------ */
/* Generate: print text (or ids) as it is produced.                         */

/*
 * model_forward(), and a check that its logits are numbers. A NaN or an
 * infinity in the weights reaches the logits whatever a chapter does with it
 * on the way (and the sampler would then pick the same token forever), so
 * this one place stops every chapter the same way; --check-tensors finds the
 * weight. It reads vocab_size floats per token: noise next to the forward pass.
 */
static const float *forward(Model *m, const int *ids, int n, const char *model_path) {
    const ModelConfig *cfg = model_config(m);
    const float *logits = model_forward(m, ids, n);
    if (find_nonfinite(logits, (size_t)cfg->vocab_size) >= 0)
        fatal("%s: the logits at position %d are not finite: a weight is NaN or infinite (--check-tensors names it)",
              model_path, n - 1);
    return logits;
}

static int *encode_prompt(const Vocab *v, const char *prompt, int seq_len, int *n_out) {
    char err[200];
    int n;
    int *ids = vocab_encode(v, prompt, 1, &n, err, sizeof err);
    if (!ids) fatal("-p: %s", err);
    if (n > seq_len) fatal("-p: prompt is %d tokens, longer than the context (%d)", n, seq_len);
    *n_out = n;
    return ids;
}

/* One line on stderr; tools/bench.sh reads it, so keep its words stable. */
static void print_stats(const Model *m, int n_prompt, int n_gen, double t_prefill, double t_decode) {
    fprintf(stderr,
            "\n[stats] prompt %d tok, generated %d tok, prefill %.1f tok/s, decode %.1f tok/s, "
            "peak RSS %.1f MiB, weights %.2f MB/tok\n",
            n_prompt, n_gen, t_prefill > 0 ? n_prompt / t_prefill : 0.0,
            (n_gen > 1 && t_decode > 0) ? (n_gen - 1) / t_decode : 0.0, peak_rss_bytes() / 1048576.0,
            model_weight_bytes(m) / 1e6);
}

static int generate(const Options *o, Model *m, const Vocab *v) {
    const ModelConfig *cfg = model_config(m);
    int n = 0;
    int *prompt = encode_prompt(v, o->prompt ? o->prompt : "", cfg->seq_len, &n);
    /* The context bounds the positions fed to the model; the last generated
     * token is never fed back, so it may be the (seq_len + 1)-th id (llama2.c's rule). */
    long room = (long)cfg->seq_len + 1 - n; /* long: seq_len may be as large as int allows */
    long n_predict = o->n_predict < 0 ? room : o->n_predict;
    if (n_predict > room)
        fatal("-n %ld: prompt (%d tokens) + %ld tokens exceeds the context of %d positions", n_predict, n, n_predict,
              cfg->seq_len);
    int *ids = xmalloc(sizeof(int) * ((size_t)cfg->seq_len + 1));
    memcpy(ids, prompt, sizeof(int) * (size_t)n);
    free(prompt);
    int n_prompt = n;

    Sampler sampler;
    uint64_t seed = o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)time(NULL);
    sampler_init(&sampler, cfg->vocab_size, o->temperature, o->top_p, (int)o->top_k, seed);
    SafePrinter out = {{0}, 0};
    if (!o->print_ids) {
        for (int i = 1; i < n; i++) {
            int len;
            const char *piece = vocab_decode(v, ids[i - 1], ids[i], &len);
            safe_print(&out, piece, len);
        }
        fflush(stdout);
    }
    double t_prefill = 0, t_decode = 0;
    interrupt_arm(); /* Ctrl-C: stop after the current token, print what we have */
    for (long step = 0; step < n_predict && !interrupted(); step++) {
        double t0 = now_seconds();
        const float *logits = forward(m, ids, n, o->model_path);
        double dt = now_seconds() - t0;
        if (step == 0) t_prefill = dt; else t_decode += dt;
        int next = sampler_sample(&sampler, logits);
        if (!o->ignore_eos && (next == v->bos_id || next == v->eos_id)) break;
        ids[n++] = next;
        if (!o->print_ids) {
            int len;
            const char *piece = vocab_decode(v, ids[n - 2], next, &len);
            safe_print(&out, piece, len);
            fflush(stdout);
        }
    }
    if (o->print_ids) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    }
    printf("\n");
    fflush(stdout);
    print_stats(m, n_prompt, n - n_prompt, t_prefill, t_decode);
    sampler_free(&sampler);
    free(ids);
    return interrupted() ? EXIT_INTERRUPTED : 0;
}

/* ------------------------------------------------------------------------ */
/* Teacher forcing: the logits of every position of a given sequence.      */

static int *parse_ids(const char *text, const char *flag, int vocab_size, int seq_len, int *n_out) {
    size_t cap = strlen(text) / 2 + 2; /* an id and a separator take at least two bytes */
    int *ids = xmalloc(sizeof(int) * cap);
    int n = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, " \t\n\r,");
        if (!*p) break;
        /* Read the digits ourselves: strtol() would clamp 18446744073709551616
         * to LONG_MAX and the message would quote a number nobody wrote. */
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || (p[digits] && !strchr(" \t\n\r,", p[digits])))
            fatal("%s: '%.20s' is not a token id", flag, p);
        long id = 0;
        for (size_t i = 0; i < digits && id < vocab_size; i++) id = id * 10 + (p[i] - '0');
        if (id >= vocab_size)
            fatal("%s: token id %.*s is outside the vocabulary (0..%d)", flag, (int)(digits < 40 ? digits : 40), p,
                  vocab_size - 1);
        if ((size_t)n == cap) fatal("%s: too many ids", flag);
        ids[n++] = (int)id;
        p += digits;
    }
    if (n == 0) fatal("%s: no token ids", flag);
    if (n > seq_len) fatal("%s: %d ids, longer than the context (%d)", flag, n, seq_len);
    *n_out = n;
    return ids;
}

static char *read_text_file(const char *path, size_t limit) {
    MappedFile f = map_file(path);
    if (f.size > limit) fatal("%s: larger than %zu bytes", path, limit);
    char *text = xmalloc(f.size + 1);
    if (f.size) memcpy(text, f.data, f.size);
    text[f.size] = '\0';
    if (strlen(text) != f.size) fatal("%s: contains a NUL byte", path);
    unmap_file(&f);
    return text;
}

static int teacher_force(const Options *o, Model *m) {
    const ModelConfig *cfg = model_config(m);
    char *file_text = o->tokens_file ? read_text_file(o->tokens_file, 1 << 24) : NULL;
    int n;
    int *ids = parse_ids(file_text ? file_text : o->tokens_text, file_text ? o->tokens_file : "--tokens",
                         cfg->vocab_size, cfg->seq_len, &n);
    Lgts out = {n, cfg->vocab_size, ids, xmalloc(checked_mul((size_t)n, sizeof(float) * (size_t)cfg->vocab_size, "--logits"))};
    /* Created before the work, so that a bad path costs nothing; it has no
     * name until lgts_write() completes it (util.h's rule for output files). */
    OutputFile file = output_create(o->logits_path);
    double t0 = now_seconds();
    interrupt_arm();
    int done = 0; /* in batches of at most -b positions; Ctrl-C is seen between them */
    while (done < n && !interrupted()) {
        int end = n - done > o->batch ? done + (int)o->batch : n;
        done += forward_batch(m, ids, done, end, out.logits + (size_t)done * (size_t)cfg->vocab_size, o->model_path);
    }
    double dt = now_seconds() - t0;
    if (done == n) lgts_write(&file, &out);
    else output_discard(&file); /* interrupted: no file at all, not a partial one */
    fprintf(stderr, "[stats] %d positions in %.3f s (%.1f tok/s), peak RSS %.1f MiB%s\n", done, dt, done / dt,
            peak_rss_bytes() / 1048576.0, done < n ? "; interrupted, no --logits file written" : "");
    lgts_free(&out);
    free(file_text);
    return done < n ? EXIT_INTERRUPTED : 0;
}

/* ------------------------------------------------------------------------ */
/* Perplexity: exp(mean negative log-likelihood of each next token).       */

/** -log softmax(logits)[target], in double. */
static double negative_log_prob(const float *logits, int vocab, int target) {
    float max = logits[argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) - ((double)logits[target] - max);
}

/*
 * The text is tokenized as a whole (BOS first) and cut into windows of the
 * model's context. Consecutive windows share one token: the last token of a
 * window is the first of the next, so every token after the first is
 * predicted exactly once, always from inside its own window.
 */
static int perplexity(const Options *o, Model *m, const Vocab *v) {
    const ModelConfig *cfg = model_config(m);
    /* A window must hold a token and the one it predicts; with one position
     * the windows would never advance. */
    if (cfg->seq_len < 2)
        fatal("%s: --perplexity needs a context of at least 2 positions; the model has %d", o->model_path,
              cfg->seq_len);
    char *text = read_text_file(o->perplexity_path, 1 << 26);
    char err[200];
    int n;
    double t_tokenize = now_seconds();
    int *ids = vocab_encode(v, text, 1, &n, err, sizeof err);
    if (!ids) fatal("%s: %s", o->perplexity_path, err);
    size_t text_bytes = strlen(text);
    if (text_bytes >= 1 << 20) /* a big text takes a while: say what it became (stderr, as [stats]) */
        fprintf(stderr, "[tokenize] %zu bytes -> %d tokens in %.1f s\n", text_bytes, n, now_seconds() - t_tokenize);
    if (n < 2) fatal("%s: too short to score", o->perplexity_path);
    double nll = 0;
    long scored = 0;
    double t0 = now_seconds();
    int rows = (int)(o->batch < cfg->seq_len ? o->batch : cfg->seq_len);
    float *logits = xmalloc(checked_mul((size_t)rows, sizeof(float) * (size_t)cfg->vocab_size, "--perplexity"));
    interrupt_arm();
    for (int start = 0; start < n - 1 && !interrupted(); start += cfg->seq_len - 1) {
        int len = n - start < cfg->seq_len ? n - start : cfg->seq_len;
        /* positions 0 .. len-2 of the window predict 1 .. len-1; in batches of at most -b */
        for (int p = 0; p + 1 < len && !interrupted();) {
            int end = len - 1 - p > rows ? p + rows : len - 1;
            end = p + forward_batch(m, ids + start, p, end, logits, o->model_path);
            for (int q = p; q < end; q++) {
                nll += negative_log_prob(logits + (size_t)(q - p) * (size_t)cfg->vocab_size, cfg->vocab_size,
                                         ids[start + q + 1]);
                scored++;
            }
            p = end;
        }
    }
    free(logits);
    double dt = now_seconds() - t0;
    if (scored > 0)
        printf("perplexity: %.4f over %ld tokens%s\n", exp(nll / (double)scored), scored,
               interrupted() ? " (interrupted: not the whole text)" : "");
    fprintf(stderr, "[stats] %ld positions in %.3f s (%.1f tok/s), peak RSS %.1f MiB\n", scored, dt,
            scored / dt, peak_rss_bytes() / 1048576.0);
    free(ids);
    free(text);
    return interrupted() ? EXIT_INTERRUPTED : 0;
}

int main(int argc, char **argv) {
    Options o = parse_options(argc, argv);
    ModelOptions mo = {(int)o.threads, o.verbose, o.check_tensors, (int)o.batch};
    Model *m = model_open(o.model_path, &mo);
    int rc;
    if (o.logits_path) {
        rc = teacher_force(&o, m);
    } else {
        int owned;
        Vocab *v = load_tokenizer(&o, m, &owned);
        rc = o.perplexity_path ? perplexity(&o, m, v) : generate(&o, m, v);
        if (owned) vocab_free(v);
    }
    model_close(m);
    return rc;
}

/**
 * @file main.c
 * @brief The shared driver: one command line for every chapter.
 *
 * Each chapter binary is this file linked with one chapters/NN_*.c, which
 * implements src/model.h. The options follow llama.cpp's conventions:
 *
 *     build/chNN -m MODEL [-z TOKENIZER] [-p PROMPT | -f FILE] [-n N] [-c N]
 *                [--temp F] [--top-k N] [--top-p F] [--min-p F]
 *                [--repeat-penalty F] [--repeat-last-n N] [-s SEED] [-t THREADS]
 *                [--ignore-eos] [--no-escape]
 *                [--ids | --logits FILE (--tokens "1 2 3" | --tokens-file F)
 *                 | --perplexity TEXTFILE | --tokenize [TEXT]
 *                 | -cnv [-sys TEXT] [--chat-template NAME]]
 *
 * Six modes share one loop, "feed the sequence so far, read the logits":
 * generate (text, the default), --ids (the token ids, as the reference
 * .tokens files), --logits (teacher-forced logits of given ids, LGTS format),
 * --perplexity (how well the model predicts a text), -cnv (a chat in the
 * terminal) and --tokenize, which only tokenizes and so needs no weights at
 * all: it reads the vocabulary of a GGUF file (a vocabulary-only one too) or
 * a llama2.c tokenizer, and prints llama-tokenize's lines.
 *
 * The context: -c N keeps every mode within N positions (prompt and
 * generation, --logits, the --perplexity windows, the chat), whatever the
 * chapter; chapter 8 on also sizes its KV cache by it. A -c beyond the
 * file's context is a note, and the file's context is used.
 *
 * The chat (-cnv) reads one line per turn from standard input. The
 * conversation itself, its template and the tokens the model has seen live
 * in ChatSession (src/chat.h): this loop only reads a line, hands it to the
 * session, feeds the model the session's ids (the chapters recompute only
 * what their KV cache lacks, so only the new turn is processed), samples and
 * streams the reply. Through a pipe it behaves the same: the end of the
 * input ends the chat with status 0, an empty line is skipped.
 *
 * What can go wrong is handled where it belongs, so that every chapter
 * behaves the same: files are opened and mapped by util.c (a pipe or a device
 * is refused at once, a file that shrinks while mapped ends the run with a
 * line naming it), the one output file is written by util.h's OutputFile
 * rule (never over a link or a device, never partial, no temporary left),
 * every logit is checked to be a number before it is used (a NaN weight
 * stops every chapter the same way; --check-tensors names it at load), and
 * Ctrl-C stops the loop at the next token with the usual [stats] line and
 * status 130 (in the chat it stops the reply; at the input prompt, or twice,
 * it ends the chat). The options are whole words, never grouped letters, so
 * that a llama.cpp option this book lacks (-ngl, -fa) is named as unknown.
 *
 * Checked by tests/t_cli.sh (every option of llama.cpp's that the book takes,
 * the chat through a pipe, --tokenize on vocabulary-only files) and by the
 * chapters' own tests, which all run through this file.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "gguf.h"
#include "gguf_vocab.h"
#include "lgts.h"
#include "llama2c.h"
#include "model.h"
#include "sampler.h"
#include "server.h"
#include "tokenizer.h"
#include "util.h"

/** Exit status after Ctrl-C, as a shell reports a program killed by SIGINT (128 + 2). */
enum { EXIT_INTERRUPTED = 130 };

/** The longest prompt file (-f) or text to tokenize: 64 MiB. */
#define MAX_PROMPT_BYTES ((size_t)1 << 26)

/** Everything the command line says. */
typedef struct {
    const char *model_path;
    const char *tokenizer_path;
    const char *prompt;      /* -p as given */
    const char *prompt_file; /* -f */
    long n_predict;          /* -1: until the context is full */
    long n_ctx;              /* -c; 0: the file's context */
    float temperature, top_p, min_p, repeat_penalty;
    long top_k, repeat_last_n, seed, threads, batch;
    int ignore_eos, print_ids, verbose, check_tensors, escape;
    const char *logits_path, *tokens_text, *tokens_file, *perplexity_path;
    int tokenize;               /* --tokenize */
    const char *tokenize_text;  /* its TEXT, or NULL: -p or -f gives it */
    int conversation;           /* -cnv */
    const char *system_prompt;  /* -sys */
    const char *chat_template;  /* --chat-template */
    /* What the texts became (escapes processed, the file read); see prepare_texts(). */
    char *text;                 /* the prompt (or the text to tokenize, or the chat's first message), or NULL */
    const char *text_origin;    /* "-p", "--tokenize" or the -f file's path, for messages */
    char *system_text;          /* -sys, escapes processed */
} Options;

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "%s\n"
            "usage: %s -m MODEL [options]\n"
            "  -m, --model FILE        model file (a lone positional argument also works)\n"
            "  -z, --tokenizer FILE    llama2.c tokenizer (default: the model's own vocabulary,\n"
            "                          else tok<vocab>.bin or tokenizer.bin beside the model)\n"
            "  -p, --prompt TEXT       prompt (default: empty, BOS only); with -cnv the first\n"
            "                          user message\n"
            "  -f, --file FILE         the prompt from a file (one final newline dropped)\n"
            "  -e, --escape            read \\n \\r \\t \\' \\\" \\\\ \\xNN in -p, -f, -sys and chat lines\n"
            "                          as the bytes they stand for (the default)\n"
            "      --no-escape         take those texts as they are\n"
            "  -n, --n-predict N       tokens to generate (default -1: until the context is full;\n"
            "                          with -cnv: per reply)\n"
            "  -c, --ctx-size N        the most positions to use (default 0: the model's context)\n"
            "      --temp F            temperature, 0 = greedy (default 0.8)\n"
            "      --top-k N           keep the N most likely tokens, 0 = off (default 40)\n"
            "      --top-p F           nucleus sampling threshold, 1 = off (default 0.95)\n"
            "      --min-p F           keep tokens at least F times as likely as the likeliest,\n"
            "                          0 = off (default 0.05)\n"
            "      --repeat-penalty F  penalize the tokens of the last --repeat-last-n, 1 = off\n"
            "                          (default 1.0)\n"
            "      --repeat-last-n N   how many recent tokens the penalty looks at, 0 = off,\n"
            "                          -1 = the whole context (default 64)\n"
            "  -s, --seed N            random seed (default: from the clock)\n"
            "  -t, --threads N         worker threads (chapter 4 on; default: all CPUs; at most\n"
            "                          4 per CPU)\n"
            "      --ignore-eos        do not stop at the end of generation (EOS, end of turn, BOS)\n"
            "      --ids               print the token ids (BOS, prompt, generated) instead of text;\n"
            "                          with --tokenize the list [1, 2, 3]; with -cnv the\n"
            "                          conversation's ids when it ends\n"
            "      --logits FILE       teacher-force --tokens/--tokens-file, write LGTS logits\n"
            "      --tokens \"1 2 ..\"   token ids for --logits\n"
            "      --tokens-file F     token ids for --logits, from a file\n"
            "      --perplexity FILE   perplexity of the model on a text file\n"
            "      --tokenize [TEXT]   only tokenize TEXT (or -p TEXT, or all of -f FILE) and print\n"
            "                          each id and piece, as llama-tokenize; needs no weights\n"
            "  -cnv, --conversation    chat: one line of standard input per turn\n"
            "  -sys, --system-prompt TEXT  the chat's system message\n"
            "      --chat-template NAME    the chat's template (default: the model's own): %s\n"
            "  -b, --batch-size N      most positions computed at once by --logits and --perplexity\n"
            "                          (chapter 7 on; default 512)\n"
            "      --check-tensors     refuse a model whose weights hold NaN or infinities, naming\n"
            "                          the first bad tensor and row (slower load)\n"
            "  -v, --verbose           print load details\n"
            "  -h, --help              this help\n",
            model_chapter_title, prog, chat_template_names());
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
 * llama.cpp flag like -ngl is named as unknown instead of being read as
 * "-n gl" (what getopt's grouping would do). takes_value 2: the value is
 * optional (--tokenize TEXT, or --tokenize with -p/-f): the next word is
 * taken unless it is an option itself.
 */
enum { O_MODEL, O_TOKENIZER, O_PROMPT, O_FILE, O_PREDICT, O_CTX, O_TEMP, O_TOPP, O_TOPK, O_MINP, O_PENALTY,
       O_LAST_N, O_SEED, O_THREADS, O_IGNORE_EOS, O_ESCAPE, O_NO_ESCAPE, O_IDS, O_LOGITS, O_TOKENS, O_TOKENS_FILE,
       O_PPL, O_TOKENIZE, O_CNV, O_SYSTEM, O_TEMPLATE, O_CHECK, O_BATCH, O_VERBOSE, O_HELP };
static const struct {
    const char *short_name, *long_name;
    int takes_value, id;
} option_table[] = {
    {"-m", "--model", 1, O_MODEL},            {"-z", "--tokenizer", 1, O_TOKENIZER},
    {"-p", "--prompt", 1, O_PROMPT},          {"-f", "--file", 1, O_FILE},
    {"-n", "--n-predict", 1, O_PREDICT},      {"-c", "--ctx-size", 1, O_CTX},
    {NULL, "--temp", 1, O_TEMP},              {NULL, "--top-p", 1, O_TOPP},
    {NULL, "--top-k", 1, O_TOPK},             {NULL, "--min-p", 1, O_MINP},
    {NULL, "--repeat-penalty", 1, O_PENALTY}, {NULL, "--repeat-last-n", 1, O_LAST_N},
    {"-s", "--seed", 1, O_SEED},              {"-t", "--threads", 1, O_THREADS},
    {NULL, "--ignore-eos", 0, O_IGNORE_EOS},  {"-e", "--escape", 0, O_ESCAPE},
    {NULL, "--no-escape", 0, O_NO_ESCAPE},    {NULL, "--ids", 0, O_IDS},
    {NULL, "--logits", 1, O_LOGITS},          {NULL, "--tokens", 1, O_TOKENS},
    {NULL, "--tokens-file", 1, O_TOKENS_FILE}, {NULL, "--perplexity", 1, O_PPL},
    {NULL, "--tokenize", 2, O_TOKENIZE},      {"-cnv", "--conversation", 0, O_CNV},
    {"-sys", "--system-prompt", 1, O_SYSTEM}, {NULL, "--chat-template", 1, O_TEMPLATE},
    {NULL, "--check-tensors", 0, O_CHECK},    {"-b", "--batch-size", 1, O_BATCH},
    {"-v", "--verbose", 0, O_VERBOSE},        {"-h", "--help", 0, O_HELP},
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
    case O_FILE: o->prompt_file = value; break;
    case O_PREDICT: o->n_predict = option_long(flag, value, -1, 1L << 30); break;
    case O_CTX: o->n_ctx = option_long(flag, value, 0, 1L << 30); break;
    case O_TEMP: o->temperature = option_float(flag, value, 0.0f, 100.0f); break;
    case O_TOPP: o->top_p = option_float(flag, value, 0.0f, 1.0f); break;
    case O_TOPK: o->top_k = option_long(flag, value, 0, 1L << 30); break;
    case O_MINP: o->min_p = option_float(flag, value, 0.0f, 1.0f); break;
    case O_PENALTY: o->repeat_penalty = option_float(flag, value, 0.0f, 100.0f); break;
    case O_LAST_N: o->repeat_last_n = option_long(flag, value, -1, 1L << 30); break;
    case O_SEED: o->seed = option_long(flag, value, -1, 0x7fffffffL); break;
    case O_THREADS: o->threads = clamp_threads(option_long(flag, value, 0, 1L << 30)); break;
    case O_IGNORE_EOS: o->ignore_eos = 1; break;
    case O_ESCAPE: o->escape = 1; break;
    case O_NO_ESCAPE: o->escape = 0; break;
    case O_IDS: o->print_ids = 1; break;
    case O_LOGITS: o->logits_path = value; break;
    case O_TOKENS: o->tokens_text = value; break;
    case O_TOKENS_FILE: o->tokens_file = value; break;
    case O_PPL: o->perplexity_path = value; break;
    case O_TOKENIZE: o->tokenize = 1, o->tokenize_text = value; break;
    case O_CNV: o->conversation = 1; break;
    case O_SYSTEM: o->system_prompt = value; break;
    case O_TEMPLATE: o->chat_template = value; break;
    case O_CHECK: o->check_tensors = 1; break;
    case O_BATCH: o->batch = option_long(flag, value, 1, 1L << 20); break;
    case O_VERBOSE: o->verbose = 1; break;
    case O_HELP: usage(stdout, prog); exit(0);
    }
}

/** The combinations that make no sense, each refused with one line. */
static void check_options(const Options *o) {
    if (!o->model_path) fatal("no model given: use -m MODEL (see --help)");
    if (o->top_p <= 0.0f) fatal("--top-p %g: must be above 0", o->top_p);
    if (o->repeat_penalty <= 0.0f) fatal("--repeat-penalty %g: must be above 0 (1 = off)", o->repeat_penalty);
    if (o->prompt && o->prompt_file) fatal("-p and -f both give the prompt: choose one");
    if ((o->tokens_text || o->tokens_file) && !o->logits_path) fatal("--tokens needs --logits FILE");
    if (o->logits_path && !o->tokens_text == !o->tokens_file)
        fatal("--logits needs exactly one of --tokens or --tokens-file");
    if ((o->logits_path != NULL) + (o->perplexity_path != NULL) + o->tokenize + o->conversation > 1 ||
        (o->print_ids && (o->logits_path || o->perplexity_path)))
        fatal("--ids, --logits, --perplexity, --tokenize and -cnv are separate modes: choose one");
    if (o->tokenize && (o->tokenize_text != NULL) + (o->prompt != NULL) + (o->prompt_file != NULL) != 1)
        fatal("--tokenize needs exactly one text: --tokenize TEXT, -p TEXT or -f FILE");
    if (o->system_prompt && !o->conversation) fatal("-sys: the system message is for the chat: add -cnv");
    if (o->chat_template) {
        if (chat_template_by_name(o->chat_template) == CHAT_UNKNOWN)
            fatal("--chat-template %s: unknown template; the names are %s", o->chat_template, chat_template_names());
        if (!o->conversation) fatal("--chat-template: the template is for the chat: add -cnv");
    }
}

static Options parse_options(int argc, char **argv) {
    Options o = {0};
    o.n_predict = -1;
    o.temperature = 0.8f;
    o.top_p = 0.95f;
    o.top_k = 40;
    o.min_p = 0.05f; /* llama.cpp's defaults, here and below */
    o.repeat_penalty = 1.0f;
    o.repeat_last_n = 64;
    o.escape = 1;
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
        const char *flag = option_table[row].long_name, *ignored;
        int takes = option_table[row].takes_value;
        if (!takes && value) fatal("%s: takes no value", flag);
        if (takes == 1 && !value) {
            if (i + 1 >= argc) fatal("%s: missing its value", arg);
            value = argv[++i];
        }
        if (takes == 2 && !value && i + 1 < argc && find_option(argv[i + 1], &ignored) < 0 &&
            strcmp(argv[i + 1], "--") != 0)
            value = argv[++i];
        set_option(&o, option_table[row].id, strchr(arg, '=') ? flag : arg, value, argv[0]);
    }
    check_options(&o);
    return o;
}

/* ------------------------------------------------------------------------ */
/* The texts: -p, -f, -sys and --tokenize, with llama.cpp's escapes.        */

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
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

/** @p text with its escapes processed when -e is on (the default); @p origin names it in a message. */
static char *unescaped(char *text, const char *origin, int escape) {
    char err[120];
    if (escape && process_escapes(text, err, sizeof err) != 0)
        fatal("%s: %s (--no-escape takes the text as it is)", origin, err);
    return text;
}

/*
 * As llama.cpp reads them: the prompt file loses one final newline (llama-cli
 * does that; --tokenize keeps every byte, as llama-tokenize does), and the
 * escapes apply to -p, -f and -sys alike, since llama-cli processes the
 * prompt after reading the file.
 */
static void prepare_texts(Options *o) {
    if (o->tokenize && o->tokenize_text) {
        o->text = copy_string(o->tokenize_text);
        o->text_origin = "--tokenize";
    } else if (o->prompt) {
        o->text = copy_string(o->prompt);
        o->text_origin = "-p";
    } else if (o->prompt_file) {
        o->text = read_text_file(o->prompt_file, MAX_PROMPT_BYTES);
        o->text_origin = o->prompt_file;
        size_t len = strlen(o->text);
        if (!o->tokenize && len > 0 && o->text[len - 1] == '\n') o->text[len - 1] = '\0';
    }
    if (o->text) unescaped(o->text, o->text_origin, o->escape);
    if (o->system_prompt) o->system_text = unescaped(copy_string(o->system_prompt), "-sys", o->escape);
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

/** A llama2.c tokenizer of @p vocab_size pieces: -z, else tok<vocab>.bin or tokenizer.bin beside the model. */
static Vocab *llama2c_tokenizer(const Options *o, int vocab_size) {
    if (o->tokenizer_path) return vocab_load_llama2c(o->tokenizer_path, vocab_size);
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

static Vocab *load_tokenizer(const Options *o, const Model *m, int *owned) {
    *owned = 1;
    if (o->tokenizer_path) return llama2c_tokenizer(o, model_config(m)->vocab_size);
    const Vocab *own = model_vocab(m);
    if (own) {
        *owned = 0;
        return (Vocab *)own;
    }
    return llama2c_tokenizer(o, model_config(m)->vocab_size);
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

/*
 * For the chapters with one KV cache (1-8): each step through model_forward()
 * in turn. Correct, but the one cache then holds whichever sequence ran last,
 * so a sequence is recomputed from the start whenever another ran in between.
 * Chapter 9 defines its own, with a cache per sequence and one batch for all.
 */
__attribute__((weak)) int model_forward_seqs(Model *m, const ModelSeqStep *steps, int n_steps) {
    size_t vocab = (size_t)model_config(m)->vocab_size;
    for (int i = 0; i < n_steps; i++)
        memcpy(steps[i].logits, model_forward(m, steps[i].tokens, steps[i].n), sizeof(float) * vocab);
    return n_steps;
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
/* The context every mode keeps within: -c, or the model's.                 */

/*
 * Chapters 1-7 keep the file's context whatever -c says, chapter 8 on
 * shrinks its KV cache to -c and reports that as seq_len: the driver uses
 * min(-c, seq_len) everywhere, so every chapter refuses and stops alike.
 */
static struct {
    int n;           /* positions */
    char words[80];  /* "the context of 256 positions", with " (-c 256)" when -c set it */
} context;

static void set_context(const Options *o, const ModelConfig *cfg) {
    int by_c = o->n_ctx > 0 && o->n_ctx <= cfg->seq_len;
    if (o->n_ctx > cfg->seq_len)
        fprintf(stderr, "note: -c %ld: the model's context is %d positions; using %d\n", o->n_ctx, cfg->seq_len,
                cfg->seq_len);
    context.n = by_c ? (int)o->n_ctx : cfg->seq_len;
    int len = snprintf(context.words, sizeof context.words, "the context of %d positions", context.n);
    if (by_c) snprintf(context.words + len, sizeof context.words - (size_t)len, " (-c %d)", context.n);
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

static int *encode_prompt(const Vocab *v, const char *prompt, const char *origin, int *n_out) {
    char err[200];
    int n;
    int *ids = vocab_encode(v, prompt, 1, &n, err, sizeof err);
    if (!ids) fatal("%s: %s", origin, err);
    if (n == 0) /* a model cannot start from nothing: its first position needs a token */
        fatal("%s: the prompt is empty and this vocabulary adds no BOS token: there is nothing to start from",
              origin);
    if (n > context.n) fatal("%s: prompt is %d tokens, longer than %s", origin, n, context.words);
    *n_out = n;
    return ids;
}

/** The sampler the options ask for; the penalty's window of -1 is the whole context. */
static void sampler_from_options(Sampler *s, const Options *o, int vocab_size) {
    uint64_t seed = o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)time(NULL);
    sampler_init(s, vocab_size, o->temperature, o->top_p, (int)o->top_k, seed);
    s->min_p = o->min_p;
    s->repeat_penalty = o->repeat_penalty;
    s->repeat_last_n = o->repeat_last_n < 0 ? context.n : (int)o->repeat_last_n;
}

/** Print ids[first .. n) as text; a piece right after BOS loses the space encoding put before it. */
static void print_pieces(SafePrinter *out, const Vocab *v, const int *ids, int first, int n) {
    for (int i = first; i < n; i++) {
        int len;
        const char *piece = vocab_decode(v, i > 0 ? ids[i - 1] : -1, ids[i], &len);
        safe_print(out, piece, len);
    }
    fflush(stdout);
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
    int *prompt = encode_prompt(v, o->text ? o->text : "", o->text_origin ? o->text_origin : "-p", &n);
    /* The context bounds the positions fed to the model; the last generated
     * token is never fed back, so it may be the (n_ctx + 1)-th id (llama2.c's rule). */
    long room = (long)context.n + 1 - n; /* long: the context may be as large as int allows */
    long n_predict = o->n_predict < 0 ? room : o->n_predict;
    if (n_predict > room)
        fatal("-n %ld: prompt (%d tokens) + %ld tokens exceeds %s", n_predict, n, n_predict, context.words);
    int *ids = xmalloc(sizeof(int) * ((size_t)context.n + 1));
    memcpy(ids, prompt, sizeof(int) * (size_t)n);
    free(prompt);
    int n_prompt = n;

    Sampler sampler;
    sampler_from_options(&sampler, o, cfg->vocab_size);
    SafePrinter out = {{0}, 0};
    /* the prompt as text: after BOS when the vocabulary put one first */
    if (!o->print_ids) print_pieces(&out, v, ids, (v->bos_id >= 0 && ids[0] == v->bos_id) ? 1 : 0, n);
    double t_prefill = 0, t_decode = 0;
    interrupt_arm(); /* Ctrl-C: stop after the current token, print what we have */
    for (long step = 0; step < n_predict && !interrupted(); step++) {
        double t0 = now_seconds();
        const float *logits = forward(m, ids, n, o->model_path);
        double dt = now_seconds() - t0;
        if (step == 0) t_prefill = dt; else t_decode += dt;
        int next = sampler_sample(&sampler, logits, ids, n); /* the penalty sees BOS, prompt and output */
        if (!o->ignore_eos && vocab_ends_text(v, next)) break;
        ids[n++] = next;
        if (!o->print_ids) print_pieces(&out, v, ids, n - 1, n);
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
/* The chat (-cnv): a line in, a reply out, the conversation in ChatSession. */

/** The template: --chat-template, else the one the model's tokenizer.chat_template is written in. */
static ChatTemplate chat_template_for(const Options *o, const Vocab *v) {
    if (o->chat_template) return chat_template_by_name(o->chat_template); /* checked by check_options() */
    if (!v->chat_template)
        fatal("%s: the model has no chat template (tokenizer.chat_template): choose one with --chat-template NAME (%s)",
              o->model_path, chat_template_names());
    ChatTemplate t = chat_template_detect(v->chat_template);
    if (t == CHAT_UNKNOWN)
        fatal("%s: its chat template is not one this book knows: choose one with --chat-template NAME (%s)",
              o->model_path, chat_template_names());
    return t;
}

/** How a reply ended. */
typedef enum { REPLY_END_OF_TURN, REPLY_LIMIT, REPLY_INTERRUPTED, REPLY_CONTEXT_FULL } ReplyEnd;
static const char *const reply_end_words[] = {"end of turn", "-n limit", "stopped by Ctrl-C", "context full"};

/** The chat's state besides the conversation itself. */
typedef struct {
    const Options *o;
    Model *m;
    const Vocab *v;
    Sampler sampler;
    ChatSession s;
    int turn;
} Chat;

/** What a turn did, for its [chat] line. */
typedef struct {
    int n_new;    /* ids fed at its start: the new turn (and the last id of the reply before, never fed) */
    int n_cache;  /* the ids the model had seen once they were fed */
    int n_reply;  /* ids generated */
    double t_prefill, t_decode;
} TurnStats;

/*
 * One reply: feed the session's ids (the chapter computes only the positions
 * its KV cache lacks: this turn's), sample, record and print, until an
 * end-of-generation id, the -n limit, Ctrl-C or the end of the context. The
 * conversation never holds more than context.n ids; the last one is never
 * fed. The penalty looks at this turn's ids only, its prompt and the reply so
 * far, as llama-cli resets its sampler at every turn.
 */
static ReplyEnd reply(Chat *c, int turn_start, TurnStats *st) {
    ChatSession *s = &c->s;
    SafePrinter out = {{0}, 0};
    *st = (TurnStats){0, s->n_fed, 0, 0, 0};
    for (;;) {
        if (interrupted()) return REPLY_INTERRUPTED;
        if (c->o->n_predict >= 0 && st->n_reply >= c->o->n_predict) return REPLY_LIMIT;
        if (s->n_ids >= context.n) return REPLY_CONTEXT_FULL;
        int first = st->n_reply == 0;
        if (first) st->n_new = s->n_ids - s->n_fed, st->n_cache = s->n_ids;
        double t0 = now_seconds();
        const float *logits = forward(c->m, s->ids, s->n_ids, c->o->model_path);
        *(first ? &st->t_prefill : &st->t_decode) += now_seconds() - t0;
        s->n_fed = s->n_ids;
        int next = sampler_sample(&c->sampler, logits, s->ids + turn_start, s->n_ids - turn_start);
        chat_session_token(s, next);
        st->n_reply++;
        if (!c->o->ignore_eos && vocab_ends_text(c->v, next)) return REPLY_END_OF_TURN;
        print_pieces(&out, c->v, s->ids, s->n_ids - 1, s->n_ids);
    }
}

/* One line on stderr per turn; tests read it, so keep its words stable. */
static void print_turn(const Chat *c, const TurnStats *st, ReplyEnd end) {
    fprintf(stderr,
            "[chat] turn %d: %d new tokens, %d in the cache, reply %d tokens (%s), prefill %.1f tok/s, "
            "decode %.1f tok/s\n",
            c->turn, st->n_new, st->n_cache, st->n_reply, reply_end_words[end],
            st->t_prefill > 0 ? st->n_new / st->t_prefill : 0.0,
            (st->n_reply > 1 && st->t_decode > 0) ? (st->n_reply - 1) / st->t_decode : 0.0);
}

/** The end of the chat because the context is full; status 0: nothing went wrong. */
static int context_full(const char *what) {
    fprintf(stderr, "context full: %s, %s; start a new chat%s\n", what, context.words,
            strstr(context.words, "(-c") ? " or use a larger -c" : "");
    return 0;
}

/**
 * The user's next line, without its line end, with escapes processed; NULL at
 * the end of the input or after Ctrl-C (the signal interrupts the read).
 */
static char *read_user_line(const Options *o, char **buf, size_t *cap) {
    for (;;) {
        if (interrupted()) return NULL;
        errno = 0;
        ssize_t n = getline(buf, cap, stdin);
        if (n < 0) return NULL;
        char *line = *buf;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0 || strlen(line) != (size_t)n) {
            if (n > 0) fprintf(stderr, "note: the line holds a NUL byte; skipped\n");
            fputs("> ", stdout); /* an empty line: nothing to say, ask again */
            fflush(stdout);
            continue;
        }
        char err[120];
        if (o->escape && process_escapes(line, err, sizeof err) != 0) {
            fprintf(stderr, "note: %s; line skipped (--no-escape takes lines as they are)\n", err);
            fputs("> ", stdout);
            fflush(stdout);
            continue;
        }
        return line;
    }
}

/**
 * Why chat_session_user() refused @p text: 1 when the text cannot be tokenized at all
 * (said on stderr; the chat goes on), 0 when it is the context that is full.
 */
static int untokenizable(const Vocab *v, const char *text) {
    char err[200];
    int n;
    int *ids = vocab_encode(v, text, 0, &n, err, sizeof err);
    if (ids) {
        free(ids);
        return 0;
    }
    fprintf(stderr, "note: %s; line skipped\n", err);
    return 1;
}

/** One turn for the user's @p text: 0 to go on, 1 when the chat ends (the context is full). */
static int chat_turn(Chat *c, const char *text) {
    char err[200], what[160];
    int turn_start = c->s.n_ids;
    if (chat_session_user(&c->s, text, err, sizeof err) < 0) {
        if (untokenizable(c->v, text)) return 0;
        printf("\n");
        context_full(err);
        return 1;
    }
    c->turn++;
    TurnStats st;
    ReplyEnd end = reply(c, turn_start, &st);
    interrupt_reset(); /* Ctrl-C ended a reply, not the chat; from here on one ends the chat at the prompt */
    chat_session_reply_done(&c->s);
    printf("\n");
    fflush(stdout);
    print_turn(c, &st, end);
    if (end == REPLY_CONTEXT_FULL) {
        snprintf(what, sizeof what, "the conversation reached %d tokens", c->s.n_ids);
        context_full(what);
        return 1;
    }
    return 0;
}

static int conversation(const Options *o, Model *m, const Vocab *v) {
    Chat c = {o, m, v, {0}, {0}, 0};
    ChatTemplate t = chat_template_for(o, v);
    sampler_from_options(&c.sampler, o, model_config(m)->vocab_size);
    chat_session_init(&c.s, v, t, o->system_text, context.n);
    if (o->verbose || isatty(STDIN_FILENO))
        fprintf(stderr, "[chat] template %s, %s; Ctrl-C stops a reply, Ctrl-D (the end of the input) ends the chat\n",
                chat_template_name(t), context.words);
    interrupt_arm();
    char *buf = NULL;
    size_t cap = 0;
    int done = 0, rc = 0;
    if (o->text && o->text[0]) { /* -p or -f: the first user message, shown as if typed */
        printf("> %s\n", o->text);
        done = chat_turn(&c, o->text);
    }
    while (!done) {
        fputs(c.turn > 0 ? "\n> " : "> ", stdout);
        fflush(stdout);
        const char *line = read_user_line(o, &buf, &cap);
        if (!line) { /* the end of the input: a clean end; Ctrl-C at the prompt: status 130 */
            printf("\n");
            rc = interrupted() ? EXIT_INTERRUPTED : 0;
            break;
        }
        done = chat_turn(&c, line);
    }
    if (o->print_ids) {
        for (int i = 0; i < c.s.n_ids; i++) printf(i ? " %d" : "%d", c.s.ids[i]);
        printf("\n");
    }
    fflush(stdout);
    free(buf);
    chat_session_free(&c.s);
    sampler_free(&c.sampler);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Teacher forcing: the logits of every position of a given sequence.      */

/* An error in a list of ids: the list freed, then fatal() (which exits: a leak checker would count it). */
#define IDS_FAIL(...) (free(ids), fatal(__VA_ARGS__))

static int *parse_ids(const char *text, const char *flag, int vocab_size, int *n_out) {
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
            IDS_FAIL("%s: '%.20s' is not a token id", flag, p);
        long id = 0;
        for (size_t i = 0; i < digits && id < vocab_size; i++) id = id * 10 + (p[i] - '0');
        if (id >= vocab_size)
            IDS_FAIL("%s: token id %.*s is outside the vocabulary (0..%d)", flag, (int)(digits < 40 ? digits : 40), p,
                  vocab_size - 1);
        if ((size_t)n == cap) IDS_FAIL("%s: too many ids", flag);
        ids[n++] = (int)id;
        p += digits;
    }
    if (n == 0) IDS_FAIL("%s: no token ids", flag);
    if (n > context.n) IDS_FAIL("%s: %d ids, longer than %s", flag, n, context.words);
    *n_out = n;
    return ids;
}
#undef IDS_FAIL

static int teacher_force(const Options *o, Model *m) {
    const ModelConfig *cfg = model_config(m);
    char *file_text = o->tokens_file ? read_text_file(o->tokens_file, 1 << 24) : NULL;
    int n;
    int *ids = parse_ids(file_text ? file_text : o->tokens_text, file_text ? o->tokens_file : "--tokens",
                         cfg->vocab_size, &n);
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
 * context. Consecutive windows share one token: the last token of a window is
 * the first of the next, so every token after the first is predicted exactly
 * once, always from inside its own window.
 */
static int perplexity(const Options *o, Model *m, const Vocab *v) {
    const ModelConfig *cfg = model_config(m);
    int window = context.n;
    /* A window must hold a token and the one it predicts; with one position
     * the windows would never advance. */
    if (window < 2)
        fatal("%s: --perplexity needs a context of at least 2 positions; %s", o->model_path, context.words);
    char *text = read_text_file(o->perplexity_path, MAX_PROMPT_BYTES);
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
    int rows = (int)(o->batch < window ? o->batch : window);
    float *logits = xmalloc(checked_mul((size_t)rows, sizeof(float) * (size_t)cfg->vocab_size, "--perplexity"));
    interrupt_arm();
    for (int start = 0; start < n - 1 && !interrupted(); start += window - 1) {
        int len = n - start < window ? n - start : window;
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

/* ------------------------------------------------------------------------ */
/* --tokenize: the vocabulary alone, no weights.                            */

/** 1 if the file at @p path starts with GGUF's magic. */
static int is_gguf_file(const char *path) {
    MappedFile f = map_file(path);
    int gguf = f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0;
    unmap_file(&f);
    return gguf;
}

/*
 * A GGUF file's own vocabulary (a vocabulary-only file has no tensors for a
 * chapter to load, so no model is opened), or for a llama2.c checkpoint the
 * tokenizer as generation finds it, sized by the checkpoint's header.
 */
static int tokenize_only(const Options *o) {
    GgufFile *g = NULL;
    Vocab *v;
    if (is_gguf_file(o->model_path)) {
        if (o->tokenizer_path) fatal("-z %s: a GGUF file brings its own vocabulary", o->tokenizer_path);
        g = gguf_open(o->model_path);
        v = vocab_from_gguf(o->model_path, g, -1);
        if (!v) fatal("%s: the file holds no vocabulary (tokenizer.ggml.tokens)", o->model_path);
    } else {
        Llama2cCheckpoint ck = llama2c_open(o->model_path, "--tokenize");
        int vocab_size = ck.cfg.vocab_size;
        llama2c_close(&ck);
        v = llama2c_tokenizer(o, vocab_size);
    }
    char err[200];
    int n;
    int *ids = vocab_encode(v, o->text, 1, &n, err, sizeof err); /* BOS as the vocabulary adds it */
    if (!ids) fatal("%s: %s", o->text_origin, err);
    if (o->print_ids) { /* llama-tokenize --ids */
        printf("[");
        for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    } else { /* llama-tokenize: the piece's bytes as they are, special tokens as their text */
        for (int i = 0; i < n; i++) {
            int len;
            const char *piece = vocab_piece_text(v, ids[i], &len);
            printf("%6d -> '", ids[i]);
            fwrite(piece, 1, (size_t)len, stdout);
            printf("'\n");
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) fatal("standard output: %s", strerror(errno));
    free(ids);
    vocab_free(v);
    gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* chapter 9's server: a program of its own, with llama-server's options */
        if (strcmp(argv[i], "--server") == 0) return server_main(argc, argv);
    Options o = parse_options(argc, argv);
    prepare_texts(&o);
    int rc;
    if (o.tokenize) {
        rc = tokenize_only(&o);
        free(o.text);
        return rc;
    }
    ModelOptions mo = {(int)o.threads, o.verbose, o.check_tensors, (int)o.batch, (int)o.n_ctx, 0}; /* one sequence */
    Model *m = model_open(o.model_path, &mo);
    set_context(&o, model_config(m));
    if (o.logits_path) {
        rc = teacher_force(&o, m);
    } else {
        int owned;
        Vocab *v = load_tokenizer(&o, m, &owned);
        rc = o.perplexity_path ? perplexity(&o, m, v) : o.conversation ? conversation(&o, m, v) : generate(&o, m, v);
        if (owned) vocab_free(v);
    }
    model_close(m);
    free(o.text);
    free(o.system_text);
    return rc;
}

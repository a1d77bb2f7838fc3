/**
 * @file logits_cmp.c
 * @brief Compare our teacher-forced logits with a reference's, within tolerances.
 *
 *     build/logits_cmp REF.lgts OURS.lgts [--max-diff X] [--min-top1 F]
 *                      [--max-kl X] [--rows A:B] [--tie-aware DELTA [--from K]]
 *
 * Both files hold the logits of every position of the same token sequence
 * (LGTS, see src/lgts.h). One line sums up how far OURS is from REF:
 *
 *     max|diff| 1.2e-05  mean KL(ref||ours) 3.1e-08  top-1 127/128 (99.2%)
 *
 * KL(P||Q) is per row, P = softmax(REF row), Q = softmax(OURS row), in
 * double, then averaged over the rows. Top-1 counts rows whose argmax (the
 * first index of the maximum, as greedy decoding picks it) agree.
 *
 * Tie-aware mode checks greedy decoding, where an exact top-1 test is too
 * strict: when two logits are nearly tied, a correct engine may pick the other
 * one. OURS must have been fed the reference's greedy ids; for each row p >=
 * K-1 (K = the index of the first generated id), the reference's choice
 * ids[p+1] must be within DELTA of OURS' row maximum. REF may then be the
 * reference's `.tokens` file (space-separated ids), which may hold one id more
 * than OURS, since the last generated id is never fed back.
 *
 * Exit status: 0 when every tolerance given holds, 1 when one fails (each
 * failure named on stderr), 2 on bad input or usage (one `error:` line).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lgts.h"
#include "util.h"

/** Exit statuses: 1 is reserved for "a tolerance failed". */
enum { EXIT_TOLERANCE = 1, EXIT_BAD_INPUT = 2 };

/**
 * Like fatal(), but exits with 2: a script must be able to tell "the logits
 * are wrong" (1) from "the comparison could not be made" (2).
 */
LB_NORETURN LB_PRINTF(1, 2) static void bad_input(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_BAD_INPUT);
}

/* ------------------------------------------------------------------------ */
/** @name Input files */
/** @{ */

/** The first @p n bytes of @p path (fewer if it is shorter); -1 if unreadable. */
static long read_prefix(const char *path, void *buf, long n, long *file_size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    long got = (long)fread(buf, 1, (size_t)n, fp);
    int ok = fseek(fp, 0, SEEK_END) == 0 && (*file_size = ftell(fp)) >= 0;
    fclose(fp);
    return ok ? got : -1;
}

static int32_t le_i32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/** 1 if @p path starts with the LGTS magic. */
static int looks_like_lgts(const char *path) {
    unsigned char head[4];
    long size;
    long got = read_prefix(path, head, 4, &size);
    if (got < 0) bad_input("%s: cannot read", path);
    return got == 4 && memcmp(head, "LGTS", 4) == 0;
}

/**
 * Read an LGTS file, or exit 2 saying what is wrong with it. lgts_read() would
 * exit 1, so the header and size are checked here first; after that it cannot
 * fail.
 */
static Lgts load_lgts(const char *path) {
    unsigned char head[16];
    long size;
    long got = read_prefix(path, head, 16, &size);
    if (got < 0) bad_input("%s: cannot read", path);
    if (got < 16 || memcmp(head, "LGTS", 4) != 0) bad_input("%s: not an LGTS file", path);
    if (le_i32(head + 4) != 1) bad_input("%s: unsupported LGTS version %d", path, (int)le_i32(head + 4));
    int32_t n = le_i32(head + 8), vocab = le_i32(head + 12);
    if (n <= 0 || vocab <= 0) bad_input("%s: bad LGTS sizes %d x %d", path, (int)n, (int)vocab);
    uint64_t want = 16 + 4 * (uint64_t)n + 4 * (uint64_t)n * (uint64_t)vocab;
    if ((uint64_t)size != want)
        bad_input("%s: %ld bytes, but an LGTS of %d x %d has %llu", path, size, (int)n, (int)vocab,
                  (unsigned long long)want);
    return lgts_read(path);
}

/** Token ids of a `.tokens` text file (whitespace-separated), or exit 2. */
static int *load_token_list(const char *path, int *count) {
    FILE *fp = fopen(path, "r");
    if (!fp) bad_input("%s: cannot read", path);
    int cap = 256, n = 0;
    int *ids = xmalloc(sizeof(int) * (size_t)cap);
    char word[32];
    while (fscanf(fp, "%31s", word) == 1) {
        long v;
        if (parse_long(word, &v) != 0 || v < 0 || v > INT32_MAX) {
            fclose(fp);
            bad_input("%s: '%s' is not a token id", path, word);
        }
        if (n == cap) ids = realloc(ids, sizeof(int) * (size_t)(cap *= 2));
        if (!ids) fatal("out of memory");
        ids[n++] = (int)v;
    }
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error || n == 0) bad_input("%s: no token ids in it", path);
    *count = n;
    return ids;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Per-row measures */
/** @{ */

/** First index of the maximum (how greedy decoding picks); NaNs never win. */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best] || isnan(x[best])) best = i;
    return best;
}

/** log(sum(exp(x))) in double, shifted by the maximum so exp cannot overflow. */
static double log_sum_exp(const float *x, int n) {
    double m = x[argmax(x, n)], sum = 0;
    if (!isfinite(m)) return NAN;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - m);
    return m + log(sum);
}

/** KL(softmax(p) || softmax(q)) = sum P (log P - log Q), from log-softmaxes. */
static double row_kl(const float *p, const float *q, int n) {
    double lse_p = log_sum_exp(p, n), lse_q = log_sum_exp(q, n), kl = 0;
    for (int i = 0; i < n; i++) {
        double log_p = (double)p[i] - lse_p, log_q = (double)q[i] - lse_q;
        double prob = exp(log_p);
        if (prob > 0) kl += prob * (log_p - log_q);
    }
    return kl;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Command line */
/** @{ */

typedef struct {
    const char *ref_path, *ours_path;
    double max_diff, min_top1, max_kl, delta; /**< negative: not given */
    int row_begin, row_end;                   /**< row_end < 0: to the last row */
    int from;                                 /**< first generated id's index */
    int from_given;
} Options;

static void usage(FILE *to) {
    fputs("usage: logits_cmp REF OURS.lgts [--max-diff X] [--min-top1 F] [--max-kl X] [--rows A:B]\n"
          "                  [--tie-aware DELTA [--from K]]\n"
          "Compares teacher-forced logits; prints max|diff|, mean KL(ref||ours) and top-1 agreement.\n"
          "  --max-diff X     fail if some |ref - ours| > X\n"
          "  --min-top1 F     fail if the fraction of rows with equal argmax < F (0..1)\n"
          "  --max-kl X       fail if the mean KL(ref||ours) > X\n"
          "  --rows A:B       only rows A..B-1 (0-based; A or B may be left out)\n"
          "  --tie-aware D    greedy check: for rows p >= K-1, the reference's next id REF.tokens[p+1]\n"
          "                   must score within D of OURS' row maximum; REF may be a .tokens file\n"
          "  --from K         index of the first generated id in the token list (default 1)\n"
          "Exit status: 0 all tolerances hold, 1 one fails, 2 bad input or usage.\n",
          to);
}

static double nonnegative_arg(const char *flag, const char *value) {
    float v;
    if (parse_float(value, &v) != 0 || v < 0) bad_input("%s: '%s' is not a number >= 0", flag, value);
    return v;
}

/** "A:B", "A:" or ":B"; an empty end stays as given in *begin / *end. */
static void parse_rows(const char *s, int *begin, int *end) {
    const char *colon = strchr(s, ':');
    char a[32] = "", b[32] = "";
    long va, vb;
    if (!colon || colon - s >= 32 || strlen(colon + 1) >= 32) bad_input("--rows: '%s' is not A:B", s);
    memcpy(a, s, (size_t)(colon - s));
    strcpy(b, colon + 1);
    if (*a && (parse_long(a, &va) != 0 || va < 0 || va > INT32_MAX)) bad_input("--rows: bad start in '%s'", s);
    if (*b && (parse_long(b, &vb) != 0 || vb < 0 || vb > INT32_MAX)) bad_input("--rows: bad end in '%s'", s);
    if (*a) *begin = (int)va;
    if (*b) *end = (int)vb;
}

static Options parse_options(int argc, char **argv) {
    Options o = {NULL, NULL, -1, -1, -1, -1, 0, -1, 1, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (!o.ref_path) o.ref_path = a;
            else if (!o.ours_path) o.ours_path = a;
            else bad_input("too many files: '%s' (see --help)", a);
            continue;
        }
        if (i + 1 >= argc) bad_input("%s: missing value or unknown option (see --help)", a);
        const char *val = argv[++i];
        if (strcmp(a, "--max-diff") == 0) o.max_diff = nonnegative_arg(a, val);
        else if (strcmp(a, "--max-kl") == 0) o.max_kl = nonnegative_arg(a, val);
        else if (strcmp(a, "--tie-aware") == 0) o.delta = nonnegative_arg(a, val);
        else if (strcmp(a, "--rows") == 0) parse_rows(val, &o.row_begin, &o.row_end);
        else if (strcmp(a, "--min-top1") == 0) {
            o.min_top1 = nonnegative_arg(a, val);
            if (o.min_top1 > 1) bad_input("--min-top1: %s is a fraction, it must be <= 1", val);
        } else if (strcmp(a, "--from") == 0) {
            long k;
            if (parse_long(val, &k) != 0 || k < 1 || k > INT32_MAX) bad_input("--from: '%s' is not an index >= 1", val);
            o.from = (int)k;
            o.from_given = 1;
        } else bad_input("unknown option '%s' (see --help)", a);
    }
    if (!o.ours_path) bad_input("need two files: REF and OURS (see --help)");
    if (o.from_given && o.delta < 0) bad_input("--from needs --tie-aware");
    return o;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Comparisons */
/** @{ */

/** The rows to compare, after --rows, checked against the file. */
static void resolve_rows(Options *o, int n) {
    if (o->row_end < 0) o->row_end = n;
    if (o->row_begin >= o->row_end || o->row_end > n)
        bad_input("--rows %d:%d is not a non-empty range within the %d rows", o->row_begin, o->row_end, n);
}

/** Fail if a row or id count differs: comparing other sequences is meaningless. */
static void check_same_sequence(const char *ref_path, const int *ref_ids, int ref_n, const Lgts *ours,
                                const char *ours_path, int allow_one_more) {
    int n = ours->n_tokens;
    if (ref_n != n && !(allow_one_more && ref_n == n + 1))
        bad_input("%s has %d ids, %s %d: not the same sequence", ref_path, ref_n, ours_path, n);
    for (int i = 0; i < n; i++)
        if (ref_ids[i] != ours->tokens[i])
            bad_input("token %d differs: %d in %s, %d in %s", i, ref_ids[i], ref_path, ours->tokens[i], ours_path);
}

/** What the reference-logits comparison found over the chosen rows. */
typedef struct {
    double max_diff, mean_kl;
    int agree, rows;
} LogitStats;

static LogitStats compare_logits(const Lgts *ref, const Lgts *ours, int begin, int end) {
    LogitStats s = {0, 0, 0, end - begin};
    const int v = ref->vocab;
    for (int p = begin; p < end; p++) {
        const float *a = ref->logits + (size_t)p * (size_t)v, *b = ours->logits + (size_t)p * (size_t)v;
        for (int i = 0; i < v; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (isnan(d) || d > s.max_diff) s.max_diff = d; /* once NaN, stays NaN */
        }
        s.mean_kl += row_kl(a, b, v) / s.rows;
        s.agree += argmax(a, v) == argmax(b, v);
    }
    return s;
}

/** The greedy check: how far below OURS' maximum the reference's choice is. */
typedef struct {
    double worst;
    int worst_row, rows, over;
} TieStats;

static TieStats check_choices(const Lgts *ours, const int *ids, int n_ids, int from, int begin, int end,
                              double delta) {
    TieStats t = {-1, -1, 0, 0};
    const int v = ours->vocab;
    int first = from - 1 > begin ? from - 1 : begin;
    for (int p = first; p < end && p + 1 < n_ids; p++) {
        const float *row = ours->logits + (size_t)p * (size_t)v;
        int chosen = ids[p + 1];
        if (chosen < 0 || chosen >= v) bad_input("token %d is id %d, outside the vocabulary of %d", p + 1, chosen, v);
        double shortfall = (double)row[argmax(row, v)] - (double)row[chosen];
        if (isnan(shortfall)) shortfall = INFINITY;
        if (shortfall > t.worst) {
            t.worst = shortfall;
            t.worst_row = p;
        }
        t.over += shortfall > delta;
        t.rows++;
    }
    if (t.rows == 0) bad_input("--tie-aware: no rows to check (--from %d, rows %d:%d, %d ids)", from, begin, end, n_ids);
    return t;
}

/** Print one failure on stderr; returns 1 so callers can count them. */
LB_PRINTF(1, 2) static int failed(const char *fmt, ...) {
    va_list ap;
    fputs("FAIL ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/** @} */

/** Print the summary line, then name each tolerance that fails; the count. */
static int report(const Options *o, const LogitStats *s, const TieStats *t) {
    if (s)
        printf("max|diff| %.2g  mean KL(ref||ours) %.2g  top-1 %d/%d (%.1f%%)%s", s->max_diff, s->mean_kl, s->agree,
               s->rows, 100.0 * s->agree / s->rows, t ? "  " : "");
    if (t) printf("worst shortfall %.2g at row %d (%d of %d rows over %g)", t->worst, t->worst_row, t->over, t->rows,
                  o->delta);
    printf("\n");
    fflush(stdout);
    int failures = 0;
    if (s && o->max_diff >= 0 && !(s->max_diff <= o->max_diff))
        failures += failed("max|diff| %.3g > --max-diff %g", s->max_diff, o->max_diff);
    if (s && o->max_kl >= 0 && !(s->mean_kl <= o->max_kl))
        failures += failed("mean KL %.3g > --max-kl %g", s->mean_kl, o->max_kl);
    if (s && o->min_top1 >= 0 && (double)s->agree < o->min_top1 * s->rows)
        failures += failed("top-1 %d/%d < --min-top1 %g", s->agree, s->rows, o->min_top1);
    if (t && t->over > 0)
        failures += failed("%d of %d reference choices more than %g below our row maximum (worst %.3g at row %d)",
                           t->over, t->rows, o->delta, t->worst, t->worst_row);
    return failures;
}

int main(int argc, char **argv) {
    Options o = parse_options(argc, argv);
    int tie_aware = o.delta >= 0;
    Lgts ours = load_lgts(o.ours_path);
    Lgts ref = {0, 0, NULL, NULL};
    int *ids = ours.tokens, n_ids = ours.n_tokens, *listed = NULL;

    if (looks_like_lgts(o.ref_path)) {
        ref = load_lgts(o.ref_path);
        if (ref.vocab != ours.vocab)
            bad_input("vocab %d in %s, %d in %s", ref.vocab, o.ref_path, ours.vocab, o.ours_path);
        check_same_sequence(o.ref_path, ref.tokens, ref.n_tokens, &ours, o.ours_path, 0);
    } else if (tie_aware) {
        listed = load_token_list(o.ref_path, &n_ids);
        check_same_sequence(o.ref_path, listed, n_ids, &ours, o.ours_path, 1);
        ids = listed;
    } else {
        bad_input("%s: not an LGTS file (a .tokens file needs --tie-aware)", o.ref_path);
    }
    if (!ref.logits && (o.max_diff >= 0 || o.max_kl >= 0 || o.min_top1 >= 0))
        bad_input("--max-diff, --max-kl and --min-top1 need REF logits, not a .tokens file");
    resolve_rows(&o, ours.n_tokens);

    LogitStats s = {0, 0, 0, 0};
    TieStats t = {0, 0, 0, 0};
    if (ref.logits) s = compare_logits(&ref, &ours, o.row_begin, o.row_end);
    if (tie_aware) t = check_choices(&ours, ids, n_ids, o.from, o.row_begin, o.row_end, o.delta);
    int failures = report(&o, ref.logits ? &s : NULL, tie_aware ? &t : NULL);

    free(listed);
    lgts_free(&ours);
    if (ref.logits) lgts_free(&ref);
    return failures ? EXIT_TOLERANCE : 0;
}

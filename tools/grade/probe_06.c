/*
 * tools/grade/probe_06.c — what the logits cannot show about chapter 6's exercises.
 *
 * Chapter 6 computes chapter 5's numbers, bit for bit; its fetch-ahead only
 * asks the memory for weights earlier. So a fetch_share() (exercise 6.3) that
 * asks for nothing, for the wrong rows, for rows past the thread's share or
 * for all of them at once gives the same logits: it only wastes the gaps, or
 * keeps a worker from its next job. The grader therefore also builds this
 * probe around the file being graded (#include GRADE_SOURCE) and calls
 * fetch_share() itself, on hand-made steps (StepWeights over small QTensors,
 * with pools of 1 to 4 threads), for every thread of the pool:
 *
 *  - every cache line the call asks for is recorded (__builtin_prefetch is
 *    redirected to a recorder for the included file; the chapter itself is
 *    not changed): each call must ask for exactly the lines of the indices it
 *    adds to *done, no more than a piece (FETCH_PIECE / index_bytes + 1
 *    indices), in order from the first index of the thread's own share
 *    (threadpool_share());
 *  - *done never goes back, and stops at min(share, FETCH_LIMIT / index_bytes);
 *  - the return value: 1 while indices are left (a call that returns 1 must
 *    have asked for some, or the worker would call it forever), 0 when none
 *    is, and 0 again, asking for nothing, on a call after that; an empty share
 *    (a thread the step would not wake) asks for nothing and returns 0;
 *  - it writes nothing but *done (the step and its matrices are unchanged).
 *
 * usage: probe_06 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines; MODEL is not read)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Every __builtin_prefetch of the included file (fetch_bytes(), and whatever the student's
 * fetch_share() calls) goes to the recorder instead; prefetches change no value. Not static:
 * the compiler's own intrinsic headers (_mm_prefetch) may call it from inline functions. */
void probe_prefetch(const void *p, ...);
#define __builtin_prefetch(...) probe_prefetch(__VA_ARGS__)
#include GRADE_SOURCE
#undef __builtin_prefetch

#include <stdio.h>

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    fflush(stdout);
    failures += !pass;
}

/* --- the recorder --------------------------------------------------------------------- */

static uintptr_t *rec;    /* the cache lines (address / 64) asked for since recorder_reset() */
static size_t n_rec, cap_rec;

void probe_prefetch(const void *p, ...) {
    if (n_rec == cap_rec) {
        cap_rec = cap_rec ? 2 * cap_rec : 4096;
        rec = realloc(rec, cap_rec * sizeof *rec);
        if (!rec) abort();
    }
    rec[n_rec++] = (uintptr_t)p / 64;
}

static int cmp_line(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/** Sort and de-duplicate @p v[0..n); returns the new count. */
static size_t unique_lines(uintptr_t *v, size_t n) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_line);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[k - 1]) v[k++] = v[i];
    return k;
}

static int has_line(const uintptr_t *v, size_t n, uintptr_t line) {
    return bsearch(&line, v, n, sizeof line, cmp_line) != NULL;
}

/* --- hand-made steps ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int n_parts, swiglu;
    int rows[3];
    size_t row_bytes[3];
    int min_rows;
} Shape;

typedef struct {
    QTensor w[3];
    uint8_t *mem[3];
    StepWeights s;
} Step;

/** A step of @p sh's matrices (their bytes are never read: only their addresses matter), as plan_fetches() makes it. */
static void make_step(Step *st, const Shape *sh, const ThreadPool *pool) {
    memset(st, 0, sizeof *st);
    st->s.pool = pool;
    st->s.n_parts = sh->n_parts;
    st->s.swiglu = sh->swiglu;
    st->s.min_rows = sh->min_rows;
    for (int p = 0; p < sh->n_parts; p++) {
        size_t bytes = (size_t)sh->rows[p] * sh->row_bytes[p];
        st->mem[p] = calloc(bytes + 64, 1);
        if (!st->mem[p]) abort();
        /* 16 bytes past a line boundary, so that rows do not start on lines */
        uint8_t *data = (uint8_t *)(((uintptr_t)st->mem[p] + 63) & ~(uintptr_t)63) + 16 * (p + 1) % 64;
        st->w[p] = (QTensor){"probe", Q_Q4_0, data, sh->rows[p], 32, sh->row_bytes[p]};
        st->s.w[p] = &st->w[p];
        if (sh->swiglu) st->s.index_bytes += sh->row_bytes[p];
        else if (sh->row_bytes[p] > st->s.index_bytes) st->s.index_bytes = sh->row_bytes[p];
        st->s.n_rows = sh->swiglu ? sh->rows[0] : st->s.n_rows + sh->rows[p];
    }
}

static void free_step(Step *st) {
    for (int p = 0; p < st->s.n_parts; p++) free(st->mem[p]);
}

/** The lines of the weights of step indices [lo, hi): the rows they are of each part (as matmul_rows() reads them). */
static size_t expected_lines(const StepWeights *s, int lo, int hi, uintptr_t **out) {
    size_t n = 0, cap = 0;
    uintptr_t *v = NULL;
    int first = 0;
    for (int p = 0; p < s->n_parts; p++) {
        const QTensor *w = s->w[p];
        int a = s->swiglu ? lo : (lo > first ? lo : first) - first;
        int b = s->swiglu ? hi : (hi < first + w->rows ? hi : first + w->rows) - first;
        if (a < b) {
            uintptr_t from = (uintptr_t)(w->data + (size_t)a * w->row_bytes) / 64;
            uintptr_t to = ((uintptr_t)(w->data + (size_t)b * w->row_bytes) - 1) / 64;
            for (uintptr_t l = from; l <= to; l++) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 1024;
                    v = realloc(v, cap * sizeof *v);
                    if (!v) abort();
                }
                v[n++] = l;
            }
        }
        if (!s->swiglu) first += w->rows;
    }
    *out = v;
    return unique_lines(v, n);
}

/** Words for line @p line: which part, row and step index it belongs to, or that it is outside the step's matrices. */
static void describe_line(const StepWeights *s, uintptr_t line, char *buf, size_t len) {
    int first = 0;
    for (int p = 0; p < s->n_parts; p++) {
        const QTensor *w = s->w[p];
        uintptr_t lo = (uintptr_t)w->data / 64, hi = ((uintptr_t)(w->data + (size_t)w->rows * w->row_bytes) - 1) / 64;
        if (line >= lo && line <= hi) {
            uintptr_t at = line * 64 < (uintptr_t)w->data ? 0 : line * 64 - (uintptr_t)w->data;
            int row = (int)(at / w->row_bytes);
            snprintf(buf, len, "row %d of part %d (step index %d)", row, p, s->swiglu ? row : first + row);
            return;
        }
        if (!s->swiglu) first += w->rows;
    }
    snprintf(buf, len, "a line outside the step's matrices");
}

/**
 * Run fetch_share() for @p thread on @p st until it returns 0, checking every call;
 * returns 1, or 0 with the first problem in @p why.
 */
static int check_thread(Step *st, int n_threads, int thread, char *why, size_t len) {
    const StepWeights *s = &st->s;
    int begin, end;
    threadpool_share(s->pool, s->n_rows, s->min_rows, thread, &begin, &end);
    size_t share = (size_t)(end - begin), limit = FETCH_LIMIT / s->index_bytes;
    if (limit > share) limit = share;
    size_t piece = FETCH_PIECE / s->index_bytes + 1;
    char who[160];
    snprintf(who, sizeof who, "thread %d of a pool of %d, whose share is indices %d..%d of %d (limit %zu, piece %zu)",
             thread, n_threads, begin, end, s->n_rows, limit, piece);
    StepWeights before_s = *s;
    QTensor before_w[3];
    memcpy(before_w, st->w, sizeof before_w);
    uintptr_t *prev = NULL;
    size_t n_prev = 0;
    size_t done = 0;
    int finished = 0, ok = 1;
    for (int call = 1; ok && call <= (int)(limit + 3); call++) {
        size_t from = done;
        n_rec = 0;
        int rc = fetch_share(s, thread, &done);
        size_t n_got = unique_lines(rec, n_rec);
        char where[120];
        snprintf(where, sizeof where, "call %d (*done %zu -> %zu, returned %d)", call, from, done, rc);
        if (memcmp(&before_s, s, sizeof before_s) != 0 || memcmp(before_w, st->w, sizeof before_w) != 0) {
            snprintf(why, len, "%s, %s: it changed the StepWeights or its QTensors", who, where);
            ok = 0;
            break;
        }
        if (finished) { /* the call after the one that returned 0 */
            if (rc != 0 || done != from || n_got != 0)
                snprintf(why, len, "%s, %s: called again after it returned 0, it must ask for nothing, leave *done and return 0", who, where), ok = 0;
            break;
        }
        if (done < from) {
            snprintf(why, len, "%s, %s: *done went back", who, where);
            ok = 0;
            break;
        }
        if (done > limit) {
            snprintf(why, len, "%s, %s: *done went past %s", who, where,
                     done > share ? "the thread's share (threadpool_share())" : "FETCH_LIMIT / index_bytes indices");
            ok = 0;
            break;
        }
        if (done - from > piece) {
            snprintf(why, len, "%s, %s: one call asked for %zu indices, more than a piece", who, where, done - from);
            ok = 0;
            break;
        }
        uintptr_t *want;
        size_t n_want = expected_lines(s, begin + (int)from, begin + (int)done, &want);
        char line_words[120];
        for (size_t i = 0; ok && i < n_got; i++)
            if (!has_line(want, n_want, rec[i])) {
                describe_line(s, rec[i], line_words, sizeof line_words);
                snprintf(why, len, "%s, %s: it asked for a cache line of %s, not one of indices %zu..%zu of the share (step indices %d..%d)",
                         who, where, line_words, from, done, begin + (int)from, begin + (int)done);
                ok = 0;
            }
        for (size_t i = 0; ok && i < n_want; i++)
            if (!has_line(rec, n_got, want[i]) && !has_line(prev, n_prev, want[i])) {
                describe_line(s, want[i], line_words, sizeof line_words);
                snprintf(why, len, "%s, %s: it did not ask for the cache line(s) of %s, which it counted in *done", who,
                         where, line_words);
                ok = 0;
            }
        free(want);
        if (!ok) break;
        if (rc != 0 && done == from) {
            snprintf(why, len, "%s, %s: it returned %d without asking for anything (the worker would call it forever)", who, where, rc);
            ok = 0;
            break;
        }
        if (rc == 0) {
            if (done != limit) {
                snprintf(why, len, "%s, %s: it returned 0 with %zu of the %zu indices to fetch asked for", who, where, done, limit);
                ok = 0;
                break;
            }
            finished = 1;
        }
        free(prev);
        prev = malloc((n_got ? n_got : 1) * sizeof *prev);
        if (!prev) abort();
        memcpy(prev, rec, n_got * sizeof *prev);
        n_prev = n_got;
        if (call == (int)(limit + 3))
            snprintf(why, len, "%s: it did not return 0 after %d calls", who, call), ok = 0;
    }
    free(prev);
    return ok;
}

static void check_shape(const Shape *sh, const int *pools, int n_pools) {
    char why[600] = "";
    int ok = 1;
    for (int k = 0; ok && k < n_pools; k++) {
        ThreadPool *pool = threadpool_create(pools[k]);
        int n_threads = threadpool_threads(pool);
        Step st;
        make_step(&st, sh, pool);
        for (int t = 0; ok && t < n_threads; t++) ok = check_thread(&st, n_threads, t, why, sizeof why);
        free_step(&st);
        threadpool_destroy(pool);
    }
    char name[240];
    snprintf(name, sizeof name, "fetch_share: %s", sh->name);
    result(name, ok, why);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s MODEL [THREADS]\n", argv[0]);
        return 2;
    }
    int pools[5] = {1, 2, 3, 4}, n_pools = 4;
    if (argc == 3 && atoi(argv[2]) > 4 && atoi(argv[2]) <= 64) pools[n_pools++] = atoi(argv[2]);
    /* Row sizes of real types: Q4_0 of 64 and of 256 columns (36, 144 bytes), Q8_0 of 256 (272), f32 of 256 (1024),
     * Q4_0 of 8192 (4608: a row longer than a piece). */
    static const Shape shapes[] = {
        {"one matrix of short rows (36 bytes), shares smaller than the limit, fetched in pieces", 1, 0, {4000}, {36}, 100},
        {"one matrix of rows longer than a piece (4608 bytes): a row per piece, shares cut at FETCH_LIMIT", 1, 0, {1000},
         {4608}, 8},
        {"three parts of different row sizes (wq, wk, wv: 144, 272, 1024 bytes), shares across the parts", 3, 0,
         {256, 128, 128}, {144, 272, 1024}, 50},
        {"SwiGLU (w1 and w3: an index is a row of each), shares smaller than the limit", 2, 1, {768, 768}, {144, 144}, 64},
        {"SwiGLU, shares cut at FETCH_LIMIT", 2, 1, {6000, 6000}, {144, 144}, 64},
        {"a step too small to share (only thread 0 has a share, the others an empty one)", 3, 0, {64, 32, 32},
         {36, 36, 36}, 512},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], pools, n_pools);
    free(rec);
    fflush(stdout);
    return failures ? 1 : 0;
}

/**
 * @file unit_ch04.c
 * @brief Chapter 4's SIMD kernels against chapter 3's plain C, bit for bit,
 * and the thread pool.
 *
 * The chapter is included whole, so this program gets whatever kernels its
 * compile flags select: the Makefile builds unit tests without -march, which
 * on x86-64 means the plain-C path (then the comparisons are trivially
 * true) and on ARM64 means NEON. tests/run_all.sh builds it once more with
 * CFLAGS=-march=... for each x86 level the machine runs, and cross-built for
 * ARM64 under qemu, so that every kernel set meets the same checks:
 *
 *  - the activation quantizer gives chapter 3's bytes, on random data, on
 *    exact halves (which SIMD rounding instructions would round to even),
 *    tiny, huge, zero, NaN and infinite inputs;
 *  - the Q8_0 dot product gives chapter 3's float for every length (the
 *    kernels work 4 or 8 blocks at a time and finish one by one), and so do
 *    the 8-row kernels, chapter 4's Q8_0 one and chapter 5's Q4_0 one, for
 *    each of their rows;
 *  - attention scores, the weighted sum of values and the maximum give
 *    chapter 3's floats for every length;
 *  - the pool runs every index of a range exactly once, in chunks no smaller
 *    than asked, for every thread count, and 20000 times in a row;
 *  - chapter 6's additions to the pool: the threads' own shares tile the
 *    range, and waiting workers run an idle task's pieces, each once.
 */
#include "../chapters/04_simd_threads.c"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "quants.h"
#include "unit.h"

/** A deterministic pseudo-random float in [-1, 1). */
static float rnd(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 40) / (double)(1ull << 23) - 1.0);
}

/* ------------------------------------------------------------------------ */
/* The quantizer                                                             */

/** Quantize @p x (n values) both ways; 1 if the bytes agree, else 0 and the first difference in @p why. */
static int same_blocks(const float *x, int n, char *why, size_t len) {
    BlockQ8 a[64], b[64];
    quantize_q8(a, x, n);
    memset(b, 0x55, sizeof b);
    simd_quantize_q8(b, x, n);
    for (int k = 0; k < n / QK; k++) {
        if (a[k].d != b[k].d) {
            snprintf(why, len, "block %d: scale %04x, chapter 3 %04x", k, b[k].d, a[k].d);
            return 0;
        }
        for (int j = 0; j < QK; j++)
            if (a[k].qs[j] != b[k].qs[j]) {
                snprintf(why, len, "block %d value %d (x = %.9g): %d, chapter 3 %d", k, j, x[k * QK + j], b[k].qs[j], a[k].qs[j]);
                return 0;
            }
    }
    return 1;
}

static void test_quantizer(void) {
    enum { N = 64 * QK };
    static float x[N];
    char why[200] = "";
    uint64_t s = 1;
    int ok = 1;
    for (int trial = 0; trial < 200 && ok; trial++) {
        float scale = ldexpf(1.0f, trial % 40 - 20);
        for (int i = 0; i < N; i++) x[i] = rnd(&s) * scale * (i % 7 == 0 ? 10.0f : 1.0f);
        ok = same_blocks(x, N, why, sizeof why);
    }
    char name[120];
    snprintf(name, sizeof name, "%s kernels: simd_quantize_q8 = quantize_q8 on random blocks (200 x 64 blocks)", SIMD_NAME);
    CHECK(name, ok, "%s", why);

    /* amax 127 makes d = 1 and id = 1, so x * id is x itself: every k + 0.5 is a tie */
    for (int i = 0; i < N; i++) x[i] = (i % QK == 0) ? 127.0f : (float)((i * 37) % 253 - 126) + 0.5f;
    for (int i = 0; i < N; i += 2 * QK) x[i] = -127.0f; /* and some blocks led by a negative */
    CHECK("halves round away from zero (2.5 -> 3, -2.5 -> -3), as roundf", same_blocks(x, N, why, sizeof why), "%s", why);

    for (int i = 0; i < N; i++) x[i] = 0.0f;
    for (int i = 0; i < QK; i++) x[QK + i] = (i & 1) ? -0.0f : 0.0f;
    for (int i = 0; i < QK; i++) x[2 * QK + i] = 1e-42f * (float)(i - 16); /* subnormal inputs */
    for (int i = 0; i < QK; i++) x[3 * QK + i] = 3e38f * (i % 3 == 0 ? -1.0f : 0.25f); /* scale overflows fp16 */
    for (int i = 0; i < QK; i++) x[4 * QK + i] = (float)i * 1e-6f;
    x[4 * QK + 5] = NAN;
    x[5 * QK + 3] = INFINITY;
    x[5 * QK + 4] = 1.0f;
    x[6 * QK + 7] = -INFINITY;
    CHECK("zeros, -0, subnormals, fp16 overflow, NaN and infinities: chapter 3's bytes", same_blocks(x, 8 * QK, why, sizeof why),
          "%s", why);
}

/* ------------------------------------------------------------------------ */
/* The Q8_0 dot product                                                      */

static void test_dot(void) {
    enum { MAX_BLOCKS = 70 };
    static float w[MAX_BLOCKS * QK], v[MAX_BLOCKS * QK];
    BlockQ8 wq[MAX_BLOCKS], xq[MAX_BLOCKS];
    float xd[MAX_BLOCKS];
    uint64_t s = 7;
    int ok = 1, bad_n = 0;
    float got = 0, want = 0;
    for (int trial = 0; trial < 20 && ok; trial++) {
        for (int i = 0; i < MAX_BLOCKS * QK; i++) {
            w[i] = rnd(&s) * (i % 32 == 3 ? 8.0f : 1.0f);
            v[i] = rnd(&s) * ldexpf(1.0f, trial - 10);
        }
        quantize_q8(wq, w, MAX_BLOCKS * QK);
        quantize_q8(xq, v, MAX_BLOCKS * QK);
        for (int b = 0; b < MAX_BLOCKS; b++) xd[b] = fp16_to_float(xq[b].d);
        for (int n = 1; n <= MAX_BLOCKS && ok; n++) {
            got = simd_dot_q8(wq, xq, xd, n);
            want = dot_q8(wq, xq, n);
            if (memcmp(&got, &want, sizeof got) != 0) ok = 0, bad_n = n;
        }
    }
    CHECK("simd_dot_q8 = dot_q8, bit for bit, for 1..70 blocks", ok, "%d blocks: %.9g, chapter 3 %.9g", bad_n, got, want);

    /* the extremes of the integer sums: every product 127 * 127, or -127 * 127 */
    for (int b = 0; b < 9; b++) {
        wq[b].d = fp16_from_float(0.5f);
        xq[b].d = fp16_from_float(0.25f);
        xd[b] = 0.25f;
        for (int j = 0; j < QK; j++) wq[b].qs[j] = 127, xq[b].qs[j] = (int8_t)(b % 2 ? -127 : 127);
    }
    got = simd_dot_q8(wq, xq, xd, 9);
    want = dot_q8(wq, xq, 9);
    CHECK("simd_dot_q8 at the int8 extremes (32 x 127 x ±127 per block)", memcmp(&got, &want, sizeof got) == 0 && want == 516128.0f * 0.125f,
          "%.9g, chapter 3 %.9g", got, want);
}

/** simd_dot_q8_8rows: eight rows at once, each lane equal to dot_q8 of its row, bit for bit. */
static void test_dot_8rows(void) {
    enum { MAX_BLOCKS = 40 };
    static float w[8 * MAX_BLOCKS * QK], v[MAX_BLOCKS * QK];
    static BlockQ8 wq[8 * MAX_BLOCKS];
    BlockQ8 xq[MAX_BLOCKS];
    float xd[MAX_BLOCKS], got[8];
    uint64_t s = 11;
    int ok = 1, bad_n = -1, bad_row = 0;
    for (int trial = 0; trial < 4 && ok; trial++) {
        for (int i = 0; i < MAX_BLOCKS * QK; i++) v[i] = rnd(&s) * ldexpf(1.0f, 3 * trial - 4);
        quantize_q8(xq, v, MAX_BLOCKS * QK);
        for (int b = 0; b < MAX_BLOCKS; b++) xd[b] = fp16_to_float(xq[b].d);
        for (int n = 0; n <= MAX_BLOCKS && ok; n++) { /* 8 rows of n blocks each, one after another */
            for (int i = 0; i < 8 * n * QK; i++) w[i] = rnd(&s) * (i % 32 == 5 ? 8.0f : 1.0f);
            quantize_q8(wq, w, 8 * n * QK);
            simd_dot_q8_8rows(got, wq, xq, xd, n);
            for (int k = 0; k < 8 && ok; k++) {
                float want = dot_q8(wq + (size_t)k * (size_t)n, xq, n);
                if (memcmp(&got[k], &want, sizeof want) != 0) ok = 0, bad_n = n, bad_row = k;
            }
        }
    }
    CHECK("simd_dot_q8_8rows = dot_q8 of each of its 8 rows, bit for bit, for 0..40 blocks", ok,
          "%d blocks, row %d: %.9g", bad_n, bad_row, bad_n >= 0 ? got[bad_row] : 0.0);
}

/**
 * Chapter 5's simd_dot_q4_0_8rows (src/quants.h, built on this chapter's
 * pieces, and compiled here for the same CPUs): each lane equals the plain-C
 * dot_q4_0_c of its row, bit for bit. Nibbles 0 and 15 are forced in, the
 * extremes of the unsigned-quant trick.
 */
static void test_dot_q4_0_8rows(void) {
    enum { MAX_BLOCKS = 40 };
    static float w[8 * MAX_BLOCKS * QK], v[MAX_BLOCKS * QK];
    static BlockQ4_0 wq[8 * MAX_BLOCKS];
    BlockQ8 xq[MAX_BLOCKS];
    float xd[MAX_BLOCKS], got[8];
    int16_t xsum[MAX_BLOCKS];
    uint64_t s = 12;
    int ok = 1, bad_n = -1, bad_row = 0;
    for (int trial = 0; trial < 4 && ok; trial++) {
        for (int i = 0; i < MAX_BLOCKS * QK; i++) v[i] = rnd(&s) * ldexpf(1.0f, 3 * trial - 4);
        quantize_q8(xq, v, MAX_BLOCKS * QK);
        for (int b = 0; b < MAX_BLOCKS; b++) {
            int sum = 0;
            for (int j = 0; j < QK; j++) sum += xq[b].qs[j];
            xd[b] = fp16_to_float(xq[b].d), xsum[b] = (int16_t)sum;
        }
        for (int n = 0; n <= MAX_BLOCKS && ok; n++) { /* 8 rows of n blocks each, one after another */
            for (int i = 0; i < 8 * n * QK; i++) w[i] = rnd(&s) * (i % 32 == 5 ? 8.0f : 1.0f);
            quantize_q4_0(w, wq, 8 * n * QK);
            for (int b = 0; b < 8 * n; b++) wq[b].qs[b % 16] = (uint8_t)(b % 2 ? 0xF0 : 0x0F);
            simd_dot_q4_0_8rows(got, wq, xq, xd, xsum, n);
            for (int k = 0; k < 8 && ok; k++) {
                float want = dot_q4_0_c(wq + (size_t)k * (size_t)n, xq, xd, xsum, n);
                if (memcmp(&got[k], &want, sizeof want) != 0) ok = 0, bad_n = n, bad_row = k;
            }
        }
    }
    CHECK("simd_dot_q4_0_8rows (chapter 5) = dot_q4_0_c of each of its 8 rows, bit for bit, for 0..40 blocks", ok,
          "%d blocks, row %d: %.9g", bad_n, bad_row, bad_n >= 0 ? got[bad_row] : 0.0);
}

/* ------------------------------------------------------------------------ */
/* fp32: attention                                                           */

static void test_attention_kernels(void) {
    enum { N = 200, HS = 64, TILES = (N + KEY_TILE - 1) / KEY_TILE };
    static float kt[TILES * HS * KEY_TILE], q[HS], att[N], y[N], y_ref[N], x[N];
    uint64_t s = 3;
    for (int i = 0; i < TILES * HS * KEY_TILE; i++) kt[i] = rnd(&s);
    for (int i = 0; i < HS; i++) q[i] = rnd(&s) * 3.0f;
    int ok = 1, bad = 0;
    for (int hs = 8; hs <= HS && ok; hs *= 2)
        for (int n = 1; n <= N && ok; n++) {
            simd_attention_scores(att, q, kt, n, hs, sqrtf((float)hs));
            for (int t = 0; t < n && ok; t++) {
                const float *tile = kt + (size_t)(t / KEY_TILE) * (size_t)hs * KEY_TILE;
                float score = 0.0f;
                for (int i = 0; i < hs; i++) score += q[i] * tile[i * KEY_TILE + t % KEY_TILE];
                score /= sqrtf((float)hs);
                if (memcmp(&score, &att[t], sizeof score) != 0) ok = 0, bad = n;
            }
        }
    CHECK("simd_attention_scores = chapter 3's q.k / sqrt(head_size), every position, 1..200 positions", ok, "n = %d", bad);

    ok = 1;
    for (int n = 1; n <= N && ok; n++) {
        for (int i = 0; i < n; i++) y[i] = y_ref[i] = rnd(&s), x[i] = rnd(&s);
        float a = rnd(&s);
        simd_axpy(y, a, x, n);
        for (int i = 0; i < n; i++) y_ref[i] += a * x[i];
        if (memcmp(y, y_ref, sizeof(float) * (size_t)n) != 0) ok = 0, bad = n;
    }
    CHECK("simd_axpy = y[i] += a * x[i] (no fused multiply-add), 1..200 elements", ok, "n = %d", bad);

    ok = 1;
    for (int n = 1; n <= N && ok; n++) {
        for (int i = 0; i < n; i++) x[i] = rnd(&s) - 2.0f;
        x[(n * 7) % n] = 5.0f + (float)n;
        if (simd_max(x, n) != 5.0f + (float)n) ok = 0, bad = n;
    }
    CHECK("simd_max finds the maximum anywhere, 1..200 elements", ok, "n = %d", bad);
}

/* ------------------------------------------------------------------------ */
/* The thread pool                                                           */

typedef struct {
    int *hits;      /* times each index was run */
    int *chunk_len; /* the length of the chunk each index was run in */
    int n_threads;
    int bad_thread;
} PoolCheck;

static void count_hits(void *arg, int begin, int end, int thread) {
    PoolCheck *c = arg;
    if (thread < 0 || thread >= c->n_threads) {
        c->bad_thread = 1; /* written only on failure; the check reads it after the barrier */
        return;
    }
    for (int i = begin; i < end; i++) c->hits[i]++, c->chunk_len[i] = end - begin;
}

static void test_pool(void) {
    enum { MAX_N = 300 };
    int hits[MAX_N], chunk_len[MAX_N];
    int ok = 1;
    char why[200] = "";
    for (int threads = 1; threads <= 5 && ok; threads++) {
        ThreadPool *pool = threadpool_create(threads);
        if (threadpool_threads(pool) != threads) {
            ok = 0;
            snprintf(why, sizeof why, "asked for %d threads, has %d", threads, threadpool_threads(pool));
        }
        for (int n = 0; n <= MAX_N && ok; n += 1 + n / 8)
            for (int min = 1; min <= 7 && ok; min += 3) {
                PoolCheck c = {hits, chunk_len, threads, 0};
                memset(hits, 0, sizeof hits);
                threadpool_for(pool, n, min, count_hits, &c);
                for (int i = 0; i < n && ok; i++)
                    if (hits[i] != 1) {
                        ok = 0;
                        snprintf(why, sizeof why, "%d threads, n %d, min %d: index %d run %d times", threads, n, min, i, hits[i]);
                    } else if (chunk_len[i] < min && chunk_len[i] != n) {
                        ok = 0;
                        snprintf(why, sizeof why, "%d threads, n %d, min %d: a chunk of %d", threads, n, min, chunk_len[i]);
                    }
                if (ok && c.bad_thread) {
                    ok = 0;
                    snprintf(why, sizeof why, "%d threads, n %d, min %d: a thread number out of range", threads, n, min);
                }
            }
        threadpool_destroy(pool);
    }
    CHECK("threadpool_for runs every index once, in chunks of at least min_per_thread, for 1..5 threads", ok, "%s", why);

    ThreadPool *pool = threadpool_create(4);
    ok = 1;
    for (int rep = 0; rep < 20000 && ok; rep++) {
        int n = 1 + rep % 97;
        PoolCheck c = {hits, chunk_len, 4, 0};
        memset(hits, 0, sizeof(int) * (size_t)n);
        threadpool_for(pool, n, 1, count_hits, &c);
        for (int i = 0; i < n; i++)
            if (hits[i] != 1) ok = 0;
    }
    threadpool_destroy(pool);
    CHECK("20000 handoffs in a row on 4 threads, none lost", ok, "an index was missed or run twice");
    threadpool_destroy(NULL);
    pool = threadpool_create(0);
    CHECK("threadpool_create(0) starts one thread per online CPU", threadpool_threads(pool) == online_cpus(), "%d threads, %d CPUs",
          threadpool_threads(pool), online_cpus());
    threadpool_destroy(pool);
}

/* Chapter 5's additions to the pool: each thread's own share, and work for waiting workers. */

static void test_pool_share(void) {
    int ok = 1;
    char why[200] = "";
    for (int threads = 1; threads <= 5 && ok; threads++) {
        ThreadPool *pool = threadpool_create(threads);
        for (int n = 0; n <= 300 && ok; n += 1 + n / 8)
            for (int min = 1; min <= 7 && ok; min += 3) {
                int at = 0; /* the shares must tile [0, n) in thread order */
                for (int t = 0; t < threads && ok; t++) {
                    int b, e;
                    threadpool_share(pool, n, min, t, &b, &e);
                    if (b == e) continue;
                    if (b != at || e < b || e > n || (e - b < min && e - b != n)) {
                        ok = 0;
                        snprintf(why, sizeof why, "%d threads, n %d, min %d: thread %d's share [%d, %d) after %d", threads, n,
                                 min, t, b, e, at);
                    }
                    at = e;
                }
                if (ok && at != n) {
                    ok = 0;
                    snprintf(why, sizeof why, "%d threads, n %d, min %d: the shares end at %d", threads, n, min, at);
                }
            }
        threadpool_destroy(pool);
    }
    CHECK("threadpool_share: the threads' own shares tile [0, n) in order, none below min_per_thread", ok, "%s", why);
}

enum { IDLE_PIECES = 3, IDLE_THREADS = 4 };

typedef struct {
    _Atomic int calls[IDLE_THREADS]; /* pieces run, per thread */
    atomic_int bad;                  /* a piece saw a wrong thread number or progress */
} IdleCheck;

/** An IdleTask of IDLE_PIECES pieces: counts its calls, and checks that @p done counts them too. */
static int count_pieces(const void *arg, int thread, size_t *done) {
    IdleCheck *c = (IdleCheck *)arg;
    if (thread < 1 || thread >= IDLE_THREADS || *done >= IDLE_PIECES) {
        atomic_store(&c->bad, 1);
        return 0;
    }
    atomic_fetch_add(&c->calls[thread], 1);
    return ++*done < IDLE_PIECES;
}

static void nothing(void *arg, int begin, int end, int thread) { (void)arg, (void)begin, (void)end, (void)thread; }

/** Waits (up to 5 s) until every worker has run all pieces of @p c; 1 if they did, and exactly those. */
static int all_pieces_run(IdleCheck *c) {
    for (int wait = 0; wait < 5000; wait++) {
        int done = 1;
        for (int t = 1; t < IDLE_THREADS; t++) done &= atomic_load(&c->calls[t]) >= IDLE_PIECES;
        if (done) break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    nanosleep(&(struct timespec){0, 20000000}, NULL); /* time for a piece too many */
    for (int t = 1; t < IDLE_THREADS; t++)
        if (atomic_load(&c->calls[t]) != IDLE_PIECES) return 0;
    return !atomic_load(&c->bad);
}

static void test_pool_idle(void) {
    ThreadPool *pool = threadpool_create(IDLE_THREADS);
    static IdleCheck a, b; /* must outlive the pool's use of them */
    threadpool_idle(pool, count_pieces, &a);
    threadpool_for(pool, 1000, 1, nothing, NULL); /* wakes every worker; afterwards they wait, and work on a */
    int ok_a = all_pieces_run(&a);
    threadpool_idle(pool, count_pieces, &b);
    threadpool_for(pool, 1000, 1, nothing, NULL);
    int ok_b = all_pieces_run(&b);
    threadpool_idle(pool, count_pieces, NULL);
    threadpool_destroy(pool);
    CHECK("threadpool_idle: each waiting worker runs every piece of the idle task once, and starts afresh on a new argument",
          ok_a && ok_b && atomic_load(&a.calls[0]) == 0, "first argument %s, second %s (the caller ran %d pieces)",
          ok_a ? "ok" : "wrong", ok_b ? "ok" : "wrong", atomic_load(&a.calls[0]));
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    test_quantizer();
    test_dot();
    test_dot_8rows();
    test_dot_q4_0_8rows();
    test_attention_kernels();
    test_pool();
    test_pool_share();
    test_pool_idle();
    return UNIT_EXIT();
}

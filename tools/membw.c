/**
 * @file membw.c
 * @brief Measure how fast this machine streams memory into its cores.
 *
 *     build/membw [--threads N] [--mb SIZE] [--seconds S]
 *
 * Generating one token reads every weight once, so on a CPU the speed of
 * LLaMA inference is bounded by memory read bandwidth: tokens/s <= GB/s /
 * model GB. The benchmark chapters divide by this number to say how close to
 * the bound they are.
 *
 * A buffer much larger than the last-level cache is summed as 64-bit words,
 * each thread over its own slice, again and again, passes alternating a plain
 * read and one that prefetches ahead; the best pass counts (the others lost
 * time to the rest of the machine, or used the pattern this machine likes
 * less). By default it prints one line
 * for 1 thread and one for all online CPUs:
 *
 *     membw threads=1 GB/s=12.34
 *     membw threads=8 GB/s=41.07
 *
 * GB = 1e9 bytes. With --threads N, only that line.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

/* ------------------------------------------------------------------------ */
/** @name The read kernel */
/** @{ */

/**
 * Sum @p n words with eight independent accumulators: one chain of adds
 * would wait on its own latency, not on memory. The compiler may vectorise.
 *
 * With @p prefetch, each cache line also asks for the one PREFETCH_AHEAD
 * bytes further on. A core can only keep so many misses in flight by itself,
 * and on some machines the hardware prefetcher keeps too few of them going:
 * on the 16-core virtual machine of docs/bench.md, in one interleaved test,
 * this read 145-170 GB/s with 16 threads where the plain loop read 129-140.
 * On others (this book's 2-core development machine) it reads less.
 * measure() runs both and keeps the better, so the bound is the most the
 * machine showed: the inference kernels prefetch too, and a weaker yardstick
 * would flatter them.
 */
enum { PREFETCH_AHEAD = 8192 };
static uint64_t sum_words(const uint64_t *w, size_t n, int prefetch) {
    uint64_t acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (prefetch) __builtin_prefetch(w + i + PREFETCH_AHEAD / sizeof *w); /* never faults, even past the end */
        for (int k = 0; k < 8; k++) acc[k] += w[i + k];
    }
    for (; i < n; i++) acc[0] += w[i];
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

/** Where every sum ends up, so that no read can be optimised away. */
static volatile uint64_t sink;

/** One thread's slice of the buffer, and what it does with it. */
typedef struct {
    uint64_t *words;
    size_t n;
    int fill;     /**< 1: write the slice (first touch), 0: read it */
    int prefetch; /**< when reading: 1 to prefetch ahead (sum_words()) */
    uint64_t sum; /**< the read's result, per slice so threads never share it */
} Slice;

/**
 * Writing a slice from the thread that will read it also places its pages
 * on that thread's NUMA node (Linux allocates a page where it is first touched).
 */
static void *run_slice(void *arg) {
    Slice *s = arg;
    if (s->fill) {
        for (size_t i = 0; i < s->n; i++) s->words[i] = i * 0x9e3779b97f4a7c15ull;
    } else {
        s->sum = sum_words(s->words, s->n, s->prefetch);
    }
    return NULL;
}

/** Run every slice on its own thread (slice 0 on this one); seconds taken. */
static double run_slices(Slice *slices, pthread_t *tids, int threads) {
    double t0 = now_seconds();
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tids[t], NULL, run_slice, &slices[t]) != 0) fatal("cannot start thread %d", t);
    run_slice(&slices[0]);
    for (int t = 1; t < threads; t++) pthread_join(tids[t], NULL);
    double seconds = now_seconds() - t0;
    for (int t = 0; t < threads; t++) sink += slices[t].sum;
    return seconds;
}

/** Split @p n words into @p threads slices of whole cache lines. */
static void split(Slice *slices, int threads, uint64_t *words, size_t n, int fill) {
    const size_t line = 8; /* words per 64-byte cache line */
    size_t lines = n / line;
    for (int t = 0; t < threads; t++) {
        size_t a = lines * (size_t)t / (size_t)threads, b = lines * (size_t)(t + 1) / (size_t)threads;
        slices[t] = (Slice){words + a * line, (b - a) * line, fill, 0, 0};
    }
}

/**
 * Best read bandwidth in GB/s over passes of the whole buffer, for at least
 * @p seconds and at least four passes, alternating the plain and the
 * prefetching read. Thread start-up is inside the timing; it costs tens of
 * microseconds against passes of many milliseconds.
 */
static double measure(uint64_t *words, size_t n, int threads, double seconds) {
    Slice *slices = xmalloc(sizeof(Slice) * (size_t)threads);
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)threads);
    split(slices, threads, words, n, 0);
    size_t bytes = n / 8 * 8 * sizeof(uint64_t); /* whole cache lines, as split() hands out */
    double best = 0, start = now_seconds();
    for (int pass = 0; pass < 4 || now_seconds() - start < seconds; pass++) {
        for (int t = 0; t < threads; t++) slices[t].prefetch = pass % 2;
        double gbs = (double)bytes / run_slices(slices, tids, threads) / 1e9;
        if (gbs > best) best = gbs;
    }
    free(slices);
    free(tids);
    return best;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Command line */
/** @{ */

typedef struct {
    int threads; /**< 0: 1 thread, then all online CPUs */
    long mb;
    double seconds;
} Options;

static void usage(FILE *to) {
    fputs("usage: membw [--threads N] [--mb SIZE] [--seconds S]\n"
          "Best memory read bandwidth (GB/s, 1e9 bytes) over repeated passes of a large buffer.\n"
          "  --threads N   only this many threads (default: 1, then every online CPU)\n"
          "  --mb SIZE     buffer size in MiB (default 1024, at most a quarter of physical memory)\n"
          "  --seconds S   time per measurement (default 1.5)\n",
          to);
}

static Options parse_options(int argc, char **argv) {
    Options o = {0, 1024, 1.5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) fatal("%s: missing value or unknown option (see --help)", a);
        const char *val = argv[++i];
        long v;
        float f;
        if (strcmp(a, "--threads") == 0) {
            if (parse_long(val, &v) != 0 || v < 1 || v > 4096) fatal("--threads: '%s' is not a count 1..4096", val);
            o.threads = (int)v;
        } else if (strcmp(a, "--mb") == 0) {
            if (parse_long(val, &v) != 0 || v < 1) fatal("--mb: '%s' is not a size in MiB >= 1", val);
            o.mb = v;
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_float(val, &f) != 0 || f < 0 || f > 3600) fatal("--seconds: '%s' is not 0..3600", val);
            o.seconds = f;
        } else {
            fatal("unknown option '%s' (see --help)", a);
        }
    }
    return o;
}

/** The buffer size in bytes: as asked, but never more than 1/4 of RAM. */
static size_t buffer_bytes(long mb) {
    uint64_t want = (uint64_t)mb << 20;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
        uint64_t cap = (uint64_t)pages * (uint64_t)page / 4;
        if (want > cap) want = cap;
    }
    if (want > SIZE_MAX / 2) want = SIZE_MAX / 2;
    return (size_t)want;
}

/**
 * The buffer, aligned to 2 MiB and, on Linux, offered transparent huge pages:
 * 512 times fewer page faults while it is first written, and fewer TLB
 * misses while it is read, so the passes measure memory, not paging.
 */
static uint64_t *alloc_buffer(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0) fatal("out of memory (asked for %zu bytes)", bytes);
#if defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE); /* only advice: failure is harmless */
#endif
    return p;
}

/** @} */

int main(int argc, char **argv) {
    Options o = parse_options(argc, argv);
    int cpus = online_cpus();
    int max_threads = o.threads ? o.threads : cpus;
    size_t bytes = buffer_bytes(o.mb);
    size_t n = bytes / sizeof(uint64_t);
    if (n < 8 * (size_t)max_threads) fatal("buffer of %zu bytes is too small for %d threads", bytes, max_threads);
    uint64_t *words = alloc_buffer(n * sizeof(uint64_t));

    Slice *fill = xmalloc(sizeof(Slice) * (size_t)max_threads);
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)max_threads);
    split(fill, max_threads, words, n, 1);
    run_slices(fill, tids, max_threads);
    free(fill);
    free(tids);

    /* The one-thread line first: with every CPU it would be redundant on a
     * one-CPU machine, so then it is the only line. */
    int counts[2] = {o.threads ? o.threads : 1, cpus};
    int lines = o.threads || cpus == 1 ? 1 : 2;
    for (int i = 0; i < lines; i++)
        printf("membw threads=%d GB/s=%.2f\n", counts[i], measure(words, n, counts[i], o.seconds));
    free(words);
    return 0;
}

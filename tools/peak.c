/**
 * @file peak.c
 * @brief Measure how fast this machine's cores can multiply and add.
 *
 *     build/peak [--threads N] [--seconds S]
 *
 * The other half of a roofline. build/membw measures how many bytes a second
 * memory delivers; this measures how many multiply-adds a second the cores
 * can do on data already in their registers and L1 cache, with the very
 * instructions the chapters' kernels use:
 *
 *  - int8: byte products summed into int32 lanes. With AVX-512 VNNI,
 *    vpdpbusd on 512-bit registers (chapter 7's tiles, src/tiles_q8_0.h and
 *    src/tiles_q8_K.h); with AVX-VNNI, the same on 256 bits; on AVX2
 *    without it, vpmaddubsw then vpmaddwd; on ARM64, sdot (dotprod) or
 *    smull/sadalp.
 *  - fp32: a multiply, then a separate add (the book never fuses them: see
 *    the rule in src/q8_kernels.h), on the widest float registers the build
 *    has, as the float kernels of src/tiles_float.h.
 *
 * A multiply-add counts as 2 operations (a product and a sum), the way the
 * benchmark counts a matrix-vector product as 2 x parameters operations per
 * position. One line per thread count, 1 and then every online CPU:
 *
 *     peak threads=1 int8 GOP/s=123.4 fp32 GFLOP/s=45.6
 *     peak threads=8 int8 GOP/s=980.1 fp32 GFLOP/s=361.0
 *
 * after one line that names the instructions. With --threads N, only that
 * line. Each figure is the best of repeated passes (others lost time to the
 * rest of the machine); all threads run at once and the pass is timed from
 * the first start to the last finish.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q8_kernels.h" /* SIMD_AVX512 / SIMD_AVX2 / SIMD_NEON: the chapters' choice of kernels */
#include "util.h"

/* ------------------------------------------------------------------------ */
/** @name The kernels */
/** @{ */

/*
 * Each kernel walks a small buffer (BUF_BYTES, well inside any L1 cache)
 * of "weights" again and again, multiplying each register of them by a
 * register of "inputs" and adding into CHAINS independent accumulators.
 * Independent: one accumulator would wait for its own previous add (a few
 * cycles of latency) instead of keeping every multiply unit busy; twelve
 * cover two units of five cycles' latency, and fit in AVX2's 16 registers
 * with the input and a temporary or two. The loads
 * vary with the position in the buffer, so no compiler can hoist the
 * products out of the loop, and every accumulator ends up in a sink.
 */
enum { CHAINS = 12, BUF_BYTES = CHAINS * 512 }; /* a whole number of steps of CHAINS registers, up to 512 bits */

/** Where every result ends up, so that no work can be optimised away. */
static volatile int64_t sink_int;
static volatile float sink_float;

#if SIMD_AVX512 && defined(__AVX512VNNI__)
#define INT8_NAME "vpdpbusd, 512 bits"
enum { INT8_BYTES = 64 }; /* byte products per instruction */

/** @p passes walks over the buffer: byte products into 16 x CHAINS int32 lanes. */
static void int8_run(const uint8_t *buf, int8_t seed, long passes) {
    __m512i acc[CHAINS], x = _mm512_set1_epi8(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = _mm512_setzero_si512();
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES; j += CHAINS * INT8_BYTES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++)
                acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_loadu_si512((const void *)(buf + j + k * INT8_BYTES)), x);
    for (int k = 1; k < CHAINS; k++) acc[0] = _mm512_add_epi32(acc[0], acc[k]);
    sink_int += _mm512_reduce_add_epi32(acc[0]);
}
#elif SIMD_X86
#if defined(__AVXVNNI__)
#define INT8_NAME "vpdpbusd (AVX-VNNI), 256 bits"
static inline __m256i int8_madd(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define INT8_NAME "vpdpbusd, 256 bits"
static inline __m256i int8_madd(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_epi32(acc, w, x); }
#else
#define INT8_NAME "vpmaddubsw + vpmaddwd, 256 bits"
static inline __m256i int8_madd(__m256i acc, __m256i w, __m256i x) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
}
#endif
enum { INT8_BYTES = 32 }; /* byte products per instruction */

/** @p passes walks over the buffer: byte products into 8 x CHAINS int32 lanes. */
static void int8_run(const uint8_t *buf, int8_t seed, long passes) {
    __m256i acc[CHAINS], x = _mm256_set1_epi8(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_setzero_si256();
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES; j += CHAINS * INT8_BYTES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++)
                acc[k] = int8_madd(acc[k], _mm256_loadu_si256((const __m256i *)(buf + j + k * INT8_BYTES)), x);
    int32_t lanes[8];
    for (int k = 1; k < CHAINS; k++) acc[0] = _mm256_add_epi32(acc[0], acc[k]);
    _mm256_storeu_si256((__m256i *)lanes, acc[0]);
    sink_int += lanes[0] + lanes[7];
}
#elif SIMD_NEON && defined(__ARM_FEATURE_DOTPROD)
#define INT8_NAME "sdot, 128 bits"
enum { INT8_BYTES = 16 };
static void int8_run(const uint8_t *buf, int8_t seed, long passes) {
    int32x4_t acc[CHAINS];
    int8x16_t x = vdupq_n_s8(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = vdupq_n_s32(0);
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES; j += CHAINS * INT8_BYTES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = vdotq_s32(acc[k], vld1q_s8((const int8_t *)buf + j + k * INT8_BYTES), x);
    for (int k = 1; k < CHAINS; k++) acc[0] = vaddq_s32(acc[0], acc[k]);
    sink_int += vaddvq_s32(acc[0]);
}
#elif SIMD_NEON
#define INT8_NAME "smull + smlal + sadalp, 128 bits"
enum { INT8_BYTES = 16 };
static void int8_run(const uint8_t *buf, int8_t seed, long passes) {
    int32x4_t acc[CHAINS];
    int8x16_t x = vdupq_n_s8(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = vdupq_n_s32(0);
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES; j += CHAINS * INT8_BYTES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) {
                int8x16_t w = vld1q_s8((const int8_t *)buf + j + k * INT8_BYTES);
                int16x8_t p = vmlal_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), vget_high_s8(w), vget_high_s8(x));
                acc[k] = vpadalq_s16(acc[k], p);
            }
    for (int k = 1; k < CHAINS; k++) acc[0] = vaddq_s32(acc[0], acc[k]);
    sink_int += vaddvq_s32(acc[0]);
}
#else
#define INT8_NAME "plain C"
enum { INT8_BYTES = 4 };
static void int8_run(const uint8_t *buf, int8_t seed, long passes) {
    int32_t acc[CHAINS] = {0};
    const int8_t *w = (const int8_t *)buf;
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES; j += CHAINS * INT8_BYTES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++)
                for (int i = 0; i < INT8_BYTES; i++) acc[k] += w[j + k * INT8_BYTES + i] * seed;
    int64_t s = 0;
    for (int k = 0; k < CHAINS; k++) s += acc[k];
    sink_int += s;
}
#endif

#if SIMD_AVX512
#define FP32_NAME "mul + add, 512 bits"
enum { FP32_LANES = 16 };
static void fp32_run(const float *buf, float seed, long passes) {
    __m512 acc[CHAINS], x = _mm512_set1_ps(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = _mm512_setzero_ps();
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES / 4; j += CHAINS * FP32_LANES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++)
                acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(_mm512_loadu_ps(buf + j + k * FP32_LANES), x));
    for (int k = 1; k < CHAINS; k++) acc[0] = _mm512_add_ps(acc[0], acc[k]);
    sink_float += _mm512_reduce_add_ps(acc[0]);
}
#elif SIMD_AVX2
#define FP32_NAME "mul + add, 256 bits"
enum { FP32_LANES = 8 };
static void fp32_run(const float *buf, float seed, long passes) {
    __m256 acc[CHAINS], x = _mm256_set1_ps(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_setzero_ps();
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES / 4; j += CHAINS * FP32_LANES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++)
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_loadu_ps(buf + j + k * FP32_LANES), x));
    float lanes[8];
    for (int k = 1; k < CHAINS; k++) acc[0] = _mm256_add_ps(acc[0], acc[k]);
    _mm256_storeu_ps(lanes, acc[0]);
    sink_float += lanes[0] + lanes[7];
}
#elif SIMD_NEON
#define FP32_NAME "fmul + fadd, 128 bits"
enum { FP32_LANES = 4 };
static void fp32_run(const float *buf, float seed, long passes) {
    float32x4_t acc[CHAINS], x = vdupq_n_f32(seed);
    _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = vdupq_n_f32(0);
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES / 4; j += CHAINS * FP32_LANES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] = vaddq_f32(acc[k], vmulq_f32(vld1q_f32(buf + j + k * FP32_LANES), x));
    for (int k = 1; k < CHAINS; k++) acc[0] = vaddq_f32(acc[0], acc[k]);
    sink_float += vaddvq_f32(acc[0]);
}
#else
#define FP32_NAME "plain C"
enum { FP32_LANES = 1 };
static void fp32_run(const float *buf, float seed, long passes) {
    float acc[CHAINS] = {0};
    for (long it = 0; it < passes; it++)
        for (int j = 0; j < BUF_BYTES / 4; j += CHAINS * FP32_LANES)
            _Pragma("GCC unroll 12") for (int k = 0; k < CHAINS; k++) acc[k] += buf[j + k] * seed;
    float s = 0;
    for (int k = 0; k < CHAINS; k++) s += acc[k];
    sink_float += s;
}
#endif

/** Operations (2 per multiply-add) in one walk over the buffer. */
static double ops_per_pass(int fp32) { return fp32 ? 2.0 * (BUF_BYTES / 4) : 2.0 * BUF_BYTES; }

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Threads */
/** @{ */

/** One thread's buffer and what to run on it. */
typedef struct {
    uint8_t buf[BUF_BYTES]; /* first: the job is allocated on a cache line, so is the buffer */
    int fp32;
    long passes;
} Job;

static void *run_job(void *arg) {
    Job *j = arg;
    if (j->fp32) fp32_run((const float *)(void *)j->buf, 0.5f, j->passes);
    else int8_run(j->buf, 3, j->passes);
    return NULL;
}

/** Run every job on its own thread (job 0 on this one); seconds from the first start to the last finish. */
static double run_jobs(Job *jobs, pthread_t *tids, int threads) {
    double t0 = now_seconds();
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tids[t], NULL, run_job, &jobs[t]) != 0) fatal("cannot start thread %d", t);
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tids[t], NULL);
    return now_seconds() - t0;
}

/**
 * Best rate in G operations per second on @p threads threads, over passes of
 * about 50 ms each (so thread start-up, tens of microseconds, is noise) for
 * at least @p seconds and at least three passes.
 */
static double measure(int fp32, int threads, double seconds) {
    Job *jobs = NULL;
    if (posix_memalign((void **)&jobs, 64, sizeof(Job) * (size_t)threads) != 0) fatal("out of memory");
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)threads);
    for (int t = 0; t < threads; t++) {
        /* small values: no int8 product saturates, no float sum overflows */
        if (fp32) {
            float *f = (float *)(void *)jobs[t].buf;
            for (int i = 0; i < BUF_BYTES / 4; i++) f[i] = (float)(i % 7) * 0.125f;
        } else {
            for (int i = 0; i < BUF_BYTES; i++) jobs[t].buf[i] = (uint8_t)(i % 5);
        }
        jobs[t].fp32 = fp32;
    }
    long passes = 64; /* grown until one run of the jobs takes about 50 ms */
    for (;;) {
        for (int t = 0; t < threads; t++) jobs[t].passes = passes;
        double dt = run_jobs(jobs, tids, threads);
        if (dt > 0.05 || passes > (1L << 40)) break;
        passes = dt > 0.001 ? (long)((double)passes * 0.06 / dt) + 1 : passes * 16;
    }
    double best = 0, start = now_seconds();
    for (int run = 0; run < 3 || now_seconds() - start < seconds; run++) {
        double dt = run_jobs(jobs, tids, threads);
        double rate = ops_per_pass(fp32) * (double)passes * threads / dt / 1e9;
        if (rate > best) best = rate;
    }
    free(jobs);
    free(tids);
    return best;
}

/** @} */
/* ------------------------------------------------------------------------ */
/** @name Command line */
/** @{ */

typedef struct {
    int threads; /**< 0: 1 thread, then all online CPUs */
    double seconds;
} Options;

static void usage(FILE *to) {
    fputs("usage: peak [--threads N] [--seconds S]\n"
          "Best multiply-add rate of the chapters' SIMD instructions on data in the L1 cache:\n"
          "int8 GOP/s and fp32 GFLOP/s, a multiply-add counted as 2 operations.\n"
          "  --threads N   only this many threads (default: 1, then every online CPU)\n"
          "  --seconds S   time per measurement (default 0.5)\n",
          to);
}

static Options parse_options(int argc, char **argv) {
    Options o = {0, 0.5};
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
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_float(val, &f) != 0 || f < 0 || f > 3600) fatal("--seconds: '%s' is not 0..3600", val);
            o.seconds = f;
        } else {
            fatal("unknown option '%s' (see --help)", a);
        }
    }
    return o;
}

/** @} */

int main(int argc, char **argv) {
    Options o = parse_options(argc, argv);
    int cpus = online_cpus();
    printf("peak kernels: %s; int8: %s; fp32: %s\n", SIMD_NAME, INT8_NAME, FP32_NAME);
    int counts[2] = {o.threads ? o.threads : 1, cpus};
    int lines = o.threads || cpus == 1 ? 1 : 2;
    for (int i = 0; i < lines; i++) {
        double int8 = measure(0, counts[i], o.seconds), fp32 = measure(1, counts[i], o.seconds);
        printf("peak threads=%d int8 GOP/s=%.1f fp32 GFLOP/s=%.1f\n", counts[i], int8, fp32);
        fflush(stdout);
    }
    return 0;
}

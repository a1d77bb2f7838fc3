/**
 * @file threadpool.c
 * @brief The worker pool of threadpool.h: POSIX threads, C11 atomics, and a
 * spin-then-sleep handoff.
 *
 * One job is in flight at a time. The caller writes it into plain fields of
 * the pool (task, arg, n) and then publishes it in one atomic word,
 * the ticket: the job's generation in the high 32 bits, its number of
 * chunks and the next chunk to hand out in the low ones. A thread takes a
 * chunk by advancing the ticket with compare-and-swap, and only then reads
 * the job's fields: the chunk it holds is not finished, so the caller cannot
 * have moved on to another job, and the swap (acquire) pairs with the
 * caller's publication (release), so the fields it reads are the new ones. A
 * worker that wakes up late finds the ticket of a later generation, or no
 * chunk left, and takes nothing. Each finished chunk is counted in `done`;
 * the caller, after taking chunks itself, waits until all are done (acquire),
 * which makes every chunk's results visible to it. Because chunks are taken,
 * not assigned, a thread that the operating system has put aside for a while
 * only delays the chunk it already holds.
 *
 * Waiting, on either side, first spins on an atomic for a bounded number of
 * pause instructions (tens of microseconds), then sleeps on a condition
 * variable. The sleeper announces itself in `sleepers` / `caller_sleeps`
 * under the mutex and then checks the condition again before it sleeps; the
 * side that changes the condition stores it and then reads that
 * announcement. This is the classic Dekker pattern: it works only if neither
 * side's load can be done before its own store becomes visible, so each side
 * has a full fence between the two. (Sequentially consistent atomics promise
 * that on their own; the explicit fence makes it visible in the code, and it
 * is what made the pool pass under qemu's ARM emulation, which was seen to
 * lose a wake-up without it.) So at least one of the two sees the other:
 * either the sleeper sees the change and does not sleep, or the waker sees
 * the sleeper and signals it under the mutex. No wake-up is lost, and while
 * everybody is spinning nobody touches the mutex.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

/*
 * The full fence between a store and the load after it (see above). Thread
 * Sanitizer does not model fences (gcc warns about them); its builds rely on
 * the sequentially consistent atomics alone, which suffice in C11.
 */
#if defined(__SANITIZE_THREAD__)
#define full_fence() ((void)0)
#else
#define full_fence() atomic_thread_fence(memory_order_seq_cst)
#endif

enum {
    SPIN_LIMIT = 1 << 11,   /* pause instructions a waiter spins before it sleeps (tens of microseconds) */
    CHUNKS_PER_THREAD = 4,  /* a few chunks each, so that a late thread's share is taken by the others */
    MAX_CHUNKS = 0xffff,    /* chunk counts live in 16 bits of the ticket */
};

/* The ticket: generation << 32 | chunks << 16 | next chunk to take. */
#define TICKET(gen, chunks, next) ((uint64_t)(gen) << 32 | (uint64_t)(chunks) << 16 | (uint64_t)(next))
#define TICKET_GEN(t) ((uint32_t)((t) >> 32))
#define TICKET_CHUNKS(t) ((int)(((t) >> 16) & 0xffff))
#define TICKET_NEXT(t) ((int)((t)&0xffff))

struct ThreadPool {
    int n_threads;      /* the caller and the workers */
    pthread_t *workers; /* n_threads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* workers sleep here between jobs */
    pthread_cond_t done_cond; /* the caller sleeps here until the last chunk is done */
    _Atomic uint64_t ticket;  /* the current job's generation, chunks and next chunk */
    atomic_int done;          /* chunks of the current job finished */
    atomic_int sleepers;      /* workers asleep (or about to be) on `wake` */
    atomic_int caller_sleeps; /* the caller is asleep (or about to be) on `done_cond` */
    atomic_int stop;          /* set with the last generation: the workers exit */
    /* The current job: written by the caller before it publishes the ticket. */
    ThreadTask task;
    void *arg;
    int n;
};

/**
 * Take and run chunks of generation @p gen until none is left; @p thread is
 * the caller's number (0) or a worker's. *last says whether this thread
 * finished the job's last chunk (then nobody else will touch the job).
 */
static void run_chunks(ThreadPool *p, uint32_t gen, int thread, int *last) {
    uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    *last = 0;
    for (;;) {
        if (TICKET_GEN(t) != gen || TICKET_NEXT(t) >= TICKET_CHUNKS(t)) return;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire))
            continue; /* t now holds the current ticket: look again */
        int chunk = TICKET_NEXT(t), chunks = TICKET_CHUNKS(t);
        int begin = (int)((long long)p->n * chunk / chunks), end = (int)((long long)p->n * (chunk + 1) / chunks);
        p->task(p->arg, begin, end, thread);
        if (atomic_fetch_add(&p->done, 1) + 1 == chunks) {
            *last = 1; /* the job's fields must not be touched after this: the caller may reuse them */
            return;
        }
        t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
}

/** A worker: wait for a generation other than @p seen; return it. */
static uint32_t wait_for_job(ThreadPool *p, uint32_t seen) {
    for (int i = 0; i < SPIN_LIMIT; i++) {
        uint32_t g = TICKET_GEN(atomic_load_explicit(&p->ticket, memory_order_acquire));
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    full_fence(); /* announce, then look (see the top of this file) */
    uint32_t g;
    while ((g = TICKET_GEN(atomic_load(&p->ticket))) == seen) pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->lock);
    return g;
}

typedef struct {
    ThreadPool *pool;
    int index; /* 1 .. n_threads - 1 */
} WorkerArg;

static void *worker_main(void *arg_) {
    WorkerArg *wa = arg_;
    ThreadPool *p = wa->pool;
    int index = wa->index;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        int last;
        run_chunks(p, seen, index, &last);
        full_fence();
        if (last && atomic_load(&p->caller_sleeps)) {
            /* the last chunk is done and the caller went to sleep: wake it */
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done_cond);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/** The caller: publish a new generation of @p chunks chunks (the job's fields are written). */
static uint32_t publish(ThreadPool *p, int chunks) {
    uint32_t gen = TICKET_GEN(atomic_load(&p->ticket)) + 1;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed); /* ordered by the release below */
    atomic_store(&p->ticket, TICKET(gen, chunks, 0)); /* releases the job's fields */
    full_fence(); /* publish, then look for sleepers */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    return gen;
}

/** The caller: wait until all @p chunks chunks of the job are done. */
static void wait_for_chunks(ThreadPool *p, int chunks) {
    for (int i = 0; i < SPIN_LIMIT; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == chunks) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->caller_sleeps, 1);
    full_fence();
    while (atomic_load(&p->done) != chunks) pthread_cond_wait(&p->done_cond, &p->lock);
    atomic_store(&p->caller_sleeps, 0);
    pthread_mutex_unlock(&p->lock);
}

ThreadPool *threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = online_cpus();
    ThreadPool *p = xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    atomic_init(&p->ticket, TICKET(0, 0, 0));
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeps, 0);
    atomic_init(&p->stop, 0);
    p->workers = xcalloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        WorkerArg *wa = xmalloc(sizeof *wa);
        wa->pool = p;
        wa->index = i;
        if (pthread_create(&p->workers[i - 1], NULL, worker_main, wa) != 0)
            fatal("cannot start worker thread %d of %d", i, n_threads - 1);
    }
    return p;
}

int threadpool_threads(const ThreadPool *p) { return p->n_threads; }

void threadpool_for(ThreadPool *p, int n, int min_per_thread, ThreadTask task, void *arg) {
    if (n <= 0) return;
    if (min_per_thread < 1) min_per_thread = 1;
    int threads = n / min_per_thread < p->n_threads ? n / min_per_thread : p->n_threads;
    if (threads <= 1) { /* not worth a handoff */
        task(arg, 0, n, 0);
        return;
    }
    /* a few chunks per thread, none smaller than min_per_thread */
    long long chunks = (long long)threads * CHUNKS_PER_THREAD;
    if (chunks > n / min_per_thread) chunks = n / min_per_thread;
    if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
    p->task = task;
    p->arg = arg;
    p->n = n;
    uint32_t gen = publish(p, (int)chunks);
    int last;
    run_chunks(p, gen, 0, &last);
    if (!last) wait_for_chunks(p, (int)chunks);
}

void threadpool_destroy(ThreadPool *p) {
    if (!p) return;
    if (p->n_threads > 1) {
        atomic_store(&p->stop, 1);
        publish(p, 0);
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i - 1], NULL);
    }
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cond);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

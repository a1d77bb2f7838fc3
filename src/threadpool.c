/**
 * @file threadpool.c
 * @brief The worker pool of threadpool.h: POSIX threads, C11 atomics, one
 * queue of chunks per thread, and a spin-then-sleep handoff.
 *
 * One job is in flight at a time. The caller writes it into plain fields of
 * the pool (task, arg, n, chunks) and then hands every thread its share of the
 * chunks: thread i gets a contiguous run of chunk numbers in its own queue, one
 * atomic word on its own cache line holding the job's generation (high 32
 * bits), the end of the run and the next chunk to take (16 bits each).
 *
 * A thread takes a chunk by adding 1 to a queue: the value before the add says
 * which generation the chunk belongs to and which chunk it is. It empties its
 * own queue first; that costs no contention, because no other thread touches
 * that cache line while the owner is busy. Then it steals from the other
 * queues, so a thread that the system has put aside for a while, or that
 * sleeps, delays only the chunk it already holds: the others take the rest of
 * its share. (An earlier version of this pool had one shared counter; on the
 * 16-core machine the chunk-takes of 16 threads on one cache line cost about
 * 10 microseconds per job, for some 110 jobs per token.)
 *
 * Why the job's fields are safe to read: a chunk that a thread holds is not
 * finished, so the caller cannot have moved on to another job; the add
 * (acquire) pairs with the caller's store of the queue word (release), so the
 * fields the thread reads are those of the chunk's generation. A worker that
 * looks late may take a chunk of a later job than the one it woke up for; it
 * simply runs that one. An add to an empty queue takes nothing (the next chunk
 * is past the end); it only raises the count past the end, which 16 bits have
 * room for, since each thread finds each queue empty at most once per job.
 *
 * When a thread finds every queue empty it reports how many chunks it ran in
 * its own report word (generation and count, again on its own line), and the
 * caller, after emptying the queues itself, adds up the reports of the current
 * generation until they account for every chunk. All of a thread's chunks in
 * one pass belong to one generation: the next job is published only when every
 * chunk of this one is reported, and this thread has not reported yet. (A
 * worker that woke late can make two passes over one generation; the second
 * adds to the report of the first.)
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
 *
 * Idle work (chapter 6): while a worker spins, it runs the idle task's pieces
 * instead of pause instructions, as long as the task says there is more, and
 * looks at its queue between pieces. The caller publishes the task's argument
 * with a release store; a worker that loads it (acquire) sees what it points
 * to. Its progress on that argument lives on a cache line of its own, which
 * no other thread reads.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    SPIN_LIMIT = 1 << 11,  /* pause instructions a waiter spins before it sleeps (tens of microseconds) */
    CHUNKS_PER_THREAD = 4, /* a few chunks each, so that a late thread's share is taken by the others */
    MAX_THREADS = 1024,    /* more are clamped to this */
    MAX_CHUNKS = 0x7fff,   /* chunk numbers live in 16 bits, with room for one failed take per thread */
};

/* A queue word: generation << 32 | end << 16 | next chunk to take. */
#define QUEUE(gen, end, next) ((uint64_t)(gen) << 32 | (uint64_t)(end) << 16 | (uint64_t)(next))
#define QUEUE_GEN(q) ((uint32_t)((q) >> 32))
#define QUEUE_END(q) ((int)(((q) >> 16) & 0xffff))
#define QUEUE_NEXT(q) ((int)((q)&0xffff))

/* A report word: generation << 32 | chunks run. */
#define REPORT(gen, count) ((uint64_t)(gen) << 32 | (uint64_t)(count))

/*
 * A line that one thread writes is taken away from every other thread's
 * cache, so each thread's queue and report, and the job's description (read
 * by all, written once per job), get cache lines of their own.
 */
#define CACHE_LINE 64
typedef struct {
    _Alignas(CACHE_LINE) _Atomic uint64_t queue; /* this thread's chunks of the current job */
    _Alignas(CACHE_LINE) _Atomic uint64_t report; /* what it ran, once it found nothing left */
    _Alignas(CACHE_LINE) const void *idle_arg;    /* the idle argument this worker works on, */
    size_t idle_done;                             /* its progress on it (the task's count), */
    int idle_more;                                /* and whether the task has more to do */
} Slot;

struct ThreadPool {
    Slot *slots; /* one per thread, the caller's first */
    /* The current job: written by the caller before it publishes the queues. */
    _Alignas(CACHE_LINE) ThreadTask task;
    void *arg;
    int n, chunks;
    _Alignas(CACHE_LINE) int n_threads; /* the caller and the workers */
    uint32_t gen;                       /* the caller's last generation (only the caller uses it) */
    pthread_t *workers;                 /* n_threads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* workers sleep here between jobs */
    pthread_cond_t done_cond; /* the caller sleeps here until every chunk is reported */
    atomic_int sleepers;      /* workers asleep (or about to be) on `wake` */
    atomic_int caller_sleeps; /* the caller is asleep (or about to be) on `done_cond` */
    atomic_int stop;          /* set with the last generation: the workers exit */
    _Atomic(IdleTask) idle_task;    /* chapter 6: what waiting workers do, */
    _Atomic(const void *) idle_arg; /* and on what (NULL: nothing) */
};

/** Run chunk @p chunk of the current job (the caller of this holds it, so the job's fields are stable). */
static void run_chunk(ThreadPool *p, int chunk, int thread) {
    int begin = (int)((long long)p->n * chunk / p->chunks), end = (int)((long long)p->n * (chunk + 1) / p->chunks);
    if (begin < end) p->task(p->arg, begin, end, thread);
}

/**
 * Take and run chunks, from this thread's own queue, then from the others',
 * until every queue is empty; then report. Returns 1 if this thread ran any.
 */
static int run_chunks(ThreadPool *p, int thread) {
    int ran = 0;
    uint32_t gen = 0;
    for (int k = 0; k < p->n_threads; k++) {
        _Atomic uint64_t *q = &p->slots[(thread + k) % p->n_threads].queue;
        uint64_t t = atomic_load_explicit(q, memory_order_relaxed);
        while (QUEUE_NEXT(t) < QUEUE_END(t)) { /* looks non-empty: try to take one */
            t = atomic_fetch_add_explicit(q, 1, memory_order_acq_rel);
            if (QUEUE_NEXT(t) >= QUEUE_END(t)) break; /* someone was faster */
            gen = QUEUE_GEN(t);
            run_chunk(p, QUEUE_NEXT(t), thread);
            ran++;
            t = atomic_load_explicit(q, memory_order_relaxed);
        }
    }
    if (ran) { /* only this thread writes its report; a second pass in one generation adds to the first */
        uint64_t r = atomic_load_explicit(&p->slots[thread].report, memory_order_relaxed);
        int before = QUEUE_GEN(r) == gen ? (int)(uint32_t)r : 0;
        atomic_store_explicit(&p->slots[thread].report, REPORT(gen, before + ran), memory_order_release);
    }
    return ran > 0;
}

/** A worker: run one piece of the idle task, if it has one to run; returns 1 if it did. */
static int idle_piece(ThreadPool *p, int thread) {
    Slot *s = &p->slots[thread];
    const void *arg = atomic_load_explicit(&p->idle_arg, memory_order_acquire);
    if (!arg) return 0;
    if (arg != s->idle_arg) { /* a new argument: start afresh */
        s->idle_arg = arg;
        s->idle_done = 0;
        s->idle_more = 1;
    }
    if (!s->idle_more) return 0;
    IdleTask task = atomic_load_explicit(&p->idle_task, memory_order_relaxed);
    s->idle_more = task(arg, thread, &s->idle_done);
    return 1;
}

/** A worker: wait until its queue holds a generation other than @p seen; return it. */
static uint32_t wait_for_job(ThreadPool *p, int thread, uint32_t seen) {
    _Atomic uint64_t *q = &p->slots[thread].queue;
    for (int i = 0; i < SPIN_LIMIT; i++) {
        uint32_t g = QUEUE_GEN(atomic_load_explicit(q, memory_order_acquire));
        if (g != seen) return g;
        if (!idle_piece(p, thread)) cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    full_fence(); /* announce, then look (see the top of this file) */
    uint32_t g;
    while ((g = QUEUE_GEN(atomic_load(q))) == seen) pthread_cond_wait(&p->wake, &p->lock);
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
        seen = wait_for_job(p, index, seen);
        if (atomic_load(&p->stop)) return NULL;
        if (run_chunks(p, index)) {
            full_fence(); /* report, then look for a sleeping caller */
            if (atomic_load(&p->caller_sleeps)) {
                pthread_mutex_lock(&p->lock);
                pthread_cond_signal(&p->done_cond); /* it counts again, and sleeps again if chunks are missing */
                pthread_mutex_unlock(&p->lock);
            }
        }
    }
}

/**
 * The caller: publish generation p->gen + 1 (the job's fields are written),
 * giving each of the first @p threads threads a contiguous share of the chunks.
 */
static void publish(ThreadPool *p, int threads) {
    uint32_t gen = ++p->gen;
    for (int i = 0; i < threads; i++) {
        int first = (int)((long long)p->chunks * i / threads), end = (int)((long long)p->chunks * (i + 1) / threads);
        atomic_store_explicit(&p->slots[i].queue, QUEUE(gen, end, first), memory_order_release);
    }
    full_fence(); /* publish, then look for sleepers */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
}

/** How many chunks of the current generation the threads have reported. */
static int reported(ThreadPool *p) {
    int sum = 0;
    for (int i = 0; i < p->n_threads; i++) {
        uint64_t r = atomic_load_explicit(&p->slots[i].report, memory_order_acquire);
        if (QUEUE_GEN(r) == p->gen) sum += (int)(uint32_t)r;
    }
    return sum;
}

/** The caller: wait until every chunk of the job is reported. */
static void wait_for_chunks(ThreadPool *p) {
    for (int i = 0; i < SPIN_LIMIT; i++) {
        if (reported(p) == p->chunks) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->caller_sleeps, 1);
    full_fence();
    while (reported(p) != p->chunks) pthread_cond_wait(&p->done_cond, &p->lock);
    atomic_store(&p->caller_sleeps, 0);
    pthread_mutex_unlock(&p->lock);
}

ThreadPool *threadpool_create(int n_threads) {
    if (n_threads <= 0) n_threads = online_cpus();
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    ThreadPool *p = aligned_alloc(CACHE_LINE, sizeof *p); /* sizeof is a multiple of CACHE_LINE */
    if (!p) fatal("out of memory for a thread pool");
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    p->slots = aligned_alloc(CACHE_LINE, sizeof(Slot) * (size_t)n_threads);
    if (!p->slots) fatal("out of memory for a thread pool");
    for (int i = 0; i < n_threads; i++) {
        atomic_init(&p->slots[i].queue, QUEUE(0, 0, 0));
        atomic_init(&p->slots[i].report, REPORT(0, 0));
        p->slots[i].idle_arg = NULL;
    }
    atomic_init(&p->idle_task, NULL);
    atomic_init(&p->idle_arg, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cond, NULL);
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

/**
 * How threadpool_for() cuts [0, n): the threads it wakes (the caller
 * included; 1 means it runs the task itself) and the chunks, a few per
 * thread and none smaller than min_per_thread.
 */
static void split(const ThreadPool *p, int n, int min_per_thread, int *threads, int *chunks) {
    if (min_per_thread < 1) min_per_thread = 1;
    *threads = n / min_per_thread < p->n_threads ? n / min_per_thread : p->n_threads;
    long long c = (long long)*threads * CHUNKS_PER_THREAD;
    if (c > n / min_per_thread) c = n / min_per_thread;
    if (c > MAX_CHUNKS) c = MAX_CHUNKS;
    *chunks = (int)c;
}

void threadpool_share(const ThreadPool *p, int n, int min_per_thread, int thread, int *begin, int *end) {
    int threads, chunks;
    *begin = *end = 0;
    if (n <= 0) return;
    split(p, n, min_per_thread, &threads, &chunks);
    if (threads <= 1) {
        if (thread == 0) *end = n;
        return;
    }
    if (thread >= threads) return;
    /* the chunks publish() puts in this thread's queue, as indices (run_chunk()) */
    long long first = (long long)chunks * thread / threads, last = (long long)chunks * (thread + 1) / threads;
    *begin = (int)(n * first / chunks);
    *end = (int)(n * last / chunks);
}

void threadpool_idle(ThreadPool *p, IdleTask task, const void *arg) {
    atomic_store_explicit(&p->idle_task, task, memory_order_relaxed);
    atomic_store_explicit(&p->idle_arg, arg, memory_order_release);
}

void threadpool_for(ThreadPool *p, int n, int min_per_thread, ThreadTask task, void *arg) {
    if (n <= 0) return;
    int threads, chunks;
    split(p, n, min_per_thread, &threads, &chunks);
    if (threads <= 1) { /* not worth a handoff */
        task(arg, 0, n, 0);
        return;
    }
    p->task = task;
    p->arg = arg;
    p->n = n;
    p->chunks = chunks;
    publish(p, threads); /* the other workers are not woken: their queues still hold an old generation */
    run_chunks(p, 0);
    wait_for_chunks(p);
}

void threadpool_destroy(ThreadPool *p) {
    if (!p) return;
    if (p->n_threads > 1) {
        atomic_store(&p->stop, 1);
        p->chunks = 0;
        publish(p, p->n_threads); /* a generation of no chunks for every worker: they see stop and exit */
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i - 1], NULL);
    }
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cond);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p->slots);
    free(p);
}

/**
 * @file threadpool.h
 * @brief A pool of worker threads and a parallel for-loop over an index range
 * (introduced by chapter 4; chapter 6 adds work for waiting workers, which chapters 4 and 5 never set, so they run as before).
 *
 * The workers are started once, when a model is opened, and then reused for
 * every matrix-vector product of every token: starting a thread costs tens
 * of microseconds, about as long as a whole small matmul takes, so a pool
 * that started threads per call would be slower than one thread.
 *
 * threadpool_for() cuts the range [0, n) into contiguous chunks, a few per
 * thread, and calls the task once per chunk. The calling thread works too.
 * Each thread first takes the chunks of its own share, then takes what is
 * left of the others' shares, so a thread that the system has descheduled
 * for a moment delays only the chunk it holds, and the call returns when
 * every chunk is done.
 * That return is the only synchronisation: one handoff (the workers learn
 * there is a job) and one barrier (the caller learns that all chunks are
 * finished) per call. Both spin for a few microseconds, which is all the gap
 * between two matmuls of a token takes, and only then sleep on a condition
 * variable, so idle workers cost no CPU between tokens.
 *
 * Each index is handled by exactly one thread, and what the task computes
 * for an index must depend only on the index (not on the chunk around it, nor
 * on the thread): then the results are bit-identical for any number of
 * threads.
 *
 * Chapter 6 adds work for waiting workers (threadpool_idle()): between two
 * jobs, while the caller runs the serial steps of a token, each worker can
 * fetch into its cache the weights of its own share of the next job
 * (threadpool_share()), so that memory keeps streaming while only one core
 * computes.
 */
#ifndef LLAMABOOK_THREADPOOL_H
#define LLAMABOOK_THREADPOOL_H

#include <stddef.h>

/**
 * A task: process the indices [begin, end) of the range. @p arg is the
 * pointer given to threadpool_for(); @p thread is the number of the thread
 * running it (0 = the caller, 1 .. n_threads - 1 the workers), for tasks that
 * keep per-thread scratch memory.
 */
typedef void (*ThreadTask)(void *arg, int begin, int end, int thread);

/** A pool of worker threads; opaque. */
typedef struct ThreadPool ThreadPool;

/**
 * A pool of @p n_threads threads in all, the caller included (so
 * n_threads - 1 workers are started); 0 or less means one per online CPU.
 * fatal() if a thread cannot be started.
 */
ThreadPool *threadpool_create(int n_threads);

/** How many threads the pool runs tasks on, the caller included (at least 1). */
int threadpool_threads(const ThreadPool *pool);

/**
 * Run @p task over [0, n) on the pool's threads and return when all of it is
 * done. No chunk is smaller than @p min_per_thread indices, and a range
 * smaller than 2 × min_per_thread runs on the calling thread alone, without
 * waking any worker, because for small work the handoff costs more than it
 * saves.
 * Must be called from one thread at a time (the one that created the pool).
 */
void threadpool_for(ThreadPool *pool, int n, int min_per_thread, ThreadTask task, void *arg);

/**
 * The indices [*begin, *end) that thread @p thread takes first (its own
 * share) in a threadpool_for(pool, n, min_per_thread, ...): empty for a
 * thread that the call would not wake. Other threads may still take some of
 * them, and this thread some of theirs, when one finishes early.
 * (Chapter 6.)
 */
void threadpool_share(const ThreadPool *pool, int n, int min_per_thread, int thread, int *begin, int *end);

/**
 * Preparation for a coming job, done by workers while they wait for it: one
 * small piece per call. @p arg is the pointer given to threadpool_idle();
 * @p thread the worker's number; @p done this worker's progress on @p arg,
 * 0 on the first call for that arg, kept by the pool between calls and
 * advanced by the task. Returns 0 when nothing is left to do for @p arg.
 * A piece must be short (a microsecond or less): the worker checks for a new
 * job only between pieces. The task must not write anything that other
 * threads read: it may only warm caches. (Chapter 6.)
 */
typedef int (*IdleTask)(const void *arg, int thread, size_t *done);

/**
 * From now on, workers that wait for a job run @p task on @p arg, piece by
 * piece, until it returns 0 or the job comes; @p arg NULL stops it. Each
 * worker starts afresh whenever @p arg changes. @p arg must stay valid until
 * the pool is destroyed (a late worker may still read an older one), and
 * every call must pass the same @p task. From the thread that created the
 * pool only. (Chapter 6.)
 */
void threadpool_idle(ThreadPool *pool, IdleTask task, const void *arg);

/** Stop and join the workers and free the pool; NULL is allowed. */
void threadpool_destroy(ThreadPool *pool);

#endif

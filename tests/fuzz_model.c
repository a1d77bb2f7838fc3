/**
 * @file fuzz_model.c
 * @brief libFuzzer target for a GGUF chapter's whole setup: the bytes are a
 * model file, and everything the driver does before and during a run happens
 * to it.
 *
 *     make fuzz FUZZ_TARGET=model FUZZ_TIME=300
 *
 * Each input is written to an in-memory file (memfd), and the file is run as
 * src/main.c runs a model: model_open() on its path with one thread (the
 * hyperparameters, the weights and the vocabulary), model_config(),
 * model_vocab(), the tokenizer on a short prompt, model_forward() for the
 * first three positions (so that the KV cache is written and read), then
 * model_close(). Bad input must end in one fatal() line, never in a crash, an
 * out-of-bounds read, undefined behaviour or a leak; a model that opens must
 * survive the forward pass.
 *
 * The Makefile builds it with `clang -fsanitize=fuzzer,address,undefined`
 * from chapter 5 (FUZZ_CHAPTER=06 picks another GGUF chapter) and the files
 * of src/ it uses. Seeds: complete tiny models (tools/mksynth at dim 16-32,
 * one or two layers, vocabulary 260, context 8, converted by
 * tools/gguf_convert to F32, F16, Q8_0 and Q4_0: 26-50 KB each, under the
 * target's -max_len of 64 KiB), which reach the forward pass, and the
 * malformed files of tests/unit_gguf.c. So the forward pass runs the F32,
 * F16, Q8_0 and Q4_0 kernels: the converter writes no Q5_0 or K-quants, a
 * K-quant row needs 256 weights (no tiny shape has them), and the smallest
 * shared file with K-quants is 300 KB.
 *
 * @section fuzz_model_fatal fatal() returns to the harness
 * fatal() normally exits. fatal_set_hook() makes it call on_fatal() instead,
 * which longjmp()s back into LLVMFuzzerTestOneInput(). Whatever the code
 * under test had allocated or mapped at that moment is then unreachable: in
 * the program exit(1) would release it, so those are not leaks of the code
 * but of the jump. To keep LeakSanitizer useful anyway, the harness is linked
 * with `-Wl,--wrap=` for malloc, calloc, realloc, aligned_alloc, free, mmap
 * and munmap: while an input runs, every block and mapping the fuzzing thread
 * takes is recorded (and dropped again when it is released), and after a
 * longjmp the harness releases exactly what is left, as exit(1) would. On
 * the success path it releases nothing, so a block that model_close() forgets
 * is reported as a leak (libFuzzer counts mallocs against frees per input and
 * runs LeakSanitizer when they differ); so would be, after a longjmp, a block
 * taken past the wrappers (inside libc, e.g. by strdup), which the code under
 * test does not use.
 * Only the thread that runs the input records: libFuzzer's own threads (the
 * RSS monitor) allocate through the same wrappers. With one thread the
 * chapter's pool starts no workers, so no thread outlives a longjmp.
 *
 * Run with -close_fd_mask=2: every rejected input prints its `error:` line on
 * stderr, which would bury libFuzzer's output; libFuzzer then keeps its own
 * reports (and the sanitizers') on a copy of the original stderr. At exit the
 * harness prints, on that same copy, how many inputs reached the forward pass:
 *
 *     fuzz_model: 621817 inputs: 100790 ran the forward pass, 521027 stopped in fatal()
 */
#define _GNU_SOURCE /* memfd_create */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model.h"
#include "tokenizer.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------------ */
/* What the input took: the record behind the --wrap'ed allocators           */
/* ------------------------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void __real_free(void *p);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void __wrap_free(void *p);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);

/** A live block (len 0) or mapping (len > 0) taken by the input. */
typedef struct {
    void *p;
    size_t len;
} Taken;

static Taken *taken;                 /* (cap_taken) live entries, in no order */
static size_t n_taken, cap_taken;
static _Thread_local int recording; /* 1 on the fuzzing thread while an input runs */

static void note(void *p, size_t len) {
    if (!recording || !p) return;
    if (n_taken == cap_taken) {
        cap_taken = cap_taken ? 2 * cap_taken : 4096;
        taken = __real_realloc(taken, cap_taken * sizeof *taken);
        if (!taken) abort();
    }
    taken[n_taken++] = (Taken){p, len};
}

static void forget(const void *p) {
    for (size_t i = n_taken; i-- > 0;)
        if (taken[i].p == p) {
            taken[i] = taken[--n_taken];
            return;
        }
}

void *__wrap_malloc(size_t n) {
    void *p = __real_malloc(n);
    note(p, 0);
    return p;
}

void *__wrap_calloc(size_t count, size_t size) {
    void *p = __real_calloc(count, size);
    note(p, 0);
    return p;
}

void *__wrap_realloc(void *old, size_t n) {
    void *p = __real_realloc(old, n);
    if (p || n == 0) forget(old); /* a failed realloc leaves the old block alive */
    note(p, 0);
    return p;
}

void *__wrap_aligned_alloc(size_t align, size_t n) {
    void *p = __real_aligned_alloc(align, n);
    note(p, 0);
    return p;
}

void __wrap_free(void *p) {
    if (p) forget(p);
    __real_free(p);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    void *p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) note(p, len);
    return p;
}

int __wrap_munmap(void *addr, size_t len) {
    forget(addr); /* the chapters unmap whole mappings only */
    return __real_munmap(addr, len);
}

/**
 * After a longjmp out of fatal(): release what exit(1) would have. A mapping
 * is a file that map_file() mapped (nothing else here calls mmap), so it goes
 * back through unmap_file(), which also drops it from util.c's table of
 * watched mappings (its SIGBUS handler's); the record is emptied first, so
 * that the frees and unmaps below find nothing to forget in it.
 */
static void release_taken(void) {
    size_t n = n_taken;
    n_taken = 0;
    for (size_t i = 0; i < n; i++) {
        if (taken[i].len) {
            MappedFile f = {taken[i].p, taken[i].len};
            unmap_file(&f);
        } else {
            __real_free(taken[i].p);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The harness                                                               */
/* ------------------------------------------------------------------------ */

static jmp_buf on_fatal_jump;
static LB_NORETURN void on_fatal(void) { longjmp(on_fatal_jump, 1); }

static int memfd = -1;
static char model_path[64];  /* /proc/self/fd/N: a path model_open() can open() */
static FILE *report;         /* the original stderr, kept before -close_fd_mask=2 closes it */
static unsigned long n_inputs, n_forward, n_fatal;

static void print_counts(void) {
    fprintf(report, "fuzz_model: %lu inputs: %lu ran the forward pass, %lu stopped in fatal()\n", n_inputs,
            n_forward, n_fatal);
    fflush(report);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    memfd = memfd_create("fuzz_model.gguf", 0);
    if (memfd < 0) {
        perror("fuzz_model: memfd_create");
        abort();
    }
    snprintf(model_path, sizeof model_path, "/proc/self/fd/%d", memfd);
    int fd = dup(2);
    report = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!report) report = stderr;
    atexit(print_counts);
    fatal_set_hook(on_fatal);
    return 0;
}

/** The work on a model that opened: what the driver does before it samples. */
static void run_model(Model *m) {
    const ModelConfig *c = model_config(m);
    if (c->vocab_size < 1 || c->seq_len < 1 || c->dim < 1) abort(); /* model_open() promised a runnable shape */
    /* A GGUF file without tokenizer.ggml.* opens too (the driver then wants a tokenizer file) */
    const Vocab *v = model_vocab(m);
    if (v && v->n_tokens != c->vocab_size) abort(); /* the chapter checks that they agree */
    int fallback[3] = {0, 1, 2}, n = 0, *ids = NULL;
    char err[256] = "";
    if (v) {
        ids = vocab_encode(v, "Once upon a <s> t\xc3\xa9me\n", 1, &n, err, sizeof err);
        if (!ids && err[0] == 0) abort(); /* a refusal says why */
        for (int i = 0; ids && i < n; i++)
            if (ids[i] < 0 || ids[i] >= c->vocab_size) abort();
    }
    const int *run = ids;
    if (!ids || n == 0) { /* no vocabulary, or one that cannot spell the prompt: its first ids */
        run = fallback;
        n = c->vocab_size < 3 ? c->vocab_size : 3;
    }
    if (n > 3) n = 3;
    if (n > c->seq_len) n = c->seq_len;
    volatile float sink = 0;
    for (int pos = 1; pos <= n; pos++) {
        const float *logits = model_forward(m, run, pos);
        sink += logits[0] + logits[c->vocab_size - 1]; /* the whole row is the caller's to read */
    }
    free(ids);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* map_file() installs util.c's SIGBUS handler (a file that shrinks while mapped) over
     * libFuzzer's; ours never shrinks, so a SIGBUS here is a bug, and libFuzzer's handler,
     * put back after every input, reports it and saves the input */
    static struct sigaction fuzzer_sigbus;
    if (n_inputs++ == 0) sigaction(SIGBUS, NULL, &fuzzer_sigbus);
    if (ftruncate(memfd, 0) != 0) abort();
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(memfd, data + done, size - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    n_taken = 0;
    recording = 1;
    if (setjmp(on_fatal_jump) != 0) {
        recording = 0;
        release_taken();
        n_fatal++;
        sigaction(SIGBUS, &fuzzer_sigbus, NULL);
        return 0;
    }
    ModelOptions opts = {.n_threads = 1};
    Model *m = model_open(model_path, &opts);
    run_model(m);
    n_forward++;
    model_close(m);
    recording = 0;
    n_taken = 0; /* success: leave what is left to LeakSanitizer */
    sigaction(SIGBUS, &fuzzer_sigbus, NULL);
    return 0;
}

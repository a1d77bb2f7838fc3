/**
 * @file util.c
 * @brief Implementation of util.h (shared by every chapter and tool).
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static LB_NORETURN void (*fatal_hook)(void);

void fatal_set_hook(LB_NORETURN void (*hook)(void)) { fatal_hook = hook; }

void fatal(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (fatal_hook) fatal_hook();
    exit(1);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory (asked for %zu bytes)", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fatal("out of memory (asked for %zu x %zu bytes)", count, size);
    return p;
}

size_t checked_mul(size_t count, size_t size, const char *what) {
    if (size != 0 && count > SIZE_MAX / size) fatal("%s: size overflows", what);
    return count * size;
}

MappedFile map_file(const char *path) {
    MappedFile f = {NULL, 0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) fatal("%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) fatal("%s: not a regular file", path);
    f.size = (size_t)st.st_size;
    if (f.size > 0) {
        void *p = mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) fatal("%s: cannot map: %s", path, strerror(errno));
        f.data = p;
    }
    close(fd);
    return f;
}

void unmap_file(MappedFile *f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

void release_mapped_range(const MappedFile *f, size_t offset, size_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !f->data || offset >= f->size) return;
    if (len > f->size - offset) len = f->size - offset;
    /* Only whole pages strictly inside the range may go. */
    uintptr_t start = (uintptr_t)(f->data + offset);
    uintptr_t end = start + len;
    start = (start + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    end &= ~((uintptr_t)page - 1);
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

long find_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (size_t)ru.ru_maxrss; /* macOS reports bytes */
#else
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
#endif
}

int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int parse_long(const char *s, long *out) {
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int parse_float(const char *s, float *out) {
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

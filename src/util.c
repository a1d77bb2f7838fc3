/**
 * @file util.c
 * @brief Implementation of util.h (shared by every chapter and tool).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* O_TMPFILE: an output file with no name until it is complete */
#endif
#include "util.h"

#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void remove_pending_output(void);

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
    remove_pending_output();
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

/* ------------------------------------------------------------------------ */
/* Signals: what a fault or a kill must not leave behind.                   */

/*
 * Three things can end a run from outside: a signal that kills (SIGTERM,
 * SIGHUP, a second Ctrl-C, SIGPIPE), a mapped file that shrinks under us
 * (SIGBUS on the next read of a page that is gone), and Ctrl-C, which the
 * driver turns into a clean stop. The handlers only use async-signal-safe
 * calls (unlink, write, _exit, signal, raise) on data set up beforehand.
 */
static char pending_output[PATH_MAX + 64]; /* temporary name to unlink, "" if none */
static volatile sig_atomic_t interrupt_armed, interrupt_seen;

static void remove_pending_output(void) {
    if (pending_output[0]) unlink(pending_output);
    pending_output[0] = 0;
}

static void on_fatal_signal(int sig) {
    if (sig == SIGINT && interrupt_armed && !interrupt_seen) {
        interrupt_seen = 1; /* the driver stops at the next token; a second Ctrl-C kills */
        return;
    }
    remove_pending_output();
    signal(sig, SIG_DFL);
    raise(sig);
}

/** Install on_fatal_signal() for the signals that kill, unless the caller ignores them (nohup). */
static void install_kill_handlers(void) {
    static int done;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    if (done) return;
    done = 1;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

void interrupt_arm(void) {
    install_kill_handlers();
    interrupt_armed = 1;
}

int interrupted(void) { return interrupt_seen; }

void interrupt_reset(void) { interrupt_seen = 0; }

/* The mapped files, for the SIGBUS handler: a read of a page past the end of a
 * file that was truncated after we mapped it raises SIGBUS, not an error code. */
enum { MAX_MAPPINGS = 16 };
static struct {
    const uint8_t *data;
    size_t size;
    char path[256];
} mappings[MAX_MAPPINGS];

static void write_str(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_bus_error(int sig, siginfo_t *info, void *context) {
    (void)context;
    const uint8_t *addr = info->si_addr;
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        if (mappings[i].data && addr >= mappings[i].data && addr < mappings[i].data + mappings[i].size) {
            /* Several threads may fault at once: one speaks, the others wait for its _exit. */
            static atomic_flag speaking = ATOMIC_FLAG_INIT;
            if (atomic_flag_test_and_set(&speaking))
                for (;;) pause();
            write_str("error: ");
            write_str(mappings[i].path);
            write_str(": the file shrank or changed while in use (bus error reading it)\n");
            remove_pending_output();
            _exit(1);
        }
    }
    remove_pending_output();
    signal(sig, SIG_DFL); /* not one of our files: a real fault; returning re-runs it */
}

static void watch_mapping(const uint8_t *data, size_t size, const char *path) {
    static int installed;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_bus_error;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
        installed = 1;
    }
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        if (mappings[i].data) continue;
        size_t n = strlen(path);
        if (n >= sizeof mappings[i].path) path += n - (sizeof mappings[i].path - 1); /* keep the end */
        memcpy(mappings[i].path, path, strlen(path) + 1);
        mappings[i].size = size;
        mappings[i].data = data;
        return;
    }
}

static void unwatch_mapping(const uint8_t *data) {
    for (int i = 0; i < MAX_MAPPINGS; i++)
        if (mappings[i].data == data) mappings[i].data = NULL;
}

/* ------------------------------------------------------------------------ */
/* Input files                                                              */

MappedFile map_file(const char *path) {
    MappedFile f = {NULL, 0};
    /* O_NONBLOCK: opening a named pipe (or a tty) must not wait for a writer;
     * the type check below refuses it. Regular files ignore the flag. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) fatal("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) fatal("%s: cannot stat: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) fatal("%s: is a folder, not a file", path);
    if (!S_ISREG(st.st_mode)) fatal("%s: not a regular file (a pipe or a device cannot be mapped)", path);
    if ((uint64_t)st.st_size > SIZE_MAX) fatal("%s: too large to map", path);
    f.size = (size_t)st.st_size;
    if (f.size > 0) {
        void *p = mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) fatal("%s: cannot map: %s", path, strerror(errno));
        f.data = p;
        watch_mapping(f.data, f.size, path);
    }
    close(fd);
    return f;
}

void unmap_file(MappedFile *f) {
    if (f->data) {
        unwatch_mapping(f->data);
        munmap((void *)f->data, f->size);
    }
    f->data = NULL;
    f->size = 0;
}

int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ------------------------------------------------------------------------ */
/* Output files                                                             */

/*
 * The rule for every file we write: never replace anything but a regular
 * file, never leave a partial file under the final name, and never leave a
 * temporary behind. The bytes go to a file with no name (Linux's O_TMPFILE)
 * or, where that is not available, to a new name in the same folder created
 * with O_EXCL, so that no existing file, link or device is ever opened for
 * writing. Only a complete file is renamed over the final name, an atomic
 * step: a reader sees the old file or the new one.
 */
static const char *refusal(const char *path, int *err) {
    struct stat st;
    *err = 0;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) *err = errno;
        return NULL;
    }
    if (S_ISLNK(st.st_mode)) return "is a symbolic link";
    if (S_ISDIR(st.st_mode)) return "is a folder";
    if (S_ISFIFO(st.st_mode)) return "is a named pipe";
    if (S_ISSOCK(st.st_mode)) return "is a socket";
    if (!S_ISREG(st.st_mode)) return "is a device";
    return NULL;
}

static void refuse_if_not_regular(const char *path) {
    int err;
    const char *why = refusal(path, &err);
    if (why) fatal("%s: %s; refusing to replace it", path, why);
    if (err) fatal("%s: cannot create: %s", path, strerror(err));
}

/** A fresh name beside @p path into pending_output; 0, or -1 if the path is too long. */
static int next_temporary_name(const char *path) {
    static unsigned counter;
    int n = snprintf(pending_output, sizeof pending_output, "%s.tmp%ld.%u", path, (long)getpid(), counter++);
    if (n < 0 || (size_t)n >= sizeof pending_output) {
        pending_output[0] = 0;
        return -1;
    }
    return 0;
}

/** The folder part of @p path ("." for a bare name); -1 if it does not fit. */
static int folder_of(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (len >= size) return -1;
    memcpy(dir, !slash ? "." : path, len);
    dir[len] = 0;
    return 0;
}

OutputFile output_create(const char *path) {
    OutputFile o = {NULL, path, 0};
    install_kill_handlers();
    signal(SIGXFSZ, SIG_IGN); /* over the file-size limit: write() fails with EFBIG, we say so */
    refuse_if_not_regular(path);
    int fd = -1;
#if defined(O_TMPFILE)
    char dir[PATH_MAX];
    /* LLAMABOOK_NO_TMPFILE=1: take the named way below, as on macOS, so the tests can check it here too */
    const char *no_tmpfile = getenv("LLAMABOOK_NO_TMPFILE");
    if ((!no_tmpfile || strcmp(no_tmpfile, "1") != 0) && folder_of(path, dir, sizeof dir) == 0 &&
        access("/proc/self/fd", X_OK) == 0) {
        /* /proc/self/fd is how output_commit() names the file later */
        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            fatal("%s: cannot create: %s", path, strerror(errno));
        o.unnamed = fd >= 0; /* else: a file system without O_TMPFILE, use a name */
    }
#endif
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        if (next_temporary_name(path) != 0) fatal("%s: path too long", path);
        fd = open(pending_output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd < 0 && errno != EEXIST) {
            int e = errno;
            pending_output[0] = 0;
            fatal("%s: cannot create: %s", path, strerror(e));
        }
    }
    if (fd < 0) fatal("%s: cannot create a temporary file beside it", path);
    o.fp = fdopen(fd, "wb");
    if (!o.fp) fatal("%s: cannot create: %s", path, strerror(errno));
    return o;
}

void output_write(OutputFile *o, const void *data, size_t size) {
    if (size && fwrite(data, 1, size, o->fp) != size) {
        int e = errno;
        output_discard(o);
        fatal("%s: cannot write: %s", o->path, strerror(e ? e : EIO));
    }
}

void output_discard(OutputFile *o) {
    if (o->fp) fclose(o->fp);
    o->fp = NULL;
    remove_pending_output();
}

void output_commit(OutputFile *o) {
    if (fflush(o->fp) != 0 || ferror(o->fp)) {
        int e = errno;
        output_discard(o);
        fatal("%s: cannot write: %s", o->path, strerror(e ? e : EIO));
    }
    refuse_if_not_regular(o->path); /* again: it may have appeared while we wrote */
    if (o->unnamed) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fileno(o->fp));
        /* Give the file a name: the final one if it is free, else a temporary
         * one that is renamed over the old file. */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) == 0) {
            output_discard(o);
            return;
        }
        int linked = 0;
        for (int tries = 0; !linked && tries < 100; tries++) {
            if (next_temporary_name(o->path) != 0) break;
            linked = linkat(AT_FDCWD, proc, AT_FDCWD, pending_output, AT_SYMLINK_FOLLOW) == 0;
            if (!linked && errno != EEXIST) break;
        }
        if (!linked) {
            int e = errno;
            pending_output[0] = 0;
            output_discard(o);
            fatal("%s: cannot write: %s", o->path, strerror(e));
        }
    }
    if (fclose(o->fp) != 0) {
        int e = errno;
        o->fp = NULL;
        remove_pending_output();
        fatal("%s: cannot write: %s", o->path, strerror(e));
    }
    o->fp = NULL;
    if (rename(pending_output, o->path) != 0) {
        int e = errno;
        remove_pending_output();
        fatal("%s: cannot write: %s", o->path, strerror(e));
    }
    pending_output[0] = 0;
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
#if defined(__linux__)
    /* The CPUs this process may run on (taskset, a container's cpuset), which
     * can be fewer than the machine has online. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
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
    /* Through double: strtof() reports ERANGE for a tiny value such as 1e-38,
     * which is a fine (subnormal) float; only a value beyond FLT_MAX is junk. */
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || fabs(v) > FLT_MAX) return -1;
    *out = (float)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Escapes in prompts, as llama.cpp's -e reads them.                        */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/** The byte that the escape \\c stands for, or -1 when \\c is not one of the simple escapes. */
static int simple_escape(char c) {
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case '\'': return '\'';
    case '"': return '"';
    case '\\': return '\\';
    default: return -1;
    }
}

int process_escapes(char *s, char *err, size_t err_len) {
    char *out = s;
    for (const char *in = s; *in; in++) {
        if (in[0] != '\\' || in[1] == '\0') { /* a lone backslash at the end stays */
            *out++ = *in;
            continue;
        }
        int byte = simple_escape(in[1]);
        if (byte >= 0) {
            *out++ = (char)byte;
            in++;
        } else if (in[1] == 'x' && hex_digit(in[2]) >= 0 && hex_digit(in[3]) >= 0) {
            byte = hex_digit(in[2]) * 16 + hex_digit(in[3]);
            if (byte == 0) {
                if (err) snprintf(err, err_len, "\\x00 would end the text there (a NUL byte)");
                return -1;
            }
            *out++ = (char)byte;
            in += 3;
        } else { /* not an escape: the backslash and the character after it stay */
            *out++ = in[0];
            *out++ = in[1];
            in++;
        }
    }
    *out = '\0';
    return 0;
}

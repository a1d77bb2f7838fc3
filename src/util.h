/**
 * @file util.h
 * @brief Small helpers every chapter and tool shares: fatal errors, checked
 * allocation, read-only file mappings, a clock and the peak-memory reading.
 */
#ifndef LLAMABOOK_UTIL_H
#define LLAMABOOK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define LB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LB_NORETURN __attribute__((noreturn))
#else
#define LB_PRINTF(a, b)
#define LB_NORETURN
#endif

/**
 * Print `error: <message>` as one line on stderr and exit with status 1.
 * Every "bad input" path of the book ends here, so that a wrong file or flag
 * never crashes, hangs or leaves a partial output file behind.
 */
LB_NORETURN void fatal(const char *fmt, ...) LB_PRINTF(1, 2);

/**
 * Run @p hook inside fatal(), after the message and instead of exit(1); the
 * hook must not return (a test harness longjmp()s back to itself). NULL
 * restores exit(1). Only the fuzzers use it: the programs always exit.
 */
void fatal_set_hook(LB_NORETURN void (*hook)(void));

/** malloc/calloc that call fatal() instead of returning NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);

/** count * size, or fatal() naming @p what if the product overflows size_t. */
size_t checked_mul(size_t count, size_t size, const char *what);

/** A whole file mapped read-only into memory. */
typedef struct {
    const uint8_t *data; /**< first byte of the file (NULL for an empty file) */
    size_t size;         /**< file size in bytes */
} MappedFile;

/**
 * Map @p path read-only; fatal() with the file's name if it cannot be opened
 * or is not a regular file (a named pipe is refused at once, never waited on).
 * If the file shrinks while it is mapped, the next read of a lost page ends
 * the program with one `error:` line naming the file and status 1, instead of
 * a silent SIGBUS.
 */
MappedFile map_file(const char *path);
void unmap_file(MappedFile *f);

/** 1 if @p path names a regular file (following links); never opens it. */
int is_regular_file(const char *path);

/**
 * A file being written. Everything the book writes goes through these calls:
 * output_create() refuses to replace anything but a regular file (a link, a
 * device, a pipe, a folder), writes to a file nobody else can see, and
 * output_commit() renames the complete file over @p path in one atomic step.
 * Every failure is one `error:` line with the reason (strerror) and removes
 * the temporary file, as do fatal() and the signals that kill (SIGTERM,
 * SIGINT, SIGHUP, SIGPIPE); on Linux the temporary file has no name at all
 * until it is complete, so even SIGKILL leaves nothing behind.
 */
typedef struct {
    FILE *fp;         /**< write through output_write() (or fwrite + check at commit) */
    const char *path; /**< the final name */
    int unnamed;      /**< 1: an O_TMPFILE file, named only by output_commit() */
} OutputFile;

OutputFile output_create(const char *path);
void output_write(OutputFile *o, const void *data, size_t size);
void output_commit(OutputFile *o);
/** Drop the file: nothing appears under its name. */
void output_discard(OutputFile *o);

/**
 * From now on the first Ctrl-C (SIGINT) only sets a flag that interrupted()
 * reports, so that the driver stops at the next token, cleanly; a second one
 * kills as usual.
 */
void interrupt_arm(void);
int interrupted(void);

/**
 * Forget a Ctrl-C that interrupted() reported, so that the next one is again a
 * clean stop and only a second one in a row kills: the chat's Ctrl-C ends a
 * reply, not the conversation.
 */
void interrupt_reset(void);

/**
 * Tell the kernel we are done with the mapped bytes [offset, offset+len): they
 * may leave the resident set (chapter 3 uses it to quantize a file larger than
 * the memory it wants to keep).
 */
void release_mapped_range(const MappedFile *f, size_t offset, size_t len);

/**
 * Index of the first element of x[0..n) that is NaN or infinite, or -1 when
 * all are finite: the core of --check-tensors (every chapter's loader calls it
 * on a weight's values, dequantized first where they are quantized).
 */
long find_nonfinite(const float *x, size_t n);

/** Seconds on a monotonic clock. */
double now_seconds(void);

/** Peak resident set size of this process, in bytes. */
size_t peak_rss_bytes(void);

/** Number of CPUs this process may use (its affinity mask on Linux, else the CPUs online). */
int online_cpus(void);

/**
 * Turn the escapes llama.cpp's -e understands into the bytes they stand for,
 * in @p s, in place (the text only shrinks): \\n \\r \\t \\' \\" \\\\ and \\xNN
 * (exactly two hex digits). Any other backslash is kept with the character
 * after it, as llama.cpp keeps it. Returns 0, or -1 with a message in @p err
 * when an escape would put a NUL byte (\\x00) into a C string.
 */
int process_escapes(char *s, char *err, size_t err_len);

/** Parse a whole decimal integer / float; 0 on success, -1 on any junk. */
int parse_long(const char *s, long *out);
int parse_float(const char *s, float *out);

#endif

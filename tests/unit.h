/**
 * @file unit.h
 * @brief A tiny harness for the C unit tests in tests/unit_*.c.
 *
 * Each test program prints one line per check, `ok    NAME`,
 * `FAIL  NAME: why` or `skip  NAME: why` (the format of tests/lib.sh), and
 * exits with status 1 if any check failed. tests/t_unit.sh runs every such
 * program and counts the lines.
 */
#ifndef LLAMABOOK_UNIT_H
#define LLAMABOOK_UNIT_H

#include <stdio.h>

static int unit_failures;

/** Record one check: @p cond true passes, else prints the formatted reason. */
#define CHECK(name, cond, ...)                                   \
    do {                                                         \
        if (cond) {                                              \
            printf("ok    %s\n", name);                          \
        } else {                                                 \
            unit_failures++;                                     \
            printf("FAIL  %s: ", name);                          \
            printf(__VA_ARGS__);                                 \
            printf("\n");                                        \
        }                                                        \
    } while (0)

#define SKIP(name, why) printf("skip  %s: %s\n", name, why)

/** This process's peak of address space (VmPeak, Linux), in KiB; -1 where /proc does not say
 * (for the checks that a file's claims do not turn into allocations). */
static inline long vm_peak_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmPeak: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

#define UNIT_EXIT() (fflush(stdout), unit_failures ? 1 : 0)

#endif

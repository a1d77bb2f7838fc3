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

#define UNIT_EXIT() (fflush(stdout), unit_failures ? 1 : 0)

#endif

/**
 * @file slots.h
 * @brief The server's decisions, without sockets or threads (chapter 9): which slot a request
 * takes, how the rows of a step are shared out, and how much of a reply a stream may send.
 *
 * src/server.c calls these between the model's steps. They are pure functions of their
 * arguments, so tests/unit_slots.c and the exercises' probe can call them on small cases.
 */
#ifndef LLAMABOOK_SLOTS_H
#define LLAMABOOK_SLOTS_H

#include <stddef.h>

/** What the scheduler needs to know of one slot. */
typedef struct {
    const int *ids;   /**< (n_cached) the tokens its KV cache holds, in order */
    int n_cached;
    double last_used; /**< when its last request ended (seconds; smaller = longer ago) */
    int busy;         /**< it serves a request now */
} SlotView;

/** How many leading tokens of @p a and @p b agree. */
int common_prefix(const int *a, int na, const int *b, int nb);

/**
 * The free slot a request with @p prompt should take: the one whose cache holds the longest
 * prefix of the prompt (among equals, the one used longest ago) when that prefix is at least
 * half the prompt, as a conversation's next turn finds its history; otherwise the free slot used
 * longest ago. -1 when every slot is busy.
 */
int choose_slot(const SlotView *slots, int n_slots, const int *prompt, int n_prompt);

/**
 * Share one step's @p budget rows among the busy slots: rows[i] = how many of slot i's
 * @p wanted[i] new positions go into this step (0 for a slot that wants none). A slot that is
 * replying (@p replying[i]: it wants exactly its one sampled token) comes first; the rest of the
 * budget goes to the slots still reading a prompt, in slot order. Returns the rows used.
 */
int share_rows(const int *wanted, const int *replying, int n_slots, int budget, int *rows);

/**
 * How many leading bytes of a reply's @p text (@p len bytes so far) a stream may send now: not
 * the bytes at the end that could still grow into one of the @p n_stops stop strings (they
 * would be cut if they did), and not the first bytes of a UTF-8 character whose last bytes
 * have not come yet (a token may end in the middle of one).
 */
size_t releasable_bytes(const char *text, size_t len, const char *const *stops, int n_stops);

/** Where the first of the stop strings occurs in @p text at or after @p from (or ends after it); len when none. */
size_t find_stop(const char *text, size_t len, size_t from, const char *const *stops, int n_stops);

#endif

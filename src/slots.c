/**
 * @file slots.c
 * @brief The server's decisions (chapter 9): slot choice, the rows of a step, what a stream may send.
 *
 * Each rule is a few lines, and each is what makes a server feel right or wrong to its users:
 *  - choose_slot(): a conversation's next turn should land where its history already is, so
 *    that only the new message is computed (prefix reuse), and a new conversation should not
 *    push out a history that is coming back;
 *  - share_rows(): the users already reading a reply should get their next token every step,
 *    whatever a newcomer's prompt costs (continuous batching with a row budget);
 *  - releasable_bytes(): a stream must never send what a stop string would take back, nor half
 *    a character.
 */
#include "slots.h"

#include <string.h>

int common_prefix(const int *a, int na, const int *b, int nb) {
    int n = 0;
    while (n < na && n < nb && a[n] == b[n]) n++;
    return n;
}

int choose_slot(const SlotView *slots, int n_slots, const int *prompt, int n_prompt) {
    /* EXERCISE 9.2 BEGIN: the slot with the longest cached prefix
     * Task: Return the index of the free slot (busy == 0) whose cached tokens share the
     *   longest prefix with the prompt (common_prefix() of slots[i].ids, slots[i].n_cached
     *   and the prompt), the one with the smallest last_used among equally long ones, if
     *   that prefix is at least half the prompt (2 * prefix >= n_prompt). Otherwise return
     *   the free slot with the smallest last_used, whatever its cache holds. -1 when every
     *   slot is busy.
     * Contract: n_slots >= 1, n_prompt >= 1; a slot's ids may be NULL when n_cached is 0.
     * Hint: A new conversation shares only the template's first tokens with any cache: it
     *   should not take the slot of a conversation that may come back for its next turn,
     *   but the cache least likely to be wanted again (an empty slot's last_used is 0).
     * Graded: The probe (tools/grade/probe_09.c) calls it on small cases: a follow-up turn
     *   must find its own slot, ties must go to the least recently used one, a short shared
     *   prefix must not count, busy slots must never be chosen.
     * Stub: (void)slots; (void)n_slots; (void)prompt; (void)n_prompt; return -1;
     */
    int best = -1, best_len = -1, oldest = -1;
    for (int i = 0; i < n_slots; i++) {
        if (slots[i].busy) continue;
        int len = common_prefix(slots[i].ids, slots[i].n_cached, prompt, n_prompt);
        if (len > best_len || (len == best_len && slots[i].last_used < slots[best].last_used)) best = i, best_len = len;
        if (oldest < 0 || slots[i].last_used < slots[oldest].last_used) oldest = i;
    }
    return best >= 0 && 2 * (long)best_len >= n_prompt ? best : oldest;
    /* EXERCISE 9.2 END */
}

int share_rows(const int *wanted, const int *replying, int n_slots, int budget, int *rows) {
    int used = 0;
    for (int pass = 0; pass < 2; pass++) /* the replying slots first: one row each */
        for (int i = 0; i < n_slots; i++) {
            if (pass == 0) rows[i] = 0;
            if (!!replying[i] != (pass == 0) || wanted[i] <= 0) continue;
            int r = wanted[i] < budget - used ? wanted[i] : budget - used;
            rows[i] = r;
            used += r;
        }
    return used;
}

/** Bytes at the end of @p text that begin a UTF-8 character whose other bytes have not come (0 to 3). */
static size_t incomplete_character(const char *text, size_t len) {
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)text[len - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: its lead byte is further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

size_t releasable_bytes(const char *text, size_t len, const char *const *stops, int n_stops) {
    /* EXERCISE 9.3 BEGIN: what a stream may send
     * Task: Return len minus the bytes a stream must hold back: first the longest end of
     *   the text that is the beginning (a proper prefix) of one of the stop strings, then,
     *   of what is left, the bytes of a UTF-8 character that is not complete yet
     *   (incomplete_character() counts them).
     * Contract: The text holds no complete stop string (the caller cut it off). The result
     *   never exceeds len.
     * Hint: With the stop string "\nUser:", a reply ending in "Hi\nUs" may send "Hi" only;
     *   one ending in "Hi\n" may send "Hi" too; "Hi!" may go out whole.
     * Graded: The probe calls it on texts with partial stop strings of every length, several
     *   stop strings at once, and characters of 2, 3 and 4 bytes cut after each byte.
     * Stub: (void)text; (void)stops; (void)n_stops; (void)incomplete_character; return len;
     */
    size_t hold = 0;
    for (int k = 0; k < n_stops; k++) {
        size_t n_stop = strlen(stops[k]);
        if (n_stop == 0) continue;
        for (size_t n = n_stop - 1; n > hold; n--) /* the longest end of the text that begins this stop string */
            if (n <= len && memcmp(text + len - n, stops[k], n) == 0) {
                hold = n;
                break;
            }
    }
    size_t ok = len - hold;
    return ok - incomplete_character(text, ok);
    /* EXERCISE 9.3 END */
}

size_t find_stop(const char *text, size_t len, size_t from, const char *const *stops, int n_stops) {
    size_t first = len;
    for (int k = 0; k < n_stops; k++) {
        size_t n = strlen(stops[k]);
        for (size_t p = from; p + n <= len && p < first; p++)
            if (memcmp(text + p, stops[k], n) == 0) {
                first = p;
                break;
            }
    }
    return first;
}

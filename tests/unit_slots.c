/**
 * @file unit_slots.c
 * @brief The server's scheduling rules (src/slots.c) on small cases: slot choice, the rows of a
 * step, what a stream may send, where a stop string begins.
 */
#include <string.h>

#include "slots.h"
#include "unit.h"

static void test_choose_slot(void) {
    int a[] = {1, 5, 6, 7, 8}, b[] = {1, 5, 9}, prompt[] = {1, 5, 6, 7, 8, 20, 21};
    SlotView s[3] = {{b, 3, 1.0, 0}, {a, 5, 2.0, 0}, {NULL, 0, 0.5, 0}};
    CHECK("choose_slot: the longest cached prefix wins", choose_slot(s, 3, prompt, 7) == 1, "got %d", choose_slot(s, 3, prompt, 7));
    s[1].busy = 1;
    CHECK("choose_slot: a busy slot is never chosen; a prefix under half the prompt: the least recently used",
          choose_slot(s, 3, prompt, 7) == 2, "got %d", choose_slot(s, 3, prompt, 7));
    int half[] = {1, 5, 9, 4};
    CHECK("choose_slot: a prefix of exactly half the prompt counts", choose_slot(s, 3, half, 4) == 0,
          "got %d", choose_slot(s, 3, half, 4));
    int other[] = {2, 3};
    CHECK("choose_slot: no prefix in common: the least recently used", choose_slot(s, 3, other, 2) == 2,
          "got %d", choose_slot(s, 3, other, 2));
    s[0].busy = s[2].busy = 1;
    CHECK("choose_slot: every slot busy: -1", choose_slot(s, 3, prompt, 7) == -1, "got %d", choose_slot(s, 3, prompt, 7));
    SlotView t[2] = {{a, 5, 3.0, 0}, {a, 5, 1.0, 0}};
    CHECK("choose_slot: equal prefixes: the one used longest ago", choose_slot(t, 2, prompt, 7) == 1,
          "got %d", choose_slot(t, 2, prompt, 7));
}

static void test_share_rows(void) {
    int wanted[4] = {1, 300, 1, 400}, replying[4] = {1, 0, 1, 0}, rows[4];
    int used = share_rows(wanted, replying, 4, 512, rows);
    CHECK("share_rows: replying slots first, then prompts in order", used == 512 && rows[0] == 1 && rows[2] == 1 &&
          rows[1] == 300 && rows[3] == 210, "used %d: %d %d %d %d", used, rows[0], rows[1], rows[2], rows[3]);
    used = share_rows(wanted, replying, 4, 2, rows);
    CHECK("share_rows: a budget of 2 goes to the two replying slots", used == 2 && rows[0] == 1 && rows[2] == 1 &&
          rows[1] == 0 && rows[3] == 0, "used %d", used);
    int none[2] = {0, 0}, rep[2] = {0, 0}, r2[2] = {9, 9};
    CHECK("share_rows: idle slots get no rows", share_rows(none, rep, 2, 8, r2) == 0 && r2[0] == 0 && r2[1] == 0, "%s", "");
}

static void test_releasable(void) {
    const char *stops[] = {"\nUser:", "###"};
    struct { const char *text; size_t want; } cases[] = {
        {"Hi!", 3}, {"Hi\nUs", 2}, {"Hi\n", 2}, {"Hi\nUser", 2}, {"Hi #", 3}, {"Hi ##", 3}, {"Hi #x", 5},
        {"caf\xc3", 3}, {"caf\xc3\xa9", 5}, {"\xe2\x82", 0}, {"a\xe2\x82\xac", 4}, {"\xf0\x9f\x98", 0},
        {"\xf0\x9f\x98\x80", 4}, {"x\n\xc3", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = releasable_bytes(cases[i].text, strlen(cases[i].text), stops, 2);
        char name[96];
        snprintf(name, sizeof name, "releasable_bytes: case %zu", i);
        CHECK(name, got == cases[i].want, "text %zu bytes: got %zu, want %zu", strlen(cases[i].text), got, cases[i].want);
    }
    CHECK("releasable_bytes: no stop strings", releasable_bytes("abc", 3, NULL, 0) == 3, "%s", "");
}

static void test_find_stop(void) {
    const char *stops[] = {"END", "\n\n"};
    const char *t = "one\n\ntwo END";
    CHECK("find_stop: the earliest of several", find_stop(t, strlen(t), 0, stops, 2) == 3, "got %zu",
          find_stop(t, strlen(t), 0, stops, 2));
    CHECK("find_stop: from a later position", find_stop(t, strlen(t), 5, stops, 2) == 9, "got %zu",
          find_stop(t, strlen(t), 5, stops, 2));
    CHECK("find_stop: none: len", find_stop("abc", 3, 0, stops, 2) == 3, "%s", "");
}

int main(void) {
    test_choose_slot();
    test_share_rows();
    test_releasable();
    test_find_stop();
    return UNIT_EXIT();
}

/*
 * tools/grade/probe_09.c — what one sequence's logits cannot show about chapter 9's exercises.
 *
 * The grader's logits come from one sequence (model_forward_batch() on sequence 0), which
 * never calls plan_pass() (exercise 9.1). This probe, built around the graded file
 * (#include GRADE_SOURCE), does two things:
 *  - it calls plan_pass() on hand-made steps (sequences that decode, prompts longer than
 *    the pass, a pass of one row, steps already done, sequences named out of order) until
 *    it returns 0, and checks every pass against the contract: rows 0 .. rows - 1 without
 *    gaps, in the order of the pieces, at most cap of them; no empty piece; a step at most
 *    once per pass, in the order of the steps; the step's own cache and tokens; every pass
 *    but the last full; each step's positions from next to n, in order, each once;
 *  - it runs the eight sequences of tests/seqs_script.h on MODEL through
 *    model_forward_seqs() and checks each step's logits against a one-sequence model's
 *    model_forward(), bit for bit;
 *  - it calls the server's rules of src/slots.c, which no logits show: choose_slot()
 *    (exercise 9.2) on caches with longer and shorter prefixes (under half the prompt they do
 *    not count), busy slots and ties, and
 *    releasable_bytes() (exercise 9.3) on texts ending in part of a stop string, of every
 *    length, and in part of a 2-, 3- or 4-byte character, cut after each byte.
 *
 * usage: probe_09 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines)
 */
#include GRADE_SOURCE

#include <stdio.h>

#include "../../tests/seqs_script.h"
#include "slots.h"

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    fflush(stdout);
    failures += !pass;
}

enum { P_STEPS = 6, P_MAX_PASSES = 64 };

/**
 * plan_pass() until it returns 0, on steps of lengths @p n starting at @p next (@p seq names
 * their caches), with passes of @p cap rows: every pass checked against the contract.
 */
static void check_plan(const char *what, int n_steps, const int *seq, const int *n, const int *next0, int cap) {
    KvCache caches[P_STEPS];
    int tokens[P_STEPS][1];
    ModelSeqStep steps[P_STEPS];
    int next[P_STEPS], done[P_STEPS], total = 0, passes = 0, ok = 1;
    char name[160], why[300] = "";
    memset(caches, 0, sizeof caches);
    for (int i = 0; i < n_steps; i++) {
        steps[i] = (ModelSeqStep){seq[i], tokens[i], n[i], NULL};
        next[i] = done[i] = next0[i];
        total += n[i] - next0[i];
    }
    for (; ok && passes < P_MAX_PASSES; passes++) {
        Piece pieces[P_STEPS + 1];
        memset(pieces, 0, sizeof pieces);
        int got = plan_pass(caches, steps, n_steps, next, cap, pieces), rows = 0, last_step = -1;
        if (got == 0) break;
        if (got < 0 || got > n_steps) {
            ok = 0;
            snprintf(why, sizeof why, "pass %d: %d pieces for %d steps", passes + 1, got, n_steps);
            break;
        }
        for (int k = 0; k < got && ok; k++) {
            const Piece *p = &pieces[k];
            int i = 0;
            while (i < n_steps && p->kv != &caches[steps[i].seq]) i++;
            if (i == n_steps) snprintf(why, sizeof why, "pass %d, piece %d: its kv is no step's cache", passes + 1, k);
            else if (i <= last_step)
                snprintf(why, sizeof why, "pass %d, piece %d: step %d comes after step %d (steps in order, once each)",
                         passes + 1, k, i, last_step);
            else if (p->tokens != steps[i].tokens)
                snprintf(why, sizeof why, "pass %d, piece %d: not step %d's tokens", passes + 1, k, i);
            else if (p->n < 1) snprintf(why, sizeof why, "pass %d, piece %d: %d positions (no piece is empty)", passes + 1, k, p->n);
            else if (p->row != rows)
                snprintf(why, sizeof why, "pass %d, piece %d: starts at row %d, expected %d", passes + 1, k, p->row, rows);
            else if (p->first != done[i])
                snprintf(why, sizeof why, "pass %d, piece %d: step %d's positions start at %d, expected %d", passes + 1, k,
                         i, p->first, done[i]);
            else if (p->first + p->n > steps[i].n)
                snprintf(why, sizeof why, "pass %d, piece %d: step %d's positions end at %d, past its %d", passes + 1, k,
                         i, p->first + p->n, steps[i].n);
            else if (next[i] != p->first + p->n)
                snprintf(why, sizeof why, "pass %d: next[%d] is %d after a piece that ends at %d", passes + 1, i, next[i],
                         p->first + p->n);
            else {
                done[i] += p->n;
                rows += p->n;
                last_step = i;
                continue;
            }
            ok = 0;
        }
        if (ok && rows > cap) {
            ok = 0;
            snprintf(why, sizeof why, "pass %d: %d rows, more than the %d of a pass", passes + 1, rows, cap);
        }
        total -= rows;
        if (ok && total > 0 && rows < cap) {
            ok = 0;
            snprintf(why, sizeof why, "pass %d: %d of %d rows while %d positions wait (every pass but the last is full)",
                     passes + 1, rows, cap, total);
        }
    }
    for (int i = 0; i < n_steps && ok; i++)
        if (done[i] != n[i]) {
            ok = 0;
            snprintf(why, sizeof why, "step %d: positions %d .. %d never planned", i, done[i], n[i] - 1);
        }
    if (ok && passes >= P_MAX_PASSES) {
        ok = 0;
        snprintf(why, sizeof why, "no end after %d passes", P_MAX_PASSES);
    }
    snprintf(name, sizeof name, "plan_pass: %s (passes of %d rows)", what, cap);
    result(name, ok, why);
}

/** Exercise 9.2: the free slot with the longest cached prefix, the least recently used among equals. */
static void check_choose_slot(void) {
    int a[] = {1, 4, 4, 9, 2}, b[] = {1, 4, 7}, c[] = {1, 4, 4, 9}, prompt[] = {1, 4, 4, 9, 2, 6};
    struct { SlotView s[4]; int want; const char *what; } cases[] = { /* the prompt: 6 tokens */
        {{{b, 3, 1, 0}, {a, 5, 2, 0}, {c, 4, 0, 0}, {NULL, 0, 0, 0}}, 1, "a follow-up turn finds its own slot"},
        {{{b, 3, 1, 0}, {a, 5, 2, 1}, {c, 4, 5, 0}, {NULL, 0, 0, 0}}, 2, "a busy slot is passed over"},
        {{{a, 5, 3, 0}, {a, 5, 1, 0}, {a, 5, 2, 0}, {a, 5, 4, 0}}, 1, "a tie goes to the one used longest ago"},
        {{{b, 2, 9, 0}, {NULL, 0, 7, 0}, {c, 1, 8, 0}, {a, 5, 1, 1}}, 1, "a prefix under half the prompt: the least recently used"},
        {{{b, 2, 9, 0}, {NULL, 0, 7, 0}, {c, 3, 8, 0}, {a, 5, 1, 1}}, 2, "a prefix of half the prompt counts"},
        {{{a, 5, 1, 1}, {b, 3, 1, 1}, {c, 4, 1, 1}, {NULL, 0, 1, 1}}, -1, "every slot busy: -1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = choose_slot(cases[i].s, 4, prompt, 6);
        char name[160], why[80];
        snprintf(name, sizeof name, "choose_slot: %s", cases[i].what);
        snprintf(why, sizeof why, "chose %d, expected %d", got, cases[i].want);
        result(name, got == cases[i].want, why);
    }
    int other[] = {8, 8};
    SlotView s[3] = {{a, 5, 3, 0}, {b, 3, 2, 0}, {c, 4, 6, 0}};
    int got = choose_slot(s, 3, other, 2);
    result("choose_slot: nothing in common: the least recently used", got == 1, "chose another slot");
}

/** Exercise 9.3: stop-string beginnings and unfinished characters are held back, nothing else. */
static void check_releasable(void) {
    const char *stops[] = {"\nUser:", "</s>"};
    char text[64], why[160];
    int bad = 0;
    for (int n = 1; n < 6 && !bad; n++) { /* "Hi" + the first n bytes of "\nUser:" */
        snprintf(text, sizeof text, "Hi%.*s", n, stops[0]);
        size_t got = releasable_bytes(text, strlen(text), stops, 2);
        if (got != 2) bad = 1, snprintf(why, sizeof why, "\"Hi\" + %d bytes of \"\\nUser:\": %zu, expected 2", n, got);
    }
    result("releasable_bytes: the beginning of a stop string, of every length", !bad, why);
    bad = 0;
    for (int n = 1; n < 4 && !bad; n++) {
        snprintf(text, sizeof text, "ok%.*s", n, stops[1]);
        size_t got = releasable_bytes(text, strlen(text), stops, 2);
        if (got != 2) bad = 1, snprintf(why, sizeof why, "\"ok\" + %d bytes of \"</s>\": %zu, expected 2", n, got);
    }
    result("releasable_bytes: the second of two stop strings", !bad, why);
    const char *whole[] = {"Hi!", "Hi User", "a<b", "\n\n"};
    size_t want_whole[] = {3, 7, 3, 1};
    bad = 0;
    for (int i = 0; i < 4 && !bad; i++) {
        size_t got = releasable_bytes(whole[i], strlen(whole[i]), stops, 2);
        if (got != want_whole[i]) bad = 1, snprintf(why, sizeof why, "text %d: %zu, expected %zu", i, got, want_whole[i]);
    }
    result("releasable_bytes: the rest is sent", !bad, why);
    const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    bad = 0;
    for (int c = 0; c < 3 && !bad; c++) {
        size_t w = strlen(chars[c]);
        for (size_t cut = 1; cut <= w && !bad; cut++) {
            snprintf(text, sizeof text, "ab%.*s", (int)cut, chars[c]);
            size_t got = releasable_bytes(text, strlen(text), stops, 2), want = cut == w ? 2 + w : 2;
            if (got != want) bad = 1, snprintf(why, sizeof why, "a %zu-byte character cut after %zu bytes: %zu, expected %zu", w, cut, got, want);
        }
    }
    result("releasable_bytes: a character is sent whole or not at all", !bad, why);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe_09 MODEL [THREADS]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    {
        int seq[] = {0, 1, 2, 3, 4, 5}, n[] = {7, 3, 12, 1, 9, 5}, next[] = {6, 2, 11, 0, 8, 4};
        check_plan("six sequences decoding", 6, seq, n, next, 16);
        check_plan("six sequences decoding", 6, seq, n, next, 4);
    }
    {
        int seq[] = {3, 0, 5}, n[] = {10, 40, 6}, next[] = {9, 0, 0};
        check_plan("a prompt of 40 between a decoding sequence and a prompt of 6", 3, seq, n, next, 16);
        check_plan("a prompt of 40 between a decoding sequence and a prompt of 6", 3, seq, n, next, 1);
        check_plan("a prompt of 40 between a decoding sequence and a prompt of 6", 3, seq, n, next, 41);
    }
    {
        int seq[] = {2, 1, 0, 4}, n[] = {5, 8, 3, 20}, next[] = {5, 2, 3, 7};
        check_plan("steps already done beside a rewind and a long prompt", 4, seq, n, next, 6);
    }
    check_choose_slot();
    check_releasable();
    seqs_script(argv[1], threads, 16, result);
    return failures ? 1 : 0;
}

/**
 * @file seqs_script.h
 * @brief A script of eight sequences for chapter 9's model_forward_seqs(), checked against model_forward().
 *
 * Included after a chapter that defines model_forward_seqs() with a cache per
 * sequence (tests/unit_seqs.c, tools/grade/probe_09.c). seqs_script() opens the
 * file twice: a model with eight caches, which runs the script's steps through
 * model_forward_seqs(), and a model with one, which runs every sequence of
 * every step alone through model_forward() (its one cache recomputes a sequence
 * whenever another ran in between). Each step's logits must be equal bit for
 * bit (memcmp). The steps mix everything a server does to its slots: prompts
 * of one position, of a few and of several batches (longer than -b), decoding,
 * several tokens appended at once, a rewind to a shared prefix, a new prompt
 * in a used slot, a prompt of BOS alone after a long sequence, slots left out
 * of a step, steps in any order of slots, and a step of one sequence.
 */
#ifndef LLAMABOOK_SEQS_SCRIPT_H
#define LLAMABOOK_SEQS_SCRIPT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** How a check is reported: pass 1 or 0, @p why when it fails. */
typedef void (*SeqsResult)(const char *name, int pass, const char *why);

enum { SS_SEQS = 8, SS_MAX_STEP = SS_SEQS };

/** What one slot does in a step. */
typedef enum {
    SS_PROMPT, /* a new prompt of `len` positions (BOS and len - 1 random tokens): a new conversation */
    SS_DECODE, /* one more token */
    SS_APPEND, /* `len` more tokens at once (a new turn of a chat, teacher forcing) */
    SS_REWIND, /* keep the first `keep` positions, then random tokens up to `len` (a regenerated answer) */
} SsKind;

typedef struct {
    int slot;
    SsKind kind;
    int len, keep;
} SsAction;

typedef struct {
    SsAction a[SS_MAX_STEP];
    int n;
} SsStep;

#define SS_P(s, n) {s, SS_PROMPT, n, 0}
#define SS_D(s) {s, SS_DECODE, 1, 0}
#define SS_E(s, n) {s, SS_APPEND, n, 0}
#define SS_R(s, keep, n) {s, SS_REWIND, n, keep}

/*
 * The script. With -b 16: slot 2's prompt takes two passes, slot 4's three, and slot 7's
 * appended 20 tokens share their passes with seven decoding slots.
 */
static const SsStep ss_steps[] = {
    {{SS_P(0, 5), SS_P(1, 1), SS_P(2, 23), SS_P(3, 9)}, 4},
    {{SS_D(0), SS_D(1), SS_D(2), SS_D(3), SS_P(4, 40), SS_P(5, 3)}, 6},
    {{SS_D(5), SS_D(4), SS_D(3), SS_D(2), SS_D(1), SS_D(0), SS_P(6, 17)}, 7},
    {{SS_D(0), SS_R(2, 10, 30), SS_D(3), SS_D(4), SS_D(5), SS_D(6), SS_P(7, 2)}, 7},
    {{SS_P(0, 12), SS_D(1), SS_D(2), SS_E(3, 3), SS_D(4), SS_D(5), SS_D(6), SS_D(7)}, 8},
    {{SS_D(3)}, 1},
    {{SS_D(7), SS_D(6), SS_D(5), SS_D(4), SS_D(3), SS_D(2), SS_D(1), SS_D(0)}, 8},
    {{SS_E(7, 20), SS_D(0), SS_D(1), SS_D(2), SS_D(3), SS_D(4), SS_D(5), SS_D(6)}, 8},
    {{SS_R(4, 1, 1), SS_D(2)}, 2},
    {{SS_D(0), SS_D(1), SS_D(2), SS_D(3), SS_D(4), SS_D(5), SS_D(6), SS_D(7)}, 8},
};

static uint64_t ss_rng = 0x2545f4914f6cdd1dull;

/** A random token id in 3 .. vocab - 1 (0-2 are often special; any id runs). */
static int ss_token(int vocab) {
    ss_rng = ss_rng * 6364136223846793005ull + 1442695040888963407ull;
    return vocab > 3 ? 3 + (int)((ss_rng >> 33) % (uint64_t)(vocab - 3)) : (int)((ss_rng >> 33) % (uint64_t)vocab);
}

/** Apply @p a to the slot's tokens (at most @p cap of them; a length past it is cut). */
static void ss_apply(const SsAction *a, int *tokens, int *n, int cap, int vocab) {
    int len = a->kind == SS_DECODE || a->kind == SS_APPEND ? *n + a->len : a->len;
    int keep = a->kind == SS_PROMPT ? 1 : a->kind == SS_REWIND ? a->keep : *n;
    if (len > cap) len = cap;
    if (keep > len) keep = len;
    if (keep < 1) keep = 1;
    int old = keep < *n ? tokens[keep] : -1;
    tokens[0] = 1; /* BOS */
    for (int t = keep; t < len; t++) tokens[t] = ss_token(vocab);
    /* a new prompt or a rewind differs right after the kept prefix, or the cache would keep more */
    while (keep < len && tokens[keep] == old) tokens[keep] = ss_token(vocab);
    *n = len;
}

/**
 * The script on @p path with -t @p threads and -b @p n_batch: one result per step, and
 * one for model_forward() on sequence 0 afterwards. Returns the number of failures.
 */
static int seqs_script(const char *path, int threads, int n_batch, SeqsResult result) {
    ModelOptions many = {threads, 0, 0, n_batch, 0, SS_SEQS};
    ModelOptions one = {threads, 0, 0, 0, 0, 0};
    Model *mb = model_open(path, &many), *m1 = model_open(path, &one);
    int vocab = model_config(mb)->vocab_size, cap = model_config(mb)->seq_len, failures = 0;
    if (cap > 96) cap = 96;
    const char *file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int *tokens = calloc((size_t)SS_SEQS * (size_t)cap, sizeof(int)), len[SS_SEQS] = {0};
    float *logits = malloc(sizeof(float) * (size_t)SS_MAX_STEP * (size_t)vocab);
    if (!tokens || !logits) {
        result("seqs: memory", 0, "out of memory");
        return 1;
    }
    ss_rng = 0x2545f4914f6cdd1dull;
    for (size_t s = 0; s < sizeof ss_steps / sizeof ss_steps[0]; s++) {
        const SsStep *st = &ss_steps[s];
        ModelSeqStep steps[SS_MAX_STEP];
        char what[200] = "", name[320], why[300] = "";
        int o = 0;
        for (int i = 0; i < st->n; i++) {
            const SsAction *a = &st->a[i];
            int *t = tokens + (size_t)a->slot * (size_t)cap;
            int before = len[a->slot];
            ss_apply(a, t, &len[a->slot], cap, vocab);
            steps[i] = (ModelSeqStep){a->slot, t, len[a->slot], logits + (size_t)i * (size_t)vocab};
            o += snprintf(what + o, sizeof what - (size_t)o, "%s%d:%d->%d", i ? " " : "", a->slot, before, len[a->slot]);
            if (o >= (int)sizeof what) o = (int)sizeof what - 1;
        }
        for (size_t k = 0; k < (size_t)st->n * (size_t)vocab; k++) logits[k] = NAN; /* a step that writes nothing fails */
        int rc = model_forward_seqs(mb, steps, st->n), ok = rc == st->n;
        if (!ok) snprintf(why, sizeof why, "returned %d for %d sequences", rc, st->n);
        for (int i = 0; i < st->n && ok; i++) {
            const float *want = model_forward(m1, steps[i].tokens, steps[i].n);
            if (memcmp(want, steps[i].logits, sizeof(float) * (size_t)vocab) != 0) {
                int k = 0;
                while (k < vocab && memcmp(&want[k], &steps[i].logits[k], sizeof(float)) == 0) k++;
                ok = 0;
                snprintf(why, sizeof why, "sequence %d (%d positions): logit %d is %.9g beside the others, %.9g alone",
                         steps[i].seq, steps[i].n, k, steps[i].logits[k], want[k]);
            }
        }
        snprintf(name, sizeof name, "seqs: %s, -t %d, -b %d: step %zu (slot:before->after %s)", file, threads, n_batch,
                 s + 1, what);
        result(name, ok, why);
        failures += !ok;
    }
    /* model_forward() on the batched model: sequence 0, one more token, its cache kept */
    int *t0 = tokens;
    if (len[0] < cap) t0[len[0]++] = ss_token(vocab);
    const float *got = model_forward(mb, t0, len[0]);
    float *copy = malloc(sizeof(float) * (size_t)vocab);
    int ok = copy != NULL;
    if (ok) memcpy(copy, got, sizeof(float) * (size_t)vocab);
    ok = ok && memcmp(copy, model_forward(m1, t0, len[0]), sizeof(float) * (size_t)vocab) == 0;
    char name[200];
    snprintf(name, sizeof name, "seqs: %s, -t %d, -b %d: model_forward() on sequence 0 after the steps", file, threads,
             n_batch);
    result(name, ok, "its logits differ from a one-sequence model's");
    failures += !ok;
    free(copy);
    free(logits);
    free(tokens);
    model_close(mb);
    model_close(m1);
    return failures;
}

#endif

/**
 * @file chat.c
 * @brief Chat templates, their detection, and a conversation kept in the KV cache (see chat.h).
 *
 * A chat model has only ever seen conversations written one way, and it
 * answers well only when it is spoken to in that same way. This file writes a
 * conversation in the formats of the families the book runs, byte for byte as
 * llama.cpp's built-in formatter (llama_chat_apply_template) writes them, and
 * recognises a format from the Jinja text a GGUF file carries in
 * tokenizer.chat_template by the same telltale substrings, tested in the same
 * order. Nothing here runs Jinja: a template is one of a few known shapes.
 *
 * One departure, on purpose: zephyr (TinyLlama-Chat). llama.cpp ends each
 * zephyr turn with the text `<|endoftext|>`, but the model's own template ends
 * it with its EOS token (`</s>` in TinyLlama), and llama.cpp's detection even
 * takes that template for another family ("glmedge", which writes no turn ends
 * at all). The book follows the model: see chat_apply_zephyr() and
 * detect_by_substrings().
 *
 * ChatSession is the conversation as the model sees it. Each user turn feeds
 * the model only what it has not seen yet, the delta: the whole conversation
 * written out, minus the text already in the KV cache (see
 * chat_session_user()). That is llama.cpp's idea (common_chat_format_single),
 * with one fix: "already seen" is the text of the tokens the model really
 * generated, not the template's rewrite of the reply, so that an end-of-turn
 * the model wrote itself is not fed twice and one it did not write is not
 * left out.
 *
 * Cost: writing a conversation is linear in its text; a user turn writes the
 * conversation once or twice and tokenizes only the delta, so a turn costs
 * the conversation's length in bytes plus the delta's tokenization, and the
 * model's work is the delta's tokens only.
 *
 * Checked by tests/unit_chat.c: every built-in format against llama.cpp's
 * output on the reference conversation, byte for byte; detection of every
 * reference Jinja template; the zephyr rendering worked out from the model's
 * template; sessions on a real vocabulary, whose ids must equal the
 * tokenization of the whole conversation written out at once.
 */
#include "chat.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ======================================================================== */
/* Names                                                                    */
/* ======================================================================== */

/* (CHAT_N_TEMPLATES) llama.cpp's names, in the order of the enum. */
static const char *const TEMPLATE_NAMES[CHAT_N_TEMPLATES] = {
    [CHAT_CHATML] = "chatml",
    [CHAT_LLAMA2] = "llama2",
    [CHAT_LLAMA2_SYS] = "llama2-sys",
    [CHAT_LLAMA3] = "llama3",
    [CHAT_ZEPHYR] = "zephyr",
    [CHAT_PHI3] = "phi3",
    [CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
};

/* The same, as one line for messages and --help (tests/unit_chat.c checks it lists exactly the table). */
static const char TEMPLATE_NAME_LIST[] = "chatml, llama2, llama2-sys, llama3, zephyr, phi3, llama2-sys-bos, llama2-sys-strip";

/*
 * The other names llama.cpp knows. A tokenizer.chat_template that is exactly one
 * of them names a format the book does not write, and must not fall through to
 * the substring tests: "mistral-v1" begins with "mistral", which would make it
 * a llama2 template.
 */
static const char *const OTHER_LLAMACPP_NAMES[] = {
    "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7", "phi4", "falcon3", "monarch", "gemma",
    "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "deepseek2", "deepseek3", "command-r",
    "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3", "rwkv-world", "granite", "gigachat", "megrez",
};

ChatTemplate chat_template_by_name(const char *name) {
    if (!name) return CHAT_UNKNOWN;
    for (int t = 0; t < CHAT_N_TEMPLATES; t++)
        if (strcmp(name, TEMPLATE_NAMES[t]) == 0) return (ChatTemplate)t;
    return CHAT_UNKNOWN;
}

const char *chat_template_name(ChatTemplate t) {
    return t >= 0 && t < CHAT_N_TEMPLATES ? TEMPLATE_NAMES[t] : "unknown";
}

const char *chat_template_names(void) { return TEMPLATE_NAME_LIST; }

/* ======================================================================== */
/* Detection                                                                */
/* ======================================================================== */

static int has(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

/** The llama2 family: which of its four variants the template's wording asks for. */
static ChatTemplate detect_llama2_variant(const char *j) {
    if (has(j, "content.strip()")) return CHAT_LLAMA2_SYS_STRIP;
    if (has(j, "bos_token + '[INST]")) return CHAT_LLAMA2_SYS_BOS;
    if (has(j, "<<SYS>>")) return CHAT_LLAMA2_SYS;
    return CHAT_LLAMA2;
}

/**
 * llama.cpp's substring tests, in its order. The order matters as much as
 * the tests: a template is taken by the first family whose telltales it
 * contains, so the families the book does not write are tested too (and give
 * CHAT_UNKNOWN) where llama.cpp tests them before one the book does write.
 */
static ChatTemplate detect_by_substrings(const char *j) {
    if (has(j, "<|im_start|>")) return has(j, "<|im_sep|>") ? CHAT_UNKNOWN /* phi4 */ : CHAT_CHATML;
    if (strncmp(j, "mistral", 7) == 0 || has(j, "[INST]")) {
        if (has(j, "[SYSTEM_PROMPT]")) return CHAT_UNKNOWN;                                 /* mistral-v7 */
        if (has(j, "' [INST] ' + system_message") || has(j, "[AVAILABLE_TOOLS]")) return CHAT_UNKNOWN; /* mistral-v1, v3 */
        return detect_llama2_variant(j);
    }
    if (has(j, "<|assistant|>") && has(j, "<|end|>")) return CHAT_PHI3;
    if (has(j, "<|assistant|>") && has(j, "<|user|>")) {
        if (has(j, "</s>")) return CHAT_UNKNOWN; /* falcon3 */
        /*
         * Our departure. llama.cpp calls everything else here "glmedge", the
         * Zephyr/TinyLlama template included: that one writes its turn ends
         * as eos_token, not as a literal "</s>" or "<|endoftext|>", so it
         * never reaches llama.cpp's zephyr test below, and glmedge would
         * write its conversations with no turn ends and no newlines at all. A
         * template that ends turns with eos_token is zephyr's; GLM-Edge's
         * own template has no eos_token, and the book does not write glmedge.
         */
        return has(j, "eos_token") ? CHAT_ZEPHYR : CHAT_UNKNOWN /* glmedge */;
    }
    if (has(j, "<|user|>") && has(j, "<|endoftext|>")) return CHAT_ZEPHYR;
    /* Families llama.cpp tests before llama3: a template with their marks is not llama3's. */
    if (has(j, "bos_token + message['role']")                             /* monarch */
        || has(j, "<start_of_turn>")                                        /* gemma */
        || has(j, "'\\n\\nAssistant: ' + eos_token")                        /* orion */
        || has(j, "GPT4 Correct ")                                          /* openchat */
        || (has(j, "USER: ") && has(j, "ASSISTANT: "))                      /* vicuna */
        || (has(j, "### Instruction:") && has(j, "<|EOT|>"))                /* deepseek */
        || (has(j, "<|START_OF_TURN_TOKEN|>") && has(j, "<|USER_TOKEN|>"))) /* command-r */
        return CHAT_UNKNOWN;
    if (has(j, "<|start_header_id|>") && has(j, "<|end_header_id|>")) return CHAT_LLAMA3;
    return CHAT_UNKNOWN;
}

ChatTemplate chat_template_detect(const char *jinja) {
    if (!jinja) return CHAT_UNKNOWN;
    /* llama.cpp first takes the text as a template's name ("chatml"). */
    ChatTemplate t = chat_template_by_name(jinja);
    if (t != CHAT_UNKNOWN) return t;
    for (size_t i = 0; i < sizeof OTHER_LLAMACPP_NAMES / sizeof OTHER_LLAMACPP_NAMES[0]; i++)
        if (strcmp(jinja, OTHER_LLAMACPP_NAMES[i]) == 0) return CHAT_UNKNOWN;
    return detect_by_substrings(jinja);
}

/* ======================================================================== */
/* Writing a conversation                                                   */
/* ======================================================================== */

/** A growing string: text[0 .. len) and a NUL after it. */
typedef struct {
    char *text;
    size_t len, cap;
} Text;

static void text_add(Text *t, const char *s, size_t n) {
    if (n > SIZE_MAX - 1 - t->len) fatal("chat: the conversation's text is too long");
    size_t need = t->len + n + 1;
    if (need > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *p = realloc(t->text, cap);
        if (!p) fatal("chat: out of memory for %zu bytes of conversation", cap);
        t->text = p;
        t->cap = cap;
    }
    if (n) memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = '\0';
}

static void text_puts(Text *t, const char *s) { text_add(t, s, strlen(s)); }

/** The C locale's white space (what llama.cpp's trim() removes; bytes of UTF-8 characters never are). */
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/** @p s without white space at either end. */
static void text_puts_trimmed(Text *t, const char *s) {
    size_t n = strlen(s);
    while (n > 0 && is_space(*s)) s++, n--;
    while (n > 0 && is_space(s[n - 1])) n--;
    text_add(t, s, n);
}

/** chatml: `<|im_start|>role\ncontent<|im_end|>\n` per message; the next header is `<|im_start|>assistant\n`. */
static void apply_chatml(Text *t, const ChatMessage *m, int n, int add_assistant) {
    for (int i = 0; i < n; i++) {
        text_puts(t, "<|im_start|>");
        text_puts(t, m[i].role);
        text_puts(t, "\n");
        text_puts(t, m[i].content);
        text_puts(t, "<|im_end|>\n");
    }
    if (add_assistant) text_puts(t, "<|im_start|>assistant\n");
}

/**
 * The llama2 family: `[INST] user [/INST]answer</s>` per exchange, the text
 * opening with `[INST] ` (no BOS: the tokenizer adds it). The system message
 * goes inside the first [INST], as `<<SYS>>\n...\n<</SYS>>\n\n` in the -sys
 * variants and as plain `text\n` in llama2. -sys-bos writes `<s>` before every
 * [INST] after the first; -sys-strip trims every message. There is no header
 * for the next answer: it follows `[/INST]` directly, so @p add_assistant
 * changes nothing. Any role other than system and user is written as an answer.
 */
static void apply_llama2(Text *t, ChatTemplate tmpl, const ChatMessage *m, int n) {
    int with_sys = tmpl != CHAT_LLAMA2, bos_inside = tmpl == CHAT_LLAMA2_SYS_BOS, strip = tmpl == CHAT_LLAMA2_SYS_STRIP;
    int in_turn = 1; /* the opening [INST] is already written */
    text_puts(t, "[INST] ");
    for (int i = 0; i < n; i++) {
        if (!in_turn) {
            text_puts(t, bos_inside ? "<s>[INST] " : "[INST] ");
            in_turn = 1;
        }
        int sys = strcmp(m[i].role, "system") == 0, user = strcmp(m[i].role, "user") == 0;
        if (sys && with_sys) text_puts(t, "<<SYS>>\n");
        if (strip) text_puts_trimmed(t, m[i].content);
        else text_puts(t, m[i].content);
        if (sys) {
            text_puts(t, with_sys ? "\n<</SYS>>\n\n" : "\n");
        } else if (user) {
            text_puts(t, " [/INST]");
        } else {
            text_puts(t, "</s>");
            in_turn = 0;
        }
    }
}

/**
 * llama3: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`, the
 * contents trimmed; no `<|begin_of_text|>` (it is BOS, which the tokenizer adds).
 */
static void apply_llama3(Text *t, const ChatMessage *m, int n, int add_assistant) {
    for (int i = 0; i < n; i++) {
        text_puts(t, "<|start_header_id|>");
        text_puts(t, m[i].role);
        text_puts(t, "<|end_header_id|>\n\n");
        text_puts_trimmed(t, m[i].content);
        text_puts(t, "<|eot_id|>");
    }
    if (add_assistant) text_puts(t, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/** phi3: `<|role|>\ncontent<|end|>\n`; the next header is `<|assistant|>\n`. */
static void apply_phi3(Text *t, const ChatMessage *m, int n, int add_assistant) {
    for (int i = 0; i < n; i++) {
        text_puts(t, "<|");
        text_puts(t, m[i].role);
        text_puts(t, "|>\n");
        text_puts(t, m[i].content);
        text_puts(t, "<|end|>\n");
    }
    if (add_assistant) text_puts(t, "<|assistant|>\n");
}

/**
 * zephyr: `<|role|>\ncontent` + end of turn + `\n`; the next header is `<|assistant|>\n`.
 *
 * The end of turn is where the book departs from llama.cpp. llama.cpp writes
 * the text `<|endoftext|>`; the model's own template (Hugging Face's
 * zephyr-7b-beta, which TinyLlama-Chat copies) writes `eos_token`, which is
 * `</s>` in TinyLlama's vocabulary: there `<|endoftext|>` is not a token at
 * all but plain text spelt with ordinary pieces, a sequence the model never
 * saw in training, while `</s>` is the EOS token it learned to end its answers
 * with. So a turn
 * ends with @p eos_text, the text of the model's EOS token. Rendered by Jinja
 * with the block tags' newlines trimmed (as Hugging Face renders templates),
 * the model's template gives exactly this shape: one `\n` after each turn's end
 * and after the final `<|assistant|>`. Without @p eos_text the turn ends with
 * `<|endoftext|>`, and the output is llama.cpp's, byte for byte.
 */
static void apply_zephyr(Text *t, const ChatMessage *m, int n, int add_assistant, const char *eos_text) {
    const char *end = eos_text ? eos_text : "<|endoftext|>";
    for (int i = 0; i < n; i++) {
        text_puts(t, "<|");
        text_puts(t, m[i].role);
        text_puts(t, "|>\n");
        text_puts(t, m[i].content);
        text_puts(t, end);
        text_puts(t, "\n");
    }
    if (add_assistant) text_puts(t, "<|assistant|>\n");
}

/** @p msgs written in @p tmpl into @p t (appended); 0 if @p tmpl is not a template. */
static int apply_into(Text *t, ChatTemplate tmpl, const ChatMessage *msgs, int n, int add_assistant, const char *eos_text) {
    switch (tmpl) {
    case CHAT_CHATML: apply_chatml(t, msgs, n, add_assistant); return 1;
    case CHAT_LLAMA2:
    case CHAT_LLAMA2_SYS:
    case CHAT_LLAMA2_SYS_BOS:
    case CHAT_LLAMA2_SYS_STRIP: apply_llama2(t, tmpl, msgs, n); return 1;
    case CHAT_LLAMA3: apply_llama3(t, msgs, n, add_assistant); return 1;
    case CHAT_ZEPHYR: apply_zephyr(t, msgs, n, add_assistant, eos_text); return 1;
    case CHAT_PHI3: apply_phi3(t, msgs, n, add_assistant); return 1;
    default: return 0;
    }
}

char *chat_apply(ChatTemplate tmpl, const ChatMessage *msgs, int n_msgs, int add_assistant, const char *eos_text) {
    Text t = {0};
    text_add(&t, "", 0); /* an empty conversation is "", not NULL */
    if (!apply_into(&t, tmpl, msgs, n_msgs < 0 ? 0 : n_msgs, add_assistant, eos_text)) {
        free(t.text);
        return NULL;
    }
    return t.text;
}

/* ======================================================================== */
/* The conversation                                                         */
/* ======================================================================== */

/*
 * What the session keeps, and why (see chat.h for the fields):
 *  - msgs: the conversation as messages, to write it out in the template;
 *  - ids: every token of it the model was given or gave, which is what its KV
 *    cache holds (or will, once the caller feeds ids[n_fed ..));
 *  - shown: the same conversation as text, as the model has it: the deltas it
 *    was fed, then the text of each token it generated. Comparing this with the
 *    template's writing of the conversation is what tells the next delta.
 *  - reply_ids_from, reply_text_from: where the latest reply starts in ids and
 *    in shown (everything after the last delta).
 */

/** The text of the model's EOS token, which zephyr writes at the end of a turn (NULL: none). */
const char *chat_eos_text(const Vocab *v) {
    if (!v || v->eos_id < 0 || v->eos_id >= v->n_tokens) return NULL;
    int len;
    return vocab_piece_text(v, v->eos_id, &len);
}

/**
 * The text token @p id adds to the conversation. vocab_piece_text(), not
 * vocab_decode(): the conversation's text is the template's, where a special
 * token the model generates (`<|im_end|>`, `</s>`) stands as its text, which
 * is what vocab_piece_text() gives (vocab_decode() is for showing a story, and
 * its one other rule, dropping the dummy-prefix space after BOS, never applies
 * here: a reply follows the template's text, never BOS). A NUL byte (the byte
 * token <0x00>) cannot be part of a C string message: it is left out of the
 * text, the same way in shown and in the reply's content, so the two still
 * agree; the token itself stays in ids.
 */
static void add_token_text(Text *t, const Vocab *v, int id) {
    int len;
    const char *s = vocab_piece_text(v, id, &len);
    for (int i = 0; i < len; i++)
        if (s[i] != '\0') text_add(t, s + i, 1);
}

/** The bytes add_token_text() adds for @p id. */
static size_t token_text_len(const Vocab *v, int id) {
    int len;
    const char *s = vocab_piece_text(v, id, &len);
    size_t n = 0;
    for (int i = 0; i < len; i++) n += s[i] != '\0';
    return n;
}

static char *copy_string(const char *s) {
    size_t n = strlen(s);
    if (n == SIZE_MAX) fatal("chat: a message is too long");
    char *c = xmalloc(n + 1);
    memcpy(c, s, n + 1);
    return c;
}

/** Room for one more element in an array of @p *cap elements of @p size bytes holding @p n. */
static void *grow_for_one(void *p, int *cap, int n, size_t size, const char *what) {
    if (n < *cap) return p;
    if (*cap > INT_MAX / 2) fatal("chat: too many %s", what);
    int new_cap = *cap ? *cap * 2 : 16;
    void *q = realloc(p, checked_mul((size_t)new_cap, size, what));
    if (!q) fatal("chat: out of memory for %d %s", new_cap, what);
    *cap = new_cap;
    return q;
}

static void add_message(ChatSession *s, const char *role, const char *content) {
    s->msgs = grow_for_one(s->msgs, &s->cap_msgs, s->n_msgs, sizeof *s->msgs, "chat messages");
    s->msgs[s->n_msgs].role = copy_string(role);
    s->msgs[s->n_msgs].content = copy_string(content);
    s->n_msgs++;
}

static void add_id(ChatSession *s, int id) {
    s->ids = grow_for_one(s->ids, &s->cap_ids, s->n_ids, sizeof *s->ids, "conversation tokens");
    s->ids[s->n_ids++] = id;
}

/** Append @p n bytes to shown. */
static void add_shown(ChatSession *s, const char *text, size_t n) {
    Text t = {s->shown, s->n_shown, s->cap_shown};
    text_add(&t, text, n);
    s->shown = t.text;
    s->n_shown = t.len;
    s->cap_shown = t.cap;
}

void chat_session_init(ChatSession *s, const Vocab *v, ChatTemplate t, const char *system, int n_ctx) {
    if (t < 0 || t >= CHAT_N_TEMPLATES) fatal("chat: no chat template to write the conversation in");
    memset(s, 0, sizeof *s);
    s->tmpl = t;
    s->vocab = v;
    s->n_ctx = n_ctx;
    add_shown(s, "", 0);
    if (system) add_message(s, "system", system);
}

static int last_is(const ChatSession *s, const char *role) {
    return s->n_msgs > 0 && strcmp(s->msgs[s->n_msgs - 1].role, role) == 0;
}

/** 1 if the first @p n bytes of shown are the start of @p full. */
static int shown_starts(const ChatSession *s, size_t n, const char *full, size_t full_len) {
    return n <= full_len && memcmp(s->shown, full, n) == 0;
}

/**
 * The delta when the template does not write the latest reply the way the
 * model generated it (llama3 and llama2-sys-strip trim the contents: a reply
 * " Hi " is written "Hi"). The tokens of the reply are in the KV cache and
 * cannot be taken back, and writing the reply again in the template's way
 * would show it to the model twice. So the delta is only what the template
 * writes after the reply: its end of turn and the new turn. That is the
 * conversation written with an empty reply, after the text it writes before
 * the reply. Of it, what the model already generated at the end of its reply
 * (its own `<|eot_id|>`) is left out. @p n_shown is how much of shown counts.
 * NULL if the template's writing does not have that shape.
 */
static char *delta_after_rewritten_reply(const ChatSession *s, const ChatMessage *with_user, size_t n_shown) {
    int n = s->n_msgs; /* with_user[n - 1] is the reply, with_user[n] the new user message */
    const char *eos = chat_eos_text(s->vocab);
    char *before = chat_apply(s->tmpl, with_user, n - 1, 1, eos);
    ChatMessage *empty = xmalloc(checked_mul((size_t)n + 1, sizeof *empty, "chat messages"));
    memcpy(empty, with_user, ((size_t)n + 1) * sizeof *empty);
    empty[n - 1].content = "";
    char *written = chat_apply(s->tmpl, empty, n + 1, 1, eos);
    free(empty);
    char *delta = NULL;
    size_t nb = strlen(before);
    if (strncmp(written, before, nb) == 0) {
        const char *after = written + nb;
        size_t n_after = strlen(after), n_reply = n_shown - s->reply_text_from;
        size_t overlap = n_after < n_reply ? n_after : n_reply;
        while (overlap > 0 && memcmp(s->shown + n_shown - overlap, after, overlap) != 0) overlap--;
        delta = copy_string(after + overlap);
    }
    free(before);
    free(written);
    return delta;
}

/**
 * The text to feed for a new user message, given @p full, the conversation
 * with it written out; sets *n_keep to how much of shown stays (all of it, or
 * all but an unfed end token, see below) and *n_keep_ids likewise.
 *
 *  1. Usually the model has seen the start of @p full exactly (shown is a
 *     prefix of it): the delta is the rest. After a reply this includes what
 *     the template writes after it that the model did not generate: the whole
 *     `<|im_end|>\n` when the reply was cut short, only `\n` when the model
 *     ended it with `<|im_end|>` itself.
 *  2. The model may end its reply with an end token the template does not
 *     write there (`</s>` where chatml writes `<|im_end|>`). That token was
 *     sampled but never fed to the model (the reply stopped on it), so it is
 *     not in the KV cache: it is dropped, and the template's own end of turn
 *     takes its place, as part of the delta.
 *  3. Otherwise the template rewrote the reply: delta_after_rewritten_reply().
 *  4. If even that does not fit (it cannot happen with these templates), the
 *     delta is @p full from the first byte where it differs from shown.
 */
static char *user_delta(const ChatSession *s, const ChatMessage *with_user, const char *full, size_t *n_keep, int *n_keep_ids) {
    size_t full_len = strlen(full);
    *n_keep = s->n_shown;
    *n_keep_ids = s->n_ids;
    if (shown_starts(s, *n_keep, full, full_len)) return copy_string(full + *n_keep);
    int after_reply = s->n_msgs > 0 && last_is(s, "assistant");
    int last = s->n_ids - 1;
    if (after_reply && last >= s->n_fed && last >= s->reply_ids_from && vocab_is_eog(s->vocab, s->ids[last])) {
        *n_keep = s->n_shown - token_text_len(s->vocab, s->ids[last]);
        *n_keep_ids = last;
        if (shown_starts(s, *n_keep, full, full_len)) return copy_string(full + *n_keep);
    }
    if (after_reply) {
        char *delta = delta_after_rewritten_reply(s, with_user, *n_keep);
        if (delta) return delta;
    }
    size_t same = 0;
    while (same < *n_keep && same < full_len && s->shown[same] == full[same]) same++;
    return copy_string(full + same);
}

int chat_session_user(ChatSession *s, const char *text, char *err, size_t err_len) {
    if (!text) text = "";
    /* A user turn right after a user turn: the model was given the assistant's header and said nothing. */
    if (last_is(s, "user")) chat_session_reply_done(s);
    ChatMessage *with_user = xmalloc(checked_mul((size_t)s->n_msgs + 1, sizeof *with_user, "chat messages"));
    if (s->n_msgs) memcpy(with_user, s->msgs, (size_t)s->n_msgs * sizeof *with_user);
    with_user[s->n_msgs] = (ChatMessage){"user", text};
    char *full = chat_apply(s->tmpl, with_user, s->n_msgs + 1, 1, chat_eos_text(s->vocab));
    size_t n_keep;
    int n_keep_ids;
    char *delta = user_delta(s, with_user, full, &n_keep, &n_keep_ids);
    free(with_user);
    free(full);

    /* BOS (where the vocabulary adds one) only in front of the conversation's first text. */
    int n_new = 0;
    int *ids = vocab_encode(s->vocab, delta, n_keep_ids == 0, &n_new, err, err_len);
    if (!ids) {
        free(delta);
        return -1;
    }
    if (n_new > s->n_ctx - n_keep_ids) {
        if (err && err_len)
            snprintf(err, err_len, "the conversation is full: this message needs %d tokens, and only %d of the context's %d are left",
                     n_new, s->n_ctx - n_keep_ids > 0 ? s->n_ctx - n_keep_ids : 0, s->n_ctx);
        free(ids);
        free(delta);
        return -1;
    }
    s->n_ids = n_keep_ids;
    s->n_shown = n_keep;
    s->shown[n_keep] = '\0';
    add_message(s, "user", text);
    for (int i = 0; i < n_new; i++) add_id(s, ids[i]);
    add_shown(s, delta, strlen(delta));
    s->reply_ids_from = s->n_ids;
    s->reply_text_from = s->n_shown;
    free(ids);
    free(delta);
    return n_new;
}

void chat_session_token(ChatSession *s, int id) {
    add_id(s, id);
    Text t = {s->shown, s->n_shown, s->cap_shown};
    add_token_text(&t, s->vocab, id);
    s->shown = t.text;
    s->n_shown = t.len;
    s->cap_shown = t.cap;
}

/**
 * The reply's content is the text of its tokens (as in shown), without a
 * final end-of-generation token: that ends the turn, it is not part of what
 * was said, and the template writes its own end of turn. Called twice, or
 * before any user turn, it does nothing.
 */
void chat_session_reply_done(ChatSession *s) {
    if (!last_is(s, "user")) return;
    size_t end = s->n_shown;
    int last = s->n_ids - 1;
    if (last >= s->reply_ids_from && vocab_is_eog(s->vocab, s->ids[last])) end -= token_text_len(s->vocab, s->ids[last]);
    size_t n = end - s->reply_text_from;
    char *content = xmalloc(n + 1);
    memcpy(content, s->shown + s->reply_text_from, n);
    content[n] = '\0';
    add_message(s, "assistant", content);
    free(content);
}

void chat_session_free(ChatSession *s) {
    for (int i = 0; i < s->n_msgs; i++) {
        free((char *)s->msgs[i].role);
        free((char *)s->msgs[i].content);
    }
    free(s->msgs);
    free(s->shown);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/**
 * @file unit_chat.c
 * @brief Unit tests of chat.c: the templates against llama.cpp's output, their
 * detection, and conversations kept as tokens.
 *
 * Usage: unit_chat [SHARED]   (default ../shared). Checks whose files are
 * missing under SHARED are skipped, not failed.
 *
 *  - every built-in format, written on the reference conversation
 *    (SHARED/reference/chat/conversation.json), must equal llama.cpp's output
 *    byte for byte (builtin-NAME.txt);
 *  - every reference Jinja template must be detected as llama.cpp detects it,
 *    and written as llama.cpp writes it (NAME.jinja.txt), except the zephyr
 *    one, which the book detects as zephyr and writes as the model's template
 *    renders it (worked out by hand below);
 *  - names: each one found, the list complete, unknown names refused;
 *  - sessions on a real SentencePiece vocabulary (stories260K's): after a user
 *    turn, a reply and another user turn, the session's ids must be exactly the
 *    tokenization of the whole conversation written at once, and the second
 *    turn must add exactly the ids of its delta; a turn that would overflow the
 *    context must be refused and change nothing;
 *  - reference/chat/tokens.tsv (llama-tokenize on the built-in outputs) and
 *    the same session checks on byte-level BPE vocabularies, once
 *    vocab_from_gguf() reads them (skipped while it does not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "gguf.h"
#include "gguf_vocab.h"
#include "tokenizer.h"
#include "unit.h"
#include "util.h"

/* ======================================================================== */
/* Files                                                                    */
/* ======================================================================== */

static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = xmalloc(na + nb + 2);
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

/** The whole file as a NUL-terminated string (its length in *len), or NULL if it cannot be read. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) fatal("out of memory");
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/** A shown form of @p s for failure messages (newlines as \n, cut at 300 bytes). */
static const char *show(const char *s) {
    static char buf[4][700];
    static int k;
    char *out = buf[k++ & 3];
    size_t n = 0;
    for (; s && *s && n < 600; s++) {
        if (*s == '\n') out[n++] = '\\', out[n++] = 'n';
        else out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

/* ======================================================================== */
/* The reference conversation                                               */
/* ======================================================================== */

static const ChatMessage CONV[4] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi there. How can I help?"},
    {"user", "Tell me a story about a cat."},
};

/** The JSON string after the @p k-th occurrence of @p key in @p json, unescaped only if it has no escapes. */
static int json_nth_string(const char *json, const char *key, int k, char *out, size_t out_len) {
    const char *p = json;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, key);
        if (!p) return 0;
        p += strlen(key);
    }
    p = strchr(p, ':');
    if (!p) return 0;
    p = strchr(p, '"');
    if (!p) return 0;
    const char *end = strchr(++p, '"');
    if (!end || (size_t)(end - p) >= out_len || memchr(p, '\\', (size_t)(end - p))) return 0;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 1;
}

/** The test's conversation must be the reference one (conversation.json), message by message. */
static void check_conversation_file(const char *shared) {
    char *path = join(shared, "reference/chat/conversation.json");
    char *json = read_file(path, NULL);
    if (!json) {
        SKIP("conversation.json", "reference/chat/conversation.json is absent");
        free(path);
        return;
    }
    int same = 1;
    char role[64], content[256];
    for (int i = 0; i < 4; i++) {
        if (!json_nth_string(json, "\"role\"", i, role, sizeof role) || !json_nth_string(json, "\"content\"", i, content, sizeof content) ||
            strcmp(role, CONV[i].role) != 0 || strcmp(content, CONV[i].content) != 0)
            same = 0;
    }
    CHECK("conversation.json: the test's messages are the reference's", same && !json_nth_string(json, "\"role\"", 4, role, sizeof role),
          "the file's messages differ from CONV");
    free(json);
    free(path);
}

/* ======================================================================== */
/* Built-in formats                                                         */
/* ======================================================================== */

/** chat_apply(@p t, the conversation) must equal the file @p file of reference/chat. */
static void check_against_file(const char *shared, const char *check, const char *file, ChatTemplate t, const char *eos_text) {
    char *dir = join(shared, "reference/chat"), *path = join(dir, file);
    free(dir);
    size_t len;
    char *want = read_file(path, &len);
    if (!want) {
        SKIP(check, "a reference file is absent");
        free(path);
        return;
    }
    char *got = chat_apply(t, CONV, 4, 1, eos_text);
    CHECK(check, got && strlen(got) == len && memcmp(got, want, len) == 0, "got \"%s\", want \"%s\"", show(got), show(want));
    free(got);
    free(want);
    free(path);
}

static void check_builtins(const char *shared) {
    check_against_file(shared, "builtin chatml", "builtin-chatml.txt", CHAT_CHATML, NULL);
    check_against_file(shared, "builtin llama2", "builtin-llama2.txt", CHAT_LLAMA2, NULL);
    check_against_file(shared, "builtin llama2-sys", "builtin-llama2-sys.txt", CHAT_LLAMA2_SYS, NULL);
    check_against_file(shared, "builtin llama3", "builtin-llama3.txt", CHAT_LLAMA3, NULL);
    check_against_file(shared, "builtin phi3", "builtin-phi3.txt", CHAT_PHI3, NULL);
    check_against_file(shared, "builtin zephyr (no EOS text: llama.cpp's <|endoftext|>)", "builtin-zephyr.txt", CHAT_ZEPHYR, NULL);
    check_against_file(shared, "builtin zephyr (EOS text <|endoftext|>)", "builtin-zephyr.txt", CHAT_ZEPHYR, "<|endoftext|>");
    /* No outer spaces in the conversation, so stripping changes nothing. */
    check_against_file(shared, "builtin llama2-sys-strip = llama2-sys here", "builtin-llama2-sys.txt", CHAT_LLAMA2_SYS_STRIP, NULL);
}

static void expect_apply(const char *check, ChatTemplate t, const ChatMessage *m, int n, int add_assistant, const char *eos, const char *want) {
    char *got = chat_apply(t, m, n, add_assistant, eos);
    CHECK(check, got && strcmp(got, want) == 0, "got \"%s\", want \"%s\"", show(got), show(want));
    free(got);
}

/* The formats on cases the reference conversation does not reach (written out by hand from llama.cpp's rules). */
static void check_format_details(void) {
    expect_apply("llama2-sys-bos: <s> before every [INST] after the first", CHAT_LLAMA2_SYS_BOS, CONV, 4, 1, NULL,
                 "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]Hi there. How can I help?</s>"
                 "<s>[INST] Tell me a story about a cat. [/INST]");
    const ChatMessage spaced[3] = {{"system", "  Be brief. "}, {"user", "\tHi \n"}, {"assistant", " Yes. "}};
    expect_apply("llama2-sys-strip trims every message", CHAT_LLAMA2_SYS_STRIP, spaced, 3, 1, NULL,
                 "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Yes.</s>");
    expect_apply("llama2-sys keeps the spaces", CHAT_LLAMA2_SYS, spaced, 3, 1, NULL,
                 "[INST] <<SYS>>\n  Be brief. \n<</SYS>>\n\n\tHi \n [/INST] Yes. </s>");
    expect_apply("llama3 trims the contents", CHAT_LLAMA3, spaced, 2, 0, NULL,
                 "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    expect_apply("chatml keeps the spaces", CHAT_CHATML, spaced, 1, 0, NULL, "<|im_start|>system\n  Be brief. <|im_end|>\n");
    expect_apply("llama2 without <<SYS>>: system text then a newline", CHAT_LLAMA2, spaced, 2, 0, NULL, "[INST]   Be brief. \n\tHi \n [/INST]");
    const ChatMessage two_users[2] = {{"user", "a"}, {"user", "b"}};
    expect_apply("llama2: two user messages stay in one [INST]", CHAT_LLAMA2, two_users, 2, 1, NULL, "[INST] a [/INST]b [/INST]");
    expect_apply("chatml: add_assistant 0 writes no header", CHAT_CHATML, CONV, 2, 0, NULL,
                 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n");
    expect_apply("phi3: add_assistant 0 writes no header", CHAT_PHI3, CONV + 1, 1, 0, NULL, "<|user|>\nHello!<|end|>\n");
    expect_apply("zephyr: the turn ends with the EOS text", CHAT_ZEPHYR, CONV + 1, 1, 1, "</s>", "<|user|>\nHello!</s>\n<|assistant|>\n");
    expect_apply("llama2: add_assistant changes nothing", CHAT_LLAMA2, CONV + 1, 1, 0, NULL, "[INST] Hello! [/INST]");
    expect_apply("an empty conversation is only the header", CHAT_CHATML, CONV, 0, 1, NULL, "<|im_start|>assistant\n");
    expect_apply("an empty conversation without header is \"\"", CHAT_LLAMA3, CONV, 0, 0, NULL, "");
    expect_apply("any role is written as given", CHAT_CHATML, (const ChatMessage[]){{"tool", "x"}}, 1, 0, NULL, "<|im_start|>tool\nx<|im_end|>\n");
    char *none = chat_apply(CHAT_UNKNOWN, CONV, 4, 1, NULL);
    CHECK("chat_apply(CHAT_UNKNOWN) is NULL", none == NULL, "got \"%s\"", show(none));
    free(none);
    none = chat_apply(CHAT_N_TEMPLATES, CONV, 4, 1, NULL);
    CHECK("chat_apply(CHAT_N_TEMPLATES) is NULL", none == NULL, "got \"%s\"", show(none));
    free(none);
}

/* ======================================================================== */
/* Names                                                                    */
/* ======================================================================== */

static void check_names(void) {
    int all = 1;
    for (int t = 0; t < CHAT_N_TEMPLATES; t++)
        if (chat_template_by_name(chat_template_name((ChatTemplate)t)) != (ChatTemplate)t) all = 0;
    CHECK("every template is found by its name", all, "a name does not give its template back");
    CHECK("chatml is called chatml", strcmp(chat_template_name(CHAT_CHATML), "chatml") == 0, "%s", chat_template_name(CHAT_CHATML));
    CHECK("zephyr is called zephyr", chat_template_by_name("zephyr") == CHAT_ZEPHYR, "zephyr");
    CHECK("llama2-sys-strip is called so", chat_template_by_name("llama2-sys-strip") == CHAT_LLAMA2_SYS_STRIP, "llama2-sys-strip");
    CHECK("llama3 is called llama3", chat_template_by_name("llama3") == CHAT_LLAMA3, "llama3");
    /* The list: each comma-separated name is a template, and each template appears once. */
    char list[512];
    snprintf(list, sizeof list, "%s", chat_template_names());
    int seen[CHAT_N_TEMPLATES] = {0}, bad = 0, n = 0;
    for (char *tok = strtok(list, ", "); tok; tok = strtok(NULL, ", ")) {
        ChatTemplate t = chat_template_by_name(tok);
        if (t == CHAT_UNKNOWN || seen[t]++) bad = 1;
        n++;
    }
    CHECK("chat_template_names lists every template once", !bad && n == CHAT_N_TEMPLATES, "\"%s\"", chat_template_names());
    const char *unknown[] = {"ChatML", "", "llama2-sys-", "chatml ", "glmedge", "gemma", "mistral-v7", "llama"};
    int refused = 1;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        if (chat_template_by_name(unknown[i]) != CHAT_UNKNOWN) refused = 0;
    CHECK("unknown names are CHAT_UNKNOWN", refused && chat_template_by_name(NULL) == CHAT_UNKNOWN, "one was accepted");
    CHECK("the name of CHAT_UNKNOWN", strcmp(chat_template_name(CHAT_UNKNOWN), "unknown") == 0, "%s", chat_template_name(CHAT_UNKNOWN));
}

/* ======================================================================== */
/* Detection                                                                */
/* ======================================================================== */

/*
 * The zephyr template (Hugging Face's zephyr-7b-beta, TinyLlama-Chat's format)
 * rendered on the reference conversation with eos_token "</s>", worked out by
 * hand. Hugging Face renders chat templates with trim_blocks (the newline
 * right after a {% ... %} tag is dropped) and lstrip_blocks (nothing to strip
 * here). So of the template's line breaks only those after the {{ ... }} lines
 * remain: each message gives '<|role|>\n' + content + eos_token, then "\n";
 * the last one adds '<|assistant|>' and "\n". The breaks inside the quoted
 * strings are the newline after each <|role|>.
 */
static const char ZEPHYR_HF[] =
    "<|system|>\nYou are a helpful assistant.</s>\n"
    "<|user|>\nHello!</s>\n"
    "<|assistant|>\nHi there. How can I help?</s>\n"
    "<|user|>\nTell me a story about a cat.</s>\n"
    "<|assistant|>\n";

/* What llama.cpp's "glmedge" writes (no turn ends, no newline after a turn): how it wrote the zephyr template's
 * reference output. Checking that the reference is exactly this shows where llama.cpp's detection went. */
static char *glmedge(const ChatMessage *m, int n) {
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += strlen(m[i].role) + strlen(m[i].content) + 8;
    char *s = xmalloc(cap);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(s, "<|");
        strcat(s, m[i].role);
        strcat(s, "|>\n");
        strcat(s, m[i].content);
    }
    strcat(s, "<|assistant|>");
    return s;
}

static const struct {
    const char *file;
    ChatTemplate want;
} JINJA[] = {
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", CHAT_LLAMA3},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja", CHAT_LLAMA3},
    {"Qwen-Qwen2.5-7B-Instruct.jinja", CHAT_CHATML},
    {"microsoft-Phi-3.5-mini-instruct.jinja", CHAT_PHI3},
    {"test-Llama-3.jinja", CHAT_LLAMA3},
    {"test-Phi-3-mini.jinja", CHAT_PHI3},
    {"test-OpenHermes-2.5-Mistral-7B.jinja", CHAT_CHATML},
    {"hfjs-hf-internal-testing-llama-tokenizer.jinja", CHAT_LLAMA2_SYS_STRIP},
    {"hfjs-HuggingFaceH4-zephyr-7b-beta.jinja", CHAT_ZEPHYR},
};

static void check_jinja_file(const char *shared, const char *file, ChatTemplate want) {
    char *dir = join(shared, "reference/chat/jinja"), *path = join(dir, file), name[200];
    size_t n_txt = strlen(path) + 5;
    char *txt_path = xmalloc(n_txt);
    snprintf(txt_path, n_txt, "%s.txt", path);
    size_t len;
    char *jinja = read_file(path, NULL), *want_out = read_file(txt_path, &len);
    snprintf(name, sizeof name, "detect %s", file);
    if (!jinja || !want_out) {
        SKIP(name, "the template or its output is absent");
    } else {
        ChatTemplate got = chat_template_detect(jinja);
        CHECK(name, got == want, "detected %s, want %s", chat_template_name(got), chat_template_name(want));
        snprintf(name, sizeof name, "write %s", file);
        if (want == CHAT_ZEPHYR) {
            /* Our rule: as the model's template renders it. llama.cpp's output (glmedge) is a different text. */
            expect_apply(name, CHAT_ZEPHYR, CONV, 4, 1, "</s>", ZEPHYR_HF);
            char *g = glmedge(CONV, 4);
            CHECK("the zephyr template's reference output is llama.cpp's glmedge", strlen(g) == len && memcmp(g, want_out, len) == 0,
                  "reference \"%s\"", show(want_out));
            free(g);
        } else {
            char *out = chat_apply(got, CONV, 4, 1, NULL);
            CHECK(name, out && strlen(out) == len && memcmp(out, want_out, len) == 0, "got \"%s\", want \"%s\"", show(out), show(want_out));
            free(out);
        }
    }
    free(jinja);
    free(want_out);
    free(txt_path);
    free(path);
    free(dir);
}

static void expect_detect(const char *check, const char *jinja, ChatTemplate want) {
    ChatTemplate got = chat_template_detect(jinja);
    CHECK(check, got == want, "detected %s, want %s", chat_template_name(got), chat_template_name(want));
}

/* llama.cpp's rules one by one, on made-up strings: each family's telltales, and the order between them. */
static void check_detect_rules(void) {
    expect_detect("a name is taken as the template: chatml", "chatml", CHAT_CHATML);
    expect_detect("a name is taken as the template: llama2-sys-bos", "llama2-sys-bos", CHAT_LLAMA2_SYS_BOS);
    expect_detect("llama.cpp's names the book does not write: gemma", "gemma", CHAT_UNKNOWN);
    expect_detect("mistral-v1 is a name, not a llama2 template", "mistral-v1", CHAT_UNKNOWN);
    expect_detect("text starting with \"mistral\" is llama2's family", "mistral!", CHAT_LLAMA2);
    expect_detect("NULL", NULL, CHAT_UNKNOWN);
    expect_detect("empty", "", CHAT_UNKNOWN);
    expect_detect("plain text", "{{ messages }}", CHAT_UNKNOWN);
    expect_detect("<|im_start|>", "x<|im_start|>y", CHAT_CHATML);
    expect_detect("<|im_start|> with <|im_sep|> is phi4", "<|im_start|><|im_sep|>", CHAT_UNKNOWN);
    expect_detect("chatml before llama3", "<|im_start|><|start_header_id|><|end_header_id|>", CHAT_CHATML);
    expect_detect("[INST]", "[INST]", CHAT_LLAMA2);
    expect_detect("[INST] <<SYS>>", "[INST] <<SYS>>", CHAT_LLAMA2_SYS);
    expect_detect("[INST] bos_token + '[INST]", "<<SYS>> bos_token + '[INST]", CHAT_LLAMA2_SYS_BOS);
    expect_detect("content.strip() wins over bos_token", "bos_token + '[INST] content.strip()", CHAT_LLAMA2_SYS_STRIP);
    expect_detect("[SYSTEM_PROMPT] is mistral-v7", "[INST][SYSTEM_PROMPT]", CHAT_UNKNOWN);
    expect_detect("[AVAILABLE_TOOLS] is mistral-v3", "[INST][AVAILABLE_TOOLS]", CHAT_UNKNOWN);
    expect_detect("' [INST] ' + system_message is mistral-v1", "' [INST] ' + system_message", CHAT_UNKNOWN);
    expect_detect("<|assistant|> <|end|> is phi3", "<|assistant|><|end|><|user|>", CHAT_PHI3);
    expect_detect("<|assistant|> <|user|> </s> is falcon3", "<|assistant|><|user|></s>eos_token", CHAT_UNKNOWN);
    expect_detect("<|assistant|> <|user|> eos_token: zephyr (our rule)", "<|user|> eos_token <|assistant|>", CHAT_ZEPHYR);
    expect_detect("<|assistant|> <|user|> alone is glmedge", "<|user|><|assistant|>", CHAT_UNKNOWN);
    expect_detect("<|user|> <|endoftext|> is zephyr", "<|user|><|endoftext|>", CHAT_ZEPHYR);
    expect_detect("<|user|> without an end is nothing", "<|user|>", CHAT_UNKNOWN);
    expect_detect("gemma before llama3", "<start_of_turn><|start_header_id|><|end_header_id|>", CHAT_UNKNOWN);
    expect_detect("vicuna before llama3", "USER: ASSISTANT: <|start_header_id|><|end_header_id|>", CHAT_UNKNOWN);
    expect_detect("command-r before llama3", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|start_header_id|><|end_header_id|>", CHAT_UNKNOWN);
    expect_detect("llama3 needs both header marks", "<|start_header_id|>", CHAT_UNKNOWN);
    expect_detect("llama3", "<|start_header_id|><|end_header_id|>", CHAT_LLAMA3);
}

/** The chat template a model file carries must be detected as its family's. */
static void check_file_template(const char *shared, const char *file, ChatTemplate want) {
    char *path = join(shared, file), name[200];
    snprintf(name, sizeof name, "detect tokenizer.chat_template of %s", file);
    if (!is_regular_file(path)) {
        SKIP(name, "the file is absent");
        free(path);
        return;
    }
    GgufFile *g = gguf_open(path);
    const char *s;
    size_t len;
    char err[200];
    if (gguf_get_string(g, "tokenizer.chat_template", &s, &len, err, sizeof err) != GGUF_FOUND) {
        CHECK(name, 0, "the file has no chat template");
    } else {
        char *jinja = xmalloc(len + 1);
        memcpy(jinja, s, len);
        jinja[len] = '\0';
        ChatTemplate got = chat_template_detect(jinja);
        CHECK(name, got == want, "detected %s, want %s", chat_template_name(got), chat_template_name(want));
        free(jinja);
    }
    gguf_close(g);
    free(path);
}

static void check_detection(const char *shared) {
    for (size_t i = 0; i < sizeof JINJA / sizeof JINJA[0]; i++) check_jinja_file(shared, JINJA[i].file, JINJA[i].want);
    check_detect_rules();
    check_file_template(shared, "models/gguf/families/qwen2-syn-f32.gguf", CHAT_CHATML);
    check_file_template(shared, "models/gguf/families/llama3-syn-q4_k_m.gguf", CHAT_LLAMA3);
}

/* ======================================================================== */
/* Sessions                                                                 */
/* ======================================================================== */

/** A SentencePiece vocabulary read from a GGUF file the way chapters 5 to 7 read it (NULL if absent). */
static Vocab *spm_vocab(const char *path) {
    if (!is_regular_file(path)) return NULL;
    GgufFile *g = gguf_open(path);
    const char **texts;
    size_t *lens;
    uint64_t n, n_scores, n_types;
    float *scores;
    int32_t *types;
    char err[200];
    if (gguf_get_string_array(g, "tokenizer.ggml.tokens", &texts, &lens, &n, err, sizeof err) != GGUF_FOUND ||
        gguf_get_f32_array(g, "tokenizer.ggml.scores", &scores, &n_scores, err, sizeof err) != GGUF_FOUND ||
        gguf_get_i32_array(g, "tokenizer.ggml.token_type", &types, &n_types, err, sizeof err) != GGUF_FOUND)
        fatal("%s: not a SentencePiece vocabulary", path);
    Vocab *v = vocab_from_arrays(path, (int)n, texts, lens, scores, types, 1, 2, 0);
    free(texts);
    free(lens);
    free(scores);
    free(types);
    gguf_close(g);
    return v;
}

/** vocab_encode that must succeed. */
static int *encode(const Vocab *v, const char *text, int add_bos, int *n) {
    char err[200];
    int *ids = vocab_encode(v, text, add_bos, n, err, sizeof err);
    if (!ids) fatal("unit_chat: cannot encode \"%s\": %s", show(text), err);
    return ids;
}

static int same_ids(const int *a, int na, const int *b, int nb) { return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0); }

static int starts_with_ids(const int *a, int na, const int *prefix, int np) {
    return np <= na && (np == 0 || memcmp(a, prefix, (size_t)np * sizeof *a) == 0);
}

/** The model's generation of @p gen, as a chat loop does it: each token recorded, all but the last fed. */
static void generate(ChatSession *s, const int *gen, int n) {
    s->n_fed = s->n_ids;
    for (int i = 0; i < n; i++) {
        s->n_fed = s->n_ids; /* the tokens before this one have been through the model */
        chat_session_token(s, gen[i]);
    }
}

/** The conversation of the session test: system, user, the reply, user. */
static const char *const SYS = "You are a helpful assistant.", *const U1 = "Hello!", *const REPLY = "Hi there. How can I help?",
                         *const U2 = "Tell me a story about a cat.";

/**
 * The session on vocabulary @p v in template @p t, where the model ends its
 * reply with @p end_text, a single end-of-generation token: the ids must be
 * the tokenization of the whole conversation at every step.
 */
static void check_session_whole(const char *label, const Vocab *v, ChatTemplate t, const char *end_text) {
    char name[200];
    const char *eos = NULL;
    int eos_len;
    if (t == CHAT_ZEPHYR) eos = vocab_piece_text(v, v->eos_id, &eos_len);
    ChatSession s;
    chat_session_init(&s, v, t, SYS, 4096);
    char err[200] = "";
    int n1 = chat_session_user(&s, U1, err, sizeof err);
    ChatMessage m[5] = {{"system", SYS}, {"user", U1}, {"assistant", REPLY}, {"user", U2}};
    char *text1 = chat_apply(t, m, 2, 1, eos);
    int n_want1, *want1 = encode(v, text1, 1, &n_want1);
    snprintf(name, sizeof name, "%s: the first turn is the conversation so far, BOS first", label);
    CHECK(name, n1 == n_want1 && same_ids(s.ids, s.n_ids, want1, n_want1), "%d ids, want %d", s.n_ids, n_want1);
    snprintf(name, sizeof name, "%s: shown is the text of the first turn", label);
    CHECK(name, strcmp(s.shown, text1) == 0 && s.n_shown == strlen(text1), "shown \"%s\"", show(s.shown));

    /* The reply the model "generates": the canonical tokens of the reply and its end token after the first turn. */
    size_t n_p = strlen(text1) + strlen(REPLY) + strlen(end_text) + 1;
    char *p = xmalloc(n_p);
    snprintf(p, n_p, "%s%s%s", text1, REPLY, end_text);
    int n_pid, *pid = encode(v, p, 1, &n_pid);
    snprintf(name, sizeof name, "%s: the reply's tokens follow the first turn's", label);
    int canonical = starts_with_ids(pid, n_pid, s.ids, s.n_ids) && n_pid > s.n_ids;
    CHECK(name, canonical, "the tokenization of turn + reply does not start with the turn's ids");
    if (!canonical) goto done;
    int before_reply = s.n_ids;
    generate(&s, pid + before_reply, n_pid - before_reply);
    snprintf(name, sizeof name, "%s: the reply ends with an end-of-generation token", label);
    CHECK(name, vocab_is_eog(v, s.ids[s.n_ids - 1]), "id %d is not an end of generation", s.ids[s.n_ids - 1]);
    chat_session_reply_done(&s);
    snprintf(name, sizeof name, "%s: the reply is recorded without its end token", label);
    CHECK(name, s.n_msgs == 3 && strcmp(s.msgs[2].role, "assistant") == 0 && strcmp(s.msgs[2].content, REPLY) == 0,
          "content \"%s\"", s.n_msgs == 3 ? show(s.msgs[2].content) : "?");

    int before = s.n_ids;
    int n2 = chat_session_user(&s, U2, err, sizeof err);
    char *text2 = chat_apply(t, m, 4, 1, eos);
    int n_want2, *want2 = encode(v, text2, 1, &n_want2);
    snprintf(name, sizeof name, "%s: after the second turn the ids are the whole conversation's", label);
    CHECK(name, same_ids(s.ids, s.n_ids, want2, n_want2), "%d ids, want %d (%s)", s.n_ids, n_want2, err);
    snprintf(name, sizeof name, "%s: shown is the whole conversation's text", label);
    CHECK(name, strcmp(s.shown, text2) == 0, "shown \"%s\"\nwant \"%s\"", show(s.shown), show(text2));
    /* The delta: what the whole text has after turn 1 + reply + the end token the model wrote. */
    int n_delta, *delta = NULL;
    if (strncmp(text2, p, strlen(p)) == 0) delta = encode(v, text2 + strlen(p), 0, &n_delta);
    snprintf(name, sizeof name, "%s: the second turn adds exactly the delta's ids", label);
    CHECK(name, delta && n2 == n_delta && s.n_ids == before + n2 && same_ids(s.ids + before, n2, delta, n_delta),
          "added %d ids, the delta has %d", n2, delta ? n_delta : -1);
    snprintf(name, sizeof name, "%s: the model is fed the unfed end token and the delta", label);
    CHECK(name, s.n_fed == before - 1, "n_fed %d, n_ids before %d", s.n_fed, before);
    free(delta);
    free(want2);
    free(text2);
done:
    free(pid);
    free(p);
    free(want1);
    free(text1);
    chat_session_free(&s);
}

/** A reply cut short (Ctrl-C, the length limit): the template's whole end of turn goes into the next delta. */
static void check_session_cut_reply(const Vocab *v) {
    ChatSession s;
    chat_session_init(&s, v, CHAT_ZEPHYR, NULL, 4096);
    char err[200];
    chat_session_user(&s, U1, err, sizeof err);
    int n_r, *r = encode(v, "Hi\nyou", 0, &n_r); /* " Hi\nyou" (the dummy prefix adds the space); \n is a byte token */
    generate(&s, r, n_r);
    s.n_fed = s.n_ids; /* this loop fed every token */
    chat_session_reply_done(&s);
    CHECK("cut reply: recorded as generated", s.n_msgs == 2 && strcmp(s.msgs[1].content, " Hi\nyou") == 0, "content \"%s\"", show(s.msgs[1].content));
    size_t before_text = s.n_shown;
    int before = s.n_ids;
    int n2 = chat_session_user(&s, "More.", err, sizeof err);
    CHECK("cut reply: the delta starts with the template's end of turn", strcmp(s.shown + before_text, "</s>\n<|user|>\nMore.</s>\n<|assistant|>\n") == 0,
          "delta \"%s\"", show(s.shown + before_text));
    int n_d, *d = encode(v, "</s>\n<|user|>\nMore.</s>\n<|assistant|>\n", 0, &n_d);
    CHECK("cut reply: its ids", n2 == n_d && same_ids(s.ids + before, n2, d, n_d), "%d ids, want %d", n2, n_d);
    CHECK("cut reply: EOS is the delta's first id", n2 > 0 && s.ids[before] == v->eos_id, "first id %d", s.ids[before]);
    free(d);
    free(r);
    chat_session_free(&s);
}

/** Reply tokens for @p text after the first turn of @p s, then EOS. */
static int *reply_then_eos(const Vocab *v, const char *text, int *n) {
    int n_r, *r = encode(v, text, 0, &n_r);
    int *g = xmalloc(((size_t)n_r + 1) * sizeof *g);
    memcpy(g, r, (size_t)n_r * sizeof *g);
    g[n_r] = v->eos_id;
    *n = n_r + 1;
    free(r);
    return g;
}

/**
 * The model ends with EOS where the template writes its own end of turn
 * (chatml's <|im_end|>): never fed, the EOS is replaced by the template's end;
 * fed, it stays, and the template's end follows it.
 */
static void check_session_foreign_end(const Vocab *v) {
    for (int fed = 0; fed <= 1; fed++) {
        ChatSession s;
        chat_session_init(&s, v, CHAT_CHATML, NULL, 4096);
        char err[200], name[160];
        chat_session_user(&s, U1, err, sizeof err);
        int n_g, *g = reply_then_eos(v, "Hi", &n_g);
        generate(&s, g, n_g);
        if (fed) s.n_fed = s.n_ids;
        chat_session_reply_done(&s);
        const char *mode = fed ? "fed EOS" : "unfed EOS";
        snprintf(name, sizeof name, "chatml, %s: the reply is recorded without EOS", mode);
        CHECK(name, strcmp(s.msgs[1].content, " Hi") == 0, "content \"%s\"", show(s.msgs[1].content));
        int before = s.n_ids;
        size_t before_text = s.n_shown;
        int n2 = chat_session_user(&s, "More.", err, sizeof err);
        const char *tail = "<|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n<|im_start|>assistant\n";
        int n_d, *d = encode(v, tail, 0, &n_d);
        if (!fed) {
            snprintf(name, sizeof name, "chatml, %s: the EOS is dropped, the template's end takes its place", mode);
            CHECK(name, s.n_ids == before - 1 + n2 && same_ids(s.ids + before - 1, n2, d, n_d) && s.n_fed == before - 1,
                  "n_ids %d, before %d, added %d", s.n_ids, before, n2);
            char *whole = chat_apply(CHAT_CHATML, s.msgs, s.n_msgs, 1, NULL);
            snprintf(name, sizeof name, "chatml, %s: shown is the template's text", mode);
            CHECK(name, strcmp(s.shown, whole) == 0, "shown \"%s\"", show(s.shown));
            free(whole);
        } else {
            snprintf(name, sizeof name, "chatml, %s: the EOS stays and the template's end follows", mode);
            CHECK(name, s.ids[before - 1] == v->eos_id && same_ids(s.ids + before, n2, d, n_d) && strcmp(s.shown + before_text, tail) == 0,
                  "delta \"%s\"", show(s.shown + before_text));
        }
        free(d);
        free(g);
        chat_session_free(&s);
    }
}

/** llama3 trims the reply: the reply the model generated stays, only the template's end of turn and the new turn follow. */
static void check_session_rewritten_reply(const Vocab *v) {
    ChatSession s;
    chat_session_init(&s, v, CHAT_LLAMA3, NULL, 4096);
    char err[200];
    chat_session_user(&s, U1, err, sizeof err);
    int n_g, *g = reply_then_eos(v, "Hi ", &n_g); /* text " Hi " (the dummy prefix adds the first space) */
    generate(&s, g, n_g);
    chat_session_reply_done(&s);
    size_t reply_at = s.reply_text_from;
    int n2 = chat_session_user(&s, "More.", err, sizeof err);
    const char *want = " Hi <|eot_id|><|start_header_id|>user<|end_header_id|>\n\nMore.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK("llama3, trimmed reply: the reply once, then the template's end and turn", strcmp(s.shown + reply_at, want) == 0,
          "after the header \"%s\"", show(s.shown + reply_at));
    CHECK("llama3, trimmed reply: the unfed EOS is dropped", n2 > 0 && s.ids[s.n_ids - n2 - 1] != v->eos_id, "EOS still there");
    free(g);
    chat_session_free(&s);

    /* The same, where the model wrote the template's end of turn itself (here as plain text): it is not written twice. */
    chat_session_init(&s, v, CHAT_LLAMA3, NULL, 4096);
    chat_session_user(&s, U1, err, sizeof err);
    int n_r, *r = encode(v, "Hi <|eot_id|>", 0, &n_r);
    generate(&s, r, n_r);
    s.n_fed = s.n_ids;
    chat_session_reply_done(&s);
    reply_at = s.reply_text_from;
    chat_session_user(&s, "More.", err, sizeof err);
    want = " Hi <|eot_id|><|start_header_id|>user<|end_header_id|>\n\nMore.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK("llama3, trimmed reply with its own <|eot_id|>: no second <|eot_id|>", strcmp(s.shown + reply_at, want) == 0,
          "after the header \"%s\"", show(s.shown + reply_at));
    free(r);
    chat_session_free(&s);
}

static int snapshot_equal(const ChatSession *s, const int *ids, int n_ids, const char *shown, int n_msgs) {
    return s->n_ids == n_ids && same_ids(s->ids, s->n_ids, ids, n_ids) && strcmp(s->shown, shown) == 0 && s->n_shown == strlen(shown) &&
           s->n_msgs == n_msgs;
}

/** A turn that does not fit in n_ctx is refused with a message, and the session does not change. */
static void check_session_overflow(const Vocab *v) {
    char err[200] = "";
    ChatSession s;
    chat_session_init(&s, v, CHAT_CHATML, SYS, 8);
    int n = chat_session_user(&s, U1, err, sizeof err);
    CHECK("overflow: a first turn larger than the context is refused", n == -1 && strstr(err, "full") && s.n_ids == 0 && s.n_msgs == 1 && s.n_shown == 0,
          "returned %d, %d ids, err \"%s\"", n, s.n_ids, err);
    chat_session_free(&s);

    ChatMessage m[2] = {{"system", SYS}, {"user", U1}};
    char *t1 = chat_apply(CHAT_CHATML, m, 2, 1, NULL);
    int n1, *ids1 = encode(v, t1, 1, &n1);
    chat_session_init(&s, v, CHAT_CHATML, SYS, n1 + 5);
    n = chat_session_user(&s, U1, err, sizeof err);
    CHECK("overflow: a turn that fits is taken", n == n1, "returned %d, want %d (%s)", n, n1, err);
    int n_g, *g = reply_then_eos(v, "Hi", &n_g);
    generate(&s, g, n_g > 3 ? 3 : n_g);
    chat_session_reply_done(&s);
    int n_ids = s.n_ids, n_msgs = s.n_msgs;
    int *ids = xmalloc((size_t)n_ids * sizeof *ids);
    memcpy(ids, s.ids, (size_t)n_ids * sizeof *ids);
    char *shown = xmalloc(s.n_shown + 1);
    memcpy(shown, s.shown, s.n_shown + 1);
    err[0] = '\0';
    n = chat_session_user(&s, U2, err, sizeof err);
    CHECK("overflow: a second turn past the context is refused", n == -1 && err[0] != '\0', "returned %d", n);
    CHECK("overflow: the refusal names the context", strstr(err, "context") != NULL, "err \"%s\"", err);
    CHECK("overflow: nothing changed", snapshot_equal(&s, ids, n_ids, shown, n_msgs), "the session changed");
    /* and a short one still fits afterwards */
    s.n_ctx = 4096;
    n = chat_session_user(&s, U2, err, sizeof err);
    CHECK("overflow: with room the same turn is taken", n > 0 && s.n_msgs == n_msgs + 1, "returned %d (%s)", n, err);
    free(shown);
    free(ids);
    free(g);
    free(ids1);
    free(t1);
    chat_session_free(&s);
}

/** Two user turns in a row: an empty reply is recorded between them. */
static void check_session_no_reply(const Vocab *v) {
    ChatSession s;
    chat_session_init(&s, v, CHAT_PHI3, NULL, 4096);
    char err[200];
    chat_session_user(&s, "a", err, sizeof err);
    chat_session_user(&s, "b", err, sizeof err);
    CHECK("no reply: an empty assistant message is recorded", s.n_msgs == 3 && strcmp(s.msgs[1].role, "assistant") == 0 && s.msgs[1].content[0] == '\0',
          "%d messages", s.n_msgs);
    char *whole = chat_apply(CHAT_PHI3, s.msgs, s.n_msgs, 1, NULL);
    CHECK("no reply: shown is the template's text", strcmp(s.shown, whole) == 0, "shown \"%s\"", show(s.shown));
    chat_session_reply_done(&s);
    chat_session_reply_done(&s);
    CHECK("reply_done twice records one reply", s.n_msgs == 4, "%d messages", s.n_msgs);
    free(whole);
    chat_session_free(&s);
}

static void check_sessions(const char *shared) {
    char *path = join(shared, "models/gguf/stories260K-f32.gguf");
    Vocab *v = spm_vocab(path);
    if (!v) {
        SKIP("sessions", "models/gguf/stories260K-f32.gguf is absent");
        free(path);
        return;
    }
    int len;
    const char *eos = vocab_piece_text(v, v->eos_id, &len);
    CHECK("the EOS text of stories260K is </s>", len == 4 && memcmp(eos, "</s>", 4) == 0, "\"%.*s\"", len, eos);
    check_session_whole("stories260K zephyr", v, CHAT_ZEPHYR, "</s>");
    check_session_whole("stories260K llama2-sys", v, CHAT_LLAMA2_SYS, "</s>");
    check_session_cut_reply(v);
    check_session_foreign_end(v);
    check_session_rewritten_reply(v);
    check_session_overflow(v);
    check_session_no_reply(v);
    vocab_free(v);
    free(path);
    /* TinyLlama-Chat's case: the Llama 2 vocabulary (32000 pieces) in zephyr with </s>. */
    path = join(shared, "models/gguf/llama-spm-vocab.gguf");
    v = spm_vocab(path);
    if (!v) {
        SKIP("session llama-spm-vocab zephyr", "models/gguf/llama-spm-vocab.gguf is absent");
    } else {
        check_session_whole("llama-spm-vocab zephyr", v, CHAT_ZEPHYR, "</s>");
        check_session_whole("llama-spm-vocab llama2", v, CHAT_LLAMA2, "</s>");
        vocab_free(v);
    }
    free(path);
}

/* ======================================================================== */
/* Byte-level BPE vocabularies (vocab_from_gguf)                            */
/* ======================================================================== */

/**
 * The vocabulary of @p rel under @p shared by vocab_from_gguf(), or NULL (absent
 * file, or no reader yet: @p why says which). While vocab_from_gguf() reads
 * nothing, a SentencePiece file is read as chapters 5 to 7 read it when
 * @p spm_fallback.
 */
static Vocab *gguf_vocab(const char *shared, const char *rel, int spm_fallback, const char **why) {
    char *path = join(shared, rel);
    Vocab *v = NULL;
    *why = "the file is absent";
    if (is_regular_file(path)) {
        GgufFile *g = gguf_open(path);
        v = vocab_from_gguf(path, g, -1);
        const char *model;
        size_t len;
        char err[200];
        int spm = gguf_get_string(g, "tokenizer.ggml.model", &model, &len, err, sizeof err) == GGUF_FOUND && len == 5 &&
                  memcmp(model, "llama", 5) == 0;
        gguf_close(g);
        if (!v && spm && spm_fallback) v = spm_vocab(path);
        *why = "vocab_from_gguf() gives no vocabulary yet (the byte-level BPE reader is not linked)";
    }
    free(path);
    return v;
}

/** reference/chat/tokens.tsv: each built-in output, tokenized with BOS as the vocabulary adds it. */
static void check_tokens_tsv(const char *shared) {
    char *path = join(shared, "reference/chat/tokens.tsv");
    char *tsv = read_file(path, NULL);
    if (!tsv) {
        SKIP("tokens.tsv", "reference/chat/tokens.tsv is absent");
        free(path);
        return;
    }
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *file = line, *vocab_rel = strchr(file, '\t'), *ids_text;
        if (!vocab_rel || !(ids_text = strchr(vocab_rel + 1, '\t'))) continue;
        *vocab_rel++ = '\0';
        *ids_text++ = '\0';
        char name[300];
        snprintf(name, sizeof name, "tokens.tsv %s with %s", file, vocab_rel);
        const char *why;
        Vocab *v = gguf_vocab(shared, vocab_rel, 1, &why);
        if (!v) {
            SKIP(name, why);
            continue;
        }
        char *dir = join(shared, "reference/chat"), *text_path = join(dir, file);
        char *text = read_file(text_path, NULL);
        int want[512], n_want = 0;
        for (char *p = ids_text, *end; n_want < 512; p = end) {
            long id = strtol(p, &end, 10);
            if (end == p) break;
            want[n_want++] = (int)id;
        }
        char err[200];
        int n_got = 0, *got = text ? vocab_encode(v, text, 1, &n_got, err, sizeof err) : NULL;
        CHECK(name, got && same_ids(got, n_got, want, n_want), "%d ids, want %d", got ? n_got : -1, n_want);
        free(got);
        free(text);
        free(text_path);
        free(dir);
        vocab_free(v);
    }
    free(tsv);
    free(path);
}

/** The single id of special token @p text in @p v, or -1. */
static int special_id(const Vocab *v, const char *text) {
    int n, *ids = encode(v, text, 0, &n), id = n == 1 ? ids[0] : -1;
    free(ids);
    return id;
}

/**
 * The fallbacks with real special tokens: llama3 trims a reply the model ended
 * with <|eot_id|> (fed): the reply stays, <|eot_id|> is not repeated; chatml
 * after a reply ended with <|endoftext|> (an end of generation, not the
 * template's end of turn; unfed): it is replaced by <|im_end|>.
 */
static void check_bpe_fallbacks(const char *label, const Vocab *v, ChatTemplate t) {
    char name[240], err[200];
    const char *end = t == CHAT_LLAMA3 ? "<|eot_id|>" : "<|endoftext|>";
    int end_id = special_id(v, end);
    snprintf(name, sizeof name, "%s: reply ended by %s", label, end);
    if (end_id < 0 || !vocab_is_eog(v, end_id)) {
        SKIP(name, "not a single end-of-generation token in this vocabulary");
        return;
    }
    ChatSession s;
    chat_session_init(&s, v, t, NULL, 4096);
    chat_session_user(&s, U1, err, sizeof err);
    int n_r, *r = encode(v, " Hi ", 0, &n_r);
    int *g = xmalloc(((size_t)n_r + 1) * sizeof *g);
    memcpy(g, r, (size_t)n_r * sizeof *g);
    g[n_r] = end_id;
    generate(&s, g, n_r + 1);
    if (t == CHAT_LLAMA3) s.n_fed = s.n_ids;
    chat_session_reply_done(&s);
    size_t reply_at = s.reply_text_from;
    int before = s.n_ids;
    chat_session_user(&s, "More.", err, sizeof err);
    const char *want = t == CHAT_LLAMA3
                           ? " Hi <|eot_id|><|start_header_id|>user<|end_header_id|>\n\nMore.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                           : " Hi <|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n<|im_start|>assistant\n";
    int kept = t == CHAT_LLAMA3 ? before : before - 1;
    int n_d, *d = encode(v, want + strlen(" Hi ") + (t == CHAT_LLAMA3 ? strlen(end) : 0), 0, &n_d);
    CHECK(name, strcmp(s.shown + reply_at, want) == 0 && s.n_ids == kept + n_d && same_ids(s.ids + kept, n_d, d, n_d),
          "after the header \"%s\", %d ids", show(s.shown + reply_at), s.n_ids);
    free(d);
    free(g);
    free(r);
    chat_session_free(&s);
}

/** Sessions in the families' own vocabularies and templates (special tokens are single ids there). */
static void check_bpe_sessions(const char *shared) {
    static const struct {
        const char *file, *end;
    } FILES[] = {
        {"models/gguf/families/qwen2-syn-f32.gguf", "<|im_end|>"},
        {"models/gguf/families/smollm-syn-f32.gguf", "<|im_end|>"},
        {"models/gguf/vocab/llama3-vocab.gguf", "<|eot_id|>"},
    };
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char label[200];
        snprintf(label, sizeof label, "session %s", FILES[i].file);
        const char *why;
        Vocab *v = gguf_vocab(shared, FILES[i].file, 0, &why);
        if (!v) {
            SKIP(label, why);
            continue;
        }
        /* The file's own template where it has one (smollm-syn has none: chatml, as llama.cpp defaults to). */
        ChatTemplate t = v->chat_template ? chat_template_detect(v->chat_template) : CHAT_CHATML;
        check_session_whole(label, v, t, FILES[i].end);
        if (i != 1) check_bpe_fallbacks(label, v, t);
        vocab_free(v);
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    check_conversation_file(shared);
    check_builtins(shared);
    check_format_details();
    check_names();
    check_detection(shared);
    check_sessions(shared);
    check_tokens_tsv(shared);
    check_bpe_sessions(shared);
    return UNIT_EXIT();
}

/**
 * @file gguf_vocab.c
 * @brief The vocabulary of a GGUF file, SentencePiece or byte-level BPE (see gguf_vocab.h).
 *
 * A GGUF file describes its tokenizer in metadata keys under "tokenizer.":
 * the kind (tokenizer.ggml.model: "llama" for SentencePiece, "gpt2" for
 * byte-level BPE), the token texts, scores and types, for BPE the merges and
 * the pre-tokenizer's name, the ids of BOS, EOS and their kin, whether a text
 * gets BOS and EOS, and the chat template. This file reads them with
 * llama.cpp's defaults where a key is absent, and refuses what it does not
 * understand instead of ignoring it: a key it does not know, a value that
 * would make llama.cpp tokenize differently from what src/tokenizer.c does.
 *
 * Beyond the keys, llama.cpp recognises some tokens by their text: an
 * end-of-turn token ("<|eot_id|>", "<|im_end|>", ...) when no key names one,
 * and the list of ids that end a generation (vocab_is_eog()). A token so
 * recognised counts as a control token even where the file says it is an
 * ordinary one: it is then matched as a whole in text and prints as nothing.
 *
 * Cost: the token and merge arrays are read once from the mapping; memory is
 * what the vocabulary itself needs. Every count is checked against the file
 * (and against the embedding's rows) before anything is allocated for it, so
 * a sparse file that claims a billion tokens is refused, not believed.
 * Checked by tests/unit_bpe.c: the reference rows of every vocabulary in the
 * shared data, and one refusal per kind of bad input.
 */
#include "gguf_vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "util.h"

/* Larger than any real vocabulary (Llama 3 has 128,256 tokens and 280,147
 * merges), small enough that the arrays of a sparse file are refused before
 * they are allocated when there is no embedding to compare with. */
#define MAX_ENTRIES (1 << 24)
#define MAX_TEMPLATE_BYTES (16 << 20)

/* GGUF token types. */
enum { TYPE_NORMAL = 1, TYPE_CONTROL = 3 };

/* ======================================================================== */
/* Which keys                                                               */
/* ======================================================================== */

/* The keys that vocab_from_gguf() reads. */
static const char *const keys_read[] = {
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id", "tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id",
    "tokenizer.ggml.middle_token_id", "tokenizer.chat_template",
};

/* The keys that change nothing llama.cpp does with a SentencePiece or BPE
 * vocabulary: ids it only reports (padding, separator, ...), settings of
 * other tokenizers (remove_extra_whitespaces and precompiled_charsmap are
 * read for T5's only, rwkv.world for RWKV's), the type count of BERT's
 * segment embeddings, and the tokenizer as Hugging Face's JSON. */
static const char *const keys_harmless[] = {
    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.cls_token_id",
    "tokenizer.ggml.mask_token_id", "tokenizer.ggml.token_type_count", "tokenizer.ggml.remove_extra_whitespaces",
    "tokenizer.ggml.precompiled_charsmap", "tokenizer.rwkv.world", "tokenizer.huggingface.json",
};

static int in_list(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0) return 1;
    return 0;
}

int vocab_gguf_understands(const char *key) {
    static const char named_template[] = "tokenizer.chat_template."; /* more templates by name: not used */
    if (strncmp(key, named_template, sizeof named_template - 1) == 0 && key[sizeof named_template - 1]) return 1;
    return in_list(key, keys_read, sizeof keys_read / sizeof keys_read[0]) ||
           in_list(key, keys_harmless, sizeof keys_harmless / sizeof keys_harmless[0]);
}

/** @p s as printable ASCII for an error line: other bytes as \\xNN, cut short. */
static const char *shown(const char *s, size_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') buf[n++] = (char)c;
        else n += (size_t)snprintf(buf + n, cap - n, "\\x%02X", c);
    }
    if (len > 0 && n + 8 >= cap) memcpy(buf + n, "...", 4);
    else buf[n] = '\0';
    return buf;
}

/** Every "tokenizer." key of the file must be one this reader knows. */
static void refuse_unknown_keys(const char *path, const GgufFile *g) {
    static const char prefix[] = "tokenizer.";
    char key[256], what[160];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const GgufKV *kv = &g->kv[i];
        if (kv->key_len < sizeof prefix - 1 || memcmp(kv->key, prefix, sizeof prefix - 1) != 0) continue;
        int known = kv->key_len < sizeof key && !memchr(kv->key, 0, kv->key_len);
        if (known) {
            memcpy(key, kv->key, kv->key_len);
            key[kv->key_len] = '\0';
            known = vocab_gguf_understands(key);
        }
        if (!known) fatal("%s: key %s is not understood", path, shown(kv->key, kv->key_len, what, sizeof what));
    }
}

/* ======================================================================== */
/* Typed values                                                             */
/* ======================================================================== */

/** A token id key (u32), which must name a token; @p fallback when absent (or -1 if that is no token). */
static int token_id(const char *path, const GgufFile *g, const char *key, int n_tokens, int fallback) {
    uint32_t v;
    char err[200];
    int rc = gguf_get_u32(g, key, &v, err, sizeof err);
    if (rc == GGUF_ABSENT) return fallback < n_tokens ? fallback : -1;
    if (rc != GGUF_FOUND) fatal("%s: %s", path, err);
    if (v >= (uint32_t)n_tokens) fatal("%s: %s = %u is not a token id (the vocabulary has %d)", path, key, v, n_tokens);
    return (int)v;
}

/** An optional token id (-1 when absent or 0xFFFFFFFF, which converters write for "none"). */
static int optional_token_id(const char *path, const GgufFile *g, const char *key, int n_tokens) {
    uint32_t v;
    char err[200];
    int rc = gguf_get_u32(g, key, &v, err, sizeof err);
    if (rc == GGUF_ABSENT || (rc == GGUF_FOUND && v == UINT32_MAX)) return -1;
    return token_id(path, g, key, n_tokens, -1);
}

/** A bool key: 1 or 0, or @p fallback when absent. */
static int flag(const char *path, const GgufFile *g, const char *key, int fallback) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (!kv) return fallback;
    if (kv->type != GGUF_BOOL)
        fatal("%s: key %s has type %s, expected bool", path, key, gguf_value_type_name(kv->type));
    return kv->value[0] != 0; /* the reader checked it is 0 or 1 */
}

/** A string key into @p s / @p len; 0 when absent. */
static int string_value(const char *path, const GgufFile *g, const char *key, const char **s, size_t *len) {
    char err[200];
    int rc = gguf_get_string(g, key, s, len, err, sizeof err);
    if (rc == GGUF_BAD_TYPE) fatal("%s: %s", path, err);
    return rc == GGUF_FOUND;
}

/** The length of array @p key (0 when absent or not an array, which the typed getters refuse),
 * refused before anything is read when it is more than any vocabulary has. */
static uint64_t array_length(const char *path, const GgufFile *g, const char *key) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (!kv || kv->type != GGUF_ARRAY) return 0;
    if (kv->count > MAX_ENTRIES)
        fatal("%s: %s has %llu entries, more than any vocabulary (%d)", path, key, (unsigned long long)kv->count,
              MAX_ENTRIES);
    return kv->count;
}

/** An array that needs one entry per token. */
static void check_per_token(const char *path, const GgufFile *g, const char *key, int n_tokens) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (kv && kv->type == GGUF_ARRAY && kv->count != (uint64_t)n_tokens)
        fatal("%s: %s has %llu entries for %d tokens", path, key, (unsigned long long)kv->count, n_tokens);
}

static char *copy_template(const char *path, const GgufFile *g) {
    const char *s;
    size_t len;
    if (!string_value(path, g, "tokenizer.chat_template", &s, &len)) return NULL;
    if (len > MAX_TEMPLATE_BYTES) fatal("%s: tokenizer.chat_template is %zu bytes long", path, len);
    if (memchr(s, 0, len)) fatal("%s: tokenizer.chat_template holds a NUL byte", path);
    char *t = xmalloc(len + 1);
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

/* ======================================================================== */
/* Tokens known by their text                                               */
/* ======================================================================== */

/** The texts by which llama.cpp recognises a kind of special token, in the order this reader prefers them. */
typedef struct {
    const char *key;         /* the id's own key, or NULL */
    const char *other_key;   /* a second (older) key for the same id, read after the first */
    const char *texts[8];
    int ends_generation;     /* 1: the token is one of the end-of-generation ids */
} SpecialKind;

static const SpecialKind special_kinds[] = {
    {"tokenizer.ggml.eot_token_id", NULL,
     {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
      "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>" /* DeepSeek's, in full-width bars */}, 1},
    {"tokenizer.ggml.eom_token_id", NULL, {"<|eom_id|>"}, 1},
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id",
     {"<|fim_prefix|>", "<fim-prefix>", "<\357\275\234fim\342\226\201begin\357\275\234>", "<PRE>"}, 0},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id",
     {"<|fim_suffix|>", "<fim-suffix>", "<\357\275\234fim\342\226\201hole\357\275\234>", "<SUF>"}, 0},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id",
     {"<|fim_middle|>", "<fim-middle>", "<\357\275\234fim\342\226\201end\357\275\234>", "<MID>"}, 0},
    {"tokenizer.ggml.fim_pad_token_id", NULL, {"<|fim_pad|>", "<fim-pad>", "<PAD>"}, 1},
    {"tokenizer.ggml.fim_rep_token_id", NULL, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}, 1},
    {"tokenizer.ggml.fim_sep_token_id", NULL, {"<|file_sep|>"}, 1},
};
enum { KIND_EOT, KIND_EOM, N_KINDS = sizeof special_kinds / sizeof special_kinds[0] };

/* Tokens with these texts end a generation, whatever the keys say. */
static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>"};

/** The tokens as the file stores them. */
typedef struct {
    int n;
    const char **texts;
    size_t *lens;
    int32_t *types; /* (n) a copy, which recognised tokens change to control */
} Tokens;

/** The first token whose text is @p text, or -1. */
static int find_text(const Tokens *t, const char *text) {
    size_t len = strlen(text);
    for (int id = 0; id < t->n; id++)
        if (t->lens[id] == len && memcmp(t->texts[id], text, len) == 0) return id;
    return -1;
}

/** Add @p id to the list @p ids (of *n, room for n_tokens) unless it is -1 or there already. */
static void add_id(int *ids, int *n, int id) {
    if (id < 0) return;
    for (int i = 0; i < *n; i++)
        if (ids[i] == id) return;
    ids[(*n)++] = id;
}

static int by_value(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/**
 * The special ids that keys or texts give: @p found[kind] for each SpecialKind,
 * the recognised tokens turned into control tokens in t->types, and the
 * end-of-generation ids (sorted, malloc'd) in @p eog / @p n_eog.
 */
static void find_specials(const char *path, const GgufFile *g, Tokens *t, int eos_id, int *found, int **eog,
                          int *n_eog) {
    for (int k = 0; k < N_KINDS; k++) {
        const SpecialKind *sk = &special_kinds[k];
        found[k] = optional_token_id(path, g, sk->key, t->n);
        if (sk->other_key && gguf_find_key(g, sk->other_key)) found[k] = optional_token_id(path, g, sk->other_key, t->n);
        for (int i = 0; found[k] < 0 && i < 8 && sk->texts[i]; i++) {
            found[k] = find_text(t, sk->texts[i]);
            if (found[k] >= 0) t->types[found[k]] = TYPE_CONTROL;
        }
    }
    int *ids = xmalloc(sizeof(int) * ((size_t)N_KINDS + sizeof eog_texts / sizeof eog_texts[0] + 1));
    int n = 0;
    for (int k = 0; k < N_KINDS; k++)
        if (special_kinds[k].ends_generation) add_id(ids, &n, found[k]);
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int id = find_text(t, eog_texts[i]);
        if (id >= 0) t->types[id] = TYPE_CONTROL;
        add_id(ids, &n, id);
    }
    add_id(ids, &n, eos_id);
    qsort(ids, (size_t)n, sizeof *ids, by_value);
    *eog = ids;
    *n_eog = n;
}

/* ======================================================================== */
/* The vocabulary                                                           */
/* ======================================================================== */

/** The tokens, their types (all normal when the file has none) and scores (NULL when none). */
static int read_tokens(const char *path, const GgufFile *g, int n_rows, Tokens *t, float **scores) {
    char err[200];
    uint64_t n;
    /* The count first: the array's pointers take twice its bytes, and a sparse file can hold an array of
     * a billion empty strings in a few pages. */
    const GgufKV *kv = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (kv && kv->type == GGUF_ARRAY && n_rows >= 0 && kv->count != (uint64_t)n_rows)
        fatal("%s: tokenizer.ggml.tokens has %llu entries, but token_embd.weight has %d rows", path,
              (unsigned long long)kv->count, n_rows);
    array_length(path, g, "tokenizer.ggml.tokens");
    int rc = gguf_get_string_array(g, "tokenizer.ggml.tokens", &t->texts, &t->lens, &n, err, sizeof err);
    if (rc == GGUF_ABSENT) return 0;
    if (rc != GGUF_FOUND) fatal("%s: %s", path, err);
    if (n == 0) fatal("%s: tokenizer.ggml.tokens is empty", path);
    t->n = (int)n;
    check_per_token(path, g, "tokenizer.ggml.scores", t->n);
    check_per_token(path, g, "tokenizer.ggml.token_type", t->n);
    uint64_t count;
    *scores = NULL;
    rc = gguf_get_f32_array(g, "tokenizer.ggml.scores", scores, &count, err, sizeof err);
    if (rc == GGUF_BAD_TYPE) fatal("%s: %s", path, err);
    t->types = NULL;
    rc = gguf_get_i32_array(g, "tokenizer.ggml.token_type", &t->types, &count, err, sizeof err);
    if (rc == GGUF_BAD_TYPE) fatal("%s: %s", path, err);
    if (rc == GGUF_ABSENT) {
        t->types = xmalloc(sizeof *t->types * n);
        for (int id = 0; id < t->n; id++) t->types[id] = TYPE_NORMAL;
    }
    return 1;
}

/** llama.cpp strips the spaces around every special token of a Phi-3 model, which src/tokenizer.c does not. */
static void refuse_phi3(const char *path, const GgufFile *g) {
    const char *name;
    size_t len;
    char lower[256], what[160];
    if (!string_value(path, g, "general.name", &name, &len)) return;
    size_t n = len < sizeof lower - 1 ? len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++) lower[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
    lower[n] = '\0';
    if (strstr(lower, "phi-3") || strstr(lower, "phi3"))
        fatal("%s: general.name \"%s\": llama.cpp strips the spaces around this model's special tokens, "
              "which is not implemented", path, shown(name, len, what, sizeof what));
}

/** tokenizer.ggml.add_space_prefix may only say what the tokenizer does anyway. */
static void check_space_prefix(const char *path, const GgufFile *g, int kind) {
    int want = kind == VOCAB_SPM; /* SentencePiece's dummy prefix; BPE has none */
    if (flag(path, g, "tokenizer.ggml.add_space_prefix", want) != want)
        fatal("%s: tokenizer.ggml.add_space_prefix = %s is not supported for a %s vocabulary", path,
              want ? "false" : "true", want ? "SentencePiece" : "byte-level BPE");
}

static Vocab *read_bpe(const char *path, const GgufFile *g, const Tokens *t) {
    const char *pre = "default", **merges;
    size_t pre_len = 7, *merge_lens;
    uint64_t n_merges;
    char err[200], name[64], what[160];
    string_value(path, g, "tokenizer.ggml.pre", &pre, &pre_len); /* absent: llama.cpp's "default" */
    if (pre_len >= sizeof name || memchr(pre, 0, pre_len))
        fatal("%s: pre-tokenizer \"%s\" is not supported", path, shown(pre, pre_len, what, sizeof what));
    memcpy(name, pre, pre_len);
    name[pre_len] = '\0';
    BpeRules rules;
    if (!bpe_rules(name, pre_len, &rules))
        fatal("%s: tokenizer.ggml.pre \"%s\" is not supported (gpt-2, llama-bpe, qwen2, smollm, default are)", path,
              shown(pre, pre_len, what, sizeof what));
    array_length(path, g, "tokenizer.ggml.merges");
    int rc = gguf_get_string_array(g, "tokenizer.ggml.merges", &merges, &merge_lens, &n_merges, err, sizeof err);
    if (rc == GGUF_ABSENT) fatal("%s: tokenizer.ggml.merges is missing (a byte-level BPE vocabulary needs it)", path);
    if (rc != GGUF_FOUND) fatal("%s: %s", path, err);
    /* llama.cpp's defaults for BPE: BOS = EOS = 11, no unknown token */
    int bos = token_id(path, g, "tokenizer.ggml.bos_token_id", t->n, 11);
    int eos = token_id(path, g, "tokenizer.ggml.eos_token_id", t->n, 11);
    int unk = token_id(path, g, "tokenizer.ggml.unknown_token_id", t->n, -1);
    Vocab *v = vocab_from_bpe(path, t->n, t->texts, t->lens, t->types, merges, merge_lens, (int)n_merges, name, bos,
                              eos, unk);
    free(merges);
    free(merge_lens);
    return v;
}

static Vocab *read_spm(const char *path, const GgufFile *g, const Tokens *t, const float *scores) {
    /* llama.cpp's defaults for SentencePiece vocabularies: <unk> 0, <s> 1, </s> 2 */
    int bos = token_id(path, g, "tokenizer.ggml.bos_token_id", t->n, 1);
    int eos = token_id(path, g, "tokenizer.ggml.eos_token_id", t->n, 2);
    int unk = token_id(path, g, "tokenizer.ggml.unknown_token_id", t->n, 0);
    return vocab_from_arrays(path, t->n, t->texts, t->lens, scores, t->types, bos, eos, unk);
}

Vocab *vocab_from_gguf(const char *path, const GgufFile *g, int n_rows) {
    refuse_unknown_keys(path, g);
    Tokens t = {0};
    float *scores = NULL;
    if (!read_tokens(path, g, n_rows, &t, &scores)) return NULL;
    const char *model = "llama";
    size_t model_len = 5;
    char what[160];
    string_value(path, g, "tokenizer.ggml.model", &model, &model_len); /* absent: SentencePiece, as chapter 5 */
    int kind = model_len == 5 && memcmp(model, "llama", 5) == 0 ? VOCAB_SPM
             : model_len == 4 && memcmp(model, "gpt2", 4) == 0  ? VOCAB_BPE
                                                                : -1;
    if (kind < 0)
        fatal("%s: tokenizer.ggml.model \"%s\" is not supported: SentencePiece (\"llama\") and byte-level BPE (\"gpt2\") "
              "vocabularies are", path, shown(model, model_len, what, sizeof what));
    refuse_phi3(path, g);
    check_space_prefix(path, g, kind);
    int eos = token_id(path, g, "tokenizer.ggml.eos_token_id", t.n, kind == VOCAB_SPM ? 2 : 11);
    int found[N_KINDS], *eog, n_eog;
    find_specials(path, g, &t, eos, found, &eog, &n_eog);
    Vocab *v = kind == VOCAB_SPM ? read_spm(path, g, &t, scores) : read_bpe(path, g, &t);
    v->add_bos = flag(path, g, "tokenizer.ggml.add_bos_token", v->add_bos);
    v->add_eos = flag(path, g, "tokenizer.ggml.add_eos_token", v->add_eos);
    v->eot_id = found[KIND_EOT];
    v->eog_ids = eog;
    v->n_eog = n_eog;
    v->chat_template = copy_template(path, g);
    free(t.texts);
    free(t.lens);
    free(t.types);
    free(scores);
    return v;
}

/**
 * @file chat.h
 * @brief Chat templates and a conversation kept in the KV cache (chapter 8).
 *
 * A chat model was trained on conversations written in one fixed format: its
 * template. This file knows the formats of the families the book runs (zephyr,
 * llama2, llama3, chatml, ...), recognises them in a file's
 * tokenizer.chat_template the way llama.cpp does (by telltale substrings, not
 * by running Jinja), and writes a conversation in them as llama.cpp's
 * llama_chat_apply_template() does.
 *
 * ChatSession is the conversation itself, independent of any terminal: the
 * terminal chat (-cnv) and the server drive the same calls. It holds every token
 * of the conversation so far, which is exactly what the model's KV cache holds,
 * so each turn feeds the model only the tokens of the new text.
 */
#ifndef LLAMABOOK_CHAT_H
#define LLAMABOOK_CHAT_H

#include <stddef.h>

#include "tokenizer.h"

/** The templates, by llama.cpp's names. */
typedef enum {
    CHAT_UNKNOWN = -1,
    CHAT_CHATML,     /**< "chatml": `<|im_start|>role`, newline, content, `<|im_end|>`, newline (Qwen2.5, SmolLM2) */
    CHAT_LLAMA2,     /**< "llama2": `[INST] ... [/INST]` */
    CHAT_LLAMA2_SYS, /**< "llama2-sys": `[INST] <<SYS>>`, the system text, `<</SYS>>`, then the first message */
    CHAT_LLAMA3,     /**< "llama3": `<|start_header_id|>role<|end_header_id|>`, two newlines, content, `<|eot_id|>` */
    CHAT_ZEPHYR,     /**< "zephyr": `<|role|>`, newline, content, the end of a turn, newline (TinyLlama-Chat) */
    CHAT_PHI3,       /**< "phi3": `<|role|>`, newline, content, `<|end|>`, newline */
    CHAT_LLAMA2_SYS_BOS,   /**< "llama2-sys-bos": llama2-sys with a BOS text before every `[INST]` but the first */
    CHAT_LLAMA2_SYS_STRIP, /**< "llama2-sys-strip": llama2-sys with every message trimmed */
    CHAT_N_TEMPLATES
} ChatTemplate;

/** One message of a conversation. */
typedef struct {
    const char *role;    /**< "system", "user" or "assistant" */
    const char *content;
} ChatMessage;

/** The template called @p name ("chatml", "llama3", ...), or CHAT_UNKNOWN. */
ChatTemplate chat_template_by_name(const char *name);

/** The name of @p t ("chatml"). */
const char *chat_template_name(ChatTemplate t);

/** The comma-separated list of every name, for messages and --help. */
const char *chat_template_names(void);

/**
 * The template a tokenizer.chat_template string @p jinja is written in, recognised
 * by the substrings llama.cpp looks for (except where the book follows the model's
 * own template instead: see chat.c), or CHAT_UNKNOWN.
 */
ChatTemplate chat_template_detect(const char *jinja);

/**
 * @p msgs written in template @p t, with the header of the assistant's next turn
 * after them when @p add_assistant. @p eos_text is the text of the model's EOS
 * token (zephyr ends a turn with it; NULL: llama.cpp's "<|endoftext|>"). Returns a
 * malloc'd string, or NULL when @p t is not a template (CHAT_UNKNOWN).
 */
char *chat_apply(ChatTemplate t, const ChatMessage *msgs, int n_msgs, int add_assistant, const char *eos_text);

/** The text of @p v's EOS token, which zephyr ends a turn with (chat_apply()'s @p eos_text); NULL when it has none. */
const char *chat_eos_text(const Vocab *v);

/** A conversation, and the tokens of it the model has seen (what its KV cache holds). */
typedef struct {
    ChatTemplate tmpl;
    const Vocab *vocab;
    int n_ctx;           /**< the most tokens the conversation may reach */
    ChatMessage *msgs;   /**< (n_msgs) owned copies of every message so far */
    int n_msgs, cap_msgs;
    char *shown;         /**< (n_shown) the conversation's text as the model has seen it so far, NUL after it */
    size_t n_shown, cap_shown;
    int *ids;            /**< (n_ids) every token fed or generated so far, BOS first where the vocabulary adds one */
    int n_ids, cap_ids;
    int n_fed;           /**< ids[0 .. n_fed) have been through the model; the rest wait for it (the caller sets it) */
    int reply_ids_from;  /**< ids[reply_ids_from ..) and shown[reply_text_from ..) are the latest reply */
    size_t reply_text_from;
} ChatSession;

/** Start a conversation in template @p t (not CHAT_UNKNOWN: fatal()), with a system message unless @p system is NULL. */
void chat_session_init(ChatSession *s, const Vocab *v, ChatTemplate t, const char *system, int n_ctx);

/**
 * Add a user turn: the text the template adds for it (and whatever it puts after the
 * last reply that the model did not generate, and the assistant's header) is tokenized
 * and appended to ids. Returns the number of ids added, or -1 with a message in @p err
 * when they would not fit in n_ctx or cannot be tokenized (nothing changes then).
 * The caller then feeds the model ids[n_fed .. n_ids) and sets n_fed = n_ids: that is
 * the new ids, plus the last reply's final token if it was never fed, or minus it when
 * the template writes its own end of turn in its place (see chat.c). A user turn right
 * after a user turn first records an empty reply.
 */
int chat_session_user(ChatSession *s, const char *text, char *err, size_t err_len);

/** Record a generated token of the reply (the caller fed the model the ids before it). The caller
 * keeps n_ids within n_ctx: stop the reply when the context is full. */
void chat_session_token(ChatSession *s, int id);

/** The reply is complete (an end-of-generation token, the length limit or Ctrl-C): record it as the assistant's message. */
void chat_session_reply_done(ChatSession *s);

void chat_session_free(ChatSession *s);

#endif

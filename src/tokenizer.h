/**
 * @file tokenizer.h
 * @brief SentencePiece-style BPE tokenizer shared by every chapter.
 *
 * Text becomes token ids the way llama2.c's `encode()` does it: a dummy-prefix
 * space, one piece per UTF-8 code point (or its bytes as `<0xNN>` byte tokens
 * when the code point is not in the vocabulary), then repeated merges of the
 * adjacent pair whose concatenation is the best-scoring vocabulary piece
 * (leftmost pair on equal scores). A priority queue over the pairs makes that
 * O(n log n) in the text length, and the text is merged a word at a time where
 * no piece can span two words; lookups go through a hash table. Special
 * tokens are found by one pass of an automaton over the text, whatever their
 * number.
 *
 * Chapter 8 adds byte-level BPE vocabularies (vocab_from_bpe(), src/bpe.c):
 * the text is cut into words by the vocabulary's pre-tokenizer, and each
 * word's bytes merge by the rank of GGUF's merge list; special tokens are
 * found the same way, and there is no dummy prefix.
 */
#ifndef LLAMABOOK_TOKENIZER_H
#define LLAMABOOK_TOKENIZER_H

#include <stddef.h>

/** A loaded vocabulary. Treat the fields as read-only, and make one only with
 * the constructors below (tokenizer.c keeps private state beside it). */
typedef struct Vocab {
    int n_tokens;        /**< vocabulary size */
    char **pieces;       /**< (n_tokens) token texts, NUL-terminated, spaces as ' ' */
    int *piece_lens;     /**< (n_tokens) byte lengths: lookups compare bytes, not C strings */
    float *scores;       /**< (n_tokens) merge priority: higher merges first */
    int byte_token[256]; /**< id of the piece `<0xNN>` for byte NN, or -1 */
    int bos_id;          /**< beginning of sequence (1 in Llama vocabularies) */
    int eos_id;          /**< end of sequence (2) */
    int unk_id;          /**< unknown (0) */
    int parse_special;   /**< 1: text spelling a special token ("<s>") becomes it (llama.cpp on GGUF) */
    /* Chapter 8: the vocabularies of today's model families. */
    int kind;            /**< VOCAB_SPM (SentencePiece, every chapter) or VOCAB_BPE (byte-level BPE, chapter 8) */
    int add_bos;         /**< 1: vocab_encode(add_bos = 1) puts BOS first (tokenizer.ggml.add_bos_token) */
    int add_eos;         /**< 1: vocab_encode(add_bos = 1) also puts EOS last (tokenizer.ggml.add_eos_token) */
    int eot_id;          /**< end of turn (<|eot_id|>, <|im_end|>), or -1 */
    int *eog_ids;        /**< (n_eog) the ids that end a generation: EOS, EOT, EOM and their kin */
    int n_eog;
    char *chat_template; /**< tokenizer.chat_template (NUL-terminated), or NULL */
} Vocab;

/** Vocab.kind */
enum { VOCAB_SPM = 0, VOCAB_BPE = 1 };

/**
 * Load a llama2.c `tokenizer.bin` holding exactly @p n_tokens entries (the
 * count comes from the model header). A missing, truncated or malformed file,
 * or one with more entries than @p n_tokens, is a fatal() error naming @p path.
 */
Vocab *vocab_load_llama2c(const char *path, int n_tokens);

/**
 * Build a vocabulary from arrays (chapter 5 reads them from a GGUF file).
 * @p texts are @p n_tokens strings of @p lens bytes; U+2581 ("▁") is turned
 * into a space. @p scores may be NULL (all 0). @p types uses GGUF's token
 * types (1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte; NULL = all
 * normal): a byte token whose text is not exactly `<0xNN>` is a fatal() error
 * naming @p origin. Sets parse_special: as in llama.cpp, text spelling an
 * unknown, control or user-defined token becomes that token (longest first),
 * and merging never produces one. @p bos_id, @p eos_id, @p unk_id may be -1.
 */
Vocab *vocab_from_arrays(const char *origin, int n_tokens, const char *const *texts,
                         const size_t *lens, const float *scores, const int *types,
                         int bos_id, int eos_id, int unk_id);

/**
 * Build a byte-level BPE vocabulary (GGUF tokenizer.ggml.model "gpt2"; chapter 8).
 * @p texts are the token texts as GGUF stores them (GPT-2's byte-to-unicode mapping),
 * @p merges the ranked "left right" pairs of tokenizer.ggml.merges, @p pre the
 * pre-tokenizer name (tokenizer.ggml.pre: "gpt2"/"gpt-2", "llama-bpe", "qwen2", "smollm",
 * "default", and llama.cpp's other names for the same rules; NULL means "default", as in
 * llama.cpp). @p types as for vocab_from_arrays(); control, unknown and user-defined tokens
 * are matched in text as they are written, the others are stored as the raw bytes they stand
 * for. An unknown pre-tokenizer, a token that is not in the byte-to-unicode form, two tokens
 * with one text, or a merge that is not two tokens whose joined text is a token, is a
 * fatal() error naming @p origin and the entry. @p bos_id, @p eos_id, @p unk_id may be -1.
 * Sets add_bos as llama.cpp's default for the pre-tokenizer (on for llama-bpe), add_eos 0.
 */
Vocab *vocab_from_bpe(const char *origin, int n_tokens, const char *const *texts, const size_t *lens,
                      const int *types, const char *const *merges, const size_t *merge_lens, int n_merges,
                      const char *pre, int bos_id, int eos_id, int unk_id);

/** 1 if @p id ends a generation (one of eog_ids, or EOS when the list is empty). */
int vocab_is_eog(const Vocab *v, int id);

/**
 * 1 if generating @p id ends the text: vocab_is_eog(), or BOS in a SentencePiece vocabulary
 * (llama2.c's rule, which every greedy reference of the Llama 2 files follows: its models end a
 * story by starting the next one). The driver's generation and chat and the server (chapter 9)
 * stop there alike.
 */
int vocab_ends_text(const Vocab *v, int id);

/**
 * The bytes of token @p tok as llama-tokenize shows them: special tokens as their text
 * ("<|im_end|>"), byte-level pieces as the bytes they stand for, SentencePiece pieces with
 * spaces for U+2581 and byte tokens as their byte; unused and undefined tokens (and BPE byte
 * tokens) as nothing. Sets *len; an id outside the vocabulary gives "". Never NULL.
 */
const char *vocab_piece_text(const Vocab *v, int tok, int *len);

void vocab_free(Vocab *v);

/** Id of the piece exactly equal to the @p len bytes at @p s, or -1. */
int vocab_lookup(const Vocab *v, const char *s, size_t len);

/**
 * Encode the NUL-terminated @p text, with BOS first when @p add_bos and the
 * vocabulary adds one (Vocab.add_bos, and it has a BOS id), and EOS last when
 * @p add_bos and Vocab.add_eos. With parse_special, special tokens are cut out first
 * (the longest first) and each stretch of text between them is encoded with
 * its own dummy prefix (llama.cpp's behaviour; byte-level BPE has no dummy prefix). Returns the ids in a malloc'd
 * array the caller frees, their number in *n_ids. The array is as long as it
 * needs to be: a text may give more ids than it has bytes (one-byte special
 * tokens between one-byte words give 3 ids per 2 bytes). Returns NULL with a
 * message in @p err (may be NULL) when the text cannot be encoded: a character
 * outside a vocabulary without byte tokens, or a text too long for int counts.
 * Reentrant: the vocabulary is only read.
 */
int *vocab_encode(const Vocab *v, const char *text, int add_bos, int *n_ids, char *err, size_t err_len);

/**
 * What the last vocab_encode() of the calling thread did, for tests that check
 * how the work grows without timing it.
 */
typedef struct {
    unsigned long long match_steps; /**< moves of the special-token automaton, plus matches found */
    size_t largest_chunk;           /**< most symbols merged at once (a word, unless no piece boundary allows a cut) */
} EncodeCounts;

EncodeCounts vocab_last_encode_counts(void);

/**
 * The bytes token @p tok stands for when it follows @p prev: a piece right
 * after BOS loses its leading space, and `<0xNN>` is the raw byte NN. In a
 * byte-level BPE vocabulary: the token's raw bytes, with no space removed, and
 * nothing for control, unknown, byte and unused tokens (llama.cpp's detokenizer
 * when it does not show special tokens). Sets
 * *len (the text may be a single NUL byte). Never NULL: an id outside the
 * vocabulary gives "" with *len 0 (callers validate ids).
 */
const char *vocab_decode(const Vocab *v, int prev, int tok, int *len);

/**
 * Printing that is safe for a terminal. Bytes are buffered until they form a
 * complete UTF-8 character; control bytes other than newline and tab, and
 * invalid sequences, are dropped.
 */
typedef struct {
    unsigned char pending[4]; /**< an incomplete UTF-8 character so far */
    int n_pending;
} SafePrinter;

/** Write @p len bytes through @p sp to stdout. */
void safe_print(SafePrinter *sp, const char *bytes, int len);

#endif

/**
 * @file gguf.h
 * @brief Chapter 5's GGUF reader: metadata and tensor directory of a GGUF
 * (version 2 or 3) file, validated, with the tensor data left in the mapping.
 *
 * A GGUF file is a small self-describing header, a list of typed key/value
 * pairs (the model's shape, its vocabulary, ...), a directory of tensors
 * (name, shape, type, offset) and then, aligned, the tensor bytes. This
 * reader walks the first three parts once, checks every count, length,
 * type, shape and offset against the size of the buffer before it trusts
 * it, and records where things are. It never copies tensor data: a
 * GgufTensor points into the caller's buffer (for gguf_open(), the mmap of
 * the file), so opening a model costs no more memory than the pages the
 * forward pass touches.
 *
 * gguf_parse() is a pure function of a byte buffer that reports problems as
 * an error string and never exits: tests/fuzz_gguf.c drives it with random
 * bytes under AddressSanitizer. gguf_open() is the convenience the chapters
 * use; it turns any problem into one fatal() line naming the file.
 *
 * Which tensor types a model may use is the loader's decision; the reader
 * only needs to know the block size of every type ggml defines (to compute
 * the bytes a tensor occupies) and rejects type ids it does not know. So a
 * file of a type no chapter runs (IQ4_XS, say) still parses, and the loader
 * can refuse it by name.
 */
#ifndef LLAMABOOK_GGUF_H
#define LLAMABOOK_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/** Types of metadata values (GGUF's `gguf_type`). */
enum {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12, GGUF_N_VALUE_TYPES
};

/**
 * Tensor types (ggml's `ggml_type` ids) whose sizes the reader knows: every
 * type ggml defines today. The ids ggml has dropped (4 and 5, the old Q4_2
 * and Q4_3; 31-33 and 36-38, the repacked Q4_0 and IQ4_NL layouts, which
 * never appear in files) are unknown, and so is every id above these.
 */
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
    GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12,
    GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_Q8_K = 15, GGML_IQ2_XXS = 16, GGML_IQ2_XS = 17,
    GGML_IQ3_XXS = 18, GGML_IQ1_S = 19, GGML_IQ4_NL = 20, GGML_IQ3_S = 21, GGML_IQ2_S = 22,
    GGML_IQ4_XS = 23, GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26, GGML_I64 = 27, GGML_F64 = 28,
    GGML_IQ1_M = 29, GGML_BF16 = 30, GGML_TQ1_0 = 34, GGML_TQ2_0 = 35, GGML_MXFP4 = 39
};

enum {
    GGUF_MAX_DIMS = 4,          /**< tensors have 1 to 4 dimensions */
    GGUF_MAX_NAME = 64,         /**< longest tensor name, in bytes */
    GGUF_MAX_KEY = 1 << 20,     /**< longest metadata key (a sanity cap) */
    GGUF_DEFAULT_ALIGNMENT = 32 /**< when `general.alignment` is absent */
};

/** One metadata pair. Pointers go into the parsed buffer. */
typedef struct {
    const char *key;      /**< key bytes, NOT NUL-terminated */
    size_t key_len;       /**< length of the key */
    uint32_t type;        /**< GGUF_U8 .. GGUF_F64 */
    uint32_t elem_type;   /**< for GGUF_ARRAY: type of the elements (never GGUF_ARRAY) */
    uint64_t count;       /**< for GGUF_ARRAY: number of elements; 1 otherwise */
    const uint8_t *value; /**< first byte of the value (for strings: of the text; for
                           * arrays: of the first element), little-endian, unaligned */
    uint64_t value_len;   /**< bytes from @c value to the end of the value */
} GgufKV;

/** One entry of the tensor directory. */
typedef struct {
    char name[GGUF_MAX_NAME + 1]; /**< NUL-terminated copy of the name */
    uint32_t n_dims;              /**< 1 .. 4 */
    uint64_t ne[GGUF_MAX_DIMS];   /**< elements per dimension, ne[0] contiguous; unused = 1 */
    uint32_t type;                /**< GGML_F32, ... */
    uint64_t offset;              /**< from the start of the data section */
    uint64_t n_elements;          /**< product of ne[] */
    uint64_t n_bytes;             /**< bytes of data */
    const uint8_t *data;          /**< first byte of the data, inside the buffer */
} GgufTensor;

/** A parsed GGUF file. */
typedef struct {
    uint32_t version;         /**< 2 or 3 */
    uint64_t n_kv;            /**< number of metadata pairs */
    uint64_t n_tensors;       /**< number of tensors */
    GgufKV *kv;               /**< (n_kv) in file order */
    GgufTensor *tensors;      /**< (n_tensors) in file order */
    uint32_t alignment;       /**< general.alignment, or 32 */
    uint64_t data_offset;     /**< where the data section starts in the buffer */
    const uint8_t *data;      /**< the whole buffer */
    size_t size;              /**< its size */
    MappedFile file;          /**< set by gguf_open() */
    size_t *kv_order;         /**< private: kv indices sorted by key */
    size_t *tensor_order;     /**< private: tensor indices sorted by name */
} GgufFile;

/**
 * Parse and validate the @p size bytes at @p data into @p g. Returns 0, or
 * -1 with a one-line message in @p err (no file name: the caller adds it)
 * and @p g left empty. Never exits, never reads outside the buffer. Its
 * memory grows with the entries it has read and found valid (at most a few
 * hundred bytes for each), never with a count that the header merely
 * claims: the counts must fit in @p size, but a sparse file can be
 * gigabytes long and hold nothing. @p g points into @p data, which must
 * outlive it; release it with gguf_free().
 */
int gguf_parse(GgufFile *g, const uint8_t *data, size_t size, char *err, size_t err_len);

/** Free what gguf_parse() allocated (not the buffer). Safe on an empty @p g. */
void gguf_free(GgufFile *g);

/** Map @p path and parse it; on any problem fatal("PATH: problem"). */
GgufFile *gguf_open(const char *path);

/** gguf_free(), unmap, free. NULL is fine. */
void gguf_close(GgufFile *g);

/** The metadata pair named @p key, or NULL. O(log n_kv). */
const GgufKV *gguf_find_key(const GgufFile *g, const char *key);

/** The tensor named @p name, or NULL. O(log n_tensors). */
const GgufTensor *gguf_find_tensor(const GgufFile *g, const char *name);

/**
 * What a Llama 2-era loader (chapters 5 to 7) would silently leave out of a file of a later
 * family: the first key or tensor that changes the computation beyond that (RoPE scaling
 * keys, rope_freqs.weight, a bias tensor), written into @p what, or 0 when there is none.
 * Those chapters refuse such a file, naming it and chapter 8, instead of running it wrongly.
 */
int gguf_later_feature(const GgufFile *g, char *what, size_t what_len);

/** Result of the typed getters below. */
enum { GGUF_FOUND = 0, GGUF_ABSENT = 1, GGUF_BAD_TYPE = -1 };

/*
 * Typed getters. Each returns GGUF_FOUND (value stored), GGUF_ABSENT (key
 * not in the file; output untouched) or GGUF_BAD_TYPE (the key holds
 * another type; a message naming the key and both types is put in @p err).
 */
int gguf_get_u32(const GgufFile *g, const char *key, uint32_t *out, char *err, size_t err_len);
int gguf_get_i32(const GgufFile *g, const char *key, int32_t *out, char *err, size_t err_len);
int gguf_get_f32(const GgufFile *g, const char *key, float *out, char *err, size_t err_len);
/** A string value: @p *s points into the buffer (not NUL-terminated), @p *len bytes. */
int gguf_get_string(const GgufFile *g, const char *key, const char **s, size_t *len, char *err,
                    size_t err_len);
/** An array of strings: malloc'd arrays of @p *count pointers into the buffer and lengths. */
int gguf_get_string_array(const GgufFile *g, const char *key, const char ***texts, size_t **lens,
                          uint64_t *count, char *err, size_t err_len);
/** An array of f32 (copied into a malloc'd array). */
int gguf_get_f32_array(const GgufFile *g, const char *key, float **out, uint64_t *count, char *err,
                       size_t err_len);
/** An array of i32 (copied into a malloc'd array). */
int gguf_get_i32_array(const GgufFile *g, const char *key, int32_t **out, uint64_t *count, char *err,
                       size_t err_len);

/** ggml's name of tensor type @p type ("q4_K", ...), or NULL for an unknown id. */
const char *gguf_tensor_type_name(uint32_t type);

/** Elements per block and bytes per block of tensor type @p type; 0 if unknown. */
int gguf_tensor_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);

/** Name of metadata value type @p type ("u32", "array", ...), or "unknown". */
const char *gguf_value_type_name(uint32_t type);

#endif

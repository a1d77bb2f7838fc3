/**
 * @file quants.h
 * @brief Chapter 5's block formats: decoding F16, Q8_0, Q5_0, Q4_0, Q4_K and
 * Q6_K weights exactly as llama.cpp does, the activation formats they are
 * multiplied with, and their dot products in plain C and SIMD; and chapter
 * 8's Q5_K, Q3_K and IQ4_XS, the other types of today's model files.
 *
 * Header-only, like src/q8_kernels.h (chapter 4's Q8_0 kernels, which this
 * builds on): every function is `static inline`, so each chapter, tool and
 * unit test compiles them with its own flags. Chapter 5 (-march=native
 * -DLB_SIMD=1) gets the AVX2 / AVX-512 / NEON versions; built without -march
 * every kernel is the plain-C one.
 *
 * @section q_layout The block layouts (the book's formats appendix, docs/formats.md)
 *
 *   | type | weights | bytes | bits/weight | weight value                                 |
 *   |------|---------|-------|-------------|----------------------------------------------|
 *   | Q8_0 |  32     |  34   | 8.5         | d·q, q int8                                  |
 *   | Q6_K | 256     | 210   | 6.5625      | d·sc·(q − 32), q 6 bits, sc int8 per 16       |
 *   | Q5_0 |  32     |  22   | 5.5         | d·(q − 16), q 5 bits (4 + 1)                 |
 *   | Q4_K | 256     | 144   | 4.5         | d·sc·q − dmin·m, q 4 bits, sc/m 6 bits per 32 |
 *   | Q4_0 |  32     |  18   | 4.5         | d·(q − 8), q 4 bits                          |
 *
 * Chapter 8's (quant_block_size_ch8(); chapters 5-7 refuse them):
 *
 *   | type   | weights | bytes | bits/weight | weight value                                           |
 *   |--------|---------|-------|-------------|--------------------------------------------------------|
 *   | Q5_K   | 256     | 176   | 5.5         | d·sc·q − dmin·m, q 5 bits (4 + 1), as Q4_K             |
 *   | IQ4_XS | 256     | 136   | 4.25        | d·(ls − 32)·kv[q], q 4 bits, kv a table of 16 levels   |
 *   | Q3_K   | 256     | 110   | 3.4375      | d·(sc − 32)·q, q −4..3 (2 + 1 bits), sc 6 bits per 16  |
 *
 * @section q_act The activations
 * A matmul rounds its input once, to the form the weights' integer dot
 * product wants, as llama.cpp does:
 *  - Q8_0, Q5_0 and Q4_0 weights: Q8_0 blocks, with chapter 3's quantizer
 *    (src/q8_kernels.h): the Q8_0 path is chapter 4's, bit for bit;
 *  - Q4_K and Q6_K weights (and chapter 8's Q5_K, Q3_K, IQ4_XS): Q8_K
 *    super-blocks of 256 (a float scale, int8 quants and the sum of every 16
 *    of them), rounded as llama.cpp does:
 *    q = round-half-even(x·(−127/m)), m the value of largest magnitude;
 *  - F16 weights: each value rounded to fp16, as llama.cpp does;
 *  - F32 weights: nothing.
 *
 * @section q_exact The rule of the kernels
 * Chapter 4's: integer sums may be taken in any order (they are exact), but
 * every float operation is done in the order of the plain-C definition, with
 * no fused multiply-add, so the SIMD kernels return the plain-C values bit
 * for bit (chapter 5 checks this on every row of a model when
 * LLAMABOOK_CHECK_KERNELS is set). The fp32 and fp16 dot products are
 * defined with 16 interleaved partial sums, which every SIMD width can
 * compute in exactly that order.
 */
#ifndef LLAMABOOK_QUANTS_H
#define LLAMABOOK_QUANTS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"
#include "q8_kernels.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* a*b+c stays two roundings; gcc never fuses in ISO C mode */
#endif

/** Tensor type ids (ggml's), for the types chapter 5 runs, and the three chapter 8 adds. */
enum { Q_F32 = 0, Q_F16 = 1, Q_Q4_0 = 2, Q_Q5_0 = 6, Q_Q8_0 = 8, Q_Q4_K = 12, Q_Q6_K = 14 };
enum { Q_Q3_K = 11, Q_Q5_K = 13, Q_IQ4_XS = 23 };

enum { QK_K = 256 }; /* weights per K-quant super-block (QK = 32 comes from q8_kernels.h) */

/** Q4_0: weight j < 16 is d · ((qs[j] & 15) − 8), weight j + 16 is d · ((qs[j] >> 4) − 8). */
typedef struct {
    uint16_t d;         /**< scale, fp16 */
    uint8_t qs[QK / 2]; /**< two 4-bit quants per byte */
} BlockQ4_0;

/** Q5_0: like Q4_0 with a fifth bit of each quant in qh, and an offset of 16. */
typedef struct {
    uint16_t d;         /**< scale, fp16 */
    uint8_t qh[4];      /**< bit j of this little-endian uint32: the high bit of weight j */
    uint8_t qs[QK / 2]; /**< low 4 bits, as in Q4_0 */
} BlockQ5_0;

/** Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; weight = d·sc·q − dmin·m. */
typedef struct {
    uint16_t d;           /**< super-scale of the sub-block scales, fp16 */
    uint16_t dmin;        /**< super-scale of the sub-block mins, fp16 */
    uint8_t scales[12];   /**< 8 scales and 8 mins, 6 bits each, packed */
    uint8_t qs[QK_K / 2]; /**< 4-bit quants: chunk c of 64 weights uses qs[32c..32c+31] */
} BlockQ4_K;

/** Q6_K: 16 sub-blocks of 16 with int8 scales; weight = d·sc·(q − 32). */
typedef struct {
    uint8_t ql[QK_K / 2];     /**< low 4 bits of the quants */
    uint8_t qh[QK_K / 4];     /**< high 2 bits */
    int8_t scales[QK_K / 16]; /**< one scale per 16 weights */
    uint16_t d;               /**< super-scale, fp16 (last) */
} BlockQ6_K;

/** Q5_K: Q4_K with a fifth bit per quant; weight = d·sc·q − dmin·m, q = 0..31. */
typedef struct {
    uint16_t d;           /**< super-scale of the sub-block scales, fp16 */
    uint16_t dmin;        /**< super-scale of the sub-block mins, fp16 */
    uint8_t scales[12];   /**< 8 scales and 8 mins, 6 bits each, packed as in Q4_K */
    uint8_t qh[QK_K / 8]; /**< bit c of qh[l]: the fifth bit of weight 32c + l */
    uint8_t qs[QK_K / 2]; /**< low 4 bits, laid out as Q4_K's quants */
} BlockQ5_K;

/** Q3_K: 16 sub-blocks of 16 with 6-bit scales; weight = d·(sc − 32)·q, q = −4..3. */
typedef struct {
    uint8_t hmask[QK_K / 8]; /**< bit k of hmask[l]: the high bit of weight 32k + l (set: q ≥ 0) */
    uint8_t qs[QK_K / 4];    /**< low 2 bits, four weights 32 apart per byte */
    uint8_t scales[12];      /**< 16 scales, 6 bits each, packed (q3_K_scale()) */
    uint16_t d;              /**< super-scale, fp16 (last) */
} BlockQ3_K;

/** IQ4_XS: 8 sub-blocks of 32 with 6-bit scales; weight = d·(ls − 32)·kv[q], kv a fixed 16-value table. */
typedef struct {
    uint16_t d;                /**< super-scale, fp16 */
    uint16_t scales_h;         /**< bits 2j, 2j + 1: bits 4-5 of sub-block j's scale */
    uint8_t scales_l[QK_K / 64]; /**< nibble j % 2 of byte j / 2: bits 0-3 of sub-block j's scale */
    uint8_t qs[QK_K / 2];      /**< 4-bit table indices, 16 bytes per sub-block, as Q4_0's nibbles */
} BlockIQ4_XS;

/** Q8_K, the activations of K-quant dot products: value j is d · qs[j]. */
typedef struct {
    float d;                  /**< scale */
    int8_t qs[QK_K];          /**< quants */
    int16_t bsums[QK_K / 16]; /**< sum of each 16 consecutive quants */
} BlockQ8_K;

_Static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 is 18 bytes");
_Static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 is 22 bytes");
_Static_assert(sizeof(BlockQ4_K) == 144, "Q4_K is 144 bytes");
_Static_assert(sizeof(BlockQ6_K) == 210, "Q6_K is 210 bytes");
_Static_assert(sizeof(BlockQ8_K) == 292, "Q8_K is 292 bytes");
_Static_assert(sizeof(BlockQ5_K) == 176, "Q5_K is 176 bytes");
_Static_assert(sizeof(BlockQ3_K) == 110, "Q3_K is 110 bytes");
_Static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS is 136 bytes");

/* ======================================================================== */
/* Unpacking: the integer quants of one block                               */
/* ======================================================================== */

/** Q4_0 block → 32 signed quants in weight order (−8..7). */
static inline void unpack_q4_0(const BlockQ4_0 *b, int8_t q[QK]) {
    /* EXERCISE 5.1 BEGIN: the Q4_0 block
     * Task: Unpack one Q4_0 block (18 bytes: the fp16 scale d, then 16 bytes qs holding
     *   32 4-bit quants) into its 32 signed quants in weight order; then, in
     *   dequant_q4_0() below, turn n / 32 blocks into n floats: weight = d * quant.
     * Contract: Weight j < 16 is the low nibble of qs[j], weight j + 16 its high nibble
     *   (not j's neighbour: llama.cpp's layout), each minus 8, so quants are -8..7.
     *   dequant_q4_0() must give ggml's exact values: (float)q * d, d from fp16_to_float().
     * Hint: The nibbles are unsigned 0..15; subtract 8 after masking or shifting. Pairs
     *   (qs[j] & 15, qs[j] >> 4) as weights 2j and 2j+1 is the classic mistake.
     * Graded: The token embedding of llama2xs-q4_0.gguf is Q4_0, so the logits show a
     *   mistake from position 0 on; the probe (tools/grade/probe_05.c) also unpacks and
     *   dequantizes hand-made blocks (each nibble alone, a negative scale, several blocks)
     *   against the values of ggml's dequantize_row_q4_0, and checks that the plain-C
     *   Q4_0 dot product, which uses unpack_q4_0(), equals the SIMD one bit for bit.
     * Stub: (void)b; memset(q, 0, QK);
     */
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (int8_t)((b->qs[j] & 15) - 8);
        q[j + QK / 2] = (int8_t)((b->qs[j] >> 4) - 8);
    }
    /* EXERCISE 5.1 END */
}

/** Q5_0 block → 32 signed quants in weight order (−16..15). */
static inline void unpack_q5_0(const BlockQ5_0 *b, int8_t q[QK]) {
    uint32_t h = (uint32_t)b->qh[0] | (uint32_t)b->qh[1] << 8 | (uint32_t)b->qh[2] << 16 | (uint32_t)b->qh[3] << 24;
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (int8_t)(((b->qs[j] & 15) | ((h >> j) & 1) << 4) - 16);
        q[j + QK / 2] = (int8_t)(((b->qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4) - 16);
    }
}

/** Q4_K: the 6-bit scale and min of sub-block j (0..7). */
static inline void q4_K_scale_min(const uint8_t s[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/** Q4_K block → 256 unsigned quants (0..15) in weight order. */
static inline void unpack_q4_K(const BlockQ4_K *b, uint8_t q[QK_K]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 15;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
}

/** Q6_K block → 256 signed quants (−32..31) in weight order; weight w uses scales[w / 16]. */
static inline void unpack_q6_K(const BlockQ6_K *b, int8_t q[QK_K]) {
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        int8_t *o = q + 128 * n;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
    }
}

/** Q5_K block → 256 unsigned quants (0..31) in weight order: Q4_K's nibbles, bit c of qh[l] on top of weight 32c + l. */
static inline void unpack_q5_K(const BlockQ5_K *b, uint8_t q[QK_K]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((b->qs[32 * c + l] & 15) | ((b->qh[l] >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) | ((b->qh[l] >> (2 * c + 1)) & 1) << 4);
        }
}

/**
 * Q3_K: the scale of sub-block @p i (0..15), −32..31. Its low four bits are
 * the low nibble of s[i] (i < 8) or the high nibble of s[i − 8]; its top two
 * are the 2-bit field i / 4 of byte s[8 + i % 4].
 */
static inline int q3_K_scale(const uint8_t s[12], int i) {
    int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | high << 4) - 32;
}

/**
 * Q3_K block → 256 signed quants (−4..3) in weight order; weight w uses
 * q3_K_scale(w / 16). Weight 128h + 32k + l (h < 2, k < 4, l < 32) is bits
 * 2k, 2k + 1 of qs[32h + l], less 4 where bit 4h + k of hmask[l] is clear.
 */
static inline void unpack_q3_K(const BlockQ3_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int low = (b->qs[32 * h + l] >> (2 * k)) & 3, high = (b->hmask[l] >> (4 * h + k)) & 1;
                q[128 * h + 32 * k + l] = (int8_t)(low - (high ? 0 : 4));
            }
}

/**
 * IQ4_XS: the fixed codebook of 16 levels that a 4-bit index stands for
 * (llama.cpp's kvalues_iq4nl, shared with IQ4_NL), and its entry @p i:
 * denser near zero, where most weights are, than 16 evenly spaced levels.
 */
static inline const int8_t *iq4_nl_levels(void) {
    static const int8_t levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    return levels;
}
static inline int iq4_nl_value(int i) { return iq4_nl_levels()[i & 15]; }

/** IQ4_XS: the scale of sub-block @p j (0..7), −32..31. */
static inline int iq4_xs_scale(const BlockIQ4_XS *b, int j) {
    return (((b->scales_l[j / 2] >> (4 * (j % 2))) & 15) | ((b->scales_h >> (2 * j)) & 3) << 4) - 32;
}

/** IQ4_XS block → 256 levels (kv, −127..113) in weight order: sub-block j's 16 bytes as Q4_0's nibbles. */
static inline void unpack_iq4_xs(const BlockIQ4_XS *b, int8_t q[QK_K]) {
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 16; l++) {
            q[32 * j + l] = (int8_t)iq4_nl_value(b->qs[16 * j + l] & 15);
            q[32 * j + 16 + l] = (int8_t)iq4_nl_value(b->qs[16 * j + l] >> 4);
        }
}

/* ======================================================================== */
/* Decoding a row: the same fp32 operations as ggml, so the same bits        */
/* ======================================================================== */

static inline void dequant_f16(const uint16_t *in, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = fp16_to_float(in[i]);
}

static inline void dequant_q4_0(const BlockQ4_0 *in, float *out, int n) {
    /* EXERCISE 5.1 BEGIN (dequantizing a row of Q4_0 blocks with unpack_q4_0())
     * Stub: (void)in; memset(out, 0, sizeof(float) * (size_t)n);
     */
    int8_t q[QK];
    for (int b = 0; b < n / QK; b++) {
        float d = fp16_to_float(in[b].d);
        unpack_q4_0(&in[b], q);
        for (int j = 0; j < QK; j++) out[b * QK + j] = (float)q[j] * d;
    }
    /* EXERCISE 5.1 END */
}

static inline void dequant_q5_0(const BlockQ5_0 *in, float *out, int n) {
    int8_t q[QK];
    for (int b = 0; b < n / QK; b++) {
        float d = fp16_to_float(in[b].d);
        unpack_q5_0(&in[b], q);
        for (int j = 0; j < QK; j++) out[b * QK + j] = (float)q[j] * d;
    }
}

/** ggml: d1 = d·sc, m1 = dmin·m, weight = d1·q − m1 (three roundings, in that order). */
static inline void dequant_q4_K(const BlockQ4_K *in, float *out, int n) {
    uint8_t q[QK_K];
    for (int b = 0; b < n / QK_K; b++) {
        float d = fp16_to_float(in[b].d), dmin = fp16_to_float(in[b].dmin);
        unpack_q4_K(&in[b], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4_K_scale_min(in[b].scales, j, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            for (int l = 0; l < 32; l++) out[b * QK_K + 32 * j + l] = ds * (float)q[32 * j + l] - ms;
        }
    }
}

/** ggml: weight = (d·sc)·q. */
static inline void dequant_q6_K(const BlockQ6_K *in, float *out, int n) {
    int8_t q[QK_K];
    for (int b = 0; b < n / QK_K; b++) {
        float d = fp16_to_float(in[b].d);
        unpack_q6_K(&in[b], q);
        for (int w = 0; w < QK_K; w++) out[b * QK_K + w] = d * (float)in[b].scales[w / 16] * (float)q[w];
    }
}

/** ggml: as Q4_K, d1 = d·sc, m1 = dmin·m, weight = d1·q − m1, with the 5-bit quants. */
static inline void dequant_q5_K(const BlockQ5_K *in, float *out, int n) {
    uint8_t q[QK_K];
    for (int b = 0; b < n / QK_K; b++) {
        float d = fp16_to_float(in[b].d), dmin = fp16_to_float(in[b].dmin);
        unpack_q5_K(&in[b], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4_K_scale_min(in[b].scales, j, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            for (int l = 0; l < 32; l++) out[b * QK_K + 32 * j + l] = ds * (float)q[32 * j + l] - ms;
        }
    }
}

/** ggml: dl = d·(sc − 32) per 16 weights, weight = dl·q. */
static inline void dequant_q3_K(const BlockQ3_K *in, float *out, int n) {
    int8_t q[QK_K];
    for (int b = 0; b < n / QK_K; b++) {
        float d = fp16_to_float(in[b].d);
        unpack_q3_K(&in[b], q);
        for (int g = 0; g < QK_K / 16; g++) {
            float dl = d * (float)q3_K_scale(in[b].scales, g);
            for (int l = 0; l < 16; l++) out[b * QK_K + 16 * g + l] = dl * (float)q[16 * g + l];
        }
    }
}

/** ggml: dl = d·(ls − 32) per 32 weights, weight = dl·kv. */
static inline void dequant_iq4_xs(const BlockIQ4_XS *in, float *out, int n) {
    int8_t q[QK_K];
    for (int b = 0; b < n / QK_K; b++) {
        float d = fp16_to_float(in[b].d);
        unpack_iq4_xs(&in[b], q);
        for (int j = 0; j < 8; j++) {
            float dl = d * (float)iq4_xs_scale(&in[b], j);
            for (int l = 0; l < 32; l++) out[b * QK_K + 32 * j + l] = dl * (float)q[32 * j + l];
        }
    }
}

/** Bytes of a row of @p n weights of @p type (n a multiple of the block; chapter 8's types too); 0 for other types. */
static inline size_t quant_row_bytes(int type, size_t n) {
    switch (type) {
    case Q_F32: return 4 * n;
    case Q_F16: return 2 * n;
    case Q_Q8_0: return n / QK * sizeof(BlockQ8);
    case Q_Q4_0: return n / QK * sizeof(BlockQ4_0);
    case Q_Q5_0: return n / QK * sizeof(BlockQ5_0);
    case Q_Q4_K: return n / QK_K * sizeof(BlockQ4_K);
    case Q_Q6_K: return n / QK_K * sizeof(BlockQ6_K);
    case Q_Q5_K: return n / QK_K * sizeof(BlockQ5_K);
    case Q_Q3_K: return n / QK_K * sizeof(BlockQ3_K);
    case Q_IQ4_XS: return n / QK_K * sizeof(BlockIQ4_XS);
    default: return 0;
    }
}

/**
 * The alignment a row of @p type needs in memory: that of the C type the
 * kernels read it through (a float, an fp16 half, a block whose scales are
 * halves); 1 for a type neither chapter 5 nor 8 runs. A row is whole blocks, so
 * its size is a multiple of this too.
 */
static inline size_t quant_alignment(int type) {
    switch (type) {
    case Q_F32: return _Alignof(float);
    case Q_F16: return _Alignof(uint16_t);
    case Q_Q8_0: return _Alignof(BlockQ8);
    case Q_Q4_0: return _Alignof(BlockQ4_0);
    case Q_Q5_0: return _Alignof(BlockQ5_0);
    case Q_Q4_K: return _Alignof(BlockQ4_K);
    case Q_Q6_K: return _Alignof(BlockQ6_K);
    case Q_Q5_K: return _Alignof(BlockQ5_K);
    case Q_Q3_K: return _Alignof(BlockQ3_K);
    case Q_IQ4_XS: return _Alignof(BlockIQ4_XS);
    default: return 1;
    }
}

/**
 * Elements per block of @p type (1 for F32/F16); 0 for a type chapter 5 does
 * not run. Chapters 5 to 7 refuse a tensor whose type this says 0 for, so it
 * stays chapter 5's list: chapter 8's types are in quant_block_size_ch8().
 */
static inline int quant_block_size(int type) {
    switch (type) {
    case Q_F32: case Q_F16: return 1;
    case Q_Q8_0: case Q_Q4_0: case Q_Q5_0: return QK;
    case Q_Q4_K: case Q_Q6_K: return QK_K;
    default: return 0;
    }
}

/** quant_block_size() for the types chapter 8 runs: chapter 5's, Q5_K, Q3_K and IQ4_XS; 0 for others. */
static inline int quant_block_size_ch8(int type) {
    switch (type) {
    case Q_Q5_K: case Q_Q3_K: case Q_IQ4_XS: return QK_K;
    default: return quant_block_size(type);
    }
}

/** The @p n weights of @p type at @p row, as fp32: exactly ggml's values (chapter 8's types too). */
static inline void dequant_row(int type, const void *row, float *out, int n) {
    switch (type) {
    case Q_F32: memcpy(out, row, sizeof(float) * (size_t)n); break;
    case Q_F16: dequant_f16(row, out, n); break;
    case Q_Q8_0: dequantize_q8(out, row, n); break;
    case Q_Q4_0: dequant_q4_0(row, out, n); break;
    case Q_Q5_0: dequant_q5_0(row, out, n); break;
    case Q_Q4_K: dequant_q4_K(row, out, n); break;
    case Q_Q6_K: dequant_q6_K(row, out, n); break;
    case Q_Q5_K: dequant_q5_K(row, out, n); break;
    case Q_Q3_K: dequant_q3_K(row, out, n); break;
    case Q_IQ4_XS: dequant_iq4_xs(row, out, n); break;
    default: memset(out, 0, sizeof(float) * (size_t)n); break;
    }
}

/* ======================================================================== */
/* Quantizing                                                               */
/* ======================================================================== */

/**
 * Weights to Q4_0 as llama-quantize does (for tools/gguf_convert): m = the
 * value of largest magnitude, sign kept; d = m / −8; q = min(15, (int)(x/d + 8.5)).
 * A block with a NaN or an infinity gets a NaN scale and quants of 8 (zero):
 * its values decode as NaN, so the broken weight stays visible (to
 * --check-tensors, and in the logits) instead of being rounded to a number.
 */
static inline void quantize_q4_0(const float *x, BlockQ4_0 *y, int n) {
    for (int b = 0; b < n / QK; b++) {
        const float *v = x + b * QK;
        float amax = 0.0f, max = 0.0f;
        int finite = 1;
        for (int j = 0; j < QK; j++) {
            finite &= isfinite(v[j]) != 0;
            if (fabsf(v[j]) > amax) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        if (!finite) {
            y[b].d = fp16_from_float(NAN);
            memset(y[b].qs, 0x88, sizeof y[b].qs);
            continue;
        }
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp16_from_float(d);
        for (int j = 0; j < QK / 2; j++) {
            float a = v[j] * id + 8.5f, c = v[j + QK / 2] * id + 8.5f;
            int q0 = a > 0.0f ? (a < 15.0f ? (int)a : 15) : 0; /* truncation, NaN-safe */
            int q1 = c > 0.0f ? (c < 15.0f ? (int)c : 15) : 0;
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/** The nearest integer, ties to even, for |v| < 2^22 (adding 1.5·2^23 rounds for us). */
static inline int round_half_even(float v) {
    float shifted = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

/**
 * Activations to Q8_K as llama.cpp does: q = min(127, round-half-even(x · −127/m)), d = 1/(−127/m).
 * A block of zeros is all zero. A block with a NaN or an infinity (from a
 * broken weight upstream) gets d = NaN and zero quants: converting a NaN or
 * an infinity to an integer is undefined behaviour in C, and the NaN scale
 * carries the fault on into the dot products and the logits, where the
 * driver sees it, instead of dropping it.
 */
static inline void quantize_q8_K(const float *x, BlockQ8_K *y, int n) {
    for (int b = 0; b < n / QK_K; b++) {
        const float *v = x + b * QK_K;
        float amax = 0.0f, max = 0.0f;
        int finite = 1;
        for (int j = 0; j < QK_K; j++) {
            finite &= isfinite(v[j]) != 0;
            if (fabsf(v[j]) > amax) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        if (!finite || amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            if (!finite) y[b].d = NAN;
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            float r = iscale * v[j];
            int q = r == r ? round_half_even(r) : 0; /* NaN only if 1/max overflows (a subnormal max) */
            y[b].qs[j] = (int8_t)(q < 127 ? q : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = 1.0f / iscale;
    }
}

/** Activations for F16 weights: each value rounded to the nearest half (kept as a float). */
static inline void round_to_f16(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = fp16_to_float(fp16_from_float(x[i]));
}

/* ======================================================================== */
/* Dot products, plain C: the definitions                                    */
/* ======================================================================== */

enum { FLOAT_LANES = 16 }; /* partial sums of the fp32 and fp16 dot products */

/**
 * Σ w[i]·x[i] as 16 partial sums (sum j takes the elements i ≡ j mod 16),
 * then added left to right, then the last n % 16 terms. One fixed order that
 * 16-, 8- and 4-lane SIMD can all follow exactly.
 */
static inline float dot_f32_c(const float *w, const float *x, int n) {
    float part[FLOAT_LANES] = {0};
    int i = 0;
    for (; i + FLOAT_LANES <= n; i += FLOAT_LANES)
        for (int j = 0; j < FLOAT_LANES; j++) part[j] += w[i + j] * x[i + j];
    float sum = 0.0f;
    for (int j = 0; j < FLOAT_LANES; j++) sum += part[j];
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}

/** dot_f32_c with fp16 weights (@p x already rounded to fp16). */
static inline float dot_f16_c(const uint16_t *w, const float *x, int n) {
    float part[FLOAT_LANES] = {0};
    int i = 0;
    for (; i + FLOAT_LANES <= n; i += FLOAT_LANES)
        for (int j = 0; j < FLOAT_LANES; j++) part[j] += fp16_to_float(w[i + j]) * x[i + j];
    float sum = 0.0f;
    for (int j = 0; j < FLOAT_LANES; j++) sum += part[j];
    for (; i < n; i++) sum += fp16_to_float(w[i]) * x[i];
    return sum;
}

static inline int32_t dot_i8(const int8_t *a, const int8_t *b, int n) {
    int32_t s = 0;
    for (int j = 0; j < n; j++) s += (int32_t)a[j] * (int32_t)b[j];
    return s;
}

/**
 * Q4_0 · Q8_0, as chapter 3's dot_q8: Σ_b (float)isum_b · (d_w·d_x), added
 * left to right; @p xd holds the scales of x as floats and @p xsum the sum
 * of each block's quants (the SIMD kernels use it; the definition does not).
 */
static inline float dot_q4_0_c(const BlockQ4_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    (void)xsum;
    float sum = 0.0f;
    int8_t q[QK];
    for (int b = 0; b < nb; b++) {
        unpack_q4_0(&w[b], q);
        sum += (float)dot_i8(q, x[b].qs, QK) * (fp16_to_float(w[b].d) * xd[b]);
    }
    return sum;
}

/** Q5_0 · Q8_0, the same way. */
static inline float dot_q5_0_c(const BlockQ5_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    (void)xsum;
    float sum = 0.0f;
    int8_t q[QK];
    for (int b = 0; b < nb; b++) {
        unpack_q5_0(&w[b], q);
        sum += (float)dot_i8(q, x[b].qs, QK) * (fp16_to_float(w[b].d) * xd[b]);
    }
    return sum;
}

/**
 * Q4_K · Q8_K: per super-block, d_x·(d·Σ_j sc_j·Σ q·x − dmin·Σ_j m_j·Σ x).
 * The mins need only the sums of x per sub-block, which are the bsums.
 */
static inline float dot_q4_K_c(const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    uint8_t q[QK_K];
    for (int b = 0; b < nb; b++) {
        unpack_q4_K(&w[b], q);
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4_K_scale_min(w[b].scales, j, &sc, &m);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) s += (int32_t)q[32 * j + l] * x[b].qs[32 * j + l];
            isum += sc * s;
            imin += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        float d = fp16_to_float(w[b].d) * x[b].d, dmin = fp16_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)isum - dmin * (float)imin;
    }
    return sum;
}

/** Q6_K · Q8_K: per super-block, d·d_x·Σ_g sc_g·Σ q·x over the 16 groups of 16. */
static inline float dot_q6_K_c(const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    int8_t q[QK_K];
    for (int b = 0; b < nb; b++) {
        unpack_q6_K(&w[b], q);
        int32_t isum = 0;
        for (int g = 0; g < QK_K / 16; g++) isum += w[b].scales[g] * dot_i8(q + 16 * g, x[b].qs + 16 * g, 16);
        sum += fp16_to_float(w[b].d) * x[b].d * (float)isum;
    }
    return sum;
}

/*
 * Chapter 8's three types against Q8_K, as llama.cpp computes them: per
 * super-block one integer sum of scale × Σ quant·x over the sub-blocks, turned
 * into a float once and multiplied by the two super-scales, d_w·d_x first;
 * Q5_K then takes off its mins as Q4_K does. The super-blocks' terms are
 * added left to right. (llama.cpp's x86 versions keep 8 lanes of partial
 * integer sums, each turned into a float and added with a fused
 * multiply-add, and add Q5_K's mins apart: their results differ from these
 * by roundings, not by formula.)
 */

/** Q5_K · Q8_K: dot_q4_K_c with the 5-bit quants, d_x·(d·Σ_j sc_j·Σ q·x − dmin·Σ_j m_j·Σ x). */
static inline float dot_q5_K_c(const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    uint8_t q[QK_K];
    for (int b = 0; b < nb; b++) {
        unpack_q5_K(&w[b], q);
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4_K_scale_min(w[b].scales, j, &sc, &m);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) s += (int32_t)q[32 * j + l] * x[b].qs[32 * j + l];
            isum += sc * s;
            imin += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        float d = fp16_to_float(w[b].d) * x[b].d, dmin = fp16_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)isum - dmin * (float)imin;
    }
    return sum;
}

/** Q3_K · Q8_K: per super-block, d·d_x·Σ_g (sc_g − 32)·Σ q·x over the 16 groups of 16 (|isum| ≤ 2^23). */
static inline float dot_q3_K_c(const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    int8_t q[QK_K];
    for (int b = 0; b < nb; b++) {
        unpack_q3_K(&w[b], q);
        int32_t isum = 0;
        for (int g = 0; g < QK_K / 16; g++) isum += q3_K_scale(w[b].scales, g) * dot_i8(q + 16 * g, x[b].qs + 16 * g, 16);
        sum += fp16_to_float(w[b].d) * x[b].d * (float)isum;
    }
    return sum;
}

/** IQ4_XS · Q8_K: per super-block, d·d_x·Σ_j (ls_j − 32)·Σ kv·x over the 8 sub-blocks of 32 (|isum| < 2^28). */
static inline float dot_iq4_xs_c(const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    int8_t q[QK_K];
    for (int b = 0; b < nb; b++) {
        unpack_iq4_xs(&w[b], q);
        int32_t isum = 0;
        for (int j = 0; j < 8; j++) isum += iq4_xs_scale(&w[b], j) * dot_i8(q + 32 * j, x[b].qs + 32 * j, 32);
        sum += fp16_to_float(w[b].d) * x[b].d * (float)isum;
    }
    return sum;
}

/* ======================================================================== */
/* Dot products, x86 (AVX2; AVX-512 for the fp32 sums)                       */
/* ======================================================================== */
#if SIMD_X86

/** The 16 partial sums, in order, into a float array. */
#if SIMD_AVX512
typedef __m512 Lanes16;
#define lanes16_zero() _mm512_setzero_ps()
static inline Lanes16 lanes16_madd(Lanes16 s, __m512 w, const float *x) { return _mm512_add_ps(s, _mm512_mul_ps(w, _mm512_loadu_ps(x))); }
static inline void lanes16_store(float *p, Lanes16 s) { _mm512_storeu_ps(p, s); }
#endif

static inline float sum_partials(const float part[FLOAT_LANES]) {
    float sum = 0.0f;
    for (int j = 0; j < FLOAT_LANES; j++) sum += part[j];
    return sum;
}

static inline float simd_dot_f32(const float *w, const float *x, int n) {
    float part[FLOAT_LANES];
    int i = 0;
#if SIMD_AVX512
    __m512 s = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i)));
    _mm512_storeu_ps(part, s);
#else
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i)));
        s1 = _mm256_add_ps(s1, _mm256_mul_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8)));
    }
    _mm256_storeu_ps(part, s0);
    _mm256_storeu_ps(part + 8, s1);
#endif
    float sum = sum_partials(part);
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}

static inline float simd_dot_f16(const uint16_t *w, const float *x, int n) {
    float part[FLOAT_LANES];
    int i = 0;
#if SIMD_AVX512
    __m512 s = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16)
        s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))),
                                           _mm512_loadu_ps(x + i)));
    _mm512_storeu_ps(part, s);
#else
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        s0 = _mm256_add_ps(s0, _mm256_mul_ps(w0, _mm256_loadu_ps(x + i)));
        s1 = _mm256_add_ps(s1, _mm256_mul_ps(w1, _mm256_loadu_ps(x + i + 8)));
    }
    _mm256_storeu_ps(part, s0);
    _mm256_storeu_ps(part + 8, s1);
#endif
    float sum = sum_partials(part);
    for (; i < n; i++) sum += half_to_float(w[i]) * x[i];
    return sum;
}

/**
 * The 32 4-bit quants of 16 bytes, in weight order: the low nibbles, then the
 * high ones. The 16 bytes are loaded into both halves of the register at once
 * (a broadcast load), and the upper half shifted right by 4: no instruction
 * that moves data between the halves, which would compete for the one port
 * the other lane shuffles need.
 */
static inline __m256i nibbles_32(const uint8_t *p) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/** 0xFF in byte j where bit j of @p bits is set, else 0 (32 bytes). */
static inline __m256i bits_to_bytes(uint32_t bits) {
    __m256i v = _mm256_set1_epi32((int)bits);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    v = _mm256_shuffle_epi8(v, spread); /* byte j now holds byte j/8 of bits */
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

/** The unsigned quants of a Q4_0 block (0..15) and of a Q5_0 block (0..31), as 32 bytes. */
static inline __m256i uquants_q4_0(const BlockQ4_0 *b) { return nibbles_32(b->qs); }
static inline __m256i uquants_q5_0(const BlockQ5_0 *b) {
    uint32_t h;
    memcpy(&h, b->qh, 4);
    return _mm256_or_si256(nibbles_32(b->qs), _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(16)));
}

/** Σ u·x over 32 byte pairs, u unsigned (≤ 31), x signed: 8 int32 lanes. */
static inline __m256i uproducts(__m256i u, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, x);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)); /* ≤ 2·31·128: no saturation */
#endif
}

/*
 * Q4_0 and Q5_0 · Q8_0 as chapter 4's simd_dot_q8: eight blocks' integer
 * sums in the lanes, their products with the scales in the lanes, then
 * added one by one, left to right, as the plain-C definition adds them.
 * The integer sum Σ(u − off)·x is taken as Σu·x − off·Σx (off = 8 or 16):
 * the unsigned quants go straight into the multiply, and Σx, the same for
 * every row, is summed once per matmul (@p xsum). Integers: the same value.
 */
#define DOT_Q_Q8_0(name, Block, uquants, shift)                                                                   \
    static inline float name(const Block *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {    \
        float sum = 0.0f;                                                                                         \
        int b = 0;                                                                                                \
        for (; b + 8 <= nb; b += 8) {                                                                             \
            __m256i s[8];                                                                                         \
            for (int j = 0; j < 8; j++) s[j] = uproducts(uquants(w + b + j), load_qs(x + b + j));                 \
            __m256i off = _mm256_slli_epi32(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(xsum + b))), shift); \
            __m256 isum = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum_8x8(s), off));                                 \
            __m128i dw = _mm_setr_epi16((short)w[b].d, (short)w[b + 1].d, (short)w[b + 2].d, (short)w[b + 3].d,   \
                                        (short)w[b + 4].d, (short)w[b + 5].d, (short)w[b + 6].d, (short)w[b + 7].d); \
            __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(dw), _mm256_loadu_ps(xd + b));                          \
            float products[8];                                                                                    \
            _mm256_storeu_ps(products, _mm256_mul_ps(isum, scales));                                             \
            for (int j = 0; j < 8; j++) sum += products[j];                                                       \
        }                                                                                                         \
        for (; b < nb; b++) {                                                                                     \
            int32_t isum = sum_lanes(uproducts(uquants(w + b), load_qs(x + b))) - xsum[b] * (1 << shift);            \
            sum += (float)isum * (half_to_float(w[b].d) * xd[b]);                                                 \
        }                                                                                                         \
        return sum;                                                                                               \
    }
DOT_Q_Q8_0(simd_dot_q4_0, BlockQ4_0, uquants_q4_0, 3)
DOT_Q_Q8_0(simd_dot_q5_0, BlockQ5_0, uquants_q5_0, 4)
#undef DOT_Q_Q8_0

/**
 * The 16 quant bytes of block column @p col in row k (low half) and in row
 * k + 4 (high half, @p four_rows bytes further): a load and an insert from
 * memory, neither of which needs the port that moves data between lanes.
 */
static inline __m256i q4_0_rows_k_and_k4(const uint8_t *col, size_t four_rows) {
    __m128i row_k = _mm_loadu_si128((const __m128i *)((const BlockQ4_0 *)(const void *)col)->qs);
    __m128i row_k4 = _mm_loadu_si128((const __m128i *)((const BlockQ4_0 *)(const void *)(col + four_rows))->qs);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(row_k), row_k4, 1);
}

/**
 * Σ u·x for the two blocks in @p two (as q4_0_rows_k_and_k4 packs them), u
 * the unsigned nibbles: lanes 0–3 sum row k's 32 products, lanes 4–7 row
 * k + 4's. A low nibble is weight j (j < 16), the high one weight j + 16, so
 * the low nibbles meet @p x_lo (x[0..15] in both halves), the high ones @p x_hi.
 */
static inline __m256i q4_0_two_rows_products(__m256i two, __m256i x_lo, __m256i x_hi) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(two, low4), hi = _mm256_and_si256(_mm256_srli_epi16(two, 4), low4);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, x_lo), hi, x_hi);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, x_lo), hi, x_hi);
#else /* pairs into int16: each ≤ 2·15·128, two of them ≤ 7680, no saturation */
    __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x_lo), _mm256_maddubs_epi16(hi, x_hi));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
#endif
}

/**
 * out[k] = simd_dot_q4_0 of row k, for the 8 rows of @p nb blocks from @p w,
 * bit for bit: one row per lane, as chapter 4's simd_dot_q8_8rows. A Q4_0
 * block's 16 bytes fill half a register, so rows k and k + 4 share one: four
 * registers of products instead of eight, and two rounds of pairwise adds
 * (hadd, which keeps the 128-bit halves apart) leave row k's sum in lane k,
 * where chapter 4's kernel needs three rounds and a fold of the halves.
 */
static inline void simd_dot_q4_0_8rows(float *out, const BlockQ4_0 *w, const BlockQ8 *x, const float *xd,
                                       const int16_t *xsum, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ4_0);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ4_0), b);
        __m256i x_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[b].qs));
        __m256i x_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[b].qs + 16)));
        __m256i s[4]; /* s[k]: row k in lanes 0-3, row k + 4 in lanes 4-7 */
        UNROLL_8 for (int k = 0; k < 4; k++)
            s[k] = q4_0_two_rows_products(q4_0_rows_k_and_k4(col + row_bytes * (size_t)k, 4 * row_bytes), x_lo, x_hi);
        __m256i rows = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        __m256i isum = _mm256_sub_epi32(rows, _mm256_set1_epi32(xsum[b] * 8)); /* lane k: Σ(u − 8)·x of row k, exact */
        __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(halves_of_8_rows(col, row_bytes)), _mm256_set1_ps(xd[b]));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
    }
    _mm256_storeu_ps(out, sum);
}


#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
/**
 * out[k] = simd_dot_q8 of row k, for the 8 rows of @p nb Q8_0 blocks from
 * @p w, bit for bit: chapter 4's simd_dot_q8_8rows with another way around
 * the sign. VNNI multiplies an unsigned byte by a signed one; chapter 4 moves
 * w's sign onto x, two instructions per block and row. Here w becomes the
 * unsigned w + 128 (one instruction: its top bit flipped) and the excess,
 * 128·Σx, the same for every row, is taken off once per block (@p xsum, as in
 * the Q4_0 kernels). Each lane's sum is at most 32·255·127: exact in an int32.
 */
static inline void simd_dot_q8_0_8rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd,
                                       const int16_t *xsum, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ8);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i top_bit = _mm256_set1_epi8(-128);
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ8), b);
        __m256i xq = load_qs(x + b), s[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            __m256i u = _mm256_xor_si256(load_qs((const BlockQ8 *)(const void *)(col + row_bytes * (size_t)k)), top_bit);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
            s[k] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, xq);
#else
            s[k] = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, xq);
#endif
        }
        __m256i isum = _mm256_sub_epi32(sum_8x8(s), _mm256_set1_epi32(xsum[b] * 128)); /* lane k: block b of row k, exact */
        __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(halves_of_8_rows(col, row_bytes)), _mm256_set1_ps(xd[b]));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
    }
    _mm256_storeu_ps(out, sum);
}
#define HAVE_Q8_0_8ROWS 1
#endif

/** Q4_K · Q8_K: the integer sums in the lanes, the floats as in dot_q4_K_c. */
static inline float simd_dot_q4_K(const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(15);
    for (int b = 0; b < nb; b++) {
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) q4_K_scale_min(w[b].scales, j, &sc[j], &m[j]);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            __m256i lo = _mm256_and_si256(raw, low4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c + 32));
            /* unsigned nibble × signed byte, pairs into int16 (≤ 2·15·128: no saturation), × the sub-block scale into int32 */
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16((short)sc[2 * c]));
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16((short)sc[2 * c + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        int32_t imin = 0;
        for (int j = 0; j < 8; j++) imin += m[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        float d = half_to_float(w[b].d) * x[b].d, dmin = half_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)sum_lanes(isum) - dmin * (float)imin;
    }
    return sum;
}

/** Q6_K · Q8_K: the quants as unsigned 0..63, then −32·Σx per group (the bsums) in integers. */
static inline float simd_dot_q6_K(const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    for (int b = 0; b < nb; b++) {
        __m256i isum = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = w[b].ql + 64 * n, *qh = w[b].qh + 32 * n;
            const int8_t *xs = x[b].qs + 128 * n, *sc = w[b].scales + 8 * n;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4] = { /* weights 0-31, 32-63, 64-95, 96-127 of this half */
                _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, three), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4)),
            };
            for (int k = 0; k < 4; k++) { /* each 128-bit lane is one group of 16 with its own scale */
                __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(xs + 32 * k)));
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s));
            }
        }
        int32_t offset = 0;
        for (int g = 0; g < 16; g++) offset += w[b].scales[g] * x[b].bsums[g];
        sum += half_to_float(w[b].d) * x[b].d * (float)(sum_lanes(isum) - 32 * offset);
    }
    return sum;
}

/** acc + the sums of pairs of int16 products a·b, into 8 int32 lanes: one instruction with VNNI. */
static inline __m256i madd16_acc256(__m256i acc, __m256i a, __m256i b) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpwssd_epi32(acc, a, b);
#elif defined(__AVXVNNI__)
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/**
 * Q5_K · Q8_K: simd_dot_q4_K with a fifth bit. The 32 bytes of qh hold the
 * fifth bits of sub-block j in bit j; shifted right once per sub-block, the
 * next one is always bit 0 (a 16-bit shift: each byte's bit 0 comes from the
 * same byte), moved to bit 4 and or-ed onto the nibbles. Quants ≤ 31: pairs
 * ≤ 2·31·127, no saturation.
 */
static inline float simd_dot_q5_K(const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(16);
    for (int b = 0; b < nb; b++) {
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) q4_K_scale_min(w[b].scales, j, &sc[j], &m[j]);
        __m256i h = _mm256_loadu_si256((const __m256i *)w[b].qh), isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
            h = _mm256_srli_epi16(h, 1);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
            h = _mm256_srli_epi16(h, 1);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c + 32));
            isum = madd16_acc256(isum, _mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16((short)sc[2 * c]));
            isum = madd16_acc256(isum, _mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16((short)sc[2 * c + 1]));
        }
        int32_t imin = 0;
        for (int j = 0; j < 8; j++) imin += m[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        float d = half_to_float(w[b].d) * x[b].d, dmin = half_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)sum_lanes(isum) - dmin * (float)imin;
    }
    return sum;
}

/**
 * Q3_K · Q8_K: the quants as unsigned u = q + 4 = low two bits | high bit << 2
 * (0..7), then −4·Σ_g sc_g·bsum_g in integers, as simd_dot_q6_K does with its
 * −32. The 32 bytes of qs at 32h serve four runs of 32 weights, two bits per
 * run (shifted down by 2 after each), the 32 bytes of hmask all eight (shifted
 * by 1). A run of 32 is two groups of 16, one per 128-bit lane, each with its
 * own scale.
 */
static inline float simd_dot_q3_K(const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int b = 0; b < nb; b++) {
        int sc[16];
        for (int g = 0; g < 16; g++) sc[g] = q3_K_scale(w[b].scales, g);
        __m256i hm = _mm256_loadu_si256((const __m256i *)w[b].hmask), isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i u = _mm256_or_si256(_mm256_and_si256(raw, three), _mm256_and_si256(_mm256_slli_epi16(hm, 2), four));
                raw = _mm256_srli_epi16(raw, 2);
                hm = _mm256_srli_epi16(hm, 1);
                const int g = 8 * h + 2 * k;
                __m256i s = _mm256_set_m128i(_mm_set1_epi16((short)sc[g + 1]), _mm_set1_epi16((short)sc[g]));
                isum = madd16_acc256(isum, _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(x[b].qs + 16 * g))), s);
            }
        }
        int32_t offset = 0;
        for (int g = 0; g < 16; g++) offset += sc[g] * x[b].bsums[g];
        sum += half_to_float(w[b].d) * x[b].d * (float)(sum_lanes(isum) - 4 * offset);
    }
    return sum;
}

/** The 16 levels of IQ4_XS in both 128-bit lanes: a byte shuffle with indices 0..15 looks them up. */
static inline __m256i iq4_nl_table256(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)iq4_nl_levels()));
}

/**
 * IQ4_XS · Q8_K: each sub-block's 32 indices (nibbles_32) looked up in the
 * table by one byte shuffle, giving signed levels. The multiply wants an
 * unsigned operand, so the level's sign moves onto x (as chapter 4's Q8_0
 * kernel does): |kv|·(x·sign kv), pairs ≤ 2·127·127, no saturation.
 */
static inline float simd_dot_iq4_xs(const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const __m256i table = iq4_nl_table256();
    for (int b = 0; b < nb; b++) {
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i kv = _mm256_shuffle_epi8(table, nibbles_32(w[b].qs + 16 * j));
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * j));
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(kv, kv), _mm256_sign_epi8(xv, kv));
            isum = madd16_acc256(isum, p, _mm256_set1_epi16((short)iq4_xs_scale(&w[b], j)));
        }
        sum += half_to_float(w[b].d) * x[b].d * (float)sum_lanes(isum);
    }
    return sum;
}

/**
 * The 16 scales of a Q3_K block (q3_K_scale() for all of them), as int8, from
 * one 16-byte load that starts 2 bytes before the 12 scale bytes (so that it
 * ends with the block, at its fp16 d). Low four bits: byte i (i < 8) or the
 * high nibble of byte i − 8; top two: field i / 4 of byte 8 + i % 4, brought
 * down by a 32-bit shift of 0, 2, 4 or 6 (every 4 bytes one field further).
 */
static inline __m128i q3_K_scales_16(const uint8_t *blk) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(blk + offsetof(BlockQ3_K, scales) - 2)); /* byte 2 + k: scales[k] */
    const __m128i low = _mm_shuffle_epi8(v, _mm_setr_epi8(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9));
    const __m128i first = _mm_setr_epi8(15, 15, 15, 15, 15, 15, 15, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128i sc = _mm_or_si128(_mm_and_si128(low, first), _mm_andnot_si128(first, _mm_and_si128(_mm_srli_epi16(low, 4), _mm_set1_epi8(15))));
    __m128i top = _mm_shuffle_epi8(v, _mm_setr_epi8(10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13));
    top = _mm_and_si128(_mm_srlv_epi32(top, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    return _mm_sub_epi8(_mm_or_si128(sc, _mm_slli_epi16(top, 4)), _mm_set1_epi8(32));
}

/** The 8 sub-block scales of an IQ4_XS block (iq4_xs_scale()), as int32 lanes: nibble j of scales_l read as a uint32, bits 2j, 2j + 1 of scales_h. */
static inline __m256i iq4_xs_scales_8(const BlockIQ4_XS *b) {
    uint32_t l;
    memcpy(&l, b->scales_l, 4);
    __m256i low = _mm256_srlv_epi32(_mm256_set1_epi32((int)l), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
    __m256i high = _mm256_srlv_epi32(_mm256_set1_epi32(b->scales_h), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    __m256i ls = _mm256_or_si256(_mm256_and_si256(low, _mm256_set1_epi32(15)), _mm256_slli_epi32(_mm256_and_si256(high, _mm256_set1_epi32(3)), 4));
    return _mm256_sub_epi32(ls, _mm256_set1_epi32(32));
}

/** Each int32 lane s (|s| < 2^15) of @p v as two int16 words s, s: what madd multiplies a pair of int16 by. */
static inline __m256i twice_as_words(__m256i v) {
    return _mm256_or_si256(_mm256_slli_epi32(v, 16), _mm256_and_si256(v, _mm256_set1_epi32(0xffff)));
}

/**
 * The 4 bytes at @p p, p + @p row_bytes, ... (8 rows), one row per int32
 * lane: with AVX-512 one gather, without it plain loads (for the reason
 * halves_of_8_rows gives).
 */
static inline __m256i dwords_of_8_rows(const uint8_t *p, size_t row_bytes) {
#if defined(__AVX512VL__)
    if (row_bytes <= (1u << 27)) { /* 7 rows' offset fits the gather's int32 (always, for real models) */
        const int r = (int)row_bytes;
        return _mm256_i32gather_epi32((const int *)(const void *)p, _mm256_setr_epi32(0, r, 2 * r, 3 * r, 4 * r, 5 * r, 6 * r, 7 * r), 1);
    }
#endif
    uint32_t v[8];
    for (int k = 0; k < 8; k++) memcpy(&v[k], p + row_bytes * (size_t)k, 4);
    return _mm256_loadu_si256((const __m256i *)(const void *)v);
}

#if SIMD_AVX512
/*
 * Eight K-quant rows at once, one row per float lane, as simd_dot_q4_0_8rows
 * does for Q4_0: lane k of the sum is row k's, and each super-block's term is
 * added into it in block order, with the operations of the plain-C
 * definition, so every lane rounds exactly as dot_q4_K_c or dot_q6_K_c does.
 * One row at a time, a super-block ends in scalar work: its integer sum is
 * folded out of the lanes, its 16 scales and mins are unpacked one by one and
 * the mins' sum is taken in a scalar loop. Eight rows share that work: one
 * tree of unpacks reduces the integer sums of all eight, the scales and mins
 * of four rows are unpacked by one register's instructions, the float terms
 * are eight lanes of one instruction, and the activations are loaded once.
 * 512-bit registers: 64 quants, two sub-blocks of 32 (Q4_K) or four groups of
 * 16 (Q6_K), per instruction.
 */

/** acc + the sums of pairs of int16 products a·b, into int32 lanes: one instruction with VNNI. */
static inline __m512i madd16_acc(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

/** Eight registers of 16 int32 lanes -> lane k = the sum of register k (integers: exact in any order). */
static inline __m256i sum_8x16(const __m512i s[8]) {
    __m512i t[4], u[2];
    UNROLL_8 for (int i = 0; i < 4; i++) /* in each 128-bit lane: s[2i], s[2i+1], s[2i], s[2i+1] (partial sums) */
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2 * i], s[2 * i + 1]), _mm512_unpackhi_epi32(s[2 * i], s[2 * i + 1]));
    UNROLL_8 for (int i = 0; i < 2; i++) /* in each 128-bit lane: s[4i] .. s[4i+3] */
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]), _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    /* add the four 128-bit lanes of u[0] (registers 0-3) and of u[1] (4-7): 0+2 and 1+3, then the two */
    __m512i v = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    v = _mm512_add_epi32(_mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 0, 3, 1)));
    return _mm512_castsi512_si256(v);
}

/** Every 128-bit lane of @p v set to its lane @p lane (0..3). */
static inline __m512i lane_everywhere(__m512i v, int lane) {
    return _mm512_permutexvar_epi32(_mm512_add_epi32(_mm512_set4_epi32(3, 2, 1, 0), _mm512_set1_epi32(4 * lane)), v);
}

/** 32 int16 lanes: the 16 low ones @p lo, the 16 high ones @p hi. */
static inline __m512i halves_16(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

/**
 * The 6-bit scales and mins of four Q4_K blocks, at @p blk and 1, 2, 3 rows of
 * @p row_bytes further, one block per 128-bit lane: bytes 0-3 sc0-3, 4-7 m0-3,
 * 8-11 sc4-7, 12-15 m4-7 (q4_K_scale_min for all 16 at once). With the packed
 * bytes as three words w0 w1 w2: sc0-3 = w0 & 63 and m0-3 = w1 & 63 bytewise,
 * sc4-7 = (w2 & 15) | (w0 >> 6) << 4, m4-7 = (w2 >> 4) | (w1 >> 6) << 4.
 */
static inline __m512i q4_K_scales_4_rows(const uint8_t *blk, size_t row_bytes) {
    const uint8_t *s = ((const BlockQ4_K *)(const void *)blk)->scales; /* 12 bytes, then 4 of quants (read, unused) */
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)s));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + row_bytes)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * row_bytes)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + 3 * row_bytes)), 3);
    __m512i low = _mm512_srlv_epi32(_mm512_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 1, 0)), _mm512_set4_epi32(4, 0, 0, 0));
    __m512i high = _mm512_srli_epi32(_mm512_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 1, 0)), 2); /* bits 6-7 to 4-5 */
    return _mm512_or_si512(_mm512_and_si512(low, _mm512_set4_epi32(0x0f0f0f0f, 0x0f0f0f0f, 0x3f3f3f3f, 0x3f3f3f3f)),
                           _mm512_and_si512(high, _mm512_set4_epi32(0x30303030, 0x30303030, 0, 0)));
}

/** A byte shuffle that makes 16 int16 lanes of byte @p lo of each 128-bit lane, then 16 of byte @p hi. */
static inline __m512i bytes_to_words(int lo, int hi) {
    return halves_16(_mm256_set1_epi16((short)(lo | -0x8000)), _mm256_set1_epi16((short)(hi | -0x8000))); /* 0x80: a zero byte */
}

/**
 * out[k] = simd_dot_q4_K of row k, for the 8 rows of @p nb super-blocks from
 * @p w, bit for bit. A 64-byte load of quants holds sub-blocks 4c and 4c + 2
 * in its low nibbles and 4c + 1 and 4c + 3 in its high ones (c = 0, 1), so
 * the activations are arranged once per super-block to match, and each
 * sub-block's scale is spread over its 16 int16 pair sums by a byte shuffle.
 */
static inline void simd_dot_q4_K_8rows(float *out, const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ4_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m512i low4 = _mm512_set1_epi8(15);
    /* where the scale of each sub-block sits in q4_K_scales_4_rows' bytes: sc j at j (j < 4), at j + 4 (j >= 4) */
    const __m512i scale_lo[2] = {bytes_to_words(0, 2), bytes_to_words(8, 10)};
    const __m512i scale_hi[2] = {bytes_to_words(1, 3), bytes_to_words(9, 11)};
    const __m512i mins = _mm512_broadcast_i32x4(_mm_setr_epi16(4 | -0x8000, 5 | -0x8000, 6 | -0x8000, 7 | -0x8000,
                                                               12 | -0x8000, 13 | -0x8000, 14 | -0x8000, 15 | -0x8000));
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ4_K), b);
        const int8_t *xs = x[b].qs;
        __m512i x_lo[2], x_hi[2]; /* the activations of sub-blocks 4c, 4c + 2 and 4c + 1, 4c + 3 */
        UNROLL_8 for (int c = 0; c < 2; c++) {
            const __m256i *x32 = (const __m256i *)(xs + 128 * c); /* 32 activations at a time */
            x_lo[c] = halves_16(_mm256_loadu_si256(x32), _mm256_loadu_si256(x32 + 2));
            x_hi[c] = halves_16(_mm256_loadu_si256(x32 + 1), _mm256_loadu_si256(x32 + 3));
        }
        /* the sums of x per sub-block (bsums in pairs) as 8 int16, in every 128-bit lane */
        __m256i bsum_pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x[b].bsums), _mm256_set1_epi16(1));
        __m512i xsums = _mm512_broadcast_i32x4(
            _mm_packs_epi32(_mm256_castsi256_si128(bsum_pairs), _mm256_extracti128_si256(bsum_pairs, 1)));
        __m512i sm[2] = {q4_K_scales_4_rows(col, row_bytes), q4_K_scales_4_rows(col + 4 * row_bytes, row_bytes)};
        __m512i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const uint8_t *qs = ((const BlockQ4_K *)(const void *)(col + row_bytes * (size_t)k))->qs;
            __m512i s = lane_everywhere(sm[k / 4], k % 4), a = _mm512_setzero_si512();
            UNROLL_8 for (int c = 0; c < 2; c++) { /* nibble × int8, pairs into int16 (≤ 2·15·127), × the scale into int32 */
                __m512i q = _mm512_loadu_si512((const void *)(qs + 64 * c));
                __m512i lo = _mm512_and_si512(q, low4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
                a = madd16_acc(a, _mm512_maddubs_epi16(lo, x_lo[c]), _mm512_shuffle_epi8(s, scale_lo[c]));
                a = madd16_acc(a, _mm512_maddubs_epi16(hi, x_hi[c]), _mm512_shuffle_epi8(s, scale_hi[c]));
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x16(acc); /* lane k: Σ_j sc_j·Σ q·x of row k */
        /* Σ_j m_j·(sum of x over sub-block j): four lanes per row, then one per row, in order */
        __m512i m0 = _mm512_madd_epi16(_mm512_shuffle_epi8(sm[0], mins), xsums); /* rows 0-3 */
        __m512i m1 = _mm512_madd_epi16(_mm512_shuffle_epi8(sm[1], mins), xsums); /* rows 4-7 */
        __m512i mm = _mm512_add_epi32(_mm512_unpacklo_epi32(m0, m1), _mm512_unpackhi_epi32(m0, m1));
        mm = _mm512_add_epi32(mm, _mm512_shuffle_epi32(mm, _MM_SHUFFLE(1, 0, 3, 2))); /* lane i: row i, row i + 4 */
        const __m512i in_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        __m256i imin = _mm512_castsi512_si256(_mm512_permutexvar_epi32(in_order, mm));
        __m256i dd = dwords_of_8_rows(col, row_bytes); /* the halves d (low) and dmin (high) of each row */
        __m256 xd = _mm256_set1_ps(x[b].d);
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(dd)), xd);
        __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd, 16))), xd);
        sum = _mm256_add_ps(sum, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(imin))));
    }
    _mm256_storeu_ps(out, sum);
}

/**
 * out[k] = simd_dot_q6_K of row k, for the 8 rows of @p nb super-blocks from
 * @p w, bit for bit. A 64-byte load of ql holds 64 consecutive weights in its
 * low nibbles and the next 64 in its high ones; their two high bits come from
 * 32 bytes of qh in both halves of a register, shifted by 4 and 2 (low) or 0
 * and 2 (high). Each group of 16 weights is a 128-bit lane of int16 pair
 * sums, which a word permute gives its group's scale. The −32 is taken off as
 * −32·Σ_g sc_g·bsum_g in integers.
 */
static inline void simd_dot_q6_K_8rows(float *out, const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ6_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m512i low4 = _mm512_set1_epi8(15), bits45 = _mm512_set1_epi8(0x30);
    const __m512i shift_lo = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shift_hi = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    __m512i group_scale[4]; /* word permutes: 128-bit lane i gets scale 4j + i */
    UNROLL_8 for (int j = 0; j < 4; j++) group_scale[j] = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * j)), _mm512_set_epi64(
        0x0003000300030003, 0x0003000300030003, 0x0002000200020002, 0x0002000200020002,
        0x0001000100010001, 0x0001000100010001, 0, 0));
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ6_K), b);
        __m512i xq[4]; /* x[b]'s weights 64j .. 64j + 63 */
        UNROLL_8 for (int j = 0; j < 4; j++) xq[j] = _mm512_loadu_si512((const void *)(x[b].qs + 64 * j));
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[b].bsums);
        __m512i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)(col + row_bytes * (size_t)k);
            __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
            /* start from −32·Σ_g sc_g·bsum_g, then add Σ_g sc_g·Σ u·x with the unsigned quants u = q + 32 */
            __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc, bsums), 5);
            __m512i a = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offset));
            __m512i scales = _mm512_zextsi256_si512(sc);
            UNROLL_8 for (int n = 0; n < 2; n++) {
                __m512i ql = _mm512_loadu_si512((const void *)(blk->ql + 64 * n));
                __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk->qh + 32 * n)));
                __m512i h_lo = _mm512_and_si512(_mm512_sllv_epi64(qh, shift_lo), bits45);
                __m512i h_hi = _mm512_and_si512(_mm512_srlv_epi64(qh, shift_hi), bits45);
                __m512i u_lo = _mm512_or_si512(_mm512_and_si512(ql, low4), h_lo);
                __m512i u_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), h_hi);
                /* u ≤ 63 times int8, pairs into int16 (≤ 2·63·127), × the group's scale into int32 */
                __m512i sc_lo = _mm512_permutexvar_epi16(group_scale[2 * n], scales);
                __m512i sc_hi = _mm512_permutexvar_epi16(group_scale[2 * n + 1], scales);
                a = madd16_acc(a, _mm512_maddubs_epi16(u_lo, xq[2 * n]), sc_lo);
                a = madd16_acc(a, _mm512_maddubs_epi16(u_hi, xq[2 * n + 1]), sc_hi);
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x16(acc); /* lane k: row k's integer sum, exact */
        __m256i dh = _mm256_srli_epi32(dwords_of_8_rows(col + 206, row_bytes), 16); /* d: bytes 208-209 */
        __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dh));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}
/*
 * Chapter 8's types, eight rows at once on AVX-512, as simd_dot_q4_K_8rows
 * and simd_dot_q6_K_8rows do for Q4_K and Q6_K: lane k of the sum is row k's,
 * with the operations of dot_q5_K_c, dot_q3_K_c or dot_iq4_xs_c per
 * super-block.
 */

/**
 * out[k] = simd_dot_q5_K of row k, for the 8 rows of @p nb super-blocks from
 * @p w, bit for bit: simd_dot_q4_K_8rows with a fifth bit on each nibble.
 * The 32 bytes of qh are in both halves of a register; a 64-bit shift by j
 * brings sub-block j's bits to bit 0 of each byte (a byte's bit 0 comes from
 * the same byte), the low half by the sub-block of the low 32 quants, the high
 * half by the other. The scales and mins are packed as Q4_K's, at the same
 * place in the block: q4_K_scales_4_rows reads them.
 */
static inline void simd_dot_q5_K_8rows(float *out, const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ5_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m512i low4 = _mm512_set1_epi8(15), bit4 = _mm512_set1_epi8(16);
    const __m512i scale_lo[2] = {bytes_to_words(0, 2), bytes_to_words(8, 10)};
    const __m512i scale_hi[2] = {bytes_to_words(1, 3), bytes_to_words(9, 11)};
    const __m512i mins = _mm512_broadcast_i32x4(_mm_setr_epi16(4 | -0x8000, 5 | -0x8000, 6 | -0x8000, 7 | -0x8000,
                                                               12 | -0x8000, 13 | -0x8000, 14 | -0x8000, 15 | -0x8000));
    /* the fifth bits of sub-blocks 4c, 4c + 2 (low nibbles) and 4c + 1, 4c + 3 (high), one per half */
    const __m512i bits_lo[2] = {_mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0), _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4)};
    const __m512i bits_hi[2] = {_mm512_set_epi64(3, 3, 3, 3, 1, 1, 1, 1), _mm512_set_epi64(7, 7, 7, 7, 5, 5, 5, 5)};
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ5_K), b);
        const int8_t *xs = x[b].qs;
        __m512i x_lo[2], x_hi[2]; /* the activations of sub-blocks 4c, 4c + 2 and 4c + 1, 4c + 3 */
        UNROLL_8 for (int c = 0; c < 2; c++) {
            const __m256i *x32 = (const __m256i *)(xs + 128 * c);
            x_lo[c] = halves_16(_mm256_loadu_si256(x32), _mm256_loadu_si256(x32 + 2));
            x_hi[c] = halves_16(_mm256_loadu_si256(x32 + 1), _mm256_loadu_si256(x32 + 3));
        }
        __m256i bsum_pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x[b].bsums), _mm256_set1_epi16(1));
        __m512i xsums = _mm512_broadcast_i32x4(
            _mm_packs_epi32(_mm256_castsi256_si128(bsum_pairs), _mm256_extracti128_si256(bsum_pairs, 1)));
        __m512i sm[2] = {q4_K_scales_4_rows(col, row_bytes), q4_K_scales_4_rows(col + 4 * row_bytes, row_bytes)};
        __m512i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const BlockQ5_K *blk = (const BlockQ5_K *)(const void *)(col + row_bytes * (size_t)k);
            __m512i s = lane_everywhere(sm[k / 4], k % 4), a = _mm512_setzero_si512();
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk->qh));
            UNROLL_8 for (int c = 0; c < 2; c++) { /* quant ≤ 31 × int8, pairs into int16 (≤ 2·31·127), × the scale into int32 */
                __m512i q = _mm512_loadu_si512((const void *)(blk->qs + 64 * c));
                __m512i h_lo = _mm512_and_si512(_mm512_slli_epi64(_mm512_srlv_epi64(qh, bits_lo[c]), 4), bit4);
                __m512i h_hi = _mm512_and_si512(_mm512_slli_epi64(_mm512_srlv_epi64(qh, bits_hi[c]), 4), bit4);
                __m512i lo = _mm512_or_si512(_mm512_and_si512(q, low4), h_lo);
                __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), low4), h_hi);
                a = madd16_acc(a, _mm512_maddubs_epi16(lo, x_lo[c]), _mm512_shuffle_epi8(s, scale_lo[c]));
                a = madd16_acc(a, _mm512_maddubs_epi16(hi, x_hi[c]), _mm512_shuffle_epi8(s, scale_hi[c]));
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x16(acc); /* lane k: Σ_j sc_j·Σ q·x of row k */
        __m512i m0 = _mm512_madd_epi16(_mm512_shuffle_epi8(sm[0], mins), xsums); /* rows 0-3 */
        __m512i m1 = _mm512_madd_epi16(_mm512_shuffle_epi8(sm[1], mins), xsums); /* rows 4-7 */
        __m512i mm = _mm512_add_epi32(_mm512_unpacklo_epi32(m0, m1), _mm512_unpackhi_epi32(m0, m1));
        mm = _mm512_add_epi32(mm, _mm512_shuffle_epi32(mm, _MM_SHUFFLE(1, 0, 3, 2))); /* lane i: row i, row i + 4 */
        const __m512i in_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        __m256i imin = _mm512_castsi512_si256(_mm512_permutexvar_epi32(in_order, mm));
        __m256i dd = dwords_of_8_rows(col, row_bytes); /* the halves d (low) and dmin (high) of each row */
        __m256 xd = _mm256_set1_ps(x[b].d);
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(dd)), xd);
        __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd, 16))), xd);
        sum = _mm256_add_ps(sum, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(imin))));
    }
    _mm256_storeu_ps(out, sum);
}

/**
 * out[k] = simd_dot_q3_K of row k, for the 8 rows of @p nb super-blocks from
 * @p w, bit for bit: simd_dot_q6_K_8rows's plan. The 32 bytes of qs of one
 * half, in both halves of a register and shifted by 2k (low) and 2k + 2
 * (high), give two runs of 32 weights; hmask, likewise shifted by 4h + k and
 * 4h + k + 1, their high bits. The quants go in unsigned (q + 4, 0..7) and
 * the −4 comes off as −4·Σ_g sc_g·bsum_g in integers.
 */
static inline void simd_dot_q3_K_8rows(float *out, const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ3_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i low_bits[2] = {_mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0), _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4)};
    const __m512i next_run = _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0); /* hmask: one bit further in the high half */
    __m512i group_scale[4]; /* word permutes: 128-bit lane i gets scale 4j + i */
    UNROLL_8 for (int j = 0; j < 4; j++) group_scale[j] = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * j)), _mm512_set_epi64(
        0x0003000300030003, 0x0003000300030003, 0x0002000200020002, 0x0002000200020002,
        0x0001000100010001, 0x0001000100010001, 0, 0));
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ3_K), b);
        __m512i xq[4]; /* x[b]'s weights 64j .. 64j + 63 */
        UNROLL_8 for (int j = 0; j < 4; j++) xq[j] = _mm512_loadu_si512((const void *)(x[b].qs + 64 * j));
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[b].bsums);
        __m512i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const uint8_t *row = col + row_bytes * (size_t)k;
            const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)row;
            __m256i sc = _mm256_cvtepi8_epi16(q3_K_scales_16(row));
            /* start from −4·Σ_g sc_g·bsum_g, then add Σ_g sc_g·Σ u·x with the unsigned quants u = q + 4 */
            __m512i a = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc, bsums), 2)));
            __m512i scales = _mm512_zextsi256_si512(sc);
            __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk->hmask));
            UNROLL_8 for (int h = 0; h < 2; h++) {
                __m512i qb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h)));
                UNROLL_8 for (int r = 0; r < 2; r++) { /* runs 2r and 2r + 1 of this half: weights 128h + 64r .. + 63 */
                    const int j = 2 * h + r;
                    __m512i high = _mm512_srlv_epi64(hm, _mm512_add_epi64(next_run, _mm512_set1_epi64(4 * h + 2 * r)));
                    __m512i u = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi64(qb, low_bits[r]), three),
                                                _mm512_and_si512(_mm512_slli_epi64(high, 2), four));
                    /* u ≤ 7 times int8, pairs into int16, × the group's scale into int32 */
                    a = madd16_acc(a, _mm512_maddubs_epi16(u, xq[j]), _mm512_permutexvar_epi16(group_scale[j], scales));
                }
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x16(acc); /* lane k: row k's integer sum, exact */
        __m256i dh = _mm256_srli_epi32(dwords_of_8_rows(col + offsetof(BlockQ3_K, d) - 2, row_bytes), 16); /* d: the last 2 bytes */
        __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dh));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}

/**
 * out[k] = simd_dot_iq4_xs of row k, for the 8 rows of @p nb super-blocks
 * from @p w, bit for bit. A 64-byte load holds sub-blocks 4c .. 4c + 3, one
 * per 128-bit lane: their low nibbles are each sub-block's first 16 weights,
 * the high nibbles the next 16, so the activations are arranged once per
 * super-block to match. The levels (a byte shuffle of the table) are signed:
 * their magnitudes go into the multiply and their signs, as a mask, onto x
 * (AVX-512 has no byte sign instruction). Each lane's scale comes from the
 * row's 8 scales (iq4_xs_scales_8) by a dword permute.
 */
static inline void simd_dot_iq4_xs_8rows(float *out, const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockIQ4_XS);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m512i low4 = _mm512_set1_epi8(15), zero = _mm512_setzero_si512();
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)iq4_nl_levels()));
    const __m512i lane_scale[2] = {_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                   _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7)};
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockIQ4_XS), b);
        __m512i x_lo[2], x_hi[2]; /* lane i: the first (x_lo) or last (x_hi) 16 activations of sub-block 4c + i */
        UNROLL_8 for (int c = 0; c < 2; c++) {
            __m512i a = _mm512_loadu_si512((const void *)(x[b].qs + 128 * c)), e = _mm512_loadu_si512((const void *)(x[b].qs + 128 * c + 64));
            x_lo[c] = _mm512_shuffle_i32x4(a, e, _MM_SHUFFLE(2, 0, 2, 0));
            x_hi[c] = _mm512_shuffle_i32x4(a, e, _MM_SHUFFLE(3, 1, 3, 1));
        }
        __m512i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)(col + row_bytes * (size_t)k);
            const __m512i scales = _mm512_zextsi256_si512(twice_as_words(iq4_xs_scales_8(blk)));
            __m512i a = _mm512_setzero_si512();
            UNROLL_8 for (int c = 0; c < 2; c++) {
                __m512i q = _mm512_loadu_si512((const void *)(blk->qs + 64 * c));
                __m512i kv_lo = _mm512_shuffle_epi8(table, _mm512_and_si512(q, low4));
                __m512i kv_hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(q, 4), low4));
                __mmask64 n_lo = _mm512_movepi8_mask(kv_lo), n_hi = _mm512_movepi8_mask(kv_hi);
                __m512i sc = _mm512_permutexvar_epi32(lane_scale[c], scales);
                /* |kv| × x·sign(kv): pairs into int16 (≤ 2·127·127), × the sub-block's scale into int32 */
                a = madd16_acc(a, _mm512_maddubs_epi16(_mm512_abs_epi8(kv_lo), _mm512_mask_sub_epi8(x_lo[c], n_lo, zero, x_lo[c])), sc);
                a = madd16_acc(a, _mm512_maddubs_epi16(_mm512_abs_epi8(kv_hi), _mm512_mask_sub_epi8(x_hi[c], n_hi, zero, x_hi[c])), sc);
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x16(acc); /* lane k: row k's integer sum, exact */
        __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dwords_of_8_rows(col, row_bytes))); /* d: the first 2 bytes */
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}
#else /* AVX2: the same kernels in 256-bit registers, 32 quants (one Q4_K sub-block, two Q6_K groups) per instruction */

/** The scales and mins of two Q4_K blocks, at @p blk (low 128 bits) and @p far bytes further (high), laid out as q4_K_scales_4_rows. */
static inline __m256i q4_K_scales_2_rows(const uint8_t *blk, size_t far) {
    const uint8_t *s = ((const BlockQ4_K *)(const void *)blk)->scales; /* 12 bytes, then 4 of quants (read, unused) */
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)s)),
                                        _mm_loadu_si128((const __m128i *)(const void *)(s + far)), 1);
    __m256i low = _mm256_srlv_epi32(_mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 1, 0)), _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4));
    __m256i high = _mm256_srli_epi32(_mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 1, 0)), 2); /* bits 6-7 to 4-5 */
    const __m256i keep_low = _mm256_setr_epi32(0x3f3f3f3f, 0x3f3f3f3f, 0x0f0f0f0f, 0x0f0f0f0f, 0x3f3f3f3f, 0x3f3f3f3f, 0x0f0f0f0f, 0x0f0f0f0f);
    const __m256i keep_high = _mm256_setr_epi32(0, 0, 0x30303030, 0x30303030, 0, 0, 0x30303030, 0x30303030);
    return _mm256_or_si256(_mm256_and_si256(low, keep_low), _mm256_and_si256(high, keep_high));
}

/** Both 128-bit halves of @p v set to its low half (@p high 0) or its high one (1). */
static inline __m256i half_everywhere(__m256i v, int high) {
    return high ? _mm256_permute2x128_si256(v, v, 0x11) : _mm256_permute2x128_si256(v, v, 0x00);
}

/** out[k] = simd_dot_q4_K of row k, for the 8 rows of @p nb super-blocks from @p w, bit for bit (the AVX-512 kernel's plan). */
static inline void simd_dot_q4_K_8rows(float *out, const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ4_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m256i mins = _mm256_broadcastsi128_si256(_mm_setr_epi16(4 | -0x8000, 5 | -0x8000, 6 | -0x8000, 7 | -0x8000,
                                                                    12 | -0x8000, 13 | -0x8000, 14 | -0x8000, 15 | -0x8000));
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ4_K), b);
        const int8_t *xs = x[b].qs;
        __m256i bsum_pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x[b].bsums), _mm256_set1_epi16(1));
        __m256i xsums = _mm256_broadcastsi128_si256(
            _mm_packs_epi32(_mm256_castsi256_si128(bsum_pairs), _mm256_extracti128_si256(bsum_pairs, 1)));
        __m256i acc[8], m[4];
        UNROLL_8 for (int k = 0; k < 4; k++) { /* rows k and k + 4 share a register of scales and mins */
            __m256i sm = q4_K_scales_2_rows(col + row_bytes * (size_t)k, 4 * row_bytes);
            m[k] = _mm256_madd_epi16(_mm256_shuffle_epi8(sm, mins), xsums); /* 4 partial Σ m·Σx per row */
            UNROLL_8 for (int h = 0; h < 2; h++) {
                const uint8_t *qs = ((const BlockQ4_K *)(const void *)(col + row_bytes * (size_t)(k + 4 * h)))->qs;
                __m256i s = half_everywhere(sm, h), a = _mm256_setzero_si256();
                UNROLL_8 for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c + 1 (high); sc j at byte j or j + 4 */
                    __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * c));
                    __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
                    int j = 2 * c + (c >= 2 ? 4 : 0);
                    __m256i sc_lo = _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)(j | -0x8000)));
                    __m256i sc_hi = _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)((j + 1) | -0x8000)));
                    __m256i x_lo = _mm256_loadu_si256((const __m256i *)(xs + 64 * c));
                    __m256i x_hi = _mm256_loadu_si256((const __m256i *)(xs + 64 * c + 32));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x_lo), sc_lo));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x_hi), sc_hi));
                }
                acc[k + 4 * h] = a;
            }
        }
        __m256i isum = sum_8x8(acc); /* lane k: Σ_j sc_j·Σ q·x of row k */
        __m256i imin = _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3])); /* rows 0-3 | 4-7 */
        __m256i dd = dwords_of_8_rows(col, row_bytes); /* the halves d (low) and dmin (high) of each row */
        __m256i d32 = _mm256_and_si256(dd, _mm256_set1_epi32(0xffff)), dmin32 = _mm256_srli_epi32(dd, 16);
        __m128i d16 = _mm_packus_epi32(_mm256_castsi256_si128(d32), _mm256_extracti128_si256(d32, 1));
        __m128i dmin16 = _mm_packus_epi32(_mm256_castsi256_si128(dmin32), _mm256_extracti128_si256(dmin32, 1));
        __m256 xd = _mm256_set1_ps(x[b].d);
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(d16), xd), dmin = _mm256_mul_ps(_mm256_cvtph_ps(dmin16), xd);
        sum = _mm256_add_ps(sum, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(imin))));
    }
    _mm256_storeu_ps(out, sum);
}

/** out[k] = simd_dot_q6_K of row k, for the 8 rows of @p nb super-blocks from @p w, bit for bit (the AVX-512 kernel's plan). */
static inline void simd_dot_q6_K_8rows(float *out, const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ6_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i low4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ6_K), b);
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[b].bsums), acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)(col + row_bytes * (size_t)k);
            __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
            /* start from −32·Σ_g sc_g·bsum_g, then add Σ_g sc_g·Σ u·x with the unsigned quants u = q + 32 */
            __m256i a = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc, bsums), 5));
            UNROLL_8 for (int n = 0; n < 2; n++) {
                const uint8_t *ql = blk->ql + 64 * n, *qh = blk->qh + 32 * n;
                const int8_t *xs = x[b].qs + 128 * n;
                __m256i scales = half_everywhere(sc, n); /* the 8 scales of this half, twice */
                __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                __m256i h = _mm256_loadu_si256((const __m256i *)qh);
                __m256i h2[4]; /* the two high bits of weights 32j .. 32j + 31, as bits 4-5 */
                UNROLL_8 for (int j = 0; j < 4; j++)
                    h2[j] = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j), three), 4);
                __m256i u[4] = { /* weights 0-31, 32-63, 64-95, 96-127 of this half */
                    _mm256_or_si256(_mm256_and_si256(l0, low4), h2[0]),
                    _mm256_or_si256(_mm256_and_si256(l1, low4), h2[1]),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), h2[2]),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), h2[3]),
                };
                UNROLL_8 for (int j = 0; j < 4; j++) { /* 128-bit lanes: groups 2j and 2j + 1 of this half, each with its scale */
                    __m256i pick = _mm256_setr_epi8(4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1,
                                                    4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1,
                                                    4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3,
                                                    4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3);
                    __m256i p = _mm256_maddubs_epi16(u[j], _mm256_loadu_si256((const __m256i *)(xs + 32 * j)));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, pick)));
                }
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x8(acc); /* lane k: row k's integer sum, exact */
        __m256i dh = _mm256_srli_epi32(dwords_of_8_rows(col + 206, row_bytes), 16); /* d: bytes 208-209 */
        __m256 dw = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(dh), _mm256_extracti128_si256(dh, 1)));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}

/** out[k] = simd_dot_q5_K of row k, for the 8 rows of @p nb super-blocks from @p w, bit for bit (simd_dot_q4_K_8rows with qh's fifth bits). */
static inline void simd_dot_q5_K_8rows(float *out, const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ5_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i low4 = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(16);
    const __m256i mins = _mm256_broadcastsi128_si256(_mm_setr_epi16(4 | -0x8000, 5 | -0x8000, 6 | -0x8000, 7 | -0x8000,
                                                                    12 | -0x8000, 13 | -0x8000, 14 | -0x8000, 15 | -0x8000));
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ5_K), b);
        const int8_t *xs = x[b].qs;
        __m256i bsum_pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x[b].bsums), _mm256_set1_epi16(1));
        __m256i xsums = _mm256_broadcastsi128_si256(
            _mm_packs_epi32(_mm256_castsi256_si128(bsum_pairs), _mm256_extracti128_si256(bsum_pairs, 1)));
        __m256i acc[8], m[4];
        UNROLL_8 for (int k = 0; k < 4; k++) { /* rows k and k + 4 share a register of scales and mins (packed as Q4_K's) */
            __m256i sm = q4_K_scales_2_rows(col + row_bytes * (size_t)k, 4 * row_bytes);
            m[k] = _mm256_madd_epi16(_mm256_shuffle_epi8(sm, mins), xsums);
            UNROLL_8 for (int h = 0; h < 2; h++) {
                const BlockQ5_K *blk = (const BlockQ5_K *)(const void *)(col + row_bytes * (size_t)(k + 4 * h));
                __m256i s = half_everywhere(sm, h), a = _mm256_setzero_si256();
                __m256i hb = _mm256_loadu_si256((const __m256i *)blk->qh); /* bit 0: the fifth bits of the next sub-block */
                UNROLL_8 for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c + 1 (high); sc j at byte j or j + 4 */
                    __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(blk->qs + 32 * c));
                    __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
                    hb = _mm256_srli_epi16(hb, 1);
                    __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
                    hb = _mm256_srli_epi16(hb, 1);
                    int j = 2 * c + (c >= 2 ? 4 : 0);
                    __m256i sc_lo = _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)(j | -0x8000)));
                    __m256i sc_hi = _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)((j + 1) | -0x8000)));
                    a = madd16_acc256(a, _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xs + 64 * c))), sc_lo);
                    a = madd16_acc256(a, _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xs + 64 * c + 32))), sc_hi);
                }
                acc[k + 4 * h] = a;
            }
        }
        __m256i isum = sum_8x8(acc); /* lane k: Σ_j sc_j·Σ q·x of row k */
        __m256i imin = _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3])); /* rows 0-3 | 4-7 */
        __m256i dd = dwords_of_8_rows(col, row_bytes); /* the halves d (low) and dmin (high) of each row */
        __m256i d32 = _mm256_and_si256(dd, _mm256_set1_epi32(0xffff)), dmin32 = _mm256_srli_epi32(dd, 16);
        __m128i d16 = _mm_packus_epi32(_mm256_castsi256_si128(d32), _mm256_extracti128_si256(d32, 1));
        __m128i dmin16 = _mm_packus_epi32(_mm256_castsi256_si128(dmin32), _mm256_extracti128_si256(dmin32, 1));
        __m256 xd = _mm256_set1_ps(x[b].d);
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(d16), xd), dmin = _mm256_mul_ps(_mm256_cvtph_ps(dmin16), xd);
        sum = _mm256_add_ps(sum, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(imin))));
    }
    _mm256_storeu_ps(out, sum);
}

/** The fp16 halves at byte @p at of 8 rows' blocks, as floats (@p at + 2 ≤ the block size). */
static inline __m256 halves_of_8_blocks(const uint8_t *col, size_t at, size_t row_bytes) {
    __m256i h = at >= 2 ? _mm256_srli_epi32(dwords_of_8_rows(col + at - 2, row_bytes), 16)
                        : _mm256_and_si256(dwords_of_8_rows(col + at, row_bytes), _mm256_set1_epi32(0xffff));
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

/** out[k] = simd_dot_q3_K of row k, for the 8 rows of @p nb super-blocks from @p w, bit for bit (simd_dot_q6_K_8rows's plan, the offset −4). */
static inline void simd_dot_q3_K_8rows(float *out, const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ3_K);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockQ3_K), b);
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[b].bsums), acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const uint8_t *row = col + row_bytes * (size_t)k;
            const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)row;
            __m256i sc = _mm256_cvtepi8_epi16(q3_K_scales_16(row));
            /* start from −4·Σ_g sc_g·bsum_g, then add Σ_g sc_g·Σ u·x with the unsigned quants u = q + 4 */
            __m256i a = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc, bsums), 2));
            __m256i hm = _mm256_loadu_si256((const __m256i *)blk->hmask); /* bit 0: the high bits of the next run */
            UNROLL_8 for (int h = 0; h < 2; h++) {
                __m256i scales = half_everywhere(sc, h); /* the 8 scales of this half, twice */
                __m256i q = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
                UNROLL_8 for (int j = 0; j < 4; j++) { /* run j: weights 128h + 32j .. + 31, groups 8h + 2j, + 1 (one per 128-bit lane) */
                    __m256i u = _mm256_or_si256(_mm256_and_si256(q, three), _mm256_and_si256(_mm256_slli_epi16(hm, 2), four));
                    q = _mm256_srli_epi16(q, 2), hm = _mm256_srli_epi16(hm, 1);
                    __m256i pick = _mm256_setr_epi8(4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1,
                                                    4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1, 4 * j, 4 * j + 1,
                                                    4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3,
                                                    4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3, 4 * j + 2, 4 * j + 3);
                    __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(x[b].qs + 128 * h + 32 * j)));
                    a = madd16_acc256(a, p, _mm256_shuffle_epi8(scales, pick));
                }
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x8(acc); /* lane k: row k's integer sum, exact */
        __m256 dw = halves_of_8_blocks(col, offsetof(BlockQ3_K, d), row_bytes);
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}

/** out[k] = simd_dot_iq4_xs of row k, for the 8 rows of @p nb super-blocks from @p w, bit for bit (simd_dot_iq4_xs's steps, eight rows' sums reduced at once). */
static inline void simd_dot_iq4_xs_8rows(float *out, const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockIQ4_XS);
    const uint8_t *next_rows = (const uint8_t *)w + 8 * row_bytes;
    const __m256i table = iq4_nl_table256();
    __m256 sum = _mm256_setzero_ps(); /* lane k: row k's sum so far */
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b); /* super-block b of row 0; of row k at k * row_bytes */
        prefetch_slice(next_rows, 8 * sizeof(BlockIQ4_XS), b);
        __m256i acc[8];
        UNROLL_8 for (int k = 0; k < 8; k++) {
            const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)(col + row_bytes * (size_t)k);
            const __m256i scales = twice_as_words(iq4_xs_scales_8(blk));
            __m256i a = _mm256_setzero_si256();
            UNROLL_8 for (int j = 0; j < 8; j++) {
                __m256i kv = _mm256_shuffle_epi8(table, nibbles_32(blk->qs + 16 * j));
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * j));
                __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(kv, kv), _mm256_sign_epi8(xv, kv));
                a = madd16_acc256(a, p, _mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(j)));
            }
            acc[k] = a;
        }
        __m256i isum = sum_8x8(acc); /* lane k: row k's integer sum, exact */
        __m256 dw = halves_of_8_blocks(col, offsetof(BlockIQ4_XS, d), row_bytes);
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(isum)));
    }
    _mm256_storeu_ps(out, sum);
}
#endif

/* ======================================================================== */
/* Dot products, NEON (AArch64)                                             */
/* ======================================================================== */
#elif SIMD_NEON

/** Four int32 sums of 4 products each, of 16 signed bytes, added to @p acc. */
static inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
#endif
}

static inline float sum_partials(const float part[FLOAT_LANES]) {
    float sum = 0.0f;
    for (int j = 0; j < FLOAT_LANES; j++) sum += part[j];
    return sum;
}

static inline float simd_dot_f32(const float *w, const float *x, int n) {
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) s[k] = vaddq_f32(s[k], vmulq_f32(vld1q_f32(w + i + 4 * k), vld1q_f32(x + i + 4 * k)));
    float part[FLOAT_LANES];
    for (int k = 0; k < 4; k++) vst1q_f32(part + 4 * k, s[k]);
    float sum = sum_partials(part);
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}

static inline float simd_dot_f16(const uint16_t *w, const float *x, int n) {
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) {
            float32x4_t wk = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i + 4 * k)));
            s[k] = vaddq_f32(s[k], vmulq_f32(wk, vld1q_f32(x + i + 4 * k)));
        }
    float part[FLOAT_LANES];
    for (int k = 0; k < 4; k++) vst1q_f32(part + 4 * k, s[k]);
    float sum = sum_partials(part);
    for (; i < n; i++) sum += half_to_float(w[i]) * x[i];
    return sum;
}

/** The block's integer sum with its Q8_0 partner, from the two halves of signed quants. */
static inline int32_t block_sum(int8x16_t lo, int8x16_t hi, const BlockQ8 *x) {
    return vaddvq_s32(dot_i8x16(dot_i8x16(vdupq_n_s32(0), lo, vld1q_s8(x->qs)), hi, vld1q_s8(x->qs + 16)));
}

static inline float simd_dot_q4_0(const BlockQ4_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    (void)xsum;
    float sum = 0.0f;
    const uint8x16_t low4 = vdupq_n_u8(15);
    const int8x16_t eight = vdupq_n_s8(8);
    for (int b = 0; b < nb; b++) {
        uint8x16_t v = vld1q_u8(w[b].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, low4)), eight);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        sum += (float)block_sum(lo, hi, &x[b]) * (half_to_float(w[b].d) * xd[b]);
    }
    return sum;
}

static inline float simd_dot_q5_0(const BlockQ5_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    (void)xsum;
    float sum = 0.0f;
    int8_t q[QK];
    for (int b = 0; b < nb; b++) {
        unpack_q5_0(&w[b], q); /* the fifth bits: spread with plain C, then the same integer sum */
        sum += (float)block_sum(vld1q_s8(q), vld1q_s8(q + 16), &x[b]) * (half_to_float(w[b].d) * xd[b]);
    }
    return sum;
}

static inline float simd_dot_q4_K(const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const uint8x16_t low4 = vdupq_n_u8(15);
    for (int b = 0; b < nb; b++) {
        int32_t isum = 0, imin = 0;
        for (int c = 0; c < 4; c++) {
            int sc0, m0, sc1, m1;
            q4_K_scale_min(w[b].scales, 2 * c, &sc0, &m0);
            q4_K_scale_min(w[b].scales, 2 * c + 1, &sc1, &m1);
            const int8_t *xs = x[b].qs + 64 * c;
            uint8x16_t v0 = vld1q_u8(w[b].qs + 32 * c), v1 = vld1q_u8(w[b].qs + 32 * c + 16);
            int32x4_t p0 = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, low4)), vld1q_s8(xs));
            p0 = dot_i8x16(p0, vreinterpretq_s8_u8(vandq_u8(v1, low4)), vld1q_s8(xs + 16));
            int32x4_t p1 = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(xs + 32));
            p1 = dot_i8x16(p1, vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(xs + 48));
            isum += sc0 * vaddvq_s32(p0) + sc1 * vaddvq_s32(p1);
            imin += m0 * (x[b].bsums[4 * c] + x[b].bsums[4 * c + 1]) + m1 * (x[b].bsums[4 * c + 2] + x[b].bsums[4 * c + 3]);
        }
        float d = half_to_float(w[b].d) * x[b].d, dmin = half_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)isum - dmin * (float)imin;
    }
    return sum;
}

static inline float simd_dot_q6_K(const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const uint8x16_t low4 = vdupq_n_u8(15), three = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = w[b].ql + 64 * n, *qh = w[b].qh + 32 * n;
            const int8_t *xs = x[b].qs + 128 * n, *sc = w[b].scales + 8 * n;
            for (int half = 0; half < 2; half++) { /* l in [16·half, 16·half + 16): one group per k */
                uint8x16_t a = vld1q_u8(ql + 16 * half), c = vld1q_u8(ql + 32 + 16 * half), h = vld1q_u8(qh + 16 * half);
                uint8x16_t u[4] = {
                    vorrq_u8(vandq_u8(a, low4), vshlq_n_u8(vandq_u8(h, three), 4)),
                    vorrq_u8(vandq_u8(c, low4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), three), 4)),
                    vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), three), 4)),
                    vorrq_u8(vshrq_n_u8(c, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(u[k]), off);
                    isum += sc[2 * k + half] * vaddvq_s32(dot_i8x16(vdupq_n_s32(0), q, vld1q_s8(xs + 32 * k + 16 * half)));
                }
            }
        }
        sum += half_to_float(w[b].d) * x[b].d * (float)isum;
    }
    return sum;
}

/** Q5_K · Q8_K: simd_dot_q4_K with the fifth bits, bit 0 of qh after one shift per sub-block. */
static inline float simd_dot_q5_K(const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const uint8x16_t low4 = vdupq_n_u8(15), one = vdupq_n_u8(1);
    for (int b = 0; b < nb; b++) {
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) q4_K_scale_min(w[b].scales, j, &sc[j], &m[j]);
        uint8x16_t h0 = vld1q_u8(w[b].qh), h1 = vld1q_u8(w[b].qh + 16);
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) {
            const int8_t *xs = x[b].qs + 64 * c;
            uint8x16_t v0 = vld1q_u8(w[b].qs + 32 * c), v1 = vld1q_u8(w[b].qs + 32 * c + 16);
            uint8x16_t lo0 = vorrq_u8(vandq_u8(v0, low4), vshlq_n_u8(vandq_u8(h0, one), 4));
            uint8x16_t lo1 = vorrq_u8(vandq_u8(v1, low4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1), h1 = vshrq_n_u8(h1, 1);
            uint8x16_t hi0 = vorrq_u8(vshrq_n_u8(v0, 4), vshlq_n_u8(vandq_u8(h0, one), 4));
            uint8x16_t hi1 = vorrq_u8(vshrq_n_u8(v1, 4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1), h1 = vshrq_n_u8(h1, 1);
            int32x4_t p0 = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(lo0), vld1q_s8(xs));
            p0 = dot_i8x16(p0, vreinterpretq_s8_u8(lo1), vld1q_s8(xs + 16));
            int32x4_t p1 = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(hi0), vld1q_s8(xs + 32));
            p1 = dot_i8x16(p1, vreinterpretq_s8_u8(hi1), vld1q_s8(xs + 48));
            acc = vmlaq_n_s32(vmlaq_n_s32(acc, p0, sc[2 * c]), p1, sc[2 * c + 1]);
        }
        int32_t imin = 0;
        for (int j = 0; j < 8; j++) imin += m[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        float d = half_to_float(w[b].d) * x[b].d, dmin = half_to_float(w[b].dmin) * x[b].d;
        sum += d * (float)vaddvq_s32(acc) - dmin * (float)imin;
    }
    return sum;
}

/** Q3_K · Q8_K: the signed quants (low | high << 2) − 4, two bits of qs and one of hmask per run of 32. */
static inline float simd_dot_q3_K(const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const uint8x16_t three = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t four = vdupq_n_s8(4);
    for (int b = 0; b < nb; b++) {
        int sc[16];
        for (int g = 0; g < 16; g++) sc[g] = q3_K_scale(w[b].scales, g);
        uint8x16_t m0 = vld1q_u8(w[b].hmask), m1 = vld1q_u8(w[b].hmask + 16);
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t r0 = vld1q_u8(w[b].qs + 32 * h), r1 = vld1q_u8(w[b].qs + 32 * h + 16);
            for (int k = 0; k < 4; k++) {
                int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(r0, three), vshlq_n_u8(vandq_u8(m0, one), 2))), four);
                int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(r1, three), vshlq_n_u8(vandq_u8(m1, one), 2))), four);
                r0 = vshrq_n_u8(r0, 2), r1 = vshrq_n_u8(r1, 2), m0 = vshrq_n_u8(m0, 1), m1 = vshrq_n_u8(m1, 1);
                const int g = 8 * h + 2 * k;
                acc = vmlaq_n_s32(acc, dot_i8x16(vdupq_n_s32(0), q0, vld1q_s8(x[b].qs + 16 * g)), sc[g]);
                acc = vmlaq_n_s32(acc, dot_i8x16(vdupq_n_s32(0), q1, vld1q_s8(x[b].qs + 16 * g + 16)), sc[g + 1]);
            }
        }
        sum += half_to_float(w[b].d) * x[b].d * (float)vaddvq_s32(acc);
    }
    return sum;
}

/** IQ4_XS · Q8_K: the levels by one table lookup per 16 indices, then signed dot products. */
static inline float simd_dot_iq4_xs(const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    float sum = 0.0f;
    const int8x16_t table = vld1q_s8(iq4_nl_levels());
    const uint8x16_t low4 = vdupq_n_u8(15);
    for (int b = 0; b < nb; b++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) {
            uint8x16_t v = vld1q_u8(w[b].qs + 16 * j);
            const int8_t *xs = x[b].qs + 32 * j;
            int32x4_t p = dot_i8x16(vdupq_n_s32(0), vqtbl1q_s8(table, vandq_u8(v, low4)), vld1q_s8(xs));
            p = dot_i8x16(p, vqtbl1q_s8(table, vshrq_n_u8(v, 4)), vld1q_s8(xs + 16));
            acc = vmlaq_n_s32(acc, p, iq4_xs_scale(&w[b], j));
        }
        sum += half_to_float(w[b].d) * x[b].d * (float)vaddvq_s32(acc);
    }
    return sum;
}


/* ======================================================================== */
/* Without SIMD: the definitions themselves                                 */
/* ======================================================================== */
#else
static inline float simd_dot_f32(const float *w, const float *x, int n) { return dot_f32_c(w, x, n); }
static inline float simd_dot_f16(const uint16_t *w, const float *x, int n) { return dot_f16_c(w, x, n); }
static inline float simd_dot_q4_0(const BlockQ4_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    return dot_q4_0_c(w, x, xd, xsum, nb);
}
static inline float simd_dot_q5_0(const BlockQ5_0 *w, const BlockQ8 *x, const float *xd, const int16_t *xsum, int nb) {
    return dot_q5_0_c(w, x, xd, xsum, nb);
}
static inline float simd_dot_q4_K(const BlockQ4_K *w, const BlockQ8_K *x, int nb) { return dot_q4_K_c(w, x, nb); }
static inline float simd_dot_q6_K(const BlockQ6_K *w, const BlockQ8_K *x, int nb) { return dot_q6_K_c(w, x, nb); }
static inline float simd_dot_q5_K(const BlockQ5_K *w, const BlockQ8_K *x, int nb) { return dot_q5_K_c(w, x, nb); }
static inline float simd_dot_q3_K(const BlockQ3_K *w, const BlockQ8_K *x, int nb) { return dot_q3_K_c(w, x, nb); }
static inline float simd_dot_iq4_xs(const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) { return dot_iq4_xs_c(w, x, nb); }
#endif

#if !SIMD_X86
/** out[k] = simd_dot_q4_0 of row k, for the 8 rows of @p nb blocks from @p w (one row at a time here). */
static inline void simd_dot_q4_0_8rows(float *out, const BlockQ4_0 *w, const BlockQ8 *x, const float *xd,
                                       const int16_t *xsum, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q4_0(w + (size_t)k * (size_t)nb, x, xd, xsum, nb);
}
#endif

#if !HAVE_Q8_0_8ROWS
/** out[k] = simd_dot_q8 of row k, for the 8 rows of @p nb blocks from @p w: chapter 4's kernel (no VNNI here). */
static inline void simd_dot_q8_0_8rows(float *out, const BlockQ8 *w, const BlockQ8 *x, const float *xd,
                                       const int16_t *xsum, int nb) {
    (void)xsum;
    simd_dot_q8_8rows(out, w, x, xd, nb);
}
#endif

#if !SIMD_X86
/** out[k] = simd_dot_q4_K of row k, for the 8 rows of @p nb super-blocks from @p w (one row at a time here). */
static inline void simd_dot_q4_K_8rows(float *out, const BlockQ4_K *w, const BlockQ8_K *x, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q4_K(w + (size_t)k * (size_t)nb, x, nb);
}

/** out[k] = simd_dot_q6_K of row k, for the 8 rows of @p nb super-blocks from @p w (one row at a time here). */
static inline void simd_dot_q6_K_8rows(float *out, const BlockQ6_K *w, const BlockQ8_K *x, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q6_K(w + (size_t)k * (size_t)nb, x, nb);
}

/** out[k] = simd_dot_q5_K of row k, for the 8 rows of @p nb super-blocks from @p w (one row at a time here). */
static inline void simd_dot_q5_K_8rows(float *out, const BlockQ5_K *w, const BlockQ8_K *x, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q5_K(w + (size_t)k * (size_t)nb, x, nb);
}

/** out[k] = simd_dot_q3_K of row k, for the 8 rows of @p nb super-blocks from @p w (one row at a time here). */
static inline void simd_dot_q3_K_8rows(float *out, const BlockQ3_K *w, const BlockQ8_K *x, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_q3_K(w + (size_t)k * (size_t)nb, x, nb);
}

/** out[k] = simd_dot_iq4_xs of row k, for the 8 rows of @p nb super-blocks from @p w (one row at a time here). */
static inline void simd_dot_iq4_xs_8rows(float *out, const BlockIQ4_XS *w, const BlockQ8_K *x, int nb) {
    for (int k = 0; k < 8; k++) out[k] = simd_dot_iq4_xs(w + (size_t)k * (size_t)nb, x, nb);
}
#endif

#endif

/**
 * @file tiles_float.h
 * @brief Chapter 7's SIMD tiles for F32 and F16 weights (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 *
 * @section float_tile_sums What each output adds
 * simd_dot_f32() and simd_dot_f16() keep 16 partial sums per dot product,
 * whatever the width of the registers: one register of 16 lanes with
 * AVX-512, two of 8 with AVX2, four of 4 with NEON. Partial sum j takes the
 * elements i ≡ j (mod 16), each product rounded before it is added (a
 * multiply, then an add: no fused multiply-add). At the end the 16 sums are
 * added left to right (sum_partials()), then the last n % 16 products one by
 * one. A tile does exactly that for each of its R × P outputs.
 *
 * @section float_tile_passes One register of lanes at a time
 * The 16 partial sums are 16 separate sums: lanes 0..7 never meet lanes
 * 8..15 before sum_partials(). So where a register holds fewer than 16
 * lanes, the tile need not carry all 16 / lanes registers of every output
 * along the row at once: it walks the row once per register of lanes (AVX2
 * twice, first elements 0..7 of every step of 16, then 8..15; NEON four
 * times), storing each pass's sums into the output's 16 partial sums. Each
 * weight is still read once for P positions and each input once for R rows
 * (a pass reads only its lanes, and the later passes find the cache lines in
 * L1 where the rows fit), but only R · P accumulators are live in a pass: the
 * tile can have twice (AVX2) or four times (NEON) as many outputs for the
 * same registers.
 *
 * @section float_tile_shape Why the tiles have their shapes
 * The one-position kernel is slow for two reasons. Each register of partial
 * sums is one chain of additions, each waiting for the one before (3 or 4
 * cycles), so a core that could start two vector additions per cycle starts
 * one every few cycles. And it loads two vectors (a weight and an input) per
 * product. A tile of R rows × P positions has R · P independent chains and
 * loads R + P vectors for R · P products.
 *
 * The register file bounds R · P. The accumulators must all stay in
 * registers from the first step of 16 to the last: one stored and reloaded
 * every step would cost more than the tile saves. Beside them a pass needs
 * one weight vector (a row's weights, loaded, for F16 widened, once per step
 * and used for all P positions), the product before it is added, and the P
 * input vectors of the step (each used for all R rows), which x86 can also
 * read straight from L1 as the multiply's second operand:
 *
 *     AVX-512, 32 registers:  4 rows × 6 positions: 24 accumulators + 1 + 1 + 6 inputs = 32
 *     AVX2,    16 registers:  4 rows × 3 positions: 12 accumulators + 1 + 1 = 14, inputs from L1
 *     NEON,    32 registers:  4 rows × 3 positions: 12 accumulators + 1 + 1 + 3 inputs = 17
 *
 * NEON could hold more, but GCC's instruction scheduling for AArch64 moves
 * the loads of later steps early, and from 16 accumulators on (4 × 4) it
 * runs out of registers and spills some of them every step; 12 leave room.
 * Other shapes of as many accumulators (2 × 6 and 3 × 4; 3 × 8) measured
 * the same or slower.
 *
 * Where the bytes come from: chapter 7 walks each 256 KiB block of rows (it
 * stays in L2) with one group of P positions after another, so a group's
 * inputs are reread for every R rows of the block and stay in L1 where they
 * fit (a few positions × 768 floats do). Per product the tile reads 4/P
 * bytes of weights (2/P for F16) and 4/R bytes of inputs, where the
 * one-position kernel reads 8 (6 for F16). An F16 weight also costs a
 * conversion, made once for P products.
 */
#ifndef LLAMABOOK_TILES_FLOAT_H
#define LLAMABOOK_TILES_FLOAT_H

#if SIMD_X86 || SIMD_NEON

/* ======================================================================== */
/* The vector of each instruction set: its width, the tile it affords, and  */
/* the five operations the tile needs                                       */
/* ======================================================================== */
#if SIMD_AVX512
typedef __m512 FloatVec;
enum { FLOAT_VEC_LANES = 16, TILE_FLOAT_ROWS = 4, TILE_FLOAT_POSITIONS = 6 };
static inline FloatVec float_vec_zero(void) { return _mm512_setzero_ps(); }
static inline FloatVec float_vec_load(const float *p) { return _mm512_loadu_ps(p); }
static inline FloatVec float_vec_widen(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
static inline FloatVec float_vec_add_product(FloatVec acc, FloatVec w, FloatVec x) {
    return _mm512_add_ps(acc, _mm512_mul_ps(w, x));
}
static inline void float_vec_store(float *p, FloatVec v) { _mm512_storeu_ps(p, v); }

#elif SIMD_AVX2
typedef __m256 FloatVec;
enum { FLOAT_VEC_LANES = 8, TILE_FLOAT_ROWS = 4, TILE_FLOAT_POSITIONS = 3 };
static inline FloatVec float_vec_zero(void) { return _mm256_setzero_ps(); }
static inline FloatVec float_vec_load(const float *p) { return _mm256_loadu_ps(p); }
static inline FloatVec float_vec_widen(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
static inline FloatVec float_vec_add_product(FloatVec acc, FloatVec w, FloatVec x) {
    return _mm256_add_ps(acc, _mm256_mul_ps(w, x));
}
static inline void float_vec_store(float *p, FloatVec v) { _mm256_storeu_ps(p, v); }

#else /* SIMD_NEON */
typedef float32x4_t FloatVec;
enum { FLOAT_VEC_LANES = 4, TILE_FLOAT_ROWS = 4, TILE_FLOAT_POSITIONS = 3 };
static inline FloatVec float_vec_zero(void) { return vdupq_n_f32(0.0f); }
static inline FloatVec float_vec_load(const float *p) { return vld1q_f32(p); }
static inline FloatVec float_vec_widen(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline FloatVec float_vec_add_product(FloatVec acc, FloatVec w, FloatVec x) {
    return vaddq_f32(acc, vmulq_f32(w, x));
}
static inline void float_vec_store(float *p, FloatVec v) { vst1q_f32(p, v); }
#endif

/** Passes over the rows: the registers of FLOAT_VEC_LANES that hold an output's 16 partial sums. */
enum { FLOAT_PASSES = FLOAT_LANES / FLOAT_VEC_LANES };

/* The weights of a row from element i on, as floats: a register's worth, or one. */
static inline FloatVec f32_weights(const uint8_t *row, int i) { return float_vec_load((const float *)(const void *)row + i); }
static inline FloatVec f16_weights(const uint8_t *row, int i) { return float_vec_widen((const uint16_t *)(const void *)row + i); }
static inline float f32_weight(const uint8_t *row, int i) { return ((const float *)(const void *)row)[i]; }
static inline float f16_weight(const uint8_t *row, int i) { return half_to_float(((const uint16_t *)(const void *)row)[i]); }

/* ======================================================================== */
/* The tile, one for both types                                             */
/* ======================================================================== */

/**
 * TILE_FLOAT_ROWS rows × TILE_FLOAT_POSITIONS positions; @p weights and
 * @p weight read the row type, @p field is the TileInput the type uses (x
 * for F32; xh, already rounded to fp16, for F16).
 *
 * Pass v takes, of each step of 16, the FLOAT_VEC_LANES elements from
 * FLOAT_VEC_LANES · v on: lane l of acc[p][r] (row r · input p) is partial
 * sum FLOAT_VEC_LANES · v + l, as lane l of the one-position kernel's
 * register v. In each step each row's weights are read once and multiplied
 * with the P inputs. The loops over r
 * and p are unrolled, so that the compiler can give each accumulator a
 * register of its own. At the end each output's 16 partial sums and its tail
 * are added as the one-position kernel ends.
 */
#define TILE_FLOAT_SIMD(name, weights, weight, field)                                                              \
    static inline void name(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {  \
        enum { R = TILE_FLOAT_ROWS, P = TILE_FLOAT_POSITIONS };                                                    \
        float part[P][R][FLOAT_LANES];                                                                             \
        int whole = n_in / FLOAT_LANES * FLOAT_LANES; /* the elements of whole steps of 16; then the tail */       \
        for (int v = 0; v < FLOAT_PASSES; v++) {                                                                   \
            FloatVec acc[P][R];                                                                                    \
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)                                                    \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[p][r] = float_vec_zero();                  \
            for (int at = FLOAT_VEC_LANES * v; at < whole; at += FLOAT_LANES)                                      \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                              \
                    FloatVec w = weights(rows + row_bytes * (size_t)r, at);                                        \
                    _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)                                            \
                        acc[p][r] = float_vec_add_product(acc[p][r], w, float_vec_load(in[p].field + at));         \
                }                                                                                                  \
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)                                                    \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                \
                    float_vec_store(part[p][r] + FLOAT_VEC_LANES * v, acc[p][r]);                                  \
        }                                                                                                          \
        for (int p = 0; p < P; p++)                                                                                \
            for (int r = 0; r < R; r++) {                                                                          \
                const uint8_t *row = rows + row_bytes * (size_t)r;                                                 \
                float sum = sum_partials(part[p][r]);                                                              \
                for (int k = whole; k < n_in; k++) sum += weight(row, k) * in[p].field[k];                         \
                out[p * R + r] = sum;                                                                              \
            }                                                                                                      \
    }

TILE_FLOAT_SIMD(tile_f32_simd, f32_weights, f32_weight, x)
TILE_FLOAT_SIMD(tile_f16_simd, f16_weights, f16_weight, xh)
#undef TILE_FLOAT_SIMD

#endif

/** The SIMD tile of this build for F32 or F16 weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_float(int type) {
#if SIMD_X86 || SIMD_NEON
    if (type == Q_F32) return (Tile){TILE_FLOAT_ROWS, TILE_FLOAT_POSITIONS, tile_f32_simd};
    if (type == Q_F16) return (Tile){TILE_FLOAT_ROWS, TILE_FLOAT_POSITIONS, tile_f16_simd};
#endif
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

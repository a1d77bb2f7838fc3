/**
 * @file tiles_q8_0.h
 * @brief Chapter 7's SIMD tiles for Q8_0, Q5_0 and Q4_0 weights (Q8_0 inputs) (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 */
#ifndef LLAMABOOK_TILES_Q8_0_H
#define LLAMABOOK_TILES_Q8_0_H

/* ======================================================================== */
/* x86 (AVX2; VNNI where the CPU has it)                                    */
/* ======================================================================== */
#if SIMD_X86

enum { TILE_Q4_0_POSITIONS = 6 }; /* 6 accumulators beside 8 decoded weight registers and the scales */

/**
 * Rows 0..7 of a Q4_0 matrix times TILE_Q4_0_POSITIONS positions: what
 * simd_dot_q4_0_8rows() computes for each position, bit for bit, with each
 * weight block unpacked once for all of them. Lane r of acc[p] is row r's
 * sum for position p, added block after block exactly as there.
 */
static inline void tile_q4_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc[TILE_Q4_0_POSITIONS];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ4_0);
        __m256i lo[4], hi[4]; /* lo[k]: the low nibbles of rows k (lane half 0) and k + 4 (half 1) */
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            __m256i two = q4_0_rows_k_and_k4(col + row_bytes * (size_t)k, 4 * row_bytes);
            lo[k] = _mm256_and_si256(two, low4);
            hi[k] = _mm256_and_si256(_mm256_srli_epi16(two, 4), low4);
        }
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) {
            __m256i x_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)in[p].xq[b].qs));
            __m256i x_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(in[p].xq[b].qs + 16)));
            __m256i s[4];
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
                s[k] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo[k], x_lo), hi[k], x_hi);
#elif defined(__AVXVNNI__)
                s[k] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo[k], x_lo), hi[k], x_hi);
#else
                __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[k], x_lo), _mm256_maddubs_epi16(hi[k], x_hi));
                s[k] = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
#endif
            }
            __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            __m256i isum = _mm256_sub_epi32(sums, _mm256_set1_epi32(in[p].xs[b] * 8));
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q4_0_POSITIONS; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}

enum { TILE_Q8_0_POSITIONS = 4 }; /* Q8_0 needs |w| and w's signs: 16 weight registers, so fewer positions */

/** Rows 0..7 of a Q8_0 matrix times TILE_Q8_0_POSITIONS positions: simd_dot_q8_8rows() for each, bit for bit. */
static inline void tile_q8_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    __m256 acc[TILE_Q8_0_POSITIONS];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ8);
        __m256i wq[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) wq[k] = load_qs((const BlockQ8 *)(const void *)(col + row_bytes * (size_t)k));
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) {
            __m256i xq = load_qs(in[p].xq + b), s8[8];
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) s8[k] = block_products(wq[k], xq);
            __m256 isum = _mm256_cvtepi32_ps(sum_8x8(s8));
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(isum, scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q8_0_POSITIONS; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}

#endif

/** The SIMD tile of this build for Q8_0, Q5_0 or Q4_0 weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_q8_0(int type) {
#if SIMD_X86
    if (type == Q_Q4_0) return (Tile){8, TILE_Q4_0_POSITIONS, tile_q4_0_avx2};
    if (type == Q_Q8_0) return (Tile){8, TILE_Q8_0_POSITIONS, tile_q8_0_avx2};
#endif
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

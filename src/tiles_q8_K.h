/**
 * @file tiles_q8_K.h
 * @brief Chapter 7's SIMD tiles for Q4_K and Q6_K weights (Q8_K inputs), and chapter 8's for
 * Q5_K, Q3_K and IQ4_XS (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 *
 * @section qk_float What must stay as it is
 * Per super-block of 256 weights the one-position kernels add one float term
 * to each output: Q4_K `d·(float)isum − dmin·(float)imin` with
 * d = fp16(w.d)·x.d and dmin = fp16(w.dmin)·x.d; Q6_K
 * `fp16(w.d)·x.d·(float)isum`. The tiles compute those very operations, in
 * lanes that each belong to one (row, position), super-block after
 * super-block. Only the integers isum and imin are free to be summed in any
 * order, and that freedom is all the shapes below use.
 *
 * @section qk_shape Where the rows go (x86)
 * A K-quant super-block has its scales per sub-block (32 weights in Q4_K, 16
 * in Q6_K), and an integer multiply-add instruction sums 4 adjacent byte
 * products into each 32-bit lane. The tiles give each *row* one 128-bit lane
 * of a register: 16 weights of row r in lane r, and the 16 matching input
 * bytes broadcast to every lane by a plain load. So one instruction works on
 * 2 rows (AVX2) or 4 rows (AVX-512) with no shuffle of the input, every 32-bit
 * lane stays inside one sub-block of one row (its scale applies to the lane
 * as a whole), and at the end of the super-block the four lanes of each row
 * are added, for four positions at once, by one small transpose. (An AVX-512
 * chip without VNNI takes the AVX2 tile. NEON has an instruction that makes a
 * different shape better: see its section.)
 */
#ifndef LLAMABOOK_TILES_Q8_K_H
#define LLAMABOOK_TILES_Q8_K_H

/* ======================================================================== */
/* x86: two rows per 256-bit register (AVX2), four per 512-bit (AVX-512)    */
/* ======================================================================== */
#if SIMD_X86

/** 16 bytes at @p p in lane 0 and 16 at p + @p row_bytes in lane 1: the same place in two rows. */
static inline __m256i qk_rows2(const uint8_t *p, size_t row_bytes) {
    __m128i r0 = _mm_loadu_si128((const __m128i *)p), r1 = _mm_loadu_si128((const __m128i *)(p + row_bytes));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(r0), r1, 1);
}

/** The 16 input bytes at @p x in both lanes (one load: no lane-crossing instruction). */
static inline __m256i qk_x2(const int8_t *x) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x)); }

/** A byte-shuffle pattern of 8 words: words 0..3 take byte @p j0 of the lane, words 4..7 byte @p j1, zero-extended. */
static inline __m128i qk_words_of(int j0, int j1) {
    const short a = (short)(j0 - 256), b = (short)(j1 - 256); /* high byte 0xFF: pshufb writes a zero there */
    return _mm_setr_epi16(a, a, a, a, b, b, b, b);
}

/**
 * The 8 scales and 8 mins of a Q4_K block in each of two rows, decoded from
 * their 6-bit packing (q4_K_scale_min()) into bytes: lane r holds
 * sc_0..sc_7 then m_0..m_7 of row r. @p s: the 12 scale bytes of row 0's
 * block (16 bytes are read; the 4 after them are the block's quants).
 *
 * For j < 4 the scale is s[j] & 63 and the min s[j+4] & 63; for j ≥ 4 the low
 * four bits come from s[j+4] (its low nibble for the scale, its high nibble
 * for the min) and the top two from the top bits of s[j−4] (scale) or s[j]
 * (min). Two byte shuffles put each byte where its result goes; the masks and
 * shifts then do all sixteen at once.
 */
static inline __m256i q4_K_scales_mins_2rows(const uint8_t *s, size_t row_bytes) {
    const __m256i v = qk_rows2(s, row_bytes);
    const __m256i low = _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11)));
    const __m256i top = _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(_mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7)));
    const __m256i keep = _mm256_broadcastsi128_si256(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    const __m256i high_nibbles = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    /* 16-bit shifts: a byte's own bits land where the masks look; its neighbour's bits are masked off */
    __m256i r = _mm256_and_si256(low, keep);
    r = _mm256_or_si256(r, _mm256_and_si256(_mm256_srli_epi16(low, 4), high_nibbles));
    return _mm256_or_si256(r, _mm256_and_si256(_mm256_srli_epi16(top, 2), _mm256_set1_epi8(0x30)));
}

/** The fp16 d and dmin of block @p blk in rows 0..n−1 as floats [d_0 dmin_0 d_1 dmin_1 ...] (@p n = 2 or 4; the rest 0). */
static inline __m256 q4_K_d_dmin(const uint8_t *blk, size_t row_bytes, int n) {
    uint32_t v[4] = {0, 0, 0, 0};
    for (int k = 0; k < n; k++) memcpy(&v[k], blk + row_bytes * (size_t)k, 4); /* d, dmin: the block's first 4 bytes */
    return _mm256_cvtph_ps(_mm_setr_epi32((int)v[0], (int)v[1], (int)v[2], (int)v[3]));
}

/** Σ of the four 32-bit lanes of each row, for 4 positions: lane 4r + q of the result is a_q's row r (AVX2: r < 2). */
static inline __m256i qk_sum4_256(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
    __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
}

/** [x_0.d .. x_3.d]: the input scales of positions @p in[0..3] in super-block @p b. */
static inline __m128 qk_xd4(const TileInput *in, int b) { return _mm_setr_ps(in[0].xk[b].d, in[1].xk[b].d, in[2].xk[b].d, in[3].xk[b].d); }

/** [b_0+b_1, b_2+b_3, ..., b_14+b_15]: x's sums per 32 (Q4_K sub-block), as 8 int16 (each |·| ≤ 32·127). */
static inline __m128i q4_K_x_sums(const BlockQ8_K *x) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums), _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
}

/* ------------------------------------------------------------------------ */
/* AVX2 (and AVX-512 without VNNI): 2 rows × 8 positions                     */
/* ------------------------------------------------------------------------ */

/*
 * Shape. Without VNNI the multiply takes two steps: maddubs (unsigned ×
 * signed bytes, pairs summed into int16) and madd (int16 pairs × int16 into
 * int32), and the second step is where a sub-block's scale goes in, for
 * free: madd multiplies by the scale while it adds the pairs. The 16
 * registers hold 8 accumulators (one per position, each a register of 2
 * rows), 2 of the sub-block's weights (32 per row), 1 of its scales, and 4
 * for the inputs and products: 2 rows × 8 positions. Each decoded sub-block
 * is used by 8 positions, each loaded input block by 2 rows. A second pair
 * of rows would need 8 more accumulators, which do not fit.
 */
enum { TILE_QK_AVX2_ROWS = 2, TILE_QK_AVX2_POSITIONS = 8 };

/** Rows 0..1 × positions 0..7 of a Q4_K matrix, as dot_q4_K_c computes each. */
static inline void tile_q4_K_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX2_POSITIONS };
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc[P / 4] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ4_K); /* row 0's block b; row r's at r·row_bytes */
        const __m256i scm = q4_K_scales_mins_2rows(blk + 4, row_bytes);
        __m256i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) { /* sub-block j: the low (j even) or high nibbles of quants 32·(j/2) .. +31 */
            const uint8_t *qs = blk + 16 + 32 * (j / 2);
            __m256i w0 = qk_rows2(qs, row_bytes), w1 = qk_rows2(qs + 16, row_bytes);
            if (j & 1) w0 = _mm256_srli_epi16(w0, 4), w1 = _mm256_srli_epi16(w1, 4);
            w0 = _mm256_and_si256(w0, low4), w1 = _mm256_and_si256(w1, low4);
            const __m256i sc = _mm256_shuffle_epi8(scm, _mm256_broadcastsi128_si256(qk_words_of(j, j)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 32 * j;
                /* pairs ≤ 2·15·127, two of them ≤ 7620: int16 holds them */
                __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(w0, qk_x2(x)), _mm256_maddubs_epi16(w1, qk_x2(x + 16)));
                isum[p] = _mm256_add_epi32(isum[p], _mm256_madd_epi16(pairs, sc));
            }
        }
        const __m256i mins = _mm256_shuffle_epi8(scm, _mm256_broadcastsi128_si256(_mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1)));
        const __m256 dd = q4_K_d_dmin(blk, row_bytes, 2); /* [d_0 dmin_0 d_1 dmin_1 . . . .] */
        const __m256 wd = _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
        const __m256 wm = _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
        for (int g = 0; g < P / 4; g++) {
            const TileInput *ig = in + 4 * g;
            __m256i imin[4];
            for (int q = 0; q < 4; q++) imin[q] = _mm256_madd_epi16(mins, _mm256_broadcastsi128_si256(q4_K_x_sums(&ig[q].xk[b])));
            __m256 fi = _mm256_cvtepi32_ps(qk_sum4_256(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            __m256 fm = _mm256_cvtepi32_ps(qk_sum4_256(imin[0], imin[1], imin[2], imin[3]));
            const __m128 xd4 = qk_xd4(ig, b);
            const __m256 xd = _mm256_set_m128(xd4, xd4);
            __m256 d = _mm256_mul_ps(wd, xd), dmin = _mm256_mul_ps(wm, xd);
            acc[g] = _mm256_add_ps(acc[g], _mm256_sub_ps(_mm256_mul_ps(d, fi), _mm256_mul_ps(dmin, fm)));
        }
    }
    /* lane 4r + q → out[(4g + q)·2 + r] */
    for (int g = 0; g < P / 4; g++) _mm256_storeu_ps(out + 8 * g, _mm256_permutevar8x32_ps(acc[g], _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/**
 * From @p scales (lane r: the 16 int8 scales of row r's Q6_K block), 8 words
 * per lane for madd: words 0..3 scale @p g0, words 4..7 scale @p g1 (the same
 * group twice for AVX2's madd, two groups for AVX-512's packed pairs). A
 * byte shuffle puts the scale in each word's high byte; an arithmetic shift
 * by 8 brings it down with its sign.
 */
static inline __m256i q6_K_scale_words(__m256i scales, int g0, int g1) {
    const short a = (short)(g0 << 8 | 0x80), b = (short)(g1 << 8 | 0x80); /* low byte 0x80: zero */
    return _mm256_srai_epi16(_mm256_shuffle_epi8(scales, _mm256_broadcastsi128_si256(_mm_setr_epi16(a, a, a, a, b, b, b, b))), 8);
}

/** −32·sc_g for g = 8·@p half .. 8·half + 7, as 8 int16 per lane (|·| ≤ 4096): the −32 of every quant, through the bsums. */
static inline __m256i q6_K_offset_words(__m256i scales, int half) {
    const int h = 8 * half;
    __m128i idx = _mm_setr_epi8(-1, (char)h, -1, (char)(h + 1), -1, (char)(h + 2), -1, (char)(h + 3), -1, (char)(h + 4), -1,
                                (char)(h + 5), -1, (char)(h + 6), -1, (char)(h + 7));
    __m256i sc32 = _mm256_srai_epi16(_mm256_shuffle_epi8(scales, _mm256_broadcastsi128_si256(idx)), 3); /* sc·256 / 8 */
    return _mm256_sub_epi16(_mm256_setzero_si256(), sc32);
}

/**
 * The four groups of 16 unsigned quants (0..63) that bytes [16s, 16s + 16) of
 * the half @p n of a Q6_K block give, for two rows: groups 8n + s, 8n + 2 + s,
 * 8n + 4 + s and 8n + 6 + s (unpack_q6_K's four lines). Each quant is 4 bits of
 * ql (low or high nibble of one of two places) and 2 bits of qh, set into bits
 * 4 and 5 by a 16-bit shift: a byte's own bits land there, its neighbour's are
 * masked off.
 */
static inline void q6_K_groups_2rows(__m256i u[4], const BlockQ6_K *blk, size_t row_bytes, int n, int s) {
    const __m256i low4 = _mm256_set1_epi8(15), bits45 = _mm256_set1_epi8(0x30);
    __m256i a = qk_rows2(blk->ql + 64 * n + 16 * s, row_bytes), c = qk_rows2(blk->ql + 64 * n + 32 + 16 * s, row_bytes);
    __m256i h = qk_rows2(blk->qh + 32 * n + 16 * s, row_bytes);
    u[0] = _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45));
    u[1] = _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(h, bits45));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45));
}

/** Lanes [d_0 d_1 d_2 d_3] of a Q6_K block's fp16 d in @p n rows (2 or 4; the rest 0). */
static inline __m128 q6_K_d(const BlockQ6_K *blk, size_t row_bytes, int n) {
    uint16_t h[8] = {0};
    for (int k = 0; k < n; k++) memcpy(&h[k], (const uint8_t *)&blk->d + row_bytes * (size_t)k, 2);
    return _mm_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/**
 * Rows 0..1 × positions 0..7 of a Q6_K matrix, as dot_q6_K_c. A group of 16
 * weights is one lane of a register, so one maddubs and one madd (with the
 * group's scale) take a group of both rows for one position. The quants go in
 * unsigned (0..63: pairs ≤ 2·63·127, no saturation); their −32 is added back
 * as −32·Σ_g sc_g·bsum_g, in integers, as simd_dot_q6_K does.
 */
static inline void tile_q6_K_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX2_POSITIONS };
    __m256 acc[P / 4] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)rows + b;
        const __m256i scales = qk_rows2((const uint8_t *)blk->scales, row_bytes);
        __m256i isum[P];
        const __m256i off_lo = q6_K_offset_words(scales, 0), off_hi = q6_K_offset_words(scales, 1);
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
            const int16_t *bs = in[p].xk[b].bsums;
            isum[p] = _mm256_add_epi32(_mm256_madd_epi16(off_lo, qk_x2((const int8_t *)bs)), _mm256_madd_epi16(off_hi, qk_x2((const int8_t *)(bs + 8))));
        }
        for (int n = 0; n < 2; n++)
            for (int s = 0; s < 2; s++) {
                __m256i u[4];
                q6_K_groups_2rows(u, blk, row_bytes, n, s);
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
                    const int g = 8 * n + 2 * k + s;
                    const __m256i sc = q6_K_scale_words(scales, g, g);
                    _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)
                        isum[p] = _mm256_add_epi32(isum[p], _mm256_madd_epi16(_mm256_maddubs_epi16(u[k], qk_x2(in[p].xk[b].qs + 16 * g)), sc));
                }
            }
        const __m128 d4 = q6_K_d(blk, row_bytes, 2);
        const __m256 wd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
        for (int g = 0; g < P / 4; g++) {
            const __m128 xd4 = qk_xd4(in + 4 * g, b);
            __m256 fi = _mm256_cvtepi32_ps(qk_sum4_256(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(_mm256_mul_ps(wd, _mm256_set_m128(xd4, xd4)), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) _mm256_storeu_ps(out + 8 * g, _mm256_permutevar8x32_ps(acc[g], _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* ------------------------------------------------------------------------ */
/* Chapter 8's types, AVX2: Q5_K, Q3_K and IQ4_XS, 2 rows × 8 positions      */
/* ------------------------------------------------------------------------ */

/*
 * The same shapes: Q5_K is Q4_K's tile with a fifth bit or-ed onto each
 * nibble; Q3_K is Q6_K's (a group of 16 weights per row lane, the quants
 * unsigned, their offset −4 through the bsums); IQ4_XS is Q4_K's without the
 * mins, its levels looked up by a byte shuffle and signed, so each position's
 * input takes the level's sign (one instruction) before the multiply.
 */

/** The halves at @p p, p + @p row_bytes, ... (@p n = 2 or 4 rows) as floats [h_0 .. h_3] (the rest 0). */
static inline __m128 qk_halves_rows(const uint8_t *p, size_t row_bytes, int n) {
    uint16_t h[8] = {0};
    for (int k = 0; k < n; k++) memcpy(&h[k], p + row_bytes * (size_t)k, 2);
    return _mm_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/** Rows 0..1 × positions 0..7 of a Q5_K matrix, as dot_q5_K_c computes each (tile_q4_K_avx2's plan). */
static inline void tile_q5_K_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX2_POSITIONS };
    const __m256i low4 = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(16);
    __m256 acc[P / 4] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ5_K); /* row 0's block b; row r's at r·row_bytes */
        const __m256i scm = q4_K_scales_mins_2rows(blk + 4, row_bytes);
        /* the fifth bits of weights 32j + l: bit j of qh[l]; shifted down once per sub-block, always bit 0 */
        __m256i h0 = qk_rows2(blk + offsetof(BlockQ5_K, qh), row_bytes), h1 = qk_rows2(blk + offsetof(BlockQ5_K, qh) + 16, row_bytes);
        __m256i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) { /* sub-block j: the low (j even) or high nibbles of quants 32·(j/2) .. +31 */
            const uint8_t *qs = blk + offsetof(BlockQ5_K, qs) + 32 * (j / 2);
            __m256i w0 = qk_rows2(qs, row_bytes), w1 = qk_rows2(qs + 16, row_bytes);
            if (j & 1) w0 = _mm256_srli_epi16(w0, 4), w1 = _mm256_srli_epi16(w1, 4);
            w0 = _mm256_or_si256(_mm256_and_si256(w0, low4), _mm256_and_si256(_mm256_slli_epi16(h0, 4), bit4));
            w1 = _mm256_or_si256(_mm256_and_si256(w1, low4), _mm256_and_si256(_mm256_slli_epi16(h1, 4), bit4));
            h0 = _mm256_srli_epi16(h0, 1), h1 = _mm256_srli_epi16(h1, 1);
            const __m256i sc = _mm256_shuffle_epi8(scm, _mm256_broadcastsi128_si256(qk_words_of(j, j)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 32 * j;
                /* pairs ≤ 2·31·127, two of them ≤ 15748: int16 holds them */
                __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(w0, qk_x2(x)), _mm256_maddubs_epi16(w1, qk_x2(x + 16)));
                isum[p] = _mm256_add_epi32(isum[p], _mm256_madd_epi16(pairs, sc));
            }
        }
        const __m256i mins = _mm256_shuffle_epi8(scm, _mm256_broadcastsi128_si256(_mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1)));
        const __m256 dd = q4_K_d_dmin(blk, row_bytes, 2); /* [d_0 dmin_0 d_1 dmin_1 . . . .] */
        const __m256 wd = _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
        const __m256 wm = _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
        for (int g = 0; g < P / 4; g++) {
            const TileInput *ig = in + 4 * g;
            __m256i imin[4];
            for (int q = 0; q < 4; q++) imin[q] = _mm256_madd_epi16(mins, _mm256_broadcastsi128_si256(q4_K_x_sums(&ig[q].xk[b])));
            __m256 fi = _mm256_cvtepi32_ps(qk_sum4_256(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            __m256 fm = _mm256_cvtepi32_ps(qk_sum4_256(imin[0], imin[1], imin[2], imin[3]));
            const __m128 xd4 = qk_xd4(ig, b);
            const __m256 xd = _mm256_set_m128(xd4, xd4);
            __m256 d = _mm256_mul_ps(wd, xd), dmin = _mm256_mul_ps(wm, xd);
            acc[g] = _mm256_add_ps(acc[g], _mm256_sub_ps(_mm256_mul_ps(d, fi), _mm256_mul_ps(dmin, fm)));
        }
    }
    for (int g = 0; g < P / 4; g++) _mm256_storeu_ps(out + 8 * g, _mm256_permutevar8x32_ps(acc[g], _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/** The 16 scales (−32..31, int8) of a Q3_K block in each of two rows: lane r holds sc_0..sc_15 of row r (q3_K_scales_16()). */
static inline __m256i q3_K_scales_2rows(const uint8_t *blk, size_t row_bytes) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(q3_K_scales_16(blk)), q3_K_scales_16(blk + row_bytes), 1);
}

/** −4·sc_g for g = 8·@p half .. 8·half + 7, as 8 int16 per lane: the −4 of every quant, through the bsums. */
static inline __m256i q3_K_offset_words(__m256i scales, int half) {
    const int h = 8 * half;
    __m128i idx = _mm_setr_epi8(-1, (char)h, -1, (char)(h + 1), -1, (char)(h + 2), -1, (char)(h + 3), -1, (char)(h + 4), -1,
                                (char)(h + 5), -1, (char)(h + 6), -1, (char)(h + 7));
    __m256i sc4 = _mm256_srai_epi16(_mm256_shuffle_epi8(scales, _mm256_broadcastsi128_si256(idx)), 6); /* sc·256 / 64 */
    return _mm256_sub_epi16(_mm256_setzero_si256(), sc4);
}

/**
 * The four groups of 16 unsigned quants u = q + 4 (0..7) that bytes
 * [16s, 16s + 16) of qs half @p h of a Q3_K block give, for two rows: groups
 * 8h + s, 8h + 2 + s, 8h + 4 + s, 8h + 6 + s (bits 0-1, 2-3, 4-5, 6-7 of the
 * bytes), each with its high bit from bit 4h + k of hmask[16s ..] set into
 * bit 2 by a 16-bit shift (a byte's own bit lands there; the rest is masked).
 */
static inline void q3_K_groups_2rows(__m256i u[4], const BlockQ3_K *blk, size_t row_bytes, int h, int s) {
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256i a = qk_rows2(blk->qs + 32 * h + 16 * s, row_bytes), m = qk_rows2(blk->hmask + 16 * s, row_bytes);
    if (h) m = _mm256_srli_epi16(m, 4); /* bits 4..7 down to 0..3 */
    u[0] = _mm256_or_si256(_mm256_and_si256(a, three), _mm256_and_si256(_mm256_slli_epi16(m, 2), four));
    u[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 2), three), _mm256_and_si256(_mm256_slli_epi16(m, 1), four));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), three), _mm256_and_si256(m, four));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 6), three), _mm256_and_si256(_mm256_srli_epi16(m, 1), four));
}

/** Rows 0..1 × positions 0..7 of a Q3_K matrix, as dot_q3_K_c (tile_q6_K_avx2's plan, the offset −4). */
static inline void tile_q3_K_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX2_POSITIONS };
    __m256 acc[P / 4] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)rows + b;
        const __m256i scales = q3_K_scales_2rows((const uint8_t *)blk, row_bytes);
        const __m256i off_lo = q3_K_offset_words(scales, 0), off_hi = q3_K_offset_words(scales, 1);
        __m256i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
            const int16_t *bs = in[p].xk[b].bsums;
            isum[p] = _mm256_add_epi32(_mm256_madd_epi16(off_lo, qk_x2((const int8_t *)bs)), _mm256_madd_epi16(off_hi, qk_x2((const int8_t *)(bs + 8))));
        }
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2; s++) {
                __m256i u[4];
                q3_K_groups_2rows(u, blk, row_bytes, h, s);
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
                    const int g = 8 * h + 2 * k + s;
                    const __m256i sc = q6_K_scale_words(scales, g, g);
                    /* u ≤ 7: pairs ≤ 2·7·127 */
                    _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)
                        isum[p] = _mm256_add_epi32(isum[p], _mm256_madd_epi16(_mm256_maddubs_epi16(u[k], qk_x2(in[p].xk[b].qs + 16 * g)), sc));
                }
            }
        const __m128 d2 = qk_halves_rows((const uint8_t *)&blk->d, row_bytes, 2);
        const __m256 wd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
        for (int g = 0; g < P / 4; g++) {
            const __m128 xd4 = qk_xd4(in + 4 * g, b);
            __m256 fi = _mm256_cvtepi32_ps(qk_sum4_256(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(_mm256_mul_ps(wd, _mm256_set_m128(xd4, xd4)), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) _mm256_storeu_ps(out + 8 * g, _mm256_permutevar8x32_ps(acc[g], _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/** The 8 sub-block scales (−32..31) of @p n rows' IQ4_XS block @p b, as int16 words: words 8r .. 8r + 7 for row r. */
static inline void iq4_xs_scale_words(int16_t *words, const uint8_t *rows, size_t row_bytes, int b, int n) {
    for (int r = 0; r < n; r++) {
        const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)(rows + row_bytes * (size_t)r) + b;
        for (int j = 0; j < 8; j++) words[8 * r + j] = (int16_t)iq4_xs_scale(blk, j);
    }
}

/** A byte-shuffle pattern that puts word @p j of each 128-bit lane into all 8 of its words. */
static inline __m128i qk_word_everywhere(int j) {
    const short w = (short)((2 * j + 1) << 8 | 2 * j);
    return _mm_set1_epi16(w);
}

/**
 * Rows 0..1 × positions 0..7 of an IQ4_XS matrix, as dot_iq4_xs_c. A
 * sub-block's 16 bytes of two rows are one register; its low nibbles (the
 * first 16 weights) and high nibbles (the next 16), looked up in the table,
 * are two registers of signed levels, whose magnitudes go into the multiply
 * and whose signs go onto each position's input. Pairs ≤ 2·127·127: each
 * register is scaled into int32 on its own.
 */
static inline void tile_iq4_xs_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX2_POSITIONS };
    const __m256i low4 = _mm256_set1_epi8(15), table = iq4_nl_table256();
    __m256 acc[P / 4] = {_mm256_setzero_ps(), _mm256_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)rows + b;
        int16_t words[16];
        iq4_xs_scale_words(words, rows, row_bytes, b, 2);
        const __m256i scw = _mm256_loadu_si256((const __m256i *)(const void *)words); /* lane r: row r's 8 scales */
        __m256i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i v = qk_rows2(blk->qs + 16 * j, row_bytes);
            const __m256i w0 = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
            const __m256i w1 = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
            const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
            const __m256i sc = _mm256_shuffle_epi8(scw, _mm256_broadcastsi128_si256(qk_word_everywhere(j)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 32 * j;
                __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(qk_x2(x), w0));
                __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(qk_x2(x + 16), w1));
                isum[p] = _mm256_add_epi32(isum[p], _mm256_add_epi32(_mm256_madd_epi16(p0, sc), _mm256_madd_epi16(p1, sc)));
            }
        }
        const __m128 d2 = qk_halves_rows((const uint8_t *)&blk->d, row_bytes, 2);
        const __m256 wd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
        for (int g = 0; g < P / 4; g++) {
            const __m128 xd4 = qk_xd4(in + 4 * g, b);
            __m256 fi = _mm256_cvtepi32_ps(qk_sum4_256(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(_mm256_mul_ps(wd, _mm256_set_m128(xd4, xd4)), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) _mm256_storeu_ps(out + 8 * g, _mm256_permutevar8x32_ps(acc[g], _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}


/* ------------------------------------------------------------------------ */
/* AVX-512 with VNNI: 4 rows × 8 positions                                   */
/* ------------------------------------------------------------------------ */
#if SIMD_AVX512 && defined(__AVX512VNNI__)

/*
 * Shape. VNNI's dpbusd does maddubs and madd in one instruction: 4 products
 * of unsigned × signed bytes summed into each int32 lane, 64 per instruction
 * on 512 bits. But it has no scale step, so a sub-block's sums come out
 * unscaled; they are small (Q4_K, two instructions: ≤ 2·4·15·127 = 15240;
 * Q6_K, one: ≤ 4·63·127 = 32004), so two sub-blocks' results fit in int16:
 * packs puts them side by side, and dpwssd (int16 × int16 pairs into int32)
 * multiplies them by their scales and adds them to the accumulator: one
 * pack and one dpwssd for every two (Q6_K) or four (Q4_K) dpbusd.
 *
 * Registers, of 32: 8 accumulators (one per position, 4 rows each), 4
 * decoded weight registers and 1-2 of scales, a few for the input and the
 * products, and the rest to spare for the compiler: 4 rows × 8 positions.
 * More positions would reuse each decoded weight more often, but leave more
 * positions of a short prompt to the one-position kernels; more rows would
 * need a second set of weights and accumulators, which do not fit.
 */
enum { TILE_QK_AVX512_ROWS = 4, TILE_QK_AVX512_POSITIONS = 8 };

/** 16 bytes at @p p in each of rows 0..3 (p + r·row_bytes): lane r. */
static inline __m512i qk_rows4(const uint8_t *p, size_t row_bytes) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(qk_rows2(p, row_bytes)), qk_rows2(p + 2 * row_bytes, row_bytes), 1);
}

/** The 16 input bytes at @p x in all four lanes (one load). */
static inline __m512i qk_x4(const void *x) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x)); }

/** dpbusd from zero: Σ of 4 products u·x per int32 lane. */
static inline __m512i qk_dot(__m512i u, __m512i x) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x); }

/** Σ of the four int32 lanes of each row, for 4 positions: lane 4r + q of the result is a_q's row r. */
static inline __m512i qk_sum4_512(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

/** Lane 4r + q → out[q·4 + r]: the tile's outputs for 4 positions, as the callers want them. */
static inline void qk_store4x4(float *out, __m512 acc) {
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), acc));
}

/** Rows 0..3 × positions 0..7 of a Q4_K matrix, as dot_q4_K_c computes each. */
static inline void tile_q4_K_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX512_POSITIONS };
    const __m512i low4 = _mm512_set1_epi8(15);
    __m512 acc[P / 4] = {_mm512_setzero_ps(), _mm512_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ4_K);
        const __m512i scm = _mm512_inserti64x4(_mm512_castsi256_si512(q4_K_scales_mins_2rows(blk + 4, row_bytes)),
                                               q4_K_scales_mins_2rows(blk + 4 + 2 * row_bytes, row_bytes), 1);
        __m512i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) { /* quants 32c .. 32c + 31: sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            const __m512i raw0 = qk_rows4(blk + 16 + 32 * c, row_bytes), raw1 = qk_rows4(blk + 16 + 32 * c + 16, row_bytes);
            const __m512i lo0 = _mm512_and_si512(raw0, low4), lo1 = _mm512_and_si512(raw1, low4);
            const __m512i hi0 = _mm512_and_si512(_mm512_srli_epi16(raw0, 4), low4), hi1 = _mm512_and_si512(_mm512_srli_epi16(raw1, 4), low4);
            const __m512i sc = _mm512_shuffle_epi8(scm, _mm512_broadcast_i32x4(qk_words_of(2 * c, 2 * c + 1)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 64 * c;
                __m512i s_lo = _mm512_dpbusd_epi32(qk_dot(lo0, qk_x4(x)), lo1, qk_x4(x + 16));
                __m512i s_hi = _mm512_dpbusd_epi32(qk_dot(hi0, qk_x4(x + 32)), hi1, qk_x4(x + 48));
                /* per lane: 4 words of sub-block 2c, 4 of 2c + 1, times their scales, pairs into int32 */
                isum[p] = _mm512_dpwssd_epi32(isum[p], _mm512_packs_epi32(s_lo, s_hi), sc);
            }
        }
        const __m512i mins = _mm512_shuffle_epi8(scm, _mm512_broadcast_i32x4(_mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1)));
        const __m512 dd = _mm512_castps256_ps512(q4_K_d_dmin(blk, row_bytes, 4)); /* [d_0 dmin_0 ... d_3 dmin_3] */
        const __m512 wd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6), dd);
        const __m512 wm = _mm512_permutexvar_ps(_mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7), dd);
        for (int g = 0; g < P / 4; g++) {
            const TileInput *ig = in + 4 * g;
            __m512i imin[4];
            for (int q = 0; q < 4; q++) imin[q] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mins, _mm512_broadcast_i32x4(q4_K_x_sums(&ig[q].xk[b])));
            __m512 fi = _mm512_cvtepi32_ps(qk_sum4_512(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            __m512 fm = _mm512_cvtepi32_ps(qk_sum4_512(imin[0], imin[1], imin[2], imin[3]));
            const __m512 xd = _mm512_broadcast_f32x4(qk_xd4(ig, b));
            __m512 d = _mm512_mul_ps(wd, xd), dmin = _mm512_mul_ps(wm, xd);
            acc[g] = _mm512_add_ps(acc[g], _mm512_sub_ps(_mm512_mul_ps(d, fi), _mm512_mul_ps(dmin, fm)));
        }
    }
    for (int g = 0; g < P / 4; g++) qk_store4x4(out + 16 * g, acc[g]);
}

/** q6_K_groups_2rows for rows 0..3, one row per lane. */
static inline void q6_K_groups_4rows(__m512i u[4], const BlockQ6_K *blk, size_t row_bytes, int n, int s) {
    const __m512i low4 = _mm512_set1_epi8(15), bits45 = _mm512_set1_epi8(0x30);
    __m512i a = qk_rows4(blk->ql + 64 * n + 16 * s, row_bytes), c = qk_rows4(blk->ql + 64 * n + 32 + 16 * s, row_bytes);
    __m512i h = qk_rows4(blk->qh + 32 * n + 16 * s, row_bytes);
    u[0] = _mm512_or_si512(_mm512_and_si512(a, low4), _mm512_and_si512(_mm512_slli_epi16(h, 4), bits45));
    u[1] = _mm512_or_si512(_mm512_and_si512(c, low4), _mm512_and_si512(_mm512_slli_epi16(h, 2), bits45));
    u[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), low4), _mm512_and_si512(h, bits45));
    u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(c, 4), low4), _mm512_and_si512(_mm512_srli_epi16(h, 2), bits45));
}

/** Rows 0..3 × positions 0..7 of a Q6_K matrix, as dot_q6_K_c; the −32 goes through the bsums, as in tile_q6_K_avx2. */
static inline void tile_q6_K_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX512_POSITIONS };
    __m512 acc[P / 4] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)rows + b;
        const __m256i sc01 = qk_rows2((const uint8_t *)blk->scales, row_bytes);
        const __m256i sc23 = qk_rows2((const uint8_t *)blk->scales + 2 * row_bytes, row_bytes);
#define QK_JOIN(f, ...) _mm512_inserti64x4(_mm512_castsi256_si512(f(sc01, __VA_ARGS__)), f(sc23, __VA_ARGS__), 1)
        const __m512i off_lo = QK_JOIN(q6_K_offset_words, 0), off_hi = QK_JOIN(q6_K_offset_words, 1);
        __m512i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
            const int16_t *bs = in[p].xk[b].bsums;
            isum[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_setzero_si512(), off_lo, qk_x4(bs)), off_hi, qk_x4(bs + 8));
        }
        for (int n = 0; n < 2; n++)
            for (int s = 0; s < 2; s++) {
                __m512i u[4];
                q6_K_groups_4rows(u, blk, row_bytes, n, s);
                const int g = 8 * n + s; /* u[k] is group g + 2k */
                const __m512i sc_a = QK_JOIN(q6_K_scale_words, g, g + 2), sc_b = QK_JOIN(q6_K_scale_words, g + 4, g + 6);
                _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                    const int8_t *x = in[p].xk[b].qs + 16 * g;
                    __m512i a = _mm512_packs_epi32(qk_dot(u[0], qk_x4(x)), qk_dot(u[1], qk_x4(x + 32)));
                    __m512i c = _mm512_packs_epi32(qk_dot(u[2], qk_x4(x + 64)), qk_dot(u[3], qk_x4(x + 96)));
                    isum[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(isum[p], a, sc_a), c, sc_b);
                }
            }
#undef QK_JOIN
        const __m512 wd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                _mm512_castps128_ps512(q6_K_d(blk, row_bytes, 4)));
        for (int g = 0; g < P / 4; g++) {
            __m512 fi = _mm512_cvtepi32_ps(qk_sum4_512(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(_mm512_mul_ps(wd, _mm512_broadcast_f32x4(qk_xd4(in + 4 * g, b))), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) qk_store4x4(out + 16 * g, acc[g]);
}

/* ------------------------------------------------------------------------ */
/* Chapter 8's types, AVX-512 with VNNI: 4 rows × 8 positions                */
/* ------------------------------------------------------------------------ */

/**
 * Rows 0..3 × positions 0..7 of a Q5_K matrix, as dot_q5_K_c (tile_q4_K_avx512's
 * plan). With the fifth bit a dpbusd pair of a sub-block sums 8 products ≤
 * 31·127 each: ≤ 31496, still an int16 for the pack.
 */
static inline void tile_q5_K_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX512_POSITIONS };
    const __m512i low4 = _mm512_set1_epi8(15), bit4 = _mm512_set1_epi8(16);
    __m512 acc[P / 4] = {_mm512_setzero_ps(), _mm512_setzero_ps()}; /* acc[g] lane 4r + q: row r, position 4g + q */
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ5_K);
        const __m512i scm = _mm512_inserti64x4(_mm512_castsi256_si512(q4_K_scales_mins_2rows(blk + 4, row_bytes)),
                                               q4_K_scales_mins_2rows(blk + 4 + 2 * row_bytes, row_bytes), 1);
        __m512i h0 = qk_rows4(blk + offsetof(BlockQ5_K, qh), row_bytes), h1 = qk_rows4(blk + offsetof(BlockQ5_K, qh) + 16, row_bytes);
        __m512i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) { /* quants 32c .. 32c + 31: sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            const uint8_t *qs = blk + offsetof(BlockQ5_K, qs) + 32 * c;
            const __m512i raw0 = qk_rows4(qs, row_bytes), raw1 = qk_rows4(qs + 16, row_bytes);
            const __m512i lo0 = _mm512_or_si512(_mm512_and_si512(raw0, low4), _mm512_and_si512(_mm512_slli_epi16(h0, 4), bit4));
            const __m512i lo1 = _mm512_or_si512(_mm512_and_si512(raw1, low4), _mm512_and_si512(_mm512_slli_epi16(h1, 4), bit4));
            h0 = _mm512_srli_epi16(h0, 1), h1 = _mm512_srli_epi16(h1, 1);
            const __m512i hi0 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw0, 4), low4), _mm512_and_si512(_mm512_slli_epi16(h0, 4), bit4));
            const __m512i hi1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw1, 4), low4), _mm512_and_si512(_mm512_slli_epi16(h1, 4), bit4));
            h0 = _mm512_srli_epi16(h0, 1), h1 = _mm512_srli_epi16(h1, 1);
            const __m512i sc = _mm512_shuffle_epi8(scm, _mm512_broadcast_i32x4(qk_words_of(2 * c, 2 * c + 1)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 64 * c;
                __m512i s_lo = _mm512_dpbusd_epi32(qk_dot(lo0, qk_x4(x)), lo1, qk_x4(x + 16));
                __m512i s_hi = _mm512_dpbusd_epi32(qk_dot(hi0, qk_x4(x + 32)), hi1, qk_x4(x + 48));
                isum[p] = _mm512_dpwssd_epi32(isum[p], _mm512_packs_epi32(s_lo, s_hi), sc);
            }
        }
        const __m512i mins = _mm512_shuffle_epi8(scm, _mm512_broadcast_i32x4(_mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1)));
        const __m512 dd = _mm512_castps256_ps512(q4_K_d_dmin(blk, row_bytes, 4)); /* [d_0 dmin_0 ... d_3 dmin_3] */
        const __m512 wd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6), dd);
        const __m512 wm = _mm512_permutexvar_ps(_mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7), dd);
        for (int g = 0; g < P / 4; g++) {
            const TileInput *ig = in + 4 * g;
            __m512i imin[4];
            for (int q = 0; q < 4; q++) imin[q] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mins, _mm512_broadcast_i32x4(q4_K_x_sums(&ig[q].xk[b])));
            __m512 fi = _mm512_cvtepi32_ps(qk_sum4_512(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            __m512 fm = _mm512_cvtepi32_ps(qk_sum4_512(imin[0], imin[1], imin[2], imin[3]));
            const __m512 xd = _mm512_broadcast_f32x4(qk_xd4(ig, b));
            __m512 d = _mm512_mul_ps(wd, xd), dmin = _mm512_mul_ps(wm, xd);
            acc[g] = _mm512_add_ps(acc[g], _mm512_sub_ps(_mm512_mul_ps(d, fi), _mm512_mul_ps(dmin, fm)));
        }
    }
    for (int g = 0; g < P / 4; g++) qk_store4x4(out + 16 * g, acc[g]);
}

/** q3_K_groups_2rows for rows 0..3, one row per lane. */
static inline void q3_K_groups_4rows(__m512i u[4], const BlockQ3_K *blk, size_t row_bytes, int h, int s) {
    const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    __m512i a = qk_rows4(blk->qs + 32 * h + 16 * s, row_bytes), m = qk_rows4(blk->hmask + 16 * s, row_bytes);
    if (h) m = _mm512_srli_epi16(m, 4);
    u[0] = _mm512_or_si512(_mm512_and_si512(a, three), _mm512_and_si512(_mm512_slli_epi16(m, 2), four));
    u[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 2), three), _mm512_and_si512(_mm512_slli_epi16(m, 1), four));
    u[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), three), _mm512_and_si512(m, four));
    u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 6), three), _mm512_and_si512(_mm512_srli_epi16(m, 1), four));
}

/** Rows 0..3 × positions 0..7 of a Q3_K matrix, as dot_q3_K_c (tile_q6_K_avx512's plan; dpbusd sums ≤ 4·7·127). */
static inline void tile_q3_K_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX512_POSITIONS };
    __m512 acc[P / 4] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockQ3_K *blk = (const BlockQ3_K *)(const void *)rows + b;
        const __m256i sc01 = q3_K_scales_2rows((const uint8_t *)blk, row_bytes);
        const __m256i sc23 = q3_K_scales_2rows((const uint8_t *)blk + 2 * row_bytes, row_bytes);
#define QK_JOIN(f, ...) _mm512_inserti64x4(_mm512_castsi256_si512(f(sc01, __VA_ARGS__)), f(sc23, __VA_ARGS__), 1)
        const __m512i off_lo = QK_JOIN(q3_K_offset_words, 0), off_hi = QK_JOIN(q3_K_offset_words, 1);
        __m512i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
            const int16_t *bs = in[p].xk[b].bsums;
            isum[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_setzero_si512(), off_lo, qk_x4(bs)), off_hi, qk_x4(bs + 8));
        }
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2; s++) {
                __m512i u[4];
                q3_K_groups_4rows(u, blk, row_bytes, h, s);
                const int g = 8 * h + s; /* u[k] is group g + 2k */
                const __m512i sc_a = QK_JOIN(q6_K_scale_words, g, g + 2), sc_b = QK_JOIN(q6_K_scale_words, g + 4, g + 6);
                _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                    const int8_t *x = in[p].xk[b].qs + 16 * g;
                    __m512i a = _mm512_packs_epi32(qk_dot(u[0], qk_x4(x)), qk_dot(u[1], qk_x4(x + 32)));
                    __m512i c = _mm512_packs_epi32(qk_dot(u[2], qk_x4(x + 64)), qk_dot(u[3], qk_x4(x + 96)));
                    isum[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(isum[p], a, sc_a), c, sc_b);
                }
            }
#undef QK_JOIN
        const __m512 wd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                _mm512_castps128_ps512(qk_halves_rows((const uint8_t *)&blk->d, row_bytes, 4)));
        for (int g = 0; g < P / 4; g++) {
            __m512 fi = _mm512_cvtepi32_ps(qk_sum4_512(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(_mm512_mul_ps(wd, _mm512_broadcast_f32x4(qk_xd4(in + 4 * g, b))), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) qk_store4x4(out + 16 * g, acc[g]);
}

/**
 * Rows 0..3 × positions 0..7 of an IQ4_XS matrix, as dot_iq4_xs_c
 * (tile_iq4_xs_avx2's plan). AVX-512 has no byte sign instruction: each
 * position's input is negated, under a mask of the negative levels, by one
 * masked subtraction. The signed levels' pair sums (≤ 2·127·127) do not fit
 * the pack of the other tiles, so maddubs makes them and dpwssd scales them.
 */
static inline void tile_iq4_xs_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_AVX512_POSITIONS };
    const __m512i low4 = _mm512_set1_epi8(15), table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)iq4_nl_levels()));
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc[P / 4] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockIQ4_XS *blk = (const BlockIQ4_XS *)(const void *)rows + b;
        int16_t words[32];
        iq4_xs_scale_words(words, rows, row_bytes, b, 4);
        const __m512i scw = _mm512_loadu_si512((const void *)words); /* lane r: row r's 8 scales */
        __m512i isum[P];
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) isum[p] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            const __m512i v = qk_rows4(blk->qs + 16 * j, row_bytes);
            const __m512i w0 = _mm512_shuffle_epi8(table, _mm512_and_si512(v, low4));
            const __m512i w1 = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
            const __mmask64 n0 = _mm512_movepi8_mask(w0), n1 = _mm512_movepi8_mask(w1); /* the negative levels */
            const __m512i a0 = _mm512_abs_epi8(w0), a1 = _mm512_abs_epi8(w1);
            const __m512i sc = _mm512_shuffle_epi8(scw, _mm512_broadcast_i32x4(qk_word_everywhere(j)));
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 32 * j;
                const __m512i x0 = qk_x4(x), x1 = qk_x4(x + 16);
                __m512i p0 = _mm512_maddubs_epi16(a0, _mm512_mask_sub_epi8(x0, n0, zero, x0));
                __m512i p1 = _mm512_maddubs_epi16(a1, _mm512_mask_sub_epi8(x1, n1, zero, x1));
                isum[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(isum[p], p0, sc), p1, sc);
            }
        }
        const __m512 wd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                _mm512_castps128_ps512(qk_halves_rows((const uint8_t *)&blk->d, row_bytes, 4)));
        for (int g = 0; g < P / 4; g++) {
            __m512 fi = _mm512_cvtepi32_ps(qk_sum4_512(isum[4 * g], isum[4 * g + 1], isum[4 * g + 2], isum[4 * g + 3]));
            acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(_mm512_mul_ps(wd, _mm512_broadcast_f32x4(qk_xd4(in + 4 * g, b))), fi));
        }
    }
    for (int g = 0; g < P / 4; g++) qk_store4x4(out + 16 * g, acc[g]);
}

#endif /* SIMD_AVX512 && __AVX512VNNI__ */

#endif /* SIMD_X86 */

/* ======================================================================== */
/* NEON: one row per 32-bit lane, 4 rows × 8 positions                       */
/* ======================================================================== */
#if SIMD_NEON

/*
 * Shape. NEON's sdot has an indexed form: each 32-bit lane of the result adds
 * the 4 products of its own 4 bytes of the first operand with *one* chosen
 * 4-byte group of the second. With lane r holding 4 weights of row r, one
 * input register serves all four rows without any shuffle of the input, and
 * the accumulator's lanes are the rows: the sums need no adding across lanes
 * at the end, and a sub-block's scales (one per row) multiply the four lanes
 * at once. The price is a transpose of each 16 weight bytes of the four rows
 * (8 instructions), paid once per super-block and used by all 8 positions.
 *
 * Registers, of 32: 8 accumulators of integers (one per position), 8 of
 * transposed weights and 8 decoded from them, the input and the products:
 * 4 rows × 8 positions. The 8 float sums may live in memory; they are
 * touched once per super-block.
 */
enum { TILE_QK_NEON_ROWS = 4, TILE_QK_NEON_POSITIONS = 8 };

/**
 * @p acc + Σ_t (lane r: bytes 4r..4r+3 of @p w[t]) · (bytes 4t..4t+3 of @p x),
 * for t = 0..3: the 16 bytes of x against the 16 weights of each row.
 */
static inline int32x4_t qk_dot4(int32x4_t acc, const int8x16_t w[4], int8x16_t x) {
#if defined(__ARM_FEATURE_DOTPROD)
    acc = vdotq_laneq_s32(acc, w[0], x, 0);
    acc = vdotq_laneq_s32(acc, w[1], x, 1);
    acc = vdotq_laneq_s32(acc, w[2], x, 2);
    return vdotq_laneq_s32(acc, w[3], x, 3);
#else /* the same sums with widening multiplies: 16 products, pairs, then fours, per group */
    const int32x4_t xs = vreinterpretq_s32_s8(x);
    const int32x4_t groups[4] = {vdupq_laneq_s32(xs, 0), vdupq_laneq_s32(xs, 1), vdupq_laneq_s32(xs, 2), vdupq_laneq_s32(xs, 3)};
    for (int t = 0; t < 4; t++) {
        int8x16_t g = vreinterpretq_s8_s32(groups[t]);
        int16x8_t lo = vmull_s8(vget_low_s8(w[t]), vget_low_s8(g)), hi = vmull_high_s8(w[t], g);
        acc = vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
    }
    return acc;
#endif
}

/** The 16 bytes at @p p of rows 0..3, transposed by 32-bit groups: lane r of t[k] is bytes 4k..4k+3 of row r. */
static inline void qk_transpose4(uint8x16_t t[4], const uint8_t *p, size_t row_bytes) {
    int32x4_t r0 = vreinterpretq_s32_u8(vld1q_u8(p)), r1 = vreinterpretq_s32_u8(vld1q_u8(p + row_bytes));
    int32x4_t r2 = vreinterpretq_s32_u8(vld1q_u8(p + 2 * row_bytes)), r3 = vreinterpretq_s32_u8(vld1q_u8(p + 3 * row_bytes));
    int64x2_t a = vreinterpretq_s64_s32(vtrn1q_s32(r0, r1)), b = vreinterpretq_s64_s32(vtrn2q_s32(r0, r1)); /* [r0.0 r1.0 r0.2 r1.2], [.1 .1 .3 .3] */
    int64x2_t c = vreinterpretq_s64_s32(vtrn1q_s32(r2, r3)), d = vreinterpretq_s64_s32(vtrn2q_s32(r2, r3));
    t[0] = vreinterpretq_u8_s64(vtrn1q_s64(a, c));
    t[1] = vreinterpretq_u8_s64(vtrn1q_s64(b, d));
    t[2] = vreinterpretq_u8_s64(vtrn2q_s64(a, c));
    t[3] = vreinterpretq_u8_s64(vtrn2q_s64(b, d));
}

/** A byte-table index: @p base with @p add added to the bytes that @p mask selects. */
static inline uint8x16_t qk_index(const uint8_t base[16], const uint8_t mask[16], int add) {
    return vaddq_u8(vld1q_u8(base), vandq_u8(vld1q_u8(mask), vdupq_n_u8((uint8_t)add)));
}

/**
 * The scales and mins of a Q4_K block in rows 0..3, across the rows:
 * sc[j] lane r = sc_j of row r (int32); mins[k] = m_2k of rows 0..3 then
 * m_2k+1 of rows 0..3 (int16). Each row's 12 bytes are decoded into
 * sc_0..7, m_0..7 as on x86 (q4_K_scales_mins_2rows); one 64-byte table
 * lookup then gathers each vector from the four rows.
 */
static inline void q4_K_scales_mins_4rows(int32x4_t sc[8], int16x8_t mins[4], const uint8_t *s, size_t row_bytes) {
    static const uint8_t low_idx[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11};
    static const uint8_t top_idx[16] = {255, 255, 255, 255, 0, 1, 2, 3, 255, 255, 255, 255, 4, 5, 6, 7};
    static const uint8_t keep[16] = {63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0};
    static const uint8_t high[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15};
    static const uint8_t sc_base[16] = {0, 255, 255, 255, 16, 255, 255, 255, 32, 255, 255, 255, 48, 255, 255, 255};
    static const uint8_t sc_mask[16] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0};
    static const uint8_t m_base[16] = {8, 255, 24, 255, 40, 255, 56, 255, 9, 255, 25, 255, 41, 255, 57, 255};
    static const uint8_t m_mask[16] = {255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0};
    uint8x16x4_t rows;
    for (int r = 0; r < 4; r++) {
        uint8x16_t v = vld1q_u8(s + row_bytes * (size_t)r); /* 12 scale bytes and 4 of quants */
        uint8x16_t low = vqtbl1q_u8(v, vld1q_u8(low_idx)), top = vqtbl1q_u8(v, vld1q_u8(top_idx));
        uint8x16_t d = vorrq_u8(vandq_u8(low, vld1q_u8(keep)), vandq_u8(vshrq_n_u8(low, 4), vld1q_u8(high)));
        rows.val[r] = vorrq_u8(d, vshlq_n_u8(vshrq_n_u8(top, 6), 4));
    }
    for (int j = 0; j < 8; j++) sc[j] = vreinterpretq_s32_u8(vqtbl4q_u8(rows, qk_index(sc_base, sc_mask, j)));
    for (int k = 0; k < 4; k++) mins[k] = vreinterpretq_s16_u8(vqtbl4q_u8(rows, qk_index(m_base, m_mask, 2 * k)));
}

/** The fp16 at byte @p at of each of rows 0..3's block @p blk, as floats. */
static inline float32x4_t qk_halves4(const uint8_t *blk, size_t at, size_t row_bytes) {
    uint16_t h[4];
    for (int r = 0; r < 4; r++) memcpy(&h[r], blk + at + row_bytes * (size_t)r, 2);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/** Rows 0..3 × positions 0..7 of a Q4_K matrix, as dot_q4_K_c computes each; lanes are rows. */
static inline void tile_q4_K_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_NEON_POSITIONS };
    float32x4_t acc[P];
    for (int p = 0; p < P; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ4_K);
        int32x4_t sc[8], isum[P];
        int16x8_t mins[4];
        q4_K_scales_mins_4rows(sc, mins, blk + 4, row_bytes);
        for (int p = 0; p < P; p++) isum[p] = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) { /* quants 32c .. 32c + 31: sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            uint8x16_t raw[2][4];
            qk_transpose4(raw[0], blk + 16 + 32 * c, row_bytes);
            qk_transpose4(raw[1], blk + 16 + 32 * c + 16, row_bytes);
            for (int high = 0; high < 2; high++) {
                int8x16_t w[2][4];
                for (int h = 0; h < 2; h++)
                    for (int t = 0; t < 4; t++)
                        w[h][t] = vreinterpretq_s8_u8(high ? vshrq_n_u8(raw[h][t], 4) : vandq_u8(raw[h][t], vdupq_n_u8(15)));
                for (int p = 0; p < P; p++) {
                    const int8_t *x = in[p].xk[b].qs + 64 * c + 32 * high;
                    int32x4_t s = qk_dot4(qk_dot4(vdupq_n_s32(0), w[0], vld1q_s8(x)), w[1], vld1q_s8(x + 16));
                    isum[p] = vmlaq_s32(isum[p], s, sc[2 * c + high]);
                }
            }
        }
        const float32x4_t wd = qk_halves4(blk, 0, row_bytes), wm = qk_halves4(blk, 2, row_bytes);
        for (int p = 0; p < P; p++) {
            const BlockQ8_K *x = &in[p].xk[b];
            int16x8_t bs = vpaddq_s16(vld1q_s16(x->bsums), vld1q_s16(x->bsums + 8)); /* x's sum per sub-block */
            int32x4_t imin = vmull_laneq_s16(vget_low_s16(mins[0]), bs, 0);
            imin = vmlal_high_laneq_s16(imin, mins[0], bs, 1);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[1]), bs, 2);
            imin = vmlal_high_laneq_s16(imin, mins[1], bs, 3);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[2]), bs, 4);
            imin = vmlal_high_laneq_s16(imin, mins[2], bs, 5);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[3]), bs, 6);
            imin = vmlal_high_laneq_s16(imin, mins[3], bs, 7);
            float32x4_t d = vmulq_n_f32(wd, x->d), dmin = vmulq_n_f32(wm, x->d);
            acc[p] = vaddq_f32(acc[p], vsubq_f32(vmulq_f32(d, vcvtq_f32_s32(isum[p])), vmulq_f32(dmin, vcvtq_f32_s32(imin))));
        }
    }
    for (int p = 0; p < P; p++) vst1q_f32(out + 4 * p, acc[p]);
}

/**
 * Rows 0..3 × positions 0..7 of a Q6_K matrix, as dot_q6_K_c. The quants go
 * in signed (q − 32, as sdot multiplies signed bytes), so no correction
 * through the bsums is needed here. ql and qh are transposed as they are
 * (a transpose moves whole 32-bit groups, the decoding works byte by byte:
 * either order gives the same bytes), then decoded as unpack_q6_K does.
 */
static inline void tile_q6_K_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_NEON_POSITIONS };
    static const uint8_t sc_base[16] = {255, 255, 255, 0, 255, 255, 255, 16, 255, 255, 255, 32, 255, 255, 255, 48};
    static const uint8_t sc_mask[16] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
    const uint8x16_t three = vdupq_n_u8(3);
    float32x4_t acc[P];
    for (int p = 0; p < P; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK_K; b++) {
        const BlockQ6_K *blk = (const BlockQ6_K *)(const void *)rows + b;
        const uint8_t *bytes = (const uint8_t *)blk;
        uint8x16x4_t scales; /* table: the 16 int8 scales of rows 0..3 */
        for (int r = 0; r < 4; r++) scales.val[r] = vld1q_u8((const uint8_t *)blk->scales + row_bytes * (size_t)r);
        int32x4_t isum[P];
        for (int p = 0; p < P; p++) isum[p] = vdupq_n_s32(0);
        for (int n = 0; n < 2; n++)
            for (int s = 0; s < 2; s++) {
                uint8x16_t a[4], c[4], h[4];
                qk_transpose4(a, bytes + 64 * n + 16 * s, row_bytes);
                qk_transpose4(c, bytes + 64 * n + 32 + 16 * s, row_bytes);
                qk_transpose4(h, bytes + 128 + 32 * n + 16 * s, row_bytes);
                for (int k = 0; k < 4; k++) {
                    const int g = 8 * n + 2 * k + s;
                    int8x16_t w[4];
                    for (int t = 0; t < 4; t++) {
                        uint8x16_t u = k == 0   ? vsliq_n_u8(a[t], vandq_u8(h[t], three), 4)
                                       : k == 1 ? vsliq_n_u8(c[t], vandq_u8(vshrq_n_u8(h[t], 2), three), 4)
                                       : k == 2 ? vsliq_n_u8(vshrq_n_u8(a[t], 4), vandq_u8(vshrq_n_u8(h[t], 4), three), 4)
                                                : vsliq_n_u8(vshrq_n_u8(c[t], 4), vshrq_n_u8(h[t], 6), 4);
                        w[t] = vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8(32));
                    }
                    /* each scale into the top byte of its lane, then down with its sign */
                    const int32x4_t sc = vshrq_n_s32(vreinterpretq_s32_u8(vqtbl4q_u8(scales, qk_index(sc_base, sc_mask, g))), 24);
                    for (int p = 0; p < P; p++)
                        isum[p] = vmlaq_s32(isum[p], qk_dot4(vdupq_n_s32(0), w, vld1q_s8(in[p].xk[b].qs + 16 * g)), sc);
                }
            }
        const float32x4_t wd = qk_halves4(bytes, offsetof(BlockQ6_K, d), row_bytes);
        for (int p = 0; p < P; p++)
            acc[p] = vaddq_f32(acc[p], vmulq_f32(vmulq_n_f32(wd, in[p].xk[b].d), vcvtq_f32_s32(isum[p])));
    }
    for (int p = 0; p < P; p++) vst1q_f32(out + 4 * p, acc[p]);
}

/* ------------------------------------------------------------------------ */
/* Chapter 8's types on NEON: Q5_K, Q3_K and IQ4_XS, 4 rows × 8 positions    */
/* ------------------------------------------------------------------------ */

/*
 * The same transposes and indexed dot products. The transposes move whole
 * 32-bit groups and the decoding works byte by byte, so the high bits (qh,
 * hmask) are transposed as they are and decoded beside their low bits. The
 * scales of Q3_K and IQ4_XS are decoded in scalar code, once per super-block
 * and four rows, into one int32 lane per row: 8 positions use each.
 */

/** Rows 0..3 × positions 0..7 of a Q5_K matrix, as dot_q5_K_c (tile_q4_K_neon with qh's fifth bits). */
static inline void tile_q5_K_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_NEON_POSITIONS };
    const uint8x16_t one = vdupq_n_u8(1), low4 = vdupq_n_u8(15);
    float32x4_t acc[P];
    for (int p = 0; p < P; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *blk = rows + (size_t)b * sizeof(BlockQ5_K);
        int32x4_t sc[8], isum[P];
        int16x8_t mins[4];
        q4_K_scales_mins_4rows(sc, mins, blk + 4, row_bytes);
        uint8x16_t hb[2][4]; /* the fifth bits of weights l (hb[0]) and 16 + l (hb[1]): bit j for sub-block j, shifted down as they are used */
        qk_transpose4(hb[0], blk + offsetof(BlockQ5_K, qh), row_bytes);
        qk_transpose4(hb[1], blk + offsetof(BlockQ5_K, qh) + 16, row_bytes);
        for (int p = 0; p < P; p++) isum[p] = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) { /* quants 32c .. 32c + 31: sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            uint8x16_t raw[2][4];
            qk_transpose4(raw[0], blk + offsetof(BlockQ5_K, qs) + 32 * c, row_bytes);
            qk_transpose4(raw[1], blk + offsetof(BlockQ5_K, qs) + 32 * c + 16, row_bytes);
            for (int high = 0; high < 2; high++) {
                int8x16_t w[2][4];
                for (int h = 0; h < 2; h++)
                    for (int t = 0; t < 4; t++) {
                        uint8x16_t q = high ? vshrq_n_u8(raw[h][t], 4) : vandq_u8(raw[h][t], low4);
                        w[h][t] = vreinterpretq_s8_u8(vorrq_u8(q, vshlq_n_u8(vandq_u8(hb[h][t], one), 4)));
                        hb[h][t] = vshrq_n_u8(hb[h][t], 1);
                    }
                for (int p = 0; p < P; p++) {
                    const int8_t *x = in[p].xk[b].qs + 64 * c + 32 * high;
                    int32x4_t s = qk_dot4(qk_dot4(vdupq_n_s32(0), w[0], vld1q_s8(x)), w[1], vld1q_s8(x + 16));
                    isum[p] = vmlaq_s32(isum[p], s, sc[2 * c + high]);
                }
            }
        }
        const float32x4_t wd = qk_halves4(blk, 0, row_bytes), wm = qk_halves4(blk, 2, row_bytes);
        for (int p = 0; p < P; p++) {
            const BlockQ8_K *x = &in[p].xk[b];
            int16x8_t bs = vpaddq_s16(vld1q_s16(x->bsums), vld1q_s16(x->bsums + 8)); /* x's sum per sub-block */
            int32x4_t imin = vmull_laneq_s16(vget_low_s16(mins[0]), bs, 0);
            imin = vmlal_high_laneq_s16(imin, mins[0], bs, 1);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[1]), bs, 2);
            imin = vmlal_high_laneq_s16(imin, mins[1], bs, 3);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[2]), bs, 4);
            imin = vmlal_high_laneq_s16(imin, mins[2], bs, 5);
            imin = vmlal_laneq_s16(imin, vget_low_s16(mins[3]), bs, 6);
            imin = vmlal_high_laneq_s16(imin, mins[3], bs, 7);
            float32x4_t d = vmulq_n_f32(wd, x->d), dmin = vmulq_n_f32(wm, x->d);
            acc[p] = vaddq_f32(acc[p], vsubq_f32(vmulq_f32(d, vcvtq_f32_s32(isum[p])), vmulq_f32(dmin, vcvtq_f32_s32(imin))));
        }
    }
    for (int p = 0; p < P; p++) vst1q_f32(out + 4 * p, acc[p]);
}

/**
 * Rows 0..3 × positions 0..7 of a Q3_K matrix, as dot_q3_K_c. The quants go
 * in signed ((low | high << 2) − 4), as in tile_q6_K_neon: no correction
 * through the bsums.
 */
static inline void tile_q3_K_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_NEON_POSITIONS };
    const uint8x16_t three = vdupq_n_u8(3), one = vdupq_n_u8(1);
    float32x4_t acc[P];
    for (int p = 0; p < P; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *bytes = rows + (size_t)b * sizeof(BlockQ3_K);
        int32_t scales[QK_K / 16][4]; /* [g][r]: row r's scale of group g */
        for (int r = 0; r < 4; r++)
            for (int g = 0; g < QK_K / 16; g++)
                scales[g][r] = q3_K_scale(((const BlockQ3_K *)(const void *)(bytes + row_bytes * (size_t)r))->scales, g);
        int32x4_t isum[P];
        for (int p = 0; p < P; p++) isum[p] = vdupq_n_s32(0);
        for (int s = 0; s < 2; s++) {
            uint8x16_t m[4]; /* hmask[16s ..]: bit 4h + k for run k of half h; shifted down as used */
            qk_transpose4(m, bytes + offsetof(BlockQ3_K, hmask) + 16 * s, row_bytes);
            for (int h = 0; h < 2; h++) {
                uint8x16_t a[4];
                qk_transpose4(a, bytes + offsetof(BlockQ3_K, qs) + 32 * h + 16 * s, row_bytes);
                for (int k = 0; k < 4; k++) {
                    const int g = 8 * h + 2 * k + s;
                    int8x16_t w[4];
                    for (int t = 0; t < 4; t++) {
                        uint8x16_t u = vorrq_u8(vandq_u8(a[t], three), vshlq_n_u8(vandq_u8(m[t], one), 2));
                        w[t] = vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8(4));
                        a[t] = vshrq_n_u8(a[t], 2), m[t] = vshrq_n_u8(m[t], 1);
                    }
                    const int32x4_t sc = vld1q_s32(scales[g]);
                    for (int p = 0; p < P; p++)
                        isum[p] = vmlaq_s32(isum[p], qk_dot4(vdupq_n_s32(0), w, vld1q_s8(in[p].xk[b].qs + 16 * g)), sc);
                }
            }
        }
        const float32x4_t wd = qk_halves4(bytes, offsetof(BlockQ3_K, d), row_bytes);
        for (int p = 0; p < P; p++)
            acc[p] = vaddq_f32(acc[p], vmulq_f32(vmulq_n_f32(wd, in[p].xk[b].d), vcvtq_f32_s32(isum[p])));
    }
    for (int p = 0; p < P; p++) vst1q_f32(out + 4 * p, acc[p]);
}

/** Rows 0..3 × positions 0..7 of an IQ4_XS matrix, as dot_iq4_xs_c: the transposed indices looked up in the table, signed levels into sdot. */
static inline void tile_iq4_xs_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    enum { P = TILE_QK_NEON_POSITIONS };
    const int8x16_t table = vld1q_s8(iq4_nl_levels());
    const uint8x16_t low4 = vdupq_n_u8(15);
    float32x4_t acc[P];
    for (int p = 0; p < P; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK_K; b++) {
        const uint8_t *bytes = rows + (size_t)b * sizeof(BlockIQ4_XS);
        int32_t scales[8][4]; /* [j][r]: row r's scale of sub-block j */
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 8; j++) scales[j][r] = iq4_xs_scale((const BlockIQ4_XS *)(const void *)(bytes + row_bytes * (size_t)r), j);
        int32x4_t isum[P];
        for (int p = 0; p < P; p++) isum[p] = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) {
            uint8x16_t t4[4];
            qk_transpose4(t4, bytes + offsetof(BlockIQ4_XS, qs) + 16 * j, row_bytes);
            int8x16_t lo[4], hi[4]; /* the sub-block's weights 0..15 and 16..31 */
            for (int t = 0; t < 4; t++) lo[t] = vqtbl1q_s8(table, vandq_u8(t4[t], low4)), hi[t] = vqtbl1q_s8(table, vshrq_n_u8(t4[t], 4));
            const int32x4_t sc = vld1q_s32(scales[j]);
            for (int p = 0; p < P; p++) {
                const int8_t *x = in[p].xk[b].qs + 32 * j;
                int32x4_t s = qk_dot4(qk_dot4(vdupq_n_s32(0), lo, vld1q_s8(x)), hi, vld1q_s8(x + 16));
                isum[p] = vmlaq_s32(isum[p], s, sc);
            }
        }
        const float32x4_t wd = qk_halves4(bytes, offsetof(BlockIQ4_XS, d), row_bytes);
        for (int p = 0; p < P; p++)
            acc[p] = vaddq_f32(acc[p], vmulq_f32(vmulq_n_f32(wd, in[p].xk[b].d), vcvtq_f32_s32(isum[p])));
    }
    for (int p = 0; p < P; p++) vst1q_f32(out + 4 * p, acc[p]);
}

#endif /* SIMD_NEON */

/** The SIMD tile of this build for Q4_K, Q6_K, Q5_K, Q3_K or IQ4_XS weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_q8_K(int type) {
#if SIMD_AVX512 && defined(__AVX512VNNI__)
    if (type == Q_Q4_K) return (Tile){TILE_QK_AVX512_ROWS, TILE_QK_AVX512_POSITIONS, tile_q4_K_avx512};
    if (type == Q_Q6_K) return (Tile){TILE_QK_AVX512_ROWS, TILE_QK_AVX512_POSITIONS, tile_q6_K_avx512};
    if (type == Q_Q5_K) return (Tile){TILE_QK_AVX512_ROWS, TILE_QK_AVX512_POSITIONS, tile_q5_K_avx512};
    if (type == Q_Q3_K) return (Tile){TILE_QK_AVX512_ROWS, TILE_QK_AVX512_POSITIONS, tile_q3_K_avx512};
    if (type == Q_IQ4_XS) return (Tile){TILE_QK_AVX512_ROWS, TILE_QK_AVX512_POSITIONS, tile_iq4_xs_avx512};
#elif SIMD_X86
    if (type == Q_Q4_K) return (Tile){TILE_QK_AVX2_ROWS, TILE_QK_AVX2_POSITIONS, tile_q4_K_avx2};
    if (type == Q_Q6_K) return (Tile){TILE_QK_AVX2_ROWS, TILE_QK_AVX2_POSITIONS, tile_q6_K_avx2};
    if (type == Q_Q5_K) return (Tile){TILE_QK_AVX2_ROWS, TILE_QK_AVX2_POSITIONS, tile_q5_K_avx2};
    if (type == Q_Q3_K) return (Tile){TILE_QK_AVX2_ROWS, TILE_QK_AVX2_POSITIONS, tile_q3_K_avx2};
    if (type == Q_IQ4_XS) return (Tile){TILE_QK_AVX2_ROWS, TILE_QK_AVX2_POSITIONS, tile_iq4_xs_avx2};
#elif SIMD_NEON
    if (type == Q_Q4_K) return (Tile){TILE_QK_NEON_ROWS, TILE_QK_NEON_POSITIONS, tile_q4_K_neon};
    if (type == Q_Q6_K) return (Tile){TILE_QK_NEON_ROWS, TILE_QK_NEON_POSITIONS, tile_q6_K_neon};
    if (type == Q_Q5_K) return (Tile){TILE_QK_NEON_ROWS, TILE_QK_NEON_POSITIONS, tile_q5_K_neon};
    if (type == Q_Q3_K) return (Tile){TILE_QK_NEON_ROWS, TILE_QK_NEON_POSITIONS, tile_q3_K_neon};
    if (type == Q_IQ4_XS) return (Tile){TILE_QK_NEON_ROWS, TILE_QK_NEON_POSITIONS, tile_iq4_xs_neon};
#endif
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

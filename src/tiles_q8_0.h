/**
 * @file tiles_q8_0.h
 * @brief Chapter 7's SIMD tiles for Q8_0, Q5_0 and Q4_0 weights (Q8_0 inputs) (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 *
 * @section tiles_q8_0_turn Rows turned around
 * Chapter 4's eight-row kernel gives each row a register of partial sums
 * (lane j: 4 of the block's 32 products) and folds the lanes with hadd at
 * every block, because the float term of a block needs the block's whole
 * integer sum. In a tile that fold would come once per (row, position) and
 * block: more instructions than the products themselves. So the tiles turn
 * the weights around instead. Lane r of a register holds row r, and the 4
 * bytes it multiplies are row r's bytes 4k..4k+3 (word k of its block); the
 * input's word k is the same for every row, so it is broadcast to all lanes
 * (x86: straight from memory, as the multiply's operand; NEON: SDOT by
 * lane). One dot-product instruction then adds 4 products to each row's sum,
 * and after a block's 8 words lane r holds row r's whole integer sum, with
 * nothing to fold. Turning a block's rows around is a transpose of 4-byte
 * words, a few shuffles, paid once per block and used by every position.
 *
 * @section tiles_q8_0_unsigned Unsigned weights (x86)
 * x86's byte multiplies (dpbusd, maddubs) take unsigned bytes times signed
 * ones. The inputs are signed, so the weights are the unsigned side: Q4_0's
 * nibbles u are (the weight is u − 8), Q5_0's 5-bit u too (u − 16), and a
 * Q8_0 weight w becomes u = w + 128 (its top bit flipped, 0..255). Then
 * Σ(u − off)·x = Σu·x − off·Σx, where Σx, the sum of the input block's
 * quants, is given (TileInput.xs). Integers: the same value as the
 * definition's, and the float term is (float)isum · (d_w · d_x) as there,
 * added to lane r's accumulator block after block.
 */
#ifndef LLAMABOOK_TILES_Q8_0_H
#define LLAMABOOK_TILES_Q8_0_H

/*
 * A tile shared by two or three types takes the type (or whether it has a
 * fifth bit) as an argument. Each type's tile must be compiled for its own
 * constant (no test of the type in the loop, the loops over positions
 * unrolled, the accumulators in registers), so the shared body is always
 * inlined into each.
 */
#if defined(__GNUC__)
#define TILE_BODY static inline __attribute__((always_inline))
#else
#define TILE_BODY static inline
#endif

/* ======================================================================== */
/* AVX-512 with VNNI: sixteen rows per register                             */
/* ======================================================================== */
#if SIMD_AVX512 && defined(__AVX512VNNI__)

/*
 * Registers (32 of 512 bits): the decoded block, 8 (Q4_0, Q5_0: 4 words of
 * low nibbles and 4 of high ones; Q8_0: its 8 words); one float accumulator
 * per position, 16 rows each; the 16 weight scales; and an integer sum in
 * flight per position. Eight positions make 8 + 8 + 1 + 8 = 25, which leaves
 * room for the constants and the compiler's temporaries; eight also divides
 * the usual batch, so no position is left to the one-position kernels.
 * All sums are exact in int32: |Σu·x| ≤ 32·255·127.
 *
 * What is left to pay is the definition's own float work: per block, 16
 * rows and one position cost 8 dpbusd and 4 float instructions (the
 * product d_w·d_x, the conversion of the sum, its product, the add), which
 * no layout can share, since every (row, position, block) has its own.
 * Measured, the tile runs at about two thirds of the speed it has with the
 * float work left out.
 */
enum { TILE_Q_ROWS_512 = 16, TILE_Q_POSITIONS_512 = 8 };

/** A 4-byte word at @p p in all 16 lanes (a load that the multiply takes as its operand). */
static inline __m512i broadcast_word(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/** The 16 bytes at @p p, p + @p four_rows, p + 2·four_rows and p + 3·four_rows, as the 4 lanes of 128 bits. */
static inline __m512i lanes_of_4_rows(const uint8_t *p, size_t four_rows) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + four_rows)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * four_rows)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * four_rows)), 3);
}

/** t[k], lane L: the 4×4 transpose of words of lane L of a[0..3] (word k of a[i] goes to word i of t[k]). */
static inline void transpose_in_lanes_512(__m512i t[4], const __m512i a[4]) {
    __m512i u0 = _mm512_unpacklo_epi32(a[0], a[1]), u1 = _mm512_unpackhi_epi32(a[0], a[1]);
    __m512i u2 = _mm512_unpacklo_epi32(a[2], a[3]), u3 = _mm512_unpackhi_epi32(a[2], a[3]);
    t[0] = _mm512_unpacklo_epi64(u0, u2);
    t[1] = _mm512_unpackhi_epi64(u0, u2);
    t[2] = _mm512_unpacklo_epi64(u1, u3);
    t[3] = _mm512_unpackhi_epi64(u1, u3);
}

/**
 * 16 bytes of each of 16 rows (from @p p, rows @p row_bytes apart), turned
 * around: lane r of t[k] is row r's word k. a[j] takes rows j, j+4, j+8,
 * j+12 into its 128-bit lanes, so lane L of a[j] is row 4L + j; a 4×4
 * transpose of words inside each 128-bit lane (two rounds of unpacks, which
 * never cross lanes) then puts row 4L + j's word k at lane 4L + j of t[k].
 */
static inline void words_of_16_rows(__m512i t[4], const uint8_t *p, size_t row_bytes) {
    __m512i a[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) a[j] = lanes_of_4_rows(p + row_bytes * (size_t)j, 4 * row_bytes);
    transpose_in_lanes_512(t, a);
}

/** The low and high nibbles of t[k]: the quants of weights 4k..4k+3 and 16+4k..16+4k+3. */
static inline void nibbles_of_words_512(__m512i lo[4], __m512i hi[4], const __m512i t[4]) {
    const __m512i low4 = _mm512_set1_epi8(15);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        lo[k] = _mm512_and_si512(t[k], low4);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), low4);
    }
}

/** Whether 15 rows' offset fits the gathers' int32 (always, for real models). */
static inline int tile_fits_gather(size_t row_bytes) { return row_bytes <= (1u << 27); }

/** The byte offsets of 16 rows, for the gathers (zeros where they would not fit an int32). */
static inline __m512i offsets_of_16_rows(size_t row_bytes) {
    if (!tile_fits_gather(row_bytes)) return _mm512_setzero_si512();
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)row_bytes));
}

/** The 4 bytes at @p p in each of 16 rows (lane r: row r): one gather, or 16 loads where it would not fit. */
static inline __m512i words_at_16_rows(const uint8_t *p, size_t row_bytes, __m512i offsets) {
    if (tile_fits_gather(row_bytes)) return _mm512_i32gather_epi32(offsets, (const void *)p, 1);
    int32_t w[16];
    for (int r = 0; r < 16; r++) memcpy(&w[r], p + row_bytes * (size_t)r, 4);
    return _mm512_loadu_si512((const void *)w);
}

/** The fp16 scales of block column @p col in 16 rows, as floats: the low half of the word at each d. */
static inline __m512 scales_of_16_rows(const uint8_t *col, size_t row_bytes, __m512i offsets) {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words_at_16_rows(col, row_bytes, offsets)));
}

/**
 * The fifth bits of Q5_0, for the nibbles as words_of_16_rows() turns them:
 * lane r of @p qh is row r's qh (bit j: weight j). Byte i of lane r of
 * lo[k] gets bit 4k + i, of hi[k] bit 16 + 4k + i. A shuffle copies byte j
 * of each lane's qh into the lane's 4 bytes; a test against 1,2,4,8 (or
 * 16,32,64,128) picks bit 4·(k mod 2) + i for byte i; the bytes whose bit is
 * set get 16 added (their bit 4 was 0: add and or agree).
 */
static inline void add_fifth_bits_512(__m512i lo[4], __m512i hi[4], __m512i qh) {
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i bits_low = _mm512_set1_epi32(0x08040201), bits_high = _mm512_set1_epi32((int)0x80402010u);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        const int byte = 0x01010101 * j; /* byte j of each lane; lanes start at bytes 0, 4, 8, 12 of each 128 bits */
        __m512i spread = _mm512_shuffle_epi8(qh, _mm512_set4_epi32(0x0c0c0c0c + byte, 0x08080808 + byte, 0x04040404 + byte, byte));
        __m512i *half = j < 2 ? lo : hi; /* qh's bytes 0, 1: weights 0..15; bytes 2, 3: 16..31 */
        const int k = 2 * (j % 2);
        half[k] = _mm512_mask_add_epi8(half[k], _mm512_test_epi8_mask(spread, bits_low), half[k], sixteen);
        half[k + 1] = _mm512_mask_add_epi8(half[k + 1], _mm512_test_epi8_mask(spread, bits_high), half[k + 1], sixteen);
    }
}

/** acc + (float)isum · (d_w · d_x), lane by lane: the definition's float term. */
static inline __m512 add_block_term_512(__m512 acc, __m512i isum, __m512 dw, float xd) {
    __m512 scales = _mm512_mul_ps(dw, _mm512_set1_ps(xd));
    return _mm512_add_ps(acc, _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scales));
}

/**
 * Rows 0..15 of a Q4_0 (@p fifth_bit 0) or Q5_0 (1) matrix times 8
 * positions. Lane r of acc[p] is row r's sum for position p, one term per
 * block in block order, as simd_dot_q4_0() and simd_dot_q5_0() add them.
 * Word k of a block's qs holds the nibbles of weights 4k..4k+3 (low) and
 * 16+4k..16+4k+3 (high): they meet the input's words k and 4 + k. The next
 * 16 rows are fetched a slice per block, as chapter 6's kernels fetch them.
 */
TILE_BODY void tile_q4_q5_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in,
                                 int fifth_bit) {
    const size_t block_bytes = fifth_bit ? sizeof(BlockQ5_0) : sizeof(BlockQ4_0);
    const size_t qs_at = fifth_bit ? offsetof(BlockQ5_0, qs) : offsetof(BlockQ4_0, qs);
    const int off = fifth_bit ? 16 : 8;
    const __m512i offsets = offsets_of_16_rows(row_bytes);
    __m512 acc[TILE_Q_POSITIONS_512];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) acc[p] = _mm512_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * block_bytes;
        prefetch_slice(rows + 16 * row_bytes, 16 * block_bytes, b);
        __m512i t[4], lo[4], hi[4];
        words_of_16_rows(t, col + qs_at, row_bytes);
        nibbles_of_words_512(lo, hi, t);
        if (fifth_bit) add_fifth_bits_512(lo, hi, words_at_16_rows(col + offsetof(BlockQ5_0, qh), row_bytes, offsets));
        __m512 dw = scales_of_16_rows(col, row_bytes, offsets);
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) {
            const int8_t *x = in[p].xq[b].qs;
            __m512i isum = _mm512_set1_epi32(-off * in[p].xs[b]);
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
                isum = _mm512_dpbusd_epi32(isum, lo[k], broadcast_word(x + 4 * k));
                isum = _mm512_dpbusd_epi32(isum, hi[k], broadcast_word(x + 16 + 4 * k));
            }
            acc[p] = add_block_term_512(acc[p], isum, dw, in[p].xd[b]);
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) _mm512_storeu_ps(out + 16 * p, acc[p]);
}

static inline void tile_q4_0_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q4_q5_avx512(out, rows, row_bytes, in, n_in, 0);
}
static inline void tile_q5_0_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q4_q5_avx512(out, rows, row_bytes, in, n_in, 1);
}


/** The 32 bytes at @p p (row j) and @p p + four_rows (row j + 4), as the two halves of 512 bits. */
static inline __m512i halves_of_2_rows(const uint8_t *p, size_t four_rows) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + four_rows));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

/**
 * The 32 bytes of each of 16 rows turned around: lane r of t[k] is row r's
 * word k, k = 0..7. Two rows whole per register (z[j]: rows j and j + 4;
 * z[4 + j]: rows j + 8 and j + 12) take half the loads and inserts of
 * words_of_16_rows() called for each half of the block; the transposes
 * inside the 128-bit lanes then leave in a[k] the words k (lanes 0 and 2)
 * and 4 + k (lanes 1 and 3) of rows 0..7, in b[k] those of rows 8..15, and
 * one shuffle of 128-bit lanes per register sorts them into t[k] and
 * t[4 + k] with the rows in order.
 */
static inline void words_of_16_rows_32(__m512i t[8], const uint8_t *p, size_t row_bytes) {
    __m512i z[8], a[4], b[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        z[j] = halves_of_2_rows(p + row_bytes * (size_t)j, 4 * row_bytes);
        z[4 + j] = halves_of_2_rows(p + row_bytes * (size_t)(j + 8), 4 * row_bytes);
    }
    transpose_in_lanes_512(a, z);
    transpose_in_lanes_512(b, z + 4);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_i64x2(a[k], b[k], 0x88);     /* lanes 0, 2 of a[k], then 0, 2 of b[k] */
        t[4 + k] = _mm512_shuffle_i64x2(a[k], b[k], 0xdd); /* lanes 1, 3 of each */
    }
}

/**
 * Rows 0..15 of a Q8_0 matrix times 8 positions, as simd_dot_q8() adds
 * them: the block's 8 words turned around, then the top bit of every byte
 * flipped (u = w + 128).
 */
static inline void tile_q8_0_avx512(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    const __m512i top_bit = _mm512_set1_epi8((char)0x80), offsets = offsets_of_16_rows(row_bytes);
    __m512 acc[TILE_Q_POSITIONS_512];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) acc[p] = _mm512_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ8);
        prefetch_slice(rows + 16 * row_bytes, 16 * sizeof(BlockQ8), b);
        __m512i u[8]; /* u[k]: word k of each row, each byte w + 128 */
        words_of_16_rows_32(u, col + offsetof(BlockQ8, qs), row_bytes);
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) u[k] = _mm512_xor_si512(u[k], top_bit);
        __m512 dw = scales_of_16_rows(col, row_bytes, offsets);
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) {
            const int8_t *x = in[p].xq[b].qs;
            __m512i isum = _mm512_set1_epi32(-128 * in[p].xs[b]);
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) isum = _mm512_dpbusd_epi32(isum, u[k], broadcast_word(x + 4 * k));
            acc[p] = add_block_term_512(acc[p], isum, dw, in[p].xd[b]);
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_512; p++) _mm512_storeu_ps(out + 16 * p, acc[p]);
}

#endif

/* ======================================================================== */
/* x86 (AVX2; VNNI where the CPU has it)                                    */
/* ======================================================================== */
#if SIMD_X86

/*
 * Q4_0 and Q5_0: the rows turned around, 8 per register of 256 bits.
 * Without VNNI the products go through maddubs, which adds pairs of byte
 * products into int16 (saturating, which the sizes here never reach: a Q4_0
 * pair is at most 2·15·128 = 3840, so all 8 words of a block may be summed
 * in int16; a Q5_0 pair 2·31·128 = 7936, so 4 words), then madd with ones,
 * which adds the two int16 of each lane into its int32.
 *
 * Registers (16 of 256 bits): with 8 positions the decoded block and the
 * accumulators alone take 8 + 8. The compiler keeps some of them in memory
 * instead (on the stack, in L1: an operand from there costs a load, not an
 * instruction), and measured, 8 positions beat 4 and 6 all the same: the
 * block's decoding is shared by twice as many positions, and 8 divides the
 * usual batch. (Q8_0 with VNNI below: the same count.)
 */
enum { TILE_Q_POSITIONS_256 = 8 };

/** The 16 bytes at @p p (row j) and @p p + four_rows (row j + 4), as the two 128-bit lanes. */
static inline __m256i lanes_of_2_rows(const uint8_t *p, size_t four_rows) {
    __m128i a = _mm_loadu_si128((const __m128i *)p), b = _mm_loadu_si128((const __m128i *)(p + four_rows));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

/** The transpose of the AVX-512 tiles for 8 rows: lane r of t[k] is row r's word k (lane L of a[j]: row 4L + j). */
static inline void words_of_8_rows(__m256i t[4], const uint8_t *p, size_t row_bytes) {
    __m256i a[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) a[j] = lanes_of_2_rows(p + row_bytes * (size_t)j, 4 * row_bytes);
    __m256i u0 = _mm256_unpacklo_epi32(a[0], a[1]), u1 = _mm256_unpackhi_epi32(a[0], a[1]);
    __m256i u2 = _mm256_unpacklo_epi32(a[2], a[3]), u3 = _mm256_unpackhi_epi32(a[2], a[3]);
    t[0] = _mm256_unpacklo_epi64(u0, u2);
    t[1] = _mm256_unpackhi_epi64(u0, u2);
    t[2] = _mm256_unpacklo_epi64(u1, u3);
    t[3] = _mm256_unpackhi_epi64(u1, u3);
}

/** The low and high nibbles of t[k]: the quants of weights 4k..4k+3 and 16+4k..16+4k+3. */
static inline void nibbles_of_words_256(__m256i lo[4], __m256i hi[4], const __m256i t[4]) {
    const __m256i low4 = _mm256_set1_epi8(15);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        lo[k] = _mm256_and_si256(t[k], low4);
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(t[k], 4), low4);
    }
}

/** The 4 bytes at @p p in each of 8 rows (lane r: row r), by plain loads (gathers are slow on some AVX2 chips). */
static inline __m256i words_at_8_rows(const uint8_t *p, size_t row_bytes) {
    int32_t w[8];
    for (int r = 0; r < 8; r++) memcpy(&w[r], p + row_bytes * (size_t)r, 4);
    return _mm256_loadu_si256((const __m256i *)(const void *)w);
}

/** add_fifth_bits_512() for 8 rows, without mask registers: compare, then and with 16, then or. */
static inline void add_fifth_bits_256(__m256i lo[4], __m256i hi[4], __m256i qh) {
    const __m256i sixteen = _mm256_set1_epi8(16);
    const __m256i bits_low = _mm256_set1_epi32(0x08040201), bits_high = _mm256_set1_epi32((int)0x80402010u);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        const int byte = 0x01010101 * j;
        const __m128i index = _mm_setr_epi32(byte, 0x04040404 + byte, 0x08080808 + byte, 0x0c0c0c0c + byte);
        __m256i spread = _mm256_shuffle_epi8(qh, _mm256_broadcastsi128_si256(index));
        __m256i *half = j < 2 ? lo : hi;
        const int k = 2 * (j % 2);
        __m256i set_low = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits_low), bits_low);
        __m256i set_high = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits_high), bits_high);
        half[k] = _mm256_or_si256(half[k], _mm256_and_si256(set_low, sixteen));
        half[k + 1] = _mm256_or_si256(half[k + 1], _mm256_and_si256(set_high, sixteen));
    }
}

/** A 4-byte word at @p p in all 8 lanes (one load). */
static inline __m256i broadcast_word_256(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/**
 * Lane r: Σu·x over one block of row r, minus @p offset; u the unsigned
 * quants in lo and hi as words_of_8_rows() turns them, each at most @p max_u
 * (15 or 31: how many words int16 may hold, above).
 */
static inline __m256i block_sums_8_rows(const __m256i lo[4], const __m256i hi[4], const int8_t *x, int32_t offset, int max_u) {
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
    (void)max_u;
    __m256i s = _mm256_set1_epi32(-offset);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        s = _mm256_dpbusd_epi32(s, lo[k], broadcast_word_256(x + 4 * k));
        s = _mm256_dpbusd_epi32(s, hi[k], broadcast_word_256(x + 16 + 4 * k));
#else
        s = _mm256_dpbusd_avx_epi32(s, lo[k], broadcast_word_256(x + 4 * k));
        s = _mm256_dpbusd_avx_epi32(s, hi[k], broadcast_word_256(x + 16 + 4 * k));
#endif
    }
    return s;
#else
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i half[2]; /* the int16 pair sums of words 0, 1 (low and high nibbles), and of words 2, 3 */
    _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
        const int k = 2 * h;
        __m256i a = _mm256_add_epi16(_mm256_maddubs_epi16(lo[k], broadcast_word_256(x + 4 * k)),
                                     _mm256_maddubs_epi16(hi[k], broadcast_word_256(x + 16 + 4 * k)));
        __m256i b = _mm256_add_epi16(_mm256_maddubs_epi16(lo[k + 1], broadcast_word_256(x + 4 * k + 4)),
                                     _mm256_maddubs_epi16(hi[k + 1], broadcast_word_256(x + 16 + 4 * k + 4)));
        half[h] = _mm256_add_epi16(a, b);
    }
    __m256i s = max_u < 16 ? _mm256_madd_epi16(_mm256_add_epi16(half[0], half[1]), ones)
                           : _mm256_add_epi32(_mm256_madd_epi16(half[0], ones), _mm256_madd_epi16(half[1], ones));
    return _mm256_sub_epi32(s, _mm256_set1_epi32(offset));
#endif
}

/** Rows 0..7 of a Q4_0 (@p fifth_bit 0) or Q5_0 (1) matrix times 8 positions, as simd_dot_q4_0()/simd_dot_q5_0() add them. */
TILE_BODY void tile_q4_q5_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in,
                               int fifth_bit) {
    const size_t block_bytes = fifth_bit ? sizeof(BlockQ5_0) : sizeof(BlockQ4_0);
    const size_t qs_at = fifth_bit ? offsetof(BlockQ5_0, qs) : offsetof(BlockQ4_0, qs);
    const int off = fifth_bit ? 16 : 8;
    __m256 acc[TILE_Q_POSITIONS_256];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * block_bytes;
        prefetch_slice(rows + 8 * row_bytes, 8 * block_bytes, b);
        __m256i t[4], lo[4], hi[4];
        words_of_8_rows(t, col + qs_at, row_bytes);
        nibbles_of_words_256(lo, hi, t);
        if (fifth_bit) add_fifth_bits_256(lo, hi, words_at_8_rows(col + offsetof(BlockQ5_0, qh), row_bytes));
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) {
            __m256i isum = block_sums_8_rows(lo, hi, in[p].xq[b].qs, off * in[p].xs[b], off * 2 - 1);
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}

static inline void tile_q4_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q4_q5_avx2(out, rows, row_bytes, in, n_in, 0);
}
static inline void tile_q5_0_avx2(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q4_q5_avx2(out, rows, row_bytes, in, n_in, 1);
}

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
/**
 * Rows 0..7 of a Q8_0 matrix times 8 positions with VNNI's 256-bit dpbusd
 * (AVX-VNNI chips without AVX-512): tile_q8_0_avx512() for 8 rows. The
 * block's halves are turned around as Q4_0's qs, their bytes w + 128.
 */
static inline void tile_q8_0_vnni256(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    const __m256i top_bit = _mm256_set1_epi8((char)0x80);
    __m256 acc[TILE_Q_POSITIONS_256];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * sizeof(BlockQ8);
        prefetch_slice(rows + 8 * row_bytes, 8 * sizeof(BlockQ8), b);
        __m256i u[8];
        words_of_8_rows(u, col + offsetof(BlockQ8, qs), row_bytes);
        words_of_8_rows(u + 4, col + offsetof(BlockQ8, qs) + 16, row_bytes);
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) u[k] = _mm256_xor_si256(u[k], top_bit);
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) {
            const int8_t *x = in[p].xq[b].qs;
            __m256i isum = _mm256_set1_epi32(-128 * in[p].xs[b]);
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
                isum = _mm256_dpbusd_epi32(isum, u[k], broadcast_word_256(x + 4 * k));
#else
                isum = _mm256_dpbusd_avx_epi32(isum, u[k], broadcast_word_256(x + 4 * k));
#endif
            }
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(in[p].xd[b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_256; p++) _mm256_storeu_ps(out + 8 * p, acc[p]);
}
#endif

/*
 * Without VNNI, Q8_0 keeps chapter 4's layout (one row per register, folded
 * with hadd): w + 128 cannot go through maddubs (a pair of 255·127 products
 * overflows its int16), so the weights' signs must move onto the input,
 * which differs for every row and position: the turned-around layout would
 * save the folds but pay as many sign instructions.
 */
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

/* ======================================================================== */
/* NEON (AArch64)                                                           */
/* ======================================================================== */
#elif SIMD_NEON

/*
 * The rows turned around, 4 per register of 128 bits. SDOT multiplies
 * signed bytes by signed bytes, so the weights go in signed and need no
 * offset: Q8_0's as they are, Q4_0's and Q5_0's quants minus 8 or 16 (once
 * per block, for all positions). Its by-lane form takes word k straight
 * from the register that holds 16 bytes of the input, so the input is
 * loaded once per block and never broadcast.
 *
 * Registers (32 of 128 bits): a block of 4 rows decoded, 8; one accumulator
 * per position, 8; the scales, the input's two halves and the integer sums
 * in flight. Eight positions leave room for those. Eight rows would need 16
 * registers for the weights and, with 8 positions, 16 accumulators: all 32.
 */
enum { TILE_Q_ROWS_NEON = 4, TILE_Q_POSITIONS_NEON = 8 };

#if defined(__ARM_FEATURE_DOTPROD)
#define DOT_WORD(acc, w, x, lane) vdotq_laneq_s32(acc, w, x, lane)
#else
/**
 * SDOT without the instruction: lane j of the result gets the 4 products of
 * bytes 4j..4j+3 (chapter 5's dot_i8x16 sums other bytes into each lane,
 * which only its full sum may do): int16 products, pairs into int32, then
 * pairs of pairs.
 */
static inline int32x4_t dot_words_by_lane(int32x4_t acc, int8x16_t w, int8x16_t x) {
    int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x))), hi = vpaddlq_s16(vmull_high_s8(w, x));
    return vaddq_s32(acc, vpaddq_s32(lo, hi));
}
#define DOT_WORD(acc, w, x, lane) dot_words_by_lane(acc, w, vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(x), lane)))
#endif

/** acc + w[k]·(word k of @p x) for k = 0..3, lane by lane: 16 products into each row's sum. */
static inline int32x4_t dot_4_words(int32x4_t acc, const int8x16_t w[4], int8x16_t x) {
    acc = DOT_WORD(acc, w[0], x, 0);
    acc = DOT_WORD(acc, w[1], x, 1);
    acc = DOT_WORD(acc, w[2], x, 2);
    return DOT_WORD(acc, w[3], x, 3);
}
#undef DOT_WORD

/**
 * 16 bytes of each of 4 rows (from @p p, @p row_bytes apart), turned around:
 * lane r of t[k] is row r's word k. A 4×4 transpose of words: trn of 32-bit
 * pairs, then of 64-bit pairs.
 */
static inline void words_of_4_rows(uint8x16_t t[4], const uint8_t *p, size_t row_bytes) {
    int32x4_t a0 = vreinterpretq_s32_u8(vld1q_u8(p)), a1 = vreinterpretq_s32_u8(vld1q_u8(p + row_bytes));
    int32x4_t a2 = vreinterpretq_s32_u8(vld1q_u8(p + 2 * row_bytes)), a3 = vreinterpretq_s32_u8(vld1q_u8(p + 3 * row_bytes));
    int64x2_t b0 = vreinterpretq_s64_s32(vtrn1q_s32(a0, a1)), b1 = vreinterpretq_s64_s32(vtrn2q_s32(a0, a1));
    int64x2_t b2 = vreinterpretq_s64_s32(vtrn1q_s32(a2, a3)), b3 = vreinterpretq_s64_s32(vtrn2q_s32(a2, a3));
    t[0] = vreinterpretq_u8_s64(vtrn1q_s64(b0, b2));
    t[1] = vreinterpretq_u8_s64(vtrn1q_s64(b1, b3));
    t[2] = vreinterpretq_u8_s64(vtrn2q_s64(b0, b2));
    t[3] = vreinterpretq_u8_s64(vtrn2q_s64(b1, b3));
}

/** The fp16 scales at @p p in 4 rows, as floats. */
static inline float32x4_t scales_of_4_rows(const uint8_t *p, size_t row_bytes) {
    uint16_t h[4];
    for (int r = 0; r < 4; r++) memcpy(&h[r], p + row_bytes * (size_t)r, 2);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/** The 4 bytes at @p p in 4 rows (lane r: row r). */
static inline uint8x16_t words_at_4_rows(const uint8_t *p, size_t row_bytes) {
    uint32_t w[4];
    for (int r = 0; r < 4; r++) memcpy(&w[r], p + row_bytes * (size_t)r, 4);
    return vreinterpretq_u8_u32(vld1q_u32(w));
}

/**
 * The signed quants of t[k]'s nibbles (weights 4k..4k+3 in lo[k],
 * 16+4k..16+4k+3 in hi[k]), minus @p off. For Q5_0 (@p qh not NULL) first
 * with their fifth bits, as add_fifth_bits_512() does on x86: a table lookup
 * copies byte j of each row's qh into the row's 4 bytes, a test picks one
 * bit per byte, and the bytes whose bit is set get 16.
 */
static inline void quants_of_words_neon(int8x16_t lo[4], int8x16_t hi[4], const uint8x16_t t[4], const uint8x16_t *qh, int off) {
    const uint8x16_t low4 = vdupq_n_u8(15);
    uint8x16_t ulo[4], uhi[4];
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        ulo[k] = vandq_u8(t[k], low4);
        uhi[k] = vshrq_n_u8(t[k], 4);
    }
    if (qh) {
        const uint8x16_t sixteen = vdupq_n_u8(16);
        const uint8x16_t bits_low = vreinterpretq_u8_u32(vdupq_n_u32(0x08040201u));
        const uint8x16_t bits_high = vreinterpretq_u8_u32(vdupq_n_u32(0x80402010u));
        const uint8x16_t lane_starts = vcombine_u8(vcreate_u8(0x0404040400000000ull), vcreate_u8(0x0c0c0c0c08080808ull));
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
            uint8x16_t spread = vqtbl1q_u8(*qh, vaddq_u8(lane_starts, vdupq_n_u8((uint8_t)j)));
            uint8x16_t *half = j < 2 ? ulo : uhi;
            const int k = 2 * (j % 2);
            half[k] = vorrq_u8(half[k], vandq_u8(vtstq_u8(spread, bits_low), sixteen));
            half[k + 1] = vorrq_u8(half[k + 1], vandq_u8(vtstq_u8(spread, bits_high), sixteen));
        }
    }
    const int8x16_t offset = vdupq_n_s8((int8_t)off);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        lo[k] = vsubq_s8(vreinterpretq_s8_u8(ulo[k]), offset);
        hi[k] = vsubq_s8(vreinterpretq_s8_u8(uhi[k]), offset);
    }
}

/**
 * Rows 0..3 times 8 positions, for @p type Q_Q8_0 (words 0..7 of the
 * block's 32 bytes), Q_Q4_0 or Q_Q5_0 (the nibbles' words 0..3, low then
 * high: they meet the input's words k and 4 + k). Lane r of acc[p] is row
 * r's sum for position p, (float)isum · (d_w · d_x) block after block, as
 * chapter 5's kernels add it.
 */
TILE_BODY void tile_q_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in, int type) {
    const size_t block_bytes = type == Q_Q8_0 ? sizeof(BlockQ8) : type == Q_Q5_0 ? sizeof(BlockQ5_0) : sizeof(BlockQ4_0);
    const size_t qs_at = type == Q_Q8_0 ? offsetof(BlockQ8, qs) : type == Q_Q5_0 ? offsetof(BlockQ5_0, qs) : offsetof(BlockQ4_0, qs);
    float32x4_t acc[TILE_Q_POSITIONS_NEON];
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_NEON; p++) acc[p] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_in / QK; b++) {
        const uint8_t *col = rows + (size_t)b * block_bytes;
        uint8x16_t t[8];
        int8x16_t w[8]; /* w[k]: what the input's word k meets */
        words_of_4_rows(t, col + qs_at, row_bytes);
        if (type == Q_Q8_0) {
            words_of_4_rows(t + 4, col + qs_at + 16, row_bytes);
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) w[k] = vreinterpretq_s8_u8(t[k]);
        } else if (type == Q_Q5_0) {
            uint8x16_t qh = words_at_4_rows(col + offsetof(BlockQ5_0, qh), row_bytes);
            quants_of_words_neon(w, w + 4, t, &qh, 16);
        } else {
            quants_of_words_neon(w, w + 4, t, NULL, 8);
        }
        float32x4_t dw = scales_of_4_rows(col, row_bytes);
        _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_NEON; p++) {
            const int8_t *x = in[p].xq[b].qs;
            int32x4_t isum = dot_4_words(dot_4_words(vdupq_n_s32(0), w, vld1q_s8(x)), w + 4, vld1q_s8(x + 16));
            acc[p] = vaddq_f32(acc[p], vmulq_f32(vcvtq_f32_s32(isum), vmulq_n_f32(dw, in[p].xd[b])));
        }
    }
    _Pragma("GCC unroll 8") for (int p = 0; p < TILE_Q_POSITIONS_NEON; p++) vst1q_f32(out + 4 * p, acc[p]);
}

static inline void tile_q8_0_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q_neon(out, rows, row_bytes, in, n_in, Q_Q8_0);
}
static inline void tile_q5_0_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q_neon(out, rows, row_bytes, in, n_in, Q_Q5_0);
}
static inline void tile_q4_0_neon(float *out, const uint8_t *rows, size_t row_bytes, const TileInput *in, int n_in) {
    tile_q_neon(out, rows, row_bytes, in, n_in, Q_Q4_0);
}

#endif

/** The SIMD tile of this build for Q8_0, Q5_0 or Q4_0 weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_q8_0(int type) {
#if SIMD_AVX512 && defined(__AVX512VNNI__)
    if (type == Q_Q4_0) return (Tile){TILE_Q_ROWS_512, TILE_Q_POSITIONS_512, tile_q4_0_avx512};
    if (type == Q_Q5_0) return (Tile){TILE_Q_ROWS_512, TILE_Q_POSITIONS_512, tile_q5_0_avx512};
    if (type == Q_Q8_0) return (Tile){TILE_Q_ROWS_512, TILE_Q_POSITIONS_512, tile_q8_0_avx512};
#elif SIMD_X86
    if (type == Q_Q4_0) return (Tile){8, TILE_Q_POSITIONS_256, tile_q4_0_avx2};
    if (type == Q_Q5_0) return (Tile){8, TILE_Q_POSITIONS_256, tile_q5_0_avx2};
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
    if (type == Q_Q8_0) return (Tile){8, TILE_Q_POSITIONS_256, tile_q8_0_vnni256};
#else
    if (type == Q_Q8_0) return (Tile){8, TILE_Q8_0_POSITIONS, tile_q8_0_avx2};
#endif
#elif SIMD_NEON
    if (type == Q_Q4_0) return (Tile){TILE_Q_ROWS_NEON, TILE_Q_POSITIONS_NEON, tile_q4_0_neon};
    if (type == Q_Q5_0) return (Tile){TILE_Q_ROWS_NEON, TILE_Q_POSITIONS_NEON, tile_q5_0_neon};
    if (type == Q_Q8_0) return (Tile){TILE_Q_ROWS_NEON, TILE_Q_POSITIONS_NEON, tile_q8_0_neon};
#endif
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

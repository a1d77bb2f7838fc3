/* Spike (issue 15): an 8-row x P-position Q4_0 tile vs chapter 6's 8-row kernel per position.
 * Bit-exactness check and throughput. Not part of the book. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "quants.h"
#include "util.h"

#ifndef ROWS_BLOCK
#define ROWS_BLOCK 64
#endif
#ifndef P
#define P 4
#endif

static void tile_q4_0(float out[P][8], const BlockQ4_0 *w, const BlockQ8 *const *x, const float *const *xd,
                      const int16_t *const *xs, int nb) {
    const size_t row_bytes = (size_t)nb * sizeof(BlockQ4_0);
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc[P];
    for (int p = 0; p < P; p++) acc[p] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *col = (const uint8_t *)(w + b);
        __m256i lo[4], hi[4];
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            __m256i two = q4_0_rows_k_and_k4(col + row_bytes * (size_t)k, 4 * row_bytes);
            lo[k] = _mm256_and_si256(two, low4);
            hi[k] = _mm256_and_si256(_mm256_srli_epi16(two, 4), low4);
        }
        __m256 dw = _mm256_cvtph_ps(halves_of_8_rows(col, row_bytes));
        _Pragma("GCC unroll 8") for (int p = 0; p < P; p++) {
            __m256i x_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[p][b].qs));
            __m256i x_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[p][b].qs + 16)));
            __m256i s[4];
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
                s[k] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo[k], x_lo), hi[k], x_hi);
#else
                __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[k], x_lo), _mm256_maddubs_epi16(hi[k], x_hi));
                s[k] = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
#endif
            }
            __m256i rows = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            __m256i isum = _mm256_sub_epi32(rows, _mm256_set1_epi32(xs[p][b] * 8));
            __m256 scales = _mm256_mul_ps(dw, _mm256_set1_ps(xd[p][b]));
            acc[p] = _mm256_add_ps(acc[p], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scales));
        }
    }
    for (int p = 0; p < P; p++) _mm256_storeu_ps(out[p], acc[p]);
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 2048, cols = argc > 2 ? atoi(argv[2]) : 768, npos = argc > 3 ? atoi(argv[3]) : 128;
    int nb = cols / QK;
    srand(1);
    float *wf = malloc(sizeof(float) * (size_t)rows * cols), *xf = malloc(sizeof(float) * (size_t)npos * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)npos * cols; i++) xf[i] = (float)rand() / RAND_MAX - 0.5f;
    BlockQ4_0 *w = malloc(sizeof(BlockQ4_0) * (size_t)rows * nb);
    for (int r = 0; r < rows; r++) quantize_q4_0(wf + (size_t)r * cols, w + (size_t)r * nb, cols);
    BlockQ8 *xq = malloc(sizeof(BlockQ8) * (size_t)npos * nb);
    float *xd = malloc(sizeof(float) * (size_t)npos * nb);
    int16_t *xs = malloc(sizeof(int16_t) * (size_t)npos * nb);
    for (int p = 0; p < npos; p++) {
        simd_quantize_q8(xq + (size_t)p * nb, xf + (size_t)p * cols, cols);
        for (int b = 0; b < nb; b++) {
            int s = 0;
            for (int j = 0; j < QK; j++) s += xq[(size_t)p * nb + b].qs[j];
            xd[(size_t)p * nb + b] = fp16_to_float(xq[(size_t)p * nb + b].d);
            xs[(size_t)p * nb + b] = (int16_t)s;
        }
    }
    float *ref = malloc(sizeof(float) * (size_t)npos * rows), *got = malloc(sizeof(float) * (size_t)npos * rows);
    double best_ref = 1e9, best_tile = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int p = 0; p < npos; p++)
            for (int r = 0; r < rows; r += 8)
                simd_dot_q4_0_8rows(ref + (size_t)p * rows + r, w + (size_t)r * nb, xq + (size_t)p * nb, xd + (size_t)p * nb,
                                    xs + (size_t)p * nb, nb);
        double t1 = now();
        /* cache blocking: a block of ROWS_BLOCK rows stays in L2 while every position group passes */
        for (int r0 = 0; r0 < rows; r0 += ROWS_BLOCK)
        for (int p = 0; p + P <= npos; p += P) {
            const BlockQ8 *xp[P]; const float *dp[P]; const int16_t *sp[P];
            for (int q = 0; q < P; q++) { xp[q] = xq + (size_t)(p + q) * nb; dp[q] = xd + (size_t)(p + q) * nb; sp[q] = xs + (size_t)(p + q) * nb; }
            for (int r = r0; r < rows && r < r0 + ROWS_BLOCK; r += 8) {
                float o[P][8];
                tile_q4_0(o, w + (size_t)r * nb, xp, dp, sp, nb);
                for (int q = 0; q < P; q++) memcpy(got + (size_t)(p + q) * rows + r, o[q], sizeof o[q]);
            }
        }
        double t2 = now();
        if (t1 - t0 < best_ref) best_ref = t1 - t0;
        if (t2 - t1 < best_tile) best_tile = t2 - t1;
    }
    int same = memcmp(ref, got, sizeof(float) * (size_t)(npos / P * P) * rows) == 0;
    double flops = 2.0 * rows * cols * npos;
    printf("P=%d rows %d cols %d positions %d: bit-exact %s; 8-row kernel per position %.2f GFLOP/s, tile %.2f GFLOP/s (%.2fx)\n",
           P, rows, cols, npos, same ? "yes" : "NO", flops / best_ref / 1e9, flops / best_tile / 1e9, best_ref / best_tile);
    return !same;
}

/**
 * @file fp16.h
 * @brief IEEE half precision <-> float, in portable C (introduced by chapter 3).
 *
 * Quantized blocks store their scale as a 16-bit IEEE float: 1 sign bit, 5
 * exponent bits (bias 15), 10 fraction bits. Converting to float is exact;
 * converting from float rounds to the nearest half, ties to even, which is
 * what the F16C instruction and llama.cpp's quantizers do. Chapters 3, 4 and
 * 5 all need these two functions unchanged, so they live here.
 */
#ifndef LLAMABOOK_FP16_H
#define LLAMABOOK_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t fp16_float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float fp16_bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/** The float a half holds (exact). */
static inline float fp16_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    if (exponent == 0x1f) return fp16_bits_float(sign | 0x7f800000u | fraction << 13); /* inf, NaN */
    if (exponent == 0) {
        /* zero or subnormal: fraction * 2^-24, exact in a float */
        float v = (float)fraction * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return fp16_bits_float(sign | (exponent + 112) << 23 | fraction << 13); /* rebias 15 -> 127 */
}

/** The nearest half to @p f (ties to even); overflow gives infinity. */
static inline uint16_t fp16_from_float(float f) {
    uint32_t u = fp16_float_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0); /* inf, NaN */
    if (abs >= 0x477ff000u) return sign | 0x7c00; /* rounds past 65504: infinity */
    if (abs < 0x38800000u) {
        /* below 2^-14: a subnormal half, in units of 2^-24; the float
         * addition rounds to nearest even for us */
        float magnitude = fp16_bits_float(abs);
        float scaled = magnitude * 16777216.0f; /* exact: a power of two */
        uint32_t units = (uint32_t)(scaled + 8388608.0f) - 8388608u; /* round half to even */
        return sign | (uint16_t)units;
    }
    /* normal: drop 13 fraction bits, rounding half to even */
    uint32_t rebias = abs - (112u << 23);
    uint32_t round = 0xfffu + ((rebias >> 13) & 1u);
    return sign | (uint16_t)((rebias + round) >> 13);
}

#endif

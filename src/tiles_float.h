/**
 * @file tiles_float.h
 * @brief Chapter 7's SIMD tiles for F32 and F16 weights (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 */
#ifndef LLAMABOOK_TILES_FLOAT_H
#define LLAMABOOK_TILES_FLOAT_H

/** The SIMD tile of this build for F32 or F16 weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_float(int type) {
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

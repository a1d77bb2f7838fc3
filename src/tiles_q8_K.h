/**
 * @file tiles_q8_K.h
 * @brief Chapter 7's SIMD tiles for Q4_K and Q6_K weights (Q8_K inputs) (included by src/tiles.h,
 * whose comment gives the rule: each output bit for bit chapter 5's
 * one-position kernel).
 */
#ifndef LLAMABOOK_TILES_Q8_K_H
#define LLAMABOOK_TILES_Q8_K_H

/** The SIMD tile of this build for Q4_K or Q6_K weights; rows = 0 for any other type, or where there is none. */
static inline Tile tile_simd_q8_K(int type) {
    (void)type;
    return (Tile){0, 0, NULL};
}

#endif

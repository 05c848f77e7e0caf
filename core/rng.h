/* core/rng.h - counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * Every draw is addressed, not sequential: element i of stream s under seed k is a pure function
 * of (k, s, i), so any partition of the work over ranks or threads, and any resume point, gives
 * the same numbers. Philox is run with key = seed and counter = (i / 4, stream); each block of 4
 * 32-bit outputs serves elements 4j .. 4j+3. Normal samples use Box-Muller on pairs of lanes.
 */
#ifndef REELFARM_CORE_RNG_H
#define REELFARM_CORE_RNG_H

#include <stdint.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

/* Purposes of draws: part of every stream id, so streams of different uses never coincide. */
enum rng_purpose {
    RNG_PURPOSE_NOISE = 0x6e6f6973,    /* "nois": initial latents of a chunk (chunk, 0, 0) */
    RNG_PURPOSE_ADDNOISE = 0x61646e73, /* "adns": add-noise conditioning of prefix frames (chunk, row, 0) */
    RNG_PURPOSE_TEST = 0x74657374,     /* "test" */
};

/* One Philox4x32-10 block: out = philox(counter, key). */
void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* n uniform floats in [0, 1) (24-bit resolution) for elements [first, first + n) of a stream. */
void rng_uniform_f32(float *out, int64_t n, uint64_t seed, uint64_t stream, int64_t first);
/* n standard normal floats for elements [first, first + n) of a stream. */
void rng_normal_f32(float *out, int64_t n, uint64_t seed, uint64_t stream, int64_t first);

/* A stream id from a purpose tag and up to three coordinates (chunk, row, ...); a fixed hash. */
uint64_t rng_stream_id(uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);

RF_END_DECLS

#endif /* REELFARM_CORE_RNG_H */

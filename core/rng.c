/* core/rng.c - Philox4x32-10 and the uniform / normal fills built on it. */
#include "core/rng.h"

#include <math.h>

enum { PHILOX_ROUNDS = 10 };
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    philox4x32_10(ctr, key, out);
}

/* Uniform in [0, 1) with 24 bits. */
static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

void rng_uniform_f32(float *out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) {
    for (int64_t i = 0; i < n;) {
        int64_t e = first + i;
        uint32_t r[4];
        rng_block(seed, stream, (uint64_t)(e / 4), r);
        for (int lane = (int)(e % 4); lane < 4 && i < n; lane++, i++) out[i] = u32_to_unit(r[lane]);
    }
}

void rng_normal_f32(float *out, int64_t n, uint64_t seed, uint64_t stream, int64_t first) {
    /* Lanes (0,1) give elements 4j and 4j+1, lanes (2,3) give 4j+2 and 4j+3. The radius uses
     * u in (0, 1] so log never sees 0; computed in double so the result does not depend on libm's
     * float rounding. */
    for (int64_t i = 0; i < n;) {
        int64_t e = first + i;
        uint32_t r[4];
        rng_block(seed, stream, (uint64_t)(e / 4), r);
        double z[4];
        for (int p = 0; p < 2; p++) {
            double u1 = ((double)(r[2 * p] >> 8) + 1.0) / 16777216.0;
            double u2 = (double)(r[2 * p + 1] >> 8) / 16777216.0;
            double rad = sqrt(-2.0 * log(u1));
            double th = 6.283185307179586 * u2;
            z[2 * p] = rad * cos(th);
            z[2 * p + 1] = rad * sin(th);
        }
        for (int lane = (int)(e % 4); lane < 4 && i < n; lane++, i++) out[i] = (float)z[lane];
    }
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t rng_stream_id(uint32_t purpose, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = mix64(0x7265656c6661726dull ^ purpose);
    h = mix64(h ^ a);
    h = mix64(h ^ (b + 0x9e3779b97f4a7c15ull));
    h = mix64(h ^ (c + 0x632be59bd9b4e019ull));
    return h;
}

/* core/dtype.h - element types and the float conversions every layer needs.
 *
 * bf16 and f16 are stored as uint16_t bit patterns. f32 -> bf16 rounds to nearest even, as
 * tensor.to(torch.bfloat16) does (spec section 0); NaN stays NaN (quiet) and does not round
 * into infinity. f16 conversions follow IEEE 754 binary16 with subnormals, also rounding to
 * nearest even.
 */
#ifndef REELFARM_CORE_DTYPE_H
#define REELFARM_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum dtype {
    DTYPE_F32 = 0,
    DTYPE_BF16,
    DTYPE_F16,
    DTYPE_F64,
    DTYPE_I64,
    DTYPE_I32,
    DTYPE_U8,
    DTYPE_COUNT
};

size_t dtype_size(enum dtype dt);
/* Lower-case name: "f32", "bf16", ... */
const char *dtype_name(enum dtype dt);
/* Parse "f32"/"float32"/"bf16"/"bfloat16"/"f16"/"float16"; returns -1 if unknown. */
int dtype_parse(const char *s);

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                             /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (absu < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign;          /* below half the smallest subnormal */
        uint32_t man = (absu & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absu >> 23); /* 14..24 */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* Convert n elements of src (F32, BF16 or F16) to float32. */
void dtype_to_f32(float *dst, const void *src, enum dtype src_dt, size_t n);
/* Convert n float32 elements to dst_dt (F32, BF16 or F16). */
void dtype_from_f32(void *dst, enum dtype dst_dt, const float *src, size_t n);

RF_END_DECLS

#endif /* REELFARM_CORE_DTYPE_H */

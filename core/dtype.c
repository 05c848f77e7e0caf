/* core/dtype.c - dtype names and bulk conversions. */
#include "core/dtype.h"

#include <strings.h>

#include "core/error.h"

size_t dtype_size(enum dtype dt) {
    switch (dt) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_F16: return 2;
    case DTYPE_F64: return 8;
    case DTYPE_I64: return 8;
    case DTYPE_I32: return 4;
    case DTYPE_U8: return 1;
    default: FATAL("unknown dtype %d", (int)dt);
    }
}

const char *dtype_name(enum dtype dt) {
    switch (dt) {
    case DTYPE_F32: return "f32";
    case DTYPE_BF16: return "bf16";
    case DTYPE_F16: return "f16";
    case DTYPE_F64: return "f64";
    case DTYPE_I64: return "i64";
    case DTYPE_I32: return "i32";
    case DTYPE_U8: return "u8";
    default: return "?";
    }
}

int dtype_parse(const char *s) {
    if (!strcasecmp(s, "f32") || !strcasecmp(s, "float32") || !strcasecmp(s, "fp32")) return DTYPE_F32;
    if (!strcasecmp(s, "bf16") || !strcasecmp(s, "bfloat16")) return DTYPE_BF16;
    if (!strcasecmp(s, "f16") || !strcasecmp(s, "float16") || !strcasecmp(s, "fp16")) return DTYPE_F16;
    return -1;
}

void dtype_to_f32(float *dst, const void *src, enum dtype src_dt, size_t n) {
    switch (src_dt) {
    case DTYPE_F32: memcpy(dst, src, n * sizeof(float)); return;
    case DTYPE_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        return;
    }
    case DTYPE_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
        return;
    }
    default: FATAL("cannot convert %s to f32", dtype_name(src_dt));
    }
}

void dtype_from_f32(void *dst, enum dtype dst_dt, const float *src, size_t n) {
    switch (dst_dt) {
    case DTYPE_F32: memcpy(dst, src, n * sizeof(float)); return;
    case DTYPE_BF16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
        return;
    }
    case DTYPE_F16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
        return;
    }
    default: FATAL("cannot convert f32 to %s", dtype_name(dst_dt));
    }
}

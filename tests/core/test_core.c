/* tests/core/test_core.c - core/: dtype conversions, tensor descriptors, arenas, Philox RNG,
 * error messages and the log sink. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "tests/common/test_util.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16(void) {
    T_CHECK(f32_to_bf16(1.0f) == 0x3f80, "1.0");
    T_CHECK(f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80, "tie rounds to even (down)");
    T_CHECK(f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82, "tie rounds to even (up)");
    T_CHECK(f32_to_bf16(bits_f32(0x3f808001u)) == 0x3f81, "above the tie rounds up");
    T_CHECK(f32_to_bf16(-2.5f) == 0xc020, "-2.5");
    T_CHECK(f32_to_bf16(INFINITY) == 0x7f80, "inf stays inf");
    T_CHECK(f32_to_bf16(bits_f32(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf, as torch");
    uint16_t nan16 = f32_to_bf16(NAN);
    T_CHECK(isnan(bf16_to_f32(nan16)), "NaN stays NaN (got %04x)", nan16);
    T_CHECK(isnan(bf16_to_f32(f32_to_bf16(bits_f32(0x7f800001u)))), "signalling NaN does not round to inf");
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (f32_to_bf16(f) != h) bad++;
    }
    T_CHECK(bad == 0, "%d bf16 values do not round-trip", bad);
}

static void test_f16(void) {
    T_CHECK(f32_to_f16(1.0f) == 0x3c00, "1.0");
    T_CHECK(f32_to_f16(65504.0f) == 0x7bff, "max half");
    T_CHECK(f32_to_f16(65519.0f) == 0x7bff, "below the overflow tie");
    T_CHECK(f32_to_f16(65520.0f) == 0x7c00, "overflow tie rounds to inf");
    T_CHECK(f32_to_f16(ldexpf(1.0f, -24)) == 0x0001, "smallest subnormal");
    T_CHECK(f32_to_f16(ldexpf(1.0f, -25)) == 0x0000, "half the smallest subnormal ties to zero");
    T_CHECK(f32_to_f16(3.0f * ldexpf(1.0f, -25)) == 0x0002, "1.5 ulp subnormal ties to even");
    T_CHECK(f32_to_f16(-0.0f) == 0x8000, "negative zero");
    T_CHECK(f16_to_f32(0x0001) == ldexpf(1.0f, -24), "subnormal decode");
    T_CHECK(f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24), "largest subnormal decode");
    T_CHECK(isnan(f16_to_f32(f32_to_f16(NAN))), "NaN");
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (f32_to_f16(f) != h) bad++;
    }
    T_CHECK(bad == 0, "%d f16 values do not round-trip", bad);
    /* rounding of non-representable values: nearest, ties to even, against a double computation */
    int wrong = 0;
    for (int i = 0; i < 200000; i++) {
        float x = ldexpf((float)(i * 7919 % 100003) / 100003.0f + 0.5f, i % 40 - 25) * (i % 2 ? -1.0f : 1.0f);
        uint16_t h = f32_to_f16(x);
        double got = f16_to_f32(h);
        double up = f16_to_f32((uint16_t)(h + 1)), dn = f16_to_f32((uint16_t)(h - 1));
        if ((h & 0x7fff) != 0 && (h & 0x7fff) < 0x7bff && (fabs(up - x) < fabs(got - x) || fabs(dn - x) < fabs(got - x)))
            wrong++;
    }
    T_CHECK(wrong == 0, "%d values not rounded to the nearest half", wrong);
}

static void test_tensor(void) {
    float buf[2 * 3 * 4];
    struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, buf, 3, (int64_t[]){2, 3, 4});
    T_CHECK(t.stride[0] == 12 && t.stride[1] == 4 && t.stride[2] == 1, "contiguous strides");
    T_CHECK(tensor_numel(&t) == 24 && tensor_nbytes(&t) == 96, "numel/nbytes");
    struct tensor n = tensor_narrow(&t, 2, 1, 2);
    T_CHECK(n.shape[2] == 2 && n.data == buf + 1 && !tensor_is_contiguous(&n), "narrow");
    struct tensor r = tensor_row(&t, 1);
    T_CHECK(r.ndim == 2 && r.shape[0] == 3 && r.data == buf + 12, "row");
    struct tensor v = tensor_reshape(&t, 2, (int64_t[]){6, 4});
    T_CHECK(v.shape[0] == 6 && v.stride[0] == 4, "reshape");
    T_CHECK(tensor_offset(&t, (int64_t[]){1, 2, 3}) == 23, "offset");
    /* 64-bit extents: a 720P 14B activation [111600, 13824] has more than 2^31 elements */
    struct tensor big = tensor_make(DTYPE_F32, DEVICE_CPU, NULL, 2, (int64_t[]){111600, 13824});
    T_CHECK(tensor_numel(&big) == 1542758400LL && tensor_nbytes(&big) == 6171033600ULL, "64-bit numel");
    struct tensor huge = tensor_make(DTYPE_BF16, DEVICE_CPU, NULL, 3, (int64_t[]){40, 111600, 5120});
    T_CHECK(tensor_offset(&huge, (int64_t[]){39, 111599, 5119}) == 40LL * 111600 * 5120 - 1, "64-bit offset");
    char s[64];
    T_CHECK(strcmp(tensor_shape_str(s, sizeof s, &t), "[2, 3, 4]") == 0, "shape string %s", s);
}

static void test_arena(void) {
    struct arena m, a;
    arena_init_measure(&m, "measure");
    void *p0 = arena_alloc(&m, 10), *p1 = arena_alloc(&m, 300);
    T_CHECK(p0 == NULL && p1 == NULL && m.used == 256 + 512, "measuring arena counts rounded sizes (%zu)", m.used);
    T_REQUIRE(arena_init(&a, "real", m.used) == ERR_OK, "arena_init");
    char *q0 = arena_alloc(&a, 10), *q1 = arena_alloc(&a, 300);
    T_CHECK(((uintptr_t)q0 % 256) == 0 && ((uintptr_t)q1 % 256) == 0, "256-byte alignment");
    T_CHECK(q1 - q0 == 256 && a.used == m.used, "same layout as measured");
    T_CHECK(q0[0] == 0 && q1[299] == 0, "zeroed at allocation");
    size_t mark = arena_mark(&a);
    arena_reset(&a);
    T_CHECK(a.used == 0 && a.peak == mark, "reset keeps the peak");
    arena_free(&a);
}

static void test_philox(void) {
    /* Known-answer vectors of Philox4x32-10 (Random123 kat_vectors). */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        philox4x32_10(kat[i], kat[i] + 4, out);
        T_CHECK(!memcmp(out, kat[i] + 6, sizeof out), "Philox KAT %d: got %08x %08x %08x %08x", i, out[0], out[1],
                out[2], out[3]);
    }
}

static void test_rng_stats(void) {
    enum { N = 1 << 20 };
    static float a[N], b[N], c[N];
    rng_normal_f32(a, N, 1234, 7, 0);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) s += a[i], s2 += (double)a[i] * a[i];
    double mean = s / N, var = s2 / N - mean * mean;
    T_CHECK(fabs(mean) < 5.0 / sqrt(N), "normal mean %g", mean);
    T_CHECK(fabs(var - 1.0) < 0.01, "normal variance %g", var);
    int beyond4 = 0;
    for (int i = 0; i < N; i++) beyond4 += fabsf(a[i]) > 4.0f;
    T_CHECK(beyond4 > 20 && beyond4 < 150, "tail count beyond 4 sigma %d (expected ~66)", beyond4);
    /* neighbouring streams and neighbouring elements are uncorrelated */
    rng_normal_f32(b, N, 1234, 8, 0);
    double cab = 0, cnext = 0;
    for (int i = 0; i < N; i++) cab += (double)a[i] * b[i];
    for (int i = 0; i + 1 < N; i++) cnext += (double)a[i] * a[i + 1];
    T_CHECK(fabs(cab / N) < 5.0 / sqrt(N), "stream correlation %g", cab / N);
    T_CHECK(fabs(cnext / N) < 5.0 / sqrt(N), "lag-1 correlation %g", cnext / N);
    /* addressed draws: any partition gives the same numbers */
    rng_normal_f32(c, 1001, 1234, 7, 0);
    rng_normal_f32(c + 1001, N - 1001, 1234, 7, 1001);
    T_CHECK(!memcmp(a, c, sizeof a), "split fill differs from one fill");
    rng_normal_f32(c, N, 1235, 7, 0);
    T_CHECK(memcmp(a, c, sizeof a) != 0, "different seeds give the same numbers");
    float u[4096];
    rng_uniform_f32(u, 4096, 3, 3, 0);
    int in_range = 1;
    double us = 0;
    for (int i = 0; i < 4096; i++) in_range &= u[i] >= 0.0f && u[i] < 1.0f, us += u[i];
    T_CHECK(in_range && fabs(us / 4096 - 0.5) < 0.02, "uniform in [0,1) with mean %g", us / 4096);
    T_CHECK(rng_stream_id(1, 2, 3, 4) != rng_stream_id(1, 2, 4, 3), "stream ids depend on coordinate order");
}

static char captured[4][512];
static int n_captured;
static void sink(enum log_level level, const char *line, void *user) {
    (void)level, (void)user;
    if (n_captured < 4) snprintf(captured[n_captured++], sizeof captured[0], "%s", line);
}

static void test_errors_and_log(void) {
    err_clear();
    int rc = err_set(ERR_SHAPE, "tensor '%s': expected %d", "w", 3);
    T_CHECK(rc == ERR_SHAPE && err_last_code() == ERR_SHAPE, "err_set returns its code");
    err_wrap("%s: ", "model.safetensors");
    T_CHECK(!strcmp(err_message(), "model.safetensors: tensor 'w': expected 3"), "err_wrap: %s", err_message());
    T_CHECK(!strcmp(err_code_name(ERR_UNEXPECTED), "unexpected"), "code names");
    log_set_sink(sink, NULL);
    log_set_level(LOG_LEVEL_INFO);
    LOG_INFO("hello %d", 42);
    LOG_DEBUG("hidden");
    log_set_sink(NULL, NULL);
    T_CHECK(n_captured == 1 && strstr(captured[0], "[INFO] hello 42") && strstr(captured[0], "rank 0/1"),
            "log line: %s", captured[0]);
}

int main(void) {
    test_bf16();
    test_f16();
    test_tensor();
    test_arena();
    test_philox();
    test_rng_stats();
    test_errors_and_log();
    return t_summary(__FILE__);
}

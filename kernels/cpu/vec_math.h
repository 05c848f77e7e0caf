/* kernels/cpu/vec_math.h - branch-free float math that the compiler vectorises.
 *
 * libm's expf/tanhf are scalar calls that would dominate softmax and GELU. These versions are
 * plain arithmetic (Cody-Waite range reduction and a degree-6 polynomial, as in Cephes expf), so
 * gcc -O3 turns loops over them into AVX2 code. Accuracy: vm_expf within 2 ulp over its range
 * (tested in tests/kernels/test_ops_cpu.c against exp() in double).
 */
#ifndef REELFARM_KERNELS_CPU_VEC_MATH_H
#define REELFARM_KERNELS_CPU_VEC_MATH_H

#include <stdint.h>

/* e^x for x in [-87.3, 88]; inputs outside are clamped (the result saturates at the ends). */
static inline float vm_expf(float x) {
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln2) with the 1.5 * 2^23 trick (round to nearest in the FPU's mode). */
    const float shifter = 12582912.0f;
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } s;
    s.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * s.f;
}

/* tanh(x) = 1 - 2 / (e^{2x} + 1), exact at the saturated ends; absolute error ~1e-7. */
static inline float vm_tanhf(float x) { return 1.0f - 2.0f / (vm_expf(2.0f * x) + 1.0f); }

/* x * sigmoid(x). */
static inline float vm_siluf(float x) { return x / (1.0f + vm_expf(-x)); }

/* torch GELU(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static inline float vm_gelu_tanhf(float x) {
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.0f + vm_tanhf(k * (x + 0.044715f * x * x * x)));
}

#endif /* REELFARM_KERNELS_CPU_VEC_MATH_H */

/* kernels/cpu/kern_layout.c - patchify / unpatchify and the sinusoidal timestep embedding.
 *
 * Patchify gathers Conv3d(kernel = stride = patch) inputs into GEMM rows in (c, kt, ky, kx) order
 * (spec 3.2); unpatchify scatters head outputs from (kt, ky, kx, c) order (spec 3.7) - note the
 * channel position differs. The sinusoid follows spec 3.4 step 1 (cos first, float64).
 */
#include <math.h>

#include "kernels/cpu/kern_cpu.h"

void kern_patchify_cpu(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                       const int patch[3]) {
    const int64_t c_in = latents->shape[0], f = latents->shape[1], h = latents->shape[2], w = latents->shape[3];
    const int pt = patch[0], ph = patch[1], pw = patch[2];
    const int64_t fp = f / pt, hp = h / ph, wp = w / pw;
    const int64_t l = fp * hp * wp;
    const float *src = latents->data;
    const int64_t s0 = latents->stride[0], s1 = latents->stride[1], s2 = latents->stride[2], s3 = latents->stride[3];
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < l; n++) {
        const int64_t ff = n / (hp * wp), yy = (n / wp) % hp, xx = n % wp;
        float *dst = (float *)tokens->data + n * tokens->stride[0];
        int64_t col = 0;
        for (int64_t c = 0; c < c_in; c++)
            for (int kt = 0; kt < pt; kt++)
                for (int ky = 0; ky < ph; ky++)
                    for (int kx = 0; kx < pw; kx++)
                        dst[col++] = src[c * s0 + (ff * pt + kt) * s1 + (yy * ph + ky) * s2 + (xx * pw + kx) * s3];
    }
}

void kern_unpatchify_cpu(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                         const int patch[3]) {
    const int64_t c_out = latents->shape[0], f = latents->shape[1], h = latents->shape[2], w = latents->shape[3];
    const int pt = patch[0], ph = patch[1], pw = patch[2];
    const int64_t fp = f / pt, hp = h / ph, wp = w / pw;
    const int64_t l = fp * hp * wp;
    float *dst = latents->data;
    const int64_t s0 = latents->stride[0], s1 = latents->stride[1], s2 = latents->stride[2], s3 = latents->stride[3];
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < l; n++) {
        const int64_t ff = n / (hp * wp), yy = (n / wp) % hp, xx = n % wp;
        const float *src = (const float *)tokens->data + n * tokens->stride[0];
        int64_t col = 0;
        for (int kt = 0; kt < pt; kt++)
            for (int ky = 0; ky < ph; ky++)
                for (int kx = 0; kx < pw; kx++)
                    for (int64_t c = 0; c < c_out; c++)
                        dst[c * s0 + (ff * pt + kt) * s1 + (yy * ph + ky) * s2 + (xx * pw + kx) * s3] = src[col++];
    }
}

void kern_timestep_sinusoid_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t) {
    (void)ctx;
    const int64_t n = y->shape[0], q = y->shape[1], half = q / 2;
    const float *tv = t->data;
    for (int64_t i = 0; i < n; i++) {
        float *yr = (float *)y->data + i * y->stride[0];
        const double pos = (double)tv[i * t->stride[0]];
        for (int64_t j = 0; j < half; j++) {
            const double arg = pos * pow(10000.0, -(double)j / (double)half);
            yr[j] = (float)cos(arg);
            yr[half + j] = (float)sin(arg);
        }
    }
}

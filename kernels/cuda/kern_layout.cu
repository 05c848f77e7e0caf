/* kernels/cuda/kern_layout.cu - patchify / unpatchify and the sinusoidal timestep embedding
 * (CUDA twin of kernels/cpu/kern_layout.c; spec 3.2, 3.7, 3.4 step 1).
 *
 * What it does: one thread per token element. Patchify gathers Conv3d(kernel = stride = patch)
 * inputs into token rows in (c, kt, ky, kx) column order; unpatchify scatters token rows in
 * (kt, ky, kx, c) column order back to latents (a bijection, so no two threads write the same
 * element). Latents may have any 4-D strides. The sinusoid is computed in double precision (pow,
 * cos, sin) exactly as the CPU twin, cos first, then rounded to float.
 * What it does not do: no bf16, no shared-memory tiling of the gathers (speed is a later issue).
 */
#include "kernels/cuda/kern_cuda.h"

enum { LAYOUT_THREADS = 256, LAYOUT_MAX_BLOCKS = 65536 };

static unsigned layout_blocks(int64_t total) {
    const int64_t b = CEIL_DIV(total, (int64_t)LAYOUT_THREADS);
    return (unsigned)(b < (int64_t)LAYOUT_MAX_BLOCKS ? b : (int64_t)LAYOUT_MAX_BLOCKS);
}

/* Latent geometry shared by both directions. */
struct patch_geom {
    int64_t s0, s1, s2, s3; /* latent strides [C, F, H, W] */
    int64_t c;              /* channels */
    int64_t hp, wp;         /* patches per column and per row */
    int pt, ph, pw;         /* patch size */
};

__global__ void patchify_kernel(float *tokens, int64_t ld_tok, // [L, C pt ph pw] rows
                                const float *latents,          // [C, F, H, W], strides in g
                                struct patch_geom g, int64_t l) {
    const int64_t ncol = g.c * g.pt * g.ph * g.pw;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < l * ncol;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = idx / ncol, col = idx - n * ncol;
        const int64_t ff = n / (g.hp * g.wp), yy = (n / g.wp) % g.hp, xx = n % g.wp;
        /* col = ((c pt + kt) ph + ky) pw + kx */
        const int64_t kx = col % g.pw, ky = (col / g.pw) % g.ph, kt = (col / (g.pw * g.ph)) % g.pt;
        const int64_t c = col / (g.pw * g.ph * g.pt);
        tokens[n * ld_tok + col] =
            latents[c * g.s0 + (ff * g.pt + kt) * g.s1 + (yy * g.ph + ky) * g.s2 + (xx * g.pw + kx) * g.s3];
    }
}

__global__ void unpatchify_kernel(float *latents,                    // [C, F, H, W], strides in g
                                  const float *tokens, int64_t ld_tok, // [L, pt ph pw C] rows
                                  struct patch_geom g, int64_t l) {
    const int64_t ncol = g.c * g.pt * g.ph * g.pw;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < l * ncol;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = idx / ncol, col = idx - n * ncol;
        const int64_t ff = n / (g.hp * g.wp), yy = (n / g.wp) % g.hp, xx = n % g.wp;
        /* col = ((kt ph + ky) pw + kx) C + c */
        const int64_t c = col % g.c, kx = (col / g.c) % g.pw, ky = (col / (g.c * g.pw)) % g.ph;
        const int64_t kt = col / (g.c * g.pw * g.ph);
        latents[c * g.s0 + (ff * g.pt + kt) * g.s1 + (yy * g.ph + ky) * g.s2 + (xx * g.pw + kx) * g.s3] =
            tokens[n * ld_tok + col];
    }
}

static struct patch_geom patch_geom_of(const struct tensor *latents, const int patch[3]) {
    struct patch_geom g;
    g.s0 = latents->stride[0], g.s1 = latents->stride[1], g.s2 = latents->stride[2], g.s3 = latents->stride[3];
    g.c = latents->shape[0];
    g.pt = patch[0], g.ph = patch[1], g.pw = patch[2];
    g.hp = latents->shape[2] / patch[1];
    g.wp = latents->shape[3] / patch[2];
    return g;
}

void kern_patchify_cuda(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                        const int patch[3]) {
    static const char op[] = "kern_patchify_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "tokens", tokens);
    cuda_require_f32(op, "latents", latents);
    const struct patch_geom g = patch_geom_of(latents, patch);
    const int64_t l = tokens->shape[0], total = l * tokens->shape[1];
    if (total == 0) return;
    patchify_kernel<<<layout_blocks(total), LAYOUT_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)tokens->data, tokens->stride[0], (const float *)latents->data, g, l);
    CUDA_CHECK(cudaGetLastError());
}

void kern_unpatchify_cuda(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                          const int patch[3]) {
    static const char op[] = "kern_unpatchify_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "latents", latents);
    cuda_require_f32(op, "tokens", tokens);
    const struct patch_geom g = patch_geom_of(latents, patch);
    const int64_t l = tokens->shape[0], total = l * tokens->shape[1];
    if (total == 0) return;
    unpatchify_kernel<<<layout_blocks(total), LAYOUT_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)latents->data, (const float *)tokens->data, tokens->stride[0], g, l);
    CUDA_CHECK(cudaGetLastError());
}

/* y[i] = [cos(t_i w_0 .. t_i w_{half-1}), sin(t_i w_0 ..)], w_j = 10000^(-j / half), in double. */
__global__ void timestep_sinusoid_kernel(float *y, int64_t ldy,    // [T, 2 half] rows
                                         const float *t, int64_t st, // [T], stride st
                                         int64_t n, int64_t half) {
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * half;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = idx / half, j = idx - i * half;
        const double pos = (double)t[i * st];
        const double arg = pos * pow(10000.0, -(double)j / (double)half);
        y[i * ldy + j] = (float)cos(arg);
        y[i * ldy + half + j] = (float)sin(arg);
    }
}

void kern_timestep_sinusoid_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t) {
    static const char op[] = "kern_timestep_sinusoid_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "t", t);
    const int64_t n = y->shape[0], half = y->shape[1] / 2;
    if (n == 0 || half == 0) return;
    timestep_sinusoid_kernel<<<layout_blocks(n * half), LAYOUT_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, y->stride[0], (const float *)t->data, t->stride[0], n, half);
    CUDA_CHECK(cudaGetLastError());
}

/* kernels/cuda/kern_norm.cu - LayerNorm, RMSNorm, the tensor-parallel RMSNorm pair (row sums of squares, then
 * RMSNorm given the all-reduced sums) and the fused LayerNorm + per-frame modulation (CUDA twin of
 * kernels/cpu/kern_norm.c).
 *
 * What it does: one block of NORM_THREADS threads per row; fp32 partial sums per thread reduced with
 * warp shuffles and one shared-memory step. LayerNorm statistics are two-pass like the CPU (mean
 * first, then the mean of squared deviations: biased variance, as torch), so a large common offset
 * does not cancel catastrophically. y may alias x: every read of a row finishes (block reduction
 * barriers) before the first write of that row.
 * row_sumsq accumulates in double as its CPU twin and ops.h promise (the squares of floats are exact in
 * double, so the two backends differ only by the order of double additions: at most one float ulp after
 * rounding). rmsnorm_given_sumsq evaluates the CPU's double expression for the row scale with explicitly
 * rounded intrinsics and the two float products without contraction: given the same sums it matches the
 * CPU bit for bit.
 * What it does not do: no bf16, no Welford single pass, no vectorised loads, no row batching for
 * narrow rows (speed is a later issue). LayerNorm and RMSNorm accumulate in float (the CPU in double).
 * Mirrors torch.nn.LayerNorm, WanRMSNorm (spec 3.6: over the full width D, which a tensor-parallel rank
 * holds only part of) and norm1/norm2 + modulation (spec 3.6, 3.7).
 */
#include "kernels/cuda/kern_cuda.h"

enum { NORM_THREADS = 256 }; /* a multiple of 32 (block_sum) */

static __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over the block, returned to every thread. red: shared [33]. All threads must call it. */
static __device__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* red[32] may still be read from the previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < n_warps ? red[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0) red[32] = t;
    }
    __syncthreads();
    return red[32];
}

static __device__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* block_sum in double. red: shared [33]. All threads must call it. */
static __device__ double block_sum_d(double v, double *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double t = lane < n_warps ? red[lane] : 0.0;
        t = warp_sum_d(t);
        if (lane == 0) red[32] = t;
    }
    __syncthreads();
    return red[32];
}

/* Mean and 1 / sqrt(biased variance + eps) of one row, two passes. */
static __device__ void row_mean_rstd(const float *xr, int64_t d, float eps, float *red, float *mean_out,
                                     float *rstd_out) {
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += xr[j];
    const float mean = block_sum(s, red) / (float)d;
    float v = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const float c = xr[j] - mean;
        v += c * c;
    }
    const float var = block_sum(v, red) / (float)d;
    *mean_out = mean;
    *rstd_out = 1.0f / sqrtf(var + eps);
}

__global__ void layernorm_kernel(float *y, int64_t ldy,       // [m, d]
                                 const float *x, int64_t ldx, // [m, d]
                                 const float *gamma,          // [d] or NULL
                                 const float *beta,           // [d] or NULL
                                 int64_t d, float eps) {
    __shared__ float red[33];
    const int64_t i = blockIdx.x;
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    float mean, rstd;
    row_mean_rstd(xr, d, eps, red, &mean, &rstd);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float v = (xr[j] - mean) * rstd;
        if (gamma) v *= gamma[j];
        if (beta) v += beta[j];
        yr[j] = v;
    }
}

__global__ void rmsnorm_kernel(float *y, int64_t ldy,       // [m, d]
                               const float *x, int64_t ldx, // [m, d]
                               const float *gamma,          // [d] or NULL
                               int64_t d, float eps) {
    __shared__ float red[33];
    const int64_t i = blockIdx.x;
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
    const float r = 1.0f / sqrtf(block_sum(ss, red) / (float)d + eps);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = gamma ? xr[j] * r * gamma[j] : xr[j] * r;
}

/* ss[i] = sum_j x[i, j]^2, accumulated in double, stored as float. */
__global__ void row_sumsq_kernel(float *ss, int64_t lds,      // [m] (element stride lds)
                                 const float *x, int64_t ldx, // [m, d]
                                 int64_t d) {
    __shared__ double red[33];
    const int64_t i = blockIdx.x;
    const float *xr = x + i * ldx;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const double v = (double)xr[j];
        acc += v * v; /* exact product: contracting it into an FMA changes nothing */
    }
    acc = block_sum_d(acc, red);
    if (threadIdx.x == 0) ss[i * lds] = (float)acc;
}

/* y[i] = x[i] * r_i (* gamma), r_i = (float)(1 / sqrt(ss[i] / width + eps)) in double, as the CPU twin. Each
 * element is read and written by the same thread, so y may alias x. */
__global__ void rmsnorm_given_sumsq_kernel(float *y, int64_t ldy,        // [m, d]
                                           const float *x, int64_t ldx,  // [m, d]
                                           const float *ss, int64_t lds, // [m] all-reduced sums of squares
                                           const float *gamma,           // [d] or NULL
                                           int64_t d, double width, double eps) {
    const int64_t i = blockIdx.x;
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    const double total = (double)ss[i * lds];
    const float r = (float)__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__ddiv_rn(total, width), eps)));
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = gamma ? __fmul_rn(__fmul_rn(xr[j], r), gamma[j]) : __fmul_rn(xr[j], r);
}

__global__ void norm_modulate_kernel(float *y, int64_t ldy,           // [m, d]
                                     const float *x, int64_t ldx,     // [m, d]
                                     const float *shift, int64_t ldsh, // [G, d] per-frame table
                                     const float *scale, int64_t ldsc, // [G, d] per-frame table
                                     int64_t group_size, int64_t row_offset, int64_t d, float eps) {
    __shared__ float red[33];
    const int64_t i = blockIdx.x;
    const int64_t g = (i + row_offset) / group_size;
    const float *xr = x + i * ldx;
    const float *sh = shift + g * ldsh;
    const float *sc = scale + g * ldsc;
    float *yr = y + i * ldy;
    float mean, rstd;
    row_mean_rstd(xr, d, eps, red, &mean, &rstd);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = (xr[j] - mean) * rstd * (1.0f + sc[j]) + sh[j];
}

void kern_layernorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                         const struct tensor *gamma, const struct tensor *beta, float eps) {
    static const char op[] = "kern_layernorm_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    if (gamma) cuda_require_f32(op, "gamma", gamma);
    if (beta) cuda_require_f32(op, "beta", beta);
    const int64_t m = x->shape[0], d = x->shape[1];
    if (m == 0 || d == 0) return;
    layernorm_kernel<<<(unsigned)cuda_to_int(op, "rows", m), NORM_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, y->stride[0], (const float *)x->data, x->stride[0],
        gamma ? (const float *)gamma->data : NULL, beta ? (const float *)beta->data : NULL, d, eps);
    CUDA_CHECK(cudaGetLastError());
}

void kern_rmsnorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                       const struct tensor *gamma, float eps) {
    static const char op[] = "kern_rmsnorm_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    if (gamma) cuda_require_f32(op, "gamma", gamma);
    const int64_t m = x->shape[0], d = x->shape[1];
    if (m == 0 || d == 0) return;
    rmsnorm_kernel<<<(unsigned)cuda_to_int(op, "rows", m), NORM_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, y->stride[0], (const float *)x->data, x->stride[0],
        gamma ? (const float *)gamma->data : NULL, d, eps);
    CUDA_CHECK(cudaGetLastError());
}

void kern_row_sumsq_cuda(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x) {
    static const char op[] = "kern_row_sumsq_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "ss", ss);
    cuda_require_f32(op, "x", x);
    const int64_t m = x->shape[0], d = x->shape[1];
    if (m == 0) return;
    row_sumsq_kernel<<<(unsigned)cuda_to_int(op, "rows", m), NORM_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)ss->data, ss->stride[0], (const float *)x->data, x->stride[0], d);
    CUDA_CHECK(cudaGetLastError());
}

void kern_rmsnorm_given_sumsq_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                                   const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps) {
    static const char op[] = "kern_rmsnorm_given_sumsq_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "ss", ss);
    if (gamma) cuda_require_f32(op, "gamma", gamma);
    const int64_t m = x->shape[0], d = x->shape[1];
    if (m == 0 || d == 0) return;
    rmsnorm_given_sumsq_kernel<<<(unsigned)cuda_to_int(op, "rows", m), NORM_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, y->stride[0], (const float *)x->data, x->stride[0], (const float *)ss->data,
        ss->stride[0], gamma ? (const float *)gamma->data : NULL, d, (double)width, (double)eps);
    CUDA_CHECK(cudaGetLastError());
}

void kern_norm_modulate_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                             const struct tensor *shift, const struct tensor *scale, int64_t group_size,
                             int64_t row_offset, float eps) {
    static const char op[] = "kern_norm_modulate_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "shift", shift);
    cuda_require_f32(op, "scale", scale);
    const int64_t m = x->shape[0], d = x->shape[1];
    if (m == 0 || d == 0) return;
    norm_modulate_kernel<<<(unsigned)cuda_to_int(op, "rows", m), NORM_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, y->stride[0], (const float *)x->data, x->stride[0], (const float *)shift->data,
        shift->stride[0], (const float *)scale->data, scale->stride[0], group_size, row_offset, d, eps);
    CUDA_CHECK(cudaGetLastError());
}

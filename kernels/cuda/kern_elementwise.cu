/* kernels/cuda/kern_elementwise.cu - activations, gated residual adds, row broadcasts, copies and
 * host <-> device transfers (CUDA twin of kernels/cpu/kern_elementwise.c).
 *
 * What it does: every op walks a rows view [M, N] (unit stride inside a row, any row stride);
 * contiguous tensors of any rank are viewed as [numel / last, last]. One thread per element with a
 * grid-stride loop (the grid is capped at EW_MAX_BLOCKS). Activations use the accurate libdevice
 * tanhf / erff / expf. Per-frame gate tables are indexed by (i + row_offset) / group_size (ops.h).
 * Copies and transfers are cudaMemcpy(2D)Async on the context's stream.
 * What it does not do: no bf16, no vectorised (float4) access, no fusion (speed is a later issue).
 */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cuda/kern_cuda.h"

enum { EW_THREADS = 256, EW_MAX_BLOCKS = 65536 };

static unsigned ew_blocks(int64_t total) {
    const int64_t b = CEIL_DIV(total, (int64_t)EW_THREADS);
    return (unsigned)(b < (int64_t)EW_MAX_BLOCKS ? b : (int64_t)EW_MAX_BLOCKS);
}

#define EW_LOOP(total)                                                                                           \
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < (total);                           \
         idx += (int64_t)gridDim.x * blockDim.x)

/* ---- activations ---- */

static __device__ float silu_f(float x) { return x / (1.0f + expf(-x)); }

/* torch GELU(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static __device__ float gelu_tanh_f(float x) {
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* torch exact GELU: 0.5 x (1 + erf(x / sqrt(2))). */
static __device__ float gelu_erf_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__global__ void silu_kernel(struct rows_view y, // [m, n]
                            struct rows_view x) // [m, n]
{
    EW_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        y.data[i * y.ld + j] = silu_f(x.data[i * x.ld + j]);
    }
}

__global__ void gelu_tanh_kernel(struct rows_view y, // [m, n]
                                 struct rows_view x) // [m, n]
{
    EW_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        y.data[i * y.ld + j] = gelu_tanh_f(x.data[i * x.ld + j]);
    }
}

__global__ void gelu_erf_kernel(struct rows_view y, // [m, n]
                                struct rows_view x) // [m, n]
{
    EW_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        y.data[i * y.ld + j] = gelu_erf_f(x.data[i * x.ld + j]);
    }
}

/* Shared prologue of the three activations; returns false when there is nothing to do. */
static bool unary_views(const struct exec_ctx *ctx, const char *op, const struct tensor *y, const struct tensor *x,
                        struct rows_view *yr, struct rows_view *xr) {
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    *yr = rows_view_of(y);
    *xr = rows_view_of(x);
    CHECK(yr->m == xr->m && yr->n == xr->n, "%s: rows views differ", op);
    return xr->m > 0 && xr->n > 0;
}

void kern_silu_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    struct rows_view yr, xr;
    if (!unary_views(ctx, "kern_silu_cuda", y, x, &yr, &xr)) return;
    silu_kernel<<<ew_blocks(xr.m * xr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, xr);
    CUDA_CHECK(cudaGetLastError());
}

void kern_gelu_tanh_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    struct rows_view yr, xr;
    if (!unary_views(ctx, "kern_gelu_tanh_cuda", y, x, &yr, &xr)) return;
    gelu_tanh_kernel<<<ew_blocks(xr.m * xr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, xr);
    CUDA_CHECK(cudaGetLastError());
}

void kern_gelu_erf_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    struct rows_view yr, xr;
    if (!unary_views(ctx, "kern_gelu_erf_cuda", y, x, &yr, &xr)) return;
    gelu_erf_kernel<<<ew_blocks(xr.m * xr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, xr);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- residual adds and broadcasts ---- */

/* x[i] += y[i] * gate[(i + row_offset) / group_size], or x += y when gate is NULL. */
__global__ void gated_add_kernel(struct rows_view x,                  // [m, n], updated in place
                                 struct rows_view y,                  // [m, n]
                                 const float *gate, int64_t ld_gate,  // [G, n] per-frame table or NULL
                                 int64_t group_size, int64_t row_offset) {
    EW_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        const float b = y.data[i * y.ld + j];
        if (gate)
            x.data[i * x.ld + j] += b * gate[((i + row_offset) / group_size) * ld_gate + j];
        else
            x.data[i * x.ld + j] += b;
    }
}

void kern_gated_add_cuda(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y,
                         const struct tensor *gate, int64_t group_size, int64_t row_offset) {
    static const char op[] = "kern_gated_add_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "y", y);
    if (gate) cuda_require_f32(op, "gate", gate);
    const struct rows_view xr = rows_view_of(x), yr = rows_view_of(y);
    if (xr.m == 0 || xr.n == 0) return;
    gated_add_kernel<<<ew_blocks(xr.m * xr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(
        xr, yr, gate ? (const float *)gate->data : NULL, gate ? gate->stride[0] : 0, group_size, row_offset);
    CUDA_CHECK(cudaGetLastError());
}

/* y[i, j] = x[i, j] + row[j]. */
__global__ void add_row_kernel(struct rows_view y, // [m, n]
                               struct rows_view x, // [m, n]
                               const float *row)   // [n]
{
    EW_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        y.data[i * y.ld + j] = x.data[i * x.ld + j] + row[j];
    }
}

void kern_add_row_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                       const struct tensor *row) {
    static const char op[] = "kern_add_row_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "row", row);
    const struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    if (xr.m == 0 || xr.n == 0) return;
    add_row_kernel<<<ew_blocks(xr.m * xr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, xr,
                                                                                   (const float *)row->data);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- copies ---- */

void kern_copy_cuda(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    static const char op[] = "kern_copy_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "dst", dst);
    cuda_require_f32(op, "src", src);
    const struct rows_view dr = rows_view_of(dst), sr = rows_view_of(src);
    if (sr.m == 0 || sr.n == 0) return;
    if (dr.data == sr.data && (dr.ld == sr.ld || sr.m == 1)) return; /* dst is src */
    const size_t esz = sizeof(float);
    if (dr.ld == dr.n && sr.ld == sr.n)
        CUDA_CHECK(cudaMemcpyAsync(dr.data, sr.data, (size_t)(sr.m * sr.n) * esz, cudaMemcpyDeviceToDevice,
                                   cuda_stream_of(ctx)));
    else
        CUDA_CHECK(cudaMemcpy2DAsync(dr.data, (size_t)dr.ld * esz, sr.data, (size_t)sr.ld * esz, (size_t)sr.n * esz,
                                     (size_t)sr.m, cudaMemcpyDeviceToDevice, cuda_stream_of(ctx)));
}

void kern_transfer_cuda(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    static const char op[] = "kern_transfer_cuda";
    cuda_check_ctx(ctx, op);
    CHECK(dst->dtype == src->dtype, "%s: dtypes differ", op);
    const size_t bytes = tensor_nbytes(src);
    if (bytes == 0) return;
    cudaMemcpyKind kind;
    if (src->device == DEVICE_CPU && dst->device == DEVICE_CUDA)
        kind = cudaMemcpyHostToDevice;
    else if (src->device == DEVICE_CUDA && dst->device == DEVICE_CPU)
        kind = cudaMemcpyDeviceToHost;
    else if (src->device == DEVICE_CUDA && dst->device == DEVICE_CUDA)
        kind = cudaMemcpyDeviceToDevice;
    else
        FATAL("%s: host to host transfer on the CUDA backend", op);
    if (dst->data == src->data) return;
    CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, bytes, kind, cuda_stream_of(ctx)));
    /* A download is complete on return (the CPU twin's semantics): the caller reads dst next. */
    if (kind == cudaMemcpyDeviceToHost) CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
}

/* ---- linear combinations (scheduler updates, CFG) ---- */

struct lincomb_args {
    int n;
    double coef[OP_LINCOMB_MAX];
    struct rows_view x[OP_LINCOMB_MAX];
};

__global__ void lincomb_kernel(struct rows_view y,         // [m, n]
                               struct lincomb_args a)      // n terms of [m, n]
{
    EW_LOOP(y.m * y.n) {
        const int64_t i = idx / y.n, j = idx - i * y.n;
        double acc = 0.0;
        for (int k = 0; k < a.n; k++) acc += a.coef[k] * (double)a.x[k].data[i * a.x[k].ld + j];
        y.data[i * y.ld + j] = (float)acc;
    }
}

void kern_lincomb_cuda(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                       const struct tensor *const *x) {
    static const char op[] = "kern_lincomb_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    struct lincomb_args a;
    memset(&a, 0, sizeof a);
    a.n = n;
    for (int k = 0; k < n; k++) {
        cuda_require_f32(op, "x", x[k]);
        a.coef[k] = coef[k];
        a.x[k] = rows_view_of(x[k]);
    }
    struct rows_view yr = rows_view_of(y);
    if (yr.m == 0 || yr.n == 0) return;
    lincomb_kernel<<<ew_blocks(yr.m * yr.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, a);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- normal draws ---- */

void kern_randn_cuda(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first) {
    /* Host generation keeps the draws bit-identical to the CPU backend (a device Philox would depend on
     * the device's log/cos rounding). A per-thread host buffer grows once and is reused, so the
     * denoising loop allocates nothing; the upload is synchronous because the buffer is reused. */
    static const char op[] = "kern_randn_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    static thread_local float *host = NULL;
    static thread_local size_t cap = 0;
    const size_t n = (size_t)tensor_numel(y);
    if (n == 0) return;
    if (n > cap) {
        float *grown = (float *)realloc(host, n * sizeof(float));
        CHECK(grown != NULL, "%s: out of host memory for %zu draws", op, n);
        host = grown;
        cap = n;
    }
    rng_normal_f32(host, (int64_t)n, seed, stream, first);
    CUDA_CHECK(cudaMemcpyAsync(y->data, host, n * sizeof(float), cudaMemcpyHostToDevice, cuda_stream_of(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
}

/* ---- elementwise product ---- */

__global__ void mul_kernel(struct rows_view y, // [m, n]
                           struct rows_view a, // [m, n]
                           struct rows_view b) // [m, n]
{
    EW_LOOP(a.m * a.n) {
        const int64_t i = idx / a.n, j = idx - i * a.n;
        y.data[i * y.ld + j] = a.data[i * a.ld + j] * b.data[i * b.ld + j];
    }
}

void kern_mul_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b) {
    static const char op[] = "kern_mul_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "a", a);
    cuda_require_f32(op, "b", b);
    struct rows_view yr = rows_view_of(y), ar = rows_view_of(a), br = rows_view_of(b);
    if (ar.m == 0 || ar.n == 0) return;
    mul_kernel<<<ew_blocks(ar.m * ar.n), EW_THREADS, 0, cuda_stream_of(ctx)>>>(yr, ar, br);
    CUDA_CHECK(cudaGetLastError());
}

/* kernels/cuda/kern_linear.cu - y = x w^T + b through cublasSgemm (CUDA twin of kernels/cpu/kern_linear.c).
 *
 * What it does: row-major y[M, N] = x[M, K] w[N, K]^T (+ b[N]) as one fp32 SGEMM on the context's
 * stream. cuBLAS is column-major, so the row-major y is the column-major y^T [N, M] = w x^T:
 * A = w read transposed (lda = w's row stride), B = x as stored (ldb = x's row stride), C = y^T
 * (ldc = y's row stride); row strides of views into fused buffers become leading dimensions.
 * The bias is broadcast into y by a small kernel first and the GEMM then runs with beta = 1.
 * The handle uses CUBLAS_DEFAULT_MATH (set in cuda_backend.cu): true fp32, no TF32.
 * What it does not do: no bf16, no cuBLASLt epilogues or cached descriptors (speed is a later
 * issue). Mirrors torch.nn.Linear (weights [out, in]).
 */
#include "kernels/cuda/kern_cuda.h"

enum { BIAS_THREADS = 256, BIAS_MAX_BLOCKS = 65536 };

/* y[i, j] = b[j] for every row i. */
__global__ void linear_bias_kernel(float *y,       // [m, n] rows, stride ld
                                   const float *b, // [n]
                                   int64_t m, int64_t n, int64_t ld) {
    const int64_t total = m * n;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = idx / n, j = idx - i * n;
        y[i * ld + j] = b[j];
    }
}

/* Leading dimension for cuBLAS: the row stride, or the width where a single row carries any stride. */
static int64_t rows_ld(const struct tensor *t) {
    int64_t ld = t->stride[0];
    if (ld < t->shape[1]) ld = t->shape[1]; /* only possible for a single row (the dispatcher checks) */
    return ld < 1 ? 1 : ld;
}

void kern_linear_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
                      const struct tensor *b) {
    static const char op[] = "kern_linear_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "w", w);
    if (b) cuda_require_f32(op, "b", b);

    const int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    if (m == 0 || n == 0) return;
    const int64_t ldy = rows_ld(y), ldx = rows_ld(x), ldw = rows_ld(w);
    cudaStream_t stream = cuda_stream_of(ctx);

    float beta = 0.0f; /* beta = 0: cuBLAS does not read y, so garbage (even NaN) in y is harmless */
    if (b) {
        int64_t blocks = CEIL_DIV(m * n, (int64_t)BIAS_THREADS);
        if (blocks > (int64_t)BIAS_MAX_BLOCKS) blocks = BIAS_MAX_BLOCKS; /* grid-stride loop covers the rest */
        linear_bias_kernel<<<(unsigned)blocks, BIAS_THREADS, 0, stream>>>((float *)y->data, (const float *)b->data,
                                                                          m, n, ldy);
        CUDA_CHECK(cudaGetLastError());
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    /* Column-major: C[N, M] (= y^T, ldc = ldy) = op(A)[N, K] (A = w^T as stored, transposed back)
     *                                          * B[K, M] (= x^T as stored). */
    CUBLAS_CHECK(cublasSgemm(cuda_cublas_of(ctx), CUBLAS_OP_T, CUBLAS_OP_N, cuda_to_int(op, "N", n),
                             cuda_to_int(op, "M", m), cuda_to_int(op, "K", k), &alpha, (const float *)w->data,
                             cuda_to_int(op, "ldw", ldw), (const float *)x->data, cuda_to_int(op, "ldx", ldx), &beta,
                             (float *)y->data, cuda_to_int(op, "ldy", ldy)));
}

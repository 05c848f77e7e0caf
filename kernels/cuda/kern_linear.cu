/* kernels/cuda/kern_linear.cu - y = x w^T + b through cuBLAS (CUDA twin of kernels/cpu/kern_linear.c).
 *
 * What it does: row-major y[M, N] = x[M, K] w[N, K]^T (+ b[N]) on the context's stream. cuBLAS is
 * column-major, so the row-major y is the column-major y^T [N, M] = w x^T: A = w read transposed
 * (lda = w's row stride), B = x as stored (ldb = x's row stride), C = y^T (ldc = y's row stride); row
 * strides of views into fused buffers become leading dimensions. The bias is broadcast into y by a
 * small kernel first and the GEMM then runs with beta = 1.
 *  - f32 w: one fp32 SGEMM. The handle uses CUBLAS_DEFAULT_MATH (cuda_backend.cu): true fp32, no TF32.
 *  - bf16 w (issue 8: the DiT's matrices stored in bf16, spec 3.10: linear layers in bf16 under autocast
 *    upstream): x is rounded to bf16 (to nearest even, as torch's cast) into the context's scratch
 *    (cuda_scratch), at most CUDA_LINEAR_SCRATCH_BYTES of it at a time, so long inputs run as several GEMMs
 *    over row chunks; each is a cublasGemmEx with bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F) and an
 *    f32 C. y, the bias and the residual stream stay f32.
 * What it does not do: no cuBLASLt epilogues or cached descriptors (speed is a later issue), no bf16 x or y.
 * Mirrors torch.nn.Linear (weights [out, in]).
 */
#include <cuda_bf16.h>

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

/* xs[i, j] = bf16(x[i, j]) (round to nearest even; NaN stays NaN) for a [m, k] rows view x into a contiguous xs. */
__global__ void linear_x_to_bf16_kernel(__nv_bfloat16 *xs, const float *x, int64_t m, int64_t k, int64_t ldx) {
    const int64_t total = m * k;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = idx / k, j = idx - i * k;
        xs[idx] = __float2bfloat16_rn(x[i * ldx + j]);
    }
}

static unsigned grid_for(int64_t total) {
    int64_t blocks = CEIL_DIV(total, (int64_t)BIAS_THREADS);
    if (blocks < 1) blocks = 1;
    if (blocks > (int64_t)BIAS_MAX_BLOCKS) blocks = BIAS_MAX_BLOCKS; /* grid-stride loops cover the rest */
    return (unsigned)blocks;
}

/* Leading dimension for cuBLAS: the row stride, or the width where a single row carries any stride. */
static int64_t rows_ld(const struct tensor *t) {
    int64_t ld = t->stride[0];
    if (ld < t->shape[1]) ld = t->shape[1]; /* only possible for a single row (the dispatcher checks) */
    return ld < 1 ? 1 : ld;
}

/* Rows of x converted per chunk: as many as CUDA_LINEAR_SCRATCH_BYTES of bf16 hold (a multiple of 128 when that
 * is at least 128 rows, for whole GEMM tiles), at least one. */
static int64_t bf16_chunk_rows(int64_t m, int64_t k) {
    const int64_t row_bytes = (k > 0 ? k : 1) * (int64_t)sizeof(__nv_bfloat16);
    int64_t rows = (int64_t)CUDA_LINEAR_SCRATCH_BYTES / row_bytes;
    if (rows >= 128) rows -= rows % 128;
    if (rows < 1) rows = 1;
    return rows < m ? rows : m;
}

void kern_linear_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
                      const struct tensor *b) {
    static const char op[] = "kern_linear_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    CHECK(w->device == DEVICE_CUDA, "%s: w is not on the CUDA device", op);
    if (w->dtype != DTYPE_F32 && w->dtype != DTYPE_BF16)
        FATAL("%s: w is %s; the CUDA linear takes f32 or bf16 weights", op, dtype_name(w->dtype));
    if (b) cuda_require_f32(op, "b", b);

    const int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    if (m == 0 || n == 0) return;
    const int64_t ldy = rows_ld(y), ldx = rows_ld(x), ldw = rows_ld(w);
    cudaStream_t stream = cuda_stream_of(ctx);

    float beta = 0.0f; /* beta = 0: cuBLAS does not read y, so garbage (even NaN) in y is harmless */
    if (b) {
        linear_bias_kernel<<<grid_for(m * n), BIAS_THREADS, 0, stream>>>((float *)y->data, (const float *)b->data, m,
                                                                         n, ldy);
        CUDA_CHECK(cudaGetLastError());
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    if (w->dtype == DTYPE_F32) {
        /* Column-major: C[N, M] (= y^T, ldc = ldy) = op(A)[N, K] (A = w^T as stored, transposed back)
         *                                          * B[K, M] (= x^T as stored). */
        CUBLAS_CHECK(cublasSgemm(cuda_cublas_of(ctx), CUBLAS_OP_T, CUBLAS_OP_N, cuda_to_int(op, "N", n),
                                 cuda_to_int(op, "M", m), cuda_to_int(op, "K", k), &alpha, (const float *)w->data,
                                 cuda_to_int(op, "ldw", ldw), (const float *)x->data, cuda_to_int(op, "ldx", ldx),
                                 &beta, (float *)y->data, cuda_to_int(op, "ldy", ldy)));
        return;
    }

    /* bf16 weights: x to bf16 a row chunk at a time (same stream: a chunk's conversion waits for the GEMM
     * that read the previous chunk), then the same column-major product with bf16 A and B, fp32 compute. */
    const int64_t chunk = bf16_chunk_rows(m, k);
    __nv_bfloat16 *xs =
        (__nv_bfloat16 *)cuda_scratch(ctx, (size_t)(chunk * (k > 0 ? k : 1)) * sizeof(__nv_bfloat16));
    const int ni = cuda_to_int(op, "N", n), ki = cuda_to_int(op, "K", k), ldwi = cuda_to_int(op, "ldw", ldw);
    const int ldxs = k > 0 ? ki : 1, ldyi = cuda_to_int(op, "ldy", ldy);
    (void)cuda_to_int(op, "M", m);
    for (int64_t r0 = 0; r0 < m; r0 += chunk) {
        const int64_t mc = m - r0 < chunk ? m - r0 : chunk;
        if (k > 0) {
            linear_x_to_bf16_kernel<<<grid_for(mc * k), BIAS_THREADS, 0, stream>>>(
                xs, (const float *)x->data + r0 * ldx, mc, k, ldx);
            CUDA_CHECK(cudaGetLastError());
        }
        CUBLAS_CHECK(cublasGemmEx(cuda_cublas_of(ctx), CUBLAS_OP_T, CUBLAS_OP_N, ni, (int)mc, ki, &alpha, w->data,
                                  CUDA_R_16BF, ldwi, xs, CUDA_R_16BF, ldxs, &beta, (float *)y->data + r0 * ldy,
                                  CUDA_R_32F, ldyi, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

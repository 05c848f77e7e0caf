/* kernels/cuda/cuda_backend.cu - CUDA device bring-up: device choice, stream, cuBLAS handle,
 * device memory, and the small checks every twin shares.
 *
 * What it does: cuda_backend_init() fills a struct exec_ctx for the CUDA backend (one non-blocking
 * stream, one cuBLAS handle bound to it with CUBLAS_DEFAULT_MATH so fp32 GEMMs never use TF32);
 * cuda_alloc/cuda_free wrap cudaMalloc (256-byte aligned, fatal on failure); cuda_device_count()
 * answers 0 on a machine without driver or device instead of dying.
 * What it does not do: no arenas or workspaces yet (cuBLAS keeps its own default workspace), no
 * multi-GPU or NCCL (parallel/), no bf16. It has no CPU twin; the CPU context is exec_ctx_cpu()
 * in kernels/ops.c.
 */
#include <stdlib.h>

#include "kernels/cuda/kern_cuda.h" /* brings core/error.h, log.h, process.h with C linkage */

/* What ctx->cuda_state points at. */
struct cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
};

/* Never launched: cudaFuncGetAttributes on it tells whether this binary has code for the device. */
__global__ void probe_kernel(int *p) {
    if (p) *p = 0;
}

int cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: clear the (non-sticky) error and say 0 */
        return 0;
    }
    return n;
}

int cuda_backend_init(struct exec_ctx *ctx, int device) {
    CHECK(ctx != NULL, "cuda_backend_init: ctx is NULL");
    const int n = cuda_device_count();
    if (n == 0) return err_set(ERR_UNSUPPORTED, "no CUDA device is available (no driver, or no visible GPU)");
    if (device < 0 || device >= n)
        return err_set(ERR_INVALID_ARG, "CUDA device %d does not exist (%d visible)", device, n);

    CUDA_CHECK(cudaSetDevice(device));
    cudaFuncAttributes attr;
    cudaError_t e = cudaFuncGetAttributes(&attr, probe_kernel);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return err_set(ERR_UNSUPPORTED, "CUDA device %d cannot run this build's kernels (%s); build for its "
                       "architecture with -DCMAKE_CUDA_ARCHITECTURES", device, cudaGetErrorString(e));
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));

    struct cuda_state *st = (struct cuda_state *)calloc(1, sizeof *st);
    CHECK(st != NULL, "cuda_backend_init: out of host memory");
    st->device = device;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&st->cublas));
    CUBLAS_CHECK(cublasSetStream(st->cublas, st->stream));
    CUBLAS_CHECK(cublasSetMathMode(st->cublas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(st->cublas, CUBLAS_POINTER_MODE_HOST));

    ctx->backend = BACKEND_CUDA;
    ctx->cuda_stream = (void *)st->stream;
    ctx->cuda_state = st;
    proc_set_gpu(device);
    LOG_INFO("cuda: device=%d name=\"%s\" sm=%d%d mem_gib=%.1f", device, prop.name, prop.major, prop.minor,
              (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

void cuda_backend_free(struct exec_ctx *ctx) {
    if (!ctx || !ctx->cuda_state) return;
    struct cuda_state *st = (struct cuda_state *)ctx->cuda_state;
    CUDA_CHECK(cudaSetDevice(st->device));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    CUBLAS_CHECK(cublasDestroy(st->cublas));
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    free(st);
    ctx->backend = BACKEND_CPU;
    ctx->cuda_stream = NULL;
    ctx->cuda_state = NULL;
}

void *cuda_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess)
        FATAL("cudaMalloc of %zu bytes (%.2f GiB) failed: %s: %s", bytes, (double)bytes / (1024.0 * 1024.0 * 1024.0),
              cudaGetErrorName(e), cudaGetErrorString(e));
    CHECK(((uintptr_t)p & 255u) == 0, "cudaMalloc returned %p, not 256-byte aligned", p);
    return p;
}

void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

void cuda_sync(const struct exec_ctx *ctx) {
    CHECK(ctx != NULL && ctx->cuda_state != NULL, "cuda_sync: not a CUDA context (cuda_backend_init)");
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
}

/* ---- shared by the twins ---- */

void cuda_check_ctx(const struct exec_ctx *ctx, const char *op) {
    CHECK(ctx != NULL && ctx->backend == BACKEND_CUDA && ctx->cuda_state != NULL,
          "%s: the context is not a CUDA context set up by cuda_backend_init", op);
}

void cuda_require_f32(const char *op, const char *arg, const struct tensor *t) {
    CHECK(t->device == DEVICE_CUDA, "%s: %s is not on the CUDA device", op, arg);
    if (t->dtype != DTYPE_F32)
        FATAL("%s: %s is %s; the CUDA kernels compute in f32 for now (bf16 kernels come with the CUDA-backend "
              "issue)", op, arg, dtype_name(t->dtype));
}

cublasHandle_t cuda_cublas_of(const struct exec_ctx *ctx) {
    CHECK(ctx->cuda_state != NULL, "no cuBLAS handle: the context is not set up by cuda_backend_init");
    return ((const struct cuda_state *)ctx->cuda_state)->cublas;
}

int cuda_to_int(const char *op, const char *what, int64_t v) {
    CHECK(v >= 0 && v <= INT32_MAX, "%s: %s = %lld does not fit the kernel's 32-bit argument", op, what,
          (long long)v);
    return (int)v;
}


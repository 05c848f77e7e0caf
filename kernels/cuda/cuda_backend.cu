/* kernels/cuda/cuda_backend.cu - CUDA device bring-up: device choice, stream, cuBLAS handle,
 * device memory, and the small checks every twin shares.
 *
 * What it does: cuda_backend_init() fills a struct exec_ctx for the CUDA backend (one non-blocking
 * stream, one cuBLAS handle bound to it with CUBLAS_DEFAULT_MATH so fp32 GEMMs never use TF32);
 * cuda_alloc/cuda_free wrap cudaMalloc (256-byte aligned, fatal on failure); cuda_device_count()
 * answers 0 on a machine without driver or device instead of dying.
 * cuda_arena_init/free give core/arena.h arenas over one cudaMalloc (the DiT's weights and workspace,
 * model/wan_dit.c); cuda_mem_info reports the device's memory for benchmarks.
 * One scratch buffer per context (cuda_scratch: the bf16 copy of op_linear's x when the weights are bf16),
 * grown on demand and never shrunk; cuBLAS keeps its own default workspace.
 * What it does not do: no multi-GPU or NCCL (parallel/). It has no CPU twin; the CPU context is exec_ctx_cpu()
 * in kernels/ops.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kern_cuda.h" /* brings core/error.h, log.h, process.h with C linkage */

/* What ctx->cuda_state points at. */
struct cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *scratch;        /* cuda_scratch: grows on demand, never shrinks, freed with the context */
    size_t scratch_bytes;
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
    if (st->scratch) CUDA_CHECK(cudaFree(st->scratch));
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

int cuda_arena_init(struct arena *a, const char *name, size_t size) {
    memset(a, 0, sizeof *a);
    a->name = name;
    size = arena_round(size ? size : (size_t)ARENA_ALIGN);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is not sticky: clear it so the process can go on */
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        return err_set(ERR_NOMEM, "cannot allocate %.1f MiB on the GPU for the %s arena (%s; %.1f of %.1f MiB free)",
                       (double)size / (1 << 20), name, cudaGetErrorString(e), (double)free_b / (1 << 20),
                       (double)total_b / (1 << 20));
    }
    CHECK(((uintptr_t)p & (uintptr_t)(ARENA_ALIGN - 1)) == 0, "cudaMalloc returned %p, not %d-byte aligned", p,
          (int)ARENA_ALIGN);
    /* zeroed like a host arena (padding rows stay zero); on the legacy stream, so wait for it here: the
     * context's stream is non-blocking and would not order after it */
    CUDA_CHECK(cudaMemset(p, 0, size));
    CUDA_CHECK(cudaDeviceSynchronize());
    a->base = (char *)p;
    a->size = size;
    return ERR_OK;
}

void cuda_arena_free(struct arena *a) {
    if (!a) return;
    if (a->base) CUDA_CHECK(cudaFree(a->base));
    a->base = NULL;
    a->size = a->used = 0;
}

int cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    cudaError_t e = cudaMemGetInfo(free_bytes, total_bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *free_bytes = *total_bytes = 0;
        return err_set(ERR_UNSUPPORTED, "cudaMemGetInfo: %s", cudaGetErrorString(e));
    }
    return ERR_OK;
}

void cuda_device_name(char *buf, size_t cap) {
    if (cap == 0) return;
    snprintf(buf, cap, "unknown");
    int dev = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    snprintf(buf, cap, "%s", prop.name);
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

void *cuda_scratch(const struct exec_ctx *ctx, size_t bytes) {
    CHECK(ctx != NULL && ctx->cuda_state != NULL, "cuda_scratch: not a CUDA context (cuda_backend_init)");
    struct cuda_state *st = (struct cuda_state *)ctx->cuda_state;
    if (bytes <= st->scratch_bytes) return st->scratch;
    /* grow (first use, or a larger request): work queued on the stream may still read the old buffer */
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    if (st->scratch) CUDA_CHECK(cudaFree(st->scratch));
    st->scratch = NULL;
    st->scratch_bytes = 0;
    const size_t size = arena_round(bytes);
    st->scratch = cuda_alloc(size);
    st->scratch_bytes = size;
    LOG_DEBUG("cuda: scratch grown to %.1f MiB", (double)size / (1 << 20));
    return st->scratch;
}

void cuda_scratch_reserve(const struct exec_ctx *ctx, size_t bytes) {
    cuda_check_ctx(ctx, "cuda_scratch_reserve");
    (void)cuda_scratch(ctx, bytes);
}

size_t cuda_scratch_bytes(const struct exec_ctx *ctx) {
    cuda_check_ctx(ctx, "cuda_scratch_bytes");
    return ((const struct cuda_state *)ctx->cuda_state)->scratch_bytes;
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


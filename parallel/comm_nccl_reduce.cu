/* parallel/comm_nccl_reduce.cu - the ordered slice sum of the NCCL communicator's all-reduce.
 *
 * What it does: sum_slices_kernel adds, for each element i of a slice, the p values the all-to-all
 * delivered (rank 0's first), with __fadd_rn so nvcc can neither reassociate nor contract the adds: the
 * float result is the one core/comm.c's host loop gives (IEEE round-to-nearest on both sides; no
 * denormal flushing, since reelfarm is not built with --use_fast_math). A grid-stride loop covers any m.
 * What it does not do: no communication, no other data types. The upstream Python has no counterpart
 * (xDiT/torch use NCCL's own all-reduce, whose summation order depends on the algorithm NCCL picks).
 */
#include <cuda_runtime.h>

#include "core/error.h"
#include "parallel/comm_nccl_reduce.h"

static const unsigned SUM_THREADS = 256;
static const size_t SUM_BLOCKS_MAX = 4096; /* then each thread loops (grid stride) */

/* out[i] = sum over r in 0..p-1 of in[r m + i], in rank order. */
__global__ void sum_slices_kernel(float *__restrict__ out, const float *__restrict__ in, size_t m, int p) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += stride) {
        float s = in[i];
        for (int r = 1; r < p; r++)
            s = __fadd_rn(s, in[(size_t)r * m + i]);
        out[i] = s;
    }
}

void comm_nccl_sum_slices_cuda(float *out, const float *in, size_t m, int p, void *stream) {
    CHECK(p >= 1, "comm_nccl_sum_slices_cuda: %d slices", p);
    if (m == 0) return;
    const size_t want = (m + SUM_THREADS - 1) / SUM_THREADS;
    const unsigned blocks = (unsigned)(want < SUM_BLOCKS_MAX ? want : SUM_BLOCKS_MAX); /* CEIL_DIV, capped */
    sum_slices_kernel<<<blocks, SUM_THREADS, 0, (cudaStream_t)stream>>>(out, in, m, p);
    CUDA_CHECK(cudaGetLastError());
}

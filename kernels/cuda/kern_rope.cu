/* kernels/cuda/kern_rope.cu - 3-axis rotary position embedding, in place (CUDA twin of
 * kernels/cpu/kern_rope.c; spec 3.3).
 *
 * What it does: one block per token row; its threads walk the (head, pair) pairs of the row. Pair
 * p of a head rotates (x[2p], x[2p+1]) by the (cos, sin) that freqs [P, dh/2, 2] holds for the
 * position of the pair's axis: the frame for p < split[0], the grid row for the next split[1], the
 * grid column for the rest. Token i has global index t = i + token_offset and grid position
 * (t / (Hp Wp), (t / Wp) % Hp, t % Wp).
 * What it does not do: no bf16, no fusion with the q/k RMSNorm (speed is a later issue).
 * Mirrors SR transformer.py rope_apply (complex multiply by freqs_i).
 */
#include "kernels/cuda/kern_cuda.h"

enum { ROPE_THREADS = 128 };

__global__ void rope3d_kernel(float *x, int64_t ldx,   // [L, n_heads * dh] rows, updated in place
                              const float *freqs,      // [P, pairs, 2] contiguous (cos, sin)
                              int n_heads, int pairs,  // dh = 2 * pairs
                              int64_t hp, int64_t wp,  // grid rows and columns
                              int64_t token_offset, int split0, int split1) {
    const int64_t i = blockIdx.x;
    const int64_t t = i + token_offset;
    const int64_t pos0 = t / (hp * wp), pos1 = (t / wp) % hp, pos2 = t % wp;
    float *xr = x + i * ldx;
    const int total = n_heads * pairs;
    for (int u = threadIdx.x; u < total; u += blockDim.x) {
        const int h = u / pairs, p = u - h * pairs;
        const int64_t pos = p < split0 ? pos0 : (p < split0 + split1 ? pos1 : pos2);
        const float c = freqs[(pos * pairs + p) * 2], s = freqs[(pos * pairs + p) * 2 + 1];
        float *v = xr + (int64_t)h * 2 * pairs + 2 * p;
        const float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
    }
}

void kern_rope3d_cuda(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
                      int64_t token_offset, const struct tensor *freqs, const int split[3]) {
    static const char op[] = "kern_rope3d_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "freqs", freqs);
    const int64_t l = x->shape[0];
    const int64_t pairs = x->shape[1] / n_heads / 2;
    if (l == 0 || pairs == 0) return;
    rope3d_kernel<<<(unsigned)cuda_to_int(op, "rows", l), ROPE_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)x->data, x->stride[0], (const float *)freqs->data, n_heads, (int)pairs, grid[1], grid[2],
        token_offset, split[0], split[1]);
    CUDA_CHECK(cudaGetLastError());
}

/* kernels/cuda/kern_attention.cu - multi-head attention with a streaming softmax, over all keys at once or over
 * key blocks with carried state (ring attention) (CUDA twin of kernels/cpu/kern_attention.c).
 *
 * What it does: O(L d) memory, no score matrix. One block per (query tile of ATT_WARPS rows, head);
 * each warp owns one query row. Keys and values stream through shared memory in tiles of ATT_BK = 32
 * rows; in a tile, lane j scores key j (q . k_j * scale, fp32), the warp keeps a running max m,
 * running sum l and an unnormalised output row o (lane e holds dims e, e + 32, ...) and rescales
 * them per tile (the online softmax of FlashAttention). Block-causal masking (spec 3.9) limits
 * each query row to keys below the end of its frame block, computed exactly as the CPU twin does
 * (causal_key_end); tiles past the block's last row limit are not loaded. A row that sees no key
 * gets 0. accumulate adds into out. Head dim up to ATT_CUDA_HEAD_DIM_MAX (256), any row strides.
 * out may alias q (each block reads its own q rows before writing them), not k or v.
 * Key blocks (op_attention_block, the ring of spec 9's sequence parallelism): the same kernel, with m, l
 * and o loaded from the caller's struct attn_state instead of starting empty (unless first_block), the
 * block's first valid_keys keys folded in (the padding rows after them are never loaded) and m, l, o
 * stored back instead of normalised. op_attention_finish is then one block per query row writing
 * o * (1 / l) (0 where l == 0) with explicitly rounded intrinsics: the CPU twin's float arithmetic,
 * bit for bit, for the same state.
 * What it does not do: no bf16, no tensor cores (kern_flash_attn.cu has them: kern_attention_cuda hands over to it
 * when ctx->attention_bf16 is set and it supports the shape), no split-K over keys, no tuning (one warp per row,
 * scalar dot products); speed is a later issue. The key tiles are 32 wide here and 256 on the CPU, so
 * the bitwise block/one-call identity of the CPU twin holds here only up to rounding.
 * Mirrors SR attention.py flash_attention (no mask) and the masked SDPA of transformer.py.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kern_cuda.h"

enum {
    ATT_WARPS = 8,                                /* query rows per block */
    ATT_THREADS = ATT_WARPS * 32,
    ATT_BK = 32,                                  /* keys per tile: one per lane */
    ATT_CUDA_HEAD_DIM_MAX = 256,                  /* this kernel's limit (OP_HEAD_DIM_MAX is the CPU's) */
    ATT_DH_PER_LANE = ATT_CUDA_HEAD_DIM_MAX / 32, /* output dims a lane owns at most */
    ATT_FINISH_THREADS = 256                      /* attention_finish: threads per query row */
};

/* End (exclusive, local to k) of the keys a query with global token index q_global may see. */
static __host__ __device__ int64_t causal_key_end(const struct attn_causal c, int64_t q_global, int64_t lk) {
    const int64_t frame = q_global / c.tokens_per_frame;
    const int64_t block_end_frame = (frame / c.frames_per_block + 1) * c.frames_per_block;
    const int64_t end = block_end_frame * c.tokens_per_frame - c.k_token_offset;
    return end < 0 ? 0 : (end > lk ? lk : end);
}

/* The caller's struct attn_state on the device (op_attention_block), or o == NULL (op_attention: the state
 * starts empty, lives in registers and is normalised into out). */
struct att_state_dev {
    float *m;  /* [H, Lq] running max, row stride ldm */
    float *l;  /* [H, Lq] running sum, row stride ldl */
    float *o;  /* [Lq, H dh] unnormalised output, row stride ldo */
    int64_t ldm, ldl, ldo;
    int first; /* first_block: start empty instead of loading m, l, o */
};

static __device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void attention_kernel(float *out, int64_t ldo,     // [Lq, H dh]
                                 const float *q, int64_t ldq, // [Lq, H dh]
                                 const float *k, int64_t ldk, // [Lk, H dh]
                                 const float *v, int64_t ldv, // [Lk, H dh]
                                 int64_t lq, int64_t lk, int dh, float scale,
                                 struct attn_causal causal, int is_causal, int accumulate,
                                 const float *bias, int64_t ldb, // [H, lq + lk_all - 1] or NULL
                                 struct att_state_dev st) {      // carried state, or st.o == NULL
    extern __shared__ float smem[];
    float *sk = smem;                   /* [ATT_BK, dh + 1] (padded: lane j reads row j) */
    float *sv = sk + ATT_BK * (dh + 1); /* [ATT_BK, dh] */
    float *sq = sv + ATT_BK * dh;       /* [ATT_WARPS, dh] */

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t head_col = (int64_t)blockIdx.y * dh;
    const int64_t q0 = (int64_t)blockIdx.x * ATT_WARPS;
    const int64_t nq = lq - q0 < ATT_WARPS ? lq - q0 : ATT_WARPS;
    const int64_t row = q0 + warp;
    const bool row_valid = warp < nq;

    /* Key limits: this row's, and the block's (the limit never decreases with the query index). */
    const int64_t kend = !row_valid ? 0 : (is_causal ? causal_key_end(causal, row + causal.q_token_offset, lk) : lk);
    const int64_t kmax = is_causal ? causal_key_end(causal, q0 + nq - 1 + causal.q_token_offset, lk) : lk;

    float *qs = sq + warp * dh;
    if (row_valid)
        for (int e = lane; e < dh; e += 32) qs[e] = q[row * ldq + head_col + e];

    float o[ATT_DH_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_DH_PER_LANE; c++) o[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    if (st.o && !st.first && row_valid) { /* carry on the caller's state (every lane holds m and l) */
        m = st.m[(int64_t)blockIdx.y * st.ldm + row];
        l = st.l[(int64_t)blockIdx.y * st.ldl + row];
#pragma unroll
        for (int c = 0; c < ATT_DH_PER_LANE; c++) {
            const int e = lane + 32 * c;
            if (e < dh) o[c] = st.o[row * st.ldo + head_col + e];
        }
    }

    for (int64_t k0 = 0; k0 < kmax; k0 += ATT_BK) {
        const int nk = (int)(kmax - k0 < ATT_BK ? kmax - k0 : ATT_BK);
        __syncthreads(); /* the previous tile is consumed (and qs is written) */
        for (int idx = threadIdx.x; idx < nk * dh; idx += blockDim.x) {
            const int j = idx / dh, e = idx - j * dh;
            sk[j * (dh + 1) + e] = k[(k0 + j) * ldk + head_col + e];
            sv[j * dh + e] = v[(k0 + j) * ldv + head_col + e];
        }
        __syncthreads();
        if (!row_valid || k0 >= kend) continue; /* uniform over the warp: one row per warp */

        const int64_t key = k0 + lane; /* key < kend implies lane < nk */
        float s = -INFINITY;
        if (key < kend) {
            const float *kr = sk + lane * (dh + 1);
            float acc = 0.0f;
            for (int e = 0; e < dh; e++) acc += qs[e] * kr[e];
            s = acc * scale;
            if (bias) s += bias[(int64_t)blockIdx.y * ldb + key - row + lq - 1];
        }
        const float m_new = fmaxf(m, warp_max(s)); /* finite: lane 0 holds a visible key */
        const float corr = m == -INFINITY ? 0.0f : expf(m - m_new);
        const float p = key < kend ? expf(s - m_new) : 0.0f;
        l = l * corr + warp_sum(p);
        m = m_new;
#pragma unroll
        for (int c = 0; c < ATT_DH_PER_LANE; c++) o[c] *= corr;
        for (int j = 0; j < nk; j++) {
            const float pj = __shfl_sync(0xffffffffu, p, j);
            const float *vr = sv + j * dh;
#pragma unroll
            for (int c = 0; c < ATT_DH_PER_LANE; c++) {
                const int e = lane + 32 * c;
                if (e < dh) o[c] += pj * vr[e];
            }
        }
    }

    if (row_valid && st.o) { /* hand the state back, unnormalised */
        if (lane == 0) {
            st.m[(int64_t)blockIdx.y * st.ldm + row] = m;
            st.l[(int64_t)blockIdx.y * st.ldl + row] = l;
        }
#pragma unroll
        for (int c = 0; c < ATT_DH_PER_LANE; c++) {
            const int e = lane + 32 * c;
            if (e < dh) st.o[row * st.ldo + head_col + e] = o[c];
        }
    } else if (row_valid) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float *dst = out + row * ldo + head_col;
#pragma unroll
        for (int c = 0; c < ATT_DH_PER_LANE; c++) {
            const int e = lane + 32 * c;
            if (e < dh) dst[e] = accumulate ? dst[e] + o[c] * inv : o[c] * inv;
        }
    }
}

/* Shared launcher: lk is the number of usable keys (valid_keys for the biased variant and for key blocks).
 * Exactly one of out and st is given: out receives the normalised result (=|+= by accumulate); st is carried
 * on (or started, first) and out is not touched. */
static void launch_attention(const struct exec_ctx *ctx, const char *op, struct tensor *out, const struct tensor *q,
                             const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                             const struct attn_causal *causal, bool accumulate, const struct tensor *bias,
                             int64_t lk, struct attn_state *st, bool first) {
    cuda_check_ctx(ctx, op);
    CHECK((out == NULL) != (st == NULL), "%s: needs exactly one of out and a state", op);
    if (out) cuda_require_f32(op, "out", out);
    cuda_require_f32(op, "q", q);
    cuda_require_f32(op, "k", k);
    cuda_require_f32(op, "v", v);
    if (bias) cuda_require_f32(op, "bias", bias);
    struct att_state_dev sd;
    memset(&sd, 0, sizeof sd);
    if (st) {
        cuda_require_f32(op, "state m", &st->m);
        cuda_require_f32(op, "state l", &st->l);
        cuda_require_f32(op, "state o", &st->o);
        sd.m = (float *)st->m.data, sd.ldm = st->m.stride[0];
        sd.l = (float *)st->l.data, sd.ldl = st->l.stride[0];
        sd.o = (float *)st->o.data, sd.ldo = st->o.stride[0];
        sd.first = first ? 1 : 0;
    }
    const int64_t lq = q->shape[0];
    const int64_t dh = q->shape[1] / n_heads;
    CHECK(dh > 0 && dh <= ATT_CUDA_HEAD_DIM_MAX, "%s: head dim %lld outside (0, %d]", op, (long long)dh,
          (int)ATT_CUDA_HEAD_DIM_MAX);
    CHECK(n_heads <= 65535, "%s: %d heads exceed the grid's y extent", op, n_heads);
    if (lq == 0) return;

    const size_t smem = (size_t)(ATT_BK * (dh + 1) + ATT_BK * dh + ATT_WARPS * dh) * sizeof(float);
    if (smem > 48 * 1024) /* above the default: opt in (at most ~74 KB for dh = 256) */
        CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));

    struct attn_causal c;
    memset(&c, 0, sizeof c);
    if (causal) c = *causal;
    const dim3 grid((unsigned)cuda_to_int(op, "query tiles", CEIL_DIV(lq, (int64_t)ATT_WARPS)), (unsigned)n_heads);
    attention_kernel<<<grid, ATT_THREADS, smem, cuda_stream_of(ctx)>>>(
        out ? (float *)out->data : NULL, out ? out->stride[0] : 0, (const float *)q->data, q->stride[0],
        (const float *)k->data, k->stride[0], (const float *)v->data, v->stride[0], lq, lk, (int)dh, scale, c,
        causal != NULL, accumulate ? 1 : 0, bias ? (const float *)bias->data : NULL, bias ? bias->stride[0] : 0, sd);
    CUDA_CHECK(cudaGetLastError());
}

void kern_attention_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                         const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                         const struct attn_causal *causal, bool accumulate) {
    /* bf16 tensor cores when the caller asked for them (ctx->attention_bf16) and the shape allows (kern_flash_attn.cu) */
    if (ctx->attention_bf16 && kern_flash_attention_supported(out, q, k, v, n_heads)) {
        kern_flash_attention_cuda(ctx, out, q, k, v, n_heads, scale, causal, accumulate);
        return;
    }
    launch_attention(ctx, "kern_attention_cuda", out, q, k, v, n_heads, scale, causal, accumulate, NULL, k->shape[0],
                     NULL, false);
}

void kern_attention_biased_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                                const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                                const struct tensor *bias, int64_t valid_keys) {
    launch_attention(ctx, "kern_attention_biased_cuda", out, q, k, v, n_heads, scale, NULL, false, bias, valid_keys,
                     NULL, false);
}

void kern_attention_block_cuda(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct attn_causal *causal, int64_t valid_keys, bool first_block) {
    launch_attention(ctx, "kern_attention_block_cuda", NULL, q, k, v, n_heads, scale, causal, false, NULL, valid_keys,
                     st, first_block);
}

/* out[i, h dh + e] (=|+=) o[i, h dh + e] * (1 / l[h, i]), 0 where l == 0: the CPU's att_rows_finish, each
 * operation rounded on its own (no FMA contraction), so the same state gives the same bits. */
__global__ void attention_finish_kernel(float *out, int64_t ldout,   // [Lq, H dh]
                                        const float *o, int64_t ldo, // [Lq, H dh] state o
                                        const float *l, int64_t ldl, // [H, Lq] state l
                                        int64_t width, int dh, int accumulate) {
    const int64_t i = blockIdx.x;
    const float *orow = o + i * ldo;
    float *dst = out + i * ldout;
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
        const float lj = l[(j / dh) * ldl + i];
        const float inv = lj > 0.0f ? __fdiv_rn(1.0f, lj) : 0.0f;
        const float val = __fmul_rn(orow[j], inv);
        dst[j] = accumulate ? __fadd_rn(dst[j], val) : val;
    }
}

void kern_attention_finish_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                                bool accumulate) {
    static const char op[] = "kern_attention_finish_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "out", out);
    cuda_require_f32(op, "state m", &st->m); /* not read; checked so the state's dtype rule is the block op's */
    cuda_require_f32(op, "state l", &st->l);
    cuda_require_f32(op, "state o", &st->o);
    const int64_t heads = st->m.shape[0], lq = st->m.shape[1], width = st->o.shape[1];
    const int64_t dh = width / heads;
    if (lq == 0 || width == 0) return;
    attention_finish_kernel<<<(unsigned)cuda_to_int(op, "query rows", lq), ATT_FINISH_THREADS, 0,
                              cuda_stream_of(ctx)>>>((float *)out->data, out->stride[0], (const float *)st->o.data,
                                                     st->o.stride[0], (const float *)st->l.data, st->l.stride[0],
                                                     width, cuda_to_int(op, "head dim", dh), accumulate ? 1 : 0);
    CUDA_CHECK(cudaGetLastError());
}

void kern_t5_relbias_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                          int max_distance, int64_t lq) {
    /* Tiny ([H, 2L - 1]) and outside the denoising loop: gather on the host with the same integer bucket
     * function as the CPU backend, upload. */
    static const char op[] = "kern_t5_relbias_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "out", out);
    cuda_require_f32(op, "table", table);
    const int64_t heads = out->shape[0], span = out->shape[1], nb = table->shape[0];
    float *tab = (float *)malloc((size_t)(nb * heads) * sizeof(float));
    float *host = (float *)malloc((size_t)(heads * span) * sizeof(float));
    CHECK(tab && host, "%s: out of host memory", op);
    CUDA_CHECK(cudaMemcpy2DAsync(tab, (size_t)heads * sizeof(float), table->data, (size_t)table->stride[0] * sizeof(float),
                                 (size_t)heads * sizeof(float), (size_t)nb, cudaMemcpyDeviceToHost, cuda_stream_of(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
    for (int64_t r = 0; r < span; r++) {
        const int b = t5_relative_bucket(r - (lq - 1), num_buckets, max_distance);
        for (int64_t h = 0; h < heads; h++) host[h * span + r] = tab[b * heads + h];
    }
    CUDA_CHECK(cudaMemcpy2DAsync(out->data, (size_t)out->stride[0] * sizeof(float), host, (size_t)span * sizeof(float),
                                 (size_t)span * sizeof(float), (size_t)heads, cudaMemcpyHostToDevice, cuda_stream_of(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
    free(tab);
    free(host);
}

/* kernels/cuda/kern_flash_attn.cu - op_attention on tensor cores: bf16 operands, f32 accumulation and softmax
 * (issue 8). Selected by kern_attention_cuda when ctx->attention_bf16 is set and the shape is supported.
 *
 * What it does: the same result as attention_kernel (kern_attention.cu) up to bf16 rounding. One block per
 * (query tile of FA_BQ = 16 * NW rows, head), NW warps, each warp owning 16 query rows. The f32 q, k, v rows
 * are read straight from the caller's (strided) views with float4 loads and rounded to bf16 (nearest even)
 * into shared memory as they are stored; there is no conversion pass and no scratch buffer. The q tile is
 * staged once through shared memory into registers (mma A fragments), then the same shared memory holds one
 * key tile and one value tile of FA_BK = 64 rows at a time. Per key tile each warp computes S = q k^T
 * (16 x 64, mma.sync m16n8k16 bf16 -> f32), scales it into the log2 domain, applies the mask, updates the
 * running row max m and row sum l (online softmax in f32; l is summed from the unrounded exp2 values),
 * rescales its f32 output accumulator, rounds P to bf16 (the A operand of the second product, reused
 * register for register from the S accumulator layout) and adds P v (v fragments by ldmatrix .trans).
 * Masks as attention_kernel: keys past lk, and block-causal (spec 3.9) through causal_key_end with the query
 * and key token offsets; tiles past the block's last row limit are never loaded, a warp skips the tiles past
 * its own rows' limit, and the per-element mask runs only on tiles that cross a limit of the warp's rows.
 * Causal query tiles are launched longest first. A row that sees no key gives 0; accumulate adds into out.
 * out may alias q (each block reads its q rows and head columns before writing them).
 * Shared memory: max(FA_BQ, 2 FA_BK) rows of DH + 8 bf16 (the 16-byte pad makes the 32-bit fragment loads
 * and ldmatrix conflict-free): 34,816 bytes for DH = 128 with NW = 4 or 8, 18,432 bytes for DH = 64.
 * What it does not do: head dims other than 64 and 128, row strides that are not multiples of 4 floats
 * (kern_flash_attention_supported says no, and kern_attention_cuda falls back to the f32 kernel); no bias, no
 * carried state (op_attention_biased and op_attention_block stay on the f32 kernel). Not tuned: no cp.async or
 * double buffering (the f32 -> bf16 rounding happens in registers on the way into shared memory, which cp.async
 * cannot do), loads and mma of a tile do not overlap except across the blocks resident on an SM. Has not yet run
 * on a GPU.
 * Why f32 loads instead of a conversion pass: the op takes f32 views into fused [L, 3D] buffers; a pass would
 * need a scratch of 3 L D bf16 (1 GB at 111,600 tokens x 1536) per call and an extra launch, while attention
 * re-reads k and v once per query tile, so the f32 reads cost 2x the bytes of bf16 ones from L2. When this
 * kernel is load-bound on the GPU, the first change is a bf16 [H, L, dh] copy of k and v (O(L D), small against
 * the O(L^2 D) of attention) and cp.async double buffering from it.
 */
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/kern_cuda.h"

enum {
    FA_BK = 64,  /* keys per tile */
    FA_NW = 4,   /* warps per block (16 query rows each): FA_BQ = 64 query rows per block */
    FA_PAD = 8   /* bf16 elements after each shared-memory row (16 bytes) */
};

/* End (exclusive, local to k) of the keys a query with global token index q_global may see: the same
 * expression as kern_attention.cu's causal_key_end (and the CPU twin's). */
static __device__ int64_t fa_causal_key_end(const struct attn_causal c, int64_t q_global, int64_t lk) {
    const int64_t frame = q_global / c.tokens_per_frame;
    const int64_t block_end_frame = (frame / c.frames_per_block + 1) * c.frames_per_block;
    const int64_t end = block_end_frame * c.tokens_per_frame - c.k_token_offset;
    return end < 0 ? 0 : (end > lk ? lk : end);
}

/* Keys visible to local query row `row` (0 for rows past lq). */
static __device__ int64_t fa_key_end(const struct attn_causal c, int is_causal, int64_t row, int64_t lq, int64_t lk) {
    if (row >= lq) return 0;
    return is_causal ? fa_causal_key_end(c, row + c.q_token_offset, lk) : lk;
}

static __device__ __forceinline__ uint32_t fa_pack_bf16(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low 16 bits */
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

/* d[16x8] += a[16x16] b[16x8]: bf16 operands, f32 accumulators (PTX fragment layouts, groupID g = lane / 4,
 * t = lane % 4: a = {(g, 2t..), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}, b = {(k 2t.., n g), (k 2t+8.., n g)},
 * d = {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}). */
static __device__ __forceinline__ void fa_mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four transposed 8x8 bf16 matrices from shared memory; lane i gives the address of row i % 8 of matrix i / 8. */
static __device__ __forceinline__ void fa_ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16 *p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* rows [row0, row0 + ROWS) x columns [col0, col0 + DH) of an f32 rows tensor -> bf16 dst [ROWS, DH + FA_PAD];
 * rows at or past nvalid are stored as zeros (never read from global memory). */
template <int DH, int ROWS, int NT>
static __device__ __forceinline__ void fa_load_tile(__nv_bfloat16 *dst, const float *src, int64_t ld, int64_t row0,
                                                    int64_t nvalid, int64_t col0) {
    constexpr int V4_PER_ROW = DH / 4;
    constexpr int LDS = DH + FA_PAD;
    static_assert((ROWS * V4_PER_ROW) % NT == 0, "tile loads must divide evenly over the block");
#pragma unroll 4
    for (int i = 0; i < ROWS * V4_PER_ROW / NT; i++) {
        const int idx = i * NT + (int)threadIdx.x;
        const int r = idx / V4_PER_ROW, c = (idx % V4_PER_ROW) * 4;
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r < nvalid) x = *(const float4 *)(src + (row0 + r) * ld + col0 + c); /* plain load: out may alias q */
        uint2 pk;
        pk.x = fa_pack_bf16(x.x, x.y);
        pk.y = fa_pack_bf16(x.z, x.w);
        *(uint2 *)(dst + r * LDS + c) = pk;
    }
}

template <int DH, int NW>
__global__ void __launch_bounds__(NW * 32) flash_attention_kernel(float *out, int64_t ldo,     // [Lq, H dh]
                                                                  const float *q, int64_t ldq, // [Lq, H dh]
                                                                  const float *k, int64_t ldk, // [Lk, H dh]
                                                                  const float *v, int64_t ldv, // [Lk, H dh]
                                                                  int64_t lq, int64_t lk, float scale_log2,
                                                                  struct attn_causal causal, int is_causal,
                                                                  int accumulate) {
    constexpr int BQ = 16 * NW, NT = NW * 32, LDS = DH + FA_PAD;
    constexpr int KC = DH / 16;    /* k-chunks of q . k */
    constexpr int SN = FA_BK / 8;  /* n-tiles of S (8 keys each) */
    constexpr int PC = FA_BK / 16; /* k-chunks of P v */
    constexpr int ON = DH / 8;     /* n-tiles of O (8 dims each) */
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *const sq = (__nv_bfloat16 *)fa_smem; /* [BQ, LDS], then reused: */
    __nv_bfloat16 *const sk = (__nv_bfloat16 *)fa_smem; /* [FA_BK, LDS] */
    __nv_bfloat16 *const sv = sk + FA_BK * LDS;         /* [FA_BK, LDS] */

    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    /* causal: the last query tiles see the most keys; launch them first */
    const int64_t tile = is_causal ? (int64_t)gridDim.x - 1 - blockIdx.x : (int64_t)blockIdx.x;
    const int64_t q0 = tile * BQ;
    const int64_t head_col = (int64_t)blockIdx.y * DH;
    const int64_t nq = lq - q0 < BQ ? lq - q0 : BQ;

    /* key limits: this thread's two rows, its warp's smallest and largest, the block's largest (the limit
     * never decreases with the query row; rows past lq see nothing) */
    const int64_t wrow0 = q0 + 16 * warp;
    const int64_t row_a = wrow0 + g, row_b = row_a + 8;
    const int64_t kend_a = fa_key_end(causal, is_causal, row_a, lq, lk);
    const int64_t kend_b = fa_key_end(causal, is_causal, row_b, lq, lk);
    const int64_t wlast = wrow0 + 15 < lq - 1 ? wrow0 + 15 : lq - 1;
    const int64_t warp_kmax = wrow0 < lq ? fa_key_end(causal, is_causal, wlast, lq, lk) : 0;
    const int64_t warp_kmin = wrow0 + 15 < lq ? fa_key_end(causal, is_causal, wrow0, lq, lk) : 0;
    const int64_t kmax = fa_key_end(causal, is_causal, q0 + nq - 1, lq, lk);

    /* q tile -> shared (bf16) -> A fragments in registers */
    fa_load_tile<DH, BQ, NT>(sq, q, ldq, q0, nq, head_col);
    __syncthreads();
    uint32_t qf[KC][4];
    {
        const __nv_bfloat16 *qa = sq + (16 * warp + g) * LDS + 2 * t;
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
            qf[kc][0] = *(const uint32_t *)(qa + 16 * kc);
            qf[kc][1] = *(const uint32_t *)(qa + 8 * LDS + 16 * kc);
            qf[kc][2] = *(const uint32_t *)(qa + 16 * kc + 8);
            qf[kc][3] = *(const uint32_t *)(qa + 8 * LDS + 16 * kc + 8);
        }
    }

    float o[ON][4];
#pragma unroll
    for (int n = 0; n < ON; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY; /* running max of the log2-domain scores of rows a and b */
    float l_a = 0.0f, l_b = 0.0f;           /* this thread's part of the running sums (summed over the quad last) */

    for (int64_t k0 = 0; k0 < kmax; k0 += FA_BK) {
        const int64_t nk = kmax - k0 < FA_BK ? kmax - k0 : FA_BK;
        __syncthreads(); /* the previous tile (or the q tile) is consumed */
        fa_load_tile<DH, FA_BK, NT>(sk, k, ldk, k0, nk, head_col);
        fa_load_tile<DH, FA_BK, NT>(sv, v, ldv, k0, nk, head_col);
        __syncthreads();
        if (k0 >= warp_kmax) continue; /* warp-uniform: none of this warp's rows sees these keys */

        /* S = q k^T for 16 rows x FA_BK keys */
        float s[SN][4];
#pragma unroll
        for (int j = 0; j < SN; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
#pragma unroll
            for (int j = 0; j < SN; j++) {
                const __nv_bfloat16 *kb = sk + (8 * j + g) * LDS + 16 * kc + 2 * t;
                fa_mma(s[j], qf[kc], *(const uint32_t *)kb, *(const uint32_t *)(kb + 8));
            }
        }

        /* scale into the log2 domain, mask, row maxima */
        const bool need_mask = k0 + FA_BK > warp_kmin;
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int j = 0; j < SN; j++) {
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float x = s[j][c] * scale_log2;
                if (need_mask) {
                    const int64_t key = k0 + 8 * j + 2 * t + (c & 1);
                    if (key >= (c < 2 ? kend_a : kend_b)) x = -INFINITY;
                }
                s[j][c] = x;
            }
            mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
        }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        /* a row that has seen no key yet keeps m = -inf: exponentiate against 0 so that exp2(-inf) = 0, never NaN */
        const float mu_a = mn_a == -INFINITY ? 0.0f : mn_a, mu_b = mn_b == -INFINITY ? 0.0f : mn_b;
        const float corr_a = exp2f(m_a - mu_a), corr_b = exp2f(m_b - mu_b);
        m_a = mn_a, m_b = mn_b;

        float ls_a = 0.0f, ls_b = 0.0f;
#pragma unroll
        for (int j = 0; j < SN; j++) {
            s[j][0] = exp2f(s[j][0] - mu_a);
            s[j][1] = exp2f(s[j][1] - mu_a);
            s[j][2] = exp2f(s[j][2] - mu_b);
            s[j][3] = exp2f(s[j][3] - mu_b);
            ls_a += s[j][0] + s[j][1];
            ls_b += s[j][2] + s[j][3];
        }
        l_a = l_a * corr_a + ls_a;
        l_b = l_b * corr_b + ls_b;
#pragma unroll
        for (int n = 0; n < ON; n++) {
            o[n][0] *= corr_a, o[n][1] *= corr_a;
            o[n][2] *= corr_b, o[n][3] *= corr_b;
        }

        /* O += P v: P (bf16) from the S accumulators, v fragments by transposed ldmatrix */
#pragma unroll
        for (int pc = 0; pc < PC; pc++) {
            uint32_t pa[4];
            pa[0] = fa_pack_bf16(s[2 * pc][0], s[2 * pc][1]);
            pa[1] = fa_pack_bf16(s[2 * pc][2], s[2 * pc][3]);
            pa[2] = fa_pack_bf16(s[2 * pc + 1][0], s[2 * pc + 1][1]);
            pa[3] = fa_pack_bf16(s[2 * pc + 1][2], s[2 * pc + 1][3]);
            const __nv_bfloat16 *vb = sv + (16 * pc + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8;
#pragma unroll
            for (int n2 = 0; n2 < ON / 2; n2++) {
                uint32_t vf[4];
                fa_ldmatrix_x4_trans(vf, vb + 16 * n2);
                fa_mma(o[2 * n2], pa, vf[0], vf[1]);
                fa_mma(o[2 * n2 + 1], pa, vf[2], vf[3]);
            }
        }
    }

    /* normalise and store (rows a and b; a row that saw no key has l = 0 and gives 0) */
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int64_t row = half ? row_b : row_a;
        if (row >= lq) continue;
        const float inv = half ? inv_b : inv_a;
        float *dst = out + row * ldo + head_col + 2 * t;
#pragma unroll
        for (int n = 0; n < ON; n++) {
            float2 r = make_float2(o[n][2 * half] * inv, o[n][2 * half + 1] * inv);
            float2 *p = (float2 *)(dst + 8 * n);
            if (accumulate) {
                const float2 old = *p;
                r.x += old.x, r.y += old.y;
            }
            *p = r;
        }
    }
}

/* The kernel for one head dim; smem bytes into *smem. */
template <int DH>
static void launch_flash(const struct exec_ctx *ctx, const char *op, float *out, int64_t ldo, const float *q,
                         int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t lq, int64_t lk,
                         int n_heads, float scale, const struct attn_causal *causal, bool accumulate) {
    constexpr int BQ = 16 * FA_NW;
    constexpr int rows = BQ > 2 * FA_BK ? BQ : 2 * FA_BK;
    constexpr size_t smem = (size_t)rows * (DH + FA_PAD) * sizeof(__nv_bfloat16);
    static_assert(smem <= 48 * 1024, "above the default shared memory per block: opt in first");
    struct attn_causal c;
    memset(&c, 0, sizeof c);
    if (causal) c = *causal;
    const float log2e = 1.4426950408889634f;
    const dim3 grid((unsigned)cuda_to_int(op, "query tiles", CEIL_DIV(lq, (int64_t)BQ)), (unsigned)n_heads);
    flash_attention_kernel<DH, FA_NW><<<grid, FA_NW * 32, smem, cuda_stream_of(ctx)>>>(
        out, ldo, q, ldq, k, ldk, v, ldv, lq, lk, scale * log2e, c, causal != NULL, accumulate ? 1 : 0);
    CUDA_CHECK(cudaGetLastError());
}

bool kern_flash_attention_supported(const struct tensor *out, const struct tensor *q, const struct tensor *k,
                                    const struct tensor *v, int n_heads) {
    if (n_heads <= 0 || q->shape[1] % n_heads != 0) return false;
    const int64_t dh = q->shape[1] / n_heads;
    if (dh != 64 && dh != 128) return false;
    const struct tensor *const ts[4] = {out, q, k, v};
    for (int i = 0; i < 4; i++) { /* f32 rows, float4-aligned rows (the pointers are 16-byte aligned: ops.c) */
        const struct tensor *x = ts[i];
        if (x->dtype != DTYPE_F32 || x->ndim != 2 || ((uintptr_t)x->data & 15u) != 0) return false;
        if (x->shape[0] > 1 && x->stride[0] % 4 != 0) return false;
    }
    return n_heads <= 65535;
}

void kern_flash_attention_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct attn_causal *causal, bool accumulate) {
    static const char op[] = "kern_flash_attention_cuda";
    cuda_check_ctx(ctx, op);
    CHECK(kern_flash_attention_supported(out, q, k, v, n_heads),
          "%s: unsupported shape (head dim 64 or 128, f32 rows with row strides a multiple of 4)", op);
    const int64_t lq = q->shape[0], lk = k->shape[0];
    const int64_t dh = q->shape[1] / n_heads;
    if (lq == 0) return;
    float *o = (float *)out->data;
    const float *qp = (const float *)q->data, *kp = (const float *)k->data, *vp = (const float *)v->data;
    if (dh == 128)
        launch_flash<128>(ctx, op, o, out->stride[0], qp, q->stride[0], kp, k->stride[0], vp, v->stride[0], lq, lk,
                          n_heads, scale, causal, accumulate);
    else
        launch_flash<64>(ctx, op, o, out->stride[0], qp, q->stride[0], kp, k->stride[0], vp, v->stride[0], lq, lk,
                         n_heads, scale, causal, accumulate);
}

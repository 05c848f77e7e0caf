/* kernels/cpu/kern_attention.c - multi-head attention with a streaming softmax.
 *
 * Memory is O(L d): queries are processed in tiles of ATT_BQ rows and keys in tiles of ATT_BK,
 * keeping a running max m, running sum l and an unnormalised output O per query row (the online
 * softmax of FlashAttention). Scores for one tile pair are one sgemm, P V another. OpenMP threads
 * take (head, query tile) units; each thread has its own tiles (att_scratch_get).
 * Block-causal masking (spec 3.9) limits each query row to keys below the end of its frame block;
 * key tiles past every row's limit are skipped, so causal attention also costs less.
 * Mirrors SR attention.py flash_attention (no mask) and the masked SDPA of transformer.py.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/vec_math.h"

enum { ATT_BQ = 128, ATT_BK = 256 }; /* tuned on a 2-core EPYC (scripts/bench-cpu.sh, docs/benchmarks.md) */

/* Per-thread tiles, allocated the first time a thread needs them and reused by every later call
 * (OpenMP keeps its threads), so attention allocates nothing in the denoising loop and does not put
 * 256 KiB on thread stacks of unknown size. */
struct att_scratch {
    float *s; /* [ATT_BQ, ATT_BK] scores, then probabilities */
    float *o; /* [ATT_BQ, OP_HEAD_DIM_MAX] unnormalised output rows */
};

static struct att_scratch att_scratch_get(void) {
    static _Thread_local struct att_scratch sc;
    if (!sc.s) {
        sc.s = aligned_alloc(64, sizeof(float) * ATT_BQ * ATT_BK);
        sc.o = aligned_alloc(64, sizeof(float) * ATT_BQ * OP_HEAD_DIM_MAX);
        CHECK(sc.s && sc.o, "out of memory for attention tiles");
    }
    return sc;
}

/* max(init, x[0..n)) */
static inline float row_max(const float *restrict x, int64_t n, float init) {
    float mx = init;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* x[j] = exp(x[j] - mx) in place; returns the sum. Explicit simd reductions: without them gcc keeps
 * these loops scalar. */
static inline float row_exp_sum(float *restrict x, int64_t n, float mx) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        const float p = vm_expf(x[j] - mx);
        x[j] = p;
        sum += p;
    }
    return sum;
}

static int64_t causal_key_end(const struct attn_causal *c, int64_t q_global, int64_t lk) {
    const int64_t frame = q_global / c->tokens_per_frame;
    const int64_t block_end_frame = (frame / c->frames_per_block + 1) * c->frames_per_block;
    int64_t end = block_end_frame * c->tokens_per_frame - c->k_token_offset;
    return end < 0 ? 0 : (end > lk ? lk : end);
}

/* The one attention implementation: optional block-causal limits, optional relative-position bias
 * [H, Lq + Lk - 1] (umT5), keys limited to valid_keys. */
static void attention_impl(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                           const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                           const struct attn_causal *causal, const struct tensor *bias, int64_t valid_keys,
                           bool accumulate) {
    const int64_t lq = q->shape[0], lk = valid_keys;
    const int64_t dh = q->shape[1] / n_heads;
    const int64_t ldq = q->stride[0], ldk = k->stride[0], ldv = v->stride[0], ldo = out->stride[0];
    const int64_t n_qt = (lq + ATT_BQ - 1) / ATT_BQ;
    const int64_t units = n_qt * n_heads;
    const int nt = kern_cpu_threads(ctx);

#pragma omp parallel num_threads(nt)
    {
        const struct att_scratch sc = att_scratch_get();
        float *restrict s = sc.s, *restrict o = sc.o;
        float m[ATT_BQ], l[ATT_BQ];
        int64_t kend[ATT_BQ];
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            const int64_t h = u / n_qt, q0 = (u % n_qt) * ATT_BQ;
            const int64_t nq = lq - q0 < ATT_BQ ? lq - q0 : ATT_BQ;
            const float *qh = (const float *)q->data + q0 * ldq + h * dh;
            const float *kh = (const float *)k->data + h * dh;
            const float *vh = (const float *)v->data + h * dh;
            int64_t kmax = 0;
            for (int64_t i = 0; i < nq; i++) {
                kend[i] = causal ? causal_key_end(causal, q0 + i + causal->q_token_offset, lk) : lk;
                if (kend[i] > kmax) kmax = kend[i];
                m[i] = -INFINITY;
                l[i] = 0.0f;
            }
            memset(o, 0, (size_t)(nq * dh) * sizeof(float));

            for (int64_t k0 = 0; k0 < kmax; k0 += ATT_BK) {
                const int64_t nk = kmax - k0 < ATT_BK ? kmax - k0 : ATT_BK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)nk, (blasint)dh, scale, qh,
                            (blasint)ldq, kh + k0 * ldk, (blasint)ldk, 0.0f, s, (blasint)nk);
                if (bias) { /* s[i, j] += bias[h, (k0 + j) - (q0 + i) + lq - 1] */
                    const float *bh = (const float *)bias->data + h * bias->stride[0] + lq - 1 + k0 - q0;
                    for (int64_t i = 0; i < nq; i++) {
                        float *sr = s + i * nk;
                        const float *br = bh - i;
                        for (int64_t j = 0; j < nk; j++) sr[j] += br[j];
                    }
                }
                for (int64_t i = 0; i < nq; i++) {
                    float *sr = s + i * nk;
                    int64_t lim = kend[i] - k0;
                    lim = lim < 0 ? 0 : (lim > nk ? nk : lim);
                    if (lim == 0) { /* this row sees none of these keys */
                        memset(sr, 0, (size_t)nk * sizeof(float));
                        continue;
                    }
                    const float mx = row_max(sr, lim, m[i]);
                    const float corr = m[i] == -INFINITY ? 0.0f : vm_expf(m[i] - mx);
                    const float sum = row_exp_sum(sr, lim, mx);
                    for (int64_t j = lim; j < nk; j++) sr[j] = 0.0f;
                    l[i] = l[i] * corr + sum;
                    m[i] = mx;
                    if (corr != 1.0f) {
                        float *orow = o + i * dh;
                        for (int64_t e = 0; e < dh; e++) orow[e] *= corr;
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)nq, (blasint)dh, (blasint)nk, 1.0f, s,
                            (blasint)nk, vh + k0 * ldv, (blasint)ldv, 1.0f, o, (blasint)dh);
            }

            for (int64_t i = 0; i < nq; i++) {
                float *dst = (float *)out->data + (q0 + i) * ldo + h * dh;
                const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
                const float *orow = o + i * dh;
                if (accumulate)
                    for (int64_t e = 0; e < dh; e++) dst[e] += orow[e] * inv;
                else
                    for (int64_t e = 0; e < dh; e++) dst[e] = orow[e] * inv;
            }
        }
    }
}

void kern_attention_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                        const struct tensor *v, int n_heads, float scale, const struct attn_causal *causal,
                        bool accumulate) {
    attention_impl(ctx, out, q, k, v, n_heads, scale, causal, NULL, k->shape[0], accumulate);
}

void kern_attention_biased_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct tensor *bias, int64_t valid_keys) {
    attention_impl(ctx, out, q, k, v, n_heads, scale, NULL, bias, valid_keys, false);
}

void kern_t5_relbias_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                         int max_distance, int64_t lq) {
    (void)ctx;
    const int64_t heads = out->shape[0], span = out->shape[1];
    const float *tab = table->data;
    for (int64_t r = 0; r < span; r++) {
        const int b = t5_relative_bucket(r - (lq - 1), num_buckets, max_distance);
        for (int64_t h = 0; h < heads; h++)
            ((float *)out->data)[h * out->stride[0] + r] = tab[b * table->stride[0] + h];
    }
}

/* kernels/cpu/kern_attention.c - multi-head attention with a streaming softmax, over all keys at once or over
 * key blocks with carried state (ring attention).
 *
 * Memory is O(L d): queries are processed in tiles of ATT_BQ rows and keys in tiles of ATT_BK,
 * keeping a running max m, running sum l and an unnormalised output O per query row (the online
 * softmax of FlashAttention). Scores for one tile pair are one sgemm, P V another. OpenMP threads
 * take (head, query tile) units; each thread has its own tiles (att_scratch_get).
 * Block-causal masking (spec 3.9) limits each query row to keys below the end of its frame block;
 * key tiles past every row's limit are skipped, so causal attention also costs less.
 *
 * Bitwise reproducibility across ways of splitting the work (sequence parallelism):
 *  - query rows: both sgemms are row-stable (kern_sgemm_row_stable), key tiles are cut from the key count
 *    alone and score rows have a fixed stride, so a query row gets the same bits whichever query rows share
 *    its call (a shard of the queries, with q_token_offset, equals those rows of the whole call);
 *  - key blocks: op_attention is the one-block case of the tile loop that op_attention_block runs per block,
 *    with m, l and O in the thread's scratch instead of the caller's attn_state. Blocks that start at
 *    multiples of ATT_BK, taken in order, walk exactly the tiles of the one-block call with the same
 *    arithmetic, so op_attention_block + op_attention_finish equal op_attention bit for bit.
 * Mirrors SR attention.py flash_attention (no mask) and the masked SDPA of transformer.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/vec_math.h"

/* ATT_BQ and ATT_BK tuned on a 2-core EPYC (scripts/bench-cpu.sh, docs/benchmarks.md). A key tile narrower than
 * ATT_BK_MIN (the last one when lk % ATT_BK is small, e.g. the 257 image tokens of I2V) is multiplied at width
 * ATT_BK_MIN from copies padded with zero keys: at its true width the row-stable sgemms would pad to about
 * 1e6 / (nk dh) query rows, megabytes per tile for nk = 1. */
enum { ATT_BQ = 128, ATT_BK = OP_ATTENTION_KEY_TILE, ATT_BK_MIN = 64 };

/* Per-thread tiles, allocated the first time a thread needs them and reused by every later call
 * (OpenMP keeps its threads), so attention allocates nothing in the denoising loop and does not put
 * 256 KiB on thread stacks of unknown size. */
struct att_scratch {
    float *s;  /* [ATT_BQ, ATT_BK] scores, then probabilities (row stride ATT_BK) */
    float *o;  /* [ATT_BQ, OP_HEAD_DIM_MAX] unnormalised output rows of a one-block call */
    float *kv; /* [2, ATT_BK_MIN, OP_HEAD_DIM_MAX] a narrow key tile's keys and values, zero-padded */
};

static struct att_scratch att_scratch_get(void) {
    static _Thread_local struct att_scratch sc;
    if (!sc.s) {
        sc.s = aligned_alloc(64, sizeof(float) * ATT_BQ * ATT_BK);
        sc.o = aligned_alloc(64, sizeof(float) * ATT_BQ * OP_HEAD_DIM_MAX);
        sc.kv = aligned_alloc(64, sizeof(float) * 2 * ATT_BK_MIN * OP_HEAD_DIM_MAX);
        CHECK(sc.s && sc.o && sc.kv, "out of memory for attention tiles");
    }
    return sc;
}

/* What the tile loop reads: q [Lq, H dh]; the first lk rows of k and v [>= lk, H dh]; optional block-causal
 * limits and relative-position bias [H, Lq + Lk - 1] (umT5). */
struct att_problem {
    const struct tensor *q, *k, *v;
    const struct attn_causal *causal;
    const struct tensor *bias;
    int n_heads;
    int64_t dh, lk;
    float scale;
};

/* The streaming softmax of nq query rows of one head: running max m [nq], sum l [nq], unnormalised output
 * o [nq, dh] with row stride ldo. */
struct att_rows {
    float *m, *l, *o;
    int64_t ldo;
};

/* Rows [q0, q0 + nq) of head h in the caller's state. */
static struct att_rows att_state_rows(const struct attn_state *st, int64_t h, int64_t q0, int64_t dh) {
    struct att_rows r = {
        .m = (float *)st->m.data + h * st->m.stride[0] + q0,
        .l = (float *)st->l.data + h * st->l.stride[0] + q0,
        .o = (float *)st->o.data + q0 * st->o.stride[0] + h * dh,
        .ldo = st->o.stride[0],
    };
    return r;
}

static void att_rows_init(const struct att_rows *r, int64_t nq, int64_t dh) {
    for (int64_t i = 0; i < nq; i++) {
        r->m[i] = -INFINITY;
        r->l[i] = 0.0f;
        memset(r->o + i * r->ldo, 0, (size_t)dh * sizeof(float));
    }
}

/* dst rows [nq, dh] (row stride ldd) (=|+=) o / l; rows that saw no key (l == 0) give 0. */
static void att_rows_finish(float *dst, int64_t ldd, const struct att_rows *r, int64_t nq, int64_t dh,
                            bool accumulate) {
    for (int64_t i = 0; i < nq; i++) {
        float *d = dst + i * ldd;
        const float inv = r->l[i] > 0.0f ? 1.0f / r->l[i] : 0.0f;
        const float *orow = r->o + i * r->ldo;
        if (accumulate)
            for (int64_t e = 0; e < dh; e++) d[e] += orow[e] * inv;
        else
            for (int64_t e = 0; e < dh; e++) d[e] = orow[e] * inv;
    }
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

/* dst [ATT_BK_MIN, dh] = the n rows of src (row stride ld), then zero rows. */
static const float *att_tile_widen(float *dst, const float *src, int64_t ld, int64_t n, int64_t dh) {
    for (int64_t j = 0; j < ATT_BK_MIN; j++) {
        if (j < n)
            memcpy(dst + j * dh, src + j * ld, (size_t)dh * sizeof(float));
        else
            memset(dst + j * dh, 0, (size_t)dh * sizeof(float));
    }
    return dst;
}

static int64_t causal_key_end(const struct attn_causal *c, int64_t q_global, int64_t lk) {
    const int64_t frame = q_global / c->tokens_per_frame;
    const int64_t block_end_frame = (frame / c->frames_per_block + 1) * c->frames_per_block;
    int64_t end = block_end_frame * c->tokens_per_frame - c->k_token_offset;
    return end < 0 ? 0 : (end > lk ? lk : end);
}

/* The one attention tile loop: folds keys [0, p->lk) into the streaming softmax r of query rows [q0, q0 + nq)
 * of head h, with the thread's tiles sc. */
static void att_tile_loop(const struct att_problem *p, int64_t h, int64_t q0, int64_t nq, const struct att_scratch *sc,
                          const struct att_rows *r) {
    const int64_t lq = p->q->shape[0], lk = p->lk, dh = p->dh;
    const int64_t ldq = p->q->stride[0], ldk = p->k->stride[0], ldv = p->v->stride[0];
    const float *qh = (const float *)p->q->data + q0 * ldq + h * dh;
    const float *kh = (const float *)p->k->data + h * dh;
    const float *vh = (const float *)p->v->data + h * dh;
    float *restrict s = sc->s, *restrict m = r->m, *restrict l = r->l;
    int64_t kend[ATT_BQ], kmax = 0;
    for (int64_t i = 0; i < nq; i++) {
        kend[i] = p->causal ? causal_key_end(p->causal, q0 + i + p->causal->q_token_offset, lk) : lk;
        if (kend[i] > kmax) kmax = kend[i];
    }

    for (int64_t k0 = 0; k0 < kmax; k0 += ATT_BK) {
        /* nk keys, multiplied at width nw: both follow the key count alone, not kmax, so the sgemm shapes are
         * the same for any query rows */
        const int64_t nk = lk - k0 < ATT_BK ? lk - k0 : ATT_BK;
        const float *kt = kh + k0 * ldk, *vt = vh + k0 * ldv;
        int64_t nw = nk, ldkt = ldk, ldvt = ldv;
        if (nk < ATT_BK_MIN) {
            nw = ATT_BK_MIN, ldkt = ldvt = dh;
            kt = att_tile_widen(sc->kv, kt, ldk, nk, dh);
            vt = att_tile_widen(sc->kv + ATT_BK_MIN * dh, vt, ldv, nk, dh);
        }
        kern_sgemm_row_stable(true, nq, nw, dh, p->scale, qh, ldq, kt, ldkt, 0.0f, s, ATT_BK);
        if (p->bias) { /* s[i, j] += bias[h, (k0 + j) - (q0 + i) + lq - 1] */
            const float *bh = (const float *)p->bias->data + h * p->bias->stride[0] + lq - 1 + k0 - q0;
            for (int64_t i = 0; i < nq; i++) {
                float *sr = s + i * ATT_BK;
                const float *br = bh - i;
                for (int64_t j = 0; j < nk; j++) sr[j] += br[j];
            }
        }
        for (int64_t i = 0; i < nq; i++) {
            float *sr = s + i * ATT_BK;
            int64_t lim = kend[i] - k0;
            lim = lim < 0 ? 0 : (lim > nk ? nk : lim);
            if (lim == 0) { /* this row sees none of these keys */
                memset(sr, 0, (size_t)nw * sizeof(float));
                continue;
            }
            const float mx = row_max(sr, lim, m[i]);
            const float corr = m[i] == -INFINITY ? 0.0f : vm_expf(m[i] - mx);
            const float sum = row_exp_sum(sr, lim, mx);
            for (int64_t j = lim; j < nw; j++) sr[j] = 0.0f;
            l[i] = l[i] * corr + sum;
            m[i] = mx;
            if (corr != 1.0f) {
                float *orow = r->o + i * r->ldo;
                for (int64_t e = 0; e < dh; e++) orow[e] *= corr;
            }
        }
        kern_sgemm_row_stable(false, nq, dh, nw, 1.0f, s, ATT_BK, vt, ldvt, 1.0f, r->o, r->ldo);
    }
}

/* Every (head, query tile) unit of p, in parallel. With st: the unit's rows of the state are initialised
 * (first) or carried on, and out is not touched. Without: the rows live in the thread's scratch, start
 * empty and are normalised into out (=|+= by accumulate): the one-block case. */
static void attention_run(const struct exec_ctx *ctx, const struct att_problem *p, struct attn_state *st, bool first,
                          struct tensor *out, bool accumulate) {
    const int64_t lq = p->q->shape[0], dh = p->dh;
    const int64_t n_qt = (lq + ATT_BQ - 1) / ATT_BQ;
    const int64_t units = n_qt * p->n_heads;
    const int nt = kern_cpu_threads(ctx);

#pragma omp parallel num_threads(nt)
    {
        const struct att_scratch sc = att_scratch_get();
        float m[ATT_BQ], l[ATT_BQ];
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            const int64_t h = u / n_qt, q0 = (u % n_qt) * ATT_BQ;
            const int64_t nq = lq - q0 < ATT_BQ ? lq - q0 : ATT_BQ;
            const struct att_rows r = st ? att_state_rows(st, h, q0, dh) : (struct att_rows){m, l, sc.o, dh};
            if (!st || first) att_rows_init(&r, nq, dh);
            att_tile_loop(p, h, q0, nq, &sc, &r);
            if (!st) att_rows_finish((float *)out->data + q0 * out->stride[0] + h * dh, out->stride[0], &r, nq, dh,
                                     accumulate);
        }
    }
}

void kern_attention_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                        const struct tensor *v, int n_heads, float scale, const struct attn_causal *causal,
                        bool accumulate) {
    const struct att_problem p = {q, k, v, causal, NULL, n_heads, q->shape[1] / n_heads, k->shape[0], scale};
    attention_run(ctx, &p, NULL, false, out, accumulate);
}

void kern_attention_block_cpu(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                              const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                              const struct attn_causal *causal, int64_t valid_keys, bool first_block) {
    const struct att_problem p = {q, k, v, causal, NULL, n_heads, q->shape[1] / n_heads, valid_keys, scale};
    attention_run(ctx, &p, st, first_block, NULL, false);
}

void kern_attention_finish_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                               bool accumulate) {
    const int64_t heads = st->m.shape[0], lq = st->m.shape[1], dh = st->o.shape[1] / heads;
    const int64_t n_qt = (lq + ATT_BQ - 1) / ATT_BQ, units = n_qt * heads;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && units > 1)
    for (int64_t u = 0; u < units; u++) {
        const int64_t h = u / n_qt, q0 = (u % n_qt) * ATT_BQ;
        const int64_t nq = lq - q0 < ATT_BQ ? lq - q0 : ATT_BQ;
        const struct att_rows r = att_state_rows(st, h, q0, dh);
        att_rows_finish((float *)out->data + q0 * out->stride[0] + h * dh, out->stride[0], &r, nq, dh, accumulate);
    }
}

void kern_attention_biased_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct tensor *bias, int64_t valid_keys) {
    const struct att_problem p = {q, k, v, NULL, bias, n_heads, q->shape[1] / n_heads, valid_keys, scale};
    attention_run(ctx, &p, NULL, false, out, false);
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

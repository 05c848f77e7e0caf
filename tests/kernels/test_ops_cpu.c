/* tests/kernels/test_ops_cpu.c - every CPU op against a naive double-precision reference.
 *
 * Inputs are random (never zeros), shapes include odd sizes, sizes that are not multiples of the
 * kernels' tiles, strided views into fused buffers and the real Wan head dim 128. Outputs carry
 * guard bands. Tolerances (f32 kernel vs double reference):
 *   exact-layout ops (patchify, unpatchify, copy)    atol 0, rtol 0            (pure data movement)
 *   elementwise / norms / rope / modulation          atol 1e-6, rtol 2e-6      (a few f32 roundings)
 *   linear (K up to 1536) and attention              atol 1e-5, rtol 1e-5      (long f32 dot products)
 *   vm_expf over [-87, 88]                           rtol 3e-7                  (2 ulp)
 *   VAE frame convolutions (K = Ci taps up to 27 x 40)  atol 1e-5, rtol 1e-5    (long f32 dot products)
 * Work splits of sequence parallelism (thread counts, row shards of linear and attention, key blocks of
 * op_attention_block) are compared with the unsplit call bitwise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "tests/common/compare.h"
#include "tests/common/test_util.h"

static const struct cmp_tol TOL_EXACT = {0, 0, 0};
static const struct cmp_tol TOL_ELEM = {1e-6, 2e-6, 1e-11};
static const struct cmp_tol TOL_DOT = {1e-5, 1e-5, 1e-10};

static struct exec_ctx ctx;
static unsigned long long tag = 1;

static float *rand_buf(int64_t n, float std) {
    float *p = malloc((size_t)n * sizeof(float));
    t_fill_normal(p, n, 99, tag++, std);
    return p;
}

/* A rows view [m, n] with row stride ld into p (ld >= n). */
static struct tensor rows_view(float *p, int64_t m, int64_t n, int64_t ld) {
    struct tensor t = tensor_f32_2d(p, m, n);
    t.stride[0] = ld;
    return t;
}

/* Gather a strided rows view into a dense array for comparison. */
static void gather(float *dst, const float *src, int64_t m, int64_t n, int64_t ld) {
    for (int64_t i = 0; i < m; i++) memcpy(dst + i * n, src + i * ld, (size_t)n * sizeof(float));
}

static void test_vm_exp(void) {
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double r = exp((double)x);
        double e = fabs(vm_expf(x) - r) / r;
        if (e > worst) worst = e;
    }
    printf("vm_expf: max relative error %.3g over [-87, 88]\n", worst);
    T_CHECK(worst < 3e-7, "vm_expf relative error %g", worst);
    T_CHECK(vm_expf(-200.0f) >= 0.0f && vm_expf(-200.0f) < 1e-37f, "saturates low");
    T_CHECK(isfinite(vm_expf(200.0f)), "saturates high without inf");
    T_CHECK(fabsf(vm_tanhf(0.0f)) < 1e-7f && vm_tanhf(20.0f) == 1.0f && vm_tanhf(-20.0f) == -1.0f, "tanh ends");
}

static void check_linear(int64_t m, int64_t k, int64_t n, int64_t ldx, bool bias, int threads) {
    struct exec_ctx c = exec_ctx_cpu(threads);
    float *x = rand_buf(m * ldx, 1.0f), *w = rand_buf(n * k, 0.1f), *b = rand_buf(n, 0.5f);
    float *y = guard_alloc(m * n), *ref = malloc((size_t)(m * n) * sizeof(float));
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = bias ? b[j] : 0.0;
            for (int64_t p = 0; p < k; p++) s += (double)x[i * ldx + p] * w[j * k + p];
            ref[i * n + j] = (float)s;
        }
    struct tensor xt = rows_view(x, m, k, ldx), wt = tensor_f32_2d(w, n, k), bt = tensor_f32_1d(b, n),
                  yt = tensor_f32_2d(y, m, n);
    op_linear(&c, &yt, &xt, &wt, bias ? &bt : NULL);
    char what[96];
    snprintf(what, sizeof what, "linear m=%lld k=%lld n=%lld ldx=%lld bias=%d threads=%d", (long long)m, (long long)k,
             (long long)n, (long long)ldx, bias, threads);
    cmp_check(what, y, ref, m * n, TOL_DOT);
    T_CHECK(guard_intact(y, m * n), "%s: guard band", what);
    free(x), free(w), free(b), free(ref), guard_free(y);
}

/* Bit-identical for 1, 2 and 3 threads. OpenBLAS rounds an element differently depending on the shape
 * of the sgemm call that computes it, so a partition that follows the thread count (as the first CPU
 * backend's did: 2736 differing outputs of a [16, 3, 8, 8] DiT forward) shows up here. */
static void check_linear_threads(int64_t m, int64_t k, int64_t n, int64_t ldx) {
    float *x = rand_buf(m * ldx, 1.0f), *w = rand_buf(n * k, 0.1f), *b = rand_buf(n, 0.5f);
    float *y[3];
    struct tensor xt = rows_view(x, m, k, ldx), wt = tensor_f32_2d(w, n, k), bt = tensor_f32_1d(b, n);
    for (int t = 0; t < 3; t++) {
        struct exec_ctx c = exec_ctx_cpu(t + 1);
        y[t] = malloc((size_t)(m * n) * sizeof(float));
        struct tensor yt = tensor_f32_2d(y[t], m, n);
        op_linear(&c, &yt, &xt, &wt, &bt);
    }
    int64_t diff2 = 0, diff3 = 0;
    for (int64_t i = 0; i < m * n; i++) {
        diff2 += memcmp(&y[0][i], &y[1][i], sizeof(float)) != 0;
        diff3 += memcmp(&y[0][i], &y[2][i], sizeof(float)) != 0;
    }
    printf("linear m=%lld k=%lld n=%lld: elements differing from 1 thread: %lld with 2 threads, %lld with 3\n",
           (long long)m, (long long)k, (long long)n, (long long)diff2, (long long)diff3);
    T_CHECK(diff2 == 0 && diff3 == 0, "linear m=%lld k=%lld n=%lld depends on the thread count", (long long)m,
            (long long)k, (long long)n);
    free(x), free(w), free(b), free(y[0]), free(y[1]), free(y[2]);
}

static void test_linear_threads(void) {
    /* the tiny DiT (width 256, FFN 512, text 64, patch 1x2x2) at 48 tokens, 32 text rows, 3 frames */
    check_linear_threads(48, 64, 256, 64);    /* patch embedding */
    check_linear_threads(48, 256, 256, 256);  /* q, k, v, o */
    check_linear_threads(48, 256, 512, 256);  /* FFN in */
    check_linear_threads(48, 512, 256, 512);  /* FFN out */
    check_linear_threads(48, 256, 64, 256);   /* head */
    check_linear_threads(32, 64, 256, 64);    /* text embedding */
    check_linear_threads(3, 256, 1536, 256);  /* time projection: a few rows, 6 D columns */
    check_linear_threads(1, 256, 1536, 256);  /* fps embedding (one row): differed before tiling */
    check_linear_threads(256, 256, 256, 256); /* the tiny model's example input (256 tokens) */
    check_linear_threads(16, 64, 100, 64);    /* columns not a multiple of 16 */
    check_linear_threads(96, 96, 16, 100);    /* few columns, strided x */
    check_linear_threads(2100, 40, 300, 40);  /* several row and column tiles */
}

/* Attention units are (head, query tile) with fixed tiles: bit-identical for any thread count. */
static void test_attention_threads(void) {
    const int64_t lq = 300, lk = 300, heads = 3, dh = 64, w = heads * dh;
    float *q = rand_buf(lq * w, 1.0f), *k = rand_buf(lk * w, 1.0f), *v = rand_buf(lk * w, 1.0f);
    struct attn_causal cz = {.tokens_per_frame = 30, .frames_per_block = 2};
    for (int causal = 0; causal < 2; causal++) {
        float *y[3];
        for (int t = 0; t < 3; t++) {
            struct exec_ctx c = exec_ctx_cpu(t + 1);
            y[t] = malloc((size_t)(lq * w) * sizeof(float));
            struct tensor qt = tensor_f32_2d(q, lq, w), kt = tensor_f32_2d(k, lk, w), vt = tensor_f32_2d(v, lk, w),
                          ot = tensor_f32_2d(y[t], lq, w);
            op_attention(&c, &ot, &qt, &kt, &vt, (int)heads, 0.125f, causal ? &cz : NULL, false);
        }
        const size_t bytes = (size_t)(lq * w) * sizeof(float);
        T_CHECK(!memcmp(y[0], y[1], bytes) && !memcmp(y[0], y[2], bytes),
                "attention (causal %d) depends on the thread count", causal);
        free(y[0]), free(y[1]), free(y[2]);
    }
    free(q), free(k), free(v);
}

/* Rows of an output that differ bitwise between two row-major buffers of n columns (a: lda, b: ldb). */
static int64_t rows_differing(const float *a, int64_t lda, const float *b, int64_t ldb, int64_t m, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < m; i++) bad += memcmp(a + i * lda, b + i * ldb, (size_t)n * sizeof(float)) != 0;
    return bad;
}

/* Row subsets [r0, r0 + len) of an m-row problem: single rows, small and odd counts, a tile and a bit. */
static int row_subsets(int64_t m, int64_t (*sub)[2], int max) {
    static const int64_t lens[] = {1, 2, 3, 5, 8, 13, 31, 64, 100, 129, 255, 511};
    int n = 0;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0] && n < max - 1; i++)
        if (lens[i] < m) sub[n][0] = (lens[i] * 7 + 3) % (m - lens[i] + 1), sub[n++][1] = lens[i];
    sub[n][0] = m > 1 ? 1 : 0, sub[n++][1] = m > 1 ? m - 1 : m; /* all but the first row */
    return n;
}

/* Sequence parallelism: a rank computes rows [r0, r0 + len) of y = x w^T + b alone, and they must equal those
 * rows of the call on all m rows bit for bit. OpenBLAS 0.3.21 broke this: its small-matrix kernels (calls with
 * M N K <= 1e6) round differently from its blocked path (see kern_sgemm_row_stable). */
static void check_linear_rows(int64_t m, int64_t n, int64_t k) {
    float *x = rand_buf(m * k, 1.0f), *w = rand_buf(n * k, 0.1f), *b = rand_buf(n, 0.5f);
    float *y = malloc((size_t)(m * n) * sizeof(float)), *ys = malloc((size_t)(m * n) * sizeof(float));
    struct tensor xt = tensor_f32_2d(x, m, k), wt = tensor_f32_2d(w, n, k), bt = tensor_f32_1d(b, n),
                  yt = tensor_f32_2d(y, m, n);
    op_linear(&ctx, &yt, &xt, &wt, &bt);
    int64_t sub[16][2], bad = 0, rows = 0;
    const int ns = row_subsets(m, sub, 16);
    for (int s = 0; s < ns; s++) {
        const int64_t r0 = sub[s][0], len = sub[s][1];
        struct tensor xs = tensor_f32_2d(x + r0 * k, len, k), yst = tensor_f32_2d(ys, len, n);
        op_linear(&ctx, &yst, &xs, &wt, &bt);
        bad += rows_differing(ys, n, y + r0 * n, n, len, n);
        rows += len;
    }
    T_CHECK(bad == 0, "linear m=%lld n=%lld k=%lld: %lld of %lld rows computed alone differ from the full call",
            (long long)m, (long long)n, (long long)k, (long long)bad, (long long)rows);
    free(x), free(w), free(b), free(y), free(ys);
}

static void test_linear_rows(void) {
    static const int64_t dims[] = {16, 33, 64, 100, 256, 512};
    const int nd = (int)(sizeof dims / sizeof dims[0]);
    for (int i = 0; i < nd; i++)
        for (int j = 0; j < nd; j++) {
            check_linear_rows(600, dims[i], dims[j]);
            if ((i + j) % 3 == 0) check_linear_rows(37, dims[i], dims[j]);
        }
    check_linear_rows(5, 16, 16);
    check_linear_rows(2, 1536, 256);   /* the time projection of one or two timesteps */
    check_linear_rows(2100, 1000, 64); /* the full call tiles its columns differently from a shard */
}

/* Attention for a shard of query rows (global rows [r0, r0 + len), keys all) equals those rows of the full call
 * bitwise, with and without block-causal masks. */
static void check_attention_rows(int64_t l, int heads, int64_t dh, const struct attn_causal *cz) {
    const int64_t w = heads * dh;
    float *q = rand_buf(l * w, 1.0f), *k = rand_buf(l * w, 1.0f), *v = rand_buf(l * w, 1.0f);
    float *out = malloc((size_t)(l * w) * sizeof(float)), *os = malloc((size_t)(l * w) * sizeof(float));
    const float scale = 1.0f / sqrtf((float)dh);
    struct tensor qt = tensor_f32_2d(q, l, w), kt = tensor_f32_2d(k, l, w), vt = tensor_f32_2d(v, l, w),
                  ot = tensor_f32_2d(out, l, w);
    op_attention(&ctx, &ot, &qt, &kt, &vt, heads, scale, cz, false);
    int64_t sub[16][2], bad = 0, rows = 0;
    const int ns = row_subsets(l, sub, 16);
    for (int s = 0; s < ns; s++) {
        const int64_t r0 = sub[s][0], len = sub[s][1];
        struct attn_causal c = cz ? *cz : (struct attn_causal){0};
        c.q_token_offset += r0;
        struct tensor qs = tensor_f32_2d(q + r0 * w, len, w), ost = tensor_f32_2d(os, len, w);
        op_attention(&ctx, &ost, &qs, &kt, &vt, heads, scale, cz ? &c : NULL, false);
        bad += rows_differing(os, w, out + r0 * w, w, len, w);
        rows += len;
    }
    T_CHECK(bad == 0, "attention l=%lld heads=%d dh=%lld causal=%d: %lld of %lld query rows computed alone differ",
            (long long)l, heads, (long long)dh, cz != NULL, (long long)bad, (long long)rows);
    free(q), free(k), free(v), free(out), free(os);
}

static void test_attention_rows(void) {
    const struct attn_causal c2 = {.tokens_per_frame = 30, .frames_per_block = 2};
    const struct attn_causal c3 = {.tokens_per_frame = 50, .frames_per_block = 3};
    check_attention_rows(300, 2, 64, NULL);
    check_attention_rows(300, 1, 128, &c2);
    check_attention_rows(700, 3, 128, NULL);
    check_attention_rows(700, 2, 64, &c3);
    check_attention_rows(37, 3, 64, &c2);
    check_attention_rows(257, 2, 128, NULL); /* I2V image tokens: a last key tile of one key */
}

/* Ring attention: keys in blocks of the given lengths (each starting at a multiple of OP_ATTENTION_KEY_TILE),
 * folded in order by op_attention_block and normalised by op_attention_finish, equal op_attention on all keys
 * bitwise. Each block sits in a buffer with pad extra rows of NaN (valid_keys < the block's rows) that must never
 * be read. q is global token rows [q_off, q_off + lq). */
static void check_attention_blocks(int64_t lq, int64_t q_off, int64_t lk, const int64_t *blocks, int heads,
                                   int64_t dh, const struct attn_causal *cz, int64_t pad, bool accumulate) {
    const int64_t w = heads * dh;
    float *q = rand_buf(lq * w, 1.0f), *k = rand_buf(lk * w, 1.0f), *v = rand_buf(lk * w, 1.0f);
    float *ref = rand_buf(lq * w, 1.0f), *out = guard_alloc(lq * w);
    memcpy(out, ref, (size_t)(lq * w) * sizeof(float));
    float *m = malloc((size_t)(heads * lq) * sizeof(float)), *l = malloc((size_t)(heads * lq) * sizeof(float));
    float *o = malloc((size_t)(lq * w) * sizeof(float));
    const float scale = 1.0f / sqrtf((float)dh);
    struct attn_causal c = cz ? *cz : (struct attn_causal){.tokens_per_frame = 1, .frames_per_block = 1};
    c.q_token_offset = q_off;
    struct tensor qt = tensor_f32_2d(q, lq, w), kt = tensor_f32_2d(k, lk, w), vt = tensor_f32_2d(v, lk, w),
                  rt = tensor_f32_2d(ref, lq, w), ot = tensor_f32_2d(out, lq, w);
    op_attention(&ctx, &rt, &qt, &kt, &vt, heads, scale, cz ? &c : NULL, accumulate);
    struct attn_state st = {tensor_f32_2d(m, heads, lq), tensor_f32_2d(l, heads, lq), tensor_f32_2d(o, lq, w)};
    char what[160];
    int n = snprintf(what, sizeof what, "attention blocks lq=%lld (at %lld) lk=%lld heads=%d dh=%lld causal=%d",
                     (long long)lq, (long long)q_off, (long long)lk, heads, (long long)dh, cz != NULL);
    n += snprintf(what + n, sizeof what - (size_t)n, " pad=%lld:", (long long)pad);
    for (int64_t b = 0, off = 0; off < lk; off += blocks[b++]) {
        const int64_t len = blocks[b] < lk - off ? blocks[b] : lk - off, rows = len + pad;
        n += snprintf(what + n, sizeof what - (size_t)n, " %lld", (long long)len);
        float *kb = malloc((size_t)(rows * w) * sizeof(float)), *vb = malloc((size_t)(rows * w) * sizeof(float));
        memcpy(kb, k + off * w, (size_t)(len * w) * sizeof(float));
        memcpy(vb, v + off * w, (size_t)(len * w) * sizeof(float));
        for (int64_t i = len * w; i < rows * w; i++) kb[i] = vb[i] = NAN;
        struct tensor kbt = tensor_f32_2d(kb, rows, w), vbt = tensor_f32_2d(vb, rows, w);
        c.k_token_offset = off;
        op_attention_block(&ctx, &st, &qt, &kbt, &vbt, heads, scale, cz ? &c : NULL, len, b == 0);
        free(kb), free(vb);
    }
    op_attention_finish(&ctx, &ot, &st, accumulate);
    bool finite = true;
    for (int64_t i = 0; i < lq * w; i++) finite &= isfinite(out[i]);
    T_CHECK(finite, "%s non-finite output", what);
    T_CHECK(!memcmp(out, ref, (size_t)(lq * w) * sizeof(float)), "%s differs from op_attention on all keys", what);
    T_CHECK(guard_intact(out, lq * w), "%s guard band", what);
    free(q), free(k), free(v), free(ref), free(m), free(l), free(o), guard_free(out);
}

static void test_attention_blocks(void) {
    const struct attn_causal c1 = {.tokens_per_frame = 50, .frames_per_block = 3};
    const struct attn_causal c2 = {.tokens_per_frame = 100, .frames_per_block = 2};
    const int64_t b256[] = {256, 256, 256, 256, 256}, b512[] = {512, 512, 512};
    const int64_t uneven[] = {256, 768, 1024}, one[] = {1100};
    check_attention_blocks(300, 0, 300, b256, 2, 64, NULL, 0, false);
    check_attention_blocks(300, 0, 300, b256, 1, 128, &c1, 13, false);
    check_attention_blocks(700, 0, 700, b256, 3, 128, &c1, 0, false);
    check_attention_blocks(700, 0, 700, b512, 1, 64, NULL, 100, true);
    check_attention_blocks(700, 0, 700, uneven, 2, 128, &c1, 7, false);
    check_attention_blocks(1100, 0, 1100, uneven, 3, 64, &c2, 0, false);
    check_attention_blocks(1100, 0, 1100, b512, 2, 128, &c2, 61, false);
    check_attention_blocks(1100, 0, 1100, one, 1, 128, &c2, 200, true); /* one block with padding */
    check_attention_blocks(300, 400, 1100, b256, 3, 128, &c2, 5, false); /* a query shard of a ring */
    check_attention_blocks(1, 1099, 1100, uneven, 2, 64, &c1, 0, false);
    check_attention_blocks(129, 0, 257, b256, 2, 128, NULL, 3, true);

    /* Queries before the block's first visible key see nothing and give 0 (frames of 50 tokens, keys from 256). */
    const int heads = 2;
    const int64_t lq = 300, lk = 300, dh = 64, w = heads * dh;
    float *q = rand_buf(lq * w, 1.0f), *k = rand_buf(lk * w, 1.0f), *v = rand_buf(lk * w, 1.0f);
    float *ref = malloc((size_t)(lq * w) * sizeof(float)), *out = malloc((size_t)(lq * w) * sizeof(float));
    float *m = malloc((size_t)(heads * lq) * sizeof(float)), *l = malloc((size_t)(heads * lq) * sizeof(float));
    float *o = malloc((size_t)(lq * w) * sizeof(float));
    const struct attn_causal c = {.tokens_per_frame = 50, .frames_per_block = 1, .k_token_offset = 256};
    struct tensor qt = tensor_f32_2d(q, lq, w), kt = tensor_f32_2d(k, lk, w), vt = tensor_f32_2d(v, lk, w),
                  rt = tensor_f32_2d(ref, lq, w), ot = tensor_f32_2d(out, lq, w);
    struct attn_state st = {tensor_f32_2d(m, heads, lq), tensor_f32_2d(l, heads, lq), tensor_f32_2d(o, lq, w)};
    op_attention(&ctx, &rt, &qt, &kt, &vt, heads, 0.125f, &c, false);
    op_attention_block(&ctx, &st, &qt, &kt, &vt, heads, 0.125f, &c, lk, true);
    op_attention_finish(&ctx, &ot, &st, false);
    bool zeros = true, finite = true;
    for (int64_t i = 0; i < 250 * w; i++) zeros &= out[i] == 0.0f;
    for (int64_t i = 250 * w; i < lq * w; i++) finite &= isfinite(out[i]) && out[i] != 0.0f;
    T_CHECK(zeros && finite, "attention block: rows that see no key must give 0, the others finite values");
    T_CHECK(!memcmp(out, ref, (size_t)(lq * w) * sizeof(float)), "attention block with masked rows differs");
    free(q), free(k), free(v), free(ref), free(out), free(m), free(l), free(o);
}

static void ref_layernorm(double *out, const float *x, int64_t d, const float *g, const float *b, double eps) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; j++) mean += x[j];
    mean /= d;
    for (int64_t j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
    var /= d;
    for (int64_t j = 0; j < d; j++) {
        double v = (x[j] - mean) / sqrt(var + eps);
        out[j] = v * (g ? g[j] : 1.0) + (b ? b[j] : 0.0);
    }
}

static void test_norms(void) {
    const int64_t m = 37, d = 1536, ld = 1600;
    float *x = rand_buf(m * ld, 2.0f), *g = rand_buf(d, 1.0f), *b = rand_buf(d, 1.0f);
    for (int64_t i = 0; i < m * ld; i++) x[i] += 0.5f; /* non-zero mean */
    float *y = guard_alloc(m * d), *ref = malloc((size_t)(m * d) * sizeof(float));
    double *row = malloc((size_t)d * sizeof(double));
    struct tensor xt = rows_view(x, m, d, ld), yt = tensor_f32_2d(y, m, d), gt = tensor_f32_1d(g, d),
                  bt = tensor_f32_1d(b, d);
    for (int affine = 0; affine < 2; affine++) {
        for (int64_t i = 0; i < m; i++) {
            ref_layernorm(row, x + i * ld, d, affine ? g : NULL, affine ? b : NULL, 1e-6);
            for (int64_t j = 0; j < d; j++) ref[i * d + j] = (float)row[j];
        }
        op_layernorm(&ctx, &yt, &xt, affine ? &gt : NULL, affine ? &bt : NULL, 1e-6f);
        cmp_check(affine ? "layernorm affine" : "layernorm", y, ref, m * d, TOL_ELEM);
    }
    for (int64_t i = 0; i < m; i++) {
        double ss = 0;
        for (int64_t j = 0; j < d; j++) ss += (double)x[i * ld + j] * x[i * ld + j];
        double r = 1.0 / sqrt(ss / d + 1e-6);
        for (int64_t j = 0; j < d; j++) ref[i * d + j] = (float)(x[i * ld + j] * r * g[j]);
    }
    op_rmsnorm(&ctx, &yt, &xt, &gt, 1e-6f);
    cmp_check("rmsnorm", y, ref, m * d, TOL_ELEM);
    /* in place on a strided view (q inside a fused qkv buffer) */
    float *dense = malloc((size_t)(m * d) * sizeof(float));
    op_rmsnorm(&ctx, &xt, &xt, &gt, 1e-6f);
    gather(dense, x, m, d, ld);
    cmp_check("rmsnorm in place, strided", dense, ref, m * d, TOL_ELEM);
    T_CHECK(guard_intact(y, m * d), "norm guard band");
    free(x), free(g), free(b), free(ref), free(row), free(dense), guard_free(y);
}

static void test_modulation(void) {
    /* 3 frames of 5 tokens, a shard starting at global token 4 (row_offset) */
    const int64_t frames = 3, tpf = 5, d = 70, m = 9, off = 4, six = 6 * d;
    float *x = rand_buf(m * d, 1.5f), *tab = rand_buf(frames * six, 0.3f), *r = rand_buf(m * d, 1.0f);
    float *y = guard_alloc(m * d), *ref = malloc((size_t)(m * d) * sizeof(float));
    double *row = malloc((size_t)d * sizeof(double));
    struct tensor shift = rows_view(tab, frames, d, six), scale = rows_view(tab + d, frames, d, six),
                  gate = rows_view(tab + 2 * d, frames, d, six);
    struct tensor xt = tensor_f32_2d(x, m, d), yt = tensor_f32_2d(y, m, d), rt = tensor_f32_2d(r, m, d);
    for (int64_t i = 0; i < m; i++) {
        const int64_t f = (i + off) / tpf;
        ref_layernorm(row, x + i * d, d, NULL, NULL, 1e-6);
        for (int64_t j = 0; j < d; j++) ref[i * d + j] = (float)(row[j] * (1.0 + tab[f * six + d + j]) + tab[f * six + j]);
    }
    op_norm_modulate(&ctx, &yt, &xt, &shift, &scale, tpf, off, 1e-6f);
    cmp_check("norm_modulate per frame with offset", y, ref, m * d, TOL_ELEM);
    for (int64_t i = 0; i < m; i++) {
        const int64_t f = (i + off) / tpf;
        for (int64_t j = 0; j < d; j++) ref[i * d + j] = (float)((double)x[i * d + j] + (double)r[i * d + j] * tab[f * six + 2 * d + j]);
    }
    op_gated_add(&ctx, &xt, &rt, &gate, tpf, off);
    cmp_check("gated_add per frame with offset", x, ref, m * d, TOL_ELEM);
    memcpy(ref, x, (size_t)(m * d) * sizeof(float));
    for (int64_t i = 0; i < m * d; i++) ref[i] += r[i];
    op_gated_add(&ctx, &xt, &rt, NULL, 1, 0);
    cmp_check("gated_add without gate", x, ref, m * d, TOL_ELEM);
    struct tensor row0 = tensor_f32_1d(tab, d);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < d; j++) ref[i * d + j] = r[i * d + j] + tab[j];
    op_add_row(&ctx, &yt, &rt, &row0);
    cmp_check("add_row", y, ref, m * d, TOL_ELEM);
    T_CHECK(guard_intact(y, m * d), "modulation guard band");
    free(x), free(tab), free(r), free(ref), free(row), guard_free(y);
}

static void test_activations(void) {
    const int64_t m = 13, n = 257;
    float *x = rand_buf(m * n, 3.0f), *y = guard_alloc(m * n), *ref = malloc((size_t)(m * n) * sizeof(float));
    x[0] = -30.0f, x[1] = 30.0f, x[2] = 1e-4f, x[3] = -1e-4f; /* saturated ends and the cancellation region */
    struct tensor xt = tensor_f32_2d(x, m, n), yt = tensor_f32_2d(y, m, n);
    for (int64_t i = 0; i < m * n; i++) ref[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
    op_silu(&ctx, &yt, &xt);
    cmp_check("silu", y, ref, m * n, TOL_ELEM);
    for (int64_t i = 0; i < m * n; i++) {
        double v = x[i];
        ref[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
    }
    op_gelu_tanh(&ctx, &yt, &xt);
    cmp_check("gelu_tanh", y, ref, m * n, TOL_ELEM);
    for (int64_t i = 0; i < m * n; i++) ref[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
    op_gelu_erf(&ctx, &yt, &xt);
    cmp_check("gelu_erf", y, ref, m * n, TOL_ELEM);
    /* contiguous 3-D tensor, in place */
    struct tensor x3 = tensor_f32_3d(x, m, 1, n);
    for (int64_t i = 0; i < m * n; i++) ref[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
    op_silu(&ctx, &x3, &x3);
    cmp_check("silu 3-D in place", x, ref, m * n, TOL_ELEM);
    T_CHECK(guard_intact(y, m * n), "activation guard band");
    free(x), free(ref), guard_free(y);
}

/* RoPE reference straight from spec 3.3: adjacent pairs, split [c-2(c/3), c/3, c/3], per-axis dims. */
static void test_rope(void) {
    const int heads = 3;
    const int64_t dh = 128, c = dh / 2, grid[3] = {3, 4, 5}, l_all = 60, off = 7, l = 40, ld = 3 * heads * dh;
    const int split[3] = {(int)(c - 2 * (c / 3)), (int)(c / 3), (int)(c / 3)};
    const int64_t daxis[3] = {dh - 4 * (dh / 6), 2 * (dh / 6), 2 * (dh / 6)};
    T_CHECK(split[0] == 22 && split[1] == 21 && daxis[0] == 44 && daxis[1] == 42, "Wan split 22/21/21");
    const int64_t p_max = 16;
    float *tab = malloc((size_t)(p_max * c * 2) * sizeof(float));
    double *omega = malloc((size_t)c * sizeof(double));
    int *axis = malloc((size_t)c * sizeof(int));
    for (int64_t j = 0, a = 0, jj = 0; j < c; j++, jj++) {
        while (jj >= split[a]) jj -= split[a], a++;
        axis[j] = (int)a;
        omega[j] = 1.0 / pow(10000.0, 2.0 * (double)jj / (double)daxis[a]);
    }
    for (int64_t p = 0; p < p_max; p++)
        for (int64_t j = 0; j < c; j++) {
            tab[(p * c + j) * 2] = (float)cos(p * omega[j]);
            tab[(p * c + j) * 2 + 1] = (float)sin(p * omega[j]);
        }
    (void)l_all;
    float *buf = rand_buf(l * ld, 1.0f), *orig = malloc((size_t)(l * ld) * sizeof(float));
    memcpy(orig, buf, (size_t)(l * ld) * sizeof(float));
    float *ref = malloc((size_t)(l * heads * dh) * sizeof(float)), *got = malloc((size_t)(l * heads * dh) * sizeof(float));
    for (int64_t i = 0; i < l; i++) {
        const int64_t t = i + off, pos[3] = {t / 20, (t / 5) % 4, t % 5};
        for (int h = 0; h < heads; h++)
            for (int64_t j = 0; j < c; j++) {
                const double ang = pos[axis[j]] * omega[j];
                const double a = orig[i * ld + h * dh + 2 * j], b = orig[i * ld + h * dh + 2 * j + 1];
                ref[(i * heads + h) * dh + 2 * j] = (float)(a * cos(ang) - b * sin(ang));
                ref[(i * heads + h) * dh + 2 * j + 1] = (float)(a * sin(ang) + b * cos(ang));
            }
    }
    struct tensor xt = rows_view(buf + heads * dh, l, heads * dh, ld); /* the k part of a qkv buffer */
    for (int64_t i = 0; i < l; i++) memcpy(buf + i * ld + heads * dh, orig + i * ld, (size_t)(heads * dh) * sizeof(float));
    struct tensor ft = tensor_make(DTYPE_F32, DEVICE_CPU, tab, 3, (int64_t[]){p_max, c, 2});
    op_rope3d(&ctx, &xt, heads, grid, off, &ft, split);
    gather(got, buf + heads * dh, l, heads * dh, ld);
    cmp_check("rope3d (shard offset 7, strided k)", got, ref, l * heads * dh, TOL_ELEM);
    bool untouched = true;
    for (int64_t i = 0; i < l; i++) /* the q part must be untouched */
        untouched &= !memcmp(buf + i * ld, orig + i * ld, (size_t)(heads * dh) * sizeof(float));
    T_CHECK(untouched, "rope wrote outside its view");
    free(tab), free(omega), free(axis), free(buf), free(orig), free(ref), free(got);
}

/* Dense softmax attention in double. kend(i): number of visible keys for query i. */
static void ref_attention(float *out, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                          int64_t ldv, int64_t lq, int64_t lk, int heads, int64_t dh, double scale,
                          const struct attn_causal *cz, bool accumulate) {
    double *s = malloc((size_t)lk * sizeof(double));
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < lq; i++) {
            int64_t kend = lk;
            if (cz) {
                int64_t fq = (i + cz->q_token_offset) / cz->tokens_per_frame;
                int64_t end = ((fq / cz->frames_per_block) + 1) * cz->frames_per_block * cz->tokens_per_frame - cz->k_token_offset;
                kend = end < lk ? end : lk;
            }
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < kend; j++) {
                double d = 0;
                for (int64_t e = 0; e < dh; e++) d += (double)q[i * ldq + h * dh + e] * k[j * ldk + h * dh + e];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < kend; j++) sum += (s[j] = exp(s[j] - mx));
            for (int64_t e = 0; e < dh; e++) {
                double o = 0;
                for (int64_t j = 0; j < kend; j++) o += s[j] * v[j * ldv + h * dh + e];
                float *dst = &out[(i * heads + h) * dh + e];
                *dst = (float)((accumulate ? *dst : 0.0) + o / sum);
            }
        }
    free(s);
}

static void check_attention(const char *what, int64_t lq, int64_t lk, int heads, int64_t dh,
                            const struct attn_causal *cz, bool accumulate, bool fused) {
    const int64_t w = heads * dh;
    /* fused: q, k, v are column blocks of one [L, 3w] buffer (self-attention layout) */
    const int64_t ld = fused ? 3 * w : w;
    float *qb = rand_buf((fused ? lq : lq) * ld, 1.0f);
    float *kb = fused ? qb + w : rand_buf(lk * ld, 1.0f);
    float *vb = fused ? qb + 2 * w : rand_buf(lk * ld, 1.0f);
    float *out = guard_alloc(lq * w), *ref = malloc((size_t)(lq * w) * sizeof(float));
    t_fill_normal(out, lq * w, 5, tag++, 1.0f);
    memcpy(ref, out, (size_t)(lq * w) * sizeof(float));
    const double scale = 1.0 / sqrt((double)dh);
    ref_attention(ref, qb, ld, kb, ld, vb, ld, lq, lk, heads, dh, scale, cz, accumulate);
    struct tensor qt = rows_view(qb, lq, w, ld), kt = rows_view(kb, lk, w, ld), vt = rows_view(vb, lk, w, ld),
                  ot = tensor_f32_2d(out, lq, w);
    op_attention(&ctx, &ot, &qt, &kt, &vt, heads, (float)scale, cz, accumulate);
    cmp_check(what, out, ref, lq * w, TOL_DOT);
    T_CHECK(guard_intact(out, lq * w), "%s: guard band", what);
    free(qb);
    if (!fused) free(kb), free(vb);
    free(ref), guard_free(out);
}

static void test_attention(void) {
    check_attention("attention self 300x300 2 heads dh128 (fused qkv)", 300, 300, 2, 128, NULL, false, true);
    check_attention("attention cross 77 queries x 45 keys, 3 heads dh64", 77, 45, 3, 64, NULL, false, false);
    check_attention("attention 1 query 1 key", 1, 1, 1, 128, NULL, false, false);
    check_attention("attention accumulate (I2V image branch)", 65, 257, 2, 128, NULL, true, false);
    struct attn_causal c1 = {.tokens_per_frame = 20, .frames_per_block = 1};
    check_attention("attention block-causal block 1 (6 frames x 20 tokens)", 120, 120, 2, 128, &c1, false, true);
    struct attn_causal c2 = {.tokens_per_frame = 30, .frames_per_block = 2};
    check_attention("attention block-causal block 2 (10 frames x 30 tokens)", 300, 300, 1, 128, &c2, false, true);
    /* a sequence-parallel shard: queries are global tokens [90, 190) against all 300 keys */
    struct attn_causal c3 = {.tokens_per_frame = 30, .frames_per_block = 2, .q_token_offset = 90, .k_token_offset = 0};
    check_attention("attention block-causal, query shard at offset 90", 100, 300, 2, 128, &c3, false, false);
    /* causal with all frames in one block equals full attention */
    struct attn_causal call = {.tokens_per_frame = 10, .frames_per_block = 8};
    check_attention("attention block-causal single block", 80, 80, 2, 128, &call, false, true);
    /* large logits: the running max must keep the softmax finite */
    const int64_t l = 70, w = 128;
    float *q = rand_buf(l * w, 30.0f), *k = rand_buf(l * w, 30.0f), *v = rand_buf(l * w, 1.0f);
    float *o = malloc((size_t)(l * w) * sizeof(float));
    struct tensor qt = tensor_f32_2d(q, l, w), kt = tensor_f32_2d(k, l, w), vt = tensor_f32_2d(v, l, w),
                  ot = tensor_f32_2d(o, l, w);
    op_attention(&ctx, &ot, &qt, &kt, &vt, 1, 1.0f, NULL, false);
    bool finite = true;
    for (int64_t i = 0; i < l * w; i++) finite &= isfinite(o[i]);
    T_CHECK(finite, "attention with logits ~1e5 produced non-finite values");
    free(q), free(k), free(v), free(o);
}

/* Spec 8.3: the bucket of every relative position in [-200, 200]. */
static void test_t5_bucket(void) {
    static const struct {
        int lo, hi, bucket; /* |r| range for negative r */
    } neg[] = {{8, 11, 8}, {12, 15, 9}, {16, 22, 10}, {23, 31, 11}, {32, 45, 12}, {46, 63, 13}, {64, 90, 14}, {91, 200, 15}};
    int bad = 0;
    for (int r = -200; r <= 200; r++) {
        const int a = r < 0 ? -r : r;
        int want;
        if (a < 8) {
            want = (r > 0 ? 16 : 0) + a;
        } else {
            want = -1;
            for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
                if (a >= neg[i].lo && a <= neg[i].hi) want = neg[i].bucket + (r > 0 ? 16 : 0);
        }
        if (t5_relative_bucket(r, 32, 128) != want) {
            if (bad++ < 5) fprintf(stderr, "bucket(%d) = %d, spec says %d\n", r, t5_relative_bucket(r, 32, 128), want);
        }
    }
    T_CHECK(bad == 0, "%d relative positions in [-200, 200] differ from the table of spec 8.3", bad);
}

/* umT5 attention: unscaled scores + relative bias, padding keys masked. */
static void test_attention_biased(void) {
    const int heads = 3;
    const int64_t l = 70, dh = 16, w = heads * dh, valid = 53, span = 2 * l - 1;
    float *q = rand_buf(l * w, 0.3f), *k = rand_buf(l * w, 0.3f), *v = rand_buf(l * w, 1.0f);
    float *table = rand_buf(32 * heads, 1.0f), *bias = guard_alloc(heads * span);
    struct tensor tt = tensor_f32_2d(table, 32, heads), bt = tensor_f32_2d(bias, heads, span);
    op_t5_relbias(&ctx, &bt, &tt, 32, 128, l);
    bool bias_ok = guard_intact(bias, heads * span);
    for (int h = 0; h < heads; h++)
        for (int64_t r = -(l - 1); r < l; r++)
            bias_ok &= bias[h * span + r + l - 1] == table[t5_relative_bucket(r, 32, 128) * heads + h];
    T_CHECK(bias_ok, "t5 relative bias gather");
    float *out = guard_alloc(l * w), *ref = malloc((size_t)(l * w) * sizeof(float));
    double *sc = malloc((size_t)l * sizeof(double));
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < l; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < valid; j++) {
                double d = 0;
                for (int64_t e = 0; e < dh; e++) d += (double)q[i * w + h * dh + e] * k[j * w + h * dh + e];
                sc[j] = d + bias[h * span + j - i + l - 1];
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int64_t j = 0; j < valid; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int64_t e = 0; e < dh; e++) {
                double o = 0;
                for (int64_t j = 0; j < valid; j++) o += sc[j] * v[j * w + h * dh + e];
                ref[i * w + h * dh + e] = (float)(o / sum);
            }
        }
    struct tensor qt = tensor_f32_2d(q, l, w), kt = tensor_f32_2d(k, l, w), vt = tensor_f32_2d(v, l, w),
                  ot = tensor_f32_2d(out, l, w);
    op_attention_biased(&ctx, &ot, &qt, &kt, &vt, heads, 1.0f, &bt, valid);
    cmp_check("attention with relative bias, 53 of 70 keys valid", out, ref, l * w, TOL_DOT);
    T_CHECK(guard_intact(out, l * w), "biased attention guard band");
    free(q), free(k), free(v), free(table), free(ref), free(sc), guard_free(bias), guard_free(out);
}

static void test_layout(void) {
    const int64_t c = 5, f = 3, h = 6, w = 10, pt = 1, ph = 2, pw = 2;
    const int patch[3] = {(int)pt, (int)ph, (int)pw};
    const int64_t hp = h / ph, wp = w / pw, l = f * hp * wp, cols = c * pt * ph * pw, n = c * f * h * w;
    float *lat = rand_buf(n, 1.0f), *tok = guard_alloc(l * cols), *ref = malloc((size_t)(l * cols) * sizeof(float));
    for (int64_t ff = 0; ff < f; ff++)
        for (int64_t yy = 0; yy < hp; yy++)
            for (int64_t xx = 0; xx < wp; xx++)
                for (int64_t cc = 0; cc < c; cc++)
                    for (int64_t ky = 0; ky < ph; ky++)
                        for (int64_t kx = 0; kx < pw; kx++)
                            ref[((ff * hp + yy) * wp + xx) * cols + cc * 4 + ky * 2 + kx] =
                                lat[((cc * f + ff) * h + yy * 2 + ky) * w + xx * 2 + kx];
    struct tensor lt = tensor_f32_4d(lat, c, f, h, w), tt = tensor_f32_2d(tok, l, cols);
    op_patchify(&ctx, &tt, &lt, patch);
    cmp_check("patchify (c, ky, kx) columns", tok, ref, l * cols, TOL_EXACT);
    /* unpatchify is channel-last: column ((ky * 2) + kx) * c + cc */
    float *out = guard_alloc(n), *ref2 = malloc((size_t)n * sizeof(float));
    for (int64_t ff = 0; ff < f; ff++)
        for (int64_t yy = 0; yy < hp; yy++)
            for (int64_t xx = 0; xx < wp; xx++)
                for (int64_t ky = 0; ky < ph; ky++)
                    for (int64_t kx = 0; kx < pw; kx++)
                        for (int64_t cc = 0; cc < c; cc++)
                            ref2[((cc * f + ff) * h + yy * 2 + ky) * w + xx * 2 + kx] =
                                tok[((ff * hp + yy) * wp + xx) * cols + (ky * 2 + kx) * c + cc];
    struct tensor ot = tensor_f32_4d(out, c, f, h, w);
    op_unpatchify(&ctx, &ot, &tt, patch);
    cmp_check("unpatchify (ky, kx, c) columns", out, ref2, n, TOL_EXACT);
    T_CHECK(guard_intact(tok, l * cols) && guard_intact(out, n), "layout guard bands");
    /* sinusoid: cos first, w_j = 10000^(-j/half) */
    const int64_t q = 256, half = 128, rows = 4;
    float ts[4] = {999.0f, 500.5f, 1.0f, 0.0f}, *y = guard_alloc(rows * q), *yr = malloc((size_t)(rows * q) * sizeof(float));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < half; j++) {
            double arg = ts[i] * pow(10000.0, -(double)j / half);
            yr[i * q + j] = (float)cos(arg);
            yr[i * q + half + j] = (float)sin(arg);
        }
    struct tensor tst = tensor_f32_1d(ts, rows), yt = tensor_f32_2d(y, rows, q);
    op_timestep_sinusoid(&ctx, &yt, &tst);
    cmp_check("timestep sinusoid", y, yr, rows * q, TOL_ELEM);
    /* strided copy */
    float *src = rand_buf(6 * 40, 1.0f), *dst = guard_alloc(6 * 17), *cref = malloc(6 * 17 * sizeof(float));
    gather(cref, src + 3, 6, 17, 40);
    struct tensor st = rows_view(src + 3, 6, 17, 40), dt = tensor_f32_2d(dst, 6, 17);
    op_copy(&ctx, &dt, &st);
    cmp_check("strided copy", dst, cref, 6 * 17, TOL_EXACT);
    free(lat), free(ref), free(ref2), free(yr), free(src), free(cref);
    guard_free(tok), guard_free(out), guard_free(y), guard_free(dst);
}

/* ---- Wan VAE ops ---- */

/* Naive double reference of op_conv_frames (torch Conv3d semantics evaluated at one output time). */
static void conv_ref(double *y, int nf, float *const *x, const float *w, const float *b, int64_t ci, int64_t co,
                     int64_t h, int64_t wd, const struct conv_geom *g, int64_t ho, int64_t wo) {
    for (int64_t o = 0; o < co; o++)
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                double acc = b ? b[o] : 0.0;
                for (int f = 0; f < nf; f++) {
                    if (!x[f]) continue;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            /* with upsample2x the kernel sees the nearest-upsampled [2h, 2w] frame */
                            const int u = g->upsample2x;
                            const int64_t iy = oy * g->stride + ky - g->pad_top, ix = ox * g->stride + kx - g->pad_left;
                            if (iy < 0 || iy >= h << u || ix < 0 || ix >= wd << u) continue;
                            const float *wt = w + (((int64_t)f * g->kh * g->kw + ky * g->kw + kx) * co + o) * ci;
                            for (int64_t c = 0; c < ci; c++)
                                acc += (double)wt[c] * x[f][(c * h + (iy >> u)) * wd + (ix >> u)];
                        }
                }
                y[(o * ho + oy) * wo + ox] = acc;
            }
}

static void check_conv(int nf, int zero_frame, int64_t ci, int64_t co, int64_t h, int64_t w, struct conv_geom g,
                       const char *what) {
    const int64_t ho = ((h << g.upsample2x) + g.pad_top + g.pad_bottom - g.kh) / g.stride + 1;
    const int64_t wo = ((w << g.upsample2x) + g.pad_left + g.pad_right - g.kw) / g.stride + 1;
    float *xs[OP_CONV_FRAMES_MAX] = {0};
    struct tensor xt[OP_CONV_FRAMES_MAX];
    const struct tensor *xp[OP_CONV_FRAMES_MAX];
    for (int f = 0; f < nf; f++) {
        xs[f] = f == zero_frame ? NULL : rand_buf(ci * h * w, 1.0f);
        xt[f] = tensor_f32_3d(xs[f], ci, h, w);
        xp[f] = xs[f] ? &xt[f] : NULL;
    }
    float *wb = rand_buf((int64_t)nf * g.kh * g.kw * co * ci, 0.2f), *bb = rand_buf(co, 1.0f);
    const int64_t wshape[4] = {nf, (int64_t)g.kh * g.kw, co, ci};
    struct tensor wt = tensor_make(DTYPE_F32, DEVICE_CPU, wb, 4, wshape), bt = tensor_f32_1d(bb, co);
    const int64_t ny = co * ho * wo;
    float *y = malloc((size_t)(ny + 16) * sizeof(float)), *yr = malloc((size_t)ny * sizeof(float));
    double *yd = malloc((size_t)ny * sizeof(double));
    for (int64_t i = 0; i < ny + 16; i++) y[i] = NAN;
    struct tensor yt = tensor_f32_3d(y, co, ho, wo);
    op_conv_frames(&ctx, &yt, nf, xp, &wt, &bt, &g);
    conv_ref(yd, nf, xs, wb, bb, ci, co, h, w, &g, ho, wo);
    for (int64_t i = 0; i < ny; i++) yr[i] = (float)yd[i];
    struct cmp_result r = cmp_f32(y, yr, ny, TOL_DOT);
    cmp_print(what, &r, y, yr);
    T_CHECK(r.pass, "%s", what);
    bool guard = true;
    for (int i = 0; i < 16; i++) guard = guard && isnan(y[ny + i]);
    T_CHECK(guard, "%s: wrote past the output", what);
    /* The thread count must not change a single bit (bands accumulate the taps in a fixed order). */
    struct exec_ctx one = exec_ctx_cpu(1);
    float *y1 = malloc((size_t)ny * sizeof(float));
    struct tensor y1t = tensor_f32_3d(y1, co, ho, wo);
    op_conv_frames(&one, &y1t, nf, xp, &wt, &bt, &g);
    T_CHECK(memcmp(y, y1, (size_t)ny * sizeof(float)) == 0, "%s: 1 thread differs from all threads", what);
    for (int f = 0; f < nf; f++) free(xs[f]);
    free(wb), free(bb), free(y), free(yr), free(yd), free(y1);
}

static void test_vae_ops(void) {
    const struct conv_geom c333 = {3, 3, 1, 1, 1, 1, 1, 0}, c11 = {1, 1, 1, 0, 0, 0, 0, 0};
    const struct conv_geom down = {3, 3, 2, 0, 0, 1, 1, 0}; /* downsample: pad right/bottom, stride 2 */
    check_conv(3, -1, 7, 5, 9, 13, c333, "conv 3x3x3 odd frame");
    check_conv(3, 0, 16, 24, 12, 10, c333, "conv 3x3x3, first frame zero");
    check_conv(3, 1, 40, 8, 70, 6, c333, "conv 3x3x3 tall, middle frame zero (many bands)");
    check_conv(1, -1, 6, 9, 8, 12, down, "conv 3x3 stride 2 downsample");
    check_conv(1, -1, 5, 3, 7, 9, down, "conv 3x3 stride 2 odd size");
    check_conv(3, 0, 6, 12, 5, 7, (struct conv_geom){3, 1, 1, 0, 0, 0, 0, 0}, "time conv (3,1,1) as 3 frames 1x1");
    check_conv(1, -1, 33, 17, 40, 41, c11, "conv 1x1 pointwise");
    check_conv(2, -1, 4, 4, 3, 3, c11, "conv 1x1 over 2 frames");
    check_conv(1, -1, 3, 6, 1, 1, c333, "conv 3x3 on a 1x1 frame");
    const struct conv_geom up = {3, 3, 1, 1, 1, 1, 1, 1};
    check_conv(1, -1, 12, 6, 5, 7, up, "nearest x2 upsample fused into conv 3x3");
    check_conv(1, -1, 8, 4, 40, 3, up, "fused upsample, tall frame (many bands)");

    /* channel RMS norm (+ SiLU) against double */
    const int64_t c = 37, np = 1100;
    float *x = rand_buf(c * np, 1.5f), *g = rand_buf(c, 1.0f), *y = malloc((size_t)c * np * sizeof(float));
    float *ref = malloc((size_t)c * np * sizeof(float));
    for (int silu = 0; silu < 2; silu++) {
        struct tensor xt = tensor_f32_2d(x, c, np), yt = tensor_f32_2d(y, c, np), gt = tensor_f32_1d(g, c);
        op_channel_rmsnorm(&ctx, &yt, &xt, &gt, silu);
        for (int64_t p = 0; p < np; p++) {
            double ss = 0;
            for (int64_t ch = 0; ch < c; ch++) ss += (double)x[ch * np + p] * x[ch * np + p];
            const double inv = 1.0 / fmax(sqrt(ss), 1e-12);
            for (int64_t ch = 0; ch < c; ch++) {
                const double v = x[ch * np + p] * inv * sqrt((double)c) * g[ch];
                ref[ch * np + p] = (float)(silu ? v / (1.0 + exp(-v)) : v);
            }
        }
        struct cmp_result r = cmp_f32(y, ref, c * np, TOL_ELEM);
        cmp_print(silu ? "channel rmsnorm + silu" : "channel rmsnorm", &r, y, ref);
        T_CHECK(r.pass, "channel rmsnorm silu=%d", silu);
    }
    /* an all-zero position stays finite (the 1e-12 floor) */
    for (int64_t ch = 0; ch < c; ch++) x[ch * np + 5] = 0.0f;
    struct tensor xt = tensor_f32_2d(x, c, np), yt = tensor_f32_2d(y, c, np), gt = tensor_f32_1d(g, c);
    op_channel_rmsnorm(&ctx, &yt, &xt, &gt, false);
    bool zero_ok = true;
    for (int64_t ch = 0; ch < c; ch++) zero_ok = zero_ok && y[ch * np + 5] == 0.0f;
    T_CHECK(zero_ok, "a zero position must normalise to 0");

    /* affine, clamp, transpose, upsample: exact */
    float *sub = rand_buf(c, 1.0f), *mul = rand_buf(c, 1.0f), *add = rand_buf(c, 1.0f);
    struct tensor st = tensor_f32_1d(sub, c), mt = tensor_f32_1d(mul, c), at = tensor_f32_1d(add, c);
    op_channel_affine(&ctx, &yt, &xt, &st, &mt, &at);
    bool aff_ok = true;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t p = 0; p < np; p++)
            aff_ok = aff_ok && y[ch * np + p] == (x[ch * np + p] - sub[ch]) * mul[ch] + add[ch];
    T_CHECK(aff_ok, "channel affine");
    op_clamp(&ctx, &yt, &xt, -0.5f, 0.25f);
    bool clamp_ok = true;
    for (int64_t i = 0; i < c * np; i++) clamp_ok = clamp_ok && y[i] == fminf(fmaxf(x[i], -0.5f), 0.25f);
    T_CHECK(clamp_ok, "clamp");
    float *tr = malloc((size_t)c * np * sizeof(float));
    struct tensor trt = tensor_f32_2d(tr, np, c);
    op_transpose(&ctx, &trt, &xt);
    bool tr_ok = true;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t p = 0; p < np; p++) tr_ok = tr_ok && tr[p * c + ch] == x[ch * np + p];
    T_CHECK(tr_ok, "transpose");
    const int64_t uh = 5, uw = 7;
    float *u = malloc((size_t)c * uh * uw * 4 * sizeof(float));
    struct tensor ut = tensor_f32_3d(u, c, 2 * uh, 2 * uw), xin = tensor_f32_3d(x, c, uh, uw);
    op_upsample_nearest2x(&ctx, &ut, &xin);
    bool up_ok = true;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < 2 * uh; i++)
            for (int64_t j = 0; j < 2 * uw; j++)
                up_ok = up_ok && u[(ch * 2 * uh + i) * 2 * uw + j] == x[(ch * uh + i / 2) * uw + j / 2];
    T_CHECK(up_ok, "nearest x2 upsample");
    free(x), free(g), free(y), free(ref), free(sub), free(mul), free(add), free(tr), free(u);
}

int main(void) {
    ctx = exec_ctx_cpu(0);
    test_vm_exp();
    check_linear(7, 33, 5, 33, true, 1);
    check_linear(300, 1536, 97, 1600, true, 0);  /* strided x */
    check_linear(3, 256, 1000, 256, true, 0);    /* few rows: column tiles */
    check_linear(2100, 40, 300, 40, true, 0);    /* row and column tiles */
    check_linear(64, 128, 64, 128, false, 2);
    check_linear(1, 1, 1, 1, true, 0);
    test_linear_threads();
    test_linear_rows();
    test_norms();
    test_modulation();
    test_activations();
    test_rope();
    test_attention();
    test_attention_threads();
    test_attention_rows();
    test_attention_blocks();
    test_t5_bucket();
    test_attention_biased();
    test_layout();
    test_vae_ops();
    return t_summary(__FILE__);
}

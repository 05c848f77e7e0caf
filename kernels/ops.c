/* kernels/ops.c - the op dispatcher: boundary checks, then the backend's kernel.
 *
 * A failed check here is a programmer error (model code passed the wrong tensor) and is fatal with
 * the op, the argument and both shapes in the message. The CPU backend is float32 throughout; the
 * CUDA backend (kernels/cuda/) accepts the dtypes its kernels declare.
 */
#include "kernels/ops.h"

#include <math.h>
#include <stdint.h>

#include "core/error.h"
#include "kernels/cpu/kern_cpu.h"
#if REELFARM_HAVE_CUDA
#include "kernels/cuda/kern_cuda.h"
#endif

const char *backend_name(enum backend b) { return b == BACKEND_CUDA ? "cuda" : "cpu"; }

struct exec_ctx exec_ctx_cpu(int n_threads) {
    struct exec_ctx c = {.backend = BACKEND_CPU, .n_threads = n_threads, .cuda_stream = NULL, .cuda_state = NULL};
    return c;
}

int exec_ctx_threads(const struct exec_ctx *ctx) { return kern_cpu_threads(ctx); }

bool backend_cuda_compiled(void) { return REELFARM_HAVE_CUDA != 0; }

/* ---- boundary checks ---- */

static enum device ctx_device(const struct exec_ctx *ctx) {
    return ctx->backend == BACKEND_CUDA ? DEVICE_CUDA : DEVICE_CPU;
}

static void check_tensor(const struct exec_ctx *ctx, const char *op, const char *arg, const struct tensor *t) {
    CHECK(t != NULL, "%s: %s is NULL", op, arg);
    CHECK(t->device == ctx_device(ctx), "%s: %s is on %s, the context is %s", op, arg,
          t->device == DEVICE_CUDA ? "cuda" : "cpu", backend_name(ctx->backend));
    if (ctx->backend == BACKEND_CPU)
        CHECK(t->dtype == DTYPE_F32, "%s: %s is %s; the CPU backend computes in f32", op, arg, dtype_name(t->dtype));
    else
        CHECK(t->dtype == DTYPE_F32 || t->dtype == DTYPE_BF16, "%s: %s is %s", op, arg, dtype_name(t->dtype));
    CHECK(t->data != NULL || tensor_numel(t) == 0, "%s: %s has no data", op, arg);
    if (ctx->backend == BACKEND_CUDA)
        CHECK(((uintptr_t)t->data & 15u) == 0, "%s: %s is not 16-byte aligned", op, arg);
}

/* 2-D, unit stride inside a row, rows do not overlap. */
static void check_rows(const struct exec_ctx *ctx, const char *op, const char *arg, const struct tensor *t) {
    check_tensor(ctx, op, arg, t);
    CHECK(t->ndim == 2, "%s: %s must be 2-D rows, got %d-D", op, arg, t->ndim);
    CHECK(t->stride[1] == 1 || t->shape[1] <= 1, "%s: %s rows must have unit element stride", op, arg);
    CHECK(t->stride[0] >= t->shape[1] || t->shape[0] <= 1, "%s: %s rows overlap (stride %lld < %lld)", op, arg,
          (long long)t->stride[0], (long long)t->shape[1]);
}

/* Rows, or a contiguous tensor of any rank (viewed as rows over its last dimension). */
static void check_rows_or_contiguous(const struct exec_ctx *ctx, const char *op, const char *arg,
                                     const struct tensor *t) {
    if (t->ndim == 2)
        check_rows(ctx, op, arg, t);
    else {
        check_tensor(ctx, op, arg, t);
        CHECK(tensor_is_contiguous(t), "%s: %s must be rows or contiguous", op, arg);
    }
}

static void check_same_shape(const char *op, const char *a_name, const struct tensor *a, const char *b_name,
                             const struct tensor *b) {
    char sa[96], sb[96];
    CHECK(tensor_same_shape(a, b), "%s: %s %s and %s %s differ", op, a_name, tensor_shape_str(sa, sizeof sa, a), b_name,
          tensor_shape_str(sb, sizeof sb, b));
}

static void check_vector(const struct exec_ctx *ctx, const char *op, const char *arg, const struct tensor *t,
                         int64_t n) {
    check_tensor(ctx, op, arg, t);
    CHECK(t->ndim == 1 && t->shape[0] == n && (t->stride[0] == 1 || n <= 1), "%s: %s must be a contiguous [%lld]",
          op, arg, (long long)n);
}

/* A per-frame table [G, D] serving rows [0, m) with group_size and row_offset. */
static void check_table(const struct exec_ctx *ctx, const char *op, const char *arg, const struct tensor *t, int64_t m,
                        int64_t d, int64_t group_size, int64_t row_offset) {
    check_rows(ctx, op, arg, t);
    CHECK(t->shape[1] == d, "%s: %s has %lld columns, expected %lld", op, arg, (long long)t->shape[1], (long long)d);
    CHECK(group_size > 0 && row_offset >= 0, "%s: bad group_size %lld / row_offset %lld", op, (long long)group_size,
          (long long)row_offset);
    if (m > 0)
        CHECK((m - 1 + row_offset) / group_size < t->shape[0], "%s: %s has %lld rows, row %lld needs row %lld", op, arg,
              (long long)t->shape[0], (long long)(m - 1), (long long)((m - 1 + row_offset) / group_size));
}

#if REELFARM_HAVE_CUDA
#define DISPATCH(ctx, name, ...)                                                                                 \
    do {                                                                                                         \
        if ((ctx)->backend == BACKEND_CUDA)                                                                      \
            kern_##name##_cuda(__VA_ARGS__);                                                                     \
        else                                                                                                     \
            kern_##name##_cpu(__VA_ARGS__);                                                                      \
    } while (0)
#else
#define DISPATCH(ctx, name, ...)                                                                                 \
    do {                                                                                                         \
        CHECK((ctx)->backend == BACKEND_CPU, "this build has no CUDA backend");                                 \
        kern_##name##_cpu(__VA_ARGS__);                                                                          \
    } while (0)
#endif

/* ---- ops ---- */

void op_linear(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
               const struct tensor *b) {
    static const char op[] = "op_linear";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_rows(ctx, op, "w", w);
    char sx[96], sw[96], sy[96];
    CHECK(x->shape[1] == w->shape[1] && y->shape[0] == x->shape[0] && y->shape[1] == w->shape[0],
          "%s: y %s = x %s w^T with w %s does not fit", op, tensor_shape_str(sy, sizeof sy, y),
          tensor_shape_str(sx, sizeof sx, x), tensor_shape_str(sw, sizeof sw, w));
    CHECK(y->data != x->data, "%s: y must not alias x", op);
    if (b) check_vector(ctx, op, "b", b, w->shape[0]);
    DISPATCH(ctx, linear, ctx, y, x, w, b);
}

void op_layernorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                  const struct tensor *beta, float eps) {
    static const char op[] = "op_layernorm";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    if (gamma) check_vector(ctx, op, "gamma", gamma, x->shape[1]);
    if (beta) check_vector(ctx, op, "beta", beta, x->shape[1]);
    DISPATCH(ctx, layernorm, ctx, y, x, gamma, beta, eps);
}

void op_rmsnorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                float eps) {
    static const char op[] = "op_rmsnorm";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    if (gamma) check_vector(ctx, op, "gamma", gamma, x->shape[1]);
    DISPATCH(ctx, rmsnorm, ctx, y, x, gamma, eps);
}

void op_row_sumsq(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x) {
    static const char op[] = "op_row_sumsq";
    check_rows(ctx, op, "x", x);
    check_vector(ctx, op, "ss", ss, x->shape[0]);
    DISPATCH(ctx, row_sumsq, ctx, ss, x);
}

void op_rmsnorm_given_sumsq(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                            const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps) {
    static const char op[] = "op_rmsnorm_given_sumsq";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    check_vector(ctx, op, "ss", ss, x->shape[0]);
    CHECK(width >= x->shape[1], "%s: width %lld is less than the %lld columns held", op, (long long)width,
          (long long)x->shape[1]);
    if (gamma) check_vector(ctx, op, "gamma", gamma, x->shape[1]);
    DISPATCH(ctx, rmsnorm_given_sumsq, ctx, y, x, ss, width, gamma, eps);
}

void op_norm_modulate(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                      const struct tensor *shift, const struct tensor *scale, int64_t group_size, int64_t row_offset,
                      float eps) {
    static const char op[] = "op_norm_modulate";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    check_table(ctx, op, "shift", shift, x->shape[0], x->shape[1], group_size, row_offset);
    check_table(ctx, op, "scale", scale, x->shape[0], x->shape[1], group_size, row_offset);
    DISPATCH(ctx, norm_modulate, ctx, y, x, shift, scale, group_size, row_offset, eps);
}

void op_gated_add(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y, const struct tensor *gate,
                  int64_t group_size, int64_t row_offset) {
    static const char op[] = "op_gated_add";
    check_rows(ctx, op, "x", x);
    check_rows(ctx, op, "y", y);
    check_same_shape(op, "x", x, "y", y);
    if (gate) check_table(ctx, op, "gate", gate, x->shape[0], x->shape[1], group_size, row_offset);
    DISPATCH(ctx, gated_add, ctx, x, y, gate, group_size, row_offset);
}

void op_mul(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b) {
    static const char op[] = "op_mul";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "a", a);
    check_rows(ctx, op, "b", b);
    check_same_shape(op, "y", y, "a", a);
    check_same_shape(op, "a", a, "b", b);
    DISPATCH(ctx, mul, ctx, y, a, b);
}

void op_add_row(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *row) {
    static const char op[] = "op_add_row";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    check_vector(ctx, op, "row", row, x->shape[1]);
    DISPATCH(ctx, add_row, ctx, y, x, row);
}

static void check_unary(const struct exec_ctx *ctx, const char *op, struct tensor *y, const struct tensor *x) {
    check_rows_or_contiguous(ctx, op, "y", y);
    check_rows_or_contiguous(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
}

void op_silu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    check_unary(ctx, "op_silu", y, x);
    DISPATCH(ctx, silu, ctx, y, x);
}

void op_gelu_tanh(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    check_unary(ctx, "op_gelu_tanh", y, x);
    DISPATCH(ctx, gelu_tanh, ctx, y, x);
}

void op_gelu_erf(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    check_unary(ctx, "op_gelu_erf", y, x);
    DISPATCH(ctx, gelu_erf, ctx, y, x);
}

void op_rope3d(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
               int64_t token_offset, const struct tensor *freqs, const int split[3]) {
    static const char op[] = "op_rope3d";
    check_rows(ctx, op, "x", x);
    CHECK(n_heads > 0 && x->shape[1] % n_heads == 0, "%s: width %lld not divisible into %d heads", op,
          (long long)x->shape[1], n_heads);
    const int64_t dh = x->shape[1] / n_heads;
    CHECK(dh % 2 == 0 && dh <= OP_HEAD_DIM_MAX, "%s: head dim %lld must be even and <= %d", op, (long long)dh,
          OP_HEAD_DIM_MAX);
    CHECK(split[0] >= 0 && split[1] >= 0 && split[2] >= 0 && split[0] + split[1] + split[2] == dh / 2,
          "%s: split %d+%d+%d != %lld pairs", op, split[0], split[1], split[2], (long long)(dh / 2));
    CHECK(grid[0] > 0 && grid[1] > 0 && grid[2] > 0 && token_offset >= 0, "%s: bad grid or offset", op);
    CHECK(token_offset + x->shape[0] <= grid[0] * grid[1] * grid[2], "%s: tokens [%lld, %lld) outside the grid", op,
          (long long)token_offset, (long long)(token_offset + x->shape[0]));
    check_tensor(ctx, op, "freqs", freqs);
    CHECK(freqs->ndim == 3 && freqs->shape[1] == dh / 2 && freqs->shape[2] == 2 && tensor_is_contiguous(freqs),
          "%s: freqs must be a contiguous [P, %lld, 2]", op, (long long)(dh / 2));
    const int64_t max_pos = grid[0] > grid[1] ? (grid[0] > grid[2] ? grid[0] : grid[2]) : (grid[1] > grid[2] ? grid[1] : grid[2]);
    CHECK(max_pos <= freqs->shape[0], "%s: grid extent %lld exceeds the %lld positions of the table", op,
          (long long)max_pos, (long long)freqs->shape[0]);
    DISPATCH(ctx, rope3d, ctx, x, n_heads, grid, token_offset, freqs, split);
}

/* q [Lq, H dh] and k, v [Lk, H dh] (rows), the head split and the causal description. */
static void check_attention_inputs(const struct exec_ctx *ctx, const char *op, const struct tensor *q,
                                   const struct tensor *k, const struct tensor *v, int n_heads,
                                   const struct attn_causal *causal) {
    check_rows(ctx, op, "q", q);
    check_rows(ctx, op, "k", k);
    check_rows(ctx, op, "v", v);
    check_same_shape(op, "k", k, "v", v);
    CHECK(q->shape[1] == k->shape[1], "%s: q width %lld != k width %lld", op, (long long)q->shape[1],
          (long long)k->shape[1]);
    CHECK(n_heads > 0 && q->shape[1] % n_heads == 0 && q->shape[1] / n_heads <= OP_HEAD_DIM_MAX,
          "%s: width %lld into %d heads", op, (long long)q->shape[1], n_heads);
    if (causal)
        CHECK(causal->tokens_per_frame > 0 && causal->frames_per_block > 0 && causal->q_token_offset >= 0 &&
                  causal->k_token_offset >= 0,
              "%s: bad causal description", op);
}

void op_attention(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                  const struct tensor *v, int n_heads, float scale, const struct attn_causal *causal,
                  bool accumulate) {
    static const char op[] = "op_attention";
    check_rows(ctx, op, "out", out);
    check_attention_inputs(ctx, op, q, k, v, n_heads, causal);
    check_same_shape(op, "out", out, "q", q);
    CHECK(k->shape[0] > 0, "%s: no keys", op);
    DISPATCH(ctx, attention, ctx, out, q, k, v, n_heads, scale, causal, accumulate);
}

/* An attention state for rows like [Lq, H dh]: m, l [H, Lq] and o [Lq, H dh] (H is m's row count). */
static void check_attn_state(const struct exec_ctx *ctx, const char *op, const struct attn_state *st,
                             const char *rows_name, const struct tensor *rows_like) {
    CHECK(st != NULL, "%s: state is NULL", op);
    check_rows(ctx, op, "state m", &st->m);
    check_rows(ctx, op, "state l", &st->l);
    check_rows(ctx, op, "state o", &st->o);
    check_same_shape(op, "state m", &st->m, "state l", &st->l);
    check_same_shape(op, "state o", &st->o, rows_name, rows_like);
    CHECK(st->m.shape[1] == rows_like->shape[0], "%s: state m has %lld columns, %s %lld rows", op,
          (long long)st->m.shape[1], rows_name, (long long)rows_like->shape[0]);
}

void op_attention_block(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                        const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                        const struct attn_causal *causal, int64_t valid_keys, bool first_block) {
    static const char op[] = "op_attention_block";
    check_attention_inputs(ctx, op, q, k, v, n_heads, causal);
    check_attn_state(ctx, op, st, "q", q);
    CHECK(st->m.shape[0] == n_heads, "%s: state m has %lld rows for %d heads", op, (long long)st->m.shape[0],
          n_heads);
    CHECK(valid_keys >= 0 && valid_keys <= k->shape[0], "%s: valid_keys %lld outside [0, %lld]", op,
          (long long)valid_keys, (long long)k->shape[0]);
    DISPATCH(ctx, attention_block, ctx, st, q, k, v, n_heads, scale, causal, valid_keys, first_block);
}

void op_attention_finish(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                         bool accumulate) {
    static const char op[] = "op_attention_finish";
    check_rows(ctx, op, "out", out);
    check_attn_state(ctx, op, st, "out", out);
    const int64_t heads = st->m.shape[0];
    CHECK(heads > 0 && out->shape[1] % heads == 0 && out->shape[1] / heads <= OP_HEAD_DIM_MAX,
          "%s: width %lld into %lld heads", op, (long long)out->shape[1], (long long)heads);
    DISPATCH(ctx, attention_finish, ctx, out, st, accumulate);
}

static void check_patch(const char *op, const struct tensor *lat, const int patch[3]) {
    CHECK(patch[0] > 0 && patch[1] > 0 && patch[2] > 0, "%s: bad patch size", op);
    CHECK(lat->ndim == 4, "%s: latents must be [C, F, H, W]", op);
    CHECK(lat->shape[1] % patch[0] == 0 && lat->shape[2] % patch[1] == 0 && lat->shape[3] % patch[2] == 0,
          "%s: latent grid %lldx%lldx%lld not divisible by patch %dx%dx%d", op, (long long)lat->shape[1],
          (long long)lat->shape[2], (long long)lat->shape[3], patch[0], patch[1], patch[2]);
}

/* latents [C, F, H, W] against tokens [L, C pt ph pw] (both directions of the patch layout). */
static void check_patch_tokens(const struct exec_ctx *ctx, const char *op, const struct tensor *latents,
                               const struct tensor *tokens, const int patch[3]) {
    check_tensor(ctx, op, "latents", latents);
    check_rows(ctx, op, "tokens", tokens);
    check_patch(op, latents, patch);
    const int64_t l = latents->shape[1] / patch[0] * (latents->shape[2] / patch[1]) * (latents->shape[3] / patch[2]);
    const int64_t cols = latents->shape[0] * patch[0] * patch[1] * patch[2];
    CHECK(tokens->shape[0] == l && tokens->shape[1] == cols, "%s: tokens must be [%lld, %lld]", op, (long long)l,
          (long long)cols);
}

void op_patchify(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                 const int patch[3]) {
    check_patch_tokens(ctx, "op_patchify", latents, tokens, patch);
    DISPATCH(ctx, patchify, ctx, tokens, latents, patch);
}

void op_unpatchify(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                   const int patch[3]) {
    check_patch_tokens(ctx, "op_unpatchify", latents, tokens, patch);
    DISPATCH(ctx, unpatchify, ctx, latents, tokens, patch);
}

void op_timestep_sinusoid(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t) {
    static const char op[] = "op_timestep_sinusoid";
    check_rows(ctx, op, "y", y);
    check_tensor(ctx, op, "t", t);
    CHECK(t->ndim == 1 && t->shape[0] == y->shape[0], "%s: t must be [%lld]", op, (long long)y->shape[0]);
    CHECK(y->shape[1] % 2 == 0, "%s: embedding width %lld must be even", op, (long long)y->shape[1]);
    DISPATCH(ctx, timestep_sinusoid, ctx, y, t);
}

void op_copy(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    static const char op[] = "op_copy";
    check_rows_or_contiguous(ctx, op, "dst", dst);
    check_rows_or_contiguous(ctx, op, "src", src);
    check_same_shape(op, "dst", dst, "src", src);
    DISPATCH(ctx, copy, ctx, dst, src);
}

static void check_transfer(const char *op, const struct tensor *dst, const struct tensor *src) {
    CHECK(dst && src && dst->dtype == src->dtype, "%s: dtypes differ", op);
    check_same_shape(op, "dst", dst, "src", src);
    CHECK(tensor_is_contiguous(dst) && tensor_is_contiguous(src), "%s: tensors must be contiguous", op);
}

void op_upload(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    check_transfer("op_upload", dst, src);
    CHECK(src->device == DEVICE_CPU && dst->device == ctx_device(ctx), "op_upload: wrong devices");
    DISPATCH(ctx, transfer, ctx, dst, src);
}

void op_download(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    check_transfer("op_download", dst, src);
    CHECK(dst->device == DEVICE_CPU && src->device == ctx_device(ctx), "op_download: wrong devices");
    DISPATCH(ctx, transfer, ctx, dst, src);
}

void op_lincomb(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                const struct tensor *const *x) {
    static const char op[] = "op_lincomb";
    check_rows_or_contiguous(ctx, op, "y", y);
    CHECK(n >= 1 && n <= OP_LINCOMB_MAX, "%s: %d terms (1..%d)", op, n, OP_LINCOMB_MAX);
    for (int i = 0; i < n; i++) {
        check_rows_or_contiguous(ctx, op, "x[i]", x[i]);
        check_same_shape(op, "y", y, "x[i]", x[i]);
        CHECK(isfinite(coef[i]), "%s: coefficient %d is not finite", op, i);
    }
    DISPATCH(ctx, lincomb, ctx, y, n, coef, x);
}

void op_randn(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first) {
    static const char op[] = "op_randn";
    check_tensor(ctx, op, "y", y);
    CHECK(tensor_is_contiguous(y) && first >= 0, "%s: y must be contiguous and first >= 0", op);
    DISPATCH(ctx, randn, ctx, y, seed, stream, first);
}

int t5_relative_bucket(int64_t rel, int num_buckets, int max_distance) {
    const int half = num_buckets / 2, max_exact = half / 2;
    int bucket = rel > 0 ? half : 0;
    const int64_t a = rel < 0 ? -rel : rel;
    if (a < max_exact) return bucket + (int)a;
    /* float32 arithmetic as torch: log(a / max_exact) / log(max_distance / max_exact) * (half - max_exact) */
    const float ratio = (float)a / (float)max_exact;
    const float scaled = logf(ratio) / (float)log((double)max_distance / max_exact) * (float)(half - max_exact);
    int large = max_exact + (int)scaled;
    if (large > half - 1) large = half - 1;
    return bucket + large;
}

void op_t5_relbias(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                   int max_distance, int64_t lq) {
    static const char op[] = "op_t5_relbias";
    check_rows(ctx, op, "out", out);
    check_rows(ctx, op, "table", table);
    CHECK(num_buckets >= 4 && num_buckets % 2 == 0 && max_distance > num_buckets / 4 && lq >= 1,
          "%s: bad bucket parameters", op);
    CHECK(table->shape[0] == num_buckets && table->shape[1] == out->shape[0] && out->shape[1] >= lq,
          "%s: table must be [%d, H] and out [H, >= %lld]", op, num_buckets, (long long)lq);
    DISPATCH(ctx, t5_relbias, ctx, out, table, num_buckets, max_distance, lq);
}

void op_attention_biased(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                         const struct tensor *v, int n_heads, float scale, const struct tensor *bias,
                         int64_t valid_keys) {
    static const char op[] = "op_attention_biased";
    check_rows(ctx, op, "out", out);
    check_attention_inputs(ctx, op, q, k, v, n_heads, NULL);
    check_rows(ctx, op, "bias", bias);
    check_same_shape(op, "out", out, "q", q);
    CHECK(bias->shape[0] == n_heads && bias->shape[1] == q->shape[0] + k->shape[0] - 1,
          "%s: bias must be [%d, %lld]", op, n_heads, (long long)(q->shape[0] + k->shape[0] - 1));
    CHECK(valid_keys >= 1 && valid_keys <= k->shape[0], "%s: valid_keys %lld outside [1, %lld]", op,
          (long long)valid_keys, (long long)k->shape[0]);
    DISPATCH(ctx, attention_biased, ctx, out, q, k, v, n_heads, scale, bias, valid_keys);
}

/* ---- Wan VAE ops ---- */

static void check_frame(const struct exec_ctx *ctx, const char *op, const char *arg, const struct tensor *t) {
    check_tensor(ctx, op, arg, t);
    CHECK(t->ndim == 3 && tensor_is_contiguous(t), "%s: %s must be a contiguous [C, H, W] frame", op, arg);
}

void op_conv_frames(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                    const struct tensor *w, const struct tensor *b, const struct conv_geom *g) {
    static const char op[] = "op_conv_frames";
    check_frame(ctx, op, "y", y);
    check_tensor(ctx, op, "w", w);
    CHECK(n_frames >= 1 && n_frames <= OP_CONV_FRAMES_MAX, "%s: %d input frames (1..%d)", op, n_frames,
          OP_CONV_FRAMES_MAX);
    CHECK(g->kh >= 1 && g->kw >= 1 && g->stride >= 1 && g->pad_top >= 0 && g->pad_left >= 0 && g->pad_bottom >= 0 &&
              g->pad_right >= 0 && g->pad_top < g->kh && g->pad_bottom < g->kh && g->pad_left < g->kw &&
              g->pad_right < g->kw && (g->upsample2x == 0 || g->upsample2x == 1),
          "%s: bad geometry %dx%d stride %d pad %d,%d,%d,%d upsample %d", op, g->kh, g->kw, g->stride, g->pad_top,
          g->pad_left, g->pad_bottom, g->pad_right, g->upsample2x);
    char sw[96];
    CHECK(w->ndim == 4 && tensor_is_contiguous(w) && w->shape[0] == n_frames && w->shape[1] == (int64_t)g->kh * g->kw &&
              w->shape[2] == y->shape[0],
          "%s: w %s must be a contiguous [%d, %d, %lld, Ci]", op, tensor_shape_str(sw, sizeof sw, w), n_frames,
          g->kh * g->kw, (long long)y->shape[0]);
    if (b && b->ndim == 3) {
        check_frame(ctx, op, "b", b);
        check_same_shape(op, "b", b, "y", y);
    } else if (b) {
        check_vector(ctx, op, "b", b, y->shape[0]);
    }
    for (int f = 0; f < n_frames; f++) {
        if (!x[f]) continue;
        if (x[f]->dtype == DTYPE_BF16 && ctx->backend == BACKEND_CPU) { /* stored bf16 state, widened as read */
            CHECK(x[f]->device == DEVICE_CPU && (x[f]->data || tensor_numel(x[f]) == 0), "%s: x[%d] is not a CPU tensor",
                  op, f);
            CHECK(x[f]->ndim == 3 && tensor_is_contiguous(x[f]), "%s: x[%d] must be a contiguous [C, H, W] frame", op, f);
        } else {
            check_frame(ctx, op, "x[f]", x[f]);
        }
        CHECK(x[f]->shape[0] == w->shape[3], "%s: x[%d] has %lld channels, w expects %lld", op, f,
              (long long)x[f]->shape[0], (long long)w->shape[3]);
        const int64_t hi = x[f]->shape[1] << g->upsample2x, wi = x[f]->shape[2] << g->upsample2x;
        const int64_t ho = (hi + g->pad_top + g->pad_bottom - g->kh) / g->stride + 1;
        const int64_t wo = (wi + g->pad_left + g->pad_right - g->kw) / g->stride + 1;
        CHECK(y->shape[1] == ho && y->shape[2] == wo, "%s: y is %lldx%lld, x[%d] %lldx%lld gives %lldx%lld", op,
              (long long)y->shape[1], (long long)y->shape[2], f, (long long)x[f]->shape[1],
              (long long)x[f]->shape[2], (long long)ho, (long long)wo);
        CHECK(x[f]->data != y->data, "%s: y must not alias x[%d]", op, f);
        if (f > 0 && x[f - 1])
            CHECK(tensor_same_shape(x[f], x[f - 1]), "%s: input frames differ in shape", op);
    }
    DISPATCH(ctx, conv_frames, ctx, y, n_frames, x, w, b, g);
}

void op_channel_rmsnorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                        const struct tensor *gamma, bool silu) {
    static const char op[] = "op_channel_rmsnorm";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    check_vector(ctx, op, "gamma", gamma, x->shape[0]);
    DISPATCH(ctx, channel_rmsnorm, ctx, y, x, gamma, silu);
}

void op_upsample_nearest2x(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    static const char op[] = "op_upsample_nearest2x";
    check_frame(ctx, op, "y", y);
    check_frame(ctx, op, "x", x);
    CHECK(y->shape[0] == x->shape[0] && y->shape[1] == 2 * x->shape[1] && y->shape[2] == 2 * x->shape[2],
          "%s: y must be [C, 2H, 2W] of x", op);
    DISPATCH(ctx, upsample_nearest2x, ctx, y, x);
}

void op_channel_affine(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *sub,
                       const struct tensor *mul, const struct tensor *add) {
    static const char op[] = "op_channel_affine";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    check_same_shape(op, "y", y, "x", x);
    if (sub) check_vector(ctx, op, "sub", sub, x->shape[0]);
    if (mul) check_vector(ctx, op, "mul", mul, x->shape[0]);
    if (add) check_vector(ctx, op, "add", add, x->shape[0]);
    DISPATCH(ctx, channel_affine, ctx, y, x, sub, mul, add);
}

void op_clamp(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi) {
    static const char op[] = "op_clamp";
    check_unary(ctx, op, y, x);
    CHECK(lo <= hi, "%s: lo %g > hi %g", op, (double)lo, (double)hi);
    DISPATCH(ctx, clamp, ctx, y, x, lo, hi);
}

void op_transpose(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    static const char op[] = "op_transpose";
    check_rows(ctx, op, "y", y);
    check_rows(ctx, op, "x", x);
    CHECK(y->shape[0] == x->shape[1] && y->shape[1] == x->shape[0], "%s: y must be x's transpose", op);
    CHECK(y->data != x->data, "%s: y must not alias x", op);
    DISPATCH(ctx, transpose, ctx, y, x);
}

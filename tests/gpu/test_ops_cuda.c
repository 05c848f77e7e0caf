/* tests/gpu/test_ops_cuda.c - every op of kernels/ops.h on the CUDA backend against the CPU backend.
 *
 * Each case fills its buffers with fixed-seed normal samples (never zeros), runs the op through the
 * dispatcher once with exec_ctx_cpu() on host buffers and once with a CUDA context on device copies
 * of the same buffers (uploaded and downloaded with op_upload / op_download), and checks the
 * downloaded result: the elements of the output view against the CPU result (cmp_check), every
 * element outside the view bit-identical to its value before the op (strided views into fused
 * buffers must not touch the gaps), no NaN/Inf, and intact guard bands on both sides (device buffers
 * carry DEV_GUARD canary floats before and after, host buffers come from guard_alloc).
 * Shapes: odd and non-multiple-of-tile sizes, single rows and keys, head dims 8..256, and Wan-like
 * shapes (width 1536, head dim 128, 12 heads, q/k/v views into a fused [L, 3D] buffer, per-frame
 * modulation tables as views into [F, 6, D]). Attention covers full, block-causal with
 * sequence-parallel offsets (including rows that see no key), accumulate, and the I2V sum of two
 * attentions. Ring attention (op_attention_block + op_attention_finish) folds several key blocks into one
 * state: blocks shorter than their buffers (valid_keys, NaN padding that must never be read), empty blocks,
 * first_block on a NaN state and carried random states (rows without keys yet), causal and not, accumulate,
 * head dims 8..256; the state itself is compared too when every row has seen a key. The tensor-parallel
 * RMSNorm pair (op_row_sumsq, op_rmsnorm_given_sumsq) runs alone and chained over 2..4 column parts.
 * The Wan VAE ops: op_conv_frames on 3x3 pad 1, the causal 3x3x3 kernel with zero (NULL) frames first, between
 * and everywhere, 1x1 and the 1x1x3 time convs, the stride-2 downsample (pads 0,0,1,1), the fused x2 upsampling,
 * a non-square kernel with four different pads, bf16 input frames (the causal cache), per-channel, frame and
 * in-place frame biases, Co over several 64-channel tiles and Wan-like 96/192-channel shapes; on the GPU also
 * bitwise invariance under splitting the taps over chained calls and under cutting the frame into row bands
 * (what model/wan_vae.c relies on). channel_rmsnorm (with and without SiLU, in place), upsample_nearest2x,
 * channel_affine (every table combination), clamp (NaN/Inf/-0 inputs) and transpose on odd and strided shapes.
 * Without a device the test prints why and exits 77 (CTest: skipped).
 *
 * Tolerances (f32 CUDA vs f32 CPU; STYLE 10.7 puts fp32-vs-fp32 at rtol ~1e-5, nmse ~1e-10):
 *   op                      atol   rtol   nmse   reason
 *   copy/transfer/patchify  0      0      0      pure data movement: bit-exact
 *   add_row, gated_add(no   0      0      0      one IEEE add per element on both sides
 *     gate)
 *   gated_add (gate)        4e-6   1e-6   1e-12  nvcc and gcc may contract b*g + a into an FMA differently: <= 1 rounding of |b g| < ~50
 *   silu                    1e-7   2e-6   1e-12  expf (CUDA, 2 ulp) vs vm_expf (2 ulp), then a division
 *   gelu_tanh / gelu_erf    1e-6   2e-6   1e-12  tanhf/erff 2 ulp vs vm_tanhf/glibc; 1 + tanh|erf cancels for x << 0: abs err ~|x| 1e-7
 *   rope3d                  2e-6   1e-5   1e-12  a c - b s contracted into FMAs differently by nvcc and gcc: a few roundings of |a c| < 8
 *   layernorm/rmsnorm/      1e-5   1e-5   1e-10  float block reductions (GPU) vs double (CPU) over D <= 5120: mean/rstd rel err ~1e-6
 *     norm_modulate
 *   linear                  3e-5   1e-5   1e-10  fp32 dots, K <= 5120, summed in other orders (cuBLAS, no TF32, vs OpenBLAS): ~eps sqrt(K) ~4e-6 at |y| ~ 1
 *   row_sumsq               0      2.5e-7 1e-13  double accumulation on both sides (squares of floats are exact in double): the
 *                                                double sums differ by ~1e-16 relative, so <= 1 float ulp (1.2e-7) after rounding
 *   rmsnorm_given_sumsq     0      0      0      same double expression for the row scale (IEEE div/sqrt, explicitly rounded on the
 *                                                GPU), then two uncontracted float products: bit-exact for the same sums
 *   rmsnorm tensor-parallel 1e-7   6e-7   1e-12  chained: <= 1 ulp per part sum, <= 0.5 ulp per float add of the parts, half of that
 *                                                through rsqrt, one rounding of the scale and of each product: ~5 ulp
 *   attention               5e-6   1e-5   1e-10  dh <= 256 fp32 score dots in other orders, expf vs vm_expf, other tile rescaling
 *                                                points; score errors scale with |scores|, so atol is multiplied by the test's
 *                                                score multiplier (8 for the peaky-softmax case)
 *   attention blocks: out,  as attention         the same arithmetic as attention, with the state carried between calls (m is a
 *     state m and l                              score, l >= 0.5 here a sum of exps whose relative error follows the scores')
 *   attention blocks:       5e-6   1e-5   1e-9   o is out * l before the normalisation: atol times the score multiplier and the
 *     state o               * l_max              largest l of the CPU state; nmse weights rows by l, hence 10x attention's
 *   attention_finish        0      0      0      o * (1 / l) (+ out), every operation IEEE-rounded on both sides (no FMA
 *                                                contraction: gcc -std=c11 and __fmul_rn/__fadd_rn): bit-exact
 *   timestep_sinusoid       1e-7   1e-6   1e-12  both double; libdevice vs glibc pow/cos differ by ~2 double ulp: <= 1 float ulp after rounding
 *   lincomb                 1e-7   3e-7   1e-13  double accumulation on both sides; FMA contraction may differ: <= 1 float ulp
 *   randn                   0      0      0      generated on the host by core/rng.c on both backends: bit-exact
 *   conv_frames             3e-5   1e-5   1e-10  fp32 dots over K = taps Ci <= 2592 (the 96-channel 3x3x3 case), one fmaf chain per
 *                                                element (GPU) vs OpenBLAS sgemms per tap, |y - b| ~ 1: ~eps sqrt(K) ~ 6e-6 (as
 *                                                linear); bf16 frames are widened exactly on both sides
 *   conv_frames chained     0      0      0      CUDA vs CUDA: every output element is the same fmaf chain (bias, then f, ky, kx,
 *     calls / row bands                          ci) whatever the split of the taps over calls or the rows of the frame
 *   channel_rmsnorm         0      0      0      double sums of exact float squares in channel order on both sides, IEEE double
 *                                                sqrt and division, then the same two float products
 *   channel_rmsnorm + silu  1e-7   2e-6   1e-12  as silu (the normalised value is bit-exact; expf vs vm_expf)
 *   upsample_nearest2x,     0      0      0      data movement and comparisons (clamp keeps NaN on both sides)
 *     clamp, transpose
 *   channel_affine          0      0      0      (x - sub) * mul + add, three IEEE roundings on both sides (gcc -std=c11 does not
 *                                                contract; the GPU uses __fsub_rn/__fmul_rn/__fadd_rn)
 *
 * op_linear with bf16 weights (issue 8; the CUDA backend only: the CPU backend's boundary check refuses them). The GPU
 * rounds x to bf16 (nearest even) and multiplies bf16 x bf16 with fp32 accumulation. Two references, both the CPU
 * f32 op_linear: (a) on the bf16-rounded x and w (as f32), so that every product is exact in f32 (8 + 8
 * significant bits) and only the summation differs; (b) on the unrounded f32 x and w, the bf16 error budget.
 *   linear bf16 vs          1e-4   1e-4   1e-9   tensor cores accumulate in fp32 but may truncate (not round) each
 *     rounded f32 (a)                            fp32 add of a k-step (Fasi et al. 2021): <= ~1 ulp of |partial|
 *                                                ~ 1 per 16 terms, K / 16 * 6e-8 = 3.4e-5 at K = 8960, |y| ~ 1;
 *                                                still ~40x below the bf16 error (b)
 *   linear bf16 vs          4e-2   8e-3   3e-5   each operand rounded with relative error <= u = 2^-8 (3.9e-3), rms
 *     unrounded f32 (b)                          ~u/sqrt(3) ~ 2.3e-3; y = sum of K products of independent errors,
 *                                                so |dy| ~ sqrt(2) 2.3e-3 ||x_i * w_j||_2 ~ 3.2e-3 at |y| ~ 1:
 *                                                nmse ~ 1e-5 (limit 3x, i.e. rel L2 <= 5.5e-3); atol ~12 sigma over
 *                                                up to 1e6 outputs. K = 1 (no averaging): |dy| <= (2u + u^2) |x w|
 *                                                <= 7.8e-3 (|y| + |b|) with |b| < 4.5: inside atol + rtol |y|
 * Shapes: odd and strided views (also into fused buffers), one row, k = 1, the Wan 1.3B matrices (1536 x 1536,
 * 8960 x 1536 and 1536 x 8960), k = 5120 (14B width), and 3800 rows at k = 8960 (more than one chunk of the
 * 64 MiB bf16 scratch: two GEMMs). A NaN in x must make exactly its row of y NaN on both sides.
 * op_attention on tensor cores (ctx->attention_bf16, kernels/cuda/kern_flash_attn.cu; head dims 64 and 128): q, k, v
 * rounded to bf16 (nearest even), scores and P v accumulated in f32, online softmax in f32, the probabilities rounded
 * to bf16 before P v. Checked against the CPU f32 op (the twin_check rules: view, untouched gaps, guards, no NaN/Inf)
 * and against the f32 CUDA kernel; lengths 1, 63, 64, 65, 1000 around the 64-row tiles, full and block-causal (with
 * offsets and rows that see no key), accumulate, Wan 12 x 128 at 1560 tokens; shapes it does not take (head dim 40,
 * 256) must run the f32 kernel (f32 tolerances) with attention_bf16 set. One 40 x 128 x 8192 case prints TFLOP/s.
 *   attention bf16          3e-2   1e-2   1e-4   each of q, k, v, p rounded with relative error <= u = 2^-8, rms
 *     (vs CPU and vs the                         ~u/sqrt(3) ~ 2.3e-3; a score (scale 1/sqrt(dh), q, k ~ N(0, 1)) errs
 *     f32 CUDA kernel)                           by ~sqrt(2/3) u ~ 3.2e-3 rms whatever dh; o = sum p v errs by ~4.5e-3
 *                                                of its rms (score, v and p terms): nmse ~2e-5 (a Python emulation of
 *                                                the kernel's fragments gave 4e-6..1e-5), limit 1e-4; elementwise ~6
 *                                                sigma over 2.4e6 outputs with |o| ~ 1 (few keys): atol 3e-2. atol is
 *                                                multiplied by the score multiplier and nmse by its square
 * These are estimates written before the first GPU run; a tolerance that proves wrong is changed
 * with a comment saying why (STYLE 10.7).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "kernels/cuda/kern_cuda.h"
#include "kernels/ops.h"
#include "tests/common/compare.h"
#include "tests/common/test_util.h"

static const struct cmp_tol TOL_EXACT = {0, 0, 0};
static const struct cmp_tol TOL_GATED = {4e-6, 1e-6, 1e-12};
static const struct cmp_tol TOL_SILU = {1e-7, 2e-6, 1e-12};
static const struct cmp_tol TOL_GELU = {1e-6, 2e-6, 1e-12};
static const struct cmp_tol TOL_ROPE = {2e-6, 1e-5, 1e-12};
static const struct cmp_tol TOL_NORM = {1e-5, 1e-5, 1e-10};
static const struct cmp_tol TOL_SUMSQ = {0, 2.5e-7, 1e-13};
static const struct cmp_tol TOL_RMS_TP = {1e-7, 6e-7, 1e-12};
static const struct cmp_tol TOL_LINEAR = {3e-5, 1e-5, 1e-10};
static const struct cmp_tol TOL_LINEAR_BF16_ROUNDED = {1e-4, 1e-4, 1e-9};
static const struct cmp_tol TOL_LINEAR_BF16_F32 = {4e-2, 8e-3, 3e-5};
static const struct cmp_tol TOL_ATTN = {5e-6, 1e-5, 1e-10};
static const struct cmp_tol TOL_ATTN_STATE_O = {5e-6, 1e-5, 1e-9};
static const struct cmp_tol TOL_ATTN_BF16 = {3e-2, 1e-2, 1e-4};
static const struct cmp_tol TOL_SINUSOID = {1e-7, 1e-6, 1e-12};
static const struct cmp_tol TOL_LINCOMB = {1e-7, 3e-7, 1e-13};
static const struct cmp_tol TOL_CONV = {3e-5, 1e-5, 1e-10};

enum { DEV_GUARD = 64 }; /* canary floats before and after each device buffer (256 bytes: keeps alignment) */
static const float DEV_CANARY = -7777.25f;
static const unsigned long long SEED = 20250611ull;

static struct exec_ctx g_cpu, g_gpu;
static struct exec_ctx g_gpu_bf16; /* g_gpu (same stream and handles) with attention_bf16: the flash kernel */
static unsigned long long g_tag = 1;

static const struct exec_ctx *side_ctx(enum device side) { return side == DEVICE_CUDA ? &g_gpu : &g_cpu; }

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* ---- host <-> device through the ops under test (op_upload / op_download) ---- */

static void upload(float *dev, const float *host, int64_t n) {
    struct tensor d = tensor_make(DTYPE_F32, DEVICE_CUDA, dev, 1, &n);
    struct tensor h = tensor_make(DTYPE_F32, DEVICE_CPU, (void *)host, 1, &n);
    op_upload(&g_gpu, &d, &h);
}

static void download(float *host, const float *dev, int64_t n) {
    struct tensor h = tensor_make(DTYPE_F32, DEVICE_CPU, host, 1, &n);
    struct tensor d = tensor_make(DTYPE_F32, DEVICE_CUDA, (void *)dev, 1, &n);
    op_download(&g_gpu, &h, &d);
}

/* ---- a buffer on both backends ---- */

struct twin {
    int64_t n;
    float *init; /* host: the contents before the op */
    float *cpu;  /* host, guard_alloc: the CPU backend's buffer */
    float *dev;  /* device, DEV_GUARD canaries on both sides: the CUDA backend's buffer */
};

/* Allocate; the caller fills init and calls twin_push. */
static struct twin twin_alloc(int64_t n) {
    struct twin t;
    t.n = n;
    t.init = xmalloc((size_t)n * sizeof(float));
    t.cpu = guard_alloc(n);
    t.dev = (float *)cuda_alloc((size_t)(n + 2 * DEV_GUARD) * sizeof(float)) + DEV_GUARD;
    return t;
}

/* Copy init to the CPU buffer and the device buffer, canaries around the latter. */
static void twin_push(struct twin *t) {
    memcpy(t->cpu, t->init, (size_t)t->n * sizeof(float));
    float *staging = xmalloc((size_t)(t->n + 2 * DEV_GUARD) * sizeof(float));
    for (int64_t i = 0; i < t->n + 2 * DEV_GUARD; i++) staging[i] = DEV_CANARY;
    memcpy(staging + DEV_GUARD, t->init, (size_t)t->n * sizeof(float));
    upload(t->dev - DEV_GUARD, staging, t->n + 2 * DEV_GUARD);
    cuda_sync(&g_gpu);
    free(staging);
}

/* n samples of N(mean, std^2). */
static struct twin twin_rand(int64_t n, float std, float mean) {
    struct twin t = twin_alloc(n);
    t_fill_normal(t.init, n, SEED, g_tag++, std);
    for (int64_t i = 0; i < n; i++) t.init[i] += mean;
    twin_push(&t);
    return t;
}

static void twin_free(struct twin *t) {
    free(t->init);
    guard_free(t->cpu);
    cuda_free(t->dev - DEV_GUARD);
    memset(t, 0, sizeof *t);
}

static float *side_ptr(const struct twin *t, enum device side) { return side == DEVICE_CUDA ? t->dev : t->cpu; }

/* A view of ndim dims at element offset off (stride NULL: contiguous). */
static struct tensor view(const struct twin *t, enum device side, int64_t off, int ndim, const int64_t *shape,
                          const int64_t *stride) {
    struct tensor v = tensor_make(DTYPE_F32, side, side_ptr(t, side) + off, ndim, shape);
    if (stride)
        for (int i = 0; i < ndim; i++) v.stride[i] = stride[i];
    return v;
}

/* A rows view [m, n] with row stride ld at element offset off. */
struct rv {
    int64_t off, m, n, ld;
};

static struct tensor rows(const struct twin *t, enum device side, struct rv r) {
    const int64_t shape[2] = {r.m, r.n}, stride[2] = {r.ld, 1};
    return view(t, side, r.off, 2, shape, stride);
}

static struct tensor vec(const struct twin *t, enum device side, int64_t n) {
    return view(t, side, 0, 1, &n, NULL);
}

/* Mark the elements of a (CPU) view of t in mask. */
static void mark_view(unsigned char *mask, const struct twin *t, const struct tensor *v) {
    int64_t idx[TENSOR_MAX_DIMS] = {0};
    const int64_t total = tensor_numel(v);
    const int64_t base = (const float *)v->data - t->cpu;
    int64_t outside = 0;
    for (int64_t e = 0; e < total; e++) {
        int64_t off = base;
        for (int d = 0; d < v->ndim; d++) off += idx[d] * v->stride[d];
        if (off >= 0 && off < t->n)
            mask[off] = 1;
        else
            outside++;
        for (int d = v->ndim - 1; d >= 0; d--) { /* next multi-index */
            if (++idx[d] < v->shape[d]) break;
            idx[d] = 0;
        }
    }
    T_REQUIRE(outside == 0, "test bug: %lld elements of the view lie outside its buffer", (long long)outside);
}

/* Download t and check it: out_view (the CPU-side view of the op's output; NULL = whole buffer)
 * against the CPU result, the rest unchanged, no NaN/Inf (unless nonfinite_ok: then NaN/Inf must sit where the
 * CPU result has them, cmp_check's rule), guard bands intact. */
static void twin_check_ex(const char *what, const struct twin *t, const struct tensor *out_view, struct cmp_tol tol,
                          bool nonfinite_ok) {
    const int64_t n = t->n;
    float *all = xmalloc((size_t)(n + 2 * DEV_GUARD) * sizeof(float));
    download(all, t->dev - DEV_GUARD, n + 2 * DEV_GUARD);
    const float *got = all + DEV_GUARD;

    bool dev_guard_ok = true;
    for (int i = 0; i < DEV_GUARD; i++)
        if (memcmp(&all[i], &DEV_CANARY, sizeof(float)) || memcmp(&all[DEV_GUARD + n + i], &DEV_CANARY, sizeof(float)))
            dev_guard_ok = false;
    T_CHECK(dev_guard_ok, "%s: device guard band overwritten", what);
    T_CHECK(guard_intact(t->cpu, n), "%s: host guard band overwritten by the CPU op", what);

    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) nonfinite += !isfinite(got[i]);
    T_CHECK(nonfinite_ok || nonfinite == 0, "%s: %lld NaN/Inf in the CUDA result", what, (long long)nonfinite);

    unsigned char *mask = xmalloc((size_t)n);
    if (out_view) {
        memset(mask, 0, (size_t)n);
        mark_view(mask, t, out_view);
    } else {
        memset(mask, 1, (size_t)n);
    }
    float *g = xmalloc((size_t)n * sizeof(float)), *r = xmalloc((size_t)n * sizeof(float));
    int64_t m = 0, touched_gpu = 0, touched_cpu = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i]) {
            g[m] = got[i];
            r[m] = t->cpu[i];
            m++;
        } else {
            touched_gpu += memcmp(&got[i], &t->init[i], sizeof(float)) != 0;
            touched_cpu += memcmp(&t->cpu[i], &t->init[i], sizeof(float)) != 0;
        }
    }
    T_CHECK(touched_gpu == 0, "%s: the CUDA op changed %lld elements outside its output view", what,
            (long long)touched_gpu);
    T_CHECK(touched_cpu == 0, "%s: the CPU op changed %lld elements outside its output view", what,
            (long long)touched_cpu);
    cmp_check(what, g, r, m, tol);
    free(all), free(mask), free(g), free(r);
}

static void twin_check(const char *what, const struct twin *t, const struct tensor *out_view, struct cmp_tol tol) {
    twin_check_ex(what, t, out_view, tol, false);
}

/* ---- linear ---- */

/* y = x w^T (+ b) with x at rows view rx of a [.., ldx] buffer, w [n, k] with row stride ldw, y at ry. */
static void test_linear(const char *name, int64_t m, int64_t k, int64_t n, struct rv rx, int64_t ldw, struct rv ry,
                        int64_t y_rows_total, bool bias) {
    rx.m = m, rx.n = k, ry.m = m, ry.n = n;
    struct twin x = twin_rand(rx.off + (m - 1) * rx.ld + k, 1.0f, 0.0f);
    struct twin w = twin_rand((n - 1) * ldw + k, 1.0f / sqrtf((float)k), 0.0f); /* y ~ N(0, 1) */
    struct twin b = twin_rand(n, 1.0f, 0.0f);
    struct twin y = twin_rand(y_rows_total, 1.0f, 0.0f); /* garbage the op must overwrite */
    const struct rv rw = {0, n, k, ldw};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor yt = rows(&y, side, ry), xt = rows(&x, side, rx), wt = rows(&w, side, rw), bt = vec(&b, side, n);
        op_linear(side_ctx(side), &yt, &xt, &wt, bias ? &bt : NULL);
    }
    struct tensor yv = rows(&y, DEVICE_CPU, ry);
    char what[160];
    snprintf(what, sizeof what, "linear %s [%lld, %lld] x [%lld, %lld]^T%s", name, (long long)m, (long long)k,
             (long long)n, (long long)k, bias ? " + b" : "");
    twin_check(what, &y, &yv, TOL_LINEAR);
    twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y);
}

static void test_linear_all(void) {
    /* contiguous, odd */
    test_linear("odd", 37, 19, 23, (struct rv){0, 0, 0, 19}, 19, (struct rv){0, 0, 0, 23}, 37 * 23, true);
    test_linear("one row", 1, 7, 5, (struct rv){0, 0, 0, 7}, 7, (struct rv){0, 0, 0, 5}, 5, false);
    test_linear("k=1", 9, 1, 300, (struct rv){0, 0, 0, 1}, 1, (struct rv){0, 0, 0, 300}, 9 * 300, true);
    /* strided views: x inside a [65, 101] buffer at column 4, w rows of 40, y at column 36 of [65, 113] */
    test_linear("strided", 65, 33, 36, (struct rv){4, 0, 0, 101}, 40, (struct rv){36, 0, 0, 113}, 65 * 113, true);
    /* Wan 1.3B: fused qkv projection [L, 1536] -> [L, 4608] */
    test_linear("wan qkv", 130, 1536, 4608, (struct rv){0, 0, 0, 1536}, 1536, (struct rv){0, 0, 0, 4608},
                130 * 4608, true);
    /* Wan: one projection written into the k columns of a fused [L, 3D] buffer, x a view of one too */
    test_linear("wan into fused", 130, 1536, 1536, (struct rv){1536, 0, 0, 4608}, 1536,
                (struct rv){1536, 0, 0, 4608}, 130 * 4608, true);
    /* 14B width */
    test_linear("k=5120", 33, 5120, 77, (struct rv){0, 0, 0, 5120}, 5120, (struct rv){0, 0, 0, 77}, 33 * 77, true);
}

/* ---- linear with bf16 weights ---- */

static float *download_twin(const struct twin *t); /* with the VAE tests below */

/* bf16(v) as f32: the value the GPU computes with. */
static float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

/* As test_linear, with w stored in bf16 on the device (rounded to nearest even on the host, core/dtype.h);
 * nan_row >= 0 puts a NaN into x's row nan_row (column k / 2), whose output row must then be NaN on both sides. */
static void test_linear_bf16(const char *name, int64_t m, int64_t k, int64_t n, struct rv rx, int64_t ldw,
                             struct rv ry, int64_t y_rows_total, bool bias, int64_t nan_row) {
    rx.m = m, rx.n = k, ry.m = m, ry.n = n;
    struct twin x = twin_rand(rx.off + (m - 1) * rx.ld + k, 1.0f, 0.0f);
    if (nan_row >= 0) {
        x.init[rx.off + nan_row * rx.ld + k / 2] = NAN;
        twin_push(&x);
    }
    struct twin w = twin_rand((n - 1) * ldw + k, 1.0f / sqrtf((float)k), 0.0f); /* y ~ N(0, 1) */
    struct twin b = twin_rand(n, 1.0f, 0.0f);
    struct twin y = twin_rand(y_rows_total, 1.0f, 0.0f); /* garbage the op must overwrite */
    const struct rv rw = {0, n, k, ldw};

    /* the device's bf16 weights (the gaps between rows too: the same buffer layout as the f32 twin) */
    const int64_t nw = w.n;
    uint16_t *wb_host = xmalloc((size_t)nw * sizeof(uint16_t));
    for (int64_t i = 0; i < nw; i++) wb_host[i] = f32_to_bf16(w.init[i]);
    void *wb_dev = cuda_alloc((size_t)nw * sizeof(uint16_t));
    {
        struct tensor h = tensor_make(DTYPE_BF16, DEVICE_CPU, wb_host, 1, &nw);
        struct tensor d = tensor_make(DTYPE_BF16, DEVICE_CUDA, wb_dev, 1, &nw);
        op_upload(&g_gpu, &d, &h);
        cuda_sync(&g_gpu);
    }
    struct tensor wt_dev = tensor_make(DTYPE_BF16, DEVICE_CUDA, wb_dev, 2, (int64_t[]){n, k});
    wt_dev.stride[0] = ldw, wt_dev.stride[1] = 1;

    /* (b) the unrounded CPU reference in the twin, the GPU op on the device twin */
    {
        struct tensor yt = rows(&y, DEVICE_CPU, ry), xt = rows(&x, DEVICE_CPU, rx), wt = rows(&w, DEVICE_CPU, rw);
        struct tensor bt = vec(&b, DEVICE_CPU, n);
        op_linear(&g_cpu, &yt, &xt, &wt, bias ? &bt : NULL);
        struct tensor yd = rows(&y, DEVICE_CUDA, ry), xd = rows(&x, DEVICE_CUDA, rx), bd = vec(&b, DEVICE_CUDA, n);
        op_linear(&g_gpu, &yd, &xd, &wt_dev, bias ? &bd : NULL);
    }
    /* (a) the CPU op on the rounded operands, into a copy of y's initial contents */
    float *xr = xmalloc((size_t)x.n * sizeof(float)), *wr = xmalloc((size_t)w.n * sizeof(float));
    float *yr = xmalloc((size_t)y.n * sizeof(float));
    for (int64_t i = 0; i < x.n; i++) xr[i] = round_bf16(x.init[i]);
    for (int64_t i = 0; i < w.n; i++) wr[i] = round_bf16(w.init[i]);
    memcpy(yr, y.init, (size_t)y.n * sizeof(float));
    {
        struct tensor yt = tensor_make(DTYPE_F32, DEVICE_CPU, yr + ry.off, 2, (int64_t[]){m, n});
        struct tensor xt = tensor_make(DTYPE_F32, DEVICE_CPU, xr + rx.off, 2, (int64_t[]){m, k});
        struct tensor wt = tensor_make(DTYPE_F32, DEVICE_CPU, wr, 2, (int64_t[]){n, k});
        yt.stride[0] = ry.ld, xt.stride[0] = rx.ld, wt.stride[0] = ldw;
        struct tensor bt = vec(&b, DEVICE_CPU, n);
        op_linear(&g_cpu, &yt, &xt, &wt, bias ? &bt : NULL);
    }

    char what[200];
    snprintf(what, sizeof what, "linear bf16-w %s [%lld, %lld] x [%lld, %lld]^T%s%s vs f32", name, (long long)m,
             (long long)k, (long long)n, (long long)k, bias ? " + b" : "", nan_row >= 0 ? " NaN row" : "");
    struct tensor yv = rows(&y, DEVICE_CPU, ry);
    twin_check_ex(what, &y, &yv, TOL_LINEAR_BF16_F32, nan_row >= 0); /* guards, gaps untouched, NaN positions */

    /* (a): the output view's elements against the rounded reference */
    float *got = download_twin(&y);
    float *g = xmalloc((size_t)(m * n) * sizeof(float)), *r = xmalloc((size_t)(m * n) * sizeof(float));
    int64_t nan_rows_ok = 0;
    for (int64_t i = 0; i < m; i++) {
        bool row_nan = true;
        for (int64_t j = 0; j < n; j++) {
            g[i * n + j] = got[ry.off + i * ry.ld + j];
            r[i * n + j] = yr[ry.off + i * ry.ld + j];
            row_nan &= isnan(g[i * n + j]) != 0;
        }
        nan_rows_ok += i == nan_row ? row_nan : 0;
    }
    if (nan_row >= 0) T_CHECK(nan_rows_ok == 1, "%s: row %lld of y is not all NaN", what, (long long)nan_row);
    snprintf(what, sizeof what, "linear bf16-w %s [%lld, %lld] x [%lld, %lld]^T%s%s vs rounded", name, (long long)m,
             (long long)k, (long long)n, (long long)k, bias ? " + b" : "", nan_row >= 0 ? " NaN row" : "");
    cmp_check(what, g, r, m * n, TOL_LINEAR_BF16_ROUNDED);
    free(got), free(g), free(r), free(xr), free(wr), free(yr), free(wb_host);
    cuda_free(wb_dev);
    twin_free(&x), twin_free(&w), twin_free(&b), twin_free(&y);
}

static void test_linear_bf16_all(void) {
    test_linear_bf16("odd", 37, 19, 23, (struct rv){0, 0, 0, 19}, 19, (struct rv){0, 0, 0, 23}, 37 * 23, true, -1);
    test_linear_bf16("one row", 1, 7, 5, (struct rv){0, 0, 0, 7}, 7, (struct rv){0, 0, 0, 5}, 5, false, -1);
    test_linear_bf16("k=1", 9, 1, 300, (struct rv){0, 0, 0, 1}, 1, (struct rv){0, 0, 0, 300}, 9 * 300, true, -1);
    /* strided views: x at column 4 of [65, 101] (a non-16-byte row stride for the f32 x), w rows of 40, y at column
     * 36 of [65, 113] */
    test_linear_bf16("strided", 65, 33, 36, (struct rv){4, 0, 0, 101}, 40, (struct rv){36, 0, 0, 113}, 65 * 113,
                     true, -1);
    /* Wan 1.3B: a 1536 x 1536 projection reading and writing views of fused [L, 3D] buffers */
    test_linear_bf16("wan 1536x1536 fused", 130, 1536, 1536, (struct rv){1536, 0, 0, 4608}, 1536,
                     (struct rv){1536, 0, 0, 4608}, 130 * 4608, true, -1);
    /* Wan 1.3B FFN: w 8960 x 1536, then 1536 x 8960 (K = 8960: the longest sums) */
    test_linear_bf16("wan ffn1 8960x1536", 130, 1536, 8960, (struct rv){0, 0, 0, 1536}, 1536,
                     (struct rv){0, 0, 0, 8960}, 130 * 8960, true, -1);
    test_linear_bf16("wan ffn2 1536x8960", 131, 8960, 1536, (struct rv){0, 0, 0, 8960}, 8960,
                     (struct rv){0, 0, 0, 1536}, 131 * 1536, true, -1);
    /* 14B width */
    test_linear_bf16("k=5120", 33, 5120, 77, (struct rv){0, 0, 0, 5120}, 5120, (struct rv){0, 0, 0, 77}, 33 * 77,
                     true, -1);
    /* more rows than one scratch chunk holds at K = 8960 (64 MiB / 17920 bytes = 3744, rounded to 3712) */
    test_linear_bf16("chunked", 3800, 8960, 256, (struct rv){0, 0, 0, 8960}, 8960, (struct rv){0, 0, 0, 256},
                     3800 * 256, true, -1);
    /* a NaN in x: its output row is NaN, every other row finite */
    test_linear_bf16("nan", 40, 96, 50, (struct rv){0, 0, 0, 96}, 96, (struct rv){0, 0, 0, 50}, 40 * 50, true, 7);
    /* grown on first use to the chunked case's chunk: 3712 rows of 8960 bf16 (<= CUDA_LINEAR_SCRATCH_BYTES) */
    T_CHECK(cuda_scratch_bytes(&g_gpu) >= (size_t)3712 * 8960 * 2 &&
                cuda_scratch_bytes(&g_gpu) <= (size_t)CUDA_LINEAR_SCRATCH_BYTES,
            "the linear scratch holds %zu bytes, expected one chunk of 3712 x 8960 bf16", cuda_scratch_bytes(&g_gpu));
    printf("linear bf16: scratch %.1f MiB after the chunked case\n", (double)cuda_scratch_bytes(&g_gpu) / (1 << 20));
}

/* ---- norms ---- */

enum norm_kind { NORM_LAYER, NORM_RMS };

/* y = norm(x) at rows views; gamma/beta optional; in_place: y is x's view. */
static void test_norm(enum norm_kind kind, const char *name, int64_t m, int64_t d, int64_t ldx, int64_t x_off,
                      bool gamma, bool beta, bool in_place) {
    const float eps = 1e-6f;
    struct twin x = twin_rand(x_off + (m - 1) * ldx + d, 2.0f, 3.0f); /* non-zero mean: two-pass variance */
    struct twin y = twin_rand(m * d, 1.0f, 0.0f);
    struct twin g = twin_rand(d, 1.0f, 1.0f), b = twin_rand(d, 1.0f, 0.0f);
    const struct rv rx = {x_off, m, d, ldx}, ry = {0, m, d, d};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = in_place ? xt : rows(&y, side, ry);
        struct tensor gt = vec(&g, side, d), bt = vec(&b, side, d);
        if (kind == NORM_LAYER)
            op_layernorm(side_ctx(side), &yt, &xt, gamma ? &gt : NULL, beta ? &bt : NULL, eps);
        else
            op_rmsnorm(side_ctx(side), &yt, &xt, gamma ? &gt : NULL, eps);
    }
    char what[160];
    snprintf(what, sizeof what, "%s %s [%lld, %lld] ld %lld%s%s%s", kind == NORM_LAYER ? "layernorm" : "rmsnorm",
             name, (long long)m, (long long)d, (long long)ldx, gamma ? " gamma" : "", beta ? " beta" : "",
             in_place ? " in place" : "");
    struct tensor xv = rows(&x, DEVICE_CPU, rx), yv = rows(&y, DEVICE_CPU, ry);
    if (in_place)
        twin_check(what, &x, &xv, TOL_NORM);
    else
        twin_check(what, &y, &yv, TOL_NORM);
    twin_free(&x), twin_free(&y), twin_free(&g), twin_free(&b);
}

/* y = LN(x) (1 + scale[g]) + shift[g]: shift and scale are chunks 0 and 1 of a [G, 6, D] table. */
static void test_norm_modulate(const char *name, int64_t m, int64_t d, int64_t n_groups, int64_t group_size,
                               int64_t row_offset) {
    const float eps = 1e-6f;
    struct twin x = twin_rand(m * d, 1.5f, -2.0f);
    struct twin y = twin_rand(m * d, 1.0f, 0.0f);
    struct twin mod = twin_rand(n_groups * 6 * d, 0.5f, 0.0f);
    const struct rv rx = {0, m, d, d}, rsh = {0, n_groups, d, 6 * d}, rsc = {d, n_groups, d, 6 * d};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = rows(&y, side, rx);
        struct tensor sh = rows(&mod, side, rsh), sc = rows(&mod, side, rsc);
        op_norm_modulate(side_ctx(side), &yt, &xt, &sh, &sc, group_size, row_offset, eps);
    }
    char what[160];
    snprintf(what, sizeof what, "norm_modulate %s [%lld, %lld] G=%lld group=%lld offset=%lld", name, (long long)m,
             (long long)d, (long long)n_groups, (long long)group_size, (long long)row_offset);
    twin_check(what, &y, NULL, TOL_NORM);
    twin_free(&x), twin_free(&y), twin_free(&mod);
}

/* ss[m] = row sums of squares of a rows view x (one tensor-parallel rank's columns of a wider buffer). */
static void test_row_sumsq(const char *name, int64_t m, int64_t d, int64_t ldx, int64_t x_off) {
    struct twin x = twin_rand(x_off + (m - 1) * ldx + d, 2.0f, 1.0f);
    struct twin ss = twin_rand(m, 1.0f, 0.0f); /* garbage the op must overwrite */
    const struct rv rx = {x_off, m, d, ldx};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), st = vec(&ss, side, m);
        op_row_sumsq(side_ctx(side), &st, &xt);
    }
    char what[160];
    snprintf(what, sizeof what, "row_sumsq %s [%lld, %lld] ld %lld", name, (long long)m, (long long)d, (long long)ldx);
    twin_check(what, &ss, NULL, TOL_SUMSQ);
    twin_free(&x), twin_free(&ss);
}

/* y = x * rsqrt(ss / width + eps) (* gamma) for given positive sums ss (the all-reduced ones of a
 * tensor-parallel rank); row 0's sum is tiny so that eps matters. in_place: y is x's view. */
static void test_rmsnorm_given_sumsq(const char *name, int64_t m, int64_t d, int64_t ldx, int64_t x_off,
                                     int64_t width, bool gamma, bool in_place) {
    const float eps = 1e-6f;
    struct twin x = twin_rand(x_off + (m - 1) * ldx + d, 1.0f, 0.0f);
    struct twin y = twin_rand(m * d, 1.0f, 0.0f);
    struct twin g = twin_rand(d, 1.0f, 1.0f);
    struct twin ss = twin_alloc(m);
    t_fill_normal(ss.init, m, SEED, g_tag++, 1.0f);
    for (int64_t i = 0; i < m; i++) ss.init[i] = (float)width * (0.25f + fabsf(ss.init[i]));
    ss.init[0] = 1e-7f * (float)width;
    twin_push(&ss);
    const struct rv rx = {x_off, m, d, ldx}, ry = {0, m, d, d};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = in_place ? xt : rows(&y, side, ry);
        struct tensor st = vec(&ss, side, m), gt = vec(&g, side, d);
        op_rmsnorm_given_sumsq(side_ctx(side), &yt, &xt, &st, width, gamma ? &gt : NULL, eps);
    }
    char what[160];
    snprintf(what, sizeof what, "rmsnorm_given_sumsq %s [%lld, %lld] ld %lld width %lld%s%s", name, (long long)m,
             (long long)d, (long long)ldx, (long long)width, gamma ? " gamma" : "", in_place ? " in place" : "");
    struct tensor xv = rows(&x, DEVICE_CPU, rx), yv = rows(&y, DEVICE_CPU, ry);
    if (in_place)
        twin_check(what, &x, &xv, TOL_EXACT);
    else
        twin_check(what, &y, &yv, TOL_EXACT);
    twin_free(&x), twin_free(&y), twin_free(&g), twin_free(&ss);
}

/* Tensor-parallel RMSNorm over the full width d of rows x (row stride ldx) cut into `parts` column ranges, in
 * place, as model/wan_dit.c rmsnorm_heads runs it on each rank: per-part sums of squares, summed into part 0's
 * (the all-reduce, here op_add_row on [1, m] views), then each part normalised with the total and width d. */
static void test_rmsnorm_tp(const char *name, int64_t m, int64_t d, int parts, int64_t ldx) {
    enum { MAX_PARTS = 4 };
    T_REQUIRE(parts >= 1 && parts <= MAX_PARTS && d % (4 * parts) == 0, "test bug: bad split");
    const float eps = 1e-6f;
    const int64_t dp = d / parts; /* a multiple of 4: every part's view stays 16-byte aligned */
    struct twin x = twin_rand((m - 1) * ldx + d, 1.5f, 0.5f);
    struct twin g = twin_rand(d, 1.0f, 1.0f);
    struct twin ss[MAX_PARTS];
    for (int p = 0; p < parts; p++) ss[p] = twin_rand(m, 1.0f, 0.0f);
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        const struct exec_ctx *ctx = side_ctx(side);
        for (int p = 0; p < parts; p++) {
            struct tensor xp = rows(&x, side, (struct rv){p * dp, m, dp, ldx}), sp = vec(&ss[p], side, m);
            op_row_sumsq(ctx, &sp, &xp);
        }
        struct tensor total = rows(&ss[0], side, (struct rv){0, 1, m, m});
        for (int p = 1; p < parts; p++) {
            struct tensor sp = vec(&ss[p], side, m);
            op_add_row(ctx, &total, &total, &sp);
        }
        struct tensor tv = vec(&ss[0], side, m);
        for (int p = 0; p < parts; p++) {
            struct tensor xp = rows(&x, side, (struct rv){p * dp, m, dp, ldx});
            struct tensor gp = view(&g, side, p * dp, 1, &dp, NULL);
            op_rmsnorm_given_sumsq(ctx, &xp, &xp, &tv, d, &gp, eps);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "rmsnorm tensor-parallel %s [%lld, %lld] ld %lld in %d parts", name, (long long)m,
             (long long)d, (long long)ldx, parts);
    struct tensor xv = rows(&x, DEVICE_CPU, (struct rv){0, m, d, ldx});
    twin_check(what, &x, &xv, TOL_RMS_TP);
    twin_free(&x), twin_free(&g);
    for (int p = 0; p < parts; p++) twin_free(&ss[p]);
}

static void test_norms_all(void) {
    test_norm(NORM_LAYER, "odd", 37, 19, 19, 0, true, true, false);
    test_norm(NORM_LAYER, "one row", 1, 5, 5, 0, false, false, false);
    test_norm(NORM_LAYER, "wan strided", 64, 1536, 1600, 4, true, false, false);
    test_norm(NORM_LAYER, "14B width", 9, 5120, 5120, 0, false, true, false);
    test_norm(NORM_LAYER, "in place", 33, 257, 300, 8, true, true, true);
    test_norm(NORM_RMS, "odd", 37, 19, 19, 0, true, false, false);
    test_norm(NORM_RMS, "no gamma", 3, 100, 100, 0, false, false, false);
    test_norm(NORM_RMS, "wan q of fused qkv", 40, 1536, 4608, 0, true, false, false);
    test_norm(NORM_RMS, "wan k in place in fused qkv", 40, 1536, 4608, 1536, true, false, true);
    test_row_sumsq("odd", 37, 19, 19, 0);
    test_row_sumsq("one row", 1, 300, 300, 0);
    test_row_sumsq("one column", 9, 1, 7, 4);
    test_row_sumsq("wan q half of fused qkv (tp 2)", 40, 768, 4608, 768);
    test_row_sumsq("14B width", 9, 5120, 5120, 0);
    test_rmsnorm_given_sumsq("odd", 37, 19, 19, 0, 57, true, false);
    test_rmsnorm_given_sumsq("no gamma", 3, 100, 100, 0, 100, false, false);
    test_rmsnorm_given_sumsq("wan k quarter in place (tp 4)", 40, 384, 4608, 1536 + 384, 1536, true, true);
    test_rmsnorm_tp("odd", 37, 60, 3, 67);
    test_rmsnorm_tp("wan q (tp 2)", 40, 1536, 2, 4608);
    test_rmsnorm_tp("14B (tp 4)", 9, 5120, 4, 5120);
    test_norm_modulate("odd", 87, 40, 3, 29, 0);
    test_norm_modulate("shard offset", 50, 40, 3, 29, 17);
    test_norm_modulate("scalar timestep", 33, 24, 1, 33, 0);
    test_norm_modulate("wan", 240, 1536, 4, 60, 0);
}

/* ---- elementwise ---- */

/* x += y * gate[g] (gate = chunk 2 of a [G, 6, D] table) or x += y; x and y are views into fused buffers. */
static void test_gated_add(const char *name, int64_t m, int64_t d, int64_t ldx, int64_t n_groups, int64_t group_size,
                           int64_t row_offset, bool gate) {
    struct twin x = twin_rand((m - 1) * ldx + d, 3.0f, 0.0f);
    struct twin y = twin_rand(m * d, 3.0f, 0.0f);
    struct twin mod = twin_rand(n_groups * 6 * d, 1.0f, 0.0f);
    const struct rv rx = {0, m, d, ldx}, ry = {0, m, d, d}, rg = {2 * d, n_groups, d, 6 * d};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = rows(&y, side, ry), gt = rows(&mod, side, rg);
        op_gated_add(side_ctx(side), &xt, &yt, gate ? &gt : NULL, group_size, row_offset);
    }
    char what[160];
    snprintf(what, sizeof what, "gated_add %s [%lld, %lld] ld %lld %s group=%lld offset=%lld", name, (long long)m,
             (long long)d, (long long)ldx, gate ? "gate" : "no gate", (long long)group_size, (long long)row_offset);
    struct tensor xv = rows(&x, DEVICE_CPU, rx);
    twin_check(what, &x, &xv, gate ? TOL_GATED : TOL_EXACT);
    twin_free(&x), twin_free(&y), twin_free(&mod);
}

static void test_add_row(const char *name, int64_t m, int64_t n, int64_t ld, bool in_place) {
    struct twin x = twin_rand((m - 1) * ld + n, 2.0f, 0.0f);
    struct twin y = twin_rand(m * n, 1.0f, 0.0f);
    struct twin r = twin_rand(n, 2.0f, 0.0f);
    const struct rv rx = {0, m, n, ld}, ry = {0, m, n, n};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = in_place ? xt : rows(&y, side, ry), rt = vec(&r, side, n);
        op_add_row(side_ctx(side), &yt, &xt, &rt);
    }
    char what[160];
    snprintf(what, sizeof what, "add_row %s [%lld, %lld] ld %lld%s", name, (long long)m, (long long)n, (long long)ld,
             in_place ? " in place" : "");
    struct tensor xv = rows(&x, DEVICE_CPU, rx);
    if (in_place)
        twin_check(what, &x, &xv, TOL_EXACT);
    else
        twin_check(what, &y, NULL, TOL_EXACT);
    twin_free(&x), twin_free(&y), twin_free(&r);
}

enum act_kind { ACT_SILU, ACT_GELU_TANH, ACT_GELU_ERF };

static void run_act(enum act_kind kind, enum device side, struct tensor *y, const struct tensor *x) {
    switch (kind) {
    case ACT_SILU: op_silu(side_ctx(side), y, x); break;
    case ACT_GELU_TANH: op_gelu_tanh(side_ctx(side), y, x); break;
    case ACT_GELU_ERF: op_gelu_erf(side_ctx(side), y, x); break;
    }
}

/* Activation on a rows view (ndim 2: [m, n] with row stride ld, y contiguous or in place) or on a
 * contiguous tensor of rank ndim (shape[]). */
static void test_act(enum act_kind kind, const char *name, int ndim, const int64_t *shape, int64_t ld, bool in_place) {
    static const char *names[] = {"silu", "gelu_tanh", "gelu_erf"};
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    const bool strided = ndim == 2;
    const int64_t xn = strided ? (shape[0] - 1) * ld + shape[1] : numel;
    struct twin x = twin_rand(xn, 3.0f, 0.0f);
    struct twin y = twin_rand(numel, 1.0f, 0.0f);
    const struct rv rx = {0, strided ? shape[0] : 0, strided ? shape[1] : 0, ld};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = strided ? rows(&x, side, rx) : view(&x, side, 0, ndim, shape, NULL);
        struct tensor yt = in_place ? xt : view(&y, side, 0, ndim, shape, NULL);
        run_act(kind, side, &yt, &xt);
    }
    char what[160];
    snprintf(what, sizeof what, "%s %s (%d-D, %lld elements)%s", names[kind], name, ndim, (long long)numel,
             in_place ? " in place" : "");
    const struct cmp_tol tol = kind == ACT_SILU ? TOL_SILU : TOL_GELU;
    struct tensor xv = strided ? rows(&x, DEVICE_CPU, rx) : view(&x, DEVICE_CPU, 0, ndim, shape, NULL);
    if (in_place)
        twin_check(what, &x, &xv, tol);
    else
        twin_check(what, &y, NULL, tol);
    twin_free(&x), twin_free(&y);
}

/* dst = src: src a view (rows with stride, or contiguous of rank ndim) into a larger buffer, dst too. */
static void test_copy(const char *name, int ndim, const int64_t *shape, int64_t ld_src, int64_t ld_dst, int64_t off) {
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    const bool strided = ndim == 2;
    const int64_t sn = off + (strided ? (shape[0] - 1) * ld_src + shape[1] : numel);
    const int64_t dn = off + (strided ? (shape[0] - 1) * ld_dst + shape[1] : numel) + 8;
    struct twin src = twin_rand(sn, 1.0f, 0.0f), dst = twin_rand(dn, 1.0f, 0.0f);
    const struct rv rs = {off, strided ? shape[0] : 0, strided ? shape[1] : 0, ld_src};
    const struct rv rd = {off, rs.m, rs.n, ld_dst};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor st = strided ? rows(&src, side, rs) : view(&src, side, off, ndim, shape, NULL);
        struct tensor dt = strided ? rows(&dst, side, rd) : view(&dst, side, off, ndim, shape, NULL);
        op_copy(side_ctx(side), &dt, &st);
    }
    char what[160];
    snprintf(what, sizeof what, "copy %s (%d-D, %lld elements)", name, ndim, (long long)numel);
    struct tensor dv = strided ? rows(&dst, DEVICE_CPU, rd) : view(&dst, DEVICE_CPU, off, ndim, shape, NULL);
    twin_check(what, &dst, &dv, TOL_EXACT);
    twin_free(&src), twin_free(&dst);
}

/* Round trips through op_upload / op_download: f32 of rank 3 and a bf16 buffer (transfer is dtype-blind). */
static void test_transfer(void) {
    const int64_t shape[3] = {3, 17, 29}, n = 3 * 17 * 29;
    float *h = xmalloc((size_t)n * sizeof(float)), *back = guard_alloc(n);
    t_fill_normal(h, n, SEED, g_tag++, 1.0f);
    float *d = cuda_alloc((size_t)n * sizeof(float));
    struct tensor ht = tensor_make(DTYPE_F32, DEVICE_CPU, h, 3, shape), dt = tensor_make(DTYPE_F32, DEVICE_CUDA, d, 3, shape);
    struct tensor bt = tensor_make(DTYPE_F32, DEVICE_CPU, back, 3, shape);
    op_upload(&g_gpu, &dt, &ht);
    op_download(&g_gpu, &bt, &dt);
    T_CHECK(memcmp(h, back, (size_t)n * sizeof(float)) == 0, "f32 upload/download round trip differs");
    T_CHECK(guard_intact(back, n), "f32 download overran its buffer");
    cmp_check("transfer f32 [3, 17, 29]", back, h, n, TOL_EXACT);

    uint16_t *hb = xmalloc((size_t)n * sizeof(uint16_t)), *bb = xmalloc((size_t)n * sizeof(uint16_t));
    for (int64_t i = 0; i < n; i++) hb[i] = f32_to_bf16(h[i]);
    memset(bb, 0, (size_t)n * sizeof(uint16_t));
    struct tensor hbt = tensor_make(DTYPE_BF16, DEVICE_CPU, hb, 3, shape), dbt = tensor_make(DTYPE_BF16, DEVICE_CUDA, d, 3, shape);
    struct tensor bbt = tensor_make(DTYPE_BF16, DEVICE_CPU, bb, 3, shape);
    op_upload(&g_gpu, &dbt, &hbt);
    op_download(&g_gpu, &bbt, &dbt);
    T_CHECK(memcmp(hb, bb, (size_t)n * sizeof(uint16_t)) == 0, "bf16 upload/download round trip differs");
    printf("transfer bf16 [3, 17, 29]: %s\n", memcmp(hb, bb, (size_t)n * sizeof(uint16_t)) == 0 ? "pass" : "FAIL");
    free(h), guard_free(back), free(hb), free(bb);
    cuda_free(d);
}

static void test_elementwise_all(void) {
    test_gated_add("odd", 87, 40, 40, 3, 29, 0, true);
    test_gated_add("strided shard", 50, 40, 57, 3, 29, 17, true);
    test_gated_add("no gate", 37, 19, 23, 1, 37, 0, false);
    test_gated_add("wan", 240, 1536, 1536, 4, 60, 0, true);
    test_add_row("odd", 37, 19, 19, false);
    test_add_row("strided in place", 50, 33, 41, true);
    test_add_row("wan", 130, 1536, 1536, false);
    for (int k = ACT_SILU; k <= ACT_GELU_ERF; k++) {
        test_act((enum act_kind)k, "odd rows", 2, (const int64_t[]){37, 19}, 19, false);
        test_act((enum act_kind)k, "strided rows", 2, (const int64_t[]){20, 33}, 50, false);
        test_act((enum act_kind)k, "strided in place", 2, (const int64_t[]){20, 33}, 50, true);
        test_act((enum act_kind)k, "3-D", 3, (const int64_t[]){3, 5, 7}, 0, false);
        test_act((enum act_kind)k, "1-D", 1, (const int64_t[]){1001}, 0, false);
        test_act((enum act_kind)k, "wan ffn", 2, (const int64_t[]){33, 8960}, 8960, false);
    }
    test_copy("strided rows", 2, (const int64_t[]){37, 19}, 23, 31, 4);
    test_copy("contiguous rows", 2, (const int64_t[]){37, 19}, 19, 19, 0);
    test_copy("one row", 2, (const int64_t[]){1, 77}, 77, 77, 8);
    test_copy("4-D", 4, (const int64_t[]){2, 3, 5, 7}, 0, 0, 4);
    test_copy("1-D", 1, (const int64_t[]){1001}, 0, 0, 0);
    test_copy("wan q of fused qkv", 2, (const int64_t[]){130, 1536}, 4608, 1536, 0);
    test_transfer();
}

/* ---- rope ---- */

/* (cos, sin) table [P, pairs, 2] with Wan's per-axis frequencies (spec 3.3), angles in double. */
static void rope_table(float *tab, int64_t n_pos, const int split[3]) {
    const int pairs = split[0] + split[1] + split[2];
    for (int64_t p = 0; p < n_pos; p++) {
        int j = 0;
        for (int a = 0; a < 3; a++)
            for (int e = 0; e < split[a]; e++, j++) {
                const double omega = 1.0 / pow(10000.0, (2.0 * e) / (2.0 * split[a]));
                tab[(p * pairs + j) * 2] = (float)cos((double)p * omega);
                tab[(p * pairs + j) * 2 + 1] = (float)sin((double)p * omega);
            }
    }
}

/* rope3d in place on a rows view [l, heads dh] at column col of a fused [., ld] buffer. */
static void test_rope(const char *name, int n_heads, int dh, const int split[3], const int64_t grid[3], int64_t l,
                      int64_t token_offset, int64_t col, int64_t ld, int64_t n_pos) {
    const int64_t d = (int64_t)n_heads * dh;
    struct twin x = twin_rand((l - 1) * ld + col + d, 1.0f, 0.0f);
    struct twin f = twin_alloc(n_pos * (dh / 2) * 2);
    rope_table(f.init, n_pos, split);
    twin_push(&f);
    const struct rv rx = {col, l, d, ld};
    const int64_t fshape[3] = {n_pos, dh / 2, 2};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), ft = view(&f, side, 0, 3, fshape, NULL);
        op_rope3d(side_ctx(side), &xt, n_heads, grid, token_offset, &ft, split);
    }
    char what[160];
    snprintf(what, sizeof what, "rope3d %s L=%lld H=%d dh=%d grid %lldx%lldx%lld offset %lld", name, (long long)l,
             n_heads, dh, (long long)grid[0], (long long)grid[1], (long long)grid[2], (long long)token_offset);
    struct tensor xv = rows(&x, DEVICE_CPU, rx);
    twin_check(what, &x, &xv, TOL_ROPE);
    twin_free(&x), twin_free(&f);
}

static void test_rope_all(void) {
    test_rope("odd", 3, 12, (const int[]){2, 2, 2}, (const int64_t[]){3, 4, 5}, 60, 0, 0, 108, 5);
    test_rope("k of fused, shard", 3, 12, (const int[]){2, 2, 2}, (const int64_t[]){3, 4, 5}, 30, 13, 36, 108, 6);
    test_rope("uneven split", 2, 14, (const int[]){3, 1, 3}, (const int64_t[]){2, 3, 7}, 42, 0, 0, 29, 7);
    test_rope("wan q of fused qkv", 12, 128, (const int[]){22, 21, 21}, (const int64_t[]){2, 6, 10}, 120, 0, 0,
              4608, 16);
    test_rope("wan k shard", 12, 128, (const int[]){22, 21, 21}, (const int64_t[]){4, 6, 10}, 100, 117, 1536, 4608,
              1024);
    test_rope("dh 256", 1, 256, (const int[]){44, 42, 42}, (const int64_t[]){3, 3, 3}, 27, 0, 0, 256, 3);
}

/* ---- attention ---- */

/* One attention call's operands: rows views into twins (q, k, v may share a fused buffer). */
struct attn_args {
    struct twin *q, *k, *v;
    struct rv rq, rk, rv;
    int n_heads;
    float scale;
    const struct attn_causal *causal;
    bool accumulate;
};

static void run_attn_ctx(const struct exec_ctx *ctx, enum device side, struct twin *out, struct rv ro,
                         const struct attn_args *a) {
    struct tensor ot = rows(out, side, ro), qt = rows(a->q, side, a->rq), kt = rows(a->k, side, a->rk),
                  vt = rows(a->v, side, a->rv);
    op_attention(ctx, &ot, &qt, &kt, &vt, a->n_heads, a->scale, a->causal, a->accumulate);
}

static void run_attn(enum device side, struct twin *out, struct rv ro, const struct attn_args *a) {
    run_attn_ctx(side_ctx(side), side, out, ro, a);
}

/* Random q, k, v for the attention tests: fused into one [L, 3 d + pad] buffer (self_fused, lq == lk), or q
 * alone and k, v in a [lk, 2 d + pad] buffer; a gets the views (the rest of a zeroed). */
static void attn_inputs(struct attn_args *a, struct twin *qkv, struct twin *q, struct twin *kv, int64_t lq, int64_t lk,
                        int64_t d, int64_t pad, bool self_fused) {
    memset(qkv, 0, sizeof *qkv), memset(q, 0, sizeof *q), memset(kv, 0, sizeof *kv);
    memset(a, 0, sizeof *a);
    if (self_fused) {
        *qkv = twin_rand(lq * (3 * d + pad), 1.0f, 0.0f);
        a->q = a->k = a->v = qkv;
        a->rq = (struct rv){0, lq, d, 3 * d + pad};
        a->rk = (struct rv){d, lk, d, 3 * d + pad};
        a->rv = (struct rv){2 * d, lk, d, 3 * d + pad};
    } else {
        *q = twin_rand(lq * d, 1.0f, 0.0f);
        *kv = twin_rand(lk * (2 * d + pad), 1.0f, 0.0f);
        a->q = q, a->k = a->v = kv;
        a->rq = (struct rv){0, lq, d, d};
        a->rk = (struct rv){0, lk, d, 2 * d + pad};
        a->rv = (struct rv){d, lk, d, 2 * d + pad};
    }
}

/* Self- or cross-attention: q [lq, H dh] and k, v [lk, H dh]; self_fused puts q, k, v into one
 * [L, 3 H dh (+ pad)] buffer (lq == lk), otherwise q alone and k, v in a [lk, 2 H dh + pad] buffer. */
static void test_attention(const char *name, int64_t lq, int64_t lk, int n_heads, int dh, float scale_mul,
                           const struct attn_causal *causal, bool accumulate, bool self_fused) {
    const int64_t d = (int64_t)n_heads * dh;
    const int64_t pad = 4; /* odd-looking strides, 16-byte aligned views */
    struct twin qkv, q, kv;
    struct attn_args a;
    attn_inputs(&a, &qkv, &q, &kv, lq, lk, d, pad, self_fused);
    /* out [lq, d] inside a [lq, d + pad] buffer, pre-filled (accumulate adds to it). */
    struct twin out = twin_rand(lq * (d + pad), 1.0f, 0.0f);
    const struct rv ro = {0, lq, d, d + pad};
    a.n_heads = n_heads;
    a.scale = scale_mul / sqrtf((float)dh);
    a.causal = causal;
    a.accumulate = accumulate;
    run_attn(DEVICE_CPU, &out, ro, &a);
    run_attn(DEVICE_CUDA, &out, ro, &a);
    char what[200];
    snprintf(what, sizeof what, "attention %s Lq=%lld Lk=%lld H=%d dh=%d%s%s", name, (long long)lq, (long long)lk,
             n_heads, dh, causal ? " block-causal" : "", accumulate ? " accumulate" : "");
    struct tensor ov = rows(&out, DEVICE_CPU, ro);
    struct cmp_tol tol = TOL_ATTN;
    tol.atol *= scale_mul; /* score rounding grows with the scores (table above) */
    twin_check(what, &out, &ov, tol);
    twin_free(&out);
    if (self_fused) {
        twin_free(&qkv);
    } else {
        twin_free(&q), twin_free(&kv);
    }
}

/* I2V cross-attention (spec 3.6 step 4): out = attn(q, k_txt, v_txt) + attn(q, k_img, v_img). */
static void test_attention_i2v(const char *name, int64_t lq, int64_t l_txt, int64_t l_img, int n_heads, int dh) {
    const int64_t d = (int64_t)n_heads * dh;
    struct twin q = twin_rand(lq * d, 1.0f, 0.0f);
    struct twin kv_txt = twin_rand(l_txt * 2 * d, 1.0f, 0.0f), kv_img = twin_rand(l_img * 2 * d, 1.0f, 0.0f);
    struct twin out = twin_rand(lq * d, 1.0f, 0.0f);
    const struct rv ro = {0, lq, d, d};
    struct attn_args txt = {&q, &kv_txt, &kv_txt, {0, lq, d, d}, {0, l_txt, d, 2 * d}, {d, l_txt, d, 2 * d},
                            n_heads, 1.0f / sqrtf((float)dh), NULL, false};
    struct attn_args img = {&q, &kv_img, &kv_img, {0, lq, d, d}, {0, l_img, d, 2 * d}, {d, l_img, d, 2 * d},
                            n_heads, 1.0f / sqrtf((float)dh), NULL, true};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        run_attn(side, &out, ro, &txt);
        run_attn(side, &out, ro, &img);
    }
    char what[200];
    snprintf(what, sizeof what, "attention i2v sum %s Lq=%lld Ltxt=%lld Limg=%lld H=%d dh=%d", name, (long long)lq,
             (long long)l_txt, (long long)l_img, n_heads, dh);
    twin_check(what, &out, NULL, TOL_ATTN);
    twin_free(&q), twin_free(&kv_txt), twin_free(&kv_img), twin_free(&out);
}

/* Block-causal on a sequence-parallel shard: q holds global tokens [q_off, q_off + lq), k and v
 * global tokens [k_off, k_off + lk). */
static void test_attention_causal_shard(const char *name, int64_t tpf, int64_t fpb, int64_t q_off, int64_t lq,
                                        int64_t k_off, int64_t lk, int n_heads, int dh, bool accumulate) {
    const struct attn_causal c = {tpf, fpb, q_off, k_off};
    char full[120];
    snprintf(full, sizeof full, "%s (tpf %lld fpb %lld q_off %lld k_off %lld)", name, (long long)tpf, (long long)fpb,
             (long long)q_off, (long long)k_off);
    test_attention(full, lq, lk, n_heads, dh, 1.0f, &c, accumulate, false);
}

/* ---- attention over key blocks with carried state (ring attention) ---- */

enum attn_init {
    ATTN_INIT_FIRST, /* the state starts as NaN; block 0 has first_block (it must overwrite, never read) */
    ATTN_INIT_CARRY  /* the state starts as a random valid state; every block carries it on */
};

/* A random valid attention state in the views of m, l [h, lq] and o [lq, h dh]: every `empty`-th query row
 * (0: none) has seen no key yet (m = -inf, l = 0, o = 0), the others have m ~ N(1, 1), l in [0.5, ...) and
 * o ~ N(0, 4). Elements outside the views keep their random values. */
static void attn_state_fill(struct twin *m, struct twin *l, struct twin *o, struct rv rml, struct rv ro,
                            int64_t empty) {
    float *r = xmalloc((size_t)(3 * rml.m * rml.n + ro.m * ro.n) * sizeof(float));
    t_fill_normal(r, 3 * rml.m * rml.n + ro.m * ro.n, SEED, g_tag++, 1.0f);
    const float *rm = r, *rl = r + rml.m * rml.n, *ro_ = r + 2 * rml.m * rml.n;
    for (int64_t h = 0; h < rml.m; h++)
        for (int64_t i = 0; i < rml.n; i++) {
            const bool none = empty > 0 && i % empty == empty / 2;
            const int64_t k = h * rml.n + i;
            m->init[rml.off + h * rml.ld + i] = none ? -INFINITY : 1.0f + rm[k];
            l->init[rml.off + h * rml.ld + i] = none ? 0.0f : 0.5f + 3.0f * fabsf(rl[k]);
        }
    for (int64_t i = 0; i < ro.m; i++)
        for (int64_t j = 0; j < ro.n; j++) {
            const bool none = empty > 0 && i % empty == empty / 2;
            o->init[ro.off + i * ro.ld + j] = none ? 0.0f : 2.0f * ro_[i * ro.n + j];
        }
    free(r);
}

/* Largest |l| in the CPU state (the unnormalised o scales with it). */
static float attn_state_l_max(const struct twin *l, struct rv rml) {
    float mx = 1.0f;
    for (int64_t h = 0; h < rml.m; h++)
        for (int64_t i = 0; i < rml.n; i++) mx = fmaxf(mx, fabsf(l->cpu[rml.off + h * rml.ld + i]));
    return mx;
}

/* Ring attention on both backends: q [lq, H dh] (global tokens [q_off, q_off + lq), a view at column 4 of a
 * [lq, H dh + 8] buffer) against the keys of global tokens [k_base, k_base + sum lens), which arrive in
 * n_blocks blocks. Block b holds lens[b] keys (valid_keys) followed by pad NaN rows that must never be read,
 * k and v side by side in one [lens[b] + pad, 2 H dh + 4] buffer. The state m, l [H, lq] (row stride lq + 4)
 * and o [lq, H dh] (row stride H dh + 4) starts as `init` says; then op_attention_finish writes out
 * [lq, H dh] (row stride H dh + 4, pre-filled: accumulate adds to it). Checked: out against the CPU, and the
 * state m, l, o itself when every query row has seen a key (otherwise m holds -inf). */
static void test_attention_blocks(const char *name, int64_t lq, int64_t q_off, int64_t k_base, int n_blocks,
                                  const int64_t *lens, int64_t pad, int n_heads, int dh, float scale_mul,
                                  const struct attn_causal *causal, bool accumulate, enum attn_init init) {
    enum { MAX_BLOCKS = 8 };
    T_REQUIRE(n_blocks >= 1 && n_blocks <= MAX_BLOCKS, "test bug: %d blocks", n_blocks);
    const int64_t d = (int64_t)n_heads * dh;
    const float scale = scale_mul / sqrtf((float)dh);
    int64_t lk = 0;
    for (int b = 0; b < n_blocks; b++) lk += lens[b];

    struct twin q = twin_rand(lq * (d + 8), 1.0f, 0.0f);
    const struct rv rq = {4, lq, d, d + 8};
    struct twin kv[MAX_BLOCKS];
    for (int b = 0; b < n_blocks; b++) {
        const int64_t nrows = lens[b] + pad, ld = 2 * d + 4;
        kv[b] = twin_alloc(nrows * ld);
        t_fill_normal(kv[b].init, kv[b].n, SEED, g_tag++, 1.0f);
        for (int64_t i = lens[b] * ld; i < kv[b].n; i++) kv[b].init[i] = NAN; /* padding rows */
        twin_push(&kv[b]);
    }
    const struct rv rml = {0, n_heads, lq, lq + 4}, ro = {0, lq, d, d + 4};
    struct twin m = twin_alloc(n_heads * (lq + 4)), l = twin_alloc(n_heads * (lq + 4)), o = twin_alloc(lq * (d + 4));
    t_fill_normal(m.init, m.n, SEED, g_tag++, 1.0f);
    t_fill_normal(l.init, l.n, SEED, g_tag++, 1.0f);
    t_fill_normal(o.init, o.n, SEED, g_tag++, 1.0f);
    if (init == ATTN_INIT_CARRY) {
        attn_state_fill(&m, &l, &o, rml, ro, 5);
    } else {
        for (int64_t h = 0; h < n_heads; h++)
            for (int64_t i = 0; i < lq; i++) m.init[h * rml.ld + i] = l.init[h * rml.ld + i] = NAN;
        for (int64_t i = 0; i < lq; i++)
            for (int64_t j = 0; j < d; j++) o.init[i * ro.ld + j] = NAN;
    }
    twin_push(&m), twin_push(&l), twin_push(&o);
    struct twin out = twin_rand(lq * (d + 4), 1.0f, 0.0f);

    struct attn_causal c;
    memset(&c, 0, sizeof c);
    if (causal) c = *causal;
    c.q_token_offset = q_off;
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct attn_state st = {rows(&m, side, rml), rows(&l, side, rml), rows(&o, side, ro)};
        struct tensor qt = rows(&q, side, rq);
        int64_t start = k_base;
        for (int b = 0; b < n_blocks; b++) {
            const int64_t nrows = lens[b] + pad;
            struct tensor kt = rows(&kv[b], side, (struct rv){0, nrows, d, 2 * d + 4});
            struct tensor vt = rows(&kv[b], side, (struct rv){d, nrows, d, 2 * d + 4});
            c.k_token_offset = start;
            op_attention_block(side_ctx(side), &st, &qt, &kt, &vt, n_heads, scale, causal ? &c : NULL, lens[b],
                               init == ATTN_INIT_FIRST && b == 0);
            start += lens[b];
        }
        struct tensor ot = rows(&out, side, ro);
        op_attention_finish(side_ctx(side), &ot, &st, accumulate);
    }

    char what[240];
    int n = snprintf(what, sizeof what, "attention blocks %s Lq=%lld H=%d dh=%d%s%s%s pad %lld keys from %lld:", name,
                     (long long)lq, n_heads, dh, causal ? " block-causal" : "", accumulate ? " accumulate" : "",
                     init == ATTN_INIT_CARRY ? " carried state" : "", (long long)pad, (long long)k_base);
    for (int b = 0; b < n_blocks && n > 0 && (size_t)n < sizeof what; b++)
        n += snprintf(what + n, sizeof what - (size_t)n, " %lld", (long long)lens[b]);
    struct cmp_tol tol = TOL_ATTN;
    tol.atol *= scale_mul; /* score rounding grows with the scores (table above) */
    struct tensor ov = rows(&out, DEVICE_CPU, ro);
    twin_check(what, &out, &ov, tol);

    /* Every row has seen a key iff row 0 (the one with the fewest visible keys) sees one of these keys, or
     * every row of a carried state had seen one already. */
    const int64_t row0_end = causal ? ((q_off / c.tokens_per_frame) / c.frames_per_block + 1) * c.frames_per_block *
                                          c.tokens_per_frame
                                    : INT64_MAX;
    if (lk > 0 && row0_end > k_base) {
        char sw[300];
        struct tensor mv = rows(&m, DEVICE_CPU, rml), lv = rows(&l, DEVICE_CPU, rml), sv = rows(&o, DEVICE_CPU, ro);
        snprintf(sw, sizeof sw, "%s, state m", what);
        twin_check(sw, &m, &mv, tol);
        snprintf(sw, sizeof sw, "%s, state l", what);
        twin_check(sw, &l, &lv, tol);
        struct cmp_tol tol_o = TOL_ATTN_STATE_O;
        tol_o.atol *= scale_mul * attn_state_l_max(&l, rml);
        snprintf(sw, sizeof sw, "%s, state o", what);
        twin_check(sw, &o, &sv, tol_o);
    }
    twin_free(&q), twin_free(&m), twin_free(&l), twin_free(&o), twin_free(&out);
    for (int b = 0; b < n_blocks; b++) twin_free(&kv[b]);
}

/* op_attention_finish alone on a random valid state (every 7th row without keys, l = 0): out [lq, H dh]
 * (row stride H dh + 4) =|+= o / l. The same float operations on both backends: bit-exact. */
static void test_attention_finish(const char *name, int64_t lq, int n_heads, int dh, bool accumulate) {
    const int64_t d = (int64_t)n_heads * dh;
    const struct rv rml = {0, n_heads, lq, lq + 4}, ro = {0, lq, d, d + 4};
    struct twin m = twin_alloc(n_heads * (lq + 4)), l = twin_alloc(n_heads * (lq + 4)), o = twin_alloc(lq * (d + 4));
    t_fill_normal(m.init, m.n, SEED, g_tag++, 1.0f);
    t_fill_normal(l.init, l.n, SEED, g_tag++, 1.0f);
    t_fill_normal(o.init, o.n, SEED, g_tag++, 1.0f);
    attn_state_fill(&m, &l, &o, rml, ro, 7);
    twin_push(&m), twin_push(&l), twin_push(&o);
    struct twin out = twin_rand(lq * (d + 4), 1.0f, 0.0f);
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        const struct attn_state st = {rows(&m, side, rml), rows(&l, side, rml), rows(&o, side, ro)};
        struct tensor ot = rows(&out, side, ro);
        op_attention_finish(side_ctx(side), &ot, &st, accumulate);
    }
    char what[160];
    snprintf(what, sizeof what, "attention_finish %s Lq=%lld H=%d dh=%d%s", name, (long long)lq, n_heads, dh,
             accumulate ? " accumulate" : "");
    struct tensor ov = rows(&out, DEVICE_CPU, ro);
    twin_check(what, &out, &ov, TOL_EXACT);
    twin_free(&m), twin_free(&l), twin_free(&o), twin_free(&out);
}

static void test_attention_blocks_all(void) {
    /* full attention; block 0 starts the state, the last block is shorter than its buffer */
    test_attention_blocks("two blocks", 37, 0, 0, 2, (const int64_t[]){23, 41}, 5, 3, 16, 1.0f, NULL, false,
                          ATTN_INIT_FIRST);
    test_attention_blocks("one key", 3, 0, 0, 1, (const int64_t[]){1}, 2, 5, 8, 1.0f, NULL, false, ATTN_INIT_FIRST);
    test_attention_blocks("dh 256", 19, 0, 0, 2, (const int64_t[]){45, 12}, 20, 1, 256, 1.0f, NULL, true,
                          ATTN_INIT_FIRST);
    /* carried state (first_block false throughout, rows without keys yet), accumulate, an empty block */
    test_attention_blocks("carry", 50, 0, 0, 3, (const int64_t[]){31, 0, 64}, 3, 2, 64, 1.0f, NULL, true,
                          ATTN_INIT_CARRY);
    test_attention_blocks("carry peaky softmax", 40, 0, 0, 2, (const int64_t[]){70, 60}, 1, 2, 40, 8.0f, NULL,
                          false, ATTN_INIT_CARRY);
    /* block-causal: a query shard of a ring; blocks past every row's frame block are skipped */
    const struct attn_causal c50 = {50, 2, 0, 0};
    test_attention_blocks("causal query shard", 100, 100, 0, 4, (const int64_t[]){100, 100, 100, 100}, 0, 4, 128,
                          1.0f, &c50, true, ATTN_INIT_FIRST);
    const struct attn_causal c13 = {13, 1, 0, 0};
    test_attention_blocks("causal carry, empty first block", 40, 5, 0, 3, (const int64_t[]){0, 30, 35}, 4, 3, 16,
                          1.0f, &c13, false, ATTN_INIT_CARRY);
    /* keys start after the first frame block: rows 0..21 see no key, must come out 0 (or keep out) */
    const struct attn_causal c11 = {11, 2, 0, 0};
    test_attention_blocks("rows without keys", 30, 0, 22, 2, (const int64_t[]){20, 24}, 3, 2, 40, 1.0f, &c11, false,
                          ATTN_INIT_FIRST);
    test_attention_blocks("rows without keys, accumulate", 30, 0, 22, 2, (const int64_t[]){20, 24}, 3, 2, 40, 1.0f,
                          &c11, true, ATTN_INIT_FIRST);
    /* Wan 1.3B shapes: 12 heads of 128, a ring of 4 with a short last block, full and block-causal */
    test_attention_blocks("wan ring of 4", 200, 0, 0, 4, (const int64_t[]){200, 200, 200, 137}, 63, 12, 128, 1.0f,
                          NULL, false, ATTN_INIT_FIRST);
    const struct attn_causal wan_causal = {50, 2, 0, 0};
    test_attention_blocks("wan ring of 3 causal", 150, 150, 0, 3, (const int64_t[]){150, 150, 100}, 50, 12, 128,
                          1.0f, &wan_causal, false, ATTN_INIT_FIRST);
    test_attention_finish("small", 37, 3, 16, false);
    test_attention_finish("small", 37, 3, 16, true);
    test_attention_finish("wan", 100, 12, 128, true);
    test_attention_finish("dh 384 (above the block kernel's 256)", 9, 1, 384, false);
}

static void test_attention_all(void) {
    /* full attention, odd shapes */
    test_attention("small", 37, 23, 3, 16, 1.0f, NULL, false, false);
    test_attention("dh 40 self fused", 77, 77, 2, 40, 1.0f, NULL, false, true);
    test_attention("dh 256", 19, 45, 1, 256, 1.0f, NULL, false, false);
    test_attention("one key", 3, 1, 5, 8, 1.0f, NULL, false, false);
    test_attention("one query", 1, 100, 4, 32, 1.0f, NULL, false, false);
    test_attention("peaky softmax", 40, 130, 2, 64, 8.0f, NULL, false, false); /* scores ~N(0, 64) */
    test_attention("accumulate", 50, 70, 3, 24, 1.0f, NULL, true, false);
    /* block-causal: whole sequence, then shards with offsets */
    const struct attn_causal whole = {7, 2, 0, 0};
    test_attention("causal whole", 42, 42, 2, 24, 1.0f, &whole, false, true);
    test_attention_causal_shard("q shard vs k shard", 11, 2, 22, 30, 33, 33, 2, 24, false);
    /* keys start after the first block: the first 22 query rows see no key and must come out 0 */
    test_attention_causal_shard("rows without keys", 11, 2, 0, 30, 22, 44, 2, 24, false);
    test_attention_causal_shard("rows without keys, accumulate", 11, 2, 0, 30, 22, 44, 2, 24, true);
    test_attention_causal_shard("frames_per_block 1", 13, 1, 5, 40, 0, 65, 3, 16, true);
    /* I2V: text and image branches summed */
    test_attention_i2v("small", 50, 77, 33, 4, 32);
    /* Wan 1.3B shapes: 12 heads of 128 */
    test_attention("wan self", 300, 300, 12, 128, 1.0f, NULL, false, true);
    const struct attn_causal wan_causal = {50, 2, 0, 0};
    test_attention("wan self causal", 300, 300, 12, 128, 1.0f, &wan_causal, false, true);
    test_attention("wan cross (text 512)", 300, 512, 12, 128, 1.0f, NULL, false, false);
    test_attention_i2v("wan", 200, 512, 257, 12, 128);
}

/* ---- attention on tensor cores (ctx->attention_bf16: kernels/cuda/kern_flash_attn.cu) ---- */

/* The rows view r of a downloaded buffer, packed [r.m, r.n]. */
static float *pack_view(const float *all, struct rv r) {
    float *p = xmalloc((size_t)(r.m * r.n) * sizeof(float));
    for (int64_t i = 0; i < r.m; i++) memcpy(p + i * r.n, all + r.off + i * r.ld, (size_t)r.n * sizeof(float));
    return p;
}

/* As test_attention, through the flash kernel (g_gpu_bf16), which must support the shape (no silent fallback to
 * the f32 kernel): against the CPU (twin_check: the view, untouched gaps, guards, no NaN/Inf) and against the f32
 * CUDA kernel on a second output buffer with the same initial contents. */
static void test_attention_flash(const char *name, int64_t lq, int64_t lk, int n_heads, int dh, float scale_mul,
                                 const struct attn_causal *causal, bool accumulate, bool self_fused) {
    const int64_t d = (int64_t)n_heads * dh;
    const int64_t pad = 4; /* row strides stay multiples of 4 floats: the flash kernel's float4 loads */
    struct twin qkv, q, kv;
    struct attn_args a;
    attn_inputs(&a, &qkv, &q, &kv, lq, lk, d, pad, self_fused);
    struct twin out = twin_rand(lq * (d + pad), 1.0f, 0.0f);
    struct twin out32 = twin_alloc(out.n); /* the f32 CUDA kernel's output, same initial contents */
    memcpy(out32.init, out.init, (size_t)out.n * sizeof(float));
    twin_push(&out32);
    const struct rv ro = {0, lq, d, d + pad};
    a.n_heads = n_heads;
    a.scale = scale_mul / sqrtf((float)dh);
    a.causal = causal;
    a.accumulate = accumulate;
    {
        struct tensor ot = rows(&out, DEVICE_CUDA, ro), qt = rows(a.q, DEVICE_CUDA, a.rq),
                      kt = rows(a.k, DEVICE_CUDA, a.rk), vt = rows(a.v, DEVICE_CUDA, a.rv);
        T_REQUIRE(kern_flash_attention_supported(&ot, &qt, &kt, &vt, n_heads),
                  "test bug: flash attention %s would fall back to the f32 kernel", name);
    }
    run_attn(DEVICE_CPU, &out, ro, &a);
    run_attn_ctx(&g_gpu_bf16, DEVICE_CUDA, &out, ro, &a);
    run_attn_ctx(&g_gpu, DEVICE_CUDA, &out32, ro, &a);
    char what[240];
    snprintf(what, sizeof what, "attention flash bf16 %s Lq=%lld Lk=%lld H=%d dh=%d%s%s", name, (long long)lq,
             (long long)lk, n_heads, dh, causal ? " block-causal" : "", accumulate ? " accumulate" : "");
    struct tensor ov = rows(&out, DEVICE_CPU, ro);
    struct cmp_tol tol = TOL_ATTN_BF16;
    tol.atol *= scale_mul; /* score errors grow with the scores (table above) */
    tol.nmse_max *= (double)scale_mul * scale_mul;
    twin_check(what, &out, &ov, tol);

    float *all_bf16 = download_twin(&out), *all_f32 = download_twin(&out32);
    float *g = pack_view(all_bf16, ro), *r = pack_view(all_f32, ro);
    char what32[280];
    snprintf(what32, sizeof what32, "%s vs the f32 CUDA kernel", what);
    cmp_check(what32, g, r, lq * d, tol);
    free(all_bf16), free(all_f32), free(g), free(r);
    twin_free(&out), twin_free(&out32);
    if (self_fused) {
        twin_free(&qkv);
    } else {
        twin_free(&q), twin_free(&kv);
    }
}

/* Rates of the flash and the f32 kernels on one large full attention (40 heads of 128, 8192 tokens: a 14B-like
 * layer), printed so that the first GPU run shows the speed; the two results must agree (TOL_ATTN_BF16) and hold
 * no NaN/Inf. Not a pass/fail criterion on speed. */
static void test_attention_flash_speed(void) {
    const int n_heads = 40, dh = 128;
    const int64_t l = 8192, d = (int64_t)n_heads * dh, n = l * d;
    float *host = xmalloc((size_t)n * sizeof(float));
    float *dq = cuda_alloc((size_t)n * sizeof(float)), *dk = cuda_alloc((size_t)n * sizeof(float));
    float *dv = cuda_alloc((size_t)n * sizeof(float));
    float *o16 = cuda_alloc((size_t)n * sizeof(float)), *o32 = cuda_alloc((size_t)n * sizeof(float));
    float *const fill[3] = {dq, dk, dv};
    for (int i = 0; i < 3; i++) {
        t_fill_normal(host, n, SEED, g_tag++, 1.0f);
        upload(fill[i], host, n);
    }
    const int64_t shape[2] = {l, d};
    struct tensor q = tensor_make(DTYPE_F32, DEVICE_CUDA, dq, 2, shape), k = tensor_make(DTYPE_F32, DEVICE_CUDA, dk, 2, shape),
                  v = tensor_make(DTYPE_F32, DEVICE_CUDA, dv, 2, shape);
    struct tensor t16 = tensor_make(DTYPE_F32, DEVICE_CUDA, o16, 2, shape);
    struct tensor t32 = tensor_make(DTYPE_F32, DEVICE_CUDA, o32, 2, shape);
    const float scale = 1.0f / sqrtf((float)dh);
    const double flop = 4.0 * (double)l * (double)l * dh * n_heads;
    enum { REPS = 5 };
    op_attention(&g_gpu_bf16, &t16, &q, &k, &v, n_heads, scale, NULL, false); /* warm-up */
    cuda_sync(&g_gpu);
    double t0 = time_now();
    for (int r = 0; r < REPS; r++) op_attention(&g_gpu_bf16, &t16, &q, &k, &v, n_heads, scale, NULL, false);
    cuda_sync(&g_gpu);
    const double s16 = (time_now() - t0) / REPS;
    t0 = time_now();
    op_attention(&g_gpu, &t32, &q, &k, &v, n_heads, scale, NULL, false);
    cuda_sync(&g_gpu);
    const double s32 = time_now() - t0;
    printf("attention speed L=%lld H=%d dh=%d full: flash bf16 %.3f ms %.1f TFLOP/s, f32 kernel %.3f ms %.1f TFLOP/s "
           "(4 L^2 dh H = %.3g flop)\n",
           (long long)l, n_heads, dh, s16 * 1e3, flop / s16 * 1e-12, s32 * 1e3, flop / s32 * 1e-12, flop);
    float *r16 = xmalloc((size_t)n * sizeof(float));
    download(r16, o16, n);
    download(host, o32, n);
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) nonfinite += !isfinite(r16[i]);
    T_CHECK(nonfinite == 0, "attention flash speed case: %lld NaN/Inf", (long long)nonfinite);
    cmp_check("attention flash bf16 L=8192 H=40 dh=128 vs the f32 CUDA kernel", r16, host, n, TOL_ATTN_BF16);
    free(r16), free(host);
    cuda_free(dq), cuda_free(dk), cuda_free(dv), cuda_free(o16), cuda_free(o32);
}

static void test_attention_flash_all(void) {
    /* full attention: lengths around the 64-row query and key tiles, one query, one key, both head dims */
    test_attention_flash("one query one key", 1, 1, 3, 128, 1.0f, NULL, false, false);
    test_attention_flash("one query", 1, 100, 4, 128, 1.0f, NULL, false, false);
    test_attention_flash("one key", 70, 1, 2, 64, 1.0f, NULL, false, false);
    test_attention_flash("63", 63, 63, 3, 128, 1.0f, NULL, false, true);
    test_attention_flash("64", 64, 64, 2, 128, 1.0f, NULL, false, true);
    test_attention_flash("65", 65, 65, 3, 128, 1.0f, NULL, false, true);
    test_attention_flash("65 dh 64", 65, 65, 5, 64, 1.0f, NULL, false, true);
    test_attention_flash("cross 63 x 1000", 63, 1000, 2, 128, 1.0f, NULL, false, false);
    test_attention_flash("1000", 1000, 1000, 4, 128, 1.0f, NULL, false, true);
    test_attention_flash("1000 dh 64", 1000, 1000, 3, 64, 1.0f, NULL, false, true);
    test_attention_flash("peakier softmax", 130, 200, 2, 128, 4.0f, NULL, false, false); /* scores ~N(0, 16) */
    test_attention_flash("accumulate", 50, 70, 3, 128, 1.0f, NULL, true, false);
    /* block-causal: whole sequences (tile boundaries inside frames), shards with offsets, rows without keys */
    const struct attn_causal whole = {7, 2, 0, 0}, f50 = {50, 2, 0, 0}, f1 = {13, 1, 0, 0};
    test_attention_flash("causal whole", 1000, 1000, 3, 128, 1.0f, &whole, false, true);
    test_attention_flash("causal whole 50 x 2", 300, 300, 2, 64, 1.0f, &f50, false, true);
    test_attention_flash("causal fpb 1", 65, 65, 2, 128, 1.0f, &f1, false, true);
    const struct attn_causal shard = {11, 2, 22, 33}, nokeys = {11, 2, 0, 22}, f1off = {13, 1, 5, 0};
    test_attention_flash("causal q shard vs k shard", 130, 133, 2, 128, 1.0f, &shard, false, false);
    test_attention_flash("causal rows without keys", 30, 44, 2, 128, 1.0f, &nokeys, false, false);
    test_attention_flash("causal rows without keys, accumulate", 100, 44, 2, 64, 1.0f, &nokeys, true, false);
    test_attention_flash("causal fpb 1 offset, accumulate", 40, 65, 3, 128, 1.0f, &f1off, true, false);
    /* Wan 1.3B: 12 heads of 128; 1560 tokens = 2 latent frames of 30 x 52 (480p) */
    const struct attn_causal wan_causal = {780, 1, 0, 0};
    test_attention_flash("wan self", 1560, 1560, 12, 128, 1.0f, NULL, false, true);
    test_attention_flash("wan self causal", 1560, 1560, 12, 128, 1.0f, &wan_causal, false, true);
    test_attention_flash("wan cross (text 512)", 1560, 512, 12, 128, 1.0f, NULL, false, false);
    /* shapes the flash kernel does not take run the f32 kernel even with attention_bf16: f32 tolerances */
    g_gpu.attention_bf16 = true;
    test_attention("fallback dh 40 (attention_bf16 set)", 77, 77, 2, 40, 1.0f, NULL, false, true);
    test_attention("fallback dh 256 causal (attention_bf16 set)", 40, 45, 1, 256, 1.0f, &f1off, false, false);
    g_gpu.attention_bf16 = false;
    {
        const int64_t shape[2] = {4, 80};
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CUDA, NULL, 2, shape); /* the query reads no data */
        T_CHECK(!kern_flash_attention_supported(&t, &t, &t, &t, 2), "flash attention claims head dim 40");
        T_CHECK(kern_flash_attention_supported(&t, &t, &t, &t, 1) == false, "flash attention claims head dim 80");
    }
    test_attention_flash_speed();
}

/* ---- layout ---- */

/* Latents [C, F, H, W] stored with strides lstride (NULL: contiguous) inside a buffer of ln floats. */
static void test_patchify(const char *name, const int64_t lshape[4], const int64_t *lstride, int64_t ln,
                          const int patch[3], int64_t tok_pad) {
    const int64_t l = lshape[1] / patch[0] * (lshape[2] / patch[1]) * (lshape[3] / patch[2]);
    const int64_t ncol = lshape[0] * patch[0] * patch[1] * patch[2];
    struct twin lat = twin_rand(ln, 1.0f, 0.0f);
    struct twin tok = twin_rand(l * (ncol + tok_pad), 1.0f, 0.0f);
    const struct rv rt = {0, l, ncol, ncol + tok_pad};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor lt = view(&lat, side, 0, 4, lshape, lstride), tt = rows(&tok, side, rt);
        op_patchify(side_ctx(side), &tt, &lt, patch);
    }
    char what[160];
    snprintf(what, sizeof what, "patchify %s [%lld, %lld, %lld, %lld] patch %dx%dx%d", name, (long long)lshape[0],
             (long long)lshape[1], (long long)lshape[2], (long long)lshape[3], patch[0], patch[1], patch[2]);
    struct tensor tv = rows(&tok, DEVICE_CPU, rt);
    twin_check(what, &tok, &tv, TOL_EXACT);
    twin_free(&lat), twin_free(&tok);
}

static void test_unpatchify(const char *name, const int64_t lshape[4], const int64_t *lstride, int64_t ln,
                            const int patch[3], int64_t tok_pad) {
    const int64_t l = lshape[1] / patch[0] * (lshape[2] / patch[1]) * (lshape[3] / patch[2]);
    const int64_t ncol = lshape[0] * patch[0] * patch[1] * patch[2];
    struct twin lat = twin_rand(ln, 1.0f, 0.0f);
    struct twin tok = twin_rand(l * (ncol + tok_pad), 1.0f, 0.0f);
    const struct rv rt = {0, l, ncol, ncol + tok_pad};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor lt = view(&lat, side, 0, 4, lshape, lstride), tt = rows(&tok, side, rt);
        op_unpatchify(side_ctx(side), &lt, &tt, patch);
    }
    char what[160];
    snprintf(what, sizeof what, "unpatchify %s [%lld, %lld, %lld, %lld] patch %dx%dx%d", name, (long long)lshape[0],
             (long long)lshape[1], (long long)lshape[2], (long long)lshape[3], patch[0], patch[1], patch[2]);
    struct tensor lv = view(&lat, DEVICE_CPU, 0, 4, lshape, lstride);
    twin_check(what, &lat, &lv, TOL_EXACT);
    twin_free(&lat), twin_free(&tok);
}

/* y [T, Q] rows (row stride ldy) from t [T] with element stride st. */
static void test_sinusoid(const char *name, int64_t n, int64_t q, int64_t ldy, int64_t st) {
    struct twin t = twin_alloc((n - 1) * st + 1);
    t_fill_normal(t.init, t.n, SEED, g_tag++, 400.0f);
    for (int64_t i = 0; i < t.n; i++) t.init[i] = fminf(fabsf(t.init[i]), 999.0f); /* timesteps in [0, 999] */
    t.init[0] = 999.0f;
    twin_push(&t);
    struct twin y = twin_rand((n - 1) * ldy + q, 1.0f, 0.0f);
    const struct rv ry = {0, n, q, ldy};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor yt = rows(&y, side, ry), tt = view(&t, side, 0, 1, &n, &st);
        op_timestep_sinusoid(side_ctx(side), &yt, &tt);
    }
    char what[160];
    snprintf(what, sizeof what, "timestep_sinusoid %s [%lld, %lld] ld %lld t stride %lld", name, (long long)n,
             (long long)q, (long long)ldy, (long long)st);
    struct tensor yv = rows(&y, DEVICE_CPU, ry);
    twin_check(what, &y, &yv, TOL_SINUSOID);
    twin_free(&t), twin_free(&y);
}

static void test_layout_all(void) {
    test_patchify("small", (const int64_t[]){3, 2, 6, 10}, NULL, 3 * 2 * 6 * 10, (const int[]){1, 2, 2}, 0);
    test_patchify("odd patch, padded tokens", (const int64_t[]){2, 4, 9, 5}, NULL, 2 * 4 * 9 * 5,
                  (const int[]){2, 3, 1}, 3);
    /* latents stored frame-major [F, C, H, W] but described as [C, F, H, W] */
    test_patchify("permuted strides", (const int64_t[]){3, 2, 6, 10}, (const int64_t[]){60, 180, 10, 1}, 360,
                  (const int[]){1, 2, 2}, 0);
    test_patchify("wan", (const int64_t[]){16, 3, 30, 52}, NULL, 16 * 3 * 30 * 52, (const int[]){1, 2, 2}, 0);
    test_unpatchify("small", (const int64_t[]){3, 2, 6, 10}, NULL, 3 * 2 * 6 * 10, (const int[]){1, 2, 2}, 0);
    test_unpatchify("odd patch, padded tokens", (const int64_t[]){2, 4, 9, 5}, NULL, 2 * 4 * 9 * 5,
                    (const int[]){2, 3, 1}, 5);
    /* latents a W-narrowed view of a [16, 3, 30, 60] buffer: columns 52..59 must stay untouched */
    test_unpatchify("wan into a narrowed view", (const int64_t[]){16, 3, 30, 52},
                    (const int64_t[]){3 * 30 * 60, 30 * 60, 60, 1}, 16 * 3 * 30 * 60, (const int[]){1, 2, 2}, 0);
    test_sinusoid("wan per-frame", 7, 256, 256, 1);
    test_sinusoid("odd half, strided", 5, 6, 11, 3);
    test_sinusoid("scalar", 1, 256, 256, 1);
}

/* ---- lincomb, randn ---- */

/* y = sum_k c_k x_k over rows views [m, n] with row stride ld; alias: y is x_0 (scheduler updates). */
static void test_lincomb(const char *name, int terms, int64_t m, int64_t n, int64_t ld, bool alias) {
    struct twin x[OP_LINCOMB_MAX], y = twin_rand(m * ld, 1.0f, 0.0f);
    double coef[OP_LINCOMB_MAX];
    for (int k = 0; k < terms; k++) {
        x[k] = twin_rand(m * ld, 1.0f, 0.0f);
        coef[k] = 0.37 * (k + 1) * (k % 2 ? -1.0 : 1.0) + 1e-3 * k;
    }
    const struct rv r = {0, m, n, ld};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt[OP_LINCOMB_MAX], yt = rows(alias ? &x[0] : &y, side, r);
        const struct tensor *xp[OP_LINCOMB_MAX];
        for (int k = 0; k < terms; k++) xt[k] = rows(&x[k], side, r), xp[k] = &xt[k];
        op_lincomb(side_ctx(side), &yt, terms, coef, xp);
    }
    struct tensor yv = rows(alias ? &x[0] : &y, DEVICE_CPU, r);
    char what[160];
    snprintf(what, sizeof what, "lincomb %s %d terms [%lld, %lld] ld %lld%s", name, terms, (long long)m, (long long)n,
             (long long)ld, alias ? " in place" : "");
    twin_check(what, alias ? &x[0] : &y, &yv, TOL_LINCOMB);
    for (int k = 0; k < terms; k++) twin_free(&x[k]);
    twin_free(&y);
}

static void test_randn(void) {
    const int64_t n = 100003;
    struct twin y = twin_rand(n, 1.0f, 0.0f);
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor yt = vec(&y, side, n);
        op_randn(side_ctx(side), &yt, 77, 12345, 999);
    }
    twin_check("randn 100003 draws at element offset 999", &y, NULL, TOL_EXACT);
    twin_free(&y);
}

static void test_sampling_ops_all(void) {
    test_lincomb("odd", 3, 17, 33, 40, false);
    test_lincomb("scheduler corrector", 4, 16, 60 * 34, 25 * 60 * 34, true); /* one frame of a [16, 25, 34, 60] window */
    test_lincomb("cfg", 2, 16, 4080, 4080, true);
    test_lincomb("max terms", OP_LINCOMB_MAX, 5, 7, 7, false);
    test_randn();
}

/* ---- Wan VAE ops ---- */

static const struct conv_geom GEOM_3X3 = {3, 3, 1, 1, 1, 1, 1, 0}, GEOM_1X1 = {1, 1, 1, 0, 0, 0, 0, 0},
                              GEOM_DOWN = {3, 3, 2, 0, 0, 1, 1, 0}, GEOM_UP = {3, 3, 1, 1, 1, 1, 1, 1};

/* One input frame of a conv_frames call: a zero frame (NULL), f32 (a twin), or bf16 (host and device copies of the
 * same bf16 values; the CPU backend widens them as it reads them too). */
enum frame_kind { FRAME_ZERO, FRAME_F32, FRAME_BF16 };

struct conv_frame {
    enum frame_kind kind;
    int64_t shape[3]; /* [C, H, W] */
    struct twin t;    /* FRAME_F32 */
    uint16_t *hb;     /* FRAME_BF16: host copy */
    void *db;         /* FRAME_BF16: device copy */
};

static struct conv_frame conv_frame_make(enum frame_kind kind, int64_t c, int64_t h, int64_t w) {
    struct conv_frame fr;
    memset(&fr, 0, sizeof fr);
    fr.kind = kind;
    fr.shape[0] = c, fr.shape[1] = h, fr.shape[2] = w;
    const int64_t n = c * h * w;
    if (kind == FRAME_F32) fr.t = twin_rand(n, 1.0f, 0.25f);
    if (kind == FRAME_BF16) {
        float *v = xmalloc((size_t)n * sizeof(float));
        t_fill_normal(v, n, SEED, g_tag++, 1.0f);
        fr.hb = xmalloc((size_t)n * sizeof(uint16_t));
        for (int64_t i = 0; i < n; i++) fr.hb[i] = f32_to_bf16(v[i] + 0.25f);
        fr.db = cuda_alloc((size_t)n * sizeof(uint16_t));
        struct tensor ht = tensor_make(DTYPE_BF16, DEVICE_CPU, fr.hb, 3, fr.shape);
        struct tensor dt = tensor_make(DTYPE_BF16, DEVICE_CUDA, fr.db, 3, fr.shape);
        op_upload(&g_gpu, &dt, &ht);
        cuda_sync(&g_gpu);
        free(v);
    }
    return fr;
}

/* The frame as a tensor on one side (in *store), or NULL for a zero frame. */
static const struct tensor *conv_frame_tensor(struct conv_frame *fr, enum device side, struct tensor *store) {
    switch (fr->kind) {
    case FRAME_ZERO: return NULL;
    case FRAME_F32: *store = view(&fr->t, side, 0, 3, fr->shape, NULL); return store;
    case FRAME_BF16:
        *store = tensor_make(DTYPE_BF16, side, side == DEVICE_CUDA ? fr->db : (void *)fr->hb, 3, fr->shape);
        return store;
    }
    return NULL;
}

static void conv_frame_free(struct conv_frame *fr) {
    if (fr->kind == FRAME_F32) twin_free(&fr->t);
    free(fr->hb);
    cuda_free(fr->db);
    memset(fr, 0, sizeof *fr);
}

/* "0fb": one letter per input frame (zero, f32, bf16). */
static const char *frame_pattern(char *buf, int nf, const enum frame_kind *kinds) {
    for (int f = 0; f < nf; f++) buf[f] = kinds[f] == FRAME_ZERO ? '0' : kinds[f] == FRAME_F32 ? 'f' : 'b';
    buf[nf] = 0;
    return buf;
}

/* Output size of geometry g on a stored h x w frame. */
static void conv_out_size(const struct conv_geom *g, int64_t h, int64_t w, int64_t *ho, int64_t *wo) {
    *ho = ((h << g->upsample2x) + g->pad_top + g->pad_bottom - g->kh) / g->stride + 1;
    *wo = ((w << g->upsample2x) + g->pad_left + g->pad_right - g->kw) / g->stride + 1;
}

static float *download_twin(const struct twin *t) {
    float *h = xmalloc((size_t)t->n * sizeof(float));
    download(h, t->dev, t->n);
    return h;
}

enum conv_bias_kind { CONV_BIAS_NONE, CONV_BIAS_CHANNEL, CONV_BIAS_FRAME, CONV_BIAS_FRAME_IN_PLACE };

/* y[co, ho, wo] = bias + sum_f conv(x[f] [ci, h, w], w[f]) with the frames of kinds[], y a view at offset 4 of a
 * buffer 8 floats longer (the floats around it must stay). CONV_BIAS_FRAME_IN_PLACE: the bias is the partial sum
 * y already holds (b aliases y). */
static void test_conv(const char *name, int nf, const enum frame_kind *kinds, int64_t ci, int64_t co, int64_t h,
                      int64_t w, struct conv_geom g, enum conv_bias_kind bk) {
    int64_t ho, wo;
    conv_out_size(&g, h, w, &ho, &wo);
    const int64_t taps = (int64_t)g.kh * g.kw, ny = co * ho * wo;
    int live = 0;
    struct conv_frame fr[OP_CONV_FRAMES_MAX];
    for (int f = 0; f < nf; f++) {
        fr[f] = conv_frame_make(kinds[f], ci, h, w);
        live += kinds[f] != FRAME_ZERO;
    }
    /* y - bias ~ N(0, 1) over the live frames' taps */
    struct twin wt = twin_rand(nf * taps * co * ci, 1.0f / sqrtf((float)(ci * taps * (live ? live : 1))), 0.0f);
    struct twin bc = twin_rand(co, 1.0f, 0.0f), bf = twin_rand(ny, 1.0f, 0.0f);
    struct twin y = twin_rand(ny + 8, 1.0f, 0.0f);
    const int64_t yshape[3] = {co, ho, wo}, wshape[4] = {nf, taps, co, ci};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xstore[OP_CONV_FRAMES_MAX];
        const struct tensor *xs[OP_CONV_FRAMES_MAX];
        for (int f = 0; f < nf; f++) xs[f] = conv_frame_tensor(&fr[f], side, &xstore[f]);
        struct tensor yt = view(&y, side, 4, 3, yshape, NULL), wtt = view(&wt, side, 0, 4, wshape, NULL);
        struct tensor bct = vec(&bc, side, co), bft = view(&bf, side, 0, 3, yshape, NULL);
        const struct tensor *bp = bk == CONV_BIAS_CHANNEL ? &bct
                                  : bk == CONV_BIAS_FRAME  ? &bft
                                  : bk == CONV_BIAS_FRAME_IN_PLACE ? &yt
                                                                   : NULL;
        op_conv_frames(side_ctx(side), &yt, nf, xs, &wtt, bp, &g);
    }
    static const char *bias_names[] = {"none", "channel", "frame", "frame in place"};
    char what[256], pat[OP_CONV_FRAMES_MAX + 1];
    snprintf(what, sizeof what,
             "conv_frames %s: frames %s [%lld, %lld, %lld] -> [%lld, %lld, %lld] k %dx%d s %d pad %d,%d,%d,%d%s "
             "bias %s",
             name, frame_pattern(pat, nf, kinds), (long long)ci, (long long)h, (long long)w, (long long)co,
             (long long)ho, (long long)wo, g.kh, g.kw, g.stride, g.pad_top, g.pad_left, g.pad_bottom, g.pad_right,
             g.upsample2x ? " up2x" : "", bias_names[bk]);
    struct tensor yv = view(&y, DEVICE_CPU, 4, 3, yshape, NULL);
    twin_check(what, &y, &yv, TOL_CONV);
    for (int f = 0; f < nf; f++) conv_frame_free(&fr[f]);
    twin_free(&wt), twin_free(&bc), twin_free(&bf), twin_free(&y);
}

/* The taps of a 3-frame conv split over three one-frame calls chained through the frame bias (the VAE head's
 * partial sums, model/wan_vae.c causal_conv_partial): against the CPU, and on the GPU bitwise the single call
 * (ops.h: "exactly as if the earlier call's taps had been part of this one"). */
static void test_conv_chain(const char *name, const enum frame_kind kinds[3], int64_t ci, int64_t co, int64_t h,
                            int64_t w, struct conv_geom g) {
    int64_t ho, wo;
    conv_out_size(&g, h, w, &ho, &wo);
    const int64_t taps = (int64_t)g.kh * g.kw, ny = co * ho * wo, per_frame = taps * co * ci;
    T_REQUIRE(per_frame % 4 == 0, "test bug: the weight views of single frames must stay 16-byte aligned");
    struct conv_frame fr[3];
    for (int f = 0; f < 3; f++) fr[f] = conv_frame_make(kinds[f], ci, h, w);
    struct twin wt = twin_rand(3 * per_frame, 1.0f / sqrtf((float)(3 * ci * taps)), 0.0f);
    struct twin bc = twin_rand(co, 1.0f, 0.0f);
    struct twin y1 = twin_rand(ny, 1.0f, 0.0f), y3 = twin_rand(ny, 1.0f, 0.0f);
    const int64_t yshape[3] = {co, ho, wo}, wshape3[4] = {3, taps, co, ci}, wshape1[4] = {1, taps, co, ci};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        const struct exec_ctx *ctx = side_ctx(side);
        struct tensor xstore[3];
        const struct tensor *xs[3];
        for (int f = 0; f < 3; f++) xs[f] = conv_frame_tensor(&fr[f], side, &xstore[f]);
        struct tensor bct = vec(&bc, side, co);
        struct tensor y3t = view(&y3, side, 0, 3, yshape, NULL), w3 = view(&wt, side, 0, 4, wshape3, NULL);
        op_conv_frames(ctx, &y3t, 3, xs, &w3, &bct, &g);
        struct tensor y1t = view(&y1, side, 0, 3, yshape, NULL);
        for (int f = 0; f < 3; f++) {
            struct tensor w1 = view(&wt, side, f * per_frame, 4, wshape1, NULL);
            op_conv_frames(ctx, &y1t, 1, &xs[f], &w1, f == 0 ? &bct : &y1t, &g);
        }
    }
    char what[200], pat[4];
    snprintf(what, sizeof what, "conv_frames chained %s: frames %s [%lld, %lld, %lld] -> [%lld, %lld, %lld]", name,
             frame_pattern(pat, 3, kinds), (long long)ci, (long long)h, (long long)w, (long long)co, (long long)ho,
             (long long)wo);
    twin_check(what, &y1, NULL, TOL_CONV);
    float *g1 = download_twin(&y1), *g3 = download_twin(&y3);
    char what2[240];
    snprintf(what2, sizeof what2, "%s: CUDA chained vs CUDA single call", what);
    cmp_check(what2, g1, g3, ny, TOL_EXACT);
    free(g1), free(g3);
    for (int f = 0; f < 3; f++) conv_frame_free(&fr[f]);
    twin_free(&wt), twin_free(&bc), twin_free(&y1), twin_free(&y3);
}

/* A 3x3 pad-1 conv (up2x: with the fused upsampling) over stored rows [r0, r1) of a frame, without zero padding
 * at the inner edges (model/wan_vae.c geom_edges): against the CPU, and on the GPU bitwise the rows of the whole
 * frame's result (the VAE decoder's row bands rely on a pixel not depending on the rows its frame has). */
static void test_conv_band(const char *name, int64_t ci, int64_t co, int64_t h, int64_t w, int64_t r0, int64_t r1,
                           int up) {
    struct conv_geom gf = up ? GEOM_UP : GEOM_3X3, gb = gf;
    if (r0 > 0) gb.pad_top = 0;
    if (r1 < h) gb.pad_bottom = 0;
    int64_t hof, wof, hob, wob;
    conv_out_size(&gf, h, w, &hof, &wof);
    conv_out_size(&gb, r1 - r0, w, &hob, &wob);
    const int64_t first = (r0 << up) + 1 - gb.pad_top; /* the whole frame's row of band row 0 */
    T_REQUIRE(hob >= 1 && wob == wof && first + hob <= hof, "test bug: bad band");
    struct twin x = twin_rand(ci * h * w, 1.0f, 0.25f);
    struct twin xb = twin_alloc(ci * (r1 - r0) * w);
    for (int64_t c = 0; c < ci; c++)
        memcpy(xb.init + c * (r1 - r0) * w, x.init + (c * h + r0) * w, (size_t)((r1 - r0) * w) * sizeof(float));
    twin_push(&xb);
    struct twin wt = twin_rand(9 * co * ci, 1.0f / sqrtf((float)(9 * ci)), 0.0f), bc = twin_rand(co, 1.0f, 0.0f);
    struct twin yf = twin_rand(co * hof * wof, 1.0f, 0.0f), yb = twin_rand(co * hob * wob, 1.0f, 0.0f);
    const int64_t xs_full[3] = {ci, h, w}, xs_band[3] = {ci, r1 - r0, w}, wshape[4] = {1, 9, co, ci};
    const int64_t ys_full[3] = {co, hof, wof}, ys_band[3] = {co, hob, wob};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xft = view(&x, side, 0, 3, xs_full, NULL), xbt = view(&xb, side, 0, 3, xs_band, NULL);
        struct tensor wtt = view(&wt, side, 0, 4, wshape, NULL), bct = vec(&bc, side, co);
        struct tensor yft = view(&yf, side, 0, 3, ys_full, NULL), ybt = view(&yb, side, 0, 3, ys_band, NULL);
        const struct tensor *xfp = &xft, *xbp = &xbt;
        op_conv_frames(side_ctx(side), &yft, 1, &xfp, &wtt, &bct, &gf);
        op_conv_frames(side_ctx(side), &ybt, 1, &xbp, &wtt, &bct, &gb);
    }
    char what[200];
    snprintf(what, sizeof what, "conv_frames band %s: rows [%lld, %lld) of [%lld, %lld, %lld]%s -> %lld rows", name,
             (long long)r0, (long long)r1, (long long)ci, (long long)h, (long long)w, up ? " up2x" : "",
             (long long)hob);
    twin_check(what, &yb, NULL, TOL_CONV);
    float *gfull = download_twin(&yf), *gband = download_twin(&yb);
    float *rows_of_full = xmalloc((size_t)(co * hob * wob) * sizeof(float));
    for (int64_t c = 0; c < co; c++)
        memcpy(rows_of_full + c * hob * wob, gfull + (c * hof + first) * wof, (size_t)(hob * wob) * sizeof(float));
    char what2[240];
    snprintf(what2, sizeof what2, "%s: CUDA band vs CUDA whole-frame rows", what);
    cmp_check(what2, gband, rows_of_full, co * hob * wob, TOL_EXACT);
    free(gfull), free(gband), free(rows_of_full);
    twin_free(&x), twin_free(&xb), twin_free(&wt), twin_free(&bc), twin_free(&yf), twin_free(&yb);
}

/* y[C, P] = RMS over channels (then SiLU) of rows x (row stride ldx at x_off), y contiguous or in place. */
static void test_channel_rmsnorm(const char *name, int64_t c, int64_t p, int64_t ldx, int64_t x_off, bool silu,
                                 bool in_place) {
    struct twin x = twin_rand(x_off + (c - 1) * ldx + p, 2.0f, 0.5f);
    struct twin y = twin_rand(c * p, 1.0f, 0.0f);
    struct twin g = twin_rand(c, 0.5f, 1.0f);
    const struct rv rx = {x_off, c, p, ldx}, ry = {0, c, p, p};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = in_place ? xt : rows(&y, side, ry), gt = vec(&g, side, c);
        op_channel_rmsnorm(side_ctx(side), &yt, &xt, &gt, silu);
    }
    char what[160];
    snprintf(what, sizeof what, "channel_rmsnorm %s [%lld, %lld] ld %lld%s%s", name, (long long)c, (long long)p,
             (long long)ldx, silu ? " silu" : "", in_place ? " in place" : "");
    const struct cmp_tol tol = silu ? TOL_SILU : TOL_EXACT;
    struct tensor xv = rows(&x, DEVICE_CPU, rx);
    if (in_place)
        twin_check(what, &x, &xv, tol);
    else
        twin_check(what, &y, NULL, tol);
    twin_free(&x), twin_free(&y), twin_free(&g);
}

/* y[C, 2H, 2W] at offset 4 of a buffer 8 floats longer. */
static void test_upsample(const char *name, int64_t c, int64_t h, int64_t w) {
    struct twin x = twin_rand(c * h * w, 1.0f, 0.0f), y = twin_rand(4 * c * h * w + 8, 1.0f, 0.0f);
    const int64_t xs[3] = {c, h, w}, ys[3] = {c, 2 * h, 2 * w};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = view(&x, side, 0, 3, xs, NULL), yt = view(&y, side, 4, 3, ys, NULL);
        op_upsample_nearest2x(side_ctx(side), &yt, &xt);
    }
    char what[160];
    snprintf(what, sizeof what, "upsample_nearest2x %s [%lld, %lld, %lld]", name, (long long)c, (long long)h,
             (long long)w);
    struct tensor yv = view(&y, DEVICE_CPU, 4, 3, ys, NULL);
    twin_check(what, &y, &yv, TOL_EXACT);
    twin_free(&x), twin_free(&y);
}

enum { AFF_SUB = 1, AFF_MUL = 2, AFF_ADD = 4 };

/* y = (x - sub) * mul + add per channel on rows [c, p] (row stride ld), the tables in `tables` present. */
static void test_channel_affine(const char *name, int64_t c, int64_t p, int64_t ld, int tables, bool in_place) {
    struct twin x = twin_rand((c - 1) * ld + p, 2.0f, 0.3f), y = twin_rand(c * p, 1.0f, 0.0f);
    struct twin sub = twin_rand(c, 1.0f, 0.0f), mul = twin_rand(c, 1.0f, 1.0f), add = twin_rand(c, 1.0f, 0.0f);
    const struct rv rx = {0, c, p, ld}, ry = {0, c, p, p};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = in_place ? xt : rows(&y, side, ry);
        struct tensor st = vec(&sub, side, c), mt = vec(&mul, side, c), at = vec(&add, side, c);
        op_channel_affine(side_ctx(side), &yt, &xt, tables & AFF_SUB ? &st : NULL, tables & AFF_MUL ? &mt : NULL,
                          tables & AFF_ADD ? &at : NULL);
    }
    char what[160];
    snprintf(what, sizeof what, "channel_affine %s [%lld, %lld] ld %lld%s%s%s%s", name, (long long)c, (long long)p,
             (long long)ld, tables & AFF_SUB ? " sub" : "", tables & AFF_MUL ? " mul" : "",
             tables & AFF_ADD ? " add" : "", in_place ? " in place" : "");
    struct tensor xv = rows(&x, DEVICE_CPU, rx);
    if (in_place)
        twin_check(what, &x, &xv, TOL_EXACT);
    else
        twin_check(what, &y, NULL, TOL_EXACT);
    twin_free(&x), twin_free(&y), twin_free(&sub), twin_free(&mul), twin_free(&add);
}

/* y = clamp(x, -1, 1) on a rows view (ndim 2, row stride ld) or a contiguous tensor of rank ndim; x ~ N(0, 4) so
 * that both bounds bite. specials: x starts with NaN, +Inf, -Inf, -0, -1, 1 (NaN must stay NaN, as torch.clamp). */
static void test_clamp(const char *name, int ndim, const int64_t *shape, int64_t ld, bool in_place, bool specials) {
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    const bool strided = ndim == 2;
    const int64_t xn = strided ? (shape[0] - 1) * ld + shape[1] : numel;
    struct twin x = twin_rand(xn, 2.0f, 0.0f), y = twin_rand(numel, 1.0f, 0.0f);
    if (specials) {
        T_REQUIRE((strided ? shape[1] : numel) >= 6, "test bug: too short for the special values");
        const float sv[6] = {NAN, INFINITY, -INFINITY, -0.0f, -1.0f, 1.0f};
        memcpy(x.init, sv, sizeof sv);
        twin_push(&x);
    }
    const struct rv rx = {0, strided ? shape[0] : 0, strided ? shape[1] : 0, ld};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = strided ? rows(&x, side, rx) : view(&x, side, 0, ndim, shape, NULL);
        struct tensor yt = in_place ? xt : view(&y, side, 0, ndim, shape, NULL);
        op_clamp(side_ctx(side), &yt, &xt, -1.0f, 1.0f);
    }
    char what[160];
    snprintf(what, sizeof what, "clamp %s (%d-D, %lld elements)%s%s", name, ndim, (long long)numel,
             in_place ? " in place" : "", specials ? " NaN/Inf/-0" : "");
    struct twin *out = in_place ? &x : &y;
    if (specials) {
        T_CHECK(isnan(out->cpu[0]) && out->cpu[1] == 1.0f && out->cpu[2] == -1.0f && signbit(out->cpu[3]),
                "%s: the CPU twin does not clamp NaN/+Inf/-Inf/-0 as torch does", what);
        float first[4];
        download(first, out->dev, 4);
        T_CHECK(isnan(first[0]) && first[1] == 1.0f && first[2] == -1.0f && first[3] == 0.0f && signbit(first[3]),
                "%s: the CUDA twin does not clamp NaN/+Inf/-Inf/-0 as torch does", what);
    }
    struct tensor xv = strided ? rows(&x, DEVICE_CPU, rx) : view(&x, DEVICE_CPU, 0, ndim, shape, NULL);
    twin_check_ex(what, out, in_place ? &xv : NULL, TOL_EXACT, specials);
    twin_free(&x), twin_free(&y);
}

/* y[n, m] = x[m, n]^T, x rows with stride ldx at x_off, y rows with stride ldy at y_off. */
static void test_transpose(const char *name, int64_t m, int64_t n, int64_t ldx, int64_t x_off, int64_t ldy,
                           int64_t y_off) {
    struct twin x = twin_rand(x_off + (m - 1) * ldx + n, 1.0f, 0.0f);
    struct twin y = twin_rand(y_off + (n - 1) * ldy + m + 4, 1.0f, 0.0f);
    const struct rv rx = {x_off, m, n, ldx}, ry = {y_off, n, m, ldy};
    for (int s = 0; s < 2; s++) {
        const enum device side = s ? DEVICE_CUDA : DEVICE_CPU;
        struct tensor xt = rows(&x, side, rx), yt = rows(&y, side, ry);
        op_transpose(side_ctx(side), &yt, &xt);
    }
    char what[160];
    snprintf(what, sizeof what, "transpose %s [%lld, %lld] ld %lld -> ld %lld", name, (long long)m, (long long)n,
             (long long)ldx, (long long)ldy);
    struct tensor yv = rows(&y, DEVICE_CPU, ry);
    twin_check(what, &y, &yv, TOL_EXACT);
    twin_free(&x), twin_free(&y);
}

static void test_vae_all(void) {
    const enum frame_kind F = FRAME_F32, B = FRAME_BF16, Z = FRAME_ZERO;
    const struct conv_geom g_nonsquare = {2, 3, 1, 1, 2, 0, 1, 0}; /* kh != kw, every pad different */
    const struct conv_geom g_valid = {3, 3, 1, 0, 0, 0, 0, 0};     /* no padding: 3x3 in, one pixel out */
    test_conv("3x3 s1 p1", 1, (const enum frame_kind[]){F}, 5, 7, 9, 13, GEOM_3X3, CONV_BIAS_CHANNEL);
    test_conv("causal 3x3x3, zero frame first", 3, (const enum frame_kind[]){Z, F, F}, 6, 10, 11, 7, GEOM_3X3,
              CONV_BIAS_CHANNEL);
    test_conv("causal 3x3x3, first chunk", 3, (const enum frame_kind[]){Z, Z, F}, 4, 9, 6, 5, GEOM_3X3,
              CONV_BIAS_CHANNEL);
    test_conv("causal 3x3x3 rgb, zero frame between", 3, (const enum frame_kind[]){F, Z, F}, 3, 5, 8, 9, GEOM_3X3,
              CONV_BIAS_NONE);
    test_conv("downsample s2, odd", 1, (const enum frame_kind[]){F}, 9, 5, 13, 10, GEOM_DOWN, CONV_BIAS_CHANNEL);
    test_conv("downsample s2, even", 1, (const enum frame_kind[]){F}, 17, 70, 16, 22, GEOM_DOWN, CONV_BIAS_CHANNEL);
    test_conv("three channel tiles, s2", 1, (const enum frame_kind[]){F}, 20, 130, 9, 9, GEOM_DOWN,
              CONV_BIAS_CHANNEL);
    test_conv("upsample2x", 1, (const enum frame_kind[]){F}, 6, 3, 5, 7, GEOM_UP, CONV_BIAS_CHANNEL);
    test_conv("upsample2x bf16", 1, (const enum frame_kind[]){B}, 19, 12, 7, 4, GEOM_UP, CONV_BIAS_CHANNEL);
    test_conv("1x1", 1, (const enum frame_kind[]){F}, 17, 33, 7, 9, GEOM_1X1, CONV_BIAS_CHANNEL);
    test_conv("1x1x3 time conv (upsample3d)", 3, (const enum frame_kind[]){Z, B, F}, 12, 24, 5, 11, GEOM_1X1,
              CONV_BIAS_CHANNEL);
    test_conv("1x1x3 time conv window (downsample3d)", 3, (const enum frame_kind[]){B, F, F}, 8, 8, 3, 5, GEOM_1X1,
              CONV_BIAS_CHANNEL);
    test_conv("bf16 cache frames", 3, (const enum frame_kind[]){B, B, F}, 7, 11, 10, 9, GEOM_3X3,
              CONV_BIAS_CHANNEL);
    test_conv("frame bias", 1, (const enum frame_kind[]){F}, 5, 6, 8, 11, GEOM_3X3, CONV_BIAS_FRAME);
    test_conv("frame bias aliasing y", 2, (const enum frame_kind[]){B, F}, 5, 6, 8, 11, GEOM_3X3,
              CONV_BIAS_FRAME_IN_PLACE);
    test_conv("1x1 frame bias aliasing y", 1, (const enum frame_kind[]){F}, 9, 4, 6, 7, GEOM_1X1,
              CONV_BIAS_FRAME_IN_PLACE);
    test_conv("nonsquare kernel, uneven pads", 2, (const enum frame_kind[]){F, F}, 5, 3, 6, 7, g_nonsquare,
              CONV_BIAS_NONE);
    test_conv("one output pixel", 1, (const enum frame_kind[]){F}, 33, 2, 3, 3, g_valid, CONV_BIAS_CHANNEL);
    test_conv("all frames zero", 3, (const enum frame_kind[]){Z, Z, Z}, 4, 5, 4, 6, GEOM_3X3, CONV_BIAS_CHANNEL);
    test_conv("four frames", OP_CONV_FRAMES_MAX, (const enum frame_kind[]){F, B, Z, F}, 3, 4, 5, 5, GEOM_3X3,
              CONV_BIAS_CHANNEL);
    test_conv("wan 96 -> 96 3x3x3", 3, (const enum frame_kind[]){B, B, F}, 96, 96, 18, 30, GEOM_3X3,
              CONV_BIAS_CHANNEL);
    test_conv("wan head 96 -> 3", 3, (const enum frame_kind[]){B, B, F}, 96, 3, 9, 16, GEOM_3X3, CONV_BIAS_CHANNEL);
    test_conv("wan upsample 192 -> 96", 1, (const enum frame_kind[]){F}, 192, 96, 6, 10, GEOM_UP, CONV_BIAS_CHANNEL);
    test_conv_chain("3x3x3", (const enum frame_kind[]){F, B, F}, 6, 8, 9, 10, GEOM_3X3);
    test_conv_chain("3x3x3 up2x, zero frame", (const enum frame_kind[]){Z, B, F}, 4, 6, 5, 7, GEOM_UP);
    test_conv_chain("wan head 96 -> 3", (const enum frame_kind[]){B, B, F}, 96, 3, 7, 12, GEOM_3X3);
    test_conv_band("inner", 7, 9, 13, 10, 3, 9, 0);
    test_conv_band("top", 5, 70, 11, 9, 0, 6, 0);
    test_conv_band("bottom", 5, 4, 11, 9, 4, 11, 0);
    test_conv_band("inner up2x", 5, 4, 8, 6, 2, 6, 1);

    test_channel_rmsnorm("odd", 7, 37, 37, 0, false, false);
    test_channel_rmsnorm("strided", 13, 29, 40, 4, true, false);
    test_channel_rmsnorm("in place", 5, 101, 101, 0, true, true);
    test_channel_rmsnorm("in place no silu", 9, 33, 48, 8, false, true);
    test_channel_rmsnorm("one channel", 1, 17, 17, 0, false, false);
    test_channel_rmsnorm("wan middle 384", 384, 30 * 52, 30 * 52, 0, false, false);
    test_channel_rmsnorm("wan 96", 96, 999, 999, 0, true, false);
    test_upsample("odd", 3, 5, 7);
    test_upsample("one pixel", 1, 1, 1);
    test_upsample("wan-like", 96, 15, 26);
    test_channel_affine("all tables", 7, 37, 37, AFF_SUB | AFF_MUL | AFF_ADD, false);
    test_channel_affine("encode (sub, mul), strided", 16, 29, 33, AFF_SUB | AFF_MUL, false);
    test_channel_affine("decode (mul, add) in place", 16, 30 * 52, 30 * 52, AFF_MUL | AFF_ADD, true);
    test_channel_affine("no tables", 3, 11, 11, 0, false);
    test_clamp("odd rows", 2, (const int64_t[]){37, 19}, 19, false, true);
    test_clamp("strided in place", 2, (const int64_t[]){20, 33}, 50, true, true);
    test_clamp("3-D frame", 3, (const int64_t[]){3, 17, 29}, 0, false, false);
    test_clamp("1-D", 1, (const int64_t[]){1001}, 0, true, true);
    test_transpose("odd", 37, 19, 19, 0, 37, 0);
    test_transpose("one row", 1, 50, 50, 0, 1, 0);
    test_transpose("one column", 50, 1, 1, 0, 50, 0);
    test_transpose("strided", 33, 65, 70, 4, 40, 8);
    test_transpose("wan middle [C, HW]", 384, 30 * 52, 30 * 52, 0, 384, 0);
    test_transpose("wan middle back [HW, C]", 30 * 52, 384, 384, 0, 30 * 52, 0);
}

int main(void) {
    if (cuda_device_count() == 0)
        return t_skip("test_ops_cuda", "no CUDA device or driver (cuda_device_count() == 0); run it on a GPU machine");
    g_cpu = exec_ctx_cpu(0);
    g_gpu = exec_ctx_cpu(0);
    const int rc = cuda_backend_init(&g_gpu, 0);
    T_REQUIRE(rc == 0, "cuda_backend_init(0): %s", err_message());
    g_gpu_bf16 = g_gpu; /* shares g_gpu's state: never freed on its own */
    g_gpu_bf16.attention_bf16 = true;

    test_elementwise_all(); /* first: upload/download/copy underpin the rest */
    test_linear_all();
    test_norms_all();
    test_linear_bf16_all();
    test_rope_all();
    test_attention_all();
    test_attention_blocks_all();
    test_attention_flash_all();
    test_layout_all();
    test_sampling_ops_all();
    test_vae_all();

    cuda_backend_free(&g_gpu);
    return t_summary(__FILE__);
}

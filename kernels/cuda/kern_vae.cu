/* kernels/cuda/kern_vae.cu - the Wan VAE ops on the CUDA backend: frame convolutions, the channel RMS norm,
 * nearest x2 upsampling, per-channel affine maps, clamping and the transpose (CUDA twins of
 * kernels/cpu/kern_conv.c and kernels/cpu/kern_vae.c; spec 7.1).
 *
 * What it does:
 *  - conv_frames: a direct implicit-GEMM convolution, no scratch and no im2col matrix. One block computes a
 *    64 (output channels) x 64 (output positions) tile of y[Co, Ho Wo]; its 256 threads hold 4 x 4 fp32
 *    accumulators each. The reduction runs over the non-NULL input frames f, then the taps (ky, kx), then the input
 *    channels in chunks of 16: each chunk stages w[f, tap][co-tile, ci-chunk] and the tap-shifted input pixels
 *    [ci-chunk, position-tile] in shared memory (zero outside the padded frame, past Ci and Co), gathered
 *    straight from the [Ci, H, W] frames: with upsample2x the virtual row / column i reads stored i / 2, bf16
 *    frames are widened as read (bits << 16, exact). So every output element is one fixed chain of fmaf onto its
 *    bias: bias, then f, ky, kx, ci in increasing order (the CPU's tap order f, ky, kx; inside a tap the CPU's
 *    sgemm sums ci in its own order, so the two backends agree within fp32 rounding, not bitwise). The chain does
 *    not depend on the frame's height or on the element's place in the grid, so a pixel's value does not change
 *    with the rows its frame has (the VAE's row bands), and taps split over calls through a frame bias (a
 *    partial sum, which may alias y) give bitwise the single call's result (ops.h).
 *    Expected speed (not measured): a 64 x 64 x 16 register-tiled fp32 kernel without double buffering reaches
 *    perhaps 5-15 TFLOP/s on an H100, i.e. about 15-40 ms for a 96 -> 96 3x3x3 conv over one 480 x 832 frame
 *    (0.2 TFLOP); a Ci not a multiple of 16 (the RGB conv_in, Ci = 3) and a Co far below 64 (the head, Co = 3)
 *    waste part of each tile.
 *  - channel_rmsnorm: one thread per position p walks the C channels of x[C, P] twice (coalesced across
 *    threads): the sum of squares in double in channel order, then the scaled (and SiLU'd) outputs. The CPU
 *    sums the same exact squares in the same order and takes the same IEEE double sqrt and division, so without
 *    SiLU the result is bit-identical; SiLU uses expf (2 ulp) where the CPU uses vm_expf.
 *  - upsample_nearest2x, clamp, transpose: data movement and comparisons, bit-identical to the CPU. clamp keeps
 *    the CPU's comparisons (NaN stays NaN; fminf/fmaxf would drop it). The transpose goes through a 32 x 33
 *    shared tile so that both the reads and the writes are coalesced.
 *  - channel_affine: (x - sub) * mul + add with explicitly rounded intrinsics (no FMA contraction), as gcc
 *    -std=c11 evaluates the CPU twin: bit-identical.
 * Rows tensors (channel_rmsnorm, channel_affine, clamp, transpose) may carry any row stride; clamp also takes
 * a contiguous tensor of any rank (rows_view.h). In-place use (y == x) is safe where ops.h allows it: every
 * element is read by the thread that writes it, before it writes it.
 * What it does not do: no bf16 outputs, weights or biases (only conv input frames may be bf16), no tensor cores,
 * no double buffering or vectorised global loads, no fused norm + SiLU + conv (speed is a later issue).
 * Mirrors SR wan/modules/vae.py CausalConv3d.forward (via model/wan_vae.c's frame windows), RMS_norm.forward,
 * Resample (nn.Upsample nearest-exact x2), and the WanVAE encode / decode normalisation and clamp.
 */
#include <math.h>

#include "kernels/cuda/kern_cuda.h"

enum { VAE_THREADS = 256, VAE_MAX_BLOCKS = 65536 };

static unsigned vae_blocks(int64_t total) {
    const int64_t b = CEIL_DIV(total, (int64_t)VAE_THREADS);
    return (unsigned)(b < (int64_t)VAE_MAX_BLOCKS ? b : (int64_t)VAE_MAX_BLOCKS);
}

#define VAE_LOOP(total)                                                                                          \
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < (total);                           \
         idx += (int64_t)gridDim.x * blockDim.x)

/* ---- conv_frames ---- */

/* Tile: CONV_BM output channels x CONV_BN output positions per block, CONV_BK input channels per step.
 * CONV_THREADS threads, each owning a 4 x 4 sub-tile (16 x 16 threads). The loaders below assume exactly
 * these numbers (static_asserts). */
enum { CONV_BM = 64, CONV_BN = 64, CONV_BK = 16, CONV_THREADS = 256, CONV_APAD = 4 };
static_assert(CONV_THREADS == (CONV_BM / 4) * (CONV_BN / 4), "one 4x4 sub-tile per thread");
static_assert(CONV_THREADS * 4 == CONV_BM * CONV_BK && CONV_THREADS * 4 == CONV_BN * CONV_BK,
              "four loads per thread per tile");

/* The input frames of one call: NULL is a zero frame (its taps are skipped). */
struct conv_frames_in {
    const void *x[OP_CONV_FRAMES_MAX]; /* [Ci, Hs, Ws] each, f32 or bf16 */
    int bf16[OP_CONV_FRAMES_MAX];
    int n_frames;
};

struct conv_dims {
    int ci, co;
    int hs, ws; /* stored input frame size */
    int h, w;   /* virtual (upsampled) input size: hs << up, ws << up */
    int ho, wo;
    int kh, kw, s, pt, pl, up;
};

static __device__ float conv_load(const void *x, bool bf16, int64_t e) {
    if (bf16) return __uint_as_float((unsigned)((const unsigned short *)x)[e] << 16);
    return ((const float *)x)[e];
}

__global__ void __launch_bounds__(CONV_THREADS)
    conv_frames_kernel(float *y,                  // [co, ho, wo]
                       struct conv_frames_in xin, // n_frames x [ci, hs, ws] or NULL
                       const float *w,            // [n_frames, kh kw, co, ci]
                       const float *b,            // [co], [co, ho, wo] (may alias y) or NULL
                       int b_frame, struct conv_dims d) {
    __shared__ __align__(16) float as[CONV_BK][CONV_BM + CONV_APAD]; /* w chunk, ci-major (padded: bank conflicts) */
    __shared__ __align__(16) float bs[CONV_BK][CONV_BN];             /* the tap-shifted input chunk */
    const int tid = threadIdx.x;
    const int tx = tid % (CONV_BN / 4), ty = tid / (CONV_BN / 4); /* compute: columns 4 tx.., rows 4 ty.. */
    const int64_t np = (int64_t)d.ho * d.wo;
    const int64_t p0 = (int64_t)blockIdx.x * CONV_BN;
    const int co0 = blockIdx.y * CONV_BM;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int co = co0 + ty * 4 + i;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t p = p0 + tx * 4 + j;
            float v = 0.0f;
            if (b && co < d.co && p < np) v = b_frame ? b[(int64_t)co * np + p] : b[co];
            acc[i][j] = v;
        }
    }

    /* The input loader: one output position (column lp of the tile), channel rows lk, lk + 4, lk + 8, lk + 12. */
    const int lp = tid % CONV_BN, lk = tid / CONV_BN;
    const int64_t lpos = p0 + lp;
    const bool lp_ok = lpos < np;
    const int oy = lp_ok ? (int)(lpos / d.wo) : 0;
    const int ox = lp_ok ? (int)(lpos - (int64_t)oy * d.wo) : 0;
    /* The weight loader: input channel ak of the chunk, output channel rows am, am + 16, am + 32, am + 48. */
    const int ak = tid % CONV_BK, am = tid / CONV_BK;
    const int64_t plane = (int64_t)d.hs * d.ws;
    const int taps = d.kh * d.kw;

    for (int f = 0; f < xin.n_frames; f++) {
        const void *xf = xin.x[f];
        if (!xf) continue; /* a zero frame contributes nothing (uniform over the block) */
        const bool xb = xin.bf16[f] != 0;
        for (int t = 0; t < taps; t++) {
            const int ky = t / d.kw, kx = t - ky * d.kw;
            const int iy = oy * d.s + ky - d.pt, ix = ox * d.s + kx - d.pl; /* in the virtual input */
            const bool in = lp_ok && iy >= 0 && iy < d.h && ix >= 0 && ix < d.w;
            const int64_t off = in ? (int64_t)(iy >> d.up) * d.ws + (ix >> d.up) : 0;
            const float *wt = w + ((int64_t)f * taps + t) * d.co * d.ci; /* [co, ci] of this tap */
            for (int c0 = 0; c0 < d.ci; c0 += CONV_BK) {
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int m = am + r * (CONV_THREADS / CONV_BK), co = co0 + m, ci = c0 + ak;
                    as[ak][m] = co < d.co && ci < d.ci ? wt[(int64_t)co * d.ci + ci] : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int k = lk + r * (CONV_THREADS / CONV_BN), ci = c0 + k;
                    bs[k][lp] = in && ci < d.ci ? conv_load(xf, xb, (int64_t)ci * plane + off) : 0.0f;
                }
                __syncthreads();
#pragma unroll
                for (int k = 0; k < CONV_BK; k++) {
                    const float4 a4 = *(const float4 *)&as[k][ty * 4];
                    const float4 b4 = *(const float4 *)&bs[k][tx * 4];
                    const float av[4] = {a4.x, a4.y, a4.z, a4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
                __syncthreads();
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int co = co0 + ty * 4 + i;
        if (co >= d.co) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t p = p0 + tx * 4 + j;
            if (p < np) y[(int64_t)co * np + p] = acc[i][j];
        }
    }
}

void kern_conv_frames_cuda(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                           const struct tensor *w, const struct tensor *b, const struct conv_geom *g) {
    static const char op[] = "kern_conv_frames_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "w", w);
    if (b) cuda_require_f32(op, "b", b);
    CHECK(n_frames >= 1 && n_frames <= OP_CONV_FRAMES_MAX, "%s: %d input frames", op, n_frames);

    struct conv_frames_in xin;
    memset(&xin, 0, sizeof xin);
    xin.n_frames = n_frames;
    const struct tensor *any = NULL;
    for (int f = 0; f < n_frames; f++) {
        if (!x[f]) continue;
        CHECK(x[f]->device == DEVICE_CUDA, "%s: x[%d] is not on the CUDA device", op, f);
        CHECK(x[f]->dtype == DTYPE_F32 || x[f]->dtype == DTYPE_BF16, "%s: x[%d] is %s (f32 or bf16)", op, f,
              dtype_name(x[f]->dtype));
        xin.x[f] = x[f]->data;
        xin.bf16[f] = x[f]->dtype == DTYPE_BF16;
        any = x[f];
    }

    struct conv_dims d;
    d.ci = cuda_to_int(op, "Ci", w->shape[3]);
    d.co = cuda_to_int(op, "Co", y->shape[0]);
    d.ho = cuda_to_int(op, "Ho", y->shape[1]);
    d.wo = cuda_to_int(op, "Wo", y->shape[2]);
    d.hs = any ? cuda_to_int(op, "H", any->shape[1]) : 0; /* no frame: no taps, y = bias */
    d.ws = any ? cuda_to_int(op, "W", any->shape[2]) : 0;
    d.up = g->upsample2x;
    d.h = cuda_to_int(op, "H'", (int64_t)d.hs << d.up);
    d.w = cuda_to_int(op, "W'", (int64_t)d.ws << d.up);
    d.kh = g->kh, d.kw = g->kw, d.s = g->stride, d.pt = g->pad_top, d.pl = g->pad_left;
    /* the kernel's index math: output positions and virtual input coordinates in int, offsets in int64 */
    (void)cuda_to_int(op, "Ho Wo", (int64_t)d.ho * d.wo);
    (void)cuda_to_int(op, "(Ho - 1) stride + kh", ((int64_t)d.ho - 1) * d.s + d.kh);
    (void)cuda_to_int(op, "(Wo - 1) stride + kw", ((int64_t)d.wo - 1) * d.s + d.kw);

    const int64_t np = (int64_t)d.ho * d.wo;
    if (np == 0 || d.co == 0) return;
    const dim3 grid((unsigned)cuda_to_int(op, "position tiles", CEIL_DIV(np, (int64_t)CONV_BN)),
                    (unsigned)CEIL_DIV(d.co, CONV_BM));
    CHECK(grid.y <= 65535u, "%s: %d output channels exceed the grid", op, d.co);
    conv_frames_kernel<<<grid, CONV_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, xin, (const float *)w->data, b ? (const float *)b->data : NULL, b && b->ndim == 3, d);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- channel RMS norm ---- */

static __device__ float vae_silu(float v) { return v / (1.0f + expf(-v)); }

/* y[c, p] = x[c, p] / max(||x[:, p]||, 1e-12) * (gamma[c] sqrt(C)) (then SiLU), one thread per position. */
__global__ void channel_rmsnorm_kernel(struct rows_view y, // [c, p], may be x
                                       struct rows_view x, // [c, p]
                                       const float *gamma, // [c]
                                       float root_c, int silu) {
    VAE_LOOP(x.n) {
        double ss = 0.0;
        for (int64_t ch = 0; ch < x.m; ch++) {
            const float a = x.data[ch * x.ld + idx];
            ss += (double)a * a; /* exact square: an FMA contraction cannot change it */
        }
        const double norm = sqrt(ss);
        const float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (int64_t ch = 0; ch < x.m; ch++) {
            const float gs = __fmul_rn(gamma[ch], root_c);
            const float v = __fmul_rn(__fmul_rn(x.data[ch * x.ld + idx], inv), gs);
            y.data[ch * y.ld + idx] = silu ? vae_silu(v) : v;
        }
    }
}

void kern_channel_rmsnorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                               const struct tensor *gamma, bool silu) {
    static const char op[] = "kern_channel_rmsnorm_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    cuda_require_f32(op, "gamma", gamma);
    const struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    if (xr.m == 0 || xr.n == 0) return;
    const float root_c = sqrtf((float)xr.m);
    channel_rmsnorm_kernel<<<vae_blocks(xr.n), VAE_THREADS, 0, cuda_stream_of(ctx)>>>(
        yr, xr, (const float *)gamma->data, root_c, silu ? 1 : 0);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- nearest x2 upsampling ---- */

__global__ void upsample_nearest2x_kernel(float *y,       // [c, 2h, 2w]
                                          const float *x, // [c, h, w]
                                          int64_t c, int64_t h, int64_t w) {
    const int64_t wo = 2 * w, ho = 2 * h;
    VAE_LOOP(c * ho * wo) {
        const int64_t row = idx / wo, ox = idx - row * wo; /* row = ch * ho + oy */
        const int64_t ch = row / ho, oy = row - ch * ho;
        y[idx] = x[(ch * h + oy / 2) * w + ox / 2];
    }
}

void kern_upsample_nearest2x_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    static const char op[] = "kern_upsample_nearest2x_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    const int64_t c = x->shape[0], h = x->shape[1], w = x->shape[2];
    if (c == 0 || h == 0 || w == 0) return;
    upsample_nearest2x_kernel<<<vae_blocks(4 * c * h * w), VAE_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, (const float *)x->data, c, h, w);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- per-channel affine map ---- */

/* y[c, p] = (x[c, p] - sub[c]) * mul[c] + add[c]; NULL tables read as 0, 1, 0 (the CPU's arithmetic). */
__global__ void channel_affine_kernel(struct rows_view y, // [c, p], may be x
                                      struct rows_view x, // [c, p]
                                      const float *sub, const float *mul, const float *add) { // [c] or NULL
    VAE_LOOP(x.m * x.n) {
        const int64_t ch = idx / x.n, j = idx - ch * x.n;
        const float sv = sub ? sub[ch] : 0.0f, mv = mul ? mul[ch] : 1.0f, av = add ? add[ch] : 0.0f;
        y.data[ch * y.ld + j] = __fadd_rn(__fmul_rn(__fsub_rn(x.data[ch * x.ld + j], sv), mv), av);
    }
}

void kern_channel_affine_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                              const struct tensor *sub, const struct tensor *mul, const struct tensor *add) {
    static const char op[] = "kern_channel_affine_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    if (sub) cuda_require_f32(op, "sub", sub);
    if (mul) cuda_require_f32(op, "mul", mul);
    if (add) cuda_require_f32(op, "add", add);
    const struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    if (xr.m == 0 || xr.n == 0) return;
    channel_affine_kernel<<<vae_blocks(xr.m * xr.n), VAE_THREADS, 0, cuda_stream_of(ctx)>>>(
        yr, xr, sub ? (const float *)sub->data : NULL, mul ? (const float *)mul->data : NULL,
        add ? (const float *)add->data : NULL);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- clamp ---- */

__global__ void clamp_kernel(struct rows_view y, // [m, n], may be x
                             struct rows_view x, // [m, n]
                             float lo, float hi) {
    VAE_LOOP(x.m * x.n) {
        const int64_t i = idx / x.n, j = idx - i * x.n;
        const float a = x.data[i * x.ld + j];
        const float v = a < lo ? lo : a;
        y.data[i * y.ld + j] = v > hi ? hi : v; /* NaN stays NaN, as torch.clamp */
    }
}

void kern_clamp_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi) {
    static const char op[] = "kern_clamp_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    const struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    CHECK(yr.m == xr.m && yr.n == xr.n, "%s: rows views differ", op);
    if (xr.m == 0 || xr.n == 0) return;
    clamp_kernel<<<vae_blocks(xr.m * xr.n), VAE_THREADS, 0, cuda_stream_of(ctx)>>>(yr, xr, lo, hi);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- transpose ---- */

enum { TR_TILE = 32, TR_ROWS = 8 }; /* a 32 x 32 tile per block of 32 x 8 threads */

/* y[n, m] = x[m, n]^T through a shared tile (column TR_TILE + 1 against bank conflicts); blocks stride over the
 * tiles. */
__global__ void transpose_kernel(float *y, int64_t ldy,       // [n, m] rows
                                 const float *x, int64_t ldx, // [m, n] rows
                                 int64_t m, int64_t n) {
    __shared__ float tile[TR_TILE][TR_TILE + 1];
    const int64_t tm = CEIL_DIV(m, (int64_t)TR_TILE), tn = CEIL_DIV(n, (int64_t)TR_TILE);
    for (int64_t t = blockIdx.x; t < tm * tn; t += gridDim.x) {
        const int64_t i0 = (t / tn) * TR_TILE, j0 = (t % tn) * TR_TILE;
        for (int r = threadIdx.y; r < TR_TILE; r += TR_ROWS) {
            const int64_t i = i0 + r, j = j0 + threadIdx.x;
            if (i < m && j < n) tile[r][threadIdx.x] = x[i * ldx + j];
        }
        __syncthreads();
        for (int r = threadIdx.y; r < TR_TILE; r += TR_ROWS) {
            const int64_t j = j0 + r, i = i0 + threadIdx.x; /* y row j, column i */
            if (i < m && j < n) y[j * ldy + i] = tile[threadIdx.x][r];
        }
        __syncthreads(); /* the tile is refilled for the next t */
    }
}

void kern_transpose_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    static const char op[] = "kern_transpose_cuda";
    cuda_check_ctx(ctx, op);
    cuda_require_f32(op, "y", y);
    cuda_require_f32(op, "x", x);
    const int64_t m = x->shape[0], n = x->shape[1];
    if (m == 0 || n == 0) return;
    const int64_t ldx = x->stride[0], ldy = y->stride[0]; /* only row 0 of a single row is read: any stride */
    int64_t tiles = CEIL_DIV(m, (int64_t)TR_TILE) * CEIL_DIV(n, (int64_t)TR_TILE);
    if (tiles > (int64_t)VAE_MAX_BLOCKS) tiles = VAE_MAX_BLOCKS;
    transpose_kernel<<<(unsigned)tiles, dim3(TR_TILE, TR_ROWS), 0, cuda_stream_of(ctx)>>>(
        (float *)y->data, ldy, (const float *)x->data, ldx, m, n);
    CUDA_CHECK(cudaGetLastError());
}

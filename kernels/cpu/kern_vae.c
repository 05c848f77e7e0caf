/* kernels/cpu/kern_vae.c - the channel-first elementwise ops of the Wan VAE (spec 7.1): the RMS norm over
 * channels (F.normalize form) with an optional SiLU, nearest x2 upsampling, per-channel affine maps,
 * clamping and a blocked transpose (to feed the middle attention block token-major). */
#include <math.h>
#include <string.h>

#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/rows_view.h"

enum { NORM_BLOCK = 512, TRANSPOSE_TILE = 32 };

void kern_channel_rmsnorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                              const struct tensor *gamma, bool silu) {
    struct rows_view xr = rows_view_of(x), yr = rows_view_of(y);
    const int64_t c = xr.m, np = xr.n;
    const float *g = gamma->data;
    const float root_c = sqrtf((float)c);
    const int nt = kern_cpu_threads(ctx);
    const int64_t nblk = (np + NORM_BLOCK - 1) / NORM_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t p0 = blk * NORM_BLOCK, n = p0 + NORM_BLOCK < np ? NORM_BLOCK : np - p0;
        double ss[NORM_BLOCK];
        float inv[NORM_BLOCK];
        for (int64_t j = 0; j < n; j++) ss[j] = 0.0;
        for (int64_t ch = 0; ch < c; ch++) {
            const float *a = xr.data + ch * xr.ld + p0;
            for (int64_t j = 0; j < n; j++) ss[j] += (double)a[j] * a[j];
        }
        for (int64_t j = 0; j < n; j++) {
            const double norm = sqrt(ss[j]);
            inv[j] = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        }
        for (int64_t ch = 0; ch < c; ch++) {
            const float *a = xr.data + ch * xr.ld + p0;
            float *o = yr.data + ch * yr.ld + p0;
            const float gs = g[ch] * root_c;
            if (silu)
                for (int64_t j = 0; j < n; j++) o[j] = vm_siluf(a[j] * inv[j] * gs);
            else
                for (int64_t j = 0; j < n; j++) o[j] = a[j] * inv[j] * gs;
        }
    }
}

void kern_upsample_nearest2x_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    const int64_t c = x->shape[0], h = x->shape[1], w = x->shape[2];
    const float *xd = x->data;
    float *yd = y->data;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < c * h; r++) {
        const float *src = xd + r * w;
        float *d0 = yd + 2 * r * 2 * w, *d1 = d0 + 2 * w;
        for (int64_t j = 0; j < w; j++) d0[2 * j] = d0[2 * j + 1] = src[j];
        memcpy(d1, d0, (size_t)(2 * w) * sizeof(float));
    }
}

void kern_channel_affine_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                             const struct tensor *sub, const struct tensor *mul, const struct tensor *add) {
    struct rows_view xr = rows_view_of(x), yr = rows_view_of(y);
    const float *s = sub ? sub->data : NULL, *m = mul ? mul->data : NULL, *a = add ? add->data : NULL;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t ch = 0; ch < xr.m; ch++) {
        const float sv = s ? s[ch] : 0.0f, mv = m ? m[ch] : 1.0f, av = a ? a[ch] : 0.0f;
        const float *xi = xr.data + ch * xr.ld;
        float *yi = yr.data + ch * yr.ld;
        for (int64_t j = 0; j < xr.n; j++) yi[j] = (xi[j] - sv) * mv + av;
    }
}

void kern_clamp_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi) {
    struct rows_view xr = rows_view_of(x), yr = rows_view_of(y);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < xr.m; i++) {
        const float *a = xr.data + i * xr.ld;
        float *o = yr.data + i * yr.ld;
        for (int64_t j = 0; j < xr.n; j++) {
            const float v = a[j] < lo ? lo : a[j];
            o[j] = v > hi ? hi : v; /* NaN stays NaN, as torch.clamp */
        }
    }
}

void kern_transpose_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    const int64_t m = x->shape[0], n = x->shape[1], ldx = x->stride[0], ldy = y->stride[0];
    const float *xd = x->data;
    float *yd = y->data;
    const int nt = kern_cpu_threads(ctx);
    const int64_t tm = (m + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE, tn = (n + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < tm * tn; t++) {
        const int64_t i0 = (t / tn) * TRANSPOSE_TILE, j0 = (t % tn) * TRANSPOSE_TILE;
        const int64_t i1 = i0 + TRANSPOSE_TILE < m ? i0 + TRANSPOSE_TILE : m;
        const int64_t j1 = j0 + TRANSPOSE_TILE < n ? j0 + TRANSPOSE_TILE : n;
        for (int64_t j = j0; j < j1; j++)
            for (int64_t i = i0; i < i1; i++) yd[j * ldy + i] = xd[i * ldx + j];
    }
}

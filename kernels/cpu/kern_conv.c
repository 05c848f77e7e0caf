/* kernels/cpu/kern_conv.c - frame convolutions of the Wan VAE (spec 7.1) as GEMMs without im2col.
 *
 * One output frame y[Co, Ho, Wo] = b + sum over input frames f and taps (ky, kx) of
 * w[f, ky kw + kx] [Co, Ci] . x_f shifted by the tap. The zero-padded input is split into stride x stride
 * "phase" images P[py, px][c, i, j] = padded[c, s i + py, s j + px] of width Wq; then every tap reads one
 * phase image at a constant offset (ky / s) Wq + kx / s, so the tap is a single sgemm over a contiguous
 * run of output positions laid out with row pitch Wq (the Wq - Wo extra columns per row are computed and
 * dropped). Stride 1 has one phase (the padded image itself); the stride-2 downsample has four.
 * Output rows are cut into bands; each OpenMP thread builds the phase images of its band (bounded
 * scratch, no [Ci kh kw, Ho Wo] matrix) and accumulates the taps in the fixed order f, ky, kx onto the
 * bias; bands depend only on the geometry, so the result does not depend on the thread count.
 * With upsample2x the phase images are built from the half-size input (row and column i read i / 2), so the
 * nearest-upsampled frame of the VAE's up path is never stored.
 * 1x1 convolutions without padding are one sgemm per input frame over column blocks.
 * Input frames may be bf16 (the VAE's stored causal state): each row is widened to f32 as the phase images are
 * built, so only a row of scratch is added and the arithmetic is the f32 path's. The bias may be a whole frame
 * (a partial sum of earlier taps), copied into the accumulator in place of the per-channel bias.
 * Every sgemm goes through kern_sgemm_row_stable (kern_linear.c): OpenBLAS rounds calls with M N K <= 100^3 in
 * its small-matrix kernels, differently from the blocked path, and a band's N depends on the frame's height, so
 * without it an output pixel could change with the height of the frame it is computed in (the VAE decoder's row
 * bands rely on it not changing). Bands and column blocks are therefore never so short that their sgemm is small
 * (the last one takes the remainder); only a frame too small for one such band is padded with scratch weight
 * rows (the tiny test VAEs).
 */
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/kern_cpu.h"

/* Bands hold about CONV_TARGET_COLS output positions (the N of each sgemm), and a frame is cut into at least
 * CONV_MIN_BANDS bands when it has the rows, so that many threads find work. The band size depends only on the
 * frame's geometry, never on the thread count: OpenBLAS may round edge tiles differently, so a thread-dependent
 * split would change bits. */
enum { CONV_TARGET_COLS = 8192, CONV_MIN_BANDS = 16, CONV_POINTWISE_COLS = 1024 };

struct conv_plan {
    int64_t ci, co, h, w, ho, wo; /* h, w: the (virtual, upsampled) input size */
    int kh, kw, s, pt, pl, up;
    int64_t wq;       /* phase image width */
    int64_t halo;     /* extra phase rows a band needs: (kh - 1) / s, plus one row of slack */
};

/* One input frame: f32 or bf16 data [ci, h >> up, w >> up], or NULL (a zero frame). */
struct conv_src {
    const void *data;
    bool bf16;
};

/* The bias: per channel [co], a whole frame [co, ho, wo] (a partial sum), or none. */
struct conv_bias {
    const float *data;
    bool frame;
};

static void phase_band(float *dst, const struct conv_src *x, const struct conv_plan *p, int64_t r0, int64_t rows,
                       float *row_f32) {
    /* dst [s*s][ci][rows][wq]: phase (py, px), row i -> padded row s (r0 + i) + py. row_f32: [w >> up] for
     * widening a bf16 row. */
    const int s = p->s;
    const int64_t plane = rows * p->wq;
    for (int py = 0; py < s; py++)
        for (int px = 0; px < s; px++) {
            float *ph = dst + (int64_t)(py * s + px) * p->ci * plane;
            const int64_t sw = p->w >> p->up; /* stored row length */
            for (int64_t c = 0; c < p->ci; c++) {
                const int64_t xc = c * (p->h >> p->up) * sw; /* channel offset in elements */
                float *pc = ph + c * plane;
                for (int64_t i = 0; i < rows; i++) {
                    float *row = pc + i * p->wq;
                    const int64_t iy = s * (r0 + i) + py - p->pt; /* input row */
                    if (iy < 0 || iy >= p->h) {
                        memset(row, 0, (size_t)p->wq * sizeof(float));
                        continue;
                    }
                    const int64_t xo = xc + (iy >> p->up) * sw;
                    const float *xr;
                    if (x->bf16) {
                        const uint16_t *xh = (const uint16_t *)x->data + xo;
                        for (int64_t j = 0; j < sw; j++) row_f32[j] = bf16_to_f32(xh[j]);
                        xr = row_f32;
                    } else {
                        xr = (const float *)x->data + xo;
                    }
                    if (p->up) {
                        for (int64_t j = 0; j < p->wq; j++) {
                            const int64_t ix = s * j + px - p->pl;
                            row[j] = ix >= 0 && ix < p->w ? xr[ix >> 1] : 0.0f;
                        }
                    } else if (s == 1) {
                        /* padded columns: pl zeros, the row, zeros */
                        const int64_t lead = p->pl < p->wq ? p->pl : p->wq;
                        memset(row, 0, (size_t)lead * sizeof(float));
                        const int64_t n = p->w < p->wq - lead ? p->w : p->wq - lead;
                        memcpy(row + lead, xr, (size_t)n * sizeof(float));
                        if (lead + n < p->wq) memset(row + lead + n, 0, (size_t)(p->wq - lead - n) * sizeof(float));
                    } else {
                        for (int64_t j = 0; j < p->wq; j++) {
                            const int64_t ix = s * j + px - p->pl;
                            row[j] = ix >= 0 && ix < p->w ? xr[ix] : 0.0f;
                        }
                    }
                }
            }
        }
}

static void conv_band(const struct conv_plan *p, float *y, int nf, const struct conv_src *x, const float *w,
                      const struct conv_bias *b, int64_t r0, int64_t r1, float *scratch) {
    const int s = p->s;
    const int64_t band = r1 - r0, prow = band + p->halo, plane = prow * p->wq;
    const int64_t phase_floats = (int64_t)s * s * p->ci * plane;
    float *acc = scratch + (int64_t)nf * phase_floats; /* [co][band][wq] */
    float *row_f32 = acc + p->co * band * p->wq;       /* [w >> up] */
    const int64_t n = band * p->wq;
    for (int64_t o = 0; o < p->co; o++) {
        float *a = acc + o * n;
        if (b->frame) { /* a partial sum: the kept columns from it, the dropped ones (never read) zero */
            for (int64_t i = 0; i < band; i++) {
                memcpy(a + i * p->wq, b->data + (o * p->ho + r0 + i) * p->wo, (size_t)p->wo * sizeof(float));
                memset(a + i * p->wq + p->wo, 0, (size_t)(p->wq - p->wo) * sizeof(float));
            }
            continue;
        }
        const float bo = b->data ? b->data[o] : 0.0f;
        for (int64_t j = 0; j < n; j++) a[j] = bo;
    }
    for (int f = 0; f < nf; f++)
        if (x[f].data) phase_band(scratch + f * phase_floats, &x[f], p, r0, prow, row_f32);
    const int64_t taps = (int64_t)p->kh * p->kw;
    for (int f = 0; f < nf; f++) {
        if (!x[f].data) continue; /* a zero frame contributes nothing */
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++) {
                const float *ph = scratch + f * phase_floats + (int64_t)((ky % s) * s + kx % s) * p->ci * plane;
                const float *src = ph + (ky / s) * p->wq + kx / s;
                const float *wt = w + ((int64_t)f * taps + ky * p->kw + kx) * p->co * p->ci;
                kern_sgemm_row_stable(false, p->co, n, p->ci, 1.0f, wt, p->ci, src, plane, 1.0f, acc, n);
            }
    }
    for (int64_t o = 0; o < p->co; o++)
        for (int64_t i = 0; i < band; i++)
            memcpy(y + (o * p->ho + r0 + i) * p->wo, acc + o * n + i * p->wq, (size_t)p->wo * sizeof(float));
}

/* 1x1, stride 1, no padding: y[co, P] = b + sum_f w_f[co, ci] x_f[ci, P], column blocks per thread. */
static void conv_pointwise(const struct exec_ctx *ctx, float *y, int64_t co, int64_t ci, int64_t np, int nf,
                           const float *const *x, const float *w, const struct conv_bias *b) {
    const int nt = kern_cpu_threads(ctx);
    /* column blocks of CONV_POINTWISE_COLS, at least enough that the sgemm is not small; the last takes the rest */
    int64_t cols = SGEMM_SMALL_MNK_MAX / (co * ci) + 1;
    if (cols < CONV_POINTWISE_COLS) cols = CONV_POINTWISE_COLS;
    if (cols > np) cols = np;
    const int64_t nblk = np / cols;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t c0 = blk * cols, nc = blk == nblk - 1 ? np - c0 : cols;
        for (int64_t o = 0; o < co; o++) {
            float *yo = y + o * np + c0;
            if (b->frame) {
                if (b->data != y) memcpy(yo, b->data + o * np + c0, (size_t)nc * sizeof(float));
                continue;
            }
            const float bo = b->data ? b->data[o] : 0.0f;
            for (int64_t j = 0; j < nc; j++) yo[j] = bo;
        }
        for (int f = 0; f < nf; f++)
            if (x[f])
                kern_sgemm_row_stable(false, co, nc, ci, 1.0f, w + (int64_t)f * co * ci, ci, x[f] + c0, np, 1.0f, y + c0,
                                      np);
    }
}

void kern_conv_frames_cpu(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                          const struct tensor *w, const struct tensor *b, const struct conv_geom *g) {
    struct conv_src xs[OP_CONV_FRAMES_MAX];
    const float *xf[OP_CONV_FRAMES_MAX]; /* the f32 frames, for the pointwise path */
    const struct tensor *any = NULL;
    bool all_f32 = true;
    for (int f = 0; f < n_frames; f++) {
        xs[f].data = x[f] ? x[f]->data : NULL;
        xs[f].bf16 = x[f] && x[f]->dtype == DTYPE_BF16;
        xf[f] = (const float *)xs[f].data;
        if (x[f]) any = x[f];
        all_f32 &= !xs[f].bf16;
    }
    struct conv_plan p = {.ci = w->shape[3], .co = w->shape[2], .ho = y->shape[1], .wo = y->shape[2],
                          .kh = g->kh, .kw = g->kw, .s = g->stride, .pt = g->pad_top, .pl = g->pad_left,
                          .up = g->upsample2x};
    p.h = any ? any->shape[1] << p.up : (y->shape[1] - 1) * p.s + p.kh - g->pad_top - g->pad_bottom;
    p.w = any ? any->shape[2] << p.up : (y->shape[2] - 1) * p.s + p.kw - g->pad_left - g->pad_right;
    const struct conv_bias bias = {.data = b ? (const float *)b->data : NULL, .frame = b && b->ndim == 3};
    float *yd = y->data;
    if (all_f32 && p.kh == 1 && p.kw == 1 && p.s == 1 && !p.up && !g->pad_top && !g->pad_left && !g->pad_bottom &&
        !g->pad_right) {
        conv_pointwise(ctx, yd, p.co, p.ci, p.ho * p.wo, n_frames, xf, w->data, &bias);
        return;
    }
    const int64_t wpad = p.w + g->pad_left + g->pad_right;
    p.wq = (wpad + p.s - 1) / p.s;
    p.halo = (p.kh - 1) / p.s + 1;
    const int nt = kern_cpu_threads(ctx);
    int64_t band = (CONV_TARGET_COLS + p.wq - 1) / p.wq;
    const int64_t min_split = (p.ho + CONV_MIN_BANDS - 1) / CONV_MIN_BANDS;
    if (band > min_split) band = min_split;
    /* no band so short that its sgemms are small (see the top of the file) */
    const int64_t band_not_small = SGEMM_SMALL_MNK_MAX / (p.co * p.ci * p.wq) + 1;
    if (band < band_not_small) band = band_not_small;
    if (band > p.ho) band = p.ho;
    if (band < 1) band = 1;
    const int64_t nbands = p.ho / band; /* the last band also takes the remainder */
    const int64_t band_max = p.ho - (nbands - 1) * band;
    const int64_t scratch_floats =
        (int64_t)n_frames * p.s * p.s * p.ci * (band_max + p.halo) * p.wq + p.co * band_max * p.wq + (p.w >> p.up);
#pragma omp parallel num_threads(nt)
    {
        float *scratch = malloc((size_t)scratch_floats * sizeof(float));
        CHECK(scratch, "out of memory for a %lld-float convolution band", (long long)scratch_floats);
#pragma omp for schedule(dynamic, 1)
        for (int64_t bi = 0; bi < nbands; bi++) {
            const int64_t r0 = bi * band, r1 = bi == nbands - 1 ? p.ho : r0 + band;
            conv_band(&p, yd, n_frames, xs, w->data, &bias, r0, r1, scratch);
        }
        free(scratch);
    }
}

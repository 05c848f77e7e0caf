/* kernels/cpu/kern_norm.c - LayerNorm, RMSNorm and the fused LayerNorm + per-frame modulation.
 *
 * Statistics are accumulated in double per row (D is at most a few thousand), results in float.
 * Mirrors torch.nn.LayerNorm (biased variance), WanRMSNorm (spec 3.6: over the full width) and
 * the block's norm1/norm2 + modulation (spec 3.6 steps 1 and 5) and the head (3.7).
 */
#include <math.h>

#include "kernels/cpu/kern_cpu.h"

static inline void row_mean_rstd(const float *x, int64_t d, float eps, float *mean_out, float *rstd_out) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; j++) s += x[j];
    double mean = s / (double)d;
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < d; j++) {
        double c = x[j] - mean;
        v += c * c;
    }
    *mean_out = (float)mean;
    *rstd_out = (float)(1.0 / sqrt(v / (double)d + (double)eps));
}

void kern_layernorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                        const struct tensor *gamma, const struct tensor *beta, float eps) {
    const int64_t m = x->shape[0], d = x->shape[1];
    const float *g = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = (const float *)x->data + i * x->stride[0];
        float *yr = (float *)y->data + i * y->stride[0];
        float mean, rstd;
        row_mean_rstd(xr, d, eps, &mean, &rstd);
        for (int64_t j = 0; j < d; j++) {
            float v = (xr[j] - mean) * rstd;
            if (g) v *= g[j];
            if (bt) v += bt[j];
            yr[j] = v;
        }
    }
}

void kern_rmsnorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                      float eps) {
    const int64_t m = x->shape[0], d = x->shape[1];
    const float *g = gamma ? gamma->data : NULL;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = (const float *)x->data + i * x->stride[0];
        float *yr = (float *)y->data + i * y->stride[0];
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float r = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        if (g)
            for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r * g[j];
        else
            for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r;
    }
}

void kern_row_sumsq_cpu(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x) {
    const int64_t m = x->shape[0], d = x->shape[1];
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = (const float *)x->data + i * x->stride[0];
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < d; j++) acc += (double)xr[j] * xr[j];
        ((float *)ss->data)[i * ss->stride[0]] = (float)acc;
    }
}

void kern_rmsnorm_given_sumsq_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                                  const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps) {
    const int64_t m = x->shape[0], d = x->shape[1];
    const float *g = gamma ? gamma->data : NULL;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = (const float *)x->data + i * x->stride[0];
        float *yr = (float *)y->data + i * y->stride[0];
        const double total = ((const float *)ss->data)[i * ss->stride[0]];
        const float r = (float)(1.0 / sqrt(total / (double)width + (double)eps));
        if (g)
            for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r * g[j];
        else
            for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r;
    }
}

void kern_norm_modulate_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                            const struct tensor *shift, const struct tensor *scale, int64_t group_size,
                            int64_t row_offset, float eps) {
    const int64_t m = x->shape[0], d = x->shape[1];
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const int64_t g = (i + row_offset) / group_size;
        const float *xr = (const float *)x->data + i * x->stride[0];
        const float *sh = (const float *)shift->data + g * shift->stride[0];
        const float *sc = (const float *)scale->data + g * scale->stride[0];
        float *yr = (float *)y->data + i * y->stride[0];
        float mean, rstd;
        row_mean_rstd(xr, d, eps, &mean, &rstd);
        for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - mean) * rstd * (1.0f + sc[j]) + sh[j];
    }
}

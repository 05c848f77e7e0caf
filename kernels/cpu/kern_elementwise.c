/* kernels/cpu/kern_elementwise.c - activations, gated residual adds, row broadcasts, copies.
 *
 * Every op walks a "rows" view [M, N] (unit stride inside a row); contiguous tensors of any rank
 * are viewed as [numel / last, last]. Loops are written so gcc vectorises them (vec_math.h).
 */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/kern_cpu.h"
#include "kernels/rows_view.h"
#include "kernels/cpu/vec_math.h"

enum act_kind { ACT_SILU, ACT_GELU_TANH, ACT_GELU_ERF };

static void activation(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, enum act_kind kind) {
    struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < xr.m; i++) {
        const float *a = xr.data + i * xr.ld;
        float *o = yr.data + i * yr.ld;
        switch (kind) {
        case ACT_SILU:
            for (int64_t j = 0; j < xr.n; j++) o[j] = vm_siluf(a[j]);
            break;
        case ACT_GELU_TANH:
            for (int64_t j = 0; j < xr.n; j++) o[j] = vm_gelu_tanhf(a[j]);
            break;
        case ACT_GELU_ERF:
            for (int64_t j = 0; j < xr.n; j++) o[j] = 0.5f * a[j] * (1.0f + erff(a[j] * 0.70710678118654752f));
            break;
        }
    }
}

void kern_silu_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    activation(ctx, y, x, ACT_SILU);
}
void kern_gelu_tanh_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    activation(ctx, y, x, ACT_GELU_TANH);
}
void kern_gelu_erf_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x) {
    activation(ctx, y, x, ACT_GELU_ERF);
}

void kern_gated_add_cpu(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y,
                        const struct tensor *gate, int64_t group_size, int64_t row_offset) {
    struct rows_view xr = rows_view_of(x), yr = rows_view_of(y);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < xr.m; i++) {
        float *a = xr.data + i * xr.ld;
        const float *b = yr.data + i * yr.ld;
        if (gate) {
            const float *g = (const float *)gate->data + ((i + row_offset) / group_size) * gate->stride[0];
            for (int64_t j = 0; j < xr.n; j++) a[j] += b[j] * g[j];
        } else {
            for (int64_t j = 0; j < xr.n; j++) a[j] += b[j];
        }
    }
}

void kern_mul_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b) {
    struct rows_view yr = rows_view_of(y), ar = rows_view_of(a), br = rows_view_of(b);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < ar.m; i++) {
        const float *x = ar.data + i * ar.ld, *z = br.data + i * br.ld;
        float *o = yr.data + i * yr.ld;
        for (int64_t j = 0; j < ar.n; j++) o[j] = x[j] * z[j];
    }
}

void kern_add_row_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *row) {
    struct rows_view yr = rows_view_of(y), xr = rows_view_of(x);
    const float *r = row->data;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < xr.m; i++) {
        const float *a = xr.data + i * xr.ld;
        float *o = yr.data + i * yr.ld;
        for (int64_t j = 0; j < xr.n; j++) o[j] = a[j] + r[j];
    }
}

void kern_copy_cpu(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    struct rows_view dr = rows_view_of(dst), sr = rows_view_of(src);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < sr.m; i++) memmove(dr.data + i * dr.ld, sr.data + i * sr.ld, (size_t)sr.n * sizeof(float));
}

void kern_transfer_cpu(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    (void)ctx;
    if (dst->data != src->data) memcpy(dst->data, src->data, tensor_nbytes(src));
}

void kern_lincomb_cpu(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                      const struct tensor *const *x) {
    struct rows_view yr = rows_view_of(y), xr[OP_LINCOMB_MAX];
    for (int k = 0; k < n; k++) xr[k] = rows_view_of(x[k]);
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < yr.m; i++) {
        float *o = yr.data + i * yr.ld;
        for (int64_t j = 0; j < yr.n; j++) {
            double acc = 0.0;
            for (int k = 0; k < n; k++) acc += coef[k] * (double)xr[k].data[i * xr[k].ld + j];
            o[j] = (float)acc;
        }
    }
}

void kern_randn_cpu(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first) {
    /* Draws are addressed by element, so chunks of any size in any order give the same numbers. */
    const int64_t n = tensor_numel(y), chunk = 1 << 16;
    float *d = y->data;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        const int64_t len = n - c0 < chunk ? n - c0 : chunk;
        rng_normal_f32(d + c0, len, seed, stream, first + c0);
    }
}

/* kernels/cpu/kern_linear.c - y = x w^T + b through OpenBLAS sgemm.
 *
 * All CPU parallelism in reelfarm is OpenMP; OpenBLAS is kept single-threaded (kern_cpu_threads)
 * and each OpenMP thread multiplies its own block of rows (or of output columns when there are
 * few rows), so two thread pools never spin against each other.
 * Mirrors torch.nn.Linear (weights [out, in]).
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/kern_cpu.h"

enum { LINEAR_MIN_ROWS_PER_THREAD = 32 };

static void linear_block(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                         const float *b, int64_t m, int64_t n, int64_t k) {
    if (m <= 0 || n <= 0) return;
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < m; i++) memcpy(y + i * ldy, b, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, 1.0f, x, (blasint)ldx,
                w, (blasint)ldw, beta, y, (blasint)ldy);
}

void kern_linear_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
                     const struct tensor *b) {
    const int64_t m = x->shape[0], k = x->shape[1], n = w->shape[0];
    float *yd = y->data;
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    const int64_t ldy = y->stride[0], ldx = x->stride[0], ldw = w->stride[0];
    const int nt = kern_cpu_threads(ctx);

    if (nt == 1) {
        linear_block(yd, ldy, xd, ldx, wd, ldw, bd, m, n, k);
        return;
    }
    if (m >= (int64_t)nt * LINEAR_MIN_ROWS_PER_THREAD) {
        /* Row blocks: every thread streams the whole weight once. */
        int64_t per = (m + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            int64_t r0 = (int64_t)t * per, r1 = r0 + per < m ? r0 + per : m;
            if (r0 < r1) linear_block(yd + r0 * ldy, ldy, xd + r0 * ldx, ldx, wd, ldw, bd, r1 - r0, n, k);
        }
    } else {
        /* Few rows (time embeddings, per-frame tables): split the output columns instead. */
        int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            int64_t c0 = (int64_t)t * per, c1 = c0 + per < n ? c0 + per : n;
            if (c0 < c1)
                linear_block(yd + c0, ldy, xd, ldx, wd + c0 * ldw, ldw, bd ? bd + c0 : NULL, m, c1 - c0, k);
        }
    }
}

int kern_cpu_threads(const struct exec_ctx *ctx) {
    static int blas_pinned = 0;
    if (!blas_pinned) {
        openblas_set_num_threads(1);
        blas_pinned = 1;
    }
    int nt = ctx && ctx->n_threads > 0 ? ctx->n_threads : omp_get_max_threads();
    return nt > 0 ? nt : 1;
}

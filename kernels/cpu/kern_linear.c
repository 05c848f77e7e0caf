/* kernels/cpu/kern_linear.c - y = x w^T + b through OpenBLAS sgemm.
 *
 * All CPU parallelism in reelfarm is OpenMP; OpenBLAS is kept single-threaded (kern_cpu_threads)
 * and each OpenMP thread multiplies whole output tiles, so two thread pools never spin against each
 * other.
 *
 * Determinism: OpenBLAS's rounding of an output element depends on the shape of the sgemm call that
 * computes it, not only on K (its kernel and edge-case choices follow M and N; measured with 0.3.21's
 * Cooper Lake kernels, e.g. a 1-row GEMM split into two column halves). The output is therefore cut
 * into tiles that are a function of (M, N) alone, never of the thread count, and a single thread
 * walks the same tiles: every element comes from the same call at any thread count. K is never split.
 * Mirrors torch.nn.Linear (weights [out, in]).
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/kern_cpu.h"

/* Tiles: row bands of at most LINEAR_TILE_ROWS (balanced), each sgemm repacking the weight once; when
 * that gives fewer than LINEAR_MIN_TILES bands, the columns are split too (at least LINEAR_TILE_MIN_COLS
 * wide, a multiple of 16). Larger tiles repack less (1024-row bands cost about 2 % against one sgemm
 * on the 2-core EPYC); more tiles feed more threads. */
enum { LINEAR_TILE_ROWS = 1024, LINEAR_TILE_MIN_COLS = 256, LINEAR_MIN_TILES = 4 };

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
    if (m <= 0 || n <= 0) return;

    /* The tiling depends on m and n only (see the top of the file). */
    const int64_t row_tiles = (m + LINEAR_TILE_ROWS - 1) / LINEAR_TILE_ROWS;
    const int64_t rows = (m + row_tiles - 1) / row_tiles;
    int64_t col_tiles = (LINEAR_MIN_TILES + row_tiles - 1) / row_tiles;
    const int64_t max_col_tiles = (n + LINEAR_TILE_MIN_COLS - 1) / LINEAR_TILE_MIN_COLS;
    if (col_tiles > max_col_tiles) col_tiles = max_col_tiles;
    const int64_t cols = ((n + col_tiles - 1) / col_tiles + 15) / 16 * 16;
    col_tiles = (n + cols - 1) / cols;
    const int64_t tiles = row_tiles * col_tiles;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && tiles > 1)
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t r0 = (t / col_tiles) * rows, c0 = (t % col_tiles) * cols;
        const int64_t r1 = r0 + rows < m ? r0 + rows : m, c1 = c0 + cols < n ? c0 + cols : n;
        linear_block(yd + r0 * ldy + c0, ldy, xd + r0 * ldx, ldx, wd + c0 * ldw, ldw, bd ? bd + c0 : NULL, r1 - r0,
                     c1 - c0, k);
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

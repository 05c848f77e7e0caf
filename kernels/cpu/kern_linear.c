/* kernels/cpu/kern_linear.c - y = x w^T + b through OpenBLAS sgemm, and the row-stable sgemm that linear and
 * attention use.
 *
 * All CPU parallelism in reelfarm is OpenMP; OpenBLAS is kept single-threaded (kern_cpu_threads)
 * and each OpenMP thread multiplies whole output tiles, so two thread pools never spin against each
 * other.
 *
 * Determinism: how OpenBLAS rounds an element depends on the code path of the call that computes it. 0.3.21
 * with its SkylakeX / Cooper Lake kernels (Debian's DYNAMIC_ARCH build on the 2-core EPYC) may send a call with
 * M N K <= 100^3 to separate small-matrix kernels (interface/gemm.c, sgemm_small_kernel_permit_skylakex.c).
 * Measured with row-major arguments: A B (its NN) whenever M N K <= 100^3, A B^T (its TN) only when also
 * M N <= 1200 and K >= 32; a row computed in such a call differs from the same row in a larger one. Larger calls
 * take the blocked path, where an element depends on K alone: every row and column sub-range of a blocked call
 * (any offset, any count) agrees bitwise with the whole call. kern_sgemm_row_stable pads a call that might be
 * small with scratch rows until it is not, so a row of y depends neither on the other rows in the call (a
 * sequence-parallel shard gets the bits one rank would) nor on the tiling below. The tiles are still a function
 * of (M, N) alone, never of the thread count (the first fix for thread dependence: a 1-row GEMM split into column
 * halves), and a single thread walks the same tiles. K is never split.
 * Mirrors torch.nn.Linear (weights [out, in]).
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "kernels/cpu/kern_cpu.h"

/* Tiles: row bands of at most LINEAR_TILE_ROWS (balanced), each sgemm repacking the weight once; when
 * that gives fewer than LINEAR_MIN_TILES bands, the columns are split too (at least LINEAR_TILE_MIN_COLS
 * wide, a multiple of 16). Larger tiles repack less (1024-row bands cost about 2 % against one sgemm
 * on the 2-core EPYC); more tiles feed more threads. */
enum { LINEAR_TILE_ROWS = 1024, LINEAR_TILE_MIN_COLS = 256, LINEAR_MIN_TILES = 4 };

/* Per-thread padded operands of kern_sgemm_row_stable, grown on demand and reused by later calls (OpenMP keeps
 * its threads), so the hot loops allocate nothing once the largest padding has been seen. */
struct sgemm_pad {
    float *a, *c;        /* [m_large, k], [m_large, n] */
    size_t a_cap, c_cap; /* in floats */
};

static float *sgemm_pad_grow(float **buf, size_t *cap, size_t need) {
    if (need > *cap) {
        free(*buf);
        const size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
        *buf = aligned_alloc(64, bytes);
        CHECK(*buf != NULL, "out of memory for %zu bytes of sgemm padding", bytes);
        memset(*buf, 0, bytes); /* padding rows start finite */
        *cap = bytes / sizeof(float);
    }
    return *buf;
}

void kern_sgemm_row_stable(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    /* the row count from which the call is out of the small range (k == 0: no products, nothing to round) */
    const int64_t m_large = k > 0 ? SGEMM_SMALL_MNK_MAX / (n * k) + 1 : 0;
    if (m >= m_large) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b,
                    (blasint)ldb, beta, c, (blasint)ldc);
        return;
    }
    /* Rows m..m_large of the padded operands hold whatever earlier calls left: their outputs are dropped. */
    static _Thread_local struct sgemm_pad pad;
    float *pa = sgemm_pad_grow(&pad.a, &pad.a_cap, (size_t)(m_large * k));
    float *pc = sgemm_pad_grow(&pad.c, &pad.c_cap, (size_t)(m_large * n));
    for (int64_t i = 0; i < m; i++) memcpy(pa + i * k, a + i * lda, (size_t)k * sizeof(float));
    if (beta != 0.0f)
        for (int64_t i = 0; i < m; i++) memcpy(pc + i * n, c + i * ldc, (size_t)n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (blasint)m_large, (blasint)n, (blasint)k, alpha, pa, (blasint)k, b,
                (blasint)ldb, beta, pc, (blasint)n);
    for (int64_t i = 0; i < m; i++) memcpy(c + i * ldc, pc + i * n, (size_t)n * sizeof(float));
}

static void linear_block(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                         const float *b, int64_t m, int64_t n, int64_t k) {
    if (m <= 0 || n <= 0) return;
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < m; i++) memcpy(y + i * ldy, b, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    kern_sgemm_row_stable(true, m, n, k, 1.0f, x, ldx, w, ldw, beta, y, ldy);
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

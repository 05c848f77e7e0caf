/* kernels/cpu/kern_rope.c - 3-axis rotary position embedding (spec 3.3).
 *
 * Pairs are adjacent reals (x[2j], x[2j+1]) = (re, im), rotated by the angle of their axis'
 * position: frame for the first split[0] pairs, row for the next split[1], column for the last
 * split[2]. The (cos, sin) table is built once per model (model/wan_dit.c). Mirrors SR
 * transformer.py rope_apply (complex multiply by freqs_i).
 */
#include "kernels/cpu/kern_cpu.h"

void kern_rope3d_cpu(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
                     int64_t token_offset, const struct tensor *freqs, const int split[3]) {
    const int64_t l = x->shape[0];
    const int64_t dh = x->shape[1] / n_heads, pairs = dh / 2;
    const int64_t hp = grid[1], wp = grid[2];
    const float *tab = freqs->data; /* [P, pairs, 2] contiguous */
    const int64_t tab_row = pairs * 2;
    const int nt = kern_cpu_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < l; i++) {
        const int64_t t = i + token_offset;
        const int64_t pos[3] = {t / (hp * wp), (t / wp) % hp, t % wp};
        /* Gather this token's (cos, sin) for every pair once and reuse it for all heads
         * (the dispatcher guarantees pairs <= ROPE_MAX_PAIRS). */
        float cs[2 * ROPE_MAX_PAIRS];
        int64_t j = 0;
        for (int a = 0; a < 3; a++) {
            const float *row = tab + pos[a] * tab_row;
            for (int64_t e = 0; e < split[a]; e++, j++) {
                cs[2 * j] = row[2 * j];
                cs[2 * j + 1] = row[2 * j + 1];
            }
        }
        float *xr = (float *)x->data + i * x->stride[0];
        for (int h = 0; h < n_heads; h++) {
            float *v = xr + h * dh;
            for (int64_t p = 0; p < pairs; p++) {
                float a = v[2 * p], b = v[2 * p + 1];
                float c = cs[2 * p], s = cs[2 * p + 1];
                v[2 * p] = a * c - b * s;
                v[2 * p + 1] = a * s + b * c;
            }
        }
    }
}

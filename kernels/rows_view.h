/* kernels/rows_view.h - the "rows" view every elementwise kernel walks (both backends).
 *
 * A 2-D tensor is [M, N] with its row stride; a contiguous tensor of any other rank is
 * [numel / last, last]; a 0-d tensor is [1, 1]. The dispatcher (kernels/ops.c) has already checked
 * that the tensor is rows or contiguous. A single row may carry any stride; it gets a sane one.
 */
#ifndef REELFARM_KERNELS_ROWS_VIEW_H
#define REELFARM_KERNELS_ROWS_VIEW_H

#include <stdint.h>

#include "core/cdefs.h"
#include "core/tensor.h"

RF_BEGIN_DECLS

struct rows_view {
    int64_t m, n, ld;
    float *data;
};

static inline struct rows_view rows_view_of(const struct tensor *t) {
    struct rows_view r;
    r.data = (float *)t->data;
    if (t->ndim == 2) {
        r.m = t->shape[0];
        r.n = t->shape[1];
        r.ld = t->stride[0];
    } else if (t->ndim == 0) {
        r.m = 1, r.n = 1, r.ld = 1;
    } else {
        r.n = t->shape[t->ndim - 1];
        r.m = r.n ? tensor_numel(t) / r.n : 0;
        r.ld = r.n;
    }
    if (r.m <= 1 && r.ld < r.n) r.ld = r.n;
    return r;
}

RF_END_DECLS

#endif /* REELFARM_KERNELS_ROWS_VIEW_H */

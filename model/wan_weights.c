/* model/wan_weights.c - declaring the DiT's tensors from the name table (spec 2.3). */
#include "model/wan_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static void decl_fill(struct weight_decl *d, const char *prefix, const char *dname, const char *oname, int ndim,
                      int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4, struct tensor *slot) {
    snprintf(d->name[WAN_NAMING_DIFFUSERS], sizeof d->name[0], "%s%s", prefix, dname);
    snprintf(d->name[WAN_NAMING_ORIGINAL], sizeof d->name[1], "%s%s", prefix, oname);
    const int64_t dims[5] = {d0, d1, d2, d3, d4};
    d->ndim = ndim;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) d->shape[i] = i < ndim ? dims[i] : 0;
    d->slot = slot;
}

int wan_weights_declare(const struct wan_config *c, struct wan_weights *w, struct weight_decl **decls,
                        size_t *count) {
    size_t cap = 64 + (size_t)c->num_layers * 40, n = 0;
    struct weight_decl *list = calloc(cap, sizeof *list);
    if (!list) return err_set(ERR_NOMEM, "out of memory declaring %zu tensors", cap);

#define WAN_DECL_GLOBAL(field, dname, oname, present, ndim, d0, d1, d2, d3, d4)                                 \
    if (present(c)) decl_fill(&list[n++], "", dname, oname, ndim, d0, d1, d2, d3, d4, &w->field);
    WAN_GLOBAL_TENSORS(WAN_DECL_GLOBAL)
#undef WAN_DECL_GLOBAL

    for (int64_t i = 0; i < c->num_layers; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "blocks.%lld.", (long long)i);
        struct wan_block_weights *b = &w->blocks[i];
#define WAN_DECL_BLOCK(field, dname, oname, present, ndim, d0, d1, d2, d3, d4)                                  \
    if (present(c)) decl_fill(&list[n++], prefix, dname, oname, ndim, d0, d1, d2, d3, d4, &b->field);
        WAN_BLOCK_TENSORS(WAN_DECL_BLOCK)
#undef WAN_DECL_BLOCK
    }
    CHECK(n <= cap, "tensor table overflow");
    *decls = list;
    *count = n;
    return ERR_OK;
}

/* model/weight_table.c - strict checkpoint binding shared by the DiT and the text encoder. */
#include "model/weight_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "io/fs.h"
#include "io/safetensors.h"

static int name_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* " and 3 more" when count > 1, else "". */
static const char *and_more(char *buf, size_t cap, size_t count) {
    if (count > 1)
        snprintf(buf, cap, " and %zu more", count - 1);
    else
        buf[0] = '\0';
    return buf;
}

static bool dtype_loadable(enum dtype dt) { return dt == DTYPE_F32 || dt == DTYPE_BF16 || dt == DTYPE_F16; }

int weights_bind(const struct st_set *st, struct weight_decl *decls, size_t n, int naming,
                 bool (*allowed_extra)(const char *name), const char *where, const char *config_path,
                 struct weights_summary *summary) {
    char more[48], se[96], sf[96];
    memset(summary, 0, sizeof *summary);
    /* 1. every declared tensor present, loadable, with the expected shape */
    size_t missing = 0, first_missing = 0;
    for (size_t i = 0; i < n; i++)
        if (!st_find(st, decls[i].name[naming]) && missing++ == 0) first_missing = i;
    if (missing) {
        const struct weight_decl *d = &decls[first_missing];
        return err_set(ERR_MISSING, "%s: missing tensor '%s' (expected shape %s)%s", where, d->name[naming],
                       shape_str(se, sizeof se, d->ndim, d->shape), and_more(more, sizeof more, missing));
    }
    int64_t dtype_count[DTYPE_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        const struct weight_decl *d = &decls[i];
        const struct st_tensor *t = st_find(st, d->name[naming]);
        if (t->ndim != d->ndim || memcmp(t->shape, d->shape, (size_t)d->ndim * sizeof(int64_t)) != 0)
            return err_set(ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", t->file, d->name[naming],
                           shape_str(sf, sizeof sf, t->ndim, t->shape), shape_str(se, sizeof se, d->ndim, d->shape));
        if (!dtype_loadable(t->dtype))
            return err_set(ERR_UNSUPPORTED, "%s: tensor '%s' is %s; expected f32, bf16 or f16", t->file,
                           d->name[naming], dtype_name(t->dtype));
        const int64_t numel = (int64_t)(t->nbytes / dtype_size(t->dtype));
        dtype_count[t->dtype] += numel;
        summary->n_params += numel;
    }
    /* 2. nothing undeclared in the files */
    const char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) sorted[i] = decls[i].name[naming];
    qsort(sorted, n, sizeof *sorted, name_cmp);
    size_t unexpected = 0;
    const struct st_tensor *first_unexpected = NULL;
    for (size_t i = 0; i < st_count(st); i++) {
        const struct st_tensor *t = st_at(st, i);
        if (bsearch(&t->name, sorted, n, sizeof *sorted, name_cmp)) continue;
        if (allowed_extra && allowed_extra(t->name)) {
            LOG_DEBUG("%s: ignoring tensor '%s' (upstream ignores it too)", t->file, t->name);
            continue;
        }
        if (unexpected++ == 0) first_unexpected = t;
    }
    free(sorted);
    if (unexpected)
        return err_set(ERR_UNEXPECTED, "%s: unexpected tensor '%s' (not declared by the config %s)%s",
                       first_unexpected->file, first_unexpected->name, config_path,
                       and_more(more, sizeof more, unexpected));
    /* 3. bind: the stored data in place */
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_find(st, decls[i].name[naming]);
        *decls[i].slot = tensor_make(t->dtype, DEVICE_CPU, (void *)t->data, decls[i].ndim, decls[i].shape);
        decls[i].slot->name = t->name;
    }
    int best = DTYPE_F32;
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_count[i] > dtype_count[best]) best = i;
    summary->stored_dtype = (enum dtype)best;
    summary->n_tensors = (int64_t)n;
    return ERR_OK;
}

bool weight_is_f32_ready(const struct tensor *t) { return t->dtype == DTYPE_F32 && ((uintptr_t)t->data & 3u) == 0; }

size_t weights_f32_bytes(const struct weight_decl *decls, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (!weight_is_f32_ready(decls[i].slot)) bytes += arena_round((size_t)tensor_numel(decls[i].slot) * sizeof(float));
    return bytes;
}

void weight_copy_f32(float *dst, const struct tensor *src) {
    if (!tensor_is_contiguous(src)) { /* a column slice (tensor parallelism): row by row */
        CHECK(src->ndim == 2, "weight_copy_f32: strided %d-D tensor", src->ndim);
        for (int64_t r = 0; r < src->shape[0]; r++) {
            struct tensor row = tensor_row(src, r);
            weight_copy_f32(dst + r * src->shape[1], &row);
        }
        return;
    }
    const size_t numel = (size_t)tensor_numel(src);
    if (src->dtype == DTYPE_F32)
        memcpy(dst, src->data, numel * sizeof(float)); /* also handles unaligned sources */
    else
        dtype_to_f32(dst, src->data, src->dtype, numel);
}

void weights_to_f32(struct weight_decl *decls, size_t n, struct arena *arena) {
    for (size_t i = 0; i < n; i++) {
        struct tensor *t = decls[i].slot;
        if (weight_is_f32_ready(t)) continue;
        float *dst = arena_alloc_f32(arena, (size_t)tensor_numel(t));
        weight_copy_f32(dst, t);
        const char *name = t->name;
        *t = tensor_make(DTYPE_F32, DEVICE_CPU, dst, t->ndim, t->shape);
        t->name = name;
    }
}

int weights_open_dir(const char *wdir, struct st_set **st, char *where, size_t cap) {
    char **names = NULL;
    size_t n = 0;
    TRY(fs_list_dir(wdir, ".safetensors.index.json", &names, &n));
    int rc;
    if (n == 1) {
        rc = fs_join(where, cap, wdir, names[0]);
        fs_free_list(&names, &n);
        return rc < 0 ? rc : st_open(st, where);
    }
    const bool several = n > 1;
    fs_free_list(&names, &n);
    if (several) return err_set(ERR_FORMAT, "%s: several safetensors index files; expected one", wdir);
    TRY(fs_list_dir(wdir, ".safetensors", &names, &n));
    if (n == 0) {
        fs_free_list(&names, &n);
        return err_set(ERR_MISSING, "%s: no *.safetensors weights", wdir);
    }
    char **paths = calloc(n, sizeof *paths);
    rc = paths ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        char full[1200];
        rc = fs_join(full, sizeof full, wdir, names[i]);
        if (rc == ERR_OK && !(paths[i] = strdup(full))) rc = err_set(ERR_NOMEM, "out of memory");
    }
    if (rc == ERR_OK) {
        snprintf(where, cap, "%s", n == 1 ? paths[0] : wdir);
        rc = st_open_files(st, (const char *const *)paths, n);
    }
    for (size_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
    fs_free_list(&names, &n);
    return rc;
}

/* io/safetensors.c - the safetensors reader (mmap, every header field validated) and writer.
 *
 * Reader: each file is mapped read-only; its header is copied out, parsed by cJSON (json_parse:
 * positioned syntax errors, no NUL bytes, nothing after the object), then every entry is checked
 * before any pointer into the mapping is formed. Offsets are checked against the data area in
 * 64-bit arithmetic, byte counts are overflow-checked, and the tensors of each file must tile its
 * data area exactly (sorted by offset, each begins where the previous ended, the last ends at the
 * end of the file), which is what the reference Metadata::validate() requires; overlaps are
 * reported as such. Several files (or the shards of an index) are merged into one name-sorted
 * array searched with bsearch.
 *
 * Writer: mirrors safetensors' prepare()/serialize(): descending dtype rank then name, offsets
 * packed, header padded with spaces to a multiple of 8. Integers are emitted as raw JSON digits
 * (cJSON_CreateRaw) so that no offset can come out in exponent notation.
 *
 * Not here: dtype conversion, model tensor names, shape checks against a config.
 */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_util.h"

/* ---- types ---- */

struct st_meta_kv {
    char *key;
    char *value;
    size_t seq; /* insertion order across files: the first file's value wins on merge */
};

struct st_file {
    char *path;
    const uint8_t *map;  /* [size] the whole file, PROT_READ; NULL until mapped */
    uint64_t size;       /* file size in bytes */
    uint64_t data_start; /* 8 + header length */
};

struct st_set {
    struct st_file *files; /* [n_files] */
    size_t n_files;
    struct st_tensor *tensors; /* [n_tensors] sorted by name; names owned */
    size_t n_tensors, cap_tensors;
    struct st_meta_kv *meta; /* [n_meta] sorted by key after open */
    size_t n_meta, cap_meta;
};

/* ---- dtypes ---- */

static const struct {
    const char *name;
    enum dtype dtype;
    int rank; /* position in the reference Dtype enum (U8 < F16 < BF16 < I32 < F32 < F64 < I64) */
} st_dtypes[] = {
    {"U8", DTYPE_U8, 1},   {"F16", DTYPE_F16, 2}, {"BF16", DTYPE_BF16, 3}, {"I32", DTYPE_I32, 4},
    {"F32", DTYPE_F32, 5}, {"F64", DTYPE_F64, 6}, {"I64", DTYPE_I64, 7},
};
enum { ST_N_DTYPES = sizeof st_dtypes / sizeof st_dtypes[0] };

/* Valid safetensors dtypes that reelfarm does not read. */
static const char *const st_dtypes_unsupported[] = {
    "BOOL", "I8", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
};

const char *st_dtype_name(enum dtype dt) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (st_dtypes[i].dtype == dt) return st_dtypes[i].name;
    return "?";
}

static int st_dtype_rank(enum dtype dt) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (st_dtypes[i].dtype == dt) return st_dtypes[i].rank;
    return 0;
}

static bool st_dtype_valid(int dt) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if ((int)st_dtypes[i].dtype == dt) return true;
    return false;
}

/* ---- small helpers ---- */

static uint64_t st_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static const char *st_basename(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int st_cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int st_cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int st_cmp_key_tensor(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const struct st_tensor *)elem)->name);
}

static int st_cmp_meta(const void *a, const void *b) {
    const struct st_meta_kv *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* By offset, then by size (an empty tensor at p sorts before a non-empty one at p). */
static int st_cmp_tensor_offset(const void *a, const void *b) {
    const struct st_tensor *x = *(const struct st_tensor *const *)a, *y = *(const struct st_tensor *const *)b;
    if (x->file_offset != y->file_offset) return x->file_offset < y->file_offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static int st_reserve_tensors(struct st_set *s, size_t extra) {
    if (s->cap_tensors - s->n_tensors >= extra) return 0;
    size_t cap = s->cap_tensors ? s->cap_tensors : 64;
    while (cap - s->n_tensors < extra) cap *= 2;
    struct st_tensor *t = realloc(s->tensors, cap * sizeof *t);
    if (!t) return json_err_set(ERR_NOMEM, "out of memory for %zu tensor descriptors", cap);
    s->tensors = t;
    s->cap_tensors = cap;
    return 0;
}

static int st_add_meta(struct st_set *s, const char *key, const char *value) {
    if (s->n_meta == s->cap_meta) {
        size_t cap = s->cap_meta ? s->cap_meta * 2 : 8;
        struct st_meta_kv *m = realloc(s->meta, cap * sizeof *m);
        if (!m) return json_err_set(ERR_NOMEM, "out of memory for metadata");
        s->meta = m;
        s->cap_meta = cap;
    }
    struct st_meta_kv *kv = &s->meta[s->n_meta];
    kv->key = strdup(key);
    kv->value = strdup(value);
    kv->seq = s->n_meta;
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        return json_err_set(ERR_NOMEM, "out of memory for metadata");
    }
    s->n_meta++;
    return 0;
}

/* ---- reading one file ---- */

static int st_parse_metadata(struct st_set *s, const char *path, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return json_err_set(ERR_FORMAT, "%s: __metadata__ must be an object of strings, found %s", path,
                            json_type_name(m));
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return json_err_set(ERR_FORMAT, "%s: __metadata__ entry \"%s\" must be a string, found %s", path, c->string,
                                json_type_name(c));
        int ret = st_add_meta(s, c->string, c->valuestring);
        if (ret < 0) return ret;
    }
    return 0;
}

/* Validate one header entry and fill t (t->name is set last, so a failure leaves nothing owned). */
static int st_parse_entry(const struct st_file *f, const cJSON *e, struct st_tensor *t) {
    static const char *const entry_keys[] = {"dtype", "shape", "data_offsets"};
    const char *path = f->path;
    const char *name = e->string;
    uint64_t data_len = f->size - f->data_start;
    char ctx[PATH_MAX + 320];
    char sbuf[160];
    int ret;

    snprintf(ctx, sizeof ctx, "%s: tensor \"%s\"", path, name);
    if (!cJSON_IsObject(e))
        return json_err_set(ERR_FORMAT, "%s: entry must be a JSON object, found %s", ctx, json_type_name(e));
    ret = json_check_keys(e, ctx, entry_keys, 3);
    if (ret < 0) return ret;
    for (int k = 0; k < 3; k++)
        if (!json_has(e, entry_keys[k])) return json_err_set(ERR_FORMAT, "%s: entry has no \"%s\"", ctx, entry_keys[k]);

    /* dtype */
    const char *dts;
    ret = json_get_str(e, "dtype", ctx, &dts);
    if (ret < 0) return ret;
    int dt = -1;
    for (int i = 0; i < ST_N_DTYPES && dt < 0; i++)
        if (!strcmp(dts, st_dtypes[i].name)) dt = (int)st_dtypes[i].dtype;
    if (dt < 0) {
        for (size_t i = 0; i < sizeof st_dtypes_unsupported / sizeof st_dtypes_unsupported[0]; i++)
            if (!strcmp(dts, st_dtypes_unsupported[i]))
                return json_err_set(ERR_UNSUPPORTED,
                                    "%s: unsupported dtype %s (reelfarm reads F32, BF16, F16, F64, I64, I32, U8)", ctx,
                                    dts);
        return json_err_set(ERR_UNSUPPORTED, "%s: unknown dtype \"%s\"", ctx, dts);
    }

    /* shape */
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(sh))
        return json_err_set(ERR_FORMAT, "%s: shape must be an array of non-negative integers, found %s", ctx,
                            json_type_name(sh));
    int ndim = 0;
    for (const cJSON *c = sh->child; c; c = c->next) ndim++;
    if (ndim > TENSOR_MAX_DIMS)
        return json_err_set(ERR_UNSUPPORTED, "%s: shape has %d dimensions, more than the %d supported", ctx, ndim,
                            TENSOR_MAX_DIMS);
    int64_t shape[TENSOR_MAX_DIMS] = {0};
    int d = 0;
    for (const cJSON *c = sh->child; c; c = c->next, d++) {
        if (json_number_as_i64(c, &shape[d]) && shape[d] >= 0) continue;
        if (cJSON_IsNumber(c))
            return json_err_set(ERR_FORMAT, "%s: shape[%d] must be a non-negative integer, found %.17g", ctx, d,
                                c->valuedouble);
        return json_err_set(ERR_FORMAT, "%s: shape[%d] must be a non-negative integer, found %s", ctx, d,
                            json_type_name(c));
    }

    /* data_offsets */
    int64_t off[2];
    ret = json_get_i64_array(e, "data_offsets", ctx, off, 2);
    if (ret < 0) return ret;
    if (off[0] < 0 || off[1] < off[0])
        return json_err_set(ERR_FORMAT, "%s: data_offsets [%" PRId64 ", %" PRId64 "] must satisfy 0 <= begin <= end",
                            ctx, off[0], off[1]);
    if ((uint64_t)off[1] > data_len)
        return json_err_set(ERR_FORMAT,
                            "%s: data_offsets [%" PRId64 ", %" PRId64 ") run past the end of the data area (%" PRIu64
                            " bytes; file truncated?)",
                            ctx, off[0], off[1], data_len);

    /* byte size, overflow-checked */
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
            return json_err_set(ERR_FORMAT, "%s: shape %s overflows a 64-bit element count", ctx,
                                shape_str(sbuf, sizeof sbuf, ndim, shape));
    if (__builtin_mul_overflow(numel, (uint64_t)dtype_size((enum dtype)dt), &nbytes))
        return json_err_set(ERR_FORMAT, "%s: shape %s of %s overflows a 64-bit byte count", ctx,
                            shape_str(sbuf, sizeof sbuf, ndim, shape), dts);
    uint64_t held = (uint64_t)(off[1] - off[0]);
    if (nbytes != held)
        return json_err_set(ERR_FORMAT,
                            "%s: shape %s of %s needs %" PRIu64 " bytes but data_offsets [%" PRId64 ", %" PRId64
                            ") hold %" PRIu64,
                            ctx, shape_str(sbuf, sizeof sbuf, ndim, shape), dts, nbytes, off[0], off[1], held);

    memset(t, 0, sizeof *t);
    t->dtype = (enum dtype)dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof shape);
    t->file_offset = f->data_start + (uint64_t)off[0];
    t->data = f->map + t->file_offset;
    t->nbytes = (size_t)nbytes;
    t->file = f->path;
    t->name = strdup(name);
    if (!t->name) return json_err_set(ERR_NOMEM, "%s: out of memory", ctx);
    return 0;
}

/* The tensors of one file must tile its data area exactly, in offset order. */
static int st_check_layout(const struct st_file *f, struct st_tensor *tensors, size_t n) {
    int ret = 0;
    const struct st_tensor **ord = NULL;
    uint64_t ds = f->data_start;

    if (n > 0) {
        ord = malloc(n * sizeof *ord);
        if (!ord) return json_err_set(ERR_NOMEM, "%s: out of memory", f->path);
        for (size_t i = 0; i < n; i++) ord[i] = &tensors[i];
        qsort(ord, n, sizeof *ord, st_cmp_tensor_offset);
    }
    /* Overlaps first (the more telling error: two tensors sharing bytes), then gaps. */
    uint64_t pos = ds;
    const struct st_tensor *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = ord[i];
        if (t->file_offset < pos) {
            ret = json_err_set(ERR_FORMAT,
                               "%s: overlapping data offsets: \"%s\" [%" PRIu64 ", %" PRIu64 ") and \"%s\" [%" PRIu64
                               ", %" PRIu64 ")",
                               f->path, prev->name, prev->file_offset - ds, prev->file_offset - ds + prev->nbytes,
                               t->name, t->file_offset - ds, t->file_offset - ds + t->nbytes);
            goto end;
        }
        if (t->file_offset + t->nbytes > pos) pos = t->file_offset + t->nbytes, prev = t;
    }
    pos = ds;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = ord[i];
        if (t->file_offset > pos) {
            ret = json_err_set(ERR_FORMAT,
                               "%s: bytes [%" PRIu64 ", %" PRIu64
                               ") of the data area belong to no tensor (gap before \"%s\")",
                               f->path, pos - ds, t->file_offset - ds, t->name);
            goto end;
        }
        pos = t->file_offset + t->nbytes;
    }
    if (pos != f->size) {
        ret = json_err_set(ERR_FORMAT,
                           "%s: %" PRIu64
                           " trailing bytes after the last tensor belong to no tensor (data area is %" PRIu64 " bytes)",
                           f->path, f->size - pos, f->size - ds);
        goto end;
    }

end:
    free(ord);
    return ret;
}

static int st_file_load(struct st_set *s, struct st_file *f, const char *path) {
    int ret = 0;
    int fd = -1;
    char *hdr = NULL;
    cJSON *root = NULL;
    const char **keys = NULL;
    size_t first = s->n_tensors;
    char what[PATH_MAX + 16];
    struct stat st;

    f->path = strdup(path);
    if (!f->path) {
        ret = json_err_set(ERR_NOMEM, "%s: out of memory", path);
        goto end;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = json_err_set(ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto end;
    }
    if (fstat(fd, &st) != 0) {
        ret = json_err_set(ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto end;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = json_err_set(ERR_IO, "%s: not a regular file", path);
        goto end;
    }
    if ((uint64_t)st.st_size < 8) {
        ret = json_err_set(ERR_FORMAT, "%s: file is %lld bytes, shorter than the 8-byte header length (truncated?)",
                           path, (long long)st.st_size);
        goto end;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        ret = json_err_set(ERR_UNSUPPORTED, "%s: file is too large to map", path);
        goto end;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        ret = json_err_set(ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto end;
    }
    f->map = m;
    f->size = (uint64_t)st.st_size;

    uint64_t hlen = st_le64(f->map);
    if (hlen > ST_HEADER_MAX) {
        ret = json_err_set(ERR_FORMAT,
                           "%s: header length %" PRIu64 " is over the %" PRIu64 " MiB limit (not a safetensors file?)",
                           path, hlen, ST_HEADER_MAX >> 20);
        goto end;
    }
    if (hlen > f->size - 8) {
        ret =
            json_err_set(ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                         path, hlen, f->size);
        goto end;
    }
    f->data_start = 8 + hlen;

    /* Parse a NUL-terminated private copy: cJSON never sees the mapping. */
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        ret = json_err_set(ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes for the header", path, hlen + 1);
        goto end;
    }
    memcpy(hdr, f->map + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    snprintf(what, sizeof what, "%s: header", path);
    ret = json_parse(hdr, (size_t)hlen, what, &root);
    if (ret < 0) goto end;
    if (!cJSON_IsObject(root)) {
        ret = json_err_set(ERR_FORMAT, "%s: header is not a JSON object (found %s)", path, json_type_name(root));
        goto end;
    }

    /* Duplicate names first: cJSON keeps both entries and would find only the first. */
    size_t n_keys = 0;
    for (const cJSON *c = root->child; c; c = c->next) n_keys++;
    if (n_keys > 0) {
        keys = malloc(n_keys * sizeof *keys);
        if (!keys) {
            ret = json_err_set(ERR_NOMEM, "%s: out of memory", path);
            goto end;
        }
        size_t k = 0;
        for (const cJSON *c = root->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
        qsort(keys, n_keys, sizeof *keys, st_cmp_str_ptr);
        for (size_t i = 1; i < n_keys; i++) {
            if (strcmp(keys[i - 1], keys[i]) != 0) continue;
            if (!strcmp(keys[i], "__metadata__"))
                ret = json_err_set(ERR_FORMAT, "%s: duplicate __metadata__ entry", path);
            else
                ret = json_err_set(ERR_FORMAT, "%s: duplicate tensor name \"%s\"", path, keys[i]);
            goto end;
        }
    }
    ret = json_check_unique_keys(root, what);
    if (ret < 0) goto end;

    ret = st_reserve_tensors(s, n_keys);
    if (ret < 0) goto end;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c->string && !strcmp(c->string, "__metadata__")) {
            ret = st_parse_metadata(s, path, c);
        } else {
            ret = st_parse_entry(f, c, &s->tensors[s->n_tensors]);
            if (ret == 0) s->n_tensors++;
        }
        if (ret < 0) goto end;
    }
    ret = st_check_layout(f, s->tensors + first, s->n_tensors - first);

end:
    if (fd >= 0) close(fd);
    free(keys);
    cJSON_Delete(root);
    free(hdr);
    return ret;
}

/* ---- sets ---- */

void st_close(struct st_set **sp) {
    if (!sp || !*sp) return;
    struct st_set *s = *sp;
    for (size_t i = 0; i < s->n_files; i++) {
        struct st_file *f = &s->files[i];
        if (f->map) munmap((void *)f->map, (size_t)f->size);
        free(f->path);
    }
    free(s->files);
    for (size_t i = 0; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
    free(s->tensors);
    for (size_t i = 0; i < s->n_meta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].value);
    }
    free(s->meta);
    free(s);
    *sp = NULL;
}

int st_open_files(struct st_set **out, const char *const *paths, size_t n) {
    int ret = 0;
    struct st_set *s = NULL;

    *out = NULL;
    if (n > 0 && !paths) return json_err_set(ERR_INVALID_ARG, "st_open_files: NULL path list");
    s = calloc(1, sizeof *s);
    if (s) s->files = calloc(n ? n : 1, sizeof *s->files);
    if (!s || !s->files) {
        ret = json_err_set(ERR_NOMEM, "out of memory opening %zu safetensors files", n);
        goto end;
    }
    for (size_t i = 0; i < n; i++) {
        if (!paths[i]) {
            ret = json_err_set(ERR_INVALID_ARG, "st_open_files: path %zu is NULL", i);
            goto end;
        }
        s->n_files = i + 1; /* so that st_close releases a partly loaded file */
        ret = st_file_load(s, &s->files[i], paths[i]);
        if (ret < 0) goto end;
    }

    if (s->n_tensors > 1) qsort(s->tensors, s->n_tensors, sizeof *s->tensors, st_cmp_tensor_name);
    for (size_t i = 1; i < s->n_tensors; i++) {
        const struct st_tensor *a = &s->tensors[i - 1], *b = &s->tensors[i];
        if (strcmp(a->name, b->name) == 0) { /* within one file this was caught already */
            ret = json_err_set(ERR_FORMAT, "tensor \"%s\" appears in both %s and %s", a->name, a->file, b->file);
            goto end;
        }
    }

    /* Merge metadata: sorted by key, first file wins. */
    if (s->n_meta > 1) qsort(s->meta, s->n_meta, sizeof *s->meta, st_cmp_meta);
    size_t k = 0;
    for (size_t i = 0; i < s->n_meta; i++) {
        if (k > 0 && !strcmp(s->meta[k - 1].key, s->meta[i].key)) {
            free(s->meta[i].key);
            free(s->meta[i].value);
            continue;
        }
        s->meta[k++] = s->meta[i];
    }
    s->n_meta = k;

    *out = s;
    s = NULL;

end:
    st_close(&s);
    return ret;
}

/* A shard name must stay in the index's directory. */
static bool st_plain_name(const char *name) {
    if (!name || !*name || strchr(name, '/') || strstr(name, "..")) return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20) return false;
    return true;
}

/* Open the shards named by an index (names[i] lives in shards[i]) and check that the index and the
 * shards agree in both directions. Used by st_open() and, before writing, by st_write_index(). */
static int st_index_build(struct st_set **out, const char *index_path, const char *const *names,
                          const char *const *shards, size_t n) {
    int ret = 0;
    const char **uniq = NULL;
    char **paths = NULL;
    const char **sorted = NULL;
    size_t n_uniq = 0;
    struct st_set *s = NULL;
    char dir[PATH_MAX];
    char buf[PATH_MAX];

    *out = NULL;
    size_t plen = strlen(index_path);
    if (plen >= sizeof dir) {
        ret = json_err_set(ERR_INVALID_ARG, "path too long: %s", index_path);
        goto end;
    }
    memcpy(dir, index_path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    for (size_t i = 0; i < n; i++) {
        if (!st_plain_name(shards[i])) {
            ret =
                json_err_set(ERR_FORMAT,
                             "%s: weight_map entry \"%s\": shard name \"%s\" must be a plain file name in the index's "
                             "directory (no '/' or '..')",
                             index_path, names[i], shards[i]);
            goto end;
        }
    }

    /* Each shard once, in name order. */
    if (n > 0) {
        uniq = malloc(n * sizeof *uniq);
        sorted = malloc(n * sizeof *sorted);
        if (!uniq || !sorted) {
            ret = json_err_set(ERR_NOMEM, "%s: out of memory", index_path);
            goto end;
        }
        memcpy(uniq, shards, n * sizeof *uniq);
        memcpy(sorted, names, n * sizeof *sorted);
        qsort(uniq, n, sizeof *uniq, st_cmp_str_ptr);
        qsort(sorted, n, sizeof *sorted, st_cmp_str_ptr);
        for (size_t i = 0; i < n; i++)
            if (n_uniq == 0 || strcmp(uniq[n_uniq - 1], uniq[i]) != 0) uniq[n_uniq++] = uniq[i];
        for (size_t i = 1; i < n; i++) {
            if (!strcmp(sorted[i - 1], sorted[i])) {
                ret = json_err_set(ERR_FORMAT, "%s: weight_map lists tensor \"%s\" twice", index_path, sorted[i]);
                goto end;
            }
        }
    }
    paths = calloc(n_uniq ? n_uniq : 1, sizeof *paths);
    if (!paths) {
        ret = json_err_set(ERR_NOMEM, "%s: out of memory", index_path);
        goto end;
    }
    for (size_t j = 0; j < n_uniq; j++) {
        ret = fs_join(buf, sizeof buf, dir, uniq[j]);
        if (ret < 0) goto end;
        if (!fs_exists(buf)) {
            ret = json_err_set(ERR_MISSING, "%s: weight_map names shard \"%s\", which does not exist (%s)", index_path,
                               uniq[j], buf);
            goto end;
        }
        paths[j] = strdup(buf);
        if (!paths[j]) {
            ret = json_err_set(ERR_NOMEM, "%s: out of memory", index_path);
            goto end;
        }
    }
    ret = st_open_files(&s, (const char *const *)paths, n_uniq);
    if (ret < 0) {
        err_wrap("%s: ", index_path);
        goto end;
    }

    /* Every weight_map entry is in the shard it names... */
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_find(s, names[i]);
        const char **hit = bsearch(&shards[i], uniq, n_uniq, sizeof *uniq, st_cmp_str_ptr);
        CHECK(hit != NULL, "shard \"%s\" missing from its own list", shards[i]);
        const char *want = s->files[hit - uniq].path;
        if (!t) {
            ret = json_err_set(ERR_MISSING,
                               "%s: weight_map lists tensor \"%s\" in shard \"%s\", but that shard has no such tensor",
                               index_path, names[i], shards[i]);
            goto end;
        }
        if (t->file != want) {
            ret = json_err_set(ERR_MISSING,
                               "%s: weight_map lists tensor \"%s\" in shard \"%s\", but it is in shard \"%s\"",
                               index_path, names[i], shards[i], st_basename(t->file));
            goto end;
        }
    }
    /* ...and every tensor of every shard is listed. */
    for (size_t i = 0; i < s->n_tensors; i++) {
        const struct st_tensor *t = &s->tensors[i];
        if (!bsearch(&t->name, sorted, n, sizeof *sorted, st_cmp_str_ptr)) {
            ret = json_err_set(ERR_UNEXPECTED, "%s: tensor \"%s\" is not listed in the index %s", t->file, t->name,
                               index_path);
            goto end;
        }
    }
    *out = s;
    s = NULL;

end:
    st_close(&s);
    if (paths)
        for (size_t j = 0; j < n_uniq; j++) free(paths[j]);
    free(paths);
    free(sorted);
    free(uniq);
    return ret;
}

static int st_open_index(struct st_set **out, const char *path) {
    static const char *const top_keys[] = {"metadata", "weight_map"};
    int ret = 0;
    cJSON *root = NULL;
    const char **names = NULL, **shards = NULL;

    *out = NULL;
    ret = json_read_file(path, &root);
    if (ret < 0) goto end;
    ret = json_check_keys(root, path, top_keys, 2);
    if (ret < 0) goto end;
    if (json_has(root, "metadata")) {
        const cJSON *meta;
        ret = json_get_object(root, "metadata", path, &meta);
        if (ret < 0) goto end;
    }
    const cJSON *wm;
    ret = json_get_object(root, "weight_map", path, &wm);
    if (ret < 0) goto end;
    size_t n = 0;
    for (const cJSON *c = wm->child; c; c = c->next) n++;
    names = calloc(n ? n : 1, sizeof *names);
    shards = calloc(n ? n : 1, sizeof *shards);
    if (!names || !shards) {
        ret = json_err_set(ERR_NOMEM, "%s: out of memory", path);
        goto end;
    }
    size_t i = 0;
    for (const cJSON *c = wm->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            ret = json_err_set(ERR_FORMAT, "%s: weight_map entry \"%s\" must be a shard file name (a string), found %s",
                               path, c->string, json_type_name(c));
            goto end;
        }
        names[i] = c->string;
        shards[i] = c->valuestring;
    }
    ret = st_index_build(out, path, names, shards, n);

end:
    free(names);
    free(shards);
    cJSON_Delete(root);
    return ret;
}

int st_open(struct st_set **out, const char *path) {
    *out = NULL;
    if (!path || !*path) return json_err_set(ERR_INVALID_ARG, "st_open: empty path");
    size_t len = strlen(path);
    if (len >= 5 && !strcmp(path + len - 5, ".json")) return st_open_index(out, path);
    return st_open_files(out, &path, 1);
}

size_t st_count(const struct st_set *s) { return s ? s->n_tensors : 0; }

const struct st_tensor *st_at(const struct st_set *s, size_t i) {
    CHECK(s && i < s->n_tensors, "tensor index %zu out of range (%zu tensors)", i, s ? s->n_tensors : 0);
    return &s->tensors[i];
}

const struct st_tensor *st_find(const struct st_set *s, const char *name) {
    if (!s || !name || s->n_tensors == 0) return NULL;
    return bsearch(name, s->tensors, s->n_tensors, sizeof *s->tensors, st_cmp_key_tensor);
}

const char *st_metadata(const struct st_set *s, const char *key) {
    if (!s || !key) return NULL;
    for (size_t i = 0; i < s->n_meta; i++)
        if (!strcmp(s->meta[i].key, key)) return s->meta[i].value;
    return NULL;
}

size_t st_metadata_count(const struct st_set *s) { return s ? s->n_meta : 0; }

void st_metadata_at(const struct st_set *s, size_t i, const char **key, const char **value) {
    CHECK(s && i < s->n_meta, "metadata index %zu out of range (%zu entries)", i, s ? s->n_meta : 0);
    if (key) *key = s->meta[i].key;
    if (value) *value = s->meta[i].value;
}

size_t st_file_count(const struct st_set *s) { return s ? s->n_files : 0; }

const char *st_file_path(const struct st_set *s, size_t i) {
    CHECK(s && i < s->n_files, "file index %zu out of range (%zu files)", i, s ? s->n_files : 0);
    return s->files[i].path;
}

uint64_t st_file_size(const struct st_set *s, size_t i) {
    CHECK(s && i < s->n_files, "file index %zu out of range (%zu files)", i, s ? s->n_files : 0);
    return s->files[i].size;
}

/* ---- writer ---- */

struct st_write_ref {
    const struct st_write_item *item;
    uint64_t nbytes;
};

static int st_cmp_write_name(const void *a, const void *b) {
    return strcmp(((const struct st_write_ref *)a)->item->name, ((const struct st_write_ref *)b)->item->name);
}

/* The reference writer's order: descending dtype rank, then name. */
static int st_cmp_write_order(const void *a, const void *b) {
    const struct st_write_item *x = ((const struct st_write_ref *)a)->item, *y = ((const struct st_write_ref *)b)->item;
    int rx = st_dtype_rank(x->dtype), ry = st_dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

/* Add a raw integer (digits, never exponent notation) to a cJSON array. */
static bool st_add_raw_u64(cJSON *arr, uint64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    cJSON *it = cJSON_CreateRaw(num);
    if (!it) return false;
    cJSON_AddItemToArray(arr, it);
    return true;
}

int st_write(const char *path, const struct st_write_item *items, size_t n, const char *const *metadata_kv, size_t n_kv,
             bool overwrite) {
    int ret = 0;
    int fd = -1;
    struct st_write_ref *refs = NULL;
    size_t *kv_order = NULL;
    cJSON *root = NULL;
    char *text = NULL;
    char tmp[PATH_MAX];
    tmp[0] = '\0';

    if (!path || !*path) return json_err_set(ERR_INVALID_ARG, "st_write: empty path");
    if ((n > 0 && !items) || (n_kv > 0 && !metadata_kv))
        return json_err_set(ERR_INVALID_ARG, "%s: st_write: NULL item or metadata list", path);

    /* Validate the items. */
    refs = malloc((n ? n : 1) * sizeof *refs);
    kv_order = malloc((n_kv ? n_kv : 1) * sizeof *kv_order);
    if (!refs || !kv_order) {
        ret = json_err_set(ERR_NOMEM, "%s: out of memory", path);
        goto end;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct st_write_item *it = &items[i];
        if (!it->name) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: item %zu has no name", path, i);
            goto end;
        }
        if (!strcmp(it->name, "__metadata__")) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: \"__metadata__\" is not a valid tensor name", path);
            goto end;
        }
        if (!st_dtype_valid((int)it->dtype)) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: tensor \"%s\": invalid dtype %d", path, it->name, (int)it->dtype);
            goto end;
        }
        if (it->ndim < 0 || it->ndim > TENSOR_MAX_DIMS) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: tensor \"%s\": ndim %d out of range 0..%d", path, it->name,
                               it->ndim, TENSOR_MAX_DIMS);
            goto end;
        }
        uint64_t numel = 1, nb;
        for (int d = 0; d < it->ndim; d++) {
            if (it->shape[d] < 0 || (double)it->shape[d] > JSON_INT_EXACT_MAX ||
                __builtin_mul_overflow(numel, (uint64_t)it->shape[d], &numel)) {
                ret = json_err_set(ERR_INVALID_ARG, "%s: tensor \"%s\": invalid extent %" PRId64 " in dim %d", path,
                                   it->name, it->shape[d], d);
                goto end;
            }
        }
        if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(it->dtype), &nb) ||
            __builtin_add_overflow(total, nb, &total) || (double)total > JSON_INT_EXACT_MAX || nb > SIZE_MAX) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: tensor \"%s\": byte count overflows", path, it->name);
            goto end;
        }
        if (nb > 0 && !it->data) {
            ret =
                json_err_set(ERR_INVALID_ARG, "%s: tensor \"%s\": NULL data for %" PRIu64 " bytes", path, it->name, nb);
            goto end;
        }
        refs[i].item = it;
        refs[i].nbytes = nb;
    }
    if (n > 1) qsort(refs, n, sizeof *refs, st_cmp_write_name);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(refs[i - 1].item->name, refs[i].item->name)) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: duplicate tensor name \"%s\"", path, refs[i].item->name);
            goto end;
        }
    }
    if (n > 1) qsort(refs, n, sizeof *refs, st_cmp_write_order);

    /* Metadata keys sorted (insertion sort: a handful of entries). */
    for (size_t i = 0; i < n_kv; i++) {
        if (!metadata_kv[2 * i] || !metadata_kv[2 * i + 1]) {
            ret = json_err_set(ERR_INVALID_ARG, "%s: metadata entry %zu has a NULL key or value", path, i);
            goto end;
        }
        size_t j = i;
        while (j > 0 && strcmp(metadata_kv[2 * kv_order[j - 1]], metadata_kv[2 * i]) > 0) {
            kv_order[j] = kv_order[j - 1];
            j--;
        }
        kv_order[j] = i;
    }
    for (size_t i = 1; i < n_kv; i++) {
        if (!strcmp(metadata_kv[2 * kv_order[i - 1]], metadata_kv[2 * kv_order[i]])) {
            ret =
                json_err_set(ERR_INVALID_ARG, "%s: duplicate metadata key \"%s\"", path, metadata_kv[2 * kv_order[i]]);
            goto end;
        }
    }

    /* The header. */
    root = cJSON_CreateObject();
    if (!root) goto nomem;
    if (n_kv > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) goto nomem;
        for (size_t i = 0; i < n_kv; i++)
            if (!cJSON_AddStringToObject(m, metadata_kv[2 * kv_order[i]], metadata_kv[2 * kv_order[i] + 1])) goto nomem;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct st_write_item *it = refs[i].item;
        cJSON *e = cJSON_AddObjectToObject(root, it->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(it->dtype))) goto nomem;
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        if (!sh) goto nomem;
        for (int d = 0; d < it->ndim; d++)
            if (!st_add_raw_u64(sh, (uint64_t)it->shape[d])) goto nomem;
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (!offs || !st_add_raw_u64(offs, off) || !st_add_raw_u64(offs, off + refs[i].nbytes)) goto nomem;
        off += refs[i].nbytes;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) goto nomem;
    size_t hlen = strlen(text);
    size_t padded = (hlen + 7) & ~(size_t)7;
    if (padded > ST_HEADER_MAX) {
        ret = json_err_set(ERR_INVALID_ARG, "%s: header would be %zu bytes, over the %" PRIu64 " MiB limit", path,
                           padded, ST_HEADER_MAX >> 20);
        goto end;
    }

    /* Refuse early (the commit refuses again, atomically, if the path appears meanwhile). */
    if (!overwrite && fs_exists(path)) {
        ret = json_err_set(ERR_EXISTS, "refusing to overwrite %s: it already exists", path);
        goto end;
    }
    ret = fs_temp_path(tmp, sizeof tmp, path);
    if (ret < 0) goto end;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        ret = json_err_set(ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        tmp[0] = '\0'; /* not ours */
        goto end;
    }
    uint8_t le[8];
    for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    char spaces[8];
    memset(spaces, ' ', sizeof spaces);
    ret = fs_write_all(fd, le, sizeof le, tmp);
    if (ret == 0) ret = fs_write_all(fd, text, hlen, tmp);
    if (ret == 0) ret = fs_write_all(fd, spaces, padded - hlen, tmp);
    for (size_t i = 0; i < n && ret == 0; i++)
        if (refs[i].nbytes) ret = fs_write_all(fd, refs[i].item->data, (size_t)refs[i].nbytes, tmp);
    if (ret < 0) goto end;
    if (fsync(fd) != 0) {
        ret = json_err_set(ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto end;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        ret = json_err_set(ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto end;
    }
    ret = fs_commit(tmp, path, overwrite);
    tmp[0] = '\0'; /* fs_commit removed it if it failed */
    goto end;

nomem:
    ret = json_err_set(ERR_NOMEM, "%s: out of memory building the header", path);
end:
    if (fd >= 0) close(fd);
    if (ret < 0 && tmp[0]) fs_remove_quiet(tmp);
    cJSON_free(text);
    cJSON_Delete(root);
    free(kv_order);
    free(refs);
    return ret;
}

int st_write_index(const char *index_path, const char *const *names, const char *const *files, size_t n,
                   bool overwrite) {
    int ret = 0;
    struct st_set *s = NULL;
    size_t *order = NULL;
    cJSON *root = NULL;
    char *text = NULL;
    char *buf = NULL;

    if (!index_path || !*index_path) return json_err_set(ERR_INVALID_ARG, "st_write_index: empty path");
    if (n > 0 && (!names || !files)) return json_err_set(ERR_INVALID_ARG, "%s: NULL name or file list", index_path);
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !files[i])
            return json_err_set(ERR_INVALID_ARG, "%s: entry %zu has a NULL name or file", index_path, i);
        if (!st_plain_name(files[i]))
            return json_err_set(ERR_INVALID_ARG, "%s: shard name \"%s\" must be a plain file name (no '/' or '..')",
                                index_path, files[i]);
    }
    if (!overwrite && fs_exists(index_path))
        return json_err_set(ERR_EXISTS, "refusing to overwrite %s: it already exists", index_path);

    /* The same checks a reader will make; also gives total_size. */
    ret = st_index_build(&s, index_path, names, files, n);
    if (ret < 0) goto end;
    uint64_t total = 0;
    for (size_t i = 0; i < s->n_tensors; i++) total += s->tensors[i].nbytes;

    order = malloc((n ? n : 1) * sizeof *order);
    if (!order) goto nomem;
    for (size_t i = 0; i < n; i++) order[i] = i;
    /* weight_map sorted by tensor name: names are unique (checked above), order by index sort. */
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && strcmp(names[order[j - 1]], names[v]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }

    root = cJSON_CreateObject();
    if (!root) goto nomem;
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    if (!meta) goto nomem;
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, total);
    if (!cJSON_AddRawToObject(meta, "total_size", num)) goto nomem;
    cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
    if (!wm) goto nomem;
    for (size_t i = 0; i < n; i++)
        if (!cJSON_AddStringToObject(wm, names[order[i]], files[order[i]])) goto nomem;
    text = cJSON_Print(root);
    if (!text) goto nomem;
    size_t len = strlen(text);
    buf = malloc(len + 1);
    if (!buf) goto nomem;
    memcpy(buf, text, len);
    buf[len++] = '\n';
    ret = fs_write_file(index_path, buf, len, overwrite);
    goto end;

nomem:
    ret = json_err_set(ERR_NOMEM, "%s: out of memory building the index", index_path);
end:
    free(buf);
    cJSON_free(text);
    cJSON_Delete(root);
    free(order);
    st_close(&s);
    return ret;
}



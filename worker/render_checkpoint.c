/* worker/render_checkpoint.c - checkpoint files, spools, hashes and the model fingerprint of a render
 * (see render_checkpoint.h). */
#include "worker/render_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/comm.h"
#include "core/error.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "parallel/comm_mpi.h"

#define CKPT_FORMAT "reelfarm-render-checkpoint"
#define CKPT_VERSION 1

uint64_t render_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void hex16(uint64_t h, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

static int parse_hex16(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || !end || *end || strlen(s) != 16) return -1;
    *out = v;
    return 0;
}

/* Hash [off, off + len) of an open file into h. */
static int hash_range(int fd, const char *path, off_t off, size_t len, uint64_t *h) {
    static char buf[1 << 16];
    while (len > 0) {
        const size_t want = len < sizeof buf ? len : sizeof buf;
        const ssize_t n = pread(fd, buf, want, off);
        if (n < 0) return err_set(ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (n == 0) break;
        *h = render_hash(*h, buf, (size_t)n);
        off += n, len -= (size_t)n;
    }
    return ERR_OK;
}

int render_hash_file(const char *path, char out[17]) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint64_t h = RENDER_HASH_INIT;
    int rc = fstat(fd, &st) == 0 ? hash_range(fd, path, 0, (size_t)st.st_size, &h) : err_set(ERR_IO, "%s: stat failed", path);
    close(fd);
    if (rc == ERR_OK) hex16(h, out);
    return rc;
}

static bool fingerprinted(const char *name) {
    const size_t n = strlen(name);
    const char *ext[] = {".json", ".safetensors", ".model"};
    for (size_t i = 0; i < 3; i++) {
        const size_t k = strlen(ext[i]);
        if (n > k && !strcmp(name + n - k, ext[i])) return true;
    }
    return false;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Files under dir (relative names, recursive) into a growing list. */
static int collect(const char *root, const char *rel, char ***list, size_t *n, size_t *cap, int depth) {
    if (depth > 4) return ERR_OK;
    char dir[2048];
    snprintf(dir, sizeof dir, rel[0] ? "%s/%s" : "%s%s", root, rel);
    DIR *d = opendir(dir);
    if (!d) return err_set(ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    int rc = ERR_OK;
    for (struct dirent *e; rc == ERR_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char relname[2048], full[4096];
        snprintf(relname, sizeof relname, rel[0] ? "%s/%s" : "%s%s", rel, e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, relname);
        if (fs_is_dir(full)) {
            rc = collect(root, relname, list, n, cap, depth + 1);
        } else if (fingerprinted(e->d_name)) {
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 16;
                char **g = realloc(*list, *cap * sizeof *g);
                if (!g) {
                    rc = err_set(ERR_NOMEM, "out of memory");
                    break;
                }
                *list = g;
            }
            if (!((*list)[*n] = strdup(relname))) rc = err_set(ERR_NOMEM, "out of memory");
            else (*n)++;
        }
    }
    closedir(d);
    return rc;
}

int render_model_fingerprint(const char *dir, char out[17]) {
    char **list = NULL;
    size_t n = 0, cap = 0;
    int rc = collect(dir, "", &list, &n, &cap, 0);
    if (rc == ERR_OK && n == 0) rc = err_set(ERR_MISSING, "%s: no model files to fingerprint", dir);
    if (rc == ERR_OK) qsort(list, n, sizeof *list, cmp_str);
    uint64_t h = RENDER_HASH_INIT;
    const size_t mib = (size_t)1 << 20;
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, list[i]);
        const int fd = open(full, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            rc = err_set(ERR_IO, "%s: cannot read: %s", full, strerror(errno));
        } else {
            const int64_t size = (int64_t)st.st_size;
            h = render_hash(h, list[i], strlen(list[i]) + 1);
            h = render_hash(h, &size, sizeof size);
            rc = hash_range(fd, full, 0, mib, &h);
            if (rc == ERR_OK && (size_t)size > mib) rc = hash_range(fd, full, (off_t)((size_t)size - mib), mib, &h);
        }
        if (fd >= 0) close(fd);
    }
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
    if (rc == ERR_OK) hex16(h, out);
    return rc;
}

/* ---- checkpoint file ---- */

static uint64_t state_checksum(const struct render_ckpt *c) {
    uint64_t h = RENDER_HASH_INIT;
    const int64_t pos[4] = {c->chunk, c->next_row, c->frames_done, c->latents_done};
    h = render_hash(h, pos, sizeof pos);
    if (c->prefix)
        h = render_hash(h, c->prefix, (size_t)(16 * c->prefix_frames * c->shape.height * c->shape.width) * sizeof(float));
    if (c->ring)
        h = render_hash(h, c->ring, (size_t)(c->ring_frames * 3 * c->ring_height * c->ring_width) * sizeof(float));
    if (c->next_row > 0) {
        const struct df_run_state_shape *s = &c->shape;
        const int64_t plane = s->height * s->width;
        h = render_hash(h, c->state.window, (size_t)(s->channels * s->columns * plane) * sizeof(float));
        h = render_hash(h, c->state.solver_ints, (size_t)(s->frames * DF_SOLVER_INTS) * sizeof(int32_t));
        h = render_hash(h, c->state.solver_buffers, (size_t)(s->frames * 4 * s->channels * plane) * sizeof(float));
    }
    return h;
}

/* Strings are stored as uint8 datasets with a terminating NUL (HDF5 has no empty datasets). */
static int read_text(struct h5_file *f, const char *path, const char *name, char **out) {
    int64_t *v = NULL, shape[TENSOR_MAX_DIMS];
    int nd = 0;
    TRY(h5_read_i64(f, name, &v, &nd, shape));
    if (nd != 1 || shape[0] < 1 || v[shape[0] - 1] != 0) {
        free(v);
        return err_set(ERR_FORMAT, "%s: dataset '%s' is not a string", path, name);
    }
    shape[0]--;
    char *s = malloc((size_t)shape[0] + 1);
    if (!s) {
        free(v);
        return err_set(ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < shape[0]; i++) s[i] = (char)v[i];
    s[shape[0]] = '\0';
    free(v);
    *out = s;
    return ERR_OK;
}

/* ---- what a checkpoint file holds: the one description both writers work from ---- */

enum ckpt_item_kind {
    CKPT_ATTR_STR, /* root attribute, string */
    CKPT_ATTR_I64, /* root attribute, integer */
    CKPT_TEXT,     /* uint8 dataset [strlen + 1]: a string with its NUL (HDF5 has no empty datasets) */
    CKPT_F32,      /* float32 dataset */
    CKPT_I64,      /* int64 dataset */
};

struct ckpt_item {
    const char *name;
    enum ckpt_item_kind kind;
    const char *str;       /* ATTR_STR, TEXT */
    int64_t value;         /* ATTR_I64 */
    const void *data;      /* F32, I64: the whole array */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    /* a large array that every rank holds: a collective write splits its rows among the ranks (the others
     * are written from rank 0's copy) */
    bool split;
};

enum { CKPT_MAX_ITEMS = 32 };

struct ckpt_layout {
    struct ckpt_item items[CKPT_MAX_ITEMS];
    int n;
    char frames_hash[17], latents_hash[17], checksum[17];
    int64_t *solver_ints; /* the state's int32 counters widened to the file's int64 */
    int64_t geometry[6];  /* channels, frames, columns, height, width, prefix */
};

static struct ckpt_item *layout_add(struct ckpt_layout *L, const char *name, enum ckpt_item_kind kind) {
    CHECK(L->n < CKPT_MAX_ITEMS, "checkpoint layout: more than %d items", CKPT_MAX_ITEMS);
    struct ckpt_item *it = &L->items[L->n++];
    memset(it, 0, sizeof *it);
    it->name = name, it->kind = kind;
    return it;
}

static void layout_attr_str(struct ckpt_layout *L, const char *name, const char *v) {
    layout_add(L, name, CKPT_ATTR_STR)->str = v;
}

static void layout_attr_i64(struct ckpt_layout *L, const char *name, int64_t v) {
    layout_add(L, name, CKPT_ATTR_I64)->value = v;
}

static void layout_text(struct ckpt_layout *L, const char *name, const char *text) {
    struct ckpt_item *it = layout_add(L, name, CKPT_TEXT);
    it->str = text ? text : "";
    it->ndim = 1, it->shape[0] = (int64_t)strlen(it->str) + 1;
}

static void layout_array(struct ckpt_layout *L, const char *name, enum ckpt_item_kind kind, const void *data,
                         bool split, int ndim, const int64_t *shape) {
    struct ckpt_item *it = layout_add(L, name, kind);
    it->data = data, it->split = split, it->ndim = ndim;
    memcpy(it->shape, shape, (size_t)ndim * sizeof *shape);
}

/* The file's contents for c, in writing order; `checksum` is state_checksum(c). */
static int layout_build(struct ckpt_layout *L, const struct render_ckpt *c, uint64_t checksum) {
    memset(L, 0, sizeof *L);
    hex16(c->frames_hash, L->frames_hash);
    hex16(c->latents_hash, L->latents_hash);
    hex16(checksum, L->checksum);
    layout_attr_str(L, "reelfarm_format", CKPT_FORMAT);
    layout_attr_i64(L, "reelfarm_format_version", CKPT_VERSION);
    layout_attr_str(L, "reelfarm_version", REELFARM_VERSION);
    layout_attr_str(L, "model_fingerprint", c->fingerprint);
    layout_attr_i64(L, "chunks", c->n_chunks);
    layout_attr_i64(L, "chunk", c->chunk);
    layout_attr_i64(L, "next_row", c->next_row);
    layout_attr_i64(L, "frames_done", c->frames_done);
    layout_attr_i64(L, "latents_done", c->latents_done);
    layout_attr_str(L, "frames_hash", L->frames_hash);
    layout_attr_str(L, "latents_hash", L->latents_hash);
    layout_attr_str(L, "rng", "philox4x32-10 addressed by (seed, purpose, chunk, row): no position to store");
    layout_text(L, "settings_json", c->settings_json);
    layout_text(L, "inputs_json", c->inputs_json);
    layout_text(L, "noise_path", c->noise_path);
    layout_text(L, "latents_out", c->latents_out);
    /* the ring is the lead's (it holds the film's frames): written from rank 0's copy */
    if (c->ring_frames > 0)
        layout_array(L, "ring", CKPT_F32, c->ring, false, 4,
                     (int64_t[]){c->ring_frames, 3, c->ring_height, c->ring_width});
    const struct df_run_state_shape *s = &c->shape;
    const int64_t plane = s->height * s->width;
    if (c->prefix)
        layout_array(L, "prefix_latents", CKPT_F32, c->prefix, true, 4,
                     (int64_t[]){16, c->prefix_frames, s->height, s->width});
    if (c->next_row > 0) {
        layout_array(L, "window", CKPT_F32, c->state.window, true, 4,
                     (int64_t[]){s->channels, s->columns, s->height, s->width});
        if (!c->state.window || !c->state.solver_ints || !c->state.solver_buffers)
            return err_set(ERR_INVALID_ARG, "checkpoint at row %lld without a whole sampler state (out of memory?)",
                           (long long)c->next_row);
        L->solver_ints = malloc((size_t)(s->frames * DF_SOLVER_INTS) * sizeof *L->solver_ints);
        if (!L->solver_ints) return err_set(ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < s->frames * DF_SOLVER_INTS; i++)
            L->solver_ints[i] = c->state.solver_ints[i];
        layout_array(L, "solver_ints", CKPT_I64, L->solver_ints, false, 2, (int64_t[]){s->frames, DF_SOLVER_INTS});
        layout_array(L, "solver_buffers", CKPT_F32, c->state.solver_buffers, true, 4,
                     (int64_t[]){s->frames, 4, s->channels, plane});
        const int64_t geo[6] = {s->channels, s->frames, s->columns, s->height, s->width, s->prefix};
        memcpy(L->geometry, geo, sizeof geo);
        layout_array(L, "window_geometry", CKPT_I64, L->geometry, false, 1, (int64_t[]){6});
    }
    layout_attr_str(L, "state_checksum", L->checksum);
    return ERR_OK;
}

static void layout_free(struct ckpt_layout *L) {
    free(L->solver_ints);
    L->solver_ints = NULL;
}

/* Everything but the array data: what the ranks of a collective write must agree on (HDF5 creates datasets
 * and attributes collectively; strings and attribute values are stored once). */
static uint64_t layout_meta_hash(const struct ckpt_layout *L) {
    uint64_t h = RENDER_HASH_INIT;
    for (int i = 0; i < L->n; i++) {
        const struct ckpt_item *it = &L->items[i];
        const int64_t head[4] = {it->kind, it->ndim, it->value, it->split ? 1 + (it->data != NULL) : 0};
        h = render_hash(h, it->name, strlen(it->name) + 1);
        h = render_hash(h, head, sizeof head);
        h = render_hash(h, it->shape, (size_t)it->ndim * sizeof *it->shape);
        if (it->str) h = render_hash(h, it->str, strlen(it->str) + 1);
    }
    return h;
}

/* Write the items to a serial file, or this rank's part of them to a collective one. */
static int layout_write(struct h5_file *f, const struct ckpt_layout *L) {
    int rc = ERR_OK;
    for (int i = 0; rc == ERR_OK && i < L->n; i++) {
        const struct ckpt_item *it = &L->items[i];
        switch (it->kind) {
        case CKPT_ATTR_STR: rc = h5_attr_set_str(f, it->name, it->str); break;
        case CKPT_ATTR_I64: rc = h5_attr_set_i64(f, it->name, it->value); break;
        case CKPT_TEXT: rc = h5_write_u8(f, it->name, (const uint8_t *)it->str, 1, it->shape); break;
        case CKPT_I64: rc = h5_write_i64(f, it->name, it->data, it->ndim, it->shape); break;
        case CKPT_F32:
            if (it->split) {
                int64_t row0, rows, row_floats = 1;
                for (int d = 1; d < it->ndim; d++) row_floats *= it->shape[d];
                h5_share_rows(f, it->shape[0], &row0, &rows);
                const float *mine = it->data ? (const float *)it->data + row0 * row_floats : NULL;
                rc = h5_write_f32_rows(f, it->name, mine, it->ndim, it->shape, row0, rows);
            } else {
                rc = h5_write_f32(f, it->name, it->data, it->ndim, it->shape);
            }
            break;
        }
    }
    return rc;
}

int render_ckpt_write(const char *path, const struct render_ckpt *c) {
    struct ckpt_layout L;
    int rc = layout_build(&L, c, state_checksum(c));
    struct h5_file *f = NULL;
    if (rc == ERR_OK && (rc = h5_create(&f, path, true)) == ERR_OK) {
        rc = layout_write(f, &L);
        if (rc == ERR_OK) rc = h5_commit(&f);
        h5_close(&f);
        if (rc < 0) err_wrap("checkpoint %s: ", path);
    }
    layout_free(&L);
    return rc;
}

int render_ckpt_write_collective(struct comm *world, const char *path, const struct render_ckpt *c) {
    if (comm_size(world) <= 1) return render_ckpt_write(path, c);
    /* the checksum covers the whole state: rank 0 computes it from its copy (which always has the ring) */
    uint64_t sum = world->rank == 0 ? state_checksum(c) : 0;
    comm_bcast(world, &sum, sizeof sum, 0);
    struct ckpt_layout L;
    int rc = layout_build(&L, c, sum);
    /* before any collective HDF5 call: every rank ready, and all describing the same file */
    struct {
        int64_t rc;
        uint64_t meta;
    } mine = {rc, rc == ERR_OK ? layout_meta_hash(&L) : 0}, *all = malloc((size_t)world->size * sizeof mine);
    CHECK(all, "out of memory");
    comm_allgather(world, &mine, all, sizeof mine);
    for (int r = 0; r < world->size && rc == ERR_OK; r++) { /* a rank that failed keeps its own reason */
        if (all[r].rc < 0)
            rc = err_set((enum err_code)all[r].rc, "checkpoint %s: rank %d could not prepare it (%s)", path, r,
                         err_code_name((int)all[r].rc));
        else if (all[r].meta != all[0].meta)
            rc = err_set(ERR_INVALID_ARG, "checkpoint %s: rank %d describes another file than rank 0 (position, "
                                          "counters, hashes, strings or shapes differ); every rank must pass the same",
                         path, r);
    }
    free(all);
    struct h5_file *f = NULL;
    if (rc == ERR_OK) {
        MPI_Comm mc = comm_mpi_handle(world);
        rc = h5_create_collective(&f, path, true, world, &mc);
    }
    if (rc == ERR_OK) {
        rc = layout_write(f, &L);
        if (rc == ERR_OK) rc = h5_commit(&f);
        h5_close(&f);
        if (rc < 0) err_wrap("checkpoint %s: ", path);
    }
    layout_free(&L);
    return rc;
}

int render_ckpt_alloc_state(struct render_ckpt *c, const struct df_run_state_shape *sh) {
    c->shape = *sh;
    const int64_t plane = sh->height * sh->width;
    c->state.window = malloc((size_t)(sh->channels * sh->columns * plane) * sizeof(float));
    c->state.solver_ints = malloc((size_t)(sh->frames * DF_SOLVER_INTS) * sizeof(int32_t));
    c->state.solver_buffers = malloc((size_t)(sh->frames * 4 * sh->channels * plane) * sizeof(float));
    if (!c->state.window || !c->state.solver_ints || !c->state.solver_buffers) return err_set(ERR_NOMEM, "out of memory");
    return ERR_OK;
}

void render_ckpt_free(struct render_ckpt *c) {
    free(c->settings_json), free(c->inputs_json), free(c->prefix), free(c->ring);
    free(c->noise_path), free(c->latents_out);
    free(c->state.window), free(c->state.solver_ints), free(c->state.solver_buffers);
    memset(c, 0, sizeof *c);
}

static int read_hash_attr(struct h5_file *f, const char *path, const char *key, uint64_t *out) {
    char buf[40];
    TRY(h5_attr_get_str(f, key, buf, sizeof buf));
    if (parse_hex16(buf, out) < 0) return err_set(ERR_FORMAT, "%s: attribute %s is not a 16-digit hex hash", path, key);
    return ERR_OK;
}

int render_ckpt_read(const char *path, struct render_ckpt *c) {
    memset(c, 0, sizeof *c);
    if (!fs_exists(path)) return err_set(ERR_MISSING, "%s: no such checkpoint", path);
    if (!h5_is_hdf5(path)) return err_set(ERR_FORMAT, "%s: not a reelfarm checkpoint (not an HDF5 file)", path);
    struct h5_file *f = NULL;
    int rc = h5_open_read(&f, path);
    char fmt[64] = "";
    int64_t version = 0;
    if (rc == ERR_OK && (h5_attr_get_str(f, "reelfarm_format", fmt, sizeof fmt) < 0 || strcmp(fmt, CKPT_FORMAT)))
        rc = err_set(ERR_FORMAT, "%s: not a reelfarm render checkpoint (reelfarm_format is '%s')", path, fmt);
    if (rc == ERR_OK && (h5_attr_get_i64(f, "reelfarm_format_version", &version) < 0 || version != CKPT_VERSION))
        rc = err_set(ERR_UNSUPPORTED, "%s: checkpoint format version %lld; this reelfarm reads version %d", path,
                     (long long)version, CKPT_VERSION);
    if (rc == ERR_OK) rc = h5_attr_get_str(f, "model_fingerprint", c->fingerprint, sizeof c->fingerprint);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "chunks", &c->n_chunks);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "chunk", &c->chunk);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "next_row", &c->next_row);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "frames_done", &c->frames_done);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "latents_done", &c->latents_done);
    if (rc == ERR_OK) rc = read_hash_attr(f, path, "frames_hash", &c->frames_hash);
    if (rc == ERR_OK) rc = read_hash_attr(f, path, "latents_hash", &c->latents_hash);
    if (rc == ERR_OK) rc = read_text(f, path, "settings_json", &c->settings_json);
    if (rc == ERR_OK) rc = read_text(f, path, "inputs_json", &c->inputs_json);
    if (rc == ERR_OK) rc = read_text(f, path, "noise_path", &c->noise_path);
    if (rc == ERR_OK) rc = read_text(f, path, "latents_out", &c->latents_out);
    if (rc == ERR_OK && h5_has(f, "ring")) {
        struct tensor rt = {0};
        rc = h5_read_f32(f, "ring", &rt);
        if (rc == ERR_OK && (rt.ndim != 4 || rt.shape[1] != 3)) rc = err_set(ERR_FORMAT, "%s: ring has a wrong shape", path);
        if (rc == ERR_OK) c->ring = rt.data, rt.data = NULL, c->ring_frames = rt.shape[0], c->ring_height = rt.shape[2],
                          c->ring_width = rt.shape[3];
        free(rt.data);
    }
    if (rc == ERR_OK && (c->chunk < 0 || c->chunk > c->n_chunks || c->next_row < 0 || c->frames_done < 0 ||
                         c->latents_done < 0))
        rc = err_set(ERR_FORMAT, "%s: position out of range (chunk %lld of %lld, row %lld)", path, (long long)c->chunk,
                     (long long)c->n_chunks, (long long)c->next_row);
    struct tensor t = {0};
    if (rc == ERR_OK && h5_has(f, "prefix_latents")) {
        rc = h5_read_f32(f, "prefix_latents", &t);
        if (rc == ERR_OK && (t.ndim != 4 || t.shape[0] != 16)) rc = err_set(ERR_FORMAT, "%s: prefix_latents has a wrong shape", path);
        if (rc == ERR_OK) {
            c->prefix = t.data, t.data = NULL;
            c->prefix_frames = t.shape[1];
            c->shape.height = t.shape[2], c->shape.width = t.shape[3];
        }
    }
    if (rc == ERR_OK && c->next_row > 0) {
        int64_t *geo = NULL, gs[TENSOR_MAX_DIMS], *ints = NULL, is[TENSOR_MAX_DIMS];
        int gnd = 0, ind = 0;
        rc = h5_read_i64(f, "window_geometry", &geo, &gnd, gs);
        if (rc == ERR_OK && (gnd != 1 || gs[0] != 6)) rc = err_set(ERR_FORMAT, "%s: window_geometry has a wrong shape", path);
        if (rc == ERR_OK) {
            const struct df_run_state_shape sh = {.channels = geo[0], .frames = geo[1], .columns = geo[2],
                                                  .height = geo[3], .width = geo[4], .prefix = geo[5]};
            if (sh.channels < 1 || sh.frames < 1 || sh.columns < sh.frames || sh.height < 1 || sh.width < 1)
                rc = err_set(ERR_FORMAT, "%s: window_geometry is out of range", path);
            else
                c->shape = sh;
        }
        free(geo);
        const struct df_run_state_shape *s = &c->shape;
        const int64_t plane = s->height * s->width;
        struct tensor win = {0}, buf = {0};
        if (rc == ERR_OK) rc = h5_read_f32(f, "window", &win);
        if (rc == ERR_OK && !tensor_has_shape(&win, 4, (int64_t[]){s->channels, s->columns, s->height, s->width}))
            rc = err_set(ERR_FORMAT, "%s: window does not match window_geometry", path);
        if (rc == ERR_OK) rc = h5_read_f32(f, "solver_buffers", &buf);
        if (rc == ERR_OK && !tensor_has_shape(&buf, 4, (int64_t[]){s->frames, 4, s->channels, plane}))
            rc = err_set(ERR_FORMAT, "%s: solver_buffers does not match window_geometry", path);
        if (rc == ERR_OK) rc = h5_read_i64(f, "solver_ints", &ints, &ind, is);
        if (rc == ERR_OK && (ind != 2 || is[0] != s->frames || is[1] != DF_SOLVER_INTS))
            rc = err_set(ERR_FORMAT, "%s: solver_ints does not match window_geometry", path);
        if (rc == ERR_OK) {
            c->state.window = win.data, win.data = NULL;
            c->state.solver_buffers = buf.data, buf.data = NULL;
            c->state.solver_ints = malloc((size_t)(s->frames * DF_SOLVER_INTS) * sizeof(int32_t));
            if (!c->state.solver_ints) rc = err_set(ERR_NOMEM, "out of memory");
            for (int64_t i = 0; rc == ERR_OK && i < s->frames * DF_SOLVER_INTS; i++) c->state.solver_ints[i] = (int32_t)ints[i];
            c->state.next_row = c->next_row;
        }
        free(win.data), free(buf.data), free(ints);
    }
    uint64_t want = 0;
    if (rc == ERR_OK) rc = read_hash_attr(f, path, "state_checksum", &want);
    if (rc == ERR_OK && want != state_checksum(c))
        rc = err_set(ERR_FORMAT, "%s: the checkpoint is damaged (its state checksum does not match)", path);
    free(t.data);
    h5_close(&f);
    if (rc < 0) {
        if (!strstr(err_message(), path)) err_wrap("%s: ", path);
        render_ckpt_free(c);
    }
    return rc;
}

/* ---- spools ---- */

int render_spool_open(struct render_spool *s, const char *path, size_t item_bytes, bool resume, int64_t items,
                      uint64_t hash) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    snprintf(s->path, sizeof s->path, "%s", path);
    s->item_bytes = item_bytes;
    s->hash = RENDER_HASH_INIT;
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0644);
    if (s->fd < 0) return err_set(ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!resume) return ERR_OK;
    struct stat st;
    if (fstat(s->fd, &st) != 0 || (int64_t)st.st_size < items * (int64_t)item_bytes) {
        render_spool_close(s, false);
        return err_set(ERR_FORMAT, "%s: holds %lld bytes, the checkpoint counts %lld items of %zu bytes (file "
                                   "truncated or replaced)",
                       path, (long long)st.st_size, (long long)items, item_bytes);
    }
    uint64_t h = RENDER_HASH_INIT;
    int rc = hash_range(s->fd, path, 0, (size_t)items * item_bytes, &h);
    if (rc == ERR_OK && h != hash)
        rc = err_set(ERR_FORMAT, "%s: contents differ from what the checkpoint recorded (damaged or replaced)", path);
    if (rc == ERR_OK && ftruncate(s->fd, (off_t)((size_t)items * item_bytes)) != 0)
        rc = err_set(ERR_IO, "%s: cannot truncate: %s", path, strerror(errno));
    if (rc < 0) {
        render_spool_close(s, false);
        return rc;
    }
    s->items = items;
    s->hash = h;
    return ERR_OK;
}

int render_spool_append(struct render_spool *s, const void *item) {
    const off_t off = (off_t)((size_t)s->items * s->item_bytes);
    size_t done = 0;
    while (done < s->item_bytes) {
        const ssize_t n = pwrite(s->fd, (const char *)item + done, s->item_bytes - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return err_set(ERR_IO, "%s: write failed: %s", s->path, strerror(errno));
        }
        done += (size_t)n;
    }
    s->hash = render_hash(s->hash, item, s->item_bytes);
    s->items++;
    return ERR_OK;
}

int render_spool_read(const struct render_spool *s, int64_t index, void *item) {
    const ssize_t n = pread(s->fd, item, s->item_bytes, (off_t)((size_t)index * s->item_bytes));
    if (n != (ssize_t)s->item_bytes) return err_set(ERR_IO, "%s: short read at item %lld", s->path, (long long)index);
    return ERR_OK;
}

int render_spool_sync(struct render_spool *s) {
    if (fdatasync(s->fd) != 0) return err_set(ERR_IO, "%s: fsync failed: %s", s->path, strerror(errno));
    return ERR_OK;
}

void render_spool_close(struct render_spool *s, bool remove) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (remove && s->path[0]) fs_remove_quiet(s->path);
}

/* io/h5io.c - HDF5 tensor files (the parallel HDF5 1.10 library: serial files through the default driver,
 * collective files through MPI-IO).
 *
 * The only MPI names used here are the MPI_Comm and MPI_Info that H5Pset_fapl_mpio takes; the ranks of a
 * collective file coordinate (temp name, agreement on errors, the commit) through core/comm.h.
 */
#include "io/h5io.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "io/fs.h"

#ifndef H5_HAVE_PARALLEL
#error "reelfarm needs the parallel HDF5 library (libhdf5-openmpi-dev)"
#endif

struct h5_file {
    hid_t id;
    bool writing;
    bool overwrite;
    struct comm *comm;   /* collective files: the ranks that write it together; NULL for serial files */
    char path[1024];     /* the final path */
    char tmp_path[1100]; /* writing: where data goes until commit */
};

static void h5_quiet(void) {
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

bool h5_is_hdf5(const char *path) {
    h5_quiet();
    if (!fs_is_file(path)) return false;
    return H5Fis_hdf5(path) > 0;
}

const char *h5_path(const struct h5_file *f) { return f->path; }

int h5_open_read(struct h5_file **out, const char *path) {
    h5_quiet();
    *out = NULL;
    if (!fs_exists(path)) return err_set(ERR_IO, "%s: no such file", path);
    if (!fs_is_file(path)) return err_set(ERR_IO, "%s: not a regular file", path);
    if (H5Fis_hdf5(path) <= 0) return err_set(ERR_FORMAT, "%s: not an HDF5 file", path);
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) return err_set(ERR_FORMAT, "%s: HDF5 cannot open it (damaged or truncated?)", path);
    struct h5_file *f = calloc(1, sizeof *f);
    if (!f) {
        H5Fclose(id);
        return err_set(ERR_NOMEM, "out of memory");
    }
    f->id = id;
    snprintf(f->path, sizeof f->path, "%s", path);
    *out = f;
    return ERR_OK;
}

int h5_create(struct h5_file **out, const char *path, bool overwrite) {
    h5_quiet();
    *out = NULL;
    if (!overwrite && fs_exists(path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", path);
    struct h5_file *f = calloc(1, sizeof *f);
    if (!f) return err_set(ERR_NOMEM, "out of memory");
    snprintf(f->path, sizeof f->path, "%s", path);
    int rc = fs_temp_path(f->tmp_path, sizeof f->tmp_path, path);
    if (rc < 0) {
        free(f);
        return rc;
    }
    f->id = H5Fcreate(f->tmp_path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (f->id < 0) {
        free(f);
        return err_set(ERR_IO, "%s: cannot create (is the directory writable?)", path);
    }
    f->writing = true;
    f->overwrite = overwrite;
    *out = f;
    return ERR_OK;
}

/* ---- collective coordination ---- */

/* Every rank of c learns how a step went on all of them: ERR_OK if it succeeded everywhere, otherwise the
 * code and message of the lowest failing rank, set on every rank. Without a group (serial files): rc. */
static int agree(struct comm *c, int rc) {
    if (comm_size(c) <= 1) return rc;
    int *all = malloc((size_t)c->size * sizeof *all);
    CHECK(all, "out of memory");
    comm_allgather(c, &rc, all, sizeof rc);
    int bad = -1;
    for (int r = 0; r < c->size && bad < 0; r++)
        if (all[r] < 0) bad = r;
    free(all);
    if (bad < 0) return ERR_OK;
    struct {
        int code;
        char msg[1000];
    } e = {0};
    if (c->rank == bad) {
        e.code = rc;
        snprintf(e.msg, sizeof e.msg, "%s", err_message());
    }
    comm_bcast(c, &e, sizeof e, bad);
    return err_set((enum err_code)e.code, "%s", e.msg);
}

/* fsync the directory that holds path, so that a rename in it survives a crash. Filesystems that cannot
 * sync a directory (EINVAL) are accepted. */
static int fsync_parent_dir(const char *path) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_set(ERR_IO, "%s: cannot open its directory to sync it: %s", path, strerror(errno));
    const int bad = fsync(fd) != 0 && errno != EINVAL ? errno : 0;
    close(fd);
    if (bad) return err_set(ERR_IO, "%s: fsync of directory %s failed: %s", path, dir, strerror(bad));
    return ERR_OK;
}

/* A finished temp file into place: durable before it becomes visible (checkpoints must survive a crash
 * right after the rename), then the rename made durable. The temp file is gone afterwards either way. */
static int commit_tmp(const struct h5_file *f) {
    const int fd = open(f->tmp_path, O_RDONLY | O_CLOEXEC);
    int rc;
    if (fd < 0 || fsync(fd) != 0) {
        rc = err_set(ERR_IO, "%s: fsync failed: %s", f->tmp_path, strerror(errno));
        fs_remove_quiet(f->tmp_path);
    } else {
        rc = fs_commit(f->tmp_path, f->path, f->overwrite);
    }
    if (fd >= 0) close(fd);
    if (rc == ERR_OK) rc = fsync_parent_dir(f->path);
    return rc;
}

int h5_create_collective(struct h5_file **out, const char *path, bool overwrite, struct comm *comm,
                         const void *mpi_comm) {
    if (comm_size(comm) <= 1) return h5_create(out, path, overwrite);
    CHECK(mpi_comm != NULL, "h5_create_collective: no MPI communicator for %s", path);
    h5_quiet();
    *out = NULL;
    struct h5_file *f = calloc(1, sizeof *f);
    int rc = f ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    /* rank 0 decides: the refusal to overwrite and the temp name (fs_temp_path holds its pid) */
    if (rc == ERR_OK && comm->rank == 0) {
        if (!overwrite && fs_exists(path))
            rc = err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", path);
        else
            rc = fs_temp_path(f->tmp_path, sizeof f->tmp_path, path);
    }
    if ((rc = agree(comm, rc)) < 0) {
        free(f);
        return rc;
    }
    comm_bcast(comm, f->tmp_path, sizeof f->tmp_path, 0);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->comm = comm;
    f->writing = true;
    f->overwrite = overwrite;

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5_CHECK(fapl);
    H5_CHECK(H5Pset_fapl_mpio(fapl, *(const MPI_Comm *)mpi_comm, MPI_INFO_NULL));
    /* metadata: every rank makes the same calls anyway; collective reads and writes of it scale better */
    H5_CHECK(H5Pset_all_coll_metadata_ops(fapl, 1));
    H5_CHECK(H5Pset_coll_metadata_write(fapl, 1));
    f->id = H5Fcreate(f->tmp_path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    const bool opened = f->id >= 0;
    rc = opened ? ERR_OK : err_set(ERR_IO, "%s: cannot create (is the directory writable?)", path);
    int n_open = 0;
    {
        int *all = malloc((size_t)comm->size * sizeof *all), mine = opened;
        CHECK(all, "out of memory");
        comm_allgather(comm, &mine, all, sizeof mine);
        for (int r = 0; r < comm->size; r++) n_open += all[r];
        free(all);
    }
    /* opened on some ranks only: those would wait forever for the others in the collective close */
    CHECK(n_open == 0 || n_open == comm->size, "%s: MPI-IO opened the file on %d of %d ranks", path, n_open,
          comm->size);
    if ((rc = agree(comm, rc)) < 0) {
        if (comm->rank == 0) fs_remove_quiet(f->tmp_path);
        comm_barrier(comm);
        free(f);
        return rc;
    }
    *out = f;
    return ERR_OK;
}

void h5_share_rows(const struct h5_file *f, int64_t n, int64_t *row0, int64_t *rows) {
    const int64_t size = comm_size(f->comm), rank = comm_rank(f->comm);
    const int64_t a = n * rank / size, b = n * (rank + 1) / size;
    *row0 = a;
    *rows = b - a;
}

int h5_commit(struct h5_file **fp) {
    struct h5_file *f = *fp;
    CHECK(f && f->writing, "h5_commit on a file not opened with h5_create");
    /* collective files: every rank's writes onto storage (MPI_File_sync), which rank 0's fsync below cannot do
     * for ranks on other nodes of a parallel filesystem */
    herr_t hr = f->comm ? H5Fflush(f->id, H5F_SCOPE_GLOBAL) : 0;
    if (H5Fclose(f->id) < 0) hr = -1;
    f->id = -1;
    int rc = hr < 0 ? err_set(ERR_IO, "%s: HDF5 failed to finish the file (disk full?)", f->path) : ERR_OK;
    rc = agree(f->comm, rc);
    if (comm_rank(f->comm) == 0) {
        if (rc == ERR_OK) rc = commit_tmp(f);
        else fs_remove_quiet(f->tmp_path);
    }
    /* collective files: no rank goes on before rank 0 has put the file in place (or removed it) */
    rc = agree(f->comm, rc);
    free(f);
    *fp = NULL;
    return rc;
}

void h5_close(struct h5_file **fp) {
    struct h5_file *f = fp ? *fp : NULL;
    if (!f) return;
    if (f->id >= 0) H5Fclose(f->id);
    if (f->writing && comm_rank(f->comm) == 0) fs_remove_quiet(f->tmp_path);
    if (f->comm) comm_barrier(f->comm); /* the temp file is gone before any rank goes on */
    free(f);
    *fp = NULL;
}

bool h5_has(const struct h5_file *f, const char *name) {
    if (H5Lexists(f->id, name, H5P_DEFAULT) <= 0) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name(f->id, name, &info, H5P_DEFAULT) < 0) return false;
    return info.type == H5O_TYPE_DATASET;
}

static int open_dataset(const struct h5_file *f, const char *name, hid_t *ds) {
    if (!h5_has(f, name)) return err_set(ERR_MISSING, "%s: no dataset '%s'", f->path, name);
    *ds = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (*ds < 0) return err_set(ERR_FORMAT, "%s: cannot open dataset '%s'", f->path, name);
    return ERR_OK;
}

static int dataset_shape(const struct h5_file *f, const char *name, hid_t ds, int *ndim,
                         int64_t shape[TENSOR_MAX_DIMS]) {
    hid_t sp = H5Dget_space(ds);
    if (sp < 0) return err_set(ERR_FORMAT, "%s: dataset '%s' has no dataspace", f->path, name);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank < 0 || rank > TENSOR_MAX_DIMS) {
        H5Sclose(sp);
        return err_set(ERR_SHAPE, "%s: dataset '%s' has %d dimensions (at most %d supported)", f->path, name, rank,
                       TENSOR_MAX_DIMS);
    }
    hsize_t dims[TENSOR_MAX_DIMS];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    *ndim = rank;
    for (int i = 0; i < rank; i++) shape[i] = (int64_t)dims[i];
    return ERR_OK;
}

int h5_dataset_shape(const struct h5_file *f, const char *name, int *ndim, int64_t shape[TENSOR_MAX_DIMS],
                     bool *is_float) {
    hid_t ds = -1;
    TRY(open_dataset(f, name, &ds));
    int rc = dataset_shape(f, name, ds, ndim, shape);
    if (rc == ERR_OK && is_float) {
        hid_t ty = H5Dget_type(ds);
        *is_float = H5Tget_class(ty) == H5T_FLOAT;
        H5Tclose(ty);
    }
    H5Dclose(ds);
    return rc;
}

int h5_read_f32(const struct h5_file *f, const char *name, struct tensor *t) {
    memset(t, 0, sizeof *t);
    hid_t ds = -1;
    TRY(open_dataset(f, name, &ds));
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int rc = dataset_shape(f, name, ds, &ndim, shape);
    float *buf = NULL;
    if (rc < 0) goto end;
    hid_t ty = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ty);
    H5Tclose(ty);
    if (cls != H5T_FLOAT) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' must hold floating-point values", f->path, name);
        goto end;
    }
    struct tensor desc = tensor_make(DTYPE_F32, DEVICE_CPU, NULL, ndim, shape);
    size_t n = (size_t)tensor_numel(&desc);
    buf = malloc(n ? n * sizeof(float) : sizeof(float));
    if (!buf) {
        rc = err_set(ERR_NOMEM, "%s: dataset '%s' (%zu values) does not fit in memory", f->path, name, n);
        goto end;
    }
    if (n && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = err_set(ERR_FORMAT, "%s: cannot read dataset '%s' (damaged file?)", f->path, name);
        goto end;
    }
    desc.data = buf;
    desc.name = name;
    *t = desc;
    buf = NULL;
end:
    free(buf);
    H5Dclose(ds);
    return rc;
}

int h5_read_i64(const struct h5_file *f, const char *name, int64_t **data, int *ndim, int64_t shape[TENSOR_MAX_DIMS]) {
    *data = NULL;
    hid_t ds = -1;
    TRY(open_dataset(f, name, &ds));
    int rc = dataset_shape(f, name, ds, ndim, shape);
    int64_t *buf = NULL;
    if (rc < 0) goto end;
    hid_t ty = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ty);
    H5Tclose(ty);
    if (cls != H5T_INTEGER) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' must hold integers", f->path, name);
        goto end;
    }
    size_t n = 1;
    for (int i = 0; i < *ndim; i++) n *= (size_t)shape[i];
    buf = malloc(n ? n * sizeof *buf : sizeof *buf);
    if (!buf) {
        rc = err_set(ERR_NOMEM, "%s: dataset '%s' does not fit in memory", f->path, name);
        goto end;
    }
    if (n && H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = err_set(ERR_FORMAT, "%s: cannot read dataset '%s'", f->path, name);
        goto end;
    }
    *data = buf;
    buf = NULL;
end:
    free(buf);
    H5Dclose(ds);
    return rc;
}

int h5_read_i64_scalar(const struct h5_file *f, const char *name, int64_t *out) {
    hid_t ds = -1;
    TRY(open_dataset(f, name, &ds));
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int rc = dataset_shape(f, name, ds, &ndim, shape);
    if (rc < 0) goto end;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    hid_t ty = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ty);
    H5Tclose(ty);
    if (cls != H5T_INTEGER || n != 1) {
        rc = err_set(ERR_FORMAT, "%s: dataset '%s' must be a single integer", f->path, name);
        goto end;
    }
    long long v = 0;
    if (H5Dread(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0) {
        rc = err_set(ERR_FORMAT, "%s: cannot read dataset '%s'", f->path, name);
        goto end;
    }
    *out = v;
end:
    H5Dclose(ds);
    return rc;
}

/* Create dataset `name` [shape] and write rows [row0, row0 + rows) of its outermost dimension from data (those
 * rows only; a scalar has one row). A serial file writes its range; on a collective file every rank calls
 * this with its own range (possibly empty) and the data moves in one collective transfer. */
static int write_rows(struct h5_file *f, const char *name, hid_t file_type, hid_t mem_type, const void *data, int ndim,
                      const int64_t *shape, int64_t row0, int64_t rows) {
    CHECK(f->writing, "h5 write on a read-only file");
    const int64_t n_rows = ndim > 0 ? shape[0] : 1;
    int rc = ERR_OK;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        rc = err_set(ERR_SHAPE, "%s: dataset '%s' has %d dimensions (at most %d supported)", f->path, name, ndim,
                     TENSOR_MAX_DIMS);
    for (int i = 0; rc == ERR_OK && i < ndim; i++)
        if (shape[i] < 0) rc = err_set(ERR_SHAPE, "%s: dataset '%s' has a negative dimension", f->path, name);
    if (rc == ERR_OK && (row0 < 0 || rows < 0 || row0 + rows > n_rows))
        rc = err_set(ERR_INVALID_ARG, "%s: dataset '%s': rows [%lld, %lld) outside its %lld rows", f->path, name,
                     (long long)row0, (long long)(row0 + rows), (long long)n_rows);
    if (rc == ERR_OK && rows > 0 && !data)
        rc = err_set(ERR_INVALID_ARG, "%s: dataset '%s': no data for rows [%lld, %lld)", f->path, name,
                     (long long)row0, (long long)(row0 + rows));
    if ((rc = agree(f->comm, rc)) < 0) return rc;

    hsize_t dims[TENSOR_MAX_DIMS], start[TENSOR_MAX_DIMS] = {0}, count[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = count[i] = (hsize_t)shape[i];
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    H5_CHECK(sp);
    hid_t ds = H5Dcreate2(f->id, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) rc = err_set(ERR_IO, "%s: cannot create dataset '%s'", f->path, name);
    if ((rc = agree(f->comm, rc)) < 0) {
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
        return rc;
    }
    /* what this rank writes: everything (H5S_ALL), nothing, or a block of rows */
    hid_t ms = H5S_ALL, fs = H5S_ALL;
    const bool whole = row0 == 0 && rows == n_rows;
    if (!whole && rows == 0) {
        fs = H5Scopy(sp);
        H5_CHECK(fs);
        H5_CHECK(H5Sselect_none(fs));
        ms = H5Screate(H5S_SCALAR);
        H5_CHECK(ms);
        H5_CHECK(H5Sselect_none(ms));
    } else if (!whole) {
        start[0] = (hsize_t)row0, count[0] = (hsize_t)rows;
        fs = H5Scopy(sp);
        H5_CHECK(fs);
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        ms = H5Screate_simple(ndim, count, NULL);
        H5_CHECK(ms);
    }
    hid_t dx = H5P_DEFAULT;
    if (f->comm) {
        dx = H5Pcreate(H5P_DATASET_XFER);
        H5_CHECK(dx);
        H5_CHECK(H5Pset_dxpl_mpio(dx, H5FD_MPIO_COLLECTIVE));
    }
    static const char none; /* HDF5 wants a buffer even for an empty selection */
    bool zero_size = false; /* the same on every rank: then nobody writes */
    for (int i = 0; i < ndim; i++) zero_size = zero_size || dims[i] == 0;
    if (!zero_size && H5Dwrite(ds, mem_type, ms, fs, dx, data ? data : (const void *)&none) < 0)
        rc = err_set(ERR_IO, "%s: cannot write dataset '%s' (disk full?)", f->path, name);
    if (dx != H5P_DEFAULT) {
        uint32_t local = 0, global = 0; /* HDF5 may fall back to independent I/O: say why (a slow path, not an error) */
        if (!zero_size && H5Pget_mpio_no_collective_cause(dx, &local, &global) >= 0 && (local | global))
            LOG_DEBUG("%s: dataset '%s' was written independently (HDF5 no-collective cause 0x%x)", f->path, name,
                      (unsigned)global);
        H5Pclose(dx);
    }
    if (ms != H5S_ALL) H5Sclose(ms);
    if (fs != H5S_ALL) H5Sclose(fs);
    H5Dclose(ds);
    H5Sclose(sp);
    return agree(f->comm, rc);
}

/* A whole dataset: rank 0's data on a collective file. */
static int write_dataset(struct h5_file *f, const char *name, hid_t file_type, hid_t mem_type, const void *data,
                         int ndim, const int64_t *shape) {
    const int64_t n_rows = ndim > 0 ? shape[0] : 1;
    return write_rows(f, name, file_type, mem_type, data, ndim, shape, 0, comm_rank(f->comm) == 0 ? n_rows : 0);
}

int h5_write_f32(struct h5_file *f, const char *name, const float *data, int ndim, const int64_t *shape) {
    return write_dataset(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, shape);
}
int h5_write_i64(struct h5_file *f, const char *name, const int64_t *data, int ndim, const int64_t *shape) {
    return write_dataset(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, ndim, shape);
}
int h5_write_u8(struct h5_file *f, const char *name, const uint8_t *data, int ndim, const int64_t *shape) {
    return write_dataset(f, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, data, ndim, shape);
}
int h5_write_f32_rows(struct h5_file *f, const char *name, const float *data, int ndim, const int64_t *shape,
                      int64_t row0, int64_t rows) {
    if (ndim < 1) return agree(f->comm, err_set(ERR_SHAPE, "%s: dataset '%s': rows of a scalar", f->path, name));
    return write_rows(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, shape, row0, rows);
}

static int attr_write(struct h5_file *f, const char *key, hid_t type, const void *value) {
    CHECK(f->writing, "h5 attribute write on a read-only file");
    if (H5Aexists(f->id, key) > 0) H5Adelete(f->id, key);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f->id, key, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ERR_OK;
    if (a < 0 || H5Awrite(a, type, value) < 0) rc = err_set(ERR_IO, "%s: cannot write attribute '%s'", f->path, key);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return agree(f->comm, rc);
}

int h5_attr_set_str(struct h5_file *f, const char *key, const char *value) {
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen(value) + 1);
    H5Tset_strpad(ty, H5T_STR_NULLTERM);
    H5Tset_cset(ty, H5T_CSET_UTF8); /* prompts are UTF-8 (ASCII is a subset) */
    int rc = attr_write(f, key, ty, value);
    H5Tclose(ty);
    return rc;
}

int h5_attr_set_i64(struct h5_file *f, const char *key, int64_t value) {
    return attr_write(f, key, H5T_NATIVE_INT64, &value);
}

int h5_attr_set_f64(struct h5_file *f, const char *key, double value) {
    return attr_write(f, key, H5T_NATIVE_DOUBLE, &value);
}

bool h5_attr_has(const struct h5_file *f, const char *key) { return H5Aexists(f->id, key) > 0; }

int h5_attr_get_str(const struct h5_file *f, const char *key, char *buf, size_t cap) {
    if (!h5_attr_has(f, key)) return err_set(ERR_MISSING, "%s: no attribute '%s'", f->path, key);
    hid_t a = H5Aopen(f->id, key, H5P_DEFAULT);
    hid_t ty = H5Aget_type(a);
    int rc = ERR_OK;
    if (H5Tget_class(ty) != H5T_STRING) {
        rc = err_set(ERR_FORMAT, "%s: attribute '%s' is not a string", f->path, key);
    } else if (H5Tis_variable_str(ty) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ty)); /* h5py writes UTF-8 */
        if (H5Aread(a, mt, &s) < 0 || !s) {
            rc = err_set(ERR_FORMAT, "%s: cannot read attribute '%s'", f->path, key);
        } else {
            snprintf(buf, cap, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ty);
        char *tmp = calloc(1, sz + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_cset(mt, H5Tget_cset(ty));
        if (!tmp || H5Aread(a, mt, tmp) < 0)
            rc = err_set(ERR_FORMAT, "%s: cannot read attribute '%s'", f->path, key);
        else
            snprintf(buf, cap, "%s", tmp);
        free(tmp);
        H5Tclose(mt);
    }
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

int h5_attr_get_i64(const struct h5_file *f, const char *key, int64_t *out) {
    if (!h5_attr_has(f, key)) return err_set(ERR_MISSING, "%s: no attribute '%s'", f->path, key);
    hid_t a = H5Aopen(f->id, key, H5P_DEFAULT);
    hid_t ty = H5Aget_type(a);
    int rc = ERR_OK;
    long long v = 0;
    if (H5Tget_class(ty) != H5T_INTEGER || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        rc = err_set(ERR_FORMAT, "%s: attribute '%s' is not an integer", f->path, key);
    else
        *out = v;
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

int h5_attr_get_f64(const struct h5_file *f, const char *key, double *out) {
    if (!h5_attr_has(f, key)) return err_set(ERR_MISSING, "%s: no attribute '%s'", f->path, key);
    hid_t a = H5Aopen(f->id, key, H5P_DEFAULT);
    hid_t ty = H5Aget_type(a);
    const H5T_class_t cls = H5Tget_class(ty);
    int rc = ERR_OK;
    double v = 0;
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        rc = err_set(ERR_FORMAT, "%s: attribute '%s' is not a number", f->path, key);
    else
        *out = v;
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

/* ---- listing ---- */

struct list_ctx {
    struct h5_entry *items;
    size_t count, cap;
    int rc;
};

static struct h5_entry *list_push(struct list_ctx *lc) {
    if (lc->count == lc->cap) {
        size_t nc = lc->cap ? 2 * lc->cap : 16;
        struct h5_entry *n = realloc(lc->items, nc * sizeof *n);
        if (!n) return NULL;
        lc->items = n;
        lc->cap = nc;
    }
    struct h5_entry *e = &lc->items[lc->count++];
    memset(e, 0, sizeof *e);
    return e;
}

static void describe_type(hid_t ty, struct h5_entry *e) {
    H5T_class_t cls = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    e->dtype = DTYPE_COUNT;
    if (cls == H5T_FLOAT) {
        e->dtype = sz == 4 ? DTYPE_F32 : (sz == 8 ? DTYPE_F64 : (sz == 2 ? DTYPE_F16 : DTYPE_COUNT));
        snprintf(e->type_desc, sizeof e->type_desc, "float%zu", 8 * sz);
    } else if (cls == H5T_INTEGER) {
        bool sgn = H5Tget_sign(ty) == H5T_SGN_2;
        if (sz == 8 && sgn) e->dtype = DTYPE_I64;
        if (sz == 4 && sgn) e->dtype = DTYPE_I32;
        if (sz == 1 && !sgn) e->dtype = DTYPE_U8;
        snprintf(e->type_desc, sizeof e->type_desc, "%sint%zu", sgn ? "" : "u", 8 * sz);
    } else if (cls == H5T_STRING) {
        snprintf(e->type_desc, sizeof e->type_desc, "string");
    } else {
        snprintf(e->type_desc, sizeof e->type_desc, "other");
    }
}

static herr_t list_dataset_cb(hid_t loc, const char *name, const H5L_info_t *info, void *user) {
    (void)info;
    struct list_ctx *lc = user;
    H5O_info_t oi;
    if (H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
    struct h5_entry *e = list_push(lc);
    if (!e) return -1;
    snprintf(e->name, sizeof e->name, "%s", name);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return 0;
    hid_t ty = H5Dget_type(ds);
    describe_type(ty, e);
    H5Tclose(ty);
    hid_t sp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 0 && rank <= TENSOR_MAX_DIMS) {
        hsize_t dims[TENSOR_MAX_DIMS];
        H5Sget_simple_extent_dims(sp, dims, NULL);
        e->ndim = rank;
        for (int i = 0; i < rank; i++) e->shape[i] = (int64_t)dims[i];
    } else {
        e->ndim = -1;
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return 0;
}

static herr_t list_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *user) {
    (void)info;
    struct list_ctx *lc = user;
    struct h5_entry *e = list_push(lc);
    if (!e) return -1;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->is_attribute = true;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t ty = H5Aget_type(a);
    describe_type(ty, e);
    H5T_class_t cls = H5Tget_class(ty);
    /* numeric attributes may be arrays (e.g. [16] latent statistics): read every element, show what fits */
    hid_t sp = H5Aget_space(a);
    const hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && npts >= 1 && npts <= (1 << 20)) {
        const bool is_int = cls == H5T_INTEGER;
        void *buf = malloc((size_t)npts * 8);
        if (buf && H5Aread(a, is_int ? H5T_NATIVE_LLONG : H5T_NATIVE_DOUBLE, buf) >= 0) {
            size_t used = 0;
            for (hssize_t i = 0; i < npts && used + 1 < sizeof e->value; i++) {
                char one[40];
                if (is_int)
                    snprintf(one, sizeof one, "%lld", ((const long long *)buf)[i]);
                else
                    snprintf(one, sizeof one, "%.*g", npts == 1 ? 17 : 6, ((const double *)buf)[i]);
                used += (size_t)snprintf(e->value + used, sizeof e->value - used, "%s%s%s", i == 0 && npts > 1 ? "[" : "",
                                         i ? ", " : "", one);
                if (i == npts - 1 && npts > 1 && used + 1 < sizeof e->value)
                    used += (size_t)snprintf(e->value + used, sizeof e->value - used, "]");
            }
            if (used >= sizeof e->value) memcpy(e->value + sizeof e->value - 5, "...]", 5);
        }
        free(buf);
    }
    H5Tclose(ty);
    H5Aclose(a);
    return 0;
}

/* Cut a UTF-8 string at a character boundary so that it fits its buffer with a trailing "...". */
static void utf8_fit(char *s, size_t cap, size_t full_len) {
    if (full_len < cap) return;
    size_t end = cap - 4;
    while (end > 0 && ((unsigned char)s[end] & 0xc0) == 0x80) end--; /* not inside a character */
    memcpy(s + end, "...", 4);
}

static int entry_cmp(const void *a, const void *b) {
    const struct h5_entry *x = a, *y = b;
    if (x->is_attribute != y->is_attribute) return x->is_attribute ? -1 : 1;
    return strcmp(x->name, y->name);
}

int h5_list(const struct h5_file *f, struct h5_entry **entries, size_t *count) {
    struct list_ctx lc = {0};
    hsize_t idx = 0;
    if (H5Literate(f->id, H5_INDEX_NAME, H5_ITER_INC, &idx, list_dataset_cb, &lc) < 0 ||
        H5Aiterate2(f->id, H5_INDEX_NAME, H5_ITER_INC, NULL, list_attr_cb, &lc) < 0) {
        free(lc.items);
        return err_set(ERR_FORMAT, "%s: cannot list its contents", f->path);
    }
    for (size_t i = 0; i < lc.count; i++) {
        struct h5_entry *e = &lc.items[i];
        if (e->is_attribute && !e->value[0] && strcmp(e->type_desc, "string") == 0) {
            char full[4096];
            if (h5_attr_get_str(f, e->name, full, sizeof full) == ERR_OK) {
                const size_t len = strlen(full), n = len < sizeof e->value - 1 ? len : sizeof e->value - 1;
                memcpy(e->value, full, n);
                e->value[n] = '\0';
                utf8_fit(e->value, sizeof e->value, len);
            }
        }
    }
    qsort(lc.items, lc.count, sizeof *lc.items, entry_cmp);
    *entries = lc.items;
    *count = lc.count;
    return ERR_OK;
}

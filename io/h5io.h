/* io/h5io.h - HDF5 tensor files, the interchange format of every stage tool.
 *
 * Reading never trusts the file: a missing dataset, a wrong class (integer where floats are
 * expected), too many dimensions or a non-HDF5 file is a recoverable error naming the file and
 * dataset. HDF5's own error printing is switched off so that the CLI prints one line.
 * Writing goes to a temporary sibling file that h5_commit() fsyncs and renames into place (then fsyncs
 * the directory), so a failed run leaves no half-written output and never replaces an existing file
 * unless asked to.
 *
 * Collective files (parallel HDF5 over MPI-IO) are written by every rank of a group together: see
 * h5_create_collective. Reading is serial only (every rank may read the same file on its own).
 */
#ifndef REELFARM_IO_H5IO_H
#define REELFARM_IO_H5IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

struct comm;
struct h5_file;

/* Datasets and attributes as listed by h5_list (for `reelfarm inspect`). */
struct h5_entry {
    char name[256];
    bool is_attribute;
    enum dtype dtype; /* closest reelfarm dtype; DTYPE_COUNT when none (strings, compounds) */
    char type_desc[32];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    char value[128]; /* attributes: the value as text */
};

int h5_open_read(struct h5_file **out, const char *path);
/* Create path's temporary sibling for writing; refuses early (ERR_EXISTS) if path exists and !overwrite. */
int h5_create(struct h5_file **out, const char *path, bool overwrite);
/* Finish a file from h5_create: close and rename into place. */
int h5_commit(struct h5_file **f);
/* Close; a file from h5_create that was not committed is deleted. NULL-tolerant, sets *f = NULL. */
void h5_close(struct h5_file **f);
const char *h5_path(const struct h5_file *f);

bool h5_has(const struct h5_file *f, const char *name);
/* Shape and element class of a dataset; ERR_MISSING if absent. */
int h5_dataset_shape(const struct h5_file *f, const char *name, int *ndim, int64_t shape[TENSOR_MAX_DIMS],
                     bool *is_float);
/* Read a floating-point dataset as f32 into a new malloc'd buffer (caller frees); *t describes it. */
int h5_read_f32(const struct h5_file *f, const char *name, struct tensor *t);
/* Read an integer dataset into a new malloc'd int64 buffer (caller frees); shape as for h5_read_f32. */
int h5_read_i64(const struct h5_file *f, const char *name, int64_t **data, int *ndim, int64_t shape[TENSOR_MAX_DIMS]);
/* Read an integer dataset with exactly one element (scalar or [1]). */
int h5_read_i64_scalar(const struct h5_file *f, const char *name, int64_t *out);

int h5_write_f32(struct h5_file *f, const char *name, const float *data, int ndim, const int64_t *shape);
int h5_write_i64(struct h5_file *f, const char *name, const int64_t *data, int ndim, const int64_t *shape);
int h5_write_u8(struct h5_file *f, const char *name, const uint8_t *data, int ndim, const int64_t *shape);

/* ---- collective files ----
 * h5_create_collective creates path's temporary sibling with the MPI-IO driver on every rank of `comm`
 * (rank 0 picks the temp name). From then on every call on the file is collective: every rank makes the
 * same calls in the same order with the same names, shapes and attribute values (HDF5 creates datasets
 * and attributes collectively), and each call returns the same code and message on every rank (a
 * failure on one rank, such as a full disk, is reported on all), so callers stop together instead of
 * leaving some ranks waiting in HDF5. The whole-dataset writers above store rank 0's data (the other
 * ranks' `data` is not read and may be NULL); h5_write_f32_rows stores each rank's own rows in one
 * collective transfer. h5_commit: every rank syncs its writes (MPI_File_sync) and closes the file, rank 0
 * fsyncs it, renames it into place and fsyncs the directory, and no rank returns before that is done;
 * h5_close of an uncommitted file removes the temp file before any rank returns.
 * mpi_comm is the address of the MPI_Comm of the same group as comm (io/ headers stay free of mpi.h).
 * A group of one rank gets a serial file (h5_create). */
int h5_create_collective(struct h5_file **out, const char *path, bool overwrite, struct comm *comm,
                         const void *mpi_comm);
/* This rank's contiguous share [*row0, *row0 + *rows) of n rows: balanced, possibly empty; all of them on a
 * serial file. */
void h5_share_rows(const struct h5_file *f, int64_t n, int64_t *row0, int64_t *rows);
/* Create dataset `name` [shape] (ndim >= 1) and write rows [row0, row0 + rows) of its outermost dimension
 * from `data`, which holds just those rows. On a collective file every rank passes its own range (ranges
 * may be empty; together they should cover the dataset, as h5_share_rows' do). */
int h5_write_f32_rows(struct h5_file *f, const char *name, const float *data, int ndim, const int64_t *shape,
                      int64_t row0, int64_t rows);

/* Root attributes. */
int h5_attr_set_str(struct h5_file *f, const char *key, const char *value);
int h5_attr_set_i64(struct h5_file *f, const char *key, int64_t value);
int h5_attr_set_f64(struct h5_file *f, const char *key, double value);
bool h5_attr_has(const struct h5_file *f, const char *key);
int h5_attr_get_str(const struct h5_file *f, const char *key, char *buf, size_t cap);
int h5_attr_get_i64(const struct h5_file *f, const char *key, int64_t *out);
/* A numeric (integer or floating-point) root attribute as a double. */
int h5_attr_get_f64(const struct h5_file *f, const char *key, double *out);

/* Every root dataset and root attribute, in name order; caller frees *entries. */
int h5_list(const struct h5_file *f, struct h5_entry **entries, size_t *count);

/* True if path is an HDF5 file (by signature). */
bool h5_is_hdf5(const char *path);

#endif /* REELFARM_IO_H5IO_H */

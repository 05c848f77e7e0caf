/* io/safetensors.h - safetensors files: a reader that never trusts the file, and a writer.
 *
 * Format: an 8-byte little-endian u64 header length N, N bytes of JSON object (padded with spaces),
 * then the data area. Each header entry is "name": {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]} with offsets relative to the data area; an optional "__metadata__" maps strings to
 * strings. Sharded checkpoints add "<name>.safetensors.index.json": {"metadata": {..},
 * "weight_map": {"tensor": "shard file name"}} (the Hugging Face convention).
 *
 * Mirrors the reference implementation, huggingface/safetensors safetensors/src/tensor.rs
 * (SafeTensors::read_metadata, Metadata::validate, prepare/serialize) and the index written by
 * transformers/huggingface_hub (save_pretrained with max_shard_size). Everything the reference
 * reader rejects is rejected here, each with its own one-line error naming the file and tensor:
 * a header length past the end of the file or over 100 MiB, JSON that is not valid or not an
 * object, an entry that is not {dtype, shape, data_offsets}, a dtype we do not support
 * (ERR_UNSUPPORTED), a shape that is not non-negative integers or has more than TENSOR_MAX_DIMS
 * dims, offsets that are not [begin <= end] inside the data area, a byte size that disagrees with
 * the shape (overflow-checked), overlapping tensors, gaps between tensors or unused bytes after the
 * last one (the data area must be tiled exactly, as the reference requires), duplicate names
 * (cJSON keeps duplicates; they are detected), a __metadata__ that is not an object of strings,
 * raw control characters in the JSON. One rule is stricter than the reference, which ignores
 * unknown keys in a tensor entry: here a key other than dtype/shape/data_offsets is
 * ERR_UNEXPECTED, since an unknown field could change how the bytes must be read.
 *
 * Files are mapped read-only (mmap PROT_READ, MAP_PRIVATE): tensor data is never copied and may be
 * unaligned in general (files written by st_write or by the Python library keep every tensor
 * aligned to its element size). A file must not be truncated while it is open (the kernel would
 * raise SIGBUS on access). This module does not convert dtypes, does not know any model's tensor
 * names and does not check shapes against a config: that is the loader's job (model/wan_weights).
 */
#ifndef REELFARM_IO_SAFETENSORS_H
#define REELFARM_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/tensor.h"

#define ST_HEADER_MAX ((uint64_t)100 << 20) /* larger header lengths are refused */

/* One tensor as found in a file. Everything it points to lives until st_close(). */
struct st_tensor {
    const char *name;
    enum dtype dtype;               /* F32, BF16, F16, F64, I64, I32 or U8 */
    int ndim;                       /* 0 for a scalar */
    int64_t shape[TENSOR_MAX_DIMS]; /* [ndim], PyTorch order; unused entries are 0 */
    const void *data;               /* [shape] in the read-only mapping; may be unaligned */
    size_t nbytes;                  /* numel * dtype_size(dtype); 0 for an empty tensor */
    uint64_t file_offset;           /* where data starts, in bytes from the start of the file */
    const char *file;               /* path of the file that holds it */
};

/* One or more mapped files seen as one name space, tensors sorted by name (strcmp order). */
struct st_set;

/* Open a .safetensors file, or a sharded checkpoint through its index (a path ending in ".json").
 * Index rules: an object {"metadata": {..} (optional), "weight_map": {tensor: shard}}; shard names
 * must be plain file names in the index's directory (no '/', no ".."); each shard is opened once;
 * every weight_map entry must exist in the shard it names (ERR_MISSING), every tensor of a shard
 * must be listed and point at that shard (ERR_UNEXPECTED), a tensor in two shards is ERR_FORMAT,
 * a shard that does not exist is ERR_MISSING. */
int st_open(struct st_set **out, const char *path);
/* The union of several .safetensors files; a name present in two of them is ERR_FORMAT. */
int st_open_files(struct st_set **out, const char *const *paths, size_t n);
/* NULL-tolerant; unmaps everything and sets *s = NULL. */
void st_close(struct st_set **s);

size_t st_count(const struct st_set *s);
/* i < st_count(s); sorted by name. */
const struct st_tensor *st_at(const struct st_set *s, size_t i);
/* Binary search; NULL if absent. */
const struct st_tensor *st_find(const struct st_set *s, const char *name);

/* __metadata__ of all files merged (for a key in several files the first file's value wins;
 * files are in the order given, shards in name order). NULL if absent. */
const char *st_metadata(const struct st_set *s, const char *key);
size_t st_metadata_count(const struct st_set *s);
/* i < st_metadata_count(s); sorted by key. */
void st_metadata_at(const struct st_set *s, size_t i, const char **key, const char **value);

size_t st_file_count(const struct st_set *s);
const char *st_file_path(const struct st_set *s, size_t i);
uint64_t st_file_size(const struct st_set *s, size_t i);

/* The safetensors name of a dtype ("F32", "BF16", ...). */
const char *st_dtype_name(enum dtype dt);

/* ---- writer ---- */

/* One tensor to write; data holds numel * dtype_size(dtype) bytes (may be NULL when that is 0). */
struct st_write_item {
    const char *name;
    enum dtype dtype;
    int ndim;                       /* 0..TENSOR_MAX_DIMS */
    int64_t shape[TENSOR_MAX_DIMS]; /* [ndim] */
    const void *data;               /* [shape], contiguous, little-endian */
};

/* Write a .safetensors file exactly as the Python library does: tensors ordered by descending
 * element size, then name (this keeps every tensor aligned to its element size), packed with no
 * gaps, the compact JSON header ("__metadata__" first) padded with spaces so the data area starts
 * at a multiple of 8. metadata_kv holds n_kv key/value pairs as 2*n_kv strings (key0, value0,
 * key1, ...), written sorted by key. Atomic: temp file, fsync, fs_commit(); without overwrite an
 * existing path is ERR_EXISTS and nothing is written. Bad items (NULL/duplicate/"__metadata__"
 * names, bad dtype or shape) are ERR_INVALID_ARG. */
int st_write(const char *path, const struct st_write_item *items, size_t n, const char *const *metadata_kv, size_t n_kv,
             bool overwrite);

/* Write "<...>.safetensors.index.json" for shards already written next to it: weight_map maps
 * names[i] -> files[i] (plain file names), sorted by tensor name, and metadata.total_size is the
 * sum of the listed tensors' bytes. The shards are opened and checked with the same rules as
 * st_open() uses for an index, so an index that would not read back is never written. Atomic,
 * like st_write; without overwrite an existing index_path is refused (ERR_EXISTS). */
int st_write_index(const char *index_path, const char *const *names, const char *const *files, size_t n,
                   bool overwrite);

#endif /* REELFARM_IO_SAFETENSORS_H */

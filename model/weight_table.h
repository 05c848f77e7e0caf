/* model/weight_table.h - strict binding of a model's declared tensors to a safetensors checkpoint.
 *
 * A model declares every tensor it needs (struct weight_decl: its names in each naming the model knows,
 * its expected shape, and the slot that receives it), typically from an X-macro table. weights_bind()
 * checks the checkpoint against the declaration: a declared tensor that is missing, misshaped or of a
 * dtype other than f32/bf16/f16, and a stored tensor that nobody declared (unless the model's allow-list
 * accepts it), are errors naming the tensor, the file, and the expected and found shapes. Bound slots
 * describe the stored data in place (the read-only mapping, the stored dtype). A model then either
 * converts everything to f32 once (weights_to_f32, the DiT) or converts what it needs when it needs it
 * (the text encoder, layer by layer).
 */
#ifndef REELFARM_MODEL_WEIGHT_TABLE_H
#define REELFARM_MODEL_WEIGHT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"

struct st_set;

enum { WEIGHT_NAMINGS_MAX = 2, WEIGHT_NAME_MAX = 160 };

struct weight_decl {
    char name[WEIGHT_NAMINGS_MAX][WEIGHT_NAME_MAX]; /* the tensor's name in each naming */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    struct tensor *slot;
};

struct weights_summary {
    int64_t n_params;
    int64_t n_tensors;
    enum dtype stored_dtype; /* dtype of most parameters */
};

/* Bind decls (naming index `naming`) to st, strictly. allowed_extra(name) may accept undeclared tensors
 * (logged as ignored); where names the checkpoint and config_path the config in messages. */
int weights_bind(const struct st_set *st, struct weight_decl *decls, size_t n, int naming,
                 bool (*allowed_extra)(const char *name), const char *where, const char *config_path,
                 struct weights_summary *summary);

/* Open the weights of a component directory: the one *.safetensors.index.json and its shards if there is an
 * index, else every *.safetensors in wdir. where (cap bytes) receives the path to name in messages (the
 * file, or wdir for several). ERR_MISSING when there are none, ERR_FORMAT for several index files. */
int weights_open_dir(const char *wdir, struct st_set **st, char *where, size_t cap);

/* True if the bound tensor can be used as f32 in place (stored f32, 4-byte aligned). */
bool weight_is_f32_ready(const struct tensor *t);
/* Bytes of f32 copies for the bound tensors that are not f32-ready (arena-rounded). */
size_t weights_f32_bytes(const struct weight_decl *decls, size_t n);
/* Replace every bound tensor that is not f32-ready by an f32 copy carved from arena. */
void weights_to_f32(struct weight_decl *decls, size_t n, struct arena *arena);
/* Convert one bound tensor into dst (f32, numel elements). */
void weight_copy_f32(float *dst, const struct tensor *src);

#endif /* REELFARM_MODEL_WEIGHT_TABLE_H */

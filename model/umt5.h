/* model/umt5.h - the umT5 text encoder (UMT5EncoderModel) as SkyReels-V2 uses it (spec 2.5, 8).
 *
 * Loads the Diffusers layout's text_encoder/ (transformers config keys and tensor names; one file or
 * shards with an index) strictly, like the DiT. The real encoder has 5.7 B parameters, so weights are
 * never copied up front: they stay in the read-only file mapping and are read on demand. f32 weights are
 * used in place; bf16/f16 weights are converted one layer at a time into a layer-sized buffer just
 * before that layer runs; the embedding table is read only at the rows of the prompt's tokens.
 * umt5_memory() states what the CPU path needs.
 *
 * Forward (spec 8.3): embedding gather; per layer RMS norm, unscaled self-attention with the layer's
 * own relative-position bias table and padding keys masked, residual; RMS norm, gated tanh-GELU FFN,
 * residual; final RMS norm; output rows of padding tokens set to exactly zero (spec 8.4). float32 on
 * the CPU backend (upstream runs bf16: not reproduced, as for the DiT).
 */
#ifndef REELFARM_MODEL_UMT5_H
#define REELFARM_MODEL_UMT5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "kernels/ops.h"

struct st_set;

struct umt5_config {
    int64_t vocab_size;
    int64_t d_model;     /* 4096 */
    int64_t d_ff;        /* 10240 */
    int64_t d_kv;        /* 64 */
    int64_t num_heads;   /* 64 */
    int64_t num_layers;  /* 24 */
    int num_buckets;     /* 32 */
    int max_distance;    /* 128 */
    double eps;          /* 1e-6 */
};

struct umt5_layer {
    struct tensor ln1;     /* [D] */
    struct tensor q, k, v; /* [H d_kv, D] */
    struct tensor o;       /* [D, H d_kv] */
    struct tensor relbias; /* [num_buckets, H] */
    struct tensor ln2;     /* [D] */
    struct tensor wi0;     /* [d_ff, D] gate (GELU'd) */
    struct tensor wi1;     /* [d_ff, D] */
    struct tensor wo;      /* [D, d_ff] */
};

struct umt5_model {
    struct umt5_config cfg;
    struct st_set *st;
    struct tensor embedding; /* [vocab, D] as stored (any of f32/bf16/f16) */
    struct tensor final_ln;  /* [D] as stored */
    struct umt5_layer *layers; /* [num_layers] as stored */
    bool f32_in_place;       /* every layer tensor usable as f32 in place */
    int64_t n_params;
    enum dtype stored_dtype;
    char config_path[1100];
    char weights_path[1100];
};

struct umt5_memory {
    size_t mapped_bytes;     /* weights in the file mapping (page cache, read on demand) */
    size_t layer_bytes;      /* per-layer f32 conversion buffer (0 when stored f32) */
    size_t activation_bytes; /* activations for text_len tokens */
};

int umt5_load(struct umt5_model **out, const char *model_dir);
void umt5_free(struct umt5_model **m);
struct umt5_memory umt5_memory(const struct umt5_model *m, int64_t text_len);

/* out [text_len, d_model] (host): the encoding of ids [text_len] whose first n_valid are real tokens. */
int umt5_encode(const struct umt5_model *m, const struct exec_ctx *ctx, const int64_t *ids, int64_t text_len,
                int64_t n_valid, float *out);

#endif /* REELFARM_MODEL_UMT5_H */

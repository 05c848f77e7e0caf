/* model/wan_tiny.h - the built-in tiny model: a small random Wan DiT written in the real layouts.
 *
 * `reelfarm make-tiny-model` uses it for demos and every test. The weights are a pure function of
 * (seed, tensor's Diffusers name), so the same model written with either naming, dtype or shard
 * count holds the same values (up to the storage dtype's rounding). The tiny config keeps the real
 * head dim 128 (so the real RoPE split 22/21/21 is exercised) and shrinks everything else.
 * The directory also holds a tiny umT5 text encoder and a SentencePiece tokenizer trained at creation
 * (model/umt5_tiny.c) and a narrow random Wan VAE (model/wan_vae_tiny.c): every stage tool runs on it.
 */
#ifndef REELFARM_MODEL_WAN_TINY_H
#define REELFARM_MODEL_WAN_TINY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "model/wan_config.h"
#include "model/wan_weights.h"

struct wan_tiny_options {
    uint64_t seed;
    bool fps_embedding;     /* inject_sample_info, as DF-1.3B */
    bool i2v;               /* image branch and 36 input channels, as the I2V models */
    enum dtype dtype;       /* storage: f32, bf16 or f16 */
    enum wan_naming naming; /* Diffusers layout (transformer/...) or original SkyReels layout */
    int shards;             /* 1: one file; N > 1: N shards and an index */
    bool force;             /* write into an existing non-empty directory */
    bool example_input;     /* also write examples/dit_input.h5 */
};

void wan_tiny_default_options(struct wan_tiny_options *opt);
void wan_tiny_config(const struct wan_tiny_options *opt, struct wan_config *cfg);
/* Fill a tensor's values for this tiny model (f32, numel elements) from its Diffusers name. */
void wan_tiny_values(float *dst, int64_t numel, int ndim, const int64_t *shape, const char *diffusers_name,
                     uint64_t seed);
/* The tiny tokenizer and text encoder (model/umt5_tiny.c) into dir; d_model = the DiT's text_dim. */
int umt5_tiny_write(const char *dir, int64_t d_model, const struct wan_tiny_options *opt);
/* The tiny VAE (model/wan_vae_tiny.c): vae/ (Diffusers) or Wan2.1_VAE.safetensors (original naming). */
struct wan_vae_config;
void wan_vae_tiny_config(struct wan_vae_config *c);
int wan_vae_tiny_write(const char *dir, const struct wan_tiny_options *opt);
/* Write the model directory; recoverable errors name the path. */
int wan_tiny_write(const char *dir, const struct wan_tiny_options *opt);

#endif /* REELFARM_MODEL_WAN_TINY_H */

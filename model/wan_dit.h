/* model/wan_dit.h - the Wan DiT as SkyReels-V2 uses it: loading and the forward pass (spec 3).
 *
 * wan_model_load() reads a model directory in the Diffusers layout (transformer/config.json and
 * diffusion_pytorch_model*.safetensors, single or sharded) or the original SkyReels layout
 * (config.json and *.safetensors), with either tensor naming, strictly. Weights stored as f32,
 * bf16 or f16 load; the CPU backend computes in f32 (f32 tensors are used in place from the
 * read-only mapping, others are converted once).
 *
 * wan_dit_forward() computes the flow prediction for one window: per-frame (diffusion-forcing)
 * or scalar timesteps, the fps embedding, block-causal or full self-attention, text and I2V
 * cross-attention. Activations live in a workspace planned once per input shape, so repeated
 * calls (the denoising loop) allocate nothing. The per-frame modulation stays a [F, 6, D] table.
 * It does not reproduce upstream's bf16 rounding points (spec 3.10): this is the f32 reference.
 */
#ifndef REELFARM_MODEL_WAN_DIT_H
#define REELFARM_MODEL_WAN_DIT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "kernels/ops.h"
#include "model/wan_config.h"
#include "model/wan_weights.h"

struct st_set;

struct wan_model {
    struct wan_config cfg;
    enum wan_naming naming;
    struct wan_weights w;
    struct st_set *st;          /* the mapped checkpoint files */
    struct arena weight_arena;  /* converted (bf16/f16 -> f32) and realigned tensors */
    struct tensor rope_freqs;   /* [rope_max_seq_len, head_dim / 2, 2] (cos, sin) */
    int rope_split[3];          /* pairs rotated by frame, row, column position */
    int64_t n_params;
    int64_t n_tensors;
    enum dtype stored_dtype;    /* dtype of most parameters in the checkpoint */
    char dir[1024];
    char config_path[1100];
    char weights_path[1100]; /* the safetensors file, the index, or the first of several files */
};

/* Where a model directory keeps its transformer config and weights. */
struct wan_model_files {
    char config_path[1100];
    char index_path[1100];    /* "" unless sharded with an index */
    char **weight_files;      /* when no index: every safetensors file */
    size_t n_weight_files;
};

int wan_model_locate(const char *dir, struct wan_model_files *files);
void wan_model_files_free(struct wan_model_files *files);

int wan_model_load(struct wan_model **out, const char *dir);
/* A model with random weights from a config (benchmarks): N(0, std) per tensor, no files. */
int wan_model_init_random(struct wan_model **out, const struct wan_config *cfg, uint64_t seed);
void wan_model_free(struct wan_model **m);

/* One forward call's inputs (host memory, f32). */
struct wan_dit_input {
    struct tensor latents;    /* [16, F, H, W] noisy latents (H, W: latent height/width, even) */
    struct tensor condition;  /* [Cin - 16, F, H, W] I2V conditioning, data NULL when absent */
    struct tensor timesteps;  /* [F] per frame, or [1] for all frames */
    struct tensor context;    /* [Lc, text_dim] text embeddings (padding rows included) */
    struct tensor clip;       /* [Ni, image_dim] CLIP image features (I2V), data NULL when absent */
    int fps_code;             /* 0 (16 fps) or 1 (other); -1 = default 1; models without fps ignore it */
    int causal_block_size;    /* 0: full attention; N >= 1: block-causal (spec 3.9) */
};

/* The shape a workspace is planned for. */
struct wan_dit_shape {
    int64_t frames, height, width; /* latent F, H, W */
    int64_t context_len;           /* Lc */
    int64_t image_len;             /* Ni (0 without an image branch) */
    int64_t timestep_rows;         /* F (per frame) or 1 (scalar) */
};

struct wan_dit_workspace {
    struct wan_dit_shape shape;
    struct arena arena;
    struct wan_dit_bufs *bufs; /* activation tensors, carved from arena */
};

/* Validate inputs against the model (recoverable errors naming the dataset) and derive the shape. */
int wan_dit_check_input(const struct wan_model *m, const struct wan_dit_input *in, struct wan_dit_shape *shape);
/* Bytes of activations the forward needs for a shape. */
size_t wan_dit_workspace_bytes(const struct wan_model *m, const struct wan_dit_shape *shape);
int wan_dit_workspace_init(struct wan_dit_workspace *ws, const struct wan_model *m, const struct wan_dit_shape *shape);
void wan_dit_workspace_free(struct wan_dit_workspace *ws);

/* out: [Cout, F, H, W] host f32. Inputs must have passed wan_dit_check_input with ws's shape. */
void wan_dit_forward(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_workspace *ws,
                     const struct wan_dit_input *in, struct tensor *out);

/* Floating-point operations of one forward (multiply-add = 2), for throughput figures. */
double wan_dit_flops(const struct wan_config *cfg, const struct wan_dit_shape *shape, int causal_block_size);

#endif /* REELFARM_MODEL_WAN_DIT_H */

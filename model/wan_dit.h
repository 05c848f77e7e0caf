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
 *
 * Devices (issue 8): a model loads on the CPU; wan_model_to_device() then moves its tensors (weights and
 * the RoPE table) into one device arena for a CUDA context (single rank, tp = 1), all f32 or with the GEMM
 * matrices in bf16 (then op_linear computes bf16 x bf16 products with fp32 accumulation). A workspace is
 * allocated on the model's device, once, before the denoising loop. The forward's inputs and output are
 * always host memory: wan_dit_forward() uploads the inputs at its start and downloads the output at its
 * end (op_upload / op_download, the only host<->device copies of a forward); everything in between runs
 * as ops on ctx's device and allocates nothing.
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
struct comm;

struct wan_model {
    struct wan_config cfg;
    enum wan_naming naming;
    struct wan_weights w;
    struct st_set *st;          /* the mapped checkpoint files */
    struct arena weight_arena;  /* on the CPU: converted (bf16/f16 -> f32) and realigned tensors; after
                                 * wan_model_to_device: every tensor, on that device */
    enum device device;         /* where w and rope_freqs live (DEVICE_CPU after loading) */
    enum dtype matrix_dtype;    /* the GEMM matrices' dtype (DTYPE_F32; DTYPE_BF16 after wan_model_to_device
                                 * with bf16): see wan_model_to_device */
    struct tensor rope_freqs;   /* [rope_max_seq_len, head_dim / 2, 2] (cos, sin) */
    int rope_split[3];          /* pairs rotated by frame, row, column position */
    int tp_rank, tp_size;       /* tensor parallelism: this rank holds heads and FFN columns of slice tp_rank */
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
/* Tensor parallelism (spec 9; issue "distributed"): keep only slice tp_rank of tp_size: the q/k/v
 * projections, their norms and the first FFN layer by output rows (heads / FFN columns), the output
 * projections and the second FFN layer by input columns. Slices are views into the read-only
 * mapping (f32) or converted one by one (bf16/f16): no rank reads or converts the other slices. */
int wan_model_load_tp(struct wan_model **out, const char *dir, int tp_rank, int tp_size);
/* A model with random weights from a config (benchmarks): N(0, std) per tensor, no files;
 * tp_size > 1 keeps slice tp_rank of the same random model (the whole model is drawn first). */
int wan_model_init_random(struct wan_model **out, const struct wan_config *cfg, uint64_t seed);
int wan_model_init_random_tp(struct wan_model **out, const struct wan_config *cfg, uint64_t seed, int tp_rank,
                             int tp_size);
void wan_model_free(struct wan_model **m);
/* Move every tensor of a loaded model (weights and RoPE table) into one arena on ctx's device and release the
 * host copies (the converted weights and the checkpoint mapping). A CPU context: nothing to do (matrix_dtype
 * must be DTYPE_F32 there: the CPU backend computes in f32).
 * matrix_dtype DTYPE_F32 keeps every tensor f32. DTYPE_BF16 (issue 8: the 14B model in <= 40 GB) stores the 2-D
 * GEMM matrices read by op_linear in bf16, rounded to nearest even on upload: every block's attention
 * projections (self, cross, I2V image k/v) and FFN, and the text, time, time-projection, fps and image MLPs.
 * The patch embedding, the head's Linear (f32 upstream, spec 3.10), norms, biases, modulation tables,
 * embedding tables and the RoPE table stay f32; activations and the residual stream stay f32 (op_linear
 * rounds its input x to bf16 in a scratch buffer of the context, reserved here: CUDA_LINEAR_SCRATCH_BYTES).
 * CUDA: single-rank models only (tp_size 1; ERR_UNSUPPORTED otherwise), ERR_NOMEM when the device cannot
 * hold the weights (the model then stays usable on the CPU). Bytes the device arena takes: arena_round of
 * each tensor in its device dtype, plus the RoPE table, i.e. wan_model_device_bytes(m, matrix_dtype), which
 * answers for either dtype from the element counts (before or after the move). */
int wan_model_to_device(struct wan_model *m, const struct exec_ctx *ctx, enum dtype matrix_dtype);
size_t wan_model_device_bytes(const struct wan_model *m, enum dtype matrix_dtype);

/* One forward call's inputs (host memory, f32, whatever the model's device: the forward uploads them). */
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

/* How one forward is spread over ranks (spec 9; issue "distributed"). NULL members are one-rank
 * groups. sp: every sequence-parallel rank, rank order = shard order; ulysses and ring: its two
 * factors (sp rank = ring rank * ulysses size + ulysses rank); tp: the tensor-parallel partners,
 * whose size must equal the model's tp_size. Tokens are cut into sp shards of equal (padded) length;
 * with ring > 1 a ring block (ulysses shards) is a whole number of attention key tiles, so every
 * layout computes each token with the same floating-point operations as one rank. */
struct wan_dit_par {
    struct comm *sp, *ulysses, *ring, *tp;
};

/* Token rows each of sp sequence-parallel ranks holds for l tokens (padding included): equal shards,
 * and with ring > 1 ring blocks (ulysses shards) that are whole attention key tiles, so each ring step
 * covers the same key tiles one rank would. */
int64_t wan_dit_shard_rows(int64_t l, int sp, int ulysses, int ring);

struct wan_dit_workspace {
    struct wan_dit_shape shape;
    struct wan_dit_par par;
    enum device device;        /* the model's device when the workspace was made */
    struct arena arena;        /* on `device` */
    struct wan_dit_bufs *bufs; /* activation tensors, carved from arena */
};

/* Validate inputs against the model (recoverable errors naming the dataset) and derive the shape. */
int wan_dit_check_input(const struct wan_model *m, const struct wan_dit_input *in, struct wan_dit_shape *shape);
/* Bytes of activations the forward needs for a shape: five [tokens, D] buffers' worth per token (the residual
 * stream, the normed input / attention output, q/k/v whose memory later holds the output projections, the FFN output
 * and its hidden activations, computed in row chunks of at most 256 MiB) plus the small tables. */
size_t wan_dit_workspace_bytes(const struct wan_model *m, const struct wan_dit_shape *shape);
/* Allocates every activation of a forward of this shape up front, on the model's device (the device of
 * the context the model was moved to with wan_model_to_device; the CPU otherwise): one arena, zeroed. */
int wan_dit_workspace_init(struct wan_dit_workspace *ws, const struct wan_model *m, const struct wan_dit_shape *shape);
/* The same for one rank of a parallel layout (par may be NULL). Refuses layouts that cannot split
 * this shape (more sequence-parallel ranks than tokens, a tp group that does not match the model), and
 * any layout of more than one rank for a model on a CUDA device (the collectives of the forward take
 * host buffers; ERR_UNSUPPORTED). */
int wan_dit_workspace_init_par(struct wan_dit_workspace *ws, const struct wan_model *m,
                               const struct wan_dit_shape *shape, const struct wan_dit_par *par);
void wan_dit_workspace_free(struct wan_dit_workspace *ws);

/* out: [Cout, F, H, W] host f32. Inputs must have passed wan_dit_check_input with ws's shape.
 * Under a parallel layout every rank passes the same inputs and receives the whole output.
 * ctx must be on the model's (and the workspace's) device. On CUDA the call returns once the output
 * has been downloaded (the stream is synchronised by the download). */
void wan_dit_forward(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_workspace *ws,
                     const struct wan_dit_input *in, struct tensor *out);

/* Floating-point operations of one forward (multiply-add = 2), for throughput figures. */
double wan_dit_flops(const struct wan_config *cfg, const struct wan_dit_shape *shape, int causal_block_size);

#endif /* REELFARM_MODEL_WAN_DIT_H */

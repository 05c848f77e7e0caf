/* worker/worker.h - stage tools: run the model on inputs and write outputs.
 *
 * Each tool validates everything it can before heavy work (output path, input datasets, model),
 * writes its output to a temporary file that is renamed into place only on success, and returns
 * a recoverable error (core/error.h) with one line naming the file, dataset or flag at fault.
 */
#ifndef REELFARM_WORKER_WORKER_H
#define REELFARM_WORKER_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/progress.h"
#include "parallel/mesh.h"

#include "kernels/ops.h"

struct dit_forward_options {
    const char *model_dir;
    const char *in_path;
    const char *out_path;
    int causal_block_size; /* 0: full attention */
    int threads;           /* <= 0: all cores */
    bool force;            /* overwrite an existing output */
    enum backend backend;  /* BACKEND_CPU (default) or BACKEND_CUDA (GPU 0) */
    enum dtype weight_dtype; /* the GEMM matrices on the device: DTYPE_F32 (default) or DTYPE_BF16 (CUDA only;
                              * wan_model_to_device) */
};

/* reelfarm dit-forward: IN.h5 (latents, timesteps, context[, condition, clip_features, fps]) ->
 * OUT.h5 (noise_pred). Spec section 3. */
int worker_dit_forward(const struct dit_forward_options *opt);

struct denoise_options {
    const char *model_dir;
    const char *in_path;
    const char *out_path;
    int steps;
    double shift;
    double guidance;
    int ar_step;
    int causal_block_size;
    bool causal_attention;
    int addnoise_condition;
    uint64_t seed;
    int fps;
    int64_t chunk;
    bool textbook_step;
    int threads;
    bool force;
    struct par_request par; /* layout under mpirun (all zero: automatic) */
};

/* reelfarm denoise: IN.h5 (noise, context, negative_context[, prefix_latents, end_latents]) -> OUT.h5
 * (latents, timesteps, timestep_matrix, update_mask, valid_interval). Spec 4, 5, 6.4. */
int worker_denoise(const struct denoise_options *opt);

struct encode_text_options {
    const char *model_dir;
    const char *out_path;
    const char *prompt;          /* from --prompt or the contents of --prompt-file */
    const char *negative_prompt; /* NULL: no negative context */
    int64_t text_len;            /* 0: the tokenizer config's bound (512 for the real models) */
    int threads;
    bool force;
};

/* reelfarm encode-text: prompt (and negative prompt) -> context, input_ids, attention_mask (HDF5).
 * Spec 8. */
int worker_encode_text(const struct encode_text_options *opt);

struct bench_options {
    const char *model_size;     /* tiny, 1.3b, 14b */
    int64_t layers;             /* > 0 overrides the preset's layer count */
    int64_t heads;              /* > 0 overrides */
    int64_t ffn_dim;            /* > 0 overrides */
    int64_t pixel_frames;       /* video frames; latent frames = (n - 1) / 4 + 1 */
    int64_t height, width;      /* pixels (multiples of 16) */
    int64_t text_len;           /* context rows (512 in the pipelines) */
    int causal_block_size;
    int repeat, warmup;
    int threads;
    enum backend backend;
    enum dtype weight_dtype;    /* --dtype: DTYPE_F32 (default) or DTYPE_BF16 GEMM matrices (CUDA only) */
    uint64_t seed;
    /* Scaling benchmark (under mpirun; docs/scaling.md). A step is one forward, or with guidance > 1
     * the conditional and the unconditional pass (on two halves of the ranks with CFG parallelism). */
    double guidance;            /* <= 1: one forward per step (default) */
    struct par_request par;     /* layout (all zero: automatic) */
    const char *json_path;      /* NULL: no JSON report; else one JSON object (replaced if it exists) */
    /* --comm-model: print the communication model's tables for this shape instead of timing */
    bool comm_model;
    bool comm_model_f32;        /* payloads in f32 (CPU backend) instead of bf16 (GPU) */
    double gpu_tflops;          /* sustained rate per GPU for the compute estimate (> 0) */
    int comm_ranks[8];          /* rank counts to tabulate, 0-terminated; all zero: 1, 2, 4, 8 */
};

/* reelfarm bench: time forwards of a random-weight model; prints one key=value line (one rank, one
 * forward per step), or per-step and per-collective lines and a JSON report (docs/scaling.md). */
int worker_bench(const struct bench_options *opt);

struct vae_decode_options {
    const char *model_dir;
    const char *in_path;
    const char *out_path;   /* .h5: float32 video; .mp4/.mkv/.webm: encoded */
    int fps_num, fps_den;   /* encoded output frame rate (<= 0: 24/1) */
    const char *codec;      /* NULL: h264 */
    int crf;                /* < 0: the codec's reelfarm default */
    const char *preset;     /* NULL: the encoder's default */
    enum dtype vae_cache;   /* the VAE stream's cross-frame state: DTYPE_F32 (exact, default) or DTYPE_BF16 */
    int vae_bands;          /* > 1: band-major decode in this many row bands (model/wan_vae.h) */
    size_t vae_memory;      /* > 0: band-major, the fewest bands whose stream fits this many bytes */
    int threads;
    bool force;
};
/* reelfarm vae-decode: LATENTS.h5 (latents [z, F, h, w]) -> video [3, 4(F-1)+1, 8h, 8w] (HDF5 or encoded). Spec 7. */
int worker_vae_decode(const struct vae_decode_options *opt);

struct vae_encode_options {
    const char *model_dir;
    const char *in_path;    /* image, video, or HDF5 with video [3, T, H, W] */
    const char *out_path;   /* .h5 */
    int64_t width, height;  /* 0: the input's size (must be multiples of 16) */
    int64_t max_frames;     /* <= 0: all */
    enum dtype vae_cache;   /* the VAE stream's cross-frame state: DTYPE_F32 (exact, default) or DTYPE_BF16 */
    int threads;
    bool force;
};
/* reelfarm vae-encode: image / video / HDF5 video -> LATENTS.h5 (latents [z, 1 + (T-1)/4, H/8, W/8]). Spec 6.6, 7. */
int worker_vae_encode(const struct vae_encode_options *opt);

struct bench_vae_options {
    int64_t pixel_frames;   /* the clip (4k + 1 frames) */
    int64_t latent_frames;  /* > 0: run only this many of its latent frames */
    int64_t height, width;  /* pixels (multiples of 16) */
    int64_t base_dim;       /* > 0 overrides 96 */
    bool encode;            /* time the encoder instead of the decoder */
    enum dtype vae_cache;   /* the stream's cross-frame state: DTYPE_F32 (default) or DTYPE_BF16 */
    int vae_bands;          /* > 0: decoder row bands (model/wan_vae.h), frame-major unless vae_band_major */
    bool vae_band_major;    /* one band through every latent frame, then the next */
    size_t vae_memory;      /* > 0: band-major with the fewest bands whose stream fits this many bytes */
    int threads;
    uint64_t seed;
};
/* reelfarm bench-vae: time and memory of the VAE streams with random weights. */
int worker_bench_vae(const struct bench_vae_options *opt);

struct render_settings;
struct render_options {
    struct render_settings *settings; /* flags merged with the film file (resolved in place) */
    const char *checkpoint;     /* NULL: <output>.ckpt.h5 */
    bool no_checkpoint;         /* keep no checkpoint (spools are still used, then removed) */
    int checkpoint_every;       /* rows between checkpoints (0: only at chunk ends) */
    const char *resume;         /* the checkpoint to continue (settings come from it) */
    const char *noise_path;     /* HDF5 `noise` [16, F, h, w] for the first chunk */
    const char *latents_out;    /* HDF5 `latents` [16, L, h, w]: the film's latent sequence */
    bool overwrite, keep_checkpoint, quiet, progress_json;
    int threads;
    struct par_request par;     /* layout under mpirun/srun (all zero: automatic) */
    bool encoder_rank;          /* the last rank decodes and encodes beside the DiT (latent overlap) */
    /* Embedding (the render service): asked by the lead at every row boundary; true stops the render there
     * as SIGTERM does (checkpoint kept, ERR_INTERRUPTED, *exit_signal SIGTERM). NULL: signals only. */
    bool (*stop)(void *user);
    void *stop_user;
    progress_hook_fn progress_hook; /* every progress event as JSON (the lead's), NULL: none */
    void *progress_user;
};
/* reelfarm render: prompt or film file -> film (spec 6). *exit_signal gets the signal that stopped it (0 if
 * none); ERR_INTERRUPTED then means a checkpoint was written. */
int worker_render(const struct render_options *opt, int *exit_signal);
/* The resident half of a render: the process mesh and this rank's DiT slice, the VAE, the tokenizer and the
 * text encoder, loaded once. worker_render loads them per call; the render service (cli/cmd_serve.c) loads
 * them at start-up and renders job after job with worker_render_with. Under MPI every rank calls these
 * collectively, with the same options. */
struct render_models;
struct render_models_options {
    const char *model_dir;
    int threads;                /* <= 0: all cores */
    struct par_request par;     /* layout (all zero: automatic) */
    bool guidance;              /* the jobs use guidance > 1 (the layout may split the two passes) */
    bool encoder_rank;          /* the last rank decodes and encodes (jobs then need latent overlap) */
};
int render_models_load(struct render_models **m, const struct render_models_options *opt);
void render_models_free(struct render_models **m);
/* Every rank of the models' job (for the service's per-job broadcast). */
struct comm *render_models_world(const struct render_models *m);
const char *render_models_dir(const struct render_models *m);
/* worker_render on models already loaded: opt->settings->model must be render_models_dir(m), and opt's
 * threads, par and encoder_rank are ignored (the models' own apply). */
int worker_render_with(struct render_models *m, const struct render_options *opt, int *exit_signal);
/* The settings saved in a checkpoint, merged into s (flags already set in s win, and are then compared), and
 * its --noise and --save-latents paths where *noise_path / *latents_out are NULL (malloc'd). */
int worker_render_checkpoint_settings(const char *checkpoint, struct render_settings *s, char **noise_path,
                                      char **latents_out);
/* The built-in tiny model: created on first use under $XDG_CACHE_HOME/reelfarm (or ~/.cache/reelfarm);
 * its directory into out. */
int worker_builtin_model(char *out, size_t cap);

#endif /* REELFARM_WORKER_WORKER_H */

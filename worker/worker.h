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

#include "kernels/ops.h"

struct dit_forward_options {
    const char *model_dir;
    const char *in_path;
    const char *out_path;
    int causal_block_size; /* 0: full attention */
    int threads;           /* <= 0: all cores */
    bool force;            /* overwrite an existing output */
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
    uint64_t seed;
};

/* reelfarm bench: time forwards of a random-weight model; prints one key=value line. */
int worker_bench(const struct bench_options *opt);

#endif /* REELFARM_WORKER_WORKER_H */

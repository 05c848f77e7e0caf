/* model/df_sampler.h - the diffusion-forcing denoising loop for one window (spec 6.4).
 *
 * Given the window's starting noise, optional clean prefix latents and an optional end latent, runs every
 * row of the timestep matrix (model/df_schedule.h): builds the model input (the whole window, with
 * add-noise conditioning of the prefix if asked), calls the DiT for the conditional context and, when
 * guidance > 1, the unconditional one, combines them (classifier-free guidance, spec 3.8) and steps the
 * scheduler of every frame the row updates (model/flow_unipc.h, one scheduler per latent frame).
 *
 * Add-noise conditioning draws fresh noise every row from the counter-based generator, addressed by
 * (seed, RNG_PURPOSE_ADDNOISE, chunk, row) and the element index within the prefix: upstream draws it from
 * the unseeded default CUDA generator (spec 13.10), so its results are not reproducible; ours are, for any
 * thread or rank count and any resume point.
 *
 * The CPU backend keeps the window in host memory; the loop allocates everything once before the first
 * row and nothing inside it.
 */
#ifndef REELFARM_MODEL_DF_SAMPLER_H
#define REELFARM_MODEL_DF_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "kernels/ops.h"
#include "model/df_schedule.h"
#include "model/flow_unipc.h"
#include "model/wan_dit.h"

struct df_sampling {
    int steps;                 /* N */
    double shift;              /* 8 for T2V/DF, 5 for I2V */
    double guidance;           /* CFG scale; <= 1: conditional pass only */
    int ar_step;               /* 0: synchronous */
    int causal_block_size;     /* shapes the schedule */
    bool causal_attention;     /* also apply the block-causal mask (upstream --causal_attention) */
    int addnoise_condition;    /* 0: off; K: prefix noised by 0.001 K and fed with timestep K */
    uint64_t seed;             /* for add-noise draws */
    int64_t chunk;             /* chunk index (RNG addressing) */
    int fps;                   /* frames per second; the model's fps code is 0 for 16, else 1 */
    enum unipc_variant variant;
    /* Parallel layout (issue "distributed"; NULL: this rank computes everything). par spreads each
     * DiT forward over sequence/tensor-parallel ranks; cfg (2 ranks) runs the conditional pass on
     * its rank 0 and the unconditional one on its rank 1 at the same time. Every rank keeps the
     * whole scheduler state and ends with the same latents, bit for bit. */
    const struct wan_dit_par *par;
    struct comm *cfg;
};

struct df_window {
    const struct tensor *noise;            /* [16, F, H, W] starting latents of the whole window */
    const struct tensor *prefix;           /* [16, P, H, W] clean prefix (placed at frames [0, P)), or NULL */
    const struct tensor *end;              /* [16, 1, H, W] end latent appended after the window, or NULL */
    const struct tensor *context;          /* [L, text_dim] */
    const struct tensor *negative_context; /* [L', text_dim]; required when guidance > 1 */
};

/* Per-row progress (may be NULL). */
typedef void (*df_progress_fn)(int64_t row, int64_t rows, double seconds, void *user);

/* Validate everything against the model first (recoverable errors naming the input or flag), then run.
 * out_latents: [16, F, H, W] host buffer. On success *sched holds the schedule that was run (caller frees). */
int df_denoise_window(const struct wan_model *m, const struct exec_ctx *ctx, const struct df_sampling *s,
                      const struct df_window *w, float *out_latents, struct df_schedule *sched,
                      df_progress_fn progress, void *progress_user);

/* ---- the same loop one row at a time, with its state exported for checkpoints (exact resume) ----
 *
 * df_run_open validates and allocates everything (the window tensors in *w must outlive the run) and sets
 * the window to noise + prefix + end latent; df_run_row runs the next row. The whole state between rows is
 * the window latents and each generated frame's solver state (counters and four buffers: three x0 history
 * slots and the last sample); everything else (schedule, grid, add-noise draws addressed by seed, chunk and
 * row) is a pure function of the settings. df_run_export / df_run_import copy it out and back in, so a run
 * imported from an export continues bit-identically. */
struct df_run;

/* Called at named points inside a row ("mid-row": between the conditional and unconditional forwards);
 * the render's test hooks use it to interrupt a row. */
typedef void (*df_hook_fn)(void *user, const char *point);

enum { DF_SOLVER_INTS = 5 }; /* k, this_order, lower_order_nums, slot_prev1, slot_prev2 */

struct df_run_state_shape {
    int64_t channels, frames, columns, height, width; /* columns = frames (+ 1 with an end latent) */
    int64_t prefix, rows;
};

/* Buffers the caller allocates from df_run_state_shape: */
struct df_run_state {
    int64_t next_row;
    float *window;          /* [channels, columns, height, width] */
    int32_t *solver_ints;   /* [frames, DF_SOLVER_INTS] (zeros for prefix frames) */
    float *solver_buffers;  /* [frames, 4, channels, height * width] (zeros for prefix frames) */
};

int df_run_open(struct df_run **out, const struct wan_model *m, const struct exec_ctx *ctx, const struct df_sampling *s,
                const struct df_window *w);
void df_run_close(struct df_run **r);
void df_run_set_hook(struct df_run *r, df_hook_fn hook, void *user);
const struct df_schedule *df_run_schedule(const struct df_run *r);
int64_t df_run_next_row(const struct df_run *r);
bool df_run_done(const struct df_run *r);
void df_run_row(struct df_run *r);
/* The generated frames [16, F, H, W] (end latent excluded) into a host buffer. */
void df_run_latents(const struct df_run *r, float *out_latents);
void df_run_state_shape(const struct df_run *r, struct df_run_state_shape *sh);
void df_run_export(const struct df_run *r, struct df_run_state *st);
/* Validates the counters (ERR_FORMAT naming the frame) before changing anything. */
int df_run_import(struct df_run *r, const struct df_run_state *st);

#endif /* REELFARM_MODEL_DF_SAMPLER_H */

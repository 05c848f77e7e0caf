/* model/df_schedule.h - the diffusion-forcing timestep matrix (spec section 4).
 *
 * For a window of latent frames: which timestep every frame sees in every denoising row, which frames
 * the row updates, and the valid interval of the row. Frames are grouped into causal blocks of
 * causal_block_size frames that share one schedule; block b lags block b - 1 by ar_step steps
 * (ar_step 0 = synchronous); the first num_pre_ready frames are clean prefix frames (finished from the
 * start). An appended end frame (end-image latent) gets timestep 0 and is never updated in every row;
 * unlike upstream (which requires causal_block_size 1 for it) the matrix of the generated frames is built
 * first and the end column appended, which gives the same schedule for block size 1 and works for any.
 * Settings that upstream would turn into an out-of-range access are refused up front with a message that
 * says what to change. A prefix that is not a whole number of blocks (an image prefix of 1 frame with
 * causal_block_size > 1) is handled sensibly instead of upstream's way (spec 6.6, 13.16: upstream schedules
 * the clean image frame like noise, or drops it): the whole blocks it covers are ready, and its frames in
 * the partly covered block stay clean (timestep 0, never updated) while the block's other frames follow the
 * block's schedule.
 */
#ifndef REELFARM_MODEL_DF_SCHEDULE_H
#define REELFARM_MODEL_DF_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

struct df_schedule_params {
    int64_t frames;               /* latent frames of the window, prefix included, end frame excluded */
    int64_t base_frames;          /* model window in latent frames; 0 = frames (what the pipelines pass) */
    int steps;                    /* N */
    const int64_t *step_template; /* [N] integer timesteps of the scheduler grid */
    int ar_step;                  /* lag between consecutive blocks in steps, 0 = synchronous */
    int64_t num_pre_ready;        /* clean prefix frames at the start */
    int causal_block_size;        /* frames per block */
    bool end_frame;               /* append one end latent with timestep 0, never updated */
};

struct df_schedule {
    int64_t rows;
    int64_t columns;      /* frames (+ 1 with an end frame) */
    int steps;
    int64_t *timestep;    /* [rows, columns] the timestep each frame sees */
    int64_t *step_index;  /* [rows, columns] 0 = not started, 1..N = step to apply, N + 1 = done */
    uint8_t *update;      /* [rows, columns] 1 where the row takes a scheduler step for that frame */
    int64_t *valid;       /* [rows, 2] frames [start, end) the model sees in that row */
};

/* Validate and build. Errors (ERR_INVALID_ARG) name the setting and a valid choice. */
int df_schedule_build(struct df_schedule *s, const struct df_schedule_params *p);
void df_schedule_free(struct df_schedule *s);

/* Rows for a window without building it (same validation as df_schedule_build when a template is not
 * needed): N when ar_step is 0, else N + (blocks - 1 - prefix blocks) * min(ar_step, N). */
int df_schedule_count_rows(const struct df_schedule_params *p, int64_t *rows);

#endif /* REELFARM_MODEL_DF_SCHEDULE_H */

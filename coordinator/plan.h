/* coordinator/plan.h - the long-video chunk plan of SkyReels-V2 diffusion forcing (spec 6.3, 6.6, 6.7).
 *
 * A pure function: from the requested length, the model window (base frames), the overlap carried from
 * chunk to chunk, the schedule settings and the conditioning inputs, it lists the chunks - where each
 * sits in the film's latent sequence, its prefix, how many latent and pixel frames it adds, its denoising
 * rows and DiT forwards - and the totals. Invalid combinations are refused with the flag named and a
 * valid nearby value. Frame counts are video frames (4k + 1); lat(P) = (P - 1) / 4 + 1 latent frames.
 *
 * Row counts use the closed form of the timestep matrix (N when synchronous, else
 * N + (blocks - 1 - prefix blocks) * min(ar_step, N)); tests check it against model/df_schedule.c,
 * which this layer may not call.
 */
#ifndef REELFARM_COORDINATOR_PLAN_H
#define REELFARM_COORDINATOR_PLAN_H

#include <stdbool.h>
#include <stdint.h>

struct plan_request {
    int64_t frames;          /* video frames to generate; the film gets lat(frames) latents, i.e. the 4k+1
                                count at or below it; 0: derive from seconds and fps */
    double seconds;          /* used when frames == 0 */
    int fps;                 /* frames per second (24 upstream) */
    int64_t base_frames;     /* model window in video frames (97 at 540P, 121 at 720P); 0 = one window */
    int64_t overlap;         /* video frames shared by consecutive chunks (17 or 37); 0 = one window */
    int steps;               /* N */
    int ar_step;             /* 0 synchronous */
    int causal_block_size;
    double guidance;         /* > 1: two DiT forwards per row */
    bool start_image;        /* image as the first frame: a 1-latent prefix of chunk 0 */
    bool end_image;          /* end frame appended to the last chunk */
    int64_t extend_frames;   /* > 0: extend an input video of this many frames (frames counts new + overlap) */
};

struct plan_chunk {
    int64_t index;
    int64_t latent_start;   /* first latent frame of the window in the film's latent sequence */
    int64_t latent_frames;  /* window length (prefix included, end frame excluded) */
    int64_t prefix_frames;  /* clean prefix latents (re-encoded overlap, or the start image) */
    bool end_frame;         /* the end image's latent is appended to this window */
    int64_t new_latents;    /* latents this chunk adds to the film */
    int64_t new_frames;     /* video frames this chunk adds to the film */
    int64_t first_frame;    /* index of its first new video frame in the output */
    int64_t rows;           /* denoising rows (timestep-matrix rows) */
    int64_t forwards;       /* DiT forwards (rows x 2 with guidance) */
};

struct plan {
    bool long_mode;
    int64_t frames;          /* video frames requested (after seconds conversion) */
    int64_t output_frames;   /* video frames the plan makes: 4(lat - 1) + 1, or the new frames of an extension */
    int64_t latent_frames;   /* lat(frames) */
    int64_t base_latents, overlap_latents;
    int64_t n_chunks;
    struct plan_chunk *chunks;
    int64_t total_rows, total_forwards;
};

int plan_build(const struct plan_request *r, struct plan *p);
void plan_free(struct plan *p);
/* lat(P) = (P - 1) / 4 + 1; 4(L - 1) + 1 back. */
int64_t plan_latents(int64_t video_frames);
int64_t plan_video_frames(int64_t latents);

#endif /* REELFARM_COORDINATOR_PLAN_H */

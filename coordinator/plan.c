/* coordinator/plan.c - the chunk plan (spec 6.3 long-video loop, 6.7 extension). Mirrors the chunk
 * arithmetic of DiffusionForcingPipeline.__call__ / extend_video in skyreels_v2_infer/pipelines/
 * diffusion_forcing_pipeline.py. */
#include "coordinator/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int64_t plan_latents(int64_t video_frames) { return (video_frames - 1) / 4 + 1; }
int64_t plan_video_frames(int64_t latents) { return 4 * (latents - 1) + 1; }

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int need_4k1(const char *flag, int64_t v) {
    if (v >= 1 && (v - 1) % 4 == 0) return ERR_OK;
    const int64_t lo = v < 1 ? 1 : (v - 1) / 4 * 4 + 1;
    return err_set(ERR_INVALID_ARG, "%s %lld: video frame counts are 4k+1 (the VAE packs 4 frames per latent after "
                                    "the first); use %lld or %lld",
                   flag, (long long)v, (long long)lo, (long long)(lo + 4));
}

/* Rows of one window (closed form of model/df_schedule.c). */
static int64_t window_rows(const struct plan_request *r, int64_t frames, int64_t prefix) {
    if (r->ar_step == 0) return r->steps;
    const int64_t blocks = frames / r->causal_block_size, ready = prefix / r->causal_block_size;
    const int64_t lag = r->ar_step < r->steps ? r->ar_step : r->steps;
    return r->steps + (blocks - 1 - ready) * lag;
}

/* The nearest base-frame values around b (4k + 1) whose latent count the block size divides. */
static void nearby_base(int64_t b, int cbs, int64_t *lo, int64_t *hi) {
    const int64_t l = plan_latents(b);
    int64_t dn = l / cbs * cbs, up = dn + cbs;
    if (dn < cbs) dn = up;
    *lo = plan_video_frames(dn);
    *hi = plan_video_frames(up);
}

static int check_request(const struct plan_request *r, int64_t frames) {
    /* Any frame count is accepted, as upstream does: it yields lat(frames) latents, i.e. the 4k+1 count at or
     * below it (plan.output_frames says which). Window and overlap must be 4k+1: the stitching drops exactly
     * `overlap` decoded frames, which must be whole latents. */
    if (frames < 1 || frames > 1000000) return err_set(ERR_INVALID_ARG, "--frames %lld: expected 1 to 1000000", (long long)frames);
    if (r->steps < 1 || r->steps > 1000) return err_set(ERR_INVALID_ARG, "--steps %d: expected 1 to 1000", r->steps);
    if (r->ar_step < 0) return err_set(ERR_INVALID_ARG, "--ar-step %d: expected 0 (synchronous) or more", r->ar_step);
    if (r->causal_block_size < 1)
        return err_set(ERR_INVALID_ARG, "--causal-block-size %d: expected 1 or more", r->causal_block_size);
    if (r->base_frames) TRY(need_4k1("--base-frames", r->base_frames));
    if (r->overlap) TRY(need_4k1("--overlap", r->overlap));
    if (r->base_frames && r->overlap && r->overlap >= r->base_frames)
        return err_set(ERR_INVALID_ARG, "--overlap %lld must be smaller than --base-frames %lld; try --overlap 17",
                       (long long)r->overlap, (long long)r->base_frames);
    if (r->base_frames && r->overlap && plan_latents(r->overlap) >= plan_latents(r->base_frames))
        return err_set(ERR_INVALID_ARG, "--overlap %lld leaves no new latent frames per chunk of --base-frames %lld",
                       (long long)r->overlap, (long long)r->base_frames);
    if (r->extend_frames) {
        if (!r->overlap || !r->base_frames)
            return err_set(ERR_INVALID_ARG, "video extension needs --base-frames and --overlap (e.g. 97 and 17)");
        if (r->extend_frames < r->overlap)
            return err_set(ERR_INVALID_ARG, "video extension needs at least %lld input frames (--overlap), got %lld",
                           (long long)r->overlap, (long long)r->extend_frames);
        if (frames <= r->overlap)
            return err_set(ERR_INVALID_ARG, "--frames %lld counts the new frames plus the %lld overlap frames; use "
                                            "more than %lld, e.g. %lld",
                           (long long)frames, (long long)r->overlap, (long long)r->overlap,
                           (long long)(r->overlap + 80));
        if (r->start_image) return err_set(ERR_INVALID_ARG, "--image and video extension cannot be combined");
    }
    return ERR_OK;
}

static int check_window_blocks(const struct plan_request *r, const struct plan *p, int64_t i, int64_t f) {
    const int cbs = r->causal_block_size;
    if (f % cbs == 0) return ERR_OK;
    if (!p->long_mode) {
        const int64_t lo = f / cbs * cbs, hi = lo + cbs;
        return err_set(ERR_INVALID_ARG,
                       "--frames %lld gives %lld latent frames, not divisible by --causal-block-size %d; use "
                       "--frames %lld or %lld",
                       (long long)p->frames, (long long)f, cbs, (long long)plan_video_frames(lo ? lo : hi),
                       (long long)plan_video_frames(hi));
    }
    if (f == p->base_latents) {
        int64_t lo, hi;
        nearby_base(r->base_frames, cbs, &lo, &hi);
        return err_set(ERR_INVALID_ARG,
                       "--base-frames %lld gives %lld latent frames per chunk, not divisible by --causal-block-size %d; "
                       "use --base-frames %lld or %lld",
                       (long long)r->base_frames, (long long)f, cbs, (long long)lo, (long long)hi);
    }
    /* the last, shorter chunk: move --frames by whole latents until it divides */
    const int64_t short_by = f % cbs, lo = p->frames - 4 * short_by, hi = p->frames + 4 * (cbs - short_by);
    return err_set(ERR_INVALID_ARG,
                   "chunk %lld would have %lld latent frames, not divisible by --causal-block-size %d; use --frames "
                   "%lld or %lld",
                   (long long)i, (long long)f, cbs, (long long)lo, (long long)hi);
}

int plan_build(const struct plan_request *r, struct plan *p) {
    memset(p, 0, sizeof *p);
    int64_t frames = r->frames;
    if (frames == 0) {
        if (!(r->seconds > 0) || r->fps < 1 || r->fps > 240)
            return err_set(ERR_INVALID_ARG, "give --frames, or --seconds (> 0) with --fps (1 to 240)");
        frames = 4 * (int64_t)ceil(r->seconds * r->fps / 4.0) + 1;
    }
    TRY(check_request(r, frames));
    p->frames = frames;
    p->latent_frames = plan_latents(frames);
    p->long_mode = r->base_frames && r->overlap && (frames > r->base_frames || r->extend_frames);
    const int64_t lt = p->latent_frames;
    const int cbs = r->causal_block_size;
    const int fwd = r->guidance > 1.0 ? 2 : 1;

    if (!p->long_mode) { /* spec 6.2: one window of all frames */
        p->n_chunks = 1;
        p->chunks = calloc(1, sizeof *p->chunks);
        if (!p->chunks) return err_set(ERR_NOMEM, "out of memory");
        struct plan_chunk *c = &p->chunks[0];
        c->latent_frames = lt;
        c->prefix_frames = r->start_image ? 1 : 0;
        c->end_frame = r->end_image;
        TRY(check_window_blocks(r, p, 0, lt));
        c->new_latents = lt;
        c->new_frames = plan_video_frames(lt);
        c->rows = window_rows(r, lt, c->prefix_frames);
        c->forwards = c->rows * fwd;
        p->output_frames = c->new_frames;
        p->total_rows = c->rows;
        p->total_forwards = c->forwards;
        return ERR_OK;
    }

    /* spec 6.3 (and 6.7 for an extension, where every chunk starts from the overlap) */
    const int64_t b = plan_latents(r->base_frames), o = plan_latents(r->overlap);
    p->base_latents = b;
    p->overlap_latents = o;
    const int64_t n_iter = 1 + floor_div(lt - b - 1, b - o) + 1;
    const int64_t prefix_o = o - o % cbs; /* re-encoded overlap, cut to whole blocks (spec 6.3 step 1) */
    p->n_chunks = n_iter;
    p->chunks = calloc((size_t)n_iter, sizeof *p->chunks);
    if (!p->chunks) return err_set(ERR_NOMEM, "out of memory");
    int64_t out_frames = 0;
    for (int64_t i = 0; i < n_iter; i++) {
        struct plan_chunk *c = &p->chunks[i];
        c->index = i;
        const bool from_overlap = i > 0 || r->extend_frames;
        if (!from_overlap) {
            c->latent_frames = b;
            c->prefix_frames = r->start_image ? 1 : 0;
            c->latent_start = 0;
            c->new_latents = b;
            c->new_frames = plan_video_frames(b);
        } else {
            const int64_t finished = i * (b - o) + o, left = lt - finished;
            c->latent_frames = left + o < b ? left + o : b;
            c->prefix_frames = prefix_o;
            c->latent_start = finished - o;
            c->new_latents = c->latent_frames - o;
            c->new_frames = 4 * c->new_latents; /* the first `overlap` decoded frames re-render the prefix */
            if (c->new_latents < 1) {
                plan_free(p);
                return err_set(ERR_INVALID_ARG, "chunk %lld would add no frames; use fewer --frames or a smaller "
                                                "--overlap",
                               (long long)i);
            }
        }
        int rc = check_window_blocks(r, p, i, c->latent_frames);
        if (rc < 0) {
            plan_free(p);
            return rc;
        }
        c->end_frame = r->end_image && i == n_iter - 1;
        c->first_frame = out_frames;
        out_frames += c->new_frames;
        c->rows = window_rows(r, c->latent_frames, c->prefix_frames);
        c->forwards = c->rows * fwd;
        p->total_rows += c->rows;
        p->total_forwards += c->forwards;
    }
    p->output_frames = out_frames;
    return ERR_OK;
}

void plan_free(struct plan *p) {
    free(p->chunks);
    p->chunks = NULL;
    p->n_chunks = 0;
}

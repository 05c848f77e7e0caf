/* model/df_sampler.c - one window of diffusion forcing (spec 6.2 steps 2-6, 6.4). Mirrors
 * DiffusionForcingPipeline.__call__'s inner loop in skyreels_v2_infer/pipelines/diffusion_forcing_pipeline.py. */
#include "model/df_sampler.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"

/* Frame j of a [C, F, H, W] tensor as rows [C, H W] (row stride F H W). */
static struct tensor frame_rows(const struct tensor *t, int64_t j) {
    const int64_t plane = t->shape[2] * t->shape[3];
    struct tensor r = tensor_make(DTYPE_F32, t->device, (float *)t->data + j * plane, 2, (int64_t[]){t->shape[0], plane});
    r.stride[0] = t->shape[1] * plane;
    return r;
}

/* Frames [j0, j0 + n) of a [C, F, H, W] tensor as rows [C, n H W]. */
static struct tensor frames_rows(const struct tensor *t, int64_t j0, int64_t n) {
    const int64_t plane = t->shape[2] * t->shape[3];
    struct tensor r =
        tensor_make(DTYPE_F32, t->device, (float *)t->data + j0 * plane, 2, (int64_t[]){t->shape[0], n * plane});
    r.stride[0] = t->shape[1] * plane;
    return r;
}

static int check_window(const struct wan_model *m, const struct df_sampling *s, const struct df_window *w) {
    char a[96], b[96];
    const struct tensor *nz = w->noise;
    const int64_t c = m->cfg.out_channels;
    if (m->cfg.in_channels != c)
        return err_set(ERR_UNSUPPORTED, "denoise: image-to-video models (in_channels %lld) are not supported by the "
                                        "diffusion-forcing loop; use a DF or T2V model",
                       (long long)m->cfg.in_channels);
    if (nz->ndim != 4 || nz->shape[0] != c)
        return err_set(ERR_SHAPE, "noise: expected [%lld, F, H, W], found %s", (long long)c, tensor_shape_str(a, sizeof a, nz));
    if (w->prefix) {
        const struct tensor *p = w->prefix;
        if (p->ndim != 4 || p->shape[0] != c || p->shape[2] != nz->shape[2] || p->shape[3] != nz->shape[3] ||
            p->shape[1] < 1 || p->shape[1] >= nz->shape[1])
            return err_set(ERR_SHAPE, "prefix_latents: expected [%lld, P, %lld, %lld] with 1 <= P < %lld, found %s",
                           (long long)c, (long long)nz->shape[2], (long long)nz->shape[3], (long long)nz->shape[1],
                           tensor_shape_str(a, sizeof a, p));
    }
    if (w->end) {
        const int64_t want[4] = {c, 1, nz->shape[2], nz->shape[3]};
        if (!tensor_has_shape(w->end, 4, want))
            return err_set(ERR_SHAPE, "end_latents: expected %s, found %s", shape_str(a, sizeof a, 4, want),
                           tensor_shape_str(b, sizeof b, w->end));
    }
    if (w->end && s->causal_attention)
        return err_set(ERR_INVALID_ARG,
                       "end_latents with --causal-attention: the end frame would sit in a later causal block than "
                       "every generated frame, so none could attend to it and the end image would be ignored; drop "
                       "--causal-attention (the schedule keeps its block structure) or the end latent");
    if (s->guidance > 1.0 && !w->negative_context)
        return err_set(ERR_MISSING, "negative_context: required for guidance %g > 1", s->guidance);
    if (!(s->guidance >= 0.0) || s->guidance > 100.0)
        return err_set(ERR_INVALID_ARG, "--guidance %g: expected a number in [0, 100]", s->guidance);
    if (s->addnoise_condition < 0 || s->addnoise_condition > 999)
        return err_set(ERR_INVALID_ARG, "--addnoise-condition %d: expected 0 (off) to 999 (upstream suggests 20)",
                       s->addnoise_condition);
    if (s->fps < 1 || s->fps > 1000) return err_set(ERR_INVALID_ARG, "--fps %d: expected 1 to 1000", s->fps);
    return ERR_OK;
}

int df_denoise_window(const struct wan_model *m, const struct exec_ctx *ctx, const struct df_sampling *s,
                      const struct df_window *w, float *out_latents, struct df_schedule *sched,
                      df_progress_fn progress, void *progress_user) {
    memset(sched, 0, sizeof *sched);
    TRY(check_window(m, s, w));
    const int64_t c = w->noise->shape[0], f = w->noise->shape[1], h = w->noise->shape[2], wd = w->noise->shape[3];
    const int64_t plane = h * wd, p = w->prefix ? w->prefix->shape[1] : 0;
    const int64_t cols = f + (w->end ? 1 : 0);
    const bool cfg = s->guidance > 1.0;

    struct unipc_grid grid;
    TRY(unipc_grid_init(&grid, s->steps, s->shift));
    struct df_schedule_params sp = {.frames = f, .steps = s->steps, .step_template = grid.timesteps,
                                    .ar_step = s->ar_step, .num_pre_ready = p,
                                    .causal_block_size = s->causal_block_size, .end_frame = w->end != NULL};
    int rc = df_schedule_build(sched, &sp);
    struct arena arena = {0};
    struct wan_dit_workspace ws = {0};
    struct unipc_frame *solver = NULL;
    if (rc < 0) goto end;

    /* the model input for every row and its shape check */
    struct wan_dit_input in;
    memset(&in, 0, sizeof in);
    in.fps_code = s->fps == 16 ? 0 : 1;
    in.causal_block_size = s->causal_attention ? s->causal_block_size : 0;
    in.context = *w->context;

    /* buffers: window, model input, velocities, timesteps, add-noise draw, per-frame solver state */
    const int64_t win_n = c * cols * plane, frame_n = c * plane;
    const size_t bytes = 4 * arena_round((size_t)win_n * sizeof(float)) + arena_round((size_t)cols * sizeof(float)) +
                         arena_round((size_t)(c * (p ? p : 1) * plane) * sizeof(float)) +
                         (size_t)(f - p) * 4 * arena_round((size_t)frame_n * sizeof(float));
    if ((rc = arena_init(&arena, "sampler", bytes)) < 0) goto end;
    const int64_t win_shape[4] = {c, cols, h, wd};
    struct tensor lat = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)win_n * 4), 4, win_shape);
    struct tensor x_in = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)win_n * 4), 4, win_shape);
    struct tensor v_c = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)win_n * 4), 4, win_shape);
    struct tensor v_u = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)win_n * 4), 4, win_shape);
    struct tensor t_in = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)cols * 4), 1, (int64_t[]){cols});
    struct tensor eps = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)(c * (p ? p : 1) * plane) * 4), 4,
                                    (int64_t[]){c, p ? p : 1, h, wd});
    solver = calloc((size_t)f, sizeof *solver);
    if (!solver) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    for (int64_t j = p; j < f; j++) {
        struct tensor slots[3], last;
        for (int i = 0; i < 4; i++) {
            struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(&arena, (size_t)frame_n * 4), 2,
                                          (int64_t[]){c, plane});
            if (i < 3)
                slots[i] = t;
            else
                last = t;
        }
        unipc_frame_init(&solver[j], slots, &last);
    }

    /* window = noise, prefix over [0, P), end latent after the generated frames */
    struct tensor lat_gen = frames_rows(&lat, 0, f);
    struct tensor noise_rows = tensor_reshape(w->noise, 2, (int64_t[]){c, f * plane});
    op_copy(ctx, &lat_gen, &noise_rows);
    if (p) {
        struct tensor dst = frames_rows(&lat, 0, p), src = tensor_reshape(w->prefix, 2, (int64_t[]){c, p * plane});
        op_copy(ctx, &dst, &src);
    }
    if (w->end) {
        struct tensor dst = frame_rows(&lat, f), src = tensor_reshape(w->end, 2, (int64_t[]){c, plane});
        op_copy(ctx, &dst, &src);
    }

    in.latents = x_in;
    in.timesteps = t_in;
    struct wan_dit_shape shape;
    if ((rc = wan_dit_check_input(m, &in, &shape)) < 0) goto end;
    if (cfg) {
        struct wan_dit_input un = in;
        un.context = *w->negative_context;
        struct wan_dit_shape ushape;
        if ((rc = wan_dit_check_input(m, &un, &ushape)) < 0) {
            err_wrap("negative ");
            goto end;
        }
        if (ushape.context_len != shape.context_len) {
            rc = err_set(ERR_SHAPE, "negative_context: %lld rows, but context has %lld (encode both to the same "
                                    "text length)",
                         (long long)ushape.context_len, (long long)shape.context_len);
            goto end;
        }
    }
    if ((rc = wan_dit_workspace_init(&ws, m, &shape)) < 0) goto end;

    const float nf = 0.001f * (float)s->addnoise_condition;
    const bool addnoise = s->addnoise_condition > 0 && p > 0;
    const double t_start = time_now();
    for (int64_t r = 0; r < sched->rows; r++) {
        /* the model input: the whole window (valid interval is always the full window, spec 4.2) */
        op_copy(ctx, &x_in, &lat);
        float *tv = t_in.data;
        for (int64_t j = 0; j < cols; j++) tv[j] = (float)sched->timestep[r * cols + j];
        if (addnoise) { /* spec 6.4 step 2: fresh noise every row, stored prefix stays clean */
            const uint64_t stream = rng_stream_id(RNG_PURPOSE_ADDNOISE, (uint64_t)s->chunk, (uint64_t)r, 0);
            op_randn(ctx, &eps, s->seed, stream, 0);
            struct tensor xp = frames_rows(&x_in, 0, p), ep = tensor_reshape(&eps, 2, (int64_t[]){c, p * plane});
            const struct tensor *terms[2] = {&xp, &ep};
            op_lincomb(ctx, &xp, 2, (double[]){1.0 - nf, nf}, terms);
            for (int64_t j = 0; j < p; j++) tv[j] = (float)s->addnoise_condition;
        }
        in.context = *w->context;
        wan_dit_forward(m, ctx, &ws, &in, &v_c);
        if (cfg) { /* v = v_u + g (v_c - v_u), spec 3.8 */
            in.context = *w->negative_context;
            wan_dit_forward(m, ctx, &ws, &in, &v_u);
            struct tensor vc = tensor_reshape(&v_c, 2, (int64_t[]){c, cols * plane});
            struct tensor vu = tensor_reshape(&v_u, 2, (int64_t[]){c, cols * plane});
            const struct tensor *terms[2] = {&vc, &vu};
            op_lincomb(ctx, &vc, 2, (double[]){s->guidance, 1.0 - s->guidance}, terms);
        }
        for (int64_t j = 0; j < f; j++) {
            if (!sched->update[r * cols + j]) continue;
            struct tensor vj = frame_rows(&v_c, j), xj = frame_rows(&lat, j);
            unipc_step(ctx, &grid, &solver[j], s->variant, &vj, &xj);
        }
        if (progress) progress(r, sched->rows, time_now() - t_start, progress_user);
    }
    struct tensor out = tensor_make(DTYPE_F32, DEVICE_CPU, out_latents, 4, (int64_t[]){c, f, h, wd});
    struct tensor out_rows = tensor_reshape(&out, 2, (int64_t[]){c, f * plane});
    struct tensor lat_rows = frames_rows(&lat, 0, f);
    op_copy(ctx, &out_rows, &lat_rows);
end:
    free(solver);
    wan_dit_workspace_free(&ws);
    arena_free(&arena);
    unipc_grid_free(&grid);
    if (rc < 0) df_schedule_free(sched);
    return rc;
}

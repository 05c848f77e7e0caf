/* model/df_sampler.c - one window of diffusion forcing (spec 6.2 steps 2-6, 6.4). Mirrors
 * DiffusionForcingPipeline.__call__'s inner loop in skyreels_v2_infer/pipelines/diffusion_forcing_pipeline.py. */
#include "model/df_sampler.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/comm.h"
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

struct df_run {
    const struct wan_model *m;
    struct exec_ctx ctx;
    struct df_sampling s;
    struct df_window w;
    struct df_schedule sched;
    struct unipc_grid grid;
    struct arena arena;
    struct wan_dit_workspace ws;
    struct unipc_frame *solver; /* [f]; frames [0, p) have none */
    struct wan_dit_input in;
    struct tensor lat, x_in, v_c, v_u, t_in, eps;
    int64_t c, f, h, wd, p, cols, next_row;
    df_hook_fn hook;
    void *hook_user;
};

int df_run_open(struct df_run **out, const struct wan_model *m, const struct exec_ctx *ctx, const struct df_sampling *s,
                const struct df_window *w) {
    *out = NULL;
    TRY(check_window(m, s, w));
    struct df_run *r = calloc(1, sizeof *r);
    if (!r) return err_set(ERR_NOMEM, "out of memory");
    r->m = m, r->ctx = *ctx, r->s = *s, r->w = *w;
    const int64_t c = w->noise->shape[0], f = w->noise->shape[1], h = w->noise->shape[2], wd = w->noise->shape[3];
    const int64_t plane = h * wd, p = w->prefix ? w->prefix->shape[1] : 0;
    const int64_t cols = f + (w->end ? 1 : 0);
    r->c = c, r->f = f, r->h = h, r->wd = wd, r->p = p, r->cols = cols;

    int rc = unipc_grid_init(&r->grid, s->steps, s->shift);
    if (rc < 0) goto fail;
    struct df_schedule_params sp = {.frames = f, .steps = s->steps, .step_template = r->grid.timesteps,
                                    .ar_step = s->ar_step, .num_pre_ready = p,
                                    .causal_block_size = s->causal_block_size, .end_frame = w->end != NULL};
    if ((rc = df_schedule_build(&r->sched, &sp)) < 0) goto fail;

    /* the model input for every row and its shape check */
    struct wan_dit_input *in = &r->in;
    in->fps_code = s->fps == 16 ? 0 : 1;
    in->causal_block_size = s->causal_attention ? s->causal_block_size : 0;
    in->context = *w->context;

    /* buffers: window, model input, velocities, timesteps, add-noise draw, per-frame solver state */
    const int64_t win_n = c * cols * plane, frame_n = c * plane;
    const size_t bytes = 4 * arena_round((size_t)win_n * sizeof(float)) + arena_round((size_t)cols * sizeof(float)) +
                         arena_round((size_t)(c * (p ? p : 1) * plane) * sizeof(float)) +
                         (size_t)(f - p) * 4 * arena_round((size_t)frame_n * sizeof(float));
    if ((rc = arena_init(&r->arena, "sampler", bytes)) < 0) goto fail;
    memset(r->arena.base, 0, r->arena.size); /* solver slots not yet written are saved in checkpoints: keep them defined */
    const int64_t win_shape[4] = {c, cols, h, wd};
    struct arena *a = &r->arena;
    r->lat = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)win_n * 4), 4, win_shape);
    r->x_in = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)win_n * 4), 4, win_shape);
    r->v_c = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)win_n * 4), 4, win_shape);
    r->v_u = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)win_n * 4), 4, win_shape);
    r->t_in = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)cols * 4), 1, (int64_t[]){cols});
    r->eps = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)(c * (p ? p : 1) * plane) * 4), 4,
                         (int64_t[]){c, p ? p : 1, h, wd});
    r->solver = calloc((size_t)f, sizeof *r->solver);
    if (!r->solver) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int64_t j = p; j < f; j++) {
        struct tensor slots[3], last;
        for (int i = 0; i < 4; i++) {
            struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, arena_alloc(a, (size_t)frame_n * 4), 2,
                                          (int64_t[]){c, plane});
            if (i < 3)
                slots[i] = t;
            else
                last = t;
        }
        unipc_frame_init(&r->solver[j], slots, &last);
    }

    /* window = noise, prefix over [0, P), end latent after the generated frames */
    struct tensor lat_gen = frames_rows(&r->lat, 0, f);
    struct tensor noise_rows = tensor_reshape(w->noise, 2, (int64_t[]){c, f * plane});
    op_copy(ctx, &lat_gen, &noise_rows);
    if (p) {
        struct tensor dst = frames_rows(&r->lat, 0, p), src = tensor_reshape(w->prefix, 2, (int64_t[]){c, p * plane});
        op_copy(ctx, &dst, &src);
    }
    if (w->end) {
        struct tensor dst = frame_rows(&r->lat, f), src = tensor_reshape(w->end, 2, (int64_t[]){c, plane});
        op_copy(ctx, &dst, &src);
    }

    in->latents = r->x_in;
    in->timesteps = r->t_in;
    struct wan_dit_shape shape;
    if ((rc = wan_dit_check_input(m, in, &shape)) < 0) goto fail;
    if (s->guidance > 1.0) {
        struct wan_dit_input un = *in;
        un.context = *w->negative_context;
        struct wan_dit_shape ushape;
        if ((rc = wan_dit_check_input(m, &un, &ushape)) < 0) {
            err_wrap("negative ");
            goto fail;
        }
        if (ushape.context_len != shape.context_len) {
            rc = err_set(ERR_SHAPE, "negative_context: %lld rows, but context has %lld (encode both to the same "
                                    "text length)",
                         (long long)ushape.context_len, (long long)shape.context_len);
            goto fail;
        }
    }
    if (comm_size(s->cfg) > 1 && (comm_size(s->cfg) != 2 || !(s->guidance > 1.0))) {
        rc = err_set(ERR_INVALID_ARG, "CFG parallelism needs 2 ranks and guidance > 1 (got %d ranks, guidance %g)",
                     comm_size(s->cfg), s->guidance);
        goto fail;
    }
    if ((rc = wan_dit_workspace_init_par(&r->ws, m, &shape, s->par)) < 0) goto fail;
    *out = r;
    return ERR_OK;
fail:
    df_run_close(&r);
    return rc;
}

void df_run_close(struct df_run **rp) {
    struct df_run *r = *rp;
    if (!r) return;
    free(r->solver);
    wan_dit_workspace_free(&r->ws);
    arena_free(&r->arena);
    unipc_grid_free(&r->grid);
    df_schedule_free(&r->sched);
    free(r);
    *rp = NULL;
}

void df_run_set_hook(struct df_run *r, df_hook_fn hook, void *user) { r->hook = hook, r->hook_user = user; }
const struct df_schedule *df_run_schedule(const struct df_run *r) { return &r->sched; }
int64_t df_run_next_row(const struct df_run *r) { return r->next_row; }
bool df_run_done(const struct df_run *r) { return r->next_row >= r->sched.rows; }

void df_run_row(struct df_run *r) {
    const struct exec_ctx *ctx = &r->ctx;
    const struct df_sampling *s = &r->s;
    const struct df_schedule *sched = &r->sched;
    const int64_t row = r->next_row, c = r->c, p = r->p, cols = r->cols, plane = r->h * r->wd;
    CHECK(row < sched->rows, "row %lld of a window with %lld rows", (long long)row, (long long)sched->rows);
    /* the model input: the whole window (valid interval is always the full window, spec 4.2) */
    op_copy(ctx, &r->x_in, &r->lat);
    float *tv = r->t_in.data;
    for (int64_t j = 0; j < cols; j++) tv[j] = (float)sched->timestep[row * cols + j];
    if (s->addnoise_condition > 0 && p > 0) { /* spec 6.4 step 2: fresh noise every row, stored prefix stays clean */
        const float nf = 0.001f * (float)s->addnoise_condition;
        const uint64_t stream = rng_stream_id(RNG_PURPOSE_ADDNOISE, (uint64_t)s->chunk, (uint64_t)row, 0);
        op_randn(ctx, &r->eps, s->seed, stream, 0);
        struct tensor xp = frames_rows(&r->x_in, 0, p), ep = tensor_reshape(&r->eps, 2, (int64_t[]){c, p * plane});
        const struct tensor *terms[2] = {&xp, &ep};
        op_lincomb(ctx, &xp, 2, (double[]){1.0 - nf, nf}, terms);
        for (int64_t j = 0; j < p; j++) tv[j] = (float)s->addnoise_condition;
    }
    if (comm_size(s->cfg) == 2) { /* both passes at once on the two halves of the ranks, then swapped */
        const bool uncond = comm_rank(s->cfg) == 1;
        r->in.context = uncond ? *r->w.negative_context : *r->w.context;
        wan_dit_forward(r->m, ctx, &r->ws, &r->in, uncond ? &r->v_u : &r->v_c);
        if (r->hook) r->hook(r->hook_user, "mid-row");
        comm_bcast(s->cfg, r->v_c.data, tensor_nbytes(&r->v_c), 0);
        comm_bcast(s->cfg, r->v_u.data, tensor_nbytes(&r->v_u), 1);
    } else {
        r->in.context = *r->w.context;
        wan_dit_forward(r->m, ctx, &r->ws, &r->in, &r->v_c);
    }
    if (s->guidance > 1.0) { /* v = v_u + g (v_c - v_u), spec 3.8 */
        if (comm_size(s->cfg) == 1) {
            if (r->hook) r->hook(r->hook_user, "mid-row");
            r->in.context = *r->w.negative_context;
            wan_dit_forward(r->m, ctx, &r->ws, &r->in, &r->v_u);
        }
        struct tensor vc = tensor_reshape(&r->v_c, 2, (int64_t[]){c, cols * plane});
        struct tensor vu = tensor_reshape(&r->v_u, 2, (int64_t[]){c, cols * plane});
        const struct tensor *terms[2] = {&vc, &vu};
        op_lincomb(ctx, &vc, 2, (double[]){s->guidance, 1.0 - s->guidance}, terms);
    }
    for (int64_t j = 0; j < r->f; j++) {
        if (!sched->update[row * cols + j]) continue;
        struct tensor vj = frame_rows(&r->v_c, j), xj = frame_rows(&r->lat, j);
        unipc_step(ctx, &r->grid, &r->solver[j], s->variant, &vj, &xj);
    }
    r->next_row = row + 1;
}

void df_run_latents(const struct df_run *r, float *out_latents) {
    const int64_t plane = r->h * r->wd;
    struct tensor out = tensor_make(DTYPE_F32, DEVICE_CPU, out_latents, 4, (int64_t[]){r->c, r->f, r->h, r->wd});
    struct tensor out_rows = tensor_reshape(&out, 2, (int64_t[]){r->c, r->f * plane});
    struct tensor lat_rows = frames_rows(&r->lat, 0, r->f);
    op_copy(&r->ctx, &out_rows, &lat_rows);
}

/* ---- state for checkpoints ---- */

void df_run_state_shape(const struct df_run *r, struct df_run_state_shape *sh) {
    sh->channels = r->c, sh->frames = r->f, sh->columns = r->cols, sh->height = r->h, sh->width = r->wd;
    sh->prefix = r->p, sh->rows = r->sched.rows;
}

/* The tensors that make up the state, in a fixed order: window, then per solver frame 3 slots + last. */
static float *state_buffer(const struct df_run *r, int64_t j, int i) {
    return (float *)(i < 3 ? r->solver[j].slots[i].data : r->solver[j].last_sample.data);
}

void df_run_export(const struct df_run *r, struct df_run_state *st) {
    const size_t frame_bytes = (size_t)(r->c * r->h * r->wd) * sizeof(float);
    st->next_row = r->next_row;
    memcpy(st->window, r->lat.data, (size_t)r->cols * frame_bytes);
    for (int64_t j = 0; j < r->f; j++) {
        int32_t *q = st->solver_ints + j * DF_SOLVER_INTS;
        float *b = st->solver_buffers + j * 4 * (int64_t)(frame_bytes / sizeof(float));
        if (j < r->p) {
            memset(q, 0, DF_SOLVER_INTS * sizeof *q);
            memset(b, 0, 4 * frame_bytes);
            continue;
        }
        const struct unipc_frame *u = &r->solver[j];
        q[0] = u->k, q[1] = u->this_order, q[2] = u->lower_order_nums, q[3] = u->slot_prev1, q[4] = u->slot_prev2;
        for (int i = 0; i < 4; i++) memcpy(b + i * (int64_t)(frame_bytes / sizeof(float)), state_buffer(r, j, i), frame_bytes);
    }
}

int df_run_import(struct df_run *r, const struct df_run_state *st) {
    const size_t frame_bytes = (size_t)(r->c * r->h * r->wd) * sizeof(float);
    if (st->next_row < 0 || st->next_row > r->sched.rows)
        return err_set(ERR_FORMAT, "row %lld: the window has %lld rows", (long long)st->next_row, (long long)r->sched.rows);
    for (int64_t j = r->p; j < r->f; j++) {
        const int32_t *q = st->solver_ints + j * DF_SOLVER_INTS;
        if (q[0] < 0 || q[0] > r->s.steps || q[1] < 0 || q[1] > 2 || q[2] < 0 || q[2] > 2 || q[3] < -1 || q[3] > 2 ||
            q[4] < -1 || q[4] > 2)
            return err_set(ERR_FORMAT, "solver state of frame %lld is out of range", (long long)j);
    }
    r->next_row = st->next_row;
    memcpy(r->lat.data, st->window, (size_t)r->cols * frame_bytes);
    for (int64_t j = r->p; j < r->f; j++) {
        const int32_t *q = st->solver_ints + j * DF_SOLVER_INTS;
        const float *b = st->solver_buffers + j * 4 * (int64_t)(frame_bytes / sizeof(float));
        struct unipc_frame *u = &r->solver[j];
        u->k = q[0], u->this_order = q[1], u->lower_order_nums = q[2], u->slot_prev1 = q[3], u->slot_prev2 = q[4];
        for (int i = 0; i < 4; i++) memcpy(state_buffer(r, j, i), b + i * (int64_t)(frame_bytes / sizeof(float)), frame_bytes);
    }
    return ERR_OK;
}

int df_denoise_window(const struct wan_model *m, const struct exec_ctx *ctx, const struct df_sampling *s,
                      const struct df_window *w, float *out_latents, struct df_schedule *sched,
                      df_progress_fn progress, void *progress_user) {
    memset(sched, 0, sizeof *sched);
    struct df_run *r = NULL;
    TRY(df_run_open(&r, m, ctx, s, w));
    const double t_start = time_now();
    while (!df_run_done(r)) {
        df_run_row(r);
        if (progress) progress(r->next_row - 1, r->sched.rows, time_now() - t_start, progress_user);
    }
    df_run_latents(r, out_latents);
    *sched = r->sched; /* hand the schedule over */
    memset(&r->sched, 0, sizeof r->sched);
    df_run_close(&r);
    return ERR_OK;
}

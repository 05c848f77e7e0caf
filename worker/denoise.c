/* worker/denoise.c - `reelfarm denoise`: the diffusion-forcing loop of one window from an HDF5 input
 * (spec 4, 5, 6.4), written with its schedule so every integer decision can be checked. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "model/df_sampler.h"
#include "parallel/par_runtime.h"
#include "worker/par_setup.h"
#include "worker/worker.h"

static void log_progress(int64_t row, int64_t rows, double seconds, void *user) {
    (void)user;
    const double per = seconds / (double)(row + 1);
    LOG_INFO("denoise row=%lld/%lld elapsed_s=%.2f s_per_row=%.3f eta_s=%.1f", (long long)(row + 1), (long long)rows,
             seconds, per, per * (double)(rows - row - 1));
}

static int write_output(const struct denoise_options *o, const float *lat, const int64_t lat_shape[4],
                        const struct df_schedule *s, const int64_t *timesteps) {
    struct h5_file *f = NULL;
    TRY(h5_create(&f, o->out_path, o->force));
    const int64_t rc_shape[2] = {s->rows, s->columns};
    int64_t *valid = s->valid;
    int rc = h5_write_f32(f, "latents", lat, 4, lat_shape);
    if (rc == ERR_OK) rc = h5_write_i64(f, "timesteps", timesteps, 1, (int64_t[]){s->steps});
    if (rc == ERR_OK) rc = h5_write_i64(f, "timestep_matrix", s->timestep, 2, rc_shape);
    if (rc == ERR_OK) rc = h5_write_u8(f, "update_mask", s->update, 2, rc_shape);
    if (rc == ERR_OK) rc = h5_write_i64(f, "valid_interval", valid, 2, (int64_t[]){s->rows, 2});
    if (rc == ERR_OK) rc = h5_attr_set_str(f, "reelfarm_format", "reelfarm-denoise-output");
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "reelfarm_format_version", 1);
    if (rc == ERR_OK) rc = h5_attr_set_str(f, "reelfarm_version", REELFARM_VERSION);
    if (rc == ERR_OK) rc = h5_attr_set_str(f, "model", o->model_dir);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "steps", o->steps);
    if (rc == ERR_OK) rc = h5_attr_set_f64(f, "shift", o->shift);
    if (rc == ERR_OK) rc = h5_attr_set_f64(f, "guidance", o->guidance);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "ar_step", o->ar_step);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "causal_block_size", o->causal_block_size);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "causal_attention", o->causal_attention);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "addnoise_condition", o->addnoise_condition);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "seed", (int64_t)o->seed);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "fps", o->fps);
    if (rc == ERR_OK) rc = h5_attr_set_i64(f, "chunk", o->chunk);
    if (rc == ERR_OK) rc = h5_attr_set_str(f, "scheduler", o->textbook_step ? "unipc-textbook" : "unipc-upstream");
    if (rc == ERR_OK) rc = h5_commit(&f);
    h5_close(&f);
    return rc;
}

static int read_opt(struct h5_file *f, const char *name, struct tensor *t, bool *present) {
    memset(t, 0, sizeof *t);
    *present = h5_has(f, name);
    return *present ? h5_read_f32(f, name, t) : ERR_OK;
}

int worker_denoise(const struct denoise_options *o) {
    if (par_rank() == 0 && !o->force && fs_exists(o->out_path)) /* rank 0 alone writes it */
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", o->out_path);
    struct h5_file *in = NULL;
    struct wan_model *m = NULL;
    struct tensor noise = {0}, ctx_c = {0}, ctx_u = {0}, prefix = {0}, end = {0};
    bool has_u = false, has_p = false, has_e = false;
    struct df_schedule sched = {0};
    struct unipc_grid grid = {0};
    struct worker_par wp;
    bool par_open = false;
    float *out = NULL;
    int rc = h5_open_read(&in, o->in_path);
    if (rc < 0) goto end;
    for (const char *const *name = (const char *const[]){"noise", "context", NULL}; *name; name++)
        if (!h5_has(in, *name)) {
            rc = err_set(ERR_MISSING, "%s: no dataset '%s' (denoise needs noise and context, and negative_context "
                                      "when --guidance > 1)",
                         o->in_path, *name);
            goto end;
        }
    if ((rc = h5_read_f32(in, "noise", &noise)) < 0 || (rc = h5_read_f32(in, "context", &ctx_c)) < 0 ||
        (rc = read_opt(in, "negative_context", &ctx_u, &has_u)) < 0 ||
        (rc = read_opt(in, "prefix_latents", &prefix, &has_p)) < 0 || (rc = read_opt(in, "end_latents", &end, &has_e)) < 0)
        goto end;
    if ((rc = worker_par_open(&wp, &o->par, o->model_dir, o->guidance > 1.0, 0, &m)) < 0) goto end;
    par_open = true;
    const bool writer = worker_par_writer(&wp);

    struct df_sampling s = {.steps = o->steps, .shift = o->shift, .guidance = o->guidance, .ar_step = o->ar_step,
                            .causal_block_size = o->causal_block_size, .causal_attention = o->causal_attention,
                            .addnoise_condition = o->addnoise_condition, .seed = o->seed, .chunk = o->chunk,
                            .fps = o->fps, .variant = o->textbook_step ? UNIPC_TEXTBOOK : UNIPC_UPSTREAM,
                            .par = &wp.dit, .cfg = wp.mesh.cfg};
    struct df_window w = {.noise = &noise, .prefix = has_p ? &prefix : NULL, .end = has_e ? &end : NULL,
                          .context = &ctx_c, .negative_context = has_u ? &ctx_u : NULL};
    if (!(o->guidance > 1.0) && has_u) LOG_INFO("guidance %g <= 1: negative_context is not used", o->guidance);
    out = malloc((size_t)tensor_numel(&noise) * sizeof(float));
    if (!out) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    const double t0 = time_now();
    if ((rc = df_denoise_window(m, &ctx, &s, &w, out, &sched, writer ? log_progress : NULL, NULL)) < 0) {
        err_wrap("%s: ", o->in_path);
        goto end;
    }
    const int64_t forwards = sched.rows * (o->guidance > 1.0 ? 2 : 1);
    if (writer)
        LOG_INFO("denoise done rows=%lld forwards=%lld frames=%lld seconds=%.2f", (long long)sched.rows,
                 (long long)forwards, (long long)noise.shape[1], time_now() - t0);
    if ((rc = unipc_grid_init(&grid, o->steps, o->shift)) < 0) goto end;
    if (writer) rc = write_output(o, out, noise.shape, &sched, grid.timesteps);
end:
    if (par_open) worker_par_close(&wp);
    h5_close(&in);
    wan_model_free(&m);
    df_schedule_free(&sched);
    unipc_grid_free(&grid);
    free(noise.data), free(ctx_c.data), free(ctx_u.data), free(prefix.data), free(end.data);
    free(out);
    return rc;
}

/* model/df_schedule.c - generate_timestep_matrix of SkyReels-V2 (spec 4.2), in block units then expanded
 * to frames. Mirrors skyreels_v2_infer/pipelines/diffusion_forcing_pipeline.py generate_timestep_matrix
 * with shrink_interval_with_mask = False. */
#include "model/df_schedule.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int validate(const struct df_schedule_params *p) {
    const int64_t f = p->frames, cbs = p->causal_block_size;
    if (p->steps < 1) return err_set(ERR_INVALID_ARG, "--steps %d: expected at least 1", p->steps);
    if (cbs < 1) return err_set(ERR_INVALID_ARG, "--causal-block-size %lld: expected at least 1", (long long)cbs);
    if (f < 1) return err_set(ERR_INVALID_ARG, "a window needs at least one latent frame, got %lld", (long long)f);
    if (f % cbs != 0) {
        const int64_t lo = f / cbs * cbs, hi = lo + cbs;
        return err_set(ERR_INVALID_ARG,
                       "--causal-block-size %lld does not divide the %lld latent frames of the window; use a "
                       "window of %lld or %lld latent frames, or a block size that divides %lld",
                       (long long)cbs, (long long)f, (long long)(lo ? lo : hi), (long long)hi, (long long)f);
    }
    if (p->ar_step < 0) return err_set(ERR_INVALID_ARG, "--ar-step %d: expected 0 (synchronous) or more", p->ar_step);
    if (p->num_pre_ready < 0 || p->num_pre_ready >= f)
        return err_set(ERR_INVALID_ARG, "%lld prefix frames leave nothing to generate in a window of %lld latent frames",
                       (long long)p->num_pre_ready, (long long)f);
    const int64_t base = p->base_frames ? p->base_frames : f;
    if (base < cbs || base % cbs != 0)
        return err_set(ERR_INVALID_ARG, "base window of %lld latent frames is not a multiple of --causal-block-size %lld",
                       (long long)base, (long long)cbs);
    if (base > f) return err_set(ERR_INVALID_ARG, "base window %lld exceeds the %lld frames", (long long)base, (long long)f);
    const int64_t nb = f / cbs, nb_base = base / cbs;
    /* a sliding window shorter than the sequence needs blocks to finish fast enough (spec 4.2 step 2) */
    if (nb_base < nb && (double)p->ar_step < (double)p->steps / (double)nb_base) {
        const int64_t need = (p->steps + nb_base - 1) / nb_base;
        return err_set(ERR_INVALID_ARG,
                       "--ar-step %d is below the minimum %lld for %d steps over a base window of %lld blocks; use "
                       "--ar-step %lld",
                       p->ar_step, (long long)need, p->steps, (long long)nb_base, (long long)need);
    }
    return ERR_OK;
}

int df_schedule_count_rows(const struct df_schedule_params *p, int64_t *rows) {
    TRY(validate(p));
    const int64_t nb = p->frames / p->causal_block_size, pre = p->num_pre_ready / p->causal_block_size;
    const int64_t lag = p->ar_step < p->steps ? p->ar_step : p->steps;
    *rows = p->ar_step == 0 ? p->steps : p->steps + (nb - 1 - pre) * lag;
    return ERR_OK;
}

void df_schedule_free(struct df_schedule *s) {
    free(s->timestep), free(s->step_index), free(s->update), free(s->valid);
    memset(s, 0, sizeof *s);
}

int df_schedule_build(struct df_schedule *s, const struct df_schedule_params *p) {
    memset(s, 0, sizeof *s);
    TRY(validate(p));
    if (!p->step_template) return err_set(ERR_INVALID_ARG, "no step template");
    const int n = p->steps, cbs = p->causal_block_size;
    const int64_t nb = p->frames / cbs, nb_base = (p->base_frames ? p->base_frames : p->frames) / cbs;
    const int64_t done = n + 1; /* index R: finished */

    /* block-level rows, grown as needed */
    int64_t cap = 64, rows = 0;
    int64_t *idx = malloc((size_t)(cap * nb) * sizeof *idx);
    uint8_t *upd = malloc((size_t)(cap * nb));
    int64_t *prev = calloc((size_t)nb, sizeof *prev), *cur = calloc((size_t)nb, sizeof *cur);
    int rc = ERR_OK;
    if (!idx || !upd || !prev || !cur) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    for (int64_t b = 0; b < p->num_pre_ready / cbs; b++) prev[b] = done;
    for (;;) {
        bool all_done = true;
        for (int64_t b = 0; b < nb; b++) all_done &= prev[b] >= n;
        if (all_done) break;
        for (int64_t b = 0; b < nb; b++) {
            cur[b] = (b == 0 || prev[b - 1] >= n) ? prev[b] + 1 : cur[b - 1] - p->ar_step;
            cur[b] = cur[b] < 0 ? 0 : (cur[b] > done ? done : cur[b]);
        }
        if (rows == cap) {
            cap *= 2;
            int64_t *ni = realloc(idx, (size_t)(cap * nb) * sizeof *idx);
            if (ni) idx = ni;
            uint8_t *nu = ni ? realloc(upd, (size_t)(cap * nb)) : NULL;
            if (nu) upd = nu;
            if (!ni || !nu) {
                rc = err_set(ERR_NOMEM, "out of memory");
                goto end;
            }
        }
        for (int64_t b = 0; b < nb; b++) {
            idx[rows * nb + b] = cur[b];
            upd[rows * nb + b] = cur[b] != prev[b] && cur[b] != done;
        }
        memcpy(prev, cur, (size_t)nb * sizeof *prev);
        rows++;
    }

    /* expand blocks to frames, append the end column, valid intervals */
    const int64_t cols = p->frames + (p->end_frame ? 1 : 0);
    s->rows = rows;
    s->columns = cols;
    s->steps = n;
    s->timestep = malloc((size_t)(rows * cols) * sizeof *s->timestep);
    s->step_index = malloc((size_t)(rows * cols) * sizeof *s->step_index);
    s->update = malloc((size_t)(rows * cols));
    s->valid = malloc((size_t)(rows * 2) * sizeof *s->valid);
    if (!s->timestep || !s->step_index || !s->update || !s->valid) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    int64_t tf = nb_base; /* valid-interval front, in blocks */
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t fr = 0; fr < cols; fr++) {
            int64_t i;
            uint8_t u;
            if (fr < p->num_pre_ready) { /* clean prefix frame, also inside a partly ready block */
                i = done;
                u = 0;
            } else if (fr < p->frames) {
                i = idx[r * nb + fr / cbs];
                u = upd[r * nb + fr / cbs];
            } else { /* end frame: clean, never updated */
                i = done;
                u = 0;
            }
            /* padded template [999] ++ steps ++ [0] */
            s->timestep[r * cols + fr] = i == 0 ? 999 : (i == done ? 0 : p->step_template[i - 1]);
            s->step_index[r * cols + fr] = i;
            s->update[r * cols + fr] = u;
        }
        if (tf < nb && upd[r * nb + tf]) tf++;
        const int64_t start = tf - nb_base > 0 ? tf - nb_base : 0;
        s->valid[r * 2] = start * cbs;
        s->valid[r * 2 + 1] = tf >= nb ? cols : tf * cbs; /* the end frame rides with the last block */
    }
end:
    free(idx), free(upd), free(prev), free(cur);
    if (rc < 0) df_schedule_free(s);
    return rc;
}

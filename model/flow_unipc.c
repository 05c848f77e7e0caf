/* model/flow_unipc.c - flow UniPC (spec 5.2-5.6). Mirrors SkyReels-V2 scheduler/fm_solvers_unipc.py
 * (FlowUniPCMultistepScheduler: set_timesteps, convert_model_output, multistep_uni_c_bh_update,
 * multistep_uni_p_bh_update, step) for solver_order 2, bh2, predict_x0, lower_order_final. */
#include "model/flow_unipc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int unipc_grid_init(struct unipc_grid *g, int steps, double shift) {
    memset(g, 0, sizeof *g);
    if (steps < 1 || steps > 1000) return err_set(ERR_INVALID_ARG, "--steps %d: expected 1 to 1000", steps);
    if (!(shift > 0.0) || !isfinite(shift)) return err_set(ERR_INVALID_ARG, "--shift %g: expected a positive number", shift);
    g->timesteps = malloc((size_t)steps * sizeof *g->timesteps);
    g->sigmas = malloc((size_t)(steps + 1) * sizeof *g->sigmas);
    if (!g->timesteps || !g->sigmas) {
        unipc_grid_free(g);
        return err_set(ERR_NOMEM, "out of memory");
    }
    g->steps = steps;
    g->shift = shift;
    /* sigma_max is the float32 value of 0.999 (the training grid is stored in float32); u is numpy's
     * linspace(sigma_max, 0, N + 1)[:N], evaluated as k * step + start in float64. */
    const double sigma_max = (double)0.999f;
    const double step = (0.0 - sigma_max) / (double)steps;
    for (int k = 0; k < steps; k++) {
        const double u = (double)k * step + sigma_max;
        const double sigma = shift * u / (1.0 + (shift - 1.0) * u);
        g->timesteps[k] = (int64_t)(sigma * 1000.0); /* truncation toward zero */
        g->sigmas[k] = (float)sigma;
    }
    g->sigmas[steps] = 0.0f;
    return ERR_OK;
}

void unipc_grid_free(struct unipc_grid *g) {
    free(g->timesteps);
    free(g->sigmas);
    g->timesteps = NULL;
    g->sigmas = NULL;
}

void unipc_frame_init(struct unipc_frame *f, const struct tensor slots[3], const struct tensor *last_sample) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 3; i++) f->slots[i] = slots[i];
    f->last_sample = *last_sample;
    f->slot_prev1 = f->slot_prev2 = -1;
}

/* lambda = ln(alpha) - ln(sigma) with alpha = 1 - sigma in the flow parameterisation (spec 5.1). */
double unipc_lambda(double sigma) { return log(1.0 - sigma) - log(sigma); }

void unipc_corrector_rho(const struct unipc_grid *g, int k, double *r, double b[2], double rho[2]) {
    CHECK(k >= 2 && k < g->steps, "order-2 corrector at step %d of %d", k, g->steps);
    const double lk = unipc_lambda(g->sigmas[k]), lp = unipc_lambda(g->sigmas[k - 1]), l2 = unipc_lambda(g->sigmas[k - 2]);
    const double h = lk - lp, hh = -h, phi1 = expm1(hh), bh = phi1;
    const double g1 = phi1 / hh - 1.0, g2 = g1 / hh - 0.5;
    *r = (l2 - lp) / h;
    b[0] = g1 / bh;
    b[1] = 2.0 * g2 / bh;
    rho[0] = (b[0] - b[1]) / (1.0 - *r); /* [[1, 1], [r, 1]] rho = b */
    rho[1] = b[0] - rho[0];
}

static void lincomb(const struct exec_ctx *ctx, struct tensor *y, int n, const double *c, const struct tensor *a,
                    const struct tensor *b, const struct tensor *d, const struct tensor *e) {
    const struct tensor *x[4] = {a, b, d, e};
    op_lincomb(ctx, y, n, c, x);
}

void unipc_step(const struct exec_ctx *ctx, const struct unipc_grid *g, struct unipc_frame *f,
                enum unipc_variant variant, const struct tensor *v, struct tensor *sample) {
    const int k = f->k, n = g->steps;
    CHECK(k < n, "scheduler step %d of a frame that has finished its %d steps", k + 1, n);
    const double sk = g->sigmas[k];

    /* x0 = x - sigma_k v  (convert_model_output, flow prediction) */
    const int slot_x0 = (f->slot_prev1 != 0 && f->slot_prev2 != 0) ? 0 : ((f->slot_prev1 != 1 && f->slot_prev2 != 1) ? 1 : 2);
    struct tensor *x0 = &f->slots[slot_x0];
    lincomb(ctx, x0, 2, (double[]){1.0, -sk}, sample, v, NULL, NULL);

    /* corrector UniC from sigma_{k-1} to sigma_k, with the order the previous predictor used */
    if (k > 0) {
        const double sp = g->sigmas[k - 1], ak = 1.0 - sk;
        const double lk = unipc_lambda(sk), lp = unipc_lambda(sp);
        const double h = lk - lp, hh = -h, phi1 = expm1(hh), bh = phi1;
        const double rs = sk / sp;
        const struct tensor *m0 = &f->slots[f->slot_prev1];
        /* spec 5.6: upstream's last_sample is a view of the latents, so at the second step it already
         * holds the current sample */
        const struct tensor *x_prev = (variant == UNIPC_UPSTREAM && k == 1) ? sample : &f->last_sample;
        if (f->this_order == 1) {
            const double c[3] = {rs, -ak * phi1 + ak * bh * 0.5, -ak * bh * 0.5};
            lincomb(ctx, sample, 3, c, x_prev, m0, x0, NULL);
        } else {
            const struct tensor *m2 = &f->slots[f->slot_prev2];
            double r, b[2], rho[2];
            unipc_corrector_rho(g, k, &r, b, rho);
            /* x = rs x_prev - ak phi1 m0 - ak B (rho0 (m2 - m0) / r + rho1 (x0 - m0)) */
            const double c[4] = {rs, -ak * phi1 + ak * bh * rho[0] / r + ak * bh * rho[1], -ak * bh * rho[0] / r,
                                 -ak * bh * rho[1]};
            lincomb(ctx, sample, 4, c, x_prev, m0, m2, x0);
        }
    }

    /* history: x0 becomes the newest entry; the order of this step's predictor */
    const int old_prev1 = f->slot_prev1;
    f->slot_prev2 = old_prev1;
    f->slot_prev1 = slot_x0;
    int order = n - k < 2 ? n - k : 2;                                /* lower_order_final */
    if (order > f->lower_order_nums + 1) order = f->lower_order_nums + 1; /* warm-up */
    f->this_order = order;
    op_copy(ctx, &f->last_sample, sample);

    /* predictor UniP from sigma_k to sigma_{k+1} */
    const double sn = g->sigmas[k + 1];
    if (sn == 0.0) {
        op_copy(ctx, sample, x0); /* final step: lambda = +inf, phi1 = B = -1, x_next = x0 exactly */
    } else {
        const double an = 1.0 - sn, lk = unipc_lambda(sk), ln_ = unipc_lambda(sn);
        const double h = ln_ - lk, hh = -h, phi1 = expm1(hh), bh = phi1, rs = sn / sk;
        if (order == 1) {
            const double c[2] = {rs, -an * phi1};
            lincomb(ctx, sample, 2, c, sample, x0, NULL, NULL);
        } else {
            const struct tensor *m1 = &f->slots[old_prev1]; /* x0 of step k - 1 */
            const double r = (unipc_lambda(g->sigmas[k - 1]) - lk) / h;
            /* x_next = rs x - an phi1 x0 - an B 0.5 (m1 - x0) / r */
            const double c[3] = {rs, -an * phi1 + an * bh * 0.5 / r, -an * bh * 0.5 / r};
            lincomb(ctx, sample, 3, c, sample, x0, m1, NULL);
        }
    }
    if (f->lower_order_nums < 2) f->lower_order_nums++;
    f->k++;
}

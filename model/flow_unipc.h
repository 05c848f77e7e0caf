/* model/flow_unipc.h - the flow-matching UniPC multistep scheduler of SkyReels-V2 (spec section 5).
 *
 * The timestep grid follows upstream SkyReels-V2 (spec 5.2, not diffusers' grid, spec 12): sigma from
 * float32(0.999), shifted, integer timesteps truncated from sigma * 1000, solver sigmas in float32 with a
 * final 0. The solver is UniPC bh2, order 2, lower order at the final step, x0-prediction: a corrector
 * (UniC) then a predictor (UniP) per step, the sigma = 0 final step special-cased to x_next = x0.
 *
 * Precision: latents, model outputs and history are float32 tensors; every scalar coefficient is computed
 * in double from the float32 sigmas and each update is one op_lincomb (double accumulation per element).
 * Upstream's bf16 roundings of the DF latents and of the corrector coefficients (spec 5.5) are not copied.
 *
 * By default the step reproduces upstream's last_sample aliasing (spec 5.6: at a frame's second step the
 * corrector sees the current sample instead of the previous input), because every published SkyReels-V2
 * result was made that way; UNIPC_TEXTBOOK gives the textbook UniPC step. Each frame keeps its own step
 * counter, so upstream's timestep search (which would skip sigma_0 when the first two timesteps coincide,
 * N >= 144 at shift 8) does not arise.
 */
#ifndef REELFARM_MODEL_FLOW_UNIPC_H
#define REELFARM_MODEL_FLOW_UNIPC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "kernels/ops.h"

struct unipc_grid {
    int steps;          /* N */
    double shift;
    int64_t *timesteps; /* [N] integer timesteps the model sees */
    float *sigmas;      /* [N + 1] solver sigmas, sigmas[N] = 0 */
};

/* Steps in [1, 1000], shift > 0; errors name the flag. */
int unipc_grid_init(struct unipc_grid *g, int steps, double shift);
void unipc_grid_free(struct unipc_grid *g);

enum unipc_variant { UNIPC_UPSTREAM = 0, UNIPC_TEXTBOOK = 1 };

/* The solver state of one latent frame. The four buffers have the frame's shape ([C, h w] rows) and live
 * on the context's device; the caller owns them (one arena for all frames). */
struct unipc_frame {
    int k;                  /* steps taken */
    int this_order;         /* predictor order of the last step */
    int lower_order_nums;
    int slot_prev1;         /* x0 of step k - 1 (when k >= 1) */
    int slot_prev2;         /* x0 of step k - 2 (when k >= 2) */
    struct tensor slots[3]; /* x0 history ring */
    struct tensor last_sample;
};

void unipc_frame_init(struct unipc_frame *f, const struct tensor slots[3], const struct tensor *last_sample);

/* lambda(sigma) = ln(1 - sigma) - ln(sigma) (spec 5.1). */
double unipc_lambda(double sigma);
/* The order-2 corrector coefficients at step k >= 2 (spec 5.3): r = (lambda_{k-2} - lambda_{k-1}) / h,
 * b = [g1 / B, 2 g2 / B] and rho = solve([[1, 1], [r, 1]], b). */
void unipc_corrector_rho(const struct unipc_grid *g, int k, double *r, double b[2], double rho[2]);

/* One step of a frame: sample (in/out, the frame's latents) from the model output v (flow prediction).
 * Fatal if the frame has already taken all N steps (a schedule bug, not bad input). */
void unipc_step(const struct exec_ctx *ctx, const struct unipc_grid *g, struct unipc_frame *f,
                enum unipc_variant variant, const struct tensor *v, struct tensor *sample);

#endif /* REELFARM_MODEL_FLOW_UNIPC_H */

/* worker/bench.c - `reelfarm bench`: time DiT forwards with random weights (no download).
 *
 * Builds the config of a preset (spec section 1) with optional overrides, random weights and
 * random inputs, runs warm-up and timed forwards and prints one key=value line with seconds per
 * forward, achieved GFLOP/s (from the FLOP count of the spec shapes, wan_dit_flops) and memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/wan_dit.h"
#include "worker/worker.h"

/* The machine's dense GEMM rate through the same op the model uses (2048^3, best of 3): the physical
 * reference printed next to the model's throughput. */
static double gemm_peak_gflops(const struct exec_ctx *ctx) {
    const int64_t n = 2048;
    float *a = malloc((size_t)(n * n) * sizeof(float)), *b = malloc((size_t)(n * n) * sizeof(float));
    float *c = malloc((size_t)(n * n) * sizeof(float));
    double best = 0;
    if (a && b && c) {
        rng_normal_f32(a, n * n, 5, 1, 0);
        rng_normal_f32(b, n * n, 5, 2, 0);
        struct tensor ta = tensor_f32_2d(a, n, n), tb = tensor_f32_2d(b, n, n), tc = tensor_f32_2d(c, n, n);
        for (int r = 0; r < 4; r++) {
            const double t0 = time_now();
            op_linear(ctx, &tc, &ta, &tb, NULL);
            const double g = 2.0 * (double)n * n * n / (time_now() - t0) / 1e9;
            if (r > 0 && g > best) best = g; /* the first run warms up */
        }
    }
    free(a), free(b), free(c);
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int worker_bench(const struct bench_options *o) {
    if (o->backend != BACKEND_CPU)
        return err_set(ERR_UNSUPPORTED, "--backend %s: only the cpu backend can run forwards in this build",
                       backend_name(o->backend));
    struct wan_config cfg;
    TRY(wan_config_preset(o->model_size, &cfg));
    if (o->layers > 0) cfg.num_layers = o->layers;
    if (o->heads > 0) cfg.num_heads = o->heads, cfg.dim = cfg.num_heads * cfg.head_dim;
    if (o->ffn_dim > 0) cfg.ffn_dim = o->ffn_dim;
    if (o->pixel_frames < 1 || (o->pixel_frames - 1) % 4 != 0)
        return err_set(ERR_INVALID_ARG, "--frames %lld: expected 4k+1 video frames (1, 5, 9, ..., 97, 121)",
                       (long long)o->pixel_frames);
    if (o->height < 16 || o->width < 16 || o->height % 16 || o->width % 16)
        return err_set(ERR_INVALID_ARG, "resolution %lldx%lld: width and height must be positive multiples of 16",
                       (long long)o->width, (long long)o->height);
    if (o->repeat < 1 || o->warmup < 0) return err_set(ERR_INVALID_ARG, "--repeat must be >= 1 and --warmup >= 0");

    struct wan_model *m = NULL;
    double t0 = time_now();
    TRY(wan_model_init_random(&m, &cfg, o->seed));
    const double init_s = time_now() - t0;

    const int64_t f = (o->pixel_frames - 1) / 4 + 1, h = o->height / 8, w = o->width / 8;
    struct wan_dit_input in;
    memset(&in, 0, sizeof in);
    const int64_t lat_n = cfg.out_channels * f * h * w;
    float *lat = malloc((size_t)lat_n * sizeof(float));
    float *ctxv = malloc((size_t)(o->text_len * cfg.text_dim) * sizeof(float));
    float *tsv = malloc((size_t)f * sizeof(float));
    float *pred = malloc((size_t)lat_n * sizeof(float));
    double *times = calloc((size_t)o->repeat, sizeof(double));
    struct wan_dit_workspace ws;
    memset(&ws, 0, sizeof ws);
    int rc = ERR_OK;
    if (!lat || !ctxv || !tsv || !pred || !times) {
        rc = err_set(ERR_NOMEM, "out of memory for the benchmark inputs");
        goto end;
    }
    rng_normal_f32(lat, lat_n, o->seed, 1001, 0);
    rng_normal_f32(ctxv, o->text_len * cfg.text_dim, o->seed, 1002, 0);
    for (int64_t i = 0; i < f; i++) tsv[i] = (float)(999 - (i * 997) / (f > 1 ? f - 1 : 1));
    in.latents = tensor_make(DTYPE_F32, DEVICE_CPU, lat, 4, (int64_t[]){cfg.out_channels, f, h, w});
    in.timesteps = tensor_make(DTYPE_F32, DEVICE_CPU, tsv, 1, (int64_t[]){f});
    in.context = tensor_make(DTYPE_F32, DEVICE_CPU, ctxv, 2, (int64_t[]){o->text_len, cfg.text_dim});
    in.fps_code = 1;
    in.causal_block_size = o->causal_block_size;
    struct wan_dit_shape shape;
    if ((rc = wan_dit_check_input(m, &in, &shape)) < 0) goto end;
    if ((rc = wan_dit_workspace_init(&ws, m, &shape)) < 0) goto end;
    struct tensor out = tensor_make(DTYPE_F32, DEVICE_CPU, pred, 4, (int64_t[]){cfg.out_channels, f, h, w});
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    for (int i = 0; i < o->warmup; i++) wan_dit_forward(m, &ctx, &ws, &in, &out);
    for (int i = 0; i < o->repeat; i++) {
        t0 = time_now();
        wan_dit_forward(m, &ctx, &ws, &in, &out);
        times[i] = time_now() - t0;
    }
    qsort(times, (size_t)o->repeat, sizeof *times, cmp_double);
    const double peak = gemm_peak_gflops(&ctx);
    const double flops = wan_dit_flops(&cfg, &shape, o->causal_block_size);
    const int64_t tokens = f * (h / 2) * (w / 2);
    printf("bench impl=reelfarm-cpu backend=cpu model=%s dim=%lld heads=%lld ffn=%lld layers=%lld frames=%lld "
           "latent_frames=%lld height=%lld width=%lld tokens=%lld context=%lld causal_block_size=%d threads=%d "
           "forward_s_min=%.4f forward_s_median=%.4f gflop=%.1f gflops=%.1f gemm_peak_gflops=%.1f params_m=%.1f weights_mb=%.1f "
           "activations_mb=%.1f init_s=%.2f peak_rss_mb=%.1f\n",
           o->model_size, (long long)cfg.dim, (long long)cfg.num_heads, (long long)cfg.ffn_dim,
           (long long)cfg.num_layers, (long long)o->pixel_frames, (long long)f, (long long)o->height,
           (long long)o->width, (long long)tokens, (long long)o->text_len, o->causal_block_size,
           exec_ctx_threads(&ctx), times[0], times[o->repeat / 2], flops / 1e9, flops / times[0] / 1e9, peak,
           (double)m->n_params / 1e6, (double)m->weight_arena.size / (1 << 20), (double)ws.arena.size / (1 << 20),
           init_s, (double)mem_peak_rss() / (1 << 20));
    fflush(stdout);
end:
    wan_dit_workspace_free(&ws);
    wan_model_free(&m);
    free(lat);
    free(ctxv);
    free(tsv);
    free(pred);
    free(times);
    return rc;
}

/* worker/bench_vae.c - `reelfarm bench-vae`: time and memory of the Wan VAE streams at a real size with random
 * weights (the released config, spec 7; no files needed).
 *
 * Decoding pushes latent frames [16, h, w] (h = H / 8, w = W / 8) one at a time; encoding pushes pixel frames.
 * Memory is reported three ways: the stream arena (caches and buffers, fixed by the frame size before the first
 * frame), the resident set after each latent frame, and the process peak (getrusage). --latent-frames limits how
 * many of the clip's latent frames run (the stream's memory does not depend on it; the time per frame does not
 * either once every cache is warm, from the second latent frame on). --vae-cache bf16 stores the cross-frame
 * state in bf16 (about half the arena).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/wan_vae.h"
#include "worker/worker.h"

struct bench_sink {
    int64_t frames;
};

static int count_sink(void *user, int64_t index, const struct tensor *frame) {
    (void)index, (void)frame;
    ((struct bench_sink *)user)->frames++;
    return 0;
}

int worker_bench_vae(const struct bench_vae_options *o) {
    if (o->pixel_frames < 1 || (o->pixel_frames - 1) % 4 != 0)
        return err_set(ERR_INVALID_ARG, "--frames %lld: expected 4k+1 video frames (1, 5, ..., 97, 121)",
                       (long long)o->pixel_frames);
    if (o->height < 16 || o->width < 16 || o->height % 16 || o->width % 16)
        return err_set(ERR_INVALID_ARG, "resolution %lldx%lld: width and height must be positive multiples of 16",
                       (long long)o->width, (long long)o->height);
    struct wan_vae_config c;
    wan_vae_default_config(&c);
    if (o->base_dim > 0) c.base_dim = o->base_dim;
    const int64_t f_all = wan_vae_encoded_frames(&c, o->pixel_frames);
    const int64_t f_run = o->latent_frames > 0 && o->latent_frames < f_all ? o->latent_frames : f_all;
    const int64_t h = o->height / 8, w = o->width / 8;
    const bool dec = !o->encode;
    struct wan_vae *v = NULL;
    TRY(wan_vae_create_random(&v, &c, o->seed));
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    const size_t arena = wan_vae_stream_bytes(v, dec, o->height, o->width, o->vae_cache);
    struct bench_sink sink = {0};
    struct vae_stream *s = NULL;
    int rc = wan_vae_stream_open(&s, v, &ctx, dec, o->height, o->width, o->vae_cache, count_sink, &sink);
    const int64_t in_numel = dec ? c.z_dim * h * w : 3 * o->height * o->width;
    float *in = rc == ERR_OK ? malloc((size_t)in_numel * sizeof(float)) : NULL;
    if (rc == ERR_OK && !in) rc = err_set(ERR_NOMEM, "out of memory");
    printf("bench-vae: %s %lldx%lld, %lld of %lld latent frames (%lld video frames in the clip), base_dim %lld, "
           "%lld params, %d threads; %s cache; stream arena %.1f MiB; weights %.1f MiB\n",
           dec ? "decode" : "encode", (long long)o->width, (long long)o->height, (long long)f_run, (long long)f_all,
           (long long)o->pixel_frames, (long long)c.base_dim, (long long)v->n_params, exec_ctx_threads(&ctx),
           dtype_name(o->vae_cache), arena / 1048576.0, v->weight_arena.size / 1048576.0);
    fflush(stdout);
    double total = 0, steady = 0;
    for (int64_t f = 0; rc == ERR_OK && f < f_run; f++) {
        const int64_t pushes = dec ? 1 : (f == 0 ? 1 : 4);
        const double t0 = time_now();
        for (int64_t p = 0; rc == ERR_OK && p < pushes; p++) {
            rng_normal_f32(in, in_numel, o->seed, 7, (f * 4 + p) * in_numel);
            struct tensor t = dec ? tensor_f32_3d(in, c.z_dim, h, w) : tensor_f32_3d(in, 3, o->height, o->width);
            rc = wan_vae_stream_push(s, &t);
        }
        const double dt = time_now() - t0;
        total += dt;
        if (f > 0) steady += dt;
        printf("bench-vae: latent frame %lld: %.2f s, outputs so far %lld, RSS %.1f MiB, peak %.1f MiB\n",
               (long long)f, dt, (long long)sink.frames, mem_current_rss() / 1048576.0, mem_peak_rss() / 1048576.0);
        fflush(stdout);
    }
    if (rc == ERR_OK)
        printf("bench-vae: mode=%s cache=%s width=%lld height=%lld latent_frames=%lld total_s=%.2f "
               "s_per_latent_frame_steady=%.2f arena_mib=%.1f weights_mib=%.1f peak_rss_mib=%.1f\n",
               dec ? "decode" : "encode", dtype_name(o->vae_cache), (long long)o->width, (long long)o->height,
               (long long)f_run, total,
               f_run > 1 ? steady / (double)(f_run - 1) : total, arena / 1048576.0, v->weight_arena.size / 1048576.0,
               mem_peak_rss() / 1048576.0);
    free(in);
    wan_vae_stream_close(&s);
    wan_vae_free(&v);
    return rc;
}

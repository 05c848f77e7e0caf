/* worker/bench_vae.c - `reelfarm bench-vae`: time and memory of the Wan VAE streams at a real size with random
 * weights (the released config, spec 7; no files needed).
 *
 * Decoding pushes latent frames [16, h, w] (h = H / 8, w = W / 8) one at a time; encoding pushes pixel frames.
 * Memory is reported three ways: the stream arena (caches and buffers, fixed by the frame size before the first
 * frame), the resident set after each latent frame, and the process peak (getrusage). --latent-frames limits how
 * many of the clip's latent frames run (the stream's memory does not depend on it; the time per frame does not
 * either once every cache is warm, from the second latent frame on). --vae-cache bf16 stores the cross-frame
 * state in bf16 (about half the arena).
 * Row bands of the decoder (model/wan_vae.h; asked for on the command line through wan_vae_band_request):
 * frame-major bands run as the plain stream does. Band-major runs one band's stream through the latent frames,
 * then the next band's; its rows land in a float32 buffer of the whole clip (every video frame of --frames,
 * allocated and touched first, so the peak includes what a caller needs to hold the decoded clip), and the time
 * of a latent frame is the sum over the bands.
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

/* Band-major output: rows into the clip buffer [T, 3, H, W]. */
struct clip_sink {
    float *clip;
    int64_t t, h, w;
    int64_t rows;       /* rows delivered */
    int64_t first_row;  /* of the current band (-1 before its first call) */
    int64_t band_rows;
};

static int clip_rows(void *user, int64_t index, int64_t row0, const struct tensor *rows) {
    struct clip_sink *c = user;
    const int64_t n = rows->shape[1];
    CHECK(index >= 0 && index < c->t && row0 >= 0 && row0 + n <= c->h && rows->shape[0] == 3 && rows->shape[2] == c->w,
          "bench-vae: rows [%lld, %lld) of frame %lld outside the clip", (long long)row0, (long long)(row0 + n),
          (long long)index);
    const float *src = rows->data;
    for (int64_t ch = 0; ch < 3; ch++)
        memcpy(c->clip + ((index * 3 + ch) * c->h + row0) * c->w, src + ch * n * c->w,
               (size_t)(n * c->w) * sizeof(float));
    c->rows += n;
    if (c->first_row < 0) c->first_row = row0, c->band_rows = n;
    return 0;
}

/* Latent (decoder) or pixel (encoder) input frame f, push p (the same values whatever the band). */
static void bench_input(float *in, int64_t numel, uint64_t seed, int64_t f, int64_t p) {
    rng_normal_f32(in, numel, seed, 7, (f * 4 + p) * numel);
}

static int bench_band_major(const struct bench_vae_options *o, const struct wan_vae *v, const struct exec_ctx *ctx,
                            int bands, int64_t f_run, float *in, double *total, double *steady) {
    const struct wan_vae_config *c = &v->cfg;
    const int64_t h = o->height / 8, w = o->width / 8, in_numel = c->z_dim * h * w;
    struct clip_sink sink = {.t = o->pixel_frames, .h = o->height, .w = o->width};
    const size_t clip_bytes = (size_t)(sink.t * 3 * sink.h * sink.w) * sizeof(float);
    sink.clip = malloc(clip_bytes);
    double *dt = calloc((size_t)f_run, sizeof(double));
    int rc = ERR_OK;
    if (!sink.clip || !dt) rc = err_set(ERR_NOMEM, "out of memory for the %.1f MiB clip", clip_bytes / 1048576.0);
    if (rc == ERR_OK) memset(sink.clip, 0, clip_bytes); /* resident, as a caller's buffer for the clip would be */
    if (rc == ERR_OK)
        printf("bench-vae: band-major: clip buffer %.1f MiB (%lld frames, float32), resident set %.1f MiB\n",
               clip_bytes / 1048576.0, (long long)sink.t, mem_current_rss() / 1048576.0);
    for (int b = 0; rc == ERR_OK && b < bands; b++) {
        struct vae_stream *s = NULL;
        sink.first_row = -1;
        const double t0 = time_now();
        rc = wan_vae_stream_open_band(&s, v, ctx, o->height, o->width, o->vae_cache, bands, b, clip_rows, &sink);
        for (int64_t f = 0; rc == ERR_OK && f < f_run; f++) {
            const double t1 = time_now();
            bench_input(in, in_numel, o->seed, f, 0);
            struct tensor t = tensor_f32_3d(in, c->z_dim, h, w);
            rc = wan_vae_stream_push(s, &t);
            dt[f] += time_now() - t1;
        }
        wan_vae_stream_close(&s);
        if (rc == ERR_OK)
            printf("bench-vae: band %d of %d: rows [%lld, %lld), %.2f s, RSS %.1f MiB, peak %.1f MiB\n", b, bands,
                   (long long)sink.first_row, (long long)(sink.first_row + sink.band_rows), time_now() - t0,
                   mem_current_rss() / 1048576.0, mem_peak_rss() / 1048576.0);
        fflush(stdout);
    }
    const int64_t want = wan_vae_decoded_frames(c, f_run) * o->height;
    CHECK(rc < 0 || sink.rows == want, "bench-vae: %lld output rows delivered, expected %lld", (long long)sink.rows,
          (long long)want);
    for (int64_t f = 0; rc == ERR_OK && f < f_run; f++) {
        *total += dt[f];
        if (f > 0) *steady += dt[f];
        printf("bench-vae: latent frame %lld: %.2f s (all bands)\n", (long long)f, dt[f]);
    }
    free(dt);
    free(sink.clip);
    return rc;
}

int worker_bench_vae(const struct bench_vae_options *o) {
    if (o->pixel_frames < 1 || (o->pixel_frames - 1) % 4 != 0)
        return err_set(ERR_INVALID_ARG, "--frames %lld: expected 4k+1 video frames (1, 5, ..., 97, 121)",
                       (long long)o->pixel_frames);
    if (o->height < 16 || o->width < 16 || o->height % 16 || o->width % 16)
        return err_set(ERR_INVALID_ARG, "resolution %lldx%lld: width and height must be positive multiples of 16",
                       (long long)o->width, (long long)o->height);
    if (o->encode && (o->vae_bands > 0 || o->vae_band_major || o->vae_memory > 0))
        return err_set(ERR_INVALID_ARG, "--vae-bands, --vae-band-major and --vae-memory apply to decoding only");
    struct wan_vae_config c;
    wan_vae_default_config(&c);
    if (o->base_dim > 0) c.base_dim = o->base_dim;
    const int64_t f_all = wan_vae_encoded_frames(&c, o->pixel_frames);
    const int64_t f_run = o->latent_frames > 0 && o->latent_frames < f_all ? o->latent_frames : f_all;
    const int64_t h = o->height / 8, w = o->width / 8;
    const bool dec = !o->encode, band_major = o->vae_band_major || o->vae_memory > 0;
    struct wan_vae *v = NULL;
    TRY(wan_vae_create_random(&v, &c, o->seed));
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    int bands = 1, rc = ERR_OK;
    if (dec && (band_major || o->vae_bands > 0))
        rc = wan_vae_decode_choose_bands(v, o->height, o->width, o->vae_cache, o->vae_bands, o->vae_memory, &bands);
    size_t arena = 0;
    double halo = 0, pre = 0;
    if (rc == ERR_OK && !band_major) arena = dec ? wan_vae_decode_bytes(v, o->height, o->width, o->vae_cache, bands, -1)
                                                 : wan_vae_stream_bytes(v, false, o->height, o->width, o->vae_cache);
    for (int b = 0; rc == ERR_OK && band_major && b < bands; b++) {
        const size_t n = wan_vae_decode_bytes(v, o->height, o->width, o->vae_cache, bands, b);
        arena = n > arena ? n : arena;
    }
    if (rc == ERR_OK && dec) halo = wan_vae_decode_halo_cost(v, o->height, o->width, bands, &pre);
    /* extra arithmetic against the unbanded decode: the halos after the middle block, and band-major's
     * recomputation of the part before it once per further band */
    const double extra = halo * (1 - pre) + (band_major ? (bands - 1) * pre : 0);
    struct bench_sink sink = {0};
    struct vae_stream *s = NULL;
    if (rc == ERR_OK && !band_major)
        rc = dec ? wan_vae_stream_open_bands(&s, v, &ctx, o->height, o->width, o->vae_cache, bands, count_sink, &sink)
                 : wan_vae_stream_open(&s, v, &ctx, false, o->height, o->width, o->vae_cache, count_sink, &sink);
    const int64_t in_numel = dec ? c.z_dim * h * w : 3 * o->height * o->width;
    float *in = rc == ERR_OK ? malloc((size_t)in_numel * sizeof(float)) : NULL;
    if (rc == ERR_OK && !in) rc = err_set(ERR_NOMEM, "out of memory");
    const char *order = !dec ? "-" : band_major ? "band" : "frame";
    if (rc == ERR_OK) {
        printf("bench-vae: %s %lldx%lld, %lld of %lld latent frames (%lld video frames in the clip), base_dim %lld, "
               "%lld params, %d threads; %s cache; stream arena %.1f MiB%s; weights %.1f MiB\n",
               dec ? "decode" : "encode", (long long)o->width, (long long)o->height, (long long)f_run, (long long)f_all,
               (long long)o->pixel_frames, (long long)c.base_dim, (long long)v->n_params, exec_ctx_threads(&ctx),
               dtype_name(o->vae_cache), arena / 1048576.0, band_major ? " (the largest band's)" : "",
               v->weight_arena.size / 1048576.0);
        if (dec)
            printf("bench-vae: %d row band%s, %s-major; halo rows add %.1f %% to the work after the middle block, the "
                   "part before it is %.1f %% of the decode: %.1f %% more arithmetic than one band\n",
                   bands, bands == 1 ? "" : "s", order, 100 * halo, 100 * pre, 100 * extra);
    }
    fflush(stdout);
    double total = 0, steady = 0;
    if (rc == ERR_OK && band_major) rc = bench_band_major(o, v, &ctx, bands, f_run, in, &total, &steady);
    for (int64_t f = 0; rc == ERR_OK && !band_major && f < f_run; f++) {
        const int64_t pushes = dec ? 1 : (f == 0 ? 1 : 4);
        const double t0 = time_now();
        for (int64_t p = 0; rc == ERR_OK && p < pushes; p++) {
            bench_input(in, in_numel, o->seed, f, p);
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
        printf("bench-vae: mode=%s cache=%s bands=%d order=%s width=%lld height=%lld latent_frames=%lld total_s=%.2f "
               "s_per_latent_frame_steady=%.2f arena_mib=%.1f weights_mib=%.1f extra_work_pct=%.1f "
               "peak_rss_mib=%.1f\n",
               dec ? "decode" : "encode", dtype_name(o->vae_cache), bands, order, (long long)o->width,
               (long long)o->height, (long long)f_run, total, f_run > 1 ? steady / (double)(f_run - 1) : total,
               arena / 1048576.0, v->weight_arena.size / 1048576.0, 100 * extra, mem_peak_rss() / 1048576.0);
    free(in);
    wan_vae_stream_close(&s);
    wan_vae_free(&v);
    return rc;
}

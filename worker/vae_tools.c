/* worker/vae_tools.c - `reelfarm vae-decode` and `reelfarm vae-encode` (spec 6.6, 6.8, 7).
 *
 * vae-decode: HDF5 `latents` float32 [z, F, h, w] (normalised, the DiT's space) -> HDF5 `video` float32
 * [3, T, 8h, 8w] in [-1, 1], T = 4 (F - 1) + 1, or an encoded video (MP4/MKV/WebM) whose frames are appended
 * as the decoder produces them. With row bands (--vae-bands, --vae-memory; model/wan_vae.h) the decoder runs one
 * band through the whole clip at a time: the same bits in less memory, the clip held whole until the last band.
 * vae-encode: an image, a video (centre-cropped and resized to --size) or HDF5 `video` [3, T, H, W] in [-1, 1]
 * -> HDF5 `latents` [z, 1 + (T - 1) / 4, H / 8, W / 8].
 * Both validate the model, the input and the output path before the first frame, stream frames through
 * model/wan_vae.c (memory independent of the frame count, apart from the HDF5 arrays themselves) and write
 * through a temporary file, so a failed run leaves nothing behind and never replaces an existing output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/video.h"
#include "model/wan_vae.h"
#include "worker/worker.h"

static bool is_video_path(const char *p) {
    return fs_has_suffix(p, ".mp4") || fs_has_suffix(p, ".mkv") || fs_has_suffix(p, ".webm");
}

/* ---- decode ---- */

struct decode_sink {
    float *video;              /* HDF5 output [3, T, H, W], or NULL */
    struct video_writer *writer; /* encoded output, or NULL */
    uint8_t *rgb;              /* band-major encoded output: the clip as RGB24 [T, H, W, 3] until the last band */
    int64_t t_total, h, w;
};

static int decode_sink_frame(void *user, int64_t index, const struct tensor *frame) {
    struct decode_sink *s = user;
    const int64_t plane = s->h * s->w;
    const float *src = frame->data;
    if (s->writer) return video_writer_add_f32(s->writer, src);
    for (int c = 0; c < 3; c++)
        memcpy(s->video + ((int64_t)c * s->t_total + index) * plane, src + c * plane, (size_t)plane * sizeof(float));
    return ERR_OK;
}

/* Band-major: rows [row0, row0 + r) of frame index, [3, r, W], into the HDF5 video or the RGB24 clip (spec 6.8
 * conversion, as video_writer_add_f32 does it, so the encoded file does not depend on the band count). */
static int decode_sink_rows(void *user, int64_t index, int64_t row0, const struct tensor *rows) {
    struct decode_sink *s = user;
    const int64_t r = rows->shape[1], n = r * s->w;
    const float *src = rows->data;
    if (s->rgb) {
        uint8_t *dst = s->rgb + (index * s->h + row0) * s->w * 3;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) dst[3 * i + c] = video_unit_to_u8(src[c * n + i]);
        return ERR_OK;
    }
    for (int c = 0; c < 3; c++)
        memcpy(s->video + (((int64_t)c * s->t_total + index) * s->h + row0) * s->w, src + c * n,
               (size_t)n * sizeof(float));
    return ERR_OK;
}

int worker_vae_decode(const struct vae_decode_options *o) {
    const bool to_video = is_video_path(o->out_path);
    if (!to_video && !fs_has_suffix(o->out_path, ".h5"))
        return err_set(ERR_INVALID_ARG, "--out %s: expected a .h5, .mp4, .mkv or .webm file", o->out_path);
    if (!o->force && fs_exists(o->out_path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", o->out_path);
    struct h5_file *in = NULL, *out = NULL;
    struct wan_vae *v = NULL;
    struct vae_stream *stream = NULL;
    struct tensor lat = {0};
    struct decode_sink sink = {0};
    float *zframe = NULL;
    int rc = h5_open_read(&in, o->in_path);
    if (rc == ERR_OK) rc = h5_read_f32(in, "latents", &lat);
    h5_close(&in);
    if (rc < 0) goto end;
    rc = wan_vae_load(&v, o->model_dir);
    if (rc < 0) goto end;
    const int64_t z = v->cfg.z_dim, sf = wan_vae_spatial_factor(&v->cfg);
    char sh[96];
    if (lat.ndim != 4 || lat.shape[0] != z || lat.shape[1] < 1 || lat.shape[2] < 1 || lat.shape[3] < 1) {
        rc = err_set(ERR_SHAPE, "%s: dataset 'latents' has shape %s; expected [%lld, F, h, w] with F, h, w >= 1",
                     o->in_path, tensor_shape_str(sh, sizeof sh, &lat), (long long)z);
        goto end;
    }
    const int64_t f = lat.shape[1], lh = lat.shape[2], lw = lat.shape[3];
    sink.h = lh * sf, sink.w = lw * sf, sink.t_total = wan_vae_decoded_frames(&v->cfg, f);
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    /* row bands: band-major, the clip held whole (the HDF5 array, or RGB24 for an encoded output) */
    int bands = 1;
    if (o->vae_bands > 1 || o->vae_memory > 0) {
        rc = wan_vae_decode_choose_bands(v, sink.h, sink.w, o->vae_cache, o->vae_bands, o->vae_memory, &bands);
        if (rc < 0) goto end;
    }
    if (to_video) {
        struct video_writer_options wo;
        video_writer_default_options(&wo);
        wo.width = (int)sink.w, wo.height = (int)sink.h;
        wo.fps_num = o->fps_num > 0 ? o->fps_num : 24, wo.fps_den = o->fps_den > 0 ? o->fps_den : 1;
        wo.codec = o->codec, wo.crf = o->crf, wo.preset = o->preset, wo.overwrite = o->force;
        rc = video_writer_open(&sink.writer, o->out_path, &wo);
    } else {
        sink.video = malloc((size_t)(3 * sink.t_total * sink.h * sink.w) * sizeof(float));
        if (!sink.video) rc = err_set(ERR_NOMEM, "out of memory for a [3, %lld, %lld, %lld] video", (long long)sink.t_total,
                                      (long long)sink.h, (long long)sink.w);
        if (rc == ERR_OK) rc = h5_create(&out, o->out_path, o->force);
    }
    size_t stream_bytes = 0;
    for (int b = 0; b < bands; b++) {
        const size_t n = bands == 1 ? wan_vae_stream_bytes(v, true, sink.h, sink.w, o->vae_cache)
                                    : wan_vae_decode_bytes(v, sink.h, sink.w, o->vae_cache, bands, b);
        stream_bytes = n > stream_bytes ? n : stream_bytes;
    }
    if (rc == ERR_OK && bands > 1 && to_video) {
        sink.rgb = malloc((size_t)(sink.t_total * sink.h * sink.w * 3));
        if (!sink.rgb) rc = err_set(ERR_NOMEM, "out of memory for a %lld-frame RGB clip", (long long)sink.t_total);
    }
    if (rc == ERR_OK && bands == 1)
        rc = wan_vae_stream_open(&stream, v, &ctx, true, sink.h, sink.w, o->vae_cache, decode_sink_frame, &sink);
    if (rc == ERR_OK)
        LOG_INFO("vae-decode: %lld latent frames %lldx%lld -> %lld frames %lldx%lld; stream memory %.1f MiB%s (%s "
                 "cache, %d row band%s, %d threads)",
                 (long long)f, (long long)lw, (long long)lh, (long long)sink.t_total, (long long)sink.w,
                 (long long)sink.h, stream_bytes / 1048576.0, bands > 1 ? " (the largest band)" : "",
                 dtype_name(o->vae_cache), bands, bands > 1 ? "s" : "", exec_ctx_threads(&ctx));
    zframe = malloc((size_t)(z * lh * lw) * sizeof(float));
    if (rc == ERR_OK && !zframe) rc = err_set(ERR_NOMEM, "out of memory");
    const double t0 = time_now();
    const float *ld = lat.data;
    for (int64_t fi = 0; rc == ERR_OK && bands == 1 && fi < f; fi++) {
        for (int64_t c = 0; c < z; c++)
            memcpy(zframe + c * lh * lw, ld + (c * f + fi) * lh * lw, (size_t)(lh * lw) * sizeof(float));
        struct tensor zt = tensor_f32_3d(zframe, z, lh, lw);
        rc = wan_vae_stream_push(stream, &zt);
        LOG_DEBUG("vae-decode: latent frame %lld/%lld done", (long long)(fi + 1), (long long)f);
    }
    if (rc == ERR_OK && bands > 1) rc = wan_vae_decode_clip(v, &ctx, &lat, o->vae_cache, bands, decode_sink_rows, &sink);
    for (int64_t t = 0; rc == ERR_OK && sink.rgb && t < sink.t_total; t++)
        rc = video_writer_add_rgb24(sink.writer, sink.rgb + t * sink.h * sink.w * 3);
    if (rc == ERR_OK)
        LOG_INFO("vae-decode: %lld frames in %.2f s", (long long)sink.t_total, time_now() - t0);
    if (rc == ERR_OK && out) {
        rc = h5_write_f32(out, "video", sink.video, 4, (int64_t[]){3, sink.t_total, sink.h, sink.w});
        if (rc == ERR_OK) rc = h5_attr_set_i64(out, "latent_frames", f);
        if (rc == ERR_OK) rc = h5_commit(&out);
    }
    if (sink.writer) {
        /* a failed decode leaves no file; a finished one is finalised and renamed into place */
        const int crc = video_writer_close(&sink.writer, rc == ERR_OK);
        if (rc == ERR_OK) rc = crc;
    }
end:
    wan_vae_stream_close(&stream);
    h5_close(&out);
    wan_vae_free(&v);
    free(lat.data), free(sink.video), free(sink.rgb), free(zframe);
    return rc;
}

/* ---- encode ---- */

struct encode_sink {
    float *latents; /* [z, F, h, w] */
    int64_t f_total, z, hw;
};

static int encode_sink_frame(void *user, int64_t index, const struct tensor *frame) {
    struct encode_sink *s = user;
    if (index >= s->f_total) return ERR_OK;
    const float *src = frame->data;
    for (int64_t c = 0; c < s->z; c++)
        memcpy(s->latents + (c * s->f_total + index) * s->hw, src + c * s->hw, (size_t)s->hw * sizeof(float));
    return ERR_OK;
}

static int count_frame(void *user, int64_t index, const float *chw) {
    (void)user, (void)index, (void)chw;
    return ERR_OK;
}

struct push_ctx {
    struct vae_stream *stream;
    int64_t h, w;
};

static int push_pixels(void *user, int64_t index, const float *chw) {
    (void)index;
    struct push_ctx *p = user;
    struct tensor t = tensor_f32_3d((float *)chw, 3, p->h, p->w);
    return wan_vae_stream_push(p->stream, &t);
}

int worker_vae_encode(const struct vae_encode_options *o) {
    if (!fs_has_suffix(o->out_path, ".h5"))
        return err_set(ERR_INVALID_ARG, "--out %s: expected a .h5 file", o->out_path);
    if (!o->force && fs_exists(o->out_path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", o->out_path);
    if (!fs_is_file(o->in_path)) return err_set(ERR_IO, "%s: no such file", o->in_path);
    struct h5_file *in = NULL, *out = NULL;
    struct wan_vae *v = NULL;
    struct vae_stream *stream = NULL;
    struct tensor vid = {0};
    struct encode_sink sink = {0};
    float *frame = NULL;
    int64_t t = 0, h = o->height, w = o->width;
    const bool from_h5 = h5_is_hdf5(o->in_path);
    int rc = ERR_OK;
    char sh[96];
    if (from_h5) {
        rc = h5_open_read(&in, o->in_path);
        if (rc == ERR_OK) rc = h5_read_f32(in, "video", &vid);
        h5_close(&in);
        if (rc == ERR_OK && (vid.ndim != 4 || vid.shape[0] != 3 || vid.shape[1] < 1))
            rc = err_set(ERR_SHAPE, "%s: dataset 'video' has shape %s; expected [3, T, H, W] with T >= 1", o->in_path,
                         tensor_shape_str(sh, sizeof sh, &vid));
        if (rc == ERR_OK && (h || w) && (h != vid.shape[2] || w != vid.shape[3]))
            rc = err_set(ERR_INVALID_ARG, "--size %lldx%lld: the HDF5 video is %lldx%lld (HDF5 input is not resized)",
                         (long long)w, (long long)h, (long long)vid.shape[3], (long long)vid.shape[2]);
        if (rc == ERR_OK) t = vid.shape[1], h = vid.shape[2], w = vid.shape[3];
    } else {
        struct video_info info;
        rc = video_probe(o->in_path, &info);
        if (rc == ERR_OK && !h && !w) h = info.height, w = info.width;
        if (rc == ERR_OK) t = info.is_image ? 1 : info.frames; /* -1 when the container does not say */
        if (rc == ERR_OK && o->max_frames > 0 && (t < 0 || t > o->max_frames)) t = o->max_frames;
    }
    if (rc < 0) goto end;
    if (h % 16 || w % 16 || h < 16 || w < 16) {
        rc = err_set(ERR_INVALID_ARG,
                     "%s: frame size %lldx%lld; width and height must be positive multiples of 16 (the VAE's 8 times "
                     "the DiT's patch 2): choose one with --size WxH",
                     o->in_path, (long long)w, (long long)h);
        goto end;
    }
    rc = wan_vae_load(&v, o->model_dir);
    if (rc < 0) goto end;
    const int tf = wan_vae_temporal_factor(&v->cfg), sf = wan_vae_spatial_factor(&v->cfg);
    struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    rc = wan_vae_stream_open(&stream, v, &ctx, false, h, w, o->vae_cache, encode_sink_frame, &sink);
    if (rc < 0) goto end;
    struct push_ctx pc = {stream, h, w};
    sink.z = v->cfg.z_dim, sink.hw = (h / sf) * (w / sf);
    /* the latent count: known up front, except for a video whose container does not state its frame count,
     * which is then counted by decoding it once at a small size (cheap next to the VAE) */
    int64_t t_known = t;
    if (t_known < 0) rc = video_read(o->in_path, 16, 16, 0, o->max_frames, count_frame, NULL, &t_known);
    if (rc < 0) goto end;
    sink.f_total = wan_vae_encoded_frames(&v->cfg, t_known);
    if ((t_known - 1) % tf)
        LOG_WARN("%s: %lld frames; the VAE encodes 1 + %d k frames, so the last %lld are ignored (as upstream)",
                 o->in_path, (long long)t_known, tf, (long long)((t_known - 1) % tf));
    sink.latents = malloc((size_t)(sink.z * sink.f_total * sink.hw) * sizeof(float));
    if (!sink.latents) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    rc = h5_create(&out, o->out_path, o->force);
    if (rc < 0) goto end;
    LOG_INFO("vae-encode: %lld frames %lldx%lld -> %lld latent frames; stream memory %.1f MiB (%s cache, %d threads)",
             (long long)t_known, (long long)w, (long long)h, (long long)sink.f_total,
             wan_vae_stream_bytes(v, false, h, w, o->vae_cache) / 1048576.0, dtype_name(o->vae_cache),
             exec_ctx_threads(&ctx));
    const double t0 = time_now();
    if (from_h5) {
        frame = malloc((size_t)(3 * h * w) * sizeof(float));
        if (!frame) rc = err_set(ERR_NOMEM, "out of memory");
        const float *vd = vid.data;
        for (int64_t ti = 0; rc == ERR_OK && ti < t_known; ti++) {
            for (int c = 0; c < 3; c++)
                memcpy(frame + c * h * w, vd + (c * t_known + ti) * h * w, (size_t)(h * w) * sizeof(float));
            rc = push_pixels(&pc, ti, frame);
        }
    } else {
        int64_t n = 0;
        rc = video_read(o->in_path, (int)w, (int)h, 0, t_known, push_pixels, &pc, &n);
        if (rc == ERR_OK && n != t_known)
            rc = err_set(ERR_FORMAT, "%s: decoded %lld frames, the container said %lld", o->in_path, (long long)n,
                         (long long)t_known);
    }
    if (rc == ERR_OK && wan_vae_stream_produced(stream) != sink.f_total)
        rc = err_set(ERR_FORMAT, "%s: produced %lld latent frames, expected %lld", o->in_path,
                     (long long)wan_vae_stream_produced(stream), (long long)sink.f_total);
    if (rc == ERR_OK) {
        LOG_INFO("vae-encode: %lld latent frames in %.2f s", (long long)sink.f_total, time_now() - t0);
        rc = h5_write_f32(out, "latents", sink.latents, 4, (int64_t[]){sink.z, sink.f_total, h / sf, w / sf});
    }
    if (rc == ERR_OK) rc = h5_attr_set_i64(out, "pixel_frames", t_known);
    if (rc == ERR_OK) rc = h5_commit(&out);
end:
    wan_vae_stream_close(&stream);
    h5_close(&out);
    wan_vae_free(&v);
    free(vid.data), free(sink.latents), free(frame);
    return rc;
}

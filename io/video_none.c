/* io/video_none.c - io/video.h in a build without the FFmpeg libraries (cmake -DWITH_FFMPEG=OFF).
 *
 * The pixel conversions, option defaults and crop box are real (io/video_common.c, shared with the
 * FFmpeg build). Opening a writer and probing or reading an image or video fail with ERR_UNSUPPORTED and
 * one line saying what to do instead: write .h5 outputs (dataset video_uint8 [T, H, W, 3]) and encode them
 * with ffmpeg elsewhere, or give inputs as HDF5. Such a build exists so that the runtime libraries of a
 * GPU test build can travel to a machine without Debian's FFmpeg (docs/gpu.md); reelfarm itself has no
 * command that turns an .h5 video into an MP4.
 *
 * Not here: any video I/O. Every writer pointer this file could see is NULL (open never succeeds), so the
 * frame and close calls only accept NULL.
 */
#include "io/video.h"

#include <string.h>

#include "core/error.h"

#define VIDEO_NONE_WHY "this reelfarm was built without FFmpeg (-DWITH_FFMPEG=OFF)"

int video_writer_open(struct video_writer **out, const char *path, const struct video_writer_options *opt) {
    CHECK(out && path && opt, "video_writer_open: NULL argument");
    *out = NULL;
    return err_set(ERR_UNSUPPORTED,
                   "%s: " VIDEO_NONE_WHY ": write .h5 outputs (dataset video_uint8 [T, H, W, 3]) and encode them "
                   "with ffmpeg on a machine that has it",
                   path);
}

int video_writer_add_f32(struct video_writer *w, const float *chw) {
    (void)chw;
    CHECK(!w, "video_writer_add_f32: a writer in a build without FFmpeg");
    return err_set(ERR_UNSUPPORTED, "video_writer_add_f32: " VIDEO_NONE_WHY);
}

int video_writer_add_rgb24(struct video_writer *w, const uint8_t *rgb) {
    (void)rgb;
    CHECK(!w, "video_writer_add_rgb24: a writer in a build without FFmpeg");
    return err_set(ERR_UNSUPPORTED, "video_writer_add_rgb24: " VIDEO_NONE_WHY);
}

int64_t video_writer_frame_count(const struct video_writer *w) {
    (void)w;
    return 0;
}

const char *video_writer_encoder(const struct video_writer *w) {
    (void)w;
    return "";
}

const char *video_writer_temp_path(const struct video_writer *w) {
    (void)w;
    return "";
}

int video_writer_close(struct video_writer **w, bool keep) {
    (void)keep;
    CHECK(!w || !*w, "video_writer_close: a writer in a build without FFmpeg");
    return ERR_OK;
}

static int video_none_read(const char *path) {
    return err_set(ERR_UNSUPPORTED,
                   "%s: " VIDEO_NONE_WHY " and decodes no images or videos: convert them on a machine with FFmpeg "
                   "(vae-encode also reads .h5, dataset video [3, T, H, W])",
                   path ? path : "(null)");
}

int video_probe(const char *path, struct video_info *info) {
    CHECK(path && info, "video_probe: NULL argument");
    memset(info, 0, sizeof *info);
    return video_none_read(path);
}

int video_read(const char *path, int width, int height, int64_t first_frame, int64_t max_frames, video_frame_fn fn,
               void *user, int64_t *n_out) {
    (void)width, (void)height, (void)first_frame, (void)max_frames, (void)user;
    CHECK(fn, "video_read: NULL callback");
    if (n_out) *n_out = 0;
    return video_none_read(path);
}

int video_read_all(const char *path, int width, int height, int64_t max_frames, float **out, int64_t *n_frames) {
    (void)width, (void)height, (void)max_frames;
    *out = NULL;
    if (n_frames) *n_frames = 0;
    return video_none_read(path);
}

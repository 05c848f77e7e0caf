/* io/video.h - video files through the FFmpeg libraries: an encoding writer for rendered frames and
 * a reader for the images and videos that condition a render.
 *
 * Spec sections: 6.8 (pixel conversions: u8 -> x/127.5 - 1 on input; ((x/2 + 0.5) clamped to
 * [0, 1]) * 255 truncated on output), 6.6 (`resizecrop`: centre crop to the target aspect, then a
 * bicubic resize to W x H) and 6.7 (reading the frames of a video to extend).
 *
 * Writer: frames arrive one at a time (planar float [3, H, W] in [-1, 1], or RGB24), are converted
 * to yuv420p (BT.709, limited range, tagged as such) with libswscale, encoded and written at once;
 * nothing holds the whole video (the encoder itself keeps its lookahead, about 40-60 frames for
 * x264 "medium"). Frame i has pts i in a time base of fps_den/fps_num, so the rate is exact,
 * fractional rates (30000/1001) included. Output goes to a temp sibling (io/fs.h) that
 * video_writer_close(keep = true) finishes, fsyncs and renames into place.
 * The reference writes with imageio.mimwrite(fps, quality=8), which is libx264 at crf 10
 * (imageio-ffmpeg maps quality q to crf int((1 - q/10) * 51)); that is reelfarm's h264 default.
 *
 * Reader: any image (PNG, JPEG, WebP, BMP, ...) or video FFmpeg decodes. Each frame is converted to
 * RGB24 at its native size (honouring the stream's colour matrix and range; full-range JPEG yuvj
 * formats included), centre-cropped by pointer offset and resized with libswscale bicubic. The
 * reference resizes with PIL's bicubic (Keys a = -0.5, kernel widened when shrinking); swscale's
 * default bicubic is a = -0.6, so the reader asks for a = -0.5 (B = 0, C = 0.5). Measured against
 * an exact double-precision bicubic the result is within 1 code (rms 0.29, i.e. rounding only) away
 * from the image edges; PIL's own 8-bit passes are within 1 code of that too, so expect 1-2 codes
 * of difference from the reference, plus whatever libjpeg's chroma upsampling does differently
 * from FFmpeg's for JPEG inputs. Spec 6.7 reads videos with decord resized to (W, H) without a
 * crop (decord's filter is unknown); here videos are centre-cropped like images, which is the same
 * thing whenever the input already has the target aspect. Alpha is dropped (PIL convert("RGB"));
 * rotation metadata (EXIF, display matrices) is ignored, as PIL and decord ignore it.
 *
 * Not here: audio, hardware encoders, seeking (a window starting at first_frame decodes and drops
 * the frames before it). libav's own log lines go to core/log.h at DEBUG; the last libav error
 * text is appended to the err_set() line instead, so the CLI prints one line per failure.
 * SVT_LOG defaults to 1 (errors only) so SVT-AV1 does not print its banner on stderr.
 *
 * Builds: io/video_common.c (pixel conversions, option defaults, crop box) is in every build; the writer
 * and reader are io/video.c, or io/video_none.c in a build configured with -DWITH_FFMPEG=OFF
 * (REELFARM_HAVE_FFMPEG == 0), where video_writer_open, video_probe, video_read and video_read_all
 * return ERR_UNSUPPORTED with one line saying so (write .h5 outputs instead; docs/gpu.md).
 */
#ifndef REELFARM_IO_VIDEO_H
#define REELFARM_IO_VIDEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- spec 6.8 pixel conversions ---- */

/* u / 127.5f - 1 in float32 (exact torch float32 result). */
float video_u8_to_unit(uint8_t u);
/* ((x/2 + 0.5) clamped to [0, 1]) * 255 in float32, truncated like numpy astype(uint8); NaN -> 0. */
uint8_t video_unit_to_u8(float x);
/* planar [3, H, W] floats in [-1, 1] (plane stride H*W) -> interleaved RGB24 [H, W, 3] */
void video_planar_to_rgb24(const float *chw, int width, int height, uint8_t *rgb);
/* interleaved RGB24 [H, W, 3] -> planar [3, H, W] floats in [-1, 1] */
void video_rgb24_to_planar(const uint8_t *rgb, int width, int height, float *chw);

/* ---- writer ---- */

/* Defaults when crf < 0 (no reference value exists except for h264; the others aim at about the
 * same visual quality at a lower bit rate). */
#define VIDEO_CRF_DEFAULT_H264 10 /* = the reference's imageio quality=8 */
#define VIDEO_CRF_DEFAULT_H265 16
#define VIDEO_CRF_DEFAULT_AV1  20 /* libsvtav1 and libaom-av1 both take 0..63 */

struct video_writer_options {
    int width, height;    /* must be even (yuv420p) and > 0 */
    int fps_num, fps_den; /* frame rate fps_num/fps_den, both > 0, e.g. 24/1 or 30000/1001 */
    const char *codec;    /* "h264" (NULL: libx264), "h265" or "hevc" (libx265), "av1" (see below) */
    int crf;              /* < 0: VIDEO_CRF_DEFAULT_* for the codec */
    const char *preset;   /* NULL: the encoder's default (x264/x265 "medium", SVT-AV1 its default);
                           * an unknown name, or any preset for libaom-av1, is ERR_INVALID_ARG */
    bool overwrite;       /* replace an existing output */
    const char *temp_path; /* NULL: a unique temp sibling; else this name (replaced if it exists), so a
                            * resumed render writes where the interrupted one did */
    int threads;          /* encoder threads; 0: the encoder's automatic choice. 1 makes the bytes independent
                           * of machine load (a resumed render re-encodes its frames and must match) */
    bool fragmented;      /* MP4: fragments (empty moov, a fragment per keyframe) instead of +faststart,
                           * so the growing temp file plays while frames are still being added */
};
/* 0 x 0 (must be set), 24/1 fps, h264, default crf and preset, no overwrite. */
void video_writer_default_options(struct video_writer_options *o);

struct video_writer;

/* Open a writer for path; the container comes from the extension (.mp4, .mkv, .webm; MP4 gets
 * +faststart). "av1" uses libsvtav1 when this build has it and the frame is at least 64 x 64
 * (SVT-AV1 1.x refuses smaller frames), else libaom-av1.
 * Errors (nothing is left on disk): odd, zero or negative size, a bad rate, an unknown extension,
 * a codec the container cannot hold (webm + h264) -> ERR_INVALID_ARG; an unknown codec name or an
 * encoder missing from this libavcodec -> ERR_UNSUPPORTED naming the codec; path exists and
 * !overwrite -> ERR_EXISTS; the temp file cannot be created -> ERR_IO. */
int video_writer_open(struct video_writer **out, const char *path, const struct video_writer_options *opt);
/* Append one frame, planar float [3, H, W] in [-1, 1] (converted with video_unit_to_u8). */
int video_writer_add_f32(struct video_writer *w, const float *chw);
/* Append one frame, RGB24 [H, W, 3]. */
int video_writer_add_rgb24(struct video_writer *w, const uint8_t *rgb);
int64_t video_writer_frame_count(const struct video_writer *w);
/* The libavcodec encoder in use ("libx264", "libsvtav1", ...). */
const char *video_writer_encoder(const struct video_writer *w);
/* The temp file frames are being written to (removed or renamed by close). */
const char *video_writer_temp_path(const struct video_writer *w);
/* keep = true: drain the encoder, write the trailer, fsync and rename into place (refusing to
 * replace an existing file unless opt.overwrite); a writer with no frames is refused with
 * ERR_INVALID_ARG and its temp file removed. Use keep = true after a handled error once some
 * frames were written: the partial video is still a valid file. keep = false: remove the temp
 * file. Either way *w is freed and set to NULL; NULL-tolerant (returns 0). */
int video_writer_close(struct video_writer **w, bool keep);

/* ---- reader ---- */

struct video_info {
    int width, height;    /* coded frame size */
    int64_t frames;       /* 1 for an image; the container's frame count (MP4); -1 when unknown (MKV/WebM) */
    int fps_num, fps_den; /* average frame rate; 0/1 for an image or when unknown */
    bool is_image;        /* read by an image demuxer (image2 or *_pipe) */
    char codec[32];       /* libavcodec's codec name: "h264", "png", "mjpeg", ... */
};

/* Probe an image or a video, decoding its first frame to be sure it is readable.
 * Missing file -> ERR_IO; not decodable as an image or video (a text file, an HDF5 file) or no
 * video stream -> ERR_FORMAT naming the path; no decoder in this build -> ERR_UNSUPPORTED. */
int video_probe(const char *path, struct video_info *info);

/* index: the frame's position in the source (first_frame for the first frame delivered).
 * chw: planar float [3, H, W] in [-1, 1], valid only during the call. */
typedef int (*video_frame_fn)(void *user, int64_t index, const float *chw);

/* Decode the frames of an image or video in order; frames first_frame .. first_frame+max_frames-1
 * (max_frames <= 0: to the end) are centre-cropped to the aspect of width x height, resized to it
 * and passed to fn. fn returning < 0 stops the read and video_read returns that code. *n_out (may
 * be NULL) gets the number of frames delivered. Errors as video_probe; no frame in the window ->
 * ERR_FORMAT ("no frames"); width/height <= 0 or first_frame < 0 -> ERR_INVALID_ARG.
 * Crop (spec 6.6 `resizecrop`, integer arithmetic): for a source w x h and target W x H, if
 * h*W > w*H the crop keeps the width and is nh = floor(w*H/W) high, else it keeps the height and is
 * nw = floor(h*W/H) wide; its edges are PIL's crop of the float box ((w - nw)/2, (h - nh)/2,
 * (w + nw)/2, (h + nh)/2), each rounded half to even like Python's round(), so when w - nw is odd
 * the crop is one pixel narrower or wider than nw (10 -> 7 gives 6, 12 -> 7 gives 8), exactly as in
 * the reference. */
int video_read(const char *path, int width, int height, int64_t first_frame, int64_t max_frames, video_frame_fn fn,
               void *user, int64_t *n_out);

/* All frames (at most max_frames when > 0) into a new malloc'd float [3, T, H, W] (channel-major,
 * time inside: element (c, t, y, x) at ((c*T + t)*H + y)*W + x), the layout of HDF5 `video`
 * datasets. The caller frees *out. The frames are decoded once, staged as RGB24 (3 bytes a pixel)
 * and expanded to floats at the end. */
int video_read_all(const char *path, int width, int height, int64_t max_frames, float **out, int64_t *n_frames);

/* The crop box video_read uses for a w x h source and a W x H target (exposed for tests). */
void video_crop_box(int src_w, int src_h, int dst_w, int dst_h, int *x0, int *y0, int *crop_w, int *crop_h);

#endif /* REELFARM_IO_VIDEO_H */

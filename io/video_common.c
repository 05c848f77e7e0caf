/* io/video_common.c - the parts of io/video.h that need no FFmpeg, compiled in every build: the spec 6.8
 * pixel conversions (u8 <-> [-1, 1] floats), the writer's default options and the spec 6.6 crop box.
 *
 * io/video.c (the FFmpeg libraries) and io/video_none.c (a build with -DWITH_FFMPEG=OFF) hold the writer
 * and the reader; both use these functions, so the conversions are the same whichever is linked.
 * Mirrors the reference's `resizecrop` (spec 6.6, the crop box only; the resize is the reader's) and
 * its output conversion ((x / 2 + 0.5) clamped to [0, 1]) * 255 (spec 6.8).
 */
#include "io/video.h"

#include <string.h>

/* ---- spec 6.8 pixel conversions ---- */

float video_u8_to_unit(uint8_t u) {
    return (float)u / 127.5f - 1.0f;
}

uint8_t video_unit_to_u8(float x) {
    float v = x / 2.0f + 0.5f;
    if (!(v >= 0.0f)) return 0; /* also NaN */
    if (v > 1.0f) v = 1.0f;
    return (uint8_t)(v * 255.0f); /* truncation, as numpy astype(uint8) */
}

void video_planar_to_rgb24(const float *chw, int width, int height, uint8_t *rgb) {
    const size_t hw = (size_t)width * (size_t)height;
    const float *r = chw, *g = chw + hw, *b = chw + 2 * hw;
    for (size_t i = 0; i < hw; i++) {
        rgb[3 * i + 0] = video_unit_to_u8(r[i]);
        rgb[3 * i + 1] = video_unit_to_u8(g[i]);
        rgb[3 * i + 2] = video_unit_to_u8(b[i]);
    }
}

void video_rgb24_to_planar(const uint8_t *rgb, int width, int height, float *chw) {
    const size_t hw = (size_t)width * (size_t)height;
    float *r = chw, *g = chw + hw, *b = chw + 2 * hw;
    for (size_t i = 0; i < hw; i++) {
        r[i] = video_u8_to_unit(rgb[3 * i + 0]);
        g[i] = video_u8_to_unit(rgb[3 * i + 1]);
        b[i] = video_u8_to_unit(rgb[3 * i + 2]);
    }
}

/* ---- writer options ---- */

void video_writer_default_options(struct video_writer_options *o) {
    memset(o, 0, sizeof *o);
    o->fps_num = 24;
    o->fps_den = 1;
    o->codec = "h264";
    o->crf = -1;
}

/* ---- spec 6.6 crop box ---- */

void video_crop_box(int src_w, int src_h, int dst_w, int dst_h, int *x0, int *y0, int *crop_w, int *crop_h) {
    const int64_t w = src_w, h = src_h, W = dst_w, H = dst_h;
    int64_t nw = w, nh = h;
    if (h * W > w * H) {
        nh = w * H / W; /* keep the width */
    } else {
        nw = h * W / H; /* keep the height */
    }
    /* PIL crops the float box ((w-nw)/2, (h-nh)/2, (w+nw)/2, (h+nh)/2) after Python's round() of each
     * edge, which rounds halves to even: round_half_even(n / 2) for an integer n >= 0. */
#define VIDEO_HALF_EVEN(n) (((n) % 2 == 0) ? (n) / 2 : (((n) / 2) % 2 == 0 ? (n) / 2 : (n) / 2 + 1))
    int64_t left = VIDEO_HALF_EVEN(w - nw), right = VIDEO_HALF_EVEN(w + nw);
    int64_t top = VIDEO_HALF_EVEN(h - nh), bottom = VIDEO_HALF_EVEN(h + nh);
#undef VIDEO_HALF_EVEN
    if (right <= left) right = left + 1; /* degenerate aspect ratios: keep one pixel */
    if (bottom <= top) bottom = top + 1;
    if (right > w) left = (right = w) - 1;
    if (bottom > h) top = (bottom = h) - 1;
    *x0 = (int)left;
    *y0 = (int)top;
    *crop_w = (int)(right - left);
    *crop_h = (int)(bottom - top);
}

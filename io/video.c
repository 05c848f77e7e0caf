/* io/video.c - FFmpeg-library video writer and image/video reader (spec 6.6, 6.7, 6.8).
 *
 * The libav call sequences follow FFmpeg's doc/examples (encode_video.c and mux.c for writing,
 * demuxing_decoding.c for reading) with remux.c's single-cleanup style. Failures caused by the input or
 * the settings are recoverable errors; failures of libav itself on valid state (out of memory, an
 * encoder rejecting a frame it accepted the format of) are fatal through AV_CHECK/CHECK.
 * The spec 6.8 pixel conversions, the option defaults and the crop box are in io/video_common.c; a build
 * with -DWITH_FFMPEG=OFF links io/video_none.c in place of this file.
 */
#include "io/video.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "core/error.h"
#include "core/log.h"
#include "io/fs.h"

#define VIDEO_MAX_DIM 16384 /* larger frames are refused (and far beyond any Wan resolution) */
/* Slack after every buffer libswscale reads: its SIMD row functions may read a little past a row. */
#define VIDEO_PAD 64

/* ---- libav logging: to core/log.h at DEBUG; the last error line is kept for err_set() ---- */

static _Thread_local char video_av_last_error[320];

static void video_av_log(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_INFO) return;
    const bool is_error = level <= AV_LOG_ERROR;
    if (!is_error && log_get_level() < LOG_LEVEL_DEBUG) return;
    char msg[240];
    vsnprintf(msg, sizeof msg, fmt, vl);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (!n) return;
    const AVClass *cls = avcl ? *(const AVClass **)avcl : NULL;
    const char *who = cls && cls->item_name ? cls->item_name(avcl) : "libav";
    if (is_error) snprintf(video_av_last_error, sizeof video_av_last_error, "%.60s: %s", who, msg);
    LOG_DEBUG("libav %s: %s", who, msg);
}

static void video_init_once(void) {
    av_log_set_callback(video_av_log);
    /* SVT-AV1 prints its banner to stderr itself; keep only its errors unless the user chose. */
    setenv("SVT_LOG", "1", 0);
}

static void video_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, video_init_once);
    video_av_last_error[0] = '\0';
}

/* "Invalid data found when processing input (mov,mp4,...: moov atom not found)" */
static const char *video_av_detail(int averr, char *buf, size_t cap) {
    char e[128];
    av_strerror(averr, e, sizeof e);
    if (video_av_last_error[0])
        snprintf(buf, cap, "%s (%s)", e, video_av_last_error);
    else
        snprintf(buf, cap, "%s", e);
    return buf;
}

/* ---- writer ---- */

struct video_writer {
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame; /* yuv420p [H, W], reused */
    AVPacket *pkt;
    struct SwsContext *sws; /* RGB24 -> yuv420p, BT.709 limited range */
    uint8_t *rgb;           /* [H, W, 3] + VIDEO_PAD: the frame swscale reads */
    int width, height;
    int64_t frames;
    bool overwrite;
    const char *encoder;
    char path[PATH_MAX];
    char tmp_path[PATH_MAX + 32];
};

int64_t video_writer_frame_count(const struct video_writer *w) {
    return w ? w->frames : 0;
}
const char *video_writer_encoder(const struct video_writer *w) {
    return w ? w->encoder : "";
}
const char *video_writer_temp_path(const struct video_writer *w) {
    return w ? w->tmp_path : "";
}

/* libavformat muxer name for the extension of path, or NULL. */
static const char *video_container_for(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return NULL;
    if (!strcasecmp(dot, ".mp4")) return "mp4";
    if (!strcasecmp(dot, ".mkv")) return "matroska";
    if (!strcasecmp(dot, ".webm")) return "webm";
    return NULL;
}

/* reelfarm's codec names -> libavcodec ids; AV_CODEC_ID_NONE for anything else. */
static enum AVCodecID video_codec_id(const char *name) {
    if (!strcmp(name, "h264")) return AV_CODEC_ID_H264;
    if (!strcmp(name, "h265") || !strcmp(name, "hevc")) return AV_CODEC_ID_HEVC;
    if (!strcmp(name, "av1")) return AV_CODEC_ID_AV1;
    return AV_CODEC_ID_NONE;
}

/* The encoder for a codec, or ERR_UNSUPPORTED naming the codec when this libavcodec lacks it. */
static int video_pick_encoder(const char *path, const char *name, enum AVCodecID id, int width, int height,
                              const AVCodec **codec, int *crf_default) {
    const char *want;
    *codec = NULL;
    switch (id) {
    case AV_CODEC_ID_H264:
        *crf_default = VIDEO_CRF_DEFAULT_H264;
        *codec = avcodec_find_encoder_by_name(want = "libx264");
        break;
    case AV_CODEC_ID_HEVC:
        *crf_default = VIDEO_CRF_DEFAULT_H265;
        *codec = avcodec_find_encoder_by_name(want = "libx265");
        break;
    default:
        *crf_default = VIDEO_CRF_DEFAULT_AV1;
        /* SVT-AV1 1.x refuses frames smaller than 64 x 64; libaom-av1 takes any size. */
        want = width >= 64 && height >= 64 ? "libsvtav1 or libaom-av1" : "libaom-av1 (libsvtav1 needs 64x64 or more)";
        if (width >= 64 && height >= 64) *codec = avcodec_find_encoder_by_name("libsvtav1");
        if (!*codec) *codec = avcodec_find_encoder_by_name("libaom-av1");
        break;
    }
    if (!*codec)
        return err_set(ERR_UNSUPPORTED, "%s: codec %s at %dx%d needs encoder %s, which this FFmpeg build lacks", path,
                       name, width, height, want);
    return ERR_OK;
}

static bool video_x26x_preset_ok(const char *preset) {
    static const char *const names[] = {"ultrafast", "superfast", "veryfast", "faster",   "fast",
                                        "medium",    "slow",      "slower",   "veryslow", "placebo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(preset, names[i])) return true;
    return false;
}

static void video_writer_free(struct video_writer *w, bool remove_tmp) {
    if (w->oc) {
        if (w->oc->pb) avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    avcodec_free_context(&w->enc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    sws_freeContext(w->sws);
    av_free(w->rgb);
    if (remove_tmp) fs_remove_quiet(w->tmp_path);
    free(w);
}

static bool video_cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

int video_writer_open(struct video_writer **out, const char *path, const struct video_writer_options *opt) {
    video_init();
    *out = NULL;
    int rc = 0;
    struct video_writer *w = NULL;
    AVDictionary *enc_opts = NULL, *mux_opts = NULL;
    char detail[512];
    CHECK(path && opt, "video_writer_open: NULL argument");

    if (opt->width <= 0 || opt->height <= 0 || opt->width % 2 || opt->height % 2 || opt->width > VIDEO_MAX_DIM ||
        opt->height > VIDEO_MAX_DIM)
        return err_set(ERR_INVALID_ARG, "%s: video size %dx%d must be even, positive and at most %d (yuv420p)", path,
                       opt->width, opt->height, VIDEO_MAX_DIM);
    if (opt->fps_num <= 0 || opt->fps_den <= 0)
        return err_set(ERR_INVALID_ARG, "%s: frame rate %d/%d must be positive", path, opt->fps_num, opt->fps_den);
    const char *container = video_container_for(path);
    if (!container)
        return err_set(ERR_INVALID_ARG, "%s: unknown video container extension (expected .mp4, .mkv or .webm)", path);
    const char *codec_name = opt->codec ? opt->codec : "h264";
    const enum AVCodecID codec_id = video_codec_id(codec_name);
    if (codec_id == AV_CODEC_ID_NONE)
        return err_set(ERR_UNSUPPORTED, "%s: unsupported video codec '%s' (expected h264, h265 or av1)", path,
                       codec_name);
    const AVOutputFormat *ofmt = av_guess_format(container, NULL, NULL);
    CHECK(ofmt, "libavformat has no %s muxer", container);
    if (avformat_query_codec(ofmt, codec_id, FF_COMPLIANCE_NORMAL) == 0)
        return err_set(ERR_INVALID_ARG, "%s: a %s container cannot hold %s video%s", path,
                       !strcmp(container, "matroska") ? "mkv" : container, codec_name,
                       !strcmp(container, "webm") ? " (use av1, or .mp4/.mkv)" : "");
    if (!opt->overwrite && fs_exists(path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", path);
    const AVCodec *codec = NULL;
    int crf_default = 0;
    TRY(video_pick_encoder(path, codec_name, codec_id, opt->width, opt->height, &codec, &crf_default));
    if (strlen(path) >= PATH_MAX) return err_set(ERR_INVALID_ARG, "path too long: %s", path);

    w = calloc(1, sizeof *w);
    if (!w) return err_set(ERR_NOMEM, "out of memory");
    snprintf(w->path, sizeof w->path, "%s", path);
    w->width = opt->width;
    w->height = opt->height;
    w->overwrite = opt->overwrite;
    w->encoder = codec->name;
    if (opt->temp_path) {
        if (strlen(opt->temp_path) >= sizeof w->tmp_path) {
            rc = err_set(ERR_INVALID_ARG, "path too long: %s", opt->temp_path);
            goto end;
        }
        snprintf(w->tmp_path, sizeof w->tmp_path, "%s", opt->temp_path);
    } else {
        rc = fs_temp_path(w->tmp_path, sizeof w->tmp_path, path);
        if (rc < 0) goto end;
    }

    /* "file:" keeps a name like "a:b.mp4" from being taken as a protocol. */
    char url[PATH_MAX + 48];
    snprintf(url, sizeof url, "file:%s", w->tmp_path);
    AV_CHECK(avformat_alloc_output_context2(&w->oc, ofmt, NULL, url));

    w->enc = avcodec_alloc_context3(codec);
    CHECK(w->enc, "avcodec_alloc_context3(%s) failed", codec->name);
    AVCodecContext *enc = w->enc;
    enc->width = opt->width;
    enc->height = opt->height;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->sample_aspect_ratio = (AVRational){1, 1};
    enc->time_base = (AVRational){opt->fps_den, opt->fps_num}; /* pts = frame index */
    enc->framerate = (AVRational){opt->fps_num, opt->fps_den};
    enc->color_range = AVCOL_RANGE_MPEG;
    enc->color_primaries = AVCOL_PRI_BT709;
    enc->color_trc = AVCOL_TRC_BT709;
    enc->colorspace = AVCOL_SPC_BT709;
    enc->chroma_sample_location = AVCHROMA_LOC_LEFT;
    enc->thread_count = opt->threads > 0 ? opt->threads : 0; /* 0: libavcodec picks */
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    /* x264/x265 print their own line for an unknown preset; refuse it here instead. */
    if (opt->preset && (!strcmp(codec->name, "libx264") || !strcmp(codec->name, "libx265")) &&
        !video_x26x_preset_ok(opt->preset)) {
        rc = err_set(ERR_INVALID_ARG,
                     "%s: unknown %s preset '%s' (ultrafast, superfast, veryfast, faster, fast, medium, "
                     "slow, slower, veryslow, placebo)",
                     path, codec->name, opt->preset);
        goto end;
    }
    const int crf = opt->crf >= 0 ? opt->crf : crf_default;
    char num[16];
    snprintf(num, sizeof num, "%d", crf);
    av_dict_set(&enc_opts, "crf", num, 0);
    if (opt->preset) av_dict_set(&enc_opts, "preset", opt->preset, 0);
    if (!strcmp(codec->name, "libx265")) av_dict_set(&enc_opts, "x265-params", "log-level=error", 0);
    /* One thread must mean the same bytes for the same frames (a resumed render re-encodes its frames and
     * must match). x264 0.164's AVX-512 kernels read memory they never wrote: measured on an AVX-512 EPYC,
     * half of 144 encodes of the same 17 frames in one process came out different, none with AVX2; so this
     * mode stops x264 at AVX2 (identical output to its C and AVX2 code; a few percent slower). */
    if (opt->threads == 1 && !strcmp(codec->name, "libx264") && video_cpu_has_avx512())
        av_dict_set(&enc_opts, "x264-params", "asm=avx2", 0);
    int ar = avcodec_open2(enc, codec, &enc_opts);
    if (ar < 0) {
        rc = err_set(ERR_INVALID_ARG, "%s: encoder %s refused %dx%d at %d/%d fps, crf %d%s%s: %s", path, codec->name,
                     opt->width, opt->height, opt->fps_num, opt->fps_den, crf, opt->preset ? ", preset " : "",
                     opt->preset ? opt->preset : "", video_av_detail(ar, detail, sizeof detail));
        goto end;
    }
    const AVDictionaryEntry *left = av_dict_get(enc_opts, "", NULL, AV_DICT_IGNORE_SUFFIX);
    if (left) {
        if (!strcmp(left->key, "preset"))
            rc = err_set(ERR_INVALID_ARG, "%s: encoder %s takes no preset (got '%s')", path, codec->name, left->value);
        else
            rc = err_set(ERR_UNSUPPORTED, "%s: encoder %s in this libavcodec has no option '%s'", path, codec->name,
                         left->key);
        goto end;
    }

    w->st = avformat_new_stream(w->oc, NULL);
    CHECK(w->st, "avformat_new_stream failed");
    w->st->time_base = enc->time_base;
    AV_CHECK(avcodec_parameters_from_context(w->st->codecpar, enc));
    w->st->avg_frame_rate = enc->framerate;
    w->st->r_frame_rate = enc->framerate;
    if (codec_id == AV_CODEC_ID_HEVC && !strcmp(container, "mp4"))
        w->st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1'); /* the tag Apple players require */

    ar = avio_open(&w->oc->pb, url, AVIO_FLAG_WRITE);
    if (ar < 0) {
        rc = err_set(ERR_IO, "%s: cannot create %s (is the directory writable?): %s", path, w->tmp_path,
                     video_av_detail(ar, detail, sizeof detail));
        goto end;
    }
    if (!strcmp(container, "mp4"))
        av_dict_set(&mux_opts, "movflags", opt->fragmented ? "+frag_keyframe+empty_moov+default_base_moof" : "+faststart",
                    0);
    ar = avformat_write_header(w->oc, &mux_opts);
    if (ar < 0) {
        rc = err_set(ERR_IO, "%s: cannot write the %s header: %s", path, container,
                     video_av_detail(ar, detail, sizeof detail));
        goto end;
    }
    avio_flush(w->oc->pb);

    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    w->rgb = av_malloc((size_t)opt->width * (size_t)opt->height * 3 + VIDEO_PAD);
    CHECK(w->frame && w->pkt && w->rgb, "out of memory for a %dx%d frame", opt->width, opt->height);
    w->frame->format = AV_PIX_FMT_YUV420P;
    w->frame->width = opt->width;
    w->frame->height = opt->height;
    w->frame->color_range = AVCOL_RANGE_MPEG;
    w->frame->color_primaries = AVCOL_PRI_BT709;
    w->frame->color_trc = AVCOL_TRC_BT709;
    w->frame->colorspace = AVCOL_SPC_BT709;
    AV_CHECK(av_frame_get_buffer(w->frame, 0));
    /* Chroma computed at full resolution then filtered down (FULL_CHR_H_INP), exact rounding. */
    w->sws = sws_getContext(opt->width, opt->height, AV_PIX_FMT_RGB24, opt->width, opt->height, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
    CHECK(w->sws, "sws_getContext rgb24 -> yuv420p %dx%d failed", opt->width, opt->height);
    const int *bt709 = sws_getCoefficients(SWS_CS_ITU709);
    CHECK(sws_setColorspaceDetails(w->sws, bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16) >= 0,
          "swscale cannot convert to BT.709 limited range");
    LOG_DEBUG("video: writing %s (%s, %s, %dx%d, %d/%d fps, crf %d) via %s", path, container, codec->name, opt->width,
              opt->height, opt->fps_num, opt->fps_den, crf, w->tmp_path);
    *out = w;
    w = NULL;
end:
    av_dict_free(&enc_opts);
    av_dict_free(&mux_opts);
    if (w) video_writer_free(w, true);
    return rc;
}

/* Send one frame (NULL: end of stream) and write every packet the encoder hands back. */
static int video_writer_encode(struct video_writer *w, const AVFrame *frame) {
    char detail[512];
    int ar = avcodec_send_frame(w->enc, frame);
    if (ar == AVERROR_EOF) return ERR_OK; /* already drained */
    AV_CHECK(ar);
    for (;;) {
        ar = avcodec_receive_packet(w->enc, w->pkt);
        if (ar == AVERROR(EAGAIN) || ar == AVERROR_EOF) return ERR_OK;
        AV_CHECK(ar);
        if (w->pkt->duration <= 0) w->pkt->duration = 1;
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        ar = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's data */
        if (ar >= 0) {
            avio_flush(w->oc->pb); /* progressive: what is encoded is on disk */
            ar = w->oc->pb->error;
        }
        if (ar < 0)
            return err_set(ERR_IO, "%s: cannot write video data to %s (disk full?): %s", w->path, w->tmp_path,
                           video_av_detail(ar, detail, sizeof detail));
    }
}

int video_writer_add_rgb24(struct video_writer *w, const uint8_t *rgb) {
    CHECK(w && rgb, "video_writer_add_rgb24: NULL argument");
    video_init();
    AV_CHECK(av_frame_make_writable(w->frame));
    /* swscale reads from a padded copy, never past the end of the caller's buffer */
    if (rgb != w->rgb) memcpy(w->rgb, rgb, (size_t)w->width * (size_t)w->height * 3);
    const uint8_t *src[4] = {w->rgb, NULL, NULL, NULL};
    const int stride[4] = {3 * w->width, 0, 0, 0};
    CHECK(sws_scale(w->sws, src, stride, 0, w->height, w->frame->data, w->frame->linesize) == w->height,
          "sws_scale rgb24 -> yuv420p failed");
    w->frame->pts = w->frames;
    TRY(video_writer_encode(w, w->frame));
    w->frames++;
    return ERR_OK;
}

int video_writer_add_f32(struct video_writer *w, const float *chw) {
    CHECK(w && chw, "video_writer_add_f32: NULL argument");
    video_planar_to_rgb24(chw, w->width, w->height, w->rgb);
    return video_writer_add_rgb24(w, w->rgb);
}

/* fsync a finished file by name (libavformat's AVIOContext has no fsync). */
static int video_fsync_path(const char *tmp, const char *final_path) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(ERR_IO, "%s: cannot reopen %s to sync it: %s", final_path, tmp, strerror(errno));
    int rc = fsync(fd) == 0 ? ERR_OK : err_set(ERR_IO, "%s: fsync of %s failed: %s", final_path, tmp, strerror(errno));
    close(fd);
    return rc;
}

int video_writer_close(struct video_writer **wp, bool keep) {
    struct video_writer *w = wp ? *wp : NULL;
    if (!w) return ERR_OK;
    *wp = NULL;
    video_init();
    int rc = ERR_OK;
    bool committed = false;
    char detail[512];
    if (keep && w->frames == 0) {
        rc = err_set(ERR_INVALID_ARG, "%s: refusing to write a video with no frames", w->path);
        keep = false;
    }
    if (keep) {
        rc = video_writer_encode(w, NULL); /* drain the encoder's delayed packets */
        if (rc == ERR_OK) {
            int ar = av_write_trailer(w->oc); /* +faststart moves the index to the front here */
            if (ar < 0)
                rc = err_set(ERR_IO, "%s: cannot finish the video file %s: %s", w->path, w->tmp_path,
                             video_av_detail(ar, detail, sizeof detail));
        }
        int cr = avio_closep(&w->oc->pb);
        if (rc == ERR_OK && cr < 0)
            rc = err_set(ERR_IO, "%s: cannot close %s: %s", w->path, w->tmp_path,
                         video_av_detail(cr, detail, sizeof detail));
        if (rc == ERR_OK) rc = video_fsync_path(w->tmp_path, w->path);
        if (rc == ERR_OK) {
            rc = fs_commit(w->tmp_path, w->path, w->overwrite); /* removes the temp file on failure */
            committed = true;
        }
        if (rc == ERR_OK) LOG_DEBUG("video: wrote %s (%lld frames, %s)", w->path, (long long)w->frames, w->encoder);
    }
    video_writer_free(w, !committed);
    return rc;
}

/* ---- reader ---- */

struct video_src {
    const char *path;
    AVFormatContext *ic;
    AVCodecContext *dec;
    AVStream *st;
    AVPacket *pkt;
    AVFrame *frame;
    bool eof_sent;
    bool is_image;
};

static void video_src_close(struct video_src *s) {
    avcodec_free_context(&s->dec);
    avformat_close_input(&s->ic);
    av_packet_free(&s->pkt);
    av_frame_free(&s->frame);
}

static bool video_is_image_demuxer(const char *name) {
    size_t n = strlen(name);
    return !strcmp(name, "image2") || (n > 5 && !strcmp(name + n - 5, "_pipe"));
}

static int video_src_open(struct video_src *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    if (!fs_exists(path)) return err_set(ERR_IO, "%s: no such file", path);
    if (!fs_is_file(path)) return err_set(ERR_IO, "%s: not a regular file", path);
    char url[PATH_MAX + 16], detail[512];
    if (snprintf(url, sizeof url, "file:%s", path) >= (int)sizeof url)
        return err_set(ERR_INVALID_ARG, "path too long: %s", path);
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0); /* a local playlist may not reach elsewhere */
    av_dict_set(&opts, "pattern_type", "none", 0);       /* image2: a '%' in the name is not a sequence */
    int ar = avformat_open_input(&s->ic, url, NULL, &opts);
    av_dict_free(&opts);
    int rc = ERR_OK;
    if (ar < 0) {
        rc = err_set(ERR_FORMAT, "%s: not an image or video FFmpeg can read: %s", path,
                     video_av_detail(ar, detail, sizeof detail));
        goto fail;
    }
    ar = avformat_find_stream_info(s->ic, NULL);
    if (ar < 0) {
        rc = err_set(ERR_FORMAT, "%s: cannot read the stream layout: %s", path,
                     video_av_detail(ar, detail, sizeof detail));
        goto fail;
    }
    const AVCodec *codec = NULL;
    int idx = av_find_best_stream(s->ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (idx == AVERROR_STREAM_NOT_FOUND) {
        rc = err_set(ERR_FORMAT, "%s: no video stream (format %s)", path, s->ic->iformat->name);
        goto fail;
    }
    if (idx < 0 || !codec) {
        const char *name = "unknown";
        for (unsigned i = 0; i < s->ic->nb_streams; i++)
            if (s->ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
                name = avcodec_get_name(s->ic->streams[i]->codecpar->codec_id);
                break;
            }
        rc = err_set(ERR_UNSUPPORTED, "%s: this FFmpeg build has no decoder for its %s video", path, name);
        goto fail;
    }
    s->st = s->ic->streams[idx];
    for (unsigned i = 0; i < s->ic->nb_streams; i++)
        if ((int)i != idx) s->ic->streams[i]->discard = AVDISCARD_ALL;
    s->is_image = video_is_image_demuxer(s->ic->iformat->name);
    s->dec = avcodec_alloc_context3(codec);
    CHECK(s->dec, "avcodec_alloc_context3(%s) failed", codec->name);
    AV_CHECK(avcodec_parameters_to_context(s->dec, s->st->codecpar));
    s->dec->thread_count = s->is_image ? 1 : 0; /* one thread: an image's decode error reaches our log hook */
    ar = avcodec_open2(s->dec, codec, NULL);
    if (ar < 0) {
        rc = err_set(ERR_FORMAT, "%s: cannot open the %s decoder: %s", path, codec->name,
                     video_av_detail(ar, detail, sizeof detail));
        goto fail;
    }
    s->pkt = av_packet_alloc();
    s->frame = av_frame_alloc();
    CHECK(s->pkt && s->frame, "out of memory");
    return ERR_OK;
fail:
    video_src_close(s);
    return rc;
}

/* Decode the next frame into s->frame: 1 = a frame, 0 = end of stream, < 0 = error. */
static int video_src_next(struct video_src *s, int64_t index) {
    char detail[512];
    for (;;) {
        int ar = avcodec_receive_frame(s->dec, s->frame);
        if (ar == 0) return 1;
        if (ar == AVERROR_EOF) return 0;
        if (ar != AVERROR(EAGAIN))
            return err_set(ERR_FORMAT, "%s: cannot decode frame %lld: %s", s->path, (long long)index,
                           video_av_detail(ar, detail, sizeof detail));
        if (s->eof_sent) return 0;
        for (;;) {
            ar = av_read_frame(s->ic, s->pkt);
            if (ar == AVERROR_EOF) {
                avcodec_send_packet(s->dec, NULL);
                s->eof_sent = true;
                break;
            }
            if (ar < 0)
                return err_set(ERR_FORMAT, "%s: cannot read past frame %lld: %s", s->path, (long long)index,
                               video_av_detail(ar, detail, sizeof detail));
            if (s->pkt->stream_index != s->st->index) {
                av_packet_unref(s->pkt);
                continue;
            }
            ar = avcodec_send_packet(s->dec, s->pkt);
            av_packet_unref(s->pkt);
            if (ar < 0 && ar != AVERROR(EAGAIN))
                return err_set(ERR_FORMAT, "%s: cannot decode frame %lld: %s", s->path, (long long)index,
                               video_av_detail(ar, detail, sizeof detail));
            break;
        }
    }
}

/* Per-read conversion state: decoded frame -> RGB24 at native size -> crop -> RGB24 [H, W, 3]. */
struct video_conv {
    int dst_w, dst_h;
    struct SwsContext *to_rgb; /* native format -> RGB24, same size */
    int key_w, key_h, key_fmt, key_cs, key_full;
    uint8_t *native; /* [fh, fw, 3] */
    size_t native_cap;
    struct SwsContext *resize; /* crop -> dst, RGB24 bicubic */
    int crop_w, crop_h;
    uint8_t *out; /* [H, W, 3] */
};

static void video_conv_free(struct video_conv *c) {
    sws_freeContext(c->to_rgb);
    sws_freeContext(c->resize);
    free(c->native);
    free(c->out);
    memset(c, 0, sizeof *c);
}

/* yuvj* are the deprecated full-range aliases: map to the plain format plus a full-range flag. */
static enum AVPixelFormat video_dejpeg(enum AVPixelFormat f, bool *full) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full = true; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = true; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = true; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = true; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full = true; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

static int video_sws_colorspace(enum AVColorSpace cs) {
    switch (cs) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return SWS_CS_DEFAULT; /* BT.601, also what FFmpeg assumes for untagged video */
    }
}

static int video_conv_frame(struct video_conv *c, const char *path, const AVFrame *f) {
    const int fw = f->width, fh = f->height;
    if (fw <= 0 || fh <= 0 || fw > VIDEO_MAX_DIM || fh > VIDEO_MAX_DIM)
        return err_set(ERR_FORMAT, "%s: frame size %dx%d is not supported", path, fw, fh);
    bool full = f->color_range == AVCOL_RANGE_JPEG;
    const enum AVPixelFormat fmt = video_dejpeg((enum AVPixelFormat)f->format, &full);
    const int cs = video_sws_colorspace(f->colorspace);
    const uint8_t *native;
    int native_stride;
    if (fmt == AV_PIX_FMT_RGB24) {
        native = f->data[0];
        native_stride = f->linesize[0];
    } else {
        if (!c->to_rgb || c->key_w != fw || c->key_h != fh || c->key_fmt != (int)fmt || c->key_cs != cs ||
            c->key_full != (int)full) {
            sws_freeContext(c->to_rgb);
            c->to_rgb = sws_getContext(fw, fh, fmt, fw, fh, AV_PIX_FMT_RGB24,
                                       SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
            if (!c->to_rgb)
                return err_set(ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB", path,
                               av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?");
            const int *coef = sws_getCoefficients(cs);
            /* Fails harmlessly (-1) for RGB and gray sources, which have no matrix. */
            sws_setColorspaceDetails(c->to_rgb, coef, full ? 1 : 0, coef, 1, 0, 1 << 16, 1 << 16);
            c->key_w = fw;
            c->key_h = fh;
            c->key_fmt = (int)fmt;
            c->key_cs = cs;
            c->key_full = (int)full;
        }
        const size_t need = (size_t)fw * (size_t)fh * 3;
        if (need > c->native_cap) {
            free(c->native);
            c->native = malloc(need + VIDEO_PAD);
            CHECK(c->native, "out of memory for a %dx%d frame", fw, fh);
            c->native_cap = need;
        }
        uint8_t *dst[4] = {c->native, NULL, NULL, NULL};
        int dst_stride[4] = {3 * fw, 0, 0, 0};
        CHECK(sws_scale(c->to_rgb, (const uint8_t *const *)f->data, f->linesize, 0, fh, dst, dst_stride) == fh,
              "sws_scale %s -> rgb24 failed", av_get_pix_fmt_name(fmt));
        native = c->native;
        native_stride = 3 * fw;
    }

    int x0, y0, cw, ch;
    video_crop_box(fw, fh, c->dst_w, c->dst_h, &x0, &y0, &cw, &ch);
    const uint8_t *crop = native + (size_t)y0 * (size_t)native_stride + (size_t)x0 * 3;
    if (cw == c->dst_w && ch == c->dst_h) {
        for (int y = 0; y < ch; y++)
            memcpy(c->out + (size_t)y * (size_t)cw * 3, crop + (size_t)y * (size_t)native_stride, (size_t)cw * 3);
        return ERR_OK;
    }
    if (!c->resize || c->crop_w != cw || c->crop_h != ch) {
        sws_freeContext(c->resize);
        /* Bicubic with B = 0, C = 0.5: Keys' a = -0.5, PIL's BICUBIC (swscale's default is C = 0.6). */
        const double param[2] = {0.0, 0.5};
        c->resize =
            sws_getContext(cw, ch, AV_PIX_FMT_RGB24, c->dst_w, c->dst_h, AV_PIX_FMT_RGB24,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP, NULL, NULL, param);
        CHECK(c->resize, "sws_getContext rgb24 %dx%d -> %dx%d failed", cw, ch, c->dst_w, c->dst_h);
        c->crop_w = cw;
        c->crop_h = ch;
    }
    const uint8_t *src[4] = {crop, NULL, NULL, NULL};
    const int src_stride[4] = {native_stride, 0, 0, 0};
    uint8_t *dst[4] = {c->out, NULL, NULL, NULL};
    const int dst_stride[4] = {3 * c->dst_w, 0, 0, 0};
    CHECK(sws_scale(c->resize, src, src_stride, 0, ch, dst, dst_stride) == c->dst_h, "sws_scale resize failed");
    return ERR_OK;
}

typedef int (*video_rgb_fn)(void *user, int64_t index, const uint8_t *rgb);

/* The reader behind video_read and video_read_all: frames as RGB24 [H, W, 3]. */
static int video_read_rgb(const char *path, int width, int height, int64_t first_frame, int64_t max_frames,
                          video_rgb_fn fn, void *user, int64_t *n_out) {
    video_init();
    if (n_out) *n_out = 0;
    CHECK(path && fn, "video_read: NULL argument");
    if (width <= 0 || height <= 0 || width > VIDEO_MAX_DIM || height > VIDEO_MAX_DIM)
        return err_set(ERR_INVALID_ARG, "%s: target size %dx%d must be positive and at most %d", path, width, height,
                       VIDEO_MAX_DIM);
    if (first_frame < 0)
        return err_set(ERR_INVALID_ARG, "%s: first frame %lld must not be negative", path, (long long)first_frame);
    struct video_src s;
    TRY(video_src_open(&s, path));
    struct video_conv c = {.dst_w = width, .dst_h = height};
    c.out = malloc((size_t)width * (size_t)height * 3 + VIDEO_PAD);
    CHECK(c.out, "out of memory for a %dx%d frame", width, height);
    int rc = ERR_OK;
    int64_t index = 0, delivered = 0;
    while (max_frames <= 0 || delivered < max_frames) {
        rc = video_src_next(&s, index);
        if (rc <= 0) break;
        rc = ERR_OK;
        if (index >= first_frame) {
            rc = video_conv_frame(&c, path, s.frame);
            if (rc == ERR_OK) rc = fn(user, index, c.out);
            if (rc < 0) break;
            delivered++;
        }
        av_frame_unref(s.frame);
        index++;
    }
    if (rc == ERR_OK && delivered == 0) {
        if (first_frame > 0 && index > 0)
            rc = err_set(ERR_FORMAT, "%s: no frames from frame %lld on (it has %lld)", path, (long long)first_frame,
                         (long long)index);
        else
            rc = err_set(ERR_FORMAT, "%s: no frames could be decoded%s%s%s", path, video_av_last_error[0] ? " (" : "",
                         video_av_last_error, video_av_last_error[0] ? ")" : "");
    }
    if (n_out) *n_out = delivered;
    video_conv_free(&c);
    video_src_close(&s);
    return rc;
}

struct video_read_f32_ctx {
    video_frame_fn fn;
    void *user;
    float *chw; /* [3, H, W] */
    int width, height;
};

static int video_read_f32_cb(void *user, int64_t index, const uint8_t *rgb) {
    struct video_read_f32_ctx *ctx = user;
    video_rgb24_to_planar(rgb, ctx->width, ctx->height, ctx->chw);
    return ctx->fn(ctx->user, index, ctx->chw);
}

int video_read(const char *path, int width, int height, int64_t first_frame, int64_t max_frames, video_frame_fn fn,
               void *user, int64_t *n_out) {
    CHECK(fn, "video_read: NULL callback");
    struct video_read_f32_ctx ctx = {.fn = fn, .user = user, .width = width, .height = height};
    if (width > 0 && height > 0 && width <= VIDEO_MAX_DIM && height <= VIDEO_MAX_DIM) {
        ctx.chw = malloc((size_t)width * (size_t)height * 3 * sizeof(float));
        CHECK(ctx.chw, "out of memory for a %dx%d frame", width, height);
    }
    int rc = video_read_rgb(path, width, height, first_frame, max_frames, video_read_f32_cb, &ctx, n_out);
    free(ctx.chw);
    return rc;
}

struct video_stage {
    uint8_t *buf; /* [T, H, W, 3] */
    size_t frame_bytes;
    int64_t count, cap;
};

static int video_stage_cb(void *user, int64_t index, const uint8_t *rgb) {
    (void)index;
    struct video_stage *st = user;
    if (st->count == st->cap) {
        int64_t cap = st->cap ? st->cap * 2 : 16;
        uint8_t *p = realloc(st->buf, (size_t)cap * st->frame_bytes);
        if (!p) return err_set(ERR_NOMEM, "out of memory staging %lld video frames", (long long)cap);
        st->buf = p;
        st->cap = cap;
    }
    memcpy(st->buf + (size_t)st->count * st->frame_bytes, rgb, st->frame_bytes);
    st->count++;
    return ERR_OK;
}

int video_read_all(const char *path, int width, int height, int64_t max_frames, float **out, int64_t *n_frames) {
    *out = NULL;
    if (n_frames) *n_frames = 0;
    struct video_stage st = {.frame_bytes = (size_t)(width > 0 ? width : 0) * (size_t)(height > 0 ? height : 0) * 3};
    int rc = video_read_rgb(path, width, height, 0, max_frames, video_stage_cb, &st, NULL);
    if (rc < 0) {
        free(st.buf);
        return rc;
    }
    const size_t hw = (size_t)width * (size_t)height, T = (size_t)st.count;
    float *v = malloc(3 * T * hw * sizeof(float));
    if (!v) {
        free(st.buf);
        return err_set(ERR_NOMEM, "%s: %lld frames of %dx%d do not fit in memory", path, (long long)st.count, width,
                       height);
    }
    for (size_t t = 0; t < T; t++) {
        const uint8_t *rgb = st.buf + t * st.frame_bytes;
        for (size_t c = 0; c < 3; c++) {
            float *dst = v + (c * T + t) * hw;
            for (size_t i = 0; i < hw; i++)
                dst[i] = video_u8_to_unit(rgb[3 * i + c]);
        }
    }
    free(st.buf);
    *out = v;
    if (n_frames) *n_frames = st.count;
    return ERR_OK;
}

int video_probe(const char *path, struct video_info *info) {
    video_init();
    CHECK(path && info, "video_probe: NULL argument");
    memset(info, 0, sizeof *info);
    struct video_src s;
    TRY(video_src_open(&s, path));
    int rc = video_src_next(&s, 0); /* decodable, not just a plausible header */
    if (rc == 0)
        rc = err_set(ERR_FORMAT, "%s: no frames could be decoded%s%s%s", path, video_av_last_error[0] ? " (" : "",
                     video_av_last_error, video_av_last_error[0] ? ")" : "");
    if (rc < 0) goto end;
    rc = ERR_OK;
    info->width = s.frame->width;
    info->height = s.frame->height;
    info->is_image = s.is_image;
    info->frames = s.is_image ? 1 : (s.st->nb_frames > 0 ? s.st->nb_frames : -1);
    AVRational r = s.st->avg_frame_rate;
    if (r.num <= 0 || r.den <= 0) r = s.st->r_frame_rate;
    if (s.is_image || r.num <= 0 || r.den <= 0) r = (AVRational){0, 1};
    info->fps_num = r.num;
    info->fps_den = r.den;
    snprintf(info->codec, sizeof info->codec, "%s", avcodec_get_name(s.st->codecpar->codec_id));
end:
    video_src_close(&s);
    return rc;
}

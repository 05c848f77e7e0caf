/* tests/model/test_vae_io.c - the VAE stage tools end to end on the tiny model (spec 6.8, 7.3, 7.4).
 *
 *  - vae-decode to HDF5 and to MP4: frame count 4 (F - 1) + 1, size 8h x 8w and the requested rate as
 *    ffprobe reports them; the MP4 read back against the HDF5 frames (same u8 truncation) above a PSNR bound;
 *  - vae-encode of the decoded HDF5 video and of the MP4: latent shapes;
 *  - causality: decoding a prefix of the latents gives bit-identical leading frames (the stream state carries
 *    exactly the whole-sequence context, nothing from later frames);
 *  - memory: a 16-latent-frame decode does not raise the peak RSS left by a 2-frame decode at the same size;
 *  - bf16 cache (--vae-cache bf16): decode and encode against the exact f32 cache on the tiny VAE and a wider
 *    one: different (the bf16 state is really used) but within the tolerance of docs/numerics.md, no NaN; the
 *    stream needs less memory by at least half the full-resolution caches;
 *  - row bands (spatial tiling after the middle block): frame-major and band-major decodes bit-identical to the
 *    unbanded decode, every frame, on the tiny VAE and a wider one, odd latent heights, 3 latent frames (the
 *    causal state and the temporal upsample's state cross frames), several band counts up to one band per latent
 *    row, f32 and bf16 caches, 1 and 2 threads; every output row delivered once; memory falls with the band count
 *    (band-major) and the stream sizes are what wan_vae_decode_bytes said; bad band counts refused;
 *  - bad inputs: zero frames, wrong rank, sizes that are not multiples of 16, unsupported codec, existing
 *    output: an error naming the problem and no output file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/video.h"
#include "model/wan_tiny.h"
#include "model/wan_vae.h"
#include "tests/common/test_util.h"
#include "worker/worker.h"

/* Luma PSNR of the MP4's frames against the HDF5 frames converted with the same truncation (spec 6.8). The
 * random VAE's frames are pixel noise, whose colour yuv420p's 2x2 chroma subsampling cannot keep (RGB PSNR is
 * about 21 dB whatever the CRF), so the encoder's fidelity is judged on BT.709 luma. */
enum { PSNR_MIN_DB = 40 };

static void write_latents(const char *path, int64_t f, int64_t h, int64_t w, unsigned long long seed) {
    const int64_t n = 16 * f * h * w;
    float *z = malloc((size_t)n * sizeof(float));
    t_fill_normal(z, n, seed, 1, 1.0f);
    struct h5_file *o = NULL;
    T_REQUIRE(h5_create(&o, path, true) == ERR_OK, "%s", err_message());
    T_REQUIRE(h5_write_f32(o, "latents", z, 4, (int64_t[]){16, f, h, w}) == ERR_OK, "%s", err_message());
    T_REQUIRE(h5_commit(&o) == ERR_OK, "%s", err_message());
    free(z);
}

static void read_dataset(const char *path, const char *name, struct tensor *t) {
    struct h5_file *f = NULL;
    T_REQUIRE(h5_open_read(&f, path) == ERR_OK && h5_read_f32(f, name, t) == ERR_OK, "%s", err_message());
    h5_close(&f);
}

static struct vae_decode_options decode_opts(const char *model, const char *in, const char *out) {
    struct vae_decode_options o = {.model_dir = model, .in_path = in, .out_path = out, .crf = -1, .force = true};
    return o;
}

static void test_decode_encode(const char *model, const char *tmp) {
    const char *lat = t_path(tmp, "lat.h5"), *vh5 = t_path(tmp, "video.h5");
    char mp4[1200];
    snprintf(mp4, sizeof mp4, "%s/video.mp4", tmp);
    write_latents(lat, 3, 4, 6, 11);
    struct vae_decode_options d = decode_opts(model, lat, vh5);
    T_REQUIRE(worker_vae_decode(&d) == ERR_OK, "decode to HDF5: %s", err_message());
    d.out_path = mp4, d.fps_num = 16, d.fps_den = 1, d.crf = 10;
    T_REQUIRE(worker_vae_decode(&d) == ERR_OK, "decode to MP4: %s", err_message());

    struct tensor v;
    read_dataset(vh5, "video", &v);
    T_CHECK(v.ndim == 4 && v.shape[0] == 3 && v.shape[1] == 9 && v.shape[2] == 32 && v.shape[3] == 48,
            "video shape [%lld, %lld, %lld, %lld], expected [3, 9, 32, 48]", (long long)v.shape[0],
            (long long)v.shape[1], (long long)v.shape[2], (long long)v.shape[3]);
    const float *vd = v.data;
    bool in_range = true;
    for (int64_t i = 0; i < tensor_numel(&v); i++) in_range &= vd[i] >= -1.0f && vd[i] <= 1.0f;
    T_CHECK(in_range, "decoded video outside [-1, 1]");

    char cmd[1400], line[256] = "";
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=nb_read_frames,width,height,r_frame_rate,codec_name -of csv=p=0 '%s'",
             mp4);
    FILE *p = popen(cmd, "r");
    T_REQUIRE(p && fgets(line, sizeof line, p), "ffprobe gave nothing");
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    printf("ffprobe %s: %s\n", mp4, line);
    T_CHECK(strcmp(line, "h264,48,32,16/1,9") == 0, "ffprobe says '%s', expected h264,48,32,16/1,9", line);

    float *back = NULL;
    int64_t nb = 0;
    T_REQUIRE(video_read_all(mp4, 48, 32, 0, &back, &nb) == ERR_OK, "%s", err_message());
    T_CHECK(nb == 9, "read back %lld frames", (long long)nb);
    double se = 0;
    const int64_t plane = 9 * 32 * 48;
    for (int64_t i = 0; i < plane && nb == 9; i++) {
        double ya = 0, yb = 0;
        static const double kr[3] = {0.2126, 0.7152, 0.0722};
        for (int c = 0; c < 3; c++)
            ya += kr[c] * video_unit_to_u8(vd[c * plane + i]), yb += kr[c] * video_unit_to_u8(back[c * plane + i]);
        se += (ya - yb) * (ya - yb);
    }
    const double psnr = 10 * log10(255.0 * 255.0 / (se / (double)plane + 1e-12));
    printf("MP4 (crf 10) vs HDF5 frames: luma PSNR %.2f dB (bound %d dB)\n", psnr, PSNR_MIN_DB);
    T_CHECK(psnr >= PSNR_MIN_DB, "PSNR %.2f dB < %d dB", psnr, PSNR_MIN_DB);
    free(back);

    /* --vae-bands / --vae-memory (band-major): the same HDF5 video and the same MP4 bytes */
    const char *vh5_b = t_path(tmp, "video_bands.h5");
    char mp4_b[1200];
    snprintf(mp4_b, sizeof mp4_b, "%s/video_bands.mp4", tmp);
    struct vae_decode_options db = decode_opts(model, lat, vh5_b);
    db.vae_bands = 3;
    T_REQUIRE(worker_vae_decode(&db) == ERR_OK, "banded decode to HDF5: %s", err_message());
    struct tensor vb;
    read_dataset(vh5_b, "video", &vb);
    T_CHECK(tensor_numel(&vb) == tensor_numel(&v) && !memcmp(vb.data, v.data, (size_t)tensor_numel(&v) * sizeof(float)),
            "vae-decode --vae-bands 3 differs from the unbanded HDF5 video");
    free(vb.data);
    db.out_path = mp4_b, db.fps_num = 16, db.fps_den = 1, db.crf = 10, db.vae_bands = 2;
    T_REQUIRE(worker_vae_decode(&db) == ERR_OK, "banded decode to MP4: %s", err_message());
    char *ma = NULL, *mb = NULL;
    size_t la = 0, lb = 0;
    T_REQUIRE(fs_read_file(mp4, &ma, &la, 1 << 26) == ERR_OK && fs_read_file(mp4_b, &mb, &lb, 1 << 26) == ERR_OK, "%s",
              err_message());
    printf("vae-decode --vae-bands 3 (HDF5) and 2 (MP4, %zu bytes): same output as one band\n", lb);
    T_CHECK(la == lb && !memcmp(ma, mb, la), "vae-decode --vae-bands 2 wrote a different MP4 (%zu vs %zu bytes)", lb,
            la);
    free(ma), free(mb);
    /* a budget no band count meets: a clear error naming --vae-memory, no output */
    const char *vh5_m = t_path(tmp, "video_mem.h5");
    db = decode_opts(model, lat, vh5_m);
    db.vae_memory = 1024;
    const int rc = worker_vae_decode(&db);
    printf("vae-decode --vae-memory 1 KiB: %s\n", err_message());
    T_CHECK(rc == ERR_INVALID_ARG && strstr(err_message(), "--vae-memory") && !fs_exists(vh5_m),
            "an impossible --vae-memory: rc %d, %s", rc, err_message());

    /* encode both back: [16, 3, 4, 6] */
    const char *from_h5 = t_path(tmp, "enc_h5.h5"), *from_mp4 = t_path(tmp, "enc_mp4.h5");
    struct vae_encode_options e = {.model_dir = model, .in_path = vh5, .out_path = from_h5, .force = true};
    T_REQUIRE(worker_vae_encode(&e) == ERR_OK, "encode HDF5 video: %s", err_message());
    e.in_path = mp4, e.out_path = from_mp4;
    e.width = 40, e.height = 24;
    T_CHECK(worker_vae_encode(&e) == ERR_INVALID_ARG && strstr(err_message(), "multiples of 16"),
            "--size 40x24 is not a multiple of 16: must be refused (%s)", err_message());
    T_CHECK(!fs_exists(from_mp4), "refused encode left %s", from_mp4);
    e.width = 48, e.height = 16; /* centre crop 48x16 out of 48x32 */
    T_REQUIRE(worker_vae_encode(&e) == ERR_OK, "encode MP4: %s", err_message());
    struct tensor l1, l2;
    read_dataset(from_h5, "latents", &l1);
    read_dataset(from_mp4, "latents", &l2);
    T_CHECK(l1.ndim == 4 && l1.shape[0] == 16 && l1.shape[1] == 3 && l1.shape[2] == 4 && l1.shape[3] == 6,
            "latents from HDF5 misshaped");
    T_CHECK(l2.ndim == 4 && l2.shape[1] == 3 && l2.shape[2] == 2 && l2.shape[3] == 6, "latents from MP4 misshaped");
    free(l1.data), free(l2.data), free(v.data);
}

struct collect {
    float *frames;
    int64_t frame_numel, n;
    size_t max_rss; /* largest resident set seen while frames arrived */
};

static int collect_frame(void *user, int64_t index, const struct tensor *frame) {
    struct collect *c = user;
    if (c->frames) memcpy(c->frames + index * c->frame_numel, frame->data, (size_t)c->frame_numel * sizeof(float));
    c->n = index + 1;
    const size_t rss = mem_current_rss();
    if (rss > c->max_rss) c->max_rss = rss;
    return 0;
}

/* Push input [ch, f, h, w] (frame-major copy made here) through a fresh stream with the given cache dtype:
 * decoder latents (ch = 16, pixel size 8h x 8w) or encoder pixels (ch = 3); frames into c. */
static void stream_frames(const struct wan_vae *v, bool decoder, enum dtype cache, const float *in, int64_t ch,
                          int64_t f, int64_t h, int64_t w, struct collect *c) {
    struct exec_ctx ctx = exec_ctx_cpu(0);
    struct vae_stream *s = NULL;
    const int64_t ph = decoder ? 8 * h : h, pw = decoder ? 8 * w : w;
    T_REQUIRE(wan_vae_stream_open(&s, v, &ctx, decoder, ph, pw, cache, collect_frame, c) == ERR_OK, "%s",
              err_message());
    float *frame = malloc((size_t)(ch * h * w) * sizeof(float));
    for (int64_t fi = 0; fi < f; fi++) {
        for (int64_t k = 0; k < ch; k++) memcpy(frame + k * h * w, in + (k * f + fi) * h * w, (size_t)(h * w) * sizeof(float));
        struct tensor t = tensor_f32_3d(frame, ch, h, w);
        T_REQUIRE(wan_vae_stream_push(s, &t) == 0, "push");
    }
    free(frame);
    wan_vae_stream_close(&s);
}

/* Decode latents [16, f, h, w] with the exact f32 cache. */
static void decode_frames(const struct wan_vae *v, const float *z, int64_t f, int64_t h, int64_t w,
                          struct collect *c) {
    stream_frames(v, true, DTYPE_F32, z, 16, f, h, w, c);
}

static void test_causality_and_memory(const char *model) {
    struct wan_vae *v = NULL;
    T_REQUIRE(wan_vae_load(&v, model) == ERR_OK, "%s", err_message());
    const int64_t f = 4, h = 3, w = 5, fn = 3 * 24 * 40;
    float *z = malloc((size_t)(16 * f * h * w) * sizeof(float)), *zp = malloc((size_t)(16 * 2 * h * w) * sizeof(float));
    t_fill_normal(z, 16 * f * h * w, 5, 2, 1.0f);
    for (int64_t c = 0; c < 16; c++) memcpy(zp + c * 2 * h * w, z + c * f * h * w, (size_t)(2 * h * w) * sizeof(float));
    struct collect full = {.frames = malloc((size_t)(13 * fn) * sizeof(float)), .frame_numel = fn};
    struct collect pre = {.frames = malloc((size_t)(5 * fn) * sizeof(float)), .frame_numel = fn};
    decode_frames(v, z, f, h, w, &full);
    decode_frames(v, zp, 2, h, w, &pre);
    T_CHECK(full.n == 13 && pre.n == 5, "frame counts %lld and %lld, expected 13 and 5", (long long)full.n,
            (long long)pre.n);
    T_CHECK(memcmp(full.frames, pre.frames, (size_t)(5 * fn) * sizeof(float)) == 0,
            "decoding the first 2 latent frames differs from the first 5 frames of decoding all 4");
    free(z), free(zp), free(full.frames), free(pre.frames);

    /* memory: the stream's arena is fixed by the frame size; frames are discarded by the sink */
    const int64_t mh = 6, mw = 8, many = 10;
    float *zm = malloc((size_t)(16 * many * mh * mw) * sizeof(float));
    t_fill_normal(zm, 16 * many * mh * mw, 6, 3, 1.0f);
    struct collect two = {0}, all = {0};
    decode_frames(v, zm, 2, mh, mw, &two); /* 2 latent frames (its own frame-major view of the first two) */
    decode_frames(v, zm, many, mh, mw, &all);
    printf("decode at %lldx%lld: largest RSS while frames arrive %.2f MiB for 2 latent frames, %.2f MiB for %lld; "
           "stream arena %.2f MiB\n",
           (long long)(8 * mw), (long long)(8 * mh), two.max_rss / 1048576.0, all.max_rss / 1048576.0, (long long)many,
           wan_vae_stream_bytes(v, true, 8 * mh, 8 * mw, DTYPE_F32) / 1048576.0);
    T_CHECK(two.max_rss > 0 && all.max_rss <= two.max_rss + (1u << 20),
            "resident memory grew by %.2f MiB from 2 to %lld latent frames", (all.max_rss - two.max_rss) / 1048576.0,
            (long long)many);
    free(zm);
    wan_vae_free(&v);
}

/* bf16 cache against f32 cache (docs/numerics.md, "Tolerances used by the tests"): max |diff| <= 2e-2 max |f32|
 * and relative L2 <= 1e-2 (bf16 keeps 8 bits of mantissa: a stored value moves by up to 2^-9 of itself, and the
 * decoder's dozens of convolutions carry that to the output). */
static const double BF16_CACHE_MAX_ABS = 2e-2, BF16_CACHE_REL_L2 = 1e-2;

static void compare_bf16_cache(const char *what, const float *ref, const float *got, int64_t n) {
    double se = 0, sr = 0, max_diff = 0, max_ref = 0;
    int64_t differ = 0, nan = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        nan += isnan(got[i]) ? 1 : 0;
        differ += got[i] != ref[i] ? 1 : 0;
        se += d * d, sr += (double)ref[i] * ref[i];
        max_diff = d > max_diff ? d : max_diff;
        max_ref = fabs(ref[i]) > max_ref ? fabs(ref[i]) : max_ref;
    }
    const double rel = sqrt(se / (sr > 0 ? sr : 1));
    printf("bf16 vs f32 cache, %s: max |diff| %.3g (max |f32| %.3g), rel L2 %.3g, %lld of %lld values differ\n", what,
           max_diff, max_ref, rel, (long long)differ, (long long)n);
    T_CHECK(nan == 0, "%s: %lld NaN with the bf16 cache", what, (long long)nan);
    T_CHECK(differ > n / 10, "%s: only %lld of %lld values differ: is the bf16 cache used?", what, (long long)differ,
            (long long)n);
    T_CHECK(max_diff <= BF16_CACHE_MAX_ABS * max_ref, "%s: max |diff| %.3g > %.3g (max |f32| %.3g)", what, max_diff,
            BF16_CACHE_MAX_ABS * max_ref, max_ref);
    T_CHECK(rel <= BF16_CACHE_REL_L2, "%s: rel L2 %.3g > %.3g", what, rel, BF16_CACHE_REL_L2);
}

/* Decode [16, f, h, w] and encode the f32 result back, with both caches; compare. */
static void check_bf16_cache(const struct wan_vae *v, const char *name, int64_t f, int64_t h, int64_t w) {
    const int64_t t = wan_vae_decoded_frames(&v->cfg, f), fn = 3 * 8 * h * 8 * w;
    const int64_t fe = wan_vae_encoded_frames(&v->cfg, t), en = 16 * h * w;
    float *z = malloc((size_t)(16 * f * h * w) * sizeof(float)), *video = malloc((size_t)(t * fn) * sizeof(float));
    t_fill_normal(z, 16 * f * h * w, 21, 4, 1.0f);
    struct collect d32 = {.frames = malloc((size_t)(t * fn) * sizeof(float)), .frame_numel = fn};
    struct collect d16 = {.frames = malloc((size_t)(t * fn) * sizeof(float)), .frame_numel = fn};
    stream_frames(v, true, DTYPE_F32, z, 16, f, h, w, &d32);
    stream_frames(v, true, DTYPE_BF16, z, 16, f, h, w, &d16);
    T_REQUIRE(d32.n == t && d16.n == t, "decoded %lld and %lld frames, expected %lld", (long long)d32.n,
              (long long)d16.n, (long long)t);
    char what[96];
    snprintf(what, sizeof what, "%s decode [16, %lld, %lld, %lld]", name, (long long)f, (long long)h, (long long)w);
    compare_bf16_cache(what, d32.frames, d16.frames, t * fn);
    /* the encoder's input: the f32 decode as [3, t, 8h, 8w] */
    for (int64_t ti = 0; ti < t; ti++)
        for (int64_t c = 0; c < 3; c++)
            memcpy(video + (c * t + ti) * (fn / 3), d32.frames + ti * fn + c * (fn / 3), (size_t)(fn / 3) * sizeof(float));
    struct collect e32 = {.frames = malloc((size_t)(fe * en) * sizeof(float)), .frame_numel = en};
    struct collect e16 = {.frames = malloc((size_t)(fe * en) * sizeof(float)), .frame_numel = en};
    stream_frames(v, false, DTYPE_F32, video, 3, t, 8 * h, 8 * w, &e32);
    stream_frames(v, false, DTYPE_BF16, video, 3, t, 8 * h, 8 * w, &e16);
    T_REQUIRE(e32.n == fe && e16.n == fe, "encoded %lld and %lld latents, expected %lld", (long long)e32.n,
              (long long)e16.n, (long long)fe);
    snprintf(what, sizeof what, "%s encode [3, %lld, %lld, %lld]", name, (long long)t, (long long)(8 * h),
             (long long)(8 * w));
    compare_bf16_cache(what, e32.frames, e16.frames, fe * en);
    free(z), free(video), free(d32.frames), free(d16.frames), free(e32.frames), free(e16.frames);
}

/* Stream memory at 720P: the bf16 cache must save at least half of the full-resolution caches (three resblocks of
 * two 3x3x3 convs in the decoder's last stage, two frames each of base_dim channels). */
static void check_bf16_bytes(const struct wan_vae *v, const char *name) {
    const int64_t H = 720, W = 1280, c0 = v->cfg.base_dim * v->cfg.dim_mult[0];
    for (int dec = 1; dec >= 0; dec--) {
        const size_t b32 = wan_vae_stream_bytes(v, dec, H, W, DTYPE_F32), b16 = wan_vae_stream_bytes(v, dec, H, W, DTYPE_BF16);
        const int64_t convs = dec ? 2 * (v->cfg.num_res_blocks + 1) : 2 * v->cfg.num_res_blocks;
        const double floor_saving = (double)convs * 2 * c0 * H * W * 2; /* bytes: half of 4-byte frames */
        printf("%s %s stream at 1280x720: f32 cache %.1f MiB, bf16 cache %.1f MiB (saves %.1f MiB, at least %.1f "
               "expected)\n",
               name, dec ? "decoder" : "encoder", b32 / 1048576.0, b16 / 1048576.0, (b32 - b16) / 1048576.0,
               floor_saving / 1048576.0);
        T_CHECK(b16 > 0 && b32 > b16 && (double)(b32 - b16) >= floor_saving,
                "%s: bf16 cache saves %.1f MiB, expected at least %.1f", name, ((double)b32 - (double)b16) / 1048576.0,
                floor_saving / 1048576.0);
    }
    T_CHECK(wan_vae_stream_bytes(v, true, H, W, DTYPE_F16) == 0, "an f16 cache must be refused");
}

static void test_cache_bf16(const char *model) {
    struct wan_vae *v = NULL;
    T_REQUIRE(wan_vae_load(&v, model) == ERR_OK, "%s", err_message());
    check_bf16_cache(v, "tiny VAE", 4, 4, 6);
    check_bf16_bytes(v, "tiny VAE");
    wan_vae_free(&v);
    struct wan_vae_config c;
    wan_vae_default_config(&c);
    c.base_dim = 32; /* wider: a third of the released width */
    T_REQUIRE(wan_vae_create_random(&v, &c, 7) == ERR_OK, "%s", err_message());
    check_bf16_cache(v, "base_dim 32 VAE", 3, 4, 6);
    check_bf16_bytes(v, "base_dim 32 VAE");
    wan_vae_free(&v);
}

/* ---- row bands ---- */

/* Band-major output: rows land in a clip [T][C, H, W]; every row must arrive exactly once. */
struct rows_clip {
    float *frames;
    int64_t t, c, h, w;
    int *hits; /* [T][H] */
    int64_t bad;
};

static int rows_to_clip(void *user, int64_t index, int64_t row0, const struct tensor *rows) {
    struct rows_clip *r = user;
    const int64_t n = rows->shape[1];
    if (index < 0 || index >= r->t || rows->shape[0] != r->c || rows->shape[2] != r->w || row0 < 0 ||
        row0 + n > r->h) {
        r->bad++;
        return 0;
    }
    const float *src = rows->data;
    for (int64_t ch = 0; ch < r->c; ch++)
        memcpy(r->frames + ((index * r->c + ch) * r->h + row0) * r->w, src + ch * n * r->w,
               (size_t)(n * r->w) * sizeof(float));
    for (int64_t i = 0; i < n; i++) r->hits[index * r->h + row0 + i]++;
    return 0;
}

/* The first differing frame and row of two clips [T][3, H, W], or -1. */
static int64_t first_diff(const float *a, const float *b, int64_t t, int64_t h, int64_t w, int64_t *row) {
    for (int64_t fi = 0; fi < t; fi++)
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t i = 0; i < h; i++)
                if (memcmp(a + ((fi * 3 + ch) * h + i) * w, b + ((fi * 3 + ch) * h + i) * w,
                           (size_t)w * sizeof(float))) {
                    *row = i;
                    return fi;
                }
    return -1;
}

/* Decode latents [16, f, h, w] unbanded, then in n bands frame-major and band-major: all bit-identical. */
static void check_bands(const struct wan_vae *v, const char *name, enum dtype cache, int threads, const float *z,
                        int64_t f, int64_t h, int64_t w, const int *counts, int n_counts) {
    const int64_t t = wan_vae_decoded_frames(&v->cfg, f), H = 8 * h, W = 8 * w, fn = 3 * H * W;
    struct exec_ctx ctx = exec_ctx_cpu(threads);
    struct collect ref = {.frames = malloc((size_t)(t * fn) * sizeof(float)), .frame_numel = fn};
    stream_frames(v, true, cache, z, 16, f, h, w, &ref);
    T_REQUIRE(ref.n == t, "%s: unbanded decode gave %lld frames", name, (long long)ref.n);
    float *frame = malloc((size_t)(16 * h * w) * sizeof(float));
    for (int k = 0; k < n_counts; k++) {
        const int n = counts[k];
        /* frame-major: whole frames through the usual sink */
        struct collect got = {.frames = calloc((size_t)(t * fn), sizeof(float)), .frame_numel = fn};
        struct vae_stream *s = NULL;
        T_REQUIRE(wan_vae_stream_open_bands(&s, v, &ctx, H, W, cache, n, collect_frame, &got) == ERR_OK, "%s",
                  err_message());
        for (int64_t fi = 0; fi < f; fi++) {
            for (int64_t c = 0; c < 16; c++)
                memcpy(frame + c * h * w, z + (c * f + fi) * h * w, (size_t)(h * w) * sizeof(float));
            struct tensor tf = tensor_f32_3d(frame, 16, h, w);
            T_REQUIRE(wan_vae_stream_push(s, &tf) == 0, "push");
            /* frames come out as soon as every band has them: 1 after the first latent frame, then 4 each */
            T_CHECK(wan_vae_stream_produced(s) == wan_vae_decoded_frames(&v->cfg, fi + 1),
                    "%s, %d bands: %lld frames after latent frame %lld", name, n, (long long)wan_vae_stream_produced(s),
                    (long long)fi);
        }
        wan_vae_stream_close(&s);
        int64_t row = 0, fd = got.n == t ? first_diff(ref.frames, got.frames, t, H, W, &row) : 0;
        T_CHECK(got.n == t && fd < 0, "%s [16, %lld, %lld, %lld], %s cache, %d threads, %d bands frame-major: %lld "
                "frames, first difference in frame %lld row %lld", name, (long long)f, (long long)h, (long long)w,
                dtype_name(cache), exec_ctx_threads(&ctx), n, (long long)got.n, (long long)fd, (long long)row);
        free(got.frames);
        /* band-major: rows of one band through every frame, then the next band */
        struct rows_clip rc = {.frames = calloc((size_t)(t * fn), sizeof(float)), .t = t, .c = 3, .h = H, .w = W,
                               .hits = calloc((size_t)(t * H), sizeof(int))};
        struct tensor zt = tensor_make(DTYPE_F32, DEVICE_CPU, (void *)z, 4, (int64_t[]){16, f, h, w});
        T_REQUIRE(wan_vae_decode_clip(v, &ctx, &zt, cache, n, rows_to_clip, &rc) == ERR_OK, "%s", err_message());
        int64_t once = 0;
        for (int64_t i = 0; i < t * H; i++) once += rc.hits[i] == 1;
        fd = first_diff(ref.frames, rc.frames, t, H, W, &row);
        T_CHECK(rc.bad == 0 && once == t * H && fd < 0, "%s [16, %lld, %lld, %lld], %s cache, %d threads, %d bands "
                "band-major: %lld bad calls, %lld of %lld rows once, first difference in frame %lld row %lld", name,
                (long long)f, (long long)h, (long long)w, dtype_name(cache), exec_ctx_threads(&ctx), n,
                (long long)rc.bad, (long long)once, (long long)(t * H), (long long)fd, (long long)row);
        free(rc.frames), free(rc.hits);
    }
    printf("bands, %s [16, %lld, %lld, %lld], %s cache, %d threads: %d band counts checked (frame- and band-major) "
           "against the unbanded decode\n",
           name, (long long)f, (long long)h, (long long)w, dtype_name(cache), exec_ctx_threads(&ctx), n_counts);
    free(frame), free(ref.frames);
}

/* Memory: band-major falls with the band count, frame-major never exceeds the unbanded stream by more than its
 * halos; the arena is what wan_vae_decode_bytes says (a stream opens with exactly that). */
static void check_band_bytes(const struct wan_vae *v, const char *name) {
    const int64_t H = 720, W = 1280;
    const size_t whole = wan_vae_stream_bytes(v, true, H, W, DTYPE_F32);
    T_CHECK(wan_vae_decode_bytes(v, H, W, DTYPE_F32, 1, -1) == whole, "%s: 1 band must be the unbanded stream", name);
    size_t prev = SIZE_MAX;
    for (int n = 1; n <= 8; n *= 2) {
        size_t most = 0;
        for (int b = 0; b < n; b++) {
            const size_t bb = wan_vae_decode_bytes(v, H, W, DTYPE_F32, n, b);
            most = bb > most ? bb : most;
        }
        const size_t fm = wan_vae_decode_bytes(v, H, W, DTYPE_F32, n, -1);
        double pre = 0;
        const double halo = wan_vae_decode_halo_cost(v, H, W, n, &pre);
        printf("%s decoder at 1280x720, %d bands: band-major %.1f MiB (largest band), frame-major %.1f MiB, unbanded "
               "%.1f MiB; halo work +%.1f %% after the middle block (before it: %.1f %% of the decode)\n",
               name, n, most / 1048576.0, fm / 1048576.0, whole / 1048576.0, 100 * halo, 100 * pre);
        T_CHECK(most > 0 && most < prev, "%s: band-major memory must fall with the band count (%d bands: %zu)", name, n,
                most);
        T_CHECK(n == 1 || (halo > 0 && halo < 1), "%s: %d bands: halo cost %.3f", name, n, halo);
        prev = most;
    }
    const int n4 = wan_vae_decode_bands_for(v, H, W, DTYPE_F32, true, wan_vae_decode_bytes(v, H, W, DTYPE_F32, 4, 1));
    T_CHECK(n4 >= 2 && n4 <= 4, "%s: a budget of 4 bands' largest stream chose %d bands", name, n4);
    T_CHECK(wan_vae_decode_bands_for(v, H, W, DTYPE_F32, true, SIZE_MAX) == 1, "%s: an unlimited budget needs 1 band",
            name);
    T_CHECK(wan_vae_decode_bands_for(v, H, W, DTYPE_F32, true, 1 << 20) == 0, "%s: 1 MiB fits no band count", name);
    /* refused: 0 bands, more bands than latent rows, a band out of range, the encoder */
    T_CHECK(wan_vae_decode_bytes(v, H, W, DTYPE_F32, 0, -1) == 0 &&
                wan_vae_decode_bytes(v, H, W, DTYPE_F32, 91, -1) == 0 &&
                wan_vae_decode_bytes(v, H, W, DTYPE_F32, 90, -1) > 0 &&
                wan_vae_decode_bytes(v, H, W, DTYPE_F32, 4, 4) == 0,
            "%s: band counts outside 1 ... latent rows must be refused", name);
    struct exec_ctx ctx = exec_ctx_cpu(0);
    struct vae_stream *s = NULL;
    const int rc = wan_vae_stream_open_bands(&s, v, &ctx, 32, 48, DTYPE_F32, 5, collect_frame, NULL);
    printf("5 bands of 4 latent rows: %s\n", err_message());
    T_CHECK(rc == ERR_INVALID_ARG && !s && strstr(err_message(), "5 bands"), "5 bands of 4 latent rows: rc %d", rc);
}

static void test_bands(const char *model) {
    struct wan_vae *v = NULL;
    T_REQUIRE(wan_vae_load(&v, model) == ERR_OK, "%s", err_message());
    const int64_t f = 3, h = 7, w = 5;
    float *z = malloc((size_t)(16 * f * h * w) * sizeof(float));
    t_fill_normal(z, 16 * f * h * w, 31, 5, 1.0f);
    const int counts[] = {1, 2, 3, 4, 7};
    check_bands(v, "tiny VAE", DTYPE_F32, 0, z, f, h, w, counts, 5);
    check_bands(v, "tiny VAE", DTYPE_F32, 1, z, f, h, w, counts + 1, 2);
    check_bands(v, "tiny VAE", DTYPE_BF16, 0, z, f, h, w, counts + 1, 2);
    free(z);
    /* tall and narrow: the halo at the middle block's level (13 latent rows) lies inside the frame */
    const int64_t ft = 3, ht = 31, wt = 2;
    z = malloc((size_t)(16 * ft * ht * wt) * sizeof(float));
    t_fill_normal(z, 16 * ft * ht * wt, 33, 7, 1.0f);
    const int counts_tall[] = {2, 3, 6};
    check_bands(v, "tiny VAE", DTYPE_F32, 0, z, ft, ht, wt, counts_tall, 3);
    check_band_bytes(v, "tiny VAE");
    free(z);
    wan_vae_free(&v);
    struct wan_vae_config c;
    wan_vae_default_config(&c);
    c.base_dim = 32; /* wider: a third of the released width */
    T_REQUIRE(wan_vae_create_random(&v, &c, 9) == ERR_OK, "%s", err_message());
    const int64_t f2 = 3, h2 = 9, w2 = 6;
    z = malloc((size_t)(16 * f2 * h2 * w2) * sizeof(float));
    t_fill_normal(z, 16 * f2 * h2 * w2, 32, 6, 1.0f);
    const int counts2[] = {2, 3, 5};
    check_bands(v, "base_dim 32 VAE", DTYPE_F32, 0, z, f2, h2, w2, counts2, 3);
    free(z);
    const int64_t ft2 = 2, ht2 = 29, wt2 = 1;
    z = malloc((size_t)(16 * ft2 * ht2 * wt2) * sizeof(float));
    t_fill_normal(z, 16 * ft2 * ht2 * wt2, 34, 8, 1.0f);
    check_bands(v, "base_dim 32 VAE", DTYPE_F32, 0, z, ft2, ht2, wt2, counts2, 1);
    check_band_bytes(v, "base_dim 32 VAE");
    free(z);
    wan_vae_free(&v);
}

static void test_bad_inputs(const char *model, const char *tmp) {
    const char *out = t_path(tmp, "bad_out.h5");
    /* zero frames */
    const char *zero = t_path(tmp, "zero.h5");
    struct h5_file *f = NULL;
    T_REQUIRE(h5_create(&f, zero, true) == ERR_OK, "%s", err_message());
    float dummy = 0;
    T_REQUIRE(h5_write_f32(f, "video", &dummy, 4, (int64_t[]){3, 0, 16, 16}) == ERR_OK &&
                  h5_write_f32(f, "latents", &dummy, 4, (int64_t[]){16, 0, 2, 2}) == ERR_OK && h5_commit(&f) == ERR_OK,
              "%s", err_message());
    struct vae_encode_options e = {.model_dir = model, .in_path = zero, .out_path = out};
    int rc = worker_vae_encode(&e);
    printf("zero-frame video: %s\n", err_message());
    T_CHECK(rc == ERR_SHAPE && strstr(err_message(), "'video'"), "zero frames: rc %d: %s", rc, err_message());
    struct vae_decode_options d = decode_opts(model, zero, out);
    rc = worker_vae_decode(&d);
    printf("zero-frame latents: %s\n", err_message());
    T_CHECK(rc == ERR_SHAPE && strstr(err_message(), "'latents'"), "zero latent frames: rc %d: %s", rc, err_message());
    /* wrong channel count */
    const char *three = t_path(tmp, "three.h5");
    T_REQUIRE(h5_create(&f, three, true) == ERR_OK, "%s", err_message());
    float z8[8 * 2 * 2 * 2] = {0};
    T_REQUIRE(h5_write_f32(f, "latents", z8, 4, (int64_t[]){8, 2, 2, 2}) == ERR_OK && h5_commit(&f) == ERR_OK, "%s",
              err_message());
    d.in_path = three;
    rc = worker_vae_decode(&d);
    T_CHECK(rc == ERR_SHAPE && strstr(err_message(), "[16, F, h, w]"), "8 channels: rc %d: %s", rc, err_message());
    /* unsupported codec, and a container that cannot hold the codec */
    const char *lat = t_path(tmp, "lat.h5");
    char mp4[1200], webm[1200];
    snprintf(mp4, sizeof mp4, "%s/bad.mp4", tmp);
    snprintf(webm, sizeof webm, "%s/bad.webm", tmp);
    d = decode_opts(model, lat, mp4);
    d.codec = "foo";
    rc = worker_vae_decode(&d);
    printf("codec foo: %s\n", err_message());
    T_CHECK(rc == ERR_UNSUPPORTED && strstr(err_message(), "foo"), "codec foo: rc %d: %s", rc, err_message());
    d.out_path = webm, d.codec = "h264";
    rc = worker_vae_decode(&d);
    printf("webm + h264: %s\n", err_message());
    T_CHECK(rc == ERR_INVALID_ARG, "webm with h264: rc %d: %s", rc, err_message());
    /* an image that is not a multiple of 16 without --size */
    const char *txt = t_path(tmp, "notes.txt");
    t_write_file(txt, "not a video\n", 12);
    e.in_path = txt;
    rc = worker_vae_encode(&e);
    printf("text file as video: %s\n", err_message());
    T_CHECK(rc == ERR_FORMAT && strstr(err_message(), "notes.txt"), "text file: rc %d: %s", rc, err_message());
    e.in_path = t_path(tmp, "missing.png");
    rc = worker_vae_encode(&e);
    T_CHECK(rc == ERR_IO && strstr(err_message(), "missing.png"), "missing file: rc %d: %s", rc, err_message());
    T_CHECK(!fs_exists(out) && !fs_exists(mp4) && !fs_exists(webm), "a failed run left an output file");
    /* no temp files either */
    char **names = NULL;
    size_t n = 0;
    T_REQUIRE(fs_list_dir(tmp, NULL, &names, &n) == ERR_OK, "%s", err_message());
    bool temp_left = false;
    for (size_t i = 0; i < n; i++) temp_left |= strstr(names[i], ".tmp-") != NULL;
    T_CHECK(!temp_left, "a temp file was left behind");
    fs_free_list(&names, &n);
    /* an existing output is never replaced */
    const char *keep = t_path(tmp, "keep.h5");
    t_write_file(keep, "precious", 8);
    d = decode_opts(model, lat, keep);
    d.force = false;
    rc = worker_vae_decode(&d);
    char *content = NULL;
    size_t len = 0;
    T_CHECK(rc == ERR_EXISTS && fs_read_file(keep, &content, &len, 64) == ERR_OK && len == 8, "existing output: rc %d",
            rc);
    free(content);
}

int main(void) {
    const char *tmp = t_tmpdir("vaeio");
    char model[1200];
    snprintf(model, sizeof model, "%s/model", tmp);
    struct wan_tiny_options o;
    wan_tiny_default_options(&o);
    o.example_input = false;
    T_REQUIRE(wan_tiny_write(model, &o) == ERR_OK, "%s", err_message());
    test_decode_encode(model, tmp);
    test_causality_and_memory(model);
    test_cache_bf16(model);
    test_bands(model);
    test_bad_inputs(model, tmp);
    t_rmtree(tmp);
    return t_summary(__FILE__);
}

/* cli/cmd_vae.c - `reelfarm vae-decode` and `reelfarm vae-encode` (worker/vae_tools.c), `reelfarm bench-vae`
 * (worker/bench_vae.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/dtype.h"
#include "core/error.h"
#include "worker/worker.h"

static const char vae_decode_help[] =
    "Usage: reelfarm vae-decode --model DIR --in LATENTS.h5 --out OUT [options]\n"
    "\n"
    "Decodes latents with the model's Wan VAE (spec 7), one latent frame at a time with the causal cache, so\n"
    "memory does not grow with the number of frames. LATENTS.h5: latents float32 [16, F, h, w] in the DiT's\n"
    "normalised latent space. OUT ending in .h5 gets video float32 [3, 4(F-1)+1, 8h, 8w] in [-1, 1]; OUT ending\n"
    "in .mp4, .mkv or .webm gets an encoded video, written frame by frame as the decoder produces them.\n"
    "\n"
    "Options:\n"
    "  --fps N[/D]        frame rate of an encoded output (default 24; e.g. 30000/1001)\n"
    "  --codec NAME       h264 (default), h265 or av1 (.webm needs av1)\n"
    "  --crf N            quality, lower is better (default: h264 10, what upstream's imageio quality=8\n"
    "                     gives libx264; h265 16; av1 20)\n"
    "  --preset NAME      encoder speed preset (x264/x265: ultrafast ... veryslow)\n"
    "  --vae-cache f32|bf16  how the decoder keeps its state between frames (the causal convolutions' last two\n"
    "                     input frames): f32 (default, exact) or bf16 (a 720P decode peaks at 6.6 instead of\n"
    "                     10.3 GiB; rounded as upstream's bf16-autocast decode keeps it; computation stays f32)\n"
    "  --vae-memory GB    decode in horizontal row bands, one band through the whole clip at a time, with the\n"
    "                     fewest bands whose decoder state fits GB GiB: the same bits, less memory, more time\n"
    "                     (121 x 720P: 10.4 GiB peak in one band; with --vae-memory 2.5, 6 bands, about 4.3 GiB\n"
    "                     and a third more arithmetic). An encoded output is then written after the last band.\n"
    "  --vae-bands N      the same with N bands\n"
    "  --threads N / --force\n";

static const char vae_encode_help[] =
    "Usage: reelfarm vae-encode --model DIR --in INPUT --out LATENTS.h5 [options]\n"
    "\n"
    "Encodes pixels with the model's Wan VAE (spec 7; the mean, no sampling) in 1 + 4 + 4 ... frame groups.\n"
    "INPUT: an image (PNG, JPEG, WebP, ...), a video, or an HDF5 file with video float32 [3, T, H, W] in [-1, 1].\n"
    "Images and videos are centre-cropped to the target aspect ratio and resized (spec 6.6), then mapped\n"
    "u8 -> u / 127.5 - 1 (spec 6.8). T frames give 1 + (T - 1) / 4 latent frames; the last (T - 1) mod 4\n"
    "frames are ignored, as upstream. LATENTS.h5 gets latents float32 [16, F, H/8, W/8] (normalised).\n"
    "\n"
    "Options:\n"
    "  --size WxH         target size for images and videos (multiples of 16; also 540p, 720p); default: the\n"
    "                     input's own size, which must then be multiples of 16\n"
    "  --frames N         encode at most the first N frames of a video\n"
    "  --vae-cache f32|bf16  how the encoder keeps its state between frames: f32 (default, exact) or bf16\n"
    "                     (about half the memory; computation stays f32)\n"
    "  --threads N / --force\n";

/* --vae-cache: "f32" or "bf16" (also "float32", "bfloat16") */
static int parse_vae_cache(const char *value, enum dtype *out) {
    const int d = dtype_parse(value);
    if (d != DTYPE_F32 && d != DTYPE_BF16) return err_set(ERR_INVALID_ARG, "--vae-cache %s: expected f32 or bf16", value);
    *out = (enum dtype)d;
    return 0;
}

/* "24" or "30000/1001" */
static int parse_fps(const char *value, int *num, int *den) {
    const char *slash = strchr(value, '/');
    int64_t n = 0, d = 1;
    if (!slash) return arg_i64("--fps", value, 1, 1000, &n) < 0 ? ERR_INVALID_ARG : (*num = (int)n, *den = 1, 0);
    char head[32];
    const size_t len = (size_t)(slash - value);
    if (len == 0 || len >= sizeof head) return err_set(ERR_INVALID_ARG, "--fps %s: expected N or N/D", value);
    memcpy(head, value, len), head[len] = '\0';
    TRY(arg_i64("--fps", head, 1, 1000000, &n));
    TRY(arg_i64("--fps", slash + 1, 1, 1000000, &d));
    if ((double)n / (double)d > 1000) return err_set(ERR_INVALID_ARG, "--fps %s: above 1000 frames per second", value);
    *num = (int)n, *den = (int)d;
    return 0;
}

int cmd_vae_decode(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},     {"out", required_argument, 0, 'o'},
        {"fps", required_argument, 0, 'r'},   {"codec", required_argument, 0, 'c'},  {"crf", required_argument, 0, 'q'},
        {"preset", required_argument, 0, 'p'}, {"threads", required_argument, 0, 't'}, {"force", no_argument, 0, 'f'},
        {"vae-cache", required_argument, 0, 'C'}, {"vae-bands", required_argument, 0, 'B'},
        {"vae-memory", required_argument, 0, 'G'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char cmd[] = "vae-decode";
    struct vae_decode_options o = {0};
    double gib = 0;
    o.crf = -1;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model_dir = optarg; break;
        case 'i': o.in_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 'r': rc = parse_fps(optarg, &o.fps_num, &o.fps_den); break;
        case 'c': o.codec = optarg; break;
        case 'q': rc = arg_int("--crf", optarg, 0, 63, &o.crf); break;
        case 'p': o.preset = optarg; break;
        case 'C': rc = parse_vae_cache(optarg, &o.vae_cache); break;
        case 'B': rc = arg_int("--vae-bands", optarg, 1, 1 << 20, &o.vae_bands); break;
        case 'G': rc = arg_f64("--vae-memory", optarg, 0.001, 1 << 20, &gib); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 'f': o.force = true; break;
        case 'h': fputs(vae_decode_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_dir || !o.in_path || !o.out_path) return usage_error(cmd, "--model, --in and --out are required");
    if (gib > 0 && o.vae_bands > 0)
        return usage_error(cmd, "--vae-memory chooses the band count: not with --vae-bands");
    o.vae_memory = (size_t)(gib * 1073741824.0);
    return worker_vae_decode(&o) < 0 ? run_error() : 0;
}

int cmd_vae_encode(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},  {"in", required_argument, 0, 'i'},   {"out", required_argument, 0, 'o'},
        {"size", required_argument, 0, 's'},   {"frames", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 't'}, {"force", no_argument, 0, 'f'},     {"help", no_argument, 0, 'h'},
        {"vae-cache", required_argument, 0, 'C'}, {0, 0, 0, 0}};
    static const char cmd[] = "vae-encode";
    struct vae_encode_options o = {0};
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model_dir = optarg; break;
        case 'i': o.in_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 's': rc = arg_resolution("--size", optarg, &o.width, &o.height); break;
        case 'n': rc = arg_i64("--frames", optarg, 1, INT64_C(1) << 30, &o.max_frames); break;
        case 'C': rc = parse_vae_cache(optarg, &o.vae_cache); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 'f': o.force = true; break;
        case 'h': fputs(vae_encode_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_dir || !o.in_path || !o.out_path) return usage_error(cmd, "--model, --in and --out are required");
    return worker_vae_encode(&o) < 0 ? run_error() : 0;
}

static const char bench_vae_help[] =
    "Usage: reelfarm bench-vae [--resolution 720p|540p|WxH] [--frames N] [--latent-frames K] [--encode]\n"
    "                          [--vae-cache f32|bf16] [options]\n"
    "\n"
    "Times the Wan VAE decoder (or encoder) of the released config with random weights on the CPU and reports\n"
    "its memory: the stream arena (fixed by the frame size), the resident set after each latent frame and the\n"
    "process peak. --frames sets the clip (default 121); --latent-frames K runs only its first K latent frames\n"
    "(memory does not depend on K; every cache is warm from the second latent frame on). --vae-cache bf16 keeps\n"
    "the state between frames in bf16 (about half the memory; f32, the default, is exact).\n"
    "\n"
    "Decoder row bands (bit-identical output; model/wan_vae.h):\n"
    "  --vae-bands N      cut the frame into N row bands after the middle block (default 1: none); alone,\n"
    "                     frame-major (every band of a frame, then the next frame): saves little memory, the\n"
    "                     causal state of every band stays alive\n"
    "  --vae-band-major   one band through every latent frame, then the next band: memory falls with the band\n"
    "                     count; rows go into a float32 buffer of the whole clip (counted in the peak). Without\n"
    "                     --vae-bands, the fewest bands whose stream fits --vae-memory (default 2.5 GiB)\n"
    "  --vae-memory GB    band-major within this many GiB of stream (weights and the clip buffer come on top)\n"
    "\n"
    "Options: --base-dim N (default 96), --threads N, --seed S\n";

int cmd_bench_vae(int argc, char **argv) {
    static const struct option longopts[] = {
        {"resolution", required_argument, 0, 'r'}, {"frames", required_argument, 0, 'n'},
        {"latent-frames", required_argument, 0, 'k'}, {"encode", no_argument, 0, 'e'},
        {"base-dim", required_argument, 0, 'b'},   {"threads", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},       {"vae-cache", required_argument, 0, 'C'},
        {"vae-bands", required_argument, 0, 'B'},  {"vae-band-major", no_argument, 0, 'M'},
        {"vae-memory", required_argument, 0, 'G'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char cmd[] = "bench-vae";
    struct bench_vae_options o = {.pixel_frames = 121, .width = 1280, .height = 720, .seed = 1};
    double gib = 0;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r': rc = arg_resolution("--resolution", optarg, &o.width, &o.height); break;
        case 'n': rc = arg_i64("--frames", optarg, 1, 100000, &o.pixel_frames); break;
        case 'k': rc = arg_i64("--latent-frames", optarg, 1, 100000, &o.latent_frames); break;
        case 'e': o.encode = true; break;
        case 'b': rc = arg_i64("--base-dim", optarg, 1, 4096, &o.base_dim); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 's': rc = arg_u64("--seed", optarg, &o.seed); break;
        case 'C': rc = parse_vae_cache(optarg, &o.vae_cache); break;
        case 'B': rc = arg_int("--vae-bands", optarg, 1, 1 << 20, &o.vae_bands); break;
        case 'M': o.vae_band_major = true; break;
        case 'G': rc = arg_f64("--vae-memory", optarg, 0.001, 1 << 20, &gib); break;
        case 'h': fputs(bench_vae_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (gib > 0 && o.vae_bands > 0)
        return usage_error(cmd, "--vae-memory chooses the band count: not with --vae-bands");
    o.vae_memory = (size_t)(gib * 1073741824.0);
    return worker_bench_vae(&o) < 0 ? run_error() : 0;
}

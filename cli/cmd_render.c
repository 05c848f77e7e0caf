/* cli/cmd_render.c - `reelfarm render`: flags and film files to worker_render (spec 6). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "parallel/par_runtime.h"
#include "coordinator/film.h"
#include "coordinator/progress_pub.h"
#include "coordinator/render_settings.h"
#include "coordinator/service.h"
#include "core/error.h"
#include "io/fs.h"
#include "io/msg_socket.h"
#include "worker/worker.h"

/* render --progress-endpoint: rank 0 publishes its progress (coordinator/progress_pub.h). */
static int open_progress_pub(struct progress_pub **pub, const char *ep, const char *curve_secret, const char *allow_dir,
                             const char *output) {
    struct msock_curve curve;
    if (curve_secret) TRY(msock_curve_load(&curve, curve_secret, NULL));
    char job[64];
    const char *slurm = getenv("SLURM_JOB_ID");
    if (slurm && slurm[0])
        snprintf(job, sizeof job, "slurm-%.50s", slurm);
    else
        snprintf(job, sizeof job, "render-%ld", (long)getpid());
    return progress_pub_open(pub, ep, job, output, curve_secret ? &curve : NULL, allow_dir);
}

static const char render_help[] =
    "Usage: reelfarm render [FILM.json] [--prompt TEXT] [options]\n"
    "       reelfarm render --resume CHECKPOINT.h5\n"
    "\n"
    "Renders a film with a SkyReels-V2 diffusion-forcing model (spec 6): the prompt (or each shot's prompt)\n"
    "is encoded, the video is cut into overlapping chunks, each chunk is denoised, decoded and appended to\n"
    "the output while the next one starts. Without --model the built-in tiny model is used (random weights:\n"
    "the output is noise, but every step runs).\n"
    "\n"
    "What to render:\n"
    "  FILM.json                 settings and a shot list (see README); flags override the file\n"
    "  --prompt TEXT / --prompt-file F\n"
    "  --negative-prompt TEXT    (default: upstream's DF negative prompt)\n"
    "  --frames N | --seconds S  length (video frames are 4k+1; default one window)\n"
    "  --image IMG               start frame (image-to-video through the prefix)\n"
    "  --end-image IMG           end frame (its latent is appended to the last chunk)\n"
    "  --extend VIDEO            continue a video (--frames counts the new frames plus --overlap)\n"
    "Model and sampling:\n"
    "  --model DIR               a SkyReels-V2 DF Diffusers directory (transformer/, vae/, text_encoder/,\n"
    "                            tokenizer/)\n"
    "  --resolution 540p|720p|WxH (default 540p; portrait WxH allowed)\n"
    "  --steps N (30)  --shift S (8)  --guidance G (6)  --seed S (0)  --fps F (24)\n"
    "  --ar-step A (0: synchronous; async: 5)  --causal-block-size C (1; async: 5)  --causal-attention\n"
    "  --addnoise-condition K (0; upstream suggests 20 for long videos)\n"
    "  --base-frames B (97 at 540P, 121 at 720P)  --overlap O (17)\n"
    "  --overlap-mode pixel|latent  pixel (default): decode each chunk, re-encode its last O frames as the\n"
    "                            next prefix (SkyReels); latent: carry the last latents, one continuous\n"
    "                            decode, no VAE round trip at joins (diffusers; avoids colour drift)\n"
    "Output:\n"
    "  --out FILE                .mp4/.mkv/.webm (H.264 default) or .h5 (video_uint8 [T, H, W, 3]);\n"
    "                            default film.mp4. While rendering, frames go to FILE's .partial sibling\n"
    "  --codec h264|h265|av1  --crf N  --preset P\n"
    "  --save-latents F.h5       also write the film's latent sequence (latents [16, L, h, w])\n"
    "  --noise F.h5              initial latents of the first chunk (dataset noise [16, F, h, w])\n"
    "  --overwrite               replace an existing output (and an old checkpoint)\n"
    "Checkpoints:\n"
    "  --checkpoint F.h5         where to keep it (default FILE.ckpt.h5, on by default)\n"
    "  --checkpoint-every K      also every K denoising rows (default 0: at each chunk end only)\n"
    "  --no-checkpoint           keep none\n"
    "  --keep-checkpoint         do not delete it when the film is finished\n"
    "  --resume F.h5             continue an interrupted render (same settings; output bit-identical)\n"
    "Progress:\n"
    "  --quiet                   no progress bar\n"
    "  --progress-json           one JSON object per event on stdout\n"
    "  --progress-endpoint EP    also publish the events on a ZeroMQ PUB socket bound at EP (rank 0), for\n"
    "                            `reelfarm watch --events EP` (docs/protocol.md); loopback or ipc://PATH, any\n"
    "                            other address needs --curve-secret FILE --allow-dir DIR as `serve` does. The\n"
    "                            job id is slurm-$SLURM_JOB_ID under Slurm, else render-PID\n"
    "  --threads N\n"
    "\n" ARG_PARALLEL_HELP
    "  --encoder-rank            the last rank decodes and encodes each chunk while the others denoise the\n"
    "                            next one (needs --overlap-mode latent; the layout gets the other ranks)\n"
    "  Every layout renders the same film; a checkpoint written with one layout resumes with another.\n"
    "\n"
    "SIGINT/SIGTERM save a checkpoint and exit (130/143) with the command that resumes.\n";

enum {
    OPT_PROGRESS_EP = 900, OPT_CURVE_SECRET, OPT_ALLOW_DIR,
    OPT_NEG = 1000, OPT_PROMPT_FILE, OPT_END_IMAGE, OPT_EXTEND, OPT_CODEC, OPT_CRF, OPT_PRESET, OPT_CKPT, OPT_CKPT_EVERY,
    OPT_NO_CKPT, OPT_KEEP_CKPT, OPT_RESUME, OPT_NOISE, OPT_SAVE_LATENTS, OPT_OVERWRITE, OPT_QUIET, OPT_JSON,
    OPT_OVERLAP_MODE, OPT_ENCODER_RANK, OPT_CAUSAL_ATTN, OPT_ADDNOISE, OPT_BASE, OPT_OVERLAP, OPT_AR, OPT_CBS, OPT_SECONDS
};

/* Make a path absolute (so a checkpoint resumes from any folder); missing files keep their name. */
static int absolutize(char **p) {
    if (!*p || (*p)[0] == '/') return ERR_OK;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return ERR_OK;
    const size_t n = strlen(cwd) + strlen(*p) + 2;
    char *a = malloc(n);
    if (!a) return err_set(ERR_NOMEM, "out of memory");
    snprintf(a, n, "%s/%s", cwd, *p);
    free(*p);
    *p = a;
    return ERR_OK;
}

static int set_str(struct render_settings *s, enum render_setting_bit bit, char **dst, const char *v) {
    s->set |= RS_BIT(bit);
    return render_settings_set_str(dst, v);
}

int cmd_render(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},         {"out", required_argument, 0, 'o'},
        {"prompt", required_argument, 0, 'p'},        {"prompt-file", required_argument, 0, OPT_PROMPT_FILE},
        {"negative-prompt", required_argument, 0, OPT_NEG},
        {"frames", required_argument, 0, 'n'},        {"seconds", required_argument, 0, OPT_SECONDS},
        {"image", required_argument, 0, 'i'},         {"end-image", required_argument, 0, OPT_END_IMAGE},
        {"extend", required_argument, 0, OPT_EXTEND}, {"resolution", required_argument, 0, 'r'},
        {"steps", required_argument, 0, 's'},         {"shift", required_argument, 0, 'S'},
        {"guidance", required_argument, 0, 'g'},      {"seed", required_argument, 0, 'e'},
        {"fps", required_argument, 0, 'F'},           {"ar-step", required_argument, 0, OPT_AR},
        {"causal-block-size", required_argument, 0, OPT_CBS},
        {"causal-attention", no_argument, 0, OPT_CAUSAL_ATTN},
        {"addnoise-condition", required_argument, 0, OPT_ADDNOISE},
        {"base-frames", required_argument, 0, OPT_BASE}, {"overlap", required_argument, 0, OPT_OVERLAP},
        {"overlap-mode", required_argument, 0, OPT_OVERLAP_MODE},
        {"codec", required_argument, 0, OPT_CODEC},   {"crf", required_argument, 0, OPT_CRF},
        {"preset", required_argument, 0, OPT_PRESET}, {"checkpoint", required_argument, 0, OPT_CKPT},
        {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
        {"no-checkpoint", no_argument, 0, OPT_NO_CKPT}, {"keep-checkpoint", no_argument, 0, OPT_KEEP_CKPT},
        {"resume", required_argument, 0, OPT_RESUME}, {"noise", required_argument, 0, OPT_NOISE},
        {"save-latents", required_argument, 0, OPT_SAVE_LATENTS},
        {"overwrite", no_argument, 0, OPT_OVERWRITE}, {"quiet", no_argument, 0, OPT_QUIET},
        {"progress-json", no_argument, 0, OPT_JSON},  {"threads", required_argument, 0, 't'},
        {"progress-endpoint", required_argument, 0, OPT_PROGRESS_EP},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET}, {"allow-dir", required_argument, 0, OPT_ALLOW_DIR},
        {"help", no_argument, 0, 'h'},                ARG_PARALLEL_LONGOPTS, {"encoder-rank", no_argument, 0, OPT_ENCODER_RANK},
        {0, 0, 0, 0}};
    static const char cmd[] = "render";
    struct render_settings s;
    render_settings_defaults(&s);
    struct render_options o = {.settings = &s};
    char *noise = NULL, *latents_out = NULL, *ckpt = NULL, *resume = NULL;
    const char *progress_ep = NULL, *curve_secret = NULL, *allow_dir = NULL;
    optind = 0;
    opterr = 0;
    int ch, rc = 0, ret = 0;
    int64_t i64 = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (arg_parallel(ch, optarg, &o.par, &rc)) {
            if (rc < 0) {
                render_settings_free(&s);
                return usage_error(cmd, "%s", err_message());
            }
            continue;
        }
        switch (ch) {
        case 'm': rc = set_str(&s, RS_MODEL, &s.model, optarg); break;
        case OPT_ENCODER_RANK: o.encoder_rank = true; break;
        case 'o': rc = set_str(&s, RS_OUTPUT, &s.output, optarg); break;
        case 'p': rc = set_str(&s, RS_PROMPT, &s.prompt, optarg); break;
        case OPT_PROMPT_FILE: {
            char *text = NULL;
            rc = arg_read_text_file("--prompt-file", optarg, &text);
            if (rc == ERR_OK) rc = set_str(&s, RS_PROMPT, &s.prompt, text);
            free(text);
            if (rc < 0) {
                render_settings_free(&s);
                return run_error();
            }
            break;
        }
        case OPT_NEG: rc = set_str(&s, RS_NEGATIVE_PROMPT, &s.negative_prompt, optarg); break;
        case 'n': rc = arg_i64("--frames", optarg, 1, 1000000, &s.frames), s.set |= RS_BIT(RS_FRAMES); break;
        case OPT_SECONDS: rc = arg_f64("--seconds", optarg, 1e-3, 1e5, &s.seconds), s.set |= RS_BIT(RS_SECONDS); break;
        case 'i': rc = set_str(&s, RS_IMAGE, &s.image, optarg); break;
        case OPT_END_IMAGE: rc = set_str(&s, RS_END_IMAGE, &s.end_image, optarg); break;
        case OPT_EXTEND: rc = set_str(&s, RS_EXTEND, &s.extend, optarg); break;
        case 'r': rc = arg_resolution("--resolution", optarg, &s.width, &s.height), s.set |= RS_BIT(RS_RESOLUTION); break;
        case 's': rc = arg_int("--steps", optarg, 1, 1000, &s.steps), s.set |= RS_BIT(RS_STEPS); break;
        case 'S': rc = arg_f64("--shift", optarg, 1e-3, 1e3, &s.shift), s.set |= RS_BIT(RS_SHIFT); break;
        case 'g': rc = arg_f64("--guidance", optarg, 0, 100, &s.guidance), s.set |= RS_BIT(RS_GUIDANCE); break;
        case 'e': rc = arg_u64("--seed", optarg, &s.seed), s.set |= RS_BIT(RS_SEED); break;
        case 'F': rc = arg_int("--fps", optarg, 1, 240, &s.fps), s.set |= RS_BIT(RS_FPS); break;
        case OPT_AR: rc = arg_int("--ar-step", optarg, 0, 1000, &s.ar_step), s.set |= RS_BIT(RS_AR_STEP); break;
        case OPT_CBS:
            rc = arg_int("--causal-block-size", optarg, 1, 1000, &s.causal_block_size);
            s.set |= RS_BIT(RS_CAUSAL_BLOCK_SIZE);
            break;
        case OPT_CAUSAL_ATTN: s.causal_attention = true, s.set |= RS_BIT(RS_CAUSAL_ATTENTION); break;
        case OPT_ADDNOISE:
            rc = arg_int("--addnoise-condition", optarg, 0, 999, &s.addnoise_condition);
            s.set |= RS_BIT(RS_ADDNOISE_CONDITION);
            break;
        case OPT_BASE: rc = arg_i64("--base-frames", optarg, 1, 1000000, &s.base_frames), s.set |= RS_BIT(RS_BASE_FRAMES); break;
        case OPT_OVERLAP: rc = arg_i64("--overlap", optarg, 1, 1000000, &s.overlap), s.set |= RS_BIT(RS_OVERLAP); break;
        case OPT_OVERLAP_MODE:
            if (!strcmp(optarg, "pixel"))
                s.overlap_mode = OVERLAP_PIXEL;
            else if (!strcmp(optarg, "latent"))
                s.overlap_mode = OVERLAP_LATENT;
            else
                rc = err_set(ERR_INVALID_ARG, "--overlap-mode %s: expected pixel or latent", optarg);
            s.set |= RS_BIT(RS_OVERLAP_MODE);
            break;
        case OPT_CODEC: rc = set_str(&s, RS_CODEC, &s.codec, optarg); break;
        case OPT_CRF: rc = arg_int("--crf", optarg, 0, 63, &s.crf), s.set |= RS_BIT(RS_CRF); break;
        case OPT_PRESET: rc = set_str(&s, RS_PRESET, &s.preset, optarg); break;
        case OPT_CKPT: ckpt = optarg; break;
        case OPT_CKPT_EVERY: rc = arg_i64("--checkpoint-every", optarg, 0, 1 << 30, &i64), o.checkpoint_every = (int)i64; break;
        case OPT_NO_CKPT: o.no_checkpoint = true; break;
        case OPT_KEEP_CKPT: o.keep_checkpoint = true; break;
        case OPT_RESUME: resume = optarg; break;
        case OPT_NOISE: noise = optarg; break;
        case OPT_SAVE_LATENTS: latents_out = optarg; break;
        case OPT_OVERWRITE: o.overwrite = true; break;
        case OPT_QUIET: o.quiet = true; break;
        case OPT_JSON: o.progress_json = true; break;
        case OPT_PROGRESS_EP: progress_ep = optarg; break;
        case OPT_CURVE_SECRET: curve_secret = optarg; break;
        case OPT_ALLOW_DIR: allow_dir = optarg; break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 'h': fputs(render_help, stdout); render_settings_free(&s); return 0;
        case ':': render_settings_free(&s); return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: render_settings_free(&s); return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) {
            render_settings_free(&s);
            return usage_error(cmd, "%s", err_message());
        }
    }
    const char *film = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) {
        render_settings_free(&s);
        return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (film && resume) {
        render_settings_free(&s);
        return usage_error(cmd, "--resume takes its settings from the checkpoint; give no film file");
    }
    if (resume && (s.set & (RS_BIT(RS_MODEL) | RS_BIT(RS_OUTPUT)))) {
        render_settings_free(&s);
        return usage_error(cmd, "--resume continues into the checkpoint's model and output; drop --model and --out");
    }
    if ((curve_secret || allow_dir) && (!progress_ep || !curve_secret || !allow_dir)) {
        render_settings_free(&s);
        return usage_error(cmd, "--curve-secret FILE and --allow-dir DIR go together, with --progress-endpoint");
    }
    if (progress_ep && service_check_endpoint("--progress-endpoint", progress_ep, curve_secret != NULL) < 0) {
        render_settings_free(&s);
        return usage_error(cmd, "%s", err_message());
    }
    if (o.no_checkpoint && (ckpt || o.checkpoint_every || o.keep_checkpoint)) {
        render_settings_free(&s);
        return usage_error(cmd, "--no-checkpoint cannot be combined with --checkpoint, --checkpoint-every or "
                                "--keep-checkpoint");
    }
    noise = noise ? strdup(noise) : NULL, latents_out = latents_out ? strdup(latents_out) : NULL;
    ckpt = ckpt ? strdup(ckpt) : NULL;
    if (film) rc = film_load(film, &s);
    if (rc == ERR_OK && resume) rc = worker_render_checkpoint_settings(resume, &s, &noise, &latents_out);
    if (rc == ERR_OK && !s.model) { /* the built-in tiny model, at a size it renders in seconds */
        char dir[PATH_MAX];
        rc = worker_builtin_model(dir, sizeof dir);
        if (rc == ERR_OK) rc = render_settings_set_str(&s.model, dir);
        if (!(s.set & RS_BIT(RS_RESOLUTION))) s.width = 128, s.height = 128;
        if (!(s.set & RS_BIT(RS_BASE_FRAMES))) s.base_frames = 17;
        if (!(s.set & RS_BIT(RS_OVERLAP))) s.overlap = 5;
        if (!(s.set & (RS_BIT(RS_FRAMES) | RS_BIT(RS_SECONDS))) && !s.n_shots) s.frames = 41;
        if (!(s.set & RS_BIT(RS_STEPS))) s.steps = 10;
        if (par_rank() == 0)
            fprintf(stderr, "reelfarm render: no --model given: using the built-in tiny model with random weights, so the "
                        "video is random noise; for real video point --model at a SkyReels-V2 Diffusers directory "
                        "(e.g. Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers)\n");
    }
    if (rc == ERR_OK && !s.output) rc = render_settings_set_str(&s.output, "film.mp4");
    /* absolute paths: the checkpoint must resume from any folder */
    char **paths[] = {&s.model, &s.output, &s.image, &s.end_image, &s.extend, &noise, &latents_out, &ckpt};
    for (size_t i = 0; rc == ERR_OK && i < sizeof paths / sizeof paths[0]; i++) rc = absolutize(paths[i]);
    for (int i = 0; rc == ERR_OK && i < s.n_shots; i++) rc = absolutize(&s.shots[i].image);
    struct progress_pub *pub = NULL;
    if (rc == ERR_OK && progress_ep && par_rank() == 0) rc = open_progress_pub(&pub, progress_ep, curve_secret,
                                                                                allow_dir, s.output);
    if (pub) o.progress_hook = progress_pub_hook, o.progress_user = pub;
    if (rc == ERR_OK) {
        o.noise_path = noise, o.latents_out = latents_out, o.checkpoint = ckpt, o.resume = resume;
        int sig = 0;
        rc = worker_render(&o, &sig);
        if (pub) { /* the outcome goes out last; closing may log, so the render's error is kept aside */
            char why[2048];
            snprintf(why, sizeof why, "%s", rc == ERR_OK ? "" : err_message());
            progress_pub_close(&pub, rc == ERR_OK ? "done" : rc == ERR_INTERRUPTED ? "interrupted" : "failed",
                               rc == ERR_OK ? NULL : why);
            if (rc < 0) err_set((enum err_code)rc, "%s", why);
        }
        if (rc == ERR_INTERRUPTED) {
            fprintf(stderr, "reelfarm render: %s\n", err_message());
            ret = 128 + (sig ? sig : 2);
        } else if (rc < 0) {
            ret = run_error();
        }
    } else {
        ret = run_error();
    }
    free(noise), free(latents_out), free(ckpt);
    render_settings_free(&s);
    return ret;
}

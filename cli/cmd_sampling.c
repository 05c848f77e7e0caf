/* cli/cmd_sampling.c - `reelfarm denoise` and `reelfarm plan`. */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "coordinator/plan.h"
#include "core/error.h"
#include "io/fs.h"
#include "model/prompts.h"
#include "model/wan_config.h"
#include "model/wan_dit.h"
#include "worker/worker.h"

static const char denoise_help[] =
    "Usage: reelfarm denoise --model DIR --in IN.h5 --out OUT.h5 --steps N [options]\n"
    "\n"
    "The diffusion-forcing denoising loop of one window (spec 4, 5, 6.4) on the CPU, on one rank or\n"
    "spread over the ranks of an MPI job (the latents are the same bits on every layout but --tp).\n"
    "\n"
    "IN.h5 datasets (float32):\n"
    "  noise              [16, F, H, W]  starting latents of the whole window\n"
    "  context            [L, text_dim]  conditional text embeddings\n"
    "  negative_context   [L, text_dim]  unconditional ones (needed when --guidance > 1)\n"
    "  prefix_latents     [16, P, H, W]  optional clean frames placed at the start (pre-ready)\n"
    "  end_latents        [16, 1, H, W]  optional end latent appended after the window\n"
    "OUT.h5: latents [16, F, H, W] (end latent excluded), timesteps int64 [N], timestep_matrix int64\n"
    "[rows, F'], update_mask uint8 [rows, F'], valid_interval int64 [rows, 2] (F' includes the end latent).\n"
    "\n"
    "Options:\n"
    "  --steps N                 denoising steps (required; upstream DF default 30)\n"
    "  --shift S                 sigma shift (default 8; 5 for I2V)\n"
    "  --guidance G              classifier-free guidance (default 6; <= 1 runs only the conditional pass)\n"
    "  --ar-step A               steps of lag between causal blocks (default 0 = synchronous; async: 5)\n"
    "  --causal-block-size C     frames per causal block in the schedule (default 1; async: 5)\n"
    "  --causal-attention        also apply the block-causal attention mask. Upstream's async example\n"
    "                            shapes only the schedule and keeps full attention; this flag mirrors its\n"
    "                            --causal_attention (spec 3.9)\n"
    "  --addnoise-condition K    re-noise the prefix by 0.001 K each row and feed it with timestep K\n"
    "                            (default 0 = off; upstream suggests 20)\n"
    "  --seed S                  seed of the add-noise draws (default 0)\n"
    "  --fps F                   frame rate the fps embedding is told (default 24; 16 selects code 0)\n"
    "  --chunk I                 chunk index, for addressing random draws (default 0)\n"
    "  --textbook-step           textbook UniPC instead of upstream's last_sample aliasing (spec 5.6)\n"
    "  --threads N / --force\n"
    "\n" ARG_PARALLEL_HELP;

int cmd_denoise(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},      {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},        {"steps", required_argument, 0, 'n'},
        {"shift", required_argument, 0, 's'},      {"guidance", required_argument, 0, 'g'},
        {"ar-step", required_argument, 0, 'a'},    {"causal-block-size", required_argument, 0, 'c'},
        {"causal-attention", no_argument, 0, 'C'}, {"addnoise-condition", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 'S'},       {"fps", required_argument, 0, 'F'},
        {"chunk", required_argument, 0, 'I'},      {"textbook-step", no_argument, 0, 'T'},
        {"threads", required_argument, 0, 't'},    {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},             ARG_PARALLEL_LONGOPTS,
        {0, 0, 0, 0}};
    static const char cmd[] = "denoise";
    struct denoise_options o = {.shift = 8.0, .guidance = 6.0, .causal_block_size = 1, .fps = 24};
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (arg_parallel(ch, optarg, &o.par, &rc)) {
            if (rc < 0) return usage_error(cmd, "%s", err_message());
            continue;
        }
        switch (ch) {
        case 'm': o.model_dir = optarg; break;
        case 'i': o.in_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 'n': rc = arg_int("--steps", optarg, 1, 1000, &o.steps); break;
        case 's': rc = arg_f64("--shift", optarg, 1e-3, 1e3, &o.shift); break;
        case 'g': rc = arg_f64("--guidance", optarg, 0, 100, &o.guidance); break;
        case 'a': rc = arg_int("--ar-step", optarg, 0, 1000, &o.ar_step); break;
        case 'c': rc = arg_int("--causal-block-size", optarg, 1, 1000, &o.causal_block_size); break;
        case 'C': o.causal_attention = true; break;
        case 'k': rc = arg_int("--addnoise-condition", optarg, 0, 999, &o.addnoise_condition); break;
        case 'S': rc = arg_u64("--seed", optarg, &o.seed); break;
        case 'F': rc = arg_int("--fps", optarg, 1, 1000, &o.fps); break;
        case 'I': rc = arg_i64("--chunk", optarg, 0, 1 << 30, &o.chunk); break;
        case 'T': o.textbook_step = true; break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 'f': o.force = true; break;
        case 'h': fputs(denoise_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_dir || !o.in_path || !o.out_path || !o.steps)
        return usage_error(cmd, "--model, --in, --out and --steps are required");
    return worker_denoise(&o) < 0 ? run_error() : 0;
}

static const char plan_help[] =
    "Usage: reelfarm plan [--frames N | --seconds S --fps F] [options]\n"
    "\n"
    "The chunk plan of a diffusion-forcing video (spec 6.3, 6.7): each chunk's latent range, prefix, the\n"
    "frames it adds, its denoising rows, DiT forwards and a FLOP estimate, and the totals.\n"
    "\n"
    "Options:\n"
    "  --frames N                video frames (the film gets the 4k+1 count at or below N)\n"
    "  --seconds S --fps F       or a duration (frames = 4 ceil(S F / 4) + 1)\n"
    "  --base-frames B           model window in video frames (97 at 540P, 121 at 720P; 4k+1)\n"
    "  --overlap O               video frames shared by consecutive chunks (17 or 37; 4k+1)\n"
    "  --steps N                 denoising steps (default 30)\n"
    "  --ar-step A               (default 0)\n"
    "  --causal-block-size C     (default 1)\n"
    "  --guidance G              (default 6; > 1 means two forwards per row)\n"
    "  --image / --end-image     start frame / end frame conditioning\n"
    "  --extend N                extend an input video of N frames (--frames then counts new + overlap)\n"
    "  --resolution 540p|720p|WxH  for the FLOP estimate (default 540p)\n"
    "  --model-size 1.3b|14b     for the FLOP estimate (default 14b)\n"
    "  --json                    print JSON instead of a table\n";

static void print_plan_json(const struct plan *p, const double *flops, double total_flops) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "long_mode", p->long_mode);
    cJSON_AddNumberToObject(o, "frames_requested", (double)p->frames);
    cJSON_AddNumberToObject(o, "output_frames", (double)p->output_frames);
    cJSON_AddNumberToObject(o, "latent_frames", (double)p->latent_frames);
    cJSON_AddNumberToObject(o, "chunks_count", (double)p->n_chunks);
    cJSON_AddNumberToObject(o, "total_rows", (double)p->total_rows);
    cJSON_AddNumberToObject(o, "total_forwards", (double)p->total_forwards);
    cJSON_AddNumberToObject(o, "total_tflop", total_flops / 1e12);
    cJSON *arr = cJSON_AddArrayToObject(o, "chunks");
    for (int64_t i = 0; i < p->n_chunks; i++) {
        const struct plan_chunk *c = &p->chunks[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "index", (double)c->index);
        cJSON_AddNumberToObject(j, "latent_start", (double)c->latent_start);
        cJSON_AddNumberToObject(j, "latent_frames", (double)c->latent_frames);
        cJSON_AddNumberToObject(j, "prefix_frames", (double)c->prefix_frames);
        cJSON_AddBoolToObject(j, "end_frame", c->end_frame);
        cJSON_AddNumberToObject(j, "new_latents", (double)c->new_latents);
        cJSON_AddNumberToObject(j, "new_frames", (double)c->new_frames);
        cJSON_AddNumberToObject(j, "first_frame", (double)c->first_frame);
        cJSON_AddNumberToObject(j, "rows", (double)c->rows);
        cJSON_AddNumberToObject(j, "forwards", (double)c->forwards);
        cJSON_AddNumberToObject(j, "tflop", flops[i] / 1e12);
        cJSON_AddItemToArray(arr, j);
    }
    char *text = cJSON_Print(o);
    puts(text);
    free(text);
    cJSON_Delete(o);
}

int cmd_plan(int argc, char **argv) {
    static const struct option longopts[] = {
        {"frames", required_argument, 0, 'n'},     {"seconds", required_argument, 0, 'S'},
        {"fps", required_argument, 0, 'F'},        {"base-frames", required_argument, 0, 'b'},
        {"overlap", required_argument, 0, 'o'},    {"steps", required_argument, 0, 's'},
        {"ar-step", required_argument, 0, 'a'},    {"causal-block-size", required_argument, 0, 'c'},
        {"guidance", required_argument, 0, 'g'},   {"image", no_argument, 0, 'i'},
        {"end-image", no_argument, 0, 'e'},        {"extend", required_argument, 0, 'x'},
        {"resolution", required_argument, 0, 'r'}, {"model-size", required_argument, 0, 'M'},
        {"json", no_argument, 0, 'j'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char cmd[] = "plan";
    struct plan_request r = {.fps = 24, .steps = 30, .causal_block_size = 1, .guidance = 6.0};
    int64_t width = 960, height = 544;
    const char *model_size = "14b";
    bool json = false;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': rc = arg_i64("--frames", optarg, 1, 1000000, &r.frames); break;
        case 'S': rc = arg_f64("--seconds", optarg, 1e-3, 1e5, &r.seconds); break;
        case 'F': rc = arg_int("--fps", optarg, 1, 240, &r.fps); break;
        case 'b': rc = arg_i64("--base-frames", optarg, 1, 100000, &r.base_frames); break;
        case 'o': rc = arg_i64("--overlap", optarg, 1, 100000, &r.overlap); break;
        case 's': rc = arg_int("--steps", optarg, 1, 1000, &r.steps); break;
        case 'a': rc = arg_int("--ar-step", optarg, 0, 1000, &r.ar_step); break;
        case 'c': rc = arg_int("--causal-block-size", optarg, 1, 1000, &r.causal_block_size); break;
        case 'g': rc = arg_f64("--guidance", optarg, 0, 100, &r.guidance); break;
        case 'i': r.start_image = true; break;
        case 'e': r.end_image = true; break;
        case 'x': rc = arg_i64("--extend", optarg, 1, 1000000, &r.extend_frames); break;
        case 'r': rc = arg_resolution("--resolution", optarg, &width, &height); break;
        case 'M': model_size = optarg; break;
        case 'j': json = true; break;
        case 'h': fputs(plan_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!r.frames && !r.seconds) return usage_error(cmd, "give --frames or --seconds");
    if (r.frames && r.seconds) return usage_error(cmd, "give --frames or --seconds, not both");
    if (width % 16 || height % 16)
        return usage_error(cmd, "--resolution %lldx%lld: width and height must be multiples of 16", (long long)width,
                           (long long)height);
    struct wan_config cfg;
    if (wan_config_preset(model_size, &cfg) < 0) return usage_error(cmd, "--model-size: %s", err_message());
    struct plan p;
    if (plan_build(&r, &p) < 0) return run_error();

    double *flops = calloc((size_t)p.n_chunks, sizeof *flops), total = 0;
    for (int64_t i = 0; i < p.n_chunks; i++) {
        const struct plan_chunk *c = &p.chunks[i];
        struct wan_dit_shape sh = {.frames = c->latent_frames + (c->end_frame ? 1 : 0), .height = height / 8,
                                   .width = width / 8, .context_len = 512, .timestep_rows = 1};
        flops[i] = (double)c->forwards * wan_dit_flops(&cfg, &sh, 0);
        total += flops[i];
    }
    if (json) {
        print_plan_json(&p, flops, total);
    } else {
        printf("%s mode: %lld frames requested -> %lld video frames (%lld latent frames) in %lld chunk%s; "
               "%s %lldx%lld, %d steps, ar_step %d, block %d, guidance %g\n",
               p.long_mode ? "long" : "short", (long long)p.frames, (long long)p.output_frames,
               (long long)p.latent_frames, (long long)p.n_chunks, p.n_chunks == 1 ? "" : "s", model_size,
               (long long)width, (long long)height, r.steps, r.ar_step, r.causal_block_size, r.guidance);
        printf("%5s %13s %7s %6s %4s %10s %10s %10s %6s %9s %9s\n", "chunk", "latents", "window", "prefix", "end",
               "new_lat", "new_frames", "first", "rows", "forwards", "PFLOP");
        for (int64_t i = 0; i < p.n_chunks; i++) {
            const struct plan_chunk *c = &p.chunks[i];
            char range[32];
            snprintf(range, sizeof range, "[%lld, %lld)", (long long)c->latent_start,
                     (long long)(c->latent_start + c->latent_frames));
            printf("%5lld %13s %7lld %6lld %4s %10lld %10lld %10lld %6lld %9lld %9.2f\n", (long long)c->index, range,
                   (long long)c->latent_frames, (long long)c->prefix_frames, c->end_frame ? "yes" : "-",
                   (long long)c->new_latents, (long long)c->new_frames, (long long)c->first_frame, (long long)c->rows,
                   (long long)c->forwards, flops[i] / 1e15);
        }
        printf("total: %lld rows, %lld DiT forwards, %.1f PFLOP\n", (long long)p.total_rows,
               (long long)p.total_forwards, total / 1e15);
    }
    free(flops);
    plan_free(&p);
    return 0;
}

static const char encode_text_help[] =
    "Usage: reelfarm encode-text --model DIR (--prompt TEXT | --prompt-file F) --out CTX.h5 [options]\n"
    "\n"
    "Encodes a prompt with the model's umT5 text encoder (spec 8): cleaning (HTML entities, whitespace),\n"
    "SentencePiece tokens, EOS, padding to text_len, the encoder, padding rows set to zero.\n"
    "CTX.h5: context float32 [text_len, d_model], input_ids int64 [text_len], attention_mask uint8\n"
    "[text_len]; with a negative prompt also negative_context, negative_input_ids, negative_attention_mask.\n"
    "\n"
    "Options:\n"
    "  --prompt TEXT / --prompt-file F     the prompt (UTF-8; a file is read whole)\n"
    "  --negative                          also encode the default negative prompt (upstream's DF default)\n"
    "  --negative-prompt TEXT / --negative-prompt-file F\n"
    "                                      also encode this negative prompt instead (may be empty)\n"
    "  --text-len N                        tokens per prompt (default: the tokenizer's bound, 512 for the real\n"
    "                                      models; longer prompts are truncated with a warning)\n"
    "  --threads N / --force\n";

int cmd_encode_text(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},           {"out", required_argument, 0, 'o'},
        {"prompt", required_argument, 0, 'p'},          {"prompt-file", required_argument, 0, 'P'},
        {"negative", no_argument, 0, 'N'},              {"negative-prompt", required_argument, 0, 'n'},
        {"negative-prompt-file", required_argument, 0, 'F'}, {"text-len", required_argument, 0, 'L'},
        {"threads", required_argument, 0, 't'},         {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0}};
    static const char cmd[] = "encode-text";
    struct encode_text_options o = {0};
    const char *prompt_file = NULL, *neg_file = NULL;
    bool default_negative = false;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model_dir = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 'p': o.prompt = optarg; break;
        case 'P': prompt_file = optarg; break;
        case 'N': default_negative = true; break;
        case 'n': o.negative_prompt = optarg; break;
        case 'F': neg_file = optarg; break;
        case 'L': rc = arg_i64("--text-len", optarg, 1, 1 << 16, &o.text_len); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 'f': o.force = true; break;
        case 'h': fputs(encode_text_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_dir || !o.out_path) return usage_error(cmd, "--model and --out are required");
    if (!!o.prompt + !!prompt_file != 1) return usage_error(cmd, "give exactly one of --prompt and --prompt-file");
    if (!!o.negative_prompt + !!neg_file + default_negative > 1)
        return usage_error(cmd, "give at most one of --negative, --negative-prompt and --negative-prompt-file");
    char *ptext = NULL, *ntext = NULL;
    if (prompt_file && arg_read_text_file("--prompt-file", prompt_file, &ptext) < 0) return run_error();
    if (neg_file && arg_read_text_file("--negative-prompt-file", neg_file, &ntext) < 0) {
        free(ptext);
        return run_error();
    }
    if (ptext) o.prompt = ptext;
    if (ntext) o.negative_prompt = ntext;
    if (default_negative) o.negative_prompt = REELFARM_DEFAULT_NEGATIVE_PROMPT;
    rc = worker_encode_text(&o);
    free(ptext);
    free(ntext);
    return rc < 0 ? run_error() : 0;
}
